package inbound

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	gosmtp "github.com/emersion/go-smtp"
)

var ehlo = step{send: "EHLO client.test", code: 250, enh: "-"}

func TestScripts(t *testing.T) {
	ts := startServer(t, Config{MaxMessageBytes: 1000, MaxRecipients: 3, MaxBadCommands: 50}, policy{deny: []string{"nobody@example.com"}})
	tests := []struct {
		name  string
		steps []step
	}{
		{"happy path", []step{
			ehlo,
			{send: "MAIL FROM:<a@example.org>", code: 250, enh: "2.1.0"},
			{send: "RCPT TO:<b@example.com>", code: 250, enh: "2.1.5"},
			{send: "DATA", code: 354, enh: "2.0.0"},
			{send: "Subject: hi\r\n\r\nhello\r\n.", code: 250, enh: "2.0.0", text: "Ok: queued as "},
			{send: "QUIT", code: 221, enh: "2.0.0"},
			{closed: true},
		}},
		{"HELO", []step{
			{send: "HELO client.test", code: 250, enh: "-"},
			{send: "MAIL FROM:<>", code: 250, enh: "2.1.0"},
			{send: "RCPT TO:<b@example.com>", code: 250, enh: "2.1.5"},
			{send: "DATA", code: 354, enh: "2.0.0"},
			{send: "x\r\n.", code: 250, enh: "2.0.0"},
		}},
		{"params after HELO", []step{
			{send: "HELO client.test", code: 250, enh: "-"},
			{send: "MAIL FROM:<a@b.c> SIZE=99999999999", code: 552, enh: "5.3.4"},
			{send: "MAIL FROM:<a@b.c> XFOO=1", code: 555, enh: "5.5.4"},
			{send: "MAIL FROM:<a@b.c> SIZE=10 BODY=8BITMIME", code: 250, enh: "2.1.0"},
			{send: "RCPT TO:<b@example.com>", code: 250, enh: "2.1.5"},
			{send: "DATA", code: 354, enh: "2.0.0"},
			{send: "x\r\n.", code: 250, enh: "2.0.0"},
		}},
		{"EHLO lists extensions", []step{
			{send: "EHLO x", code: 250, enh: "-", text: "PIPELINING\nSIZE 1000\n8BITMIME\nENHANCEDSTATUSCODES\nSMTPUTF8\nCHUNKING"},
		}},
		{"EHLO without argument", []step{{send: "EHLO", code: 501, enh: "5.5.4", text: "Syntax: EHLO hostname"}}},
		{"HELO without argument", []step{{send: "HELO", code: 501, enh: "5.5.4", text: "Syntax: HELO hostname"}}},
		{"EHLO with control character", []step{{send: "EHLO a\x01b", code: 501, enh: "5.5.4"}}},
		{"lower-case verbs and space after colon", []step{
			{send: "ehlo x", code: 250, enh: "-"},
			{send: "mail from: <a@example.org>", code: 250, enh: "2.1.0"},
			{send: "rcpt to: <b@example.com>", code: 250, enh: "2.1.5"},
			{send: "data", code: 354, enh: "2.0.0"},
			{send: ".", code: 250, enh: "2.0.0"},
		}},
		{"paths without angle brackets", []step{
			ehlo,
			{send: "MAIL FROM:a@example.org SIZE=20", code: 250, enh: "2.1.0"},
			{send: "RCPT TO: b@example.com", code: 250, enh: "2.1.5"},
			{send: "RCPT TO:nobody@example.com", code: 550, enh: "5.1.1"},
			{send: "RCPT TO:b@example.com junk=", code: 501, enh: "5.5.4"},
			{send: "DATA", code: 354, enh: "2.0.0"},
			{send: "x\r\n.", code: 250, enh: "2.0.0"},
		}},
		{"NOOP VRFY HELP RSET", []step{
			{send: "NOOP", code: 250, enh: "2.0.0"},
			{send: "NOOP anything", code: 250, enh: "2.0.0"},
			{send: "VRFY someone", code: 252, enh: "2.5.0"},
			{send: "VRFY", code: 501, enh: "5.5.4"},
			{send: "HELP", code: 214, enh: "2.0.0", text: "EHLO HELO MAIL RCPT DATA BDAT RSET NOOP VRFY HELP QUIT"},
			{send: "RSET", code: 250, enh: "2.0.0"},
			{send: "RSET x", code: 501, enh: "5.5.4"},
			{send: "EXPN list", code: 502, enh: "5.5.1"},
			{send: "QUIT", code: 221, enh: "2.0.0"},
		}},
		{"sequence errors", []step{
			{send: "MAIL FROM:<a@b.c>", code: 503, enh: "5.5.1"},
			{send: "RCPT TO:<a@b.c>", code: 503, enh: "5.5.1"},
			{send: "DATA", code: 503, enh: "5.5.1"},
			ehlo,
			{send: "RCPT TO:<a@b.c>", code: 503, enh: "5.5.1", text: "Need MAIL before RCPT"},
			{send: "DATA", code: 503, enh: "5.5.1", text: "Need MAIL before DATA"},
			{send: "BDAT 3 LAST\r\nx", code: 503, enh: "5.5.1", text: "No valid transaction; BDAT data discarded"},
			{send: "MAIL FROM:<a@b.c>", code: 250, enh: "2.1.0"},
			{send: "MAIL FROM:<a@b.c>", code: 503, enh: "5.5.1"},
			{send: "DATA", code: 503, enh: "5.5.1", text: "Need RCPT before DATA"},
			{send: "RSET", code: 250, enh: "2.0.0"},
			{send: "RCPT TO:<a@b.c>", code: 503, enh: "5.5.1"},
			{send: "STARTTLS", code: 502, enh: "5.5.1"},
		}},
		{"syntax errors", []step{
			ehlo,
			{send: "MAIL a@b.c", code: 501, enh: "5.5.4"},
			{send: "MAIL FROM:a@", code: 501, enh: "5.5.4"},
			{send: "MAIL FROM:<a@b.c", code: 501, enh: "5.5.4"},
			{send: "MAIL FROM:<a b@c>", code: 501, enh: "5.5.4"},
			{send: "MAIL FROM:<a@b..c>", code: 501, enh: "5.5.4"},
			{send: "MAIL FROM:<a@b.c> SIZE=abc", code: 501, enh: "5.5.4"},
			{send: "MAIL FROM:<a@b.c> BODY=9BIT", code: 501, enh: "5.5.4"},
			{send: "MAIL FROM:<a@b.c> SMTPUTF8=yes", code: 501, enh: "5.5.4"},
			{send: "MAIL FROM:<a@b.c> SIZE=1 SIZE=2", code: 501, enh: "5.5.4"},
			{send: "MAIL FROM:<a@b.c> FOO=bar", code: 555, enh: "5.5.4"},
			{send: "MAIL FROM:<a@b.c> =x", code: 501, enh: "5.5.4"},
			{send: "MAIL FROM:<a@b.c>junk", code: 501, enh: "5.5.4"},
			{send: "MAIL FROM:<a@b.c> AUTH=<>", code: 250, enh: "2.1.0"},
			{send: "RCPT b@example.com", code: 501, enh: "5.5.4"},
			{send: "RCPT TO:<>", code: 501, enh: "5.5.4"},
			{send: "RCPT TO:<b@example.com> NOTIFY=NEVER", code: 555, enh: "5.5.4"},
			{send: "RCPT TO:<\"unterminated@example.com>", code: 501, enh: "5.5.4"},
			{send: "DATA now", code: 501, enh: "5.5.4"},
		}},
		{"path forms", []step{
			ehlo,
			{send: "MAIL FROM:<@relay.example,@other.example:a@example.org> BODY=8BITMIME SIZE=100", code: 250, enh: "2.1.0"},
			{send: `RCPT TO:<"john doe"@example.com>`, code: 250, enh: "2.1.5"},
			{send: "RCPT TO:<user@[192.0.2.1]>", code: 250, enh: "2.1.5"},
			{send: "RCPT TO:<Postmaster>", code: 250, enh: "2.1.5"},
		}},
		{"path too long", []step{
			ehlo,
			{send: "MAIL FROM:<" + strings.Repeat("a", 250) + "@example.org>", code: 501, enh: "5.5.4"},
			{send: "MAIL FROM:<a@" + strings.Repeat("b", 250) + ".org>", code: 501, enh: "5.5.4"},
			{send: "MAIL FROM:<a@b.org>", code: 250, enh: "2.1.0"},
			{send: "RCPT TO:<" + strings.Repeat("a", 64) + "@" + strings.Repeat("b.", 95) + "org>", code: 501, enh: "5.5.4"},
		}},
		{"non-ASCII without SMTPUTF8", []step{
			ehlo,
			{send: "MAIL FROM:<jöran@example.org>", code: 553, enh: "5.6.7"},
			{send: "MAIL FROM:<a@example.org>", code: 250, enh: "2.1.0"},
			{send: "RCPT TO:<用户@例子.广告>", code: 553, enh: "5.6.7"},
			{send: "RSET", code: 250, enh: "2.0.0"},
			{send: "MAIL FROM:<jöran@example.org> SMTPUTF8", code: 250, enh: "2.1.0"},
			{send: "RCPT TO:<用户@例子.广告>", code: 250, enh: "2.1.5"},
			{send: "RCPT TO:<bad\xff@example.com>", code: 501, enh: "5.5.4"},
		}},
		{"unknown command", []step{
			{send: "FOO bar", code: 500, enh: "5.5.2"},
			{send: "\r\n", raw: true, code: 500, enh: "5.5.2"},
			{send: "M@IL", code: 500, enh: "5.5.2"},
		}},
		{"known extensions not offered", []step{
			ehlo,
			{send: "AUTH PLAIN AGFAYg==", code: 502, enh: "5.5.1"},
			{send: "auth login", code: 502, enh: "5.5.1"},
			{send: "ETRN example.org", code: 502, enh: "5.5.1"},
			{send: "EXPN staff", code: 502, enh: "5.5.1"},
			{send: "MAIL FROM:<a@example.org>", code: 250, enh: "2.1.0"},
		}},
		{"line too long", []step{
			{send: "NOOP " + strings.Repeat("x", 507), code: 500, enh: "5.5.2", text: "Line too long"},
			{send: "NOOP " + strings.Repeat("x", 505), code: 250, enh: "2.0.0"}, // 512 with CRLF
			{send: "NOOP " + strings.Repeat("x", 60000), code: 500, enh: "5.5.2"},
			{send: "NOOP", code: 250, enh: "2.0.0"},
			ehlo,
			// MAIL may be longer (RFC 1870, 6152, 6531 extensions).
			// 530 octets: past 512 but within MAIL's allowance, so parsed.
			{send: "MAIL FROM:<a@b.c> " + strings.Repeat("x", 510), code: 555, enh: "5.5.4"},
			{send: "MAIL FROM:<a@b.c> " + strings.Repeat("x", 545), code: 500, enh: "5.5.2"},
		}},
		{"bare LF command terminator", []step{
			{send: "EHLO x\nNOOP\n", raw: true, code: 250, enh: "-"},
			{code: 250, enh: "2.0.0"},
		}},
		{"unknown recipient and dedup", []step{
			ehlo,
			{send: "MAIL FROM:<a@example.org>", code: 250, enh: "2.1.0"},
			{send: "RCPT TO:<nobody@example.com>", code: 550, enh: "5.1.1"},
			{send: "RCPT TO:<b@example.com>", code: 250, enh: "2.1.5"},
			{send: "RCPT TO:<b@EXAMPLE.com>", code: 250, enh: "2.1.5"},
			{send: "RCPT TO:<c@example.com>", code: 250, enh: "2.1.5"},
			{send: "RCPT TO:<d@example.com>", code: 250, enh: "2.1.5"},
			{send: "RCPT TO:<e@example.com>", code: 452, enh: "4.5.3"},
			{send: "RCPT TO:<c@example.com>", code: 250, enh: "2.1.5"}, // duplicate, not counted
		}},
		{"SIZE too large at MAIL", []step{
			ehlo,
			{send: "MAIL FROM:<a@example.org> SIZE=1001", code: 552, enh: "5.3.4"},
			{send: "MAIL FROM:<a@example.org> SIZE=99999999999999999999999", code: 552, enh: "5.3.4"},
			{send: "MAIL FROM:<a@example.org> SIZE=1000", code: 250, enh: "2.1.0"},
		}},
		{"DATA too large, session usable after", []step{
			ehlo,
			{send: "MAIL FROM:<a@example.org>", code: 250, enh: "2.1.0"},
			{send: "RCPT TO:<b@example.com>", code: 250, enh: "2.1.5"},
			{send: "DATA", code: 354, enh: "2.0.0"},
			{send: strings.Repeat("0123456789012345678901234567890123456789\r\n", 100) + ".", code: 552, enh: "5.3.4"},
			{send: "MAIL FROM:<a@example.org>", code: 250, enh: "2.1.0"},
			{send: "RCPT TO:<b@example.com>", code: 250, enh: "2.1.5"},
			{send: "DATA", code: 354, enh: "2.0.0"},
			{send: "small\r\n.", code: 250, enh: "2.0.0"},
		}},
		{"BODY=BINARYMIME needs BDAT", []step{
			ehlo,
			{send: "MAIL FROM:<a@example.org> BODY=BINARYMIME", code: 250, enh: "2.1.0"},
			{send: "RCPT TO:<b@example.com>", code: 250, enh: "2.1.5"},
			{send: "DATA", code: 503, enh: "5.5.1"},
			{send: "BDAT 3 LAST", raw: false},
			{send: "a\x00b", raw: true, code: 250, enh: "2.0.0"},
		}},
		{"pipelined transaction in one write", []step{
			ehlo,
			{send: "MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.com>\r\nRCPT TO:<nobody@example.com>\r\nRCPT TO:<c@example.com>\r\nDATA\r\n", raw: true, code: 250, enh: "2.1.0"},
			{code: 250, enh: "2.1.5"},
			{code: 550, enh: "5.1.1"},
			{code: 250, enh: "2.1.5"},
			{code: 354, enh: "2.0.0"},
			{send: "pipelined\r\n.\r\nNOOP\r\nQUIT\r\n", raw: true, code: 250, enh: "2.0.0"},
			{code: 250, enh: "2.0.0"},
			{code: 221, enh: "2.0.0"},
		}},
		{"BDAT", []step{
			ehlo,
			{send: "MAIL FROM:<a@example.org>", code: 250, enh: "2.1.0"},
			{send: "RCPT TO:<b@example.com>", code: 250, enh: "2.1.5"},
			{send: "BDAT 5\r\nhello", raw: true, code: 250, enh: "2.0.0", text: "5 octets"},
			{send: "NOOP", code: 250, enh: "2.0.0"},
			{send: "DATA", code: 503, enh: "5.5.1"},
			{send: "BDAT 7 LAST\r\n world\n", raw: true, code: 250, enh: "2.0.0", text: "queued as"},
			{send: "MAIL FROM:<a@example.org>", code: 250, enh: "2.1.0"},
			{send: "RCPT TO:<b@example.com>", code: 250, enh: "2.1.5"},
			{send: "BDAT 0 LAST", code: 250, enh: "2.0.0", text: "queued as"},
		}},
		{"BDAT pipelined with RSET", []step{
			ehlo,
			{send: "MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.com>\r\nBDAT 3\r\nabcRSET\r\nBDAT 2 LAST\r\nxy", raw: true, code: 250, enh: "2.1.0"},
			{code: 250, enh: "2.1.5"},
			{code: 250, enh: "2.0.0", text: "3 octets"},
			{code: 250, enh: "2.0.0"},               // RSET
			{code: 503, enh: "5.5.1"},               // BDAT without transaction, chunk skipped
			{send: "NOOP", code: 250, enh: "2.0.0"}, // still in sync
		}},
		{"BDAT errors", []step{
			{send: "BDAT 4\r\nQUIT", raw: true, code: 503, enh: "5.5.1"},
			ehlo,
			{send: "MAIL FROM:<a@example.org>", code: 250, enh: "2.1.0"},
			{send: "BDAT 4 LAST\r\nQUIT", raw: true, code: 503, enh: "5.5.1"}, // no RCPT yet
			{send: "RCPT TO:<b@example.com>", code: 250, enh: "2.1.5"},
			{send: "BDAT 1001 LAST\r\n" + strings.Repeat("x", 1001), raw: true, code: 552, enh: "5.3.4"},
			{send: "MAIL FROM:<a@example.org>", code: 250, enh: "2.1.0"},
			{send: "RCPT TO:<b@example.com>", code: 250, enh: "2.1.5"},
			{send: "BDAT 600\r\n" + strings.Repeat("x", 600), raw: true, code: 250, enh: "2.0.0"},
			{send: "BDAT 600 LAST\r\n" + strings.Repeat("x", 600), raw: true, code: 552, enh: "5.3.4"},
			{send: "NOOP", code: 250, enh: "2.0.0"},
			{send: "BDAT x", code: 501, enh: "5.5.4"},
			{code: 421, enh: "4.7.0", text: "Closing connection"},
			{closed: true},
		}},
		{"BDAT size too long to skip", []step{
			ehlo,
			{send: "MAIL FROM:<a@example.org>", code: 250, enh: "2.1.0"},
			{send: "RCPT TO:<b@example.com>", code: 250, enh: "2.1.5"},
			{send: "BDAT 10000000000000000000 LAST\r\nhello", raw: true, code: 552, enh: "5.3.4"},
			{code: 421, enh: "4.7.0", text: "Closing connection"},
			{closed: true},
		}},
		{"endless line closes", []step{
			{send: "NOOP " + strings.Repeat("x", 100000), code: 500, enh: "5.5.2"},
			{code: 421, enh: "4.7.0", text: "Closing connection"},
			{closed: true},
		}},
		{"HTTP request", []step{
			{send: "GET / HTTP/1.1", code: 221, enh: "2.7.0"},
			{closed: true},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			runScript(t, ts.addr, tc.steps)
		})
	}
}

