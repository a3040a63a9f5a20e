package inbound

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/mailhook/mailhook/event"
)

var (
	errKicked    = errors.New("inbound: session closed by shutdown")
	errLineFlood = errors.New("inbound: command line far too long")
	errBDATReset = errors.New("RSET during BDAT transfer")
	errBDATQuit  = errors.New("QUIT during BDAT transfer")
	errBDATBad   = errors.New("BDAT transfer failed")
)

// session is one SMTP connection: a plain state machine driven by one
// goroutine (RFC 5321 §4.1.4 fixes the command order).
type session struct {
	srv        *Server
	rawConn    net.Conn // the accepted connection; never changes
	conn       net.Conn // rawConn, or the TLS connection over it
	ip         netip.Addr
	remoteAddr string
	log        *slog.Logger
	r          *bufio.Reader
	w          *bufio.Writer
	small      *bufio.Reader // the command buffer, while r is a pooled data buffer
	pending    []byte        // input carried over between buffers, read first (buffers.go)
	deadline   time.Time     // absolute end of the session (real clock)
	timeout    time.Duration // per-read timeout now in force
	closing    bool          // the next write is the last one
	drainClose bool          // the client may still be sending: read on a moment before closing

	helo  string
	esmtp bool
	tls   *event.TLS
	tx    *transaction
	bad   int // failed commands in a row
	junk  int // commands that move no mail (NOOP, RSET, VRFY, HELP, EHLO, HELO) since the last message taken
	// refused counts the MAIL and RCPT commands refused (but with 452)
	// or repeated since the last message taken (maxRefusedCommands).
	refused int
	// movedNothing marks the MAIL or RCPT being handled as one that
	// counts toward refused: answered 4xx or 5xx (but 452, the
	// recipient limit's flow control), or a recipient given again.
	movedNothing bool
	// deferred: the last MAIL was refused for want of room (452 4.3.1).
	// The 503 its pipelined RCPT, DATA or BDAT get until the next MAIL,
	// RSET, EHLO or HELO is no mistake of the client's (RFC 2920 lets it
	// send them before the reply), so they do not count toward
	// MaxBadCommands; they still count as commands that move no mail.
	deferred bool

	obsCmd cmdState // the command awaiting its reply, for Config.Observer

	// noTx mirrors tx == nil for Shutdown, which must not interrupt a
	// transaction; kicked is set by Shutdown when it interrupts the wait
	// for a command.
	noTx   atomic.Bool
	kicked atomic.Bool
	// idleSince is when the session began waiting for a command (Unix ns),
	// 0 while it is busy; evicted marks a session kicked to make room at
	// the session cap (Server.evictIdle).
	idleSince atomic.Int64
	evicted   atomic.Bool

	line [maxMailLine]byte
}

// transaction is the state between MAIL and the end of the data.
type transaction struct {
	from     string
	smtputf8 bool
	body     string
	rcpts    []string
	seen     map[string]struct{}
}

func newSession(srv *Server, conn net.Conn, ip netip.Addr) *session {
	s := &session{
		srv:        srv,
		rawConn:    conn,
		conn:       conn,
		ip:         ip,
		remoteAddr: conn.RemoteAddr().String(),
		deadline:   time.Now().Add(srv.cfg.SessionTimeout),
		timeout:    srv.cfg.CommandTimeout,
	}
	s.log = srv.log.With("remote_ip", ip.String())
	s.noTx.Store(true)
	s.r = bufio.NewReaderSize(sessionReader{s}, cmdReadBufferSize)
	s.w = bufio.NewWriterSize(sessionWriter{s}, writeBufferSize)
	return s
}

// sessionReader gives every read a deadline and flushes pending replies
// before the session may block (RFC 2920 §3.2: replies to pipelined
// commands may be batched, but never held while waiting for the client).
type sessionReader struct{ s *session }

func (r sessionReader) Read(p []byte) (int, error) {
	s := r.s
	if len(s.pending) > 0 {
		return s.readPending(p), nil
	}
	if s.w.Buffered() > 0 {
		if err := s.w.Flush(); err != nil {
			return 0, err
		}
	}
	if err := s.conn.SetReadDeadline(s.readDeadline()); err != nil {
		return 0, err
	}
	if s.kicked.Load() && s.noTx.Load() {
		return 0, errKicked
	}
	return s.conn.Read(p)
}

type sessionWriter struct{ s *session }

func (w sessionWriter) Write(p []byte) (int, error) {
	d := time.Now().Add(w.s.srv.cfg.CommandTimeout)
	if w.s.closing {
		d = time.Now().Add(greetingWriteTimeout)
	} else if d.After(w.s.deadline) {
		d = w.s.deadline
	}
	if err := w.s.conn.SetWriteDeadline(d); err != nil {
		return 0, err
	}
	return w.s.conn.Write(p)
}

