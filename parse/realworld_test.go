package parse

import (
	"encoding/base64"
	"fmt"
	"strings"
	"testing"

	"github.com/mailhook/mailhook/event"
	"golang.org/x/text/encoding/japanese"
)

// parseCRLF parses msg, written with LF line ends, as sent (CRLF), and
// checks the invariants.
func parseCRLF(t *testing.T, msg string) *event.Data {
	t.Helper()
	d, err := Parse(strings.NewReader(strings.ReplaceAll(msg, "\n", "\r\n")), Options{})
	if err != nil {
		t.Fatal(err)
	}
	checkInvariants(t, d)
	return d
}

// mixed is a multipart/mixed message (LF line ends, for parseCRLF) of
// the parts given, each a header, an empty line and a body.
func mixed(parts ...string) string {
	return "Subject: t\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=B\n\n--B\n" +
		strings.Join(parts, "\n--B\n") + "\n--B--\n"
}

// Shapes met in real mail (Python's email test data, Mailman digests,
// bounces) that were read wrongly.
func TestRealWorldShapes(t *testing.T) {
	t.Run("digest parts default to message/rfc822", func(t *testing.T) {
		d := parseCRLF(t, "Subject: digest\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=OUT\n\n"+
			"--OUT\nContent-Type: text/plain\n\nIntro text\n--OUT\nContent-Type: multipart/digest; boundary=DIG\n\n"+
			"--DIG\n\nFrom: x@example.org\nSubject: first\n\nfirst body\n"+
			"--DIG\nContent-Type: text/plain\n\nnot a message\n--DIG--\n--OUT--\n")
		if d.Text != "Intro text\n--\nnot a message" {
			t.Errorf("text %q, want the intro and the part typed text/plain", d.Text)
		}
		if len(d.Attachments) != 1 || d.Attachments[0].ContentType != "message/rfc822" ||
			string(d.Attachments[0].Content) != "From: x@example.org\r\nSubject: first\r\n\r\nfirst body" {
			t.Errorf("attachments %+v, want the message as message/rfc822", d.Attachments)
		}
	})
	t.Run("type without subtype is text/plain", func(t *testing.T) {
		for _, ct := range []string{"text; charset=us-ascii", "garbage"} {
			d := parseCRLF(t, "Subject: t\nMIME-Version: 1.0\nContent-Type: "+ct+"\n\nHi,\nthe body.\n")
			if d.Text != "Hi,\r\nthe body.\r\n" || len(d.Attachments) != 0 || countContaining(d.Warnings, "has no subtype: read as text/plain") != 1 {
				t.Errorf("%s: text %q, %d attachments, warnings %q; want the body as text, with a warning", ct, d.Text, len(d.Attachments), d.Warnings)
			}
		}
	})
	t.Run("boundary in RFC 2231 form with an unknown ASCII label", func(t *testing.T) {
		d := parseCRLF(t, "Subject: t\nMIME-Version: 1.0\nContent-Type: multipart/signed; micalg*=ansi-x3.4-1968''pgp-md5;\n"+
			"\tprotocol*=ansi-x3.4-1968''application%2Fpgp-signature;\n\tboundary*=\"ansi-x3.4-1968''EeQfGwPcQSOJBaQU\"\n\n"+
			"--EeQfGwPcQSOJBaQU\nContent-Type: text/plain; charset*=ansi-x3.4-1968''us-ascii\n\npart 1\n"+
			"--EeQfGwPcQSOJBaQU\nContent-Type: application/pgp-signature\n\nsig\n--EeQfGwPcQSOJBaQU--\n")
		if d.Text != "part 1" || len(d.Warnings) != 0 {
			t.Errorf("text %q, warnings %q; want part 1 and none", d.Text, d.Warnings)
		}
	})
	t.Run("blank text parts are not joined", func(t *testing.T) {
		d := parseCRLF(t, mixed("Content-Type: text/plain\n\n", "Content-Type: text/plain\n\nreal text",
			"Content-Type: image/png; name=a.png\nContent-Transfer-Encoding: base64\n\niVBORw0K",
			"Content-Type: text/plain\n\n \n", "Content-Type: text/plain\n\nmore text"))
		if d.Text != "real text\n--\nmore text" || len(d.Attachments) != 1 {
			t.Errorf("text %q, %d attachments; want the two texts joined once and the image", d.Text, len(d.Attachments))
		}
	})
	t.Run("a text part naming a file is an attachment, not text", func(t *testing.T) {
		d := parseCRLF(t, mixed("Content-Type: text/plain\n\nBody here",
			"Content-Type: text/plain; name=\"notes.txt\"\n\nattached notes",
			"Content-Type: text/plain\nContent-Disposition: inline; filename=shown.txt\n\nshown inline"))
		if d.Text != "Body here\n--\nshown inline" {
			t.Errorf("text %q, want the body and the part asked to be shown inline", d.Text)
		}
		if len(d.Attachments) != 2 || d.Attachments[0].Filename != "notes.txt" || string(d.Attachments[0].Content) != "attached notes" {
			t.Errorf("attachments %+v, want notes.txt then shown.txt", d.Attachments)
		}
		// Only named parts: they are the text too (Python's email test
		// data, msg_44).
		d = parseCRLF(t, mixed("Content-Type: text/plain; name=\"msg.txt\"\n\nfirst",
			"Content-Type: text/plain; name=\"msg.txt\"\n\nsecond"))
		if d.Text != "first\n--\nsecond" || len(d.Attachments) != 2 {
			t.Errorf("text %q, %d attachments; want both texts, and both as attachments", d.Text, len(d.Attachments))
		}
	})
	t.Run("disposition of a part without one", func(t *testing.T) {
		d := parseCRLF(t, "Subject: t\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=OUT\n\n"+
			"--OUT\nContent-Type: multipart/alternative; boundary=A1\n\n--A1\nContent-Type: text/plain\n\nMain\n"+
			"--A1\nContent-Type: text/html\n\n<p>Main</p>\n--A1--\n"+
			"--OUT\nContent-Type: multipart/alternative; boundary=A2\nContent-Disposition: inline\n\n"+
			"--A2\nContent-Type: text/plain\n\nFooter\n--A2\nContent-Type: text/html\n\n<p>Footer</p>\n--A2--\n"+
			"--OUT\nContent-Type: application/pdf; name=r.pdf\n\n%PDF\n--OUT--\n")
		got := map[string]string{}
		for _, a := range d.Attachments {
			got[a.ContentType] = a.Disposition
		}
		if got["text/html"] != "inline" || got["application/pdf"] != "attachment" || len(got) != 2 {
			t.Errorf("dispositions %v, want the footer's HTML inline and the named PDF an attachment", got)
		}
	})
	t.Run("quoted local parts and null addresses", func(t *testing.T) {
		d := parseCRLF(t, "From: \"Mail Delivery System\" <>\nTo: <\"john doe\"@example.com>, \"a,b\"@example.com, x@example.com\n"+
			"Cc: \"Odd <> name\" <y@example.com>\nSubject: t\n\nbody\n")
		if len(d.From) != 1 || d.From[0] != (event.Address{Name: "Mail Delivery System"}) {
			t.Errorf("from %+v, want the name with an empty address", d.From)
		}
		want := []event.Address{{Address: `"john doe"@example.com`}, {Address: `"a,b"@example.com`}, {Address: "x@example.com"}}
		if len(d.To) != len(want) || d.To[0] != want[0] || d.To[1] != want[1] || d.To[2] != want[2] {
			t.Errorf("to %+v, want %+v", d.To, want)
		}
		if len(d.Cc) != 1 || d.Cc[0] != (event.Address{Name: "Odd <> name", Address: "y@example.com"}) {
			t.Errorf("cc %+v, want the quoted name kept", d.Cc)
		}
		if len(d.Warnings) != 0 {
			t.Errorf("warnings %q, want none", d.Warnings)
		}
	})
	t.Run("UTF-7 goes on after a bad sequence", func(t *testing.T) {
		d := parseCRLF(t, "Subject: t\nMIME-Version: 1.0\nContent-Type: text/plain; charset=utf-7\n\n"+
			"Hi +AD4 quoted, 1 + 1, a+-b\nsig: abc+1fkUFAlx5WHkACgkQdRlcPb+1\nLAST LINE\n")
		if !strings.HasPrefix(d.Text, "Hi > quoted, 1 + 1, a+b\r\nsig: abc") || !strings.HasSuffix(d.Text, "\uFFFD\r\nLAST LINE\r\n") ||
			countContaining(d.Warnings, "invalid UTF-7 sequences replaced") != 1 {
			t.Errorf("text %q, warnings %q; want all of it, the bad run replaced, with a warning", d.Text, d.Warnings)
		}
	})
	t.Run("UTF-7 in encoded words and under IIS's label", func(t *testing.T) {
		d := parseCRLF(t, "Subject: =?utf-7?Q?Hi_+AOk-?=\nMIME-Version: 1.0\nContent-Type: text/plain; charset=unicode-1-1-utf-7\n\nHi +AOk- there\n")
		if d.Subject != "Hi é" || d.Text != "Hi é there\r\n" || len(d.Warnings) != 0 {
			t.Errorf("subject %q, text %q, warnings %q; want both decoded, no warning", d.Subject, d.Text, d.Warnings)
		}
	})
}

