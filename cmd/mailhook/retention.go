package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/mailhook/mailhook/queue"
)

// retention is MAILHOOK_RETENTION and MAILHOOK_FAILED_RETENTION at work.
type retention struct {
	queue     *queue.Queue
	delivered time.Duration // 0 = keep
	failed    time.Duration // 0 = keep
	onExpired func(state string, records, raws int)
	onOrphans func(raws int)
	log       *slog.Logger

	orphansSwept time.Time // the last pass that looked for orphans
}

// orphanInterval is how often, at most, a pass also looks for raw
// messages that no record refers to (queue.ExpireOrphans): they come only
// from crashes, and the search lists raw/ and every state.
const orphanInterval = time.Hour

// interval is how often run makes a pass: a tenth of the shorter period,
// from 1 s to 10 min, so that nothing outlives its period by more than
// about a tenth.
func (r *retention) interval() time.Duration {
	p := r.delivered
	if p == 0 || (r.failed > 0 && r.failed < p) {
		p = r.failed
	}
	return min(max(p/10, time.Second), 10*time.Minute)
}

// run makes a pass at once, then one every interval, until ctx is done.
// Every replica runs it: deleting what another one deleted is no error.
func (r *retention) run(ctx context.Context) {
	t := time.NewTicker(r.interval())
	defer t.Stop()
	for {
		r.pass(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// pass expires what is due in each state that has a retention period.
func (r *retention) pass(ctx context.Context) {
	for _, p := range []struct {
		state  queue.State
		period time.Duration
	}{{queue.StateDelivered, r.delivered}, {queue.StateFailed, r.failed}} {
		if p.period == 0 {
			continue
		}
		start := time.Now()
		n, err := r.queue.Expire(ctx, p.state, start.Add(-p.period))
		if r.onExpired != nil {
			r.onExpired(string(p.state), n.Records, n.Raws)
		}
		if n.Records > 0 || n.Raws > 0 {
			r.log.LogAttrs(ctx, slog.LevelInfo, "retention: deleted",
				slog.String("state", string(p.state)), slog.Int("records", n.Records), slog.Int("raws", n.Raws),
				slog.Duration("took", time.Since(start)))
		}
		if err != nil && ctx.Err() == nil {
			r.log.LogAttrs(ctx, slog.LevelWarn, "retention: pass cut short; the rest waits for the next one",
				slog.String("state", string(p.state)), slog.String("err", err.Error()))
		}
	}
	r.expireOrphans(ctx)
}

// expireOrphans deletes, once an orphanInterval, the raw messages older
// than the delivered period that no record refers to. Only with
// MAILHOOK_RETENTION: then few records outlive the period and the search
// reads little; a store that keeps delivered mail forever keeps the few
// orphans too.
func (r *retention) expireOrphans(ctx context.Context) {
	start := time.Now()
	if r.delivered == 0 || start.Sub(r.orphansSwept) < orphanInterval {
		return
	}
	r.orphansSwept = start
	n, err := r.queue.ExpireOrphans(ctx, start.Add(-r.delivered))
	if r.onOrphans != nil {
		r.onOrphans(n)
	}
	if n > 0 {
		r.log.LogAttrs(ctx, slog.LevelInfo, "retention: deleted raw messages no record refers to (left by a crash)",
			slog.Int("raws", n), slog.Duration("took", time.Since(start)))
	}
	if err != nil && ctx.Err() == nil {
		r.log.LogAttrs(ctx, slog.LevelWarn, "retention: search for orphaned raw messages cut short; the rest waits for the next one",
			slog.String("err", err.Error()))
	}
}
