package parse

import (
	"bytes"
	"io"
	"mime"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/charmap"
	"golang.org/x/text/encoding/htmlindex"
	"golang.org/x/text/encoding/ianaindex"
	"golang.org/x/text/encoding/japanese"
	"golang.org/x/text/encoding/korean"
	"golang.org/x/text/encoding/simplifiedchinese"
	"golang.org/x/text/encoding/traditionalchinese"
	"golang.org/x/text/transform"
)

// lookupCharset returns the decoder for a MIME charset name, or nil when the
// name is unknown. WHATWG labels (htmlindex) come first because that is what
// mail in the wild uses ("latin1" means windows-1252); IANA names fill in the
// rest. An RFC 2231 language suffix ("utf-8*en") is ignored.
func lookupCharset(name string) encoding.Encoding {
	name = strings.ToLower(strings.TrimSpace(name))
	if i := strings.IndexByte(name, '*'); i >= 0 {
		name = name[:i]
	}
	if name == "" {
		return nil
	}
	if alias, ok := charsetAliases[name]; ok {
		name = alias
	}
	if enc, err := htmlindex.Get(name); err == nil {
		return enc
	}
	for _, idx := range []*ianaindex.Index{ianaindex.MIME, ianaindex.IANA} {
		if enc, err := idx.Encoding(name); err == nil && enc != nil {
			return enc
		}
	}
	return nil
}

// charsetAliases are labels mail uses that neither index knows, for the
// charsets they name (Windows code page numbers, as Outlook writes them).
var charsetAliases = map[string]string{
	"cp932":    "shift_jis", // Windows-31J, which WHATWG's Shift_JIS decoder reads
	"cp936":    "gbk",
	"cp949":    "euc-kr", // Unified Hangul Code, which WHATWG's EUC-KR decoder reads
	"cp950":    "big5",
	"x-ibm850": "ibm850",
	"x-ibm437": "ibm437",
}

// wordDecoder decodes RFC 2047 encoded words. It never fails on a charset:
// words in an unknown charset are read as UTF-8 when they are, else as
// windows-1252, and the charset is remembered so the caller can warn.
type wordDecoder struct {
	dec     mime.WordDecoder
	unknown []string // in order met, each once
	seen    map[string]bool
}

func newWordDecoder() *wordDecoder {
	wd := &wordDecoder{}
	wd.dec.CharsetReader = wd.charsetReader
	return wd
}

func (wd *wordDecoder) charsetReader(charset string, in io.Reader) (io.Reader, error) {
	if charset == latin1CP1252Label {
		b, err := io.ReadAll(in) // an encoded word: short
		return bytes.NewReader(latin1CP1252.append(nil, b)), err
	}
	if enc := lookupCharset(charset); enc != nil {
		return enc.NewDecoder().Reader(in), nil
	}
	if utf7Label(charset) {
		b, err := io.ReadAll(in) // an encoded word: short
		text, _ := decodeUTF7(b)
		return strings.NewReader(text), err
	}
	if !wd.seen[charset] && len(wd.unknown) < maxWarnings {
		if wd.seen == nil {
			wd.seen = make(map[string]bool)
		}
		wd.seen[charset] = true
		wd.unknown = append(wd.unknown, charset)
	}
	// Read as 8-bit header bytes are (from8bit): UTF-8 if it is ("x-unknown"
	// over UTF-8 text), else windows-1252; not a U+FFFD for each run of
	// 8-bit characters.
	b, err := io.ReadAll(in) // an encoded word: short
	text, _ := from8bit(string(b))
	return strings.NewReader(text), err
}

// decode returns s with its encoded words decoded, as valid UTF-8, and the
// problems met, if any, as warning texts.
func (wd *wordDecoder) decode(s string) (string, []string) { return wd.decodeMode(s, false) }

// decodeAddressField is decode for the value of an address field (From,
// To, Cc, …): a display name whose decoded text holds a comma, a colon,
// an angle bracket or another RFC 5322 special is written as a quoted
// string, so that the value still parses as the list it was
// ("=?utf-8?q?M=C3=BCller,_Hans?= <h@x>" becomes "\"Müller, Hans\" <h@x>",
// not two addresses).
func (wd *wordDecoder) decodeAddressField(s string) (string, []string) { return wd.decodeMode(s, true) }

