package event

import (
	"encoding/base64"
	"fmt"
	"io"
	"strconv"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/mailhook/mailhook/internal/jsonenc"
)

// An event is encoded once per delivery, and encoding/json's reflection
// took about 4 % of mailhook's CPU at 2 KB × 32 sessions. AppendJSON and
// WriteJSON write the bytes an encoding/json Encoder with
// SetEscapeHTML(false) writes, without its newline: receivers verify
// signatures over them, and FuzzEventJSON and TestEventJSONFields hold
// the two to it (the second fails when a type gains a field not written
// here).

// AppendJSON appends the JSON of e as encoding/json writes it, with < > &
// escaped when escapeHTML (json.Marshal's default).
func (e *Envelope) AppendJSON(b []byte, escapeHTML bool) []byte {
	b = append(b, `{"mail_from":`...)
	b = jsonenc.String(b, e.MailFrom, escapeHTML)
	b = append(b, `,"rcpt_to":`...)
	b = appendStrings(b, e.RcptTo, escapeHTML)
	b = append(b, `,"helo":`...)
	b = jsonenc.String(b, e.Helo, escapeHTML)
	b = append(b, `,"remote_addr":`...)
	b = jsonenc.String(b, e.RemoteAddr, escapeHTML)
	b = append(b, `,"tls":`...)
	if t := e.TLS; t == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, `{"version":`...)
		b = jsonenc.String(b, t.Version, escapeHTML)
		b = append(b, `,"cipher":`...)
		b = jsonenc.String(b, t.Cipher, escapeHTML)
		if t.ServerName != "" {
			b = append(b, `,"server_name":`...)
			b = jsonenc.String(b, t.ServerName, escapeHTML)
		}
		b = append(b, '}')
	}
	if e.SMTPUTF8 {
		b = append(b, `,"smtputf8":true`...)
	}
	if e.Body != "" {
		b = append(b, `,"body":`...)
		b = jsonenc.String(b, e.Body, escapeHTML)
	}
	return append(b, '}')
}

// AppendJSON appends the event's JSON, the body of its webhook.
func (ev *Event) AppendJSON(b []byte) ([]byte, error) {
	j := jsonWriter{b: b}
	j.event(ev)
	return j.b, j.err
}

// WriteJSON writes the event's JSON to w, in pieces: attachment contents
// are streamed to w as base64 (Attachment.WriteContentBase64) rather than
// built in memory, so a large message's event never exists as a whole.
func (ev *Event) WriteJSON(w io.Writer) error {
	j := jsonWriter{b: make([]byte, 0, 4<<10), w: w}
	j.event(ev)
	j.flush()
	return j.err
}

// jsonWriter appends JSON to b and, when w is set, hands b to w before
// each attachment's content, after a string field that filled flushAt,
// and at the end. It remembers the first error.
type jsonWriter struct {
	b   []byte
	w   io.Writer // nil: b gets the whole event
	err error
}

// Write appends p to b: the in-memory destination of attachment contents.
func (j *jsonWriter) Write(p []byte) (int, error) {
	j.b = append(j.b, p...)
	return len(p), nil
}

func (j *jsonWriter) flush() {
	if j.w == nil || j.err != nil || len(j.b) == 0 {
		return
	}
	_, j.err = j.w.Write(j.b)
	j.b = j.b[:0]
}

func (j *jsonWriter) raw(s string) { j.b = append(j.b, s...) }

// str appends s as a string field's value (HTML not escaped).
func (j *jsonWriter) str(s string) { j.b = jsonenc.String(j.b, s, false) }

// key appends ,"name": (name needs no escaping).
func (j *jsonWriter) key(name string) {
	j.b = append(j.b, ',', '"')
	j.b = append(j.b, name...)
	j.b = append(j.b, '"', ':')
}

func (j *jsonWriter) field(name, value string) {
	j.key(name)
	if j.w == nil || len(value) <= flushAt {
		j.str(value)
		if j.w != nil && len(j.b) >= flushAt {
			j.flush()
		}
		return
	}
	// A large text or HTML body: handed to w in pieces of about flushAt,
	// cut between runes, so that it is never held escaped as a whole
	// (24 MB of text took 230 MB of buffers growing to hold it).
	j.b = append(j.b, '"')
	for len(value) > 0 && j.err == nil { // after a write error nothing more is kept
		n := min(len(value), flushAt)
		for n < len(value) && n > 0 && !utf8.RuneStart(value[n]) {
			n--
		}
		if n == 0 { // no rune starts there: invalid bytes, escaped one by one
			n = min(len(value), flushAt)
		}
		j.b = jsonenc.Escaped(j.b, value[:n], false)
		value = value[n:]
		j.flush()
	}
	j.b = append(j.b, '"')
}

