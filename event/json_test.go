package event

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/mailhook/mailhook/internal/fieldtest"
)

// encodingJSON is what mailhook sent before AppendJSON: an encoding/json
// Encoder's bytes, HTML not escaped, without the newline.
func encodingJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	err := enc.Encode(v)
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), err
}

// checkEventJSON fails unless AppendJSON and WriteJSON write
// encodingJSON's bytes, or fail as it fails.
func checkEventJSON(t *testing.T, ev *Event) {
	t.Helper()
	resolved := *ev
	resolved.Data.Resolve()
	want, wantErr := encodingJSON(&resolved)
	got, err := ev.AppendJSON([]byte("prefix"))
	if (err != nil) != (wantErr != nil) {
		t.Fatalf("AppendJSON error %v, encoding/json error %v", err, wantErr)
	}
	if wantErr != nil {
		return
	}
	if !bytes.HasPrefix(got, []byte("prefix")) || !bytes.Equal(got[len("prefix"):], want) {
		t.Fatalf("AppendJSON differs from encoding/json:\ngot  %s\nwant %s", got, want)
	}
	var buf bytes.Buffer
	if err := ev.WriteJSON(&buf); err != nil {
		t.Fatalf("WriteJSON: %v", err)
	}
	if !bytes.Equal(buf.Bytes(), want) {
		t.Fatalf("WriteJSON differs from encoding/json:\ngot  %s\nwant %s", buf.Bytes(), want)
	}
}

// fullEvent returns an Event with every exported field set, nested ones
// too (TestEventJSONFields checks that it stays so).
func fullEvent() *Event {
	at := time.Date(2026, 12, 7, 1, 2, 3, 456789000, time.UTC)
	att := Attachment{Filename: "r.pdf", ContentType: "application/pdf", Size: 5, Disposition: "attachment",
		ContentID: "<c1@example.org>", SHA256: "ab12", Content: []byte("%PDF\xff")}
	return &Event{
		Type: Type, Version: SchemaVersion, Timestamp: at,
		Data: Data{
			ID: "msg_1", ReceivedAt: at.In(time.FixedZone("X", -(3*3600 + 30*60))),
			Envelope: Envelope{
				MailFrom: "s@example.org", RcptTo: []string{"a@example.com", "<b>&c@example.com"},
				Helo: "mx.example.org", RemoteAddr: "192.0.2.1:5555",
				TLS:      &TLS{Version: "TLS 1.3", Cipher: "TLS_AES_128_GCM_SHA256", ServerName: "mx.example.com"},
				SMTPUTF8: true, Body: "8BITMIME",
			},
			MessageID: "<m@example.org>", Subject: "Hi <there> & \"you\"\u2028", Date: "Mon, 7 Dec 2026 01:02:03 +0000",
			From: []Address{{Name: "Ann", Address: "ann@example.org"}}, To: []Address{{Name: "Bob", Address: "bob@example.com"}},
			Cc: []Address{{Name: "Cy", Address: "cy@example.com"}}, ReplyTo: []Address{{Name: "Di", Address: "di@example.org"}},
			InReplyTo: "<p@example.org>", References: []string{"<p@example.org>", "<q@example.org>"},
			Headers: []Header{{Name: "Subject", Value: "Hi\t<there>"}},
			Text:    "line\r\nünï \xff", HTML: "<p>&amp;</p>",
			TextBody:    pieces{"line\r\n", "ünï ", "\xff", strings.Repeat("é\"", 40<<10)},
			HTMLBody:    pieces{"<p>", "&amp;</p>"},
			Attachments: []Attachment{att},
			Raw:         Raw{Key: "raw/x.eml", Size: 2048, SHA256: "cd34"},
			Warnings:    []string{"charset: unknown"},
		},
	}
}

