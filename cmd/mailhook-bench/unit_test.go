package main

import (
	"bytes"
	"io"
	"math/rand/v2"
	"sort"
	"strings"
	"testing"
	"time"
)

func TestTokenRoundTrip(t *testing.T) {
	for _, seq := range []uint64{0, 1, 42, 4711, 1234567890, maxSeq} {
		tok := make([]byte, tokenLen)
		putToken(tok, "deadbeef", seq)
		if !strings.HasPrefix(string(tok), "mhbdeadbeef-") || len(tok) != 22 {
			t.Fatalf("token %q", tok)
		}
		for _, text := range []string{
			string(tok),
			"mailhook-bench " + string(tok),
			"<" + string(tok) + "@mailhook-bench.invalid>",
			"mhbdeadbeef-12x mhbcafef00d-0000000001 " + string(tok) + " trailing",
		} {
			got, ok := findToken([]byte(text), "deadbeef")
			if !ok || got != seq {
				t.Errorf("findToken(%q) = %d, %v; want %d", text, got, ok, seq)
			}
		}
	}
}

func TestFindTokenRejects(t *testing.T) {
	for _, text := range []string{
		"", "mhbdeadbeef-", "mhbdeadbeef-123456789", "mhbdeadbeef-12345x7890",
		"mhbcafef00d-0000000001", // another run
		"MHBDEADBEEF-0000000001", // tokens are lowercase
	} {
		if seq, ok := findToken([]byte(text), "deadbeef"); ok {
			t.Errorf("findToken(%q) = %d", text, seq)
		}
	}
}

func TestEventToken(t *testing.T) {
	const run = "0a1b2c3d"
	tok := make([]byte, tokenLen)
	putToken(tok, run, 77)
	for name, body := range map[string]string{
		"compact":                  `{"type":"email.received","version":1,"data":{"id":"01J","message_id":"` + string(tok) + `@mailhook-bench.invalid","subject":"mailhook-bench ` + string(tok) + `","headers":[{"name":"Subject","value":"x"}]}}`,
		"subject only":             `{"data":{"message_id":"","subject":"re: ` + string(tok) + `"}}`,
		"message_id only, escaped": `{"data":{"message_id":"\u003c` + string(tok) + `@x\u003e","subject":"no \"token\" here"}}`,
		// Spaced JSON defeats the quick scan; the streaming decoder finds it.
		"indented": "{\n  \"type\": \"email.received\",\n  \"timestamp\": \"2026-01-01T00:00:00Z\",\n  \"data\": {\n    \"envelope\": {\"rcpt_to\": [\"a@b\"]},\n    \"subject\": \"" + string(tok) + "\"\n  }\n}",
	} {
		seq, ok := eventToken([]byte(body), run)
		if !ok || seq != 77 {
			t.Errorf("%s: eventToken = %d, %v", name, seq, ok)
		}
	}
	for name, body := range map[string]string{
		"no token":   `{"data":{"subject":"hello","message_id":"x@y"}}`,
		"other run":  `{"data":{"subject":"mhbffffffff-0000000077"}}`,
		"not json":   `mhb`,
		"text only":  `{"data":{"subject":"x","text":"` + string(tok) + `"}}`,
		"wrong path": "{\"other\": {\"subject\": \"" + string(tok) + "\"}}",
	} {
		if seq, ok := eventToken([]byte(body), run); ok {
			t.Errorf("%s: eventToken = %d", name, seq)
		}
	}
}

func TestHistogramBuckets(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	prev := -1
	for v := uint64(0); v < 1<<16; v++ {
		i := bucketOf(v)
		if i < prev || i > prev+1 {
			t.Fatalf("bucketOf(%d) = %d after %d: not contiguous", v, i, prev)
		}
		prev = i
	}
	for range 100000 {
		v := r.Uint64() >> r.IntN(64)
		i := bucketOf(v)
		if i < 0 || i >= histBuckets {
			t.Fatalf("bucketOf(%d) = %d out of range", v, i)
		}
		lo, hi := bucketRange(i)
		if v < lo || v > hi {
			t.Fatalf("%d in bucket %d = [%d, %d]", v, i, lo, hi)
		}
		if lo >= 128 && float64(hi-lo) > float64(lo)/64 {
			t.Fatalf("bucket %d = [%d, %d] wider than 1/64", i, lo, hi)
		}
	}
}

