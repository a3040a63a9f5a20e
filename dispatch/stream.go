package dispatch

import (
	"bufio"
	"context"
	"io"

	"github.com/mailhook/mailhook/event"
)

// A large message is not rendered in memory: its event is encoded twice,
// as a stream (event.Event.WriteJSON), once to learn its length and
// signature and once into the request, so the body never exists as a
// whole, neither in memory nor in a file. Clean base64 attachments are
// copied from the raw message on the way
// (event.Attachment.WriteContentBase64), others encoded as they go.
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
		err := sp.ev.WriteJSON(bw)
		if err == nil {
			err = bw.Flush()
		}
		pw.CloseWithError(err)
	}()
	return pr
}
