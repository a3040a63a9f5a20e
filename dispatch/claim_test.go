package dispatch

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailhook/mailhook/event"
	"github.com/mailhook/mailhook/parse"
	"github.com/mailhook/mailhook/queue"
	"github.com/mailhook/mailhook/store"
)

// writeLog records the keys of every Put and Delete, in order.
type writeLog struct {
	store.Store
	mu     sync.Mutex
	puts   []string
	delete []string
}

func (w *writeLog) Put(ctx context.Context, key string, body io.Reader, opts store.PutOptions) (store.Object, error) {
	w.mu.Lock()
	w.puts = append(w.puts, key)
	w.mu.Unlock()
	return w.Store.Put(ctx, key, body, opts)
}

func (w *writeLog) Delete(ctx context.Context, key string) error {
	w.mu.Lock()
	w.delete = append(w.delete, key)
	w.mu.Unlock()
	return w.Store.Delete(ctx, key)
}

// count returns how many Puts and Deletes had a key starting with prefix.
func (w *writeLog) count(prefix string) (puts, deletes int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, k := range w.puts {
		if strings.HasPrefix(k, prefix) {
			puts++
		}
	}
	for _, k := range w.delete {
		if strings.HasPrefix(k, prefix) {
			deletes++
		}
	}
	return puts, deletes
}

// A delivery accepted by this process goes out under the claim written
// with its record: no lease, no write of the pending record before the
// request; after it, the delivered record and the pending one's delete.
func TestClaimedFirstAttemptWritesNothingBefore(t *testing.T) {
	backends(t, func(t *testing.T, s store.Store) {
		rc := newReceiver(t, statuses(200))
		w := &writeLog{Store: s}
		// A long TTL: a claim older than half its validity is not used,
		// and a loaded machine may take a while to get to the attempt.
		cfg := replicaConfig("a")
		cfg.LeaseTTL = time.Minute
		h := newHarnessClaims(t, w, rc.srv.URL, cfg, true)
		h.start(t)
		id := h.accept(t, time.Now(), "a@example.com")
		d := h.waitState(t, id+"-1", queue.StateDelivered)
		if d.Claim != nil || len(d.Attempts) != 1 || d.Attempts[0].Status != 200 {
			t.Errorf("delivered record = %+v, want one attempt and no claim", d)
		}
		if p, del := w.count(queue.LeasePrefix); p != 0 || del != 0 {
			t.Errorf("%d lease writes and %d deletes, want none", p, del)
		}
		// writeLog hides store.Batcher, so Accept's batch comes as Puts.
		// (waitState's Load may delete the pending record too, when it
		// reads it just after the delivered one was written.)
		if p, del := w.count(queue.PendingPrefix); p != 1 || del < 1 {
			t.Errorf("pending record: %d puts, %d deletes; want Accept's one and a delete", p, del)
		}
		if n := len(rc.requests()); n != 1 {
			t.Errorf("receiver got %d requests, want 1", n)
		}
		if st := h.d.Stats(); st.ClaimedAttempts != 1 {
			t.Errorf("ClaimedAttempts = %d, want 1", st.ClaimedAttempts)
		}
	})
}

// A record claimed by a replica that died before attempting it is left
// alone by the others until the claim has expired (and been seen for a
// TTL), then delivered once, through the usual lease.
func TestClaimKeepsOthersOffUntilItExpires(t *testing.T) {
	backends(t, func(t *testing.T, s store.Store) {
		rc := newReceiver(t, statuses(200))
		dead := newHarnessClaims(t, s, rc.srv.URL, replicaConfig("dead"), true) // never started
		survivor := newHarness(t, s, rc.srv.URL, replicaConfig("survivor"))
		start := time.Now()
		id := dead.accept(t, time.Now(), "a@example.com")
		rec, err := dead.q.Load(context.Background(), id+"-1")
		if err != nil || rec.Claim == nil || rec.Claim.Owner != "dead" {
			t.Fatalf("accepted record = %+v, %v; want claimed by dead", rec, err)
		}
		survivor.start(t)
		d := survivor.waitState(t, id+"-1", queue.StateDelivered)
		if took := time.Since(start); took < testLeaseTTL+testLeaseTTL/3 {
			t.Errorf("delivered %v after the claim was written, before it expired (%v + skew)", took, testLeaseTTL)
		}
		if n := len(rc.requests()); n != 1 {
			t.Errorf("receiver got %d requests, want 1", n)
		}
		if len(d.Attempts) != 1 {
			t.Errorf("attempts = %+v, want 1", d.Attempts)
		}
		waitFor(t, "no leases left", func() bool { return len(keys(t, s, queue.LeasePrefix)) == 0 })
	})
}

