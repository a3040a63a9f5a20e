package inbound

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

type codeReplier struct {
	code      int
	enh, text string
}

func (c codeReplier) Error() string                    { return "x" }
func (c codeReplier) SMTPReply() (int, string, string) { return c.code, c.enh, c.text }

func TestReplierReply(t *testing.T) {
	tests := []struct {
		in   codeReplier
		want reply
	}{
		{codeReplier{550, "5.7.1", "no"}, reply{550, "5.7.1", "no"}},
		{codeReplier{450, "5.7.1", "no"}, reply{450, "4.0.0", "no"}}, // class must match
		{codeReplier{550, "", "no"}, reply{550, "5.0.0", "no"}},
		{codeReplier{250, "2.0.0", "fake ok"}, reply{451, "4.3.0", "fake ok"}}, // never a success
		{codeReplier{554, "5.6.0", "a\r\nb"}, reply{554, "5.6.0", "a  b"}},
		{codeReplier{554, "5.6.0", ""}, reply{554, "5.6.0", "Message refused"}},
	}
	for _, tc := range tests {
		if got := replierReply(tc.in); got != tc.want {
			t.Errorf("%+v: got %+v want %+v", tc.in, got, tc.want)
		}
	}
}

func TestReceivedHeaderIPv6AndHostileHelo(t *testing.T) {
	srv := NewServer(Config{Hostname: "mx.test"}, &fakeAcceptor{}, nil)
	s := &session{srv: srv, ip: netip.MustParseAddr("2001:db8::1"), helo: strings.Repeat("h", 400) + "\r\nBcc: x", esmtp: true}
	s.tx = &transaction{rcpts: []string{"a@b.c"}, smtputf8: true}
	h := string(s.receivedHeader("ID", time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("", 3600))))
	want := "Received: from " + strings.Repeat("h", 255) + " (unknown [IPv6:2001:db8::1])\r\n\tby mx.test (mailhook) with UTF8SMTP id ID\r\n\tfor <a@b.c>;\r\n\tFri, 02 Jan 2026 03:04:05 +0100\r\n"
	if h != want {
		t.Fatalf("got\n%q\nwant\n%q", h, want)
	}
}

func TestTransactionLogLine(t *testing.T) {
	ts := startServer(t, Config{}, nil)
	runScript(t, ts.addr, []step{
		ehlo,
		{send: "MAIL FROM:<secret-sender@example.org>", code: 250, enh: "2.1.0"},
		{send: "RCPT TO:<secret-rcpt@example.com>", code: 250, enh: "2.1.5"},
		{send: "DATA", code: 354, enh: "2.0.0"},
		{send: "Subject: secret-subject\r\n\r\nsecret-body\r\n.", code: 250, enh: "2.0.0"},
	})
	var info []string
	for _, l := range strings.Split(ts.logs.String(), "\n") {
		if strings.Contains(l, "level=INFO") {
			info = append(info, l)
		}
	}
	if len(info) != 1 || !strings.Contains(info[0], "smtp: transaction") || !strings.Contains(info[0], "code=250") ||
		!strings.Contains(info[0], "rcpts=1") || !strings.Contains(info[0], "remote_ip=127.0.0.1") {
		t.Fatalf("info lines: %q", info)
	}
	if strings.Contains(ts.logs.String(), "secret") {
		t.Fatalf("log carries addresses or content:\n%s", ts.logs.String())
	}
}
