package queue_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailhook/mailhook/queue"
	"github.com/mailhook/mailhook/store"
)

func TestLeaseLifecycle(t *testing.T) {
	backends(t, func(t *testing.T, s store.Store) {
		ctx := context.Background()
		f := newFixture(t, s, routes{"a@example.com": "https://hook.example/a"})
		id := f.accept(t, "a@example.com") + "-1"
		a := queue.LeaseOwner{ID: "replica-a", Host: "host-a", PID: 7}
		b := queue.LeaseOwner{ID: "replica-b"}

		if _, err := f.q.ReadLease(ctx, id); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("ReadLease before any claim: %v, want ErrNotFound", err)
		}
		la, err := f.q.ClaimLease(ctx, id, a, t0, 15*time.Second, nil)
		if err != nil {
			t.Fatal(err)
		}
		if la.Owner != "replica-a" || la.Host != "host-a" || la.PID != 7 || !la.ExpiresAt.Equal(t0.Add(15*time.Second)) || la.TTL() != 15*time.Second || la.ETag() == "" {
			t.Errorf("claimed lease = %+v", la)
		}
		if got := keys(t, s, queue.LeasePrefix); len(got) != 1 || got[0] != queue.LeaseKey(id) {
			t.Errorf("lease keys = %v", got)
		}
		rec := readRecord(t, s, queue.LeaseKey(id))
		for _, k := range []string{"version", "id", "owner", "host", "pid", "acquired_at", "renewed_at", "expires_at", "renewals"} {
			if _, ok := rec[k]; !ok {
				t.Errorf("lease JSON lacks %q: %v", k, rec)
			}
		}
		if _, err := f.q.ClaimLease(ctx, id, b, t0, 15*time.Second, nil); !errors.Is(err, store.ErrPrecondition) {
			t.Errorf("second claim: %v, want ErrPrecondition", err)
		}

		cur, err := f.q.ReadLease(ctx, id)
		if err != nil || cur.Owner != "replica-a" || cur.ETag() != la.ETag() {
			t.Fatalf("ReadLease = %+v, %v", cur, err)
		}
		etag := la.ETag()
		if err := f.q.RenewLease(ctx, la, t0.Add(5*time.Second), 15*time.Second); err != nil {
			t.Fatal(err)
		}
		if la.ETag() == etag || la.Renewals != 1 || !la.ExpiresAt.Equal(t0.Add(20*time.Second)) || !la.AcquiredAt.Equal(t0) {
			t.Errorf("renewed lease = %+v", la)
		}
		// The stale copy read before the renewal can neither renew nor
		// be taken over.
		if err := f.q.RenewLease(ctx, cur, t0.Add(6*time.Second), 15*time.Second); !errors.Is(err, store.ErrPrecondition) {
			t.Errorf("renewing a stale copy: %v, want ErrPrecondition", err)
		}
		if _, err := f.q.ClaimLease(ctx, id, b, t0.Add(time.Minute), 15*time.Second, cur); !errors.Is(err, store.ErrPrecondition) {
			t.Errorf("taking over a stale copy: %v, want ErrPrecondition", err)
		}

		// Taken over from the current version: the old owner's renewal
		// fails.
		cur, err = f.q.ReadLease(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		lb, err := f.q.ClaimLease(ctx, id, b, t0.Add(time.Minute), 15*time.Second, cur)
		if err != nil {
			t.Fatal(err)
		}
		if err := f.q.RenewLease(ctx, la, t0.Add(time.Minute), 15*time.Second); !errors.Is(err, store.ErrPrecondition) {
			t.Errorf("renewal after a takeover: %v, want ErrPrecondition", err)
		}
		if err := f.q.ReleaseLease(ctx, lb); err != nil {
			t.Fatal(err)
		}
		if got := keys(t, s, queue.LeasePrefix); len(got) != 0 {
			t.Errorf("lease keys after release = %v", got)
		}
		if err := f.q.RenewLease(ctx, lb, t0.Add(time.Minute), 15*time.Second); !errors.Is(err, store.ErrPrecondition) {
			t.Errorf("renewal after release: %v, want ErrPrecondition", err)
		}
		// The record itself is untouched by all that.
		if d, err := f.q.Load(ctx, id); err != nil || d.State != queue.StatePending || len(d.Attempts) != 0 {
			t.Errorf("record = %+v, %v", d, err)
		}
	})
}

// Of several replicas taking over one expired lease, exactly one wins.
func TestLeaseTakeoverRace(t *testing.T) {
	backends(t, func(t *testing.T, s store.Store) {
		ctx := context.Background()
		f := newFixture(t, s, routes{"a@example.com": "https://hook.example/a"})
		id := f.accept(t, "a@example.com") + "-1"
		if _, err := f.q.ClaimLease(ctx, id, queue.LeaseOwner{ID: "dead"}, t0, time.Second, nil); err != nil {
			t.Fatal(err)
		}
		cur, err := f.q.ReadLease(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		var wins atomic.Int32
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Go(func() {
				_, err := f.q.ClaimLease(ctx, id, queue.LeaseOwner{ID: fmt.Sprint("taker-", i)}, t0.Add(time.Minute), time.Second, cur)
				switch {
				case err == nil:
					wins.Add(1)
				case !errors.Is(err, store.ErrPrecondition):
					t.Errorf("taker %d: %v", i, err)
				}
			})
		}
		wg.Wait()
		if n := wins.Load(); n != 1 {
			t.Errorf("%d takers won, want 1", n)
		}
	})
}

// A lease object that is not ours to decode still reads, so that it can
// expire and be taken over instead of blocking its delivery.
func TestForeignLease(t *testing.T) {
	backends(t, func(t *testing.T, s store.Store) {
		ctx := context.Background()
		f := newFixture(t, s, routes{"a@example.com": "https://hook.example/a"})
		id := f.accept(t, "a@example.com") + "-1"
		if _, err := s.Put(ctx, queue.LeaseKey(id), strings.NewReader("not json"), store.PutOptions{Size: -1}); err != nil {
			t.Fatal(err)
		}
		l, err := f.q.ReadLease(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if l.ID != id || l.Owner != "" || l.ETag() == "" || l.ExpiresAt.IsZero() {
			t.Errorf("foreign lease = %+v", l)
		}
		if _, err := f.q.ClaimLease(ctx, id, queue.LeaseOwner{ID: "a"}, time.Now(), time.Second, l); err != nil {
			t.Errorf("taking over a foreign lease: %v", err)
		}
		var ids []string
		for id, err := range f.q.LeaseIDs(ctx) {
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, id)
		}
		if len(ids) != 1 || ids[0] != id {
			t.Errorf("LeaseIDs = %v", ids)
		}
	})
}
