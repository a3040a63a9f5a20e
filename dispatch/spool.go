package dispatch

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/mailhook/mailhook/event"
)

// A large message is not rendered in memory: its event is written, as it
// is encoded, to a temporary file, which is then signed and sent by
// streaming it. The attachment content is base64-encoded on its way to the
// file, so the decoded attachments are the only copy of the content held.
//
// The Renderer type returns bytes, so the file travels beside the call:
// the Dispatcher puts a *spool in the context of the render, and the
// renderer of NewRenderer fills it in when the raw message is larger than
// spool.threshold (returning a nil body). Other renderers, and calls
// without a spool (the admin API), get the body in memory as before.

type spoolKey struct{}

// errSpoolUnusable: no temporary file could be made (a read-only root file
// system without a writable /tmp, a full disk). The renderer then renders
// in memory, as for a small message: slower to deliver, but delivered.
var errSpoolUnusable = errors.New("spool directory unusable")

// spool receives the file of one render.
type spool struct {
	dir       string
	threshold int64 // raw size above which to spool; < 0: never

	f    *os.File // set by the renderer on success; the caller removes it
	size int64
}

func withSpool(ctx context.Context, sp *spool) context.Context {
	return context.WithValue(ctx, spoolKey{}, sp)
}

// spoolFor returns the spool of ctx if a raw message of rawSize should
// go to it.
func spoolFor(ctx context.Context, rawSize int64) *spool {
	sp, _ := ctx.Value(spoolKey{}).(*spool)
	if sp == nil || sp.threshold < 0 || rawSize <= sp.threshold {
		return nil
	}
	return sp
}

// write renders ev into a new temporary file and keeps it in sp. On any
// failure, a panic included, the file is removed.
func (sp *spool) write(ev *event.Event) (err error) {
	f, err := os.CreateTemp(sp.dir, "mailhook-body-*.json")
	if err != nil {
		return fmt.Errorf("%w: %w", errSpoolUnusable, err)
	}
	done := false
	defer func() {
		if !done {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	bw := bufio.NewWriterSize(f, 64<<10)
	if err := encodeEvent(bw, ev); err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	size, err := f.Seek(0, io.SeekCurrent)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	sp.f, sp.size, done = f, size, true
	return nil
}

// release closes and removes the file, if any.
func (sp *spool) release() {
	if sp.f != nil {
		sp.f.Close()
		os.Remove(sp.f.Name())
		sp.f = nil
	}
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