func (s *session) readDeadline() time.Time {
	d := time.Now().Add(s.timeout)
	if d.After(s.deadline) {
		return s.deadline
	}
	return d
}

// kickIfIdle interrupts a session waiting for a command outside a mail
// transaction (Shutdown's first phase). Called with srv.mu held.
func (s *session) kickIfIdle() {
	if s.noTx.Load() {
		s.kicked.Store(true)
		_ = s.rawConn.SetReadDeadline(time.Unix(1, 0))
	}
}

func (s *session) setTx(tx *transaction) {
	s.tx = tx
	s.noTx.Store(tx == nil)
}

func (s *session) reply(r reply) {
	var buf [256]byte
	_, _ = s.w.Write(r.appendTo(buf[:0]))
	s.observeReply(r.code)
	if r.code >= 400 && r.code != 452 {
		s.movedNothing = true
	}
	switch r.code {
	// Failed commands count toward MaxBadCommands; anything positive
	// resets the count.
	case 503:
		if s.deferred {
			break
		}
		s.bad++
		s.log.Debug("smtp: command refused", "code", r.code, "enhanced", r.enh, "in_a_row", s.bad)
	case 500, 501, 502, 504, 553, 555:
		s.bad++
		s.log.Debug("smtp: command refused", "code", r.code, "enhanced", r.enh, "in_a_row", s.bad)
	default:
		if r.code < 400 {
			s.bad = 0
		}
	}
}

func (s *session) flush() error { return s.w.Flush() }

// closeWith sends r as the last reply, followed by 421 unless r is a 221
// or a 421 itself: RFC 5321 §3.8 has a server close the connection only
// after one of those. It returns false for the caller to hand back to the
// command loop.
func (s *session) closeWith(r reply) bool {
	s.closing = true
	if r.code != 221 && r.code != 421 {
		s.reply(r)
		r = replyClosing
	}
	s.reply(r)
	_ = s.flush()
	return false
}

// closeAfterError is closeWith for a client that broke off the dialogue
// (an endless line, a chunk that cannot be skipped, too many errors): it
// may have sent more already, and closing a socket with input unread
// makes the kernel send a reset, which may destroy our last replies
// before the client reads them. So the session ends with a lingering
// close (closeConn).
func (s *session) closeAfterError(r reply) bool {
	s.drainClose = true
	return s.closeWith(r)
}

// closeConn closes the connection; after closeAfterError, it first shuts
// down our side and reads what the client still sends, for up to
// lingerTime or lingerBytes, so that the replies arrive before any reset.
func (s *session) closeConn() {
	if s.drainClose {
		if cw, ok := s.rawConn.(interface{ CloseWrite() error }); ok && cw.CloseWrite() == nil {
			_ = s.rawConn.SetReadDeadline(time.Now().Add(lingerTime))
			_, _ = io.CopyN(io.Discard, s.rawConn, lingerBytes)
		}
	}
	_ = s.rawConn.Close()
}

// lingerTime and lingerBytes bound closeConn's reading.
const (
	lingerTime  = time.Second
	lingerBytes = 1 << 20
)

