package queue_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mailhook/mailhook/queue"
	"github.com/mailhook/mailhook/store"
	"github.com/mailhook/mailhook/store/fs"
)

// countingStore counts the calls that change a store, and moves when the
// store under it does.
type countingStore struct {
	store.Store
	mu    sync.Mutex
	calls []string
}

func (c *countingStore) note(s string) {
	c.mu.Lock()
	c.calls = append(c.calls, s)
	c.mu.Unlock()
}

func (c *countingStore) Put(ctx context.Context, key string, body io.Reader, opts store.PutOptions) (store.Object, error) {
	c.note("put " + key)
	return c.Store.Put(ctx, key, body, opts)
}

func (c *countingStore) Delete(ctx context.Context, key string) error {
	c.note("delete " + key)
	return c.Store.Delete(ctx, key)
}

func (c *countingStore) MoveAppend(ctx context.Context, from, to string, tail []byte, opts store.MoveOptions) (store.Object, error) {
	lazy := ""
	if opts.Lazy {
		lazy = " (lazy)"
	}
	c.note("move " + from + " " + to + lazy)
	return store.MoveAppend(ctx, c.Store, from, to, tail, opts)
}

// A store wrapper that offers MoveAppend over a store that cannot move
// (the metrics decorator over S3) gets the record written and the pending
// one deleted.
func TestFinishWithoutMoves(t *testing.T) {
	ctx := t.Context()
	s := newMemStore()
	cs := &countingStore{Store: s}
	f := newFixture(t, cs, routes{"a@x": "http://one"})
	f.accept(t, "a@x")
	d := f.enqueued[0]
	cs.calls = nil
	a := queue.Attempt{At: t0, Endpoint: d.Endpoint, Status: 200}
	if err := f.q.MarkDelivered(ctx, d, a); err != nil {
		t.Fatal(err)
	}
	from, to := queue.RecordKey(queue.StatePending, d.ID), queue.RecordKey(queue.StateDelivered, d.ID)
	if want := []string{"move " + from + " " + to + " (lazy)", "put " + to, "delete " + from}; !slices.Equal(cs.calls, want) {
		t.Errorf("store calls = %q, want %q", cs.calls, want)
	}
	if got, err := f.q.Load(ctx, d.ID); err != nil || got.State != queue.StateDelivered || len(got.Attempts) != 1 {
		t.Errorf("Load = %+v, %v; want delivered with its attempt", got, err)
	}
}

