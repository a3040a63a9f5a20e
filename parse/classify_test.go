package parse

import (
	"net/mail"
	"testing"
	"time"
)

// FuzzPlainFields: for every header mimeHeader can write, plainFields
// either declines or reads the same Content-Type and
// Content-Transfer-Encoding as enmime's header reader, so classify and
// enmime agree on which entities are multiparts.
func FuzzPlainFields(f *testing.F) {
	f.Add("text/plain; charset=utf-8", "quoted-printable", "attachment; filename=a.txt", "<id@x>")
	f.Add("multipart/mixed; boundary=\"b 1\"", "7bit", "", "")
	f.Add("  multipart/alternative;\tboundary=x  ", " BASE64 ", "inline", "")
	f.Add("text/html; name=\"a\r\nb\"", "8bit\n", "x\x00y", "é")
	f.Add("", "", "", "")
	f.Add("text/plain; charset=\x7f", "b\x1bse64", ": ", "a: b")
	f.Fuzz(func(t *testing.T, ctype, cte, disp, cid string) {
		var fields []field
		for i, v := range []string{ctype, cte, disp, cid} {
			if v != "" || i%2 == 0 {
				fields = append(fields, field{name: mimeFields[i], value: v})
			}
		}
		header, _ := mimeHeader(fields, &warnings{}, "part 1", "")
		pt, pc, ok := plainFields(header)
		if !ok {
			return
		}
		et, ec, eok := enmimeFields(header)
		if !eok {
			t.Fatalf("enmime cannot read %q, plainFields read it", header)
		}
		if pt != et || pc != ec {
			t.Fatalf("header %q: plainFields read (%q, %q), enmime (%q, %q)", header, pt, pc, et, ec)
		}
	})
}

// plainFields reads the headers mimeHeader writes for ordinary parts, and
// declines what it cannot read as enmime does.
func TestPlainFields(t *testing.T) {
	for _, tc := range []struct {
		header, ctype, cte string
		ok                 bool
	}{
		{"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n", "text/plain; charset=utf-8", "base64", true},
		{"Content-Disposition: attachment\r\n\r\n", "", "", true},
		{"\r\n", "", "", true},
		{"Content-Type: a\nb\r\n\r\n", "", "", false},
		{"X-Other: a\r\n\r\n", "", "", false},
		{"Content-Type: a\r\n", "", "", false},
	} {
		ct, cte, ok := plainFields([]byte(tc.header))
		if ct != tc.ctype || cte != tc.cte || ok != tc.ok {
			t.Errorf("plainFields(%q) = %q, %q, %v; want %q, %q, %v", tc.header, ct, cte, ok, tc.ctype, tc.cte, tc.ok)
		}
	}
}

// FuzzValidDate: the commonDate shortcut accepts only what
// net/mail.ParseDate accepts.
func FuzzValidDate(f *testing.F) {
	for _, s := range []string{"Mon, 2 Jan 2006 15:04:05 -0700", "Tue, 01 Dec 2026 23:59:60 +1400",
		"Wed, 31 Feb 2026 10:00:00 +0000", "2 Jan 2006 15:04:05 GMT", "Mon,  2 Jan 2006 15:04:05 -0700",
		"Mon, 2 Jan 2006 15:04:05 -0700 (PST)", "Fri, 13 Mar 2026 25:00:00 -0000", "Mon, 2 Jan 2006 15:04:05 -07000"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if _, err := time.Parse(commonDate, s); err != nil {
			return
		}
		if _, err := mail.ParseDate(s); err != nil {
			t.Fatalf("%q: the shortcut accepts it, net/mail says %v", s, err)
		}
	})
}
