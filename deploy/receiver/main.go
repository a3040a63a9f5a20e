// Command receiver is a sample webhook receiver for mailhook: it verifies
// each delivery's Standard Webhooks signature with the signing package,
// drops duplicates by webhook-id, and prints one line per event. It is what
// deploy/compose.yaml points MAILHOOK_WEBHOOK_URL at, and a starting point
// for a real application; it stores nothing.
//
//	MAILHOOK_WEBHOOK_SECRET=whsec_… go run ./deploy/receiver -addr :8000
//
// It reads the same MAILHOOK_WEBHOOK_SECRET mailhook signs with
// (comma-separated during a rotation: any one of them verifies).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/mailhook/mailhook/signing"
)

// maxBody bounds one event. Events carry attachments in base64, so allow
// well over MAILHOOK_MAX_MESSAGE_BYTES (25 MiB by default).
const maxBody = 64 << 20

func main() {
	addr := flag.String("addr", ":8000", "listen address")
	path := flag.String("path", "/webhook", "path deliveries are POSTed to")
	flag.Parse()

	secret := os.Getenv("MAILHOOK_WEBHOOK_SECRET")
	if strings.TrimSpace(secret) == "" {
		log.Fatal("receiver: set MAILHOOK_WEBHOOK_SECRET to the secret mailhook signs with")
	}
	signer, err := signing.NewSigner(strings.Split(secret, ",")...)
	if err != nil {
		log.Fatalf("receiver: MAILHOOK_WEBHOOK_SECRET: %v", err)
	}

	mux := http.NewServeMux()
	mux.Handle(*path, newHandler(signer, os.Stdout, time.Now))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) })
	srv := &http.Server{Addr: *addr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdownCtx)
	}()
	log.Printf("receiver: listening on %s, POST %s", *addr, *path)
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Fatal("receiver: ", err)
	}
}

// event is the part of mailhook's event this sample prints. Receivers
// decode only what they use and ignore unknown fields.
type event struct {
	Type string `json:"type"`
	Data struct {
		ID       string `json:"id"`
		Envelope struct {
			MailFrom string   `json:"mail_from"`
			RcptTo   []string `json:"rcpt_to"`
		} `json:"envelope"`
		Subject     string `json:"subject"`
		Attachments []struct {
			Filename string `json:"filename"`
		} `json:"attachments"`
		Raw struct {
			Key  string `json:"key"`
			Size int64  `json:"size"`
		} `json:"raw"`
		Warnings []string `json:"warnings"`
	} `json:"data"`
}

// handler verifies, deduplicates and prints deliveries.
type handler struct {
	signer *signing.Signer
	now    func() time.Time

	mu   sync.Mutex
	out  io.Writer
	seen map[string]bool // webhook-ids already taken
	fifo []string        // the same ids, oldest first, to bound seen
}

// seenMax bounds the ids remembered for deduplication. A real receiver
// keeps them in its database, in the same transaction as the event.
const seenMax = 10000

func newHandler(signer *signing.Signer, out io.Writer, now func() time.Time) http.Handler {
	return &handler{signer: signer, now: now, out: out, seen: map[string]bool{}}
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		// 413 is a 4xx: mailhook will not retry it, the event becomes a
		// dead letter that can be replayed once the limit is raised.
		http.Error(w, "body too large or unreadable", http.StatusRequestEntityTooLarge)
		return
	}
	// Verify the bytes as received, before decoding anything.
	if err := h.signer.VerifyRequest(r.Header, body, h.now(), 0); err != nil {
		h.printf("rejected delivery from %s: %v\n", r.RemoteAddr, err)
		http.Error(w, "invalid signature", http.StatusUnauthorized)
		return
	}
	var ev event
	if err := json.Unmarshal(body, &ev); err != nil {
		http.Error(w, "not a JSON event", http.StatusBadRequest)
		return
	}
	id := r.Header.Get(signing.HeaderID)
	if !h.remember(id) {
		// At-least-once delivery: a retry or replay carries the same id.
		h.printf("duplicate %s ignored\n", id)
		w.WriteHeader(http.StatusNoContent)
		return
	}
	names := make([]string, 0, len(ev.Data.Attachments))
	for _, a := range ev.Data.Attachments {
		names = append(names, a.Filename)
	}
	h.printf("%s %s from=%q to=%q subject=%q attachments=%q raw=%s (%d bytes) warnings=%d\n",
		ev.Type, id, ev.Data.Envelope.MailFrom, ev.Data.Envelope.RcptTo, ev.Data.Subject,
		names, ev.Data.Raw.Key, ev.Data.Raw.Size, len(ev.Data.Warnings))
	w.WriteHeader(http.StatusNoContent)
}

// remember records id and reports whether it was new.
func (h *handler) remember(id string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.seen[id] {
		return false
	}
	h.seen[id] = true
	h.fifo = append(h.fifo, id)
	if len(h.fifo) > seenMax {
		delete(h.seen, h.fifo[0])
		h.fifo = h.fifo[1:]
	}
	return true
}

func (h *handler) printf(format string, a ...any) {
	h.mu.Lock()
	defer h.mu.Unlock()
	fmt.Fprintf(h.out, format, a...)
}