// TestEventJSONFields: the event encoder writes encoding/json's bytes for
// an event with every field set and for the shapes the parser leaves. It
// fails when a type gains a field that fullEvent does not set.
func TestEventJSONFields(t *testing.T) {
	full := fullEvent()
	fieldtest.AllSet(t, full, "set it in fullEvent, and encode it in jsonWriter.event")
	checkEventJSON(t, full)

	empty := fullEvent()
	empty.Data.Envelope.TLS.ServerName, empty.Data.Envelope.SMTPUTF8, empty.Data.Envelope.Body = "", false, ""
	empty.Data.From, empty.Data.Cc, empty.Data.References, empty.Data.Warnings = []Address{}, nil, []string{}, nil
	empty.Data.Attachments = []Attachment{{Content: []byte{}}, {Content: nil}, {Content: []byte("ab")}}
	checkEventJSON(t, empty)
	checkEventJSON(t, &Event{})

	// A clean base64 MIME body is copied, not encoded again: the same bytes.
	copied := fullEvent()
	copied.Data.Attachments[0].SetContentBase64([]byte("JVBERv8=\r\n"))
	checkEventJSON(t, copied)

	// Times MarshalJSON refuses fail both encoders.
	bad := fullEvent()
	bad.Timestamp = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
	if _, err := bad.AppendJSON(nil); err == nil {
		t.Error("AppendJSON of a year 10000 timestamp: no error")
	}
	if err := bad.WriteJSON(&bytes.Buffer{}); err == nil {
		t.Error("WriteJSON of a year 10000 timestamp: no error")
	}
}

// FuzzEventJSON: the event encoder writes encoding/json's bytes, or fails
// as it fails, for any strings, contents and times and with lists nil,
// empty or not.
func FuzzEventJSON(f *testing.F) {
	f.Add("Hi <there> & you", "a@example.com", "line\r\n\t\"q\" \\", []byte("%PDF"), int64(1796603562), int64(318050977), 0, uint16(0))
	f.Add("\u2028\u2029", "\xff\xfe", "\x00\x1f\x7f", []byte{}, int64(-62135596801), int64(0), 3600, uint16(0xffff))
	f.Add("", "", "ünï 日本", []byte{0xfb, 0xff}, int64(253402300800), int64(999999999), -86400, uint16(0x5555))
	f.Add("x", "y", "z", []byte(nil), int64(0), int64(1), 59, uint16(0xaaaa))
	f.Fuzz(func(t *testing.T, s1, s2, s3 string, content []byte, sec, nsec int64, offset int, flags uint16) {
		at := time.Unix(sec, nsec).In(time.FixedZone("Z", offset))
		bit := func(i int) bool { return flags&(1<<i) != 0 }
		list := func(i int, ss ...string) []string {
			switch {
			case bit(i):
				return nil
			case bit(i + 1):
				return []string{}
			}
			return ss
		}
		addrs := func(i int) []Address {
			if ss := list(i, s1, s2); ss == nil {
				return nil
			}
			if bit(i + 1) {
				return []Address{}
			}
			return []Address{{Name: s1, Address: s2}, {Name: s3}}
		}
		ev := &Event{Type: s1, Version: int(nsec), Timestamp: at, Data: Data{
			ID: s2, ReceivedAt: at.UTC(),
			Envelope:  Envelope{MailFrom: s1, RcptTo: list(0, s2, s3), Helo: s3, RemoteAddr: s2, SMTPUTF8: bit(2), Body: s3},
			MessageID: s1, Subject: s2, Date: s3, From: addrs(3), To: addrs(5), Cc: addrs(7), ReplyTo: addrs(9),
			InReplyTo: s3, References: list(11, s1, s3), Text: s2, HTML: s1,
			Raw:      Raw{Key: s3, Size: sec, SHA256: s2},
			Warnings: list(13, s3),
		}}
		if bit(2) {
			ev.Data.Envelope.TLS = &TLS{Version: s1, Cipher: s2, ServerName: s3}
		}
		if !bit(15) {
			ev.Data.Headers = []Header{{Name: s1, Value: s2}, {Name: s3, Value: s1}}
			ev.Data.Attachments = []Attachment{{Filename: s1, ContentType: s2, Size: nsec, Disposition: s3, ContentID: s1, SHA256: s2, Content: content}}
		}
		checkEventJSON(t, ev)
	})
}

// largestWriter keeps the bytes written to it and the size of the
// largest write.
type largestWriter struct {
	bytes.Buffer
	largest int
}

func (w *largestWriter) Write(p []byte) (int, error) {
	w.largest = max(w.largest, len(p))
	return w.Buffer.Write(p)
}

// WriteJSON does not hold a large text and a large HTML body at once: it
// hands each to its writer before encoding the next.
func TestWriteJSONLargeBodies(t *testing.T) {
	ev := fullEvent()
	ev.Data.TextBody, ev.Data.HTMLBody = nil, nil
	ev.Data.Text = strings.Repeat("text line\r\n", 100_000) // 1.1 MB, 1.3 MB encoded
	ev.Data.HTML = strings.Repeat("<p>html</p>\n", 100_000) // 1.2 MB, 1.3 MB encoded
	if largest := writeJSONAsEncodingJSON(t, ev); largest > 400_000 {
		t.Errorf("largest write %d bytes: a body was held whole", largest)
	}
}