// serve runs the session until it ends; it never lets a panic escape.
func (s *session) serve() {
	defer s.srv.removeSession(s)
	defer s.closeConn()
	defer func() {
		if v := recover(); v != nil {
			s.srv.panics.Add(1)
			ref := newRef()
			s.log.Error("smtp: panic in session", "ref", ref, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			s.closeWith(replyInternalError.withText(ref))
		}
	}()
	s.log.Debug("smtp: session start")
	s.srv.cfg.Observer.SessionStarted()
	defer s.srv.cfg.Observer.SessionEnded()
	if s.srv.proxyOn() && !s.proxyHandshake() {
		return
	}
	// RFC 5321 §4.2, RFC 2034 §3: the greeting carries no enhanced code.
	s.reply(reply{220, "", s.srv.cfg.Hostname + " ESMTP mailhook"})
	if s.firstOctet() {
		for s.command() {
		}
	}
	s.log.Debug("smtp: session end")
}

// readLine reads one command line into s.line, without its terminator.
// CRLF ends a line; a bare LF is tolerated as well, as most servers do (RFC
// 5321 §2.3.8 forbids it, but there is no ambiguity in command lines). size
// is the length of the line including its terminator. Nothing past
// len(s.line) is kept; an endless line fails with errLineFlood.
func (s *session) readLine() (line []byte, size int, err error) {
	n := 0
	for {
		frag, err := s.r.ReadSlice('\n')
		if n < len(s.line) {
			n += copy(s.line[n:], frag)
		}
		size += len(frag)
		if err == nil {
			break
		}
		if err == bufio.ErrBufferFull {
			if size > maxDiscardLine {
				return nil, size, errLineFlood
			}
			continue
		}
		if ioTimeout(err) && s.kicked.Load() && !s.noTx.Load() {
			// Shutdown raced with the start of a transaction: not idle
			// after all, so go on waiting.
			s.kicked.Store(false)
			s.evicted.Store(false)
			continue
		}
		return nil, size, err
	}
	if size > len(s.line) {
		return s.line[:0], size, nil
	}
	line = s.line[:n-1]
	if len(line) > 0 && line[len(line)-1] == '\r' {
		line = line[:len(line)-1]
	}
	return line, size, nil
}

// readFailed handles an error reading a command and ends the session.
func (s *session) readFailed(err error) bool {
	switch {
	case s.evicted.Load() && (errors.Is(err, errKicked) || ioTimeout(err)):
		s.log.Debug("smtp: idle session evicted at the session cap")
		return s.closeWith(replyEvicted)
	case errors.Is(err, errKicked), s.kicked.Load() && ioTimeout(err):
		return s.closeWith(replyShuttingDown)
	case errors.Is(err, errLineFlood):
		s.log.Debug("smtp: endless command line, closing")
		return s.closeAfterError(replyLineTooLong)
	case ioTimeout(err):
		s.log.Debug("smtp: command timeout")
		if !time.Now().Before(s.deadline) {
			return s.closeWith(replySessionTooLong)
		}
		return s.closeWith(replyTimeout)
	default:
		if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
			s.log.Debug("smtp: read failed", "err", err)
		}
		return false
	}
}

// nextCommand reads and parses the next command line. ok is false when
// the session must end; when a reply was sent instead of a command, cmd.verb
// is "".
func (s *session) nextCommand() (cmd command, ok bool) {
	s.timeout = s.srv.cfg.CommandTimeout
	s.idleSince.Store(time.Now().UnixNano())
	line, size, err := s.readLine()
	s.idleSince.Store(0)
	if err != nil {
		return cmd, s.readFailed(err)
	}
	cmd, valid := parseCommand(line)
	s.startCommand(cmd.verb)
	switch {
	case size > maxMailLine, size > maxCommandLine && cmd.verb != "MAIL":
		// RFC 5321 §4.5.3.1.4 / §4.5.3.1.10: "500 Line too long".
		s.reply(replyLineTooLong)
		return command{}, true
	case !valid:
		s.reply(replyUnknownCommand)
		return command{}, true
	}
	return cmd, true
}

// command reads and handles one command; false ends the session.
func (s *session) command() bool {
	if s.srv.shuttingDown.Load() && s.tx == nil {
		return s.closeWith(replyShuttingDown)
	}
	cmd, ok := s.nextCommand()
	if !ok {
		return false
	}
	if cmd.verb != "" {
		if !s.dispatch(cmd) {
			return false
		}
	}
	if s.bad >= s.srv.cfg.MaxBadCommands {
		s.log.Debug("smtp: too many bad commands")
		return s.closeAfterError(replyTooManyErrors)
	}
	return true
}

// maxJunkCommands bounds the commands that move no mail (junkCommand) a
// session may send between messages, as Postfix's
// smtpd_junk_command_limit does (also 100): a client looping on NOOP or
// RSET would otherwise hold its connection slot for the whole session
// time limit.
const maxJunkCommands = 100

// maxRefusedCommands bounds the MAIL and RCPT commands refused or
// repeated between messages (as Postfix's smtpd_recipient_overshoot_limit,
// 1000): far above what a sender's mistakes come to, it ends a session
// that loops on them or walks a list of guesses.
const maxRefusedCommands = 1000

// junkCommand reports whether verb moves no mail.
func junkCommand(verb string) bool {
	switch verb {
	case "NOOP", "RSET", "VRFY", "HELP", "EHLO", "HELO":
		return true
	}
	return false
}

