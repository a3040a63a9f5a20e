package inbound

import "errors"

// Sentinel errors. Message.Body returns errors wrapping the first four; an
// Acceptor passes them through (wrapped) and the session picks the reply.
var (
	// ErrMessageTooLarge: the data exceeded Config.MaxMessageBytes. The
	// session reads on to the end of the data and answers 552 5.3.4.
	ErrMessageTooLarge = errors.New("inbound: message too large")
	// ErrBareNewline: the data held a bare LF or CR while
	// Config.BareNewline is "reject". The session answers 550 5.5.2.
	ErrBareNewline = errors.New("inbound: bare newline in message data")
	// ErrLineTooLong: a data line exceeded Config.MaxLineLength. The
	// session answers 550 5.6.0.
	ErrLineTooLong = errors.New("inbound: message line too long")
	// ErrTransferAborted: the client went away, timed out or reset the
	// transaction before the data was complete. Nothing may be delivered.
	ErrTransferAborted = errors.New("inbound: transfer aborted")
	// ErrServerClosed is returned by Serve after Shutdown.
	ErrServerClosed = errors.New("inbound: server closed")
)