// TestJunkCommandLimit: 100 commands that move no mail are answered, the
// 101st closes the session; a message taken starts the count again.
func TestJunkCommandLimit(t *testing.T) {
	ts := startServer(t, Config{}, nil)
	junk := func(n int) []step {
		var steps []step
		for i := range n {
			switch i % 4 {
			case 0:
				steps = append(steps, step{send: "NOOP", code: 250, enh: "2.0.0"})
			case 1:
				steps = append(steps, step{send: "RSET", code: 250, enh: "2.0.0"})
			case 2:
				steps = append(steps, step{send: "VRFY x", code: 252, enh: "2.5.0"})
			default:
				steps = append(steps, step{send: "EHLO x", code: 250, enh: "-"})
			}
		}
		return steps
	}
	script := junk(100)
	script = append(script,
		step{send: "MAIL FROM:<a@example.org>", code: 250, enh: "2.1.0"},
		step{send: "RCPT TO:<b@example.com>", code: 250, enh: "2.1.5"},
		step{send: "DATA", code: 354, enh: "2.0.0"},
		step{send: "x\r\n.", code: 250, enh: "2.0.0"})
	script = append(script, junk(100)...)
	script = append(script,
		step{send: "NOOP", code: 421, enh: "4.7.0", text: "Too many commands without mail"},
		step{closed: true})
	runScript(t, ts.addr, script)
}

