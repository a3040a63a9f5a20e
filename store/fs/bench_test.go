package fs

import (
	"bytes"
	"fmt"
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
