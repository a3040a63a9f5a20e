package inbound

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

func dialBanner(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, r := dialConn(t, addr)
	if rep, err := readReply(r); err != nil || rep.code != 220 {
		t.Fatalf("banner %v %v", rep, err)
	}
	return c, r
}

func TestShutdownGraceful(t *testing.T) {
	ts := startServer(t, Config{}, nil)
	// A: in the middle of DATA.
	a, ar := dialBanner(t, ts.addr)
	playSteps(t, a, ar, []step{
		ehlo,
		{send: "MAIL FROM:<a@example.org>", code: 250, enh: "2.1.0"},
		{send: "RCPT TO:<b@example.com>", code: 250, enh: "2.1.5"},
		{send: "DATA", code: 354, enh: "2.0.0"},
		{send: "Subject: in flight\r\n\r\npart one\r\n", raw: true},
	})
	// B: idle after EHLO.
	b, br := dialBanner(t, ts.addr)
	playSteps(t, b, br, []step{ehlo})

	shutdownErr := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		shutdownErr <- ts.srv.Shutdown(ctx)
	}()

	// B is told and closed.
	playSteps(t, b, br, []step{{code: 421, enh: "4.3.2"}, {closed: true}})
	// A new connection gets 421 4.3.2 at once.
	c, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cr := bufio.NewReader(c)
	if rep, err := readReply(cr); err != nil || rep.code != 421 || rep.enh != "4.3.2" {
		t.Fatalf("new connection during shutdown: %v %v", rep, err)
	}
	// A finishes its message and gets 250, then 421.
	playSteps(t, a, ar, []step{
		{send: "part two\r\n.\r\n", raw: true, code: 250, enh: "2.0.0"},
		{code: 421, enh: "4.3.2"},
		{closed: true},
	})
	if err := <-shutdownErr; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if msgs := ts.acc.messages(); len(msgs) != 1 || string(dataOf(t, msgs[0])) != "Subject: in flight\r\n\r\npart one\r\npart two\r\n" {
		t.Fatalf("messages %v", msgs)
	}
	// After Shutdown the listener is closed.
	if c, err := net.DialTimeout("tcp", ts.addr, time.Second); err == nil {
		c.Close()
		t.Fatal("listener still open after Shutdown")
	}
}

func TestShutdownForced(t *testing.T) {
	ts := startServer(t, Config{}, nil)
	ts.acc.block = make(chan struct{}) // never released: Accept waits for ctx
	a, ar := dialBanner(t, ts.addr)
	playSteps(t, a, ar, []step{
		ehlo,
		{send: "MAIL FROM:<a@example.org>", code: 250, enh: "2.1.0"},
		{send: "RCPT TO:<b@example.com>", code: 250, enh: "2.1.5"},
		{send: "DATA", code: 354, enh: "2.0.0"},
		{send: "x\r\n.\r\n", raw: true},
	})
	// A slow client stuck in a transaction.
	s, sr := dialBanner(t, ts.addr)
	playSteps(t, s, sr, []step{ehlo, {send: "MAIL FROM:<a@example.org>", code: 250, enh: "2.1.0"}})

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := ts.srv.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown = %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("Shutdown took %v", d)
	}
	// Accept's context was cancelled: the client must not get a 250.
	rest, _ := io.ReadAll(ar)
	if len(rest) > 0 && rest[0] == '2' {
		t.Fatalf("got %q after forced close", rest)
	}
	if _, err := sr.ReadByte(); err == nil {
		t.Fatal("slow session not closed")
	}
	waitFor(t, "sessions gone", func() bool {
		ts.srv.mu.Lock()
		defer ts.srv.mu.Unlock()
		return len(ts.srv.sessions) == 0
	})
	if n := len(ts.acc.messages()); n != 0 {
		t.Fatalf("%d messages", n)
	}
}

func TestServeAfterShutdown(t *testing.T) {
	srv := NewServer(Config{}, &fakeAcceptor{}, nil)
	if err := srv.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Serve(ln); !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Serve = %v", err)
	}
}
