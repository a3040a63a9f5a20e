package parse

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"mime/quotedprintable"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/jhillyerd/enmime/v2"
)

// textLeaf is a body part with the given Content-Type and
// Content-Transfer-Encoding ("" leaves the field out) below a multipart
// root, as split locates it.
func textLeaf(ctype, cte string, body []byte) (*builder, *node) {
	var fields []field
	fields = append(fields, field{name: "Content-Type", value: ctype})
	if cte != "" {
		fields = append(fields, field{name: "Content-Transfer-Encoding", value: cte})
	}
	w := &warnings{}
	header, _ := mimeHeader(fields, w, "part 1", "")
	raw := append(append([]byte{}, header...), body...)
	n := &node{id: "1", header: header, bodyStart: len(header), end: len(raw)}
	n.mtype, n.cte, n.boundary, n.plain = classify(header, w, "part 1")
	return newBuilder(raw, Options{}.withDefaults(), w), n
}

// samePart reports how a and b differ in what enmime's callers can see,
// or "" when they do not.
func samePart(a, b *enmime.Part) string {
	for _, f := range []struct {
		name string
		x, y any
	}{
		{"Header", a.Header, b.Header},
		{"Boundary", a.Boundary, b.Boundary},
		{"ContentID", a.ContentID, b.ContentID},
		{"ContentType", a.ContentType, b.ContentType},
		{"Disposition", a.Disposition, b.Disposition},
		{"FileName", a.FileName, b.FileName},
		{"FileModDate", a.FileModDate, b.FileModDate},
		{"Charset", a.Charset, b.Charset},
		{"OrigCharset", a.OrigCharset, b.OrigCharset},
		{"Errors", len(a.Errors), len(b.Errors)},
		{"Content", string(a.Content), string(b.Content)},
		{"ContentReader", a.ContentReader, b.ContentReader},
		{"Epilogue", len(a.Epilogue), len(b.Epilogue)},
		{"FirstChild", a.FirstChild, b.FirstChild},
		{"ContentTypeParams", len(a.ContentTypeParams), len(b.ContentTypeParams)},
	} {
		if !reflect.DeepEqual(f.x, f.y) {
			return fmt.Sprintf("%s: %#v, enmime %#v", f.name, f.x, f.y)
		}
	}
	return ""
}

// FuzzPlainTextLeaf checks plainTextLeaf against enmime: where it takes a
// part, the part is the one enmime gives.
func FuzzPlainTextLeaf(f *testing.F) {
	f.Add("text/plain; charset=utf-8", "7bit", []byte("Hello,\r\nworld\r\n"))
	f.Add("text/html; charset=\"UTF-8\"", "quoted-printable", []byte("<p>Caf=C3=A9 cr=c3=a8me=\r\nsoft break</p>\r\n"))
	f.Add("text/plain; charset=us-ascii; format=flowed", "", []byte("plain ascii \r\n"))
	f.Add("text/plain; charset=us-ascii", "8bit", []byte("not ascii: \xc3\xa9\r\n"))
	f.Add("text/plain; charset=utf-8", "QUOTED-PRINTABLE", []byte("bad =ZZ escape and = end="))
	f.Add("text/plain; charset=utf-8", "quoted-printable", []byte("trailing space =20 \r\n=\n"+strings.Repeat("x", 1030)))
	f.Add("text/plain; charset=iso-8859-1", "7bit", []byte("latin"))
	f.Add("text/plain; charset=utf-8; name=a.txt", "7bit", []byte("named"))
	f.Add("text/plain; charset=utf-8", "quoted-printable", []byte("=E2=82"))
	f.Add("Text/HTML; Charset=utf-8", "Binary", []byte("\x00\xff"))
	f.Add("text/plain; charset=utf-8", "base64", []byte("Q2Fmw6k=\r\n"))
	f.Add("text/plain; charset=utf-8", "base64", []byte("Q2Fmw6k\r\n=\r\n"))
	f.Add("text/plain; charset=windows-1252", "quoted-printable", []byte("=80 caf=E9"))
	f.Add("text/plain; charset=Latin1", "base64", []byte("gIGC/w=="))
	f.Add("text/plain; charset=shift_jis", "8bit", []byte("\x93\xfa\x96\x7b\x8c\xea\xff"))
	f.Add("text/plain; charset=ISO-2022-JP", "7bit", []byte("\x1b$B$3$s$K$A$O\x1b(B abc\x1b$B"))
	f.Fuzz(func(t *testing.T, ctype, cte string, body []byte) {
		// Twice: as the part of a message, and as one too large for
		// charset detection (a text body converted as declared).
		for _, maxDetect := range []int{maxDetectBody, 0} {
			b, n := textLeaf(ctype, cte, body)
			b.maxDetect = maxDetect
			fast := b.plainTextLeaf(n)
			if fast == nil {
				continue
			}
			slow, err := b.enmimeLeaf(n)
			if err != nil {
				t.Fatalf("plainTextLeaf took a part enmime cannot read (%v): %q %q %q", err, ctype, cte, body)
			}
			if d := samePart(fast, slow); d != "" {
				t.Fatalf("Content-Type %q, Content-Transfer-Encoding %q, body %q, detection up to %d bytes: %s", ctype, cte, body, maxDetect, d)
			}
		}
	})
}