func (s *session) dispatch(cmd command) bool {
	if junkCommand(cmd.verb) {
		if s.junk++; s.junk > maxJunkCommands {
			s.log.Debug("smtp: too many commands without mail")
			return s.closeAfterError(replyTooManyJunk)
		}
	}
	switch cmd.verb {
	case "EHLO":
		s.hello(cmd, true)
	case "HELO":
		s.hello(cmd, false)
	case "MAIL", "RCPT":
		s.movedNothing = false
		if cmd.verb == "MAIL" {
			s.deferred = false
			s.mail(cmd)
		} else {
			s.rcpt(cmd)
		}
		// A refused sender or recipient and a repeated recipient move
		// no mail either: without a bound, a client could probe which
		// recipients exist, or loop on them, for the whole session
		// time limit.
		if s.movedNothing {
			if s.refused++; s.refused > maxRefusedCommands {
				s.log.Debug("smtp: too many refused senders or recipients")
				return s.closeAfterError(replyTooManyJunk)
			}
		}
	case "DATA":
		return s.data(cmd)
	case "BDAT":
		return s.bdat(cmd)
	case "RSET":
		if cmd.args != "" {
			s.reply(replyNoArgs)
			break
		}
		// RFC 5321 §4.1.1.5: abort the transaction, keep the greeting.
		s.setTx(nil)
		s.deferred = false
		s.reply(replyOK)
	case "NOOP":
		s.reply(replyOK) // RFC 5321 §4.1.1.9: any argument is ignored
	case "VRFY":
		if cmd.args == "" {
			s.reply(replySyntax)
			break
		}
		// RFC 5321 §3.5.3: 252 when we won't verify but will accept.
		s.reply(replyVRFY)
	case "EXPN":
		s.reply(replyNotImplemented) // RFC 5321 §3.5.2 lets us refuse
	case "AUTH", "ETRN", "ATRN", "TURN":
		// Known extensions we do not offer (RFC 4954, 1985, 2645; TURN
		// is obsolete): 502, not the 500 of a command never heard of,
		// so that a client tells "not here" from "not understood".
		s.reply(replyNotImplemented)
	case "HELP":
		extra := ""
		if s.srv.cfg.TLSConfig != nil {
			extra = " STARTTLS"
		}
		s.reply(replyHelp.withText(extra))
	case "QUIT":
		// RFC 5321 §4.1.1.10
		return s.closeWith(replyQuit)
	case "STARTTLS":
		return s.startTLS(cmd)
	case "GET", "POST", "HEAD", "PUT", "CONNECT", "OPTIONS":
		// An HTTP client (or a cross-protocol attack): stop at once, as
		// Postfix does, rather than answer every header line.
		s.log.Debug("smtp: HTTP request on SMTP port")
		return s.closeWith(replyHTTPRefused)
	default:
		s.reply(replyUnknownCommand)
	}
	return true
}

// hello handles EHLO and HELO (RFC 5321 §4.1.1.1).
func (s *session) hello(cmd command, esmtp bool) {
	s.deferred = false
	if !validHelo(cmd.args) {
		if esmtp {
			s.reply(replyEhloSyntax)
		} else {
			s.reply(replyHeloSyntax)
		}
		return
	}
	// RFC 5321 §4.1.4: EHLO/HELO in a session resets the state as RSET.
	s.setTx(nil)
	s.helo, s.esmtp = cmd.args, esmtp
	host := s.srv.cfg.Hostname
	if !esmtp {
		s.reply(reply{250, "", host}) // RFC 2034 §3: no enhanced code here
		return
	}
	// RFC 5321 §4.1.1.1 multi-line EHLO reply; RFC 2034 §3: the lines
	// carry no enhanced status code.
	lines := []string{
		host,
		"PIPELINING", // RFC 2920
		"SIZE " + strconv.FormatInt(s.srv.cfg.MaxMessageBytes, 10), // RFC 1870
		"8BITMIME",            // RFC 6152
		"ENHANCEDSTATUSCODES", // RFC 2034
		"SMTPUTF8",            // RFC 6531
		"CHUNKING",            // RFC 3030
		"BINARYMIME",          // RFC 3030
	}
	if s.srv.cfg.TLSConfig != nil && s.tls == nil {
		lines = append(lines, "STARTTLS") // RFC 3207 §4.2: not after TLS
	}
	for i, l := range lines {
		sep := "-"
		if i == len(lines)-1 {
			sep = " "
		}
		_, _ = s.w.WriteString("250" + sep + l + "\r\n")
	}
	s.observeReply(250)
	s.bad = 0
}

// validHelo accepts any non-empty argument free of control characters;
// many real clients send something other than a domain, and the value is
// only recorded (and sanitised before it goes into a header).
func validHelo(h string) bool {
	if h == "" {
		return false
	}
	for i := 0; i < len(h); i++ {
		if h[i] < 0x20 || h[i] == 0x7f {
			return false
		}
	}
	return true
}

