package fs

import (
	"context"
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"iter"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mailhook/mailhook/store"
)

var (
	_ store.Store   = (*Store)(nil)
	_ store.Batcher = (*Store)(nil)
)

const (
	tmpDir      = ".tmp"       // under the root: temporary files and locks
	lockDir     = ".tmp/locks" // under the root: lock files
	tmpAge      = time.Hour    // New removes temporary files older than this
	fileMode    = 0o640        // objects (before umask)
	dirMode     = 0o750        // directories (before umask)
	copyBuf     = 64 << 10     // Put's copy buffer
	maxDirCache = 1 << 14      // directories remembered as durable before the cache is reset
)

// Store keeps objects as files under a root directory. Create it with New;
// it is safe for concurrent use by many goroutines and processes.
type Store struct {
	root string // absolute, cleaned

	locks lockSet

	// dirs caches the directories (relative, slash-separated) known to
	// exist with durable entries up to the root; ndirs counts them.
	dirs  sync.Map // string -> struct{}
	ndirs atomic.Int64

	// syncers groups directory fsyncs: relative dir -> *dirSyncer.
	syncers  sync.Map
	nsyncers atomic.Int64

	// lastStamp is the last modification time (Unix ns) Put stamped.
	lastStamp atomic.Int64

	// mode is SyncFS or SyncFiles once New has returned. In SyncFS mode
	// rootDir is the root, open for syncfs(2); fsSyncer groups the
	// syncfs calls; syncErrs counts the failed ones.
	mode     SyncMode
	rootDir  *os.File
	fsSyncer *dirSyncer
	syncErrs atomic.Uint64

	// Test hooks.
	syncDirFn         func(dir string) error // fsyncs a directory (absolute path)
	syncFSFn          func() error           // syncfs(2) of the root's filesystem
	linkFn            func(oldname, newname string) error
	renameFn          func(oldname, newname string) error
	renameNoReplaceFn func(oldname, newname string) error

	linkTmpfileFn func(f *os.File, newname string) error

	// noRenameNoReplace: renameat2(RENAME_NOREPLACE) is not supported.
	noRenameNoReplace atomic.Bool
	// noTmpfile: unnamed temporary files (O_TMPFILE, linked into place)
	// are not available; Puts without IfMatch stage a named file instead.
	noTmpfile atomic.Bool
	now       func() time.Time

	// wal is the log that makes small create-only batches durable (SyncFS
	// mode; nil without it: see WithLog); bootFn returns the boot id.
	wal      *wal
	noWAL    bool
	bootFn   func() string
	logHalf  int64         // bytes in each half of the log file
	logEvery time.Duration // checkpoint period of the log
}

// New opens the store rooted at root, creating the directory (and its
// parents) if missing. It fails if root is not a writable directory on a
// filesystem that keeps nanosecond modification times. It removes
// temporary files that a crashed process left behind over an hour ago.
func New(root string, opts ...Option) (*Store, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("fs: root %s: %w", root, err)
	}
	s := &Store{root: abs, syncDirFn: syncDir, linkFn: os.Link, renameFn: rename, renameNoReplaceFn: renameNoReplace,
		linkTmpfileFn: linkTmpfile, now: time.Now, bootFn: bootID,
		logHalf: walHalf, logEvery: walEvery}
	s.fsSyncer = &dirSyncer{dir: abs, sync: s.runSyncFS, linger: DefaultCommitDelay, wake: make(chan struct{}, 1)}
	for _, o := range opts {
		o(s)
	}
	s.locks.dir = filepath.Join(abs, filepath.FromSlash(lockDir))
	if err := s.init(); err != nil {
		if s.rootDir != nil {
			s.rootDir.Close()
		}
		s.locks.close() // lock files a restore opened
		return nil, fmt.Errorf("fs: open %s: %w", abs, classify(err))
	}
	return s, nil
}

func (s *Store) init() error {
	if err := mkdirAllDurable(s.root); err != nil {
		return err
	}
	if fi, err := os.Stat(s.root); err != nil {
		return err
	} else if !fi.IsDir() {
		return fmt.Errorf("not a directory")
	}
	for _, d := range []string{tmpDir, lockDir} {
		if err := os.Mkdir(filepath.Join(s.root, filepath.FromSlash(d)), dirMode); err != nil && !errors.Is(err, iofs.ErrExist) {
			return err
		}
	}
	if err := s.checkTimestamps(); err != nil {
		return err
	}
	if err := s.resolveMode(); err != nil {
		return err
	}
	s.probeTmpfile()
	if err := s.cleanTemp(); err != nil {
		return err
	}
	// Without a boot id a log could not tell a crash of the machine from
	// one of the process, and would restore deleted objects after a kill:
	// no log, and dead logs are left to a process that has one.
	if s.bootFn() == "" {
		return nil
	}
	use := s.mode == SyncFS && !s.noWAL
	if use {
		ok, err := s.generationsWork()
		if err != nil {
			return err
		}
		use = ok
	}
	return s.openWAL(use)
}

