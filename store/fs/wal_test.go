package fs

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/mailhook/mailhook/store"
)

// withBoot makes the store believe it runs in the boot id.
func withBoot(id string) Option { return func(s *Store) { s.bootFn = func() string { return id } } }

// withLogHalf sets the size of each half of the log file.
func withLogHalf(n int64) Option { return func(s *Store) { s.logHalf = n } }

// withoutCheckpoints leaves checkpoints to the test.
func withoutCheckpoints() Option { return func(s *Store) { s.logEvery = 0 } }

// newLogStore opens a store at root with the log on, skipping where the
// kernel has no syncfs (no log there).
func newLogStore(t *testing.T, root string, opts ...Option) *Store {
	t.Helper()
	s, err := New(root, append([]Option{WithSync(SyncFS), withoutCheckpoints()}, opts...)...)
	if err != nil {
		t.Skipf("no syncfs here: %v", err)
	}
	if s.wal == nil {
		t.Fatal("SyncFS store without a log")
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// crash stops s as kill -9 would: its log is neither checkpointed nor
// emptied, and its lock is released. The page cache keeps what s wrote;
// a test plays a crash of the machine by damaging files itself.
func crash(s *Store) {
	close(s.wal.stop)
	<-s.wal.done
	s.wal.f.Close()
	s.wal = nil
}

var unorderedCreate = store.PutOptions{IfNoneMatch: true, Unordered: true}

// putPair stores raw/<n> and rec/<n> in one create-only batch, as the
// queue accepts a message.
func putPair(t *testing.T, s *Store, n, raw, rec string) {
	t.Helper()
	_, err := s.PutAll(t.Context(), []store.PutRequest{
		{Key: "raw/" + n, Body: strings.NewReader(raw), Opts: store.PutOptions{IfNoneMatch: true, Unordered: true, Lazy: true}},
		{Key: "rec/" + n, Body: strings.NewReader(rec), Opts: unorderedCreate},
	})
	if err != nil {
		t.Fatalf("PutAll %s: %v", n, err)
	}
}

func fileOf(t *testing.T, root, key string) (string, bool) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, key))
	if errors.Is(err, os.ErrNotExist) {
		return "", false
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(b), true
}

