package inbound

import (
	"errors"
)

// Observer is told what the acceptor does, for metrics. Its methods are
// called synchronously from session goroutines, so they must be fast, safe
// for concurrent use and must not block; they cannot change the
// conversation. Config.Observer nil means nobody listens.
type Observer interface {
	// SessionStarted and SessionEnded bracket each admitted session.
	SessionStarted()
	SessionEnded()
	// SessionRefused reports a connection answered 421 and closed before
	// any session started: one of the Refused… constants.
	SessionRefused(reason string)
	// Command reports the final reply to one command line: verb is the
	// upper-cased verb as sent (any string: an unknown verb is passed
	// through, a line that is not a command at all is ""), code is the
	// basic reply code. DATA's intermediate 354 is not reported, only the
	// reply that ends the command; a command whose session ends before its
	// reply is not reported.
	Command(verb string, code int)
	// Message reports each message transfer (DATA or BDAT) once it is
	// answered, size being the data octets received. result is "accepted",
	// "rejected" or "aborted"; reason is "" when accepted, otherwise one of
	// the Reason… constants.
	Message(result, reason string, size int64)
}

// Message results and reasons reported to Observer.Message.
const (
	ResultAccepted = "accepted"
	ResultRejected = "rejected" // we refused it: 4xx/5xx after the data
	ResultAborted  = "aborted"  // the client did not finish the transfer

	ReasonTooLarge     = "too_large"     // 552 5.3.4
	ReasonBareNewline  = "bare_newline"  // 550 5.5.2
	ReasonLineTooLong  = "line_too_long" // 550 5.6.0
	ReasonStorage      = "storage"       // 451 4.3.0: the Acceptor failed
	ReasonRefused      = "refused"       // the Acceptor chose the reply (Replier)
	ReasonTimeout      = "timeout"       // data timeout
	ReasonDisconnected = "disconnected"  // connection lost mid-transfer
	ReasonReset        = "reset"         // RSET during BDAT
	ReasonQuit         = "quit"          // QUIT during BDAT
	ReasonProtocol     = "protocol"      // a bad command during BDAT
)

// Session refusal reasons reported to Observer.SessionRefused.
const (
	RefusedOverCap      = "over_cap"
	RefusedShuttingDown = "shutting_down"
	RefusedUntrusted    = "untrusted" // not from a trusted proxy while PROXY protocol is on
)

// nopObserver is the default Observer.
type nopObserver struct{}

func (nopObserver) SessionStarted()               {}
func (nopObserver) SessionEnded()                 {}
func (nopObserver) SessionRefused(string)         {}
func (nopObserver) Command(string, int)           {}
func (nopObserver) Message(string, string, int64) {}

// cmdState tracks the command whose reply is due, for Observer.Command.
type cmdState struct {
	verb    string
	pending bool
}

// startCommand notes that a command line was read; its reply is due.
func (s *session) startCommand(verb string) {
	s.obsCmd = cmdState{verb: verb, pending: true}
}

// observeReply reports the reply to the pending command, if any. 3xx
// replies are intermediate (354 after DATA) and wait for the final one.
func (s *session) observeReply(code int) {
	if !s.obsCmd.pending || code >= 300 && code < 400 {
		return
	}
	s.obsCmd.pending = false
	s.srv.cfg.Observer.Command(s.obsCmd.verb, code)
}

// observeMessage reports the outcome of one transfer, from what deliver
// saw: the transfer's abort and policy errors, the Acceptor's error and
// the reply code.
func (s *session) observeMessage(aborted, violated, accErr error, code int, size int64) {
	result, reason := messageOutcome(aborted, violated, accErr, code)
	s.srv.cfg.Observer.Message(result, reason, size)
}

func messageOutcome(aborted, violated, accErr error, code int) (result, reason string) {
	switch {
	case errors.Is(aborted, errBDATReset):
		return ResultAborted, ReasonReset
	case errors.Is(aborted, errBDATQuit):
		return ResultAborted, ReasonQuit
	case errors.Is(aborted, errBDATBad):
		return ResultAborted, ReasonProtocol
	case aborted != nil && ioTimeout(aborted):
		return ResultAborted, ReasonTimeout
	case aborted != nil:
		return ResultAborted, ReasonDisconnected
	case violated != nil:
		return ResultRejected, violationReason(violated)
	case accErr != nil:
		if rp := Replier(nil); errors.As(accErr, &rp) {
			return ResultRejected, ReasonRefused
		}
		return ResultRejected, violationReason(accErr)
	case code/100 != 2:
		return ResultRejected, ReasonStorage
	}
	return ResultAccepted, ""
}

func violationReason(err error) string {
	switch {
	case errors.Is(err, ErrMessageTooLarge):
		return ReasonTooLarge
	case errors.Is(err, ErrBareNewline):
		return ReasonBareNewline
	case errors.Is(err, ErrLineTooLong):
		return ReasonLineTooLong
	}
	return ReasonStorage // answered 451 4.3.0
}
