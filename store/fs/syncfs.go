package fs

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"
)

// SyncMode says how a Store makes its writes durable; see the package
// comment, "Durability".
type SyncMode int

const (
	// SyncAuto uses SyncFS where the kernel offers a syncfs(2) that
	// reports write-back errors (Linux 5.8 and later), SyncFiles elsewhere.
	SyncAuto SyncMode = iota
	// SyncFS makes concurrent writes durable together with one syncfs(2)
	// of the whole filesystem per group (group commit). New fails where
	// syncfs is not available.
	SyncFS
	// SyncFiles fsyncs each temporary file, then the directory of each
	// rename or unlink (directory fsyncs grouped per directory).
	SyncFiles
)

func (m SyncMode) String() string {
	switch m {
	case SyncFS:
		return "syncfs"
	case SyncFiles:
		return "files"
	}
	return "auto"
}

// Option configures New.
type Option func(*Store)

// WithSync selects how writes are made durable (default SyncAuto).
func WithSync(m SyncMode) Option { return func(s *Store) { s.mode = m } }

// DefaultCommitDelay is the commit delay of a Store made without
// WithCommitDelay.
const DefaultCommitDelay = 2 * time.Millisecond

// WithCommitDelay sets how long, at most, a group commit (SyncFS mode)
// that callers queued for while another ran waits for writers still on
// their way to it (see the package comment, "Durability"); 0 starts it at
// once. Negative values count as 0.
func WithCommitDelay(d time.Duration) Option {
	return func(s *Store) { s.fsSyncer.linger = max(d, 0) }
}

// WithLog turns the log (SyncFS mode; see the package comment, "Log") on
// or off; it is on by default.
func WithLog(on bool) Option { return func(s *Store) { s.noWAL = !on } }

// Mode returns the durability mode in use: SyncFS or SyncFiles.
func (s *Store) Mode() SyncMode { return s.mode }

// errNoSyncFS means the kernel lacks a usable syncfs(2).
var errNoSyncFS = errors.New("syncfs(2) unavailable")

// resolveMode opens the root for syncfs and settles SyncAuto.
func (s *Store) resolveMode() error {
	if s.mode == SyncFiles {
		return nil
	}
	err := errNoSyncFS
	if kernelAtLeast(5, 8) {
		var d *os.File
		if d, err = os.Open(s.root); err != nil {
			return err
		}
		if err = syncfs(d); err == nil {
			s.rootDir = d
			s.syncFSFn = func() error { return syncfs(s.rootDir) }
			s.mode = SyncFS
			return nil
		}
		d.Close()
		if errors.Is(err, syscall.ENOSYS) || errors.Is(err, syscall.EINVAL) {
			err = fmt.Errorf("%w: %w", errNoSyncFS, err)
		}
	}
	if s.mode == SyncAuto && errors.Is(err, errNoSyncFS) {
		s.mode = SyncFiles
		return nil
	}
	return err
}

// barrier makes every change to the filesystem made before it was called
// durable, sharing one syncfs(2) with every concurrent caller (group
// commit; see dirSyncer). gen is the value of s.syncErrs when the caller
// began the operation: if any syncfs failed since, the caller's data may
// have been lost in a write-back error that a syncfs serving others
// reported (the kernel reports each error once per open file), so the
// barrier fails too.
func (s *Store) barrier(gen uint64) error {
	if err := s.fsSyncer.syncNow(); err != nil {
		return err
	}
	if s.syncErrs.Load() != gen {
		return &os.PathError{Op: "syncfs", Path: s.root, Err: syscall.EIO}
	}
	return nil
}

// runSyncFS is the sync function of s.fsSyncer.
func (s *Store) runSyncFS(string) error {
	err := s.syncFSFn()
	if err != nil {
		s.syncErrs.Add(1)
	}
	return err
}
