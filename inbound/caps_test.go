package inbound

import (
	"bufio"
	"net"
	"net/netip"
	"testing"
	"time"
)

// dialConn connects and reads nothing yet.
func dialConn(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	return c, r
}

// A flood of idle connections at the session cap does not lock a new
// client out: the session idle longest is told 421 4.7.0 and the newcomer
// gets the banner. Sessions in a transaction are never evicted.
func TestIdleSessionEvictedAtCap(t *testing.T) {
	ts := startServer(t, Config{MaxSessions: 3, MaxSessionsPerIP: 10, EvictIdleAfter: 200 * time.Millisecond}, nil)
	type conn struct {
		c net.Conn
		r *bufio.Reader
	}
	var idle []conn
	for range 2 {
		c, r := dialConn(t, ts.addr)
		if rep, err := readReply(r); err != nil || rep.code != 220 {
			t.Fatalf("banner %v %v", rep, err)
		}
		idle = append(idle, conn{c, r})
	}
	// The third is busy in a transaction.
	busy, br := dialConn(t, ts.addr)
	playSteps(t, busy, br, []step{
		{code: 220},
		{send: "EHLO busy.test", code: 250},
		{send: "MAIL FROM:<a@example.org>", code: 250, enh: "2.1.0"},
	})

	// Before EvictIdleAfter has passed, a fourth connection is refused.
	c4, r4 := dialConn(t, ts.addr)
	if rep, err := readReply(r4); err != nil || rep.code != 421 || rep.enh != "4.7.0" {
		t.Fatalf("at the cap with no long-idle session: %v %v", rep, err)
	}
	c4.Close()

	time.Sleep(300 * time.Millisecond)
	_, r5 := dialConn(t, ts.addr)
	if rep, err := readReply(r5); err != nil || rep.code != 220 {
		t.Fatalf("newcomer at the cap with idle sessions: %v %v", rep, err)
	}
	// Exactly one idle session was evicted, with 421 4.7.0.
	evicted := 0
	for _, ic := range idle {
		_ = ic.c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		rep, err := readReply(ic.r)
		if err == nil {
			if rep.code != 421 || rep.enh != "4.7.0" {
				t.Errorf("evicted session got %v", rep)
			}
			evicted++
		}
	}
	if evicted != 1 {
		t.Errorf("%d idle sessions evicted, want 1", evicted)
	}
	// The busy session still completes its transaction.
	playSteps(t, busy, br, []step{
		{send: "RCPT TO:<b@example.com>", code: 250, enh: "2.1.5"},
		{send: "DATA", code: 354, enh: "2.0.0"},
		{send: "Subject: x\r\n\r\nbody\r\n.", code: 250, enh: "2.0.0"},
	})
}

// Networks in SessionLimitExempt are not held to MaxSessionsPerIP.
func TestSessionLimitExempt(t *testing.T) {
	ts := startServer(t, Config{MaxSessionsPerIP: 1, SessionLimitExempt: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}, nil)
	for i := range 3 {
		_, r := dialConn(t, ts.addr)
		if rep, err := readReply(r); err != nil || rep.code != 220 {
			t.Fatalf("session %d from an exempt network: %v %v", i+1, rep, err)
		}
	}
}
