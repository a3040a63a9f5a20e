package parse

import (
	"mime"
	"slices"
	"strings"

	"github.com/jhillyerd/enmime/v2/mediatype"
)

// parseMediaType is enmime's tolerant media type parser (the one
// enmime.ReadParts and EnvelopeFromPart use, mediatype.ParseWithOptions)
// with a shortcut for what nearly every mailer writes. enmime runs five
// repair passes over every Content-Type and Content-Disposition value,
// each splitting and rebuilding the string, before handing it to
// mime.ParseMediaType; they are about a third of the parse of a small
// message, and enmime parses a multipart's Content-Type four times. On a
// value that plainMediaType accepts the passes change nothing that
// mime.ParseMediaType sees, so it is asked directly (FuzzParseMediaType
// checks the two agree); anything else takes enmime's way, whose invalid
// parameters come in the order of a map: they are sorted, since enmime
// warns about each in the order given, and the same message must give
// the same event on every attempt.
func parseMediaType(ctype string) (mtype string, params map[string]string, invalidParams []string, err error) {
	if ctype == "" {
		return "", nil, nil, nil // enmime: "no media type" is no error
	}
	if plainMediaType(ctype) {
		if mtype, params, err := mime.ParseMediaType(ctype); err == nil && mtype != mediaPlaceholder {
			return mtype, params, nil, nil
		}
	}
	mtype, params, invalidParams, err = mediatype.ParseWithOptions(ctype, mediatype.ParseOptions{})
	slices.Sort(invalidParams)
	return mtype, params, invalidParams, err
}

// mediaPlaceholder is the media type enmime puts in for a missing one and
// reports as "" (enmime v2.3.0 mediatype.go).
const mediaPlaceholder = "x-not-a-mime-type/x-not-a-mime-type"

// plainMediaType reports whether v is a media type in the plain form of
// RFC 2045 §5.1 (or a disposition, RFC 2183 §2): type ["/" subtype], then
// any number of `; attribute=value` with token attributes (no RFC 2231 "*") and values
// that are tokens or quoted strings without backslashes, spaces allowed
// around the ";" only, printable ASCII throughout, no "=?" (enmime would
// decode an encoded word), no "<" (it would cut an HTML tag off the end),
// no white space at the end (enmime keeps it in a last unquoted value).
// It also rejects what enmime's repairs would drop but mime.ParseMediaType
// keeps: an attribute whose "name=" already appears earlier in the value
// (enmime drops it as a repeat, by substring).
func plainMediaType(v string) bool {
	if len(v) > maxPlainMediaType {
		return false // the repeat check is quadratic
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < 0x20 && c != '\t' || c >= 0x7f || c == '<' || c == '\\' {
			return false
		}
	}
	if strings.Contains(v, "=?") || strings.HasSuffix(v, " ") || strings.HasSuffix(v, "\t") {
		return false
	}
	i := tokenEnd(v, 0)
	if i == 0 {
		return false
	}
	if i < len(v) && v[i] == '/' {
		j := tokenEnd(v, i+1)
		if j == i+1 {
			return false
		}
		i = j
	}
	for {
		i = skipWSP(v, i)
		if i == len(v) {
			return true
		}
		if v[i] != ';' {
			return false
		}
		i = skipWSP(v, i+1)
		start := i
		if i = tokenEnd(v, i); i == start || i == len(v) || v[i] != '=' {
			return false
		}
		if strings.ContainsRune(v[start:i], '*') || strings.Contains(v[:start], v[start:i+1]) {
			return false
		}
		i++
		if i < len(v) && v[i] == '"' {
			end := strings.IndexByte(v[i+1:], '"')
			if end < 0 {
				return false
			}
			i += end + 2
			continue
		}
		vs := i
		if i = tokenEnd(v, vs); i == vs {
			return false
		}
	}
}

// maxPlainMediaType bounds the values plainMediaType looks at; real ones
// are well under a line (RFC 5322 §2.1.1: 998 bytes).
const maxPlainMediaType = 1024

// tokenEnd returns the end of the RFC 2045 token starting at v[i].
func tokenEnd(v string, i int) int {
	for i < len(v) && tokenByte[v[i]] {
		i++
	}
	return i
}

func skipWSP(v string, i int) int {
	for i < len(v) && (v[i] == ' ' || v[i] == '\t') {
		i++
	}
	return i
}

// tokenByte marks the bytes an RFC 2045 token may hold: printable ASCII
// other than space and tspecials.
var tokenByte = func() (t [256]bool) {
	for c := 0x21; c < 0x7f; c++ {
		t[c] = !strings.ContainsRune(`()<>@,;:\"/[]?=`, rune(c))
	}
	return t
}()

// mimeParamValue is v as a MIME parameter value (RFC 2045 §5.1): a token
// as it is, anything else as a quoted string.
func mimeParamValue(v string) string {
	if v != "" && tokenEnd(v, 0) == len(v) {
		return v
	}
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(v); i++ {
		if c := v[i]; c == '"' || c == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(v[i])
	}
	b.WriteByte('"')
	return b.String()
}
