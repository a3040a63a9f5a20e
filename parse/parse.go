package parse

import (
	"fmt"
	"io"
	"net/mail"
	"sync/atomic"
	"time"

	"github.com/mailhook/mailhook/event"
)

// Defaults for the zero values of Options.
const (
	// DefaultMaxDepth is half Postfix's mime_nesting_limit; real mail stays
	// under 10.
	DefaultMaxDepth = 50
	// DefaultMaxParts is far above real mail (a few dozen parts at most)
	// and keeps the parse of a hostile message to tens of milliseconds.
	DefaultMaxParts = 1000
	// DefaultMaxDuration bounds the time spent decoding parts; the caps
	// above already keep hostile input to milliseconds, so only a machine
	// starved of CPU ever reaches it.
	DefaultMaxDuration = 5 * time.Second
)

const (
	// maxWarnings caps Data.Warnings; one more line says how many were
	// left out.
	maxWarnings = 100
	// maxPartErrors caps the problems enmime stores per MIME part.
	maxPartErrors = 10
)

// Options bound the work spent on one message. The zero value is usable.
type Options struct {
	// MaxAttachmentBytes: attachments whose decoded size is larger are
	// listed, with size and sha256, but without content (null in JSON),
	// and a warning says so. 0 means no limit.
	MaxAttachmentBytes int64
	// MaxDepth is the deepest multipart nesting parsed, a multipart message
	// being 1. A deeper multipart is not parsed: it and everything inside
	// it are left out with a warning. 0 means DefaultMaxDepth.
	MaxDepth int
	// MaxParts is the number of MIME parts parsed. Parsing stops at the
	// delimiter of the next one and the rest of the message is left out
	// with a warning. 0 means DefaultMaxParts.
	MaxParts int
	// SizeHint is the size of the message, if known: Parse then reads it
	// into one buffer of that size instead of growing one, which for a
	// large message saves about twice its size in garbage. A wrong hint
	// costs only that saving. 0 means unknown.
	SizeHint int64
	// MaxDuration is the time budget for decoding parts: once spent, the
	// remaining parts are left out with a warning (the headers and the
	// parts already decoded are kept). 0 means DefaultMaxDuration.
	MaxDuration time.Duration
	// BudgetSpent, if set, is called with the id of the part at which
	// MaxDuration ran out ("" is never passed: the root is always built).
	BudgetSpent func(partID string)
	// StopAt, if set, is the id of a part at which to stop as if the time
	// budget had run out there (the same warning, the same parts left
	// out): what BudgetSpent reported for an earlier parse of the same
	// message, so that the event comes out the same again. The time
	// budget still applies before it.
	StopAt string

	// enmimeOnly makes every part with enmime, as before the builder's
	// fast paths, and the body with enmime.EnvelopeFromPart: tests
	// compare the two.
	enmimeOnly bool
}

func (o Options) withDefaults() Options {
	if o.MaxDepth <= 0 {
		o.MaxDepth = DefaultMaxDepth
	}
	if o.MaxDuration <= 0 {
		o.MaxDuration = DefaultMaxDuration
	}
	if o.MaxParts <= 0 {
		o.MaxParts = DefaultMaxParts
	}
	return o
}

// bugs counts recovered panics and broken internal invariants. Parse
// carries on (callers are safe), but tests fail when it moves.
var bugs atomic.Int64

// Parse reads a raw RFC 5322 message and returns the message fields of the
// event: MessageID, Subject, Date, From, To, Cc, ReplyTo, InReplyTo,
// References, Headers, Text, HTML, Attachments and Warnings. The caller fills
// ID, ReceivedAt, Envelope and Raw. Broken MIME is not an error: it yields
// warnings. Only a failure to read r is returned as an error.
//
// Slices in the result are never nil, so they encode as [] in JSON. When the
// message has HTML but no text/plain body, Text is derived from the HTML and
// a warning says so. Several text/plain body parts (multipart/mixed) are
// joined with "\n--\n", or "\r\n--\r\n" when the first one's lines end in
// CRLF.
func Parse(r io.Reader, opts Options) (*event.Data, error) {
	raw, err := readAll(r, opts.SizeHint)
	if err != nil {
		return nil, fmt.Errorf("parse: read message: %w", err)
	}
	return parseMessage(raw, opts.withDefaults()), nil
}

