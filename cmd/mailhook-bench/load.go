package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// loadConfig is what the SMTP side of a run needs.
type loadConfig struct {
	Target      string        // host:port
	Concurrency int           // sessions at once
	Count       uint64        // messages to send; 0 = no count limit
	Duration    time.Duration // stop starting transactions after this; 0 = no time limit
	PerConn     int           // transactions per connection before QUIT
	Pipelining  bool          // pipeline MAIL/RCPT/DATA when advertised (RFC 2920)
	From, Rcpt  string
	Helo        string
	Timeout     time.Duration // per SMTP round trip, and per MiB of body written
	Rate        float64       // messages/s across all sessions, open loop (see pacer); 0 = as fast as the sessions go
}

// loadStats are the SMTP side's counters.
type loadStats struct {
	sent       atomic.Int64 // transactions started (MAIL sent)
	acked      atomic.Int64 // 2xx after DATA
	tempFailed atomic.Int64 // 4xx at any step of a transaction
	permFailed atomic.Int64 // 5xx at any step of a transaction
	connErrors atomic.Int64 // dial, greeting, EHLO or I/O failures
	bytesAcked atomic.Int64 // message bytes of acknowledged transactions
	bytesSent  atomic.Int64 // bytes written to the SMTP connections
	latency    histogram    // MAIL sent (with -rate: the message's due time) → 250 after DATA read
	service    histogram    // MAIL sent → 250 after DATA read, always
	lag        histogram    // with -rate: due time → MAIL sent
	noPipe     atomic.Bool  // -pipelining asked for but not advertised

	mu      sync.Mutex
	samples map[string]string // class → first reply or error seen
}

// sample keeps the first reply or error text of each class, for the report.
func (s *loadStats) sample(class, text string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.samples == nil {
		s.samples = map[string]string{}
	}
	if _, ok := s.samples[class]; !ok {
		s.samples[class] = text
	}
}

// generator runs the SMTP sessions of one run.
type generator struct {
	cfg      loadConfig
	tmpl     *template
	run      string
	trk      *tracker
	st       *loadStats
	deadline time.Time // zero: none
	pace     *pacer    // nil: no -rate
}

// runLoad sends until the count or the duration is reached or ctx ends, and
// returns when every session has finished.
func runLoad(ctx context.Context, cfg loadConfig, tmpl *template, run string, trk *tracker, st *loadStats) {
	g := &generator{cfg: cfg, tmpl: tmpl, run: run, trk: trk, st: st}
	now := time.Now()
	if cfg.Duration > 0 {
		g.deadline = now.Add(cfg.Duration)
	}
	if cfg.Rate > 0 {
		g.pace = &pacer{start: now, rate: cfg.Rate}
	}
	var wg sync.WaitGroup
	for range cfg.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			g.worker(ctx)
		}()
	}
	wg.Wait()
}

// more reports whether new transactions may still start.
func (g *generator) more(ctx context.Context) bool {
	if ctx.Err() != nil {
		return false
	}
	return g.deadline.IsZero() || time.Now().Before(g.deadline)
}

// worker runs sessions one after another, reconnecting after PerConn
// transactions or a failure, with a bounded backoff after failures.
func (g *generator) worker(ctx context.Context) {
	w := newSession(g)
	backoff := time.Duration(0)
	for g.more(ctx) {
		if backoff > 0 {
			if !sleepCtx(ctx, backoff, g.deadline) {
				return
			}
		}
		done, err := w.session(ctx)
		if done {
			return
		}
		if err != nil {
			if !errors.Is(err, errServerClosed) && ctx.Err() == nil {
				g.st.connErrors.Add(1)
				g.st.sample("conn_error", err.Error())
			}
			backoff = min(max(2*backoff, 10*time.Millisecond), time.Second)
		} else {
			backoff = 0
		}
	}
}

// sleepCtx sleeps d, or less if ctx ends or the deadline comes first; it
// reports whether there is still time to work.
func sleepCtx(ctx context.Context, d time.Duration, deadline time.Time) bool {
	if !deadline.IsZero() {
		if left := time.Until(deadline); left < d {
			d = left
		}
	}
	if d <= 0 {
		return false
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return deadline.IsZero() || time.Now().Before(deadline)
	}
}

// session is one worker's reusable state: its private copy of the message
// head (patched per message), buffers and pre-built commands.
type session struct {
	g    *generator
	ctx  context.Context // the run's; once it ends, deadlines lie in the past
	head []byte
	bufs net.Buffers
	vec  [2][]byte
	conn net.Conn
	r    *bufio.Reader
	line []byte // text of the last reply line (aliases r's buffer)

	// Commands of the current connection (SIZE depends on the EHLO reply).
	cmds  [3][]byte // MAIL, RCPT, DATA
	group []byte    // the three, for one pipelined write
}

func newSession(g *generator) *session {
	return &session{g: g, head: bytes.Clone(g.tmpl.head)}
}

var (
	errReply        = errors.New("unexpected reply")
	errServerClosed = errors.New("server closed the session (421)")
)