func TestDecodeUTF7(t *testing.T) {
	for in, want := range map[string]string{
		"Hi Mom -+Jjo--!":  "Hi Mom -\u263a-!", // RFC 2152's examples
		"+ZeVnLIqe-":       "日本語",
		"A+ImIDkQ.":        "A\u2262\u0391.",
		"+2D3eAA-":         "\U0001f600", // a surrogate pair
		"+2D0-x":           "\uFFFDx",    // an unpaired high surrogate
		"a+b":              "a\uFFFD",    // bits left over
		"plain + text +-+": "plain + text ++",
	} {
		if got, _ := decodeUTF7([]byte(in)); got != want {
			t.Errorf("decodeUTF7(%q) = %q, want %q", in, got, want)
		}
	}
}

// Text derived from HTML marks quotes with "> " a level: deeply nested
// blockquotes would multiply the text (500 levels: a hundred times the
// HTML), so past maxQuoteDepth the marks are left out.
func TestDeepQuotesInHTML(t *testing.T) {
	htmlOnly := func(body string) *event.Data {
		return parseCRLF(t, "Subject: t\nMIME-Version: 1.0\nContent-Type: text/html; charset=utf-8\n\n"+body+"\n")
	}
	d := htmlOnly("<p>Reply</p><blockquote><p>Earlier</p><blockquote><p>First</p></blockquote></blockquote>")
	if !strings.Contains(d.Text, "> Earlier") || !strings.Contains(d.Text, ">> First") {
		t.Errorf("text %q, want quotes marked", d.Text)
	}
	body := strings.Repeat("<blockquote>", 500) + strings.Repeat("x<br>", 20000) + strings.Repeat("</blockquote>", 500)
	d = htmlOnly(body)
	if len(d.Text) > len(body) || strings.Count(d.Text, "x") != 20000 {
		t.Errorf("text of %d bytes with %d x, want at most the HTML's %d bytes and all 20000", len(d.Text), strings.Count(d.Text, "x"), len(body))
	}
}

