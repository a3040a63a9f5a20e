package dispatch

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
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

// BenchmarkEncodeEvent: the event of a 2 KB multipart message (the parse
// corpus's attachments.eml), by encoding/json as the renderer did before
// event.Event.AppendJSON, by AppendJSON as it does, and by WriteJSON, the
// streaming encoder, into a buffer.
func BenchmarkEncodeEvent(b *testing.B) {
	raw, err := os.ReadFile(filepath.Join("..", "parse", "testdata", "attachments.eml"))
	if err != nil {
		b.Fatal(err)
	}
	data, err := parse.Parse(bytes.NewReader(raw), parse.Options{})
	if err != nil {
		b.Fatal(err)
	}
	ev := eventOf(data)
	var buf bytes.Buffer
	b.Run("json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			buf.Reset()
			enc := json.NewEncoder(&buf)
			enc.SetEscapeHTML(false)
			if err := enc.Encode(ev); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("AppendJSON", func(b *testing.B) {
		b.ReportAllocs()
		var out []byte
		for b.Loop() {
			if out, err = ev.AppendJSON(out[:0]); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("WriteJSON", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			buf.Reset()
			if err := ev.WriteJSON(&buf); err != nil {
				b.Fatal(err)
			}
		}
	})
}
