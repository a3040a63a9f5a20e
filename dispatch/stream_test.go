package dispatch

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailhook/mailhook/event"
	"github.com/mailhook/mailhook/parse"
	"github.com/mailhook/mailhook/queue"
	"github.com/mailhook/mailhook/signing"
	"golang.org/x/text/encoding/charmap"
)

// marshalEvent is encoding/json's encoding of ev, the bytes that
// event.Event's encoders must write.
func marshalEvent(t testing.TB, ev *event.Event) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(ev); err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

// checkEncodeEvent fails unless the in-memory (AppendJSON) and streaming
// (WriteJSON) encoders write marshalEvent's bytes.
func checkEncodeEvent(t *testing.T, name string, ev *event.Event) {
	t.Helper()
	want := marshalEvent(t, ev)
	var streamed bytes.Buffer
	if err := ev.WriteJSON(&streamed); err != nil {
		t.Fatalf("%s: WriteJSON: %v", name, err)
	}
	appended, err := ev.AppendJSON(nil)
	if err != nil {
		t.Fatalf("%s: AppendJSON: %v", name, err)
	}
	for how, got := range map[string][]byte{"WriteJSON": streamed.Bytes(), "AppendJSON": appended} {
		if !bytes.Equal(got, want) {
			i := 0
			for i < min(len(got), len(want)) && got[i] == want[i] {
				i++
			}
			t.Errorf("%s: %s differs from encoding/json at byte %d:\n got …%.80s\nwant …%.80s", name, how, i, got[i:], want[i:])
		}
	}
}

// bigMessage returns a message with an attachment of n random bytes.
func bigMessage(n int) string {
	content := make([]byte, n)
	rng := rand.New(rand.NewPCG(7, uint64(n)))
	for i := range content {
		content[i] = byte(rng.Uint32())
	}
	b64 := base64.StdEncoding.EncodeToString(content)
	var b strings.Builder
	b.WriteString("From: A <a@example.org>\r\nTo: b@example.com\r\nSubject: big <&>\r\nMessage-ID: <big@example.org>\r\n" +
		"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n" +
		"--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nSee attached <file> & more.\r\n" +
		"--b1\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=\"r.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\n")
	for len(b64) > 76 {
		b.WriteString(b64[:76] + "\r\n")
		b64 = b64[76:]
	}
	b.WriteString(b64 + "\r\n--b1--\r\n")
	return b.String()
}

// cyrillicText is about n bytes of Russian text lines (about n/2 in
// windows-1251: above 4 MiB there, parse converts it only as the event
// is written).
func cyrillicText(n int) string {
	const line = "Съешь же ещё этих мягких французских булок, да выпей чаю.\r\n"
	return strings.Repeat(line, n/len(line)+1)
}

// cyrillicMessage is cyrillicText(n) as the 8-bit windows-1251 body of a
// single-part message.
func cyrillicMessage(n int) string {
	body, err := charmap.Windows1251.NewEncoder().String(cyrillicText(n))
	if err != nil {
		panic(err)
	}
	return "From: a@example.org\r\nSubject: big\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: text/plain; charset=windows-1251\r\nContent-Transfer-Encoding: 8bit\r\n\r\n" + body
}

func eventOf(data *event.Data) *event.Event {
	data.ID = "msg_2k1dqc3x8s00000000000000"
	data.ReceivedAt = t0
	data.Envelope = event.Envelope{MailFrom: "s@example.org", RcptTo: []string{"<b>@example.com"}, Helo: "mx", RemoteAddr: "192.0.2.1:25",
		TLS: &event.TLS{Version: "TLS 1.3", Cipher: "TLS_AES_128_GCM_SHA256"}, SMTPUTF8: true, Body: "8BITMIME"}
	data.Raw = event.Raw{Key: "raw/x.eml", Size: 12, SHA256: "ab"}
	return &event.Event{Type: event.Type, Version: event.SchemaVersion, Timestamp: t0, Data: *data}
}

// The event encoders write exactly the bytes of encoding/json, which
// receivers verify signatures over, for the parse corpus's events.
func TestEncodeEventMatchesJSON(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "parse", "testdata", "*.eml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("parse corpus: %v, %d files", err, len(files))
	}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		data, err := parse.Parse(bytes.NewReader(raw), parse.Options{})
		if err != nil {
			t.Fatal(err)
		}
		checkEncodeEvent(t, filepath.Base(f), eventOf(data))
	}
	data, err := parse.Parse(strings.NewReader(bigMessage(3<<20+1)), parse.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(data.Attachments) != 1 || len(data.Attachments[0].Content) != 3<<20+1 {
		t.Fatalf("big message: attachments %+v", len(data.Attachments))
	}
	checkEncodeEvent(t, "big message", eventOf(data))

	// Shapes the parser does not produce: nil slices, no TLS, empty and
	// omitted contents, HTML characters, invalid UTF-8.
	checkEncodeEvent(t, "zero event", &event.Event{})
	checkEncodeEvent(t, "odd values", &event.Event{Type: "t<>&\u2028", Timestamp: time.Date(2026, 1, 2, 3, 4, 5, 600, time.FixedZone("x", 3600)),
		Data: event.Data{Subject: "bad \xff utf-8 \x00", Text: "<p>&amp;</p>", Attachments: []event.Attachment{
			{Filename: "a", Content: []byte{}}, {Filename: "b", Content: nil}, {Content: []byte{0xfb, 0xff}}, {Content: []byte("ab")},
		}}})
}

