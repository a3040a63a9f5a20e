package dispatch

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailhook/mailhook/event"
	"github.com/mailhook/mailhook/parse"
	"github.com/mailhook/mailhook/queue"
	"github.com/mailhook/mailhook/store"
)

func TestRetryThenDeliver(t *testing.T) {
	backends(t, func(t *testing.T, s store.Store) {
		rc := newReceiver(t, statuses(503, 503, 200))
		cfg := defaultTestConfig()
		cfg.Now = time.Now // real clock, 1-5 ms retries
		h := newHarness(t, s, rc.srv.URL+"/hook?token=s3cret", cfg)
		h.start(t)
		id := h.accept(t, time.Now(), "a@example.com")
		d := h.waitState(t, id+"-1", queue.StateDelivered)
		waitFor(t, "the dispatcher done", func() bool { st := h.d.Stats(); return st.Delivered == 1 && st.Pending == 0 })

		reqs := rc.requests()
		if len(reqs) != 3 {
			t.Fatalf("receiver got %d requests, want 3", len(reqs))
		}
		for i, r := range reqs {
			if r.id != id {
				t.Errorf("request %d: webhook-id %q, want %q", i, r.id, id)
			}
			if !bytes.Equal(r.body, reqs[0].body) {
				t.Errorf("request %d: body differs from the first", i)
			}
			if want := (testSigner{}).Sign(r.id, time.Unix(atoi(r.ts), 0), r.body); r.sig != want {
				t.Errorf("request %d: webhook-signature %q, want %q", i, r.sig, want)
			}
			if r.ct != "application/json" || r.ua != "mailhook/test" {
				t.Errorf("request %d: Content-Type %q User-Agent %q", i, r.ct, r.ua)
			}
		}
		var statuses []int
		for _, a := range d.Attempts {
			statuses = append(statuses, a.Status)
			if a.Unfinished || a.At.IsZero() {
				t.Errorf("attempt %+v", a)
			}
		}
		if !slices.Equal(statuses, []int{503, 503, 200}) {
			t.Errorf("attempt statuses %v, want [503 503 200]", statuses)
		}
		st := h.d.Stats()
		if st.Delivered != 1 || st.Attempts.Status5xx != 2 || st.Attempts.Status2xx != 1 || st.Pending != 0 || st.InFlight != 0 {
			t.Errorf("Stats = %+v", st)
		}

		logs := h.logs.String()
		if n := strings.Count(logs, `"msg":"delivery attempt"`); n != 3 {
			t.Errorf("%d attempt log lines, want 3:\n%s", n, logs)
		}
		for _, secret := range []string{"s3cret", "/hook", "Hello", "a@example.com"} {
			if strings.Contains(logs, secret) {
				t.Errorf("logs contain %q:\n%s", secret, logs)
			}
		}
		if !strings.Contains(logs, `"endpoint_host":"`+rc.srv.Listener.Addr().String()+`"`) {
			t.Errorf("logs lack the endpoint host:\n%s", logs)
		}
	})
}

