package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

const testSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// buildMailhook builds the server once per test binary, unless
// MAILHOOK_BENCH_TEST_BIN names a binary to use instead.
func buildMailhook(t *testing.T) string {
	t.Helper()
	if bin := os.Getenv("MAILHOOK_BENCH_TEST_BIN"); bin != "" {
		return bin
	}
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "mailhook-bench-test-")
		if buildErr != nil {
			return
		}
		out, err := exec.Command("go", "build", "-o", filepath.Join(binDir, "mailhook"), "github.com/mailhook/mailhook/cmd/mailhook").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return filepath.Join(binDir, "mailhook")
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// startMailhook builds and runs the real server with the sink as its
// webhook endpoint, and returns its SMTP address and process.
func startMailhook(t *testing.T, webhookURL string, env ...string) (string, *os.Process) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs mailhook")
	}
	bin := buildMailhook(t)
	store := filepath.Join(t.TempDir(), "store")
	cmd := exec.Command(bin, "serve")
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"),
		"MAILHOOK_SMTP_ADDR=127.0.0.1:0",
		"MAILHOOK_HTTP_ADDR=127.0.0.1:0",
		"MAILHOOK_LOG_FORMAT=json",
		"MAILHOOK_STORE=file://" + store,
		"MAILHOOK_WEBHOOK_URL=" + webhookURL,
		"MAILHOOK_WEBHOOK_SECRET=" + testSecret,
	}
	cmd.Env = append(cmd.Env, env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var logMu sync.Mutex
	var logs bytes.Buffer
	exited := make(chan struct{})
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			logMu.Lock()
			logs.Write(sc.Bytes())
			logs.WriteByte('\n')
			logMu.Unlock()
			var rec struct{ Msg, SMTP, HTTP string }
			if json.Unmarshal(sc.Bytes(), &rec) == nil && rec.Msg == "listening" && rec.SMTP != "" {
				select {
				case ready <- rec.SMTP:
				default:
				}
			}
		}
		io.Copy(io.Discard, stderr)
	}()
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		if t.Failed() {
			logMu.Lock()
			t.Logf("mailhook logs:\n%s", logs.String())
			logMu.Unlock()
		}
	})
	select {
	case addr := <-ready:
		return addr, cmd.Process
	case <-exited:
		t.Fatal("mailhook exited at start")
	case <-time.After(60 * time.Second):
		t.Fatal("mailhook did not log \"listening\"")
	}
	return "", nil
}

// runLogged runs the bench and logs its summary, which it also returns.
func runLogged(t *testing.T, o *options, sk *sink) (*result, string) {
	t.Helper()
	var log bytes.Buffer
	res, err := runBench(t.Context(), o, sk, &log)
	if err != nil {
		t.Fatal(err)
	}
	res.writeHuman(&log)
	t.Logf("%s", log.String())
	return res, log.String()
}

func testOptions(target string) *options {
	return &options{
		load: loadConfig{
			Target: target, Concurrency: 4, Count: 200, Duration: time.Minute, PerConn: 30,
			From: "loadgen@example.org", Rcpt: "bench@example.com", Helo: "bench.test", Timeout: 30 * time.Second,
		},
		size: 2048, drainTimeout: 60 * time.Second, wait: 10 * time.Second, run: newRunID(),
	}
}