func TestManyMediaTypeParams(t *testing.T) {
	var params strings.Builder
	for i := range 1400 {
		fmt.Fprintf(&params, "; p%d=%d", i, i) // 14 KB: under the field cap
	}
	d := parseWarned(t, strings.ReplaceAll("Subject: t\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=B"+params.String()+"\n\n"+
		"--B\nContent-Type: text/plain; charset=utf-8"+params.String()+"\n\nhello\n--B--\n", "\n", "\r\n"),
		"part 1: Content-Type header has 1401 parameters: only the first 100 read")
	if d.Text != "hello" || countContaining(d.Warnings, "message: Content-Type header has 1401 parameters") != 1 {
		t.Errorf("text %s, warnings %q; want hello, and both headers cut", quote(d.Text), d.Warnings)
	}
}

// Shapes from the test messages of other parsers (mailparser, enmime)
// and the SpamAssassin ham corpus that were read wrongly.
func TestRealWorldShapesOthers(t *testing.T) {
	t.Run("unknown charset: windows-1252 where not UTF-8", func(t *testing.T) {
		d := parseCRLF(t, "Subject: =?unknown-8bit?Q?Gr=FC=DFe_aus_K=F6ln?=\nMIME-Version: 1.0\n"+
			"Content-Type: text/plain; charset=unknown-8bit\nContent-Transfer-Encoding: 8bit\n\n"+
			"Gr\xfc\xdfe aus K\xf6ln, \xe9t\xe9\n")
		if d.Subject != "Grüße aus Köln" {
			t.Errorf("subject %q", d.Subject)
		}
		if d.Text != "Grüße aus Köln, été\r\n" {
			t.Errorf("text %q", d.Text)
		}
		if countContaining(d.Warnings, `unknown charset "unknown-8bit" and the text is not UTF-8: read as windows-1252`) != 1 {
			t.Errorf("warnings %q", d.Warnings)
		}
	})
	t.Run("unknown charset on an HTML part in base64", func(t *testing.T) {
		d := parseCRLF(t, "Subject: x\nMIME-Version: 1.0\nContent-Type: text/html; charset=bad-encoding\n"+
			"Content-Transfer-Encoding: base64\n\n1cTW3A==\n")
		if d.HTML != "ÕÄÖÜ" {
			t.Errorf("html %q", d.HTML)
		}
	})
	t.Run("unknown charset over UTF-8 stays UTF-8", func(t *testing.T) {
		d := parseCRLF(t, "Subject: =?x-foo?Q?caf=C3=A9?=\nMIME-Version: 1.0\nContent-Type: text/plain; charset=x-foo\n\ncaf\xc3\xa9\n")
		if d.Subject != "café" || d.Text != "café\r\n" {
			t.Errorf("subject %q, text %q", d.Subject, d.Text)
		}
	})
	t.Run("display name before a bare address", func(t *testing.T) {
		d := parseCRLF(t, "From: =?UTF-8?B?Sm9zw6k=?= jose@example.com\nTo: John Doe john@example.com, b@example.org\n"+
			"Cc: john . doe@example.com\nSubject: x\n\nhi\n")
		if len(d.From) != 1 || d.From[0].Name != "José" || d.From[0].Address != "jose@example.com" {
			t.Errorf("from %+v", d.From)
		}
		if len(d.To) != 2 || d.To[0].Name != "John Doe" || d.To[0].Address != "john@example.com" || d.To[1].Address != "b@example.org" {
			t.Errorf("to %+v", d.To)
		}
		// Obsolete spaces around the dots of a local part: one address.
		if len(d.Cc) != 1 || d.Cc[0].Address != "john.doe@example.com" || d.Cc[0].Name != "" {
			t.Errorf("cc %+v", d.Cc)
		}
	})
}