// TestRefusedCommandLimit: 1000 refused or repeated recipients are
// answered, the 1001st closes the session; a message taken starts the
// count again. (An unknown recipient alone never counts as a bad
// command.)
func TestRefusedCommandLimit(t *testing.T) {
	ts := startServer(t, Config{}, policy{deny: []string{"nobody@example.com"}})
	refused := func(n int) []step {
		var steps []step
		for i := range n {
			if i%10 == 9 {
				steps = append(steps, step{send: "RCPT TO:<b@example.com>", code: 250, enh: "2.1.5"}) // again
				continue
			}
			steps = append(steps, step{send: "RCPT TO:<nobody@example.com>", code: 550, enh: "5.1.1"})
		}
		return steps
	}
	script := []step{
		{send: "EHLO x", code: 250, enh: "-"},
		{send: "MAIL FROM:<a@example.org>", code: 250, enh: "2.1.0"},
		{send: "RCPT TO:<b@example.com>", code: 250, enh: "2.1.5"},
	}
	script = append(script, refused(maxRefusedCommands)...)
	script = append(script,
		step{send: "DATA", code: 354, enh: "2.0.0"},
		step{send: "x\r\n.", code: 250, enh: "2.0.0"},
		step{send: "MAIL FROM:<a@example.org>", code: 250, enh: "2.1.0"},
		step{send: "RCPT TO:<b@example.com>", code: 250, enh: "2.1.5"})
	script = append(script, refused(maxRefusedCommands)...)
	script = append(script,
		step{send: "RCPT TO:<nobody@example.com>", code: 550, enh: "5.1.1"},
		step{code: 421, enh: "4.7.0"},
		step{closed: true})
	runScript(t, ts.addr, script)
}

