package parse

import (
	"bytes"
	"encoding/base64"
	"strings"
	"unicode/utf8"

	"github.com/jhillyerd/enmime/v2"
)

// recode prepares a single-part entity whose transfer encoding enmime
// would decode wrongly, by giving it a body of canonical base64 (node.body)
// that every later step reads as it would any base64 part:
//
//   - x-uuencode (also "uuencode", "x-uue", "uue": what uuencoding mailers
//     write, and what Python's email package decodes), which enmime leaves
//     undecoded with an "unrecognized encoding" warning;
//   - base64 with padding before its end: mailers that encode a body in
//     chunks and join the results, or a mailing list that appends a
//     footer to the part. enmime's cleaner drops the "=" and decodes
//     across the join into garbage without a word; here each block is
//     decoded on its own, or the footer left out, with a warning
//     (decodeBase64Blocks).
func (b *builder) recode(n *node) {
	body := b.body(n)
	switch n.cte {
	case "x-uuencode", "uuencode", "x-uue", "uue":
		content, ok := decodeUU(body)
		if !ok {
			b.w.addf("%s: %s content without a \"begin\" line: kept undecoded", n.label(), n.cte)
			return
		}
		b.setBase64(n, content)
	case "base64":
		content, blocks, bad, tail, ok := decodeBase64Blocks(body)
		switch {
		case !ok:
			if cut, ok := unpaddedFooter(body); ok {
				if content, _, ok := decodeBase64Body(body[:cut]); ok {
					b.w.addf("%s: %d bytes of text after the base64 content ignored", n.label(), len(body)-cut)
					b.setBase64(n, content)
				}
			}
			return
		case tail > 0:
			b.w.addf("%s: %d bytes of text after the base64 padding ignored", n.label(), tail)
		default:
			b.w.addf("%s: base64 content in %d blocks, each padded: decoded one after the other", n.label(), blocks)
		}
		if bad > 0 {
			b.w.addf("%s: %s: %d bytes outside the base64 alphabet ignored", n.label(), enmime.ErrorMalformedBase64, bad)
		}
		b.setBase64(n, content)
	}
}

// setBase64 makes content, base64-encoded, the body of n, and base64 its
// transfer encoding.
func (b *builder) setBase64(n *node, content []byte) {
	n.body = base64.StdEncoding.AppendEncode(make([]byte, 0, base64.StdEncoding.EncodedLen(len(content))), content)
	n.cte = "base64"
	n.header = withCTE(n.header, "base64")
	if n.plain != nil {
		plain := *n.plain
		plain.cte = "base64"
		n.plain = &plain
	}
}

// withCTE returns header (as mimeHeader writes it) with its
// Content-Transfer-Encoding field set to cte.
func withCTE(header []byte, cte string) []byte {
	const name = "Content-Transfer-Encoding: "
	var out bytes.Buffer
	for line := range strings.SplitAfterSeq(string(header), "\r\n") {
		switch {
		case strings.HasPrefix(line, name):
			continue
		case line == "\r\n":
			out.WriteString(name + cte + "\r\n")
		}
		out.WriteString(line)
	}
	return out.Bytes()
}

// decodeBase64Blocks decodes a base64 body with padding before its last
// base64 digit; ok is false for any other, left to the usual decoder.
// Padding is an "=" after digits that do not fill whole groups of four (a
// stray one elsewhere changes nothing and is skipped as enmime does).
// When only base64 follows the first padding, the body is blocks joined
// together (mailers that encode in chunks), decoded one after the other.
// When other text follows, or anything after an empty line (a footer a
// mailing list appended to the part), the content ends at the padding, and
// tail is how much was left out.
// Bytes outside the base64 alphabet are skipped and counted in bad; a
// block that ends with a lone sixth of a byte loses it.
func decodeBase64Blocks(body []byte) (content []byte, blocks, bad, tail int, ok bool) {
	// The usual body has its first "=" in its last few bytes: found at
	// memory speed, and nothing to count.
	if first := bytes.IndexByte(body, '='); first < 0 || digitAt(body[first:]) < 0 {
		return nil, 0, 0, 0, false
	}
	digits, pad := 0, -1
	for i, c := range body {
		if base64Digit(c) {
			digits++
		} else if c == '=' && digits%4 != 0 {
			pad = i
			break
		}
	}
	if pad < 0 || digitAt(body[pad:]) < 0 {
		return nil, 0, 0, 0, false
	}
	next := pad + digitAt(body[pad:])
	footer := bytes.Count(body[pad:next], []byte("\n")) >= 2 // an empty line before it
	for _, c := range body[pad:] {
		if footer || !base64Byte[c] {
			tail = len(body) - pad
			body = body[:pad]
			break
		}
	}
	content = make([]byte, 0, base64.StdEncoding.DecodedLen(len(body)))
	var group []byte
	flush := func() {
		if len(group)%4 == 1 {
			group = group[:len(group)-1]
		}
		if len(group) > 0 {
			content, _ = base64.RawStdEncoding.AppendDecode(content, group) // only digits, never 1 mod 4
			blocks++
		}
		group = group[:0]
	}
	for _, c := range body {
		switch {
		case c == '=':
			if len(group)%4 != 0 {
				flush()
			}
		case base64Digit(c):
			group = append(group, c)
		case c != ' ' && c != '\t' && c != '\r' && c != '\n':
			bad++
		}
	}
	flush()
	return content, blocks, bad, tail, true
}

