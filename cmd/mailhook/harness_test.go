package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mailhook/mailhook/event"
	"github.com/mailhook/mailhook/signing"
)

// The end-to-end tests drive the real binary, built once, as a subprocess:
// real SMTP over loopback, a real HTTP receiver, the filesystem store.

var binPath string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "mailhook-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binPath = filepath.Join(dir, "mailhook")
	build := exec.Command("go", "build", "-o", binPath, ".")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building mailhook: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

const testSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// server is a running mailhook process.
type server struct {
	t        *testing.T
	cmd      *exec.Cmd
	smtpAddr string
	httpAddr string
	dataDir  string
	exited   chan struct{}
	exitErr  error
	logMu    sync.Mutex
	logs     bytes.Buffer
}

// startServer runs mailhook with the given variables on top of test
// defaults (loopback ports chosen by the kernel, JSON logs, a store in dir).
func startServer(t *testing.T, dataDir string, env map[string]string) *server {
	t.Helper()
	vars := map[string]string{
		"MAILHOOK_SMTP_ADDR":  "127.0.0.1:0",
		"MAILHOOK_HTTP_ADDR":  "127.0.0.1:0",
		"MAILHOOK_HOSTNAME":   "mx.test",
		"MAILHOOK_LOG_FORMAT": "json",
		"MAILHOOK_LOG_LEVEL":  "debug",
		"MAILHOOK_STORE":      "file://" + dataDir,
	}
	for k, v := range env {
		vars[k] = v
	}
	cmd := exec.Command(binPath, "serve")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	for k, v := range vars {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	s := &server{t: t, cmd: cmd, dataDir: dataDir, exited: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start mailhook: %v", err)
	}
	ready := make(chan [2]string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Bytes()
			s.logMu.Lock()
			s.logs.Write(line)
			s.logs.WriteByte('\n')
			s.logMu.Unlock()
			var rec struct {
				Msg  string `json:"msg"`
				SMTP string `json:"smtp"`
				HTTP string `json:"http"`
			}
			if json.Unmarshal(line, &rec) == nil && rec.Msg == "listening" {
				select {
				case ready <- [2]string{rec.SMTP, rec.HTTP}:
				default:
				}
			}
		}
	}()
	go func() {
		s.exitErr = cmd.Wait()
		close(s.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-s.exited:
		default:
			_ = cmd.Process.Kill()
			<-s.exited
		}
		if t.Failed() {
			t.Logf("mailhook logs:\n%s", s.Logs())
		}
	})
	select {
	case addrs := <-ready:
		s.smtpAddr, s.httpAddr = addrs[0], addrs[1]
	case <-s.exited:
		t.Fatalf("mailhook exited at start: %v\n%s", s.exitErr, s.Logs())
	case <-time.After(30 * time.Second):
		t.Fatalf("mailhook did not start listening\n%s", s.Logs())
	}
	return s
}

func (s *server) Logs() string {
	s.logMu.Lock()
	defer s.logMu.Unlock()
	return s.logs.String()
}

// logged reports whether the process's log holds substr within d: a line
// is read from its stderr a moment after it is written, so what the
// process did just before an effect seen elsewhere may not be in Logs yet.
func (s *server) logged(substr string, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for !strings.Contains(s.Logs(), substr) {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}

// kill9 stops the process with SIGKILL, as a crash would.
func (s *server) kill9() {
	s.t.Helper()
	_ = s.cmd.Process.Signal(syscall.SIGKILL)
	<-s.exited
}

// stop sends SIGTERM and waits for exit status 0.
func (s *server) stop() {
	s.t.Helper()
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(60 * time.Second):
		s.t.Fatal("mailhook did not exit after SIGTERM")
	}
	if s.exitErr != nil {
		s.t.Errorf("mailhook exited with %v after SIGTERM", s.exitErr)
	}
}

// delivery is one webhook request as the receiver saw it.
type delivery struct {
	Header http.Header
	Body   []byte
	Event  event.Event
}

// receiver is a real HTTP server standing in for the application.
type receiver struct {
	t   *testing.T
	srv *httptest.Server
	mu  sync.Mutex
	// status chooses the answer to the n-th request (from 1).
	status func(n int, d delivery) int
	got    []delivery
	n      int
	notify chan struct{}
}

// stockVerifier is the Standard Webhooks reference library's verifier for
// testSecret.
func stockVerifier(t *testing.T) *standardwebhooks.Webhook {
	wh, err := standardwebhooks.NewWebhook(testSecret)
	if err != nil {
		t.Fatalf("standardwebhooks.NewWebhook: %v", err)
	}
	return wh
}

func newReceiver(t *testing.T, status func(n int, d delivery) int) *receiver {
	t.Helper()
	r := &receiver{t: t, status: status, notify: make(chan struct{}, 1)}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, err := io.ReadAll(req.Body)
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		d := delivery{Header: req.Header.Clone(), Body: body}
		if err := signing.VerifyRequest(testSecret, req.Header, body, time.Now(), 0); err != nil {
			t.Errorf("webhook signature does not verify: %v", err)
		}
		// And as receivers check it: with the Standard Webhooks
		// reference library, which enforces its own 5-minute tolerance.
		if err := stockVerifier(t).Verify(body, req.Header); err != nil {
			t.Errorf("webhook signature refused by the standardwebhooks library: %v", err)
		}
		if ct := req.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("Content-Type = %q", ct)
		}
		if err := json.Unmarshal(body, &d.Event); err != nil {
			t.Errorf("webhook body is not an event: %v", err)
		}
		r.mu.Lock()
		r.n++
		n := r.n
		code := http.StatusNoContent
		if r.status != nil {
			code = r.status(n, d)
		}
		if code/100 == 2 {
			r.got = append(r.got, d)
		}
		r.mu.Unlock()
		select {
		case r.notify <- struct{}{}:
		default:
		}
		w.WriteHeader(code)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) URL() string { return r.srv.URL + "/hook" }

func (r *receiver) setStatus(f func(n int, d delivery) int) {
	r.mu.Lock()
	r.status = f
	r.mu.Unlock()
}

// accepted returns the deliveries answered 2xx so far.
func (r *receiver) accepted() []delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]delivery(nil), r.got...)
}

// requests counts every request, whatever the answer.
func (r *receiver) requests() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n
}

// waitFor polls until cond holds or the timeout passes.
func (r *receiver) waitFor(timeout time.Duration, what string, cond func([]delivery) bool) []delivery {
	r.t.Helper()
	deadline := time.After(timeout)
	for {
		got := r.accepted()
		if cond(got) {
			return got
		}
		select {
		case <-r.notify:
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			r.t.Fatalf("timed out waiting for %s (have %d deliveries)", what, len(got))
		}
	}
}

func header(d delivery, name string) string { return d.Header.Get(name) }
