package inbound

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
)

// recObserver records what the server tells its Observer.
type recObserver struct {
	mu       sync.Mutex
	started  int
	ended    int
	refused  []string
	commands []string // "VERB code"
	messages []string // "result reason size"
}

func (o *recObserver) SessionStarted() { o.mu.Lock(); o.started++; o.mu.Unlock() }
func (o *recObserver) SessionEnded()   { o.mu.Lock(); o.ended++; o.mu.Unlock() }
func (o *recObserver) SessionRefused(reason string) {
	o.mu.Lock()
	o.refused = append(o.refused, reason)
	o.mu.Unlock()
}
func (o *recObserver) Command(verb string, code int) {
	o.mu.Lock()
	o.commands = append(o.commands, fmt.Sprintf("%s %d", verb, code))
	o.mu.Unlock()
}
func (o *recObserver) Message(result, reason string, size int64) {
	o.mu.Lock()
	o.messages = append(o.messages, fmt.Sprintf("%s %s %d", result, reason, size))
	o.mu.Unlock()
}

func (o *recObserver) snapshot() (started, ended int, refused, commands, messages []string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.started, o.ended, slices.Clone(o.refused), slices.Clone(o.commands), slices.Clone(o.messages)
}

func TestObserverSeesSession(t *testing.T) {
	obs := &recObserver{}
	ts := startServer(t, Config{Observer: obs, MaxMessageBytes: 100}, policy{deny: []string{"nobody@example.com"}})
	runScript(t, ts.addr, []step{
		ehlo,
		{send: "MAIL FROM:<a@example.org>", code: 250, enh: "2.1.0"},
		{send: "RCPT TO:<nobody@example.com>", code: 550, enh: "5.1.1"},
		{send: "RCPT TO:<b@example.com>", code: 250, enh: "2.1.5"},
		{send: "DATA", code: 354, enh: "2.0.0"},
		{send: "Subject: hi\r\n\r\nhello\r\n.", code: 250, enh: "2.0.0"},
		{send: "FROB", code: 500, enh: "5.5.2"},
		{send: "!!", code: 500, enh: "5.5.2"},
		{send: "MAIL FROM:<a@example.org>", code: 250, enh: "2.1.0"},
		{send: "RCPT TO:<b@example.com>", code: 250, enh: "2.1.5"},
		{send: "DATA", code: 354, enh: "2.0.0"},
		{send: strings.Repeat("x", 200) + "\r\n.", code: 552, enh: "5.3.4"},
		{send: "MAIL FROM:<a@example.org>", code: 250, enh: "2.1.0"},
		{send: "RCPT TO:<b@example.com>", code: 250, enh: "2.1.5"},
		{send: "BDAT 5\r\nhello", raw: true, code: 250, enh: "2.0.0"},
		{send: "BDAT 2 LAST\r\n!\n", raw: true, code: 250, enh: "2.0.0", text: "queued as"},
		{send: "QUIT", code: 221, enh: "2.0.0"},
		{closed: true},
	})
	waitFor(t, "the session to end", func() bool { _, ended, _, _, _ := obs.snapshot(); return ended == 1 })

	started, ended, refused, commands, messages := obs.snapshot()
	if started != 1 || ended != 1 || len(refused) != 0 {
		t.Errorf("sessions: started %d, ended %d, refused %v; want 1, 1, none", started, ended, refused)
	}
	wantCommands := []string{
		"EHLO 250", "MAIL 250", "RCPT 550", "RCPT 250", "DATA 250", "FROB 500", " 500",
		"MAIL 250", "RCPT 250", "DATA 552",
		"MAIL 250", "RCPT 250", "BDAT 250", "BDAT 250", "QUIT 221",
	}
	if !slices.Equal(commands, wantCommands) {
		t.Errorf("commands:\n got %q\nwant %q", commands, wantCommands)
	}
	wantMessages := []string{"accepted  22", "rejected too_large 202", "accepted  7"}
	if !slices.Equal(messages, wantMessages) {
		t.Errorf("messages:\n got %q\nwant %q", messages, wantMessages)
	}
}

