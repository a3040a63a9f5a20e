package dispatch

import (
	"container/heap"
	"context"
	"log/slog"
	"time"
)

// An endpoint that fails Config.PauseAfter times in a row, with nothing
// taken in between (no connection, a timeout, 408, 429, 5xx), is paused:
// its due deliveries wait, parked, without attempts, and one of them at a
// time is tried after a wait that starts at RetryInitial and doubles with
// each failure up to PauseMax (or longer when the endpoint said
// Retry-After). The first answer that is not such a failure resumes the
// endpoint, and the deliveries that waited go out at once.
//
// So a receiver that is down costs one request per wait, not one per
// pending delivery and retry, and the backlog is sent as soon as it is
// back, instead of when each delivery's own backoff, grown during the
// outage, comes round (up to RetryMaxInterval later). Waiting in the
// pause writes nothing: a delivery's retry window goes on counting, and
// one whose window has closed is let through for its last attempt. The
// pause is this process's own view; replicas pause on their own.

// health is what the last requests to an endpoint said.
type health struct {
	fails  int       // failures in a row
	paused bool      // fails reached PauseAfter
	since  time.Time // when the pause began
	probes int       // failed requests that started during the pause
	until  time.Time // paused: no request starts before
}

// openLocked reports whether it may be attempted now as far as its
// endpoint is concerned: a free slot, and for a paused endpoint no other
// request in flight and its wait over, unless its retry window has closed.
// d.mu must be held.
func (d *Dispatcher) openLocked(it *item, now time.Time) bool {
	limit := d.cfg.PerEndpointConcurrency
	if h := d.health[it.endpoint]; h != nil && h.paused {
		if it.windowClosed(d.cfg.RetryMaxElapsed, now) {
			return true // its last attempt, whatever the endpoint's state
		}
		if now.Before(h.until) {
			return false
		}
		limit = 1
	}
	return d.busy[it.endpoint] < limit
}

// windowClosed reports whether the retry window of it, window long, has
// closed by now (its last attempt is due, paused endpoint or not).
func (it *item) windowClosed(window time.Duration, now time.Time) bool {
	return it.windowStart.Add(window).Before(now)
}

// windowSweep is how often the deliveries parked at paused endpoints are
// looked through for closed retry windows.
const windowSweep = time.Second

// probeLocked schedules again one parked delivery of each paused endpoint
// whose wait is over and that has no request in flight, and, every
// windowSweep, those whose retry window has closed. It returns how long
// until it has more to do (-1: nothing is parked at a paused endpoint).
// d.mu must be held.
func (d *Dispatcher) probeLocked(now time.Time) time.Duration {
	next := time.Duration(-1)
	soonest := func(wait time.Duration) {
		if next < 0 || wait < next {
			next = wait
		}
	}
	sweep := !now.Before(d.nextSweep)
	if sweep {
		d.nextSweep = now.Add(windowSweep)
	}
	for ep, h := range d.health {
		if !h.paused || len(d.parked[ep]) == 0 {
			continue
		}
		if sweep {
			d.unparkClosedLocked(ep, now)
		}
		soonest(d.nextSweep.Sub(now))
		if d.busy[ep] > 0 || len(d.parked[ep]) == 0 {
			continue
		}
		if wait := h.until.Sub(now); wait > 0 {
			soonest(wait)
			continue
		}
		d.unparkLocked(ep, 1)
	}
	return next
}

// unparkClosedLocked schedules again the deliveries parked for endpoint
// whose retry window has closed: they get their last attempt (see
// openLocked). d.mu must be held.
func (d *Dispatcher) unparkClosedLocked(endpoint string, now time.Time) {
	p := d.parked[endpoint]
	kept := p[:0]
	for _, it := range p {
		if it.windowClosed(d.cfg.RetryMaxElapsed, now) {
			heap.Push(&d.sched, it)
		} else {
			kept = append(kept, it)
		}
	}
	clear(p[len(kept):])
	if len(kept) == 0 {
		delete(d.parked, endpoint)
	} else {
		d.parked[endpoint] = kept
	}
}

// unparkLocked puts back in the schedule up to n deliveries parked for
// endpoint (n < 0: all of them). d.mu must be held.
func (d *Dispatcher) unparkLocked(endpoint string, n int) {
	p := d.parked[endpoint]
	if n < 0 || n > len(p) {
		n = len(p)
	}
	for i := range n {
		heap.Push(&d.sched, p[i])
		p[i] = nil
	}
	if n == len(p) {
		delete(d.parked, endpoint)
	} else {
		d.parked[endpoint] = p[n:]
	}
}

// answered notes what a request said of its endpoint (res, from an
// attempt that started at start and ended at end) and frees the slot it
// holds there: as soon as the request is over, so that the next request
// to that endpoint need not wait for this one's outcome to be stored (the
// per-endpoint limit bounds requests, not store writes).
func (d *Dispatcher) answered(ctx context.Context, it *item, endpoint string, start, end time.Time, res result) {
	failed := res.sent && classify(res.status) == verdictRetry
	reached := res.sent && !failed
	var paused, resumed bool
	var waiting int
	d.mu.Lock()
	h := d.health[endpoint]
	switch {
	case reached && h != nil:
		delete(d.health, endpoint)
		if h.paused {
			resumed, waiting = true, len(d.parked[endpoint])
			d.unparkLocked(endpoint, -1)
		}
	case failed && d.cfg.PauseAfter > 0:
		if h == nil {
			h = &health{}
			d.health[endpoint] = h
		}
		h.fails++
		switch {
		case !h.paused && h.fails >= d.cfg.PauseAfter:
			h.paused, paused, h.since = true, true, end
			h.until = end.Add(d.pauseWait(0))
			for _, p := range d.parked[endpoint] {
				p.rec, p.again = nil, nil // see take
			}
		case h.paused && !start.Before(h.since):
			h.probes++
			h.until = end.Add(d.pauseWait(h.probes))
		}
		if h.paused && res.retryAfter > 0 {
			h.until = maxTime(h.until, end.Add(res.retryAfter))
		}
	}
	d.freeSlotLocked(it, endpoint)
	d.poke()
	d.mu.Unlock()
	switch {
	case paused:
		d.log.LogAttrs(ctx, slog.LevelWarn, "endpoint paused: its deliveries wait and one is tried at a time until it answers",
			slog.String("endpoint_host", res.host), slog.Int("failures_in_a_row", d.cfg.PauseAfter),
			slog.Duration("next_try_in", d.pauseWait(0)))
	case resumed:
		d.log.LogAttrs(ctx, slog.LevelInfo, "endpoint answering again: deliveries resumed",
			slog.String("endpoint_host", res.host), slog.Int("waiting", waiting))
	}
}

// pauseWait is the wait before the next request to a paused endpoint
// after probes failed requests during the pause.
func (d *Dispatcher) pauseWait(probes int) time.Duration {
	w := d.cfg.RetryInitial
	for range probes {
		if w >= d.cfg.PauseMax {
			break
		}
		w *= 2
	}
	return min(w, d.cfg.PauseMax)
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