// probeTmpfile turns unnamed temporary files off unless one can be
// created in .tmp and linked into a directory: it needs O_TMPFILE (Linux
// 3.11, and a filesystem that has it) and /proc to link it from.
func (s *Store) probeTmpfile() {
	f, err := openTmpfile(filepath.Join(s.root, tmpDir), fileMode)
	if err != nil {
		s.noTmpfile.Store(true)
		return
	}
	defer f.Close()
	name := filepath.Join(s.root, tmpDir, "ping-"+strconv.FormatUint(rand.Uint64(), 36))
	if err := s.linkTmpfileFn(f, name); err != nil {
		s.noTmpfile.Store(true)
		return
	}
	_ = os.Remove(name)
}

// mkdirAllDurable creates dir and missing parents, fsyncing the parent of
// each directory it creates.
func mkdirAllDurable(dir string) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	parent := filepath.Dir(dir)
	if parent != dir {
		if err := mkdirAllDurable(parent); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, dirMode); err != nil {
		if errors.Is(err, iofs.ErrExist) {
			return nil
		}
		return err
	}
	return syncDir(parent)
}

// checkTimestamps makes sure the filesystem keeps the nanosecond
// modification times ETags are made of, and that root is writable.
func (s *Store) checkTimestamps() error {
	f, name, err := s.createTemp("ping-")
	if err != nil {
		return err
	}
	f.Close()
	defer os.Remove(name)
	// A recent time, so that a New running concurrently in another
	// process does not take the probe for a crash leftover.
	want := time.Unix(s.now().Unix(), 123_456_789)
	if err := os.Chtimes(name, want, want); err != nil {
		return err
	}
	fi, err := os.Stat(name)
	if err != nil {
		return err
	}
	if !fi.ModTime().Equal(want) {
		return fmt.Errorf("the filesystem does not keep nanosecond modification times (set %s, read %s), which ETags need",
			want.Format(time.RFC3339Nano), fi.ModTime().Format(time.RFC3339Nano))
	}
	return nil
}

// cleanTemp removes temporary files older than tmpAge: leftovers of a
// crash. Younger ones may belong to a live process sharing the root.
func (s *Store) cleanTemp() error {
	dir := filepath.Join(s.root, tmpDir)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	cutoff := s.now().Add(-tmpAge)
	for _, e := range entries {
		if !e.Type().IsRegular() || !(strings.HasPrefix(e.Name(), "put-") || strings.HasPrefix(e.Name(), "ping-")) {
			continue
		}
		fi, err := e.Info()
		if err != nil || fi.ModTime().After(cutoff) {
			continue
		}
		// Best effort: a leftover we cannot remove harms nobody.
		_ = os.Remove(filepath.Join(dir, e.Name()))
	}
	return nil
}

// Close releases the lock files. The Store must not be used afterwards.
func (s *Store) Close() error {
	var err error
	if s.wal != nil {
		err = s.wal.close()
		s.wal = nil
	}
	err = errors.Join(err, s.locks.close())
	if s.rootDir != nil {
		err = errors.Join(err, s.rootDir.Close())
	}
	return err
}

// String names the store for logs.
func (s *Store) String() string { return "file://" + filepath.ToSlash(s.root) }

// Root returns the absolute root directory.
func (s *Store) Root() string { return s.root }

// path returns the file path of a valid key.
func (s *Store) path(key string) string { return filepath.Join(s.root, filepath.FromSlash(key)) }

// Put stores body under key atomically and durably; see store.Store.
func (s *Store) Put(ctx context.Context, key string, body io.Reader, opts store.PutOptions) (store.Object, error) {
	objs, err := s.PutAll(ctx, []store.PutRequest{{Key: key, Body: body, Opts: opts}})
	if err != nil {
		return store.Object{}, err
	}
	return objs[0], nil
}

