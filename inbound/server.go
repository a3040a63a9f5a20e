package inbound

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults for zero Config fields.
const (
	DefaultMaxMessageBytes = 25 << 20 // 26214400, as SPEC.md's MAILHOOK_MAX_MESSAGE_BYTES
	DefaultMaxRecipients   = 100      // RFC 5321 §4.5.3.1.8: at least 100
	// RFC 5321 §4.5.3.2.7: the server should wait at least 5 minutes for
	// the next command.
	DefaultCommandTimeout = 5 * time.Minute
	// RFC 5321 §4.5.3.2.5 asks clients to wait 3 minutes per data block;
	// 5 minutes per read is the server-side mirror.
	DefaultDataTimeout    = 5 * time.Minute
	DefaultSessionTimeout = 30 * time.Minute
	DefaultMaxSessions    = 1000
	DefaultMaxSessionsIP  = 20
	DefaultEvictIdleAfter = 10 * time.Second
	DefaultMaxBadCommands = 10

	readBufferSize  = 32 << 10
	writeBufferSize = 1 << 10 // replies are short; pipelined ones are batched per KiB
	// greetingWriteTimeout bounds the 421 written to refused connections
	// and the last reply before closing.
	greetingWriteTimeout = 2 * time.Second
	// maxDiscardLine bounds how much of an over-long command line is read
	// and thrown away before the connection is closed.
	maxDiscardLine = 64 << 10
)

// Config configures a Server. The zero value of each field picks a default.
type Config struct {
	// Hostname is used in the banner, the EHLO reply and the Received
	// header. Default: os.Hostname().
	Hostname string
	// MaxMessageBytes caps the message data (after dot-unstuffing, without
	// our Received header). Advertised as SIZE (RFC 1870); larger messages
	// get 552 5.3.4. Default 25 MiB.
	MaxMessageBytes int64
	// MaxRecipients caps RCPT per transaction; more get 452 4.5.3.
	// Default 100.
	MaxRecipients int
	// BareNewline is "normalize" (default) or "reject"; see
	// BareNewlineNormalize and BareNewlineReject.
	BareNewline string
	// MaxLineLength, when > 0, refuses (550 5.6.0) a message with a text
	// line longer than this many octets including CRLF (RFC 5321
	// §4.5.3.1.6 says 1000). Default 0: no line limit, long lines only
	// count toward MaxMessageBytes — receivers lose nothing by accepting
	// them and real senders do produce them.
	MaxLineLength int
	// CommandTimeout bounds each wait for a command line, DataTimeout each
	// read during DATA/BDAT, SessionTimeout the whole session. Defaults:
	// 5m, 5m, 30m.
	CommandTimeout, DataTimeout, SessionTimeout time.Duration
	// MaxSessions and MaxSessionsPerIP cap concurrent sessions (defaults
	// 1000 and 20). A connection over a cap gets "421 4.7.0" at once and
	// is closed.
	MaxSessions, MaxSessionsPerIP int
	// SessionLimitExempt lists client networks MaxSessionsPerIP does not
	// apply to (Postfix exempts $mynetworks the same way), e.g. loopback
	// for local relays and load generators. Default: none.
	SessionLimitExempt []netip.Prefix
	// EvictIdleAfter: when MaxSessions is reached, a new connection takes
	// the slot of the session that has waited longest for a command outside
	// a transaction, if it has waited at least this long; that session gets
	// 421 4.7.0. A flood of idle connections cannot lock legitimate clients
	// out for longer than this. Default 10s; negative disables eviction.
	EvictIdleAfter time.Duration
	// MaxBadCommands: after this many failed commands in a row the session
	// gets 421 4.7.0 and is closed. Default 10.
	MaxBadCommands int
	// TLSConfig, when non-nil, enables STARTTLS (RFC 3207).
	TLSConfig *tls.Config
	// RequireTLS makes MAIL fail with 530 5.7.0 until STARTTLS is done
	// (RFC 3207 §4). Only meaningful with TLSConfig.
	RequireTLS bool
	// ProxyProtocol lists the networks of trusted proxies that send a
	// PROXY protocol (v1 or v2) header first; empty means off. When set,
	// connections from these networks must send the header and all other
	// connections are refused (see proxy.go).
	ProxyProtocol []netip.Prefix
	// ProxyHeaderTimeout bounds the wait for the whole PROXY header.
	// Default 5s.
	ProxyHeaderTimeout time.Duration
	// Logger receives the logs; default slog.Default().
	Logger *slog.Logger
	// Now is the clock for ids, ReceivedAt and the Received date; default
	// time.Now. Network deadlines always use the real clock.
	Now func() time.Time
	// Observer is told about sessions, commands and messages (metrics);
	// nil means nobody.
	Observer Observer
	// Room, when set, is asked at MAIL whether the next stage has room for
	// a message of size bytes (the SIZE parameter; 0 without one). False
	// gets 452 4.3.1 (RFC 5321 §4.2.2, RFC 1870 §6.1, RFC 3463 X.3.1): the
	// client keeps the message and retries later, instead of sending all
	// of it to hear 451 at the end.
	Room func(size int64) bool
}

