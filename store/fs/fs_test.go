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
	"syscall"
	"testing"
	"time"

	"github.com/mailhook/mailhook/store"
	"github.com/mailhook/mailhook/store/storetest"
)

func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return newTestStore(t, t.TempDir()) })
}

func newTestStore(t *testing.T, root string) *Store {
	t.Helper()
	s, err := New(root)
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

// tmpEntries lists <root>/.tmp except the locks directory.
func tmpEntries(t *testing.T, root string) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(root, tmpDir))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		if e.Name() != "locks" {
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
	s := newTestStore(t, t.TempDir())
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
	d := v.(*dirSyncer)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		d.mu.Lock()
		joined := 0
		if d.next != nil {
			joined = d.next.joined
		}
		d.mu.Unlock()
		if joined == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d callers joined the next round, want 3", joined)
		}
	}
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
		s := newTestStore(t, t.TempDir())
		s.linkFn = func(oldname, newname string) error {
			return &os.LinkError{Op: "link", Old: oldname, New: newname, Err: syscall.EPERM}
		}
		return s
	})
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
