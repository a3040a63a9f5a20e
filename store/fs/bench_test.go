package fs

import (
	"bytes"
	"fmt"
	"iter"
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/mailhook/mailhook/store"
)

// BenchmarkPut measures one durable Put at a time (two fsyncs each: the
// file and its directory). Run it on the disk mailhook will use: tmpfs
// makes fsync free.
func BenchmarkPut(b *testing.B) {
	for _, size := range []int{2 << 10, 1 << 20} {
		b.Run(sizeName(size), func(b *testing.B) {
			s := newBenchStore(b)
			body := bytes.Repeat([]byte("x"), size)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				key := fmt.Sprintf("raw/%08d", i)
				i++
				if _, err := s.Put(b.Context(), key, bytes.NewReader(body), store.PutOptions{IfNoneMatch: true, Size: int64(size)}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkPutParallel measures many concurrent Puts into one directory,
// where directory fsyncs are grouped.
func BenchmarkPutParallel(b *testing.B) {
	for _, size := range []int{2 << 10, 1 << 20} {
		b.Run(sizeName(size), func(b *testing.B) {
			s := newBenchStore(b)
			body := bytes.Repeat([]byte("x"), size)
			var n atomic.Int64
			b.SetBytes(int64(size))
			b.ReportAllocs()
			b.SetParallelism(16)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					key := fmt.Sprintf("raw/%08d", n.Add(1))
					if _, err := s.Put(b.Context(), key, bytes.NewReader(body), store.PutOptions{IfNoneMatch: true, Size: int64(size)}); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

func newBenchStore(b *testing.B) *Store {
	b.Helper()
	s, err := New(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

func sizeName(n int) string {
	if n >= 1<<20 {
		return fmt.Sprintf("%dMB", n>>20)
	}
	return fmt.Sprintf("%dKB", n>>10)
}

// BenchmarkList lists a directory of 20,000 records, as the dispatcher's
// rescan (keys: ids only), retention passes and the admin API (objects)
// do. live-B/op is the heap in use halfway through the listing, after a
// collection, less what was in use before it: what a listing holds, which
// grows with the directory.
func BenchmarkList(b *testing.B) {
	s := newBenchStore(b)
	const n = 20000
	for i := range n {
		key := fmt.Sprintf("deliveries/delivered/%026d-1.json", i)
		if _, err := s.Put(b.Context(), key, bytes.NewReader([]byte("{}")), store.PutOptions{Lazy: true}); err != nil {
			b.Fatal(err)
		}
	}
	for _, bc := range []struct {
		name string
		list func() iter.Seq2[string, error]
	}{
		{"objects", func() iter.Seq2[string, error] {
			return func(yield func(string, error) bool) {
				for obj, err := range s.List(b.Context(), "deliveries/delivered/") {
					if !yield(obj.Key, err) {
						return
					}
				}
			}
		}},
		{"keys", func() iter.Seq2[string, error] { return s.ListKeys(b.Context(), "deliveries/delivered/") }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			var live uint64
			var ms runtime.MemStats
			for b.Loop() {
				runtime.GC()
				runtime.ReadMemStats(&ms)
				before := ms.HeapAlloc
				got := 0
				for _, err := range bc.list() {
					if err != nil {
						b.Fatal(err)
					}
					if got++; got == n/2 {
						runtime.GC()
						runtime.ReadMemStats(&ms)
						live += ms.HeapAlloc - min(before, ms.HeapAlloc)
					}
				}
				if got != n {
					b.Fatalf("listed %d, want %d", got, n)
				}
			}
			b.ReportMetric(float64(live)/float64(b.N), "live-B/op")
		})
	}
}