// Between BDAT chunks too: NOOPs and empty chunks count, so that a
// transfer kept open on them cannot hold its slot for the session limit.
func TestJunkCommandLimitDuringBDAT(t *testing.T) {
	ts := startServer(t, Config{}, nil)
	script := []step{
		{send: "EHLO x", code: 250, enh: "-"},
		{send: "MAIL FROM:<a@example.org>", code: 250, enh: "2.1.0"},
		{send: "RCPT TO:<b@example.com>", code: 250, enh: "2.1.5"},
		{send: "BDAT 3\r\nx", code: 250, enh: "2.0.0"},
	}
	for i := range 99 { // with the EHLO, 100
		if i%2 == 0 {
			script = append(script, step{send: "NOOP", code: 250, enh: "2.0.0"})
		} else {
			script = append(script, step{send: "BDAT 0", code: 250, enh: "2.0.0"})
		}
	}
	script = append(script,
		step{send: "BDAT 0", code: 421, enh: "4.7.0", text: "Too many commands without mail"},
		step{closed: true})
	runScript(t, ts.addr, script)
	if n := len(ts.acc.messages()); n != 0 {
		t.Errorf("%d messages taken from a transfer cut off", n)
	}
}

func TestEnvelopeAndReceived(t *testing.T) {
	fixed := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	ts := startServer(t, Config{Now: func() time.Time { return fixed }}, nil)
	runScript(t, ts.addr, []step{
		{send: "EHLO evil\rBcc: x", code: 501, enh: "5.5.4"},
		{send: "EHLO client (evil) x", code: 250, enh: "-"},
		{send: "MAIL FROM:<@hop.example:a@example.org> SMTPUTF8 BODY=8BITMIME", code: 250, enh: "2.1.0"},
		{send: "RCPT TO:<b@example.com>", code: 250, enh: "2.1.5"},
		{send: "DATA", code: 354, enh: "2.0.0"},
		{send: "Subject: x\r\n\r\nbody\r\n.", code: 250, enh: "2.0.0"},
		{send: "MAIL FROM:<>", code: 250, enh: "2.1.0"},
		{send: "RCPT TO:<b@example.com>", code: 250, enh: "2.1.5"},
		{send: "RCPT TO:<c@example.com>", code: 250, enh: "2.1.5"},
		{send: "DATA", code: 354, enh: "2.0.0"},
		{send: "x\r\n.", code: 250, enh: "2.0.0"},
	})
	msgs := ts.acc.messages()
	if len(msgs) != 2 {
		t.Fatalf("%d messages", len(msgs))
	}
	m := msgs[0].msg
	if m.Envelope.MailFrom != "a@example.org" || strings.Join(m.Envelope.RcptTo, ",") != "b@example.com" ||
		m.Envelope.Helo != "client (evil) x" || !m.Envelope.SMTPUTF8 || m.Envelope.Body != "8BITMIME" || m.Envelope.TLS != nil {
		t.Errorf("envelope %+v", m.Envelope)
	}
	if host, _, err := net.SplitHostPort(m.Envelope.RemoteAddr); err != nil || host != "127.0.0.1" {
		t.Errorf("remote addr %q", m.Envelope.RemoteAddr)
	}
	if !m.ReceivedAt.Equal(fixed) || len(m.ID) != 26 {
		t.Errorf("id %q received %v", m.ID, m.ReceivedAt)
	}
	wantHdr := "Received: from client??evil??x (unknown [127.0.0.1])\r\n\tby mx.test (mailhook) with UTF8SMTP id " + m.ID +
		"\r\n\tfor <b@example.com>;\r\n\tSat, 28 Nov 2026 12:00:00 +0000\r\n"
	if got := string(msgs[0].body); got != wantHdr+"Subject: x\r\n\r\nbody\r\n" {
		t.Errorf("body\n%q\nwant\n%q", got, wantHdr+"Subject: x\r\n\r\nbody\r\n")
	}
	m2 := msgs[1]
	if m2.msg.Envelope.MailFrom != "" || len(m2.msg.Envelope.RcptTo) != 2 {
		t.Errorf("envelope 2 %+v", m2.msg.Envelope)
	}
	if h := string(m2.body); strings.Contains(h, "for <") || !strings.Contains(h, "with ESMTP id "+m2.msg.ID+";\r\n\t") {
		t.Errorf("header 2 %q", h)
	}
	if string(dataOf(t, m2)) != "x\r\n" {
		t.Errorf("data 2 %q", dataOf(t, m2))
	}
	for _, l := range strings.Split(string(msgs[0].body), "\r\n") {
		if len(l) > 998 {
			t.Errorf("line longer than 998: %q", l)
		}
	}
}

