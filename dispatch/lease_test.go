package dispatch

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailhook/mailhook/event"
	"github.com/mailhook/mailhook/queue"
	"github.com/mailhook/mailhook/store"
)

// testLeaseTTL is short so that takeovers happen within a test.
const testLeaseTTL = 300 * time.Millisecond

func replicaConfig(id string) Config {
	cfg := defaultTestConfig()
	cfg.Now = time.Now
	cfg.LeaseTTL = testLeaseTTL
	cfg.RescanInterval = 20 * time.Millisecond
	cfg.ReplicaID = id
	return cfg
}

// overlapReceiver answers after a pause and records, per webhook-id, how
// many requests were in flight at once and how many it answered 2xx.
type overlapReceiver struct {
	mu        sync.Mutex
	inflight  map[string]int
	peak      map[string]int
	requests  map[string]int
	delivered map[string]int
}

func newOverlapReceiver() *overlapReceiver {
	return &overlapReceiver{inflight: map[string]int{}, peak: map[string]int{}, requests: map[string]int{}, delivered: map[string]int{}}
}

// serve answers one request with answer(n), n counting the requests for
// that webhook-id from 0, after holding it for hold.
func (o *overlapReceiver) serve(hold time.Duration, answer func(n int) int) func(int, http.ResponseWriter, *http.Request) {
	return func(_ int, w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("webhook-id")
		o.mu.Lock()
		n := o.requests[id]
		o.requests[id]++
		o.inflight[id]++
		o.peak[id] = max(o.peak[id], o.inflight[id])
		o.mu.Unlock()
		time.Sleep(hold)
		code := answer(n)
		o.mu.Lock()
		o.inflight[id]--
		if code/100 == 2 {
			o.delivered[id]++
		}
		o.mu.Unlock()
		w.WriteHeader(code)
	}
}

func (o *overlapReceiver) deliveredCount() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.delivered)
}

// Two dispatchers on one store, each told of half the messages and
// finding the other half by rescanning: every delivery is attempted by one
// of them at a time and delivered exactly once.
func TestReplicasNeverOverlap(t *testing.T) {
	backends(t, func(t *testing.T, s store.Store) {
		const n = 200
		o := newOverlapReceiver()
		// The first request of each delivery fails, so that every one is
		// claimed, released and claimed again.
		rc := newReceiver(t, o.serve(time.Millisecond, func(n int) int {
			if n == 0 {
				return http.StatusServiceUnavailable
			}
			return http.StatusOK
		}))
		// A TTL well above the scheduling hiccups of a loaded test machine:
		// this test is about overlap, not expiry.
		ca, cb := replicaConfig("replica-a"), replicaConfig("replica-b")
		ca.LeaseTTL, cb.LeaseTTL = 2*time.Second, 2*time.Second
		a := newHarness(t, s, rc.srv.URL, ca)
		b := newHarness(t, s, rc.srv.URL, cb)
		a.start(t)
		b.start(t)
		ids := make([]string, n)
		for i := range ids {
			h := a
			if i%2 == 1 {
				h = b
			}
			ids[i] = h.accept(t, time.Now(), "a@example.com")
		}
		deadline := time.Now().Add(60 * time.Second)
		for o.deliveredCount() < n {
			if time.Now().After(deadline) {
				t.Fatalf("%d of %d delivered after 60s", o.deliveredCount(), n)
			}
			time.Sleep(10 * time.Millisecond)
		}
		waitFor(t, "both dispatchers idle", func() bool {
			sa, sb := a.d.Stats(), b.d.Stats()
			return sa.Delivered+sb.Delivered == n && sa.InFlight == 0 && sb.InFlight == 0
		})
		o.mu.Lock()
		defer o.mu.Unlock()
		for _, id := range ids {
			if o.peak[id] != 1 {
				t.Errorf("%s: %d requests in flight at once", id, o.peak[id])
			}
			if o.delivered[id] != 1 || o.requests[id] != 2 {
				t.Errorf("%s: %d requests, %d delivered; want 2 and 1", id, o.requests[id], o.delivered[id])
				for _, l := range strings.Split(a.logs.String()+b.logs.String(), "\n") {
					if strings.Contains(l, id) && !strings.Contains(l, "DEBUG") {
						t.Log(l)
					}
				}
			}
		}
		sa, sb := a.d.Stats(), b.d.Stats()
		t.Logf("replica a delivered %d, replica b %d", sa.Delivered, sb.Delivered)
		if sa.Delivered == 0 || sb.Delivered == 0 {
			t.Errorf("one replica did all the work: %d and %d", sa.Delivered, sb.Delivered)
		}
		if left := leasesLeft(t, s, ca.LeaseTTL); len(left) != 0 {
			t.Errorf("leases left behind: %v", left)
			for _, k := range left {
				id := strings.TrimPrefix(k, queue.LeasePrefix)
				for _, l := range strings.Split(a.logs.String()+b.logs.String(), "\n") {
					if strings.Contains(l, id) {
						t.Log(l)
					}
				}
			}
		}
	})
}