// mail handles MAIL FROM (RFC 5321 §4.1.1.2).
func (s *session) mail(cmd command) {
	switch {
	case s.helo == "":
		// RFC 5321 §4.1.4: a client MUST issue HELO or EHLO first.
		s.reply(replyNeedHelo)
		return
	case s.srv.cfg.RequireTLS && s.srv.cfg.TLSConfig != nil && s.tls == nil:
		s.reply(replyTLSRequired)
		return
	case s.tx != nil:
		s.reply(replyNestedMail) // RFC 5321 §4.1.4
		return
	}
	p, r, ok := parsePath(cmd.args, reversePath)
	if !ok {
		s.reply(r)
		return
	}
	tx := &transaction{from: p.addr}
	var size int64 // SIZE, 0 when not given
	// Parameters are taken after HELO too: service extensions belong to
	// EHLO sessions (RFC 5321 §2.2), but clients that fell back to HELO
	// still send SIZE and BODY=8BITMIME, and Postfix and Exim take them.
	for _, pa := range p.params {
		switch pa.key {
		case "SIZE": // RFC 1870 §6
			n, err := strconv.ParseUint(pa.value, 10, 63)
			if !pa.hasValue || err != nil && !errors.Is(err, strconv.ErrRange) {
				s.reply(replySyntax)
				return
			}
			if err != nil || int64(n) > s.srv.cfg.MaxMessageBytes {
				s.reply(replyTooLarge) // RFC 1870 §6.1: 552 at MAIL
				return
			}
			size = int64(n)
		case "BODY": // RFC 6152 §2, RFC 3030 §3
			v := strings.ToUpper(pa.value)
			if v != "7BIT" && v != "8BITMIME" && v != "BINARYMIME" {
				s.reply(replySyntax)
				return
			}
			tx.body = v
		case "SMTPUTF8": // RFC 6531 §3.4: no value
			if pa.hasValue {
				s.reply(replySyntax)
				return
			}
			tx.smtputf8 = true
		case "AUTH":
			// RFC 4954 §5: we offer no AUTH, so the parameter is ignored.
		default:
			s.reply(replyUnknownParam) // RFC 5321 §4.1.1.11
			return
		}
	}
	if p.nonASCII && !tx.smtputf8 {
		s.reply(replyNonASCIIAddress) // RFC 6531 §3.5
		return
	}
	if room := s.srv.cfg.Room; room != nil && !room(size) {
		s.reply(replyNoRoom)
		s.movedNothing = true // 452, but no flow control: a client looping on it is bounded
		s.deferred = true
		return
	}
	s.setTx(tx)
	s.reply(replyMailOK)
}

// rcpt handles RCPT TO (RFC 5321 §4.1.1.3).
func (s *session) rcpt(cmd command) {
	switch {
	case s.helo == "":
		s.reply(replyNeedHelo)
		return
	case s.tx == nil:
		s.reply(replyNeedMail) // RFC 5321 §4.1.4
		return
	}
	p, r, ok := parsePath(cmd.args, forwardPath)
	if !ok {
		s.reply(r)
		return
	}
	if len(p.params) > 0 {
		s.reply(replyUnknownParam) // we advertise no RCPT parameters
		return
	}
	if p.nonASCII && !s.tx.smtputf8 {
		s.reply(replyNonASCIIAddress) // RFC 6531 §3.5
		return
	}
	addr := p.addr
	if !strings.Contains(addr, "@") {
		// RFC 5321 §4.1.1.3: "<Postmaster>" means postmaster of this host.
		addr = "postmaster@" + s.srv.cfg.Hostname
	}
	key := dedupKey(addr)
	if _, dup := s.tx.seen[key]; dup {
		s.reply(replyRcptOK) // accepted once, listed once
		s.movedNothing = true
		return
	}
	if len(s.tx.rcpts) >= s.srv.cfg.MaxRecipients {
		s.reply(replyTooManyRecipients) // RFC 5321 §4.5.3.1.10
		return
	}
	if s.srv.pol != nil && !s.srv.pol.Allow(addr) {
		s.log.Debug("smtp: recipient refused", "rcpt_domain", domainOf(addr))
		s.reply(replyUnknownRecipient)
		return
	}
	if s.tx.seen == nil {
		s.tx.seen = make(map[string]struct{})
	}
	s.tx.seen[key] = struct{}{}
	s.tx.rcpts = append(s.tx.rcpts, addr)
	s.reply(replyRcptOK)
}

// readyForData checks the state before DATA or BDAT.
func (s *session) readyForData() (reply, bool) {
	switch {
	case s.helo == "":
		return replyNeedHelo, false
	case s.tx == nil:
		return replyNeedMailData, false
	case len(s.tx.rcpts) == 0:
		// RFC 5321 §3.3: 503 (or 554) when no RCPT was accepted.
		return replyNeedRcpt, false
	}
	return reply{}, true
}

// data handles DATA (RFC 5321 §4.1.1.4, §4.5.2).
func (s *session) data(cmd command) bool {
	if cmd.args != "" {
		s.reply(replyNoArgs)
		return true
	}
	if r, ok := s.readyForData(); !ok {
		s.reply(r)
		return true
	}
	if s.tx.body == "BINARYMIME" {
		s.reply(replyBinaryNeedsBDAT) // RFC 3030 §3
		return true
	}
	s.reply(replyStartData)
	if s.flush() != nil {
		return false
	}
	s.timeout = s.srv.cfg.DataTimeout
	s.growReader()
	d := newDataReader(s.r, s.srv.reject, s.srv.cfg.MaxMessageBytes, s.srv.cfg.MaxLineLength)
	return s.deliver(dataTransfer{d})
}