func TestBDATBody(t *testing.T) {
	ts := startServer(t, Config{}, nil)
	runScript(t, ts.addr, []step{
		ehlo,
		{send: "MAIL FROM:<a@example.org> BODY=BINARYMIME", code: 250, enh: "2.1.0"},
		{send: "RCPT TO:<b@example.com>", code: 250, enh: "2.1.5"},
		{send: "BDAT 6\r\n.\r\n\r\n\n", raw: true, code: 250, enh: "2.0.0"},
		{send: "BDAT 3\r\nx\ry", raw: true, code: 250, enh: "2.0.0"},
		{send: "BDAT 0 LAST", code: 250, enh: "2.0.0"},
	})
	msgs := ts.acc.messages()
	if len(msgs) != 1 || string(dataOf(t, msgs[0])) != ".\r\n\r\n\nx\ry" || msgs[0].msg.Envelope.Body != "BINARYMIME" {
		t.Fatalf("got %d messages: %+v", len(msgs), msgs)
	}
}

func TestStorageFailure(t *testing.T) {
	ts := startServer(t, Config{}, nil)
	ts.acc.fail = errors.New("disk on fire at /var/secret")
	conn, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	r := bufio.NewReader(conn)
	if _, err := readReply(r); err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "EHLO x\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<d@e.f>\r\nDATA\r\n")
	for range 4 {
		if _, err := readReply(r); err != nil {
			t.Fatal(err)
		}
	}
	fmt.Fprintf(conn, "hello\r\n.\r\n")
	rep, err := readReply(r)
	if err != nil || rep.code != 451 || rep.enh != "4.3.0" {
		t.Fatalf("got %v %v", rep, err)
	}
	if strings.Contains(rep.lines[0], "fire") {
		t.Fatalf("internal error text leaked: %v", rep)
	}
	i := strings.Index(rep.lines[0], "(ref ")
	if i < 0 {
		t.Fatalf("no ref in %v", rep)
	}
	ref := strings.TrimSuffix(rep.lines[0][i+5:], ")")
	logs := ts.logs.String()
	if !strings.Contains(logs, "ref="+ref) || !strings.Contains(logs, "disk on fire") || !strings.Contains(logs, "level=ERROR") {
		t.Fatalf("log lacks ref %s and cause:\n%s", ref, logs)
	}
	// The session goes on.
	playSteps(t, conn, r, []step{{send: "NOOP", code: 250, enh: "2.0.0"}})
}

