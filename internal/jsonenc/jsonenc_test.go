package jsonenc

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// marshal is what encoding/json writes for v, HTML escaped or not.
func marshal(t *testing.T, v any, escapeHTML bool) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(escapeHTML)
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

// FuzzString: String writes the bytes of encoding/json for any string,
// in both of its HTML modes.
func FuzzString(f *testing.F) {
	for _, s := range []string{"", "plain", `"\`, "<a href='x'>&amp;</a>", "\x00\x01\x1f\x7f\t\n\r\b\f",
		"\u2028\u2029", "ünïcødé 日本", "\xff\xfe bad \xc3", "\xed\xa0\x80 surrogate", "\U0001F600"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, html := range []bool{true, false} {
			if got, want := String(nil, s, html), marshal(t, s, html); !bytes.Equal(got, want) {
				t.Fatalf("String(%q, escapeHTML %v) = %s, encoding/json writes %s", s, html, got, want)
			}
		}
	})
}

// FuzzTime: for any instant and zone that TimeOK accepts, Time writes the
// bytes of MarshalJSON; the times MarshalJSON refuses TimeOK refuses too.
func FuzzTime(f *testing.F) {
	f.Add(int64(1796603562), int64(318050977), 0)
	f.Add(int64(-62135596801), int64(0), 3600)
	f.Add(int64(253402300800), int64(999999999), -86400)
	f.Add(int64(0), int64(1), 59)
	f.Add(int64(1), int64(100), 86340)
	f.Fuzz(func(t *testing.T, sec, nsec int64, offset int) {
		tm := time.Unix(sec, nsec).In(time.FixedZone("Z", offset))
		want, err := tm.MarshalJSON()
		if !TimeOK(tm) {
			return
		}
		if err != nil {
			t.Fatalf("TimeOK(%v), but MarshalJSON fails: %v", tm, err)
		}
		if got := Time(nil, tm); !bytes.Equal(got, want) {
			t.Fatalf("Time(%v) = %s, MarshalJSON writes %s", tm, got, want)
		}
	})
}

// BenchmarkString: a plain-text body of about 1 KB with a few characters
// to escape, by encoding/json and by String.
func BenchmarkString(b *testing.B) {
	s := strings.Repeat("Hello Bob, the report is attached. Totals: 12 < 13 & \"done\".\r\n", 16)
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	b.Run("json", func(b *testing.B) {
		b.SetBytes(int64(len(s)))
		for b.Loop() {
			buf.Reset()
			if err := enc.Encode(s); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("String", func(b *testing.B) {
		b.SetBytes(int64(len(s)))
		out := make([]byte, 0, 2*len(s))
		for b.Loop() {
			out = String(out[:0], s, false)
		}
	})
}