// session runs one SMTP connection. done means the run is over for this
// worker (count or time reached); err is a connection-level failure.
func (s *session) session(ctx context.Context) (done bool, err error) {
	cfg := &s.g.cfg
	d := net.Dialer{Timeout: cfg.Timeout}
	conn, err := d.DialContext(ctx, "tcp", cfg.Target)
	if err != nil {
		return false, err
	}
	s.conn, s.ctx = conn, ctx
	defer conn.Close()
	// A deadline in the past is how a cancelled run interrupts blocked I/O.
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if s.r == nil {
		s.r = bufio.NewReaderSize(conn, 8<<10)
	} else {
		s.r.Reset(conn)
	}

	s.deadline(cfg.Timeout)
	if code, err := s.reply(); err != nil {
		return false, fmt.Errorf("greeting: %w", err)
	} else if code != 220 {
		return false, fmt.Errorf("greeting: %s", s.line)
	}
	ext, err := s.ehlo()
	if err != nil {
		return false, err
	}
	pipelining := cfg.Pipelining && ext.pipelining
	if cfg.Pipelining && !ext.pipelining {
		s.g.st.noPipe.Store(true)
	}
	mail := "MAIL FROM:<" + cfg.From + ">"
	if ext.size {
		mail += " SIZE=" + strconv.Itoa(s.g.tmpl.size) // RFC 1870
	}
	s.cmds = [3][]byte{[]byte(mail + "\r\n"), []byte("RCPT TO:<" + cfg.Rcpt + ">\r\n"), []byte("DATA\r\n")}
	s.group = bytes.Join(s.cmds[:], nil)

	for range max(cfg.PerConn, 1) {
		if !s.g.more(ctx) {
			s.quit()
			return true, nil
		}
		seq, ok := s.g.trk.Next(cfg.Count)
		if !ok {
			s.quit()
			return true, nil
		}
		var due time.Time
		if p := s.g.pace; p != nil {
			due = p.due(seq)
			if !s.g.deadline.IsZero() && !due.Before(s.g.deadline) {
				s.quit()
				return true, nil
			}
			if !waitUntil(ctx, due) {
				return true, nil
			}
		}
		for _, off := range s.g.tmpl.offsets {
			putToken(s.head[off:], s.g.run, seq)
		}
		keep, err := s.transaction(seq, pipelining, due)
		if err != nil {
			return false, err
		}
		if !keep {
			return false, errServerClosed
		}
	}
	s.quit()
	return false, nil
}

// transaction sends one message. keep is false if the server ended the
// session; err is an I/O or protocol failure. due is the message's
// scheduled time under -rate (zero without): its latency counts from then.
func (s *session) transaction(seq uint64, pipelining bool, due time.Time) (keep bool, err error) {
	st := s.g.st
	timeout := s.g.cfg.Timeout
	st.sent.Add(1)
	t0 := time.Now()
	from := t0
	if !due.IsZero() {
		from = due
		st.lag.Record(max(t0.Sub(due), 0))
	}
	s.deadline(timeout)
	steps := [3]string{"mail", "rcpt", "data"}
	want := [3]int{2, 2, 3}
	failed, failedAt := 0, ""
	dataOK := false
	if pipelining {
		// RFC 2920 §3.1: MAIL and RCPT may be sent in a group; DATA ends
		// the group, and the content waits for its 354. Every reply of the
		// group must be read, whatever the earlier ones said.
		if err := s.write(s.group); err != nil {
			return false, err
		}
		for i := range 3 {
			code, err := s.reply()
			if err != nil {
				return false, err
			}
			if code/100 != want[i] {
				if failed == 0 {
					failed, failedAt = code, steps[i]
					st.sample(replyClass(failedAt, code), string(s.line))
				}
			} else if i == 2 {
				dataOK = true
			}
		}
	} else {
		for i := range 3 {
			if err := s.write(s.cmds[i]); err != nil {
				return false, err
			}
			code, err := s.reply()
			if err != nil {
				return false, err
			}
			if code/100 != want[i] {
				failed, failedAt = code, steps[i]
				st.sample(replyClass(failedAt, code), string(s.line))
				break
			}
			dataOK = i == 2
		}
	}
	if failed != 0 {
		if dataOK {
			// RFC 2920 §3.1: DATA was accepted although a command before it
			// failed; end the empty message.
			s.deadline(timeout)
			if err := s.write([]byte(".\r\n")); err != nil {
				return false, err
			}
			if _, err := s.reply(); err != nil {
				return false, err
			}
		}
		return s.fail(failed)
	}
	if err := s.body(timeout); err != nil {
		return false, err
	}
	s.deadline(timeout)
	code, err := s.reply()
	if err != nil {
		return false, err
	}
	t1 := time.Now()
	if code/100 == 2 {
		st.acked.Add(1)
		st.bytesAcked.Add(int64(s.g.tmpl.size))
		st.latency.Record(t1.Sub(from))
		st.service.Record(t1.Sub(t0))
		s.g.trk.Ack(seq, t1)
		return true, nil
	}
	st.sample(replyClass("end_of_data", code), string(s.line))
	return s.countFail(code), nil
}

