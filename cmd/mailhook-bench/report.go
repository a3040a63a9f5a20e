package main

import (
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
	"time"
)

// result is the run's outcome: the JSON line on stdout. Field names are a
// contract for scripts; add, do not rename. End-to-end fields are null with
// -no-sink.
type result struct {
	Tool       string `json:"tool"` // "mailhook-bench"
	Schema     int    `json:"schema"`
	RunID      string `json:"run_id"`
	Target     string `json:"target"`
	Conc       int    `json:"concurrency"`
	SizeBytes  int    `json:"size_bytes"`
	PerConn    int    `json:"per_conn"`
	Pipelining bool   `json:"pipelining"`      // asked for
	PipeUsed   bool   `json:"pipelining_used"` // asked for and advertised
	Sink       bool   `json:"sink"`
	SigChecked bool   `json:"signatures_checked"`

	SMTPSeconds float64 `json:"smtp_seconds"` // start → last SMTP session ended
	E2ESeconds  float64 `json:"e2e_seconds"`  // start → last webhook of an acknowledged message (0 with -no-sink)
	Drained     bool    `json:"drained"`      // every acknowledged message reached the sink before -drain-timeout

	Sent       int64 `json:"sent"` // transactions started (MAIL sent)
	Acked      int64 `json:"acked"`
	TempFailed int64 `json:"temp_failed"`
	PermFailed int64 `json:"perm_failed"`
	ConnErrors int64 `json:"conn_errors"`

	Webhooks         int64 `json:"webhooks"`            // POSTs received by the sink
	Delivered        int64 `json:"delivered"`           // acknowledged messages with at least one webhook
	Missing          int64 `json:"missing"`             // acknowledged messages with none
	DupByID          int64 `json:"duplicates_by_id"`    // webhooks whose webhook-id was seen before
	DupByToken       int64 `json:"duplicates_by_token"` // webhooks for a message seen before
	SigFailures      int64 `json:"signature_failures"`
	Foreign          int64 `json:"foreign_webhooks"`  // verified, but no token of this run (e.g. an earlier run's backlog)
	UnackedDelivered int64 `json:"unacked_delivered"` // reached the sink but the client never saw a 250
	BadRequests      int64 `json:"bad_requests"`
	// With -sink-down: how long the sink answered 503 from the start,
	// the requests it so refused, and the time from its return to the
	// last webhook of an acknowledged message (recovery).
	SinkDownSeconds float64 `json:"sink_down_seconds,omitempty"`
	SinkRefused     int64   `json:"sink_refused,omitempty"`
	RecoverySeconds float64 `json:"recovery_seconds,omitempty"`

	SMTPMsgsPerSec  float64  `json:"smtp_msgs_per_s"`     // acked / smtp_seconds
	E2EMsgsPerSec   *float64 `json:"e2e_msgs_per_s"`      // delivered / e2e_seconds
	SMTPBytesPerSec float64  `json:"smtp_bytes_per_s"`    // message bytes acked / smtp_seconds
	SinkBytesPerSec *float64 `json:"webhook_bytes_per_s"` // JSON bytes received / e2e_seconds

	Rate           float64  `json:"rate"`                    // -rate, messages/s scheduled (0: closed loop)
	SMTPLatency    *latency `json:"smtp_latency_ms"`         // MAIL sent → 250 after DATA; with -rate, due time → 250
	SMTPServiceLat *latency `json:"smtp_service_latency_ms"` // MAIL sent → 250 after DATA (= smtp_latency_ms without -rate)
	SendLag        *latency `json:"send_lag_ms"`             // with -rate: due time → MAIL sent (null without)
	E2ELatency     *latency `json:"e2e_latency_ms"`          // 250 read → first webhook arrived

	ServerRSS *rssReport        `json:"server_rss"` // with -rss-pid
	Host      *hostReport       `json:"host"`
	Samples   map[string]string `json:"samples,omitempty"` // first reply or error text of each failure class

	OK bool `json:"ok"` // the exit status is 0
}

type latency struct {
	Count uint64  `json:"count"`
	P50   float64 `json:"p50"`
	P90   float64 `json:"p90"`
	P99   float64 `json:"p99"`
	Max   float64 `json:"max"`
}

