package inbound

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeAcceptor streams Body into memory. It can be told to fail, to block
// until released, or to panic.
type fakeAcceptor struct {
	mu       sync.Mutex
	msgs     []*gotMessage
	fail     error         // returned after reading the body
	failNow  error         // returned without reading the body
	block    chan struct{} // Accept waits for it (after reading) when non-nil
	started  chan struct{} // receives once per Accept call, when non-nil
	panicMsg string        // panics with this after reading, when set
}

type gotMessage struct {
	msg  Message
	body []byte
}

func (f *fakeAcceptor) Accept(ctx context.Context, m *Message) error {
	f.mu.Lock()
	failNow, fail, block, started, panicMsg := f.failNow, f.fail, f.block, f.started, f.panicMsg
	f.mu.Unlock()
	if started != nil {
		started <- struct{}{}
	}
	if failNow != nil {
		return failNow
	}
	var buf bytes.Buffer
	_, err := io.Copy(&buf, m.Body)
	if err != nil {
		return fmt.Errorf("fake: reading body: %w", err)
	}
	if panicMsg != "" {
		panic(panicMsg)
	}
	if block != nil {
		select {
		case <-block:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if fail != nil {
		return fail
	}
	f.mu.Lock()
	f.msgs = append(f.msgs, &gotMessage{msg: *m, body: buf.Bytes()})
	f.mu.Unlock()
	return nil
}

func (f *fakeAcceptor) messages() []*gotMessage {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*gotMessage(nil), f.msgs...)
}

// dataOf returns the body without our Received header.
func dataOf(t *testing.T, g *gotMessage) []byte {
	t.Helper()
	b := g.body
	if !bytes.HasPrefix(b, []byte("Received: from ")) {
		t.Fatalf("body does not start with our Received header: %q", b[:min(len(b), 80)])
	}
	// The header ends at the first CRLF not followed by a tab.
	for i := 0; i+2 < len(b); i++ {
		if b[i] == '\r' && b[i+1] == '\n' && b[i+2] != '\t' {
			return b[i+2:]
		}
	}
	t.Fatalf("no end of Received header in %q", b)
	return nil
}

// policy accepts every address except those in deny (case-insensitive).
type policy struct{ deny []string }

func (p policy) Allow(addr string) bool {
	for _, d := range p.deny {
		if strings.EqualFold(d, addr) {
			return false
		}
	}
	return true
}

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type testServer struct {
	srv        *Server
	addr       string
	acc        *fakeAcceptor
	logs       *syncBuffer
	allowPanic bool
}

// startServer runs a server on 127.0.0.1:0. Unless allowPanic is set on
// the result, the test fails if the server recovered a panic.
func startServer(t *testing.T, cfg Config, pol RecipientPolicy) *testServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	if cfg.Hostname == "" {
		cfg.Hostname = "mx.test"
	}
	acc := &fakeAcceptor{}
	ts := &testServer{acc: acc, logs: logs, addr: ln.Addr().String()}
	ts.srv = NewServer(cfg, acc, pol)
	served := make(chan error, 1)
	go func() { served <- ts.srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = ts.srv.Shutdown(ctx)
		if err := <-served; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
		if n := ts.srv.PanicsRecovered(); n > 0 && !ts.allowPanic {
			t.Errorf("server recovered %d panic(s); logs:\n%s", n, logs.String())
		}
	})
	return ts
}

// step is one exchange of a scripted session: send is written (with CRLF
// appended unless raw), then, if code is non-zero, one reply is read and
// its code and enhanced code compared. enh "-" asserts that the reply has
// no enhanced code. closed asserts the server closed the connection.
type step struct {
	send   string
	raw    bool
	code   int
	enh    string
	text   string // substring expected in the reply, if set
	closed bool
}

// smtpReply is one (possibly multi-line) reply.
type smtpReply struct {
	code  int
	enh   string
	lines []string
}

func readReply(r *bufio.Reader) (smtpReply, error) {
	var rep smtpReply
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return rep, err
		}
		line = strings.TrimRight(line, "\r\n")
		if len(line) < 4 {
			return rep, fmt.Errorf("short reply line %q", line)
		}
		// RFC 5321 §4.2: reply text is tab and printable US-ASCII.
		if i := strings.IndexFunc(line, func(r rune) bool { return (r < ' ' && r != '\t') || r > '~' }); i >= 0 {
			return rep, fmt.Errorf("reply line %q: octet %d is not printable US-ASCII", line, i)
		}
		code, err := strconv.Atoi(line[:3])
		if err != nil {
			return rep, fmt.Errorf("bad reply line %q", line)
		}
		rep.code = code
		rep.lines = append(rep.lines, line[4:])
		if line[3] == ' ' {
			text := line[4:]
			if f, _, _ := strings.Cut(text, " "); validEnhanced(f) {
				rep.enh = f
			}
			return rep, nil
		}
		if line[3] != '-' {
			return rep, fmt.Errorf("bad reply line %q", line)
		}
	}
}

func (r smtpReply) String() string {
	return strconv.Itoa(r.code) + " " + strings.Join(r.lines, " / ")
}

// runScript connects to addr, expects the 220 banner, and plays steps.
// greet dials addr with d (nil: the default dialer), closes the
// connection when the test ends, and returns it with its first reply.
func greet(t *testing.T, d *net.Dialer, addr string) (net.Conn, smtpReply) {
	t.Helper()
	if d == nil {
		d = &net.Dialer{}
	}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	rep, err := readReply(bufio.NewReader(c))
	if err != nil {
		t.Fatalf("first reply from %s: %v", addr, err)
	}
	return c, rep
}

func runScript(t *testing.T, addr string, steps []step) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	playScript(t, conn, steps)
}

func playScript(t *testing.T, conn net.Conn, steps []step) {
	t.Helper()
	_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
	r := bufio.NewReader(conn)
	banner, err := readReply(r)
	if err != nil || banner.code != 220 {
		t.Fatalf("banner: %v %v", banner, err)
	}
	playSteps(t, conn, r, steps)
}

func playSteps(t *testing.T, conn net.Conn, r *bufio.Reader, steps []step) {
	t.Helper()
	var transcript strings.Builder
	for i, st := range steps {
		if st.send != "" || st.raw {
			s := st.send
			if !st.raw {
				s += "\r\n"
			}
			fmt.Fprintf(&transcript, "C: %q\n", s[:min(len(s), 200)])
			if _, err := io.WriteString(conn, s); err != nil {
				t.Fatalf("step %d: write: %v\n%s", i, err, transcript.String())
			}
		}
		if st.closed {
			rep, err := readReply(r)
			if err == nil {
				t.Fatalf("step %d: want closed connection, got %v\n%s", i, rep, transcript.String())
			}
			continue
		}
		if st.code == 0 {
			continue
		}
		rep, err := readReply(r)
		fmt.Fprintf(&transcript, "S: %v\n", rep)
		if err != nil {
			t.Fatalf("step %d (%q): read reply: %v\n%s", i, st.send, err, transcript.String())
		}
		wantEnh := st.enh
		if wantEnh == "-" {
			wantEnh = ""
		}
		if rep.code != st.code || rep.enh != wantEnh {
			t.Fatalf("step %d (%q): got %v (enh %q), want %d %s\n%s", i, st.send, rep, rep.enh, st.code, st.enh, transcript.String())
		}
		if st.text != "" && !strings.Contains(strings.Join(rep.lines, "\n"), st.text) {
			t.Fatalf("step %d (%q): reply %v lacks %q\n%s", i, st.send, rep, st.text, transcript.String())
		}
	}
}

// waitFor polls cond for up to 5 seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
