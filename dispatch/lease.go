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
// One exception to both: an owner whose process is certainly dead (same
// machine, same pid namespace, and its pid gone or reused; see
// ownerGoneAt) is taken over deadOwnerGrace after that was found, if that
// comes sooner, still with IfMatch. This is what a process restarted
// after kill -9 meets: its predecessor's claims and leases, which it
// would otherwise wait a TTL for.
//
// A replica that finds a delivery leased looks again every LeaseTTL/3 (a
// read, no write), so that it sees a dead owner's last lease early and
// takes it over about a TTL after the owner died. Leases left on
// deliveries that are no longer pending (an owner that died between
// recording the outcome and releasing) are taken over the same way and
// deleted by the rescan.
//
// Claims: a record this process accepted carries its claim (see package
// queue), written with the record. The first attempt starts under it when
// at least half of the claim's validity is left, with no lease write; the
// keeper counts the claim's validity from the moment Accept began writing
// it, and its first "renewal" creates the delivery's lease (IfNoneMatch),
// which nobody else may create before the claim has expired. Another
// replica's claim is respected like a lease read from the store: until
// expires_at plus the skew margin by the taker's clock, and until the
// taker has seen it for a whole TTL; the record is read again every
// renewal period meanwhile, since a stopping owner releases its unused
// claims. This process's own claim, once too old to start under, is
// simply replaced by the lease.
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
	readFirst := it.leaseETag() != ""
	for try := 0; try < 3 && cur == nil; try++ {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), persistTimeout)
		if !readFirst {
			now, sent := d.cfg.Now(), time.Now()
			l, err := d.q.ClaimLease(cctx, it.id, d.owner, now, ttl, nil)
			if err == nil {
				cancel()
				it.forgetLease()
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
	h := it.hold()
	if cur.ETag() != h.leaseETag {
		h.leaseETag, h.leaseSeen = cur.ETag(), now
	}
	hold := max(cur.TTL(), ttl)
	stealAt := cur.ExpiresAt.Add(d.leaseSkew())
	if seen := h.leaseSeen.Add(hold); seen.After(stealAt) {
		stealAt = seen
	}
	if at, ok := d.ownerGoneAt(cur.Proc); ok {
		// Its owner is dead: no need to wait for the lease to run out.
		if free := at.Add(deadOwnerGrace); free.Before(stealAt) {
			stealAt = free
		}
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
		h.leaseETag = ""
		if !errors.Is(err, store.ErrPrecondition) {
			d.log.LogAttrs(ctx, slog.LevelWarn, "taking over lease failed", slog.String("id", it.id), slog.String("error", err.Error()))
			return nil, nil, time.Time{}, retry
		}
		return nil, nil, time.Time{}, now.Add(ttl) // another replica was quicker
	}
	h.leaseETag = ""
	return l, cur, sent, time.Time{}
}

// keeper keeps a lease alive while an attempt runs. Its timers cost nothing
// until they fire: an attempt shorter than LeaseTTL/3 never renews.
type keeper struct {
	d      *Dispatcher
	id     string // the delivery record's
	cancel context.CancelCauseFunc

	mu sync.Mutex
	// lease is nil while the attempt runs under the record's claim; the
	// first renewal then creates the lease.
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
	return d.startKeeper(&keeper{d: d, id: l.ID, cancel: cancel, lease: l}, sent)
}

// keepClaim is keep for an attempt made under the record's claim, written
// (by the monotonic clock) at sent: it is "renewed" by creating the
// delivery's lease, which the others look for once the claim has expired.
func (d *Dispatcher) keepClaim(id string, sent time.Time, cancel context.CancelCauseFunc) *keeper {
	return d.startKeeper(&keeper{d: d, id: id, cancel: cancel}, sent)
}

func (d *Dispatcher) startKeeper(k *keeper, sent time.Time) *keeper {
	k.valid = sent.Add(d.leaseValidity())
	k.mu.Lock()
	defer k.mu.Unlock()
	k.renew = time.AfterFunc(time.Until(sent.Add(d.renewEvery())), k.renewNow)
	k.expire = time.AfterFunc(time.Until(k.valid), k.expireNow)
	return k
}

// freshClaim reports whether rec carries the claim this process wrote
// when it accepted the message, with at least half of its validity left:
// its attempt may start under it.
func (d *Dispatcher) freshClaim(rec *queue.Delivery) bool {
	return d.ownClaim(rec) && time.Since(rec.ClaimedAt()) < d.leaseValidity()/2
}

// claimedHere reports whether rec, however it was read, carries a claim
// this process wrote: an owner id is new in every process, so a process
// restarted, or another, never takes such a record for its own.
func (d *Dispatcher) claimedHere(rec *queue.Delivery) bool {
	return rec.Claim != nil && rec.Claim.Owner == d.owner.ID
}

// ownClaim reports whether rec carries a claim this process wrote.
func (d *Dispatcher) ownClaim(rec *queue.Delivery) bool {
	return !rec.ClaimedAt().IsZero() && rec.Claim.Owner == d.owner.ID
}

// claimHeld reports whether c, another replica's claim on the delivery of
// it, still keeps this dispatcher off, and if so when to look again. A
// claim is respected like a lease: until the taker's clock is past its
// expiry by the skew margin and the taker has seen it for a whole TTL.
// Meanwhile the record is read again every renewal period, since a
// stopping owner releases the claims it will not use.
func (d *Dispatcher) claimHeld(it *item, c *queue.Claim) (time.Time, bool) {
	now := d.cfg.Now()
	if at, ok := d.ownerGoneAt(c.Proc); ok {
		if free := at.Add(deadOwnerGrace); now.Before(free) {
			return free, true
		}
		return time.Time{}, false // its owner is dead: the lease rules take over
	}
	// Tracked apart from the lease (claim reads and resets leaseETag): a
	// dead owner often leaves both, and with one tracker each check
	// restarted the other's wait, so neither ever ran out.
	tag := c.Owner + " " + c.ExpiresAt.Format(time.RFC3339Nano)
	h := it.hold()
	if h.claimTag != tag {
		h.claimTag, h.claimSeen = tag, now
	}
	stealAt := c.ExpiresAt.Add(d.leaseSkew())
	if seen := h.claimSeen.Add(d.cfg.LeaseTTL); seen.After(stealAt) {
		stealAt = seen
	}
	if !now.Before(stealAt) {
		return time.Time{}, false // the claim has run out: the lease rules take over
	}
	if later := now.Add(d.renewEvery()); later.Before(stealAt) {
		return later, true
	}
	return stealAt, true
}

// deadOwnerGrace is how long after finding an owner's process dead its
// claims and leases are still respected: the receiver may still be
// answering the request the dead process sent (it learns of the death
// only when it writes its answer), and a second request for the same
// event should not arrive while it does.
const deadOwnerGrace = 2 * time.Second

// ownerGoneAt reports whether the process named by a claim's or lease's
// Proc has certainly exited, and when this dispatcher found out (by
// cfg.Now): a process on the same machine restarted after a crash (kill
// -9, OOM) takes over its predecessor's deliveries deadOwnerGrace after
// start instead of after a TTL. Another machine's or container's process
// is never judged (see proc_linux.go), and neither is this process's own.
func (d *Dispatcher) ownerGoneAt(proc string) (time.Time, bool) {
	if proc == "" || proc == d.owner.Proc {
		return time.Time{}, false
	}
	if at, ok := d.gone.Load(proc); ok {
		return at.(time.Time), true
	}
	if !processGone(proc) {
		return time.Time{}, false
	}
	at, loaded := d.gone.LoadOrStore(proc, d.cfg.Now())
	if !loaded {
		d.log.Info("owner process gone: its claims and leases are taken over shortly", "proc", proc,
			"after", deadOwnerGrace.String())
	}
	return at.(time.Time), true
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
	var err error
	if k.lease == nil {
		// Under the claim: take the lease while the claim still keeps
		// the others from creating it.
		var l *queue.Lease
		if l, err = d.q.ClaimLease(ctx, k.id, d.owner, d.cfg.Now(), d.cfg.LeaseTTL, nil); err == nil {
			k.lease = l
		}
	} else {
		err = d.q.RenewLease(ctx, k.lease, d.cfg.Now(), d.cfg.LeaseTTL)
	}
	cancel()
	switch {
	case err == nil:
		k.valid = sent.Add(d.leaseValidity())
		k.expire.Reset(time.Until(k.valid))
	case errors.Is(err, store.ErrPrecondition) || errors.Is(err, store.ErrNotFound):
		d.log.LogAttrs(context.Background(), slog.LevelWarn, "lease lost to another replica; cancelling the attempt", slog.String("id", k.id))
		k.loseLocked()
		return
	default:
		d.log.LogAttrs(context.Background(), slog.LevelWarn, "renewing lease failed", slog.String("id", k.id), slog.String("error", err.Error()))
	}
	k.renew.Reset(d.renewEvery())
}

func (k *keeper) expireNow() {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.stopped || k.lost || time.Now().Before(k.valid) {
		return // renewed meanwhile
	}
	k.d.log.LogAttrs(context.Background(), slog.LevelWarn, "lease could not be renewed in time; cancelling the attempt", slog.String("id", k.id))
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

// stop ends the renewals and returns the lease if it is still held, so
// that it may be released (nil: lost, expired, or never taken because the
// attempt ran under the record's claim).
func (k *keeper) stop() *queue.Lease {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.stopped = true
	k.renew.Stop()
	k.expire.Stop()
	if k.lost || !time.Now().Before(k.valid) {
		return nil
	}
	return k.lease
}

// logTakeover logs the lease prev taken over, as what.
func (d *Dispatcher) logTakeover(ctx context.Context, msg string, prev *queue.Lease) {
	d.log.LogAttrs(ctx, slog.LevelInfo, msg,
		slog.String("id", prev.ID), slog.String("previous_owner", prev.Owner), slog.String("previous_host", prev.Host),
		slog.Int("previous_pid", prev.PID), slog.Time("expired_at", prev.ExpiresAt))
}

// letGo stops keeping k's lease and releases it if it is still held.
func (d *Dispatcher) letGo(ctx context.Context, k *keeper) {
	if l := k.stop(); l != nil {
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