func TestObserverSeesRefusedConnection(t *testing.T) {
	obs := &recObserver{}
	ts := startServer(t, Config{Observer: obs, MaxSessions: 1}, nil)
	if _, rep := greet(t, nil, ts.addr); rep.code != 220 {
		t.Fatalf("first connection: %v", rep)
	}
	if _, rep := greet(t, nil, ts.addr); rep.code != 421 {
		t.Fatalf("second connection: %v, want 421", rep)
	}
	waitFor(t, "the refusal", func() bool { _, _, refused, _, _ := obs.snapshot(); return len(refused) == 1 })
	started, _, refused, _, _ := obs.snapshot()
	if started != 1 || refused[0] != RefusedOverCap {
		t.Errorf("started %d, refused %q; want 1, [%s]", started, refused, RefusedOverCap)
	}
}

func TestObserverSeesStorageFailure(t *testing.T) {
	obs := &recObserver{}
	ts := startServer(t, Config{Observer: obs}, nil)
	ts.acc.fail = errors.New("disk on fire")
	runScript(t, ts.addr, []step{
		ehlo,
		{send: "MAIL FROM:<a@example.org>", code: 250, enh: "2.1.0"},
		{send: "RCPT TO:<b@example.com>", code: 250, enh: "2.1.5"},
		{send: "DATA", code: 354, enh: "2.0.0"},
		{send: "x\r\n.", code: 451, enh: "4.3.0"},
	})
	waitFor(t, "the session to end", func() bool { _, ended, _, _, _ := obs.snapshot(); return ended == 1 })
	_, _, _, commands, messages := obs.snapshot()
	if !slices.Contains(commands, "DATA 451") || !slices.Equal(messages, []string{"rejected storage 3"}) {
		t.Errorf("commands %q, messages %q; want DATA 451 and one storage rejection", commands, messages)
	}
}

func TestMessageOutcome(t *testing.T) {
	tests := []struct {
		aborted, violated, acc error
		code                   int
		result, reason         string
	}{
		{nil, nil, nil, 250, ResultAccepted, ""},
		{errBDATReset, nil, nil, 250, ResultAborted, ReasonReset},
		{fmt.Errorf("%w: %w", ErrTransferAborted, errBDATQuit), nil, nil, 221, ResultAborted, ReasonQuit},
		{errBDATBad, nil, nil, 0, ResultAborted, ReasonProtocol},
		{os.ErrDeadlineExceeded, nil, nil, 451, ResultAborted, ReasonTimeout},
		{errors.New("EOF"), nil, nil, 0, ResultAborted, ReasonDisconnected},
		{nil, ErrMessageTooLarge, nil, 552, ResultRejected, ReasonTooLarge},
		{nil, ErrBareNewline, nil, 550, ResultRejected, ReasonBareNewline},
		{nil, ErrLineTooLong, nil, 550, ResultRejected, ReasonLineTooLong},
		{nil, nil, fmt.Errorf("wrapped: %w", ErrMessageTooLarge), 552, ResultRejected, ReasonTooLarge},
		{nil, nil, fmt.Errorf("route: %w", replierErr{}), 550, ResultRejected, ReasonRefused},
		{nil, nil, errors.New("s3 down"), 451, ResultRejected, ReasonStorage},
		{nil, nil, nil, 451, ResultRejected, ReasonStorage}, // Acceptor returned nil early
	}
	for i, tt := range tests {
		result, reason := messageOutcome(tt.aborted, tt.violated, tt.acc, tt.code)
		if result != tt.result || reason != tt.reason {
			t.Errorf("%d: got %s/%s, want %s/%s", i, result, reason, tt.result, tt.reason)
		}
	}
}