// unpaddedFooter finds a mailing list's footer appended to a base64 body
// that needs no padding (its data a multiple of three bytes), which
// decodeBase64Blocks cannot tell by the padding: lines of base64 digits
// only, whole groups of four in all, then a line that cannot be base64
// (a byte outside the alphabet: "____", "list@example.org", "-- "; not
// white space alone, which a broken encoder may put inside a line), and
// no full line of base64 after it, as a corrupted body would have. cut is where that line starts; ok is false
// for any other body, left to the usual decoder.
func unpaddedFooter(body []byte) (cut int, ok bool) {
	digits, lines := 0, 0
	for i := 0; i < len(body); {
		end := len(body)
		if j := bytes.IndexByte(body[i:], '\n'); j >= 0 {
			end = i + j
		}
		line := bytes.TrimRight(body[i:end], " \t\r")
		switch {
		case len(line) == 0:
		case allBase64Digits(line):
			digits += len(line)
			lines++
		default:
			if lines == 0 || digits%4 != 0 || !bytes.ContainsFunc(line, notBase64Text) {
				return 0, false // white space alone may be a broken encoder's
			}
			if corruptedBase64Line(line) {
				return 0, false // a stray byte in a line of the content, not a footer
			}
			for _, rest := range bytes.Split(body[end:], []byte("\n")) {
				rest = bytes.TrimRight(rest, " \t\r")
				if len(rest) >= 40 && allBase64Digits(rest) {
					return 0, false
				}
				// The padded last line of the content.
				if digits := bytes.TrimRight(rest, "="); len(digits) < len(rest) && len(rest)%4 == 0 && len(rest)-len(digits) <= 2 && allBase64Digits(digits) {
					return 0, false
				}
			}
			return i, true
		}
		i = end + 1
	}
	return 0, false
}

// corruptedBase64Line reports whether line, which has bytes outside the
// base64 alphabet, is rather a line of base64 content with a stray byte or
// two (a transfer that damaged it) than text: at least 20 bytes, no white
// space, at most two bytes that are not base64 digits. A footer's line is
// words, a rule ("____") or a URL, each with more.
func corruptedBase64Line(line []byte) bool {
	if len(line) < 20 || bytes.ContainsAny(line, " \t") {
		return false
	}
	other := 0
	for _, c := range line {
		if !base64Digit(c) {
			if other++; other > 2 {
				return false
			}
		}
	}
	return true
}

// notBase64Text reports whether r can stand in no base64 body, broken or
// not: neither a digit, "=" nor white space.
func notBase64Text(r rune) bool {
	return r >= utf8.RuneSelf || !base64Byte[r]
}

// allBase64Digits reports whether b holds base64 digits only.
func allBase64Digits(b []byte) bool {
	for _, c := range b {
		if !base64Digit(c) {
			return false
		}
	}
	return true
}

// digitAt returns the index of the first base64 digit in b, -1 if none.
func digitAt(b []byte) int {
	for i, c := range b {
		if base64Digit(c) {
			return i
		}
	}
	return -1
}

func base64Digit(c byte) bool { return base64Value[c] >= 0 }

// decodeUU decodes a uuencoded body (POSIX uuencode, historical
// encoding): the lines between "begin <mode> <name>" and "end", each a
// length character followed by groups of four characters of six bits
// (32 to 95, with "`" for 0). It is lenient as readers are: trailing
// blanks stripped by mail relays read as zeros, and a missing "end" ends
// at the body's end. ok is false without a begin line.
func decodeUU(body []byte) (content []byte, ok bool) {
	lines := strings.Split(strings.ReplaceAll(string(body), "\r\n", "\n"), "\n")
	i := 0
	for ; i < len(lines); i++ {
		if strings.HasPrefix(lines[i], "begin ") {
			break
		}
	}
	if i == len(lines) {
		return nil, false
	}
	content = make([]byte, 0, len(body)*3/4)
	for _, line := range lines[i+1:] {
		if line == "end" || strings.HasPrefix(line, "end ") {
			break
		}
		if line == "" {
			continue
		}
		n := int(uuValue(line[0]))
		if n == 0 {
			continue // the zero-length line before "end"
		}
		chars := line[1:]
		var group [4]byte
		for j := 0; n > 0; j += 4 {
			for k := range group {
				group[k] = 0
				if j+k < len(chars) {
					group[k] = uuValue(chars[j+k])
				}
			}
			three := [3]byte{group[0]<<2 | group[1]>>4, group[1]<<4 | group[2]>>2, group[2]<<6 | group[3]}
			take := min(n, 3)
			content = append(content, three[:take]...)
			n -= take
		}
	}
	return content, true
}

// uuValue is the six-bit value of a uuencoded character.
func uuValue(c byte) byte { return (c - ' ') & 0x3f }
