// Package storetest is the contract suite every store.Store backend runs.
//
// A backend's test calls Run with a constructor that returns a fresh, empty
// store for each subtest (a new directory, a new bucket prefix, ...):
//
//	func TestContract(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) store.Store { ... })
//	}
//
// The suite checks every promise written in package store: byte-exact
// round trips, ETags and conditional writes (also under concurrency),
// ErrNotFound, List order and prefix semantics, key validation, failed
// bodies storing nothing, cancellation, and concurrent use. Run it with
// -race. It never depends on how a backend lays objects out.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/mailhook/mailhook/store"
)

// Run runs the contract suite. newStore is called once per subtest, from
// subtests that run in parallel, and must return an empty store of its
// own; it registers its own cleanup with t.Cleanup.
func Run(t *testing.T, newStore func(t *testing.T) store.Store) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"RoundTrip", testRoundTrip},
		{"Size", testSize},
		{"SizeMismatch", testSizeMismatch},
		{"Overwrite", testOverwrite},
		{"ReadWhileOverwrite", testReadWhileOverwrite},
		{"AtomicOverwrite", testAtomicOverwrite},
		{"IfNoneMatch", testIfNoneMatch},
		{"IfNoneMatchConcurrent", testIfNoneMatchConcurrent},
		{"IfMatch", testIfMatch},
		{"IfMatchConcurrent", testIfMatchConcurrent},
		{"NotFound", testNotFound},
		{"Delete", testDelete},
		{"DeleteIfMatch", testDeleteIfMatch},
		{"List", testList},
		{"ListLarge", testListLarge},
		{"InvalidKey", testInvalidKey},
		{"FailingBody", testFailingBody},
		{"Cancelled", testCancelled},
		{"Ping", testPing},
		{"Concurrent", testConcurrent},
		{"MoveAppend", testMoveAppend},
		{"AppendIfMatch", testAppendIfMatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel() // each subtest has a store of its own
			tt.fn(t, newStore(t))
		})
	}
}

// errBody is what failing bodies return.
var errBody = errors.New("storetest: body failed")

func testRoundTrip(t *testing.T, s store.Store) {
	ctx := t.Context()
	nul := make([]byte, 0, 512)
	for i := range 512 {
		nul = append(nul, byte(i%256), 0)
	}
	tests := []struct {
		name string
		key  string
		body func() io.Reader
		want []byte
	}{
		{"empty", "rt/empty", func() io.Reader { return bytes.NewReader(nil) }, []byte{}},
		{"one byte", "rt/one", func() io.Reader { return strings.NewReader("x") }, []byte("x")},
		{"binary", "rt/binary", func() io.Reader { return bytes.NewReader(nul) }, nul},
		{"5MB streamed", "rt/deep/er/big.eml", func() io.Reader { return newPattern(5 << 20) }, readAll(t, newPattern(5<<20))},
		{"top level", "top", func() io.Reader { return strings.NewReader("top level") }, []byte("top level")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			put, err := s.Put(ctx, tt.key, tt.body(), store.PutOptions{Size: -1, ContentType: "application/octet-stream"})
			if err != nil {
				t.Fatalf("Put: %v", err)
			}
			if put.Key != tt.key || put.Size != int64(len(tt.want)) || put.ETag == "" || put.ModTime.IsZero() {
				t.Errorf("Put = %+v, want key %q, size %d, an ETag and a ModTime", put, tt.key, len(tt.want))
			}
			got, obj := get(t, s, tt.key)
			if !bytes.Equal(got, tt.want) {
				t.Errorf("Get returned %d bytes, want %d (contents differ)", len(got), len(tt.want))
			}
			if obj.Key != tt.key || obj.Size != put.Size || obj.ETag != put.ETag {
				t.Errorf("Get object = %+v, want key, size and ETag of Put %+v", obj, put)
			}
			st, err := s.Stat(ctx, tt.key)
			if err != nil {
				t.Fatalf("Stat: %v", err)
			}
			if st.Key != tt.key || st.Size != put.Size || st.ETag != put.ETag || st.ModTime.IsZero() {
				t.Errorf("Stat = %+v, want key, size and ETag of Put %+v", st, put)
			}
		})
	}
}

func testSize(t *testing.T, s store.Store) {
	ctx := t.Context()
	body := []byte("hello, world\r\n")
	for _, size := range []int64{int64(len(body)), -1, 0} {
		key := "size/" + strconv.FormatInt(size, 10)
		// 0 with a non-empty body means "unknown" (the zero PutOptions).
		put, err := s.Put(ctx, key, onlyReader{bytes.NewReader(body)}, store.PutOptions{Size: size})
		if err != nil {
			t.Fatalf("Put Size=%d: %v", size, err)
		}
		if put.Size != int64(len(body)) {
			t.Errorf("Put Size=%d: object size %d, want %d", size, put.Size, len(body))
		}
		if got, _ := get(t, s, key); !bytes.Equal(got, body) {
			t.Errorf("Put Size=%d: Get = %q, want %q", size, got, body)
		}
	}
	if _, err := s.Put(ctx, "size/zero-empty", strings.NewReader(""), store.PutOptions{}); err != nil {
		t.Fatalf("Put empty with Size 0: %v", err)
	}
	if got, _ := get(t, s, "size/zero-empty"); len(got) != 0 {
		t.Errorf("Get = %q, want empty", got)
	}
}