func replyClass(step string, code int) string {
	return step + "_" + strconv.Itoa(code/100) + "xx"
}

// fail counts a failed transaction and resets the session for the next.
func (s *session) fail(code int) (bool, error) {
	if !s.countFail(code) {
		return false, nil
	}
	s.deadline(s.g.cfg.Timeout)
	if err := s.write([]byte("RSET\r\n")); err != nil {
		return false, err
	}
	if c, err := s.reply(); err != nil {
		return false, err
	} else if c/100 != 2 {
		return false, nil
	}
	return true, nil
}

// countFail counts code and reports whether the session can go on.
func (s *session) countFail(code int) bool {
	if code/100 == 4 {
		s.g.st.tempFailed.Add(1)
	} else {
		s.g.st.permFailed.Add(1)
	}
	return code != 421 // RFC 5321 §3.8: 421 means the server closes the channel
}

// body writes the message: the patched head and the shared tail, in one
// writev for small messages, else in 1 MiB chunks, each with a fresh
// deadline so that -timeout bounds stalls, not the whole transfer.
func (s *session) body(timeout time.Duration) error {
	tail := s.g.tmpl.tail
	const chunk = 1 << 20
	if len(tail) <= chunk {
		s.vec[0], s.vec[1] = s.head, tail
		s.bufs = s.vec[:]
		n, err := s.bufs.WriteTo(s.conn)
		s.g.st.bytesSent.Add(n)
		return err
	}
	if err := s.write(s.head); err != nil {
		return err
	}
	for len(tail) > 0 {
		n := min(chunk, len(tail))
		s.deadline(timeout)
		if err := s.write(tail[:n]); err != nil {
			return err
		}
		tail = tail[n:]
	}
	return nil
}

func (s *session) write(b []byte) error {
	n, err := s.conn.Write(b)
	s.g.st.bytesSent.Add(int64(n))
	return err
}

func (s *session) deadline(d time.Duration) {
	if s.ctx.Err() != nil {
		_ = s.conn.SetDeadline(time.Unix(1, 0))
		return
	}
	_ = s.conn.SetDeadline(time.Now().Add(d))
}

// maxReplyLines bounds a multiline reply.
const maxReplyLines = 100

// reply reads one (possibly multiline) reply and returns its code; s.line
// holds the last line's text until the next read.
func (s *session) reply() (int, error) {
	for range maxReplyLines {
		line, err := s.r.ReadSlice('\n')
		if err != nil {
			if errors.Is(err, bufio.ErrBufferFull) {
				return 0, fmt.Errorf("%w: reply line longer than %d bytes", errReply, s.r.Size())
			}
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return 0, err
		}
		line = bytes.TrimRight(line, "\r\n")
		s.line = line
		if len(line) < 3 {
			return 0, fmt.Errorf("%w: %q", errReply, line)
		}
		code, err := strconv.Atoi(string(line[:3]))
		if err != nil || code < 200 || code > 599 {
			return 0, fmt.Errorf("%w: %q", errReply, line)
		}
		if len(line) == 3 || line[3] == ' ' {
			return code, nil
		}
		if line[3] != '-' {
			return 0, fmt.Errorf("%w: %q", errReply, line)
		}
	}
	return 0, fmt.Errorf("%w: more than %d lines", errReply, maxReplyLines)
}

type extensions struct{ pipelining, size bool }

// ehlo greets and reads the extensions the server advertises (RFC 5321
// §4.1.1.1: one keyword per line after the first).
func (s *session) ehlo() (extensions, error) {
	var ext extensions
	if err := s.write([]byte("EHLO " + s.g.cfg.Helo + "\r\n")); err != nil {
		return ext, fmt.Errorf("EHLO: %w", err)
	}
	for range maxReplyLines {
		line, err := s.r.ReadSlice('\n')
		if err != nil {
			return ext, fmt.Errorf("EHLO: %w", err)
		}
		line = bytes.TrimRight(line, "\r\n")
		s.line = line
		if !bytes.HasPrefix(line, []byte("250")) {
			return ext, fmt.Errorf("EHLO: %q", line)
		}
		if len(line) == 3 {
			return ext, nil
		}
		kw := line[4:]
		if i := bytes.IndexByte(kw, ' '); i >= 0 {
			kw = kw[:i]
		}
		switch {
		case bytes.EqualFold(kw, []byte("PIPELINING")):
			ext.pipelining = true
		case bytes.EqualFold(kw, []byte("SIZE")):
			ext.size = true
		}
		switch line[3] {
		case ' ':
			return ext, nil
		case '-':
		default:
			return ext, fmt.Errorf("EHLO: %w: %q", errReply, line)
		}
	}
	return ext, fmt.Errorf("EHLO: %w: more than %d lines", errReply, maxReplyLines)
}

// quit ends the session politely, without waiting long for the 221.
func (s *session) quit() {
	s.deadline(min(s.g.cfg.Timeout, 5*time.Second))
	if s.write([]byte("QUIT\r\n")) == nil {
		_, _ = s.reply()
	}
}
