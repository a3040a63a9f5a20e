package inbound

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"net/smtp"
	"net/textproto"
	"strings"
	"testing"

	gosmtp "github.com/emersion/go-smtp"
)

// testBodies are sent by the real clients and must arrive byte for byte.
func testBodies() map[string][]byte {
	var big bytes.Buffer
	for i := 0; big.Len() < 3<<20; i++ {
		if i%10 == 0 {
			big.WriteString(".leading dot line\r\n")
		}
		fmt.Fprintf(&big, "line %07d: %s\r\n", i, strings.Repeat("0123456789", 7))
	}
	return map[string][]byte{
		"simple": []byte("From: a@example.org\r\nTo: b@example.com\r\nSubject: hi\r\n\r\nhello\r\n"),
		"dots":   []byte("Subject: dots\r\n\r\n.\r\n..\r\n.hidden\r\n...three\r\nend .\r\n"),
		"utf8":   []byte("Subject: =?utf-8?q?caf=C3=A9?=\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nCafé, naïve, 日本語, emoji 🎉\r\n"),
		"3MB":    big.Bytes(),
	}
}

func checkArrived(t *testing.T, ts *testServer, want []byte, rcpts int) {
	t.Helper()
	msgs := ts.acc.messages()
	if len(msgs) == 0 {
		t.Fatal("no message")
	}
	m := msgs[len(msgs)-1]
	if got := dataOf(t, m); !bytes.Equal(got, want) {
		t.Fatalf("body differs: got %d octets, want %d\n got %q\nwant %q", len(got), len(want), got[:min(len(got), 200)], want[:min(len(want), 200)])
	}
	if len(m.msg.Envelope.RcptTo) != rcpts {
		t.Fatalf("rcpts %v", m.msg.Envelope.RcptTo)
	}
}

func TestNetSMTPSendMail(t *testing.T) {
	ts := startServer(t, Config{}, nil)
	for name, body := range testBodies() {
		t.Run(name, func(t *testing.T) {
			if err := smtp.SendMail(ts.addr, nil, "a@example.org", []string{"b@example.com", "c@example.com"}, body); err != nil {
				t.Fatal(err)
			}
			checkArrived(t, ts, body, 2)
		})
	}
}

func TestNetSMTPClient(t *testing.T) {
	ts := startServer(t, Config{}, policy{deny: []string{"nobody@example.com"}})
	c, err := smtp.Dial(ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("client.example"); err != nil {
		t.Fatal(err)
	}
	if ok, size := c.Extension("SIZE"); !ok || size != "26214400" {
		t.Fatalf("SIZE %v %q", ok, size)
	}
	// net/smtp wants 250 to VRFY; we answer 252 (RFC 5321 §3.5.3).
	var te *textproto.Error
	if err := c.Verify("someone@example.com"); !errors.As(err, &te) || te.Code != 252 || !strings.HasPrefix(te.Msg, "2.5.0 ") {
		t.Fatalf("VRFY: %v", err)
	}
	for name, body := range testBodies() {
		if err := c.Mail("a@example.org"); err != nil {
			t.Fatal(name, err)
		}
		var te *textproto.Error
		if err := c.Rcpt("nobody@example.com"); !errors.As(err, &te) || te.Code != 550 || !strings.HasPrefix(te.Msg, "5.1.1 ") {
			t.Fatalf("unknown recipient: %v", err)
		}
		if err := c.Rcpt("b@example.com"); err != nil {
			t.Fatal(err)
		}
		w, err := c.Data()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(body); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		checkArrived(t, ts, body, 1)
		if err := c.Reset(); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Noop(); err != nil {
		t.Fatal(err)
	}
	if err := c.Quit(); err != nil {
		t.Fatal(err)
	}
}

func TestGoSMTPClient(t *testing.T) {
	cert, _, _ := selfSigned(t, "")
	ts := startServer(t, Config{TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}}}, nil)
	for _, mode := range []string{"plain", "starttls"} {
		t.Run(mode, func(t *testing.T) {
			var (
				c   *gosmtp.Client
				err error
			)
			if mode == "plain" {
				c, err = gosmtp.Dial(ts.addr)
			} else {
				c, err = gosmtp.DialStartTLS(ts.addr, &tls.Config{InsecureSkipVerify: true, ServerName: "mx.test"})
			}
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if err := c.Hello("gosmtp.example"); err != nil {
				t.Fatal(err)
			}
			for name, body := range testBodies() {
				if err := c.Mail("a@example.org", &gosmtp.MailOptions{Size: int64(len(body))}); err != nil {
					t.Fatal(name, err)
				}
				if err := c.Rcpt("b@example.com", nil); err != nil {
					t.Fatal(err)
				}
				w, err := c.Data()
				if err != nil {
					t.Fatal(err)
				}
				if _, err := w.Write(body); err != nil {
					t.Fatal(err)
				}
				if err := w.Close(); err != nil {
					t.Fatal(err)
				}
				checkArrived(t, ts, body, 1)
				m := ts.acc.messages()
				env := m[len(m)-1].msg.Envelope
				if (mode == "starttls") != (env.TLS != nil) || env.Body != "8BITMIME" {
					t.Fatalf("envelope %+v", env)
				}
			}
			// SMTPUTF8 with a non-ASCII address.
			if err := c.SendMail("jöran@example.org", []string{"用户@例子.广告"}, strings.NewReader("Subject: ü\r\n\r\nü\r\n")); err != nil {
				t.Fatal(err)
			}
			m := ts.acc.messages()
			if env := m[len(m)-1].msg.Envelope; !env.SMTPUTF8 || env.MailFrom != "jöran@example.org" || env.RcptTo[0] != "用户@例子.广告" {
				t.Fatalf("envelope %+v", env)
			}
			// Too large at MAIL (RFC 1870).
			err = c.Mail("a@example.org", &gosmtp.MailOptions{Size: 26214401})
			if se, ok := err.(*gosmtp.SMTPError); !ok || se.Code != 552 || se.EnhancedCode != (gosmtp.EnhancedCode{5, 3, 4}) {
				t.Fatalf("oversized MAIL: %#v", err)
			}
			if err := c.Quit(); err != nil {
				t.Fatal(err)
			}
		})
	}
}
