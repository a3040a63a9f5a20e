package fs

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mailhook/mailhook/store"
)

// failNext makes the next syncfs of s fail with EIO (a write-back error:
// the kernel may have dropped dirty pages it could not write), then
// behaves normally.
func failNext(s *Store) {
	fail := true
	s.syncFSFn = func() error {
		if fail {
			fail = false
			return syscall.EIO
		}
		return syncfs(s.rootDir)
	}
}

// TestLogKeptAfterSyncfsError: a syncfs that fails (a write-back error:
// the kernel may have dropped pages) after a logged PutAll returned,
// whether the checkpoint's own or another writer's, fails the checkpoint,
// stops the log's use and keeps its entries, which a later checkpoint does
// not empty: after a crash of the machine the acknowledged object is
// restored.
func TestLogKeptAfterSyncfsError(t *testing.T) {
	for _, tc := range []struct {
		name string
		fail func(t *testing.T, s *Store) // makes a syncfs fail
	}{
		{"the checkpoint's", func(t *testing.T, s *Store) {
			failNext(s)
			if err := s.wal.checkpoint(); err == nil {
				t.Fatal("checkpoint with a failing syncfs succeeded")
			}
		}},
		{"another writer's", func(t *testing.T, s *Store) {
			failNext(s)
			if _, err := s.Put(t.Context(), "other", strings.NewReader("y"), store.PutOptions{}); err == nil {
				t.Fatal("Put with a failing syncfs succeeded")
			}
			if err := s.wal.checkpoint(); err == nil {
				t.Error("checkpoint after a failed syncfs succeeded")
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			s1 := newLogStore(t, root, withBoot("boot-1"))
			putString(t, s1, "k", "acked", unorderedCreate) // logged, acknowledged
			tc.fail(t, s1)
			putString(t, s1, "k2", "x", unorderedCreate)
			s1.wal.checkpoint()
			crash(s1)
			os.Remove(filepath.Join(root, "k")) // its write-back failed: lost in the crash
			newLogStore(t, root, withBoot("boot-2"))
			if got, _ := fileOf(t, root, "k"); got != "acked" {
				t.Errorf("acknowledged k = %q after a crash, want it restored from the log", got)
			}
		})
	}
}

// TestLogCreatedLocked: a new log is named in .tmp/wal only once locked
// and sized, so a process taking logs over never finds one in the making;
// the log of a live store is left alone.
func TestLogCreatedLocked(t *testing.T) {
	root := t.TempDir()
	s0 := newLogStore(t, root, withBoot("boot-1"))
	f, err := s0.createLog(filepath.Join(root, walDir), s0.logHalf)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := flock(f, syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Fatalf("flock on the new log's own descriptor: %v", err)
	}
	newLogStore(t, root, withBoot("boot-1"))
	if names := logFiles(t, root); len(names) != 3 {
		t.Errorf("log files %q, want three (two stores' and the new one)", names)
	}
	if left := tmpEntries(t, root); len(left) > 0 {
		t.Errorf(".tmp holds %q", left)
	}
}

// TestLogRestoreOrder: the halves are restored oldest first, so where
// both hold a key (one left as it was by a failed checkpoint) the newer
// version wins.
func TestLogRestoreOrder(t *testing.T) {
	root := t.TempDir()
	s1 := newLogStore(t, root, withBoot("boot-1"))
	putString(t, s1, "d", "d", unorderedCreate)
	if err := s1.wal.checkpoint(); err != nil { // active: half 1
		t.Fatal(err)
	}
	putString(t, s1, "k", "A", unorderedCreate) // half 1
	failNext(s1)
	if err := s1.wal.checkpoint(); err == nil { // active: half 0; half 1 unclean
		t.Fatal("checkpoint succeeded")
	}
	if got := replaceThenReboot(t, s1, unorderedCreate); got != "B" { // logged in half 0
		t.Errorf("k = %q after a crash, want the newer acknowledged %q", got, "B")
	}
}

// replaceThenReboot deletes k from s, puts "B" under it with opts, and
// plays a kill of s and a crash of the machine; it returns what k holds
// once a new store took the log over.
func replaceThenReboot(t *testing.T, s *Store, opts store.PutOptions) string {
	t.Helper()
	if err := s.Delete(t.Context(), "k"); err != nil {
		t.Fatal(err)
	}
	putString(t, s, "k", "B", opts)
	crash(s)
	newLogStore(t, s.Root(), withBoot("boot-2"))
	got, _ := fileOf(t, s.Root(), "k")
	return got
}

// TestLogKeepsNewerObject: an object deleted and put again durably (not
// through the log) is not replaced by the older logged version.
func TestLogKeepsNewerObject(t *testing.T) {
	root := t.TempDir()
	s1 := newLogStore(t, root, withBoot("boot-1"))
	putString(t, s1, "k", "A", unorderedCreate)
	if got := replaceThenReboot(t, s1, store.PutOptions{}); got != "B" { // a barrier, not the log
		t.Errorf("k = %q after a crash, want the durable %q", got, "B")
	}
}

// TestLogStaleEntries: entries that reached the disk without their
// header (a crash during the fdatasync) never count again: every header
// gets a random epoch, which such entries do not carry.
func TestLogStaleEntries(t *testing.T) {
	root := t.TempDir()
	const half = 4096
	s0 := newLogStore(t, root, withBoot("boot-1"), withLogHalf(half))
	crash(s0)
	names := logFiles(t, root)
	f, err := os.OpenFile(filepath.Join(root, walDir, names[0]), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	w := &wal{f: f, half: half}
	// On disk after the crash: half 1 still has its old header, but an
	// entry written after a header (epoch 3) that the crash lost.
	if err := errors.Join(w.writeHeader(0, 2, 2, 0, "boot-1"), w.writeHeader(1, 1, 1, 0, "boot-1")); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(entryBytes(3, 1, walObject{key: "ghost", body: []byte("stale")}), half+walHeader); err != nil {
		t.Fatal(err)
	}
	f.Close()

	s2 := newLogStore(t, root, withBoot("boot-2"), withLogHalf(half))
	if _, ok := fileOf(t, root, "ghost"); ok {
		t.Fatal("ghost restored at the first takeover")
	}
	putString(t, s2, "ghost", "new", store.PutOptions{}) // durable
	crash(s2)
	newLogStore(t, root, withBoot("boot-3"), withLogHalf(half))
	if got, _ := fileOf(t, root, "ghost"); got != "new" {
		t.Errorf("ghost = %q, want %q: a stale entry counted again", got, "new")
	}
}

// TestLogSameBootTakeoverBarrier: a log taken over in the boot its
// writer ran in restores nothing, but its objects were made durable only
// by it: a barrier passes before it is emptied.
func TestLogSameBootTakeoverBarrier(t *testing.T) {
	root := t.TempDir()
	s1 := newLogStore(t, root, withBoot("boot-1"))
	putString(t, s1, "k", "acked", unorderedCreate) // durable through the log alone
	crash(s1)
	var syncs atomic.Int64
	newLogStore(t, root, withBoot("boot-1"), func(s *Store) {
		sync := s.fsSyncer.sync
		s.fsSyncer.sync = func(d string) error { syncs.Add(1); return sync(d) }
	})
	if syncs.Load() == 0 {
		t.Error("a log holding acknowledged entries was emptied without a barrier")
	}
}

// TestLogBrokenHalfRepairedAtClose: a half kept after a failed barrier
// (the kernel may have dropped its objects' pages) has its objects
// written afresh from the log at Close.
func TestLogBrokenHalfRepairedAtClose(t *testing.T) {
	root := t.TempDir()
	s1 := newLogStore(t, root, withBoot("boot-1"))
	putString(t, s1, "k", "acked", unorderedCreate)
	failNext(s1) // a write-back error
	if err := s1.wal.checkpoint(); err == nil {
		t.Fatal("checkpoint with a failing syncfs succeeded")
	}
	// The pages the kernel dropped: k reads back without its data.
	if err := os.Truncate(filepath.Join(root, "k"), 0); err != nil {
		t.Fatal(err)
	}
	if err := s1.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if got, _ := fileOf(t, root, "k"); got != "acked" {
		t.Errorf("k = %q after Close, want it written afresh from the log", got)
	}
}

// emptiedThenReopened empties the file of k, as a crash or a write-back
// error leaves a file whose data was not written, opens a store on root in
// boot, and returns what k then holds.
func emptiedThenReopened(t *testing.T, root, boot string) string {
	t.Helper()
	if err := os.Truncate(filepath.Join(root, "k"), 0); err != nil {
		t.Fatal(err)
	}
	newLogStore(t, root, withBoot(boot))
	got, _ := fileOf(t, root, "k")
	return got
}

// TestLogRestoresAppendedObject: an object that a later append (a Lazy
// one, as the queue's next record version) restamped is still the logged
// object: if a crash of the machine lost its data it is restored.
func TestLogRestoresAppendedObject(t *testing.T) {
	root := t.TempDir()
	s1 := newLogStore(t, root, withBoot("boot-1"))
	obj := putString(t, s1, "k", "acked", unorderedCreate)
	if _, err := s1.AppendIfMatch(t.Context(), "k", obj.ETag, []byte("\n+tail"), store.AppendOptions{Lazy: true}); err != nil {
		t.Fatal(err)
	}
	crash(s1)
	if got := emptiedThenReopened(t, root, "boot-2"); got != "acked" { // the inode written back, not its data
		t.Errorf("k = %q after a crash of the machine, want it restored", got)
	}
}

// TestLogKeyUnderObject: a logged key whose parent is an object now is
// skipped; New does not fail over it.
func TestLogKeyUnderObject(t *testing.T) {
	root := t.TempDir()
	s1 := newLogStore(t, root, withBoot("boot-1"))
	putString(t, s1, "a/b", "x", unorderedCreate)
	crash(s1)
	// After the crash "a/b" is gone and "a" is an object (deleted and
	// put again before the crash, or the directory never became durable).
	os.RemoveAll(filepath.Join(root, "a"))
	os.WriteFile(filepath.Join(root, "a"), []byte("file"), 0o600)
	s2, err := New(root, WithSync(SyncFS), withoutCheckpoints(), withBoot("boot-2"))
	if err != nil {
		t.Fatalf("New after a crash: %v", err)
	}
	s2.Close()
}

// TestLogNeedsBootID: without a boot id a store cannot tell a crash of
// the machine from one of the process (it would restore deleted objects
// after a kill -9): it keeps no log.
func TestLogNeedsBootID(t *testing.T) {
	s, err := New(t.TempDir(), WithSync(SyncFS), withBoot(""))
	if err != nil {
		t.Skipf("no syncfs here: %v", err)
	}
	defer s.Close()
	if s.wal != nil {
		t.Error("a log without a boot id")
	}
	putString(t, s, "k", "x", unorderedCreate)
}

// TestLogCloseTwice: a second Close does not panic.
func TestLogCloseTwice(t *testing.T) {
	s, err := New(t.TempDir(), WithSync(SyncFS), withoutCheckpoints())
	if err != nil || s.wal == nil {
		t.Skip(err)
	}
	s.Close()
	defer func() {
		if r := recover(); r != nil {
			t.Errorf("second Close panicked: %v", r)
		}
	}()
	s.Close()
}

func inoOf(t *testing.T, root, key string) uint64 {
	t.Helper()
	fi, err := os.Stat(filepath.Join(root, key))
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}

// brokenLog opens a store on root, logs k="acked" and fails the next
// checkpoint's barrier (a write-back error): the log is broken, its half
// flagged for rewrite.
func brokenLog(t *testing.T, root string) *Store {
	t.Helper()
	s := newLogStore(t, root, withBoot("boot-1"))
	putString(t, s, "k", "acked", unorderedCreate)
	failNext(s)
	if err := s.wal.checkpoint(); err == nil {
		t.Fatal("checkpoint with a failing syncfs succeeded")
	}
	return s
}

// TestLogClearedHalfRewritten: after a write-back error the kernel leaves
// the failed pages in the page cache, clean: a reader still sees the body
// although the disk lacks it, and the failing syncfs has reported the
// error, so the next barrier passes. A half flagged for rewrite therefore
// has its objects written afresh, whatever they read.
func TestLogClearedHalfRewritten(t *testing.T) {
	root := t.TempDir()
	s1 := brokenLog(t, root)
	before := inoOf(t, root, "k")
	s1.Close()
	// The page cache still holds "acked" (as after a real EIO write-back).
	newLogStore(t, root, withBoot("boot-1"))
	if inoOf(t, root, "k") == before {
		t.Error("k, whose write-back failed, was not rewritten: the takeover trusted the page cache and emptied the log")
	}
}

// TestLogRestoreTakesKeyLock: restore runs under the key's lock, so a
// compare-and-delete (DeleteIfMatch, as queue.DropEmpty uses) in another
// process never deletes an object restored between its check and its
// unlink: the delete comes first, then the restore.
func TestLogRestoreTakesKeyLock(t *testing.T) {
	root := t.TempDir()
	s1 := newLogStore(t, root, withBoot("boot-1"))
	live := newTestStore(t, root, WithLog(false)) // another process on the root
	putString(t, s1, "k", "acked", unorderedCreate)
	crash(s1)
	// A crash of the machine lost k's data: the record reads empty.
	if err := os.Truncate(filepath.Join(root, "k"), 0); err != nil {
		t.Fatal(err)
	}
	obj, err := live.Stat(t.Context(), "k")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	testHookDeleteChecked = func(string) {
		go func() { // a process starting now takes the log over
			defer close(done)
			s, err := New(root, WithSync(SyncFS), withoutCheckpoints(), withBoot("boot-2"))
			if err == nil {
				s.Close()
			}
		}()
		select {
		case <-done:
		case <-time.After(500 * time.Millisecond): // blocked on the key's lock: fine
		}
	}
	defer func() { testHookDeleteChecked = nil }()
	if err := live.DeleteIfMatch(t.Context(), "k", obj.ETag); err != nil {
		t.Logf("DeleteIfMatch: %v", err)
	}
	<-done
	if got, ok := fileOf(t, root, "k"); got != "acked" {
		t.Errorf("k = %q (exists %v): the restored acknowledged object was deleted by a DeleteIfMatch of the empty one", got, ok)
	}
}

// TestLogNewestAcrossLogs: two processes share the root: p1 logs k and
// deletes it durably; p2 then creates k anew through its own log. After a
// crash of the machine the newest entry for k wins, whichever log is read
// first.
func TestLogNewestAcrossLogs(t *testing.T) {
	for i := range 10 {
		root := t.TempDir()
		oldThenNew(t, root)
		newLogStore(t, root, withBoot("boot-2"))
		if got, _ := fileOf(t, root, "k"); got != "new" {
			t.Fatalf("trial %d: k = %q after a crash, want the newer acknowledged %q", i, got, "new")
		}
	}
}

// TestLogLongBootID: a boot id longer than a header holds is compared as
// the header holds it: a same-boot takeover restores nothing.
func TestLogLongBootID(t *testing.T) {
	root := t.TempDir()
	boot := strings.Repeat("b", 70)
	s1 := newLogStore(t, root, withBoot(boot))
	putString(t, s1, "k", "x", unorderedCreate)
	if err := s1.Delete(t.Context(), "k"); err != nil {
		t.Fatal(err)
	}
	crash(s1)
	newLogStore(t, root, withBoot(boot))
	if _, ok := fileOf(t, root, "k"); ok {
		t.Error("k, deleted before a kill -9, came back in the same boot")
	}
}

var _ = store.PutOptions{}

// TestLogTakeoverBarrierFails: a takeover whose barrier fails clears the
// halves' boot id, so the next start, even in this boot (whose barrier
// passes: the error was reported once already), writes their objects
// afresh.
func TestLogTakeoverBarrierFails(t *testing.T) {
	root := t.TempDir()
	s1 := newLogStore(t, root, withBoot("boot-1"))
	putString(t, s1, "k", "acked", unorderedCreate) // durable through the log alone
	before := inoOf(t, root, "k")
	crash(s1)
	failOnce := func(s *Store) {
		sync, failed := s.fsSyncer.sync, false
		s.fsSyncer.sync = func(d string) error {
			if !failed {
				failed = true
				s.syncErrs.Add(1)
				return syscall.EIO // write-back of k failed
			}
			return sync(d)
		}
	}
	if s, err := New(root, WithSync(SyncFS), withoutCheckpoints(), withBoot("boot-1"), failOnce); err == nil {
		s.Close()
		t.Fatal("New passed a failing takeover barrier")
	}
	newLogStore(t, root, withBoot("boot-1")) // restarted
	if inoOf(t, root, "k") == before {
		t.Error("after a failed takeover barrier the log was emptied by the next start without k being made durable again")
	}
}

// gated is a body whose first Read waits until open is closed.
type gated struct {
	r       io.Reader
	started chan struct{}
	open    chan struct{}
	once    sync.Once
}

func (g *gated) Read(p []byte) (int, error) {
	g.once.Do(func() { close(g.started); <-g.open })
	return g.r.Read(p)
}

// TestLogOrderIsAppendOrder: entries are ordered by when they were
// appended, after their objects were placed, not by when the bodies were
// staged. G1 stages k and is still reading the next body of its batch
// when G2 creates k through the log and deletes it durably; G1 then
// places k and is acknowledged. After a crash of the machine G1's entry
// is the newest and its file stays.
func TestLogOrderIsAppendOrder(t *testing.T) {
	root := t.TempDir()
	s := newLogStore(t, root, withBoot("boot-1"))
	g := &gated{r: strings.NewReader("other"), started: make(chan struct{}), open: make(chan struct{})}
	errc := make(chan error, 1)
	go func() {
		_, err := s.PutAll(t.Context(), []store.PutRequest{
			{Key: "k", Body: strings.NewReader("acked-by-G1"), Opts: unorderedCreate},
			{Key: "other", Body: g, Opts: unorderedCreate},
		})
		errc <- err
	}()
	<-g.started // k staged and stamped, not placed
	putString(t, s, "k", "deleted-by-G2", unorderedCreate)
	if err := s.Delete(t.Context(), "k"); err != nil {
		t.Fatal(err)
	}
	close(g.open)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	crash(s)
	newLogStore(t, root, withBoot("boot-2"))
	if got, _ := fileOf(t, root, "k"); got != "acked-by-G1" {
		t.Errorf("k = %q after a crash, want the acknowledged %q", got, "acked-by-G1")
	}
}

// TestLogRestoreWithoutLinks: where neither renameat2 (RENAME_NOREPLACE)
// nor link(2) work, restore creates a missing key under the lock it
// already holds (taking it again would hang New for ever).
func TestLogRestoreWithoutLinks(t *testing.T) {
	root := t.TempDir()
	s1 := newLogStore(t, root, withBoot("boot-1"))
	putString(t, s1, "k", "acked", unorderedCreate)
	crash(s1)
	os.Remove(root + "/k") // the crash lost it
	noLinks := func(s *Store) {
		s.renameNoReplaceFn = func(o, n string) error { return &os.LinkError{Op: "renameat2", Old: o, New: n, Err: syscall.EINVAL} }
		s.linkFn = func(o, n string) error { return &os.LinkError{Op: "link", Old: o, New: n, Err: syscall.EPERM} }
	}
	done := make(chan error, 1)
	go func() {
		s, err := New(root, WithSync(SyncFS), withoutCheckpoints(), withBoot("boot-2"), noLinks)
		if err == nil {
			s.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		if got, _ := fileOf(t, root, "k"); got != "acked" {
			t.Errorf("New: %v; k = %q, want restored", err, got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("New deadlocked restoring a missing key (commit relocks the key's stripe)")
	}
}

// TestLogBrokenLogNoResurrection: after a write-back error broke the
// log, an object of its flagged half deleted durably later does not come
// back at the next start in the same boot (no crash: a missing key was
// deleted).
func TestLogBrokenLogNoResurrection(t *testing.T) {
	root := t.TempDir()
	s1 := brokenLog(t, root)
	// Later (hours, say): barriers pass again; k is delivered and deleted.
	if err := s1.Delete(t.Context(), "k"); err != nil {
		t.Fatalf("Delete after the error: %v", err)
	}
	if err := s1.Close(); err != nil {
		t.Logf("Close: %v", err)
	}
	newLogStore(t, root, withBoot("boot-1")) // a plain restart, same boot
	if got, ok := fileOf(t, root, "k"); ok {
		t.Errorf("k = %q: deleted durably after the error, resurrected by a restart without any crash", got)
	}
}

// oldThenNew plays two processes on root: p1 logs k="old" and deletes it
// durably, p2 then logs k="new"; both are killed and the machine crashes,
// losing k. It returns p2's log.
func oldThenNew(t *testing.T, root string) (p2log string) {
	t.Helper()
	p1 := newLogStore(t, root, withBoot("boot-1"))
	p2 := newLogStore(t, root, withBoot("boot-1"))
	putString(t, p1, "k", "old", unorderedCreate)
	if err := p1.Delete(t.Context(), "k"); err != nil {
		t.Fatal(err)
	}
	putString(t, p2, "k", "new", unorderedCreate)
	p2log = filepath.Join(root, walDir, strings.TrimPrefix(filepath.Base(p2.wal.f.Name()), "put-log-"))
	crash(p1)
	crash(p2)
	os.Remove(filepath.Join(root, "k"))
	return p2log
}

// TestLogConcurrentTakeovers: after a crash of the machine two processes
// sharing the root start together. p1 logged k="old" and deleted it; p2
// then logged k="new". Takeovers take turns (a lock), so the first sees
// every dead log and the newest entry wins: had starter A restored from
// p1's log alone while starter B was taking p2's, A would have brought
// "old" back, stamped after "new", and B kept it.
func TestLogConcurrentTakeovers(t *testing.T) {
	root := t.TempDir()
	p2log := oldThenNew(t, root)
	// Starter B is taking p2's log over: it holds the takeover lock and
	// the log's.
	tl, err := os.OpenFile(filepath.Join(root, lockDir, "wal"), os.O_RDONLY|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := flock(tl, syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	b, err := os.OpenFile(p2log, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := flock(b, syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	started := make(chan *Store)
	go func() { // starter A
		s, err := New(root, WithSync(SyncFS), withoutCheckpoints(), withBoot("boot-2"))
		if err != nil {
			t.Error(err)
		}
		started <- s
	}()
	select {
	case <-started:
		t.Fatal("a takeover ran while another held the takeover lock")
	case <-time.After(200 * time.Millisecond):
	}
	b.Close() // B dies before restoring anything: its lock and the log's go
	tl.Close()
	if a := <-started; a != nil {
		defer a.Close()
	}
	if got, _ := fileOf(t, root, "k"); got != "new" {
		t.Errorf("k = %q after concurrent takeovers, want the newest acknowledged %q", got, "new")
	}
}

// TestLogDeadReplicaAdopted: replica p1 is killed (-9) and not restarted
// while replica p2 runs on. p2 adopts p1's log (every minute), so p1's
// entries do not stay valid: days later the message is delivered and
// expired (deleted durably), the machine crashes, and the next start does
// not bring it back.
func TestLogDeadReplicaAdopted(t *testing.T) {
	root := t.TempDir()
	p1 := newLogStore(t, root, withBoot("boot-1"))
	p2 := newLogStore(t, root, withBoot("boot-1"))
	putPair(t, p1, "m", "raw", "rec")
	crash(p1) // OOM-killed, not restarted
	if err := p2.adoptLogs(); err != nil {
		t.Fatal(err)
	}
	if names := logFiles(t, root); len(names) != 1 {
		t.Errorf("log files %q after the adoption, want p2's alone", names)
	}
	// Much later: p2 delivers and expires the message, checkpoints as usual.
	for _, k := range []string{"rec/m", "raw/m"} {
		if err := p2.Delete(t.Context(), k); err != nil {
			t.Fatal(err)
		}
	}
	putString(t, p2, "other", "x", unorderedCreate)
	if err := p2.wal.checkpoint(); err != nil {
		t.Fatal(err)
	}
	if err := p2.wal.checkpoint(); err != nil {
		t.Fatal(err)
	}
	crash(p2) // the machine crashes
	newLogStore(t, root, withBoot("boot-2"))
	for _, k := range []string{"rec/m", "raw/m"} {
		if got, ok := fileOf(t, root, k); ok {
			t.Errorf("%s = %q: deleted durably long before the crash, restored from a dead replica's log", k, got)
		}
	}
}

// TestLogBrokenLogEmptiedAtClose: a log broken by a failed write (ENOSPC
// on the sparse log file) is emptied once a barrier covers it, at the
// latest at Close: objects deleted durably afterwards do not come back
// after a later crash of the machine.
func TestLogBrokenLogEmptiedAtClose(t *testing.T) {
	root := t.TempDir()
	s := newLogStore(t, root, withBoot("boot-1"))
	putPair(t, s, "m", "raw", "rec")
	s.wal.mu.Lock()
	s.wal.broken = syscall.ENOSPC // as commit does when WriteAt fails
	s.wal.mu.Unlock()
	for _, k := range []string{"rec/m", "raw/m"} {
		if err := s.Delete(t.Context(), k); err != nil { // durable: a barrier
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil { // graceful shutdown
		t.Logf("Close: %v", err)
	}
	newLogStore(t, root, withBoot("boot-2")) // any later crash of the machine
	if got, ok := fileOf(t, root, "rec/m"); ok {
		t.Errorf("rec/m = %q: deleted durably, then closed gracefully; restored after a later crash", got)
	}
}

// TestLogRestoredWithLogOff: after a crash of the machine the operator
// restarts with MAILHOOK_STORE_LOG=false (the documented escape hatch), or
// the store comes up in SyncFiles mode: New still takes the dead logs over
// and restores what only they held.
func TestLogRestoredWithLogOff(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []Option
	}{
		{"log off", []Option{WithSync(SyncFS), WithLog(false)}},
		{"SyncFiles", []Option{WithSync(SyncFiles)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			p1 := newLogStore(t, root, withBoot("boot-1"))
			putPair(t, p1, "m", "raw", "rec") // acknowledged: 250
			crash(p1)
			// The crash of the machine loses the files (never written back).
			os.Remove(filepath.Join(root, "rec/m"))
			os.Remove(filepath.Join(root, "raw/m"))
			s, err := New(root, append(tc.opts, withBoot("boot-2"))...)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if _, ok := fileOf(t, root, "rec/m"); !ok {
				t.Error("rec/m lost: an acknowledged message held only by a dead log was not restored")
			}
		})
	}
}

// TestLogCloseRacesCommit: a batch that arrives while Close passes its
// barrier is not acknowledged through the log, whose headers Close then
// empties: it passes a barrier itself. (Not reachable from cmd/mailhook:
// SMTP connections are closed before the store.)
func TestLogCloseRacesCommit(t *testing.T) {
	root := t.TempDir()
	s, err := New(root, WithSync(SyncFS), withoutCheckpoints(), withBoot("boot-1"))
	if err != nil || s.wal == nil {
		t.Skip("no log here")
	}
	putString(t, s, "first", "x", unorderedCreate) // the active half is in use
	in, release := make(chan struct{}), make(chan struct{})
	var syncs atomic.Int64
	s.syncFSFn = func() error {
		if syncs.Add(1) == 1 {
			close(in)
			<-release
		}
		return syncfs(s.rootDir)
	}
	closed := make(chan error)
	go func() { closed <- s.Close() }()
	<-in // close's barrier has started
	put := make(chan error)
	go func() {
		_, err := s.Put(t.Context(), "late", strings.NewReader("acked"), unorderedCreate)
		put <- err
	}()
	time.Sleep(50 * time.Millisecond) // the Put reaches the log or a barrier
	close(release)
	if err := <-put; err == nil && syncs.Load() < 2 {
		t.Error("a Put during Close was acknowledged through the log that Close then emptied")
	}
	<-closed
}

// TestLogEmptyBootNoTakeover: p1 (boot id known, log on) is killed, not
// the machine. p2 runs without a boot id (so without a log), deletes the
// message durably and restarts: without a boot id it cannot tell a kill
// from a crash of the machine, so it leaves p1's log alone instead of
// restoring the deleted message from it.
func TestLogEmptyBootNoTakeover(t *testing.T) {
	root := t.TempDir()
	p1 := newLogStore(t, root, withBoot("boot-1"))
	p2, err := New(root, WithSync(SyncFS), withBoot(""))
	if err != nil {
		t.Skip(err)
	}
	putPair(t, p1, "m", "raw", "rec")
	crash(p1) // kill -9 of p1 only; same boot
	for _, k := range []string{"rec/m", "raw/m"} {
		if err := p2.Delete(t.Context(), k); err != nil {
			t.Fatal(err)
		}
	}
	p2.Close()
	p3, err := New(root, WithSync(SyncFS), withBoot(""))
	if err != nil {
		t.Fatal(err)
	}
	defer p3.Close()
	if got, ok := fileOf(t, root, "rec/m"); ok {
		t.Errorf("rec/m = %q: deleted durably after a mere kill, restored by a takeover without a boot id", got)
	}
}

// TestLogStartLogFailure: after a crash of the machine, New takes the
// dead log over and restores it; if it then cannot make that log its own
// (a full disk), it removes it, as the others it took over, and runs
// without a log: a message deleted afterwards is not restored by the next
// takeover.
func TestLogStartLogFailure(t *testing.T) {
	root := t.TempDir()
	p1 := newLogStore(t, root, withBoot("boot-1"))
	putPair(t, p1, "m", "raw", "rec")
	crash(p1)
	testHookStartLog = func() error { return syscall.ENOSPC }
	p2, err := New(root, WithSync(SyncFS), withoutCheckpoints(), withBoot("boot-2"))
	testHookStartLog = nil
	if err != nil {
		t.Fatal(err)
	}
	defer p2.Close()
	if p2.wal != nil {
		t.Error("a log although startLog failed")
	}
	if names := logFiles(t, root); len(names) != 0 {
		t.Errorf("log files %q left after the takeover", names)
	}
	for _, k := range []string{"rec/m", "raw/m"} {
		if err := p2.Delete(t.Context(), k); err != nil {
			t.Fatal(err)
		}
	}
	newLogStore(t, root, withBoot("boot-2")) // same boot, no crash
	if got, ok := fileOf(t, root, "rec/m"); ok {
		t.Errorf("rec/m = %q: deleted durably, restored again from a log a failed start left", got)
	}
}