// leasesLeft returns the leases in s that outlast the rescans. A lease
// whose renewal a stall of the machine made late is left to expire, not
// released (its holder can no longer tell that nobody took it over); the
// rescans collect it once it is stale, so this waits up to three TTLs.
// What is still there then was left behind for good.
func leasesLeft(t *testing.T, s store.Store, ttl time.Duration) []string {
	t.Helper()
	left := keys(t, s, queue.LeasePrefix)
	for deadline := time.Now().Add(3 * ttl); len(left) > 0 && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
		left = keys(t, s, queue.LeasePrefix)
	}
	return left
}

func keys(t *testing.T, s store.Store, prefix string) []string {
	t.Helper()
	var ks []string
	for obj, err := range s.List(context.Background(), prefix) {
		if err != nil {
			t.Fatal(err)
		}
		ks = append(ks, obj.Key)
	}
	return ks
}

// A lease left by a replica that died is taken over once it has stood
// unchanged for its TTL; one that is being renewed never is.
func TestLeaseTakeover(t *testing.T) {
	backends(t, func(t *testing.T, s store.Store) {
		rc := newReceiver(t, statuses(200))
		h := newHarness(t, s, rc.srv.URL, replicaConfig("survivor"))
		q := h.q
		ctx := context.Background()
		live := h.accept(t, time.Now(), "a@example.com")
		dead := h.accept(t, time.Now(), "b@example.com")
		other := queue.LeaseOwner{ID: "other", Host: "elsewhere", PID: 1}
		liveLease, err := q.ClaimLease(ctx, live+"-1", other, time.Now(), testLeaseTTL, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := q.ClaimLease(ctx, dead+"-1", other, time.Now(), testLeaseTTL, nil); err != nil {
			t.Fatal(err)
		}
		// The live owner renews every TTL/3 until told to stop.
		stopRenew := renewing(t, q, liveLease)

		start := time.Now()
		h.start(t)
		h.waitState(t, dead+"-1", queue.StateDelivered)
		took := time.Since(start)
		if took < testLeaseTTL {
			t.Errorf("dead lease taken over after %v, before its TTL of %v", took, testLeaseTTL)
		}
		t.Logf("dead lease taken over and delivered after %v", took.Round(time.Millisecond))

		time.Sleep(3 * testLeaseTTL)
		for _, r := range rc.requests() {
			if r.id == live {
				t.Fatal("a lease being renewed was taken over")
			}
		}
		stopRenew()
		h.waitState(t, live+"-1", queue.StateDelivered)
		if n := len(rc.requests()); n != 2 {
			t.Errorf("receiver got %d requests, want 2", n)
		}
		if st := h.d.Stats(); st.LeaseTakeovers < 2 {
			t.Errorf("LeaseTakeovers = %d, want 2", st.LeaseTakeovers)
		}
		waitFor(t, "no leases left", func() bool { return len(keys(t, s, queue.LeasePrefix)) == 0 })
	})
}

// An attempt that lasts three renewal periods keeps its lease: a second
// dispatcher that knows the delivery never sends it meanwhile.
func TestRenewalKeepsSlowAttemptOwned(t *testing.T) {
	backends(t, func(t *testing.T, s store.Store) {
		// Renewals every 300 ms: a store write (a syncfs on the fs store)
		// on a loaded machine can take 100 ms, testLeaseTTL's period.
		const testLeaseTTL = 900 * time.Millisecond
		o := newOverlapReceiver()
		rc := newReceiver(t, o.serve(3*testLeaseTTL, func(int) int { return http.StatusOK }))
		ca, cb := replicaConfig("a"), replicaConfig("b")
		ca.LeaseTTL, cb.LeaseTTL = testLeaseTTL, testLeaseTTL
		a := newHarness(t, s, rc.srv.URL, ca)
		b := newHarness(t, s, rc.srv.URL, cb)
		b.start(t)
		id := a.accept(t, time.Now(), "a@example.com")
		waitFor(t, "b to know the delivery", func() bool { return b.d.Stats().Pending == 1 || len(rc.requests()) > 0 })
		a.start(t)
		waitFor(t, "the attempt in flight", func() bool { return len(rc.requests()) == 1 })
		time.Sleep(testLeaseTTL + testLeaseTTL/2)
		l, err := a.q.ReadLease(context.Background(), id+"-1")
		if err != nil {
			t.Fatalf("lease during the attempt: %v", err)
		}
		if l.Renewals < 1 || !l.ExpiresAt.After(time.Now()) {
			t.Errorf("lease during the attempt = %+v, want renewed and not expired", l)
		}
		a.waitState(t, id+"-1", queue.StateDelivered)
		waitFor(t, "both idle", func() bool { return a.d.Stats().InFlight == 0 && b.d.Stats().InFlight == 0 })
		time.Sleep(2 * testLeaseTTL)
		if n := len(rc.requests()); n != 1 {
			t.Errorf("receiver got %d requests, want 1", n)
			t.Logf("a:\n%s\nb:\n%s", a.logs.String(), b.logs.String())
		}
		if st := a.d.Stats().LeaseTakeovers + b.d.Stats().LeaseTakeovers; st != 0 {
			t.Errorf("%d takeovers", st)
		}
		if left := leasesLeft(t, s, ca.LeaseTTL); len(left) != 0 {
			t.Errorf("leases left behind: %v", left)
		}
	})
}

// An attempt whose lease is taken over, or cannot be renewed before it
// runs out, is cancelled and left for the new owner: the record keeps its
// unfinished attempt and the lease is not deleted.
func TestLostLeaseCancelsAttempt(t *testing.T) {
	tests := []struct {
		name string
		lose func(t *testing.T, h *harness, s *memStore, recID string)
		want time.Duration // the attempt is cancelled within this
	}{
		{"taken over", func(t *testing.T, h *harness, _ *memStore, recID string) {
			cur, err := h.q.ReadLease(context.Background(), recID)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := h.q.ClaimLease(context.Background(), recID, queue.LeaseOwner{ID: "thief"}, time.Now(), time.Hour, cur); err != nil {
				t.Fatal(err)
			}
		}, testLeaseTTL/3 + 100*time.Millisecond},
		{"store unreachable", func(t *testing.T, _ *harness, s *memStore, _ string) {
			s.SetFail(func(op, key string) error {
				if strings.HasPrefix(key, queue.LeasePrefix) {
					return store.ErrUnavailable
				}
				return nil
			})
		}, testLeaseTTL + 100*time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newMemStore()
			cancelled := make(chan time.Time, 1)
			rc := newReceiver(t, func(_ int, w http.ResponseWriter, r *http.Request) {
				<-r.Context().Done()
				cancelled <- time.Now()
			})
			cfg := replicaConfig("victim")
			cfg.RescanInterval = time.Hour
			h := newHarness(t, s, rc.srv.URL, cfg)
			h.start(t)
			id := h.accept(t, time.Now(), "a@example.com")
			recID := id + "-1"
			waitFor(t, "the attempt in flight", func() bool { return len(rc.requests()) == 1 })
			lost := time.Now()
			tt.lose(t, h, s, recID)
			select {
			case at := <-cancelled:
				if d := at.Sub(lost); d > tt.want {
					t.Errorf("attempt cancelled %v after the lease was lost, want within %v", d, tt.want)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("the attempt was not cancelled")
			}
			waitFor(t, "nothing in flight", func() bool { return h.d.Stats().InFlight == 0 })
			s.SetFail(nil)
			d, err := h.q.Load(context.Background(), recID)
			if err != nil {
				t.Fatal(err)
			}
			if d.State != queue.StatePending || len(d.Attempts) != 1 || !d.Attempts[0].Unfinished {
				t.Errorf("record = %+v, want pending with the attempt unfinished", d)
			}
			if tt.name == "taken over" {
				l, err := h.q.ReadLease(context.Background(), recID)
				if err != nil || l.Owner != "thief" {
					t.Errorf("lease after the loss = %+v, %v; want the thief's", l, err)
				}
			}
			if n := len(rc.requests()); n != 1 {
				t.Errorf("receiver got %d requests, want 1", n)
			}
			if !strings.Contains(h.logs.String(), "lease") {
				t.Errorf("logs do not mention the lease:\n%s", h.logs.String())
			}
		})
	}
}

// ambiguousStore writes a lease but answers the first such write with
// ErrPrecondition, as S3 may when a conditional write's answer is lost
// and the SDK's retry finds the object it wrote.
type ambiguousStore struct {
	store.Store
	once atomic.Bool
}

func (a *ambiguousStore) Put(ctx context.Context, key string, body io.Reader, opts store.PutOptions) (store.Object, error) {
	obj, err := a.Store.Put(ctx, key, body, opts)
	if err == nil && strings.HasPrefix(key, queue.LeasePrefix) && a.once.CompareAndSwap(false, true) {
		return store.Object{}, fmt.Errorf("ambiguous: %w", store.ErrPrecondition)
	}
	return obj, err
}

// A claim that was written but answered as lost is not taken as ours: the
// delivery waits until the lease can be taken over, then goes out once.
func TestAmbiguousClaimIsNotOwnership(t *testing.T) {
	rc := newReceiver(t, statuses(200))
	s := &ambiguousStore{Store: newMemStore()}
	h := newHarness(t, s, rc.srv.URL, replicaConfig("a"))
	start := time.Now()
	h.start(t)
	id := h.accept(t, time.Now(), "a@example.com")
	h.waitState(t, id+"-1", queue.StateDelivered)
	if took := time.Since(start); took < testLeaseTTL {
		t.Errorf("delivered after %v, before the ambiguous lease could expire (%v)", took, testLeaseTTL)
	}
	if n := len(rc.requests()); n != 1 {
		t.Errorf("receiver got %d requests, want 1", n)
	}
}

// A delivery kept from its attempt by another process's lease for ten
// TTLs is logged once as held for long, so that a stuck hold shows.
func TestLongHoldWarned(t *testing.T) {
	rc := newReceiver(t, statuses(200))
	h := newHarness(t, newMemStore(), rc.srv.URL, replicaConfig("survivor"))
	ctx := context.Background()
	id := h.accept(t, time.Now(), "a@example.com")
	other := queue.LeaseOwner{ID: "other", Host: "elsewhere", PID: 1}
	l, err := h.q.ClaimLease(ctx, id+"-1", other, time.Now(), testLeaseTTL, nil)
	if err != nil {
		t.Fatal(err)
	}
	stop := renewing(t, h.q, l) // the other owner, alive
	h.start(t)
	waitFor(t, "the warning", func() bool { return strings.Contains(h.logs.String(), "delivery held by another process for long") })
	stop()
	h.waitState(t, id+"-1", queue.StateDelivered)
	if n := strings.Count(h.logs.String(), "delivery held by another process for long"); n != 1 {
		t.Errorf("warned %d times, want once", n)
	}
}

// renewing renews l every TTL/3, as a live owner does, until the
// returned function is called (which waits for the last renewal).
func renewing(t *testing.T, q *queue.Queue, l *queue.Lease) (stop func()) {
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		tk := time.NewTicker(testLeaseTTL / 3)
		defer tk.Stop()
		for {
			select {
			case <-quit:
				return
			case <-tk.C:
				if err := q.RenewLease(context.Background(), l, time.Now(), testLeaseTTL); err != nil {
					t.Errorf("renew: %v", err)
					return
				}
			}
		}
	}()
	return func() { close(quit); <-done }
}

