package queue_test

import (
	"context"
	"iter"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailhook/mailhook/event"
	"github.com/mailhook/mailhook/queue"
	"github.com/mailhook/mailhook/store"
)

// ExpireOrphans deletes the raw messages older than its cutoff that no
// record in any state refers to, and keeps every other one: those with a
// pending, delivered or failed record (the first record gone or not),
// younger ones, and those of the last hour whatever the cutoff.
func TestExpireOrphans(t *testing.T) {
	backends(t, func(t *testing.T, s store.Store) {
		ctx := t.Context()
		f := newFixture(t, s, routes{"a@x": "http://one", "b@x": "http://two"}) // c@x: no endpoint
		msg := map[string]string{}
		orphan := func(name string, at time.Time) {
			id := event.NewID(at)
			if _, err := s.Put(ctx, queue.RawKey(id), strings.NewReader("Subject: lost\r\n\r\n"), store.PutOptions{IfNoneMatch: true}); err != nil {
				t.Fatal(err)
			}
			msg[name] = id
		}
		accept := func(name string, rcpts ...string) {
			f.now = f.now.Add(time.Millisecond) // ids in the order of the names
			f.enqueued = nil
			msg[name] = f.accept(t, rcpts...)
		}
		orphan("orphan first", f.now)
		accept("pending", "a@x")
		orphan("orphan between", f.now.Add(time.Microsecond))
		accept("delivered", "a@x")
		if err := f.q.MarkDelivered(ctx, f.enqueued[0], queue.Attempt{At: f.now, Status: 200}); err != nil {
			t.Fatal(err)
		}
		accept("unrouted", "c@x")
		accept("second record only", "a@x", "b@x")
		if err := s.Delete(ctx, queue.RecordKey(queue.StatePending, queue.RecordID(msg["second record only"], 1))); err != nil {
			t.Fatal(err)
		}
		orphan("orphan last", f.now.Add(time.Second))
		if _, err := s.Put(ctx, "raw/stray.txt", strings.NewReader("x"), store.PutOptions{}); err != nil {
			t.Fatal(err)
		}
		cutoff := f.now.Add(time.Minute)
		orphan("orphan after the cutoff", cutoff.Add(time.Minute))
		orphan("orphan of the last hour", time.Now().Add(-queue.OrphanMinAge/2))

		lc := &listCounter{Store: s}
		n, err := queue.New(queue.Options{Store: lc, Router: routes{}}).ExpireOrphans(ctx, cutoff)
		if err != nil {
			t.Fatal(err)
		}
		if n != 3 {
			t.Errorf("ExpireOrphans deleted %d, want 3", n)
		}
		// The four listings side by side, then four lookups for each
		// raw message they saw no record of: no lookup for the others.
		if got := lc.lists.Load(); got != 4+3*4 {
			t.Errorf("ExpireOrphans listed %d times, want %d", got, 4+3*4)
		}
		var left []string
		for _, name := range []string{"orphan first", "pending", "orphan between", "delivered", "unrouted",
			"second record only", "orphan last", "orphan after the cutoff", "orphan of the last hour"} {
			if slices.Contains(keys(t, s, queue.RawPrefix), queue.RawKey(msg[name])) {
				left = append(left, name)
			}
		}
		want := []string{"pending", "delivered", "unrouted", "second record only", "orphan after the cutoff", "orphan of the last hour"}
		if !slices.Equal(left, want) {
			t.Errorf("raw messages left of %q, want %q", left, want)
		}
		if !slices.Contains(keys(t, s, queue.RawPrefix), "raw/stray.txt") {
			t.Error("a file that is no raw message was deleted")
		}
		// A cutoff of now spares the last hour still.
		if n, err := f.q.ExpireOrphans(ctx, time.Now()); err != nil || n != 1 {
			t.Errorf("ExpireOrphans(now) = %d, %v; want 1, nil", n, err)
		}
		if got := keys(t, s, queue.RawPrefix); !slices.Contains(got, queue.RawKey(msg["orphan of the last hour"])) ||
			slices.Contains(got, queue.RawKey(msg["orphan after the cutoff"])) {
			t.Errorf("after ExpireOrphans(now), raw messages %q", got)
		}
	})
}

// A record that the side-by-side listings miss (it moved between states
// while they passed it) is found by the lookup that precedes a deletion.
func TestExpireOrphansLooksAgain(t *testing.T) {
	s := newMemStore()
	f := newFixture(t, s, routes{"a@x": "http://one"})
	id := f.accept(t, "a@x")
	q := queue.New(queue.Options{Store: hidingLister{Store: s, hidden: queue.PendingPrefix}, Router: routes{}})
	n, err := q.ExpireOrphans(t.Context(), f.now.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if n != 0 || !slices.Contains(keys(t, s, queue.RawPrefix), queue.RawKey(id)) {
		t.Errorf("ExpireOrphans deleted %d; the raw message of a pending record is gone", n)
	}
}

// listCounter counts List calls.
type listCounter struct {
	store.Store
	lists atomic.Int64
}

func (c *listCounter) List(ctx context.Context, prefix string) iter.Seq2[store.Object, error] {
	c.lists.Add(1)
	return c.Store.List(ctx, prefix)
}

// hidingLister lists nothing under exactly the prefix hidden, as if every
// record there had moved away while it was listed.
type hidingLister struct {
	store.Store
	hidden string
}

func (h hidingLister) List(ctx context.Context, prefix string) iter.Seq2[store.Object, error] {
	if prefix == h.hidden {
		return func(func(store.Object, error) bool) {}
	}
	return h.Store.List(ctx, prefix)
}
