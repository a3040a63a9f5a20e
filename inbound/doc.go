// Package inbound is mailhook's SMTP acceptor: an internet-facing MX
// written to RFC 5321 without an SMTP server library.
//
// It owns the SMTP conversation: one goroutine and one plain state machine
// per connection (EHLO/HELO, MAIL, RCPT, DATA, BDAT, RSET, NOOP, VRFY,
// HELP, QUIT, STARTTLS), the ESMTP extensions it advertises (PIPELINING,
// SIZE, 8BITMIME, ENHANCEDSTATUSCODES, SMTPUTF8, CHUNKING, BINARYMIME,
// STARTTLS), envelope parsing, recipient checks through RecipientPolicy,
// connection and time limits, two-phase shutdown, the PROXY protocol (v1
// and v2) behind trusted load balancers (proxy.go), and the data stream:
// dot-unstuffing, the end-of-data marker (only <CRLF>.<CRLF>, so SMTP
// smuggling cannot split one DATA into two messages), bare-newline policy
// and the size limit, all while streaming. Each message goes to the next
// stage as a Message whose Body is our Received header followed by the
// data, read straight from the connection buffer.
//
// It never stores, parses or routes messages: that is the Acceptor's job,
// and the session answers 250 only after Accept returns nil (so a 250
// means the message is durable). It never holds a whole message in memory,
// never performs DNS lookups, never reads the environment and never sends
// internal error text to a client: replies to our own failures carry a
// fixed text and a reference id that the error log line carries too.
//
// Decisions that the RFCs leave open are documented beside the code with
// the RFC section. The most visible: command lines end at CRLF or a bare LF
// (tolerated), are limited to 512 octets (MAIL a little more, per the
// extensions that lengthen it); replies to the greeting, HELO and EHLO carry
// no enhanced status code (RFC 2034 §3), all 2xx/4xx/5xx others do.
package inbound