// A header that runs into a multipart's preamble without an empty line
// (Thunderbird; enmime's testdata qp-utf8-header-no-break.raw): the body
// starts at the preamble, and the parts are read.
func TestNoBreakBeforeMultipartBody(t *testing.T) {
	for name, msg := range map[string]string{
		"preamble": "MIME-Version: 1.0\nContent-Type: multipart/alternative; boundary=\"B\"\nThis is a multi-part message in MIME format.\n",
		"boundary": "MIME-Version: 1.0\nContent-Type: multipart/alternative; boundary=\"B\"\n",
	} {
		t.Run(name, func(t *testing.T) {
			d := parseCRLF(t, msg+"--B\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n\n"+
				"Caf=C3=A9 soft=\nbreak\n--B\nContent-Type: text/html; charset=utf-8\n\n<p>Café</p>\n--B--\n")
			if d.Text != "Café softbreak" || d.HTML != "<p>Café</p>" {
				t.Errorf("text %q, html %q; want both parts read", d.Text, d.HTML)
			}
			if countContaining(d.Warnings, "no empty line before the body") != 1 {
				t.Errorf("warnings %q", d.Warnings)
			}
		})
	}
	// A line that starts with "--" but is no declared boundary's
	// delimiter does not cut the header: the fields after it stay.
	d := parseCRLF(t, "Subject: x\n-- not a boundary\nFrom: a@example.org\nContent-Type: text/plain\n\nbody\n")
	if len(d.From) != 1 || d.From[0].Address != "a@example.org" || d.Text != "body\r\n" {
		t.Errorf("from %+v, text %q; want the fields after the line kept", d.From, d.Text)
	}
}

