package fs

import (
	"os"
	"path"
	"sync"
	"sync/atomic"
	"time"
)

// syncDir fsyncs the directory at the absolute path dir.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// dirSyncer groups fsyncs of one directory (or syncfs calls of the whole
// filesystem). A caller needs an fsync that starts after its own change to
// the directory. If none is running, the caller runs one; if one is
// running, it may have started before the change, so the caller joins the
// next round, which starts when the running one ends and serves everybody
// who joined it.
//
// With a linger, the next round waits up to that long after the running
// one ends while callers are still on their way to it (expect): under load
// more callers share one round, and each round costs the kernel a
// journal commit and the write-back of the metadata blocks it touched,
// whatever the number of files in it. A round nobody else is expected for
// starts at once, and so does one no round is running before: a lone
// caller never waits.
type dirSyncer struct {
	dir    string
	sync   func(dir string) error
	linger time.Duration

	expected atomic.Int64  // callers on their way to syncNow (see expect)
	wake     chan struct{} // signalled when expected falls to 0; nil without a linger

	mu      sync.Mutex
	running bool
	next    *syncRound // round waiting for the running one to end
}

type syncRound struct {
	done   chan struct{} // closed when the fsync has returned
	err    error         // its result, set before done is closed
	joined int           // callers waiting for it (guarded by dirSyncer.mu)
}

// syncDirGrouped makes changes made so far to the directory dir (relative,
// slash-separated) durable, sharing the fsync with concurrent callers.
func (s *Store) syncDirGrouped(dir string) error {
	v, ok := s.syncers.Load(dir)
	if !ok {
		if s.nsyncers.Add(1) > maxDirCache {
			// Forget idle syncers now and then. A caller still holding a
			// forgotten one is served correctly, just not grouped with
			// callers of its replacement.
			s.syncers.Clear()
			s.nsyncers.Store(1)
		}
		v, _ = s.syncers.LoadOrStore(dir, &dirSyncer{dir: s.path(path.Clean(dir)), sync: s.syncDirFn})
	}
	return v.(*dirSyncer).syncNow()
}

func (d *dirSyncer) syncNow() error {
	d.mu.Lock()
	if !d.running {
		d.running = true
		d.mu.Unlock()
		r := &syncRound{done: make(chan struct{})}
		d.run(r)
		return r.err
	}
	if d.next == nil {
		d.next = &syncRound{done: make(chan struct{})}
	}
	r := d.next
	r.joined++
	d.mu.Unlock()
	<-r.done
	return r.err
}

// run performs round r, then hands over to the next round, if anyone
// joined it, on a new goroutine so that r's caller returns at once. The
// next round takes joiners until it starts.
func (d *dirSyncer) run(r *syncRound) {
	r.err = d.sync(d.dir)
	close(r.done)
	d.mu.Lock()
	n := d.next
	d.running = n != nil
	d.mu.Unlock()
	if n != nil {
		go d.start(n)
	}
}

// start runs round n, after lingering while callers are expected.
func (d *dirSyncer) start(n *syncRound) {
	if d.linger > 0 && d.expected.Load() > 0 {
		t := time.NewTimer(d.linger)
	wait:
		for d.expected.Load() > 0 {
			select {
			case <-d.wake:
			case <-t.C:
				break wait
			}
		}
		t.Stop()
	}
	d.mu.Lock()
	d.next = nil // from now on callers join the round after n: their change may come after n's start
	d.mu.Unlock()
	d.run(n)
}

// expectation is one caller counted in dirSyncer.expected. It is a value
// (kept in a local variable, done through its address) so that counting
// costs no allocation.
type expectation struct {
	d   *dirSyncer
	met bool
}

// expect counts a caller that will call syncNow soon (it is writing what
// the round must cover) until done is called on the result.
func (d *dirSyncer) expect() expectation {
	d.expected.Add(1)
	return expectation{d: d}
}

// done ends the expectation (once; later calls do nothing) and wakes a
// lingering round if nobody else is expected.
func (e *expectation) done() {
	if e.met || e.d == nil {
		return
	}
	e.met = true
	if e.d.expected.Add(-1) == 0 && e.d.wake != nil {
		select {
		case e.d.wake <- struct{}{}:
		default:
		}
	}
}
