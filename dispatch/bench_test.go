package dispatch

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/mailhook/mailhook/parse"
	"github.com/mailhook/mailhook/queue"
	"github.com/mailhook/mailhook/store"
)

// notifyingQueue reports each delivery it marks delivered.
type notifyingQueue struct {
	*queue.Queue
	delivered chan string
}

func (n notifyingQueue) MarkDelivered(ctx context.Context, d *queue.Delivery, a queue.Attempt) error {
	err := n.Queue.MarkDelivered(ctx, d, a)
	n.delivered <- d.ID
	return err
}

// BenchmarkDeliver measures one delivery end to end: Accept (raw object and
// record), Enqueue, scheduling, BeginAttempt, render, sign, POST to an
// httptest receiver, MarkDelivered.
func BenchmarkDeliver(b *testing.B) {
	for _, bc := range []struct {
		name  string
		store func(b *testing.B) store.Store
	}{
		{"mem", func(*testing.B) store.Store { return newMemStore() }},
		{"fs", func(b *testing.B) store.Store { return newFSStore(b) }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			rc := newReceiver(b, func(_ int, w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })
			cfg := defaultTestConfig()
			cfg.Now = time.Now
			h := newHarness(b, bc.store(b), rc.srv.URL, cfg)
			nq := notifyingQueue{Queue: h.q, delivered: make(chan string, 1)}
			h.d = New(cfg, nq, newRenderer(h.q, fakeParse, parse.Options{}), testSigner{}, nil)
			h.start(b)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				h.accept(b, time.Now(), "a@example.com")
				<-nq.delivered
			}
		})
	}
}