// bdat handles BDAT (RFC 3030 §2).
func (s *session) bdat(cmd command) bool {
	a, ok := parseBDAT(cmd.args)
	switch {
	case !ok:
		// Without a size the chunk cannot be skipped: its octets would
		// be read as commands. Refuse and close.
		return s.closeAfterError(replyBDATSyntax)
	case a.huge:
		return s.closeAfterError(replyTooLarge) // and too long to skip
	}
	if r, ok := s.readyForData(); !ok {
		// RFC 3030 §2: the chunk is read (and thrown away) regardless.
		if !s.discard(a.size) {
			return false
		}
		if s.tx != nil {
			s.reply(r)
		} else {
			s.reply(replyNoTransaction)
		}
		return true
	}
	if a.size > s.srv.cfg.MaxMessageBytes {
		if !s.discard(a.size) {
			return false
		}
		s.setTx(nil)
		s.reply(replyTooLarge)
		s.srv.cfg.Observer.Message(ResultRejected, ReasonTooLarge, a.size)
		return true
	}
	s.timeout = s.srv.cfg.DataTimeout
	s.growReader()
	b := &bdatReader{s: s, remaining: a.size, chunk: a.size, last: a.last, max: s.srv.cfg.MaxMessageBytes, n: a.size}
	return s.deliver(b)
}

// discard skips n octets of BDAT data.
func (s *session) discard(n int64) bool {
	s.timeout = s.srv.cfg.DataTimeout
	defer func() { s.timeout = s.srv.cfg.CommandTimeout }()
	for n > 0 {
		k, err := s.r.Discard(int(min(n, 1<<30)))
		n -= int64(k)
		if err != nil {
			return s.transferFailed(err)
		}
	}
	return true
}

// transferFailed ends the session after a read error mid-transfer: a
// timeout gets 451 4.4.2 (a 4xx: the client will retry), a broken
// connection nothing.
func (s *session) transferFailed(err error) bool {
	if ioTimeout(err) {
		s.log.Debug("smtp: data timeout")
		return s.closeWith(replyDataTimeout)
	}
	s.log.Debug("smtp: transfer aborted", "err", err)
	return false
}

// transfer is the data of one message, from DATA or BDAT.
type transfer interface {
	io.Reader
	io.WriterTo
	// status reports whether the data ended properly and was all handed
	// out, the first policy violation, and the read error if the transfer
	// broke off.
	status() (ended bool, violated, aborted error)
	// drain reads on to the end of the transfer (DATA) or of the current
	// chunk (BDAT), discarding; nil when the session is back at a command
	// boundary.
	drain() error
	size() int64
}

type dataTransfer struct{ *dataReader }

func (d dataTransfer) status() (bool, error, error) {
	return d.done && len(d.out) == 0 && len(d.extra) == 0, d.violated, d.err
}
func (d dataTransfer) size() int64 { return d.n }

// bodyReader is Message.Body: the Received header, then the transfer. It
// is io.MultiReader without the 32 KiB copy buffer that MultiReader's
// WriteTo allocates per message.
type bodyReader struct {
	hdr []byte
	t   transfer
}

func (b *bodyReader) Read(p []byte) (int, error) {
	if len(b.hdr) > 0 {
		n := copy(p, b.hdr)
		b.hdr = b.hdr[n:]
		return n, nil
	}
	return b.t.Read(p)
}

func (b *bodyReader) WriteTo(w io.Writer) (int64, error) {
	var n int64
	if len(b.hdr) > 0 {
		k, err := w.Write(b.hdr)
		n += int64(k)
		b.hdr = b.hdr[k:]
		if err != nil {
			return n, err
		}
	}
	k, err := b.t.WriteTo(w)
	return n + k, err
}

