package inbound

import (
	"context"
	"io"
	"log/slog"
	"net"
	"runtime"
	"testing"
	"time"
)

// BenchmarkIdleSessions measures what 1,000 idle sessions (banner sent,
// waiting for a command) cost the server: heap in use plus goroutine
// stacks, per session. Run with -benchtime=1x; b.N is ignored. The client
// ends of the connections live in the same process; the "tcp-only" line
// measures them (and the server's accepted sockets) alone, against a
// listener that holds connections without a session.
func BenchmarkIdleSessions(b *testing.B) {
	const conns = 1000
	for _, mode := range []string{"tcp-only", "sessions"} {
		b.Run(mode, func(b *testing.B) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			var held []net.Conn
			if mode == "sessions" {
				srv := NewServer(Config{MaxSessions: 2 * conns, MaxSessionsPerIP: 2 * conns,
					Logger: slog.New(slog.DiscardHandler)}, AcceptorFunc(func(context.Context, *Message) error { return nil }), nil)
				go func() { _ = srv.Serve(ln) }()
				defer func() {
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					defer cancel()
					_ = srv.Shutdown(ctx)
				}()
			} else {
				accepted := make(chan net.Conn)
				go func() {
					for {
						c, err := ln.Accept()
						if err != nil {
							close(accepted)
							return
						}
						_, _ = c.Write([]byte("220 x\r\n"))
						accepted <- c
					}
				}()
				defer func() {
					ln.Close()
					for range accepted {
					}
				}()
				go func() {
					for c := range accepted {
						held = append(held, c)
					}
				}()
			}
			before := idleMem()
			clients := make([]net.Conn, 0, conns)
			buf := make([]byte, 512)
			for range conns {
				c, err := net.Dial("tcp", ln.Addr().String())
				if err != nil {
					b.Fatal(err)
				}
				clients = append(clients, c)
				// Wait for the banner: the session is then idle in its
				// first read.
				if _, err := io.ReadAtLeast(c, buf, 5); err != nil {
					b.Fatal(err)
				}
			}
			after := idleMem()
			delta := float64(after.heap+after.stack) - float64(before.heap+before.stack)
			b.ReportMetric(delta/conns, "B/conn")
			b.ReportMetric(float64(after.heap-before.heap)/conns, "heap-B/conn")
			b.ReportMetric(float64(after.stack-before.stack)/conns, "stack-B/conn")
			for _, c := range clients {
				c.Close()
			}
			_ = held
		})
	}
}

type memUse struct{ heap, stack uint64 }

func idleMem() memUse {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return memUse{heap: m.HeapInuse, stack: m.StackInuse}
}
