package metrics

import (
	"slices"

	"github.com/mailhook/mailhook/inbound"
)

// Verbs counted by name; any other verb is "other".
const (
	verbEHLO = iota
	verbHELO
	verbMAIL
	verbRCPT
	verbDATA
	verbBDAT
	verbRSET
	verbNOOP
	verbQUIT
	verbVRFY
	verbHELP
	verbEXPN
	verbSTARTTLS
	verbOther
	numVerbs
)

var verbNames = [numVerbs]string{
	"EHLO", "HELO", "MAIL", "RCPT", "DATA", "BDAT", "RSET", "NOOP", "QUIT",
	"VRFY", "HELP", "EXPN", "STARTTLS", "other",
}

// verbIndex maps a verb to its row without allocating.
func verbIndex(verb string) int {
	switch verb {
	case "EHLO":
		return verbEHLO
	case "HELO":
		return verbHELO
	case "MAIL":
		return verbMAIL
	case "RCPT":
		return verbRCPT
	case "DATA":
		return verbDATA
	case "BDAT":
		return verbBDAT
	case "RSET":
		return verbRSET
	case "NOOP":
		return verbNOOP
	case "QUIT":
		return verbQUIT
	case "VRFY":
		return verbVRFY
	case "HELP":
		return verbHELP
	case "EXPN":
		return verbEXPN
	case "STARTTLS":
		return verbSTARTTLS
	}
	return verbOther
}

// Final reply classes (a 3xx is never final: inbound reports DATA's 354
// only through the reply that follows the data).
const (
	class2xx = iota
	class4xx
	class5xx
	numReplyClasses
)

var replyClassNames = [numReplyClasses]string{"2xx", "4xx", "5xx"}

// Message reasons, for series that exist from the start.
var (
	rejectReasons = []string{
		inbound.ReasonTooLarge, inbound.ReasonBareNewline, inbound.ReasonLineTooLong,
		inbound.ReasonStorage, inbound.ReasonRefused,
	}
	abortReasons = []string{
		inbound.ReasonTimeout, inbound.ReasonDisconnected, inbound.ReasonReset,
		inbound.ReasonQuit, inbound.ReasonProtocol,
	}
)

// SMTPObserver returns the inbound.Observer that feeds the mailhook_smtp_*
// metrics, for inbound.Config.Observer.
func (m *Metrics) SMTPObserver() inbound.Observer { return smtpObserver{m} }

type smtpObserver struct{ m *Metrics }

func (o smtpObserver) SessionStarted() {
	o.m.sessionsActive.Inc()
	o.m.sessionsAccepted.Inc()
}

func (o smtpObserver) SessionEnded() { o.m.sessionsActive.Dec() }

func (o smtpObserver) SessionRefused(reason string) {
	switch reason {
	case inbound.RefusedOverCap, inbound.RefusedShuttingDown, inbound.RefusedUntrusted:
	default:
		reason = "other"
	}
	o.m.sessionsTotal.WithLabelValues(reason).Inc()
}

// Command counts without allocating: the counters are resolved in New.
func (o smtpObserver) Command(verb string, code int) {
	var c int
	switch code / 100 {
	case 2:
		c = class2xx
	case 4:
		c = class4xx
	case 5:
		c = class5xx
	default:
		return // not a final reply; inbound never reports one
	}
	o.m.commands[verbIndex(verb)][c].Inc()
}

func (o smtpObserver) Message(result, reason string, size int64) {
	if size > 0 {
		o.m.receivedBytes.Add(float64(size))
	}
	if result == inbound.ResultAccepted {
		o.m.messagesAccepted.Inc()
		o.m.messageSize.Observe(float64(size))
		return
	}
	known := rejectReasons
	if result == inbound.ResultAborted {
		known = abortReasons
	} else {
		result = inbound.ResultRejected
	}
	if !slices.Contains(known, reason) {
		reason = "other"
	}
	o.m.messagesTotal.WithLabelValues(result, reason).Inc()
}