func testSizeMismatch(t *testing.T, s store.Store) {
	ctx := t.Context()
	for _, size := range []int64{5, 50} { // body has 10 bytes
		key := "mismatch/" + strconv.FormatInt(size, 10)
		_, err := s.Put(ctx, key, onlyReader{strings.NewReader("0123456789")}, store.PutOptions{Size: size})
		if err == nil {
			t.Errorf("Put of 10 bytes with Size=%d succeeded, want an error", size)
		}
		assertMissing(t, s, key)
	}
}

func testOverwrite(t *testing.T, s store.Store) {
	ctx := t.Context()
	v1 := put(t, s, "ow/key", "version one", store.PutOptions{})
	v2 := put(t, s, "ow/key", "version two, longer", store.PutOptions{})
	if v1.ETag == v2.ETag {
		t.Errorf("overwrite kept ETag %q", v1.ETag)
	}
	if got, obj := get(t, s, "ow/key"); string(got) != "version two, longer" || obj.ETag != v2.ETag {
		t.Errorf("Get = %q %+v, want version two with ETag %q", got, obj, v2.ETag)
	}
	if st, err := s.Stat(ctx, "ow/key"); err != nil || st.ETag != v2.ETag || st.Size != v2.Size {
		t.Errorf("Stat = %+v, %v; want %+v", st, err, v2)
	}
}

// testReadWhileOverwrite: a reader opened before an overwrite keeps seeing
// the old object in full.
func testReadWhileOverwrite(t *testing.T, s store.Store) {
	ctx := t.Context()
	old := bytes.Repeat([]byte("old!"), 256<<10) // 1 MiB
	if _, err := s.Put(ctx, "rwo/key", bytes.NewReader(old), store.PutOptions{Size: int64(len(old))}); err != nil {
		t.Fatal(err)
	}
	rc, _, err := s.Get(ctx, "rwo/key")
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	head := make([]byte, 1000)
	if _, err := io.ReadFull(rc, head); err != nil {
		t.Fatal(err)
	}
	put(t, s, "rwo/key", "new", store.PutOptions{})
	rest, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	if got := append(head, rest...); !bytes.Equal(got, old) {
		t.Errorf("reader opened before overwrite returned %d bytes that are not the old object", len(got))
	}
}

// testAtomicOverwrite: readers racing a writer see one whole object or the
// other, never a mix or a part.
func testAtomicOverwrite(t *testing.T, s store.Store) {
	ctx := t.Context()
	const n = 64 << 10
	a, b := bytes.Repeat([]byte{'a'}, n), bytes.Repeat([]byte{'b'}, n)
	if _, err := s.Put(ctx, "atomic/key", bytes.NewReader(a), store.PutOptions{Size: n}); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(done)
		for i := range 20 {
			body := a
			if i%2 == 0 {
				body = b
			}
			if _, err := s.Put(ctx, "atomic/key", bytes.NewReader(body), store.PutOptions{Size: n}); err != nil {
				t.Errorf("Put: %v", err)
				return
			}
		}
	})
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				got, _ := get(t, s, "atomic/key")
				if !bytes.Equal(got, a) && !bytes.Equal(got, b) {
					t.Errorf("reader saw %d bytes that are neither whole version", len(got))
					return
				}
			}
		})
	}
	wg.Wait()
}

func testIfNoneMatch(t *testing.T, s store.Store) {
	ctx := t.Context()
	first := put(t, s, "inm/key", "first", store.PutOptions{IfNoneMatch: true})
	_, err := s.Put(ctx, "inm/key", strings.NewReader("second"), store.PutOptions{IfNoneMatch: true})
	if !errors.Is(err, store.ErrPrecondition) {
		t.Fatalf("second create: err = %v, want ErrPrecondition", err)
	}
	if got, obj := get(t, s, "inm/key"); string(got) != "first" || obj.ETag != first.ETag {
		t.Errorf("after losing create: Get = %q %+v, want first object %+v", got, obj, first)
	}
	if err := s.Delete(ctx, "inm/key"); err != nil {
		t.Fatal(err)
	}
	put(t, s, "inm/key", "after delete", store.PutOptions{IfNoneMatch: true})
	if got, _ := get(t, s, "inm/key"); string(got) != "after delete" {
		t.Errorf("create after delete: Get = %q", got)
	}
}

