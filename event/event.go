package event

import (
	"bytes"
	"encoding/base64"
	"io"
	"strings"
	"sync"
	"time"
)

// Type is the value of Event.Type for a received message.
const Type = "email.received"

// SchemaVersion is the version of the event schema carried in every event.
// Receivers must ignore fields they do not know.
const SchemaVersion = 1

// Envelope is what the SMTP transaction said about a message, as opposed to
// what its headers say.
type Envelope struct {
	MailFrom   string   `json:"mail_from"`
	RcptTo     []string `json:"rcpt_to"`
	Helo       string   `json:"helo"`
	RemoteAddr string   `json:"remote_addr"`
	TLS        *TLS     `json:"tls"`
	// SMTPUTF8 is true when the client declared SMTPUTF8 at MAIL (RFC 6531).
	SMTPUTF8 bool `json:"smtputf8,omitempty"`
	// Body is the MAIL BODY= parameter ("7BIT", "8BITMIME" or "BINARYMIME"), if given.
	Body string `json:"body,omitempty"`
}

// TLS describes the TLS state of the SMTP session, nil when plaintext.
type TLS struct {
	Version    string `json:"version"`
	Cipher     string `json:"cipher"`
	ServerName string `json:"server_name,omitempty"`
}

// Event is the webhook body.
type Event struct {
	Type      string    `json:"type"`
	Version   int       `json:"version"`
	Timestamp time.Time `json:"timestamp"`
	Data      Data      `json:"data"`
}

// Data is the parsed message and its envelope.
type Data struct {
	ID          string       `json:"id"`
	ReceivedAt  time.Time    `json:"received_at"`
	Envelope    Envelope     `json:"envelope"`
	MessageID   string       `json:"message_id"`
	Subject     string       `json:"subject"`
	Date        string       `json:"date"`
	From        []Address    `json:"from"`
	To          []Address    `json:"to"`
	Cc          []Address    `json:"cc"`
	ReplyTo     []Address    `json:"reply_to"`
	InReplyTo   string       `json:"in_reply_to"`
	References  []string     `json:"references"`
	Headers     []Header     `json:"headers"`
	Text        string       `json:"text"`
	HTML        string       `json:"html"`
	Attachments []Attachment `json:"attachments"`
	Raw         Raw          `json:"raw"`
	Warnings    []string     `json:"warnings"`

	// TextBody and HTMLBody, when set, stand for Text and HTML, which are
	// then empty: a large body in another charset, converted to UTF-8
	// only as the event is written (AppendJSON, WriteJSON), so that it is
	// never held converted as a whole. encoding/json does not see them.
	TextBody Body `json:"-"`
	HTMLBody Body `json:"-"`
}

// Resolve converts TextBody and HTMLBody into Text and HTML, and unsets
// them: for encoders other than AppendJSON and WriteJSON (encoding/json).
func (d *Data) Resolve() {
	d.Text, d.TextBody = resolve(d.Text, d.TextBody)
	d.HTML, d.HTMLBody = resolve(d.HTML, d.HTMLBody)
}

func resolve(s string, b Body) (string, Body) {
	if b == nil {
		return s, nil
	}
	var sb strings.Builder
	b.Pieces(func(p []byte) { sb.Write(p) })
	return sb.String(), nil
}

// A Body is a text or HTML body produced in UTF-8 as it is read
// (Data.TextBody, Data.HTMLBody). It must be safe to read by several
// goroutines at once, and give the same text every time.
type Body interface {
	// Pieces calls f with the body in UTF-8, in order, a piece at a time;
	// each piece is whole runes and valid only during the call.
	Pieces(f func([]byte))
}

// Address is a decoded mailbox.
type Address struct {
	Name    string `json:"name"`
	Address string `json:"address"`
}

