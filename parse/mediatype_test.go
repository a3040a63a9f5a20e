package parse

import (
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/jhillyerd/enmime/v2/mediatype"
)

// FuzzParseMediaType: parseMediaType gives what enmime's own parser gives,
// on every input, so its shortcut changes no event.
func FuzzParseMediaType(f *testing.F) {
	for _, s := range mediaTypeSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		checkParseMediaType(t, v)
	})
}

// mediaTypeSeeds are what mailers write, and the near misses enmime
// repairs.
var mediaTypeSeeds = []string{
	"text/plain",
	"text/plain; charset=utf-8",
	"text/plain; charset=\"UTF-8\"; format=flowed; delsp=yes",
	"TEXT/HTML;CHARSET=iso-8859-1",
	"multipart/alternative; boundary=\"----=_Part_1234_5678.1700000000000\"",
	"multipart/mixed;\tboundary=000000000000a1b2c3d4e5f6",
	"application/pdf; name=\"report 2026.pdf\"",
	"attachment; filename=\"a;b.txt\"",
	"inline",
	"image/png; name=a.png; x-unix-mode=0644",
	"multipart/mixed; xboundary=1; boundary=2",
	"multipart/mixed; boundary=\"name=x\"; name=y",
	"text/plain; charset=utf-8; charset=us-ascii",
	"text/plain; CHARSET=a; charset=b",
	"text/plain charset=utf-8",
	"text/plain; charset",
	"text/plain;",
	"text/plain; name=\"=?utf-8?q?a?=\"",
	"text/html; charset=utf-8<br>",
	"attachment; filename*=iso-8859-1'fr'r%E9sum%E9.pdf",
	"application/octet-stream; name*0*=iso-8859-2''%A3%F3d%BC; name*1=\" plik.txt\"",
	"application/octet-stream; name*=utf-8''a%20b",
	"text/plain; name=\"a\\\"b\"",
	"text/plain; name=\"a\"b\"",
	"x-not-a-mime-type/x-not-a-mime-type",
	"text/",
	"a/b/c",
	"text/plain; a=b ; c=d",
	"text/plain; a=",
	"text/plain; =b",
	"text/plain; a=\"\"",
	"",
	" text/plain",
}

func checkParseMediaType(t *testing.T, v string) {
	t.Helper()
	mt, params, invalid, err := parseMediaType(v)
	// enmime on the value with its RFC 2231 charsets made UTF-8, which
	// parseMediaType does first either way.
	emt, eparams, einvalid, eerr := mediatype.ParseWithOptions(utf8Extended(v), mediatype.ParseOptions{})
	slices.Sort(invalid) // enmime lists them in map order
	slices.Sort(einvalid)
	if (err == nil) != (eerr == nil) || mt != emt || !maps.Equal(params, eparams) || !slices.Equal(invalid, einvalid) {
		t.Fatalf("%q: parseMediaType = %q %v %q %v; enmime %q %v %q %v", v, mt, params, invalid, err, emt, eparams, einvalid, eerr)
	}
}

// The shortcut takes the plain forms and leaves enmime the rest; either
// way the result is enmime's.
func TestPlainMediaType(t *testing.T) {
	for _, tc := range []struct {
		v     string
		plain bool
	}{
		{"text/plain", true},
		{"text/plain; charset=\"UTF-8\"; format=flowed", true},
		{"multipart/alternative; boundary=\"----=_Part_1_2.3\"", true},
		{"attachment; filename=\"a;b.txt\"", true},
		{"inline", true},
		{"text/", false},
		{"multipart/mixed; xboundary=1; boundary=2", false},
		{"text/plain; name=\"=?utf-8?q?a?=\"", false},
		{"text/plain; name*=utf-8''a", false},
		{"text/plain; a=\"b\\\"c\"", false},
		{"text/plain charset=utf-8", false},
		{"text/plain;", false},
		{"text/plain; a=b\r\n", false},
		{"text/plain; a=b<br>", false},
	} {
		if got := plainMediaType(tc.v); got != tc.plain {
			t.Errorf("plainMediaType(%q) = %v, want %v", tc.v, got, tc.plain)
		}
	}
	for _, s := range mediaTypeSeeds {
		checkParseMediaType(t, s)
	}
}