type replierErr struct{}

func (replierErr) Error() string { return "refused by route" }
func (replierErr) SMTPReply() (int, string, string) {
	return 550, "5.7.1", "Rejected by application\r\nInjected: yes"
}

func TestAcceptorReplies(t *testing.T) {
	tests := []struct {
		name      string
		fail      error
		failNow   error
		code      int
		enh, text string
	}{
		{"replier", fmt.Errorf("wrapped: %w", replierErr{}), nil, 550, "5.7.1", "Rejected by application  Injected: yes"},
		{"sentinel too large", fmt.Errorf("store: %w", ErrMessageTooLarge), nil, 552, "5.3.4", ""},
		{"fails without reading", nil, errors.New("store down"), 451, "4.3.0", "ref "},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ts := startServer(t, Config{}, nil)
			ts.acc.fail, ts.acc.failNow = tc.fail, tc.failNow
			runScript(t, ts.addr, []step{
				ehlo,
				{send: "MAIL FROM:<a@example.org>", code: 250, enh: "2.1.0"},
				{send: "RCPT TO:<b@example.com>", code: 250, enh: "2.1.5"},
				{send: "DATA", code: 354, enh: "2.0.0"},
				{send: strings.Repeat("line of text\r\n", 5000) + ".", code: tc.code, enh: tc.enh, text: tc.text},
				{send: "NOOP", code: 250, enh: "2.0.0"},
			})
		})
	}
}

func TestAcceptorContractViolation(t *testing.T) {
	ts := startServer(t, Config{}, nil)
	lazy := AcceptorFunc(func(_ context.Context, m *Message) error { return nil }) // never reads
	ts.srv.acc = lazy
	runScript(t, ts.addr, []step{
		ehlo,
		{send: "MAIL FROM:<a@example.org>", code: 250, enh: "2.1.0"},
		{send: "RCPT TO:<b@example.com>", code: 250, enh: "2.1.5"},
		{send: "DATA", code: 354, enh: "2.0.0"},
		{send: "x\r\n.", code: 451, enh: "4.3.0"},
		{send: "NOOP", code: 250, enh: "2.0.0"},
	})
}

func TestTooManyBadCommands(t *testing.T) {
	ts := startServer(t, Config{MaxBadCommands: 3}, nil)
	runScript(t, ts.addr, []step{
		{send: "FOO", code: 500, enh: "5.5.2"},
		{send: "NOOP", code: 250, enh: "2.0.0"}, // resets the count
		{send: "FOO", code: 500, enh: "5.5.2"},
		{send: "BAR", code: 500, enh: "5.5.2"},
		{send: "MAIL FROM:<a@b.c>", code: 503, enh: "5.5.1"},
		{code: 421, enh: "4.7.0"},
		{closed: true},
	})
}