// maxSizeHint bounds the buffer allocated on the word of Options.SizeHint.
const maxSizeHint = 1 << 30

// readAll is io.ReadAll starting with a buffer of sizeHint bytes (and one
// more, so that reading the final EOF does not grow it).
func readAll(r io.Reader, sizeHint int64) ([]byte, error) {
	if sizeHint <= 0 || sizeHint > maxSizeHint {
		return io.ReadAll(r)
	}
	b := make([]byte, 0, sizeHint+1)
	for {
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err != nil {
			if err == io.EOF {
				err = nil
			}
			return b, err
		}
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)] // the hint was short: grow as io.ReadAll does
		}
	}
}

func parseMessage(raw []byte, opts Options) (d *event.Data) {
	d = &event.Data{
		From:        []event.Address{},
		To:          []event.Address{},
		Cc:          []event.Address{},
		ReplyTo:     []event.Address{},
		References:  []string{},
		Headers:     []event.Header{},
		Attachments: []event.Attachment{},
		Warnings:    []string{},
	}
	w := &warnings{}
	defer func() {
		// Last resort: nothing below should panic, but a webhook with the
		// headers and a warning beats no event at all.
		if v := recover(); v != nil {
			bugs.Add(1)
			w.addf("internal error while parsing, result incomplete: %v", v)
		}
		d.Warnings = w.result()
	}()

	hb := splitHeader(raw, w, "")
	hr := newHeaderReader(hb, newWordDecoder(), w)
	d.Headers = hr.headers()
	d.MessageID = firstMsgID(hr.first("Message-ID"))
	d.Subject = hr.first("Subject")
	d.Date = hr.first("Date")
	if d.Date != "" {
		if !validDate(d.Date) {
			w.addf("Date header %s is not an RFC 5322 date", quote(d.Date))
		}
	}
	d.From = hr.addresses("From")
	d.To = hr.addresses("To")
	d.Cc = hr.addresses("Cc")
	d.ReplyTo = hr.addresses("Reply-To")
	d.InReplyTo = firstMsgID(hr.first("In-Reply-To"))
	d.References = msgIDs(hr.first("References"))

	parseBody(d, raw, hb, opts, w)
	return d
}

// warnings collects the human-readable problems of one parse, in the order
// met, each once, capped at maxWarnings.
type warnings struct {
	items   []string
	seen    map[string]bool
	dropped int
}

func (w *warnings) addf(format string, args ...any) {
	msg := validUTF8(fmt.Sprintf(format, args...))
	if w.seen[msg] {
		return
	}
	if len(w.items) >= maxWarnings {
		w.dropped++
		return
	}
	if w.seen == nil {
		w.seen = make(map[string]bool)
	}
	w.seen[msg] = true
	w.items = append(w.items, msg)
}

// result returns the warnings, never nil.
func (w *warnings) result() []string {
	out := make([]string, 0, len(w.items)+1)
	out = append(out, w.items...)
	if w.dropped > 0 {
		out = append(out, fmt.Sprintf("%d more warnings not listed", w.dropped))
	}
	return out
}

// commonDate is the date layout nearly every mailer writes (RFC 5322
// §3.3 with a day name and a numeric zone).
const commonDate = "Mon, 2 Jan 2006 15:04:05 -0700"

// validDate reports whether net/mail can parse the Date value v. It
// tries commonDate on its own first: mail.ParseDate tries its layouts
// in an order that puts this one in the second half, each failure
// allocating an error (FuzzValidDate checks the shortcut agrees).
func validDate(v string) bool {
	if _, err := time.Parse(commonDate, v); err == nil {
		return true
	}
	_, err := mail.ParseDate(v)
	return err == nil
}
