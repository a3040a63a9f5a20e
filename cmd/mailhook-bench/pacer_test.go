package main

import (
	"io"
	"testing"
	"time"
)

func TestPacerSchedule(t *testing.T) {
	start := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		rate float64
		seq  uint64
		want time.Duration
	}{
		{400, 0, 0},
		{400, 1, 2500 * time.Microsecond},
		{400, 400, time.Second},
		{400, 12_000, 30 * time.Second},
		{3, 1, 333_333_333},  // truncated, not accumulated
		{3, 3_000_000, 1e15}, // 1,000,000 s: no drift after millions of intervals
		{0.5, 3, 6 * time.Second},
	} {
		p := &pacer{start: start, rate: c.rate}
		if got := p.due(c.seq).Sub(start); got != c.want {
			t.Errorf("rate %g seq %d: due +%v, want +%v", c.rate, c.seq, got, c.want)
		}
	}
}

// Against the fake server, -rate spreads the messages over n/rate seconds
// instead of sending them as fast as the sessions go.
func TestRateSpreadsTheMessages(t *testing.T) {
	o := testOptions(fakeSMTP(t))
	o.load.Count, o.load.Concurrency, o.load.Rate = 50, 4, 100 // due times 0 … 490 ms
	start := time.Now()
	res, err := runBench(t.Context(), o, nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	el := time.Since(start)
	if res.Sent != 50 || el < 480*time.Millisecond || el > 5*time.Second {
		t.Errorf("sent %d in %v, want 50 in about 0.5 s", res.Sent, el)
	}
	if res.Rate != 100 || res.SendLag == nil || res.SendLag.Count != uint64(res.Sent) {
		t.Errorf("rate %v lag %+v sent %d", res.Rate, res.SendLag, res.Sent)
	}
}

// slowSMTP answers every end of data after delay, one message at a time per
// session, so it serves at most sessions/delay messages per second.
func slowSMTP(t *testing.T, delay time.Duration) string {
	t.Helper()
	return scriptedSMTP(t, func(verb string) string {
		if verb == "EHLO" {
			return "250-slow\r\n250 PIPELINING\r\n"
		}
		return "250 Ok\r\n"
	}, func() string {
		time.Sleep(delay)
		return "250 2.0.0 Ok: queued\r\n"
	})
}

// Coordinated omission: offered 100 msg/s to a server that serves 20/s, a
// closed-loop tool would report ~50 ms per message; open loop, the latency
// counts from each message's due time and so includes the queue that
// builds up (message 19 is due at 190 ms and answered at ~1,000 ms).
func TestRateCountsQueueingFromDueTime(t *testing.T) {
	o := testOptions(slowSMTP(t, 50*time.Millisecond))
	o.load.Count, o.load.Concurrency, o.load.Rate, o.load.Pipelining = 20, 1, 100, true
	res, err := runBench(t.Context(), o, nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if res.Acked != 20 {
		t.Fatalf("acked %d, want 20", res.Acked)
	}
	if s := res.SMTPServiceLat; s.P50 < 45 || s.P50 > 200 {
		t.Errorf("service p50 %.1f ms, want about 50", s.P50)
	}
	if l := res.SMTPLatency; l.Max < 600 {
		t.Errorf("due→250 max %.1f ms, want the queue (~800 ms) counted", l.Max)
	}
	if res.SendLag.Max < 500 {
		t.Errorf("send lag max %.1f ms, want ~750", res.SendLag.Max)
	}
}