func testIfNoneMatchConcurrent(t *testing.T, s store.Store) {
	ctx := t.Context()
	const n = 20
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		winners []string
	)
	for i := range n {
		wg.Go(func() {
			body := fmt.Sprintf("creator %d", i)
			_, err := s.Put(ctx, "inm/race", strings.NewReader(body), store.PutOptions{IfNoneMatch: true, Size: int64(len(body))})
			switch {
			case err == nil:
				mu.Lock()
				winners = append(winners, body)
				mu.Unlock()
			case !errors.Is(err, store.ErrPrecondition):
				t.Errorf("creator %d: %v, want nil or ErrPrecondition", i, err)
			}
		})
	}
	wg.Wait()
	if len(winners) != 1 {
		t.Fatalf("%d creators won (%q), want exactly 1", len(winners), winners)
	}
	if got, _ := get(t, s, "inm/race"); string(got) != winners[0] {
		t.Errorf("stored %q, want the winner's %q", got, winners[0])
	}
}

func testIfMatch(t *testing.T, s store.Store) {
	ctx := t.Context()
	v1 := put(t, s, "im/key", "v1", store.PutOptions{})
	v2 := put(t, s, "im/key", "v2", store.PutOptions{IfMatch: v1.ETag})
	if v2.ETag == v1.ETag {
		t.Errorf("CAS kept ETag %q", v1.ETag)
	}
	for _, etag := range []string{v1.ETag, "not-an-etag", `"0"`} {
		_, err := s.Put(ctx, "im/key", strings.NewReader("stale"), store.PutOptions{IfMatch: etag})
		if !errors.Is(err, store.ErrPrecondition) {
			t.Errorf("Put IfMatch %q (stale): err = %v, want ErrPrecondition", etag, err)
		}
	}
	if got, obj := get(t, s, "im/key"); string(got) != "v2" || obj.ETag != v2.ETag {
		t.Errorf("after stale CAS: Get = %q %+v, want v2 %+v", got, obj, v2)
	}
	_, err := s.Put(ctx, "im/missing", strings.NewReader("x"), store.PutOptions{IfMatch: v2.ETag})
	if !errors.Is(err, store.ErrPrecondition) {
		t.Errorf("Put IfMatch on a missing key: err = %v, want ErrPrecondition", err)
	}
	assertMissing(t, s, "im/missing")
	// The ETag of a deleted object does not match a new one.
	if err := s.Delete(ctx, "im/key"); err != nil {
		t.Fatal(err)
	}
	put(t, s, "im/key", "v3", store.PutOptions{})
	if _, err := s.Put(ctx, "im/key", strings.NewReader("stale"), store.PutOptions{IfMatch: v2.ETag}); !errors.Is(err, store.ErrPrecondition) {
		t.Errorf("Put IfMatch with the ETag of a deleted object: err = %v, want ErrPrecondition", err)
	}
}

// IncrementCAS adds 1 to the decimal counter stored under key with
// read-modify-write IfMatch, retrying lost races. The key must exist.
// It is exported so backends can drive it from other processes.
func IncrementCAS(ctx context.Context, s store.Store, key string) (retries int, err error) {
	for {
		rc, obj, err := s.Get(ctx, key)
		if err != nil {
			return retries, err
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			return retries, err
		}
		n, err := strconv.Atoi(string(b))
		if err != nil {
			return retries, fmt.Errorf("counter %q: %w", b, err)
		}
		next := strconv.Itoa(n + 1)
		_, err = s.Put(ctx, key, strings.NewReader(next), store.PutOptions{IfMatch: obj.ETag, Size: int64(len(next))})
		if err == nil {
			return retries, nil
		}
		if !errors.Is(err, store.ErrPrecondition) {
			return retries, err
		}
		retries++
	}
}

