package parse

import (
	"bytes"
	"encoding/base64"
	"strings"
	"testing"
)

// uuBytes is bytes 0–99, uuencoded by Python's binascii.b2a_uu in 45-byte
// lines, with "`" for zero (uuBacktick) and with spaces whose trailing
// ones a relay stripped (uuSpaces).
const (
	uuBacktick = "M``$\"`P0%!@<(\"0H+#`T.#Q`1$A,4%187&!D:&QP='A\\@(2(C)\"4F)R@I*BLL\r\n" +
		"M+2XO,#$R,S0U-C<X.3H[/#T^/T!!0D-$149'2$E*2TQ-3D]045)35%565UA9\r\n" +
		"*6EM<75Y?8&%B8P``\r\n"
	uuSpaces = "M  $\" P0%!@<(\"0H+# T.#Q 1$A,4%187&!D:&QP='A\\@(2(C)\"4F)R@I*BLL\r\n" +
		"M+2XO,#$R,S0U-C<X.3H[/#T^/T!!0D-$149'2$E*2TQ-3D]045)35%565UA9\r\n" +
		"*6EM<75Y?8&%B8P\r\n"
)

func firstHundred() []byte {
	b := make([]byte, 100)
	for i := range b {
		b[i] = byte(i)
	}
	return b
}

func TestDecodeUU(t *testing.T) {
	for name, body := range map[string]string{
		"backtick":        "begin 644 data.bin\r\n" + uuBacktick + "`\r\nend\r\n",
		"spaces stripped": "begin 644 data.bin\r\n" + uuSpaces + " \r\nend\r\n",
		"no end, LF":      strings.ReplaceAll("text before\r\nbegin 600 x\r\n"+uuBacktick, "\r\n", "\n"),
	} {
		got, ok := decodeUU([]byte(body))
		if !ok || !bytes.Equal(got, firstHundred()) {
			t.Errorf("%s: %v %q, want bytes 0-99", name, ok, got)
		}
	}
	if _, ok := decodeUU([]byte("no begin line\r\n")); ok {
		t.Error("decodeUU took a body without a begin line")
	}
}

// multipartWith is a message with a text part and one attachment part of
// the given transfer encoding and body.
func multipartWith(cte, body string) string {
	return "From: a@example.com\r\nSubject: t\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed; boundary=b\r\n\r\n" +
		"--b\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n" +
		"--b\r\nContent-Type: application/octet-stream; name=data.bin\r\n" +
		"Content-Disposition: attachment; filename=data.bin\r\n" +
		"Content-Transfer-Encoding: " + cte + "\r\n\r\n" + body + "\r\n--b--\r\n"
}

func onlyAttachment(t *testing.T, raw string) []byte {
	t.Helper()
	d, err := Parse(strings.NewReader(raw), Options{})
	if err != nil {
		t.Fatal(err)
	}
	checkInvariants(t, d)
	if len(d.Attachments) != 1 {
		t.Fatalf("%d attachments, want 1 (warnings %q)", len(d.Attachments), d.Warnings)
	}
	a := d.Attachments[0]
	if a.Size != int64(len(a.Content)) {
		t.Errorf("size %d for %d bytes", a.Size, len(a.Content))
	}
	return a.Content
}

