package dispatch

import (
	"container/heap"
	"context"
	"errors"
	"iter"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mailhook/mailhook/queue"
	"github.com/mailhook/mailhook/store"
	"golang.org/x/sync/semaphore"
)

// Queue is what the dispatcher needs from the delivery queue
// (*queue.Queue). Updates are conditional: an error wrapping
// store.ErrPrecondition means someone else changed the record.
type Queue interface {
	PendingIDs(ctx context.Context) iter.Seq2[string, error]
	Load(ctx context.Context, recID string) (*queue.Delivery, error)
	DropEmpty(ctx context.Context, recID string, notAfter time.Time) (bool, error)
	BeginAttempt(ctx context.Context, d *queue.Delivery, at, retryAt time.Time) error
	Unchanged(ctx context.Context, d *queue.Delivery) error
	ReleaseClaim(ctx context.Context, d *queue.Delivery) error
	RecordAttempt(ctx context.Context, d *queue.Delivery, a queue.Attempt, next time.Time) error
	MarkDelivered(ctx context.Context, d *queue.Delivery, a queue.Attempt) error
	MarkFailed(ctx context.Context, d *queue.Delivery, a queue.Attempt, reason string) error
	// Leases between replicas (see lease.go).
	ClaimLease(ctx context.Context, recID string, owner queue.LeaseOwner, now time.Time, ttl time.Duration, prev *queue.Lease) (*queue.Lease, error)
	ReadLease(ctx context.Context, recID string) (*queue.Lease, error)
	RenewLease(ctx context.Context, l *queue.Lease, now time.Time, ttl time.Duration) error
	ReleaseLease(ctx context.Context, l *queue.Lease) error
	LeaseIDs(ctx context.Context) iter.Seq2[string, error]
}

var _ Queue = (*queue.Queue)(nil)

// Signer signs a webhook body (*signing.Signer does). It returns the
// webhook-signature header value.
type Signer interface {
	Sign(id string, ts time.Time, body []byte) string
}

// persistTimeout bounds one store write of an attempt's outcome. Such
// writes are detached from cancellation, so that an attempt cut short by a
// shutdown is still recorded.
const persistTimeout = 15 * time.Second

// rescanTimeout bounds one rescan of the pending records.
const rescanTimeout = 5 * time.Minute

// Dispatcher schedules and sends deliveries. Create it with New, start it
// with Run, feed it with Enqueue; it is safe for concurrent use.
type Dispatcher struct {
	cfg    Config
	policy RetryPolicy
	owner  queue.LeaseOwner
	q      Queue
	render Renderer
	signer Signer
	log    *slog.Logger
	mem    *semaphore.Weighted // Config.RenderMemory; nil: unbounded

	mu     sync.Mutex
	sched  schedule
	known  map[string]*item   // every delivery scheduled, parked or in flight
	parked map[string][]*item // due, waiting for a free slot at their endpoint
	busy   map[string]int     // attempts in flight per endpoint
	health map[string]*health // endpoints failing, or paused (see pause.go)
	// nextSweep: parked deliveries are next looked through for closed
	// retry windows then (see probeLocked).
	nextSweep time.Time
	inflight  int
	state     runState
	cancel    context.CancelFunc // cancels the running Run's attempts

	// orphans are the leases on deliveries that are no longer pending,
	// as last seen by rescan (which alone uses it), until collected.
	orphans map[string]*item

	wake     chan struct{} // cap 1: something changed, look again
	stopping chan struct{} // closed by Shutdown
	stopOnce sync.Once
	done     chan struct{} // closed when Run returns

	delivered, failed  atomic.Uint64
	takeovers, claimed atomic.Uint64
	// gone maps the process identities found dead to when (ownerGoneAt).
	gone     sync.Map
	attempts [numClasses]atomic.Uint64
}

type runState int

const (
	idle runState = iota
	running
	finished
)

// New returns a Dispatcher. render builds the bodies (see NewRenderer);
// signer may be nil to send unsigned; logger may be nil to discard.
func New(cfg Config, q Queue, render Renderer, signer Signer, logger *slog.Logger) *Dispatcher {
	cfg = cfg.withDefaults()
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Dispatcher{
		cfg:      cfg,
		policy:   cfg.Policy(),
		owner:    ownerOf(cfg.ReplicaID),
		q:        q,
		render:   render,
		signer:   signer,
		log:      logger,
		mem:      newRenderMemory(cfg.RenderMemory),
		known:    make(map[string]*item),
		parked:   make(map[string][]*item),
		busy:     make(map[string]int),
		health:   make(map[string]*health),
		wake:     make(chan struct{}, 1),
		stopping: make(chan struct{}),
		done:     make(chan struct{}),
	}
}