func (wd *wordDecoder) decodeMode(s string, quoteNames bool) (string, []string) {
	if !strings.Contains(s, "=?") {
		return s, nil
	}
	wd.unknown = wd.unknown[:0]
	clear(wd.seen)
	out := wd.decodeWords(s, quoteNames)
	var problems []string
	for _, cs := range wd.unknown {
		problems = append(problems, "unknown charset "+quote(cs)+" in encoded word: read as UTF-8, or as windows-1252 where not UTF-8")
	}
	if !utf8.ValidString(out) {
		out = strings.ToValidUTF8(out, "\uFFFD")
		problems = append(problems, "encoded word decoded to invalid UTF-8, replaced with U+FFFD")
	}
	return out, problems
}

// decodeWords decodes the RFC 2047 encoded words in s, as
// mime.WordDecoder.DecodeHeader does (white space between two words
// dropped, words decoded wherever they stand), and more leniently: a word
// ends at its first "?" (RFC 2047 §2: its text holds none), so one left
// unterminated does not swallow the valid word after it (white space in
// the text is let through, as mime does: some mailers write it), and
// base64 text
// without its "=" padding, which some mailers write, is decoded. A word
// that does not decode is kept as written.
//
// With quoteNames, each run of adjacent decoded words whose text holds an RFC
// 5322 special (decodeAddressField) is written as a quoted string, unless
// the raw value already has a quote right before it.
func (wd *wordDecoder) decodeWords(s string, quoteNames bool) string {
	var b, run strings.Builder
	open, quoted := false, false // a run of decoded words is in run; it follows a '"'
	flush := func() {
		if !open {
			return
		}
		t := run.String()
		if quoteNames && !quoted && strings.ContainsAny(t, phraseSpecials) {
			b.WriteByte('"')
			for k := 0; k < len(t); k++ {
				if t[k] == '"' || t[k] == '\\' {
					b.WriteByte('\\')
				}
				b.WriteByte(t[k])
			}
			b.WriteByte('"')
		} else {
			b.WriteString(t)
		}
		run.Reset()
		open = false
	}
	i, lastWord := 0, -1 // lastWord: where the last decoded word ended
	for {
		w, ok := nextWord(s, i)
		if !ok {
			flush()
			b.WriteString(s[i:])
			return b.String()
		}
		text := w.text
		if (w.enc == 'B' || w.enc == 'b') && len(text)%4 >= 2 {
			text += "=="[:4-len(text)%4]
		}
		charset := w.charset
		if strings.EqualFold(charset, "iso-8859-1") {
			// mime reads this label itself, as ISO-8859-1 proper; its
			// 0x80-0x9F bytes are windows-1252's curly quotes, dashes and
			// euro sign, as mailers mean them and browsers read them.
			charset = latin1CP1252Label
		}
		dec, err := wd.dec.Decode("=?" + charset + "?" + string(w.enc) + "?" + text + "?=")
		if err != nil {
			flush()
			b.WriteString(s[i:w.end])
			i, lastWord = w.end, -1
			continue
		}
		if gap := s[i:w.start]; !open || lastWord != i || strings.Trim(gap, " \t\r\n") != "" {
			flush()
			b.WriteString(gap)
			open, quoted = true, w.start > 0 && s[w.start-1] == '"'
		}
		run.WriteString(dec)
		i, lastWord = w.end, w.end
	}
}

// phraseSpecials are the RFC 5322 §3.2.3 specials that cannot stand
// unquoted in a display name ("." is allowed there by obs-phrase).
const phraseSpecials = `()<>[]:;@\,"`

// encodedWord is one RFC 2047 encoded word of a header value: s[start:end]
// is "=?" charset "?" enc "?" text "?=".
type encodedWord struct {
	start, end int
	charset    string
	enc        byte // B or Q, in either case
	text       string
}