// HTML with a file put in its middle (Apple Mail): the HTML parts after
// the file continue the first one, in html and in the text made from it;
// the file stays an attachment.
func TestHTMLAroundAFile(t *testing.T) {
	pdf := "Content-Type: application/pdf; name=r.pdf\nContent-Disposition: inline; filename=r.pdf\nContent-Transfer-Encoding: base64\n\nJVBERg=="
	t.Run("mixed", func(t *testing.T) {
		d := parseCRLF(t, mixed("Content-Type: text/html; charset=utf-8\n\n<p>Hello, see the file:</p>", pdf,
			"Content-Type: text/html; charset=utf-8\n\n<p>Regards, Bob</p>"))
		if d.HTML != "<p>Hello, see the file:</p><p>Regards, Bob</p>" {
			t.Errorf("html %q", d.HTML)
		}
		if !strings.Contains(d.Text, "Hello, see the file:") || !strings.Contains(d.Text, "Regards, Bob") {
			t.Errorf("text %q, want both pieces", d.Text)
		}
		if len(d.Attachments) != 1 || d.Attachments[0].Filename != "r.pdf" {
			t.Errorf("attachments %+v, want the PDF alone", d.Attachments)
		}
	})
	t.Run("inside an alternative", func(t *testing.T) {
		d := parseCRLF(t, "Subject: t\nMIME-Version: 1.0\nContent-Type: multipart/alternative; boundary=ALT\n\n"+
			"--ALT\nContent-Type: text/plain\n\nHello, see the file:\n\nRegards, Bob\n"+
			"--ALT\nContent-Type: multipart/mixed; boundary=B\n\n--B\nContent-Type: text/html\n\n<p>Hello</p>\n--B\n"+pdf+
			"\n--B\nContent-Type: text/html\n\n<p>Regards</p>\n--B--\n--ALT--\n")
		if d.HTML != "<p>Hello</p><p>Regards</p>" || d.Text != "Hello, see the file:\r\n\r\nRegards, Bob" {
			t.Errorf("html %q, text %q", d.HTML, d.Text)
		}
		if len(d.Attachments) != 1 {
			t.Errorf("%d attachments, want the PDF alone", len(d.Attachments))
		}
	})
}