// An attempt under a claim that outlasts it takes the delivery's lease
// before the claim runs out, so another replica that knows the delivery
// never sends it meanwhile.
func TestSlowClaimedAttemptTakesTheLease(t *testing.T) {
	backends(t, func(t *testing.T, s store.Store) {
		const testLeaseTTL = 900 * time.Millisecond // see TestRenewalKeepsSlowAttemptOwned
		o := newOverlapReceiver()
		rc := newReceiver(t, o.serve(3*testLeaseTTL, func(int) int { return http.StatusOK }))
		ca, cb := replicaConfig("a"), replicaConfig("b")
		ca.LeaseTTL, cb.LeaseTTL = testLeaseTTL, testLeaseTTL
		a := newHarnessClaims(t, s, rc.srv.URL, ca, true)
		b := newHarness(t, s, rc.srv.URL, cb)
		b.start(t)
		a.start(t)
		id := a.accept(t, time.Now(), "a@example.com")
		waitFor(t, "the attempt in flight", func() bool { return len(rc.requests()) == 1 })
		time.Sleep(testLeaseTTL + testLeaseTTL/2)
		l, err := a.q.ReadLease(context.Background(), id+"-1")
		if err != nil || l.Owner != "a" || !l.ExpiresAt.After(time.Now()) {
			t.Errorf("lease during the attempt = %+v, %v; want a's, not expired", l, err)
		}
		a.waitState(t, id+"-1", queue.StateDelivered)
		waitFor(t, "both idle", func() bool { return a.d.Stats().InFlight == 0 && b.d.Stats().InFlight == 0 })
		time.Sleep(2 * testLeaseTTL)
		if n := len(rc.requests()); n != 1 {
			t.Errorf("receiver got %d requests, want 1", n)
		}
		if left := keys(t, s, queue.LeasePrefix); len(left) != 0 {
			t.Errorf("leases left behind: %v", left)
		}
	})
}

// A dispatcher stopping gracefully releases the claims of the deliveries
// it accepted and did not attempt: another replica sends them at once,
// not a TTL later.
func TestShutdownReleasesClaims(t *testing.T) {
	backends(t, func(t *testing.T, s store.Store) {
		hold := make(chan struct{})
		rc := newReceiver(t, func(n int, w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("User-Agent") == "stopping" {
				<-hold
			}
		})
		cfg := replicaConfig("stopping")
		cfg.LeaseTTL = time.Hour // a claim left behind would hold for the whole test
		cfg.PerEndpointConcurrency = 1
		cfg.UserAgent = "stopping"
		a := newHarnessClaims(t, s, rc.srv.URL, cfg, true)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		runDone := make(chan error, 1)
		go func() { runDone <- a.d.Run(ctx) }()
		const n = 5
		ids := make([]string, n)
		for i := range ids {
			ids[i] = a.accept(t, time.Now(), "a@example.com") + "-1"
		}
		waitFor(t, "one attempt in flight", func() bool { return len(rc.requests()) == 1 })
		shut := make(chan error, 1)
		go func() { shut <- a.d.Shutdown(context.Background()) }()
		time.Sleep(50 * time.Millisecond)
		close(hold) // the attempt in flight finishes within the grace
		if err := <-shut; err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
		if err := <-runDone; err != nil {
			t.Fatalf("Run: %v", err)
		}
		if claimed := stillClaimed(t, a.q, ids); claimed != 0 {
			t.Fatalf("%d pending records still claimed after a graceful stop", claimed)
		}
		if !strings.Contains(a.logs.String(), "released the claims") {
			t.Errorf("no log line about the released claims:\n%s", a.logs.String())
		}

		bcfg := replicaConfig("successor")
		bcfg.LeaseTTL = time.Hour
		b := newHarness(t, s, rc.srv.URL, bcfg)
		b.start(t)
		for _, id := range ids {
			b.waitState(t, id, queue.StateDelivered)
		}
		if got := len(rc.requests()); got != n {
			t.Errorf("receiver got %d requests, want %d", got, n)
		}
	})
}

