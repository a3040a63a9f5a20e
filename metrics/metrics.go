package metrics

import (
	"net/http"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/mailhook/mailhook/dispatch"
	"github.com/mailhook/mailhook/inbound"
)

const namespace = "mailhook"

// Bucket layouts.
var (
	// storeBuckets: 0.5 ms (a local fsync'd write) to 10 s (a struggling
	// S3 endpoint).
	storeBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}
	// attemptBuckets: 5 ms to 60 s; the default attempt timeout is 30 s.
	attemptBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}
	// sizeBuckets: 1 KiB to 64 MiB, ×4.
	sizeBuckets = prometheus.ExponentialBuckets(1024, 4, 9)
)

// Metrics holds mailhook's metrics and the registry they are served from.
// Create it with New; its methods are safe for concurrent use.
type Metrics struct {
	reg *prometheus.Registry

	// SMTP
	sessionsActive   prometheus.Gauge
	sessionsTotal    *prometheus.CounterVec
	sessionsAccepted prometheus.Counter
	commandsTotal    *prometheus.CounterVec
	commands         [numVerbs][numReplyClasses]prometheus.Counter
	messagesTotal    *prometheus.CounterVec
	messagesAccepted prometheus.Counter
	receivedBytes    prometheus.Counter
	messageSize      prometheus.Histogram

	// store
	storeDuration *prometheus.HistogramVec

	// dispatch
	attemptDuration prometheus.Histogram
	retries         atomic.Uint64

	// retention
	expiredTotal *prometheus.CounterVec
}

// New returns the metrics of one process, registered in a registry of
// their own together with the Go runtime and process collectors and
// mailhook_build_info{version=version}.
func New(version string) *Metrics {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	m := &Metrics{reg: reg}
	f := factory{reg}

	f.gaugeFunc(prometheus.GaugeOpts{
		Name:        "build_info",
		Help:        "Always 1; the labels name the running build.",
		ConstLabels: prometheus.Labels{"version": version, "goversion": runtime.Version()},
	}, func() float64 { return 1 })

	m.sessionsActive = f.gauge(prometheus.GaugeOpts{
		Subsystem: "smtp", Name: "sessions_active",
		Help: "SMTP sessions in progress.",
	})
	m.sessionsTotal = f.counterVec(prometheus.CounterOpts{
		Subsystem: "smtp", Name: "sessions_total",
		Help: "SMTP connections by result: accepted (a session started) or refused with 421 (over_cap, shutting_down, untrusted).",
	}, "result")
	m.sessionsAccepted = m.sessionsTotal.WithLabelValues("accepted")
	m.sessionsTotal.WithLabelValues(inbound.RefusedOverCap)
	m.sessionsTotal.WithLabelValues(inbound.RefusedShuttingDown)
	m.sessionsTotal.WithLabelValues(inbound.RefusedUntrusted)

	m.commandsTotal = f.counterVec(prometheus.CounterOpts{
		Subsystem: "smtp", Name: "commands_total",
		Help: "SMTP commands by verb (unknown verbs and unparsable lines are \"other\") and class of the final reply.",
	}, "verb", "class")
	for v := range numVerbs {
		for c := range numReplyClasses {
			m.commands[v][c] = m.commandsTotal.WithLabelValues(verbNames[v], replyClassNames[c])
		}
	}

	m.messagesTotal = f.counterVec(prometheus.CounterOpts{
		Subsystem: "smtp", Name: "messages_total",
		Help: "Message transfers (DATA/BDAT) by result (accepted, rejected, aborted) and reason.",
	}, "result", "reason")
	m.messagesAccepted = m.messagesTotal.WithLabelValues(inbound.ResultAccepted, "")
	for _, r := range rejectReasons {
		m.messagesTotal.WithLabelValues(inbound.ResultRejected, r)
	}
	for _, r := range abortReasons {
		m.messagesTotal.WithLabelValues(inbound.ResultAborted, r)
	}
	m.receivedBytes = f.counter(prometheus.CounterOpts{
		Subsystem: "smtp", Name: "received_bytes_total",
		Help: "Message data octets received (after dot-unstuffing), every transfer whatever its result.",
	})
	m.messageSize = f.histogram(prometheus.HistogramOpts{
		Subsystem: "smtp", Name: "message_size_bytes",
		Help:    "Size of accepted messages (data octets, without our Received header).",
		Buckets: sizeBuckets,
	})

	m.storeDuration = f.histogramVec(prometheus.HistogramOpts{
		Subsystem: "store", Name: "operation_duration_seconds",
		Help: "Store calls by operation and result (ok, not_found, precondition, error). " +
			"Put includes reading the body (for raw messages: receiving the data from the SMTP client); " +
			"get covers opening the object; list the whole iteration, without the caller's loop body.",
		Buckets: storeBuckets,
	}, "op", "result")

	m.attemptDuration = f.histogram(prometheus.HistogramOpts{
		Name:    "delivery_attempt_duration_seconds",
		Help:    "Webhook attempts that sent a request: time to the response (or to the transport error).",
		Buckets: attemptBuckets,
	})

	m.expiredTotal = f.counterVec(prometheus.CounterOpts{
		Name: "expired_total",
		Help: "Objects deleted by MAILHOOK_RETENTION and MAILHOOK_FAILED_RETENTION, by kind: delivered and failed records, raw messages, raw messages no record referred to (orphan).",
	}, "kind")
	for _, k := range []string{"delivered", "failed", "raw", "orphan"} {
		m.expiredTotal.WithLabelValues(k)
	}
	return m
}