func testIfMatchConcurrent(t *testing.T, s store.Store) {
	ctx := t.Context()
	const workers, each = 20, 5
	put(t, s, "im/counter", "0", store.PutOptions{})
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range each {
				if _, err := IncrementCAS(ctx, s, "im/counter"); err != nil {
					t.Errorf("increment: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	if got, _ := get(t, s, "im/counter"); string(got) != strconv.Itoa(workers*each) {
		t.Errorf("counter = %s after %d increments: lost updates", got, workers*each)
	}
}

func testNotFound(t *testing.T, s store.Store) {
	ctx := t.Context()
	put(t, s, "nf/present", "x", store.PutOptions{})
	for _, key := range []string{"nf/absent", "absent", "nf/present/below", "nf"} {
		assertMissing(t, s, key)
		if err := s.Delete(ctx, key); err != nil {
			t.Errorf("Delete(%q) of a missing key: %v, want nil", key, err)
		}
	}
}

func testDelete(t *testing.T, s store.Store) {
	ctx := t.Context()
	put(t, s, "del/a", "a", store.PutOptions{})
	put(t, s, "del/b", "b", store.PutOptions{})
	if err := s.Delete(ctx, "del/a"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	assertMissing(t, s, "del/a")
	if err := s.Delete(ctx, "del/a"); err != nil {
		t.Errorf("second Delete: %v, want nil", err)
	}
	if got, _ := get(t, s, "del/b"); string(got) != "b" {
		t.Errorf("sibling after Delete: %q", got)
	}
	if keys := listKeys(t, s, "del/"); !slices.Equal(keys, []string{"del/b"}) {
		t.Errorf("List after Delete = %q, want [del/b]", keys)
	}
	// A lazy delete (store.DeleteLazy: the store's own, or Delete) is as
	// visible at once.
	if err := store.DeleteLazy(ctx, s, "del/b"); err != nil {
		t.Fatalf("DeleteLazy: %v", err)
	}
	assertMissing(t, s, "del/b")
	if err := store.DeleteLazy(ctx, s, "del/b"); err != nil {
		t.Errorf("second DeleteLazy: %v, want nil", err)
	}
}

// testDeleteIfMatch: a store that deletes conditionally removes only the
// version named; one that cannot is not a ConditionalDeleter.
func testDeleteIfMatch(t *testing.T, s store.Store) {
	if _, ok := s.(store.ConditionalDeleter); !ok {
		t.Skip("not a store.ConditionalDeleter")
	}
	ctx := t.Context()
	first := put(t, s, "cd/a", "one", store.PutOptions{})
	second := put(t, s, "cd/a", "two", store.PutOptions{IfMatch: first.ETag})
	if err := store.DeleteIfMatch(ctx, s, "cd/a", first.ETag); !errors.Is(err, store.ErrPrecondition) {
		t.Fatalf("DeleteIfMatch of a replaced version: %v, want ErrPrecondition", err)
	}
	if got, _ := get(t, s, "cd/a"); string(got) != "two" {
		t.Fatalf("after a refused delete: %q, want the second version kept", got)
	}
	if err := store.DeleteIfMatch(ctx, s, "cd/a", second.ETag); err != nil {
		t.Fatalf("DeleteIfMatch of the current version: %v", err)
	}
	assertMissing(t, s, "cd/a")
	if err := store.DeleteIfMatch(ctx, s, "cd/a", second.ETag); err != nil {
		t.Errorf("DeleteIfMatch of a missing key: %v, want nil", err)
	}
}

func testList(t *testing.T, s store.Store) {
	// No key is also a strict "dir/" prefix of another: a filesystem cannot
	// hold both a file and a directory under one name.
	keys := []string{
		"x-1", "x.2", "x/a", "x/b/c", "x/bc/d", "x/b-d", "x/b.e/f", "x0", "xa",
		"y/z/w/v", "y/z/w0", "z",
	}
	objs := map[string]store.Object{}
	for i, k := range slices.Backward(keys) { // insertion order must not matter
		objs[k] = put(t, s, k, strings.Repeat("k", i+1), store.PutOptions{})
	}
	sorted := slices.Sorted(slices.Values(keys))
	tests := []struct {
		prefix string
		want   []string
	}{
		{"", sorted},
		{"x", []string{"x-1", "x.2", "x/a", "x/b-d", "x/b.e/f", "x/b/c", "x/bc/d", "x0", "xa"}},
		{"x/", []string{"x/a", "x/b-d", "x/b.e/f", "x/b/c", "x/bc/d"}},
		{"x/b", []string{"x/b-d", "x/b.e/f", "x/b/c", "x/bc/d"}},
		{"x/b/", []string{"x/b/c"}},
		{"x/b/c", []string{"x/b/c"}},
		{"x/bc", []string{"x/bc/d"}},
		{"y/z/w", []string{"y/z/w/v", "y/z/w0"}},
		{"y/z/w/", []string{"y/z/w/v"}},
		{"y/z/w/v/", nil},
		{"z", []string{"z"}},
		{"nothing", nil},
		{"x/nothing/", nil},
		{"x/a/b", nil},
	}
	for _, tt := range tests {
		got := listKeys(t, s, tt.prefix)
		if !slices.Equal(got, tt.want) {
			t.Errorf("List(%q) = %q, want %q", tt.prefix, got, tt.want)
		}
		// store.ListKeys: the store's own when it is a KeyLister.
		var keys []string
		for k, err := range store.ListKeys(t.Context(), s, tt.prefix) {
			if err != nil {
				t.Fatal(err)
			}
			keys = append(keys, k)
		}
		if !slices.Equal(keys, tt.want) {
			t.Errorf("ListKeys(%q) = %q, want %q", tt.prefix, keys, tt.want)
		}
		// store.ListKeysAfter: the store's own when it is an AfterLister.
		for _, after := range append([]string{"a", "x/b", "x/b/", "x/b/d", "x/b0", "y", "zz"}, sorted...) {
			var want []string
			for _, k := range tt.want {
				if k > after {
					want = append(want, k)
				}
			}
			if got := listKeysAfter(t, s, tt.prefix, after); !slices.Equal(got, want) {
				t.Errorf("ListKeysAfter(%q, %q) = %q, want %q", tt.prefix, after, got, want)
			}
		}
	}
	for obj, err := range s.List(t.Context(), "") {
		if err != nil {
			t.Fatal(err)
		}
		if want := objs[obj.Key]; obj.Size != want.Size || obj.ETag != want.ETag || obj.ModTime.IsZero() {
			t.Errorf("List yielded %+v, want size and ETag of %+v", obj, want)
		}
	}
}

// testListLarge lists more keys than one page of an S3 listing (1000).
func testListLarge(t *testing.T, s store.Store) {
	const n = 2500
	ctx := t.Context()
	var want []string
	for i := range n {
		want = append(want, fmt.Sprintf("big/%05d", i))
	}
	parallel(t, 32, len(want), func(i int) error {
		_, err := s.Put(ctx, want[i], strings.NewReader(want[i]), store.PutOptions{IfNoneMatch: true})
		return err
	})
	if got := listKeys(t, s, "big/"); !slices.Equal(got, want) {
		t.Errorf("List(big/) returned %d keys, want %d in order", len(got), len(want))
	}
	if got := listKeys(t, s, "big/010"); !slices.Equal(got, want[1000:1100]) {
		t.Errorf("List(big/010) returned %d keys, want big/01000..big/01099", len(got))
	}
	if got := listKeysAfter(t, s, "big/", "big/01499"); !slices.Equal(got, want[1500:]) {
		t.Errorf("ListKeysAfter(big/, big/01499) returned %d keys, want big/01500..big/02499", len(got))
	}
	// Stopping early is allowed and must not panic.
	count := 0
	for _, err := range s.List(ctx, "big/") {
		if err != nil {
			t.Fatal(err)
		}
		if count++; count == 10 {
			break
		}
	}
}

func testInvalidKey(t *testing.T, s store.Store) {
	ctx := t.Context()
	bad := []string{
		"", ".", "..", "../x", "a/../b", "a/./b", "/a", "a/", "a//b", ".tmp", ".tmpfile",
		"a/.tmp", "a/.tmp-x/b", `a\b`, "a\x00b", "a\nb", "a\x7fb", strings.Repeat("k", 1025),
	}
	for _, key := range bad {
		if _, err := s.Put(ctx, key, strings.NewReader("x"), store.PutOptions{}); !errors.Is(err, store.ErrInvalidKey) {
			t.Errorf("Put(%q): %v, want ErrInvalidKey", key, err)
		}
		if _, _, err := s.Get(ctx, key); !errors.Is(err, store.ErrInvalidKey) {
			t.Errorf("Get(%q): %v, want ErrInvalidKey", key, err)
		}
		if _, err := s.Stat(ctx, key); !errors.Is(err, store.ErrInvalidKey) {
			t.Errorf("Stat(%q): %v, want ErrInvalidKey", key, err)
		}
		if err := s.Delete(ctx, key); !errors.Is(err, store.ErrInvalidKey) {
			t.Errorf("Delete(%q): %v, want ErrInvalidKey", key, err)
		}
	}
	if keys := listKeys(t, s, ""); len(keys) != 0 {
		t.Errorf("invalid Puts stored %q", keys)
	}
}

func testFailingBody(t *testing.T, s store.Store) {
	ctx := t.Context()
	fail := func() io.Reader { return &failingReader{r: newPattern(1 << 20), after: 100 << 10} }
	old := put(t, s, "fail/existing", "old contents", store.PutOptions{})
	tests := []struct {
		name string
		key  string
		opts store.PutOptions
	}{
		{"new", "fail/new", store.PutOptions{Size: -1}},
		{"new known size", "fail/sized", store.PutOptions{Size: 1 << 20}},
		{"create", "fail/create", store.PutOptions{IfNoneMatch: true}},
		{"overwrite", "fail/existing", store.PutOptions{}},
		{"cas", "fail/existing", store.PutOptions{IfMatch: old.ETag}},
	}
	for _, tt := range tests {
		_, err := s.Put(ctx, tt.key, fail(), tt.opts)
		if !errors.Is(err, errBody) {
			t.Errorf("%s: Put with a failing body: %v, want an error wrapping the body's", tt.name, err)
		}
		if tt.key == "fail/existing" {
			if got, obj := get(t, s, tt.key); string(got) != "old contents" || obj.ETag != old.ETag {
				t.Errorf("%s: old object became %q %+v, want it intact", tt.name, got, obj)
			}
		} else {
			assertMissing(t, s, tt.key)
		}
	}
	if keys := listKeys(t, s, ""); !slices.Equal(keys, []string{"fail/existing"}) {
		t.Errorf("List after failed Puts = %q", keys)
	}
}

func testCancelled(t *testing.T, s store.Store) {
	put(t, s, "cancel/existing", "x", store.PutOptions{})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := s.Put(ctx, "cancel/before", strings.NewReader("x"), store.PutOptions{}); !errors.Is(err, context.Canceled) {
		t.Errorf("Put with a cancelled context: %v, want context.Canceled", err)
	}
	assertMissing(t, s, "cancel/before")
	if _, _, err := s.Get(ctx, "cancel/existing"); err == nil {
		t.Error("Get with a cancelled context succeeded")
	}
	if _, err := s.Stat(ctx, "cancel/existing"); err == nil {
		t.Error("Stat with a cancelled context succeeded")
	}
	var listErr error
	for _, err := range s.List(ctx, "") {
		if err != nil {
			listErr = err
			break
		}
	}
	if listErr == nil {
		t.Error("List with a cancelled context yielded no error")
	}

	// Cancelled while the body streams.
	ctx, cancel = context.WithCancel(t.Context())
	defer cancel()
	body := &cancellingReader{r: newPattern(4 << 20), after: 64 << 10, cancel: cancel}
	if _, err := s.Put(ctx, "cancel/during", body, store.PutOptions{Size: -1}); err == nil {
		t.Error("Put cancelled mid-body succeeded")
	}
	assertMissing(t, s, "cancel/during")
}

func testPing(t *testing.T, s store.Store) {
	if err := s.Ping(t.Context()); err != nil {
		t.Errorf("Ping: %v", err)
	}
	if s.String() == "" {
		t.Error("String() is empty")
	}
}

// testConcurrent: 16 goroutines each writing, reading, overwriting and
// deleting their own keys.
func testConcurrent(t *testing.T, s store.Store) {
	ctx := t.Context()
	const workers, rounds = 16, 8
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for r := range rounds {
				key := fmt.Sprintf("conc/w%02d/k%d", w, r%3)
				body := bytes.Repeat([]byte(key+"/"), 100*(r+1))
				obj, err := s.Put(ctx, key, bytes.NewReader(body), store.PutOptions{Size: int64(len(body))})
				if err != nil {
					t.Errorf("Put %s: %v", key, err)
					return
				}
				rc, got, err := s.Get(ctx, key)
				if err != nil {
					t.Errorf("Get %s: %v", key, err)
					return
				}
				b, err := io.ReadAll(rc)
				rc.Close()
				if err != nil || !bytes.Equal(b, body) || got.ETag != obj.ETag {
					t.Errorf("Get %s: %d bytes, %v, etag %q; want %d bytes, etag %q", key, len(b), err, got.ETag, len(body), obj.ETag)
				}
				if _, err := s.Stat(ctx, key); err != nil {
					t.Errorf("Stat %s: %v", key, err)
				}
				for _, err := range s.List(ctx, fmt.Sprintf("conc/w%02d/", w)) {
					if err != nil {
						t.Errorf("List: %v", err)
					}
				}
				if r%4 == 3 {
					if err := s.Delete(ctx, key); err != nil {
						t.Errorf("Delete %s: %v", key, err)
					}
				}
			}
		})
	}
	wg.Wait()
}