// body writes the text or HTML field: value, or from when it is set
// (Data.TextBody), escaped a piece at a time.
func (j *jsonWriter) body(name, value string, from Body) {
	if from == nil {
		j.field(name, value)
		return
	}
	j.key(name)
	j.b = append(j.b, '"')
	from.Pieces(func(p []byte) {
		if j.err != nil {
			return // the writer failed: nothing more is kept
		}
		j.b = jsonenc.Escaped(j.b, unsafe.String(unsafe.SliceData(p), len(p)), false)
		if j.w != nil && len(j.b) >= flushAt {
			j.flush()
		}
	})
	j.b = append(j.b, '"')
}

// flushAt is how much WriteJSON holds before handing it to its writer.
const flushAt = 64 << 10

// time appends t as its MarshalJSON does, failing as it fails.
func (j *jsonWriter) time(t time.Time) {
	if jsonenc.TimeOK(t) {
		j.b = jsonenc.Time(j.b, t)
		return
	}
	v, err := t.MarshalJSON()
	if err != nil {
		if j.err == nil {
			j.err = fmt.Errorf("json: error calling MarshalJSON for type time.Time: %w", err)
		}
		return
	}
	j.b = append(j.b, v...)
}

func (j *jsonWriter) event(ev *Event) {
	j.raw(`{"type":`)
	j.str(ev.Type)
	j.raw(`,"version":`)
	j.b = strconv.AppendInt(j.b, int64(ev.Version), 10)
	j.raw(`,"timestamp":`)
	j.time(ev.Timestamp)
	d := &ev.Data
	j.raw(`,"data":{"id":`)
	j.str(d.ID)
	j.key("received_at")
	j.time(d.ReceivedAt)
	j.key("envelope")
	j.b = d.Envelope.AppendJSON(j.b, false)
	j.field("message_id", d.MessageID)
	j.field("subject", d.Subject)
	j.field("date", d.Date)
	j.addresses("from", d.From)
	j.addresses("to", d.To)
	j.addresses("cc", d.Cc)
	j.addresses("reply_to", d.ReplyTo)
	j.field("in_reply_to", d.InReplyTo)
	j.key("references")
	j.b = appendStrings(j.b, d.References, false)
	j.list("headers", d.Headers == nil, len(d.Headers), func(i int) {
		j.named(d.Headers[i].Name, "value", d.Headers[i].Value)
	})
	j.body("text", d.Text, d.TextBody)
	j.body("html", d.HTML, d.HTMLBody)
	j.list("attachments", d.Attachments == nil, len(d.Attachments), func(i int) {
		j.attachment(&d.Attachments[i])
	})
	j.raw(`,"raw":{"key":`)
	j.str(d.Raw.Key)
	j.raw(`,"size":`)
	j.b = strconv.AppendInt(j.b, d.Raw.Size, 10)
	j.field("sha256", d.Raw.SHA256)
	j.raw("}")
	j.key("warnings")
	j.b = appendStrings(j.b, d.Warnings, false)
	j.raw("}}")
}

func (j *jsonWriter) addresses(name string, as []Address) {
	j.list(name, as == nil, len(as), func(i int) { j.named(as[i].Name, "address", as[i].Address) })
}

// list writes the field name: null when null, else an array of n
// elements, element i written by elem(i).
func (j *jsonWriter) list(name string, null bool, n int, elem func(i int)) {
	j.key(name)
	if null {
		j.raw("null")
		return
	}
	j.raw("[")
	for i := range n {
		if i > 0 {
			j.raw(",")
		}
		elem(i)
	}
	j.raw("]")
}

// named writes {"name":name,"<key>":value}.
func (j *jsonWriter) named(name, key, value string) {
	j.raw(`{"name":`)
	j.str(name)
	j.field(key, value)
	j.raw("}")
}

func (j *jsonWriter) attachment(a *Attachment) {
	j.raw(`{"filename":`)
	j.str(a.Filename)
	j.field("content_type", a.ContentType)
	j.raw(`,"size":`)
	j.b = strconv.AppendInt(j.b, a.Size, 10)
	j.field("disposition", a.Disposition)
	j.field("content_id", a.ContentID)
	j.field("sha256", a.SHA256)
	j.key("content")
	if a.Content == nil {
		j.raw("null}")
		return
	}
	// encoding/json writes a []byte as a standard base64 string.
	j.raw(`"`)
	switch {
	case j.w == nil && a.encoded == nil:
		j.b = base64.StdEncoding.AppendEncode(j.b, a.Content)
	case j.w == nil:
		_ = a.WriteContentBase64(j) // appending cannot fail
	default:
		j.flush()
		if j.err == nil {
			j.err = a.WriteContentBase64(j.w)
		}
	}
	j.raw(`"}`)
}

// appendStrings appends ss as encoding/json writes a []string.
func appendStrings(b []byte, ss []string, escapeHTML bool) []byte {
	if ss == nil {
		return append(b, "null"...)
	}
	b = append(b, '[')
	for i, s := range ss {
		if i > 0 {
			b = append(b, ',')
		}
		b = jsonenc.String(b, s, escapeHTML)
	}
	return append(b, ']')
}
