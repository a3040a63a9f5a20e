package parse

import (
	"mime"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

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
	ctype = utf8Extended(ctype)
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

// utf8Extended rewrites the RFC 2231 extended parameters of the media
// type or disposition v (name*=charset'lang'%xx, or in sections name*0*=,
// name*1*=, …) whose charset is neither UTF-8 nor US-ASCII as one
// name*=utf-8”… parameter with the same text: mime.ParseMediaType, which
// enmime calls, decodes only those two charsets and drops the others
// (filename*=iso-8859-1”r%E9sum%E9.pdf gave no filename at all), and
// ASCII text under a label it does not know (boundary*=ansi-x3.4-1968”…
// lost the boundary), nor a value with no charset (filename*=”b%C3%A9.pdf,
// which RFC 2231 allows). Values in no charset or one no table knows are
// read as UTF-8 if they are, else as windows-1252; values it cannot
// convert are left as they are.
func utf8Extended(v string) string {
	if !strings.Contains(v, "*=") {
		return v // no extended section
	}
	segs := splitParams(v)
	type section struct {
		n        int
		extended bool
		value    string
	}
	groups := map[string][]section{}
	for _, seg := range segs[1:] {
		attr, val, ok := strings.Cut(seg, "=")
		if !ok {
			continue
		}
		attr = strings.ToLower(strings.TrimSpace(attr))
		base, ext := strings.CutSuffix(attr, "*")
		n := -1
		if b, num, ok := strings.Cut(base, "*"); ok {
			k, err := strconv.Atoi(num)
			if err != nil || k < 0 || k > 999 {
				continue
			}
			base, n = b, k
		}
		groups[base] = append(groups[base], section{n: n, extended: ext, value: strings.TrimSpace(val)})
	}
	converted := map[string]string{}
	for base, secs := range groups {
		slices.SortFunc(secs, func(a, b section) int { return a.n - b.n })
		first := secs[0]
		if !first.extended || first.n > 0 {
			continue
		}
		charset, rest, ok := strings.Cut(unquote(first.value), "'") // quoted, as some mailers write it
		if !ok {
			continue
		}
		if _, rest, ok = strings.Cut(rest, "'"); !ok { // the language
			continue
		}
		switch strings.ToLower(charset) {
		case "utf-8", "us-ascii":
			continue
		}
		// nil for no charset (RFC 2231 allows it; mime.ParseMediaType
		// drops the value) and labels no table knows.
		enc := lookupCharset(charset)
		var raw []byte
		good := true
		for i, sec := range secs {
			if first.n < 0 && i > 0 || sec.n >= 0 && sec.n != i { // a gap, or sections with a plain one
				good = false
				break
			}
			text := sec.value
			if sec.extended {
				text = unquote(text)
			}
			if i == 0 {
				text = rest
			}
			if !sec.extended {
				raw = append(raw, unquote(text)...)
				continue
			}
			dec, err := url.PathUnescape(text) // %XX only: no "+" for space
			if err != nil {
				good = false
				break
			}
			raw = append(raw, dec...)
		}
		if !good {
			continue
		}
		switch {
		case enc != nil:
			out, err := enc.NewDecoder().Bytes(raw)
			if err != nil || !utf8.Valid(out) {
				continue
			}
			converted[base] = string(out)
		default:
			// Read as 8-bit header bytes are (from8bit): ASCII under a
			// label no table knows ("ansi-x3.4-1968": a boundary) as
			// it is, UTF-8 if it is, else windows-1252.
			converted[base], _ = from8bit(string(raw))
		}
	}
	if len(converted) == 0 {
		return v
	}
	var b strings.Builder
	b.WriteString(segs[0])
	for _, seg := range segs[1:] {
		attr, _, _ := strings.Cut(seg, "=")
		base, _, _ := strings.Cut(strings.ToLower(strings.TrimSpace(attr)), "*")
		if _, ok := converted[base]; ok {
			continue
		}
		b.WriteString(";")
		b.WriteString(seg)
	}
	names := make([]string, 0, len(converted))
	for base := range converted {
		names = append(names, base)
	}
	slices.Sort(names)
	for _, base := range names {
		b.WriteString("; " + base + "*=utf-8''" + percentEncode(converted[base]))
	}
	return b.String()
}

// splitParams splits v at the semicolons outside quoted strings.
func splitParams(v string) []string {
	var segs []string
	start, quoted := 0, false
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case c == '\\' && quoted:
			i++
		case c == '"':
			quoted = !quoted
		case c == ';' && !quoted:
			segs = append(segs, v[start:i])
			start = i + 1
		}
	}
	return append(segs, v[start:])
}

