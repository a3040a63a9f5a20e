package metrics

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// dispatchCollector reads the dispatcher's Stats once per scrape.
type dispatchCollector struct {
	src     StatsSource
	retries *atomic.Uint64

	deliveries, attempts, pending, inFlight, oldest, takeovers, claimed, paused *prometheus.Desc
}

func newDispatchCollector(src StatsSource, retries *atomic.Uint64) *dispatchCollector {
	name := func(n string) string { return prometheus.BuildFQName(namespace, "", n) }
	return &dispatchCollector{
		src:     src,
		retries: retries,
		deliveries: prometheus.NewDesc(name("deliveries_total"),
			"Webhook deliveries finished by this process (delivered, failed: dead letter), and attempts that ended in a scheduled retry (retry).",
			[]string{"outcome"}, nil),
		attempts: prometheus.NewDesc(name("delivery_attempts_total"),
			"Webhook attempts by class of the receiver's answer; error means no answer (transport error, timeout, render failure).",
			[]string{"class"}, nil),
		pending: prometheus.NewDesc(name("queue_pending"),
			"Deliveries this process has scheduled, waiting or in flight.", nil, nil),
		inFlight: prometheus.NewDesc(name("deliveries_in_flight"),
			"Webhook attempts being made.", nil, nil),
		oldest: prometheus.NewDesc(name("queue_oldest_pending_age_seconds"),
			"Age of the message of the oldest pending delivery this process knows; 0 when none.", nil, nil),
		takeovers: prometheus.NewDesc(name("lease_takeovers_total"),
			"Deliveries this process took over from a replica that stopped renewing its lease.", nil, nil),
		claimed: prometheus.NewDesc(name("delivery_claimed_attempts_total"),
			"First attempts made under the claim written with the record when the message was accepted here (no lease write needed).", nil, nil),
		paused: prometheus.NewDesc(name("endpoints_paused"),
			"Webhook endpoints this process has paused after failures in a row, with deliveries to them left: those wait, one is tried at a time.", nil, nil),
	}
}

func (c *dispatchCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.deliveries
	ch <- c.attempts
	ch <- c.pending
	ch <- c.inFlight
	ch <- c.oldest
	ch <- c.takeovers
	ch <- c.claimed
	ch <- c.paused
}

func (c *dispatchCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.src.Stats()
	counter := func(d *prometheus.Desc, v uint64, label string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), label)
	}
	gauge := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v)
	}
	counter(c.deliveries, s.Delivered, "delivered")
	counter(c.deliveries, s.Failed, "failed")
	counter(c.deliveries, c.retries.Load(), "retry")
	counter(c.attempts, s.Attempts.Status2xx, "2xx")
	counter(c.attempts, s.Attempts.Status3xx, "3xx")
	counter(c.attempts, s.Attempts.Status4xx, "4xx")
	counter(c.attempts, s.Attempts.Status5xx, "5xx")
	counter(c.attempts, s.Attempts.Error, "error")
	gauge(c.pending, float64(s.Pending))
	gauge(c.inFlight, float64(s.InFlight))
	gauge(c.oldest, s.OldestPendingAge.Seconds())
	gauge(c.paused, float64(s.PausedEndpoints))
	ch <- prometheus.MustNewConstMetric(c.takeovers, prometheus.CounterValue, float64(s.LeaseTakeovers))
	ch <- prometheus.MustNewConstMetric(c.claimed, prometheus.CounterValue, float64(s.ClaimedAttempts))
}
