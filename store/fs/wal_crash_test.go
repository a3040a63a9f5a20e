package fs

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
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
	if err := errors.Join(w.writeHeader(0, 2, 2, "boot-1"), w.writeHeader(1, 1, 1, "boot-1")); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(entryBytes(3, walObject{key: "ghost", body: []byte("stale")}), half+walHeader); err != nil {
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

// TestLogBrokenHalfRestoredInSameBoot: a half kept after a failed barrier
// (the kernel may have dropped its objects' pages) is restored by
// whoever takes the log over, even in the same boot.
func TestLogBrokenHalfRestoredInSameBoot(t *testing.T) {
	root := t.TempDir()
	s1 := newLogStore(t, root, withBoot("boot-1"))
	putString(t, s1, "k", "acked", unorderedCreate)
	failNext(s1) // a write-back error
	if err := s1.wal.checkpoint(); err == nil {
		t.Fatal("checkpoint with a failing syncfs succeeded")
	}
	s1.Close()
	// The pages the kernel dropped: k reads back without its data.
	if got := emptiedThenReopened(t, root, "boot-1"); got != "acked" {
		t.Errorf("k = %q after a restart in the same boot, want it restored", got)
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

// TestLogClearedHalfRewritten: after a write-back error the kernel leaves
// the failed pages in the page cache, clean: a reader still sees the body
// although the disk lacks it, and the failing syncfs has reported the
// error, so the next process's barrier passes. A half whose boot id was
// cleared therefore has its objects written afresh, whatever they read.
func TestLogClearedHalfRewritten(t *testing.T) {
	root := t.TempDir()
	s1 := newLogStore(t, root, withBoot("boot-1"))
	putString(t, s1, "k", "acked", unorderedCreate)
	failNext(s1)
	if err := s1.wal.checkpoint(); err == nil {
		t.Fatal("checkpoint with a failing syncfs succeeded")
	}
	before := inoOf(t, root, "k")
	s1.Close()
	// The page cache still holds "acked" (as after a real EIO write-back).
	newLogStore(t, root, withBoot("boot-1"))
	if inoOf(t, root, "k") == before {
		t.Error("k, whose write-back failed, was not rewritten: the takeover trusted the page cache and emptied the log")
	}
}

// TestLogRestoreTakesKeyLock: restore runs under the key's lock, so a
// compare-and-delete (DeleteIfMatch, as queue.DropEmpty uses) in a live
// process never deletes an object restored between its check and its
// unlink.
func TestLogRestoreTakesKeyLock(t *testing.T) {
	root := t.TempDir()
	s1 := newLogStore(t, root, withBoot("boot-1"))
	live := newLogStore(t, root, withBoot("boot-1")) // another process on the root
	putString(t, s1, "k", "acked", unorderedCreate)
	failNext(s1)
	if err := s1.wal.checkpoint(); err == nil {
		t.Fatal("checkpoint succeeded")
	}
	crash(s1)
	// The write-back error lost k's data: the record reads empty.
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
			s, err := New(root, WithSync(SyncFS), withoutCheckpoints(), withBoot("boot-1"))
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
		p1 := newLogStore(t, root, withBoot("boot-1"))
		p2 := newLogStore(t, root, withBoot("boot-1"))
		putString(t, p1, "k", "old", unorderedCreate)
		if err := p1.Delete(t.Context(), "k"); err != nil {
			t.Fatal(err)
		}
		putString(t, p2, "k", "new", unorderedCreate)
		crash(p1)
		crash(p2)
		os.Remove(filepath.Join(root, "k")) // the crash lost it
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