// Windows code page labels neither charset index knows (Outlook writes
// them) are read as the charsets they name.
func TestCodePageLabels(t *testing.T) {
	for label, want := range map[string]string{
		"cp932":    "日本語",
		"cp949":    "한국어",
		"cp936":    "中文",
		"cp950":    "中文",
		"x-ibm850": "café",
	} {
		enc := lookupCharset(label)
		if enc == nil {
			t.Errorf("%s: no decoder", label)
			continue
		}
		b, err := enc.NewEncoder().Bytes([]byte(want))
		if err != nil {
			t.Fatalf("%s: %v", label, err)
		}
		d := parseCRLF(t, "Subject: =?"+label+"?B?"+base64.StdEncoding.EncodeToString(b)+"?=\nMIME-Version: 1.0\n"+
			"Content-Type: text/plain; charset="+label+"\nContent-Transfer-Encoding: base64\n\n"+base64.StdEncoding.EncodeToString(b)+"\n")
		if d.Subject != want || d.Text != want {
			t.Errorf("%s: subject %q, text %q; want %q", label, d.Subject, d.Text, want)
		}
	}
}

// Senders without a domain, as cron and scripts on hosts without a mail
// domain write them: kept, local part alone, with the name, and a
// warning. A phrase of several words, or an encoded word, is no address:
// it is kept as the name of none (spam and hand-written headers), and a
// quoted name holding an "@" is still the name.
func TestLocalOnlyAddresses(t *testing.T) {
	for in, want := range map[string][]event.Address{
		"Cron Daemon <root>":  {{Name: "Cron Daemon", Address: "root"}},
		"root (Cron Daemon)":  {{Name: "Cron Daemon", Address: "root"}},
		"MAILER-DAEMON":       {{Address: "MAILER-DAEMON"}},
		`"Joe" <joe>`:         {{Name: "Joe", Address: "joe"}},
		"a@example.org, root": {{Address: "a@example.org"}, {Address: "root"}},
		`"x@y" <matmail>`:     {{Name: "x@y", Address: "matmail"}},
		"foo  bar (comment)":  {{Name: "foo bar"}},
		`"John Doe"`:          {{Name: "John Doe"}},
		`"O\'Brien" <ob>`:     {{Name: "O'Brien", Address: "ob"}},
		`""`:                  {},
		"=?koi8-r?B?8sXL0sXB1MnXzs/FIMHHxc7U09TXzw==?=": {{Name: "Рекреативное агентство"}},
		"Joe <j o>":                {},
		"undisclosed-recipients:;": {},
	} {
		d := parseCRLF(t, "From: "+in+"\nSubject: x\n\nhi\n")
		if len(d.From) != len(want) {
			t.Errorf("%q: from %+v, want %+v", in, d.From, want)
			continue
		}
		for i := range want {
			if d.From[i] != want[i] {
				t.Errorf("%q: from %+v, want %+v", in, d.From, want)
			}
		}
		if len(want) > 0 && want[len(want)-1].Address != "a@example.org" && want[0].Address != "" &&
			countContaining(d.Warnings, "has no domain: kept as written") != 1 {
			t.Errorf("%q: warnings %q", in, d.Warnings)
		}
		if len(want) > 0 && want[0].Address == "" && countContaining(d.Warnings, "has no address: kept as a name") != 1 {
			t.Errorf("%q: warnings %q", in, d.Warnings)
		}
	}
}

// A stray byte inside a line of base64 content that needs no padding is
// a damaged line, not a mailing list's footer: the content is decoded
// whole, the byte skipped (RFC 2045 §6.8), as mail clients do.
func TestStrayByteInUnpaddedBase64(t *testing.T) {
	data := make([]byte, 117) // a multiple of three: no padding
	for i := range data {
		data[i] = byte(i)
	}
	enc := base64.StdEncoding.EncodeToString(data)
	for name, body := range map[string]string{
		"short last line":  enc[:76] + "\n" + enc[76:114] + "\xa7" + enc[114:152] + "\n" + enc[152:] + "\n",
		"stray at the end": enc[:76] + "\n" + enc[76:152] + "\xa7\n" + enc[152:] + "\n",
	} {
		t.Run(name, func(t *testing.T) {
			d := parseCRLF(t, mixed("Content-Type: text/plain\n\nhi",
				"Content-Type: application/octet-stream; name=a.bin\nContent-Disposition: attachment; filename=a.bin\n"+
					"Content-Transfer-Encoding: base64\n\n"+body))
			if len(d.Attachments) != 1 || d.Attachments[0].Size != int64(len(data)) {
				t.Fatalf("attachments %+v, want a.bin of %d bytes", d.Attachments, len(data))
			}
		})
	}
	// A real footer after unpadded content is still cut off.
	d := parseCRLF(t, mixed("Content-Type: application/octet-stream; name=a.bin\nContent-Transfer-Encoding: base64\n\n"+
		enc[:76]+"\n"+enc[76:]+"\n_______________________________________________\nlist mailing list\nlist@example.org\n"))
	if len(d.Attachments) != 1 || d.Attachments[0].Size != int64(len(data)) || countContaining(d.Warnings, "after the base64 content ignored") != 1 {
		t.Errorf("attachments %+v, warnings %q; want the content without the footer, and a warning", d.Attachments, d.Warnings)
	}
}