// PutAll stores the objects of reqs, reading their bodies in order, makes
// them visible in order and returns nil only when all are durable (unless
// all are Lazy); see store.Batcher. In SyncFS mode the whole batch costs
// two barriers, like a single Put, or one when every request is create-only
// and Unordered: the names are then placed without waiting for the bodies
// to be durable, and one barrier covers both.
func (s *Store) PutAll(ctx context.Context, reqs []store.PutRequest) ([]store.Object, error) {
	objs := make([]store.Object, len(reqs))
	if len(reqs) == 0 {
		return objs, nil
	}
	if s.mode != SyncFS {
		for i, r := range reqs {
			var err error
			if objs[i], err = s.putOne(ctx, r.Key, r.Body, r.Opts); err != nil {
				return nil, err
			}
		}
		return objs, nil
	}
	gen := s.syncErrs.Load() // before any of our data reaches the page cache
	lazy, unordered := true, true
	for _, r := range reqs {
		lazy = lazy && r.Opts.Lazy
		unordered = unordered && r.Opts.Unordered && r.Opts.IfNoneMatch
	}
	// A batch of create-only objects may be made durable by the log
	// instead of a barrier: keep a copy of the bodies.
	var caps []capture
	left := walMaxBatch
	if s.wal != nil && unordered && !lazy {
		caps = make([]capture, len(reqs))
	}
	tmps := make([]*staged, len(reqs))
	var coming expectation // a group commit may wait for this batch
	if caps == nil {
		coming = s.fsSyncer.expect()
	}
	defer func() {
		coming.done()
		for _, st := range tmps {
			st.discard()
		}
	}()
	for i, r := range reqs {
		var err error
		body := r.Body
		if caps != nil {
			caps[i] = capture{r: body, left: &left}
			body = &caps[i]
		}
		if objs[i], tmps[i], err = s.stage(ctx, r.Key, body, r.Opts); err != nil {
			return nil, err
		}
	}
	if !unordered {
		// The bodies (and any directory stage created) must be durable
		// before they can be seen under their keys.
		coming.done()
		if err := s.barrier(gen); err != nil {
			return nil, s.putErr(reqs[0].Key, err)
		}
		coming = s.fsSyncer.expect()
	}
	for i, r := range reqs {
		if err := s.place(ctx, tmps[i], r.Key, r.Opts); err != nil {
			return nil, err
		}
	}
	if lazy {
		return objs, nil // the next barrier, whoever's, makes them durable
	}
	coming.done()
	if caps != nil && s.logged(reqs, tmps, caps) && s.syncErrs.Load() == gen {
		return objs, nil
	}
	if err := s.barrier(gen); err != nil {
		// The objects are in place but may not survive a crash: report
		// failure so that the caller does not acknowledge them.
		return nil, s.putErr(reqs[len(reqs)-1].Key, err)
	}
	return objs, nil
}

// putOne is Put in SyncFiles mode.
func (s *Store) putOne(ctx context.Context, key string, body io.Reader, opts store.PutOptions) (store.Object, error) {
	obj, st, err := s.stage(ctx, key, body, opts)
	if err != nil {
		return store.Object{}, err
	}
	defer st.discard()
	if err := s.place(ctx, st, key, opts); err != nil {
		return store.Object{}, err
	}
	// Lazy is ignored: the fsync of another directory would not cover
	// this one.
	if err := s.syncDirGrouped(path.Dir(key)); err != nil {
		// The object is in place but may not survive a crash: report
		// failure so that the caller does not acknowledge it.
		return store.Object{}, s.putErr(key, err)
	}
	return obj, nil
}

// staged is a body written and waiting to be placed under its key:
// either a named temporary file in .tmp, or an unnamed one (O_TMPFILE),
// kept open until it is linked into place.
type staged struct {
	tmp string   // the named file; "" once placed or for an unnamed one
	f   *os.File // the unnamed file; nil once placed or for a named one
	ino uint64   // the file's inode number
	gen uint32   // and generation, for the log (fileGeneration)
	// noGen: the generation could not be read: the object is not logged.
	noGen bool
}

// discard removes what is left of st (nothing once it was placed).
func (st *staged) discard() {
	if st == nil {
		return
	}
	if st.f != nil {
		st.f.Close() // an unnamed file vanishes with its last descriptor
		st.f = nil
	}
	if st.tmp != "" {
		os.Remove(st.tmp)
		st.tmp = ""
	}
}

// stage checks a Put, makes sure the key's directory exists and writes
// body to a new temporary file (fsynced in SyncFiles mode), which it
// returns with the object it will become. On error nothing is left behind.
//
// A Put without IfMatch gets an unnamed file when the system has them: it
// is linked into place with link(2), which fails if the key exists, so a
// Put that creates its key costs neither a name in .tmp nor a rename, the
// two most expensive steps of a small Put (about six times the throughput
// of create-and-rename measured with 32 writers on ext4). A plain Put that
// finds its key taken names the file in .tmp and renames it over the key.
func (s *Store) stage(ctx context.Context, key string, body io.Reader, opts store.PutOptions) (store.Object, *staged, error) {
	if err := store.ValidKey(key); err != nil {
		return store.Object{}, nil, fmt.Errorf("fs: put: %w", err)
	}
	if opts.IfNoneMatch && opts.IfMatch != "" {
		return store.Object{}, nil, fmt.Errorf("fs: put %s: IfNoneMatch and IfMatch together", key)
	}
	if err := ctx.Err(); err != nil {
		return store.Object{}, nil, fmt.Errorf("fs: put %s: %w", key, err)
	}
	if err := s.ensureDir(path.Dir(key)); err != nil {
		return store.Object{}, nil, s.putErr(key, err)
	}
	st := &staged{}
	var f *os.File
	if opts.IfMatch == "" && !s.noTmpfile.Load() {
		var err error
		if f, err = openTmpfile(filepath.Join(s.root, tmpDir), fileMode); err != nil {
			return store.Object{}, nil, s.putErr(key, err)
		}
		st.f = f
	} else {
		var err error
		if f, st.tmp, err = s.createTemp("put-"); err != nil {
			return store.Object{}, nil, s.putErr(key, err)
		}
	}
	obj, ino, err := s.writeTemp(ctx, f, st.tmp, key, body, opts.Size)
	st.ino = ino
	if _, logged := body.(*capture); logged && err == nil {
		st.gen, err = fileGeneration(f) // the log records it
		st.noGen, err = err != nil, nil
	}
	if st.f == nil {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = s.putErr(key, cerr)
		}
	}
	if err == nil {
		if cerr := ctx.Err(); cerr != nil {
			err = fmt.Errorf("fs: put %s: %w", key, cerr)
		}
	}
	if err != nil {
		st.discard()
		return store.Object{}, nil, err
	}
	return obj, st, nil
}