// RFC 2231 values in charsets other than UTF-8 and US-ASCII, or in none,
// which mime.ParseMediaType drops, come through converted to UTF-8,
// sections joined; what cannot be decoded is left to the parser as it was.
func TestExtendedParamsInOtherCharsets(t *testing.T) {
	for _, tc := range []struct{ v, param, want string }{
		{"attachment; filename*=iso-8859-1'fr'r%E9sum%E9%20final.pdf", "filename", "résumé final.pdf"},
		{"attachment; FILENAME*=windows-1252''%93quoted%94%20%80.txt; size=10", "filename", "“quoted” €.txt"},
		{"application/octet-stream; name*0*=iso-8859-2''%A3%F3d%BC; name*1=\" plik.txt\"", "name", "Łódź plik.txt"},
		{"text/plain; name*=koi8-r''%F0%D2%C9%D7%C5%D4.txt; charset=koi8-r", "name", "Привет.txt"},
		{"text/plain; name*=koi8-r''%F0%D2%C9%D7%C5%D4.txt; charset=koi8-r", "charset", "koi8-r"},
		{"attachment; filename*=shift_jis''%93%FA%96%7B.txt", "filename", "日本.txt"},
		{"attachment; filename*=utf-8''%C3%A9.txt", "filename", "é.txt"},
		{"attachment; filename*=x-unknown''abc.txt", "filename", "abc.txt"},
		// No charset (RFC 2231 allows it), or one no table knows: UTF-8
		// if the bytes are, else windows-1252.
		{"attachment; filename*=x-unknown''%E9.txt", "filename", "é.txt"},
		{"attachment; filename*=x-mac-unknown''r%E9sum%E9.pdf", "filename", "résumé.pdf"},
		{"attachment; filename*=''b%C3%A9.pdf", "filename", "bé.pdf"},
		{"attachment; filename*0*=''b%C3%A9; filename*1=.pdf", "filename", "bé.pdf"},
		{"multipart/mixed; boundary*=ansi-x3.4-1968''XYZ", "boundary", "XYZ"},
		{`multipart/signed; boundary*="ansi-x3.4-1968''EeQfGwPcQSOJBaQU"; protocol="application/pgp-signature"`, "boundary", "EeQfGwPcQSOJBaQU"},
		{`attachment; filename*="iso-8859-1''%E9t%E9.txt"`, "filename", "été.txt"},
		{"attachment; filename*=iso-8859-1''bad%ZZ.txt", "filename", ""},
		{`attachment; filename="a;b*=c"; x*=iso-8859-1''%E9`, "filename", "a;b*=c"},
		{`attachment; filename="a;b*=c"; x*=iso-8859-1''%E9`, "x", "é"},
	} {
		_, params, _, err := parseMediaType(tc.v)
		if err != nil || params[tc.param] != tc.want {
			t.Errorf("parseMediaType(%q)[%s] = %q (%v), want %q", tc.v, tc.param, params[tc.param], err, tc.want)
		}
	}
	for _, v := range []string{"text/plain; charset=utf-8", "attachment; filename*=utf-8''a.txt", "attachment; filename*=us-ascii''a.txt"} {
		if got := utf8Extended(v); got != v {
			t.Errorf("utf8Extended(%q) = %q, want it unchanged", v, got)
		}
	}
}