func TestEndToEndAgainstMailhook(t *testing.T) {
	for _, pipelining := range []bool{false, true} {
		t.Run(fmt.Sprintf("pipelining=%v", pipelining), func(t *testing.T) {
			o := testOptions("")
			o.load.Pipelining = pipelining
			sk, err := startSink("127.0.0.1:0", testSecret, o.run)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { sk.Close() })
			addr, proc := startMailhook(t, sk.URL())
			o.load.Target, o.rssPID = addr, proc.Pid

			res, _ := runLogged(t, o, sk)
			if res.Sent != 200 || res.Acked != 200 || res.TempFailed+res.PermFailed+res.ConnErrors != 0 {
				t.Errorf("sent %d acked %d 4xx %d 5xx %d conn %d", res.Sent, res.Acked, res.TempFailed, res.PermFailed, res.ConnErrors)
			}
			if res.Missing != 0 || res.DupByID != 0 || res.DupByToken != 0 || res.SigFailures != 0 || !res.Drained {
				t.Errorf("missing %d, duplicates %d/%d, signature failures %d, drained %v", res.Missing, res.DupByID, res.DupByToken, res.SigFailures, res.Drained)
			}
			if res.Delivered != 200 || res.Webhooks != 200 || res.Foreign != 0 || !res.OK || res.PipeUsed != pipelining {
				t.Errorf("delivered %d webhooks %d foreign %d ok %v pipelining used %v", res.Delivered, res.Webhooks, res.Foreign, res.OK, res.PipeUsed)
			}
			if res.SMTPLatency.Count != 200 || res.E2ELatency.Count != 200 || res.SMTPLatency.P50 <= 0 || res.SMTPLatency.P99 < res.SMTPLatency.P50 {
				t.Errorf("latencies %+v %+v", res.SMTPLatency, res.E2ELatency)
			}
			if res.ServerRSS == nil || res.ServerRSS.VmHWMKB <= 0 || res.ServerRSS.PeakSampledKB <= 0 {
				t.Errorf("server RSS %+v", res.ServerRSS)
			}
			// The JSON line is one line and carries the schema's names.
			line, err := json.Marshal(res)
			if err != nil || bytes.ContainsRune(line, '\n') {
				t.Fatalf("json: %v", err)
			}
			for _, k := range []string{`"missing":0`, `"signature_failures":0`, `"smtp_msgs_per_s":`, `"e2e_latency_ms":{`, `"ok":true`} {
				if !bytes.Contains(line, []byte(k)) {
					t.Errorf("JSON line lacks %s: %s", k, line)
				}
			}
		})
	}
}

// -sink-down: the sink refuses every webhook for a while, mailhook
// retries, and once it is back every message arrives; the report counts
// the refusals and the recovery.
func TestSinkDown(t *testing.T) {
	o := testOptions("")
	o.load.Count, o.sinkDown = 50, 1500*time.Millisecond
	sk, err := startSink("127.0.0.1:0", testSecret, o.run)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sk.Close() })
	sk.downFor = o.sinkDown
	o.load.Target, _ = startMailhook(t, sk.URL(), "MAILHOOK_RETRY_INITIAL=200ms", "MAILHOOK_RETRY_MAX_INTERVAL=1s")
	res, log := runLogged(t, o, sk)
	if res.Missing != 0 || res.Delivered != 50 || !res.OK {
		t.Errorf("missing %d delivered %d ok %v", res.Missing, res.Delivered, res.OK)
	}
	if res.SinkRefused == 0 || res.SinkDownSeconds != 1.5 || res.RecoverySeconds <= 0 || res.E2ESeconds < 1.5 {
		t.Errorf("refused %d, down %vs, recovery %vs, e2e %vs", res.SinkRefused, res.SinkDownSeconds, res.RecoverySeconds, res.E2ESeconds)
	}
	if !strings.Contains(log, "answered 503 for the first 1.5s") {
		t.Errorf("summary does not tell the outage:\n%s", log)
	}
}

// A bad secret on the sink's side shows as signature failures, missing
// messages and exit status 1.
func TestEndToEndWrongSecret(t *testing.T) {
	o := testOptions("")
	o.load.Count, o.drainTimeout = 20, 3*time.Second
	sk, err := startSink("127.0.0.1:0", "whsec_"+strings.Repeat("A", 32), o.run)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sk.Close() })
	o.load.Target, _ = startMailhook(t, sk.URL())
	res, err := runBench(t.Context(), o, sk, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if res.OK || res.SigFailures == 0 || res.Missing != 20 || res.Drained {
		t.Errorf("ok %v, signature failures %d, missing %d, drained %v", res.OK, res.SigFailures, res.Missing, res.Drained)
	}
}

// fakeServer listens on loopback until the test ends and runs serve on
// every connection, with a 30 s deadline; it returns the address.
func fakeServer(t *testing.T, serve func(c net.Conn, r *bufio.Reader)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(30 * time.Second))
				serve(c, bufio.NewReader(c))
			}()
		}
	}()
	return ln.Addr().String()
}