// Enqueue schedules a pending delivery that was just made durable (wire it
// to queue.Options.OnEnqueue). It never blocks on I/O. Deliveries already
// known, not pending or without an endpoint are ignored (a known one
// replayed meanwhile is picked up). The dispatcher takes ownership of rec.
func (d *Dispatcher) Enqueue(rec *queue.Delivery) {
	if rec == nil || rec.State != queue.StatePending || rec.Endpoint == "" {
		return
	}
	d.add(newItem(rec.ID, rec, rec))
}

// inMemory is the record of it to work from without reading the store,
// or nil. d.mu must be held.
func (it *item) inMemory() *queue.Delivery {
	switch {
	case it.again != nil && it.again.Replays > it.replays:
		return it.again // a replay enqueued since
	case it.rec == nil && it.again != nil && it.again.Replays == it.replays && !it.taken:
		// Known from a listing (the start-up scan) before Accept handed
		// over its record, and not taken up since: that record is the
		// current one, and with it the first attempt can go out under the
		// claim it carries (or the claim be released at shutdown).
		return it.again
	}
	return it.rec
}

// add schedules it unless its delivery is already known. A known one
// handed to Enqueue (it.rec set) is remembered as its newest version,
// unless a worker has taken the delivery up since and the version is not
// a later replay: it is then no newer than the one the worker had or
// read (an Accept whose record a listing found first, handed over late).
func (d *Dispatcher) add(it *item) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if cur, ok := d.known[it.id]; ok {
		if it.rec != nil && !d.parkedPausedLocked(cur) && (!cur.taken || it.rec.Replays > cur.replays) {
			cur.again = it.rec
		}
		return false
	}
	d.known[it.id] = it
	heap.Push(&d.sched, it)
	d.poke()
	return true
}

// parkedPausedLocked reports whether it waits, parked, at a paused
// endpoint: it keeps no record there (see take), and its turn reads the
// current version from the store. d.mu must be held.
func (d *Dispatcher) parkedPausedLocked(it *item) bool {
	h := d.health[it.endpoint]
	return h != nil && h.paused && slices.Contains(d.parked[it.endpoint], it)
}

// poke wakes the scheduling loop.
func (d *Dispatcher) poke() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

func (d *Dispatcher) isKnown(id string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	_, ok := d.known[id]
	return ok
}

// Run sends deliveries until ctx is cancelled or Shutdown is called. It
// first lists the pending records in the store (resuming the work of a
// process that stopped, each at its NextAttemptAt), then takes new ones
// from Enqueue at once and from a rescan every RescanInterval.
//
// When ctx is cancelled, attempts in flight are cancelled (and recorded as
// failed attempts to be retried); Run returns once they are recorded.
// Deliveries not done stay pending in the store. Run may be called once.
func (d *Dispatcher) Run(ctx context.Context) error {
	d.mu.Lock()
	if d.state != idle {
		d.mu.Unlock()
		return errors.New("dispatch: Run called twice")
	}
	d.state = running
	ctx, cancel := context.WithCancel(ctx)
	d.cancel = cancel
	d.mu.Unlock()
	defer func() {
		cancel()
		d.mu.Lock()
		d.state = finished
		d.mu.Unlock()
		close(d.done)
	}()

	jobs := make(chan *item)
	var wg sync.WaitGroup
	for range d.cfg.Concurrency {
		wg.Go(func() {
			for it := range jobs {
				d.process(ctx, it)
			}
		})
	}
	scanCtx, stopScan := context.WithCancel(ctx)
	var scanWG sync.WaitGroup
	scanWG.Go(func() { d.rescanLoop(scanCtx) })

	d.loop(ctx, jobs)
	stopScan()
	close(jobs)
	wg.Wait()
	scanWG.Wait()
	// Even when the grace has run out (ctx done): a moment more now
	// spares the successor the wait for the claims to expire.
	rctx, cancelRelease := context.WithTimeout(context.WithoutCancel(ctx), releaseBudget)
	defer cancelRelease()
	d.releaseClaims(rctx)
	return nil
}

// releaseBudget bounds the time Run spends releasing claims as it ends.
const releaseBudget = 2 * time.Second