// Each label singleByte converts reads every byte as enmime's charset
// reader for it does.
func TestSingleByteLikeEnmime(t *testing.T) {
	all := make([]byte, 0, 256)
	for c := range 256 {
		all = append(all, byte(c))
	}
	for label := range singleByte {
		for _, ctype := range []string{"text/plain; charset=" + label, "text/plain; charset=\"" + strings.ToUpper(label) + "\""} {
			b, n := textLeaf(ctype, "8bit", all)
			b.maxDetect = 0
			fast := b.plainTextLeaf(n)
			if fast == nil {
				t.Errorf("%s: not converted", ctype)
				continue
			}
			slow, err := b.enmimeLeaf(n)
			if err != nil {
				t.Fatalf("%s: enmime: %v", ctype, err)
			}
			if d := samePart(fast, slow); d != "" {
				t.Errorf("%s: %s", ctype, d)
			}
		}
	}
	// A part small enough for detection is left to enmime.
	b, n := textLeaf("text/plain; charset=iso-8859-1", "8bit", []byte("caf\xe9"))
	if b.plainTextLeaf(n) != nil {
		t.Error("a small ISO-8859-1 part taken")
	}
}

// plainTextLeaf takes the ordinary text parts, and leaves to enmime what
// it would warn about, decode otherwise or look at twice.
func TestPlainTextLeaf(t *testing.T) {
	for _, tc := range []struct {
		ctype, cte, body string
		taken            bool
	}{
		{"text/plain; charset=utf-8", "7bit", "Hello\r\n", true},
		{"text/plain; charset=utf-8", "", "Hello\r\n", true},
		{"text/html; charset=UTF-8", "8bit", "<p>Café</p>", true},
		{"text/plain; charset=us-ascii; format=flowed", "7bit", "plain", true},
		{"text/plain; charset=utf-8", "quoted-printable", "Caf=C3=A9=\r\n au lait", true},
		{"text/plain; charset=utf-8", "quoted-printable", "lower =c3=a9", true},
		{"text/plain; charset=utf-8", "quoted-printable", "bad =G1", false},                 // the cleaner escapes it
		{"text/plain; charset=utf-8", "quoted-printable", "raw \xc3\xa9", false},            // the cleaner encodes it
		{"text/plain; charset=utf-8", "quoted-printable", strings.Repeat("x", 1001), false}, // the cleaner breaks it
		{"text/plain; charset=utf-8", "quoted-printable", "=FF", false},                     // not UTF-8 once decoded
		{"text/plain; charset=us-ascii", "8bit", "é", false},                                // detection decides
		{"text/plain", "7bit", "no charset", false},                                         // detection decides
		{"text/plain; charset=iso-8859-1", "7bit", "latin", false},                          // converted
		{"text/plain; charset=utf-8", "base64", "SGVsbG8=", true},
		{"text/plain; charset=utf-8", "base64", "SGVsbG8=\r\n", true},
		{"text/plain; charset=utf-8", "base64", "SGVs\r\nbG8", true},      // unpadded: enmime's decoder takes it
		{"text/plain; charset=utf-8", "base64", "SGVsbG8*", false},        // the cleaner warns
		{"text/plain; charset=utf-8", "base64", "SGVsb", false},           // a dangling sixth bit group
		{"text/plain; charset=utf-8", "base64", "/w==", false},            // not UTF-8 once decoded
		{"text/plain; charset=iso-8859-1", "base64", "Y2Fm6Q==", false},   // detection decides
		{"text/plain; charset=utf-8; name=a.txt", "7bit", "named", false}, // a file name
		{"text/calendar; charset=utf-8", "7bit", "BEGIN:VCALENDAR", false},
		{"text/plain; charset=utf-8", "7bit\u00a0", "x", true}, // mimeHeader trims it for enmime too
		{"text/plain; charset=utf-8; =bad", "7bit", "x", true}, // enmime repairs it, silently
	} {
		b, n := textLeaf(tc.ctype, tc.cte, []byte(tc.body))
		fast := b.plainTextLeaf(n)
		if (fast != nil) != tc.taken {
			t.Errorf("%q %q %q: taken %v, want %v", tc.ctype, tc.cte, tc.body, fast != nil, tc.taken)
			continue
		}
		if fast == nil {
			continue
		}
		slow, err := b.enmimeLeaf(n)
		if err != nil {
			t.Fatalf("%q %q %q: enmime: %v", tc.ctype, tc.cte, tc.body, err)
		}
		if d := samePart(fast, slow); d != "" {
			t.Errorf("%q %q %q: %s", tc.ctype, tc.cte, tc.body, d)
		}
	}
	// The root is taken too, and parseBody makes the event's text or HTML
	// of it as enmime's envelope would.
	b, n := textLeaf("text/plain; charset=utf-8", "7bit", []byte("x"))
	n.id = ""
	if b.plainTextLeaf(n) == nil {
		t.Error("plainTextLeaf did not take the root")
	}
	for _, raw := range []string{
		"Content-Type: text/plain; charset=utf-8\r\n\r\nGrüße\r\n",
		"Content-Type: text/html; charset=us-ascii\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n<p>a=3Db</p>",
		"Content-Type: text/html; charset=utf-8\r\n\r\n",
		"Content-Type: text/plain; charset=utf-8\r\n\r\n",
	} {
		fast, slow := parseBoth(t, []byte(raw), Options{})
		if !bytes.Equal(fast, slow) {
			t.Errorf("%q: fast paths differ from enmime:\nfast   %s\nenmime %s", raw, fast, slow)
		}
	}
}

