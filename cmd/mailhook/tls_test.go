package main

import (
	"crypto/tls"
	"errors"
	"strings"
	"testing"
	"time"

	gosmtp "github.com/emersion/go-smtp"

	"github.com/mailhook/mailhook/internal/testcert"
)

// STARTTLS with MAILHOOK_TLS_CERT_FILE/_KEY_FILE: the event's envelope.tls
// names the version and cipher; with MAILHOOK_TLS_REQUIRED, MAIL before
// STARTTLS gets 530 5.7.0.
func TestSTARTTLSEndToEnd(t *testing.T) {
	_, certFile, keyFile := testcert.SelfSigned(t, t.TempDir())
	rcv := newReceiver(t, nil)
	srv := startServer(t, t.TempDir(), map[string]string{
		"MAILHOOK_WEBHOOK_URL":    rcv.URL(),
		"MAILHOOK_WEBHOOK_SECRET": testSecret,
		"MAILHOOK_TLS_CERT_FILE":  certFile,
		"MAILHOOK_TLS_KEY_FILE":   keyFile,
		"MAILHOOK_TLS_REQUIRED":   "true",
	})

	plain, err := gosmtp.Dial(srv.smtpAddr)
	if err != nil {
		t.Fatal(err)
	}
	if ok, _ := plain.Extension("STARTTLS"); !ok {
		t.Error("EHLO does not advertise STARTTLS")
	}
	err = plain.Mail("a@example.org", nil)
	var se *gosmtp.SMTPError
	if !errors.As(err, &se) || se.Code != 530 || se.EnhancedCode != (gosmtp.EnhancedCode{5, 7, 0}) {
		t.Errorf("MAIL before STARTTLS: %v, want 530 5.7.0", err)
	}
	plain.Close()

	c, err := gosmtp.DialStartTLS(srv.smtpAddr, &tls.Config{ServerName: "mx.test", InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.SendMail("a@example.org", []string{"b@example.com"}, strings.NewReader("Subject: over TLS\r\n\r\nsecret\r\n")); err != nil {
		t.Fatalf("send over STARTTLS: %v", err)
	}
	got := rcv.waitFor(30*time.Second, "the TLS message", func(d []delivery) bool { return len(d) == 1 })
	env := got[0].Event.Data.Envelope
	if env.TLS == nil || !strings.HasPrefix(env.TLS.Version, "TLS 1.") || env.TLS.Cipher == "" {
		t.Errorf("envelope.tls = %+v", env.TLS)
	}
	if h := got[0].Event.Data.Headers[0].Value; !strings.Contains(h, "ESMTPS") {
		t.Errorf("Received = %q, want protocol ESMTPS", h)
	}
	srv.stop()
}
