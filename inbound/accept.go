package inbound

import (
	"context"
	"io"
	"time"

	"github.com/mailhook/mailhook/event"
)

// Message is one finished (or finishing) DATA/BDAT transfer handed to the
// Acceptor.
type Message struct {
	// ID is the message id, assigned by the session when the transfer
	// starts; it appears in the Received header and in "250 2.0.0 Ok:
	// queued as <ID>".
	ID         string
	ReceivedAt time.Time
	Envelope   event.Envelope
	// Body streams the message as it will be stored: mailhook's Received
	// trace header, then the data as received (dot-unstuffed, bare line
	// ends handled per configuration). It returns io.EOF once the client has
	// ended the data correctly, and an error wrapping one of this package's
	// sentinels (ErrMessageTooLarge, ErrBareNewline, ErrTransferAborted)
	// otherwise. It is valid only during Accept.
	Body io.Reader
}

// Acceptor is what the SMTP acceptor needs from the next stage.
type Acceptor interface {
	// Accept reads m.Body to EOF and makes the message and everything needed
	// to deliver it durable. It returns nil only then: the session answers
	// 250 after a nil return and never before. If reading m.Body fails,
	// Accept must store nothing that would be delivered and return an error
	// wrapping the read error. A returned error that implements Replier
	// chooses the SMTP reply; any other error is answered 451 4.3.0.
	Accept(ctx context.Context, m *Message) error
}

// AcceptorFunc adapts a function to Acceptor.
type AcceptorFunc func(ctx context.Context, m *Message) error

// Accept calls f.
func (f AcceptorFunc) Accept(ctx context.Context, m *Message) error { return f(ctx, m) }

// RecipientPolicy decides at RCPT whether an address is accepted.
type RecipientPolicy interface {
	// Allow reports whether mail for addr (a bare address, no angle
	// brackets) is accepted. Refused addresses get 550 5.1.1.
	Allow(addr string) bool
}

// Replier is implemented by errors that choose their own SMTP reply, so
// that a later stage (for example a real-time route) can refuse a message.
type Replier interface {
	SMTPReply() (code int, enhanced string, text string)
}
