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

	e.raw(`{"type":`)
	e.value(ev.Type)
	e.raw(`,"version":`)
	e.value(ev.Version)
	e.raw(`,"timestamp":`)
	e.value(ev.Timestamp)
	d := &ev.Data
	e.raw(`,"data":{"id":`)
	e.value(d.ID)
	e.raw(`,"received_at":`)
	e.value(d.ReceivedAt)
	e.raw(`,"envelope":`)
	e.value(d.Envelope)
	e.raw(`,"message_id":`)
	e.value(d.MessageID)
	e.raw(`,"subject":`)
	e.value(d.Subject)
	e.raw(`,"date":`)
	e.value(d.Date)
	e.raw(`,"from":`)
	e.value(d.From)
	e.raw(`,"to":`)
	e.value(d.To)
	e.raw(`,"cc":`)
	e.value(d.Cc)
	e.raw(`,"reply_to":`)
	e.value(d.ReplyTo)
	e.raw(`,"in_reply_to":`)
	e.value(d.InReplyTo)
	e.raw(`,"references":`)
	e.value(d.References)
	e.raw(`,"headers":`)
	e.value(d.Headers)
	e.raw(`,"text":`)
	e.value(d.Text)
	e.raw(`,"html":`)
	e.value(d.HTML)
	e.raw(`,"attachments":`)
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
	e.raw(`,"raw":`)
	e.value(d.Raw)
	e.raw(`,"warnings":`)
	e.value(d.Warnings)
	e.raw(`}}`)
	return e.err
}

func (e *streamEncoder) attachment(a *event.Attachment) {
	e.raw(`{"filename":`)
	e.value(a.Filename)
	e.raw(`,"content_type":`)
	e.value(a.ContentType)
	e.raw(`,"size":`)
	e.value(a.Size)
	e.raw(`,"disposition":`)
	e.value(a.Disposition)
	e.raw(`,"content_id":`)
	e.value(a.ContentID)
	e.raw(`,"sha256":`)
	e.value(a.SHA256)
	e.raw(`,"content":`)
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
	e.raw(`}`)
}

// streamEncoder writes to w, remembering the first error.
type streamEncoder struct {
	w   io.Writer
	buf bytes.Buffer
	enc *json.Encoder // into buf
	err error
}

func (e *streamEncoder) raw(s string) {
	if e.err == nil {
		_, e.err = io.WriteString(e.w, s)
	}
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