// nextWord finds the first encoded word in s at or after from: a charset
// without white space, B or Q, and a text without "?" (RFC 2047 §2; white
// space in the text is let through, as mime does). An "=?" that starts no
// such word is passed over.
func nextWord(s string, from int) (encodedWord, bool) {
	for {
		j := strings.Index(s[from:], "=?")
		if j < 0 {
			return encodedWord{}, false
		}
		j += from
		from = j + 2
		rest := s[j+2:]
		q := strings.IndexByte(rest, '?')
		if q <= 0 || strings.ContainsAny(rest[:q], " \t\r\n") || q+2 >= len(rest) || rest[q+2] != '?' {
			continue
		}
		enc := rest[q+1]
		if enc != 'B' && enc != 'b' && enc != 'Q' && enc != 'q' {
			continue
		}
		body := rest[q+3:]
		k := strings.IndexByte(body, '?')
		if k < 0 || k+1 >= len(body) || body[k+1] != '=' {
			continue
		}
		return encodedWord{start: j, end: j + 2 + q + 3 + k + 2, charset: rest[:q], enc: enc, text: body[:k]}, true
	}
}

// from8bit makes raw header bytes valid UTF-8. RFC 6532 allows UTF-8 in
// headers; anything else 8-bit predates it and is, in practice, Latin-1 or
// windows-1252, so that is how it is read. It reports whether it had to.
func from8bit(s string) (string, bool) {
	if utf8.ValidString(s) {
		return s, false
	}
	out, err := charmap.Windows1252.NewDecoder().String(s)
	if err != nil {
		return strings.ToValidUTF8(s, "\uFFFD"), true
	}
	return out, true
}

// rawText returns a header field's value as text when its bytes are not
// plain UTF-8 (raw ISO-2022-JP, fromJIS; other 8-bit bytes, from8bit) and
// what was done, for a warning ("" when nothing was).
func rawText(value string) (text, how string) {
	if v, jis := fromJIS(value); jis {
		return v, "is raw ISO-2022-JP, not in encoded words: decoded"
	}
	if v, was8bit := from8bit(value); was8bit {
		return v, "is neither ASCII nor UTF-8: read as windows-1252"
	}
	return value, ""
}

// fromJIS decodes s if it holds raw ISO-2022-JP (7-bit JIS: escape
// sequences switching to JIS X 0208), as older Japanese mailers wrote
// header fields instead of encoded words, and reports whether it did.
// Left as they are, the escapes came out in the subject, and the bytes
// between them, which include "@", ":" and ";", were read as addresses.
func fromJIS(s string) (string, bool) {
	if !strings.Contains(s, "\x1b$B") && !strings.Contains(s, "\x1b$@") || !isASCII([]byte(s)) {
		return s, false // JIS is 7-bit: beside 8-bit text it is something else
	}
	out, err := japanese.ISO2022JP.NewDecoder().String(s)
	if err != nil || !utf8.ValidString(out) {
		return s, false
	}
	return out, true
}

// validUTF8 replaces invalid UTF-8 sequences with U+FFFD, so that the JSON
// encoder never has to and the output is the same on every path.
func validUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

// utf7Label reports whether charset names UTF-7, which golang.org/x/text
// does not decode (decodeUTF7 does).
func utf7Label(charset string) bool {
	switch strings.ToLower(charset) {
	case "utf-7", "utf7", "unicode-1-1-utf-7":
		return true
	}
	return false
}

