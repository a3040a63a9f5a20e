package queue

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"iter"
	"strings"
	"time"

	"github.com/mailhook/mailhook/store"
)

// maxLeaseBytes bounds how much of a lease object is read.
const maxLeaseBytes = 4 << 10

// LeaseVersion is the schema version written in every lease.
const LeaseVersion = 1

// LeaseOwner names the replica holding a lease. ID is what ownership is
// decided on (random per process); Host and PID are for humans reading the
// store. Proc, when set, identifies the owner's process on its machine
// beyond doubt (package dispatch makes it), so that a process on the same
// machine can tell that the owner has died without waiting for its lease
// to expire.
type LeaseOwner struct {
	ID   string
	Host string
	PID  int
	Proc string
}

// Lease is a replica's claim on a pending delivery while it works on it,
// stored at LeaseKey(recID). Only the fields are decided here; when to
// renew, steal or give up is the dispatcher's business.
type Lease struct {
	Version    int       `json:"version"`
	ID         string    `json:"id"`    // the delivery record id
	Owner      string    `json:"owner"` // LeaseOwner.ID
	Host       string    `json:"host,omitempty"`
	PID        int       `json:"pid,omitempty"`
	Proc       string    `json:"proc,omitempty"` // LeaseOwner.Proc
	AcquiredAt time.Time `json:"acquired_at"`
	RenewedAt  time.Time `json:"renewed_at"`
	// ExpiresAt is RenewedAt + the owner's TTL, by the owner's clock.
	ExpiresAt time.Time `json:"expires_at"`
	// Renewals counts renewals since AcquiredAt. It also makes every
	// write's content unique, which matters on S3, whose ETag is a hash
	// of the content: an IfMatch must never match a later write.
	Renewals int `json:"renewals"`

	etag string
}

// TTL is the lifetime the owner gave the lease at its last write.
func (l *Lease) TTL() time.Duration { return l.ExpiresAt.Sub(l.RenewedAt) }

// ETag is the store ETag of the version read or written last; it changes
// with every write.
func (l *Lease) ETag() string { return l.etag }

// ClaimLease claims recID's lease for owner until now+ttl. With prev nil
// it creates the lease, failing (error wrapping store.ErrPrecondition) if
// one exists. With prev, a lease read by ReadLease, it takes that lease
// over, failing the same way if the lease changed or vanished since it
// was read, so that of two replicas taking over one lease at most one
// wins.
//
// An error other than ErrPrecondition leaves it unknown whether the lease
// was written; so may ErrPrecondition itself (S3: a write whose answer was
// lost and whose retry found it). Either way the caller does not hold the
// lease and must not act as if it did.
func (q *Queue) ClaimLease(ctx context.Context, recID string, owner LeaseOwner, now time.Time, ttl time.Duration, prev *Lease) (*Lease, error) {
	if !ValidRecordID(recID) {
		return nil, fmt.Errorf("queue: claim lease: invalid record id %q", recID)
	}
	now = now.UTC()
	l := &Lease{
		Version:    LeaseVersion,
		ID:         recID,
		Owner:      owner.ID,
		Host:       owner.Host,
		PID:        owner.PID,
		Proc:       owner.Proc,
		AcquiredAt: now,
		RenewedAt:  now,
		ExpiresAt:  now.Add(ttl),
	}
	// A new lease is created Unordered: a crash of the machine may leave
	// it torn, which ReadLease takes for a lease expired when it was
	// written.
	opts := store.PutOptions{IfNoneMatch: true, Unordered: true}
	if prev != nil {
		opts = store.PutOptions{IfMatch: prev.etag}
		if prev.etag == "" {
			return nil, fmt.Errorf("queue: claim lease %s: previous lease has no ETag: %w", recID, store.ErrPrecondition)
		}
	}
	if err := q.putLease(ctx, l, opts); err != nil {
		return nil, fmt.Errorf("queue: claim lease %s: %w", recID, err)
	}
	return l, nil
}

