package dispatch

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"

	"github.com/mailhook/mailhook/event"
	"github.com/mailhook/mailhook/parse"
	"github.com/mailhook/mailhook/queue"
)

// Renderer builds the webhook body of a delivery. It must return the same
// bytes on every call for the same delivery, so that every attempt carries
// the same event. An error wrapping ErrPermanent fails the delivery at once;
// any other error is retried like a transport error.
type Renderer func(ctx context.Context, d *queue.Delivery) ([]byte, error)

// ErrPermanent marks render errors that retrying cannot fix.
var ErrPermanent = errors.New("permanent")

// ErrRawMismatch: the raw message read back does not match the size or
// SHA-256 recorded when it was accepted. It wraps ErrPermanent.
var ErrRawMismatch = fmt.Errorf("%w: raw message does not match its recorded size or sha256", ErrPermanent)

// RawOpener opens a delivery's raw message (*queue.Queue does).
type RawOpener interface {
	OpenRaw(ctx context.Context, d *queue.Delivery) (io.ReadCloser, error)
}

// parseFunc is the signature of parse.Parse (replaced in tests).
type parseFunc func(r io.Reader, opts parse.Options) (*event.Data, error)

// NewRenderer returns the default Renderer: it opens the raw message,
// parses it with parse.Parse, fills the id, reception time, envelope and raw
// location, and encodes an event.Event whose Timestamp is the reception
// time, so the body is byte-identical on every attempt and replay. The raw
// message is checked against its recorded size and SHA-256 on the way
// (only its size when queue.Verified says the hash would find nothing).
//
// Used by a Dispatcher, it writes the body of a message larger than
// Config.StreamThreshold as a stream instead (see stream.go); the bytes sent
// are the same.
func NewRenderer(raw RawOpener, opts parse.Options) Renderer {
	return newRenderer(raw, parse.Parse, opts)
}

func newRenderer(raw RawOpener, parseFn parseFunc, opts parse.Options) Renderer {
	return sharingRenderer(raw, parseFn, opts, newParseShare())
}

func sharingRenderer(raw RawOpener, parseFn parseFunc, opts parse.Options, share *parseShare) Renderer {
	return func(ctx context.Context, d *queue.Delivery) ([]byte, error) {
		var data *event.Data
		var cut string            // where the parse ran out of time, if it did
		e, owner := share.join(d) // see share.go
		if e != nil && !owner {
			data, cut = e.wait(ctx)
		}
		if data == nil {
			published := false
			if owner {
				defer func() {
					if !published { // a panic in the parser
						share.finish(d.EventID, e, nil, "", errNotParsed)
					}
				}()
			}
			var err error
			data, err = parseRaw(ctx, raw, parseFn, opts, d, &cut)
			if owner {
				share.finish(d.EventID, e, data, cut, err)
				published = true
			}
			if err != nil {
				return nil, err
			}
		}
		if cut != "" && d.ParseCut == "" {
			// Recorded with the attempt's outcome (the caller's record
			// update copies d), for every later render to stop there.
			d.ParseCut = cut
		}
		// data may be shared: this delivery's fields go into a copy.
		ev := event.Event{
			Type:      event.Type,
			Version:   event.SchemaVersion,
			Timestamp: d.ReceivedAt,
			Data:      *data,
		}
		ev.Data.ID = d.EventID
		ev.Data.ReceivedAt = d.ReceivedAt
		ev.Data.Envelope = d.Envelope
		ev.Data.Raw = d.Raw
		if sp := streamFor(ctx, d.Raw.Size); sp != nil {
			sp.ev = &ev
			return nil, nil
		}
		// The event holds the decoded text and HTML and the attachments
		// in base64: about the raw size and a header's worth more. Sized
		// up front, the buffer is not regrown and copied a dozen times.
		body, err := ev.AppendJSON(make([]byte, 0, int(min(d.Raw.Size, maxRenderGuess))+2<<10))
		if err != nil {
			return nil, fmt.Errorf("render %s: encode: %w", d.ID, err)
		}
		return body, nil
	}
}

// stopAtBudget multiplies the parse time budget of a render that stops
// at a recorded cut (queue.Delivery.ParseCut).
const stopAtBudget = 4

// parseRaw opens d's raw message, parses it and checks it against its
// recorded size and SHA-256. If the parse runs out of time, cut is set to
// the part where (parse.Options.BudgetSpent).
func parseRaw(ctx context.Context, raw RawOpener, parseFn parseFunc, opts parse.Options, d *queue.Delivery, cut *string) (*event.Data, error) {
	rc, err := raw.OpenRaw(ctx, d)
	if err != nil {
		return nil, fmt.Errorf("render %s: %w", d.ID, err)
	}
	defer rc.Close()
	// Bytes Accept hashed moments ago need no second hash (at 1 MB
	// it was a tenth of mailhook's CPU); their size is still checked.
	var h hash.Hash
	cr := &countingReader{r: rc}
	if !queue.Verified(rc) {
		h = sha256.New()
		cr.r = io.TeeReader(rc, h)
	}
	popts := opts
	if popts.SizeHint == 0 {
		popts.SizeHint = d.Raw.Size
	}
	popts.BudgetSpent = func(partID string) { *cut = partID }
	if d.ParseCut != "" {
		// An earlier render ran out of time there: stop at the same part,
		// with time to get to it on a busier host.
		popts.StopAt = d.ParseCut
		popts.MaxDuration = stopAtBudget * cmp.Or(popts.MaxDuration, parse.DefaultMaxDuration)
	}
	data, err := parseFn(cr, popts)
	if err != nil {
		return nil, fmt.Errorf("render %s: parse: %w", d.ID, err)
	}
	// Parse may stop early; the check needs every byte.
	if _, err := io.Copy(io.Discard, cr); err != nil {
		return nil, fmt.Errorf("render %s: read raw: %w", d.ID, err)
	}
	if cr.n != d.Raw.Size || (h != nil && d.Raw.SHA256 != "" && hex.EncodeToString(h.Sum(nil)) != d.Raw.SHA256) {
		return nil, fmt.Errorf("render %s: %w", d.ID, ErrRawMismatch)
	}
	return data, nil
}

// maxRenderGuess bounds the raw size render sizes its buffer by (larger
// messages are streamed by a Dispatcher anyway).
const maxRenderGuess = 4 << 20

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