// put stores body under key and fails the test on error.
// testMoveAppend checks store.Mover where the store implements it, and
// that store.MoveAppend refuses cleanly where it does not.
func testMoveAppend(t *testing.T, s store.Store) {
	ctx := t.Context()
	if _, ok := s.(store.Mover); !ok {
		put(t, s, "m/a", "body", store.PutOptions{})
		_, err := store.MoveAppend(ctx, s, "m/a", "m/b", []byte("tail"), store.MoveOptions{})
		if !errors.Is(err, errors.ErrUnsupported) {
			t.Fatalf("MoveAppend on a store that does not move = %v, want ErrUnsupported", err)
		}
		if got, _ := get(t, s, "m/a"); string(got) != "body" {
			t.Errorf("after a refused move m/a = %q, want it untouched", got)
		}
		assertMissing(t, s, "m/b")
		return
	}

	// A move to a new key, through a directory not seen before.
	first := put(t, s, "m/a", "body", store.PutOptions{})
	obj, err := store.MoveAppend(ctx, s, "m/a", "moved/deeper/b", []byte("+tail"), store.MoveOptions{})
	if errors.Is(err, errors.ErrUnsupported) {
		// A decorator that passes moves on to a store that does not
		// move: the refusal must leave everything as it was.
		if got, _ := get(t, s, "m/a"); string(got) != "body" {
			t.Errorf("after a refused move m/a = %q, want it untouched", got)
		}
		assertMissing(t, s, "moved/deeper/b")
		return
	}
	if err != nil {
		t.Fatalf("MoveAppend: %v", err)
	}
	assertMissing(t, s, "m/a")
	got, gobj := get(t, s, "moved/deeper/b")
	if string(got) != "body+tail" {
		t.Errorf("moved object = %q, want %q", got, "body+tail")
	}
	if obj.Key != "moved/deeper/b" || obj.Size != int64(len("body+tail")) || obj.ETag != gobj.ETag || !obj.ModTime.Equal(gobj.ModTime) {
		t.Errorf("MoveAppend returned %+v, Get says %+v", obj, gobj)
	}
	if obj.ETag == first.ETag {
		t.Errorf("ETag %q unchanged by the move", obj.ETag)
	}
	if keys := listKeys(t, s, ""); !slices.Equal(keys, []string{"moved/deeper/b"}) {
		t.Errorf("List after the move = %q", keys)
	}

	// Over an existing object, with an empty tail.
	put(t, s, "m/c", "new", store.PutOptions{})
	put(t, s, "m/d", "old and longer", store.PutOptions{})
	cobj, err := store.MoveAppend(ctx, s, "m/c", "m/d", nil, store.MoveOptions{})
	if err != nil {
		t.Fatalf("MoveAppend over an object: %v", err)
	}
	assertMissing(t, s, "m/c")
	if got, gobj := get(t, s, "m/d"); string(got) != "new" {
		t.Errorf("moved over m/d = %q, want %q", got, "new")
	} else if cobj.Size != 3 || cobj.ETag != gobj.ETag || !cobj.ModTime.Equal(gobj.ModTime) {
		t.Errorf("MoveAppend over m/d returned %+v, Get says %+v", cobj, gobj)
	}

	// Conditional writes see the moved object's new ETag.
	_, dobj := get(t, s, "m/d")
	if _, err := s.Put(ctx, "m/d", strings.NewReader("cas"), store.PutOptions{IfMatch: dobj.ETag}); err != nil {
		t.Errorf("IfMatch Put with the moved object's ETag: %v", err)
	}

	// Nothing to move.
	if _, err := store.MoveAppend(ctx, s, "m/none", "m/e", []byte("x"), store.MoveOptions{}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("MoveAppend of a missing key = %v, want ErrNotFound", err)
	}
	assertMissing(t, s, "m/e")
	put(t, s, "dir/inner", "x", store.PutOptions{})
	if _, err := store.MoveAppend(ctx, s, "dir", "m/f", []byte("x"), store.MoveOptions{}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("MoveAppend of a prefix = %v, want ErrNotFound", err)
	}

	// Bad keys, and a key onto itself.
	for _, k := range [][2]string{{"../a", "m/g"}, {"m/d", "../g"}, {"m/d", "m/d"}} {
		if _, err := store.MoveAppend(ctx, s, k[0], k[1], nil, store.MoveOptions{}); !errors.Is(err, store.ErrInvalidKey) {
			t.Errorf("MoveAppend(%q, %q) = %v, want ErrInvalidKey", k[0], k[1], err)
		}
	}
	if got, _ := get(t, s, "m/d"); string(got) != "cas" {
		t.Errorf("m/d = %q after refused moves, want it untouched", got)
	}

	// Cancelled: nothing moves.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := store.MoveAppend(cctx, s, "m/d", "m/h", nil, store.MoveOptions{}); !errors.Is(err, context.Canceled) {
		t.Errorf("MoveAppend cancelled = %v, want context.Canceled", err)
	}
	assertMissing(t, s, "m/h")
}