func TestTimeouts(t *testing.T) {
	t.Run("command", func(t *testing.T) {
		ts := startServer(t, Config{CommandTimeout: 200 * time.Millisecond}, nil)
		runScript(t, ts.addr, []step{
			ehlo,
			{code: 421, enh: "4.4.2"},
			{closed: true},
		})
	})
	t.Run("data", func(t *testing.T) {
		ts := startServer(t, Config{DataTimeout: 200 * time.Millisecond}, nil)
		runScript(t, ts.addr, []step{
			ehlo,
			{send: "MAIL FROM:<a@example.org>", code: 250, enh: "2.1.0"},
			{send: "RCPT TO:<b@example.com>", code: 250, enh: "2.1.5"},
			{send: "DATA", code: 354, enh: "2.0.0"},
			{send: "partial line", code: 451, enh: "4.4.2"},
			{code: 421, enh: "4.7.0", text: "Closing connection"},
			{closed: true},
		})
		if n := len(ts.acc.messages()); n != 0 {
			t.Fatalf("%d messages accepted", n)
		}
	})
	t.Run("session cap (slowloris)", func(t *testing.T) {
		ts := startServer(t, Config{SessionTimeout: 300 * time.Millisecond}, nil)
		conn, err := net.Dial("tcp", ts.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		r := bufio.NewReader(conn)
		if _, err := readReply(r); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		go func() {
			for range 100 {
				if _, err := conn.Write([]byte("N")); err != nil {
					return
				}
				time.Sleep(20 * time.Millisecond)
			}
		}()
		rep, err := readReply(r)
		if err != nil || rep.code != 421 || rep.enh != "4.4.2" {
			t.Fatalf("got %v %v", rep, err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("session lasted %v", d)
		}
	})
}

func TestConnectionCaps(t *testing.T) {
	ts := startServer(t, Config{MaxSessions: 3, MaxSessionsPerIP: 2}, nil)
	var conns []net.Conn
	for range 2 {
		c, rep := greet(t, nil, ts.addr)
		if rep.code != 220 {
			t.Fatalf("banner %v", rep)
		}
		conns = append(conns, c)
	}
	// Third from the same IP: refused at once, before sending anything.
	runScriptRefused := func(addr string) {
		t.Helper()
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		r := bufio.NewReader(c)
		rep, err := readReply(r)
		if err != nil || rep.code != 421 || rep.enh != "4.7.0" {
			t.Fatalf("got %v %v", rep, err)
		}
		if _, err := r.ReadByte(); err == nil {
			t.Fatal("connection not closed")
		}
	}
	runScriptRefused(ts.addr)
	// A different source address (127.0.0.2) still gets in, up to MaxSessions.
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}
	c, err := d.Dial("tcp", ts.addr)
	if err != nil {
		t.Skipf("cannot bind 127.0.0.2: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	if rep, err := readReply(bufio.NewReader(c)); err != nil || rep.code != 220 {
		t.Fatalf("banner %v %v", rep, err)
	}
	if _, rep := greet(t, d, ts.addr); rep.code != 421 || rep.enh != "4.7.0" {
		t.Fatalf("over MaxSessions: %v", rep)
	}
	// Closing one frees its slot.
	conns[0].Close()
	waitFor(t, "slot freed", func() bool {
		ts.srv.mu.Lock()
		defer ts.srv.mu.Unlock()
		return len(ts.srv.sessions) == 2
	})
	runScript(t, ts.addr, []step{{send: "NOOP", code: 250, enh: "2.0.0"}})
}

func TestPanicRecovered(t *testing.T) {
	ts := startServer(t, Config{}, nil)
	ts.allowPanic = true
	ts.acc.panicMsg = "boom"
	ts.acc.started = make(chan struct{}, 1)
	// A second session, open before and after the panic.
	other, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	or := bufio.NewReader(other)
	if _, err := readReply(or); err != nil {
		t.Fatal(err)
	}
	playSteps(t, other, or, []step{ehlo, {send: "MAIL FROM:<a@example.org>", code: 250, enh: "2.1.0"}})

	runScript(t, ts.addr, []step{
		ehlo,
		{send: "MAIL FROM:<a@example.org>", code: 250, enh: "2.1.0"},
		{send: "RCPT TO:<b@example.com>", code: 250, enh: "2.1.5"},
		{send: "DATA", code: 354, enh: "2.0.0"},
		{send: "x\r\n.", code: 421, enh: "4.3.0", text: "ref "},
		{closed: true},
	})
	<-ts.acc.started
	if ts.srv.PanicsRecovered() != 1 {
		t.Fatalf("panics = %d", ts.srv.PanicsRecovered())
	}
	if logs := ts.logs.String(); !strings.Contains(logs, "panic in session") || !strings.Contains(logs, "goroutine") {
		t.Fatalf("panic not logged with stack:\n%s", logs)
	}
	ts.acc.mu.Lock()
	ts.acc.panicMsg = ""
	ts.acc.mu.Unlock()
	playSteps(t, other, or, []step{
		{send: "RCPT TO:<b@example.com>", code: 250, enh: "2.1.5"},
		{send: "DATA", code: 354, enh: "2.0.0"},
		{send: "x\r\n.", code: 250, enh: "2.0.0"},
	})
	<-ts.acc.started
}

// A session closed on a client that is still sending (here an endless
// command line) ends with a clean close, not a reset: the client reads
// 500, then 421, then the end of the stream, with its data unread by us
// when we gave up.
func TestCloseAfterErrorIsNoReset(t *testing.T) {
	ts := startServer(t, Config{}, nil)
	c, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	if rep, err := readReply(r); err != nil || rep.code != 220 {
		t.Fatalf("banner %+v %v", rep, err)
	}
	go func() {
		junk := bytes.Repeat([]byte("x"), 64<<10)
		for range 8 { // 512 KiB without a line break, more than we read
			if _, err := c.Write(junk); err != nil {
				return
			}
		}
	}()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	for _, want := range []int{500, 421} {
		if rep, err := readReply(r); err != nil || rep.code != want {
			t.Fatalf("got %+v %v, want %d", rep, err, want)
		}
	}
	if b, err := r.ReadByte(); err != io.EOF {
		t.Fatalf("after 421: %q, %v; want io.EOF (a close, not a reset)", b, err)
	}
}

// TestRoomAtMail: a Config.Room that says no refuses MAIL with 452 4.3.1,
// asked with the SIZE the client declared (0 without one), and the session
// goes on; the next MAIL is asked again.
func TestRoomAtMail(t *testing.T) {
	var full atomic.Bool
	var asked atomic.Int64
	ts := startServer(t, Config{MaxMessageBytes: 1000, Room: func(size int64) bool {
		asked.Store(size)
		return !full.Load() && size <= 500
	}}, policy{})
	runScript(t, ts.addr, []step{
		ehlo,
		{send: "MAIL FROM:<a@example.org> SIZE=501", code: 452, enh: "4.3.1", text: "Insufficient system storage"},
		{send: "RCPT TO:<b@example.com>", code: 503, enh: "5.5.1"},             // no transaction was started
		{send: "MAIL FROM:<a@example.org> SIZE=1001", code: 552, enh: "5.3.4"}, // over the limit: permanent, Room not asked
		{send: "MAIL FROM:<a@example.org> SIZE=500", code: 250, enh: "2.1.0"},
		{send: "RSET", code: 250, enh: "2.0.0"},
		{send: "MAIL FROM:<a@example.org>", code: 250, enh: "2.1.0"},
		{send: "RCPT TO:<b@example.com>", code: 250, enh: "2.1.5"},
		{send: "DATA", code: 354, enh: "2.0.0"},
		{send: "Subject: hi\r\n\r\nhello\r\n.", code: 250, enh: "2.0.0"},
	})
	if got := asked.Load(); got != 0 {
		t.Errorf("Room asked with %d for a MAIL without SIZE, want 0", got)
	}

	// A real client sees a temporary failure at MAIL, with SIZE or without.
	full.Store(true)
	c, err := gosmtp.Dial(ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	err = c.Mail("a@example.org", &gosmtp.MailOptions{Size: 200})
	var se *gosmtp.SMTPError
	if !errors.As(err, &se) || se.Code != 452 || se.EnhancedCode != (gosmtp.EnhancedCode{4, 3, 1}) {
		t.Fatalf("go-smtp Mail with SIZE=200 on a full store: %v, want 452 4.3.1", err)
	}
	if got := asked.Load(); got != 200 {
		t.Errorf("Room asked with %d, want the declared SIZE 200", got)
	}
	if err := c.Reset(); err != nil {
		t.Fatal(err)
	}
	full.Store(false)
	if err := c.Mail("a@example.org", &gosmtp.MailOptions{Size: 200}); err != nil {
		t.Fatalf("MAIL once there is room again: %v", err)
	}
}

// TestRoomRefusalsBounded: MAILs refused for want of room count toward the
// limit on refused commands (a client looping on them is closed), but the
// 503s the RCPTs and DATA pipelined after one get are not the client's
// mistakes and do not end the session as errors would.
func TestRoomRefusalsBounded(t *testing.T) {
	ts := startServer(t, Config{Room: func(int64) bool { return false }}, policy{})

	t.Run("pipelined recipients after a refused MAIL", func(t *testing.T) {
		steps := []step{ehlo}
		var batch strings.Builder
		batch.WriteString("MAIL FROM:<a@example.org>\r\n")
		for i := range 15 {
			fmt.Fprintf(&batch, "RCPT TO:<r%d@example.com>\r\n", i)
		}
		batch.WriteString("DATA\r\n")
		steps = append(steps, step{send: batch.String(), raw: true, code: 452, enh: "4.3.1"})
		for range 15 {
			steps = append(steps, step{code: 503, enh: "5.5.1"})
		}
		steps = append(steps, step{code: 503, enh: "5.5.1"}, // DATA
			step{send: "NOOP", code: 250, enh: "2.0.0"})
		runScript(t, ts.addr, steps)
	})

	t.Run("a loop on MAIL is closed", func(t *testing.T) {
		c, err := net.Dial("tcp", ts.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(30 * time.Second))
		r := bufio.NewReader(c)
		fmt.Fprintf(c, "HELO client.test\r\n")
		for range 2 { // banner, HELO
			if _, err := r.ReadString('\n'); err != nil {
				t.Fatal(err)
			}
		}
		const n = 3 * maxRefusedCommands
		go func() {
			w := bufio.NewWriter(c)
			for range n {
				w.WriteString("MAIL FROM:<a@example.org>\r\n")
			}
			w.Flush()
		}()
		for i := range n {
			l, err := r.ReadString('\n')
			if err != nil || strings.HasPrefix(l, "421") {
				if i < maxRefusedCommands {
					t.Fatalf("closed after %d refused MAILs (%q, %v), want %d", i, l, err, maxRefusedCommands)
				}
				return
			}
			if !strings.HasPrefix(l, "452 4.3.1") {
				t.Fatalf("reply %d: %q, want 452 4.3.1", i, l)
			}
		}
		t.Fatalf("%d MAILs refused for want of room and the session is still open", n)
	})
}