func latencyOf(h *histogram) *latency {
	ms := func(d time.Duration) float64 { return round3(float64(d) / float64(time.Millisecond)) }
	return &latency{Count: h.Count(), P50: ms(h.Percentile(0.50)), P90: ms(h.Percentile(0.90)), P99: ms(h.Percentile(0.99)), Max: ms(h.Max())}
}

func round3(f float64) float64 { return math.Round(f*1000) / 1000 }

func perSec(n float64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return round3(n / d.Seconds())
}

func newResult(o *options, tmpl *template, st *loadStats, trk *tracker, sk *sink, smtpElapsed, total time.Duration, drained bool) *result {
	r := &result{
		Tool: "mailhook-bench", Schema: 1, RunID: o.run,
		Target: o.load.Target, Conc: o.load.Concurrency, SizeBytes: tmpl.size, PerConn: o.load.PerConn,
		Pipelining: o.load.Pipelining, PipeUsed: o.load.Pipelining && !st.noPipe.Load(),
		Sink:        sk != nil,
		SMTPSeconds: round3(smtpElapsed.Seconds()),
		Drained:     drained,
		Sent:        st.sent.Load(), Acked: st.acked.Load(),
		TempFailed: st.tempFailed.Load(), PermFailed: st.permFailed.Load(), ConnErrors: st.connErrors.Load(),
		SMTPMsgsPerSec:  perSec(float64(st.acked.Load()), smtpElapsed),
		SMTPBytesPerSec: perSec(float64(st.bytesAcked.Load()), smtpElapsed),
		SMTPLatency:     latencyOf(&st.latency),
		SMTPServiceLat:  latencyOf(&st.service),
		Rate:            o.load.Rate,
	}
	if o.load.Rate > 0 {
		r.SendLag = latencyOf(&st.lag)
	}
	st.mu.Lock()
	if len(st.samples) > 0 {
		r.Samples = make(map[string]string, len(st.samples))
		for k, v := range st.samples {
			r.Samples[k] = v
		}
	}
	st.mu.Unlock()
	if sk != nil {
		s := sk.stats()
		r.SigChecked = sk.signer != nil
		r.Webhooks, r.SigFailures, r.DupByID, r.DupByToken = s.Requests, s.SigFails, s.DupIDs, s.DupTokens
		r.Foreign, r.BadRequests = s.Foreign, s.BadRequests
		r.Delivered = trk.delivered.Load()
		r.Missing = trk.acked.Load() - r.Delivered
		r.UnackedDelivered = trk.unackedDelivered()
		e2e := time.Duration(trk.lastHit.Load())
		r.E2ESeconds = round3(e2e.Seconds())
		mps, bps := perSec(float64(r.Delivered), e2e), perSec(float64(s.Bytes), e2e)
		r.E2EMsgsPerSec, r.SinkBytesPerSec = &mps, &bps
		r.E2ELatency = latencyOf(&trk.e2e)
		if sk.downFor > 0 {
			r.SinkDownSeconds, r.SinkRefused = round3(sk.downFor.Seconds()), s.Refused
			r.RecoverySeconds = round3(max(e2e-sk.downFor, 0).Seconds())
		}
	}
	r.OK = r.Acked > 0 && r.Missing == 0 && r.SigFailures == 0
	return r
}

