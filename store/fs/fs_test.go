package fs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mailhook/mailhook/store"
	"github.com/mailhook/mailhook/store/storetest"
)

func TestContract(t *testing.T) {
	for _, m := range []SyncMode{SyncAuto, SyncFS, SyncFiles} {
		t.Run(m.String(), func(t *testing.T) {
			storetest.Run(t, func(t *testing.T) store.Store { return newTestStore(t, t.TempDir(), WithSync(m)) })
		})
	}
}

func newTestStore(t *testing.T, root string, opts ...Option) *Store {
	t.Helper()
	s, err := New(root, opts...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func putString(t *testing.T, s *Store, key, body string, opts store.PutOptions) store.Object {
	t.Helper()
	obj, err := s.Put(t.Context(), key, strings.NewReader(body), opts)
	if err != nil {
		t.Fatalf("Put(%q): %v", key, err)
	}
	return obj
}

// tmpEntries lists <root>/.tmp except the locks and log directories.
func tmpEntries(t *testing.T, root string) []string {
	return dirNames(t, filepath.Join(root, tmpDir), "locks", "wal")
}

// dirNames lists the names in dir but those in skip.
func dirNames(t *testing.T, dir string, skip ...string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		if !slices.Contains(skip, e.Name()) {
			names = append(names, e.Name())
		}
	}
	return names
}

func TestNew(t *testing.T) {
	root := filepath.Join(t.TempDir(), "a", "b", "data")
	s := newTestStore(t, root)
	if fi, err := os.Stat(filepath.Join(root, ".tmp", "locks")); err != nil || !fi.IsDir() {
		t.Fatalf("New did not create the layout: %v", err)
	}
	if s.String() != "file://"+root || s.Root() != root {
		t.Errorf("String() = %q, Root() = %q", s.String(), s.Root())
	}
	// Opening again is fine.
	newTestStore(t, root)

	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{file, filepath.Join(file, "below")} {
		if s, err := New(bad); err == nil {
			s.Close()
			t.Errorf("New(%q) succeeded on a non-directory", bad)
		}
	}
}

func TestRelativeRoot(t *testing.T) {
	t.Chdir(t.TempDir())
	s := newTestStore(t, "./data")
	putString(t, s, "k", "v", store.PutOptions{})
	if b, err := os.ReadFile(filepath.Join("data", "k")); err != nil || string(b) != "v" {
		t.Errorf("data/k = %q, %v", b, err)
	}
}

func TestLayout(t *testing.T) {
	root := t.TempDir()
	s := newTestStore(t, root)
	body := "Received: by mailhook\r\n\r\nhi\r\n"
	putString(t, s, "raw/2026/11/28/abc.eml", body, store.PutOptions{})
	b, err := os.ReadFile(filepath.Join(root, "raw", "2026", "11", "28", "abc.eml"))
	if err != nil || string(b) != body {
		t.Fatalf("object file = %q, %v; want %q", b, err, body)
	}
	if names := tmpEntries(t, root); len(names) != 0 {
		t.Errorf(".tmp holds %q after Put", names)
	}
}

func TestCleanTemp(t *testing.T) {
	root := t.TempDir()
	newTestStore(t, root)
	old := time.Now().Add(-2 * time.Hour)
	for _, name := range []string{"put-old", "ping-old", "put-fresh", "other-old"} {
		p := filepath.Join(root, tmpDir, name)
		if err := os.WriteFile(p, []byte("partial"), 0o600); err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(name, "-old") {
			if err := os.Chtimes(p, old, old); err != nil {
				t.Fatal(err)
			}
		}
	}
	lock := filepath.Join(root, lockDir, "00")
	if err := os.WriteFile(lock, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(lock, old, old); err != nil {
		t.Fatal(err)
	}
	newTestStore(t, root)
	if got, want := tmpEntries(t, root), []string{"other-old", "put-fresh"}; !slices.Equal(got, want) {
		t.Errorf(".tmp after New = %q, want %q (crash leftovers gone, live and foreign files kept)", got, want)
	}
	if _, err := os.Stat(lock); err != nil {
		t.Errorf("lock file removed: %v", err)
	}
}

// TestNoTempLeft: every way a Put can fail leaves .tmp empty.
func TestNoTempLeft(t *testing.T) {
	root := t.TempDir()
	s := newTestStore(t, root)
	ctx := t.Context()
	v1 := putString(t, s, "k", "v1", store.PutOptions{})
	putString(t, s, "k", "v2", store.PutOptions{})
	errBoom := errors.New("boom")
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	tests := []struct {
		name string
		ctx  context.Context
		key  string
		body io.Reader
		opts store.PutOptions
	}{
		{"failing body", ctx, "new", io.MultiReader(strings.NewReader("part"), iotestErr(errBoom)), store.PutOptions{}},
		{"cancelled", cancelled, "new", strings.NewReader("x"), store.PutOptions{}},
		{"short body", ctx, "new", strings.NewReader("x"), store.PutOptions{Size: 2}},
		{"create lost", ctx, "k", strings.NewReader("x"), store.PutOptions{IfNoneMatch: true}},
		{"cas lost", ctx, "k", strings.NewReader("x"), store.PutOptions{IfMatch: v1.ETag}},
		{"cas missing", ctx, "missing", strings.NewReader("x"), store.PutOptions{IfMatch: v1.ETag}},
		{"collision", ctx, "k/below", strings.NewReader("x"), store.PutOptions{}},
	}
	for _, tt := range tests {
		if _, err := s.Put(tt.ctx, tt.key, tt.body, tt.opts); err == nil {
			t.Errorf("%s: Put succeeded", tt.name)
		}
		if names := tmpEntries(t, root); len(names) != 0 {
			t.Errorf("%s: .tmp holds %q", tt.name, names)
		}
	}
	// Successful creates remove their temporary name too.
	putString(t, s, "created", "x", store.PutOptions{IfNoneMatch: true})
	if names := tmpEntries(t, root); len(names) != 0 {
		t.Errorf("after create: .tmp holds %q", names)
	}
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

func iotestErr(err error) io.Reader { return errReader{err} }

// TestETagNoReuse: writing, deleting and rewriting identical bytes, which
// makes the filesystem reuse inode numbers, never brings an ETag back.
func TestETagNoReuse(t *testing.T) {
	s := newTestStore(t, t.TempDir())
	ctx := t.Context()
	seen := map[string]int{}
	for i := range 100 {
		obj := putString(t, s, "same", "identical", store.PutOptions{})
		if j, ok := seen[obj.ETag]; ok {
			t.Fatalf("put %d got the ETag %q of put %d", i, obj.ETag, j)
		}
		seen[obj.ETag] = i
		if i%2 == 0 {
			if err := s.Delete(ctx, "same"); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func TestKeyCollision(t *testing.T) {
	s := newTestStore(t, t.TempDir())
	ctx := t.Context()
	putString(t, s, "file", "x", store.PutOptions{})
	putString(t, s, "dir/x", "x", store.PutOptions{})
	for _, tt := range []struct {
		key  string
		opts store.PutOptions
	}{
		{"file/below", store.PutOptions{}},
		{"file/below/deeper", store.PutOptions{IfNoneMatch: true}},
		{"dir", store.PutOptions{}},
		{"dir", store.PutOptions{IfNoneMatch: true}},
		{"dir", store.PutOptions{IfMatch: "x"}},
		{strings.Repeat("n", 300), store.PutOptions{}},
	} {
		_, err := s.Put(ctx, tt.key, strings.NewReader("y"), tt.opts)
		if tt.opts.IfMatch != "" {
			if !errors.Is(err, store.ErrPrecondition) {
				t.Errorf("Put(%.20q, %+v): %v, want ErrPrecondition", tt.key, tt.opts, err)
			}
			continue
		}
		if !errors.Is(err, store.ErrInvalidKey) {
			t.Errorf("Put(%.20q, %+v): %v, want ErrInvalidKey", tt.key, tt.opts, err)
		}
	}
	if _, err := s.Stat(ctx, strings.Repeat("n", 300)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Stat of an overlong name: %v, want ErrNotFound", err)
	}
	if err := s.Delete(ctx, "dir"); err != nil {
		t.Errorf("Delete of a directory name: %v, want nil", err)
	}
	if _, err := s.Stat(ctx, "dir/x"); err != nil {
		t.Errorf("Delete of a directory name removed its contents: %v", err)
	}
}

// TestListSkipsForeign: List yields only what could be an object.
func TestListSkipsForeign(t *testing.T) {
	root := t.TempDir()
	s := newTestStore(t, root)
	putString(t, s, "a/ok", "x", store.PutOptions{})
	for _, name := range []string{`a/back\slash`, "a/.tmp-looking", "a/ctl\x01"} {
		if err := os.WriteFile(filepath.Join(root, name), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(filepath.Join(root, "a", "ok"), filepath.Join(root, "a", "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(root, "empty", "dirs"), 0o700); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for obj, err := range s.List(t.Context(), "") {
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, obj.Key)
	}
	if want := []string{"a/ok"}; !slices.Equal(keys, want) {
		t.Errorf("List = %q, want %q", keys, want)
	}
	for _, prefix := range []string{"../", "/", "a//", "./a", ".tmp/", ".tmp/locks/"} {
		for obj, err := range s.List(t.Context(), prefix) {
			t.Errorf("List(%q) yielded %+v, %v", prefix, obj, err)
		}
	}
}

// TestDirRemovedUnderneath: a cached directory removed by someone else is
// re-created.
func TestDirRemovedUnderneath(t *testing.T) {
	root := t.TempDir()
	s := newTestStore(t, root)
	putString(t, s, "x/y/z", "1", store.PutOptions{})
	if err := os.RemoveAll(filepath.Join(root, "x")); err != nil {
		t.Fatal(err)
	}
	for _, opts := range []store.PutOptions{{}, {IfNoneMatch: true}} {
		if err := os.RemoveAll(filepath.Join(root, "x")); err != nil {
			t.Fatal(err)
		}
		putString(t, s, "x/y/w", "2", opts)
		if _, err := os.Stat(filepath.Join(root, "x", "y", "w")); err != nil {
			t.Fatal(err)
		}
	}
}

// TestDirSyncError: a failing directory fsync fails the Put with
// ErrUnavailable and the cause.
func TestDirSyncError(t *testing.T) {
	s := newTestStore(t, t.TempDir(), WithSync(SyncFiles))
	s.syncDirFn = func(string) error { return &os.PathError{Op: "sync", Path: "dir", Err: syscall.EIO} }
	s.syncers.Clear()
	_, err := s.Put(t.Context(), "new/key", strings.NewReader("x"), store.PutOptions{})
	if !errors.Is(err, store.ErrUnavailable) || !errors.Is(err, syscall.EIO) {
		t.Errorf("Put: %v, want ErrUnavailable wrapping EIO", err)
	}
	if err := s.Delete(t.Context(), "new/key"); err != nil && !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("Delete: %v", err)
	}
}

func TestPingRootGone(t *testing.T) {
	root := filepath.Join(t.TempDir(), "data")
	s := newTestStore(t, root)
	if err := s.Ping(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(root); err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(t.Context()); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("Ping with the root gone: %v, want ErrUnavailable", err)
	}
	if _, err := s.Put(t.Context(), "k", strings.NewReader("x"), store.PutOptions{}); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("Put with the root gone: %v, want ErrUnavailable", err)
	}
}

func TestClassify(t *testing.T) {
	for _, errno := range []syscall.Errno{syscall.EIO, syscall.ENOSPC, syscall.EROFS, syscall.EACCES, syscall.EDQUOT} {
		err := classify(&os.PathError{Op: "write", Path: "x", Err: errno})
		if !errors.Is(err, store.ErrUnavailable) || !errors.Is(err, errno) {
			t.Errorf("classify(%v) = %v, want ErrUnavailable and the errno", errno, err)
		}
	}
	if err := classify(syscall.EINVAL); errors.Is(err, store.ErrUnavailable) {
		t.Errorf("classify(EINVAL) = %v, want no ErrUnavailable", err)
	}
}

// TestGroupCommit: callers arriving while a directory fsync runs wait for
// the next one, which one fsync serves.
func TestGroupCommit(t *testing.T) {
	s := newTestStore(t, t.TempDir())
	started := make(chan int)
	release := make(chan struct{})
	var (
		mu    sync.Mutex
		calls int
	)
	s.syncDirFn = func(string) error {
		mu.Lock()
		calls++
		n := calls
		mu.Unlock()
		started <- n
		<-release
		return nil
	}
	done := make(chan string, 4)
	call := func(name string) {
		if err := s.syncDirGrouped("d"); err != nil {
			t.Error(err)
		}
		done <- name
	}
	go call("A")
	if n := <-started; n != 1 {
		t.Fatalf("first fsync is call %d", n)
	}
	for _, name := range []string{"B", "C", "D"} {
		go call(name)
	}
	v, _ := s.syncers.Load("d")
	waitJoined(t, v.(*dirSyncer), 3)
	release <- struct{}{} // fsync 1 ends: only A may return
	if got := <-done; got != "A" {
		t.Fatalf("%s returned after the fsync that started before it", got)
	}
	if n := <-started; n != 2 {
		t.Fatalf("second fsync is call %d", n)
	}
	select {
	case name := <-done:
		t.Fatalf("%s returned before its fsync ended", name)
	default:
	}
	release <- struct{}{}
	var rest []string
	for range 3 {
		rest = append(rest, <-done)
	}
	slices.Sort(rest)
	if !slices.Equal(rest, []string{"B", "C", "D"}) {
		t.Errorf("returned %q", rest)
	}
	mu.Lock()
	defer mu.Unlock()
	if calls != 2 {
		t.Errorf("%d fsyncs for 4 callers, want 2", calls)
	}
}

// TestConcurrentSameDir: many Puts into one directory with real fsyncs,
// grouped, all land.
func TestConcurrentSameDir(t *testing.T) {
	s := newTestStore(t, t.TempDir())
	ctx := t.Context()
	var wg sync.WaitGroup
	for w := range 32 {
		wg.Go(func() {
			for i := range 8 {
				key := fmt.Sprintf("raw/%02d-%d", w, i)
				if _, err := s.Put(ctx, key, strings.NewReader(key), store.PutOptions{IfNoneMatch: i%2 == 0}); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	n := 0
	for obj, err := range s.List(ctx, "raw/") {
		if err != nil {
			t.Fatal(err)
		}
		rc, _, err := s.Get(ctx, obj.Key)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(rc)
		rc.Close()
		if !bytes.Equal(b, []byte(obj.Key)) {
			t.Errorf("%s holds %q", obj.Key, b)
		}
		n++
	}
	if n != 32*8 {
		t.Errorf("listed %d objects, want %d", n, 32*8)
	}
}

func TestGetIsFile(t *testing.T) {
	s := newTestStore(t, t.TempDir())
	putString(t, s, "k", "v", store.PutOptions{})
	rc, _, err := s.Get(t.Context(), "k")
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if _, ok := rc.(*os.File); !ok {
		t.Errorf("Get returned a %T, want *os.File", rc)
	}
}

// TestStamp: Put stamps files with the store's clock, strictly increasing
// even when the clock stands still, so ETags differ although the kernel
// reuses inode numbers and its own timestamps may be coarse.
func TestStamp(t *testing.T) {
	s := newTestStore(t, t.TempDir())
	frozen := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	s.now = func() time.Time { return frozen }
	seen := map[string]bool{}
	for i := range 50 {
		obj := putString(t, s, "k", "same", store.PutOptions{})
		if want := frozen.Add(time.Duration(i)); !obj.ModTime.Equal(want) {
			t.Fatalf("put %d: ModTime %v, want %v", i, obj.ModTime, want)
		}
		if seen[obj.ETag] {
			t.Fatalf("put %d: ETag %q again", i, obj.ETag)
		}
		seen[obj.ETag] = true
		if st, err := s.Stat(t.Context(), "k"); err != nil || st.ETag != obj.ETag {
			t.Fatalf("Stat = %+v, %v; want ETag %q", st, err, obj.ETag)
		}
	}
}

// TestContractNoHardLinks runs the contract on a filesystem without hard
// links, where IfNoneMatch falls back to the lock.
func TestContractNoHardLinks(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s := newTestStore(t, t.TempDir(), WithSync(SyncFiles))
		s.noTmpfile.Store(true)
		s.renameNoReplaceFn = noRenameNoReplace
		s.linkFn = func(oldname, newname string) error {
			return &os.LinkError{Op: "link", Old: oldname, New: newname, Err: syscall.EPERM}
		}
		return s
	})
}

// TestContractLink runs the contract where renameat2(RENAME_NOREPLACE) is
// missing, so that IfNoneMatch links and unlinks.
func TestContractLink(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s := newTestStore(t, t.TempDir())
		s.noTmpfile.Store(true)
		s.renameNoReplaceFn = noRenameNoReplace
		return s
	})
}

// TestContractNamed runs the contract without unnamed temporary files
// (no O_TMPFILE or no /proc): IfNoneMatch renames with RENAME_NOREPLACE.
func TestContractNamed(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s := newTestStore(t, t.TempDir())
		s.noTmpfile.Store(true)
		return s
	})
}

// TestTmpfileProbe: where unnamed files cannot be linked, New turns them
// off and IfNoneMatch still works; on this machine they are on.
func TestTmpfileProbe(t *testing.T) {
	s := newTestStore(t, t.TempDir())
	if s.noTmpfile.Load() {
		t.Skip("no O_TMPFILE or /proc here")
	}
	failing, err := New(t.TempDir(), func(s *Store) {
		s.linkTmpfileFn = func(*os.File, string) error { return syscall.ENOENT }
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { failing.Close() })
	if !failing.noTmpfile.Load() {
		t.Error("a failing probe left unnamed files on")
	}
	putString(t, failing, "a/b", "x", store.PutOptions{IfNoneMatch: true})
	if _, err := failing.Put(t.Context(), "a/b", strings.NewReader("y"), store.PutOptions{IfNoneMatch: true}); !errors.Is(err, store.ErrPrecondition) {
		t.Errorf("second IfNoneMatch Put: %v, want ErrPrecondition", err)
	}
}

func noRenameNoReplace(oldname, newname string) error {
	return &os.LinkError{Op: "renameat2", Old: oldname, New: newname, Err: syscall.EINVAL}
}

func TestSymlinkIsNotObject(t *testing.T) {
	root := t.TempDir()
	s := newTestStore(t, root)
	putString(t, s, "real", "x", store.PutOptions{})
	if err := os.Symlink(filepath.Join(root, "real"), filepath.Join(root, "link")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Get(t.Context(), "link"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get of a symlink: %v, want ErrNotFound", err)
	}
	if _, err := s.Stat(t.Context(), "link"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Stat of a symlink: %v, want ErrNotFound", err)
	}
}

// newSyncFSStore returns a SyncFS store whose syncfs is f, or skips.
func newSyncFSStore(t *testing.T, f func() error, opts ...Option) *Store {
	t.Helper()
	s, err := New(t.TempDir(), append([]Option{WithSync(SyncFS)}, opts...)...)
	if err != nil {
		t.Skipf("no syncfs here: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	s.syncFSFn = f
	return s
}

// TestSyncFSBarrier: concurrent Puts share syncfs calls (far fewer than
// two per Put), and each Put has a whole syncfs between its start and its
// rename (its data is durable before it is visible) and another between
// its rename and its return (the rename is durable before it returns).
func TestSyncFSBarrier(t *testing.T) {
	var (
		mu     sync.Mutex
		seq    int
		syncs  [][2]int           // start and end of each syncfs
		renams = map[string]int{} // key -> when it was renamed or linked in
	)
	tick := func() int { seq++; return seq }
	s := newSyncFSStore(t, func() error {
		mu.Lock()
		i := len(syncs)
		syncs = append(syncs, [2]int{tick(), 0})
		mu.Unlock()
		time.Sleep(2 * time.Millisecond) // a slow disk
		mu.Lock()
		syncs[i][1] = tick()
		mu.Unlock()
		return nil
	})
	moved := func(f func(string, string) error) func(string, string) error {
		return func(oldname, newname string) error {
			err := f(oldname, newname)
			rel, _ := filepath.Rel(s.Root(), newname)
			mu.Lock()
			renams[filepath.ToSlash(rel)] = tick()
			mu.Unlock()
			return err
		}
	}
	s.renameFn, s.linkFn, s.renameNoReplaceFn = moved(os.Rename), moved(os.Link), moved(renameNoReplace)
	s.linkTmpfileFn = func(f *os.File, newname string) error {
		return moved(func(_, n string) error { return linkTmpfile(f, n) })("", newname)
	}

	const n = 64
	var wg sync.WaitGroup
	spans := make([][2]int, n) // Put called, Put returned
	for i := range n {
		wg.Go(func() {
			key := fmt.Sprintf("k/%02d", i)
			mu.Lock()
			spans[i][0] = tick()
			mu.Unlock()
			putString(t, s, key, key, store.PutOptions{IfNoneMatch: i%2 == 0})
			mu.Lock()
			spans[i][1] = tick()
			mu.Unlock()
		})
	}
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if len(syncs) >= n {
		t.Errorf("%d syncfs calls for %d Puts, want grouping (fewer than %d)", len(syncs), n, n)
	}
	t.Logf("%d syncfs calls for %d Puts", len(syncs), n)
	within := func(from, to int) bool {
		for _, sy := range syncs {
			if sy[0] > from && sy[1] < to {
				return true
			}
		}
		return false
	}
	for i, sp := range spans {
		key := fmt.Sprintf("k/%02d", i)
		r, ok := renams[key]
		if !ok {
			t.Fatalf("%s never renamed", key)
		}
		if !within(sp[0], r) {
			t.Errorf("%s: no syncfs between Put and rename: its data may not be durable when it becomes visible", key)
		}
		if !within(r, sp[1]) {
			t.Errorf("%s: no syncfs between rename and return: Put returned before its rename was durable", key)
		}
	}

	// Delete waits for a syncfs that starts after its unlink; a Lazy Put
	// waits only for the one before its rename.
	before := len(syncs)
	mu.Unlock()
	if err := s.Delete(t.Context(), "k/00"); err != nil {
		t.Fatal(err)
	}
	putString(t, s, "k/lazy", "x", store.PutOptions{Lazy: true})
	mu.Lock()
	if got := len(syncs) - before; got != 2 {
		t.Errorf("Delete and a Lazy Put made %d syncfs calls, want 1 each", got)
	}
}

// TestSyncFSError: a failed syncfs fails the Put before its object becomes
// visible, and fails every operation that started before it, even if its
// own syncfs then succeeds (the kernel reports a write-back error once).
func TestSyncFSError(t *testing.T) {
	var fail atomic.Bool
	s := newSyncFSStore(t, func() error {
		if fail.Load() {
			return &os.PathError{Op: "syncfs", Path: "root", Err: syscall.EIO}
		}
		return nil
	})
	fail.Store(true)
	_, err := s.Put(t.Context(), "a/b", strings.NewReader("x"), store.PutOptions{})
	if !errors.Is(err, store.ErrUnavailable) || !errors.Is(err, syscall.EIO) {
		t.Errorf("Put: %v, want ErrUnavailable wrapping EIO", err)
	}
	if _, err := s.Stat(t.Context(), "a/b"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Stat after a failed Put: %v, want ErrNotFound", err)
	}
	if left := tmpEntries(t, s.Root()); len(left) > 0 {
		t.Errorf("temporary files left: %q", left)
	}

	fail.Store(false)
	gen := s.syncErrs.Load()
	fail.Store(true)
	if err := s.barrier(gen); err == nil {
		t.Fatal("barrier with a failing syncfs succeeded")
	}
	fail.Store(false)
	if err := s.barrier(gen); !errors.Is(err, syscall.EIO) {
		t.Errorf("barrier of an operation older than a failed syncfs: %v, want EIO", err)
	}
	if err := s.barrier(s.syncErrs.Load()); err != nil {
		t.Errorf("barrier of a newer operation: %v", err)
	}
	putString(t, s, "a/b", "y", store.PutOptions{})
}

func TestSyncModeAuto(t *testing.T) {
	s := newTestStore(t, t.TempDir())
	want := SyncFiles
	if kernelAtLeast(5, 8) {
		want = SyncFS
	}
	if s.Mode() != want {
		t.Errorf("SyncAuto chose %s, want %s on this kernel", s.Mode(), want)
	}
}

// TestPutAll: a batch reads its bodies in order, places them in order,
// costs two syncfs calls in all, and on a failed precondition leaves the
// earlier objects placed and no temporary file behind.
func TestPutAll(t *testing.T) {
	for _, m := range []SyncMode{SyncFS, SyncFiles} {
		t.Run(m.String(), func(t *testing.T) {
			s, err := New(t.TempDir(), WithSync(m))
			if err != nil {
				t.Skipf("%s: %v", m, err)
			}
			t.Cleanup(func() { s.Close() })
			var syncs atomic.Int32
			real := s.syncFSFn
			s.syncFSFn = func() error { syncs.Add(1); return real() }
			var order []string
			s.renameFn = func(o, n string) error { order = append(order, filepath.Base(n)); return os.Rename(o, n) }
			s.renameNoReplaceFn = func(o, n string) error { order = append(order, filepath.Base(n)); return renameNoReplace(o, n) }
			s.linkTmpfileFn = func(f *os.File, n string) error { order = append(order, filepath.Base(n)); return linkTmpfile(f, n) }
			first := strings.NewReader("first")
			second := readerFunc(func(p []byte) (int, error) {
				if first.Len() != 0 {
					t.Error("second body read before the first was read to the end")
				}
				return 0, io.EOF
			})
			objs, err := s.PutAll(t.Context(), []store.PutRequest{
				{Key: "x/a", Body: first, Opts: store.PutOptions{IfNoneMatch: true, Lazy: true}},
				{Key: "y/b", Body: second},
			})
			if err != nil {
				t.Fatal(err)
			}
			if len(objs) != 2 || objs[0].Key != "x/a" || objs[0].Size != 5 || objs[1].Size != 0 {
				t.Errorf("objects %+v", objs)
			}
			if !slices.Equal(order, []string{"a", "b"}) {
				t.Errorf("placed %q, want a then b", order)
			}
			if n := syncs.Load(); m == SyncFS && n != 2 {
				t.Errorf("%d syncfs calls for a batch, want 2", n)
			}
			_, err = s.PutAll(t.Context(), []store.PutRequest{
				{Key: "x/c", Body: strings.NewReader("c")},
				{Key: "x/a", Body: strings.NewReader("again"), Opts: store.PutOptions{IfNoneMatch: true}},
			})
			if !errors.Is(err, store.ErrPrecondition) {
				t.Errorf("PutAll onto an existing key: %v, want ErrPrecondition", err)
			}
			if got := readKey(t, s, "x/a"); got != "first" {
				t.Errorf("x/a = %q", got)
			}
			if left := tmpEntries(t, s.Root()); len(left) > 0 {
				t.Errorf("temporary files left: %q", left)
			}
		})
	}
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

// errAfter yields its chunks one Read at a time, then err.
type errAfter struct {
	chunks []string
	err    error
}

func (e *errAfter) Read(p []byte) (int, error) {
	if len(e.chunks) == 0 {
		return 0, e.err
	}
	n := copy(p, e.chunks[0])
	e.chunks = e.chunks[1:]
	return n, nil
}

// A body made of several small reads is stored whole; a body that fails
// part way, even with io.ErrUnexpectedEOF (which io.ReadFull would take
// for a short ending), stores nothing.
func TestPutBodyReads(t *testing.T) {
	root := t.TempDir()
	s := newTestStore(t, root)
	ctx := context.Background()
	body := io.MultiReader(strings.NewReader("Received: by mailhook\r\n"), strings.NewReader("Subject: x\r\n\r\n"), strings.NewReader("hi\r\n"))
	if _, err := s.Put(ctx, "raw/a.eml", body, store.PutOptions{Size: -1}); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(root, "raw", "a.eml")); err != nil || string(b) != "Received: by mailhook\r\nSubject: x\r\n\r\nhi\r\n" {
		t.Errorf("stored %q, %v", b, err)
	}
	for _, bad := range []error{io.ErrUnexpectedEOF, errors.New("connection reset")} {
		_, err := s.Put(ctx, "raw/b.eml", &errAfter{chunks: []string{"Subject: x\r\n", "\r\npart"}, err: bad}, store.PutOptions{Size: -1})
		if !errors.Is(err, bad) {
			t.Errorf("Put with a body failing with %v: err = %v", bad, err)
		}
		if _, err := os.Stat(filepath.Join(root, "raw", "b.eml")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("a failed body was stored (%v)", err)
		}
	}
	if names := tmpEntries(t, root); len(names) != 0 {
		t.Errorf(".tmp holds %q", names)
	}
}

// A conditional delete of a key and a move onto that key exclude each
// other: the delete checks the old object and then unlinks whatever is
// there, so a move landing in between would be the one removed (a replay
// deleting the dead letter it read while the replayed delivery failed
// again and was moved back into failed/).
func TestDeleteIfMatchAndMoveOntoTheKey(t *testing.T) {
	s, err := New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	ctx := t.Context()
	old, err := s.Put(ctx, "failed/k", strings.NewReader("the dead letter read"), store.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx, "pending/k", strings.NewReader("replayed"), store.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	moved := make(chan error, 1)
	testHookDeleteChecked = func(string) {
		go func() {
			_, err := s.MoveAppend(ctx, "pending/k", "failed/k", []byte("\nfailed again"), store.MoveOptions{})
			moved <- err
		}()
		time.Sleep(50 * time.Millisecond) // time for the move, were it not excluded
	}
	t.Cleanup(func() { testHookDeleteChecked = nil })
	if err := s.DeleteIfMatch(ctx, "failed/k", old.ETag); err != nil {
		t.Fatalf("DeleteIfMatch: %v", err)
	}
	testHookDeleteChecked = nil
	if err := <-moved; err != nil {
		t.Fatalf("MoveAppend: %v", err)
	}
	rc, _, err := s.Get(ctx, "failed/k")
	if err != nil {
		t.Fatalf("the moved record is gone: %v", err)
	}
	defer rc.Close()
	if b, _ := io.ReadAll(rc); string(b) != "replayed\nfailed again" {
		t.Errorf("failed/k = %q, want the moved record", b)
	}
}