// A rescan spends a bounded time on stale leases, and stops on Shutdown:
// behind a slow store, hundreds of leases left by crashed replicas held up
// the next rescan (replayed deliveries waited minutes) and the shutdown.
func TestCollectLeasesBounded(t *testing.T) {
	for _, stop := range []string{"budget", "shutdown"} {
		t.Run(stop, func(t *testing.T) {
			s := newMemStore()
			h := newHarness(t, s, "http://127.0.0.1:1/hook", defaultTestConfig()) // not started
			other := queue.LeaseOwner{ID: "other", Host: "elsewhere", PID: 1}
			for i := range 30 {
				id := fmt.Sprintf("%s-1", event.NewID(time.Now().Add(time.Duration(i)*time.Millisecond)))
				if _, err := h.q.ClaimLease(t.Context(), id, other, time.Now(), time.Hour, nil); err != nil {
					t.Fatal(err)
				}
			}
			var ops atomic.Int32
			s.SetFail(func(op, key string) error {
				if op != "list" && strings.HasPrefix(key, queue.LeasePrefix) {
					if ops.Add(1) == 1 && stop == "shutdown" {
						close(h.d.stopping)
					}
				}
				return nil
			})
			if stop == "budget" {
				old := collectBudget
				collectBudget = 0
				t.Cleanup(func() { collectBudget = old })
			}
			h.d.rescan(t.Context())
			// A lease costs at most a claim, a read and a delete.
			if n := ops.Load(); stop == "budget" && n != 0 || stop == "shutdown" && n > 3 {
				t.Errorf("%d lease operations in a rescan stopped by its %s; 30 leases would need 60", n, stop)
			}
		})
	}
}

