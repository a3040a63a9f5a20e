package queue_test

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/mailhook/mailhook/event"
	"github.com/mailhook/mailhook/queue"
	"github.com/mailhook/mailhook/store"
)

// The first attempt of a delivery accepted under a claim reads its raw
// message from memory, once, within the cache's bounds; everything else
// reads the store.
func TestOpenRawFromMemory(t *testing.T) {
	small := "Subject: hi\r\n\r\nbody\r\n"
	large := "Subject: big\r\n\r\n" + strings.Repeat("x", 70<<10) + "\r\n"
	type accepted struct {
		d   *queue.Delivery
		raw string
	}
	setup := func(t *testing.T, cacheBytes int64, r queue.Router, claim bool) (*queue.Queue, store.Store, func(body string, rcpts ...string) accepted) {
		s := newMemStore()
		var got []*queue.Delivery
		opts := queue.Options{Store: s, Router: r, RawCacheBytes: cacheBytes,
			OnEnqueue: func(d *queue.Delivery) { got = append(got, d) }}
		if claim {
			opts.Owner, opts.ClaimTTL = queue.LeaseOwner{ID: "me"}, time.Minute
		}
		q := queue.New(opts)
		accept := func(body string, rcpts ...string) accepted {
			t.Helper()
			got = nil
			id := event.NewID(time.Now())
			env := event.Envelope{MailFrom: "a@example.org", RcptTo: rcpts}
			if err := q.Accept(t.Context(), id, time.Now(), env, strings.NewReader(body)); err != nil {
				t.Fatal(err)
			}
			return accepted{got[0], body}
		}
		return q, s, accept
	}
	// fromMemory reports whether OpenRaw of a reads the message without
	// the store (whose raw object it removes first), and checks the bytes.
	fromMemory := func(t *testing.T, q *queue.Queue, s store.Store, a accepted) bool {
		t.Helper()
		if err := s.Delete(t.Context(), a.d.Raw.Key); err != nil {
			t.Fatal(err)
		}
		rc, err := q.OpenRaw(t.Context(), a.d)
		if err != nil {
			return false
		}
		defer rc.Close()
		b, err := io.ReadAll(rc)
		if err != nil || string(b) != a.raw {
			t.Errorf("raw from memory = %q, %v; want the message", b, err)
		}
		return true
	}
	one := routes{"a@x": "http://one", "b@x": "http://two"}

	t.Run("first attempt", func(t *testing.T) {
		q, s, accept := setup(t, 0, one, true)
		a := accept(small, "a@x")
		if !fromMemory(t, q, s, a) {
			t.Fatal("not kept in memory")
		}
		// Once only: the next read goes to the store (gone here).
		if _, err := q.OpenRaw(t.Context(), a.d); err == nil {
			t.Error("second OpenRaw did not go to the store")
		}
	})
	for _, tc := range []struct {
		name       string
		cacheBytes int64
		claim      bool
		body       string
		rcpts      []string
	}{
		{"without a claim (another process may attempt it)", 0, false, small, []string{"a@x"}},
		{"two endpoints", 0, true, small, []string{"a@x", "b@x"}},
		{"larger than 64 KiB", 0, true, large, []string{"a@x"}},
		{"disabled", -1, true, small, []string{"a@x"}},
	} {
		t.Run("not kept: "+tc.name, func(t *testing.T) {
			q, s, accept := setup(t, tc.cacheBytes, one, tc.claim)
			if fromMemory(t, q, s, accept(tc.body, tc.rcpts...)) {
				t.Error("kept in memory")
			}
		})
	}
	t.Run("budget", func(t *testing.T) {
		// Room for one small message: the second waits for the first to
		// be read.
		msg := "Subject: budget\r\n\r\n" + strings.Repeat("y", 60) + "\r\n" // 81 bytes
		q, s, accept := setup(t, 150, one, true)
		a1, a2 := accept(msg, "a@x"), accept(msg, "a@x")
		if fromMemory(t, q, s, a2) {
			t.Error("second message kept beyond the budget")
		}
		if !fromMemory(t, q, s, a1) { // read and closed: its share returns
			t.Fatal("first message not kept")
		}
		if !fromMemory(t, q, s, accept(msg, "a@x")) {
			t.Error("the budget was not released by Close")
		}
	})
	t.Run("an updated record", func(t *testing.T) {
		// BeginAttempt (an attempt not made under the fresh claim) drops
		// it: what is read then comes from the store.
		q, s, accept := setup(t, 0, one, true)
		a := accept(small, "a@x")
		if err := q.BeginAttempt(t.Context(), a.d, time.Now(), time.Now().Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		rc, err := q.OpenRaw(t.Context(), a.d)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(rc)
		rc.Close()
		if !bytes.Equal(b, []byte(small)) {
			t.Errorf("raw = %q", b)
		}
		if fromMemory(t, q, s, a) {
			t.Error("kept after an update")
		}
	})
}

// Only the first read of a delivery this process accepted, not updated
// since, is Verified: from memory or from the store.
func TestOpenRawVerified(t *testing.T) {
	ctx := t.Context()
	s := newMemStore()
	var handed []*queue.Delivery
	q := queue.New(queue.Options{Store: s, Router: routes{"a@x": "http://one"},
		Owner: queue.LeaseOwner{ID: "me"}, ClaimTTL: time.Minute,
		OnEnqueue: func(d *queue.Delivery) { handed = append(handed, d) }})
	accept := func(body string) *queue.Delivery {
		t.Helper()
		handed = nil
		id := event.NewID(time.Now())
		env := event.Envelope{MailFrom: "a@example.org", RcptTo: []string{"a@x"}}
		if err := q.Accept(ctx, id, time.Now(), env, strings.NewReader(body)); err != nil {
			t.Fatal(err)
		}
		if len(handed) != 1 {
			t.Fatalf("%d deliveries handed over", len(handed))
		}
		return handed[0]
	}
	verified := func(d *queue.Delivery) bool {
		t.Helper()
		rc, err := q.OpenRaw(ctx, d)
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		if _, err := io.Copy(io.Discard, rc); err != nil {
			t.Fatal(err)
		}
		return queue.Verified(rc)
	}
	small := "Subject: hi\r\n\r\nbody\r\n"
	large := "Subject: big\r\n\r\n" + strings.Repeat("x", 70<<10) + "\r\n" // not kept in memory
	for _, body := range []string{small, large} {
		d := accept(body)
		if !verified(d) {
			t.Errorf("first read of a %d-byte message not Verified", len(body))
		}
		if verified(d) {
			t.Errorf("second read of a %d-byte message Verified", len(body))
		}
		loaded, err := q.Load(ctx, d.ID)
		if err != nil {
			t.Fatal(err)
		}
		if verified(loaded) {
			t.Errorf("read of a loaded %d-byte record Verified", len(body))
		}
		d = accept(body)
		if err := q.BeginAttempt(ctx, d, time.Now(), time.Now().Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		if verified(d) {
			t.Errorf("read of an updated %d-byte record Verified", len(body))
		}
	}
	if queue.Verified(strings.NewReader(small)) {
		t.Error("a strings.Reader is Verified")
	}
}
