package dispatch

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailhook/mailhook/queue"
	"github.com/mailhook/mailhook/store"
)

// pauseTestConfig: a real clock, short waits, few slots.
func pauseTestConfig() Config {
	cfg := defaultTestConfig()
	cfg.Now = time.Now
	cfg.RetryInitial = 20 * time.Millisecond
	cfg.RetryMaxInterval = 200 * time.Millisecond
	cfg.PerEndpointConcurrency = 4
	cfg.PauseAfter = 3
	return cfg
}

// acceptN accepts n messages for one recipient, received now, and returns
// their ids.
func acceptN(t *testing.T, h *harness, n int) []string {
	t.Helper()
	ids := make([]string, n)
	for i := range ids {
		ids[i] = h.accept(t, time.Now(), "a@example.com")
	}
	return ids
}

// A receiver that is down gets a few requests, not one per delivery and
// retry; once it answers again, the deliveries that waited go out, most
// of them on their first attempt.
func TestEndpointPausedDuringOutage(t *testing.T) {
	backends(t, func(t *testing.T, s store.Store) {
		var down atomic.Bool
		down.Store(true)
		rc := newReceiver(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
			if down.Load() {
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
			w.WriteHeader(http.StatusNoContent)
		})
		h := newHarness(t, s, rc.srv.URL+"/hook", pauseTestConfig())
		h.start(t)
		ids := acceptN(t, h, 40)
		waitFor(t, "the endpoint paused", func() bool { return strings.Contains(h.logs.String(), "endpoint paused") })
		if n := h.d.Stats().PausedEndpoints; n != 1 {
			t.Errorf("Stats().PausedEndpoints = %d, want 1", n)
		}
		time.Sleep(time.Second)
		// Parked, they keep only their scheduling facts: however long the
		// outage, memory does not hold their records.
		h.d.mu.Lock()
		parked := h.d.parked[rc.srv.URL+"/hook"]
		for _, it := range parked {
			if it.rec != nil || it.again != nil {
				t.Errorf("delivery %s parked at the paused endpoint with its record in memory", it.id)
				break
			}
		}
		h.d.mu.Unlock()
		if len(parked) < 25 {
			t.Errorf("%d deliveries parked at the paused endpoint, want at least 25", len(parked))
		}
		// Without the pause: 40 first attempts, then retries every 20 to
		// 200 ms each, several hundred requests in this second.
		if n := len(rc.requests()); n > 40 {
			t.Errorf("%d requests during the outage, want at most 40", n)
		}
		down.Store(false)
		firstTry := 0
		for _, id := range ids {
			d := h.waitState(t, id+"-1", queue.StateDelivered)
			if len(d.Attempts) == 1 {
				firstTry++
			}
		}
		// At most PauseAfter + PerEndpointConcurrency deliveries were
		// attempted before the pause, and one at a time during it.
		if firstTry < 25 {
			t.Errorf("%d of 40 deliveries delivered on their first attempt, want at least 25", firstTry)
		}
		if n := h.d.Stats().PausedEndpoints; n != 0 {
			t.Errorf("Stats().PausedEndpoints = %d after the endpoint answered, want 0", n)
		}
		if !strings.Contains(h.logs.String(), "endpoint answering again") {
			t.Errorf("no log line on the endpoint's return:\n%s", h.logs.String())
		}
	})
}

// A delivery whose retry window closes while its endpoint is paused still
// gets its last attempt, and becomes a dead letter: the pause never holds
// a delivery past its window.
func TestPausedEndpointStillEndsRetryWindows(t *testing.T) {
	rc := newReceiver(t, statuses(http.StatusServiceUnavailable))
	cfg := pauseTestConfig()
	cfg.RetryMaxElapsed = 300 * time.Millisecond
	cfg.PauseMax = time.Hour // the pause alone would hold them for longer than the test
	cfg.RetryInitial = time.Hour
	cfg.RetryMaxInterval = time.Hour
	h := newHarness(t, newMemStore(), rc.srv.URL+"/hook", cfg)
	h.start(t)
	for _, id := range acceptN(t, h, 20) {
		h.waitState(t, id+"-1", queue.StateFailed)
	}
}