// writeHuman prints the summary for people.
func (r *result) writeHuman(w io.Writer) {
	p := func(format string, a ...any) { fmt.Fprintf(w, format+"\n", a...) }
	mode := "plain"
	if r.PipeUsed {
		mode = "pipelined"
	} else if r.Pipelining {
		mode = "plain (PIPELINING not advertised)"
	}
	p("")
	p("mailhook-bench run %s: %s, %d sessions, %s messages, %d per connection, %s", r.RunID, r.Target, r.Conc, humanBytes(float64(r.SizeBytes)), r.PerConn, mode)
	p("  SMTP       %d sent, %d acknowledged, %d temp-failed (4xx), %d perm-failed (5xx), %d connection errors", r.Sent, r.Acked, r.TempFailed, r.PermFailed, r.ConnErrors)
	p("             %.1f msg/s, %s/s over %.2fs", r.SMTPMsgsPerSec, humanBytes(r.SMTPBytesPerSec), r.SMTPSeconds)
	if r.Rate > 0 {
		p("             open loop at %g msg/s scheduled (%.1f msg/s started)", r.Rate, perSec(float64(r.Sent), time.Duration(r.SMTPSeconds*float64(time.Second))))
		p("             latency due→250:  p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, max %.2f ms", r.SMTPLatency.P50, r.SMTPLatency.P90, r.SMTPLatency.P99, r.SMTPLatency.Max)
		p("             of which due→MAIL (waiting for a free session): p50 %.2f ms, p99 %.2f ms, max %.2f ms", r.SendLag.P50, r.SendLag.P99, r.SendLag.Max)
		p("             latency MAIL→250: p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, max %.2f ms", r.SMTPServiceLat.P50, r.SMTPServiceLat.P90, r.SMTPServiceLat.P99, r.SMTPServiceLat.Max)
	} else {
		p("             latency MAIL→250: p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, max %.2f ms", r.SMTPLatency.P50, r.SMTPLatency.P90, r.SMTPLatency.P99, r.SMTPLatency.Max)
	}
	if r.Sink {
		p("  webhooks   %d received, %d messages delivered, %d missing, %d duplicates by webhook-id, %d by message, %d signature failures",
			r.Webhooks, r.Delivered, r.Missing, r.DupByID, r.DupByToken, r.SigFailures)
		if r.Foreign > 0 || r.UnackedDelivered > 0 || r.BadRequests > 0 {
			p("             %d from elsewhere (no token of this run), %d for messages never acknowledged, %d bad requests", r.Foreign, r.UnackedDelivered, r.BadRequests)
		}
		p("             end to end %.1f msg/s over %.2fs, webhook bodies %s/s", *r.E2EMsgsPerSec, r.E2ESeconds, humanBytes(*r.SinkBytesPerSec))
		p("             latency 250→webhook: p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, max %.2f ms", r.E2ELatency.P50, r.E2ELatency.P90, r.E2ELatency.P99, r.E2ELatency.Max)
		if r.SinkDownSeconds > 0 {
			p("             the sink answered 503 for the first %.1fs (%d requests); the last webhook came %.2fs after it was back",
				r.SinkDownSeconds, r.SinkRefused, r.RecoverySeconds)
		}
		if !r.SigChecked {
			p("             (signatures not checked: no -secret)")
		}
		if !r.Drained {
			p("             drain timed out: %d acknowledged messages had no webhook yet", r.Missing)
		}
	}
	if r.ServerRSS != nil {
		m := r.ServerRSS
		p("  server     pid %d: peak RSS %s sampled, VmHWM %s, RSS at end %s %s", m.PID, humanBytes(float64(m.PeakSampledKB)*1024), humanBytes(float64(m.VmHWMKB)*1024), humanBytes(float64(m.VmRSSKB)*1024), m.Error)
	}
	if h := r.Host; h != nil {
		p("  host       %d CPUs, load average %.2f → %.2f; the generator used %.2f CPU-s (%.1f%% of one core)", h.NumCPU, h.LoadAvgStart, h.LoadAvgEnd, h.GeneratorCPU, h.GeneratorShare)
	}
	if len(r.Samples) > 0 {
		keys := make([]string, 0, len(r.Samples))
		for k := range r.Samples {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			p("  first %-16s %s", k+":", r.Samples[k])
		}
	}
	if r.OK {
		p("  OK")
		return
	}
	var why []string
	if r.Acked == 0 {
		why = append(why, "nothing was acknowledged")
	}
	if r.Missing > 0 {
		why = append(why, fmt.Sprintf("%d acknowledged messages never reached the sink", r.Missing))
	}
	if r.SigFailures > 0 {
		why = append(why, fmt.Sprintf("%d webhooks had bad signatures", r.SigFailures))
	}
	p("  FAILED: %s", strings.Join(why, "; "))
}

func humanBytes(b float64) string {
	switch {
	case b >= 1<<30:
		return fmt.Sprintf("%.2f GiB", b/(1<<30))
	case b >= 1<<20:
		return fmt.Sprintf("%.2f MiB", b/(1<<20))
	case b >= 1<<10:
		return fmt.Sprintf("%.1f KiB", b/(1<<10))
	}
	return fmt.Sprintf("%.0f B", b)
}