// releaseClaims gives up the claims of the deliveries accepted here and
// never attempted, so that other replicas, or this one restarted, need not
// wait for them to expire. It stops when ctx is done: the claims left
// expire on their own.
func (d *Dispatcher) releaseClaims(ctx context.Context) {
	d.mu.Lock()
	var recs []*queue.Delivery
	for _, it := range d.known {
		if rec := it.inMemory(); rec != nil && d.ownClaim(rec) {
			recs = append(recs, rec)
		}
	}
	d.mu.Unlock()
	released := 0
	for _, rec := range recs {
		if ctx.Err() != nil {
			break
		}
		rctx, cancel := context.WithTimeout(ctx, persistTimeout)
		err := d.q.ReleaseClaim(rctx, rec)
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				d.log.LogAttrs(ctx, slog.LevelWarn, "releasing claim failed; it will expire", slog.String("id", rec.ID), slog.String("error", err.Error()))
			}
			continue
		}
		released++
	}
	if len(recs) > 0 {
		d.log.LogAttrs(ctx, slog.LevelInfo, "released the claims on deliveries not attempted", slog.Int("released", released), slog.Int("claimed", len(recs)))
	}
}

// Shutdown stops Run gracefully: no new attempts start, attempts in flight
// may finish until ctx is done, then they are cancelled. It returns when
// Run has returned, with ctx's error if the grace ran out.
func (d *Dispatcher) Shutdown(ctx context.Context) error {
	d.stopOnce.Do(func() { close(d.stopping) })
	d.mu.Lock()
	st := d.state
	d.mu.Unlock()
	if st == idle {
		return nil
	}
	select {
	case <-d.done:
		return nil
	case <-ctx.Done():
		d.mu.Lock()
		d.cancel()
		d.mu.Unlock()
		<-d.done
		return ctx.Err()
	}
}

// loop hands due deliveries to the workers until ctx is done or Shutdown.
func (d *Dispatcher) loop(ctx context.Context, jobs chan<- *item) {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	var ready *item
	for {
		var out chan<- *item
		if ready == nil {
			var wait time.Duration
			ready, wait = d.take()
			if ready == nil && wait >= 0 {
				// Look again at least every RescanInterval, whatever the
				// wall clock did meanwhile.
				timer.Reset(min(wait, d.cfg.RescanInterval))
			}
		}
		if ready != nil {
			out = jobs
		}
		select {
		case out <- ready:
			ready = nil
		case <-timer.C:
		case <-d.wake:
		case <-d.stopping:
			d.release(ready)
			return
		case <-ctx.Done():
			d.release(ready)
			return
		}
		timer.Stop()
	}
}

// take pops the earliest due delivery whose endpoint has a free slot and
// reserves the slot. Due deliveries of saturated or paused endpoints are
// parked. With nothing due it returns how long until the next one, or
// until a paused endpoint may be tried again (-1: neither).
func (d *Dispatcher) take() (*item, time.Duration) {
	now := d.cfg.Now()
	d.mu.Lock()
	defer d.mu.Unlock()
	for {
		probe := d.probeLocked(now)
		// pausedParked: a delivery was parked at a paused endpoint here,
		// after probeLocked looked: look again, so that the endpoint's
		// next try and the sweep of closed retry windows are timed even
		// when nothing else wakes the loop.
		pausedParked := false
		for d.sched.Len() > 0 {
			it := d.sched[0]
			if wait := it.at.Sub(now); wait > 0 {
				if pausedParked {
					break
				}
				if probe >= 0 {
					wait = min(wait, probe)
				}
				return nil, wait
			}
			heap.Pop(&d.sched)
			if !d.openLocked(it, now) {
				if h := d.health[it.endpoint]; h != nil && h.paused {
					// It may wait long: keep only its scheduling facts
					// (see attempt's retry case); its record is read
					// when its turn comes.
					it.rec, it.again = nil, nil
					pausedParked = true
				}
				d.parked[it.endpoint] = append(d.parked[it.endpoint], it)
				continue
			}
			d.busy[it.endpoint]++
			it.slot = true
			d.inflight++
			return it, 0
		}
		if !pausedParked {
			return nil, probe
		}
	}
}

// release gives back the slot of a taken item that will not be attempted
// now and puts it back in the schedule.
func (d *Dispatcher) release(it *item) {
	if it != nil {
		d.done1(it, it.endpoint, true, it.at)
	}
}

