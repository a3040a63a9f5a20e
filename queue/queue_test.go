package queue_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	"github.com/mailhook/mailhook/event"
	"github.com/mailhook/mailhook/queue"
	"github.com/mailhook/mailhook/store"
	"github.com/mailhook/mailhook/store/fs"
)

var t0 = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

// backends runs fn against each store.Store backend the queue is tested on.
func backends(t *testing.T, fn func(t *testing.T, s store.Store)) {
	t.Helper()
	t.Run("mem", func(t *testing.T) { fn(t, newMemStore()) })
	t.Run("fs", func(t *testing.T) {
		s, err := fs.New(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		fn(t, s)
	})
}

// routes maps recipients to endpoints; unknown recipients get "".
type routes map[string]string

func (r routes) Route(rcpt string) string { return r[rcpt] }

type fixture struct {
	s        store.Store
	q        *queue.Queue
	enqueued []*queue.Delivery
	now      time.Time
}

func newFixture(t *testing.T, s store.Store, r queue.Router) *fixture {
	t.Helper()
	f := &fixture{s: s, now: t0}
	f.q = queue.New(queue.Options{
		Store:     s,
		Router:    r,
		Now:       func() time.Time { return f.now },
		OnEnqueue: func(d *queue.Delivery) { f.enqueued = append(f.enqueued, d) },
	})
	return f
}

func (f *fixture) accept(t *testing.T, rcpts ...string) string {
	t.Helper()
	id := event.NewID(f.now)
	env := event.Envelope{MailFrom: "a@example.org", RcptTo: rcpts, Helo: "mx.example.org"}
	if err := f.q.Accept(t.Context(), id, f.now, env, strings.NewReader("Subject: hi\r\n\r\nbody\r\n")); err != nil {
		t.Fatalf("Accept: %v", err)
	}
	return id
}

func keys(t *testing.T, s store.Store, prefix string) []string {
	t.Helper()
	var ks []string
	for o, err := range s.List(t.Context(), prefix) {
		if err != nil {
			t.Fatalf("List(%q): %v", prefix, err)
		}
		ks = append(ks, o.Key)
	}
	return ks
}

func readRecord(t *testing.T, s store.Store, key string) map[string]any {
	t.Helper()
	rc, _, err := s.Get(t.Context(), key)
	if err != nil {
		t.Fatalf("Get(%s): %v", key, err)
	}
	defer rc.Close()
	// The last document: a moved record carries its earlier states first.
	var m map[string]any
	dec := json.NewDecoder(rc)
	for dec.More() {
		m = nil
		if err := dec.Decode(&m); err != nil {
			t.Fatalf("decode %s: %v", key, err)
		}
	}
	if m == nil {
		t.Fatalf("decode %s: empty", key)
	}
	return m
}

func TestAcceptStoresRawAndRecords(t *testing.T) {
	backends(t, func(t *testing.T, s store.Store) {
		f := newFixture(t, s, routes{"a@x": "http://one", "b@x": "http://two", "c@x": "http://one"})
		raw := []byte("Received: by mailhook\r\nSubject: \xff binary\r\n\r\n\x00\r\n.dot\r\n")
		id := event.NewID(t0)
		env := event.Envelope{MailFrom: "s@y", RcptTo: []string{"a@x", "b@x", "c@x"}, Helo: "h", RemoteAddr: "192.0.2.1:25"}
		if err := f.q.Accept(t.Context(), id, t0, env, iotest.HalfReader(bytes.NewReader(raw))); err != nil {
			t.Fatal(err)
		}
		rc, _, err := s.Get(t.Context(), "raw/"+id+".eml")
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(rc)
		rc.Close()
		if !bytes.Equal(got, raw) {
			t.Errorf("raw = %q, want %q", got, raw)
		}
		if want := []string{
			"deliveries/pending/" + id + "-1.json",
			"deliveries/pending/" + id + "-2.json",
		}; !slices.Equal(keys(t, s, "deliveries/"), want) {
			t.Errorf("records = %q, want %q", keys(t, s, "deliveries/"), want)
		}
		sum := sha256.Sum256(raw)
		wantRaw := event.Raw{Key: "raw/" + id + ".eml", Size: int64(len(raw)), SHA256: hex.EncodeToString(sum[:])}
		if len(f.enqueued) != 2 {
			t.Fatalf("OnEnqueue called %d times, want 2", len(f.enqueued))
		}
		for i, want := range []struct {
			endpoint string
			rcpts    []string
		}{{"http://one", []string{"a@x", "c@x"}}, {"http://two", []string{"b@x"}}} {
			d, err := f.q.Load(t.Context(), queue.RecordID(id, i+1))
			if err != nil {
				t.Fatal(err)
			}
			if d.EventID != id || d.Endpoint != want.endpoint || !slices.Equal(d.Envelope.RcptTo, want.rcpts) ||
				d.State != queue.StatePending || d.Raw != wantRaw || !d.ReceivedAt.Equal(t0) || !d.NextAttemptAt.Equal(t0) ||
				d.Envelope.Helo != "h" || d.Envelope.RemoteAddr != "192.0.2.1:25" || d.Version != 1 {
				t.Errorf("record %d = %+v", i+1, d)
			}
			if e := f.enqueued[i]; e.ID != d.ID || e.Endpoint != d.Endpoint {
				t.Errorf("enqueued %d = %s %s, want %s %s", i, e.ID, e.Endpoint, d.ID, d.Endpoint)
			}
		}
		// The JSON schema documented in doc.go.
		m := readRecord(t, s, "deliveries/pending/"+id+"-1.json")
		for _, k := range []string{"version", "id", "event_id", "endpoint", "envelope", "received_at", "raw", "state", "created_at", "next_attempt_at", "attempts"} {
			if _, ok := m[k]; !ok {
				t.Errorf("record JSON lacks %q: %v", k, m)
			}
		}
	})
}

func TestAcceptRouting(t *testing.T) {
	r := routes{"a@x": "http://one", "b@x": "http://two", "c@x": "http://one"}
	tests := []struct {
		name      string
		rcpts     []string
		endpoints []string // per record, in order; "" = failed, no endpoint
		rcptsOf   [][]string
	}{
		{"one", []string{"a@x"}, []string{"http://one"}, [][]string{{"a@x"}}},
		{"grouped", []string{"a@x", "c@x"}, []string{"http://one"}, [][]string{{"a@x", "c@x"}}},
		{"first seen order", []string{"b@x", "a@x", "c@x"}, []string{"http://two", "http://one"}, [][]string{{"b@x"}, {"a@x", "c@x"}}},
		{"unrouted", []string{"z@x", "y@x"}, []string{""}, [][]string{{"z@x", "y@x"}}},
		{"mixed", []string{"z@x", "a@x"}, []string{"", "http://one"}, [][]string{{"z@x"}, {"a@x"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newMemStore()
			f := newFixture(t, s, r)
			id := f.accept(t, tt.rcpts...)
			var pending int
			for i, ep := range tt.endpoints {
				recID := queue.RecordID(id, i+1)
				d, err := f.q.Load(t.Context(), recID)
				if err != nil {
					t.Fatal(err)
				}
				if d.Endpoint != ep || !slices.Equal(d.Envelope.RcptTo, tt.rcptsOf[i]) {
					t.Errorf("record %d: endpoint %q rcpts %q, want %q %q", i+1, d.Endpoint, d.Envelope.RcptTo, ep, tt.rcptsOf[i])
				}
				wantState, wantKey := queue.StatePending, "deliveries/pending/"+recID+".json"
				if ep == "" {
					wantState, wantKey = queue.StateFailed, "deliveries/failed/"+recID+".json"
				} else {
					pending++
				}
				if d.State != wantState {
					t.Errorf("record %d: state %s, want %s", i+1, d.State, wantState)
				}
				if ep == "" && d.LastError != "no webhook endpoint configured" {
					t.Errorf("record %d: LastError %q", i+1, d.LastError)
				}
				if _, err := s.Stat(t.Context(), wantKey); err != nil {
					t.Errorf("record %d: %v", i+1, err)
				}
			}
			if n := len(keys(t, s, "deliveries/")); n != len(tt.endpoints) {
				t.Errorf("%d records, want %d", n, len(tt.endpoints))
			}
			if len(f.enqueued) != pending {
				t.Errorf("OnEnqueue called %d times, want %d (pending only)", len(f.enqueued), pending)
			}
		})
	}
}

var errBody = errors.New("connection dropped")

func TestAcceptFailures(t *testing.T) {
	tests := []struct {
		name    string
		body    io.Reader
		fail    func(op, key string) error
		wantErr error
	}{
		{"body fails at once", iotest.ErrReader(errBody), nil, errBody},
		{"body fails midway", io.MultiReader(strings.NewReader(strings.Repeat("x", 100000)), iotest.ErrReader(errBody)), nil, errBody},
		{"raw put fails", strings.NewReader("x"), func(op, key string) error {
			if op == "put" && strings.HasPrefix(key, "raw/") {
				return store.ErrUnavailable
			}
			return nil
		}, store.ErrUnavailable},
		{"second record fails", strings.NewReader("x"), func(op, key string) error {
			if op == "put" && strings.HasSuffix(key, "-2.json") {
				return store.ErrUnavailable
			}
			return nil
		}, store.ErrUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newMemStore()
			s.Fail = tt.fail
			f := newFixture(t, s, routes{"a@x": "http://one", "b@x": "http://two"})
			env := event.Envelope{RcptTo: []string{"a@x", "b@x"}}
			err := f.q.Accept(t.Context(), event.NewID(t0), t0, env, tt.body)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Accept = %v, want %v", err, tt.wantErr)
			}
			s.Fail = nil
			if ks := s.Keys(); len(ks) != 0 {
				t.Errorf("left behind %q, want nothing", ks)
			}
			if len(f.enqueued) != 0 {
				t.Errorf("OnEnqueue called %d times", len(f.enqueued))
			}
		})
	}
	// The real backend too, for the body failure.
	s, err := fs.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, s, routes{"a@x": "http://one"})
	body := io.MultiReader(strings.NewReader(strings.Repeat("x", 1<<20)), iotest.ErrReader(errBody))
	if err := f.q.Accept(t.Context(), event.NewID(t0), t0, event.Envelope{RcptTo: []string{"a@x"}}, body); !errors.Is(err, errBody) {
		t.Fatalf("fs: Accept = %v, want %v", err, errBody)
	}
	if ks := keys(t, s, ""); len(ks) != 0 {
		t.Errorf("fs: left behind %q", ks)
	}
}