// On a store that moves, recording an outcome is one move of the pending
// record: nothing written beside it, nothing deleted.
func TestFinishMovesThePendingRecord(t *testing.T) {
	for _, final := range []queue.State{queue.StateDelivered, queue.StateFailed} {
		t.Run(string(final), func(t *testing.T) {
			ctx := t.Context()
			s, err := fs.New(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			cs := &countingStore{Store: s}
			f := newFixture(t, cs, routes{"a@x": "http://one"})
			f.accept(t, "a@x")
			d := f.enqueued[0]
			cs.calls = nil

			a := queue.Attempt{At: t0, Endpoint: d.Endpoint, Status: 200}
			if final == queue.StateDelivered {
				err = f.q.MarkDelivered(ctx, d, a)
			} else {
				a.Status = 410
				err = f.q.MarkFailed(ctx, d, a, "HTTP 410")
			}
			if err != nil {
				t.Fatal(err)
			}
			// Lazy: the outcome need not be durable before the next
			// delivery starts (a crash that undoes it repeats the delivery).
			want := []string{"move " + queue.RecordKey(queue.StatePending, d.ID) + " " + queue.RecordKey(final, d.ID) + " (lazy)"}
			if !slices.Equal(cs.calls, want) {
				t.Errorf("store calls = %q, want %q", cs.calls, want)
			}
			if ks := keys(t, s, "deliveries/"); !slices.Equal(ks, []string{queue.RecordKey(final, d.ID)}) {
				t.Errorf("keys = %q", ks)
			}
			got, err := f.q.Load(ctx, d.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got.State != final || len(got.Attempts) != 1 || got.Attempts[0] != a || !got.NextAttemptAt.IsZero() {
				t.Errorf("Load = %+v", got)
			}
			if final == queue.StateFailed && got.LastError != "HTTP 410" {
				t.Errorf("LastError = %q", got.LastError)
			}
			// The returned record carries the moved object's ETag: a
			// conditional update through it must not fail as stale.
			if final == queue.StateFailed {
				if err := f.q.Replay(ctx, d.ID, ""); err != nil {
					t.Errorf("Replay of the moved record: %v", err)
				}
			}
		})
	}
}

// What a crash can leave of a move: the append cut anywhere, with or
// without the rename. The record's state is its key's; a cut outcome is
// ignored, and a pending record whose outcome made it is settled.
func TestMovedRecordCutByCrash(t *testing.T) {
	backends(t, func(t *testing.T, s store.Store) {
		ctx := t.Context()
		f := newFixture(t, s, routes{"a@x": "http://one"})
		f.accept(t, "a@x")
		d := f.enqueued[0]
		pendingKey := queue.RecordKey(queue.StatePending, d.ID)
		rc, _, err := s.Get(ctx, pendingKey)
		if err != nil {
			t.Fatal(err)
		}
		pendingDoc, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		// The outcome, as finish appends it: the full delivered record.
		done := *d
		final := queue.Attempt{At: t0, Endpoint: d.Endpoint, Status: 204}
		tailDoc := mustDeliveredDoc(t, &done, final)

		write := func(key string, parts ...[]byte) {
			t.Helper()
			if _, err := s.Put(ctx, key, bytes.NewReader(bytes.Join(parts, nil)), store.PutOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		clear := func() {
			t.Helper()
			for _, k := range keys(t, s, "deliveries/") {
				if err := s.Delete(ctx, k); err != nil {
					t.Fatal(err)
				}
			}
		}
		cuts := map[string][]byte{
			"nothing appended": nil,
			"half the outcome": append([]byte{'\n'}, tailDoc[:len(tailDoc)/2]...),
			"zeros":            make([]byte, 700),
		}
		for name, tail := range cuts {
			t.Run("renamed, "+name, func(t *testing.T) {
				clear()
				write(queue.RecordKey(queue.StateDelivered, d.ID), pendingDoc, tail)
				got, err := f.q.Load(ctx, d.ID)
				if err != nil {
					t.Fatal(err)
				}
				if got.State != queue.StateDelivered || len(got.Attempts) != 0 || !got.NextAttemptAt.IsZero() || got.EventID != d.EventID {
					t.Errorf("Load = %+v, want delivered with no attempt recorded", got)
				}
				if n := len(pending(t, f.q)); n != 0 {
					t.Errorf("%d pending, want 0", n)
				}
			})
			t.Run("not renamed, "+name, func(t *testing.T) {
				clear()
				write(pendingKey, pendingDoc, tail)
				got, err := f.q.Load(ctx, d.ID)
				if err != nil {
					t.Fatal(err)
				}
				if got.State != queue.StatePending {
					t.Errorf("Load = %+v, want still pending (to be retried)", got)
				}
				if n := len(pending(t, f.q)); n != 1 {
					t.Errorf("%d pending, want 1", n)
				}
			})
		}
		t.Run("renamed to failed, nothing appended", func(t *testing.T) {
			clear()
			write(queue.RecordKey(queue.StateFailed, d.ID), pendingDoc)
			got, err := f.q.Load(ctx, d.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got.State != queue.StateFailed || got.LastError == "" {
				t.Errorf("Load = %+v, want failed with a LastError", got)
			}
			// It can be replayed like any dead letter.
			if err := f.q.Replay(ctx, d.ID, ""); err != nil {
				t.Fatalf("Replay: %v", err)
			}
			if n := len(pending(t, f.q)); n != 1 {
				t.Errorf("%d pending after replay, want 1", n)
			}
		})
		t.Run("not renamed, whole outcome appended", func(t *testing.T) {
			clear()
			write(pendingKey, pendingDoc, []byte{'\n'}, tailDoc)
			if n := len(pending(t, f.q)); n != 0 {
				t.Errorf("%d pending, want 0: the outcome is recorded", n)
			}
			got, err := f.q.Load(ctx, d.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got.State != queue.StateDelivered || len(got.Attempts) != 1 || got.Attempts[0] != final {
				t.Errorf("Load = %+v, want delivered with its attempt", got)
			}
			if ks := keys(t, s, "deliveries/"); !slices.Equal(ks, []string{queue.RecordKey(queue.StateDelivered, d.ID)}) {
				t.Errorf("keys = %q", ks)
			}
		})
		t.Run("empty", func(t *testing.T) {
			clear()
			write(queue.RecordKey(queue.StateDelivered, d.ID))
			if _, err := f.q.Load(ctx, d.ID); !errors.Is(err, queue.ErrEmptyRecord) {
				t.Errorf("Load of an empty record = %v, want ErrEmptyRecord", err)
			}
		})
	})
}

// mustDeliveredDoc is the record finish appends when d is delivered by a.
func mustDeliveredDoc(t *testing.T, d *queue.Delivery, a queue.Attempt) []byte {
	t.Helper()
	s := newMemStore()
	q := queue.New(queue.Options{Store: s, Now: func() time.Time { return t0 }})
	if err := q.MarkDelivered(t.Context(), d, a); err != nil {
		t.Fatal(err)
	}
	rc, _, err := s.Get(t.Context(), queue.RecordKey(queue.StateDelivered, d.ID))
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSpace(b)
}

// pending lists q's pending deliveries, failing t on any error.
func pending(t *testing.T, q *queue.Queue) []*queue.Delivery {
	t.Helper()
	var ds []*queue.Delivery
	for d, err := range q.Pending(t.Context()) {
		if err != nil {
			t.Fatal(err)
		}
		ds = append(ds, d)
	}
	return ds
}
