package fs

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailhook/mailhook/store"
)

// lingerSyncer returns a dirSyncer with the given linger whose rounds
// report their start on started and end when release is sent to.
func lingerSyncer(linger time.Duration) (d *dirSyncer, started chan int, release chan struct{}) {
	started, release = make(chan int, 8), make(chan struct{})
	var calls atomic.Int64
	d = &dirSyncer{linger: linger, wake: make(chan struct{}, 1), sync: func(string) error {
		started <- int(calls.Add(1))
		<-release
		return nil
	}}
	return d, started, release
}

// waitJoined waits until n callers wait for the round after the running one.
func waitJoined(t *testing.T, d *dirSyncer, n int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		d.mu.Lock()
		joined := 0
		if d.next != nil {
			joined = d.next.joined
		}
		d.mu.Unlock()
		if joined == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d callers joined the next round, want %d", joined, n)
		}
	}
}

func syncAsync(d *dirSyncer) chan error {
	done := make(chan error, 1)
	go func() { done <- d.syncNow() }()
	return done
}

// queueBehindFirst runs a first round, queues a second caller behind it,
// calls between (if not nil) and ends the first round. It returns the
// second caller's result.
func queueBehindFirst(t *testing.T, d *dirSyncer, started chan int, release chan struct{}, between func()) chan error {
	t.Helper()
	a := syncAsync(d)
	if n := <-started; n != 1 {
		t.Fatalf("first round is call %d", n)
	}
	b := syncAsync(d)
	waitJoined(t, d, 1)
	if between != nil {
		between()
	}
	release <- struct{}{}
	if err := <-a; err != nil {
		t.Fatal(err)
	}
	return b
}

// A round queued behind a running one waits for a writer still on its way
// (expect), takes it in, and starts as soon as that writer arrives: one
// syncfs for both callers.
func TestCommitDelayWaitsForWriters(t *testing.T) {
	d, started, release := lingerSyncer(time.Minute)
	var writer expectation
	b := queueBehindFirst(t, d, started, release, func() { writer = d.expect() })
	select {
	case n := <-started:
		t.Fatalf("round %d started while a writer was on its way", n)
	case <-time.After(50 * time.Millisecond):
	}
	c := syncAsync(d) // the writer arrives: it joins the lingering round
	waitJoined(t, d, 2)
	writer.done()
	writer.done() // a second done changes nothing
	if n := <-started; n != 2 {
		t.Fatalf("second round is call %d", n)
	}
	release <- struct{}{}
	for _, ch := range []chan error{b, c} {
		if err := <-ch; err != nil {
			t.Fatal(err)
		}
	}
	if got := d.expected.Load(); got != 0 {
		t.Errorf("expected = %d after every writer was done", got)
	}
}

// A writer that never arrives holds the round back for the linger only.
func TestCommitDelayIsBounded(t *testing.T) {
	const linger = 30 * time.Millisecond
	d, started, release := lingerSyncer(linger)
	var writer expectation
	b := queueBehindFirst(t, d, started, release, func() { writer = d.expect() })
	defer writer.done()
	ended := time.Now()
	select {
	case <-started:
		if waited := time.Since(ended); waited < linger {
			t.Errorf("the round started %v after the last one, before its linger of %v", waited, linger)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the round never started: a missing writer held it for good")
	}
	release <- struct{}{}
	if err := <-b; err != nil {
		t.Fatal(err)
	}
}

// With nobody on the way, a queued round starts at once, however long the
// linger: a lone client never waits for it.
func TestCommitDelayNotWithoutWriters(t *testing.T) {
	d, started, release := lingerSyncer(time.Hour)
	b := queueBehindFirst(t, d, started, release, nil)
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("the round waited for its linger with no writer expected")
	}
	release <- struct{}{}
	if err := <-b; err != nil {
		t.Fatal(err)
	}
}