// place moves the staged file st to key according to opts, re-creating
// the key's directory once if someone removed it since it was cached. On
// success st holds nothing more; on error the caller discards it.
func (s *Store) place(ctx context.Context, st *staged, key string, opts store.PutOptions) error {
	dir := path.Dir(key)
	var linked bool
	var err error
	for attempt := 0; ; attempt++ {
		if st.f != nil {
			err = s.linkUnnamed(st.f, key)
			if !opts.IfNoneMatch && errors.Is(err, store.ErrPrecondition) {
				// A plain Put over an existing object: rename.
				if err = s.name(st); err == nil {
					linked, err = s.commit(ctx, st.tmp, key, opts, false)
				}
			}
		} else {
			linked, err = s.commit(ctx, st.tmp, key, opts, false)
		}
		if attempt > 0 || !errors.Is(err, syscall.ENOENT) {
			break
		}
		s.forgetDir(dir)
		if err := s.ensureDir(dir); err != nil {
			return s.putErr(key, err)
		}
	}
	switch {
	case errors.Is(err, store.ErrPrecondition):
		return fmt.Errorf("fs: put %s: %w", key, err)
	case err != nil:
		return s.putErr(key, err)
	}
	if st.f != nil {
		st.f.Close()
		st.f = nil
		return nil
	}
	if linked {
		// The object is linked in; the temporary name is not needed. If
		// this fails the leftover is cleaned up by a later New.
		os.Remove(st.tmp)
	}
	st.tmp = ""
	return nil
}

// linkUnnamed links the unnamed file f in as key (IfNoneMatch: link(2)
// fails if the key exists, atomically, in every process; no lock needed).
// Errors are unwrapped syscall errors or ErrPrecondition.
func (s *Store) linkUnnamed(f *os.File, key string) error {
	dst := s.path(key)
	err := unwrapSyscall(s.linkTmpfileFn(f, dst))
	if err == syscall.EEXIST {
		return existing(dst)
	}
	return err
}

// name gives the unnamed file of st a name in .tmp, so that it can be
// renamed over an existing object.
func (s *Store) name(st *staged) error {
	for range 100 {
		tmp := filepath.Join(s.root, tmpDir, "put-"+strconv.FormatUint(rand.Uint64(), 36))
		err := unwrapSyscall(s.linkTmpfileFn(st.f, tmp))
		if err == syscall.EEXIST {
			continue
		}
		if err != nil {
			return err
		}
		st.f.Close()
		st.f, st.tmp = nil, tmp
		return nil
	}
	return errors.New("cannot find a free temporary file name")
}

// existing is the error of a create-only Put that found dst taken:
// ErrPrecondition, or EISDIR when dst is a directory (a key that is a
// prefix of other keys).
func existing(dst string) error {
	if fi, err := os.Lstat(dst); err == nil && fi.IsDir() {
		return syscall.EISDIR
	}
	return store.ErrPrecondition
}

// syncRename makes a rename, link or unlink already done in the directory
// dir durable.
func (s *Store) syncRename(gen uint64, dir string) error {
	if s.mode == SyncFS {
		return s.barrier(gen)
	}
	return s.syncDirGrouped(dir)
}