func (c Config) withDefaults() Config {
	if c.Hostname == "" {
		c.Hostname, _ = os.Hostname()
		if c.Hostname == "" {
			c.Hostname = "localhost"
		}
	}
	if c.MaxMessageBytes <= 0 {
		c.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if c.MaxRecipients <= 0 {
		c.MaxRecipients = DefaultMaxRecipients
	}
	if c.BareNewline == "" {
		c.BareNewline = BareNewlineNormalize
	}
	if c.CommandTimeout <= 0 {
		c.CommandTimeout = DefaultCommandTimeout
	}
	if c.DataTimeout <= 0 {
		c.DataTimeout = DefaultDataTimeout
	}
	if c.SessionTimeout <= 0 {
		c.SessionTimeout = DefaultSessionTimeout
	}
	if c.MaxSessions <= 0 {
		c.MaxSessions = DefaultMaxSessions
	}
	if c.EvictIdleAfter == 0 {
		c.EvictIdleAfter = DefaultEvictIdleAfter
	}
	if c.MaxSessionsPerIP <= 0 {
		c.MaxSessionsPerIP = DefaultMaxSessionsIP
	}
	if c.MaxBadCommands <= 0 {
		c.MaxBadCommands = DefaultMaxBadCommands
	}
	if c.ProxyHeaderTimeout <= 0 {
		c.ProxyHeaderTimeout = DefaultProxyHeaderTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Observer == nil {
		c.Observer = nopObserver{}
	}
	return c
}

// Server is the SMTP acceptor: it accepts connections and runs one session
// per connection.
type Server struct {
	cfg    Config
	acc    Acceptor
	pol    RecipientPolicy
	log    *slog.Logger
	reject bool // BareNewline == "reject"

	baseCtx    context.Context // cancelled at force-close
	cancelBase context.CancelFunc

	shuttingDown atomic.Bool
	panics       atomic.Int64

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	sessions  map[*session]struct{}
	perIP     map[netip.Addr]int
	closed    bool
	done      chan struct{} // closed when the last session ends, during shutdown
}

// NewServer returns a server handing messages to acc and asking pol about
// recipients (a nil pol accepts every recipient). A BareNewline other than
// "normalize" or "reject" is treated as "normalize" (config validation is
// the caller's job).
func NewServer(cfg Config, acc Acceptor, pol RecipientPolicy) *Server {
	cfg = cfg.withDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	return &Server{
		cfg:        cfg,
		acc:        acc,
		pol:        pol,
		log:        cfg.Logger,
		reject:     strings.EqualFold(cfg.BareNewline, BareNewlineReject),
		baseCtx:    ctx,
		cancelBase: cancel,
		listeners:  make(map[net.Listener]struct{}),
		sessions:   make(map[*session]struct{}),
		perIP:      make(map[netip.Addr]int),
	}
}

// PanicsRecovered reports how many session panics were recovered. Tests
// use it to fail when one was.
func (s *Server) PanicsRecovered() int64 { return s.panics.Load() }

// Serve accepts connections on ln until Shutdown and returns
// ErrServerClosed then (or the listener's error). During Shutdown's grace
// period ln stays open and new connections are answered "421 4.3.2" and
// closed, so clients see a clean temporary failure rather than a refused
// connection; Shutdown closes ln when it is done.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		_ = ln.Close()
		return ErrServerClosed
	}
	s.listeners[ln] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, ln)
		s.mu.Unlock()
	}()

	var backoff time.Duration
	for {
		conn, err := ln.Accept()
		if err != nil {
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if closed {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, os.ErrDeadlineExceeded) || isTemporary(err) {
				// Like net/http: back off on EMFILE and friends.
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.log.Warn("smtp: accept failed, retrying", "err", err, "retry_in", backoff)
				time.Sleep(backoff)
				continue
			}
			return err
		}
		backoff = 0
		s.admit(conn)
	}
}

