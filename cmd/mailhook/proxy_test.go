package main

import (
	"testing"
	"time"
)

// Behind a load balancer that speaks PROXY protocol, the event names the
// real client, not the balancer.
func TestProxyProtocolEndToEnd(t *testing.T) {
	rcv := newReceiver(t, nil)
	srv := startServer(t, t.TempDir(), map[string]string{
		"MAILHOOK_WEBHOOK_URL":    rcv.URL(),
		"MAILHOOK_WEBHOOK_SECRET": testSecret,
		"MAILHOOK_PROXY_PROTOCOL": "127.0.0.0/8",
	})
	c := dialRaw(t, srv.smtpAddr)
	c.send("PROXY TCP4 203.0.113.7 192.0.2.1 51234 25\r\n")
	c.expect("220 ")
	c.send("EHLO client.test\r\n")
	c.expect("250 ")
	c.send("MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n")
	c.expect("250 2.1.0")
	c.expect("250 2.1.5")
	c.expect("354 ")
	c.send("Subject: via proxy\r\n\r\nx\r\n.\r\nQUIT\r\n")
	c.expect("250 2.0.0")
	got := rcv.waitFor(30*time.Second, "the proxied message", func(d []delivery) bool { return len(d) == 1 })
	if ra := got[0].Event.Data.Envelope.RemoteAddr; ra != "203.0.113.7:51234" {
		t.Errorf("remote_addr = %q, want the client named in the PROXY header", ra)
	}
	srv.stop()
}
