package queue_test

import (
	"context"
	"errors"
	"io"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailhook/mailhook/queue"
	"github.com/mailhook/mailhook/store"
)

// Expire deletes the delivered (or failed) records of old messages that
// were finished before the cutoff, and a raw message once no record of
// its message is left in any state; it keeps what is younger, what
// finished after the cutoff, and raw messages a pending delivery or a
// kept dead letter still needs.
func TestExpire(t *testing.T) {
	backends(t, func(t *testing.T, s store.Store) {
		ctx := t.Context()
		f := newFixture(t, s, routes{"a@x": "http://one", "b@x": "http://two"}) // c@x: no endpoint
		msg := map[string]string{}
		accept := func(name string, rcpts ...string) {
			f.now = f.now.Add(time.Millisecond) // ids in the order of the names
			f.enqueued = nil
			msg[name] = f.accept(t, rcpts...)
		}
		finish := func(n int, ok bool) {
			t.Helper()
			d := f.enqueued[n]
			var err error
			if ok {
				err = f.q.MarkDelivered(ctx, d, queue.Attempt{At: f.now, Status: 200})
			} else {
				err = f.q.MarkFailed(ctx, d, queue.Attempt{At: f.now, Status: 410}, "HTTP 410")
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		dropRecords := func(id string, n int, st queue.State) { // as written before Records was kept
			key := queue.RecordKey(st, queue.RecordID(id, n))
			putRecordCopy(t, s, key, key, func(m map[string]any) { delete(m, "records") })
		}

		accept("delivered", "a@x")
		finish(0, true)
		accept("delivered+failed", "a@x", "b@x")
		finish(0, true)
		finish(1, false)
		accept("pending", "a@x")
		accept("unrouted", "c@x")
		accept("delivered+unrouted", "a@x", "c@x")
		finish(0, true)
		accept("delivered×2", "a@x", "b@x")
		finish(0, true)
		finish(1, true)
		accept("old delivered×2", "a@x", "b@x")
		finish(0, true)
		finish(1, true)
		dropRecords(msg["old delivered×2"], 1, queue.StateDelivered)
		dropRecords(msg["old delivered×2"], 2, queue.StateDelivered)
		accept("old delivered+unrouted", "a@x", "c@x")
		finish(0, true)
		dropRecords(msg["old delivered+unrouted"], 1, queue.StateDelivered)
		dropRecords(msg["old delivered+unrouted"], 2, queue.StateFailed)
		accept("finished late", "a@x")
		time.Sleep(5 * time.Millisecond) // object times are the wall clock's
		cutoff := time.Now()
		time.Sleep(5 * time.Millisecond)
		finish(0, true)
		f.now = cutoff.Add(time.Hour)
		accept("young", "a@x")
		finish(0, true)

		rawsLeft := func() []string {
			var left []string
			for _, name := range []string{"delivered", "delivered+failed", "pending", "unrouted", "delivered+unrouted",
				"delivered×2", "old delivered×2", "old delivered+unrouted", "finished late", "young"} {
				if slices.Contains(keys(t, s, "raw/"), queue.RawKey(msg[name])) {
					left = append(left, name)
				}
			}
			return left
		}
		// Expire through a queue that counts the lookups of records.
		cs := &lookupCounter{Store: s}
		q := queue.New(queue.Options{Store: cs, Router: routes{}})
		expire := func(st queue.State, want queue.Expired, wantRaws []string) {
			t.Helper()
			got, err := q.Expire(ctx, st, cutoff)
			if err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Errorf("Expire(%s) = %+v, want %+v", st, got, want)
			}
			if left := rawsLeft(); !slices.Equal(left, wantRaws) {
				t.Errorf("after Expire(%s) raw messages left of %q, want %q", st, left, wantRaws)
			}
		}

		expire(queue.StateDelivered, queue.Expired{Records: 8, Raws: 3}, []string{
			"delivered+failed", "pending", "unrouted", "delivered+unrouted", "old delivered+unrouted", "finished late", "young"})
		if got := keys(t, s, queue.DeliveredPrefix); len(got) != 2 {
			t.Errorf("delivered records left: %q, want those of \"finished late\" and \"young\"", got)
		}
		// Three messages with a record left elsewhere or of unknown
		// count, two records looked up each, and once more the first
		// pending, at most: no long search for the records of a message
		// written before their count was kept.
		if n := cs.stats.Load(); n > 3*2*4 {
			t.Errorf("Expire looked up %d records", n)
		}
		// One read a message for its record count, two for the one whose
		// records lack it: 7 for the 8 records.
		if n := cs.gets.Load(); n != 7 {
			t.Errorf("Expire read %d records, want 7", n)
		}
		expire(queue.StateDelivered, queue.Expired{}, []string{
			"delivered+failed", "pending", "unrouted", "delivered+unrouted", "old delivered+unrouted", "finished late", "young"})
		expire(queue.StateFailed, queue.Expired{Records: 4, Raws: 4}, []string{"pending", "finished late", "young"})
		if got := keys(t, s, queue.FailedPrefix); len(got) != 0 {
			t.Errorf("failed records left: %q", got)
		}
		if got := keys(t, s, queue.PendingPrefix); !slices.Equal(got, []string{queue.RecordKey(queue.StatePending, queue.RecordID(msg["pending"], 1))}) {
			t.Errorf("pending records: %q", got)
		}
		if _, err := f.q.Expire(ctx, queue.StatePending, cutoff); err == nil {
			t.Error("Expire(pending) did not fail")
		}
	})
}

// lookupCounter counts Stat and Get calls.
type lookupCounter struct {
	store.Store
	stats, gets atomic.Int64
}

func (c *lookupCounter) Stat(ctx context.Context, key string) (store.Object, error) {
	c.stats.Add(1)
	return c.Store.Stat(ctx, key)
}

func (c *lookupCounter) Get(ctx context.Context, key string) (io.ReadCloser, store.Object, error) {
	c.gets.Add(1)
	return c.Store.Get(ctx, key)
}

// A store that cannot be read stops Expire before it deletes anything: a
// record it could not read is not taken for an unreadable one.
func TestExpireStopsWhenTheStoreIsUnavailable(t *testing.T) {
	s := newMemStore()
	f := newFixture(t, s, routes{"a@x": "http://one"})
	f.accept(t, "a@x")
	if err := f.q.MarkDelivered(t.Context(), f.enqueued[0], queue.Attempt{At: f.now, Status: 200}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Millisecond) // object times are the wall clock's
	q := queue.New(queue.Options{Store: unreadable{s}, Router: routes{}})
	got, err := q.Expire(t.Context(), queue.StateDelivered, time.Now())
	if !errors.Is(err, store.ErrUnavailable) || got != (queue.Expired{}) {
		t.Errorf("Expire = %+v, %v; want nothing deleted and ErrUnavailable", got, err)
	}
	if n := len(keys(t, s, queue.DeliveredPrefix)); n != 1 {
		t.Errorf("%d delivered records left, want 1", n)
	}
}

// unreadable is a store whose Get fails as an outage would.
type unreadable struct{ store.Store }

func (unreadable) Get(context.Context, string) (io.ReadCloser, store.Object, error) {
	return nil, store.Object{}, store.ErrUnavailable
}
