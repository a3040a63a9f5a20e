package parse

import (
	"io"
	"mime"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/charmap"
	"golang.org/x/text/encoding/htmlindex"
	"golang.org/x/text/encoding/ianaindex"
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

// wordDecoder decodes RFC 2047 encoded words. It never fails on a charset:
// words in an unknown charset are passed through as UTF-8 (invalid bytes
// replaced) and the charset is remembered so the caller can warn.
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
	if enc := lookupCharset(charset); enc != nil {
		return enc.NewDecoder().Reader(in), nil
	}
	if !wd.seen[charset] && len(wd.unknown) < maxWarnings {
		if wd.seen == nil {
			wd.seen = make(map[string]bool)
		}
		wd.seen[charset] = true
		wd.unknown = append(wd.unknown, charset)
	}
	return in, nil
}

// decode returns s with its encoded words decoded, as valid UTF-8, and the
// problems met, if any, as warning texts.
func (wd *wordDecoder) decode(s string) (string, []string) {
	if !strings.Contains(s, "=?") {
		return s, nil
	}
	wd.unknown = wd.unknown[:0]
	clear(wd.seen)
	out, err := wd.dec.DecodeHeader(s)
	var problems []string
	if err != nil {
		// Unreachable with our CharsetReader, kept as a guard.
		return s, []string{"encoded words not decoded: " + err.Error()}
	}
	for _, cs := range wd.unknown {
		problems = append(problems, "unknown charset "+quote(cs)+" in encoded word, bytes kept as UTF-8")
	}
	if !utf8.ValidString(out) {
		out = strings.ToValidUTF8(out, "\uFFFD")
		problems = append(problems, "encoded word decoded to invalid UTF-8, replaced with U+FFFD")
	}
	return out, problems
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

// validUTF8 replaces invalid UTF-8 sequences with U+FFFD, so that the JSON
// encoder never has to and the output is the same on every path.
func validUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}
