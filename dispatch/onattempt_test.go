package dispatch

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mailhook/mailhook/queue"
	"github.com/mailhook/mailhook/store"
)

// Config.OnAttempt hears every attempt once, with its final outcome.
func TestOnAttempt(t *testing.T) {
	backends(t, func(t *testing.T, s store.Store) {
		rc := newReceiver(t, statuses(503, 200))
		var (
			mu  sync.Mutex
			got []string
		)
		cfg := defaultTestConfig()
		cfg.Now = time.Now
		cfg.OnAttempt = func(status int, outcome string, latency time.Duration) {
			mu.Lock()
			defer mu.Unlock()
			got = append(got, fmt.Sprintf("%d %s", status, outcome))
			if latency <= 0 {
				t.Errorf("attempt %d %s: latency %v", status, outcome, latency)
			}
		}
		h := newHarness(t, s, rc.srv.URL+"/hook", cfg)
		h.start(t)
		id := h.accept(t, time.Now(), "a@example.com")
		h.waitState(t, id+"-1", queue.StateDelivered)
		waitFor(t, "two attempts reported", func() bool { mu.Lock(); defer mu.Unlock(); return len(got) == 2 })
		mu.Lock()
		defer mu.Unlock()
		if want := []string{"503 retry", "200 delivered"}; !slices.Equal(got, want) {
			t.Errorf("OnAttempt saw %q, want %q", got, want)
		}
	})
}
