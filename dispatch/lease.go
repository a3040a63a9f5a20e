package dispatch

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/mailhook/mailhook/queue"
	"github.com/mailhook/mailhook/store"
)

// Leases between replicas
//
// A dispatcher makes an attempt only while it holds the delivery's lease
// (queue.LeaseKey, created with IfNoneMatch). The lease says until when it
// is held (expires_at, by the owner's clock); while the attempt runs it is
// renewed every LeaseTTL/3 with IfMatch on the ETag last written, and it is
// deleted once the outcome is recorded. Attempts shorter than LeaseTTL/3
// cost one create and one delete, nothing else.
//
// The owner's side: the lease is kept from the moment it is claimed,
// through BeginAttempt, the request and the recording of its outcome. The
// attempt's context is cancelled as soon as a renewal finds the lease
// changed or gone (someone took it over), and also when no renewal has
// succeeded for so long that the lease may run out: LeaseTTL - LeaseTTL/10
// after the last successful write was sent, by the owner's monotonic
// clock. A lost lease is never deleted and its attempt is not recorded,
// unless the receiver had already answered 2xx.
//
// The taker's side: a lease held by someone else may be taken over, with
// IfMatch on the ETag that was read so that of two takers at most one
// wins, only when both
//   - the taker's clock is past expires_at by a margin (LeaseTTL/3) for
//     clock skew between replicas, and
//   - the taker itself has seen that same version of the lease (same ETag)
//     stand unchanged for a whole TTL (the larger of the lease's and its
//     own), timed by its own clock, which no skew affects: a live owner
//     rewrites it every TTL/3.
//
// A replica that finds a delivery leased looks again every LeaseTTL/3 (a
// read, no write), so that it sees a dead owner's last lease early and
// takes it over about a TTL after the owner died. Leases left on
// deliveries that are no longer pending (an owner that died between
// recording the outcome and releasing) are taken over the same way and
// deleted by the rescan.
//
// Ambiguity: a claim or a renewal whose answer is an error may or may not
// have been written (on S3 a lost answer can even come back as
// ErrPrecondition after the write happened). It is never taken as
// ownership: the dispatcher looks again once such a lease could have
// expired, and takes it over then like anyone else's.

// errLeaseLost is the cause of an attempt cancelled because its lease was
// taken over or could not be renewed in time.
var errLeaseLost = errors.New("lease lost")

// leaseSkew is the margin allowed for clock skew between replicas.
func (d *Dispatcher) leaseSkew() time.Duration { return d.cfg.LeaseTTL / 3 }

// renewEvery is the renewal period of a lease held during an attempt.
func (d *Dispatcher) renewEvery() time.Duration { return d.cfg.LeaseTTL / 3 }

// claim tries to get the lease of it. Without it, it returns when to look
// again: when the lease could be taken over, or retry after a store error
// (which may hide a claim that was written: it is then found held, and
// taken over after its TTL like anyone else's). Only the worker holding it
// calls claim. With the lease it returns when the winning write was sent,
// by the monotonic clock (the owner counts its lease from then), and the
// lease it took over, if any.
func (d *Dispatcher) claim(ctx context.Context, it *item, retry time.Time) (l, prev *queue.Lease, sent, later time.Time) {
	ttl := d.cfg.LeaseTTL
	var cur *queue.Lease
	// Seen held last time: read it before trying a write bound to fail.
	readFirst := it.leaseETag != ""
	for try := 0; try < 3 && cur == nil; try++ {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), persistTimeout)
		if !readFirst {
			now, sent := d.cfg.Now(), time.Now()
			l, err := d.q.ClaimLease(cctx, it.id, d.owner, now, ttl, nil)
			if err == nil {
				cancel()
				it.leaseETag = ""
				return l, nil, sent, time.Time{}
			}
			if !errors.Is(err, store.ErrPrecondition) {
				cancel()
				d.log.LogAttrs(ctx, slog.LevelWarn, "claiming lease failed", slog.String("id", it.id), slog.String("error", err.Error()))
				return nil, nil, time.Time{}, retry
			}
		}
		readFirst = false
		var err error
		cur, err = d.q.ReadLease(cctx, it.id)
		cancel()
		if errors.Is(err, store.ErrNotFound) {
			cur = nil
			continue // released meanwhile: try to create it
		}
		if err != nil {
			d.log.LogAttrs(ctx, slog.LevelWarn, "reading lease failed", slog.String("id", it.id), slog.String("error", err.Error()))
			return nil, nil, time.Time{}, retry
		}
	}
	now := d.cfg.Now()
	if cur == nil {
		return nil, nil, time.Time{}, now.Add(d.renewEvery())
	}
	if cur.ETag() != it.leaseETag {
		it.leaseETag, it.leaseSeen = cur.ETag(), now
	}
	hold := max(cur.TTL(), ttl)
	stealAt := cur.ExpiresAt.Add(d.leaseSkew())
	if seen := it.leaseSeen.Add(hold); seen.After(stealAt) {
		stealAt = seen
	}
	if now.Before(stealAt) {
		// Look again before then too: the owner may release the lease
		// and claim it anew, and the new version must be seen early for
		// a takeover to follow its owner's death within about a TTL.
		later := now.Add(d.renewEvery())
		if stealAt.Before(later) {
			later = stealAt
		}
		d.log.LogAttrs(ctx, slog.LevelDebug, "delivery leased by another replica",
			slog.String("id", it.id), slog.String("owner", cur.Owner), slog.String("owner_host", cur.Host), slog.Time("look_again", later))
		return nil, nil, time.Time{}, later
	}
	sent = time.Now()
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), persistTimeout)
	l, err := d.q.ClaimLease(cctx, it.id, d.owner, now, ttl, cur)
	cancel()
	if err != nil {
		it.leaseETag = ""
		if !errors.Is(err, store.ErrPrecondition) {
			d.log.LogAttrs(ctx, slog.LevelWarn, "taking over lease failed", slog.String("id", it.id), slog.String("error", err.Error()))
			return nil, nil, time.Time{}, retry
		}
		return nil, nil, time.Time{}, now.Add(ttl) // another replica was quicker
	}
	it.leaseETag = ""
	return l, cur, sent, time.Time{}
}