// done1 ends an attempt of it on endpoint: frees the slot (unparking the
// next delivery waiting for it), then reschedules it at next if keep, or
// forgets it.
func (d *Dispatcher) done1(it *item, endpoint string, keep bool, next time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.freeSlotLocked(it, endpoint)
	d.inflight--
	if it.again != nil && it.again.Replays <= it.replays {
		it.again = nil
	}
	switch {
	case it.again != nil && !keep:
		// Finished, but a newer version was enqueued meanwhile (a replay).
		it.rec, it.again = it.again, nil
		it.endpoint, it.at, it.windowStart = canonical(it.rec.Endpoint), it.rec.NextAttemptAt, it.rec.RetryWindowStart()
		heap.Push(&d.sched, it)
	case keep:
		if it.again != nil {
			// Two versions in memory: trust neither, read the store.
			it.rec, it.again = nil, nil
		}
		it.at = next
		heap.Push(&d.sched, it)
	default:
		delete(d.known, it.id)
	}
	d.poke()
}

// freeSlotLocked frees its slot at endpoint, if it holds one, unparking
// the next delivery waiting for it, and reports whether it did.
func (d *Dispatcher) freeSlotLocked(it *item, endpoint string) bool {
	if !it.slot {
		return false
	}
	it.slot = false
	d.busy[endpoint]--
	if d.busy[endpoint] <= 0 {
		delete(d.busy, endpoint)
	}
	if p := d.parked[endpoint]; len(p) > 0 {
		heap.Push(&d.sched, p[0])
		p[0] = nil
		if len(p) == 1 {
			delete(d.parked, endpoint)
		} else {
			d.parked[endpoint] = p[1:]
		}
	}
	return true
}

// rescanLoop lists the pending records now and every RescanInterval.
func (d *Dispatcher) rescanLoop(ctx context.Context) {
	t := time.NewTicker(d.cfg.RescanInterval)
	defer t.Stop()
	for {
		d.rescan(ctx)
		select {
		case <-ctx.Done():
			return
		case <-d.stopping:
			return
		case <-t.C:
		}
	}
}

// rescan schedules the pending records this dispatcher does not know yet.
// It reads only those, rescanReads at a time; the others cost nothing but
// the listing.
func (d *Dispatcher) rescan(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, rescanTimeout)
	defer cancel()
	var found int
	var added atomic.Int64
	pending := make(map[string]bool)
	unknown := make(chan string)
	var wg sync.WaitGroup
	for range rescanReads {
		wg.Go(func() {
			for id := range unknown {
				if d.rescanOne(ctx, id) {
					added.Add(1)
				}
			}
		})
	}
	listed := true
	for id, err := range d.q.PendingIDs(ctx) {
		if err != nil {
			if ctx.Err() == nil {
				d.log.LogAttrs(ctx, slog.LevelWarn, "rescan: listing pending deliveries failed", slog.String("error", err.Error()))
			}
			listed = false
			break
		}
		found++
		pending[id] = true
		if d.isKnown(id) {
			continue
		}
		select {
		case unknown <- id:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
	}
	close(unknown)
	wg.Wait()
	if n := added.Load(); n > 0 {
		d.log.LogAttrs(ctx, slog.LevelInfo, "rescan: scheduled pending deliveries", slog.Int("listed", found), slog.Int64("added", n))
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		d.log.LogAttrs(ctx, slog.LevelWarn, "rescan: pass cut short by its time limit; the next one goes on",
			slog.Duration("limit", rescanTimeout), slog.Int("listed", found), slog.Int64("added", added.Load()))
	}
	if !listed || ctx.Err() != nil {
		return
	}
	d.collectLeases(ctx, pending)
}

// rescanReads is how many records a rescan reads at once: after a crash
// with a backlog, the records the restarted process does not know yet
// are read one each (three requests to S3 for one still under its claim),
// and one at a time that took a minute for 6,000 of them on a local
// S3-compatible server.
const rescanReads = 16

