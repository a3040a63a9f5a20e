package s3

import (
	"bytes"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/mailhook/mailhook/internal/s3test"
	"github.com/mailhook/mailhook/store"
)

// BenchmarkPut stores messages of typical sizes in versitygw on loopback,
// one after the other and from parallel goroutines (like concurrent SMTP
// sessions). msgs/s is the rate of acknowledged Puts.
func BenchmarkPut(b *testing.B) {
	srv := s3test.Start(b)
	useServer(b, srv)
	s := newStore(b, srv, func(c *Config) { c.Prefix = "bench" })
	var seq atomic.Int64 // keys are unique across b.Run's repeated calls
	for _, size := range []int{2 << 10, 1 << 20} {
		body := pattern(size)
		opts := store.PutOptions{Size: int64(size), ContentType: "message/rfc822", IfNoneMatch: true}
		b.Run(fmt.Sprintf("size=%s/serial", human(size)), func(b *testing.B) {
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := s.Put(b.Context(), fmt.Sprintf("serial/%d", seq.Add(1)), bytes.NewReader(body), opts); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
		b.Run(fmt.Sprintf("size=%s/parallel", human(size)), func(b *testing.B) {
			b.SetBytes(int64(size))
			b.ReportAllocs()
			b.SetParallelism(4) // 4×GOMAXPROCS concurrent Puts
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					key := fmt.Sprintf("parallel/%d", seq.Add(1))
					if _, err := s.Put(b.Context(), key, bytes.NewReader(body), opts); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}

func human(n int) string {
	if n >= 1<<20 {
		return fmt.Sprintf("%dMB", n>>20)
	}
	return fmt.Sprintf("%dKB", n>>10)
}