// writeJSONAsEncodingJSON checks that ev.WriteJSON writes what
// encoding/json does and returns its largest write.
func writeJSONAsEncodingJSON(t *testing.T, ev *Event) int {
	t.Helper()
	var w largestWriter
	if err := ev.WriteJSON(&w); err != nil {
		t.Fatal(err)
	}
	resolved := *ev
	resolved.Data.Resolve()
	want, err := encodingJSON(&resolved)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(w.Bytes(), want) {
		t.Error("WriteJSON differs from encoding/json")
	}
	return w.largest
}

// A Body is written as it gives its pieces, never held whole, and comes
// out as its text would.
func TestWriteJSONBody(t *testing.T) {
	var text, html pieces
	for i := range 20_000 {
		text = append(text, fmt.Sprintf("line %d: ü€😀\u2028\"\\\x01\r\n", i))
		html = append(html, fmt.Sprintf("<p>%d &amp; é</p>\n", i))
	}
	ev := fullEvent()
	ev.Data.Text, ev.Data.HTML = "", ""
	ev.Data.TextBody, ev.Data.HTMLBody = text, html
	if largest := writeJSONAsEncodingJSON(t, ev); largest > 2*flushAt {
		t.Errorf("largest write %d bytes, want pieces", largest)
	}
	checkEventJSON(t, ev)
	ev.Data.Resolve()
	if ev.Data.TextBody != nil || ev.Data.HTMLBody != nil || !strings.HasPrefix(ev.Data.Text, "line 0: ü€😀") || !strings.HasSuffix(ev.Data.HTML, "<p>19999 &amp; é</p>\n") {
		t.Errorf("Resolve: bodies %v %v, text %.40q…, html …%q", ev.Data.TextBody != nil, ev.Data.HTMLBody != nil, ev.Data.Text, ev.Data.HTML[len(ev.Data.HTML)-30:])
	}
}

// A large body goes out in pieces cut between runes: the JSON is the one
// encoding/json writes whatever falls on a cut (multi-byte runes, U+2028,
// escapes, invalid bytes, a long run of continuation bytes).
func TestWriteJSONLargeBodyPieces(t *testing.T) {
	for name, text := range map[string]string{
		"runes":        strings.Repeat("ü€😀\u2028\"\\\x01a", 40_000),
		"invalid":      strings.Repeat("ok \xff\xe2\x82 ", 30_000),
		"continuation": strings.Repeat("\x80", 200_000),
	} {
		t.Run(name, func(t *testing.T) {
			ev := fullEvent()
			ev.Data.Text, ev.Data.TextBody = text, nil
			if largest := writeJSONAsEncodingJSON(t, ev); largest > 8*flushAt {
				t.Errorf("largest write %d bytes, want pieces", largest)
			}
		})
	}
}

// pieces is an event.Body of the pieces given.
type pieces []string

func (ps pieces) Pieces(f func([]byte)) {
	for _, p := range ps {
		f([]byte(p))
	}
}

// failingWriter fails every write after the first n bytes.
type failingWriter struct{ n int }

func (w *failingWriter) Write(p []byte) (int, error) {
	if w.n -= len(p); w.n < 0 {
		return 0, errors.New("connection reset")
	}
	return len(p), nil
}

// Once its writer fails, WriteJSON stops encoding large bodies into its
// buffer (a request cut short must not go on holding the text).
func TestWriteJSONStopsAfterWriteError(t *testing.T) {
	piece := []byte(strings.Repeat("é", 10_000))
	text := make(bytePieces, 2000) // 40 MB in all
	for i := range text {
		text[i] = piece
	}
	for name, ev := range map[string]*Event{
		"body":   {Data: Data{TextBody: text}},
		"string": {Data: Data{HTML: strings.Repeat("é", 10<<20)}},
	} {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		if err := ev.WriteJSON(&failingWriter{n: 1 << 20}); err == nil {
			t.Fatalf("%s: WriteJSON to a failing writer: no error", name)
		}
		runtime.ReadMemStats(&after)
		if grew := after.TotalAlloc - before.TotalAlloc; grew > 16<<20 {
			t.Errorf("%s: %d MB allocated after the writer failed, want the rest dropped", name, grew>>20)
		}
	}
}

// bytePieces is an event.Body of the pieces given, handed over as they are.
type bytePieces [][]byte

func (ps bytePieces) Pieces(f func([]byte)) {
	for _, p := range ps {
		f(p)
	}
}