// What follows a quoted value up to the next ";" is read as mail clients
// read it: comments dropped, a missing ";" put in, other text dropped;
// values without quotes or comments are left alone.
func TestTidyParams(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{`multipart/mixed; boundary="abc" (comment)`, `multipart/mixed; boundary="abc"`},
		{`multipart/mixed; boundary="abc"(a (nested) one); charset=x`, `multipart/mixed; boundary="abc"; charset=x`},
		{`multipart/report; boundary="40F1/x.uk" Message-Id: <1@x.uk>`, `multipart/report; boundary="40F1/x.uk"`},
		{`multipart/mixed; boundary="abc" type="text/html"`, `multipart/mixed; boundary="abc"; type="text/html"`},
		{`multipart/mixed; boundary="abc", charset=utf-8`, `multipart/mixed; boundary="abc"; charset=utf-8`},
		{`multipart/mixed; boundary="abc"x; charset=utf-8`, `multipart/mixed; boundary="abc"; charset=utf-8`},
		{`attachment; filename="a b.pdf" (comment)`, `attachment; filename="a b.pdf"`},
		{`attachment; filename="a \"b\" (c).pdf" size=12`, `attachment; filename="a \"b\" (c).pdf"; size=12`},
		{`text/plain (plain text); charset="koi8-r" (Cyrillic)`, `text/plain; charset="koi8-r"`},
		// Unquoted values: comments dropped, a missing ";" put in, other
		// words kept (an unquoted filename with spaces).
		{`text/plain; charset=koi8-r (Cyrillic)`, `text/plain; charset=koi8-r`},
		{`text/plain; (d) charset=koi8-r`, `text/plain;  charset=koi8-r`},
		{`multipart/mixed; boundary=b1 (comment)`, `multipart/mixed; boundary=b1`},
		{`multipart/mixed; boundary=b1 type=x`, `multipart/mixed; boundary=b1; type=x`},
		{`attachment; filename=my file.pdf`, `attachment; filename=my file.pdf`},
		{`attachment; filename=file (1).pdf`, `attachment; filename=file (1).pdf`},
		// An unquoted name or filename keeps its words and parentheses,
		// and parentheses inside an unquoted value are part of it.
		{`attachment; filename=Document (2)`, `attachment; filename=Document (2)`},
		{`attachment; filename=Q1 results=final.pdf`, `attachment; filename=Q1 results=final.pdf`},
		{`attachment; filename*0=a (1).pdf`, `attachment; filename*0=a (1).pdf`},
		{`multipart/mixed; boundary=b(c)`, `multipart/mixed; boundary=b(c)`},
		{`multipart/mixed; boundary=(x)`, `multipart/mixed; boundary=(x)`},
		{`(c) attachment; filename="a.pdf"`, `attachment; filename="a.pdf"`},
		// Left alone.
		{`text/plain; charset="utf-8"`, `text/plain; charset="utf-8"`},
		{`text/plain; charset="utf-8" ; format=flowed`, `text/plain; charset="utf-8" ; format=flowed`},
		{`attachment; filename=file(1).pdf`, `attachment; filename=file(1).pdf`},
		{`attachment; filename="unclosed (x)`, `attachment; filename="unclosed (x)`},
		{`text/plain (unclosed; charset=x`, `text/plain (unclosed; charset=x`},
		{`text/html charset=utf-8`, `text/html charset=utf-8`},
	} {
		if got := tidyParams(tt.in); got != tt.want {
			t.Errorf("tidyParams(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// FuzzTidyParams: tidyParams never grows a value by more than one "; " a
// parameter, leaves a value without quotes, parentheses or a missing ";"
// unchanged, and is idempotent.
func FuzzTidyParams(f *testing.F) {
	for _, s := range []string{`multipart/mixed; boundary="abc" (c)`, `a; b="c" d=e`, `a; b="c\"" , d`, `x (y (z)); q="r`, `text/plain`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		got := tidyParams(v)
		if !strings.ContainsAny(v, `"(`) && !paramAfterSpace(v) && got != v {
			t.Fatalf("tidyParams(%q) = %q: changed a value without quotes, comments or a missing \";\"", v, got)
		}
		if len(got) > len(v)+2*strings.Count(v, "=") {
			t.Fatalf("tidyParams(%q) = %q: grew", v, got)
		}
		if again := tidyParams(got); again != got {
			t.Fatalf("tidyParams not idempotent: %q -> %q -> %q", v, got, again)
		}
	})
}

// BenchmarkTidyParams: values tidyParams repairs, and hostile ones (16
// KiB fields, as mimeHeader allows) that must cost time linear in their
// size.
func BenchmarkTidyParams(b *testing.B) {
	for name, v := range map[string]string{
		"bounce":             `multipart/report; report-type=delivery-status; boundary="40F1/x.uk" Message-Id: <1@x.uk>`,
		"missing semicolons": "text/plain" + strings.Repeat(" x=y", 4<<10),
		"spaces, comments":   "text/plain;" + strings.Repeat(" ", 8000) + strings.Repeat("(a)", 2700),
		"quoted, comments":   "text/plain; " + strings.Repeat(`a="b" (c) `, 1600),
	} {
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(v)))
			for b.Loop() {
				tidyParams(v)
			}
		})
	}
}
