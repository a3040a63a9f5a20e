package parse

import (
	"net/mail"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzNameIs: nameIs agrees with comparing strings.ToLower of the name,
// for any name, against any lower-case name.
func FuzzNameIs(f *testing.F) {
	for _, s := range [][2]string{{"Subject", "Subject"}, {"MESSAGE-ID", "message-id"}, {"Fro", "From"},
		{"\u212Aey", "Key"}, {"ſubject", "subject"}, {"To\xff", "to"}, {"", ""}, {"İd", "id"}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, name, other string) {
		lower := strings.ToLower(other)
		if got, want := nameIs(name, lower), strings.ToLower(name) == lower; got != want {
			t.Fatalf("nameIs(%q, %q) = %v, want %v", name, lower, got, want)
		}
	})
}

// Fields are found by name whatever its case; a repeated single field is
// taken from its first occurrence with a warning, and repeated address
// fields give the addresses of all. A name that only folds to a known
// one (U+017F) is not it.
func TestRepeatedFields(t *testing.T) {
	raw := "SUBJECT: first\r\nTo: a@example.com\r\nsubject: second\r\n\u017fubject: not a subject\r\n" +
		"tO: b@example.com, c@example.com\r\nFrom: s@example.org\r\n\r\nbody\r\n"
	d, err := Parse(strings.NewReader(raw), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if d.Subject != "first" {
		t.Errorf("Subject = %q, want the first field's", d.Subject)
	}
	var to []string
	for _, a := range d.To {
		to = append(to, a.Address)
	}
	if strings.Join(to, " ") != "a@example.com b@example.com c@example.com" {
		t.Errorf("To = %v, want the addresses of both fields in order", to)
	}
	if len(d.From) != 1 || d.From[0].Address != "s@example.org" {
		t.Errorf("From = %v", d.From)
	}
	for _, w := range []string{"2 Subject header fields, RFC 5322 allows one: using the first",
		"2 To header fields, RFC 5322 allows one: addresses from all are listed"} {
		if !slices.Contains(d.Warnings, w) {
			t.Errorf("warnings %q lack %q", d.Warnings, w)
		}
	}
}

// Encoded words are decoded as mime.WordDecoder decodes them, and also
// when base64 lacks its padding or an unterminated word comes first; a
// word that does not decode stays as written. ISO-8859-1 words are read
// as windows-1252.
func TestEncodedWordsLenient(t *testing.T) {
	for in, want := range map[string]string{
		"=?UTF-8?B?w6k?= and =?UTF-8?B?SGVsbG8gV29ybGQ?=":            "é and Hello World",
		"Re: =?UTF-8?Q?broken | =?UTF-8?Q?Caf=C3=A9?=":               "Re: =?UTF-8?Q?broken | Café",
		"=?iso-8859-1?q?this is some text?=   =?UTF-8?Q?caf=C3=A9?=": "this is some textcafé",
		"=?UTF-8?Q?a?= =?UTF-8?Q?b?= c =?UTF-8?Q?d?=":                "ab c d",
		"plain =?UTF-8?B?not base64!?= text":                         "plain =?UTF-8?B?not base64!?= text",
		"=?UTF-8?X?abc?= =?utf-8??x?= =?":                            "=?UTF-8?X?abc?= =?utf-8??x?= =?",
		"=?ISO-8859-1?Q?Andr=E9?= Pirard <PIRARD@vm1.ulg.ac.be>":     "André Pirard <PIRARD@vm1.ulg.ac.be>",
		"=?iso-8859-1?Q?=93Hi=94_caf=E9_=80?=":                       "“Hi” café €",                   // windows-1252's, as meant
		"=?iso-8859-1?Q?und=81ef=8D=90=9D?=":                         "und\u0081ef\u008d\u0090\u009d", // none there: ISO-8859-1's
	} {
		if got, _ := newWordDecoder().decode(in); got != want {
			t.Errorf("decode(%q) = %q, want %q", in, got, want)
		}
	}
}

func FuzzDecodeWords(f *testing.F) {
	for _, s := range []string{"=?UTF-8?B?w6k?=", "=?utf-8?q?a_b?= =?utf-8?q?c?=", "=?x?Q?=?= =?", "=?UTF-8?B?w6?=", "a =?UTF-8?Q?=FF?= b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out, _ := newWordDecoder().decode(s)
		if utf8.ValidString(s) && !utf8.ValidString(out) { // callers hand it valid UTF-8 (from8bit)
			t.Fatalf("decode(%q) = %q, not valid UTF-8", s, out)
		}
		if !strings.Contains(s, "=?") && out != s {
			t.Fatalf("decode(%q) = %q: no encoded word, yet changed", s, out)
		}
	})
}

