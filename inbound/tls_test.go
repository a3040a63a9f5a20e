package inbound

import (
	"bufio"
	"crypto/tls"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/mailhook/mailhook/internal/testcert"
)

// selfSigned returns a certificate for "mx.test" and its PEM files.
func selfSigned(t *testing.T, dir string) (tls.Certificate, string, string) {
	t.Helper()
	return testcert.SelfSigned(t, dir)
}

func TestSTARTTLS(t *testing.T) {
	cert, _, _ := selfSigned(t, "")
	ts := startServer(t, Config{TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}}, RequireTLS: true}, nil)
	conn, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	playScript(t, conn, []step{
		{send: "EHLO x", code: 250, enh: "-", text: "STARTTLS"},
		{send: "MAIL FROM:<a@example.org>", code: 530, enh: "5.7.0"},
		{send: "STARTTLS now", code: 501, enh: "5.5.4"},
		// CVE-2011-0411: the MAIL pipelined after STARTTLS in clear text
		// must be dropped, not run inside the TLS session.
		{send: "STARTTLS\r\nMAIL FROM:<injected@evil.example>\r\n", raw: true, code: 220, enh: "2.0.0"},
	})
	tc := tls.Client(conn, &tls.Config{InsecureSkipVerify: true, ServerName: "mx.test"})
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(tc)
	playSteps(t, tc, r, []step{
		// State was reset: no EHLO, no transaction.
		{send: "RCPT TO:<b@example.com>", code: 503, enh: "5.5.1"},
		{send: "EHLO x", code: 250, enh: "-"},
		{send: "RCPT TO:<b@example.com>", code: 503, enh: "5.5.1"},
		{send: "STARTTLS", code: 503, enh: "5.5.1"},
		{send: "MAIL FROM:<a@example.org>", code: 250, enh: "2.1.0"},
		{send: "RCPT TO:<b@example.com>", code: 250, enh: "2.1.5"},
		{send: "DATA", code: 354, enh: "2.0.0"},
		{send: "secret\r\n.", code: 250, enh: "2.0.0"},
	})
	msgs := ts.acc.messages()
	if len(msgs) != 1 {
		t.Fatalf("%d messages", len(msgs))
	}
	env := msgs[0].msg.Envelope
	if env.TLS == nil || env.TLS.Version != "TLS 1.3" || env.TLS.Cipher == "" || env.TLS.ServerName != "mx.test" {
		t.Fatalf("tls %+v", env.TLS)
	}
	if !strings.Contains(string(msgs[0].body), "with ESMTPS id") {
		t.Fatalf("header %q", msgs[0].body)
	}
	// And the EHLO after TLS no longer offers STARTTLS.
	rep := func() smtpReply {
		_, _ = tc.Write([]byte("EHLO x\r\n"))
		rep, err := readReply(r)
		if err != nil {
			t.Fatal(err)
		}
		return rep
	}()
	if strings.Contains(strings.Join(rep.lines, " "), "STARTTLS") {
		t.Fatalf("STARTTLS offered after TLS: %v", rep)
	}
}

func TestSTARTTLSHandshakeFailure(t *testing.T) {
	cert, _, _ := selfSigned(t, "")
	ts := startServer(t, Config{TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}}}, nil)
	runScript(t, ts.addr, []step{
		ehlo,
		{send: "STARTTLS", code: 220, enh: "2.0.0"},
		{send: "this is not a TLS client hello"},
		{closed: true},
	})
	runScript(t, ts.addr, []step{{send: "NOOP", code: 250, enh: "2.0.0"}})
}

// A session that asked for STARTTLS and never sent its TLS hello is idle:
// at the session cap it is evicted like any other, and a newcomer gets the
// banner.
func TestStalledTLSHandshakeEvictedAtCap(t *testing.T) {
	cert, _, _ := selfSigned(t, "")
	ts := startServer(t, Config{TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}},
		MaxSessions: 2, MaxSessionsPerIP: 10, EvictIdleAfter: 100 * time.Millisecond}, nil)
	var stalled []net.Conn
	for range 2 {
		c, r := dialConn(t, ts.addr)
		playSteps(t, c, r, []step{
			{code: 220},
			{send: "EHLO stall.test", code: 250},
			{send: "STARTTLS", code: 220, enh: "2.0.0"},
		})
		stalled = append(stalled, c) // and no ClientHello
	}
	time.Sleep(300 * time.Millisecond)
	_, r := dialConn(t, ts.addr)
	if rep, err := readReply(r); err != nil || rep.code != 220 {
		t.Fatalf("newcomer at a cap held by stalled handshakes: %v %v", rep, err)
	}
	closed := 0
	for _, c := range stalled {
		_ = c.SetReadDeadline(time.Now().Add(time.Second))
		var ne net.Error
		if _, err := c.Read(make([]byte, 1)); err != nil && !(errors.As(err, &ne) && ne.Timeout()) {
			closed++ // not merely still waiting
		}
	}
	if closed != 1 {
		t.Errorf("%d stalled sessions closed, want 1", closed)
	}
}

// STARTTLS inside a mail transaction is out of sequence, and says so.
func TestSTARTTLSInTransaction(t *testing.T) {
	cert, _, _ := selfSigned(t, "")
	ts := startServer(t, Config{TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}}}, nil)
	c, r := dialConn(t, ts.addr)
	playSteps(t, c, r, []step{
		{code: 220},
		{send: "EHLO x", code: 250},
		{send: "MAIL FROM:<a@example.org>", code: 250, enh: "2.1.0"},
		{send: "STARTTLS", code: 503, enh: "5.5.1", text: "STARTTLS not allowed in a mail transaction"},
		{send: "RSET", code: 250, enh: "2.0.0"},
		{send: "STARTTLS", code: 220, enh: "2.0.0"},
	})
}