func isTemporary(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

// admit enforces the connection caps before any session goroutine exists.
func (s *Server) admit(conn net.Conn) {
	ip := remoteIP(conn)
	if s.refuseUntrusted(conn, ip) {
		return
	}
	s.mu.Lock()
	// Checked under mu so that Shutdown, which sets the flag and then
	// counts sessions under mu, never misses one.
	if s.shuttingDown.Load() {
		s.mu.Unlock()
		refuse(conn, replyShuttingDown)
		s.cfg.Observer.SessionRefused(RefusedShuttingDown)
		return
	}
	// Behind a PROXY protocol proxy the per-IP cap waits for the client's
	// address (proxyHandshake).
	overTotal := len(s.sessions) >= s.cfg.MaxSessions && !s.evictIdle()
	if overTotal || !s.proxyOn() && s.overIPCap(ip) {
		total, fromIP := len(s.sessions), s.perIP[ip]
		s.mu.Unlock()
		s.log.Debug("smtp: connection refused: over cap", "remote_ip", ip.String(), "sessions", total, "sessions_ip", fromIP)
		refuse(conn, replyTooManySessions)
		s.cfg.Observer.SessionRefused(RefusedOverCap)
		return
	}
	sess := newSession(s, conn, ip)
	s.sessions[sess] = struct{}{}
	s.perIP[ip]++
	s.mu.Unlock()
	go sess.serve()
}

// overIPCap reports whether ip already has MaxSessionsPerIP sessions and
// is not exempt. Called with mu held.
func (s *Server) overIPCap(ip netip.Addr) bool {
	for _, p := range s.cfg.SessionLimitExempt {
		if p.Contains(ip) {
			return false
		}
	}
	return s.perIP[ip] >= s.cfg.MaxSessionsPerIP
}

// evictIdle frees a slot at the session cap: the session that has waited
// longest for a command outside a transaction, at least EvictIdleAfter, is
// told 421 4.7.0 and closed. It reports whether one was chosen; the new
// connection then takes its place (the count is over the cap until the
// evicted session has gone, a moment later). Called with mu held.
func (s *Server) evictIdle() bool {
	if s.cfg.EvictIdleAfter < 0 {
		return false
	}
	limit := time.Now().Add(-s.cfg.EvictIdleAfter).UnixNano()
	var oldest *session
	var since int64
	for sess := range s.sessions {
		t := sess.idleSince.Load()
		if t == 0 || t > limit || !sess.noTx.Load() || sess.evicted.Load() {
			continue
		}
		if oldest == nil || t < since {
			oldest, since = sess, t
		}
	}
	if oldest == nil {
		return false
	}
	oldest.evicted.Store(true)
	oldest.kickIfIdle()
	s.log.Debug("smtp: evicted an idle session to make room", "remote_ip", oldest.ip.String(),
		"idle", time.Duration(time.Now().UnixNano()-since).Round(time.Millisecond))
	return true
}

// refuse writes r with a short deadline and closes, reading nothing.
func refuse(conn net.Conn, r reply) {
	_ = conn.SetWriteDeadline(time.Now().Add(greetingWriteTimeout))
	_, _ = conn.Write(r.appendTo(nil))
	_ = conn.Close()
}

func (s *Server) removeSession(sess *session) {
	s.mu.Lock()
	delete(s.sessions, sess)
	if s.perIP[sess.ip]--; s.perIP[sess.ip] <= 0 {
		delete(s.perIP, sess.ip)
	}
	if len(s.sessions) == 0 && s.done != nil {
		close(s.done)
		s.done = nil
	}
	s.mu.Unlock()
}

// Shutdown stops the server in two phases. First it stops taking new
// sessions (new connections get "421 4.3.2" while it runs), lets sessions
// in a mail transaction finish, and sends "421 4.3.2" to idle sessions and
// closes them as they become idle. When ctx is done before all sessions have
// ended, it cancels the contexts given to Accept, closes every remaining
// connection and returns ctx.Err(). It closes the listeners either way.
func (s *Server) Shutdown(ctx context.Context) error {
	s.shuttingDown.Store(true)
	s.mu.Lock()
	done := make(chan struct{})
	if len(s.sessions) == 0 {
		close(done)
	} else {
		s.done = done
	}
	s.mu.Unlock()

	var err error
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
wait:
	for {
		s.kickIdle()
		select {
		case <-done:
			break wait
		case <-ctx.Done():
			err = ctx.Err()
			break wait
		case <-tick.C:
		}
	}

	s.mu.Lock()
	s.closed = true
	for ln := range s.listeners {
		_ = ln.Close()
	}
	var rest []*session
	for sess := range s.sessions {
		rest = append(rest, sess)
	}
	s.mu.Unlock()
	s.cancelBase()
	for _, sess := range rest {
		_ = sess.conn.Close()
	}
	if len(rest) > 0 {
		s.log.Warn("smtp: shutdown grace period over, closed sessions", "sessions", len(rest))
	}
	return err
}

// kickIdle wakes sessions blocked reading a command outside a transaction,
// so they answer 421 4.3.2 and close.
func (s *Server) kickIdle() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for sess := range s.sessions {
		sess.kickIfIdle()
	}
}

// remoteIP returns the peer's IP (unmapped), or the zero Addr.
func remoteIP(c net.Conn) netip.Addr {
	if ta, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		return ta.AddrPort().Addr().Unmap()
	}
	if ap, err := netip.ParseAddrPort(c.RemoteAddr().String()); err == nil {
		return ap.Addr().Unmap()
	}
	return netip.Addr{}
}

// newRef returns a short reference id tying a reply to a log line.
func newRef() string {
	var b [5]byte
	_, _ = rand.Read(b[:])
	const alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
	v := uint64(b[0])<<32 | uint64(b[1])<<24 | uint64(b[2])<<16 | uint64(b[3])<<8 | uint64(b[4])
	var out [8]byte
	for i := 7; i >= 0; i-- {
		out[i] = alphabet[v&31]
		v >>= 5
	}
	return string(out[:])
}

// ioTimeout reports whether err is a deadline expiry.
func ioTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
}
