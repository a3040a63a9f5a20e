package dispatch

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailhook/mailhook/event"
	"github.com/mailhook/mailhook/parse"
	"github.com/mailhook/mailhook/queue"
	"github.com/mailhook/mailhook/store"
	"github.com/mailhook/mailhook/store/fs"
)

var t0 = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

// backends runs fn against each store.Store backend.
func backends(t *testing.T, fn func(t *testing.T, s store.Store)) {
	t.Helper()
	t.Run("mem", func(t *testing.T) { fn(t, newMemStore()) })
	t.Run("fs", func(t *testing.T) { fn(t, newFSStore(t)) })
}

func newFSStore(t testing.TB) store.Store {
	t.Helper()
	s, err := fs.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// fakeClock is a clock that moves only when told.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: t0} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// testSigner signs with a recomputable, obviously fake scheme.
type testSigner struct{}

func (testSigner) Sign(id string, ts time.Time, body []byte) string {
	return fmt.Sprintf("v1,%s.%d.%x", id, ts.Unix(), sha256.Sum256(body))
}

// fakeParse stands in for parse.Parse: it reads the message and returns
// the subject line and the text.
func fakeParse(r io.Reader, _ parse.Options) (*event.Data, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	head, text, _ := strings.Cut(string(b), "\r\n\r\n")
	d := &event.Data{Text: text, Warnings: []string{}}
	for _, l := range strings.Split(head, "\r\n") {
		if v, ok := strings.CutPrefix(l, "Subject: "); ok {
			d.Subject = v
		}
	}
	return d, nil
}

// received is one request a receiver got.
type received struct {
	id, ts, sig, ua, ct string
	body                []byte
	contentLength       int64
}

// receiver is a webhook endpoint answering from a script.
type receiver struct {
	srv *httptest.Server
	// answer returns the reply to the n-th request (0-based).
	answer func(n int, w http.ResponseWriter, r *http.Request)

	mu   sync.Mutex
	reqs []received
}

func newReceiver(t testing.TB, answer func(n int, w http.ResponseWriter, r *http.Request)) *receiver {
	t.Helper()
	rc := &receiver{answer: answer}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		n := len(rc.reqs)
		rc.reqs = append(rc.reqs, received{
			id: r.Header.Get("webhook-id"), ts: r.Header.Get("webhook-timestamp"), sig: r.Header.Get("webhook-signature"),
			ua: r.Header.Get("User-Agent"), ct: r.Header.Get("Content-Type"), body: body,
			contentLength: r.ContentLength,
		})
		rc.mu.Unlock()
		if rc.answer != nil {
			rc.answer(n, w, r)
		}
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

// statuses answers the n-th request with codes[n] (the last one after).
func statuses(codes ...int) func(int, http.ResponseWriter, *http.Request) {
	return func(n int, w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(codes[min(n, len(codes)-1)])
	}
}

func (rc *receiver) requests() []received {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]received(nil), rc.reqs...)
}

// syncBuffer is a log sink safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// harness is a queue and a dispatcher on one store, with a fake clock
// unless cfg.Now is set.
type harness struct {
	s     store.Store
	q     *queue.Queue
	d     *Dispatcher
	clock *fakeClock
	logs  *syncBuffer

	endpoint string
	runDone  chan error
}

func defaultTestConfig() Config {
	return Config{
		RetryInitial:     time.Millisecond,
		RetryMaxInterval: 5 * time.Millisecond,
		AttemptTimeout:   5 * time.Second,
		RescanInterval:   time.Hour, // tests poke the loop instead
		Rand:             func() float64 { return 0.5 },
		UserAgent:        "mailhook/test",
	}
}

// newHarness wires a queue routing every recipient to endpoint and a
// dispatcher; it does not start the dispatcher.
func newHarness(t testing.TB, s store.Store, endpoint string, cfg Config) *harness {
	return newHarnessClaims(t, s, endpoint, cfg, false)
}

// newHarnessClaims is newHarness whose queue, if claims, writes accepted
// records with the dispatcher's claim, as mailhook serve does.
func newHarnessClaims(t testing.TB, s store.Store, endpoint string, cfg Config, claims bool) *harness {
	t.Helper()
	h := &harness{s: s, endpoint: endpoint, logs: &syncBuffer{}}
	if cfg.Now == nil {
		h.clock = newFakeClock()
		cfg.Now = h.clock.Now
	}
	log := slog.New(slog.NewJSONHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	qopts := queue.Options{
		Store:     s,
		Router:    queue.RouterFunc(func(string) string { return h.endpoint }),
		Logger:    log,
		Now:       cfg.Now,
		OnEnqueue: func(d *queue.Delivery) { h.d.Enqueue(d) },
	}
	if claims {
		cfg = cfg.withDefaults()
		qopts.Owner, qopts.ClaimTTL = ownerOf(cfg.ReplicaID), cfg.LeaseTTL
	}
	h.q = queue.New(qopts)
	h.d = New(cfg, h.q, newRenderer(h.q, fakeParse, parse.Options{}), testSigner{}, log)
	return h
}

// start runs the dispatcher until the test ends.
func (h *harness) start(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	h.runDone = make(chan error, 1)
	go func() { h.runDone <- h.d.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-h.runDone; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

// accept stores a message for rcpts and returns its id.
func (h *harness) accept(t testing.TB, receivedAt time.Time, rcpts ...string) string {
	t.Helper()
	id := event.NewID(receivedAt)
	env := event.Envelope{MailFrom: "sender@example.org", RcptTo: rcpts, Helo: "mx.example.org", RemoteAddr: "192.0.2.7:4321"}
	msg := "Received: by mailhook\r\nSubject: Hello <b>&</b>\r\n\r\nHi " + id + "\r\n"
	if err := h.q.Accept(context.Background(), id, receivedAt, env, strings.NewReader(msg)); err != nil {
		t.Fatalf("Accept: %v", err)
	}
	return id
}

// waitState polls the store until record recID is in state.
func (h *harness) waitState(t testing.TB, recID string, state queue.State) *queue.Delivery {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		d, err := h.q.Load(context.Background(), recID)
		if err == nil && d.State == state {
			return d
		}
		if time.Now().After(deadline) {
			t.Fatalf("record %s: not %s after 10s (last: %+v, %v)", recID, state, d, err)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// waitFor polls cond.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// waitAttempts waits until the pending record holds n finished attempts.
func (h *harness) waitAttempts(t testing.TB, recID string, n int) *queue.Delivery {
	t.Helper()
	var d *queue.Delivery
	waitFor(t, fmt.Sprintf("%d attempts on %s", n, recID), func() bool {
		var err error
		d, err = h.q.Load(context.Background(), recID)
		return err == nil && len(d.Attempts) >= n && !d.Attempts[len(d.Attempts)-1].Unfinished && h.d.Stats().InFlight == 0
	})
	return d
}

// advance moves the fake clock and wakes the dispatcher.
func (h *harness) advance(d time.Duration) {
	h.clock.Advance(d)
	h.d.poke()
}

func atoi(s string) int64 {
	n, _ := strconv.ParseInt(s, 10, 64)
	return n
}
