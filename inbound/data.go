package inbound

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
)

// BareNewline values for Config.BareNewline.
const (
	// BareNewlineNormalize stores a bare LF or bare CR in DATA as CRLF; a
	// line ended by one never ends the data (Postfix ≥ 3.9
	// smtpd_forbid_bare_newline = normalize).
	BareNewlineNormalize = "normalize"
	// BareNewlineReject refuses a message holding a bare LF or CR with
	// 550 5.5.2, after reading it to its real end.
	BareNewlineReject = "reject"
)

var (
	staticCRLF = []byte("\r\n")
	staticLF   = []byte("\n")
)

// dataReader streams the text of a DATA transfer (RFC 5321 §4.5.2): it
// removes dot-stuffing and stops at the end-of-data marker. It never holds
// the message: it hands out slices of the session's bufio buffer.
//
// End of data is <CRLF>.<CRLF> and nothing else. The data starts as if
// preceded by CRLF, so ".\r\n" first thing ends an empty message. A bare LF
// (RFC 5321 §2.3.8 forbids it) ends a line for dot-unstuffing and
// normalisation, as in Postfix; a bare CR (forbidden too) is normalised
// but leaves the dot after it alone. A line after either can never be the
// end marker, so
// "\n.\n", "\r\n.\n", "\n.\r\n", "\r.\r" and the like never end the data
// (SMTP smuggling, CVE-2023-51764..6).
//
// Policy violations (size, bare newline in reject mode, line length) make
// Read return an error while the state machine stays in step, so drain can
// read on to the real end and the session stays usable.
type dataReader struct {
	br       *bufio.Reader
	reject   bool  // BareNewline == "reject"
	max      int64 // 0 = unlimited
	maxLine  int   // 0 = unlimited
	n        int64 // octets produced (dot-unstuffed, normalised)
	lineLen  int   // octets of the current line produced so far
	bol      bool  // at the beginning of a line
	crlf     bool  // the last line ended in CRLF (or data start)
	out      []byte
	extra    []byte // static CRLF or LF inserted by normalisation
	done     bool   // end marker consumed
	err      error  // transfer aborted (sticky)
	violated error  // first policy violation (sticky)
}

func newDataReader(br *bufio.Reader, reject bool, max int64, maxLine int) *dataReader {
	return &dataReader{br: br, reject: reject, max: max, maxLine: maxLine, bol: true, crlf: true}
}

// Read implements io.Reader.
func (d *dataReader) Read(p []byte) (int, error) {
	n := 0
	for {
		if d.violated != nil {
			return n, d.violated
		}
		if len(d.out) > 0 {
			k := copy(p[n:], d.out)
			d.out = d.out[k:]
			n += k
		}
		if len(d.out) == 0 && len(d.extra) > 0 {
			k := copy(p[n:], d.extra)
			d.extra = d.extra[k:]
			n += k
		}
		if len(d.out) > 0 || len(d.extra) > 0 || n == len(p) {
			return n, nil
		}
		if d.done {
			return n, io.EOF
		}
		if d.err != nil {
			return n, d.err
		}
		if n > 0 && d.br.Buffered() == 0 {
			return n, nil // don't block while holding data for the caller
		}
		d.step()
	}
}

// WriteTo implements io.WriterTo, so io.Copy writes straight from the
// session's read buffer.
func (d *dataReader) WriteTo(w io.Writer) (int64, error) {
	var n int64
	for {
		if d.violated != nil {
			return n, d.violated
		}
		if len(d.out) > 0 {
			k, err := w.Write(d.out)
			n += int64(k)
			d.out = nil
			if err != nil {
				return n, err
			}
		}
		if len(d.extra) > 0 {
			k, err := w.Write(d.extra)
			n += int64(k)
			d.extra = nil
			if err != nil {
				return n, err
			}
		}
		if d.done {
			return n, nil
		}
		if d.err != nil {
			return n, d.err
		}
		d.step()
	}
}

// drain reads on to the end of the data, discarding it, whatever the
// policy violations. It returns nil once the end marker is read.
func (d *dataReader) drain() error {
	for {
		d.out, d.extra = nil, nil
		if d.done {
			return nil
		}
		if d.err != nil {
			return d.err
		}
		d.step()
	}
}

// fill returns the buffered input, reading until at least n octets are
// there.
func (d *dataReader) fill(n int) ([]byte, error) {
	if d.br.Buffered() < n {
		if _, err := d.br.Peek(n); err != nil {
			return nil, err
		}
	}
	return d.br.Peek(d.br.Buffered())
}

func (d *dataReader) abort(err error) {
	d.err = fmt.Errorf("%w: %w", ErrTransferAborted, err)
}