// A Content-Type whose parameters lack their ";" (a bug of PHP mailers)
// is read as mail clients read it, with a warning, instead of leaving the
// part without a type (a nameless application/octet-stream attachment).
func TestContentTypeWithoutSemicolons(t *testing.T) {
	d := parseCRLF(t, "From: a@example.com\nSubject: x\nContent-Type: text/html charset=utf-8\n\n<p>Hello</p>\n")
	if d.HTML != "<p>Hello</p>\r\n" || len(d.Attachments) != 0 {
		t.Errorf("html %q, attachments %+v; want the HTML", d.HTML, d.Attachments)
	}
	if countContaining(d.Warnings, `read as "text/html; charset=utf-8"`) != 1 {
		t.Errorf("warnings %q", d.Warnings)
	}
	// Words that are not parameters are skipped (go-mail's tests).
	d = parseCRLF(t, "Subject: x\nContent-Type: text/plain @ charset=koi8-r\n\n\xf0\xd2\xc9\xd7\xc5\xd4\n")
	if d.Text != "Привет\r\n" || countContaining(d.Warnings, `read as "text/plain; charset=koi8-r"`) != 1 {
		t.Errorf("text %q, warnings %q; want the KOI8-R text read", d.Text, d.Warnings)
	}
	d = parseCRLF(t, "Subject: x\nContent-Type: multipart/mixed boundary=X\n\n--X\nContent-Type: text/plain\n\npart\n--X--\n")
	if d.Text != "part" || len(d.Attachments) != 0 {
		t.Errorf("text %q, attachments %+v; want the multipart read", d.Text, d.Attachments)
	}
	// A real application/octet-stream is left alone.
	d = parseCRLF(t, "Subject: x\nContent-Type: Application/Octet-Stream; name=x.bin\n\nabc\n")
	if len(d.Attachments) != 1 || countContaining(d.Warnings, "not a valid media type") != 0 {
		t.Errorf("attachments %+v, warnings %q", d.Attachments, d.Warnings)
	}
}

// Text after a quoted parameter value does not end up in the value: a
// Postfix bounce whose next field was glued onto its boundary, a
// filename with a comment after it, a charset with one.
func TestQuotedValueFollowedByText(t *testing.T) {
	d := parseCRLF(t, "From: MAILER-DAEMON@example.org\nSubject: bounce\nMIME-Version: 1.0\n"+
		"Content-Type: multipart/report; report-type=delivery-status;\n\tboundary=\"40F1.1312/admin1.example.co.uk\" Message-Id: <2011@admin1.example.co.uk>\n\n"+
		"--40F1.1312/admin1.example.co.uk\nContent-Type: text/plain\n\nbounce text\n"+
		"--40F1.1312/admin1.example.co.uk\nContent-Type: text/plain; charset=\"koi8-r\" (Cyrillic)\n"+
		"Content-Disposition: attachment; filename=\"a b.txt\" (comment)\n\n\xf0\xd2\xc9\xd7\xc5\xd4\n"+
		"--40F1.1312/admin1.example.co.uk--\n")
	if d.Text != "bounce text" || len(d.Attachments) != 1 || d.Attachments[0].Filename != "a b.txt" || string(d.Attachments[0].Content) != "\xf0\xd2\xc9\xd7\xc5\xd4" {
		t.Errorf("text %q, attachments %+v; want the report's parts", d.Text, d.Attachments)
	}
	if n := countContaining(d.Warnings, "comments, or text after a parameter"); n != 3 {
		t.Errorf("warnings %q, want 3 about quoted values", d.Warnings)
	}
	d = parseCRLF(t, "Subject: x\nContent-Type: text/plain; charset=\"koi8-r\" (Cyrillic)\n\n\xf0\xd2\xc9\xd7\xc5\xd4\n")
	if d.Text != "Привет\r\n" {
		t.Errorf("text %q, want the KOI8-R text read", d.Text)
	}
}