func TestAcceptRejectsBadInput(t *testing.T) {
	f := newFixture(t, newMemStore(), routes{})
	if err := f.q.Accept(t.Context(), "../etc/passwd", t0, event.Envelope{RcptTo: []string{"a@x"}}, strings.NewReader("x")); err == nil {
		t.Error("Accept with a bad id succeeded")
	}
	if err := f.q.Accept(t.Context(), event.NewID(t0), t0, event.Envelope{}, strings.NewReader("x")); err == nil {
		t.Error("Accept without recipients succeeded")
	}
}

func TestAttemptLifecycle(t *testing.T) {
	backends(t, func(t *testing.T, s store.Store) {
		ctx := t.Context()
		f := newFixture(t, s, routes{"a@x": "http://one"})
		id := f.accept(t, "a@x")
		d := f.enqueued[0]

		// Attempt 1: 503, retried.
		if err := f.q.BeginAttempt(ctx, d, t0, t0.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		a1 := queue.Attempt{At: t0, Endpoint: d.Endpoint, Status: 503, LatencyMS: 3, Response: "busy"}
		if err := f.q.RecordAttempt(ctx, d, a1, t0.Add(10*time.Second)); err != nil {
			t.Fatal(err)
		}
		got, err := f.q.Load(ctx, d.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(got.Attempts) != 1 || got.Attempts[0] != a1 || !got.NextAttemptAt.Equal(t0.Add(10*time.Second)) || got.LastError != "HTTP 503" {
			t.Errorf("after RecordAttempt: %+v", got)
		}

		// A stale copy loses the race.
		stale := got
		if err := f.q.BeginAttempt(ctx, d, t0.Add(10*time.Second), t0.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		if err := f.q.BeginAttempt(ctx, stale, t0.Add(10*time.Second), t0.Add(time.Hour)); !errors.Is(err, store.ErrPrecondition) {
			t.Errorf("BeginAttempt on a stale record = %v, want ErrPrecondition", err)
		}
		if len(stale.Attempts) != 1 {
			t.Errorf("failed update changed the record in memory: %+v", stale.Attempts)
		}

		// Attempt 2: 200.
		a2 := queue.Attempt{At: t0.Add(10 * time.Second), Endpoint: d.Endpoint, Status: 200}
		if err := f.q.MarkDelivered(ctx, d, a2); err != nil {
			t.Fatal(err)
		}
		if want := []string{"deliveries/delivered/" + id + "-1.json"}; !slices.Equal(keys(t, s, "deliveries/"), want) {
			t.Errorf("keys = %q, want %q", keys(t, s, "deliveries/"), want)
		}
		got, err = f.q.Load(ctx, d.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.State != queue.StateDelivered || len(got.Attempts) != 2 || got.Attempts[1] != a2 || !got.NextAttemptAt.IsZero() {
			t.Errorf("delivered record = %+v", got)
		}
		// Repeating it (a crash before the caller learnt it worked) is fine.
		if err := f.q.MarkDelivered(ctx, d, a2); err != nil {
			t.Errorf("MarkDelivered again: %v", err)
		}
		if n := len(keys(t, s, "deliveries/")); n != 1 {
			t.Errorf("%d records after repeat, want 1", n)
		}
	})
}

// crash plays a MarkDelivered/MarkFailed cut short between its two writes:
// the terminal twin is written, the pending record stays.
func TestCrashBetweenFinishSteps(t *testing.T) {
	for _, final := range []queue.State{queue.StateDelivered, queue.StateFailed} {
		t.Run(string(final), func(t *testing.T) {
			backends(t, func(t *testing.T, s store.Store) {
				ctx := t.Context()
				f, _, d := attempted(t, s)
				// Mark on a separate queue whose store loses the delete.
				crashing := &crashStore{Store: s}
				cq := queue.New(queue.Options{Store: crashing, Now: func() time.Time { return t0 }})
				a := queue.Attempt{At: t0, Status: 200}
				var err error
				if final == queue.StateDelivered {
					err = cq.MarkDelivered(ctx, d, a)
				} else {
					a.Status = 400
					err = cq.MarkFailed(ctx, d, a, "HTTP 400")
				}
				if err == nil {
					t.Fatal("the crashing store did not crash")
				}
				if n := len(keys(t, s, "deliveries/pending/")); n != 1 {
					t.Fatalf("%d pending records, want the one left behind", n)
				}
				// A fresh process lists nothing to send and cleans up.
				listed := pending(t, f.q)
				if len(listed) != 0 {
					t.Errorf("Pending yielded %d records, want 0", len(listed))
				}
				if n := len(keys(t, s, "deliveries/pending/")); n != 0 {
					t.Errorf("%d pending records left, want 0", n)
				}
				got, err := f.q.Load(ctx, d.ID)
				if err != nil || got.State != final || len(got.Attempts) != 1 || got.Attempts[0].Unfinished {
					t.Errorf("Load = %+v, %v; want %s with 1 finished attempt", got, err, final)
				}
			})
		})
	}
}

func TestInterruptedAttemptStaysPending(t *testing.T) {
	backends(t, func(t *testing.T, s store.Store) {
		ctx := t.Context()
		f := newFixture(t, s, routes{"a@x": "http://one"})
		f.accept(t, "a@x")
		d := f.enqueued[0]
		retryAt := t0.Add(45 * time.Second)
		if err := f.q.BeginAttempt(ctx, d, t0, retryAt); err != nil {
			t.Fatal(err)
		}
		// kill -9 here. A fresh queue:
		fresh := queue.New(queue.Options{Store: s})
		listed := pending(t, fresh)
		if len(listed) != 1 {
			t.Fatalf("Pending yielded %d, want 1", len(listed))
		}
		got := listed[0]
		if !got.NextAttemptAt.Equal(retryAt) || len(got.Attempts) != 1 || !got.Attempts[0].Unfinished || got.Attempts[0].Error == "" {
			t.Errorf("interrupted record = %+v", got)
		}
		// The next attempt's result settles a new attempt; the interrupted
		// one stays in the log.
		if err := fresh.BeginAttempt(ctx, got, retryAt, retryAt.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		if err := fresh.MarkDelivered(ctx, got, queue.Attempt{At: retryAt, Status: 204}); err != nil {
			t.Fatal(err)
		}
		if len(got.Attempts) != 2 || !got.Attempts[0].Unfinished || got.Attempts[1].Unfinished || got.Attempts[1].Status != 204 {
			t.Errorf("attempts = %+v", got.Attempts)
		}
	})
}

// crashStore loses every Delete, returning an error as a crash would.
type crashStore struct{ store.Store }

func (c *crashStore) Delete(ctx context.Context, key string) error {
	return errors.New("crash")
}

func TestReplay(t *testing.T) {
	backends(t, func(t *testing.T, s store.Store) {
		ctx := t.Context()
		f, id, d := attempted(t, s)
		if err := f.q.MarkFailed(ctx, d, queue.Attempt{At: t0, Status: 410}, "HTTP 410"); err != nil {
			t.Fatal(err)
		}
		var failed []string
		for d, err := range f.q.Failed(ctx) {
			if err != nil {
				t.Fatal(err)
			}
			failed = append(failed, d.ID)
		}
		if !slices.Equal(failed, []string{d.ID}) {
			t.Fatalf("Failed = %q", failed)
		}

		f.now = t0.Add(5 * 24 * time.Hour)
		f.enqueued = nil
		if err := f.q.Replay(ctx, d.ID, "http://other"); err != nil {
			t.Fatal(err)
		}
		if want := []string{"deliveries/pending/" + d.ID + ".json"}; !slices.Equal(keys(t, s, "deliveries/"), want) {
			t.Errorf("keys = %q, want %q", keys(t, s, "deliveries/"), want)
		}
		got, err := f.q.Load(ctx, d.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.State != queue.StatePending || got.EventID != id || got.Endpoint != "http://other" || len(got.Attempts) != 1 ||
			!got.NextAttemptAt.Equal(f.now) || !got.ReplayedAt.Equal(f.now) || got.Replays != 1 || !got.RetryWindowStart().Equal(f.now) {
			t.Errorf("replayed = %+v", got)
		}
		if len(f.enqueued) != 1 || f.enqueued[0].ID != d.ID {
			t.Errorf("OnEnqueue = %v", f.enqueued)
		}
		if err := f.q.Replay(ctx, d.ID, ""); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Replay of a pending delivery = %v, want ErrNotFound", err)
		}
		if err := f.q.Replay(ctx, "nope", ""); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Replay of a bad id = %v, want ErrNotFound", err)
		}
	})
}

func TestReplayInterrupted(t *testing.T) {
	ctx := t.Context()
	s := newMemStore()
	f, _, d := attempted(t, s)
	if err := f.q.MarkFailed(ctx, d, queue.Attempt{At: t0, Status: 404}, "HTTP 404"); err != nil {
		t.Fatal(err)
	}
	// Replay crashes after writing the pending record.
	s.Fail = func(op, key string) error {
		if op == "delete" {
			return errors.New("crash")
		}
		return nil
	}
	if err := f.q.Replay(ctx, d.ID, ""); err == nil {
		t.Fatal("Replay succeeded through the crash")
	}
	s.Fail = nil
	// Repeating it finishes it.
	if err := f.q.Replay(ctx, d.ID, ""); err != nil {
		t.Fatalf("Replay again: %v", err)
	}
	if want := []string{"deliveries/pending/" + d.ID + ".json"}; !slices.Equal(keys(t, s, "deliveries/"), want) {
		t.Errorf("keys = %q, want %q", keys(t, s, "deliveries/"), want)
	}

	// A stale failed twin (replay crashed, never repeated) does not make
	// an interrupted attempt of the replayed delivery look finished, and
	// goes away when the delivery is delivered.
	p, err := f.q.Load(ctx, d.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.q.BeginAttempt(ctx, p, t0, t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	putRecordCopy(t, s, "deliveries/failed/"+d.ID+".json", "deliveries/pending/"+d.ID+".json", func(m map[string]any) {
		m["state"] = "failed"
		m["attempts"] = m["attempts"].([]any)[:1]
	})
	got, err := f.q.Load(ctx, d.ID)
	if err != nil || got.State != queue.StatePending {
		t.Fatalf("Load = %+v, %v; want still pending", got, err)
	}
	if err := f.q.MarkDelivered(ctx, got, queue.Attempt{At: t0, Status: 200}); err != nil {
		t.Fatal(err)
	}
	if want := []string{"deliveries/delivered/" + d.ID + ".json"}; !slices.Equal(keys(t, s, "deliveries/"), want) {
		t.Errorf("keys = %q, want %q", keys(t, s, "deliveries/"), want)
	}
}

// On a store without moves (S3) a record changes state by a write and a
// delete. A replay that runs while such a delete is on its way must not
// lose the delivery: the late delete removes only the version it was
// meant for (store.DeleteIfMatch).
func TestReplayRacesMove(t *testing.T) {
	ctx := t.Context()
	// onDelete runs fn once, just before the first delete of key lands.
	onDelete := func(s *memStore, key string, fn func()) {
		done := false
		s.SetFail(func(op, k string) error {
			if op == "delete" && k == key && !done {
				done = true
				fn()
			}
			return nil
		})
	}
	t.Run("replay before the failure's delete of the pending record", func(t *testing.T) {
		s := newMemStore()
		f, _, d := attempted(t, s)
		onDelete(s, "deliveries/pending/"+d.ID+".json", func() {
			if err := f.q.Replay(ctx, d.ID, ""); err != nil {
				t.Errorf("Replay: %v", err)
			}
		})
		if err := f.q.MarkFailed(ctx, d, queue.Attempt{At: t0, Status: 400}, "HTTP 400"); err != nil {
			t.Fatal(err)
		}
		if want := []string{"deliveries/pending/" + d.ID + ".json"}; !slices.Equal(keys(t, s, "deliveries/"), want) {
			t.Fatalf("keys = %q, want the replayed record only", keys(t, s, "deliveries/"))
		}
		if got, err := f.q.Load(ctx, d.ID); err != nil || got.State != queue.StatePending || got.Replays != 1 {
			t.Errorf("Load = %+v, %v; want pending, replayed once", got, err)
		}
	})
	t.Run("failure again before the replay's delete of the dead letter", func(t *testing.T) {
		s := newMemStore()
		f, _, d := attempted(t, s)
		if err := f.q.MarkFailed(ctx, d, queue.Attempt{At: t0, Status: 400}, "HTTP 400"); err != nil {
			t.Fatal(err)
		}
		onDelete(s, "deliveries/failed/"+d.ID+".json", func() {
			// Another process attempts the replayed delivery: 400 again.
			p, err := f.q.Load(ctx, d.ID)
			if err != nil || p.State != queue.StatePending {
				t.Fatalf("Load = %+v, %v", p, err)
			}
			if err := f.q.BeginAttempt(ctx, p, t0, t0.Add(time.Minute)); err != nil {
				t.Fatal(err)
			}
			if err := f.q.MarkFailed(ctx, p, queue.Attempt{At: t0, Status: 400}, "HTTP 400"); err != nil {
				t.Fatal(err)
			}
		})
		if err := f.q.Replay(ctx, d.ID, ""); err != nil {
			t.Fatal(err)
		}
		if want := []string{"deliveries/failed/" + d.ID + ".json"}; !slices.Equal(keys(t, s, "deliveries/"), want) {
			t.Fatalf("keys = %q, want the second dead letter", keys(t, s, "deliveries/"))
		}
		if got, err := f.q.Load(ctx, d.ID); err != nil || got.State != queue.StateFailed || len(got.Attempts) != 2 {
			t.Errorf("Load = %+v, %v; want failed with both attempts", got, err)
		}
	})
}

// attempted accepts a message for a@x (routed to http://one) on s and
// begins the first attempt of its delivery, due again in a minute.
func attempted(t *testing.T, s store.Store) (f *fixture, id string, d *queue.Delivery) {
	t.Helper()
	f = newFixture(t, s, routes{"a@x": "http://one"})
	id = f.accept(t, "a@x")
	d = f.enqueued[0]
	if err := f.q.BeginAttempt(t.Context(), d, t0, t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	return f, id, d
}

// putRecordCopy writes at dst the record at src, changed by edit.
func putRecordCopy(t *testing.T, s store.Store, dst, src string, edit func(map[string]any)) {
	t.Helper()
	m := readRecord(t, s, src)
	edit(m)
	b, _ := json.Marshal(m)
	if _, err := s.Put(t.Context(), dst, bytes.NewReader(b), store.PutOptions{}); err != nil {
		t.Fatal(err)
	}
}

func TestReplayReroutes(t *testing.T) {
	ctx := t.Context()
	r := routes{}
	f := newFixture(t, newMemStore(), r)
	id := f.accept(t, "a@x", "b@x")
	recID := queue.RecordID(id, 1)
	if err := f.q.Replay(ctx, recID, ""); !errors.Is(err, queue.ErrNoEndpoint) {
		t.Errorf("Replay with no endpoint anywhere = %v, want ErrNoEndpoint", err)
	}
	r["a@x"], r["b@x"] = "http://now", "http://now"
	if err := f.q.Replay(ctx, recID, ""); err != nil {
		t.Fatal(err)
	}
	got, err := f.q.Load(ctx, recID)
	if err != nil || got.Endpoint != "http://now" || got.State != queue.StatePending || got.EventID != id {
		t.Errorf("Load = %+v, %v", got, err)
	}
}

// A pending delivery replayed goes to the endpoint given, or where its
// recipients route now, due at once, as a replay (same event, a fresh
// retry window, its attempts kept); an attempt under way that fails
// cannot record its retry over it, and a settled delivery is no longer
// pending.
func TestReplayPending(t *testing.T) {
	backends(t, func(t *testing.T, s store.Store) {
		ctx := t.Context()
		r := routes{"a@x": "http://one"}
		f := newFixture(t, s, r)
		id := f.accept(t, "a@x")
		d := f.enqueued[0]
		if err := f.q.BeginAttempt(ctx, d, t0, t0.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		stale := *d

		f.now = t0.Add(10 * time.Minute)
		r["a@x"] = "http://moved" // the configuration changed since
		to, err := f.q.ReplayPending(ctx, d.ID, "")
		if err != nil || to != "http://moved" {
			t.Fatalf("ReplayPending = %q, %v", to, err)
		}
		got, err := f.q.Load(ctx, d.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.State != queue.StatePending || got.EventID != id || got.Endpoint != "http://moved" || len(got.Attempts) != 1 ||
			!got.NextAttemptAt.Equal(f.now) || got.Replays != 1 || !got.RetryWindowStart().Equal(f.now) {
			t.Errorf("replayed = %+v", got)
		}
		if to, err := f.q.ReplayPending(ctx, d.ID, "http://given"); err != nil || to != "http://given" {
			t.Errorf("ReplayPending to an endpoint given = %q, %v", to, err)
		}
		if got, _ := f.q.Load(ctx, d.ID); got == nil || got.Endpoint != "http://given" || got.Replays != 2 {
			t.Errorf("replayed again = %+v", got)
		}
		if err := f.q.RecordAttempt(ctx, &stale, queue.Attempt{At: f.now, Status: 503}, f.now.Add(time.Hour)); !errors.Is(err, store.ErrPrecondition) {
			t.Errorf("an attempt's retry recorded on the version before the replay = %v, want ErrPrecondition", err)
		}
		// Its final failure does not undo the replay either: refused
		// where moves are conditional, left beside it elsewhere.
		failedStale := stale
		_ = f.q.MarkFailed(ctx, &failedStale, queue.Attempt{At: f.now, Status: 410}, "HTTP 410")
		if got, err := f.q.Load(ctx, d.ID); err != nil || got.State != queue.StatePending || got.Endpoint != "http://given" {
			t.Fatalf("after the stale failure: %+v, %v; want the replay still pending", got, err)
		}
		cur, err := f.q.Load(ctx, d.ID)
		if err != nil {
			t.Fatal(err)
		}
		if err := f.q.MarkDelivered(ctx, cur, queue.Attempt{At: f.now, Status: 204}); err != nil {
			t.Fatal(err)
		}
		if _, err := f.q.ReplayPending(ctx, d.ID, ""); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("ReplayPending of a delivered one = %v, want ErrNotFound", err)
		}
		// Recipients that route to several endpoints now: one must be given.
		r["b@x"], r["c@x"] = "http://bc", "http://bc"
		other := queue.RecordID(f.accept(t, "b@x", "c@x"), 1)
		r["b@x"], r["c@x"] = "http://b", "http://c"
		if _, err := f.q.ReplayPending(ctx, other, ""); !errors.Is(err, queue.ErrNoEndpoint) {
			t.Errorf("ReplayPending to recipients routed apart = %v, want ErrNoEndpoint", err)
		}
		if to, err := f.q.ReplayPending(ctx, other, "http://bc2"); err != nil || to != "http://bc2" {
			t.Errorf("ReplayPending to an endpoint given = %q, %v", to, err)
		}
	})
}

// A failed record beside a delivered one is stale (a cleanup that did
// not happen): Load says delivered, and Replay removes it instead of
// sending the delivery again.
func TestStaleFailedBesideDelivered(t *testing.T) {
	backends(t, func(t *testing.T, s store.Store) {
		ctx := t.Context()
		f, _, d := attempted(t, s)
		putRecordCopy(t, s, "deliveries/failed/"+d.ID+".json", "deliveries/pending/"+d.ID+".json", func(m map[string]any) {
			m["state"] = "failed"
			m["last_error"] = "HTTP 410"
		})
		if err := f.q.MarkDelivered(ctx, d, queue.Attempt{At: t0, Status: 204}); err != nil {
			t.Fatal(err)
		}
		if got, err := f.q.Load(ctx, d.ID); err != nil || got.State != queue.StateDelivered {
			t.Fatalf("Load = %+v, %v; want delivered", got, err)
		}
		if err := f.q.Replay(ctx, d.ID, ""); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Replay of the stale dead letter = %v, want ErrNotFound", err)
		}
		if want := []string{"deliveries/delivered/" + d.ID + ".json"}; !slices.Equal(keys(t, s, "deliveries/"), want) {
			t.Errorf("keys = %q, want %q", keys(t, s, "deliveries/"), want)
		}
	})
}

func TestValidRecordID(t *testing.T) {
	id := event.NewID(t0)
	tests := []struct {
		in   string
		want bool
	}{
		{id + "-1", true},
		{id + "-12", true},
		{id, false},
		{id + "-", false},
		{id + "-0", false},
		{id + "-01", false},
		{id + "-1x", false},
		{id + "-99999", false},
		{"../x-1", false},
		{"", false},
	}
	for _, tt := range tests {
		if got := queue.ValidRecordID(tt.in); got != tt.want {
			t.Errorf("ValidRecordID(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

// orderStore records the writes that reach a store: directory, Lazy and
// Unordered.
type orderStore struct {
	store.Store
	mu  sync.Mutex
	ops []string
}

func (o *orderStore) Put(ctx context.Context, key string, body io.Reader, opts store.PutOptions) (store.Object, error) {
	o.mu.Lock()
	o.ops = append(o.ops, fmt.Sprintf("put %s lazy=%t unordered=%t", path.Dir(key), opts.Lazy, opts.Unordered && opts.IfNoneMatch))
	o.mu.Unlock()
	return o.Store.Put(ctx, key, body, opts)
}

func (o *orderStore) Delete(ctx context.Context, key string) error {
	o.mu.Lock()
	o.ops = append(o.ops, "delete "+path.Dir(key))
	o.mu.Unlock()
	return o.Store.Delete(ctx, key)
}

// TestLazyWrites: the writes that may be Lazy are each followed by a
// durable one that makes them durable: Accept's raw object by its records,
// an outcome by the deletion of the pending record. Accept's writes are
// create-only and Unordered (their readers check them); the outcome's are
// not.
func TestLazyWrites(t *testing.T) {
	rec := &orderStore{Store: newMemStore()}
	f := newFixture(t, rec, routes{"a@x": "http://a", "b@x": "http://b"})
	id := event.NewID(t0)
	if err := f.q.Accept(t.Context(), id, t0, event.Envelope{MailFrom: "s@x", RcptTo: []string{"a@x", "b@x"}}, strings.NewReader("Subject: x\r\n\r\nhi\r\n")); err != nil {
		t.Fatal(err)
	}
	want := []string{"put raw lazy=true unordered=true", "put deliveries/pending lazy=false unordered=true", "put deliveries/pending lazy=false unordered=true"}
	if !slices.Equal(rec.ops, want) {
		t.Errorf("Accept wrote %q, want %q (the raw object first, Lazy)", rec.ops, want)
	}
	rec.ops = nil
	d := f.enqueued[0]
	if err := f.q.MarkDelivered(t.Context(), d, queue.Attempt{At: t0, Status: 200}); err != nil {
		t.Fatal(err)
	}
	want = []string{"put deliveries/delivered lazy=true unordered=false", "delete deliveries/pending"}
	if !slices.Equal(rec.ops, want) {
		t.Errorf("MarkDelivered wrote %q, want %q", rec.ops, want)
	}
}

func TestIDsByState(t *testing.T) {
	backends(t, func(t *testing.T, s store.Store) {
		f := newFixture(t, s, routes{"a@example.com": "http://h/a", "b@example.com": ""})
		id := f.accept(t, "a@example.com", "b@example.com")
		for state, want := range map[queue.State][]string{
			queue.StatePending:   {queue.RecordID(id, 1)},
			queue.StateFailed:    {queue.RecordID(id, 2)},
			queue.StateDelivered: nil,
		} {
			var got []string
			for rid, err := range f.q.IDs(t.Context(), state, "") {
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, rid)
			}
			if !slices.Equal(got, want) {
				t.Errorf("IDs(%s) = %v, want %v", state, got, want)
			}
		}
	})
}

// With ClaimTTL, Accept writes every pending record with the owner's
// claim; the first update drops it; a crash between the two steps of
// recording the outcome of an attempt made under the claim (which persists
// no unfinished attempt) is settled from the twin like any other.
func TestClaims(t *testing.T) {
	backends(t, func(t *testing.T, s store.Store) {
		ctx := t.Context()
		owner := queue.LeaseOwner{ID: "r1", Host: "h", PID: 7}
		var enqueued []*queue.Delivery
		q := queue.New(queue.Options{
			Store: s, Router: routes{"a@x": "http://one", "b@x": "http://two", "c@x": ""},
			Now:       func() time.Time { return t0 },
			OnEnqueue: func(d *queue.Delivery) { enqueued = append(enqueued, d) },
			Owner:     owner, ClaimTTL: 15 * time.Second,
		})
		id := event.NewID(t0)
		before := time.Now()
		if err := q.Accept(ctx, id, t0, event.Envelope{MailFrom: "s@x", RcptTo: []string{"a@x", "b@x", "c@x"}}, strings.NewReader("Subject: x\r\n\r\nhi\r\n")); err != nil {
			t.Fatal(err)
		}
		if len(enqueued) != 2 {
			t.Fatalf("%d enqueued, want 2", len(enqueued))
		}
		for _, d := range enqueued {
			c := d.Claim
			if c == nil || c.Owner != "r1" || c.Host != "h" || c.PID != 7 || !c.ExpiresAt.Equal(t0.Add(15*time.Second)) {
				t.Errorf("%s: claim = %+v", d.ID, c)
			}
			if at := d.ClaimedAt(); at.Before(before) || at.After(time.Now()) {
				t.Errorf("%s: ClaimedAt = %v, not during Accept", d.ID, at)
			}
			stored := readRecord(t, s, queue.RecordKey(queue.StatePending, d.ID))
			if claim, _ := stored["claim"].(map[string]any); claim["owner"] != "r1" {
				t.Errorf("%s: stored claim = %v", d.ID, stored["claim"])
			}
		}
		failed, err := q.Load(ctx, queue.RecordID(id, 3))
		if err != nil || failed.Claim != nil {
			t.Errorf("unrouted record = %+v, %v; want no claim", failed, err)
		}
		loaded, err := q.Load(ctx, enqueued[0].ID)
		if err != nil || loaded.Claim == nil || !loaded.ClaimedAt().IsZero() {
			t.Errorf("record read back = %+v, %v; want the claim, not claimed by this process", loaded, err)
		}

		// The first update ends the claim.
		d1 := enqueued[0]
		if err := q.BeginAttempt(ctx, d1, t0, t0.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		if d1.Claim != nil || !d1.ClaimedAt().IsZero() {
			t.Errorf("after BeginAttempt: claim %+v", d1.Claim)
		}
		if _, ok := readRecord(t, s, queue.RecordKey(queue.StatePending, d1.ID))["claim"]; ok {
			t.Error("stored record keeps its claim after BeginAttempt")
		}

		// Delivered under the claim, then the process dies before the
		// pending record is deleted: loading settles it.
		d2 := enqueued[1]
		cq := queue.New(queue.Options{Store: &crashStore{Store: s}})
		if err := cq.MarkDelivered(ctx, d2, queue.Attempt{At: t0, Status: 200}); err == nil {
			t.Fatal("the crashing store did not crash")
		}
		got, err := q.Load(ctx, d2.ID)
		if err != nil || got.State != queue.StateDelivered {
			t.Errorf("Load after the crash = %+v, %v; want delivered", got, err)
		}
		if left := keys(t, s, queue.RecordKey(queue.StatePending, d2.ID)); len(left) != 0 {
			t.Errorf("pending record left: %v", left)
		}

		// ReleaseClaim drops an unused claim.
		id2 := event.NewID(t0)
		if err := q.Accept(ctx, id2, t0, event.Envelope{MailFrom: "s@x", RcptTo: []string{"a@x"}}, strings.NewReader("x\r\n")); err != nil {
			t.Fatal(err)
		}
		d3 := enqueued[2]
		if err := q.ReleaseClaim(ctx, d3); err != nil {
			t.Fatal(err)
		}
		got, err = q.Load(ctx, d3.ID)
		if err != nil || got.Claim != nil || got.State != queue.StatePending || len(got.Attempts) != 0 {
			t.Errorf("after ReleaseClaim: %+v, %v; want pending, unclaimed, untouched", got, err)
		}
	})
}

// The "message stored" line is at info level only when a recipient has no
// endpoint; otherwise the SMTP transaction line says it all.
func TestAcceptLogLevel(t *testing.T) {
	var buf bytes.Buffer
	q := queue.New(queue.Options{
		Store:  newMemStore(),
		Router: routes{"a@x": "http://one"},
		Logger: slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo})),
		Now:    func() time.Time { return t0 },
	})
	accept := func(rcpts ...string) string {
		t.Helper()
		buf.Reset()
		env := event.Envelope{MailFrom: "s@x", RcptTo: rcpts}
		if err := q.Accept(t.Context(), event.NewID(t0), t0, env, strings.NewReader("Subject: x\r\n\r\nhi\r\n")); err != nil {
			t.Fatal(err)
		}
		return buf.String()
	}
	if got := accept("a@x"); got != "" {
		t.Errorf("routed message logged at info: %s", got)
	}
	if got := accept("a@x", "nobody@x"); !strings.Contains(got, `"msg":"message stored"`) || !strings.Contains(got, `"unrouted_rcpts":1`) {
		t.Errorf("message with an unrouted recipient logged %q, want the stored line with unrouted_rcpts 1", got)
	}
}

// TestDropEmpty: an empty record loads as ErrEmptyRecord, and DropEmpty
// deletes it, once old enough, and nothing else.
func TestDropEmpty(t *testing.T) {
	backends(t, func(t *testing.T, s store.Store) {
		ctx := t.Context()
		f := newFixture(t, s, routes{"a@x": "http://a"})
		whole := queue.RecordID(f.accept(t, "a@x"), 1)
		empty := queue.RecordID(event.NewID(t0), 1)
		if _, err := s.Put(ctx, queue.RecordKey(queue.StatePending, empty), strings.NewReader(""), store.PutOptions{IfNoneMatch: true, Size: -1}); err != nil {
			t.Fatal(err)
		}
		if _, err := f.q.Load(ctx, empty); !errors.Is(err, queue.ErrEmptyRecord) {
			t.Errorf("Load of an empty record: %v, want ErrEmptyRecord", err)
		}
		later := time.Now().Add(time.Hour)
		for _, tc := range []struct {
			id       string
			notAfter time.Time
			want     bool
		}{
			{whole, later, false},
			{empty, time.Now().Add(-time.Hour), false}, // too young
			{empty, later, true},
			{empty, later, false}, // gone
			{"01JZZZZZZZZZZZZZZZZZZZZZZZ-1", later, false},
		} {
			if got, err := f.q.DropEmpty(ctx, tc.id, tc.notAfter); err != nil || got != tc.want {
				t.Errorf("DropEmpty(%s, %s) = %t, %v; want %t", tc.id, tc.notAfter.Format(time.TimeOnly), got, err, tc.want)
			}
		}
		if _, err := f.q.Load(ctx, whole); err != nil {
			t.Errorf("the whole record: %v", err)
		}
		if _, err := s.Stat(ctx, queue.RecordKey(queue.StatePending, empty)); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("the empty record after DropEmpty: %v, want ErrNotFound", err)
		}
	})
}

// statThenRestore is a store whose Stat lets restore run right after it
// looked: a record restored between DropEmpty's look and its delete.
type statThenRestore struct {
	*fs.Store
	restore func()
}

func (s statThenRestore) Stat(ctx context.Context, key string) (store.Object, error) {
	obj, err := s.Store.Stat(ctx, key)
	if s.restore != nil {
		s.restore()
	}
	return obj, err
}

// TestDropEmptyKeepsRestored: a record found empty but whole again by the
// time DropEmpty deletes it (restored from the filesystem store's log
// after a crash of the machine, by another process) is kept.
func TestDropEmptyKeepsRestored(t *testing.T) {
	ctx := t.Context()
	fsStore, err := fs.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer fsStore.Close()
	id := queue.RecordID(event.NewID(t0), 1)
	key := queue.RecordKey(queue.StatePending, id)
	if _, err := fsStore.Put(ctx, key, strings.NewReader(""), store.PutOptions{IfNoneMatch: true, Size: -1}); err != nil {
		t.Fatal(err)
	}
	s := statThenRestore{Store: fsStore, restore: func() {
		if _, err := fsStore.Put(ctx, key, strings.NewReader(`{"version":1}`), store.PutOptions{Size: -1}); err != nil {
			t.Error(err)
		}
	}}
	f := newFixture(t, s, routes{})
	if dropped, err := f.q.DropEmpty(ctx, id, time.Now().Add(time.Hour)); err != nil || dropped {
		t.Errorf("DropEmpty = %t, %v; want false: the record is whole again", dropped, err)
	}
	if obj, err := fsStore.Stat(ctx, key); err != nil || obj.Size == 0 {
		t.Errorf("the restored record: %+v, %v", obj, err)
	}
}