// decodeUTF7 decodes UTF-7 (RFC 2152) as a reader would, going on after a
// bad sequence (bits left over at the end of a shifted run, an unpaired
// surrogate, an 8-bit byte), which becomes U+FFFD; bad counts them.
func decodeUTF7(b []byte) (out string, bad int) {
	var s strings.Builder
	s.Grow(len(b))
	for i := 0; i < len(b); {
		c := b[i]
		i++
		switch {
		case c >= utf8.RuneSelf:
			s.WriteRune(utf8.RuneError)
			bad++
			continue
		case c != '+':
			s.WriteByte(c)
			continue
		case i < len(b) && b[i] == '-':
			s.WriteByte('+') // "+-"
			i++
			continue
		}
		if i == len(b) || base64Value[b[i]] < 0 {
			s.WriteByte('+') // a "+" that starts nothing: kept as written
			continue
		}
		var units []uint16
		var bits uint32
		n := 0
		for ; i < len(b) && base64Value[b[i]] >= 0; i++ {
			bits = bits<<6 | uint32(base64Value[b[i]])
			if n += 6; n >= 16 {
				n -= 16
				units = append(units, uint16(bits>>n))
				bits &= 1<<n - 1
			}
		}
		for _, r := range utf16.Decode(units) {
			if r == utf8.RuneError {
				bad++
			}
			s.WriteRune(r)
		}
		if n >= 6 || bits != 0 {
			s.WriteRune(utf8.RuneError) // not a whole UTF-16 unit
			bad++
		}
		if i < len(b) && b[i] == '-' {
			i++ // the run's explicit end
		}
	}
	return s.String(), bad
}

// base64Value is the value of a byte in the base64 alphabet (RFC 4648 §4;
// UTF-7 shifts into the same one), -1 outside it.
var base64Value = func() (t [256]int8) {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	for i := range t {
		t[i] = -1
	}
	for i := 0; i < len(alphabet); i++ {
		t[alphabet[i]] = int8(i)
	}
	return t
}()

// singleByte holds the 8-bit charsets plainTextLeaf converts itself, under
// the labels mail uses most, each with the table enmime's charset readers
// use for that label (enmime v2.3.0 internal/coding; "latin1" is
// windows-1252 there, as for browsers, and "iso-8859-1" is not, but
// enmimeLeaf makes it so). TestSingleByteLikeEnmime holds every label to
// enmimeLeaf's reading.
var singleByte = func() map[string]*byteTable {
	m := make(map[string]*byteTable)
	for cm, labels := range map[*charmap.Charmap][]string{
		charmap.Windows1252: {"windows-1252", "cp1252", "x-cp1252", "latin1", "l1"},
		charmap.ISO8859_2:   {"iso-8859-2", "iso8859-2", "iso_8859-2", "latin2", "l2"},
		charmap.ISO8859_5:   {"iso-8859-5", "iso8859-5"},
		charmap.ISO8859_7:   {"iso-8859-7", "iso8859-7"},
		charmap.Windows1254: {"iso-8859-9", "iso8859-9", "windows-1254", "cp1254"},
		charmap.ISO8859_15:  {"iso-8859-15", "iso8859-15", "iso_8859-15", "l9"},
		charmap.Windows1250: {"windows-1250", "cp1250"},
		charmap.Windows1251: {"windows-1251", "cp1251"},
		charmap.Windows1253: {"windows-1253", "cp1253"},
		charmap.KOI8R:       {"koi8-r", "koi8_r"},
		charmap.KOI8U:       {"koi8-u"},
	} {
		t := newByteTable(cm)
		for _, l := range labels {
			m[l] = t
		}
	}
	// ISO-8859-1 labels: enmimeLeaf reads them as latin1CP1252
	// (windows1252).
	for _, l := range []string{"iso-8859-1", "iso8859-1", "iso_8859-1", "iso88591"} {
		m[l] = latin1CP1252
	}
	return m
}()

// latin1CP1252 reads text labelled ISO-8859-1 as browsers do (WHATWG):
// windows-1252, whose printable characters fill most of 0x80-0x9F, and
// where it has none (0x81, 0x8D, 0x8F, 0x90, 0x9D) ISO-8859-1's C1
// controls, as written, rather than U+FFFD (which x/text's windows-1252
// gives): nothing is lost that ISO-8859-1 kept.
var latin1CP1252 = func() *byteTable {
	t := newByteTable(charmap.Windows1252)
	for _, c := range cp1252Undefined {
		t.n[c] = uint8(utf8.EncodeRune(t.enc[c][:], rune(c)))
	}
	return t
}()

// cp1252Undefined are the bytes windows-1252 assigns no character.
var cp1252Undefined = [...]byte{0x81, 0x8d, 0x8f, 0x90, 0x9d}

