package main

import (
	"bytes"
	"encoding/base64"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"strings"
	"testing"
)

// message returns the DATA bytes of message seq (without the terminating
// ".\r\n"), as a sender would put them on the wire.
func message(t *testing.T, tmpl *template, run string, seq uint64) []byte {
	t.Helper()
	head := bytes.Clone(tmpl.head)
	for _, off := range tmpl.offsets {
		putToken(head[off:], run, seq)
	}
	wire := append(head, tmpl.tail...)
	if !bytes.HasSuffix(wire, []byte("\r\n.\r\n")) {
		t.Fatalf("message does not end with CRLF.CRLF")
	}
	return wire[:len(wire)-3]
}

func TestTemplateIsValidMIMEOfRequestedSize(t *testing.T) {
	const run = "0badc0de"
	for _, tc := range []struct {
		size   string
		attach bool
	}{
		{"2KB", false}, {"3000", false}, {"3001", false}, {"10KB", false}, {"64KB", false},
		{"65537", true}, {"100KB", true}, {"1MB", true}, {"25MB", true},
	} {
		t.Run(tc.size, func(t *testing.T) {
			size, err := parseSize(tc.size)
			if err != nil {
				t.Fatal(err)
			}
			tmpl, err := buildTemplate(size, "from@example.org", "to@example.com")
			if err != nil {
				t.Fatal(err)
			}
			const seq = 4711
			msg := message(t, tmpl, run, seq)
			if len(msg) != size || tmpl.size != size {
				t.Fatalf("message is %d bytes (template says %d), want %d", len(msg), tmpl.size, size)
			}
			if len(tmpl.head) > 1024 {
				t.Errorf("head is %d bytes; the per-sender copy should stay small", len(tmpl.head))
			}
			checkLines(t, msg)
			tok := make([]byte, tokenLen)
			putToken(tok, run, seq)

			m, err := mail.ReadMessage(bytes.NewReader(msg))
			if err != nil {
				t.Fatal(err)
			}
			if s := m.Header.Get("Subject"); !strings.Contains(s, string(tok)) {
				t.Errorf("Subject %q lacks token %s", s, tok)
			}
			if id := m.Header.Get("Message-ID"); id != "<"+string(tok)+"@mailhook-bench.invalid>" {
				t.Errorf("Message-ID = %q", id)
			}
			if _, err := m.Header.AddressList("From"); err != nil {
				t.Errorf("From: %v", err)
			}
			if _, err := m.Header.Date(); err != nil {
				t.Errorf("Date: %v", err)
			}
			parts := walk(t, m.Header.Get("Content-Type"), m.Body)
			want := []string{"text/plain", "text/html"}
			if tc.attach {
				want = append(want, "application/pdf")
			}
			if len(parts) != len(want) {
				t.Fatalf("parts %v, want %v", keys(parts), want)
			}
			for i, p := range parts {
				if p.ctype != want[i] {
					t.Errorf("part %d is %s, want %s", i, p.ctype, want[i])
				}
				if i == 0 && !bytes.Contains(p.body, tok) {
					t.Errorf("%s part lacks the token", p.ctype)
				}
			}
			if tc.attach {
				pdf := parts[2]
				if !bytes.HasPrefix(pdf.body, []byte("%PDF-1.4")) {
					t.Errorf("attachment starts %q", pdf.body[:min(16, len(pdf.body))])
				}
				if len(pdf.body) < size/2 {
					t.Errorf("attachment is %d bytes of a %d-byte message", len(pdf.body), size)
				}
			}
		})
	}
}

func TestTemplateBelowMinimum(t *testing.T) {
	tmpl, err := buildTemplate(10, "a@example.org", "b@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if tmpl.size < 500 || tmpl.size > 2048 {
		t.Errorf("smallest message is %d bytes", tmpl.size)
	}
}

// checkLines asserts SMTP-safe lines: CRLF only, no line over 998
// characters, none starting with '.' (no dot-stuffing needed).
func checkLines(t *testing.T, msg []byte) {
	t.Helper()
	if !bytes.HasSuffix(msg, []byte("\r\n")) {
		t.Error("message does not end with CRLF")
	}
	for i, line := range bytes.Split(msg, []byte("\r\n")) {
		if bytes.ContainsAny(line, "\r\n") {
			t.Fatalf("line %d has a bare CR or LF", i+1)
		}
		if len(line) > 998 {
			t.Fatalf("line %d is %d characters", i+1, len(line))
		}
		if bytes.HasPrefix(line, []byte(".")) {
			t.Fatalf("line %d starts with a dot", i+1)
		}
	}
}

type part struct {
	ctype string
	body  []byte
}

func keys(ps []part) []string {
	var s []string
	for _, p := range ps {
		s = append(s, p.ctype)
	}
	return s
}

// walk returns the leaf parts of a MIME entity, decoded.
func walk(t *testing.T, ctype string, r io.Reader) []part {
	t.Helper()
	mt, params, err := mime.ParseMediaType(ctype)
	if err != nil {
		t.Fatalf("Content-Type %q: %v", ctype, err)
	}
	if !strings.HasPrefix(mt, "multipart/") {
		b, err := io.ReadAll(r)
		if err != nil {
			t.Fatal(err)
		}
		return []part{{mt, b}}
	}
	mr := multipart.NewReader(r, params["boundary"])
	var out []part
	for {
		p, err := mr.NextRawPart()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("%s: %v", mt, err)
		}
		var body io.Reader = p
		if strings.EqualFold(p.Header.Get("Content-Transfer-Encoding"), "base64") {
			body = base64.NewDecoder(base64.StdEncoding, p)
		}
		out = append(out, walk(t, p.Header.Get("Content-Type"), body)...)
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int{
		"2KB": 2048, "2kb": 2048, "1MB": 1 << 20, "25MB": 25 << 20, "25 MB": 25 << 20, "1.5KB": 1536,
		"4096": 4096, "10K": 10240, "3MiB": 3 << 20, "100B": 100,
	} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "KB", "-1KB", "2XB", "2GBB", "5GB"} {
		if _, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q) accepted", in)
		}
	}
}
