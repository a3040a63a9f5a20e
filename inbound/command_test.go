package inbound

import (
	"reflect"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestParseCommand(t *testing.T) {
	tests := []struct {
		line string
		want command
		ok   bool
	}{
		{"EHLO example.com", command{"EHLO", "example.com"}, true},
		{"ehlo  example.com  ", command{"EHLO", "example.com"}, true},
		{"QUIT", command{"QUIT", ""}, true},
		{"StartTLS", command{"STARTTLS", ""}, true},
		{"MAIL FROM:<a@b>", command{"MAIL", "FROM:<a@b>"}, true},
		{"", command{}, false},
		{" NOOP", command{}, false},
		{"NO0P", command{}, false},
		{"VERYLONGVERBTHATISNOTREAL", command{}, false},
	}
	for _, tc := range tests {
		got, ok := parseCommand([]byte(tc.line))
		if ok != tc.ok || got != tc.want {
			t.Errorf("parseCommand(%q) = %+v, %v; want %+v, %v", tc.line, got, ok, tc.want, tc.ok)
		}
	}
}

func TestParsePath(t *testing.T) {
	tests := []struct {
		args   string
		kind   pathKind
		addr   string
		params []param
		enh    string // "" = ok
	}{
		{"FROM:<a@example.org>", reversePath, "a@example.org", nil, ""},
		{"from:<a@example.org>", reversePath, "a@example.org", nil, ""},
		{"FROM: <a@example.org>", reversePath, "a@example.org", nil, ""},
		{"FROM:<>", reversePath, "", nil, ""},
		{"FROM:<> SIZE=10 body=8bitmime", reversePath, "", []param{{"SIZE", "10", true}, {"BODY", "8bitmime", true}}, ""},
		{"FROM:<a@b.c> SMTPUTF8", reversePath, "a@b.c", []param{{"SMTPUTF8", "", false}}, ""},
		{"FROM:<a@b.c> SMTPUTF8 SMTPUTF8 BODY=8BITMIME body=8bitmime", reversePath, "a@b.c", []param{{"SMTPUTF8", "", false}, {"BODY", "8BITMIME", true}}, ""},
		{"FROM:<a@b.c> SIZE=1 SIZE=2", reversePath, "a@b.c", nil, "5.5.4"},
		{"FROM:<a@b.c> SMTPUTF8 SMTPUTF8=x", reversePath, "a@b.c", nil, "5.5.4"},
		{"FROM:<a@b.c>  SIZE=1", reversePath, "a@b.c", []param{{"SIZE", "1", true}}, ""},
		{"FROM:\t<a@b.c>\tSIZE=1\t BODY=7BIT", reversePath, "a@b.c", []param{{"SIZE", "1", true}, {"BODY", "7BIT", true}}, ""},
		{"FROM:a@b.c\tSIZE=1", reversePath, "a@b.c", []param{{"SIZE", "1", true}}, ""},
		{"FROM:<@r1.example,@r2.example:a@b.c>", reversePath, "a@b.c", nil, ""},
		{`FROM:<"a b>c"@b.c>`, reversePath, `"a b>c"@b.c`, nil, ""},
		{`FROM:<"a\"b"@b.c>`, reversePath, `"a\"b"@b.c`, nil, ""},
		{`TO:<"x"@b.c>`, forwardPath, "x@b.c", nil, ""},             // the same mailbox as x@b.c
		{`TO:<"x+tag.y"@b.c>`, forwardPath, "x+tag.y@b.c", nil, ""}, // a Dot-string needs no quotes
		{`TO:<"\x"@b.c>`, forwardPath, "x@b.c", nil, ""},            // nor does a quoted-pair of atext
		{`TO:<"x..y"@b.c>`, forwardPath, `"x..y"@b.c`, nil, ""},     // not a Dot-string: kept quoted
		{`TO:<".x"@b.c>`, forwardPath, `".x"@b.c`, nil, ""},
		{`TO:<"x@y"@b.c>`, forwardPath, `"x@y"@b.c`, nil, ""},
		{`TO:<""@b.c>`, forwardPath, `""@b.c`, nil, ""},
		{"FROM:<a@[192.0.2.1]>", reversePath, "a@[192.0.2.1]", nil, ""},
		{"FROM:<a@[IPv6:2001:db8::1]>", reversePath, "a@[IPv6:2001:db8::1]", nil, ""},
		{"FROM:<jöran@exämple.org>", reversePath, "jöran@exämple.org", nil, ""},
		{"TO:<Postmaster>", forwardPath, "Postmaster", nil, ""},
		{"TO:<b@c.d>", forwardPath, "b@c.d", nil, ""},
		{"TO:<>", forwardPath, "", nil, "5.5.4"},
		{"FROM:<Postmaster>", reversePath, "", nil, "5.5.4"},
		// Without angle brackets: a whole mailbox only.
		{"FROM:a@b.c", reversePath, "a@b.c", nil, ""},
		{"FROM: a@b.c SIZE=1", reversePath, "a@b.c", []param{{"SIZE", "1", true}}, ""},
		{"TO:b@c.d", forwardPath, "b@c.d", nil, ""},
		{"TO:postmaster", forwardPath, "postmaster", nil, ""},
		{"FROM:a b@c.d", reversePath, "", nil, "5.5.4"},
		{"FROM:a@b.c>", reversePath, "", nil, "5.5.4"},
		{"FROM:a@", reversePath, "", nil, "5.5.4"},
		{"FROM:postmaster", reversePath, "", nil, "5.5.4"},
		{"TO:a@b.c =x", forwardPath, "", nil, "5.5.4"},
		{`TO:"a b"@c.d`, forwardPath, "", nil, "5.5.4"},
		{"FROM <a@b.c>", reversePath, "", nil, "5.5.4"},
		{"TO:<a@b.c", forwardPath, "", nil, "5.5.4"},
		{"TO:<a@>", forwardPath, "", nil, "5.5.4"},
		{"TO:<@b.c>", forwardPath, "", nil, "5.5.4"},
		{"TO:<a@b_c.d>", forwardPath, "", nil, "5.5.4"},
		{"TO:<a@.b>", forwardPath, "", nil, "5.5.4"},
		{"TO:<a@b.>", forwardPath, "a@b", nil, ""}, // DNS's root dot, dropped
		{"TO:<a@b.c..>", forwardPath, "", nil, "5.5.4"},
		{"TO:<a@.>", forwardPath, "", nil, "5.5.4"},
		{"TO:<a@[]>", forwardPath, "", nil, "5.5.4"},
		{"TO:<a\x00@b.c>", forwardPath, "", nil, "5.5.4"},
		{"TO:<a@b.c>x", forwardPath, "", nil, "5.5.4"},
		{"TO:<a@b.c> =1", forwardPath, "", nil, "5.5.4"},
		{"TO:<a@b.c> A=", forwardPath, "", nil, "5.5.4"},
		{"TO:<a@b.c> A=1 a=2", forwardPath, "", nil, "5.5.4"},
		{"TO:<\xff@b.c>", forwardPath, "", nil, "5.5.4"},
		{"TO:<" + strings.Repeat("a", 65) + "@b.c>", forwardPath, strings.Repeat("a", 65) + "@b.c", nil, ""}, // VERP, SRS
		{"TO:<" + strings.Repeat("a", 260) + "@b.c>", forwardPath, "", nil, "5.5.4"},                         // the path limit
		{"TO:<" + strings.Repeat("a", 64) + "@b.c>", forwardPath, strings.Repeat("a", 64) + "@b.c", nil, ""},
		{"TO:<a@" + strings.Repeat("b.", 127) + "c>", forwardPath, "", nil, "5.5.4"},
	}
	for _, tc := range tests {
		p, r, ok := parsePath(tc.args, tc.kind)
		if tc.enh == "" {
			if !ok || p.addr != tc.addr || !reflect.DeepEqual(p.params, tc.params) {
				t.Errorf("parsePath(%q) = %+v, %v, %v; want %q %+v", tc.args, p, r, ok, tc.addr, tc.params)
			}
			continue
		}
		if ok || r.enh != tc.enh {
			t.Errorf("parsePath(%q) = %+v, %v, %v; want failure %s", tc.args, p, r, ok, tc.enh)
		}
	}
}

func TestParseBDAT(t *testing.T) {
	for _, tc := range []struct {
		args string
		want bdatArgs
		ok   bool
	}{
		{"0 LAST", bdatArgs{size: 0, last: true}, true},
		{"100", bdatArgs{size: 100}, true},
		{"100 last", bdatArgs{size: 100, last: true}, true},
		{"000000000000000000000100", bdatArgs{size: 100}, true},
		{"999999999999999999", bdatArgs{size: 999999999999999999}, true},
		{"9999999999999999999 LAST", bdatArgs{huge: true, last: true}, true},
		{"", bdatArgs{}, false},
		{"-1", bdatArgs{}, false},
		{"1 FIRST", bdatArgs{}, false},
		{"1 LAST x", bdatArgs{}, false},
		{"9999999999999999999 x", bdatArgs{}, false},
	} {
		got, ok := parseBDAT(tc.args)
		if ok != tc.ok || got != tc.want {
			t.Errorf("parseBDAT(%q) = %+v %v", tc.args, got, ok)
		}
	}
}

func FuzzParseCommand(f *testing.F) {
	for _, s := range []string{
		"EHLO example.com", "MAIL FROM:<a@b.c> SIZE=100 BODY=8BITMIME", "MAIL FROM:<>", "mail from: <a@b.c>",
		"RCPT TO:<Postmaster>", `RCPT TO:<"q \" d"@[IPv6:::1]>`, "RCPT TO:<@a.b,@c.d:x@y.z>", "BDAT 10 LAST",
		"MAIL FROM:<jöran@exämple.org> SMTPUTF8", "RCPT TO:<a@b.c> NOTIFY=NEVER", "DATA", "NOOP x\ty",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		c, ok := parseCommand(line)
		if !ok {
			return
		}
		c2, ok := parseCommand([]byte(c.String()))
		if !ok || c2 != c {
			t.Fatalf("round trip %q: %+v -> %q -> %+v %v", line, c, c.String(), c2, ok)
		}
		switch c.verb {
		case "MAIL", "RCPT":
			kind, prefix := reversePath, "FROM:"
			if c.verb == "RCPT" {
				kind, prefix = forwardPath, "TO:"
			}
			p, r, ok := parsePath(c.args, kind)
			if !ok {
				if r.code < 500 || r.enh == "" {
					t.Fatalf("bad failure reply %+v", r)
				}
				return
			}
			if len(p.addr)+2 > maxPath || strings.ContainsAny(p.addr, "\r\n\x00<>") && !strings.HasPrefix(p.addr, `"`) {
				t.Fatalf("accepted bad address %q", p.addr)
			}
			if !p.nonASCII && !isASCII(p.addr) || !utf8.ValidString(p.addr) {
				t.Fatalf("nonASCII flag wrong for %q", p.addr)
			}
			s := p.format(prefix)
			p2, r2, ok := parsePath(s, kind)
			if !ok || !reflect.DeepEqual(p, p2) {
				t.Fatalf("path round trip %q: %+v -> %q -> %+v %v %v", c.args, p, s, p2, r2, ok)
			}
		case "BDAT":
			a, ok := parseBDAT(c.args)
			if !ok || a.huge {
				return
			}
			s := strconv.FormatInt(a.size, 10)
			if a.last {
				s += " LAST"
			}
			if a2, ok := parseBDAT(s); !ok || a2 != a {
				t.Fatalf("BDAT round trip %q", c.args)
			}
		}
	})
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// Recipients are the same when they differ only in the case of the
// domain, or of a local part "postmaster" (RFC 5321 §4.5.1); other local
// parts keep their case (§2.4).
func TestDedupKey(t *testing.T) {
	for _, c := range []struct {
		a, b string
		same bool
	}{
		{"u@Example.COM", "u@example.com", true},
		{"POSTMASTER@mx.test", "postmaster@MX.TEST", true},
		{"PostMaster@mx.test", "postmaster@mx.test", true},
		{"U@example.com", "u@example.com", false},
		{"postmasters@mx.test", "Postmasters@mx.test", false},
	} {
		if got := dedupKey(c.a) == dedupKey(c.b); got != c.same {
			t.Errorf("dedupKey(%q) == dedupKey(%q): %v, want %v", c.a, c.b, got, c.same)
		}
	}
}