// Header is one header field, name as written, value unfolded and decoded.
type Header struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Attachment is any non-body MIME part: attachments and inline parts.
type Attachment struct {
	Filename    string `json:"filename"`
	ContentType string `json:"content_type"`
	Size        int64  `json:"size"`
	Disposition string `json:"disposition"`
	ContentID   string `json:"content_id"`
	SHA256      string `json:"sha256"`
	Content     []byte `json:"content"` // base64 in JSON

	// encoded, when set, is Content in canonical standard base64 with
	// CR and LF bytes anywhere (the body of a clean base64 MIME part):
	// WriteContentBase64 copies it instead of encoding Content.
	encoded []byte
	// lineLen, when not 0, says encoded is lines of lineLen bytes, each
	// ended by CRLF but perhaps the last (which may be shorter), with no
	// other CR or LF: what MIME encoders write, copied by stride.
	lineLen int
}

// SetContentBase64 records text as Content's standard base64 encoding,
// which it must be once its CR and LF bytes are dropped (the encoding of
// Content, padded, with zero unused bits): such a MIME body need not be
// encoded again. Content must not change afterwards.
func (a *Attachment) SetContentBase64(text []byte) {
	// The line breaks after the last line, which a MIME body may end
	// with, are dropped anyway.
	text = bytes.TrimRight(text, "\r\n")
	a.encoded, a.lineLen = text, regularLines(text)
}

// regularLines returns n when text is lines of n bytes, each followed by
// CRLF but the last, which may be shorter, and has no other CR or LF;
// otherwise 0.
func regularLines(text []byte) int {
	i := bytes.IndexByte(text, '\n')
	if i < 2 || text[i-1] != '\r' {
		return 0
	}
	n := i - 1
	stride := n + 2
	breaks, tail := len(text)/stride, len(text)%stride
	if tail == 0 || tail > n {
		return 0 // ends with a line break, or the last line is too long
	}
	for j := range breaks {
		if e := j*stride + n; text[e] != '\r' || text[e+1] != '\n' {
			return 0
		}
	}
	// The breaks are where they should be; none may be elsewhere.
	if bytes.Count(text, []byte{'\n'}) != breaks || bytes.Count(text, []byte{'\r'}) != breaks {
		return 0
	}
	return n
}

// WriteContentBase64 writes Content in standard base64, as encoding/json
// writes a []byte, without the quotes: a copy of the text given to
// SetContentBase64 without its line breaks, or else Content encoded.
func (a *Attachment) WriteContentBase64(w io.Writer) error {
	if a.encoded == nil || a.Content == nil {
		enc := base64.NewEncoder(base64.StdEncoding, w)
		if _, err := enc.Write(a.Content); err != nil {
			return err
		}
		return enc.Close()
	}
	if a.lineLen > 0 {
		return writeLines(w, a.encoded, a.lineLen)
	}
	// Line by line: IndexByte is vectorised, IndexAny is not.
	text := a.encoded
	for len(text) > 0 {
		line := text
		if i := bytes.IndexByte(text, '\n'); i >= 0 {
			line, text = text[:i], text[i+1:]
		} else {
			text = nil
		}
		for len(line) > 0 {
			j := bytes.IndexByte(line, '\r')
			if j < 0 {
				j = len(line)
			}
			if j > 0 {
				if _, err := w.Write(line[:j]); err != nil {
					return err
				}
			}
			line = line[min(j+1, len(line)):]
		}
	}
	return nil
}

// writeLines writes text, lines of n bytes each followed by CRLF but the
// last (see regularLines), without the CRLFs, gathered into large writes:
// a write per 76-byte line cost more than the copying.
func writeLines(w io.Writer, text []byte, n int) error {
	bufp := linesPool.Get().(*[]byte)
	defer linesPool.Put(bufp)
	buf := (*bufp)[:0]
	for len(text) > 0 {
		line := text[:min(n, len(text))]
		text = text[min(n+2, len(text)):]
		if len(buf)+len(line) > cap(buf) && len(buf) > 0 {
			if _, err := w.Write(buf); err != nil {
				return err
			}
			buf = buf[:0]
		}
		buf = append(buf, line...)
	}
	if len(buf) > 0 {
		if _, err := w.Write(buf); err != nil {
			return err
		}
	}
	return nil
}

var linesPool = sync.Pool{New: func() any { b := make([]byte, 0, 32<<10); return &b }}

// Raw locates the raw message in the store.
type Raw struct {
	Key    string `json:"key"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}
