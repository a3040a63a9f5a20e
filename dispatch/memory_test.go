package dispatch

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailhook/mailhook/event"
	"github.com/mailhook/mailhook/queue"
)

// Attempts run only while the memory their messages need fits in
// RenderMemory: with room for one, requests to an endpoint that allows
// eight go out one at a time; with room for all, they overlap.
func TestRenderMemoryBoundsAttempts(t *testing.T) {
	body := "Subject: big\r\n\r\n" + strings.Repeat("x", 100<<10) + "\r\n"
	for _, tt := range []struct {
		name     string
		memory   int64
		wantPeak func(int) bool
	}{
		{"room for one", 600 << 10, func(p int) bool { return p == 1 }},
		{"room for all", 64 << 20, func(p int) bool { return p > 1 }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var mu sync.Mutex
			inflight, peak := 0, 0
			rc := newReceiver(t, func(int, http.ResponseWriter, *http.Request) {
				mu.Lock()
				inflight++
				peak = max(peak, inflight)
				mu.Unlock()
				time.Sleep(30 * time.Millisecond)
				mu.Lock()
				inflight--
				mu.Unlock()
			})
			cfg := defaultTestConfig()
			cfg.PerEndpointConcurrency = 8
			cfg.RenderMemory = tt.memory
			h := newHarness(t, newMemStore(), rc.srv.URL, cfg)
			if w := h.d.renderWeight(int64(len(body)) + 100); w > 600<<10 || 2*w <= 600<<10 {
				t.Fatalf("weight of a 100 KB message = %d; the test needs room for exactly one in 600 KiB", w)
			}
			const n = 6
			ids := make([]string, n)
			for i := range ids {
				id := event.NewID(t0)
				env := event.Envelope{MailFrom: "s@example.org", RcptTo: []string{"a@example.com"}}
				if err := h.q.Accept(context.Background(), id, t0, env, strings.NewReader(body)); err != nil {
					t.Fatal(err)
				}
				ids[i] = id + "-1"
			}
			h.start(t)
			for _, id := range ids {
				h.waitState(t, id, queue.StateDelivered)
			}
			mu.Lock()
			defer mu.Unlock()
			if !tt.wantPeak(peak) {
				t.Errorf("%d requests in flight at once", peak)
			}
		})
	}
}

// A message larger than the whole bound is still sent (alone), and an
// unbounded dispatcher never waits.
func TestRenderWeight(t *testing.T) {
	d := New(Config{RenderMemory: 10 << 20}, nil, nil, nil, nil)
	for _, tt := range []struct {
		raw, want int64
	}{
		{0, renderOverhead},
		{1000, 4000 + renderOverhead},
		{2 << 20, 6<<20 + renderOverhead}, // streamed: three times its size
		{25 << 20, 10 << 20},              // capped: runs alone
		{-1, renderOverhead},
	} {
		if got := d.renderWeight(tt.raw); got != tt.want {
			t.Errorf("renderWeight(%d) = %d, want %d", tt.raw, got, tt.want)
		}
	}
	release, err := d.takeMemory(context.Background(), 1<<40)
	if err != nil {
		t.Fatalf("a message larger than the bound: %v", err)
	}
	release()
	u := New(Config{RenderMemory: -1}, nil, nil, nil, nil)
	if u.mem != nil {
		t.Error("RenderMemory < 0 still bounds")
	}
}

// An attempt at a message of freeAfterBytes or more, once answered, has
// the memory its render held collected and returned (freeMemory); one at
// a smaller message does not.
func TestLargeAttemptFreesMemory(t *testing.T) {
	var calls atomic.Int64
	defer func(f func()) { freeMemory = f }(freeMemory)
	freeMemory = func() { calls.Add(1) }
	rc := newReceiver(t, statuses(200))
	h := newHarness(t, newMemStore(), rc.srv.URL, defaultTestConfig())
	h.start(t)
	small := h.accept(t, t0, "a@example.com")
	h.waitState(t, small+"-1", queue.StateDelivered)
	if n := calls.Load(); n != 0 {
		t.Fatalf("%d collections after a small message, want 0", n)
	}
	id := event.NewID(t0)
	env := event.Envelope{MailFrom: "s@example.org", RcptTo: []string{"a@example.com"}}
	if err := h.q.Accept(context.Background(), id, t0, env, strings.NewReader(bigMessage(freeAfterBytes))); err != nil {
		t.Fatal(err)
	}
	h.waitState(t, id+"-1", queue.StateDelivered)
	waitFor(t, "the collection after the large message", func() bool { return calls.Load() == 1 })
}
