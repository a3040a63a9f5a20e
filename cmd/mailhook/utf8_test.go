package main

import (
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	gosmtp "github.com/emersion/go-smtp"
)

// SMTPUTF8 (RFC 6531): internationalised addresses in the envelope and the
// headers reach the event unchanged.
func TestSMTPUTF8RoundTrip(t *testing.T) {
	rcv := newReceiver(t, nil)
	srv := startServer(t, t.TempDir(), map[string]string{
		"MAILHOOK_WEBHOOK_URL":    rcv.URL(),
		"MAILHOOK_WEBHOOK_SECRET": testSecret,
		"MAILHOOK_RECIPIENTS":     "*@例え.jp",
	})
	c, err := gosmtp.Dial(srv.smtpAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("client.test"); err != nil {
		t.Fatal(err)
	}
	if err := c.Mail("zoë@bücher.example", &gosmtp.MailOptions{UTF8: true, Body: gosmtp.Body8BitMIME}); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt("用户@例え.jp", nil); err != nil {
		t.Fatal(err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	msg := "From: Zoë <zoë@bücher.example>\r\nTo: 用户@例え.jp\r\nSubject: Grüße 👋\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nBody ✓\r\n"
	if _, err := w.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	_ = c.Quit()
	got := rcv.waitFor(30*time.Second, "the SMTPUTF8 message", func(d []delivery) bool { return len(d) == 1 })
	data := got[0].Event.Data
	env := data.Envelope
	if env.MailFrom != "zoë@bücher.example" || len(env.RcptTo) != 1 || env.RcptTo[0] != "用户@例え.jp" || !env.SMTPUTF8 {
		t.Errorf("envelope = %+v", env)
	}
	if data.Subject != "Grüße 👋" || len(data.From) != 1 || data.From[0].Address != "zoë@bücher.example" ||
		len(data.To) != 1 || data.To[0].Address != "用户@例え.jp" || !strings.Contains(data.Text, "Body ✓") {
		t.Errorf("data = subject %q from %+v to %+v text %q", data.Subject, data.From, data.To, data.Text)
	}
	if !strings.Contains(data.Headers[0].Value, "UTF8SMTP") {
		t.Errorf("Received = %q, want protocol UTF8SMTP (RFC 6531)", data.Headers[0].Value)
	}
	srv.stop()
}

// A second SIGTERM during the grace period ends the process at once, and
// what was acknowledged is still delivered after a restart.
func TestSecondSignalExitsAtOnce(t *testing.T) {
	rcv := newReceiver(t, func(int, delivery) int {
		time.Sleep(3 * time.Second)
		return http.StatusServiceUnavailable
	})
	data := t.TempDir()
	env := map[string]string{
		"MAILHOOK_WEBHOOK_URL":    rcv.URL(),
		"MAILHOOK_WEBHOOK_SECRET": testSecret,
		"MAILHOOK_SHUTDOWN_GRACE": "60s",
		"MAILHOOK_RETRY_INITIAL":  "100ms",
	}
	srv := startServer(t, data, env)
	id, err := sendGoSMTP(srv.smtpAddr, "a@example.org", []string{"b@example.com"}, []byte("Subject: twice\r\n\r\nx\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for rcv.requests() == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	_ = srv.cmd.Process.Signal(syscall.SIGTERM) // waits for the slow attempt…
	time.Sleep(200 * time.Millisecond)
	start := time.Now()
	_ = srv.cmd.Process.Signal(syscall.SIGTERM) // …until told again
	select {
	case <-srv.exited:
	case <-time.After(2 * time.Second):
		t.Fatal("a second SIGTERM did not end the process at once")
	}
	t.Logf("exited %v after the second signal", time.Since(start).Round(time.Millisecond))

	rcv.setStatus(func(int, delivery) int { return http.StatusOK })
	srv2 := startServer(t, data, env)
	got := rcv.waitFor(60*time.Second, "the acknowledged message", func(d []delivery) bool { return len(d) == 1 })
	if got[0].Event.Data.ID != id {
		t.Errorf("delivered %s, want %s", got[0].Event.Data.ID, id)
	}
	srv2.stop()
}