// A uuencoded part is decoded, as Python's email package does; enmime
// left it undecoded with a warning.
func TestUUEncodedParts(t *testing.T) {
	for _, cte := range []string{"x-uuencode", "X-UUE", "uuencode"} {
		raw := multipartWith(cte, "begin 644 data.bin\r\n"+uuBacktick+"`\r\nend")
		if got := onlyAttachment(t, raw); !bytes.Equal(got, firstHundred()) {
			t.Errorf("%s: %q, want bytes 0-99", cte, got)
		}
	}
	d, err := Parse(strings.NewReader("Subject: t\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"+
		"Content-Transfer-Encoding: x-uuencode\r\n\r\nbegin 644 hello.txt\r\n92&5L;&\\L('5U96YC;V1E9\"!W;W)L9\"$-\"@``\r\n`\r\nend\r\n"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if d.Text != "Hello, uuencoded world!\r\n" || len(d.Warnings) != 0 {
		t.Errorf("text %q, warnings %q; want the decoded line and no warning", d.Text, d.Warnings)
	}
	d = parseWarned(t, multipartWith("x-uuencode", "no begin line here"), "x-uuencode content without a \"begin\" line")
	if len(d.Attachments) != 1 || string(d.Attachments[0].Content) != "no begin line here" {
		t.Errorf("attachments %+v, want the body kept as it is", d.Attachments)
	}
}

// A base64 body of padded blocks joined together decodes block by block;
// one followed by other text ends at the padding; either with a warning.
// The large one goes through decodeBase64Leaf.
func TestBase64Blocks(t *testing.T) {
	enc := base64.StdEncoding.EncodeToString
	large := bytes.Repeat([]byte("0123456789abcdefghijklmnopqrstuvwxyz"), 3000)
	for _, tc := range []struct {
		name, body, warning string
		want                []byte
	}{
		{"two blocks", enc([]byte("hello")) + "\r\n" + enc([]byte("world!!")), "in 2 blocks", []byte("helloworld!!")},
		{"three on a line", enc([]byte("a")) + enc([]byte("bc")) + enc([]byte("def")), "in 3 blocks", []byte("abcdef")},
		{"large", enc(large[:70000]) + "\r\n" + enc(large[70000:]), "in 2 blocks", large},
		{"footer after an empty line", enc([]byte("hello")) + "\r\n\r\nThanks\r\n", "text after the base64 padding ignored", []byte("hello")},
		{"footer", enc([]byte("hello")) + "\r\n\r\n_______________\r\nlist-name mailing list\r\nhttps://lists.example.org/", "text after the base64 padding ignored", []byte("hello")},
		// Data of a multiple of three bytes has no padding to end at.
		{"footer without padding", enc([]byte("Hello there\n")) + "\r\n_______________________________________________\r\nlist mailing list\r\nlist@example.org\r\n",
			"bytes of text after the base64 content ignored", []byte("Hello there\n")},
		{"signature without padding", enc(large[:5700]) + "\r\n-- \r\nSent from the list\r\n", "bytes of text after the base64 content ignored", large[:5700]},
	} {
		d := parseWarned(t, multipartWith("base64", tc.body), tc.warning)
		if len(d.Attachments) != 1 || !bytes.Equal(d.Attachments[0].Content, tc.want) {
			t.Errorf("%s: attachments %+v, want %q", tc.name, d.Attachments, tc.want)
		}
		if countContaining(d.Warnings, "base64") != 1 {
			t.Errorf("%s: warnings %q, want only one about base64", tc.name, d.Warnings)
		}
	}
	// A stray byte inside base64 that more base64 follows is not a
	// footer: the usual decoder skips it, with its warning.
	body := enc(large[:3000]) + "\r\nab_c\r\n" + enc(large[:3000])
	if _, ok := unpaddedFooter([]byte(body)); ok {
		t.Error("a corrupted line with base64 after it taken for a footer")
	}
	// Nor is white space inside a line: "world!" is still decoded.
	if _, ok := unpaddedFooter([]byte("SGVsbG8g\r\nd29y bGQh\r\n")); ok {
		t.Error("a line with a space inside taken for a footer")
	}
	// Padding at the end only, or a stray "=" between whole groups: no
	// recoding, no warning.
	for _, body := range []string{enc([]byte("hello")) + "\r\n", "aGVs=\r\nbG8="} {
		d, err := Parse(strings.NewReader(multipartWith("base64", body)), Options{})
		if err != nil {
			t.Fatal(err)
		}
		if len(d.Warnings) != 0 || len(d.Attachments) != 1 || string(d.Attachments[0].Content) != "hello" {
			t.Errorf("%q: warnings %q, attachments %+v; want none and hello", body, d.Warnings, d.Attachments)
		}
	}
}

// FuzzBase64Blocks: data cut into pieces, each base64-encoded on its own
// and joined (with line breaks at random, never an empty line, which
// TestBase64Blocks shows ending the content), decodes back to data, and
// holds no footer (unpaddedFooter); whatever the body, decoding does not
// fail.
func FuzzBase64Blocks(f *testing.F) {
	f.Add([]byte("helloworld!!"), []byte{5, 7})
	f.Add([]byte("abcdef"), []byte{1, 2, 3})
	f.Add([]byte("aGVsbG8=d29y=bGQ="), []byte{})
	f.Fuzz(func(t *testing.T, data, cuts []byte) {
		decodeBase64Blocks(data)
		decodeUU(data)
		var body []byte
		rest := data
		for i, c := range cuts {
			n := min(int(c), len(rest))
			body = base64.StdEncoding.AppendEncode(body, rest[:n])
			if i%2 == 1 && !bytes.HasSuffix(body, []byte("\r\n")) {
				body = append(body, "\r\n"...) // never an empty line: that ends the content (a footer)
			}
			rest = rest[n:]
		}
		body = base64.StdEncoding.AppendEncode(body, rest)
		got, _, bad, tail, ok := decodeBase64Blocks(body)
		if !ok {
			got, _ = base64.StdEncoding.DecodeString(strings.ReplaceAll(string(body), "\r\n", ""))
		}
		if !bytes.Equal(got, data) || bad != 0 || tail != 0 {
			t.Errorf("%q: decoded %q (bad %d, tail %d), want %q", body, got, bad, tail, data)
		}
		if cut, ok := unpaddedFooter(body); ok {
			t.Errorf("%q: a footer found at %d in base64 alone", body, cut)
		}
		unpaddedFooter(data)
	})
}

func TestWithCTE(t *testing.T) {
	for in, want := range map[string]string{
		"Content-Type: text/plain\r\nContent-Transfer-Encoding: x-uuencode\r\n\r\n": "Content-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n",
		"Content-Type: text/plain\r\n\r\n":                                          "Content-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n",
	} {
		if got := string(withCTE([]byte(in), "base64")); got != want {
			t.Errorf("withCTE(%q) = %q, want %q", in, got, want)
		}
	}
}
