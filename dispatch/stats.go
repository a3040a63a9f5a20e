package dispatch

import "time"

// Status classes of attempts, for Stats.
const (
	class2xx = iota
	class3xx
	class4xx
	class5xx
	classError // no response: transport error, timeout, render failure
	numClasses
)

func classOf(status int) int {
	switch {
	case status >= 200 && status < 300:
		return class2xx
	case status >= 300 && status < 400:
		return class3xx
	case status >= 400 && status < 500:
		return class4xx
	case status >= 500 && status < 600:
		return class5xx
	}
	return classError
}

// Stats is a snapshot of the dispatcher's counters, for metrics. Counters
// count since New; gauges describe this process's view of the queue.
type Stats struct {
	// Pending is the number of deliveries this dispatcher has scheduled,
	// waiting or in flight (gauge).
	Pending int
	// InFlight is the number of attempts being made (gauge).
	InFlight int
	// Delivered and Failed count deliveries finished by this process.
	Delivered uint64
	Failed    uint64
	// Attempts counts attempts by the class of their answer.
	Attempts AttemptCounts
	// LeaseTakeovers counts leases this process took over from replicas
	// that stopped renewing them.
	LeaseTakeovers uint64
	// ClaimedAttempts counts first attempts made under the claim written
	// with the record at Accept (no lease write before them).
	ClaimedAttempts uint64
	// OldestPendingAge is how long ago the oldest pending delivery's
	// message was received; 0 when nothing is pending (gauge).
	OldestPendingAge time.Duration
	// PausedEndpoints is the number of endpoints paused after failures
	// in a row (gauge; see pause.go).
	PausedEndpoints int
}

// AttemptCounts counts attempts by answer class; Error is no answer.
type AttemptCounts struct {
	Status2xx, Status3xx, Status4xx, Status5xx, Error uint64
}

// Stats returns a snapshot of the counters.
func (d *Dispatcher) Stats() Stats {
	now := d.cfg.Now()
	s := Stats{
		Delivered:       d.delivered.Load(),
		Failed:          d.failed.Load(),
		LeaseTakeovers:  d.takeovers.Load(),
		ClaimedAttempts: d.claimed.Load(),
		Attempts: AttemptCounts{
			Status2xx: d.attempts[class2xx].Load(),
			Status3xx: d.attempts[class3xx].Load(),
			Status4xx: d.attempts[class4xx].Load(),
			Status5xx: d.attempts[class5xx].Load(),
			Error:     d.attempts[classError].Load(),
		},
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	s.Pending = len(d.known)
	s.InFlight = d.inflight
	// A paused endpoint counts while deliveries to it remain: once they
	// have all ended (dead letters, say) the pause waits unseen for the
	// next one, and the gauge must not stay up for it.
	paused := map[string]bool{}
	for ep, h := range d.health {
		if h.paused {
			paused[ep] = false
		}
	}
	var oldest time.Time
	for _, it := range d.known {
		if oldest.IsZero() || it.receivedAt.Before(oldest) {
			oldest = it.receivedAt
		}
		if seen, ok := paused[it.endpoint]; ok && !seen {
			paused[it.endpoint] = true
			s.PausedEndpoints++
		}
	}
	if !oldest.IsZero() {
		s.OldestPendingAge = max(now.Sub(oldest), 0)
	}
	return s
}