// Expired counts what one retention pass over the records in state
// (delivered or failed) deleted.
func (m *Metrics) Expired(state string, records, raws int) {
	m.expiredTotal.WithLabelValues(state).Add(float64(records))
	m.expiredTotal.WithLabelValues("raw").Add(float64(raws))
}

// ExpiredOrphans counts the raw messages a retention pass deleted because
// no record referred to them.
func (m *Metrics) ExpiredOrphans(raws int) {
	m.expiredTotal.WithLabelValues("orphan").Add(float64(raws))
}

// Registry is where the metrics live, for more collectors.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the registry in the Prometheus exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.InstrumentMetricHandler(m.reg, promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		Registry:            m.reg,
		MaxRequestsInFlight: 4,
	}))
}

// DeliveryAttempt records one webhook attempt; it has the signature of
// dispatch.Config.OnAttempt.
func (m *Metrics) DeliveryAttempt(status int, outcome string, latency time.Duration) {
	if outcome == "retry" {
		m.retries.Add(1)
	}
	if status != 0 || latency > 0 {
		m.attemptDuration.Observe(latency.Seconds())
	}
}

// StatsSource is what WatchDispatcher reads: *dispatch.Dispatcher.
type StatsSource interface {
	Stats() dispatch.Stats
}

// WatchDispatcher exports d's counters and gauges, read from d.Stats() at
// each scrape. Call it once.
func (m *Metrics) WatchDispatcher(d StatsSource) {
	m.reg.MustRegister(newDispatchCollector(d, &m.retries))
}

// factory creates metrics in the mailhook namespace and registers them.
type factory struct{ reg prometheus.Registerer }

func (f factory) gauge(o prometheus.GaugeOpts) prometheus.Gauge {
	o.Namespace = namespace
	g := prometheus.NewGauge(o)
	f.reg.MustRegister(g)
	return g
}

func (f factory) gaugeFunc(o prometheus.GaugeOpts, fn func() float64) {
	o.Namespace = namespace
	f.reg.MustRegister(prometheus.NewGaugeFunc(o, fn))
}

func (f factory) counter(o prometheus.CounterOpts) prometheus.Counter {
	o.Namespace = namespace
	c := prometheus.NewCounter(o)
	f.reg.MustRegister(c)
	return c
}

func (f factory) counterVec(o prometheus.CounterOpts, labels ...string) *prometheus.CounterVec {
	o.Namespace = namespace
	c := prometheus.NewCounterVec(o, labels)
	f.reg.MustRegister(c)
	return c
}

func (f factory) histogram(o prometheus.HistogramOpts) prometheus.Histogram {
	o.Namespace = namespace
	h := prometheus.NewHistogram(o)
	f.reg.MustRegister(h)
	return h
}

func (f factory) histogramVec(o prometheus.HistogramOpts, labels ...string) *prometheus.HistogramVec {
	o.Namespace = namespace
	h := prometheus.NewHistogramVec(o, labels)
	f.reg.MustRegister(h)
	return h
}