// deliver hands the message to the Acceptor and replies. It returns false
// when the session must end.
func (s *session) deliver(t transfer) bool {
	defer func() { s.timeout = s.srv.cfg.CommandTimeout }()
	defer s.shrinkReader()
	tx := s.tx
	start := time.Now()
	now := s.srv.cfg.Now()
	id := event.NewID(now)
	env := event.Envelope{
		MailFrom:   tx.from,
		RcptTo:     slices.Clone(tx.rcpts),
		Helo:       s.helo,
		RemoteAddr: s.remoteAddr,
		SMTPUTF8:   tx.smtputf8,
		Body:       tx.body,
	}
	if s.tls != nil {
		t := *s.tls
		env.TLS = &t
	}
	hdr := s.receivedHeader(id, now)
	msg := &Message{ID: id, ReceivedAt: now, Envelope: env, Body: &bodyReader{hdr: hdr, t: t}}

	ctx, cancel := context.WithDeadline(s.srv.baseCtx, s.deadline)
	err := s.srv.acc.Accept(ctx, msg)
	cancel()

	ended, violated, aborted := t.status()
	readAll := ended
	if !ended && aborted == nil {
		aborted = t.drain()
	}
	s.setTx(nil)

	var (
		r     reply
		ref   string
		level = slog.LevelInfo
		cont  = true
	)
	switch {
	case errors.Is(aborted, errBDATReset):
		r = replyOK // the reply to the RSET that aborted the transfer
	case errors.Is(aborted, errBDATQuit):
		r, cont = replyQuit, false
	case errors.Is(aborted, errBDATBad):
		cont = false // a reply was sent already
	case aborted != nil:
		cont = false
		if ioTimeout(aborted) {
			r = replyDataTimeout
		}
	case violated != nil:
		r = violationReply(violated, s.srv.cfg.MaxLineLength)
	case err != nil:
		var rp Replier
		switch {
		case errors.As(err, &rp):
			r = replierReply(rp)
		case errors.Is(err, ErrMessageTooLarge), errors.Is(err, ErrBareNewline), errors.Is(err, ErrLineTooLong):
			r = violationReply(err, s.srv.cfg.MaxLineLength)
		default:
			ref = newRef()
			r = replyStorageFailure.withText(ref)
			level = slog.LevelError
		}
	case !readAll:
		// The Acceptor broke its contract: it returned nil without
		// reading the body to EOF. It may have stored a truncated
		// message, so don't acknowledge it.
		ref = newRef()
		r = replyStorageFailure.withText(ref)
		level = slog.LevelError
		err = errors.New("acceptor returned nil before reading the body to EOF")
	default:
		r = replyQueued.withText(id)
		s.junk, s.refused = 0, 0
	}
	attrs := []slog.Attr{
		slog.String("id", id),
		slog.Int("rcpts", len(env.RcptTo)),
		slog.Int64("size", t.size()),
		slog.Int("code", r.code),
		slog.String("enhanced", r.enh),
		slog.Bool("tls", env.TLS != nil),
		slog.Duration("duration", time.Since(start)),
	}
	if ref != "" {
		attrs = append(attrs, slog.String("ref", ref))
	}
	if err != nil {
		attrs = append(attrs, slog.String("err", err.Error()))
	}
	if aborted != nil {
		attrs = append(attrs, slog.String("aborted", aborted.Error()))
	}
	s.log.LogAttrs(context.Background(), level, "smtp: transaction", attrs...)
	s.observeMessage(aborted, violated, err, r.code, t.size())
	if !cont {
		if r.code != 0 {
			s.closeWith(r)
		}
		return false
	}
	s.reply(r)
	return true
}

func violationReply(err error, maxLine int) reply {
	switch {
	case errors.Is(err, ErrMessageTooLarge):
		return replyTooLarge // RFC 1870 §6.3
	case errors.Is(err, ErrBareNewline):
		return replyBareNewline
	case errors.Is(err, ErrLineTooLong):
		return replyDataLineTooLong.withText(maxLine)
	}
	return replyStorageFailure.withText("-")
}

// replierReply builds the reply chosen by an Acceptor error, keeping it
// well-formed: a 4xx/5xx code, an enhanced code of the same class (RFC 3463
// §2), one line of printable text.
func replierReply(rp Replier) reply {
	code, enh, text := rp.SMTPReply()
	if code < 400 || code > 599 {
		code, enh = 451, "4.3.0"
	}
	class := byte('0' + code/100)
	if !validEnhanced(enh) || enh[0] != class {
		enh = string(class) + ".0.0"
	}
	text = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, text)
	if len(text) > 400 {
		text = text[:400]
	}
	if strings.TrimSpace(text) == "" {
		text = "Message refused"
	}
	return reply{code, enh, text}
}

// validEnhanced checks class "." subject "." detail (RFC 3463 §2).
func validEnhanced(e string) bool {
	parts := strings.Split(e, ".")
	if len(parts) != 3 || len(parts[0]) != 1 || !strings.Contains("245", parts[0]) {
		return false
	}
	for _, p := range parts[1:] {
		if len(p) < 1 || len(p) > 3 {
			return false
		}
		for i := 0; i < len(p); i++ {
			if p[i] < '0' || p[i] > '9' {
				return false
			}
		}
	}
	return true
}