// RenewLease extends l to now+ttl if it is still the version last written
// by the caller (error wrapping store.ErrPrecondition otherwise: the lease
// is lost). On success l is updated in place.
func (q *Queue) RenewLease(ctx context.Context, l *Lease, now time.Time, ttl time.Duration) error {
	nl := *l
	now = now.UTC()
	nl.RenewedAt = now
	nl.ExpiresAt = now.Add(ttl)
	nl.Renewals++
	if err := q.putLease(ctx, &nl, store.PutOptions{IfMatch: l.etag}); err != nil {
		return fmt.Errorf("queue: renew lease %s: %w", l.ID, err)
	}
	*l = nl
	return nil
}

// ReleaseLease deletes l. The store has no conditional delete, so the
// caller releases only a lease it believes it still holds.
func (q *Queue) ReleaseLease(ctx context.Context, l *Lease) error {
	// Lazy (store.DeleteLazy): a crash of the machine that undoes the
	// delete ends the owner too, and its lease is then taken over like
	// any dead owner's (see package dispatch).
	if err := store.DeleteLazy(ctx, q.store, LeaseKey(l.ID)); err != nil {
		return fmt.Errorf("queue: release lease %s: %w", l.ID, err)
	}
	return nil
}

// ReadLease returns recID's lease. Errors wrap store.ErrNotFound when there
// is none. A lease that does not decode (written by something else) is
// returned with its ETag and its modification time as RenewedAt and
// ExpiresAt, so that it can still expire and be taken over.
func (q *Queue) ReadLease(ctx context.Context, recID string) (*Lease, error) {
	if !ValidRecordID(recID) {
		return nil, fmt.Errorf("queue: read lease: invalid record id %q: %w", recID, store.ErrNotFound)
	}
	rc, obj, err := q.store.Get(ctx, LeaseKey(recID))
	if err != nil {
		return nil, fmt.Errorf("queue: read lease %s: %w", recID, err)
	}
	b, err := io.ReadAll(io.LimitReader(rc, maxLeaseBytes))
	rc.Close()
	if err != nil {
		return nil, fmt.Errorf("queue: read lease %s: %w", recID, err)
	}
	var l Lease
	if err := json.Unmarshal(b, &l); err != nil || l.ID != recID {
		l = Lease{Version: LeaseVersion, ID: recID, RenewedAt: obj.ModTime.UTC(), ExpiresAt: obj.ModTime.UTC()}
	}
	l.etag = obj.ETag
	return &l, nil
}

// LeaseIDs yields the record ids that have a lease, in key order.
func (q *Queue) LeaseIDs(ctx context.Context) iter.Seq2[string, error] {
	return func(yield func(string, error) bool) {
		for key, err := range store.ListKeys(ctx, q.store, LeasePrefix) {
			if err != nil {
				yield("", fmt.Errorf("queue: list %s: %w", LeasePrefix, err))
				return
			}
			id := strings.TrimPrefix(key, LeasePrefix)
			if !ValidRecordID(id) {
				continue
			}
			if !yield(id, nil) {
				return
			}
		}
	}
}

// putLease writes l. Leases are written Lazy (store.PutOptions.Lazy): a
// lease only excludes live processes from each other, and a crash that
// could lose a lease write (of the machine: a filesystem store is shared
// only by processes on one machine) also ends every process that could
// hold or respect it; S3 ignores Lazy.
func (q *Queue) putLease(ctx context.Context, l *Lease, opts store.PutOptions) error {
	opts.Lazy = true
	b, err := json.Marshal(l)
	if err != nil {
		return err
	}
	opts.ContentType = "application/json"
	opts.Size = int64(len(b))
	obj, err := q.store.Put(ctx, LeaseKey(l.ID), bytes.NewReader(b), opts)
	if err != nil {
		return err
	}
	l.etag = obj.ETag
	return nil
}