func (d *dataReader) violate(err error) {
	if d.violated == nil {
		d.violated = err
	}
}

// emit hands out out and then extra (out is already consumed from the
// input; extra is a static line ending added by normalisation).
func (d *dataReader) emit(out, extra []byte) {
	d.out, d.extra = out, extra
	d.n += int64(len(out) + len(extra))
	if d.max > 0 && d.n > d.max {
		d.violate(fmt.Errorf("%w: more than %d octets", ErrMessageTooLarge, d.max))
	}
}

// endLine accounts for a line of lineLen octets that just ended.
func (d *dataReader) endLine(n int, crlf bool) {
	if d.maxLine > 0 && d.lineLen+n > d.maxLine {
		d.violate(fmt.Errorf("%w: a line exceeds %d octets", ErrLineTooLong, d.maxLine))
	}
	d.lineLen = 0
	d.bol = true
	d.crlf = crlf
}

// bare records a bare LF or CR (RFC 5321 §2.3.8).
func (d *dataReader) bare() {
	if d.reject {
		d.violate(fmt.Errorf("%w", ErrBareNewline))
	}
}

// step consumes some input and sets d.out/d.extra, d.done or d.err.
func (d *dataReader) step() {
	buf, err := d.fill(1)
	if err != nil {
		d.abort(err)
		return
	}
	if d.bol {
		d.bol = false
		if buf[0] == '.' {
			if len(buf) < 2 {
				if buf, err = d.fill(2); err != nil {
					d.abort(err)
					return
				}
			}
			if buf[1] == '\r' && len(buf) < 3 {
				if buf, err = d.fill(3); err != nil {
					d.abort(err)
					return
				}
			}
			if d.crlf && buf[1] == '\r' && buf[2] == '\n' {
				// RFC 5321 §4.5.2: <CRLF>.<CRLF> ends the data.
				_, _ = d.br.Discard(3)
				d.done = true
				return
			}
			if buf[1] != '\r' && buf[1] != '\n' {
				// RFC 5321 §4.5.2: "If the first character is a period
				// and there are other characters on the line, the first
				// character is deleted."
				_, _ = d.br.Discard(1)
				buf = buf[1:]
				if len(buf) == 0 {
					return
				}
			}
			// Otherwise the line is a lone "." ended by a bare newline,
			// or one after a bare newline: not the end, kept as is.
		}
	}
	d.scan(buf)
}

// scan consumes a run of mid-line input from buf (buf[0] is not at the
// beginning of a line, and the octet before it is never a pending CR).
func (d *dataReader) scan(buf []byte) {
	i, lineStart := 0, 0
	for {
		rel := bytes.IndexByte(buf[i:], '\n')
		seg := buf[i:]
		if rel >= 0 {
			seg = buf[i : i+rel]
			if len(seg) > 0 && seg[len(seg)-1] == '\r' {
				seg = seg[:len(seg)-1] // the CR of a CRLF
			}
		}
		if c := bytes.IndexByte(seg, '\r'); c >= 0 {
			pos := i + c
			if pos == len(buf)-1 {
				// A CR last in the buffer: what it is depends on the next
				// octet. Hand out what precedes it, or wait for one more.
				if pos > 0 {
					d.lineLen += pos - lineStart
					_, _ = d.br.Discard(pos)
					d.emit(buf[:pos], nil)
					return
				}
				var err error
				if buf, err = d.fill(2); err != nil {
					d.abort(err)
					return
				}
				continue
			}
			// Bare CR: normalise to CRLF (or refuse). The text after it
			// is not dot-unstuffed: no client stuffs a dot after a bare
			// CR, which ends no line in SMTP (Postfix leaves "\r." as it
			// is), so its dot is the sender's ("\r.profile").
			d.bare()
			_, _ = d.br.Discard(pos + 1)
			d.emit(buf[:pos+1], staticLF)
			d.endLine(pos+2-lineStart, false)
			d.bol = false
			return
		}
		if rel < 0 {
			d.lineLen += len(buf) - lineStart
			_, _ = d.br.Discard(len(buf))
			d.emit(buf, nil)
			return
		}
		nl := i + rel
		if nl == 0 || buf[nl-1] != '\r' {
			// Bare LF: normalise to CRLF (or refuse).
			d.bare()
			_, _ = d.br.Discard(nl + 1)
			d.emit(buf[:nl], staticCRLF)
			d.endLine(nl+2-lineStart, false)
			return
		}
		next := nl + 1
		d.endLine(next-lineStart, true)
		lineStart = next
		if next == len(buf) || buf[next] == '.' {
			_, _ = d.br.Discard(next)
			d.emit(buf[:next], nil)
			return
		}
		d.bol = false
		i = next
	}
}