func put(t *testing.T, s store.Store, key, body string, opts store.PutOptions) store.Object {
	t.Helper()
	if opts.Size == 0 {
		opts.Size = int64(len(body))
	}
	obj, err := s.Put(t.Context(), key, strings.NewReader(body), opts)
	if err != nil {
		t.Fatalf("Put(%q): %v", key, err)
	}
	return obj
}

// get reads the object under key in full and fails the test on error.
func get(t *testing.T, s store.Store, key string) ([]byte, store.Object) {
	t.Helper()
	rc, obj, err := s.Get(t.Context(), key)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("Get(%q): read: %v", key, err)
	}
	return b, obj
}

// assertMissing checks that Get and Stat report ErrNotFound and List does
// not yield key.
func assertMissing(t *testing.T, s store.Store, key string) {
	t.Helper()
	ctx := t.Context()
	if rc, obj, err := s.Get(ctx, key); !errors.Is(err, store.ErrNotFound) {
		if err == nil {
			rc.Close()
		}
		t.Errorf("Get(%q) = %+v, %v; want ErrNotFound", key, obj, err)
	}
	if obj, err := s.Stat(ctx, key); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Stat(%q) = %+v, %v; want ErrNotFound", key, obj, err)
	}
	if slices.Contains(listKeys(t, s, key), key) {
		t.Errorf("List(%q) yields the missing key", key)
	}
}

