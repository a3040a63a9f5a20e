// Package jsonenc appends JSON values byte for byte as encoding/json
// writes them, without its reflection: for the records and events that
// mailhook encodes on every message, where encoding/json took several per
// cent of the CPU. Callers write their objects' keys themselves; the fuzz
// tests hold the values to encoding/json's bytes.
package jsonenc

import (
	"time"
	"unicode/utf8"
)

// String appends s quoted as encoding/json quotes a string: ", \ and the
// control characters escaped, U+2028 and U+2029 as \u escapes, each
// invalid UTF-8 byte as \ufffd, and < > & as \u escapes when escapeHTML
// (json.Marshal's default; an Encoder after SetEscapeHTML(false) leaves
// them).
func String(b []byte, s string, escapeHTML bool) []byte {
	b = append(b, '"')
	b = Escaped(b, s, escapeHTML)
	return append(b, '"')
}

// Escaped appends s as String does, without the quotes: a string written
// in pieces cut between runes (utf8.RuneStart) comes out as String would
// write it whole.
func Escaped(b []byte, s string, escapeHTML bool) []byte {
	const hex = "0123456789abcdef"
	safe := &safeSet
	if escapeHTML {
		safe = &htmlSafeSet
	}
	start := 0 // s[start:i] is to be copied as it is
	for i := 0; i < len(s); {
		c := s[i]
		if safe[c] {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	return append(b, s[start:]...)
}

// safeSet[c] says whether String copies the byte c as it is when it is
// not escaping HTML; htmlSafeSet, when it is. Bytes from utf8.RuneSelf
// up begin runes, which are checked as runes.
var safeSet, htmlSafeSet = func() (s, h [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		s[c] = c != '"' && c != '\\'
		h[c] = s[c] && c != '<' && c != '>' && c != '&'
	}
	return s, h
}()

// TimeOK reports whether Time can write t: a year in [0, 9999] and a zone
// offset in whole minutes, within a day. time.Time's MarshalJSON refuses
// the rest, or some of it; callers let it write those or fail.
func TimeOK(t time.Time) bool {
	if y := t.Year(); y < 0 || y > 9999 {
		return false
	}
	_, off := t.Zone()
	return off%60 == 0 && off > -24*3600 && off < 24*3600
}

// Time appends t as time.Time's MarshalJSON writes it, given TimeOK(t).
func Time(b []byte, t time.Time) []byte {
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"')
}