// TestUndeclaredCharset pins what enmimeLeaf's detectedAlready relies on:
// a text part with no charset to go by reads the same from the parser
// told not to detect (enmime detects anyway) as from the one that
// detects, whether detection converts it or not. (That it is parsed once
// shows in BenchmarkParse/htmlNewsletter100KB, not here.)
func TestUndeclaredCharset(t *testing.T) {
	ascii := strings.Repeat("<p>Plain ASCII newsletter text, with a <a href=\"https://example.com/\">link</a>.</p>\r\n", 20)
	latin1 := strings.Repeat("Caf\xe9 cr\xe8me br\xfbl\xe9e, na\xefve fa\xe7ade, d\xe9j\xe0 vu. ", 20)
	sjis := strings.Repeat("\x82\xb1\x82\xf1\x82\xc9\x82\xbf\x82\xcd\x81\x41\x90\xa2\x8a\x45\x81\x42", 30)
	for _, tc := range []struct{ ctype, body, want string }{
		{"text/html", ascii, ascii},
		{"text/plain", ascii, ascii},
		{"text/plain", latin1, latin1}, // detection is not confident enough to convert
		{"text/plain", sjis, strings.Repeat("こんにちは、世界。", 30)}, // detected and converted
	} {
		b, n := textLeaf(tc.ctype, "8bit", []byte(tc.body))
		p, err := b.enmimeLeafAsIs(n)
		if err != nil {
			t.Fatalf("%s: %v", tc.ctype, err)
		}
		detected, err := readParts(b.parser, bytes.NewReader(b.raw[n.start:n.end]))
		if err != nil {
			t.Fatalf("%s: %v", tc.ctype, err)
		}
		if string(p.Content) != tc.want || string(detected.Content) != tc.want {
			t.Errorf("%s %.20q: content %.40q, with detection %.40q; want %.40q", tc.ctype, tc.body, p.Content, detected.Content, tc.want)
		}
	}
}

