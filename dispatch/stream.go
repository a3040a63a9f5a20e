package dispatch

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"

	"github.com/mailhook/mailhook/event"
)

// A large message is not rendered in memory: its event is encoded twice,
// as a stream, once to learn its length and signature and once into the
// request, so the body never exists as a whole, neither in memory nor in
// a file. Clean base64 attachments are copied from the raw message on the
// way (event.Attachment.WriteContentBase64), others encoded as they go.
//
// The Renderer type returns bytes, so the event travels beside the call:
// the Dispatcher puts a *stream in the context of the render, and the
// renderer of NewRenderer fills it in when the raw message is larger than
// stream.threshold (returning a nil body). Other renderers, and calls
// without a stream (the admin API), get the body in memory as before.

type streamKey struct{}

// stream receives the event of one render.
type stream struct {
	threshold int64 // raw size above which to stream; < 0: never

	ev *event.Event // set by the renderer
}

func withStream(ctx context.Context, sp *stream) context.Context {
	return context.WithValue(ctx, streamKey{}, sp)
}

// streamFor returns the stream of ctx if a raw message of rawSize should
// go to it.
func streamFor(ctx context.Context, rawSize int64) *stream {
	sp, _ := ctx.Value(streamKey{}).(*stream)
	if sp == nil || sp.threshold < 0 || rawSize <= sp.threshold {
		return nil
	}
	return sp
}

// open returns a reader of the encoded event, produced as it is read. The
// producing goroutine ends when the event is written or the reader is
// closed (net/http closes a request body, even on errors).
func (sp *stream) open() io.ReadCloser {
	pr, pw := io.Pipe()
	go func() {
		bw := bufio.NewWriterSize(pw, 64<<10)
		err := encodeEvent(bw, sp.ev)
		if err == nil {
			err = bw.Flush()
		}
		pw.CloseWithError(err)
	}()
	return pr
}

// encodeEvent writes ev as encoding/json does with SetEscapeHTML(false)
// and without the trailing newline, byte for byte, but streams attachment
// contents through a base64 encoder instead of building them in memory.
// Fields follow the declaration order of event.Event and event.Data;
// TestEncodeEventMatchesJSON fails if they drift apart.
func encodeEvent(w io.Writer, ev *event.Event) error {
	e := &streamEncoder{w: w}
	e.enc = json.NewEncoder(&e.buf)
	e.enc.SetEscapeHTML(false)

	e.open()
	e.field("type", ev.Type)
	e.field("version", ev.Version)
	e.field("timestamp", ev.Timestamp)
	d := &ev.Data
	e.key("data")
	e.open()
	e.field("id", d.ID)
	e.field("received_at", d.ReceivedAt)
	e.field("envelope", d.Envelope)
	e.field("message_id", d.MessageID)
	e.field("subject", d.Subject)
	e.field("date", d.Date)
	e.field("from", d.From)
	e.field("to", d.To)
	e.field("cc", d.Cc)
	e.field("reply_to", d.ReplyTo)
	e.field("in_reply_to", d.InReplyTo)
	e.field("references", d.References)
	e.field("headers", d.Headers)
	e.field("text", d.Text)
	e.field("html", d.HTML)
	e.key("attachments")
	if d.Attachments == nil {
		e.raw(`null`)
	} else {
		e.raw(`[`)
		for i := range d.Attachments {
			if i > 0 {
				e.raw(`,`)
			}
			e.attachment(&d.Attachments[i])
		}
		e.raw(`]`)
	}
	e.field("raw", d.Raw)
	e.field("warnings", d.Warnings)
	e.close()
	e.close()
	return e.err
}

func (e *streamEncoder) attachment(a *event.Attachment) {
	e.open()
	e.field("filename", a.Filename)
	e.field("content_type", a.ContentType)
	e.field("size", a.Size)
	e.field("disposition", a.Disposition)
	e.field("content_id", a.ContentID)
	e.field("sha256", a.SHA256)
	e.key("content")
	if a.Content == nil {
		e.raw(`null`)
	} else {
		// encoding/json writes a []byte as a standard base64 string.
		e.raw(`"`)
		if e.err == nil {
			e.err = a.WriteContentBase64(e.w)
		}
		e.raw(`"`)
	}
	e.close()
}

// streamEncoder writes to w, remembering the first error.
type streamEncoder struct {
	w     io.Writer
	buf   bytes.Buffer
	enc   *json.Encoder // into buf
	err   error
	first bool // no member written yet in the object just opened
}

func (e *streamEncoder) raw(s string) {
	if e.err == nil {
		_, e.err = io.WriteString(e.w, s)
	}
}

// open starts an object, close ends it.
func (e *streamEncoder) open()  { e.raw(`{`); e.first = true }
func (e *streamEncoder) close() { e.raw(`}`); e.first = false }

// key starts the member name of the object being written.
func (e *streamEncoder) key(name string) {
	if !e.first {
		e.raw(`,`)
	}
	e.first = false
	e.raw(`"` + name + `":`)
}

// field writes the member name: v.
func (e *streamEncoder) field(name string, v any) {
	e.key(name)
	e.value(v)
}

// value writes the JSON of v as json.Marshal (HTML unescaped) does.
func (e *streamEncoder) value(v any) {
	if e.err != nil {
		return
	}
	e.buf.Reset()
	if e.err = e.enc.Encode(v); e.err != nil {
		return
	}
	_, e.err = e.w.Write(bytes.TrimSuffix(e.buf.Bytes(), []byte("\n")))
}
