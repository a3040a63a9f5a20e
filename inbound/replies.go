package inbound

import (
	"fmt"
	"strconv"
)

// reply is one SMTP reply: the basic code (RFC 5321 §4.2), the enhanced
// status code (RFC 3463, sent per RFC 2034) and a human-readable text.
// An empty enh means the reply carries no enhanced code: RFC 2034 §3 exempts
// the greeting, the replies to HELO/EHLO, and 3xx replies (RFC 3463 defines
// classes 2, 4 and 5 only).
type reply struct {
	code int
	enh  string
	text string
}

// withText returns r with its text formatted from r.text and args.
func (r reply) withText(args ...any) reply {
	r.text = fmt.Sprintf(r.text, args...)
	return r
}

// appendTo appends the wire form of r, one line, CRLF-terminated.
func (r reply) appendTo(b []byte) []byte {
	b = strconv.AppendInt(b, int64(r.code), 10)
	b = append(b, ' ')
	if r.enh != "" {
		b = append(b, r.enh...)
		b = append(b, ' ')
	}
	b = append(b, r.text...)
	return append(b, '\r', '\n')
}

func (r reply) String() string {
	b := r.appendTo(nil)
	return string(b[:len(b)-2])
}

// The replies, all in one place. Texts never carry internal error details:
// where a reply names a problem of ours, it carries a reference id that the
// log carries too, with the cause.
var (
	// Positive completion.
	replyOK          = reply{250, "2.0.0", "Ok"}
	replyMailOK      = reply{250, "2.1.0", "Sender ok"}                                                          // RFC 3463 X.1.0
	replyRcptOK      = reply{250, "2.1.5", "Recipient ok"}                                                       // RFC 3463 X.1.5
	replyQueued      = reply{250, "2.0.0", "Ok: queued as %s"}                                                   // SPEC.md "SMTP"
	replyChunkOK     = reply{250, "2.0.0", "%d octets received"}                                                 // RFC 3030 §2
	replyVRFY        = reply{252, "2.5.0", "Cannot VRFY user, but will accept message and attempt delivery"}     // RFC 5321 §3.5.3
	replyHelp        = reply{214, "2.0.0", "Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP VRFY HELP QUIT%s"} // RFC 5321 §4.1.1.8
	replyQuit        = reply{221, "2.0.0", "Bye"}
	replyStartTLS    = reply{220, "2.0.0", "Ready to start TLS"}              // RFC 3207 §4
	replyStartData   = reply{354, "2.0.0", "End data with <CR><LF>.<CR><LF>"} // SPEC.md: every reply carries one
	replyHTTPRefused = reply{221, "2.7.0", "This is an SMTP server, not HTTP; goodbye"}
	replyTLSRefused  = reply{221, "2.7.0", "This port speaks plaintext SMTP, use STARTTLS; goodbye"}

	// Sequence errors: RFC 5321 §4.2.4 / §4.3.2, RFC 3463 X.5.1.
	replyNeedHelo        = reply{503, "5.5.1", "Send HELO/EHLO first"}
	replyNestedMail      = reply{503, "5.5.1", "Sender already specified"}
	replyNeedMail        = reply{503, "5.5.1", "Need MAIL before RCPT"}
	replyNeedMailData    = reply{503, "5.5.1", "Need MAIL before DATA"}
	replyNeedRcpt        = reply{503, "5.5.1", "Need RCPT before DATA"} // RFC 5321 §3.3 allows 503 here
	replyBDATExpected    = reply{503, "5.5.1", "Only BDAT, RSET, NOOP or QUIT allowed during BDAT transfer"}
	replyNoTransaction   = reply{503, "5.5.1", "No valid transaction; BDAT data discarded"}
	replyBinaryNeedsBDAT = reply{503, "5.5.1", "BODY=BINARYMIME requires BDAT"} // RFC 3030 §3
	replyAlreadyTLS      = reply{503, "5.5.1", "TLS already active"}            // RFC 3207 §4.2
	replyTLSInMail       = reply{503, "5.5.1", "STARTTLS not allowed in a mail transaction; RSET first"}

	// Syntax errors: RFC 5321 §4.2.2, RFC 3463 X.5.2 / X.5.4.
	replyUnknownCommand = reply{500, "5.5.2", "Command not recognized"}
	replyLineTooLong    = reply{500, "5.5.2", "Line too long"} // RFC 5321 §4.5.3.1.10
	replyNotImplemented = reply{502, "5.5.1", "Command not implemented"}
	replySyntax         = reply{501, "5.5.4", "Syntax error in parameters or arguments"}
	replyEhloSyntax     = reply{501, "5.5.4", "Syntax: EHLO hostname"}
	replyHeloSyntax     = reply{501, "5.5.4", "Syntax: HELO hostname"}
	replyMailSyntax     = reply{501, "5.5.4", "Syntax: MAIL FROM:<address> [parameters]"}
	replyRcptSyntax     = reply{501, "5.5.4", "Syntax: RCPT TO:<address>"}
	replyBDATSyntax     = reply{501, "5.5.4", "Syntax: BDAT size [LAST]"} // RFC 3030 §2
	replyNoArgs         = reply{501, "5.5.4", "No arguments allowed"}
	replyUnknownParam   = reply{555, "5.5.4", "MAIL FROM/RCPT TO parameters not recognized or not implemented"} // RFC 5321 §4.1.1.11
	// A bad address is a syntax error in the arguments: 5.5.4, as every
	// 501 here (RFC 3463 also has X.1.7 and X.1.3 for it, which Postfix
	// sends; one code for every syntax error keeps clients' handling
	// simple).
	replySenderSyntax    = reply{501, "5.5.4", "Bad sender address syntax"}
	replyRecipientSyntax = reply{501, "5.5.4", "Bad recipient address syntax"}
	// RFC 5321 §4.5.3.1.10 lists "501 Path too long".
	replySenderTooLong    = reply{501, "5.5.4", "Path too long"}
	replyRecipientTooLong = reply{501, "5.5.4", "Path too long"}
	// RFC 6531 §3.5: non-ASCII address without SMTPUTF8 → 553 X.6.7 (RFC 5248).
	replyNonASCIIAddress = reply{553, "5.6.7", "Non-ASCII addresses require SMTPUTF8"}

	// Recipients and size.
	replyUnknownRecipient  = reply{550, "5.1.1", "Recipient address rejected: user unknown"}
	replyTooManyRecipients = reply{452, "4.5.3", "Too many recipients"}                             // RFC 5321 §4.5.3.1.10
	replyTooLarge          = reply{552, "5.3.4", "Message size exceeds fixed maximum message size"} // RFC 1870 §6.1/§6.3
	replyNoRoom            = reply{452, "4.3.1", "Insufficient system storage, try again later"}    // RFC 1870 §6.1, RFC 3463 X.3.1

	// Data content.
	replyBareNewline     = reply{550, "5.5.2", "Message refused: bare <LF>/<CR> not allowed, lines must end in <CR><LF> (RFC 5321 section 2.3.8)"}
	replyDataLineTooLong = reply{550, "5.6.0", "Message refused: line longer than %d octets (RFC 5321 section 4.5.3.1.6)"}
	replyStorageFailure  = reply{451, "4.3.0", "Temporary failure storing message, try again later (ref %s)"}
	replyDataTimeout     = reply{451, "4.4.2", "Timeout during data transfer, closing connection"}

	// Connection-level: RFC 5321 §3.8, §4.2.2 (421 closes the channel).
	replyClosing         = reply{421, "4.7.0", "Closing connection"}
	replyTimeout         = reply{421, "4.4.2", "Timeout, closing connection"}
	replySessionTooLong  = reply{421, "4.4.2", "Session time limit exceeded, closing connection"}
	replyTooManyErrors   = reply{421, "4.7.0", "Too many errors, closing connection"}
	replyTooManyJunk     = reply{421, "4.7.0", "Too many commands without mail, closing connection"}
	replyTooManySessions = reply{421, "4.7.0", "Too many connections, try again later"}
	replyEvicted         = reply{421, "4.7.0", "Idle too long while the server is busy, try again later"}
	replyShuttingDown    = reply{421, "4.3.2", "Service shutting down, try again later"}
	replyInternalError   = reply{421, "4.3.0", "Internal error, closing connection (ref %s)"}
	replyTLSRequired     = reply{530, "5.7.0", "Must issue a STARTTLS command first"} // RFC 3207 §4

	// With PROXY protocol on, for a peer that is not a trusted proxy. RFC
	// 5321 §3.1 lets a server refuse a connection at the greeting; 421
	// rather than 554 because the likely cause is a route or configuration
	// change, and the sender should retry.
	replyProxyUntrusted = reply{421, "4.7.0", "Not accepting connections from this address, try again later"}
)