// Text in windows-1252 is read as such where enmime would lose it: under
// an ISO-8859-1 label (its 0x80-0x9F bytes would be C1 controls), and in
// a text/plain part with no charset that detection cannot place (every
// 8-bit byte would be U+FFFD), each with a warning. Elsewhere nothing
// changes.
func TestWindows1252Readings(t *testing.T) {
	for _, tc := range []struct {
		ctype, cte, body, want string
		warned                 bool
	}{
		{"text/plain; charset=iso-8859-1", "quoted-printable", "It=92s =93quoted=94 =96 caf=E9 =805", "It’s “quoted” – café €5", true},
		{"text/plain; charset=ISO_8859-1", "8bit", "\x93Hi\x94", "“Hi”", true},
		{"text/plain; charset=iso-8859-1", "8bit", "caf\xe9", "café", false}, // no C1 bytes: as ever
		{"text/plain", "8bit", "Caf\xe9 cr\xe8me \x93quoted\x94", "Café crème “quoted”", true},
		{"text/plain", "8bit", "Caf\xc3\xa9", "Café", false},             // UTF-8: as ever
		{"text/html", "8bit", "<p>caf\xe9</p>", "<p>caf\xe9</p>", false}, // HTML: its <meta> may say
		{"text/plain; charset=iso-8859-15", "8bit", "\xa4", "€", false},
		// The five bytes windows-1252 leaves undefined keep ISO-8859-1's
		// reading, and alone they make no case for windows-1252.
		{"text/plain; charset=iso-8859-1", "8bit", "\x93x\x94 \x81\x8d\x8f\x90\x9d", "“x” \u0081\u008d\u008f\u0090\u009d", true},
		{"text/plain; charset=iso-8859-1", "8bit", "und\x81ef\x9d", "und\u0081ef\u009d", false},
	} {
		b, n := textLeaf(tc.ctype, tc.cte, []byte(tc.body))
		p, err := b.enmimeLeaf(n)
		if err != nil {
			t.Fatalf("%s %q: %v", tc.ctype, tc.body, err)
		}
		warned := slices.ContainsFunc(p.Errors, func(e *enmime.Error) bool { return strings.Contains(e.Detail, "windows-1252") })
		if string(p.Content) != tc.want || warned != tc.warned {
			t.Errorf("%s %q: %q, warned %v; want %q, warned %v", tc.ctype, tc.body, p.Content, warned, tc.want, tc.warned)
		}
	}
}

// An attachment labelled ISO-8859-1 goes out as its bytes came, and
// without the warning about reading its text as windows-1252.
func TestWindows1252AttachmentUnwarned(t *testing.T) {
	raw := "From: a@example.com\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n" +
		"--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nhi\r\n" +
		"--b\r\nContent-Type: text/plain; charset=iso-8859-1; name=\"notes.txt\"\r\nContent-Disposition: attachment\r\n\r\n\x93x\x94\r\n--b--\r\n"
	for _, only := range []bool{false, true} {
		d, err := Parse(strings.NewReader(raw), Options{enmimeOnly: only})
		if err != nil {
			t.Fatal(err)
		}
		if len(d.Attachments) != 1 || string(d.Attachments[0].Content) != "\x93x\x94" ||
			slices.ContainsFunc(d.Warnings, func(w string) bool { return strings.Contains(w, "windows-1252") }) {
			t.Errorf("enmime only %v: attachments %+v, warnings %q", only, d.Attachments, d.Warnings)
		}
	}
}

// Each label multiByte converts reads text, broken sequences and all, as
// enmimeLeaf reads it, in each transfer encoding.
func TestMultiByteLikeEnmime(t *testing.T) {
	samples := map[string]string{}
	for label, enc := range multiByte {
		text, err := enc.NewEncoder().String("日本語のテキスト、中文字符，한국어 텍스트 and ASCII. ")
		if err != nil { // a character the charset lacks: each on its own
			text = ""
			for _, s := range []string{"日本語のテキスト、", "中文字符，", "한국어 텍스트", " and ASCII. "} {
				if e, err := enc.NewEncoder().String(s); err == nil {
					text += e
				}
			}
		}
		samples[label] = strings.Repeat(text, 40) + "\xff\x81" + text[:len(text)-1]
	}
	for label, text := range samples {
		for _, cte := range []string{"8bit", "base64", "quoted-printable"} {
			body := text
			switch cte {
			case "base64":
				body = base64.StdEncoding.EncodeToString([]byte(text))
			case "quoted-printable":
				var b strings.Builder
				w := quotedprintable.NewWriter(&b)
				w.Write([]byte(text))
				w.Close()
				body = b.String()
			}
			b, n := textLeaf("text/plain; charset="+label, cte, []byte(body))
			b.maxDetect = 0
			fast := b.plainTextLeaf(n)
			if fast == nil {
				t.Errorf("%s %s: not converted", label, cte)
				continue
			}
			slow, err := b.enmimeLeaf(n)
			if err != nil {
				t.Fatalf("%s %s: enmime: %v", label, cte, err)
			}
			if d := samePart(fast, slow); d != "" {
				t.Errorf("%s %s: %.300s", label, cte, d)
			}
		}
	}
}