// rescanOne reads the listed pending record id, unknown to the
// dispatcher, and schedules it if it is to be attempted; it reports
// whether it did.
func (d *Dispatcher) rescanOne(ctx context.Context, id string) bool {
	rec, err := d.q.Load(ctx, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return false
	case errors.Is(err, queue.ErrEmptyRecord):
		d.dropEmpty(ctx, id)
		return false
	case err != nil:
		if ctx.Err() == nil {
			d.log.LogAttrs(ctx, slog.LevelWarn, "rescan: loading delivery failed", slog.String("id", id), slog.String("error", err.Error()))
		}
		return false
	case rec.State != queue.StatePending || d.handoverComing(rec):
		return false
	case rec.Endpoint == "":
		d.log.LogAttrs(ctx, slog.LevelWarn, "rescan: pending delivery has no endpoint", slog.String("id", id))
		return false
	}
	// Keep only the schedule in memory; the record is read again before
	// its attempt. The id is cut from a listed key: a copy lets the key go.
	return d.add(newItem(strings.Clone(id), rec, nil))
}

// handoverComing reports whether rec, listed but not known, carries an
// unexpired claim written by this very process: an Accept that has linked
// its records but not yet returned (its records are visible before its
// barrier). That Accept hands the record over through Enqueue when it
// returns; scheduling it from the listing as well could attempt it twice,
// once before the handover and again after it. If the Accept failed and
// left the record behind, a scan takes it once the claim has expired.
func (d *Dispatcher) handoverComing(rec *queue.Delivery) bool {
	c := rec.Claim
	return c != nil && queue.LeaseOwner{ID: c.Owner, Host: c.Host, PID: c.PID, Proc: c.Proc} == d.owner &&
		d.cfg.Now().Before(c.ExpiresAt)
}

// emptyRecordAge is how old an empty pending record must be for a scan to
// remove it (a later scan does, if it is younger).
var emptyRecordAge = time.Minute

// dropEmpty deletes the empty pending record id (queue.ErrEmptyRecord)
// once it is emptyRecordAge old: it holds nothing to deliver, and the
// message it was for was never acknowledged.
func (d *Dispatcher) dropEmpty(ctx context.Context, id string) {
	// Real time, not d.cfg.Now: it is compared with the store's clock.
	dropped, err := d.q.DropEmpty(ctx, id, time.Now().Add(-emptyRecordAge))
	switch {
	case err != nil:
		if ctx.Err() == nil {
			d.log.LogAttrs(ctx, slog.LevelWarn, "rescan: removing an empty pending record failed", slog.String("id", id), slog.String("error", err.Error()))
		}
	case dropped:
		d.log.LogAttrs(ctx, slog.LevelWarn, "rescan: removed an empty pending record (a machine crash cut its write short, before the message was acknowledged)",
			slog.String("id", id), slog.String("raw_key", queue.RawKey(queue.MessageID(id))))
	}
}

// collectBudget bounds the time a rescan spends removing stale leases.
var collectBudget = 2 * time.Second // a variable for tests

// isStopping reports whether Shutdown has begun.
func (d *Dispatcher) isStopping() bool {
	select {
	case <-d.stopping:
		return true
	default:
		return false
	}
}

// collectLeases deletes the leases left on deliveries that are no longer
// pending (the owner died after recording the outcome, or lost its lease
// just as the receiver said 2xx). It takes each over by the usual rules
// first, so it never deletes a lease someone holds.
//
// A pass spends at most collectBudget on it: each lease costs a few store
// requests, and behind a slow store a few hundred left by crashed
// replicas would hold up the next rescan (deliveries replayed meanwhile
// waited minutes) and a shutdown. What is left waits for the next pass.
func (d *Dispatcher) collectLeases(ctx context.Context, pending map[string]bool) {
	seen := make(map[string]*item, len(d.orphans))
	deadline := time.Now().Add(collectBudget)
	for id, err := range d.q.LeaseIDs(ctx) {
		if err != nil {
			if ctx.Err() == nil {
				d.log.LogAttrs(ctx, slog.LevelWarn, "rescan: listing leases failed", slog.String("error", err.Error()))
			}
			return
		}
		if ctx.Err() != nil || d.isStopping() || time.Now().After(deadline) {
			break
		}
		if pending[id] || d.isKnown(id) {
			continue
		}
		it := d.orphans[id]
		if it == nil {
			it = &item{id: id}
		}
		seen[id] = it
		if it.at.After(d.cfg.Now()) {
			continue
		}
		l, prev, _, later := d.claim(ctx, it, d.cfg.Now().Add(d.cfg.RescanInterval))
		if l == nil {
			it.at = later
			continue
		}
		d.releaseLease(ctx, l)
		delete(seen, id)
		if prev != nil {
			d.logTakeover(ctx, "rescan: removed a stale lease", prev)
		}
	}
	d.orphans = seen
}
