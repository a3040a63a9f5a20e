package inbound

import (
	"fmt"
	"io"
)

// bdatReader streams the chunks of a BDAT transfer (RFC 3030) as one
// body. Between chunks it reads the next command itself: BDAT continues
// the body, NOOP is answered, RSET and QUIT abort the transfer (the session
// answers them), anything else gets 503 5.5.1. Chunk data is binary and
// handed out untouched: there is no dot-stuffing and no end marker to
// confuse, so bare newlines are kept as sent.
type bdatReader struct {
	s         *session
	remaining int64 // octets left in the current chunk
	chunk     int64 // size of the current chunk, for its 250 reply
	last      bool
	max       int64
	n         int64 // octets announced so far (all chunks, current included)
	done      bool
	violated  error
	err       error
}

func (b *bdatReader) Read(p []byte) (int, error) {
	for {
		if b.violated != nil {
			return 0, b.violated
		}
		if b.err != nil {
			return 0, b.err
		}
		if b.remaining > 0 {
			if int64(len(p)) > b.remaining {
				p = p[:b.remaining]
			}
			n, err := b.s.r.Read(p)
			b.remaining -= int64(n)
			if err != nil {
				b.abort(err)
				if n > 0 {
					return n, nil
				}
				return 0, b.err
			}
			return n, nil
		}
		if b.last {
			b.done = true
			return 0, io.EOF
		}
		b.nextChunk()
	}
}

// WriteTo writes straight from the session's read buffer.
func (b *bdatReader) WriteTo(w io.Writer) (int64, error) {
	var total int64
	r := b.s.r
	for {
		if b.violated != nil {
			return total, b.violated
		}
		if b.err != nil {
			return total, b.err
		}
		if b.remaining > 0 {
			if r.Buffered() == 0 {
				if _, err := r.Peek(1); err != nil {
					b.abort(err)
					continue
				}
			}
			buf, _ := r.Peek(int(min(int64(r.Buffered()), b.remaining)))
			_, _ = r.Discard(len(buf))
			b.remaining -= int64(len(buf))
			n, err := w.Write(buf)
			total += int64(n)
			if err != nil {
				return total, err
			}
			continue
		}
		if b.last {
			b.done = true
			return total, nil
		}
		b.nextChunk()
	}
}

func (b *bdatReader) abort(err error) {
	b.err = fmt.Errorf("%w: %w", ErrTransferAborted, err)
}

// nextChunk acknowledges the chunk just read and waits for the next BDAT.
func (b *bdatReader) nextChunk() {
	s := b.s
	s.reply(replyChunkOK.withText(b.chunk)) // RFC 3030 §2: 250 per chunk
	for {
		cmd, ok := s.nextCommand()
		if !ok {
			// nextCommand already replied if a reply was due.
			b.err = fmt.Errorf("%w: %w", ErrTransferAborted, errBDATBad)
			return
		}
		switch cmd.verb {
		case "":
			// a reply was sent (bad line); keep waiting
		case "BDAT":
			a, ok := parseBDAT(cmd.args)
			if !ok || a.huge {
				r := replyBDATSyntax
				if ok {
					r = replyTooLarge
				}
				s.closeAfterError(r)
				b.err = fmt.Errorf("%w: %w", ErrTransferAborted, errBDATBad)
				return
			}
			if a.size == 0 && !a.last && b.junk() {
				return // an empty chunk moves no mail, as a NOOP
			}
			b.remaining, b.chunk, b.last = a.size, a.size, a.last
			b.n += a.size
			s.timeout = s.srv.cfg.DataTimeout
			if b.max > 0 && b.n > b.max {
				b.violated = fmt.Errorf("%w: more than %d octets", ErrMessageTooLarge, b.max)
			}
			return
		case "NOOP":
			if b.junk() {
				return
			}
			s.reply(replyOK)
		case "RSET":
			b.err = fmt.Errorf("%w: %w", ErrTransferAborted, errBDATReset)
			return
		case "QUIT":
			b.err = fmt.Errorf("%w: %w", ErrTransferAborted, errBDATQuit)
			return
		default:
			s.reply(replyBDATExpected)
		}
		if s.bad >= s.srv.cfg.MaxBadCommands {
			s.closeAfterError(replyTooManyErrors)
			b.err = fmt.Errorf("%w: %w", ErrTransferAborted, errBDATBad)
			return
		}
	}
}

// junk counts a command between chunks that moves no mail against the
// session's maxJunkCommands, as dispatch does outside a transfer; past
// it, it ends the session with 421 and reports true.
func (b *bdatReader) junk() bool {
	s := b.s
	if s.junk++; s.junk <= maxJunkCommands {
		return false
	}
	s.log.Debug("smtp: too many commands without mail during BDAT")
	s.closeAfterError(replyTooManyJunk)
	b.err = fmt.Errorf("%w: %w", ErrTransferAborted, errBDATBad)
	return true
}

func (b *bdatReader) status() (bool, error, error) { return b.done, b.violated, b.err }

func (b *bdatReader) size() int64 { return b.n - b.remaining }

// drain skips the rest of the current chunk.
func (b *bdatReader) drain() error {
	if b.err != nil {
		return b.err
	}
	for b.remaining > 0 {
		n, err := b.s.r.Discard(int(min(b.remaining, 1<<30)))
		b.remaining -= int64(n)
		if err != nil {
			b.abort(err)
			return b.err
		}
	}
	return nil
}
