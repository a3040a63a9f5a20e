package main

import (
	"bufio"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// rawSMTP is a minimal client for scripted sessions.
type rawSMTP struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
}

func dialRaw(t *testing.T, addr string) *rawSMTP {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawSMTP{t: t, conn: c, r: bufio.NewReader(c)}
}

// reply reads one (possibly multi-line) reply and returns its last line.
func (c *rawSMTP) reply() string {
	c.t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	for {
		line, err := c.r.ReadString('\n')
		if err != nil {
			c.t.Fatalf("reading reply: %v", err)
		}
		if len(line) < 4 || line[3] != '-' {
			return strings.TrimRight(line, "\r\n")
		}
	}
}

func (c *rawSMTP) send(s string) {
	c.t.Helper()
	if _, err := c.conn.Write([]byte(s)); err != nil {
		c.t.Fatal(err)
	}
}

func (c *rawSMTP) expect(prefix string) {
	c.t.Helper()
	if got := c.reply(); !strings.HasPrefix(got, prefix) {
		c.t.Fatalf("reply %q, want %q", got, prefix)
	}
}

// SIGTERM in the middle of DATA: the transaction finishes with 250, new
// connections get 421 4.3.2, /readyz turns 503, the process exits 0, and
// the message is delivered after a restart.
func TestSIGTERMDuringSMTPTransaction(t *testing.T) {
	rcv := newReceiver(t, func(int, delivery) int { return http.StatusServiceUnavailable })
	data := t.TempDir()
	env := map[string]string{
		"MAILHOOK_WEBHOOK_URL":        rcv.URL(),
		"MAILHOOK_WEBHOOK_SECRET":     testSecret,
		"MAILHOOK_SHUTDOWN_GRACE":     "20s",
		"MAILHOOK_RETRY_INITIAL":      "100ms",
		"MAILHOOK_RETRY_MAX_INTERVAL": "300ms",
	}
	srv := startServer(t, data, env)
	c := dialRaw(t, srv.smtpAddr)
	c.expect("220 ")
	c.send("EHLO client.test\r\n")
	c.expect("250 ")
	c.send("MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n")
	c.expect("250 2.1.0")
	c.expect("250 2.1.5")
	c.expect("354 ")
	c.send("Subject: in flight\r\n\r\nfirst half\r\n")

	_ = srv.cmd.Process.Signal(syscall.SIGTERM)
	// Once draining, new sessions are told to go away and /readyz fails.
	deadline := time.Now().Add(10 * time.Second)
	for {
		c2 := dialRaw(t, srv.smtpAddr)
		got := c2.reply()
		c2.conn.Close()
		if strings.HasPrefix(got, "421 4.3.2") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("new connection during shutdown got %q, want 421 4.3.2", got)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if code := readyz(t, srv.httpAddr); code != http.StatusServiceUnavailable {
		t.Errorf("readyz during shutdown = %d, want 503", code)
	}
	c.send("second half\r\n.\r\n")
	got := c.reply()
	id, err := queuedID(got)
	if !strings.HasPrefix(got, "250 2.0.0") || err != nil {
		t.Fatalf("end of data during shutdown: %q", got)
	}
	c.send("QUIT\r\n")
	select {
	case <-srv.exited:
	case <-time.After(30 * time.Second):
		t.Fatal("no exit after the transaction finished")
	}
	if srv.exitErr != nil {
		t.Fatalf("exit: %v", srv.exitErr)
	}

	rcv.setStatus(func(int, delivery) int { return http.StatusOK })
	srv2 := startServer(t, data, env)
	got2 := rcv.waitFor(30*time.Second, "the message accepted during shutdown", func(d []delivery) bool { return len(d) == 1 })
	if got2[0].Event.Data.ID != id || !strings.Contains(got2[0].Event.Data.Text, "second half") {
		t.Errorf("delivered %s %q, want %s with the whole body", got2[0].Event.Data.ID, got2[0].Event.Data.Text, id)
	}
	srv2.stop()
}

// SIGTERM while a webhook attempt is in flight: the attempt finishes, its
// outcome is recorded, the process exits 0, and nothing is sent again.
func TestSIGTERMDuringDelivery(t *testing.T) {
	inFlight := make(chan struct{}, 1)
	rcv := newReceiver(t, func(int, delivery) int {
		select {
		case inFlight <- struct{}{}:
		default:
		}
		time.Sleep(1500 * time.Millisecond)
		return http.StatusOK
	})
	data := t.TempDir()
	env := map[string]string{
		"MAILHOOK_WEBHOOK_URL":    rcv.URL(),
		"MAILHOOK_WEBHOOK_SECRET": testSecret,
		"MAILHOOK_SHUTDOWN_GRACE": "20s",
	}
	srv := startServer(t, data, env)
	id, err := sendGoSMTP(srv.smtpAddr, "a@example.org", []string{"b@example.com"}, []byte("Subject: slow receiver\r\n\r\nx\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-inFlight:
	case <-time.After(20 * time.Second):
		t.Fatal("no webhook attempt")
	}
	start := time.Now()
	srv.stop() // SIGTERM, expects exit 0
	t.Logf("exit %v after SIGTERM with an attempt in flight", time.Since(start).Round(time.Millisecond))
	if _, err := os.Stat(filepath.Join(data, "deliveries", "delivered", id+"-1.json")); err != nil {
		t.Errorf("the in-flight delivery was not recorded as delivered: %v", err)
	}
	srv2 := startServer(t, data, env)
	time.Sleep(1 * time.Second)
	if n := rcv.requests(); n != 1 {
		t.Errorf("%d requests, want 1: a finished delivery was sent again", n)
	}
	srv2.stop()
}
