package inbound

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"testing"
)

// BenchmarkSession measures whole SMTP transactions over loopback TCP:
// MAIL, RCPT, DATA pipelined, the body, the 250; the Acceptor reads the
// body into io.Discard.
func BenchmarkSession(b *testing.B) {
	for _, size := range []int{2 << 10, 1 << 20} {
		msg := benchMessage(size)
		for _, conns := range []int{1, 8} {
			b.Run(fmt.Sprintf("%dKB/conns=%d", size>>10, conns), func(b *testing.B) {
				ln, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					b.Fatal(err)
				}
				sink := AcceptorFunc(func(_ context.Context, m *Message) error {
					_, err := io.Copy(io.Discard, m.Body)
					return err
				})
				srv := NewServer(Config{Hostname: "mx.bench", MaxSessionsPerIP: 100,
					Logger: slog.New(slog.DiscardHandler)}, sink, nil)
				go func() { _ = srv.Serve(ln) }()
				defer func() { _ = srv.Shutdown(context.Background()) }()
				b.SetBytes(int64(len(msg)))
				b.ReportAllocs()
				b.SetParallelism(conns)
				b.RunParallel(func(pb *testing.PB) {
					c, err := net.Dial("tcp", ln.Addr().String())
					if err != nil {
						b.Error(err)
						return
					}
					defer c.Close()
					r := bufio.NewReader(c)
					expect := func(code int) bool {
						rep, err := readReply(r)
						if err != nil || rep.code != code {
							b.Errorf("got %v %v, want %d", rep, err, code)
							return false
						}
						return true
					}
					if !expect(220) {
						return
					}
					_, _ = io.WriteString(c, "EHLO bench\r\n")
					if !expect(250) {
						return
					}
					for pb.Next() {
						_, _ = io.WriteString(c, "MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n")
						for _, code := range []int{250, 250, 354} {
							if !expect(code) {
								return
							}
						}
						_, _ = c.Write(msg)
						if !expect(250) {
							return
						}
					}
				})
			})
		}
	}
}