// scriptedSMTP is a fake SMTP server: it greets, answers each command
// with reply(verb) (DATA with 354, QUIT with 221 and a hang-up), and ends
// each message with endData().
func scriptedSMTP(t *testing.T, reply func(verb string) string, endData func() string) string {
	return fakeServer(t, func(c net.Conn, r *bufio.Reader) {
		fmt.Fprint(c, "220 fake ESMTP\r\n")
		inData := false
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			if inData {
				if line == ".\r\n" {
					inData = false
					fmt.Fprint(c, endData())
				}
				continue
			}
			switch verb := strings.ToUpper(strings.Fields(line + " x")[0]); verb {
			case "DATA":
				inData = true
				fmt.Fprint(c, "354 go ahead\r\n")
			case "QUIT":
				fmt.Fprint(c, "221 2.0.0 Bye\r\n")
				return
			default:
				fmt.Fprint(c, reply(verb))
			}
		}
	})
}

// fakeSMTP is a scripted server: no PIPELINING, and RCPT answers 451 for
// every third transaction and 550 for every seventh.
func fakeSMTP(t *testing.T) string {
	t.Helper()
	var mu sync.Mutex
	n := 0
	return scriptedSMTP(t, func(verb string) string {
		switch verb {
		case "EHLO":
			return "250-fake\r\n250-SIZE 1000000\r\n250 8BITMIME\r\n"
		case "MAIL":
			return "250 2.1.0 Ok\r\n"
		case "RCPT":
			mu.Lock()
			n++
			k := n
			mu.Unlock()
			switch {
			case k%7 == 0:
				return "550 5.1.1 no such user\r\n"
			case k%3 == 0:
				return "451 4.3.0 try later\r\n"
			}
			return "250 2.1.5 Ok\r\n"
		case "RSET":
			return "250 2.0.0 Ok\r\n"
		}
		return "500 5.5.2 what\r\n"
	}, func() string { return "250 2.0.0 Ok: queued\r\n" })
}

func TestNoSinkCountsFailures(t *testing.T) {
	o := testOptions(fakeSMTP(t))
	o.load.Count, o.load.Concurrency, o.load.PerConn = 210, 3, 7
	o.load.Pipelining = true // asked for, not advertised
	res, err := runBench(t.Context(), o, nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	// Of 210 transactions: 30 are multiples of 7 (550), 60 of 3 and not 7 → 70-10 = 60 (451).
	if res.Sent != 210 || res.PermFailed != 30 || res.TempFailed != 60 || res.Acked != 120 || res.ConnErrors != 0 {
		t.Errorf("sent %d acked %d 4xx %d 5xx %d conn %d", res.Sent, res.Acked, res.TempFailed, res.PermFailed, res.ConnErrors)
	}
	if res.PipeUsed || !res.Pipelining || res.Sink || res.E2EMsgsPerSec != nil || !res.OK {
		t.Errorf("pipelining %v/%v sink %v e2e %v ok %v", res.Pipelining, res.PipeUsed, res.Sink, res.E2EMsgsPerSec, res.OK)
	}
	if !strings.HasPrefix(res.Samples["rcpt_4xx"], "451 4.3.0") || !strings.HasPrefix(res.Samples["rcpt_5xx"], "550 5.1.1") {
		t.Errorf("samples %v", res.Samples)
	}
}

func TestDurationBoundsTheRun(t *testing.T) {
	o := testOptions(fakeSMTP(t))
	o.load.Count, o.load.Duration = 0, 300*time.Millisecond
	start := time.Now()
	res, err := runBench(t.Context(), o, nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el > 5*time.Second || res.Sent == 0 {
		t.Errorf("ran %v, sent %d", el, res.Sent)
	}
}

func TestUnreachableServer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	o := testOptions(addr)
	o.wait = 300 * time.Millisecond
	if _, err := runBench(t.Context(), o, nil, io.Discard); err == nil {
		t.Error("no error for a closed port")
	}
}

// Cancelling the run (Ctrl-C) interrupts sessions blocked on a silent
// server at once, not after -timeout.
func TestCancelInterruptsBlockedSessions(t *testing.T) {
	addr := fakeServer(t, func(c net.Conn, r *bufio.Reader) {
		fmt.Fprint(c, "220 silent ESMTP\r\n")
		if _, err := r.ReadString('\n'); err != nil {
			return
		}
		fmt.Fprint(c, "250 silent\r\n")
		io.Copy(io.Discard, r) // and never answer again
	})
	o := testOptions(addr)
	o.load.Timeout = time.Minute
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	res, err := runBench(ctx, o, nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("cancelled run took %v", el)
	}
	if res.Acked != 0 || res.ConnErrors != 0 || res.OK {
		t.Errorf("acked %d conn errors %d ok %v", res.Acked, res.ConnErrors, res.OK)
	}
}