// writeTemp copies body into the temporary file f, stamps and fsyncs it and
// returns the object it will become.
func (s *Store) writeTemp(ctx context.Context, f *os.File, tmp, key string, body io.Reader, size int64) (store.Object, uint64, error) {
	bufp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bufp)
	buf := *bufp
	var n int64
	for {
		if err := ctx.Err(); err != nil {
			return store.Object{}, 0, fmt.Errorf("fs: put %s: %w", key, err)
		}
		// Fill the buffer: a body made of several readers (a header
		// prepended to a message) still costs one write(2) when small.
		m, rerr := fill(body, buf)
		if m > 0 {
			if _, err := f.Write(buf[:m]); err != nil {
				return store.Object{}, 0, s.putErr(key, err)
			}
			n += int64(m)
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return store.Object{}, 0, fmt.Errorf("fs: put %s: reading body: %w", key, rerr)
		}
	}
	if size > 0 && n != size {
		return store.Object{}, 0, fmt.Errorf("fs: put %s: body has %d bytes, Size says %d", key, n, size)
	}
	// Stamp a nanosecond mtime of our own: the kernel's timestamps are
	// coarse (a clock tick), too coarse to tell two files apart.
	t := s.stamp()
	if err := setMtime(f, tmp, t); err != nil {
		return store.Object{}, 0, s.putErr(key, err)
	}
	if s.mode != SyncFS { // SyncFS: Put's barrier makes it durable
		if err := f.Sync(); err != nil {
			return store.Object{}, 0, s.putErr(key, err)
		}
	}
	fi, err := f.Stat()
	if err != nil {
		return store.Object{}, 0, s.putErr(key, err)
	}
	return object(key, fi), inode(fi), nil
}

// fill reads from r until buf is full or r fails, and returns r's error
// as is (io.EOF at the end); unlike io.ReadFull it never turns a short
// body into io.ErrUnexpectedEOF, which a body may return for itself.
func fill(r io.Reader, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := r.Read(buf[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, copyBuf); return &b }}

// stamp returns a modification time from the clock, strictly after every
// stamp this Store handed out before.
func (s *Store) stamp() time.Time {
	for {
		last := s.lastStamp.Load()
		t := s.now().UnixNano()
		if t <= last {
			t = last + 1
		}
		if s.lastStamp.CompareAndSwap(last, t) {
			return time.Unix(0, t)
		}
	}
}

// commit moves the finished temporary file tmp to key according to opts,
// and reports whether it linked it (tmp is then still there). held says
// the caller holds key's lock already (a restore). Errors are unwrapped
// syscall errors or ErrPrecondition.
func (s *Store) commit(ctx context.Context, tmp, key string, opts store.PutOptions, held bool) (linked bool, err error) {
	dst := s.path(key)
	if opts.IfNoneMatch && !s.noRenameNoReplace.Load() {
		// renameat2(RENAME_NOREPLACE) fails with EEXIST if dst exists,
		// atomically, in every process: no lock needed, and unlike
		// link(2) nothing to unlink afterwards.
		err := unwrapSyscall(s.renameNoReplaceFn(tmp, dst))
		switch {
		case err == nil:
			return false, nil
		case err == syscall.EEXIST:
			return false, existing(dst)
		case err != syscall.EINVAL && err != syscall.ENOSYS:
			return false, err
		}
		// Not supported by this kernel or filesystem: link(2) it is.
		s.noRenameNoReplace.Store(true)
	}
	if opts.IfNoneMatch {
		// link(2) fails with EEXIST if dst exists, atomically, in every
		// process: no lock needed.
		err := unwrapSyscall(s.linkFn(tmp, dst))
		switch {
		case err == nil:
			return true, nil
		case err == syscall.EEXIST:
			return false, existing(dst)
		case !noHardLinks(err):
			return false, err
		}
		// No hard links on this filesystem: check and rename under the
		// lock instead.
	}
	if !held {
		unlock, err := s.locks.lock(ctx, key)
		if err != nil {
			return false, err
		}
		defer unlock()
	}
	if opts.IfNoneMatch {
		fi, err := os.Lstat(dst)
		switch {
		case err == nil && fi.IsDir():
			return false, syscall.EISDIR
		case err == nil:
			return false, store.ErrPrecondition
		case !errors.Is(err, iofs.ErrNotExist):
			return false, unwrapSyscall(err)
		}
	}
	if opts.IfMatch != "" {
		fi, err := os.Lstat(dst)
		switch {
		case errors.Is(err, iofs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR):
			return false, store.ErrPrecondition
		case err != nil:
			return false, unwrapSyscall(err)
		case !fi.Mode().IsRegular() || etag(fi) != opts.IfMatch:
			return false, store.ErrPrecondition
		}
	}
	return false, unwrapSyscall(s.renameFn(tmp, dst))
}

// noHardLinks reports whether a link(2) error means that the filesystem
// does not support hard links.
func noHardLinks(err error) bool {
	return err == syscall.EPERM || err == syscall.ENOTSUP || err == syscall.EOPNOTSUPP || err == syscall.ENOSYS
}

// rename is os.Rename without the lstat(2) of newname it makes first to
// refuse replacing a directory: rename(2) refuses that itself (EISDIR),
// and the move of every delivered record makes one.
func rename(oldname, newname string) error {
	for {
		err := syscall.Rename(oldname, newname)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return &os.LinkError{Op: "rename", Old: oldname, New: newname, Err: err}
		}
		return nil
	}
}