// Answers that say the endpoint is up (2xx, and 4xx, which fail only the
// delivery) keep it from pausing however many retryable failures there
// are in between.
func TestEndpointNotPausedWhileItAnswers(t *testing.T) {
	rc := newReceiver(t, func(n int, w http.ResponseWriter, _ *http.Request) {
		if n%3 == 2 {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		w.WriteHeader(http.StatusBadGateway)
	})
	cfg := pauseTestConfig()
	cfg.PerEndpointConcurrency = 1 // answers in the order of the requests
	h := newHarness(t, newMemStore(), rc.srv.URL+"/hook", cfg)
	h.start(t)
	for _, id := range acceptN(t, h, 10) {
		h.waitState(t, id+"-1", queue.StateDelivered)
	}
	if strings.Contains(h.logs.String(), "endpoint paused") {
		t.Errorf("paused although it answered 2xx every third request:\n%s", h.logs.String())
	}
}

// A replay restarts a delivery's retry window, and a paused endpoint
// holds a replayed delivery for that new window: only a window that has
// closed lets a delivery through a pause.
func TestPausedEndpointHoldsReplayForItsNewWindow(t *testing.T) {
	rc := newReceiver(t, statuses(http.StatusServiceUnavailable))
	cfg := pauseTestConfig()
	cfg.RetryMaxElapsed = 2500 * time.Millisecond
	cfg.PauseMax = time.Hour // the pause alone would hold them for longer than the test
	cfg.RetryInitial = time.Hour
	cfg.RetryMaxInterval = time.Hour
	h := newHarness(t, newMemStore(), rc.srv.URL+"/hook", cfg)
	h.start(t)
	acceptN(t, h, cfg.PauseAfter) // their failures pause the endpoint (and end them: no retry fits the window)
	waitFor(t, "the endpoint paused", func() bool {
		h.d.mu.Lock()
		defer h.d.mu.Unlock()
		e := h.d.health[rc.srv.URL+"/hook"]
		return e != nil && e.paused
	})
	// Received long ago: its window has closed, so it gets its one
	// attempt through the pause and fails.
	old := h.accept(t, time.Now().Add(-time.Hour), "a@example.com")
	h.waitState(t, old+"-1", queue.StateFailed)
	sent := func() (n int) {
		for _, r := range rc.requests() {
			if r.id == old {
				n++
			}
		}
		return n
	}
	before := sent()
	if err := h.q.Replay(context.Background(), old+"-1", ""); err != nil {
		t.Fatal(err)
	}
	replayed := time.Now()
	time.Sleep(cfg.RetryMaxElapsed / 2) // at least one sweep of the parked deliveries
	if n := sent() - before; n != 0 && time.Since(replayed) < cfg.RetryMaxElapsed {
		t.Errorf("the replayed delivery was sent %d times through the pause within its new retry window", n)
	}
	// Its new window ends all the same.
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(h.logs.String())
		}
	})
	d := h.waitState(t, old+"-1", queue.StateFailed)
	if !strings.Contains(d.LastError, "retry window") {
		t.Errorf("after the replay: last error %q, want its retry window exhausted", d.LastError)
	}
}

// pausedDispatcher returns a dispatcher, not started, whose endpoint ep
// was paused now for a minute, and its clock's now.
func pausedDispatcher(t *testing.T, ep string) (*Dispatcher, time.Time) {
	t.Helper()
	d := newHarness(t, newMemStore(), ep, pauseTestConfig()).d
	now := d.cfg.Now()
	d.mu.Lock()
	d.health[ep] = &health{fails: 3, paused: true, since: now, until: now.Add(time.Minute)}
	d.mu.Unlock()
	return d, now
}

// A delivery that comes due while its endpoint is paused is parked, and
// the loop is told when to look again (the endpoint's next try, the sweep
// of closed retry windows) even though nothing was parked before: with no
// new mail to wake it, the loop would otherwise sleep until the rescan.
func TestParkingAtPausedEndpointArmsTheTimer(t *testing.T) {
	const ep = "http://127.0.0.1:1/hook"
	d, now := pausedDispatcher(t, ep)
	d.add(&item{id: "01M97FZK90S622G04AX16NMC75-1", endpoint: ep, at: now, receivedAt: now, windowStart: now})
	it, wait := d.take()
	if it != nil {
		t.Fatalf("take = %s, want nothing: its endpoint is paused for a minute", it.id)
	}
	if wait < 0 || wait > windowSweep {
		t.Errorf("take's wait = %v, want at most %v (the next sweep)", wait, windowSweep)
	}
	d.mu.Lock()
	parked := len(d.parked[ep])
	d.mu.Unlock()
	if parked != 1 {
		t.Errorf("%d deliveries parked, want 1", parked)
	}
}

// A record handed over for a delivery that already waits, parked, at a
// paused endpoint (listed by a scan before its Accept returned) is not
// kept in memory either: its turn reads the store.
func TestParkedAtPausedEndpointKeepsNoHandedOverRecord(t *testing.T) {
	const ep = "http://127.0.0.1:1/hook"
	h := newHarness(t, newMemStore(), ep, pauseTestConfig()) // not started
	d := h.d
	now := d.cfg.Now()
	d.mu.Lock()
	d.health[ep] = &health{fails: 3, paused: true, since: now, until: now.Add(time.Minute)}
	d.mu.Unlock()
	id := h.accept(t, now, "a@example.com") + "-1" // handed over: known, with its record
	if it, _ := d.take(); it != nil {
		t.Fatalf("take = %s, want nothing: its endpoint is paused", it.id)
	}
	rec, err := h.q.Load(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	d.Enqueue(rec) // again, as after a scan that listed it first
	d.mu.Lock()
	defer d.mu.Unlock()
	it := d.known[id]
	if it == nil || !slices.Contains(d.parked[ep], it) {
		t.Fatalf("delivery %s not parked", id)
	}
	if it.rec != nil || it.again != nil {
		t.Errorf("delivery parked at the paused endpoint holds a record (rec %v, again %v)", it.rec != nil, it.again != nil)
	}
}

// A paused endpoint counts in the gauge while deliveries to it remain;
// once none does (all dead letters, say) it no longer counts, though it
// stays paused for the next one.
func TestPausedGaugeFollowsDeliveries(t *testing.T) {
	const ep = "http://127.0.0.1:1/hook"
	d, now := pausedDispatcher(t, ep)
	const id = "01M97FZK90S622G04AX16NMC75-1"
	d.add(&item{id: id, endpoint: ep, at: now.Add(time.Hour), receivedAt: now, windowStart: now})
	if n := d.Stats().PausedEndpoints; n != 1 {
		t.Errorf("with a delivery waiting: %d paused endpoints, want 1", n)
	}
	d.mu.Lock()
	delete(d.known, id)
	d.mu.Unlock()
	if n := d.Stats().PausedEndpoints; n != 0 {
		t.Errorf("with no delivery left: %d paused endpoints, want 0", n)
	}
}