// listKeys collects the keys List yields, failing the test on error.
func listKeys(t *testing.T, s store.Store, prefix string) []string {
	t.Helper()
	var keys []string
	for obj, err := range s.List(t.Context(), prefix) {
		if err != nil {
			t.Fatalf("List(%q): %v", prefix, err)
		}
		keys = append(keys, obj.Key)
	}
	return keys
}

// parallel calls fn(0..n-1) from workers goroutines and fails the test on
// the first error.
func listKeysAfter(t *testing.T, s store.Store, prefix, after string) []string {
	t.Helper()
	var keys []string
	for k, err := range store.ListKeysAfter(t.Context(), s, prefix, after) {
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k)
	}
	return keys
}

func parallel(t *testing.T, workers, n int, fn func(i int) error) {
	t.Helper()
	next := make(chan int)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := range next {
				if err := fn(i); err != nil {
					t.Errorf("item %d: %v", i, err)
				}
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
}

func readAll(t *testing.T, r io.Reader) []byte {
	t.Helper()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// pattern is a deterministic pseudo-random stream of n bytes that hands
// out odd-sized reads, and is not a *bytes.Reader (so backends cannot
// take a size or seek shortcut).
type pattern struct {
	n, off int
	x      uint32
}

func newPattern(n int) *pattern { return &pattern{n: n, x: 2463534242} }

func (p *pattern) Read(b []byte) (int, error) {
	if p.off >= p.n {
		return 0, io.EOF
	}
	b = b[:min(len(b), p.n-p.off, 7919)]
	for i := range b {
		p.x ^= p.x << 13
		p.x ^= p.x >> 17
		p.x ^= p.x << 5
		b[i] = byte(p.x)
	}
	p.off += len(b)
	return len(b), nil
}

// onlyReader hides every method but Read.
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(b []byte) (int, error) { return o.r.Read(b) }

// failingReader returns errBody after passing on the first bytes of r.
type failingReader struct {
	r     io.Reader
	after int
	n     int
}

func (f *failingReader) Read(b []byte) (int, error) {
	if f.n >= f.after {
		return 0, fmt.Errorf("read at %d: %w", f.n, errBody)
	}
	n, err := f.r.Read(b[:min(len(b), f.after-f.n)])
	f.n += n
	return n, err
}

// cancellingReader cancels a context after passing on the first bytes of
// r, then keeps passing on data as if nothing happened.
type cancellingReader struct {
	r      io.Reader
	after  int
	n      int
	cancel context.CancelFunc
}

func (c *cancellingReader) Read(b []byte) (int, error) {
	if c.n >= c.after {
		c.cancel()
	}
	n, err := c.r.Read(b)
	c.n += n
	return n, err
}

func testAppendIfMatch(t *testing.T, s store.Store) {
	ctx := t.Context()
	first := put(t, s, "a/x", "body", store.PutOptions{})
	obj, err := store.AppendIfMatch(ctx, s, "a/x", first.ETag, []byte("+tail"), store.AppendOptions{})
	if errors.Is(err, errors.ErrUnsupported) {
		// A store that does not append, or a decorator passing appends
		// on to one: the refusal must leave the object as it was.
		if got, _ := get(t, s, "a/x"); string(got) != "body" {
			t.Errorf("after a refused append a/x = %q, want it untouched", got)
		}
		return
	}
	if err != nil {
		t.Fatalf("AppendIfMatch: %v", err)
	}
	got, gobj := get(t, s, "a/x")
	if string(got) != "body+tail" {
		t.Errorf("appended object = %q, want %q", got, "body+tail")
	}
	if obj.Key != "a/x" || obj.Size != int64(len("body+tail")) || obj.ETag != gobj.ETag || !obj.ModTime.Equal(gobj.ModTime) {
		t.Errorf("AppendIfMatch returned %+v, Get says %+v", obj, gobj)
	}
	if obj.ETag == first.ETag {
		t.Errorf("ETag %q unchanged by the append", obj.ETag)
	}

	// The old ETag no longer matches, for an append or a Put.
	if _, err := store.AppendIfMatch(ctx, s, "a/x", first.ETag, []byte("!"), store.AppendOptions{Lazy: true}); !errors.Is(err, store.ErrPrecondition) {
		t.Errorf("append with a stale ETag: %v, want ErrPrecondition", err)
	}
	if _, err := s.Put(ctx, "a/x", strings.NewReader("x"), store.PutOptions{IfMatch: first.ETag}); !errors.Is(err, store.ErrPrecondition) {
		t.Errorf("Put with the ETag from before the append: %v, want ErrPrecondition", err)
	}
	if got, _ := get(t, s, "a/x"); string(got) != "body+tail" {
		t.Errorf("after refused writes a/x = %q, want %q", got, "body+tail")
	}
	// The new one does, Lazy too.
	if _, err := store.AppendIfMatch(ctx, s, "a/x", obj.ETag, []byte("+more"), store.AppendOptions{Lazy: true}); err != nil {
		t.Errorf("append with the current ETag: %v", err)
	}
	if got, _ := get(t, s, "a/x"); string(got) != "body+tail+more" {
		t.Errorf("a/x = %q, want %q", got, "body+tail+more")
	}
	if _, err := store.AppendIfMatch(ctx, s, "a/missing", obj.ETag, []byte("x"), store.AppendOptions{}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("append to a missing key: %v, want ErrNotFound", err)
	}
	assertMissing(t, s, "a/missing")

	// Of two appends with one ETag, exactly one wins.
	_, cur := get(t, s, "a/x")
	var wins atomic.Int32
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := store.AppendIfMatch(ctx, s, "a/x", cur.ETag, []byte{'0' + byte(i)}, store.AppendOptions{Lazy: true})
			switch {
			case err == nil:
				wins.Add(1)
			case !errors.Is(err, store.ErrPrecondition):
				t.Errorf("concurrent append: %v", err)
			}
		}()
	}
	wg.Wait()
	if n := wins.Load(); n != 1 {
		t.Errorf("%d of 8 concurrent appends with one ETag succeeded, want 1", n)
	}
	if got, _ := get(t, s, "a/x"); len(got) != len("body+tail+more")+1 {
		t.Errorf("a/x after the race = %q, want one more byte", got)
	}
}