// A message above StreamThreshold is streamed: the receiver gets the bytes
// of the in-memory renderer, with its length declared and correctly
// signed, on every attempt, and no encoder goroutine is left running.
func TestStreamedDelivery(t *testing.T) {
	const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	signer, err := signing.NewSigner(secret)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name      string
		msg       string
		threshold int64
		streamed  bool
		text      string // data.text, if checked
	}{
		{"big", bigMessage(2 << 20), 0, true, ""},
		// Converted to UTF-8 only as the event is written (event.Body).
		{"big windows-1251 text", cyrillicMessage(9 << 20), 0, true, cyrillicText(9 << 20)},
		{"small, threshold 1", "Subject: hi <&>\r\n\r\nhello\r\n", 1, true, ""},
		{"small", "Subject: hi <&>\r\n\r\nhello\r\n", 0, false, ""},
		{"big, streaming off", bigMessage(2 << 20), -1, false, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var streamed bool
			rc := newReceiver(t, statuses(503, 200))
			cfg := defaultTestConfig()
			cfg.StreamThreshold = tt.threshold
			h := newHarness(t, newMemStore(), rc.srv.URL, cfg)
			render := NewRenderer(h.q, parse.Options{})
			h.d.render = func(ctx context.Context, d *queue.Delivery) ([]byte, error) {
				b, err := render(ctx, d)
				if sp, _ := ctx.Value(streamKey{}).(*stream); sp != nil && sp.ev != nil {
					streamed = true
				}
				return b, err
			}
			h.d.signer = signer
			id := event.NewID(t0)
			env := event.Envelope{MailFrom: "s@example.org", RcptTo: []string{"a@example.com"}, Helo: "mx", RemoteAddr: "192.0.2.7:1"}
			if err := h.q.Accept(context.Background(), id, t0, env, strings.NewReader(tt.msg)); err != nil {
				t.Fatal(err)
			}
			d, err := h.q.Load(context.Background(), id+"-1")
			if err != nil {
				t.Fatal(err)
			}
			want, err := render(context.Background(), d)
			if err != nil || want == nil {
				t.Fatalf("in-memory render: %d bytes, %v", len(want), err)
			}
			h.start(t)
			h.waitAttempts(t, id+"-1", 1)
			h.advance(time.Second)
			h.waitState(t, id+"-1", queue.StateDelivered)
			reqs := rc.requests()
			if len(reqs) != 2 {
				t.Fatalf("%d requests, want 2", len(reqs))
			}
			for i, r := range reqs {
				if !bytes.Equal(r.body, want) {
					t.Errorf("request %d: body of %d bytes differs from the in-memory render (%d bytes)", i, len(r.body), len(want))
				}
				if r.contentLength != int64(len(want)) {
					t.Errorf("request %d: Content-Length %d, want %d", i, r.contentLength, len(want))
				}
				ts, _ := strconv.ParseInt(r.ts, 10, 64)
				if err := signing.Verify(secret, r.id, r.ts, r.sig, r.body, time.Unix(ts, 0), 0); err != nil {
					t.Errorf("request %d: %v", i, err)
				}
			}
			if tt.text != "" {
				var ev event.Event
				if err := json.Unmarshal(reqs[0].body, &ev); err != nil || ev.Data.Text != tt.text {
					t.Errorf("data.text of %d bytes, want %d (%v)", len(ev.Data.Text), len(tt.text), err)
				}
			}
			if streamed != tt.streamed {
				t.Errorf("streamed = %v, want %v", streamed, tt.streamed)
			}
			waitFor(t, "the encoders to end", noEncoderRunning)
		})
	}
}

// A receiver that answers without reading the body, or hangs up on it,
// ends the streaming encoder: no goroutine stays blocked on the pipe.
func TestStreamedBodyNotRead(t *testing.T) {
	var mu sync.Mutex
	n := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		n++
		first := n == 1
		mu.Unlock()
		if first {
			c, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				c.Close() // cut off mid-body
			}
			return
		}
		w.Header().Set("Connection", "close")
		w.WriteHeader(http.StatusRequestEntityTooLarge) // without reading
	}))
	t.Cleanup(srv.Close)
	rc := &receiver{srv: srv}
	cfg := defaultTestConfig()
	cfg.StreamThreshold = 1
	h := newHarness(t, newMemStore(), rc.srv.URL, cfg)
	h.d.render = NewRenderer(h.q, parse.Options{})
	id := event.NewID(t0)
	env := event.Envelope{MailFrom: "s@example.org", RcptTo: []string{"a@example.com"}}
	if err := h.q.Accept(context.Background(), id, t0, env, strings.NewReader(bigMessage(4<<20))); err != nil {
		t.Fatal(err)
	}
	h.start(t)
	h.waitAttempts(t, id+"-1", 1)
	h.advance(time.Second)
	d := h.waitState(t, id+"-1", queue.StateFailed)
	if len(d.Attempts) != 2 || d.Attempts[1].Status != http.StatusRequestEntityTooLarge {
		t.Errorf("attempts = %+v", d.Attempts)
	}
	waitFor(t, "no encoder blocked on its pipe", noEncoderRunning)
}

// noEncoderRunning reports whether no goroutine of stream.open is alive.
func noEncoderRunning() bool {
	buf := make([]byte, 4<<20)
	return !strings.Contains(string(buf[:runtime.Stack(buf, true)]), "dispatch.(*stream).open")
}