// In an address field's value, a decoded display name holding an RFC
// 5322 special comes back quoted, so the value still reads as the same
// list; elsewhere, and without specials, decoded text stands as it is.
func TestDecodedNamesQuotedInAddressFields(t *testing.T) {
	for in, want := range map[string]string{
		"=?utf-8?q?M=C3=BCller,_Hans?= <h@x.de>, b@y": `"Müller, Hans" <h@x.de>, b@y`,
		`"=?utf-8?q?M=C3=BCller,_Hans?=" <h@x.de>`:    `"Müller, Hans" <h@x.de>`,
		"=?utf-8?q?Jos=C3=A9?= <j@x.es>":              "José <j@x.es>",
		"=?utf-8?q?a?= =?utf-8?q?,b?= <x@y>":          `"a,b" <x@y>`,
		"=?utf-8?q?a=22b,c?= <x@y>":                   `"a\"b,c" <x@y>`,
		"=?utf-8?q?J._Smith?= <j@x>":                  "J. Smith <j@x>",
		"Team: =?utf-8?q?a=40b?= <a@b>;":              `Team: "a@b" <a@b>;`,
	} {
		if got, _ := newWordDecoder().decodeAddressField(in); got != want {
			t.Errorf("decodeAddressField(%q) = %q, want %q", in, got, want)
		}
	}
	if got, _ := newWordDecoder().decode("=?utf-8?q?M=C3=BCller,_Hans?="); got != "Müller, Hans" {
		t.Errorf("decode (not an address field) = %q", got)
	}
	raw := "To: =?utf-8?q?M=C3=BCller=2C_Hans?= <h@x.de>\r\nSubject: =?utf-8?q?a=2Cb?=\r\n\r\nx\r\n"
	d, err := Parse(strings.NewReader(raw), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if d.Headers[0].Value != `"Müller, Hans" <h@x.de>` || d.Headers[1].Value != "a,b" || d.Subject != "a,b" {
		t.Errorf("headers %+v, subject %q", d.Headers, d.Subject)
	}
	if len(d.To) != 1 || d.To[0].Name != "Müller, Hans" || d.To[0].Address != "h@x.de" {
		t.Errorf("to %+v", d.To)
	}
}

// A comma left raw in a Q-encoded display name (RFC 2047 §5 wants =2C)
// does not split the address list inside the word.
func TestRawSpecialInEncodedName(t *testing.T) {
	raw := "To: =?utf-8?q?M=C3=BCller,_Hans?= <h@x.de>, =?utf-8?b?Sm9zw6k=?= <j@x.es>\r\n\r\nx\r\n"
	d, err := Parse(strings.NewReader(raw), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(d.To) != 2 || d.To[0].Name != "Müller, Hans" || d.To[0].Address != "h@x.de" || d.To[1].Name != "José" {
		t.Errorf("to %+v", d.To)
	}
	for in, want := range map[string]string{
		"=?utf-8?q?a,b?= <x@y>":       "=?utf-8?q?a=2Cb?= <x@y>",
		"=?utf-8?q?a=2Cb?= <x@y>":     "=?utf-8?q?a=2Cb?= <x@y>",
		"=?utf-8?b?YSxi?= <x@y>, c@d": "=?utf-8?b?YSxi?= <x@y>, c@d",
		"a, b, =?x":                   "a, b, =?x",
	} {
		if got := escapeWordSpecials(in); got != want {
			t.Errorf("escapeWordSpecials(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzAddresses: any address field reads without a panic into valid
// UTF-8, and a list net/mail reads whole reads as net/mail reads it.
func FuzzAddresses(f *testing.F) {
	for _, v := range []string{
		`"Joe Q. Public" <joe@example.com>, Taro <taro..yamada.@docomo.ne.jp>`,
		"Mary Smith <@node.test:mary@example.net>, Ann <ann@example.com>",
		`Pete(A nice \) chap) <pete(his account)@silly.test(his host)>`,
		"ann@example.com <ann@example.com>, Bob <bob@example.com>",
		"Team: Ann <ann @ example.com>, Bob <b@x>;, c@x",
		"=?UTF-8?Q?Zo=C3=AB?= <z@x>, \"Doe, J.\" <j@x>",
		"undisclosed-recipients:;",
		"<<<a@x>>> ,,, (((",
	} {
		f.Add(v)
	}
	f.Fuzz(func(t *testing.T, v string) {
		if strings.ContainsAny(v, "\r\n") {
			return
		}
		w := &warnings{}
		hr := newHeaderReader(splitHeader([]byte("To: "+v+"\r\n\r\n"), w, ""), newWordDecoder(), w)
		got := hr.addresses("To")
		for _, a := range got {
			if !utf8.ValidString(a.Name) || !utf8.ValidString(a.Address) {
				t.Fatalf("%q: not UTF-8: %q", v, got)
			}
		}
		i, n := hr.named("to")
		if len(w.items) > 0 || n != 1 || strings.TrimSpace(hr.raw[i]) == "" {
			return
		}
		// Read without a warning: net/mail's reading of the value as
		// parseAddressList gives it ("<>" stood in for), names decoded.
		list, err := (&mail.AddressParser{WordDecoder: &newWordDecoder().dec}).ParseList(nullAddresses(escapeWordSpecials(hr.raw[i])))
		if err != nil || len(list) != len(got) {
			t.Fatalf("%q: %q without a warning, net/mail %v (%v)", v, got, list, err)
		}
	})
}

func TestDeclaredBoundaries(t *testing.T) {
	h := []byte("Content-Type: multipart/mixed; BOUNDARY = \"a b\"\r\nX: boundary=tok;x\r\nY: boundary\r\nZ: boundary=\"unclosed")
	got := declaredBoundaries(h)
	want := []string{"a b", "tok", "unclosed"}
	if len(got) != len(want) {
		t.Fatalf("declaredBoundaries = %q, want %q", got, want)
	}
	for i := range want {
		if string(got[i]) != want[i] {
			t.Errorf("boundary %d = %q, want %q", i, got[i], want[i])
		}
	}
	for line, is := range map[string]bool{
		"--a b": true, "--a b--": true, "--tok  \r": true, "--tok--": true,
		"--tokx": false, "-- a b": false, "--": false, "a b": false, "----tok": false,
	} {
		if delimiterOf(got, []byte(line)) != is {
			t.Errorf("delimiterOf(%q) = %v, want %v", line, !is, is)
		}
	}
}