// TestLogInsteadOfBarrier: a small create-only batch is made durable by
// the log, with no syncfs, and the log holds a copy of every object; a
// batch that is not create-only, or too big, passes a barrier.
func TestLogInsteadOfBarrier(t *testing.T) {
	var syncs atomic.Int64
	s := newLogStore(t, t.TempDir())
	s.syncFSFn = func() error { syncs.Add(1); return syncfs(s.rootDir) }

	putPair(t, s, "1", "the message", `{"id":1}`)
	if n := syncs.Load(); n != 0 {
		t.Errorf("%d syncfs for a logged batch, want 0", n)
	}
	var got []walObject
	half := bytes.NewReader(readHalf(t, s.wal.f, 0, s.logHalf))
	if err := readEntries(half, s.wal.epoch, func(objs []walObject) error {
		for _, o := range objs {
			got = append(got, walObject{key: o.key, ino: o.ino, gen: o.gen, stamp: o.stamp, body: bytes.Clone(o.body)})
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].key != "raw/1" || string(got[0].body) != "the message" || got[1].key != "rec/1" || string(got[1].body) != `{"id":1}` {
		t.Errorf("log holds %+v", got)
	}

	if _, err := s.PutAll(t.Context(), []store.PutRequest{
		{Key: "raw/2", Body: strings.NewReader("x"), Opts: unorderedCreate},
		{Key: "rec/2", Body: strings.NewReader("y"), Opts: store.PutOptions{IfNoneMatch: true}},
	}); err != nil {
		t.Fatal(err)
	}
	if n := syncs.Load(); n != 2 {
		t.Errorf("%d syncfs for an ordered batch, want 2", n)
	}
	putString(t, s, "big", strings.Repeat("x", walMaxBatch+1), unorderedCreate)
	if n := syncs.Load(); n != 3 {
		t.Errorf("%d syncfs after a batch too big for the log, want 3", n)
	}
	if got, _ := fileOf(t, s.Root(), "big"); len(got) != walMaxBatch+1 {
		t.Errorf("big holds %d bytes", len(got))
	}
}

func readHalf(t *testing.T, f *os.File, h int, half int64) []byte {
	t.Helper()
	b := make([]byte, half-walHeader)
	if _, err := f.ReadAt(b, int64(h)*half+walHeader); err != nil {
		t.Fatal(err)
	}
	return b
}

// TestLogRestoresAfterMachineCrash: after a crash of the machine (a new
// boot id), the next store restores from a dead process's log what the
// crash lost: missing, emptied and damaged objects come back, objects that
// grew by appends stay as they are; and a log is restored only once.
func TestLogRestoresAfterMachineCrash(t *testing.T) {
	root := t.TempDir()
	s1 := newLogStore(t, root, withBoot("boot-1"))
	for _, n := range []string{"1", "2", "3", "4"} {
		putPair(t, s1, n, "raw "+n, "rec "+n)
	}
	crash(s1)
	// What a crash of the machine leaves of files it had not written back:
	// none, or the file without its data.
	os.Remove(filepath.Join(root, "raw/1"))
	os.Truncate(filepath.Join(root, "rec/2"), 0)
	os.WriteFile(filepath.Join(root, "raw/3"), []byte("\x00\x00\x00\x00\x00"), 0o600)
	// A later version appended, and a newer object (another file) under a
	// key: kept.
	f, _ := os.OpenFile(filepath.Join(root, "rec/4"), os.O_WRONLY|os.O_APPEND, 0)
	f.WriteString("\n+appended")
	f.Close()
	putString(t, withoutLog(t, root), "rec/3", "newer", store.PutOptions{})

	s2 := newLogStore(t, root, withBoot("boot-2"))
	for key, want := range map[string]string{
		"raw/1": "raw 1", "rec/2": "rec 2", "raw/3": "raw 3", "rec/4": "rec 4\n+appended",
		"rec/1": "rec 1", "raw/2": "raw 2", "rec/3": "newer", "raw/4": "raw 4",
	} {
		if got, ok := fileOf(t, root, key); got != want {
			t.Errorf("%s = %q (there: %v), want %q", key, got, ok, want)
		}
	}
	obj, err := s2.Stat(t.Context(), "raw/1")
	if err != nil || obj.Size != 5 {
		t.Errorf("Stat(raw/1) = %+v, %v", obj, err)
	}

	// The restored log was emptied: a second crash does not bring back
	// what was deleted since.
	crash(s2)
	if restoredAfter(t, root, "raw/1", "boot-3") {
		t.Error("raw/1 restored from a log already restored")
	}
	if names := logFiles(t, root); len(names) != 1 {
		t.Errorf("log files %q, want the one taken over", names)
	}
}

// withoutLog opens root without a log, to change objects as another writer
// would.
func withoutLog(t *testing.T, root string) *Store {
	return newTestStore(t, root, WithLog(false))
}

func logFiles(t *testing.T, root string) []string {
	return dirNames(t, filepath.Join(root, walDir))
}

// restoredAfter removes key, opens a store on root in boot and reports
// whether that brought key back.
func restoredAfter(t *testing.T, root, key, boot string) bool {
	t.Helper()
	if err := os.Remove(filepath.Join(root, key)); err != nil {
		t.Fatal(err)
	}
	newLogStore(t, root, withBoot(boot))
	_, ok := fileOf(t, root, key)
	return ok
}

// TestLogSameBoot: a process killed in this boot lost nothing the page
// cache holds, so its log restores nothing (an object deleted since stays
// deleted).
func TestLogSameBoot(t *testing.T) {
	root := t.TempDir()
	s1 := newLogStore(t, root, withBoot("boot-1"))
	putPair(t, s1, "1", "raw", "rec")
	crash(s1)
	if restoredAfter(t, root, "rec/1", "boot-1") {
		t.Error("rec/1 restored after a crash of the process alone")
	}
}

// TestLogTornEntry: an entry whose checksum fails ends the log: it and
// everything after it are not restored, everything before it is.
func TestLogTornEntry(t *testing.T) {
	root := t.TempDir()
	s1 := newLogStore(t, root, withBoot("boot-1"))
	putPair(t, s1, "1", "raw 1", "rec 1")
	second := s1.wal.off
	putPair(t, s1, "2", "raw 2", "rec 2")
	putPair(t, s1, "3", "raw 3", "rec 3")
	half, active := s1.logHalf, s1.wal.active
	f := s1.wal.f
	b := []byte{0}
	if _, err := f.ReadAt(b, int64(active)*half+second+entryHead+3); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x40
	if _, err := f.WriteAt(b, int64(active)*half+second+entryHead+3); err != nil {
		t.Fatal(err)
	}
	crash(s1)
	for _, k := range []string{"raw/1", "raw/2", "raw/3"} {
		os.Remove(filepath.Join(root, k))
	}
	newLogStore(t, root, withBoot("boot-2"))
	if got, _ := fileOf(t, root, "raw/1"); got != "raw 1" {
		t.Errorf("raw/1 = %q, want it restored", got)
	}
	for _, k := range []string{"raw/2", "raw/3"} {
		if _, ok := fileOf(t, root, k); ok {
			t.Errorf("%s restored from a torn log", k)
		}
	}
}

// TestLogCheckpoint: a checkpoint makes the entries before it unneeded
// (not restored after a crash of the machine); those after it are.
func TestLogCheckpoint(t *testing.T) {
	var syncs atomic.Int64
	root := t.TempDir()
	s1 := newLogStore(t, root, withBoot("boot-1"))
	s1.syncFSFn = func() error { syncs.Add(1); return syncfs(s1.rootDir) }
	putPair(t, s1, "1", "raw 1", "rec 1")
	if err := s1.wal.checkpoint(); err != nil {
		t.Fatal(err)
	}
	if syncs.Load() != 1 {
		t.Errorf("checkpoint passed %d barriers, want 1", syncs.Load())
	}
	putPair(t, s1, "2", "raw 2", "rec 2")
	crash(s1)
	os.Remove(filepath.Join(root, "raw/1"))
	os.Remove(filepath.Join(root, "raw/2"))
	newLogStore(t, root, withBoot("boot-2"))
	if _, ok := fileOf(t, root, "raw/1"); ok {
		t.Error("raw/1, checkpointed, restored")
	}
	if got, _ := fileOf(t, root, "raw/2"); got != "raw 2" {
		t.Errorf("raw/2 = %q, want it restored", got)
	}
}

// TestLogFull: when the active half has no room, a batch passes a
// barrier; once a checkpoint switched halves the log is used again. Every
// object is stored either way.
func TestLogFull(t *testing.T) {
	var syncs atomic.Int64
	s := newLogStore(t, t.TempDir(), withLogHalf(walHeader+265))
	s.syncFSFn = func() error { syncs.Add(1); return syncfs(s.rootDir) }
	body := strings.Repeat("m", 60)
	putPair(t, s, "1", body, "r") // an entry of 24 + 18+5+60 + 18+5+1 = 131 bytes
	putPair(t, s, "2", body, "r") // 262 of 265
	if n := syncs.Load(); n != 0 {
		t.Fatalf("%d syncfs for batches the log had room for", n)
	}
	putPair(t, s, "3", body, "r")
	if n := syncs.Load(); n != 1 {
		t.Errorf("%d syncfs for a batch the log had no room for, want 1", n)
	}
	if err := s.wal.checkpoint(); err != nil {
		t.Fatal(err)
	}
	if s.wal.active != 1 || !s.wal.clean[0] {
		t.Errorf("after the checkpoint: active half %d, clean %v", s.wal.active, s.wal.clean)
	}
	before := syncs.Load()
	putPair(t, s, "4", body, "r")
	if n := syncs.Load(); n != before {
		t.Errorf("%d syncfs for a batch after the checkpoint, want the log", n-before)
	}
	for _, n := range []string{"1", "2", "3", "4"} {
		if got, _ := fileOf(t, s.Root(), "raw/"+n); got != body {
			t.Errorf("raw/%s = %q", n, got)
		}
	}
}

// TestLogBroken: a log that cannot be written is not used again; batches
// pass a barrier and are stored all the same.
func TestLogBroken(t *testing.T) {
	var syncs atomic.Int64
	s := newLogStore(t, t.TempDir())
	s.syncFSFn = func() error { syncs.Add(1); return syncfs(s.rootDir) }
	s.wal.f.Close() // every write to it fails
	putPair(t, s, "1", "raw", "rec")
	putPair(t, s, "2", "raw", "rec")
	if n := syncs.Load(); n != 2 {
		t.Errorf("%d syncfs, want one per batch", n)
	}
	if s.wal.broken == nil {
		t.Error("log not marked broken")
	}
	if got, _ := fileOf(t, s.Root(), "rec/2"); got != "rec" {
		t.Errorf("rec/2 = %q", got)
	}
}

// TestLogLive: a store does not take over the log of a live one, even
// from another boot's point of view.
func TestLogLive(t *testing.T) {
	root := t.TempDir()
	s1 := newLogStore(t, root, withBoot("boot-1"))
	putPair(t, s1, "1", "raw", "rec")
	if restoredAfter(t, root, "raw/1", "boot-2") {
		t.Error("a live store's log was restored")
	}
	if names := logFiles(t, root); len(names) != 2 {
		t.Errorf("log files %q, want two", names)
	}
}

// TestLogClose: Close leaves an empty log: nothing of it is restored even
// after a crash of the machine.
func TestLogClose(t *testing.T) {
	root := t.TempDir()
	s1, err := New(root, WithSync(SyncFS), withBoot("boot-1"))
	if err != nil || s1.wal == nil {
		t.Skipf("no log here: %v", err)
	}
	putPair(t, s1, "1", "raw", "rec")
	if err := s1.Close(); err != nil {
		t.Fatal(err)
	}
	if restoredAfter(t, root, "raw/1", "boot-2") {
		t.Error("raw/1 restored from a closed store's log")
	}
}

// entryBytes encodes objs as one entry of epoch appended at stamp, as
// commit writes it.
func entryBytes(epoch uint64, stamp int64, objs ...walObject) []byte {
	e := make([]byte, entryHead)
	for _, o := range objs {
		e = appendObject(e, o.key, o.ino, o.gen, o.body)
	}
	binary.LittleEndian.PutUint32(e[0:], uint32(len(e)-entryHead))
	binary.LittleEndian.PutUint64(e[8:], epoch)
	binary.LittleEndian.PutUint64(e[16:], uint64(stamp))
	binary.LittleEndian.PutUint32(e[4:], crc32.Checksum(e[8:], castagnoli))
	return e
}

// FuzzLogEntries: reading any bytes as a half of a log never panics, and
// yields only well-formed objects; entries written by commit read back.
func FuzzLogEntries(f *testing.F) {
	f.Add(entryBytes(7, 5, walObject{key: "raw/a", ino: 1, gen: 9, body: []byte("body")}, walObject{key: "rec/a", ino: 2, gen: 9, body: []byte("{}")}))
	f.Add(append(entryBytes(7, 5, walObject{key: "k", ino: 3, gen: 9}), entryBytes(6, 6, walObject{key: "old", ino: 4, gen: 9, body: []byte("x")})...))
	f.Add([]byte{})
	f.Add(make([]byte, 64))
	f.Fuzz(func(t *testing.T, b []byte) {
		var n int
		err := readEntries(bytes.NewReader(b), 7, func(objs []walObject) error {
			n += entryHead
			for _, o := range objs {
				n += 18 + len(o.key) + len(o.body)
			}
			return nil
		})
		if err != nil {
			t.Fatalf("readEntries: %v", err)
		}
		if n > len(b) {
			t.Fatalf("read %d bytes of objects from %d", n, len(b))
		}
		want := walObject{key: "k/" + string(b[:min(len(b), 20)]), ino: uint64(len(b)), gen: uint32(len(b)) * 7, stamp: -int64(len(b)), body: b}
		var got []walObject
		if err := readEntries(bytes.NewReader(entryBytes(3, want.stamp, want)), 3, func(objs []walObject) error {
			got = objs
			return nil
		}); err != nil || len(got) != 1 || got[0].key != want.key || got[0].ino != want.ino || got[0].gen != want.gen || got[0].stamp != want.stamp || !bytes.Equal(got[0].body, want.body) {
			t.Fatalf("entry read back as %+v, %v", got, err)
		}
	})
}