func TestEventBody(t *testing.T) {
	rc := newReceiver(t, statuses(200))
	h := newHarness(t, newMemStore(), rc.srv.URL, defaultTestConfig())
	h.start(t)
	received := t0.Add(-time.Minute)
	id := h.accept(t, received, "a@example.com", "b@example.com")
	h.waitState(t, id+"-1", queue.StateDelivered)
	body := rc.requests()[0].body
	if !bytes.Contains(body, []byte(`"subject":"Hello <b>&</b>"`)) {
		t.Errorf("body is HTML-escaped or lacks the subject: %s", body)
	}
	var ev struct {
		Type      string    `json:"type"`
		Version   int       `json:"version"`
		Timestamp time.Time `json:"timestamp"`
		Data      struct {
			ID         string    `json:"id"`
			ReceivedAt time.Time `json:"received_at"`
			Envelope   struct {
				RcptTo []string `json:"rcpt_to"`
			} `json:"envelope"`
			Raw struct {
				Key  string `json:"key"`
				Size int64  `json:"size"`
			} `json:"raw"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &ev); err != nil {
		t.Fatal(err)
	}
	if ev.Type != "email.received" || ev.Version != 1 || !ev.Timestamp.Equal(received) || ev.Data.ID != id ||
		!ev.Data.ReceivedAt.Equal(received) || !slices.Equal(ev.Data.Envelope.RcptTo, []string{"a@example.com", "b@example.com"}) ||
		ev.Data.Raw.Key != "raw/"+id+".eml" || ev.Data.Raw.Size == 0 {
		t.Errorf("event = %+v", ev)
	}
	if body[len(body)-1] == '\n' {
		t.Error("body ends in a newline")
	}
}

func TestRetryAfter(t *testing.T) {
	rc := newReceiver(t, func(n int, w http.ResponseWriter, _ *http.Request) {
		if n == 0 {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	h := newHarness(t, newMemStore(), rc.srv.URL, defaultTestConfig())
	cfgMax := 5 * time.Second
	h.d.cfg.RetryMaxInterval = cfgMax
	h.start(t)
	id := h.accept(t, t0, "a@example.com")
	d := h.waitAttempts(t, id+"-1", 1)
	if a := d.Attempts[0]; a.Status != 429 || !a.At.Equal(t0) {
		t.Errorf("attempt 1 = %+v", a)
	}
	// Backoff alone says 1ms; Retry-After says 1s.
	if want := t0.Add(time.Second); !d.NextAttemptAt.Equal(want) {
		t.Errorf("NextAttemptAt = %v, want %v", d.NextAttemptAt, want)
	}
	h.advance(999 * time.Millisecond)
	time.Sleep(20 * time.Millisecond)
	if n := len(rc.requests()); n != 1 {
		t.Fatalf("sent again before Retry-After: %d requests", n)
	}
	h.advance(time.Millisecond)
	d = h.waitState(t, id+"-1", queue.StateDelivered)
	if len(d.Attempts) != 2 || d.Attempts[1].At.Sub(d.Attempts[0].At) < time.Second {
		t.Errorf("attempts = %+v, want the second ≥ 1s after the first", d.Attempts)
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"1", time.Second, true},
		{" 120 ", 2 * time.Minute, true},
		{"0", 0, true},
		{"99999999999999999", time.Hour, true},
		{"99999999999999999999", time.Hour, true}, // past 64 bits: capped, not ignored
		{"-99999999999999999999", 0, false},
		{"-1", 0, false},
		{"", 0, false},
		{"soon", 0, false},
		{"Sat, 28 Nov 2026 12:00:30 GMT", 30 * time.Second, true},
		{"Sat, 28 Nov 2026 11:00:00 GMT", 0, true},
		{"Sun, 29 Nov 2026 12:00:00 GMT", time.Hour, true},
	}
	for _, tt := range tests {
		got, ok := parseRetryAfter(tt.in, now, time.Hour)
		if got != tt.want || ok != tt.ok {
			t.Errorf("parseRetryAfter(%q) = %v, %v; want %v, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestClassify(t *testing.T) {
	tests := []struct {
		status int
		want   verdict
	}{
		{0, verdictRetry}, {101, verdictRetry}, {200, verdictDelivered}, {202, verdictDelivered}, {204, verdictDelivered},
		{301, verdictFailed}, {302, verdictFailed}, {304, verdictFailed}, {400, verdictFailed}, {401, verdictFailed},
		{404, verdictFailed}, {408, verdictRetry}, {410, verdictFailed}, {413, verdictFailed}, {429, verdictRetry},
		{500, verdictRetry}, {502, verdictRetry}, {503, verdictRetry}, {599, verdictRetry}, {600, verdictFailed},
	}
	for _, tt := range tests {
		if got := classify(tt.status); got != tt.want {
			t.Errorf("classify(%d) = %v, want %v", tt.status, got, tt.want)
		}
	}
}

func TestPermanentFailures(t *testing.T) {
	tests := []struct {
		name   string
		status int
	}{
		{"400", http.StatusBadRequest},
		{"404", http.StatusNotFound},
		{"301", http.StatusMovedPermanently},
		{"302", http.StatusFound},
		{"307", http.StatusTemporaryRedirect},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			target := newReceiver(t, statuses(200))
			rc := newReceiver(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Location", target.srv.URL)
				w.WriteHeader(tt.status)
				w.Write([]byte(strings.Repeat("why ", 1000)))
			})
			h := newHarness(t, newMemStore(), rc.srv.URL, defaultTestConfig())
			h.start(t)
			id := h.accept(t, t0, "a@example.com")
			d := h.waitState(t, id+"-1", queue.StateFailed)
			if len(d.Attempts) != 1 {
				t.Fatalf("attempts = %+v, want 1", d.Attempts)
			}
			a := d.Attempts[0]
			if a.Status != tt.status || len(a.Response) != queue.MaxResponseBytes || !strings.HasPrefix(a.Response, "why why") || a.Unfinished {
				t.Errorf("attempt = %+v", a)
			}
			if d.LastError == "" || !strings.Contains(d.LastError, tt.name) {
				t.Errorf("LastError = %q", d.LastError)
			}
			if n := len(target.requests()); n != 0 {
				t.Errorf("redirect followed: target got %d requests", n)
			}
			if n := len(rc.requests()); n != 1 {
				t.Errorf("receiver got %d requests, want 1", n)
			}
			// Pending may blip to 1 if the start-up rescan read the record
			// before it failed; the dispatcher then reads it again and
			// drops it without sending.
			waitFor(t, "the dispatcher done", func() bool { st := h.d.Stats(); return st.Failed == 1 && st.Pending == 0 })
			if st := h.d.Stats(); st.Failed != 1 || st.Pending != 0 {
				t.Errorf("Stats = %+v", st)
			}
		})
	}
}

func TestTimeoutIsRetried(t *testing.T) {
	rc := newReceiver(t, func(n int, w http.ResponseWriter, r *http.Request) {
		if n == 0 {
			<-r.Context().Done() // hang until the client gives up
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	cfg := defaultTestConfig()
	cfg.AttemptTimeout = 50 * time.Millisecond
	h := newHarness(t, newMemStore(), rc.srv.URL, cfg)
	h.start(t)
	id := h.accept(t, t0, "a@example.com")
	d := h.waitAttempts(t, id+"-1", 1)
	if a := d.Attempts[0]; a.Status != 0 || !strings.Contains(a.Error, "timeout") {
		t.Errorf("attempt 1 = %+v, want a timeout", a)
	}
	h.advance(time.Second)
	d = h.waitState(t, id+"-1", queue.StateDelivered)
	if len(d.Attempts) != 2 || d.Attempts[1].Status != 204 {
		t.Errorf("attempts = %+v", d.Attempts)
	}
	if st := h.d.Stats(); st.Attempts.Error != 1 || st.Attempts.Status2xx != 1 {
		t.Errorf("Stats = %+v", st)
	}
}

func TestConnectionRefusedIsRetried(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	h := newHarness(t, newMemStore(), "http://"+addr+"/hook", defaultTestConfig())
	h.start(t)
	id := h.accept(t, t0, "a@example.com")
	d := h.waitAttempts(t, id+"-1", 1)
	if a := d.Attempts[0]; a.Status != 0 || !strings.Contains(a.Error, "refused") {
		t.Errorf("attempt 1 = %+v, want connection refused", a)
	}
	if d.State != queue.StatePending || !d.NextAttemptAt.After(t0) {
		t.Errorf("record = %+v, want pending with a later attempt", d)
	}
	// Waiting for its retry, the delivery is only scheduled: its record
	// is not kept in memory (a long outage would pile them up).
	waitFor(t, "the retry scheduled without the record", func() bool {
		h.d.mu.Lock()
		defer h.d.mu.Unlock()
		it := h.d.known[id+"-1"]
		return it != nil && it.index >= 0 && it.rec == nil && it.again == nil
	})
	h.advance(time.Second)
	d = h.waitAttempts(t, id+"-1", 2)
	if d.State != queue.StatePending || len(d.Attempts) != 2 {
		t.Errorf("record after the second attempt = %+v", d)
	}
}

func TestRetryWindowExhausted(t *testing.T) {
	tests := []struct {
		name     string
		received time.Duration // before t0
		maxElaps time.Duration
		initial  time.Duration
	}{
		{"received 73h ago", 73 * time.Hour, 72 * time.Hour, time.Millisecond},
		{"next retry past the window", 0, time.Hour, 2 * time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc := newReceiver(t, statuses(503))
			cfg := defaultTestConfig()
			cfg.RetryMaxElapsed = tt.maxElaps
			cfg.RetryInitial = tt.initial
			cfg.RetryMaxInterval = 3 * time.Hour
			h := newHarness(t, newMemStore(), rc.srv.URL, cfg)
			h.start(t)
			id := h.accept(t, t0.Add(-tt.received), "a@example.com")
			d := h.waitState(t, id+"-1", queue.StateFailed)
			if len(d.Attempts) != 1 || d.Attempts[0].Status != 503 || !strings.Contains(d.LastError, "retry window") {
				t.Errorf("record = %+v", d)
			}
		})
	}
}

func TestBackoffDelay(t *testing.T) {
	def := RetryPolicy{Initial: 10 * time.Second, Multiplier: 2, Jitter: 0.5, MaxInterval: time.Hour}
	tests := []struct {
		name string
		p    RetryPolicy
		n    int
		r    float64
		want time.Duration
	}{
		{"first, middle", def, 1, 0.5, 10 * time.Second},
		{"first, low", def, 1, 0, 5 * time.Second},
		{"first, high", def, 1, 0.75, 12500 * time.Millisecond},
		{"second", def, 2, 0.5, 20 * time.Second},
		{"third, low", def, 3, 0, 20 * time.Second},
		{"ninth", def, 9, 0.5, 2560 * time.Second},
		{"tenth, capped", def, 10, 0.5, time.Hour},
		{"tenth, capped, low", def, 10, 0, 30 * time.Minute},
		{"fiftieth", def, 50, 0.5, time.Hour},
		{"n=0 is the first", def, 0, 0.5, 10 * time.Second},
		{"no jitter", RetryPolicy{Initial: time.Second, Multiplier: 3, MaxInterval: time.Minute}, 3, 0.9, 9 * time.Second},
		{"backoff/v4 defaults, 4th", RetryPolicy{Initial: 500 * time.Millisecond, Multiplier: 1.5, MaxInterval: time.Minute}, 4, 0.3, 1687500 * time.Microsecond},
		{"initial above max", RetryPolicy{Initial: time.Hour, Multiplier: 2, MaxInterval: time.Minute}, 1, 0.5, time.Minute},
	}
	for _, tt := range tests {
		if got := tt.p.Delay(tt.n, tt.r); got != tt.want {
			t.Errorf("%s: Delay(%d, %v) = %v, want %v", tt.name, tt.n, tt.r, got, tt.want)
		}
	}
	if got := (Config{}).Policy(); got != def {
		t.Errorf("default policy = %+v, want %+v", got, def)
	}
}

func TestResumeAfterCrash(t *testing.T) {
	backends(t, func(t *testing.T, s store.Store) {
		rc := newReceiver(t, statuses(200))
		// The crashed process: it accepted two messages, began an attempt
		// on the second (persisting a retry time an hour ahead) and died.
		crashed := newHarness(t, s, rc.srv.URL, defaultTestConfig())
		fresh := crashed.accept(t, t0, "a@example.com")
		inflight := crashed.accept(t, t0, "b@example.com")
		d, err := crashed.q.Load(context.Background(), inflight+"-1")
		if err != nil {
			t.Fatal(err)
		}
		if err := crashed.q.BeginAttempt(context.Background(), d, t0, t0.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}

		h := newHarness(t, s, rc.srv.URL, defaultTestConfig())
		h.start(t)
		h.waitState(t, fresh+"-1", queue.StateDelivered)
		waitFor(t, "the dispatcher done", func() bool { st := h.d.Stats(); return st.Delivered == 1 && st.Pending == 1 })
		time.Sleep(30 * time.Millisecond)
		for _, r := range rc.requests() {
			if r.id == inflight {
				t.Fatal("the interrupted delivery was sent before its NextAttemptAt")
			}
		}
		if st := h.d.Stats(); st.Pending != 1 || st.OldestPendingAge != 0 {
			t.Errorf("Stats = %+v, want 1 pending received now", st)
		}
		h.advance(59 * time.Minute)
		time.Sleep(20 * time.Millisecond)
		if n := len(rc.requests()); n != 1 {
			t.Fatalf("%d requests before the hour was up, want 1", n)
		}
		h.advance(time.Minute)
		got := h.waitState(t, inflight+"-1", queue.StateDelivered)
		if len(got.Attempts) != 2 || !got.Attempts[0].Unfinished || got.Attempts[1].Status != 200 {
			t.Errorf("attempts = %+v, want the interrupted one then 200", got.Attempts)
		}
		if n := len(rc.requests()); n != 2 {
			t.Errorf("receiver got %d requests, want 2", n)
		}
	})
}

func TestReplayDelivers(t *testing.T) {
	backends(t, func(t *testing.T, s store.Store) {
		rc := newReceiver(t, statuses(400, 200))
		h := newHarness(t, s, rc.srv.URL, defaultTestConfig())
		h.start(t)
		id := h.accept(t, t0, "a@example.com")
		h.waitState(t, id+"-1", queue.StateFailed)
		h.clock.Advance(100 * time.Hour) // long after the retry window
		if err := h.q.Replay(context.Background(), id+"-1", ""); err != nil {
			t.Fatal(err)
		}
		d := h.waitState(t, id+"-1", queue.StateDelivered)
		reqs := rc.requests()
		if len(reqs) != 2 || reqs[0].id != id || reqs[1].id != id || !bytes.Equal(reqs[0].body, reqs[1].body) {
			t.Errorf("requests = %+v, want two with webhook-id %s and one body", reqs, id)
		}
		if len(d.Attempts) != 2 || d.Attempts[0].Status != 400 || d.Attempts[1].Status != 200 || d.Replays != 1 || d.EventID != id {
			t.Errorf("delivered record = %+v", d)
		}
	})
}

func TestNoEndpointThenReplayWithEndpoint(t *testing.T) {
	rc := newReceiver(t, statuses(200))
	h := newHarness(t, newMemStore(), "", defaultTestConfig())
	h.start(t)
	id := h.accept(t, t0, "a@example.com")
	d := h.waitState(t, id+"-1", queue.StateFailed)
	if d.LastError != queue.ErrNoEndpoint.Error() || len(d.Attempts) != 0 {
		t.Errorf("record = %+v", d)
	}
	if err := h.q.Replay(context.Background(), id+"-1", rc.srv.URL); err != nil {
		t.Fatal(err)
	}
	h.waitState(t, id+"-1", queue.StateDelivered)
	if reqs := rc.requests(); len(reqs) != 1 || reqs[0].id != id {
		t.Errorf("requests = %+v", reqs)
	}
}

func TestPerEndpointConcurrency(t *testing.T) {
	const n, limit = 200, 4
	var cur, peak atomic.Int32
	rc := newReceiver(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
		c := cur.Add(1)
		for p := peak.Load(); c > p && !peak.CompareAndSwap(p, c); p = peak.Load() {
		}
		time.Sleep(2 * time.Millisecond)
		cur.Add(-1)
		w.WriteHeader(http.StatusOK)
	})
	cfg := defaultTestConfig()
	cfg.PerEndpointConcurrency = limit
	cfg.Concurrency = 16
	h := newHarness(t, newMemStore(), rc.srv.URL, cfg)
	h.start(t)
	ids := make([]string, n)
	for i := range ids {
		ids[i] = h.accept(t, t0, "a@example.com")
	}
	waitFor(t, "all delivered", func() bool { return h.d.Stats().Delivered == n })
	if p := peak.Load(); p > limit || p < 2 {
		t.Errorf("peak concurrency at the receiver %d, want 2..%d", p, limit)
	}
	seen := make(map[string]int)
	for _, r := range rc.requests() {
		seen[r.id]++
	}
	for _, id := range ids {
		if seen[id] != 1 {
			t.Errorf("%s sent %d times, want once", id, seen[id])
		}
		h.waitState(t, id+"-1", queue.StateDelivered)
	}
	if len(seen) != n {
		t.Errorf("receiver saw %d ids, want %d", len(seen), n)
	}
}

// A slow endpoint at its limit does not hold up another endpoint.
func TestSaturatedEndpointDoesNotBlockOthers(t *testing.T) {
	release := make(chan struct{})
	slow := newReceiver(t, func(_ int, w http.ResponseWriter, _ *http.Request) { <-release })
	fast := newReceiver(t, statuses(200))
	cfg := defaultTestConfig()
	cfg.PerEndpointConcurrency = 1
	cfg.Concurrency = 2
	h := newHarness(t, newMemStore(), slow.srv.URL, cfg)
	h.start(t)
	for range 5 {
		h.accept(t, t0, "a@example.com")
	}
	waitFor(t, "the slow endpoint busy", func() bool { return len(slow.requests()) == 1 })
	h.endpoint = fast.srv.URL
	id := h.accept(t, t0, "b@example.com")
	h.waitState(t, id+"-1", queue.StateDelivered)
	if n := len(slow.requests()); n != 1 {
		t.Errorf("slow endpoint got %d concurrent requests, want 1", n)
	}
	close(release)
	waitFor(t, "all delivered", func() bool { return h.d.Stats().Delivered == 6 })
}

func TestShutdown(t *testing.T) {
	t.Run("graceful", func(t *testing.T) {
		release := make(chan struct{})
		rc := newReceiver(t, func(_ int, w http.ResponseWriter, _ *http.Request) { <-release })
		h := newHarness(t, newMemStore(), rc.srv.URL, defaultTestConfig())
		done := make(chan error, 1)
		go func() { done <- h.d.Run(context.Background()) }()
		id := h.accept(t, t0, "a@example.com")
		waitFor(t, "in flight", func() bool { return len(rc.requests()) == 1 })
		shut := make(chan error, 1)
		go func() { shut <- h.d.Shutdown(context.Background()) }()
		time.Sleep(20 * time.Millisecond)
		select {
		case <-shut:
			t.Fatal("Shutdown returned with an attempt in flight")
		default:
		}
		close(release)
		if err := <-shut; err != nil {
			t.Errorf("Shutdown = %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("Run = %v", err)
		}
		h.waitState(t, id+"-1", queue.StateDelivered)
	})
	t.Run("grace runs out", func(t *testing.T) {
		rc := newReceiver(t, func(_ int, w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
		h := newHarness(t, newMemStore(), rc.srv.URL, defaultTestConfig())
		done := make(chan error, 1)
		go func() { done <- h.d.Run(context.Background()) }()
		id := h.accept(t, t0, "a@example.com")
		waitFor(t, "in flight", func() bool { return len(rc.requests()) == 1 })
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		if err := h.d.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Shutdown = %v, want DeadlineExceeded", err)
		}
		if err := <-done; err != nil {
			t.Errorf("Run = %v", err)
		}
		d, err := h.q.Load(context.Background(), id+"-1")
		if err != nil {
			t.Fatal(err)
		}
		if d.State != queue.StatePending || len(d.Attempts) != 1 || d.Attempts[0].Unfinished || !strings.Contains(d.Attempts[0].Error, "cancel") {
			t.Errorf("record = %+v, want pending with the cancelled attempt recorded", d)
		}
		// Enqueue after the end is harmless.
		h.accept(t, t0, "a@example.com")
	})
	t.Run("context cancelled", func(t *testing.T) {
		h := newHarness(t, newMemStore(), "http://127.0.0.1:1", defaultTestConfig())
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- h.d.Run(ctx) }()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v", err)
		}
		if err := h.d.Run(context.Background()); err == nil {
			t.Error("second Run succeeded")
		}
	})
}

func TestRenderFailures(t *testing.T) {
	tests := []struct {
		name    string
		tamper  func(t *testing.T, h *harness, id string)
		parse   parseFunc
		wantErr string
	}{
		{"raw missing", func(t *testing.T, h *harness, id string) {
			if err := h.s.Delete(context.Background(), "raw/"+id+".eml"); err != nil {
				t.Fatal(err)
			}
		}, nil, "not found"},
		{"raw changed", func(t *testing.T, h *harness, id string) {
			if _, err := h.s.Put(context.Background(), "raw/"+id+".eml", strings.NewReader("Subject: other\r\n\r\n"), store.PutOptions{}); err != nil {
				t.Fatal(err)
			}
		}, nil, "sha256"},
		{"parser panics", nil, func(io.Reader, parse.Options) (*event.Data, error) { panic("boom") }, "panicked"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc := newReceiver(t, statuses(200))
			h := newHarness(t, newMemStore(), rc.srv.URL, defaultTestConfig())
			if tt.parse != nil {
				h.d.render = newRenderer(h.q, tt.parse, parse.Options{})
			}
			h.d.Enqueue(nil) // harmless
			id := h.accept(t, t0, "a@example.com")
			if tt.tamper != nil {
				tt.tamper(t, h, id)
			}
			h.start(t)
			d := h.waitState(t, id+"-1", queue.StateFailed)
			if len(d.Attempts) != 1 || !strings.Contains(d.LastError, tt.wantErr) {
				t.Errorf("record = %+v, want one attempt and an error about %q", d, tt.wantErr)
			}
			if n := len(rc.requests()); n != 0 {
				t.Errorf("receiver got %d requests", n)
			}
		})
	}
}

// A store that stops answering does not make the dispatcher spin or lose
// the delivery.
func TestStoreUnavailable(t *testing.T) {
	rc := newReceiver(t, statuses(200))
	s := newMemStore()
	h := newHarness(t, s, rc.srv.URL, defaultTestConfig())
	id := h.accept(t, t0, "a@example.com")
	var puts atomic.Int32
	var mu sync.Mutex
	down := true
	s.Fail = func(op, key string) error {
		mu.Lock()
		defer mu.Unlock()
		if down && op == "put" {
			puts.Add(1)
			return store.ErrUnavailable
		}
		return nil
	}
	h.start(t)
	waitFor(t, "a put", func() bool { return puts.Load() >= 1 })
	time.Sleep(30 * time.Millisecond)
	if n := puts.Load(); n != 1 {
		t.Errorf("%d puts while the clock stood still, want 1 (no tight loop)", n)
	}
	if n := len(rc.requests()); n != 0 {
		t.Errorf("sent %d requests without persisting the attempt first", n)
	}
	mu.Lock()
	down = false
	mu.Unlock()
	h.advance(time.Second)
	h.waitState(t, id+"-1", queue.StateDelivered)
}

// The renderer checks the raw message against its record: its size and
// SHA-256, or only its size on the first read of a delivery this process
// has just accepted (queue.Verified), whose bytes Accept hashed.
func TestRenderChecksRaw(t *testing.T) {
	const msg = "Subject: check\r\n\r\nbody\r\n"
	const sameSize = "Subject: chEck\r\n\r\nbody\r\n"
	for _, tc := range []struct {
		name    string
		fresh   bool   // the delivery Accept handed over, not one loaded
		replace string // the raw message's new content, if any
		want    error
	}{
		{"loaded, intact", false, "", nil},
		{"loaded, same size, other bytes", false, sameSize, ErrRawMismatch},
		{"loaded, truncated", false, msg[:10], ErrRawMismatch},
		{"fresh, intact", true, "", nil},
		{"fresh, truncated", true, msg[:10], ErrRawMismatch},
		// Not hashed again: this is the read whose hash was skipped.
		{"fresh, same size, other bytes", true, sameSize, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			s := newMemStore()
			var handed *queue.Delivery
			q := queue.New(queue.Options{Store: s, Router: queue.RouterFunc(func(string) string { return "http://unused" }), RawCacheBytes: -1,
				Owner: queue.LeaseOwner{ID: "me"}, ClaimTTL: time.Minute,
				OnEnqueue: func(d *queue.Delivery) { handed = d }})
			id := event.NewID(t0)
			env := event.Envelope{MailFrom: "a@example.org", RcptTo: []string{"b@example.com"}}
			if err := q.Accept(ctx, id, t0, env, strings.NewReader(msg)); err != nil {
				t.Fatal(err)
			}
			d := handed
			if !tc.fresh {
				var err error
				if d, err = q.Load(ctx, id+"-1"); err != nil {
					t.Fatal(err)
				}
			}
			if tc.replace != "" {
				if _, err := s.Put(ctx, d.Raw.Key, strings.NewReader(tc.replace), store.PutOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			_, err := NewRenderer(q, parse.Options{})(ctx, d)
			if !errors.Is(err, tc.want) {
				t.Errorf("render: %v, want %v", err, tc.want)
			}
		})
	}
}

// The default renderer with the real parser.
func TestNewRenderer(t *testing.T) {
	h := newHarness(t, newMemStore(), "http://unused", defaultTestConfig())
	id := h.accept(t, t0, "a@example.com")
	d, err := h.q.Load(context.Background(), id+"-1")
	if err != nil {
		t.Fatal(err)
	}
	render := NewRenderer(h.q, parse.Options{})
	body, err := render(context.Background(), d)
	if err != nil {
		t.Fatal(err)
	}
	again, err := render(context.Background(), d)
	if err != nil || !bytes.Equal(body, again) {
		t.Errorf("second render differs (%v)", err)
	}
	var ev event.Event
	if err := json.Unmarshal(body, &ev); err != nil {
		t.Fatal(err)
	}
	if ev.Type != event.Type || ev.Version != event.SchemaVersion || !ev.Timestamp.Equal(t0) || ev.Data.ID != id ||
		ev.Data.Subject != "Hello <b>&</b>" || ev.Data.Raw != d.Raw || ev.Data.Envelope.Helo != "mx.example.org" {
		t.Errorf("event = %+v", ev)
	}
}

// TestEmptyPendingRecordRemoved: an empty pending record, what a machine
// crash during an Accept that never returned may leave (its records are
// written Unordered), is removed by the scan with a warning naming its raw
// object, and the whole records beside it are delivered.
func TestEmptyPendingRecordRemoved(t *testing.T) {
	old := emptyRecordAge
	emptyRecordAge = 0
	t.Cleanup(func() { emptyRecordAge = old })
	backends(t, func(t *testing.T, s store.Store) {
		rc := newReceiver(t, statuses(200))
		crashed := newHarness(t, s, rc.srv.URL, defaultTestConfig())
		whole := crashed.accept(t, t0, "a@example.com")
		torn := event.NewID(t0)
		key := queue.RecordKey(queue.StatePending, torn+"-1")
		if _, err := s.Put(context.Background(), key, strings.NewReader(""), store.PutOptions{IfNoneMatch: true, Size: -1}); err != nil {
			t.Fatal(err)
		}

		h := newHarness(t, s, rc.srv.URL, defaultTestConfig())
		h.start(t)
		h.waitState(t, whole+"-1", queue.StateDelivered)
		// The warning follows the delete: wait for both.
		waitFor(t, "the empty record removed and the removal logged", func() bool {
			_, err := s.Stat(context.Background(), key)
			return errors.Is(err, store.ErrNotFound) && strings.Contains(h.logs.String(), "removed an empty pending record")
		})
		logs := h.logs.String()
		if !strings.Contains(logs, queue.RawKey(torn)) {
			t.Errorf("no warning naming %s in the logs:\n%s", queue.RawKey(torn), logs)
		}
		if n := len(rc.requests()); n != 1 {
			t.Errorf("receiver got %d requests, want 1", n)
		}
	})
}