// latin1CP1252Label is the charset name the word decoder reads with
// latin1CP1252 (decodeWords gives it for "iso-8859-1").
const latin1CP1252Label = "x-mailhook-iso-8859-1-as-windows-1252"

// multiByte holds the multi-byte charsets plainTextLeaf converts itself,
// under the labels mail uses most, each with the decoder enmime uses for
// that label (enmime v2.3.0 internal/coding: GB2312 is read as GBK).
// TestMultiByteLikeEnmime holds every label to enmimeLeaf's reading.
var multiByte = func() map[string]encoding.Encoding {
	m := make(map[string]encoding.Encoding)
	for enc, labels := range map[encoding.Encoding][]string{
		japanese.ShiftJIS:         {"shift_jis", "shift-jis", "sjis", "x-sjis", "windows-31j", "cp932"},
		japanese.EUCJP:            {"euc-jp", "x-euc-jp"},
		japanese.ISO2022JP:        {"iso-2022-jp"},
		simplifiedchinese.GBK:     {"gb2312", "gbk", "x-gbk", "cp936"},
		simplifiedchinese.GB18030: {"gb18030"},
		traditionalchinese.Big5:   {"big5", "big5-hkscs"},
		korean.EUCKR:              {"euc-kr", "ks_c_5601-1987", "windows-949"},
	} {
		for _, l := range labels {
			m[l] = enc
		}
	}
	return m
}()

// decodePieces converts the body of a part in transfer encoding cte
// (transferPieces) from enc to UTF-8, into a buffer of the exact size:
// decoded twice, a piece at a time, to size the text and then to fill it.
func decodePieces(cte string, body []byte, enc encoding.Encoding) ([]byte, bool) {
	size, ok := decodedSize(cte, body, enc)
	if !ok {
		return nil, false
	}
	return decodeSized(cte, body, enc, size)
}

// decodeSized is decodePieces once decodedSize has given the size.
func decodeSized(cte string, body []byte, enc encoding.Encoding, size int) ([]byte, bool) {
	out := bytes.NewBuffer(make([]byte, 0, size))
	w := transform.NewWriter(out, enc.NewDecoder())
	transferPieces(cte, body, func(piece []byte) { _, _ = w.Write(piece) })
	if w.Close() != nil || out.Len() != size {
		return nil, false
	}
	return out.Bytes(), true
}

// decodedSize returns the length of the body of a part in transfer
// encoding cte converted from enc to UTF-8, and false where the transfer
// decoding or the conversion fails.
func decodedSize(cte string, body []byte, enc encoding.Encoding) (int, bool) {
	var size countingWriter
	w := transform.NewWriter(&size, enc.NewDecoder())
	var err error
	ok := transferPieces(cte, body, func(piece []byte) {
		if err == nil {
			_, err = w.Write(piece)
		}
	})
	if !ok || err != nil || w.Close() != nil {
		return 0, false
	}
	return int(size), true
}

// countingWriter counts what is written to it.
type countingWriter int64

func (c *countingWriter) Write(p []byte) (int, error) {
	*c += countingWriter(len(p))
	return len(p), nil
}

// byteTable converts an 8-bit charset to UTF-8 a byte at a time.
type byteTable struct {
	enc [256][utf8.UTFMax]byte
	n   [256]uint8
}

func newByteTable(cm *charmap.Charmap) *byteTable {
	t := &byteTable{}
	for c := range 256 {
		t.n[c] = uint8(utf8.EncodeRune(t.enc[c][:], cm.DecodeByte(byte(c))))
	}
	return t
}

// size returns the length of in converted.
func (t *byteTable) size(in []byte) int {
	n := 0
	for _, c := range in {
		n += int(t.n[c])
	}
	return n
}

// append appends in converted to out.
func (t *byteTable) append(out, in []byte) []byte {
	for _, c := range in {
		if t.n[c] == 1 {
			out = append(out, t.enc[c][0])
			continue
		}
		out = append(out, t.enc[c][:t.n[c]]...)
	}
	return out
}