// A stop whose grace runs out while an attempt is in flight still
// releases the claims of the deliveries it never attempted (Run takes a
// moment past the grace for it), so a successor need not wait for them.
func TestClaimsReleasedWhenTheGraceRunsOut(t *testing.T) {
	hold := make(chan struct{})
	defer close(hold)
	rc := newReceiver(t, func(n int, w http.ResponseWriter, r *http.Request) { <-hold })
	cfg := replicaConfig("stopping")
	cfg.LeaseTTL = time.Hour
	cfg.PerEndpointConcurrency = 1
	a := newHarnessClaims(t, newMemStore(), rc.srv.URL, cfg, true)
	runDone := make(chan error, 1)
	go func() { runDone <- a.d.Run(context.Background()) }()
	ids := make([]string, 5)
	for i := range ids {
		ids[i] = a.accept(t, time.Now(), "a@example.com") + "-1"
	}
	waitFor(t, "one attempt in flight", func() bool { return len(rc.requests()) == 1 })
	grace, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := a.d.Shutdown(grace); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown: %v, want the grace run out", err)
	}
	if err := <-runDone; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if claimed := stillClaimed(t, a.q, ids); claimed != 0 {
		t.Errorf("%d records still claimed after the grace ran out", claimed)
	}
}

// stillClaimed counts the records of ids that carry a claim (only a
// pending record can: its first update drops it).
func stillClaimed(t *testing.T, q *queue.Queue, ids []string) int {
	t.Helper()
	claimed := 0
	for _, id := range ids {
		d, err := q.Load(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if d.Claim != nil {
			claimed++
		}
	}
	return claimed
}

// A delivery the start-up scan listed before Accept handed its record
// over still goes out under the claim: the dispatcher takes the record
// handed over instead of reading the store.
func TestClaimUsedWhenListedFirst(t *testing.T) {
	s := newMemStore()
	rc := newReceiver(t, statuses(200))
	w := &writeLog{Store: s}
	cfg := replicaConfig("a")
	cfg.LeaseTTL = time.Minute
	h := newHarnessClaims(t, w, rc.srv.URL, cfg, true)
	now := time.Now()
	id := event.NewID(now)
	// What the scan does when it lists the record: known, no record.
	h.d.add(&item{id: id + "-1", endpoint: rc.srv.URL, at: now, receivedAt: now})
	env := event.Envelope{MailFrom: "sender@example.org", RcptTo: []string{"a@example.com"}}
	if err := h.q.Accept(context.Background(), id, now, env, strings.NewReader("Subject: x\r\n\r\nbody\r\n")); err != nil {
		t.Fatal(err)
	}
	h.start(t)
	h.waitState(t, id+"-1", queue.StateDelivered)
	if p, del := w.count(queue.LeasePrefix); p != 0 || del != 0 {
		t.Errorf("%d lease writes and %d deletes, want none", p, del)
	}
	if st := h.d.Stats(); st.ClaimedAttempts != 1 {
		t.Errorf("ClaimedAttempts = %d, want 1", st.ClaimedAttempts)
	}
}

// A delivery the start-up scan listed before Accept handed its record over
// has its claim released at shutdown like any other.
func TestClaimReleasedWhenListedFirst(t *testing.T) {
	s := newMemStore()
	cfg := replicaConfig("a")
	cfg.LeaseTTL = time.Hour
	h := newHarnessClaims(t, s, "http://127.0.0.1:1/never", cfg, true)
	now := time.Now()
	id := event.NewID(now)
	h.d.add(&item{id: id + "-1", endpoint: "http://127.0.0.1:1/never", at: now, receivedAt: now})
	env := event.Envelope{MailFrom: "sender@example.org", RcptTo: []string{"a@example.com"}}
	if err := h.q.Accept(context.Background(), id, now, env, strings.NewReader("Subject: x\r\n\r\nbody\r\n")); err != nil {
		t.Fatal(err)
	}
	h.d.releaseClaims(context.Background())
	d, err := h.q.Load(context.Background(), id+"-1")
	if err != nil {
		t.Fatal(err)
	}
	if d.State != queue.StatePending || d.Claim != nil {
		t.Errorf("record after releaseClaims = %s, claim %+v; want pending without a claim", d.State, d.Claim)
	}
}

// A record listed while the Accept that wrote it has not returned (its
// records are visible before its barrier) is left to the handover: the
// scan does not schedule it, so it is not attempted once from the listing
// and again from the Enqueue that follows.
func TestListedDuringAcceptAttemptedOnce(t *testing.T) {
	cfg := replicaConfig("a")
	cfg.LeaseTTL, cfg.RescanInterval = time.Minute, time.Hour
	rc := newReceiver(t, statuses(200))
	h := newHarnessClaims(t, newMemStore(), rc.srv.URL, cfg, true)
	var handed []*queue.Delivery
	q := queue.New(queue.Options{
		Store:     h.s,
		Router:    queue.RouterFunc(func(string) string { return rc.srv.URL }),
		Owner:     ownerOf(cfg.ReplicaID),
		ClaimTTL:  cfg.LeaseTTL,
		OnEnqueue: func(d *queue.Delivery) { handed = append(handed, d) },
	})
	now := time.Now()
	id := event.NewID(now)
	env := event.Envelope{MailFrom: "sender@example.org", RcptTo: []string{"a@example.com"}}
	if err := q.Accept(context.Background(), id, now, env, strings.NewReader("Subject: x\r\n\r\nbody\r\n")); err != nil {
		t.Fatal(err)
	}
	// The scan runs between the records' write and the handover.
	h.d.rescan(context.Background())
	if h.d.isKnown(id + "-1") {
		t.Error("the scan scheduled a record its Accept had not handed over yet")
	}
	if len(handed) != 1 {
		t.Fatalf("Accept handed over %d records, want 1", len(handed))
	}
	h.d.Enqueue(handed[0])
	h.start(t)
	h.waitState(t, id+"-1", queue.StateDelivered)
	time.Sleep(50 * time.Millisecond) // a second attempt would be on its way
	if n := len(rc.requests()); n != 1 {
		t.Errorf("receiver got %d requests, want 1", n)
	}
	if st := h.d.Stats(); st.ClaimedAttempts != 1 {
		t.Errorf("ClaimedAttempts = %d, want 1 (under the claim Accept wrote)", st.ClaimedAttempts)
	}

	// A claim of this process that has run out (its Accept failed and
	// left the record) is scheduled like any other.
	h2 := newHarnessClaims(t, newMemStore(), rc.srv.URL, cfg, true)
	late := event.NewID(now)
	q2 := queue.New(queue.Options{
		Store: h2.s, Router: queue.RouterFunc(func(string) string { return rc.srv.URL }),
		Owner: ownerOf(cfg.ReplicaID), ClaimTTL: time.Millisecond,
	})
	if err := q2.Accept(context.Background(), late, now, env, strings.NewReader("Subject: x\r\n\r\nbody\r\n")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Millisecond)
	h2.d.rescan(context.Background())
	if !h2.d.isKnown(late + "-1") {
		t.Error("the scan left alone a record whose own claim has expired")
	}
}

// The first attempt on a record this process accepted, made after its
// claim grew too old to start under (a backlog, a paused endpoint), takes
// the lease but writes nothing to the pending record before the request:
// the process that accepted it has not died since.
func TestOwnStaleClaimFirstAttemptWritesNoRecordBefore(t *testing.T) {
	backends(t, func(t *testing.T, s store.Store) {
		t.Run("handed over", func(t *testing.T) { testOwnStaleClaim(t, s, false) })
		// Found by the scan, as a delivery parked at a paused endpoint is
		// read again: the record read carries the claim, nothing else.
		t.Run("listed", func(t *testing.T) { testOwnStaleClaim(t, s, true) })
	})
}

func testOwnStaleClaim(t *testing.T, s store.Store, listed bool) {
	rc := newReceiver(t, statuses(200))
	w := &writeLog{Store: s}
	cfg := replicaConfig("a")
	h := newHarnessClaims(t, w, rc.srv.URL, cfg, true)
	var id string
	if listed {
		q := queue.New(queue.Options{
			Store:    s,
			Router:   queue.RouterFunc(func(string) string { return rc.srv.URL }),
			Owner:    ownerOf(cfg.ReplicaID),
			ClaimTTL: cfg.LeaseTTL,
		})
		now := time.Now()
		id = event.NewID(now)
		env := event.Envelope{MailFrom: "sender@example.org", RcptTo: []string{"a@example.com"}}
		if err := q.Accept(context.Background(), id, now, env, strings.NewReader("Subject: x\r\n\r\nbody\r\n")); err != nil {
			t.Fatal(err)
		}
	} else {
		id = h.accept(t, time.Now(), "a@example.com")
	}
	time.Sleep(testLeaseTTL) // past half the claim's validity
	h.start(t)
	d := h.waitState(t, id+"-1", queue.StateDelivered)
	if len(d.Attempts) != 1 || d.Attempts[0].Status != 200 {
		t.Errorf("delivered record = %+v, want one attempt", d)
	}
	waitFor(t, "no leases left", func() bool { return len(keys(t, s, queue.LeasePrefix)) == 0 })
	if p, del := w.count(queue.LeasePrefix); p != 1 || del != 1 {
		t.Errorf("%d lease writes and %d deletes, want 1 and 1", p, del)
	}
	accepted := 1 // Accept's write
	if listed {
		accepted = 0 // not through w
	}
	if p, _ := w.count(queue.PendingPrefix); p != accepted {
		t.Errorf("pending record written %d times, want %d (Accept's only)", p, accepted)
	}
	if st := h.d.Stats(); st.ClaimedAttempts != 0 {
		t.Errorf("ClaimedAttempts = %d, want 0 (the claim was too old)", st.ClaimedAttempts)
	}
}

// Another owner's claim, even once it has expired with no attempt made
// (its process died, maybe during that attempt), gets its attempt
// persisted before the request, so that a message whose attempt kills
// processes has its attempts counted and spaced.
func TestOthersClaimFirstAttemptPersisted(t *testing.T) {
	backends(t, func(t *testing.T, s store.Store) {
		rc := newReceiver(t, statuses(200))
		dead := newHarnessClaims(t, s, rc.srv.URL, replicaConfig("dead"), true) // never started
		id := dead.accept(t, time.Now(), "a@example.com")
		w := &writeLog{Store: s}
		survivor := newHarness(t, w, rc.srv.URL, replicaConfig("survivor"))
		survivor.start(t)
		survivor.waitState(t, id+"-1", queue.StateDelivered)
		if p, _ := w.count(queue.PendingPrefix); p != 1 {
			t.Errorf("the survivor wrote the pending record %d times before delivering, want once (BeginAttempt)", p)
		}
	})
}

// settledOnClaim is a Queue on which another replica settles a delivery
// just before this one gets its lease.
type settledOnClaim struct {
	*queue.Queue
	other *queue.Queue
	once  sync.Once
}

func (q *settledOnClaim) ClaimLease(ctx context.Context, recID string, owner queue.LeaseOwner, now time.Time, ttl time.Duration, prev *queue.Lease) (*queue.Lease, error) {
	var err error
	q.once.Do(func() {
		var d *queue.Delivery
		if d, err = q.other.Load(ctx, recID); err == nil {
			err = q.other.MarkDelivered(ctx, d, queue.Attempt{At: now, Endpoint: d.Endpoint, Status: 200})
		}
	})
	if err != nil {
		return nil, err
	}
	return q.Queue.ClaimLease(ctx, recID, owner, now, ttl, prev)
}

// A first attempt that writes nothing before its request still checks,
// once it holds the lease, that the record it read is current: a record
// settled meanwhile by another replica is not sent again.
func TestOwnStaleClaimSettledElsewhereNotSent(t *testing.T) {
	backends(t, func(t *testing.T, s store.Store) {
		rc := newReceiver(t, statuses(200))
		h := newHarnessClaims(t, s, rc.srv.URL, replicaConfig("a"), true)
		other := queue.New(queue.Options{Store: s, Router: queue.RouterFunc(func(string) string { return rc.srv.URL })})
		h.d = New(replicaConfig("a"), &settledOnClaim{Queue: h.q, other: other}, newRenderer(h.q, fakeParse, parse.Options{}), testSigner{}, slog.New(slog.NewJSONHandler(h.logs, nil)))
		id := h.accept(t, time.Now(), "a@example.com")
		time.Sleep(testLeaseTTL)
		h.start(t)
		waitFor(t, "the delivery forgotten", func() bool { return !h.d.isKnown(id + "-1") })
		if n := len(rc.requests()); n != 0 {
			t.Errorf("receiver got %d requests, want 0: the record was settled elsewhere", n)
		}
		waitFor(t, "no leases left", func() bool { return len(keys(t, s, queue.LeasePrefix)) == 0 })
	})
}

// A replica that died during a slow attempt under its accept-time claim
// leaves both the claim in the record and the lease it took meanwhile.
// Another replica, which cannot tell the owner's process dead (another
// machine, or a container restarted in a new pid namespace), takes the
// delivery over once both have stood for a TTL, and sends it once.
func TestDeadReplicasClaimAndLeaseTakenOver(t *testing.T) {
	backends(t, func(t *testing.T, s store.Store) {
		rc := newReceiver(t, statuses(200))
		dead := newHarnessClaims(t, s, rc.srv.URL, replicaConfig("dead"), true) // never started
		survivor := newHarness(t, s, rc.srv.URL, replicaConfig("survivor"))
		id := dead.accept(t, time.Now(), "a@example.com")
		if _, err := dead.q.ClaimLease(context.Background(), id+"-1", dead.d.owner, time.Now(), testLeaseTTL, nil); err != nil {
			t.Fatal(err)
		}
		survivor.start(t)
		d := survivor.waitState(t, id+"-1", queue.StateDelivered)
		if n := len(rc.requests()); n != 1 || len(d.Attempts) != 1 {
			t.Errorf("receiver got %d requests, record has %d attempts; want 1 and 1", n, len(d.Attempts))
		}
	})
}