func TestPercentile(t *testing.T) {
	var h histogram
	if h.Percentile(0.5) != 0 || h.Max() != 0 {
		t.Error("empty histogram is not zero")
	}
	// Exact range: 1..100 µs.
	for v := 1; v <= 100; v++ {
		h.Record(time.Duration(v) * time.Microsecond)
	}
	for q, want := range map[float64]time.Duration{0.5: 50, 0.99: 99, 1: 100, 0.01: 1, 0.001: 1} {
		if got := h.Percentile(q); got != want*time.Microsecond {
			t.Errorf("1..100: p%v = %v, want %v µs", q*100, got, want)
		}
	}

	// Against a sorted reference on a skewed distribution, in the
	// histogram's error bound.
	var g histogram
	r := rand.New(rand.NewPCG(5, 6))
	vals := make([]time.Duration, 200000)
	for i := range vals {
		vals[i] = time.Duration(r.ExpFloat64() * float64(3*time.Millisecond))
		if r.IntN(100) == 0 {
			vals[i] += 200 * time.Millisecond // a slow tail
		}
		g.Record(vals[i])
	}
	sort.Slice(vals, func(i, j int) bool { return vals[i] < vals[j] })
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999} {
		want := vals[int(q*float64(len(vals)))-1].Truncate(time.Microsecond)
		got := g.Percentile(q)
		if diff := (got - want).Abs(); float64(diff) > float64(want)/64+float64(time.Microsecond) {
			t.Errorf("p%v = %v, want %v ± 1/64", q*100, got, want)
		}
	}
	if g.Max() != vals[len(vals)-1].Truncate(time.Microsecond) {
		t.Errorf("max = %v, want %v", g.Max(), vals[len(vals)-1])
	}
	if g.Count() != uint64(len(vals)) {
		t.Errorf("count = %d", g.Count())
	}
	var neg histogram
	neg.Record(-time.Second)
	if neg.Percentile(1) != 0 {
		t.Error("a negative duration is not recorded as 0")
	}
}

func TestTrackerPairsWhicheverComesFirst(t *testing.T) {
	start := time.Now()
	trk := newTracker(start)
	for range 3 {
		if _, ok := trk.Next(3); !ok {
			t.Fatal("Next refused below the limit")
		}
	}
	if _, ok := trk.Next(3); ok || trk.issued.Load() != 3 {
		t.Fatalf("Next past the limit; issued = %d", trk.issued.Load())
	}
	trk.Ack(0, start.Add(10*time.Millisecond))
	if known, dup := trk.Webhook(0, start.Add(30*time.Millisecond)); !known || dup {
		t.Error("first webhook of 0")
	}
	// The webhook overtakes the 250.
	trk.Webhook(1, start.Add(40*time.Millisecond))
	trk.Ack(1, start.Add(45*time.Millisecond))
	if _, dup := trk.Webhook(1, start.Add(50*time.Millisecond)); !dup {
		t.Error("second webhook of 1 is not a duplicate")
	}
	// 2 is delivered but never acknowledged; 5 was never issued.
	trk.Webhook(2, start.Add(60*time.Millisecond))
	if known, _ := trk.Webhook(5, start); known {
		t.Error("an unissued token is known")
	}
	if trk.acked.Load() != 2 || trk.delivered.Load() != 2 || trk.unackedDelivered() != 1 {
		t.Errorf("acked %d delivered %d unacked-delivered %d", trk.acked.Load(), trk.delivered.Load(), trk.unackedDelivered())
	}
	if trk.e2e.Max() != 20*time.Millisecond || trk.e2e.Percentile(0.01) != 0 {
		t.Errorf("e2e max %v min %v", trk.e2e.Max(), trk.e2e.Percentile(0.01))
	}
}

func TestParseStatus(t *testing.T) {
	status := "Name:\tmailhook\nVmPeak:\t 1000 kB\nVmHWM:\t   52344 kB\nVmRSS:\t   40120 kB\nThreads:\t9\n"
	rss, hwm, err := parseStatus([]byte(status))
	if err != nil || rss != 40120 || hwm != 52344 {
		t.Errorf("parseStatus = %d, %d, %v", rss, hwm, err)
	}
	if _, _, err := parseStatus([]byte("Name:\tkthreadd\n")); err == nil {
		t.Error("status without Vm lines accepted")
	}
}

func TestBadFlagsExitTwo(t *testing.T) {
	for _, args := range [][]string{
		{"-size", "huge"}, {"-c", "0"}, {"-n", "0", "-d", "0"}, {"-per-conn", "0"},
		{"-smtp", "nohostport"}, {"-rcpt", "a b@c"}, {"-no-sink", "-secret", "whsec_x"}, {"extra"},
		{"-undefined-flag"}, {"-rate", "-1"}, {"-rate", "NaN"}, {"-secret", "whsec_!!notbase64", "-sink", "127.0.0.1:0"},
		{"-sink-down", "-1s"}, {"-no-sink", "-sink-down", "5s"},
	} {
		var stderr bytes.Buffer
		if code := run(t.Context(), args, io.Discard, &stderr); code != exitUsage {
			t.Errorf("%q: exit %d, want 2; stderr:\n%s", args, code, stderr.String())
		}
	}
}
