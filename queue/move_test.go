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

func (c *countingStore) AppendIfMatch(ctx context.Context, key, etag string, tail []byte, opts store.AppendOptions) (store.Object, error) {
	c.note("append " + key)
	return store.AppendIfMatch(ctx, c.Store, key, etag, tail, opts)
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
			s, cs, f, d := fsAccepted(t)
			cs.calls = nil

			a := queue.Attempt{At: t0, Endpoint: d.Endpoint, Status: 200}
			var err error
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
	return bytes.TrimSpace(objectBytes(t, s, queue.RecordKey(queue.StateDelivered, d.ID)))
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

// fsAccepted is a queue on a filesystem store, seen through a
// countingStore, that has accepted one message for one endpoint: its
// delivery is returned.
func fsAccepted(t *testing.T) (*fs.Store, *countingStore, *fixture, *queue.Delivery) {
	t.Helper()
	s, err := fs.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cs := &countingStore{Store: s}
	f := newFixture(t, cs, routes{"a@x": "http://one"})
	f.accept(t, "a@x")
	return s, cs, f, f.enqueued[0]
}

// objectBytes returns the object at key as stored.
func objectBytes(t *testing.T, s store.Store, key string) []byte {
	t.Helper()
	rc, _, err := s.Get(t.Context(), key)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// On a store that appends, an update of a pending record appends its new
// version to the object (no new file, no rename); the last complete
// document is the record, a cut one is ignored, and an object grown past
// the bound is rewritten with its last version alone. Conditional as
// ever: a stale version cannot append.
func TestUpdateAppends(t *testing.T) {
	ctx := t.Context()
	s, cs, f, d := fsAccepted(t)
	key := queue.RecordKey(queue.StatePending, d.ID)
	stale := *d
	if err := f.q.BeginAttempt(ctx, d, t0, t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(objectBytes(t, s, key), []byte("\n{")); n != 1 {
		t.Errorf("after one update the object holds %d appended documents, want 1", n)
	}
	puts := func() (n int) {
		for _, c := range cs.calls {
			if c == "put "+key {
				n++
			}
		}
		return n
	}
	if n := puts(); n != 1 {
		t.Errorf("the record was put %d times, want once (Accept): %q", n, cs.calls)
	}
	got, err := f.q.Load(ctx, d.ID)
	if err != nil || len(got.Attempts) != 1 || !got.Attempts[0].Unfinished {
		t.Fatalf("Load after the update = %+v, %v; want its unfinished attempt", got, err)
	}
	if err := f.q.BeginAttempt(ctx, &stale, t0, t0.Add(time.Minute)); !errors.Is(err, store.ErrPrecondition) {
		t.Errorf("update of a stale version: %v, want ErrPrecondition", err)
	}

	// A cut append (a crash) leaves the previous version.
	b := objectBytes(t, s, key)
	cut := append(slices.Clone(b), []byte("\n{\"version\":1,\"id\":\"")...)
	if _, err := s.Put(ctx, key, bytes.NewReader(cut), store.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	got, err = f.q.Load(ctx, d.ID)
	if err != nil || len(got.Attempts) != 1 {
		t.Fatalf("Load of a record with a cut tail = %+v, %v; want the last complete version", got, err)
	}
	// The next version is not appended after the cut document, where it
	// would never be read.
	if err := f.q.RecordAttempt(ctx, got, queue.Attempt{At: t0, Endpoint: d.Endpoint, Status: 503}, t0); err != nil {
		t.Fatal(err)
	}
	if got, err = f.q.Load(ctx, d.ID); err != nil || len(got.Attempts) != 1 || got.Attempts[0].Status != 503 {
		t.Fatalf("Load after an update of a record with a cut tail = %+v, %v; want the update", got, err)
	}
	if n := bytes.Count(objectBytes(t, s, key), []byte("\n{")); n != 0 {
		t.Errorf("the update after a cut appended to the damaged object (%d documents after the first), want it rewritten", n)
	}

	// Attempts until the object would pass the bound: then it is
	// rewritten.
	d = got
	for i := 0; i < 39; i++ {
		if err := f.q.RecordAttempt(ctx, d, queue.Attempt{At: t0, Endpoint: d.Endpoint, Status: 503}, t0); err != nil {
			t.Fatal(err)
		}
	}
	b = objectBytes(t, s, key)
	if len(b) > 16<<10 {
		t.Errorf("pending record object is %d bytes, want it rewritten before 16 KiB", len(b))
	}
	if puts() < 3 { // Accept's, the test's cut one, and a rewrite
		t.Errorf("40 updates never rewrote the record: %d bytes", len(b))
	}
	got, err = f.q.Load(ctx, d.ID)
	if err != nil || len(got.Attempts) != 40 {
		t.Fatalf("Load after 40 attempts = %d attempts, %v", len(got.Attempts), err)
	}
	// And the outcome is appended and moved as before.
	if err := f.q.MarkDelivered(ctx, got, queue.Attempt{At: t0, Endpoint: d.Endpoint, Status: 204}); err != nil {
		t.Fatal(err)
	}
	if got, err := f.q.Load(ctx, d.ID); err != nil || got.State != queue.StateDelivered || len(got.Attempts) != 41 {
		t.Fatalf("Load after MarkDelivered = %+v, %v", got, err)
	}
}

// A version appended after a document a crash cut (or after the zeros it
// left) is still read: documents are found by the line break that starts
// each, not by decoding the object from its start.
func TestRecordAfterCutDocumentIsRead(t *testing.T) {
	ctx := t.Context()
	s, _, f, d := fsAccepted(t)
	key := queue.RecordKey(queue.StatePending, d.ID)
	first := objectBytes(t, s, key)
	if err := f.q.BeginAttempt(ctx, d, t0, t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	second := bytes.TrimPrefix(objectBytes(t, s, key), first) // "\n{…}"
	for name, junk := range map[string][]byte{
		"cut document": []byte("\n{\"version\":1,\"id\":\"" + d.ID),
		"zeros":        make([]byte, 300),
	} {
		t.Run(name, func(t *testing.T) {
			obj := bytes.Join([][]byte{first, junk, second}, nil)
			if _, err := s.Put(ctx, key, bytes.NewReader(obj), store.PutOptions{}); err != nil {
				t.Fatal(err)
			}
			got, err := f.q.Load(ctx, d.ID)
			if err != nil || len(got.Attempts) != 1 || !got.Attempts[0].Unfinished {
				t.Fatalf("Load = %+v, %v; want the version after the damage", got, err)
			}
		})
	}
}
