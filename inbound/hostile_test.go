package inbound

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// hostileCase is one file of testdata/hostile (format in its README.md).
type hostileCase struct {
	name     string
	session  []byte
	expect   []hostileReply
	closed   bool
	messages int // -1: not checked
	reject   bool
}

type hostileReply struct {
	code int
	enh  string // "" = not checked
}

func loadHostile(t *testing.T, path string) hostileCase {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	name := strings.TrimSuffix(filepath.Base(path), ".gz")
	if strings.HasSuffix(path, ".gz") {
		zr, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		if data, err = io.ReadAll(zr); err != nil {
			t.Fatal(err)
		}
	}
	hc := hostileCase{name: strings.TrimSuffix(name, ".smtp"), messages: -1}
	for len(data) > 0 && data[0] == '#' {
		line, rest, _ := bytes.Cut(data, []byte("\n"))
		data = rest
		key, val, ok := strings.Cut(strings.TrimSpace(string(line[1:])), ":")
		if !ok {
			continue
		}
		val = strings.TrimSpace(val)
		switch key {
		case "expect":
			for _, item := range strings.Split(val, ",") {
				f := strings.Fields(item)
				if len(f) == 1 && f[0] == "closed" {
					hc.closed = true
					continue
				}
				if hc.closed || len(f) == 0 || len(f) > 3 {
					t.Fatalf("%s: bad expect item %q", path, item)
				}
				code, err := strconv.Atoi(f[0])
				if err != nil {
					t.Fatalf("%s: bad expect item %q", path, item)
				}
				r, n := hostileReply{code: code}, 1
				for _, x := range f[1:] {
					if c, ok := strings.CutPrefix(x, "x"); ok {
						if n, err = strconv.Atoi(c); err != nil {
							t.Fatalf("%s: bad repeat in %q", path, item)
						}
					} else {
						r.enh = x
					}
				}
				for range n {
					hc.expect = append(hc.expect, r)
				}
			}
		case "messages":
			if hc.messages, err = strconv.Atoi(val); err != nil {
				t.Fatalf("%s: bad messages %q", path, val)
			}
		case "bare-newline":
			hc.reject = val == BareNewlineReject
		}
	}
	hc.session = data
	return hc
}

// normalSession runs one ordinary transaction, for a session that must
// not notice its hostile neighbour.
func normalSession(addr string) error {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
	r := bufio.NewReader(conn)
	for _, st := range []struct {
		send string
		code int
	}{
		{"", 220}, {"EHLO normal.test", 250}, {"MAIL FROM:<normal@example.org>", 250},
		{"RCPT TO:<b@example.com>", 250}, {"DATA", 354}, {"Subject: normal\r\n\r\nordinary\r\n.", 250}, {"QUIT", 221},
	} {
		if st.send != "" {
			if _, err := io.WriteString(conn, st.send+"\r\n"); err != nil {
				return err
			}
		}
		rep, err := readReply(r)
		if err != nil || rep.code != st.code {
			return fmt.Errorf("after %q: got %v %v, want %d", st.send, rep, err, st.code)
		}
	}
	return nil
}

// hostileMessages counts the accepted messages not sent by normalSession.
func hostileMessages(ts *testServer) int {
	n := 0
	for _, m := range ts.acc.messages() {
		if m.msg.Envelope.MailFrom != "normal@example.org" {
			n++
		}
	}
	return n
}

// TestHostileCorpus replays testdata/hostile: every file must get the
// replies it expects, within a deadline, with no panic, while an ordinary
// session runs beside it.
func TestHostileCorpus(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("testdata", "hostile", "*.smtp"))
	gz, _ := filepath.Glob(filepath.Join("testdata", "hostile", "*.smtp.gz"))
	files = append(files, gz...)
	if len(files) < 20 {
		t.Fatalf("only %d hostile files", len(files))
	}
	// Short timeouts: a hang shows as a 421/451 timeout reply, not as a
	// stuck test.
	cfg := Config{CommandTimeout: 5 * time.Second, DataTimeout: 5 * time.Second, SessionTimeout: 30 * time.Second}
	normalize := startServer(t, cfg, nil)
	cfg.BareNewline = BareNewlineReject
	reject := startServer(t, cfg, nil)
	for _, path := range files {
		hc := loadHostile(t, path)
		t.Run(hc.name, func(t *testing.T) {
			ts := normalize
			if hc.reject {
				ts = reject
			}
			before := hostileMessages(ts)
			normalDone := make(chan error, 1)
			go func() { normalDone <- normalSession(ts.addr) }()

			conn, err := net.Dial("tcp", ts.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
			go func() {
				// Errors are expected when the server hangs up early.
				_, _ = conn.Write(hc.session)
				_ = conn.(*net.TCPConn).CloseWrite()
			}()
			r := bufio.NewReader(conn)
			var transcript strings.Builder
			expect := append([]hostileReply{{code: 220}}, hc.expect...)
			for i, want := range expect {
				rep, err := readReply(r)
				if err != nil {
					t.Fatalf("reply %d: %v, want %d %s\nreplies so far:\n%s", i, err, want.code, want.enh, transcript.String())
				}
				if i < 20 || i > len(expect)-20 {
					fmt.Fprintf(&transcript, "  %v\n", rep)
				}
				if rep.code != want.code || want.enh != "" && rep.enh != want.enh {
					t.Fatalf("reply %d: got %v, want %d %s\nreplies so far:\n%s", i, rep, want.code, want.enh, transcript.String())
				}
			}
			if hc.closed {
				rest, err := io.ReadAll(r)
				var ne net.Error
				if len(rest) > 0 || errors.As(err, &ne) && ne.Timeout() {
					t.Fatalf("want the connection closed, got %q %v", rest, err)
				}
			}
			if err := <-normalDone; err != nil {
				t.Fatalf("concurrent normal session: %v", err)
			}
			if hc.messages >= 0 {
				// The session may still be inside Accept for its last
				// message when the reply arrives; the reply came after it,
				// so the count is already final.
				if got := hostileMessages(ts) - before; got != hc.messages {
					t.Fatalf("%d messages accepted, want %d", got, hc.messages)
				}
			}
			if n := ts.srv.PanicsRecovered(); n != 0 {
				t.Fatalf("%d panics recovered; logs:\n%s", n, ts.logs.String())
			}
		})
	}
}