// Header fields in raw ISO-2022-JP, as older Japanese mailers wrote them
// instead of encoded words, are decoded, addresses and filenames too.
func TestRawISO2022JPHeaders(t *testing.T) {
	jis := func(s string) string {
		b, err := japanese.ISO2022JP.NewEncoder().String(s)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	d := parseCRLF(t, "From: "+jis("山田太郎")+" <taro@example.jp>\nSubject: "+jis("日本語の件名")+"\nMIME-Version: 1.0\n"+
		"Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain\n\nhi\n"+
		"--b\nContent-Type: application/pdf\nContent-Disposition: attachment; filename=\""+jis("資料")+".pdf\"\n\n%PDF\n--b--\n")
	if d.Subject != "日本語の件名" || len(d.From) != 1 || d.From[0] != (event.Address{Name: "山田太郎", Address: "taro@example.jp"}) {
		t.Errorf("subject %q, from %+v; want them decoded", d.Subject, d.From)
	}
	if len(d.Attachments) != 1 || d.Attachments[0].Filename != "資料.pdf" {
		t.Errorf("attachments %+v, want 資料.pdf", d.Attachments)
	}
	if n := countContaining(d.Warnings, "raw ISO-2022-JP"); n != 3 {
		t.Errorf("warnings %q, want 3 about raw ISO-2022-JP", d.Warnings)
	}
	// Beside 8-bit bytes, escapes are not JIS: the field is read as
	// 8-bit fields are, the rest of it kept.
	d = parseCRLF(t, "Subject: caf\xe9 "+jis("日本")+"\n\nhi\n")
	if !strings.HasPrefix(d.Subject, "café ") || countContaining(d.Warnings, "raw ISO-2022-JP") != 0 {
		t.Errorf("subject %q, warnings %q; want café kept, no JIS decoding", d.Subject, d.Warnings)
	}
}

// MIME headers repaired shorter still count at their size as read
// against the budget of MIME header bytes, and the repair's warnings
// quote them short: 80 parts whose Content-Type is 16 KB of spaces and
// comments stop parsing at the budget, with a few KB of warnings.
func TestRepairedHeadersCountAsRead(t *testing.T) {
	ctype := "text/plain;" + strings.Repeat(" ", 8000) + strings.Repeat("(a)", 2700)
	var b strings.Builder
	b.WriteString("Subject: x\nContent-Type: multipart/mixed; boundary=b\n\n")
	for range 80 {
		b.WriteString("--b\nContent-Type: " + ctype + "\n\nhi\n")
	}
	b.WriteString("--b--\n")
	d := parseCRLF(t, b.String())
	if countContaining(d.Warnings, "MIME part headers over") != 1 {
		t.Errorf("no warning that the budget of MIME header bytes ran out: %d warnings", len(d.Warnings))
	}
	size := 0
	for _, w := range d.Warnings {
		size += len(w)
	}
	if size > 32<<10 {
		t.Errorf("%d bytes of warnings, want the values quoted short", size)
	}
}