// unwrapSyscall turns *os.LinkError and *os.PathError into their errno, so
// that callers can test errors.Is(err, syscall.ENOENT) and wrap the errno
// with their own context. Other errors pass through.
func unwrapSyscall(err error) error {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno
	}
	return err
}

// ensureDir makes sure the directory dir (relative, slash-separated; "."
// is the root) exists and that its entry, and its parents', is durable.
func (s *Store) ensureDir(dir string) error {
	if dir == "." {
		return nil
	}
	if _, ok := s.dirs.Load(dir); ok {
		return nil
	}
	// Find the deepest ancestor already known to be durable.
	known := "."
	for d := path.Dir(dir); d != "."; d = path.Dir(d) {
		if _, ok := s.dirs.Load(d); ok {
			known = d
			break
		}
	}
	var missing []string // from known (exclusive) down to dir
	for d := dir; d != known; d = path.Dir(d) {
		missing = append(missing, d)
	}
	slices.Reverse(missing)
	for _, d := range missing {
		err := os.Mkdir(s.path(d), dirMode)
		if err != nil && !errors.Is(err, iofs.ErrExist) {
			return unwrapSyscall(err)
		}
		if errors.Is(err, iofs.ErrExist) {
			if fi, err := os.Stat(s.path(d)); err != nil {
				return unwrapSyscall(err)
			} else if !fi.IsDir() {
				return syscall.ENOTDIR
			}
		}
		// Even if another goroutine or process created d, it may not have
		// fsynced the parent yet; do it ourselves, once per process. (In
		// SyncFS mode the Put's barriers, after this, do it.)
		if s.mode != SyncFS {
			if err := s.syncDirFn(s.path(path.Dir(d))); err != nil {
				return err
			}
		}
	}
	if s.ndirs.Add(int64(len(missing))) > maxDirCache {
		s.dirs.Clear()
		s.ndirs.Store(0)
	}
	for _, d := range missing {
		s.dirs.Store(d, struct{}{})
	}
	return nil
}

// forgetDir drops dir and its descendants' ancestor chain from the cache.
func (s *Store) forgetDir(dir string) {
	for d := dir; d != "."; d = path.Dir(d) {
		s.dirs.Delete(d)
	}
}

// createTemp creates a new empty file in <root>/.tmp named prefix+random.
func (s *Store) createTemp(prefix string) (*os.File, string, error) {
	for range 100 {
		name := filepath.Join(s.root, tmpDir, prefix+strconv.FormatUint(rand.Uint64(), 36))
		f, err := openFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, fileMode)
		if errors.Is(err, iofs.ErrExist) {
			continue
		}
		if err != nil {
			return nil, "", unwrapSyscall(err)
		}
		return f, name, nil
	}
	return nil, "", errors.New("cannot find a free temporary file name")
}

// openFile is os.OpenFile for regular files. os.OpenFile offers every file
// to the runtime's poller, which for a regular file costs four fcntl and a
// failing epoll_ctl per open: a fifth of the system calls of a small Put.
// A file from os.NewFile is never offered (its descriptor is blocking).
func openFile(name string, flag int, perm os.FileMode) (*os.File, error) {
	for {
		fd, err := syscall.Open(name, flag|syscall.O_CLOEXEC, uint32(perm.Perm()))
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return nil, &os.PathError{Op: "open", Path: name, Err: err}
		}
		return os.NewFile(uintptr(fd), name), nil
	}
}