// slowGetStore delays every read of a pending record, as a remote store
// does, and records how many were in flight at once.
type slowGetStore struct {
	store.Store
	delay          time.Duration
	inFlight, most atomic.Int64
}

func (s *slowGetStore) Get(ctx context.Context, key string) (io.ReadCloser, store.Object, error) {
	if strings.HasPrefix(key, queue.PendingPrefix) {
		n := s.inFlight.Add(1)
		defer s.inFlight.Add(-1)
		for m := s.most.Load(); n > m && !s.most.CompareAndSwap(m, n); m = s.most.Load() {
		}
		time.Sleep(s.delay)
	}
	return s.Store.Get(ctx, key)
}

// A rescan reads the records it does not know several at a time (after
// a crash with a backlog, one at a time took a minute for 6,000 on a
// local S3 server), and schedules every one of them.
func TestRescanReadsInParallel(t *testing.T) {
	s := &slowGetStore{Store: newMemStore(), delay: 5 * time.Millisecond}
	h := newHarness(t, s, "http://127.0.0.1:1/unused", defaultTestConfig())
	const n = 64
	ids := make([]string, n)
	for i := range ids {
		ids[i] = h.accept(t, t0, "a@example.com")
	}
	// The harness's Accept handed them over; a fresh dispatcher on the
	// same store knows none of them.
	h2 := newHarness(t, s, "http://127.0.0.1:1/unused", defaultTestConfig())
	h2.d.rescan(t.Context())
	for _, id := range ids {
		if !h2.d.isKnown(id + "-1") {
			t.Fatalf("%s-1 not scheduled by the rescan", id)
		}
	}
	if m := s.most.Load(); m < 2 || m > rescanReads {
		t.Errorf("%d reads at once, want 2 to %d", m, rescanReads)
	}
}
