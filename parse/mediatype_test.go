package parse

import (
	"maps"
	"slices"
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
	emt, eparams, einvalid, eerr := mediatype.ParseWithOptions(v, mediatype.ParseOptions{})
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
