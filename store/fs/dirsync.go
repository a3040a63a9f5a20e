package fs

import (
	"os"
	"path"
	"sync"
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

// dirSyncer groups fsyncs of one directory. A caller needs an fsync that
// starts after its own change to the directory. If none is running, the
// caller runs one; if one is running, it may have started before the
// change, so the caller joins the next round, which starts as soon as the
// running one ends and serves everybody who joined it.
type dirSyncer struct {
	dir  string
	sync func(dir string) error

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
// joined it, on a new goroutine so that r's caller returns at once.
func (d *dirSyncer) run(r *syncRound) {
	r.err = d.sync(d.dir)
	close(r.done)
	d.mu.Lock()
	n := d.next
	d.next = nil
	d.running = n != nil
	d.mu.Unlock()
	if n != nil {
		go d.run(n)
	}
}