// PutAll counts itself as on its way while it writes, and not after.
func TestPutAllIsExpected(t *testing.T) {
	s := newSyncFSStore(t, func() error { return nil })
	var during atomic.Int64
	body := readerFunc(func(p []byte) (int, error) {
		during.Store(s.fsSyncer.expected.Load())
		return 0, io.EOF
	})
	if _, err := s.Put(t.Context(), "k", body, store.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := during.Load(); got != 1 {
		t.Errorf("while its body was read, %d writers were expected, want 1", got)
	}
	if got := s.fsSyncer.expected.Load(); got != 0 {
		t.Errorf("after Put returned, %d writers are expected, want 0", got)
	}
}

// A Lazy move waits at no barrier in SyncFS mode; SyncFiles mode has none
// to defer to, and syncs as for any move.
func TestLazyMove(t *testing.T) {
	ctx := context.Background()
	var syncs atomic.Int64
	s := newSyncFSStore(t, func() error { syncs.Add(1); return nil })
	putString(t, s, "m/a", "x", store.PutOptions{})
	putString(t, s, "m/b", "y", store.PutOptions{})
	before := syncs.Load()
	if _, err := s.MoveAppend(ctx, "m/a", "n/a", []byte("+"), store.MoveOptions{Lazy: true}); err != nil {
		t.Fatal(err)
	}
	if got := syncs.Load() - before; got != 0 {
		t.Errorf("a Lazy move made %d syncfs calls, want 0", got)
	}
	if _, err := s.MoveAppend(ctx, "m/b", "n/b", nil, store.MoveOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := syncs.Load() - before; got != 1 {
		t.Errorf("a durable move made %d syncfs calls, want 1", got)
	}
	if got := readKey(t, s, "n/a"); got != "x+" {
		t.Errorf("moved object = %q", got)
	}

	f := newTestStore(t, t.TempDir(), WithSync(SyncFiles))
	var dirSyncs atomic.Int64
	f.syncDirFn = func(dir string) error { dirSyncs.Add(1); return syncDir(dir) }
	putString(t, f, "m/a", "x", store.PutOptions{})
	putString(t, f, "n/x", "x", store.PutOptions{}) // n exists: no directory to create
	before = dirSyncs.Load()
	if _, err := f.MoveAppend(ctx, "m/a", "n/a", nil, store.MoveOptions{Lazy: true}); err != nil {
		t.Fatal(err)
	}
	if got := dirSyncs.Load() - before; got != 2 {
		t.Errorf("SyncFiles: a Lazy move fsynced %d directories, want both (2)", got)
	}
}

// A lazy delete, and a create-only Put both Unordered and Lazy (a new
// lease), wait at no barrier in SyncFS mode; the next durable operation
// covers them. In SyncFiles mode a lazy delete fsyncs its directory.
func TestLazyDeleteAndUnorderedLazyPut(t *testing.T) {
	ctx := context.Background()
	var syncs atomic.Int64
	s := newSyncFSStore(t, func() error { syncs.Add(1); return nil })
	putString(t, s, "m/a", "x", store.PutOptions{})
	before := syncs.Load()
	if err := s.DeleteLazy(ctx, "m/a"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteLazy(ctx, "m/missing"); err != nil {
		t.Errorf("DeleteLazy of a missing key: %v, want nil", err)
	}
	putString(t, s, "m/b", "y", store.PutOptions{IfNoneMatch: true, Unordered: true, Lazy: true})
	if got := syncs.Load() - before; got != 0 {
		t.Errorf("a lazy delete and an Unordered Lazy Put made %d syncfs calls, want 0", got)
	}
	if _, err := s.Stat(ctx, "m/a"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Stat after DeleteLazy: %v, want ErrNotFound", err)
	}
	if got := readKey(t, s, "m/b"); got != "y" {
		t.Errorf("m/b = %q, want y", got)
	}
	if err := s.Delete(ctx, "m/b"); err != nil {
		t.Fatal(err)
	}
	if got := syncs.Load() - before; got != 1 {
		t.Errorf("a durable delete made %d syncfs calls, want 1", got-0)
	}

	f := newTestStore(t, t.TempDir(), WithSync(SyncFiles))
	var dirSyncs atomic.Int64
	f.syncDirFn = func(dir string) error { dirSyncs.Add(1); return syncDir(dir) }
	putString(t, f, "m/a", "x", store.PutOptions{})
	before = dirSyncs.Load()
	if err := f.DeleteLazy(ctx, "m/a"); err != nil {
		t.Fatal(err)
	}
	if got := dirSyncs.Load() - before; got != 1 {
		t.Errorf("SyncFiles: a lazy delete fsynced %d directories, want 1", got)
	}
}

// A Lazy append waits at no barrier in SyncFS mode, a durable one at one;
// SyncFiles mode fsyncs the file and no directory.
func TestAppendDurability(t *testing.T) {
	ctx := context.Background()
	var syncs atomic.Int64
	s := newSyncFSStore(t, func() error { syncs.Add(1); return nil })
	obj := putString(t, s, "m/a", "x", store.PutOptions{})
	before := syncs.Load()
	obj, err := s.AppendIfMatch(ctx, "m/a", obj.ETag, []byte("+"), store.AppendOptions{Lazy: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := syncs.Load() - before; got != 0 {
		t.Errorf("a Lazy append made %d syncfs calls, want 0", got)
	}
	if _, err := s.AppendIfMatch(ctx, "m/a", obj.ETag, []byte("+"), store.AppendOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := syncs.Load() - before; got != 1 {
		t.Errorf("a durable append made %d syncfs calls, want 1", got)
	}
	if got := readKey(t, s, "m/a"); got != "x++" {
		t.Errorf("m/a = %q, want x++", got)
	}

	f := newTestStore(t, t.TempDir(), WithSync(SyncFiles))
	var dirSyncs atomic.Int64
	f.syncDirFn = func(dir string) error { dirSyncs.Add(1); return syncDir(dir) }
	obj = putString(t, f, "m/a", "x", store.PutOptions{})
	before = dirSyncs.Load()
	if _, err := f.AppendIfMatch(ctx, "m/a", obj.ETag, []byte("+"), store.AppendOptions{Lazy: true}); err != nil {
		t.Fatal(err)
	}
	if got := dirSyncs.Load() - before; got != 0 {
		t.Errorf("SyncFiles: an append fsynced %d directories, want none (the file is)", got)
	}
}

// A move onto a key that is a directory here (a prefix of other keys)
// fails as an invalid key and leaves both where they were: rename(2)
// refuses it, without the lstat(2) os.Rename would make first.
func TestMoveOntoDirectory(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t, t.TempDir())
	putString(t, s, "m/a", "x", store.PutOptions{})
	putString(t, s, "d/x", "y", store.PutOptions{})
	if _, err := s.MoveAppend(ctx, "m/a", "d", []byte("+"), store.MoveOptions{}); !errors.Is(err, store.ErrInvalidKey) {
		t.Fatalf("move onto a directory = %v, want ErrInvalidKey", err)
	}
	if got := readKey(t, s, "d/x"); got != "y" {
		t.Errorf("d/x = %q after the refused move", got)
	}
	if got := readKey(t, s, "m/a"); got != "x" && got != "x+" { // Mover: any prefix of the tail
		t.Errorf("m/a = %q after the refused move", got)
	}
}

// A move with IfMatch moves only the version it names: another, or a
// stale ETag, fails with ErrPrecondition and leaves both keys as they were.
func TestMoveIfMatch(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t, t.TempDir())
	old := putString(t, s, "m/a", "v1", store.PutOptions{})
	cur := putString(t, s, "m/a", "v2", store.PutOptions{IfMatch: old.ETag})
	if _, err := s.MoveAppend(ctx, "m/a", "d/a", []byte("+"), store.MoveOptions{IfMatch: old.ETag}); !errors.Is(err, store.ErrPrecondition) {
		t.Fatalf("move of a stale version = %v, want ErrPrecondition", err)
	}
	if got := readKey(t, s, "m/a"); got != "v2" {
		t.Errorf("m/a = %q after the refused move, want v2 untouched", got)
	}
	if _, _, err := s.Get(ctx, "d/a"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("d/a after the refused move: %v, want ErrNotFound", err)
	}
	if _, err := s.MoveAppend(ctx, "m/a", "d/a", []byte("+"), store.MoveOptions{IfMatch: cur.ETag}); err != nil {
		t.Fatalf("move of the current version: %v", err)
	}
	if got := readKey(t, s, "d/a"); got != "v2+" {
		t.Errorf("d/a = %q, want v2+", got)
	}
}

// TestPutAllUnordered: without the log, a batch of create-only Unordered
// requests costs one syncfs, started after its last name was placed; a batch with any request
// ordered, or an Unordered one that is not create-only, still makes the
// bodies durable before the names.
func TestPutAllUnordered(t *testing.T) {
	var (
		mu     sync.Mutex
		events []string
	)
	note := func(e string) { mu.Lock(); events = append(events, e); mu.Unlock() }
	s := newSyncFSStore(t, func() error { note("sync"); return nil }, WithLog(false))
	s.linkTmpfileFn = func(f *os.File, n string) error { note("place " + filepath.Base(n)); return linkTmpfile(f, n) }
	s.renameNoReplaceFn = func(o, n string) error { note("place " + filepath.Base(n)); return renameNoReplace(o, n) }
	s.renameFn = func(o, n string) error { note("place " + filepath.Base(n)); return rename(o, n) }
	unordered := store.PutOptions{IfNoneMatch: true, Unordered: true}
	for _, tc := range []struct {
		name, n string // n: the keys' suffix
		opts    [2]store.PutOptions
		want    []string
	}{
		{"all unordered", "1", [2]store.PutOptions{unordered, unordered}, []string{"place a1", "place b1", "sync"}},
		{"one ordered", "2", [2]store.PutOptions{unordered, {IfNoneMatch: true}}, []string{"sync", "place a2", "place b2", "sync"}},
		{"not create-only", "3", [2]store.PutOptions{unordered, {Unordered: true}}, []string{"sync", "place a3", "place b3", "sync"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mu.Lock()
			events = nil
			mu.Unlock()
			n := tc.n
			_, err := s.PutAll(t.Context(), []store.PutRequest{
				{Key: "x/a" + n, Body: strings.NewReader("raw"), Opts: tc.opts[0]},
				{Key: "y/b" + n, Body: strings.NewReader("record"), Opts: tc.opts[1]},
			})
			if err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			got := slices.Clone(events)
			mu.Unlock()
			if !slices.Equal(got, tc.want) {
				t.Errorf("events %q, want %q", got, tc.want)
			}
			for _, k := range []string{"x/a" + n, "y/b" + n} {
				if readKey(t, s, k) == "" {
					t.Errorf("%s is empty", k)
				}
			}
		})
	}
}