// unquote returns the content of a quoted string, or s if it is not one.
func unquote(s string) string {
	if len(s) < 2 || s[0] != '"' || s[len(s)-1] != '"' {
		return s
	}
	var b strings.Builder
	for i := 1; i < len(s)-1; i++ {
		if s[i] == '\\' && i+1 < len(s)-1 {
			i++
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// percentEncode writes s as an RFC 2231 extended value: attribute
// characters as they are, every other byte as %XX.
func percentEncode(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if tokenByte[c] && c != '*' && c != '\'' && c != '%' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}

// tidyParams returns v, a Content-Type or Content-Disposition value, with
// what follows a parameter value before the next ";" made into what mail
// clients read there: an RFC 822 comment dropped
// (`charset="koi8-r" (Cyrillic)`, `charset=koi8-r (Cyrillic)`; also one
// before or after the type), a missing ";" put in before a next parameter
// (`boundary="b" type="text/html"`, `boundary=b type=x`, or a "," in its
// place after a quoted value), and after a quoted value anything else
// dropped (a next field glued on by a broken relay: `boundary="b"
// Message-Id: <…>`). enmime's parser keeps such text in the value, so the
// boundary was never found, the filename had the comment in it, and the
// charset was unknown. Words after an unquoted value are kept: they are
// more often the rest of an unquoted filename (`filename=my file.pdf`).
func tidyParams(v string) string {
	if !strings.ContainsAny(v, `"(`) && !paramAfterSpace(v) {
		return v
	}
	var buf [256]byte // most values fit: no allocation unless one changes
	b := buf[:0]
	// last is the last byte of b that is not white space: a comment
	// right after a ";" is dropped (looked up here, not in b: values of
	// spaces and comments would make that quadratic).
	var last byte
	put := func(s string) {
		b = append(b, s...)
		if t := strings.TrimRight(s, " \t"); t != "" {
			last = t[len(t)-1]
		}
	}
	i := 0
	if k := afterComments(v, 0); k != 0 {
		if j := skipWSP(v, k); j < len(v) && v[j] != ';' {
			i = j // comments before the type
		}
	}
	t := tokenEnd(v, i)
	if t < len(v) && v[t] == '/' {
		t = tokenEnd(v, t+1)
	}
	put(v[i:t])
	i = t
	if k := afterComments(v, i); k != i {
		if j := skipWSP(v, k); j == len(v) || v[j] == ';' {
			i = k // comments only, between the type and its parameters
		}
	}
	for i < len(v) {
		c := v[i]
		if c == '(' {
			end := commentEnd(v, i)
			if end < 0 {
				break // unclosed: left as it is
			}
			if last != ';' {
				put(v[i:end]) // a comment's "=" is no parameter's
			} // else before a parameter: dropped
			i = end
			continue
		}
		put(v[i : i+1])
		i++
		if c != '=' {
			continue
		}
		eq := i - 1
		j := skipWSP(v, i)
		if j == len(v) || v[j] != '"' {
			end := j
			for end < len(v) && v[end] != ' ' && v[end] != '\t' && v[end] != ';' {
				end++
			}
			put(v[i:end])
			i = end
			if !fileParam(v[attrStart(v, eq):eq]) {
				// A filename's words and parentheses are its own
				// ("Document (2)", "Q1 results=final.pdf").
				var more string
				i, more = afterUnquoted(v, end)
				put(more)
			}
			continue
		}
		end := quotedEnd(v, j)
		if end < 0 {
			break // unclosed: left as it is
		}
		put(v[i:end])
		var more string
		i, more = afterQuoted(v, end)
		put(more)
	}
	put(v[i:])
	if string(b) == v {
		return v
	}
	return string(b)
}

// attrStart returns where the attribute ending at v[eq] (its "=")
// starts: after the white space or separator before it. Only the
// attribute's own bytes are read, so that a value without ";" stays
// linear.
func attrStart(v string, eq int) int {
	t := eq
	for t > 0 && tokenByte[v[t-1]] {
		t--
	}
	return t
}

// fileParam reports whether attr (perhaps an RFC 2231 section:
// "filename*0*") is name or filename.
func fileParam(attr string) bool {
	base, _, _ := strings.Cut(strings.ToLower(attr), "*")
	return base == "name" || base == "filename"
}

// afterUnquoted returns where to go on from after an unquoted value
// ending at i, and what to put in for the text skipped: comments dropped
// when only a ";", the end or a next parameter follows them, and a ";"
// put in before a next parameter (tidyParams); anything else is left.
func afterUnquoted(v string, i int) (next int, put string) {
	k := afterComments(v, i)
	j := skipWSP(v, k)
	switch {
	case j == len(v) || v[j] == ';':
		return k, ""
	case nextParam(v, j) && (k != i || j != i):
		return j, "; "
	}
	return i, ""
}

// paramAfterSpace reports whether a "name=" follows white space that does
// not follow a ";" in v: a parameter whose ";" is missing.
func paramAfterSpace(v string) bool {
	for i := 1; i < len(v); i++ {
		if (v[i] == ' ' || v[i] == '\t') && v[i-1] != ' ' && v[i-1] != '\t' && v[i-1] != ';' {
			if j := skipWSP(v, i); nextParam(v, j) {
				return true
			}
		}
	}
	return false
}

// nextParam reports whether a "name=" starts at v[j].
func nextParam(v string, j int) bool {
	t := tokenEnd(v, j)
	return t > j && t < len(v) && v[t] == '='
}

// afterComments returns where the first thing after i that is not white
// space or a comment starts, or i if there is none before the end or a
// ";" (what is there is left as it is).
func afterComments(v string, i int) int {
	for j := skipWSP(v, i); j < len(v) && v[j] == '('; j = skipWSP(v, j) {
		end := commentEnd(v, j)
		if end < 0 {
			return i
		}
		i, j = end, end
	}
	return i
}

// afterQuoted returns where to go on from after a quoted value ending at
// i, and what to put in for the text skipped up to the next ";"
// (tidyParams).
func afterQuoted(v string, i int) (next int, put string) {
	i = afterComments(v, i)
	j := skipWSP(v, i)
	switch {
	case j == len(v) || v[j] == ';':
		return i, ""
	case v[j] == ',':
		return j + 1, ";"
	case nextParam(v, j):
		return j, "; "
	}
	return nextSemicolon(v, j), ""
}

// nextSemicolon returns the index of the first ";" in v from i that is in
// no quoted string or comment, or len(v).
func nextSemicolon(v string, i int) int {
	for i < len(v) {
		end := i + 1
		switch v[i] {
		case ';':
			return i
		case '"':
			end = quotedEnd(v, i)
		case '(':
			end = commentEnd(v, i)
		}
		if end < 0 {
			return len(v)
		}
		i = end
	}
	return len(v)
}

// quotedEnd returns the index after the quoted string starting at v[i]
// (a '"'), or -1 when it is not closed.
func quotedEnd(v string, i int) int {
	for j := i + 1; j < len(v); j++ {
		switch v[j] {
		case '\\':
			j++
		case '"':
			return j + 1
		}
	}
	return -1
}

// commentEnd returns the index after the comment starting at v[i] (a
// '('), comments nested, or -1 when it is not closed.
func commentEnd(v string, i int) int {
	depth := 0
	for j := i; j < len(v); j++ {
		switch v[j] {
		case '\\':
			j++
		case '(':
			depth++
		case ')':
			if depth--; depth == 0 {
				return j + 1
			}
		}
	}
	return -1
}