// Get opens the object for reading; the reader is the *os.File itself, or
// for an object of dropCacheMin bytes or more one whose Close drops its
// cached pages (coldFile).
func (s *Store) Get(ctx context.Context, key string) (io.ReadCloser, store.Object, error) {
	if err := store.ValidKey(key); err != nil {
		return nil, store.Object{}, fmt.Errorf("fs: get: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, store.Object{}, fmt.Errorf("fs: get %s: %w", key, err)
	}
	// Symbolic links are not objects (List skips them too).
	f, err := openFile(s.path(key), os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if errors.Is(err, syscall.ELOOP) {
		return nil, store.Object{}, fmt.Errorf("fs: get %s: %w", key, store.ErrNotFound)
	}
	if err != nil {
		return nil, store.Object{}, s.readErr("get", key, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, store.Object{}, s.readErr("get", key, err)
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, store.Object{}, fmt.Errorf("fs: get %s: %w", key, store.ErrNotFound)
	}
	if fi.Size() >= dropCacheMin {
		return coldFile{f}, object(key, fi), nil
	}
	return f, object(key, fi), nil
}

// dropCacheMin is the size from which Get's reader drops the object's
// pages from the page cache when closed.
const dropCacheMin = 64 << 10

// coldFile is the reader Get returns for a large object: closing it asks
// the kernel to drop the file's cached pages. Objects are written once and
// read once or twice (a raw message by its first webhook attempt), so
// keeping them cached only grows the page cache, and growing it costs:
// every new page must be found and, in a virtual machine that hands free
// memory back to its host, faulted in by the host. On the benchmark
// machine, copying 1 MB messages into fresh pages was 27 % of mailhook's
// CPU (touching 13 GiB of fresh memory took 37.7 s, the same memory again
// 9.1 s). Dropped pages go back to the free lists, where the next
// messages' writes find them.
type coldFile struct{ *os.File }

func (c coldFile) Close() error {
	dropCache(c.File)
	return c.File.Close()
}

// Stat describes the object.
func (s *Store) Stat(ctx context.Context, key string) (store.Object, error) {
	if err := store.ValidKey(key); err != nil {
		return store.Object{}, fmt.Errorf("fs: stat: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return store.Object{}, fmt.Errorf("fs: stat %s: %w", key, err)
	}
	fi, err := os.Lstat(s.path(key))
	if err != nil {
		return store.Object{}, s.readErr("stat", key, err)
	}
	if !fi.Mode().IsRegular() {
		return store.Object{}, fmt.Errorf("fs: stat %s: %w", key, store.ErrNotFound)
	}
	return object(key, fi), nil
}

// Delete removes the object durably. A missing key is not an error.
func (s *Store) Delete(ctx context.Context, key string) error {
	return s.delete(ctx, key, "", false)
}

// DeleteIfMatch removes the object durably if its ETag is etag, checked
// under the key's lock (store.ConditionalDeleter).
func (s *Store) DeleteIfMatch(ctx context.Context, key, etag string) error {
	return s.delete(ctx, key, etag, false)
}

// DeleteLazy removes the object without waiting for the removal to be
// durable (store.LazyDeleter): in SyncFS mode the next barrier anyone
// passes covers it, as for a Lazy Put; in SyncFiles mode it is Delete.
func (s *Store) DeleteLazy(ctx context.Context, key string) error {
	return s.delete(ctx, key, "", s.mode == SyncFS)
}

// testHookDeleteChecked, if set (by tests), runs after a conditional
// delete has checked the object and before it unlinks it.
var testHookDeleteChecked func(key string)

// delete is Delete, conditional on the ETag ifMatch unless it is "", which
// skips the barrier after the unlink if lazy.
func (s *Store) delete(ctx context.Context, key, ifMatch string, lazy bool) error {
	if err := store.ValidKey(key); err != nil {
		return fmt.Errorf("fs: delete: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("fs: delete %s: %w", key, err)
	}
	gen := s.syncErrs.Load()
	unlock, err := s.locks.lock(ctx, key)
	if err != nil {
		return s.opErr("delete", key, err)
	}
	if ifMatch != "" {
		fi, err := os.Lstat(s.path(key))
		switch {
		case err != nil && (errors.Is(err, iofs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)):
			unlock()
			return nil
		case err != nil:
			unlock()
			return s.opErr("delete", key, err)
		case !fi.Mode().IsRegular() || etag(fi) != ifMatch:
			unlock()
			return fmt.Errorf("fs: delete %s: %w", key, store.ErrPrecondition)
		}
		if testHookDeleteChecked != nil {
			testHookDeleteChecked(key)
		}
	}
	// syscall.Unlink, not os.Remove: never remove a directory.
	err = syscall.Unlink(s.path(key))
	unlock()
	switch {
	case errors.Is(err, syscall.ENOENT), errors.Is(err, syscall.ENOTDIR), errors.Is(err, syscall.EISDIR):
		return nil
	case err != nil:
		return s.opErr("delete", key, err)
	case lazy:
		return nil
	}
	if err := s.syncRename(gen, path.Dir(key)); err != nil {
		return s.opErr("delete", key, err)
	}
	return nil
}

// List yields the objects under prefix in lexical key order, walking one
// directory at a time.
func (s *Store) List(ctx context.Context, prefix string) iter.Seq2[store.Object, error] {
	return s.list(ctx, prefix, "", true)
}

// ListKeys yields the keys List would, without a stat of each file
// (store.KeyLister).
func (s *Store) ListKeys(ctx context.Context, prefix string) iter.Seq2[string, error] {
	return store.Keys(s.list(ctx, prefix, "", false))
}

// ListKeysAfter yields the keys ListKeys would that sort after after,
// leaving the others out as the directories are read, so that they are
// neither kept nor sorted (store.AfterLister).
func (s *Store) ListKeysAfter(ctx context.Context, prefix, after string) iter.Seq2[string, error] {
	return store.Keys(s.list(ctx, prefix, after, false))
}

// list is List, whose objects carry only their key unless describe, from
// the first key after after.
func (s *Store) list(ctx context.Context, prefix, after string, describe bool) iter.Seq2[store.Object, error] {
	return func(yield func(store.Object, error) bool) {
		if err := ctx.Err(); err != nil {
			yield(store.Object{}, fmt.Errorf("fs: list %s: %w", prefix, err))
			return
		}
		dir, rest := "", prefix
		if i := strings.LastIndexByte(prefix, '/'); i >= 0 {
			dir, rest = prefix[:i+1], prefix[i+1:]
			if store.ValidKey(prefix[:i]) != nil {
				return // no valid key lies under an invalid directory
			}
		}
		s.walk(ctx, prefix, dir, rest, after, describe, yield)
	}
}

// walk yields the objects in directory dir (relative, "" or ending in "/")
// whose names start with namePrefix, descending into subdirectories; only
// their keys unless describe. It returns false when iteration must stop.
func (s *Store) walk(ctx context.Context, prefix, dir, namePrefix, after string, describe bool, yield func(store.Object, error) bool) bool {
	f, err := os.OpenFile(filepath.Join(s.root, filepath.FromSlash(dir)), os.O_RDONLY|syscall.O_DIRECTORY, 0)
	if errors.Is(err, iofs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return true
	}
	if err != nil {
		return yield(store.Object{}, s.opErr("list", prefix, err))
	}
	// Only the names are kept, a directory's few subdirectories apart
	// from its files: a listing of a million records holds about 50 MB,
	// a third of what os.DirEntry values would (BenchmarkList).
	var files, dirs []string
	for {
		batch, err := f.ReadDir(1024)
		for _, e := range batch {
			name := e.Name()
			if !strings.HasPrefix(name, namePrefix) || strings.ContainsRune(name, '/') || store.ValidKey(name) != nil {
				continue
			}
			switch {
			case e.IsDir():
				dirs = append(dirs, name+"/") // see below
			case e.Type().IsRegular() && (after == "" || dir+name > after):
				files = append(files, name)
			}
		}
		if errors.Is(err, io.EOF) || (err == nil && len(batch) == 0) {
			break
		}
		if err != nil {
			f.Close()
			return yield(store.Object{}, s.opErr("list", prefix, err))
		}
	}
	f.Close()
	slices.Sort(files)
	slices.Sort(dirs)
	// Keys under directory "d" all start with "d/", so a directory sorts
	// as its name plus "/": "d-x" < "d/..." < "d0".
	for len(files) > 0 || len(dirs) > 0 {
		if err := ctx.Err(); err != nil {
			return yield(store.Object{}, fmt.Errorf("fs: list %s: %w", prefix, err))
		}
		if len(dirs) > 0 && (len(files) == 0 || dirs[0] < files[0]) {
			if !s.walk(ctx, prefix, dir+dirs[0], "", after, describe, yield) {
				return false
			}
			dirs = dirs[1:]
			continue
		}
		key := dir + files[0]
		files[0] = "" // let the name go with the listing's progress
		files = files[1:]
		if !describe {
			if !yield(store.Object{Key: key}, nil) {
				return false
			}
			continue
		}
		fi, err := os.Lstat(filepath.Join(s.root, filepath.FromSlash(key)))
		if errors.Is(err, iofs.ErrNotExist) {
			continue // deleted while listing
		}
		if err != nil {
			return yield(store.Object{}, s.opErr("list", prefix, err))
		}
		if !fi.Mode().IsRegular() {
			continue // replaced while listing
		}
		if !yield(object(key, fi), nil) {
			return false
		}
	}
	return true
}

// Ping checks that the root is writable by creating and removing a file.
func (s *Store) Ping(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("fs: ping: %w", err)
	}
	f, name, err := s.createTemp("ping-")
	if err == nil {
		_, werr := f.Write([]byte("ping\n"))
		err = errors.Join(werr, f.Close(), os.Remove(name))
	}
	if err != nil {
		// Whatever the cause, the store is not usable: not ready.
		if err = classify(err); !errors.Is(err, store.ErrUnavailable) {
			err = fmt.Errorf("%w: %w", store.ErrUnavailable, err)
		}
		return fmt.Errorf("fs: ping %s: %w", s.root, err)
	}
	return nil
}

// object describes the file fi as the object key.
func object(key string, fi os.FileInfo) store.Object {
	return store.Object{Key: key, Size: fi.Size(), ETag: etag(fi), ModTime: fi.ModTime()}
}

// etag is "<inode>-<size>-<mtime ns>" in hex, of the file fi describes;
// see the package comment.
func etag(fi os.FileInfo) string {
	return etagOf(inode(fi), fi.Size(), fi.ModTime())
}

// etagOf is the ETag of a file of that inode, size and modification time.
func etagOf(ino uint64, size int64, mtime time.Time) string {
	b := make([]byte, 0, 48)
	b = strconv.AppendUint(b, ino, 16)
	b = append(b, '-')
	b = strconv.AppendUint(b, uint64(size), 16)
	b = append(b, '-')
	b = strconv.AppendUint(b, uint64(mtime.UnixNano()), 16)
	return string(b)
}

func inode(fi os.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Ino)
	}
	return 0
}
