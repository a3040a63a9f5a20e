package queue_test

import (
	"bytes"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mailhook/mailhook/event"
	"github.com/mailhook/mailhook/queue"
	"github.com/mailhook/mailhook/store"
	"github.com/mailhook/mailhook/store/fs"
)

// BenchmarkLifecycle is a message's whole life in the store: Accept (the
// raw message and its record, made durable before it returns) and, once
// delivered, MarkDelivered, with 32 messages in flight as in the 2 KB × 32
// sessions load of BENCHMARKS.md. Besides the wall time it reports the
// process's CPU time per message (cpu-µs/msg, user + system, from
// getrusage), which is what the store costs a loaded server: with the
// filesystem store, system calls and the kernel's work on its behalf are
// most of it. Run it on the disk mailhook will use; tmpfs makes syncfs
// free. memstore is the floor: queue and encoding without a store.
//
// The figures of the filesystem store swing with the host (a factor of
// three within minutes on the benchmark machine, a VM): compare binaries
// with interleaved runs (-count and benchstat), never a run with one from
// another hour. All runs of a sub-benchmark share one store directory,
// removed at the end, because removing thousands of files just before a
// run slows it on a disk mounted with discard.
func BenchmarkLifecycle(b *testing.B) {
	body := bytes.Repeat([]byte("Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod\r\n"), 2<<10/74)
	body = append([]byte("From: a@example.org\r\nTo: b@example.com\r\nSubject: bench\r\n\r\n"), body...)
	for _, bc := range []struct {
		name string
		open func(b *testing.B) store.Store
	}{
		{"fs", func(*testing.B) store.Store {
			s, err := fs.New(b.TempDir()) // the parent's: it outlives every run
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { s.Close() })
			return s
		}},
		{"memstore", func(*testing.B) store.Store { return newMemStore() }},
	} {
		var st store.Store // opened by the first run, shared by the rest
		b.Run(bc.name+"/2KB", func(b *testing.B) {
			if st == nil {
				st = bc.open(b)
			}
			var enqueued sync.Map // record id → *queue.Delivery, as the dispatcher gets it
			q := queue.New(queue.Options{
				Store:     st,
				Router:    queue.RouterFunc(func(string) string { return "http://127.0.0.1:1/hook" }),
				OnEnqueue: func(d *queue.Delivery) { enqueued.Store(d.ID, d) },
				Owner:     queue.LeaseOwner{ID: "bench", Host: "bench", PID: 1, Proc: "bench"},
				ClaimTTL:  time.Minute, // as serve: the first attempt needs no lease
			})
			env := event.Envelope{MailFrom: "a@example.org", RcptTo: []string{"b@example.com"}, Helo: "mx.example.org"}
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			b.SetParallelism(16) // × GOMAXPROCS (2 on the benchmark machine): 32 in flight
			cpu0 := cpuTime()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					now := time.Now()
					id := event.NewID(now)
					if err := q.Accept(b.Context(), id, now, env, bytes.NewReader(body)); err != nil {
						b.Error(err)
						return
					}
					d, ok := enqueued.LoadAndDelete(id + "-1")
					if !ok {
						b.Error("Accept enqueued nothing")
						return
					}
					got := d.(*queue.Delivery)
					// The raw message comes from the accept's cache, as for
					// the first attempt: no store read.
					if rc, err := q.OpenRaw(b.Context(), got); err == nil {
						rc.Close()
					}
					a := queue.Attempt{At: now, Endpoint: got.Endpoint, Status: 204, LatencyMS: 1}
					if err := q.MarkDelivered(b.Context(), got, a); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(cpuTime()-cpu0)/float64(time.Microsecond)/float64(b.N), "cpu-µs/msg")
		})
	}
}

// cpuTime is the user and system CPU time this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