// keeper keeps a lease alive while an attempt runs. Its timers cost nothing
// until they fire: an attempt shorter than LeaseTTL/3 never renews.
type keeper struct {
	d      *Dispatcher
	cancel context.CancelCauseFunc

	mu      sync.Mutex
	lease   *queue.Lease
	valid   time.Time // by the monotonic clock: held at least until then
	lost    bool
	stopped bool
	renew   *time.Timer
	expire  *time.Timer
}

// keep starts renewing l, whose last write was sent at sent (by the
// monotonic clock), and calls cancel(errLeaseLost) if it is lost.
func (d *Dispatcher) keep(l *queue.Lease, sent time.Time, cancel context.CancelCauseFunc) *keeper {
	k := &keeper{d: d, cancel: cancel, lease: l, valid: sent.Add(d.leaseValidity())}
	k.mu.Lock()
	defer k.mu.Unlock()
	k.renew = time.AfterFunc(time.Until(sent.Add(d.renewEvery())), k.renewNow)
	k.expire = time.AfterFunc(time.Until(k.valid), k.expireNow)
	return k
}

// leaseValidity is how long after a confirmed write the owner trusts its
// lease: the TTL less a guard for cancellation to take effect.
func (d *Dispatcher) leaseValidity() time.Duration { return d.cfg.LeaseTTL - d.cfg.LeaseTTL/10 }

func (k *keeper) renewNow() {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.stopped || k.lost {
		return
	}
	d := k.d
	sent := time.Now()
	// Wait for the answer as long as it may still help.
	ctx, cancel := context.WithDeadline(context.Background(), k.valid)
	err := d.q.RenewLease(ctx, k.lease, d.cfg.Now(), d.cfg.LeaseTTL)
	cancel()
	switch {
	case err == nil:
		k.valid = sent.Add(d.leaseValidity())
		k.expire.Reset(time.Until(k.valid))
	case errors.Is(err, store.ErrPrecondition) || errors.Is(err, store.ErrNotFound):
		d.log.LogAttrs(context.Background(), slog.LevelWarn, "lease lost to another replica; cancelling the attempt", slog.String("id", k.lease.ID))
		k.loseLocked()
		return
	default:
		d.log.LogAttrs(context.Background(), slog.LevelWarn, "renewing lease failed", slog.String("id", k.lease.ID), slog.String("error", err.Error()))
	}
	k.renew.Reset(d.renewEvery())
}

func (k *keeper) expireNow() {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.stopped || k.lost || time.Now().Before(k.valid) {
		return // renewed meanwhile
	}
	k.d.log.LogAttrs(context.Background(), slog.LevelWarn, "lease could not be renewed in time; cancelling the attempt", slog.String("id", k.lease.ID))
	k.loseLocked()
}

func (k *keeper) loseLocked() {
	k.lost = true
	k.renew.Stop()
	k.expire.Stop()
	k.cancel(errLeaseLost)
}

// isLost reports whether the lease was lost.
func (k *keeper) isLost() bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.lost
}

// stop ends the renewals and reports whether the lease is still held, so
// that it may be released.
func (k *keeper) stop() (held bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.stopped = true
	k.renew.Stop()
	k.expire.Stop()
	return !k.lost && time.Now().Before(k.valid)
}

// logTakeover logs the lease prev taken over, as what.
func (d *Dispatcher) logTakeover(ctx context.Context, msg string, prev *queue.Lease) {
	d.log.LogAttrs(ctx, slog.LevelInfo, msg,
		slog.String("id", prev.ID), slog.String("previous_owner", prev.Owner), slog.String("previous_host", prev.Host),
		slog.Int("previous_pid", prev.PID), slog.Time("expired_at", prev.ExpiresAt))
}

// letGo stops keeping l and releases it if it is still held.
func (d *Dispatcher) letGo(ctx context.Context, k *keeper, l *queue.Lease) {
	if k.stop() {
		d.releaseLease(ctx, l)
	}
}

// releaseLease deletes a lease this dispatcher still holds. A failure
// only delays the next attempt until the lease expires.
func (d *Dispatcher) releaseLease(ctx context.Context, l *queue.Lease) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), persistTimeout)
	defer cancel()
	if err := d.q.ReleaseLease(rctx, l); err != nil {
		d.log.LogAttrs(ctx, slog.LevelWarn, "releasing lease failed; it will expire", slog.String("id", l.ID), slog.String("error", err.Error()))
	}
}
