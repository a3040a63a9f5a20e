package fs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
)

// stripes is the number of lock files; keys hash onto them.
const stripes = 64

// lockSet serialises mutations of a key across goroutines and processes.
// Stripe i is an in-process semaphore (flock(2) does not exclude two
// goroutines sharing one open file) plus an exclusive flock on
// <dir>/<i as two hex digits>, opened on first use and kept open.
type lockSet struct {
	dir     string
	stripes [stripes]stripe
	mu      sync.Mutex // guards closed
	closed  bool
}

type stripe struct {
	sem  chan struct{} // capacity 1; holding it owns f
	init sync.Once
	f    *os.File
}

// lock locks the stripe of key, waiting at most until ctx is done, and
// returns the function that unlocks it.
func (l *lockSet) lock(ctx context.Context, key string) (unlock func(), err error) {
	st := &l.stripes[stripeOf(key)]
	st.init.Do(func() { st.sem = make(chan struct{}, 1) })
	select {
	case st.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	release := func() { <-st.sem }
	if st.f == nil {
		l.mu.Lock()
		closed := l.closed
		l.mu.Unlock()
		if closed {
			release()
			return nil, errors.New("store closed")
		}
		name := filepath.Join(l.dir, fmt.Sprintf("%02x", stripeOf(key)))
		// flock needs no write access: a read-only descriptor lets
		// processes of other users in the group share the root.
		f, err := os.OpenFile(name, os.O_RDONLY|os.O_CREATE, fileMode)
		if err != nil {
			release()
			return nil, unwrapSyscall(err)
		}
		st.f = f
	}
	if err := flock(st.f, syscall.LOCK_EX); err != nil {
		release()
		return nil, fmt.Errorf("flock: %w", err)
	}
	return func() {
		// Closing the file would also drop the lock; an unlock error
		// leaves nothing to do.
		_ = flock(st.f, syscall.LOCK_UN)
		release()
	}, nil
}

// lockBoth locks the stripes of keys a and b (once if they share one), in
// stripe order, so that two processes locking the same pair cannot each
// hold one and wait for the other.
func (l *lockSet) lockBoth(ctx context.Context, a, b string) (unlock func(), err error) {
	if stripeOf(a) == stripeOf(b) {
		return l.lock(ctx, a)
	}
	if stripeOf(b) < stripeOf(a) {
		a, b = b, a
	}
	unlockA, err := l.lock(ctx, a)
	if err != nil {
		return nil, err
	}
	unlockB, err := l.lock(ctx, b)
	if err != nil {
		unlockA()
		return nil, err
	}
	return func() { unlockB(); unlockA() }, nil
}

// flock applies op to f, retrying when interrupted.
func flock(f *os.File, op int) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	err = rc.Control(func(fd uintptr) {
		for {
			ferr = syscall.Flock(int(fd), op)
			if ferr != syscall.EINTR {
				return
			}
		}
	})
	if err != nil {
		return err
	}
	return ferr
}

// close closes the lock files; later lock calls fail.
func (l *lockSet) close() error {
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
	var errs []error
	for i := range l.stripes {
		st := &l.stripes[i]
		st.init.Do(func() { st.sem = make(chan struct{}, 1) })
		st.sem <- struct{}{} // wait for the holder, if any
		if st.f != nil {
			errs = append(errs, st.f.Close())
			st.f = nil
		}
		<-st.sem
	}
	return errors.Join(errs...)
}

// stripeOf hashes key (FNV-1a) onto a stripe.
func stripeOf(key string) int {
	h := uint32(2166136261)
	for i := 0; i < len(key); i++ {
		h ^= uint32(key[i])
		h *= 16777619
	}
	return int(h % stripes)
}
