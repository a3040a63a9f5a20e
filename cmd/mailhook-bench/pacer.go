package main

import (
	"context"
	"time"
)

// pacer is the open-loop schedule of -rate: message seq (0, 1, 2, … in the
// order sessions claim them) is due at start + seq/rate, fixed intervals,
// not a Poisson process. A session that claims a message waits for its due
// time; one that claims it late (every session busy, the server slow) sends
// at once, and its latency still counts from the due time, so a stalled
// server shows as queueing delay instead of fewer, faster samples
// (coordinated omission).
type pacer struct {
	start time.Time
	rate  float64 // messages per second, > 0
}

// due returns when message seq is scheduled. It is computed from seq, not
// by adding intervals, so rounding does not accumulate.
func (p *pacer) due(seq uint64) time.Time {
	return p.start.Add(time.Duration(float64(seq) * float64(time.Second) / p.rate))
}

// waitUntil sleeps until t; it returns false at once if ctx ends first.
func waitUntil(ctx context.Context, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err() == nil
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-tm.C:
		return true
	}
}