// startTLS handles STARTTLS (RFC 3207).
func (s *session) startTLS(cmd command) bool {
	switch {
	case s.srv.cfg.TLSConfig == nil:
		s.reply(replyNotImplemented)
		return true
	case s.tls != nil:
		s.reply(replyAlreadyTLS)
		return true
	case cmd.args != "":
		s.reply(replyNoArgs) // RFC 3207 §4: "501 Syntax error (no parameters allowed)"
		return true
	case s.tx != nil:
		s.reply(replyTLSInMail)
		return true
	}
	if n := s.r.Buffered(); n > 0 {
		// CVE-2011-0411: whatever the client pipelined after STARTTLS was
		// sent in clear text and must not be run inside the TLS session.
		s.log.Debug("smtp: discarding input pipelined after STARTTLS", "octets", n)
	}
	s.reply(replyStartTLS)
	if s.flush() != nil {
		return false
	}
	s.r.Reset(sessionReader{s})
	s.pending = nil // CVE-2011-0411 too (always empty here: shrinkReader keeps less than a fill)
	tc := tls.Server(s.rawConn, s.srv.cfg.TLSConfig)
	_ = s.rawConn.SetDeadline(s.readDeadline())
	// Waiting for the client's hello is waiting for the client: at the
	// session cap this session may be evicted (its deadline is then
	// past, and the handshake fails), or connections that never say
	// hello would hold every slot for the command timeout.
	s.idleSince.Store(time.Now().UnixNano())
	err := tc.Handshake()
	s.idleSince.Store(0)
	if err != nil {
		s.log.Debug("smtp: TLS handshake failed", "err", err, "evicted", s.evicted.Load())
		return false
	}
	_ = s.rawConn.SetDeadline(time.Time{})
	s.conn = tc
	s.w.Reset(sessionWriter{s})
	st := tc.ConnectionState()
	s.tls = &event.TLS{
		Version:    tls.VersionName(st.Version),
		Cipher:     tls.CipherSuiteName(st.CipherSuite),
		ServerName: st.ServerName,
	}
	// RFC 3207 §4.2: forget everything learnt before TLS; the client
	// must send EHLO again.
	s.helo, s.esmtp = "", false
	s.setTx(nil)
	return true
}

// receivedHeader builds our trace field (RFC 5321 §4.4), folded onto
// lines well under 998 octets (RFC 5322 §2.1.1):
//
//	Received: from <helo> (unknown [<ip>])
//		by <hostname> (mailhook) with <protocol> id <id>
//		for <rcpt>; <date>
//
// No DNS lookup is made, so the TCP-info is the address literal only.
// "for" names the recipient only when there is exactly one, so that one
// copy does not reveal the other recipients.
func (s *session) receivedHeader(id string, now time.Time) []byte {
	b := make([]byte, 0, 256)
	b = append(b, "Received: from "...)
	b = appendSanitized(b, s.helo)
	b = append(b, " (unknown ["...)
	switch {
	case s.ip.Is4():
		b = s.ip.AppendTo(b)
	case s.ip.IsValid():
		b = append(b, "IPv6:"...) // RFC 5321 §4.1.3
		b = s.ip.AppendTo(b)
	default:
		b = append(b, "unknown"...)
	}
	b = append(b, "])\r\n\tby "...)
	b = appendSanitized(b, s.srv.cfg.Hostname)
	b = append(b, " (mailhook) with "...)
	b = append(b, s.protocol()...)
	b = append(b, " id "...)
	b = append(b, id...)
	if len(s.tx.rcpts) == 1 {
		b = append(b, "\r\n\tfor <"...)
		b = append(b, s.tx.rcpts[0]...)
		b = append(b, '>')
	}
	b = append(b, ";\r\n\t"...)
	b = now.AppendFormat(b, time.RFC1123Z) // RFC 5322 §3.3 date-time
	return append(b, "\r\n"...)
}

// protocol is the "with" keyword: RFC 3848 (SMTP, ESMTP, ESMTPS) and RFC
// 6531 §3.7.3 (UTF8SMTP, UTF8SMTPS). We offer no AUTH, so never "…A".
func (s *session) protocol() string {
	switch {
	case !s.esmtp && s.tls == nil:
		return "SMTP"
	case s.tx.smtputf8 && s.tls != nil:
		return "UTF8SMTPS"
	case s.tx.smtputf8:
		return "UTF8SMTP"
	case s.tls != nil:
		return "ESMTPS"
	}
	return "ESMTP"
}

// appendSanitized appends h keeping only characters that cannot change
// the structure of the header (letters, digits, . - _ : [ ]); anything
// else becomes '?'. At most 255 octets.
func appendSanitized(b []byte, h string) []byte {
	if len(h) > maxDomain {
		h = h[:maxDomain]
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if isAlnum(c) || strings.IndexByte(".-_:[]", c) >= 0 {
			b = append(b, c)
		} else {
			b = append(b, '?')
		}
	}
	return b
}
