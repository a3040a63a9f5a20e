package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/smtp"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gosmtp "github.com/emersion/go-smtp"

	"github.com/mailhook/mailhook/event"
	"github.com/mailhook/mailhook/store/fs"
)

// stripFirstHeader removes the corpus file's own Received header (the
// server prepends its own), with its continuation lines.
func stripFirstHeader(raw []byte) []byte {
	i := 0
	for {
		j := bytes.IndexByte(raw[i:], '\n')
		if j < 0 {
			return nil
		}
		i += j + 1
		if i >= len(raw) || (raw[i] != ' ' && raw[i] != '\t') {
			return raw[i:]
		}
	}
}

// sendGoSMTP sends with github.com/emersion/go-smtp's client and returns the
// id named in the 250 reply.
func sendGoSMTP(addr, from string, to []string, msg []byte) (string, error) {
	c, err := gosmtp.Dial(addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	if err := c.Hello("client.test"); err != nil {
		return "", err
	}
	if err := c.Mail(from, nil); err != nil {
		return "", err
	}
	for _, rc := range to {
		if err := c.Rcpt(rc, nil); err != nil {
			return "", err
		}
	}
	w, err := c.Data()
	if err != nil {
		return "", err
	}
	if _, err := w.Write(msg); err != nil {
		return "", err
	}
	resp, err := w.CloseWithResponse()
	if err != nil {
		return "", err
	}
	_ = c.Quit()
	return queuedID(resp.StatusText)
}

var queuedRE = regexp.MustCompile(`queued as ([0-9A-Z]{26})`)

func queuedID(text string) (string, error) {
	m := queuedRE.FindStringSubmatch(text)
	if m == nil {
		return "", fmt.Errorf("250 reply %q names no id", text)
	}
	return m[1], nil
}

// normalized returns the parts of data that depend only on the message, as
// indented JSON: what the golden files hold.
func normalized(t *testing.T, d event.Data) string {
	t.Helper()
	d.ID, d.ReceivedAt, d.Envelope, d.Raw = "", time.Time{}, event.Envelope{}, event.Raw{}
	if len(d.Headers) > 0 && d.Headers[0].Name == "Received" {
		d.Headers[0].Value = "(trace)"
	}
	b, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestEndToEndCorpus(t *testing.T) {
	files, err := filepath.Glob("../../parse/testdata/*.eml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no corpus: %v", err)
	}
	rcv := newReceiver(t, nil)
	data := t.TempDir()
	srv := startServer(t, data, map[string]string{
		"MAILHOOK_WEBHOOK_URL":    rcv.URL(),
		"MAILHOOK_WEBHOOK_SECRET": testSecret,
		"MAILHOOK_RECIPIENTS":     "*@example.com",
	})
	type sent struct {
		name, rcpt string
		body       []byte
		id         string
	}
	var all []sent
	for i, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		name := strings.TrimSuffix(filepath.Base(f), ".eml")
		s := sent{name: name, rcpt: fmt.Sprintf("corpus-%d@example.com", i), body: stripFirstHeader(raw)}
		if i%2 == 0 {
			// Go's net/smtp: the id is not visible to the caller.
			if err := smtp.SendMail(srv.smtpAddr, nil, "sender@example.org", []string{s.rcpt}, s.body); err != nil {
				t.Fatalf("%s: net/smtp: %v", name, err)
			}
		} else {
			if s.id, err = sendGoSMTP(srv.smtpAddr, "sender@example.org", []string{s.rcpt}, s.body); err != nil {
				t.Fatalf("%s: go-smtp: %v", name, err)
			}
		}
		all = append(all, s)
	}
	got := rcv.waitFor(60*time.Second, "every corpus message", func(d []delivery) bool { return len(d) >= len(all) })
	byRcpt := map[string]delivery{}
	for _, d := range got {
		if len(d.Event.Data.Envelope.RcptTo) != 1 {
			t.Fatalf("rcpt_to = %v", d.Event.Data.Envelope.RcptTo)
		}
		byRcpt[d.Event.Data.Envelope.RcptTo[0]] = d
	}
	for _, s := range all {
		t.Run(s.name, func(t *testing.T) {
			d, ok := byRcpt[s.rcpt]
			if !ok {
				t.Fatal("no webhook")
			}
			ev := d.Event
			if ev.Type != "email.received" || ev.Data.ID == "" || header(d, "webhook-id") != ev.Data.ID {
				t.Errorf("type %q, id %q, webhook-id %q", ev.Type, ev.Data.ID, header(d, "webhook-id"))
			}
			if s.id != "" && s.id != ev.Data.ID {
				t.Errorf("250 named %s, event id is %s", s.id, ev.Data.ID)
			}
			env := ev.Data.Envelope
			if env.MailFrom != "sender@example.org" || env.Helo == "" || !strings.HasPrefix(env.RemoteAddr, "127.0.0.1:") || env.TLS != nil {
				t.Errorf("envelope = %+v", env)
			}
			if ev.Data.ReceivedAt.IsZero() || time.Since(ev.Data.ReceivedAt) > 5*time.Minute {
				t.Errorf("received_at = %v", ev.Data.ReceivedAt)
			}
			// The stored object is our Received header, then the bytes sent.
			stored, err := os.ReadFile(filepath.Join(srv.dataDir, filepath.FromSlash(ev.Data.Raw.Key)))
			if err != nil {
				t.Fatalf("raw object %q: %v", ev.Data.Raw.Key, err)
			}
			if !bytes.HasPrefix(stored, []byte("Received: from ")) || !bytes.HasSuffix(stored, s.body) {
				t.Errorf("stored object is not Received + the message sent (%d bytes stored, %d sent)", len(stored), len(s.body))
			}
			sum := sha256.Sum256(stored)
			if ev.Data.Raw.SHA256 != hex.EncodeToString(sum[:]) || ev.Data.Raw.Size != int64(len(stored)) {
				t.Errorf("raw = %+v, object has %d bytes", ev.Data.Raw, len(stored))
			}
			if len(ev.Data.Headers) == 0 || ev.Data.Headers[0].Name != "Received" ||
				!strings.Contains(ev.Data.Headers[0].Value, "by mx.test") || !strings.Contains(ev.Data.Headers[0].Value, ev.Data.ID) {
				t.Errorf("first header = %+v, want mailhook's Received naming the id", ev.Data.Headers[:1])
			}
			golden, err := os.ReadFile(filepath.Join("../../parse/testdata", s.name+".golden.json"))
			if err != nil {
				t.Fatalf("golden: %v", err)
			}
			var want event.Data
			if err := json.Unmarshal(golden, &want); err != nil {
				t.Fatalf("golden: %v", err)
			}
			if g, w := normalized(t, ev.Data), normalized(t, want); g != w {
				t.Errorf("event data differs from %s.golden.json:\n--- got\n%s\n--- want\n%s", s.name, g, w)
			}
		})
	}
	srv.stop()
}

// A receiver that answers 503, 503, then 200 sees three attempts with one
// webhook-id and one body, each freshly timestamped and signed.
func TestRetryKeepsWebhookID(t *testing.T) {
	var mu sync.Mutex
	var seen []delivery
	rcv := newReceiver(t, func(n int, d delivery) int {
		mu.Lock()
		seen = append(seen, d)
		mu.Unlock()
		if n <= 2 {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	srv := startServer(t, t.TempDir(), map[string]string{
		"MAILHOOK_WEBHOOK_URL":        rcv.URL(),
		"MAILHOOK_WEBHOOK_SECRET":     testSecret,
		"MAILHOOK_RETRY_INITIAL":      "100ms",
		"MAILHOOK_RETRY_MAX_INTERVAL": "300ms",
	})
	id, err := sendGoSMTP(srv.smtpAddr, "a@example.org", []string{"b@example.com"}, []byte("Subject: retry\r\n\r\nhello\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	rcv.waitFor(30*time.Second, "the third attempt", func(d []delivery) bool { return len(d) == 1 })
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 3 {
		t.Fatalf("%d attempts, want 3", len(seen))
	}
	for i, d := range seen {
		if got := header(d, "webhook-id"); got != id {
			t.Errorf("attempt %d: webhook-id %q, want %q", i+1, got, id)
		}
		if !bytes.Equal(d.Body, seen[0].Body) {
			t.Errorf("attempt %d: body differs from the first attempt's", i+1)
		}
	}
	time.Sleep(500 * time.Millisecond)
	if n := rcv.requests(); n != 3 {
		t.Errorf("%d requests after success, want 3", n)
	}
	srv.stop()
}

// kill -9 at random moments while messages are being accepted and the
// receiver is down, three times over; after the last restart every message
// that got 250 in any round is delivered.
// A server restarted on the same machine after kill -9 takes over its
// predecessor's deliveries within seconds: their claims name a process
// that is gone. With a 60 s lease TTL, waiting for the claims to run out
// would take over a minute.
func TestRestartAfterKill9DoesNotWaitForTheTTL(t *testing.T) {
	rcv := newReceiver(t, nil)
	var hang atomic.Bool
	hang.Store(true)
	var hung atomic.Int32
	// In front of the receiver: the first server's attempts hang until it
	// is killed, so that it dies holding their claims.
	stop := make(chan struct{})
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if hang.Load() {
			// Read to the end, so that the server notices the client's
			// death and cancels the request's context.
			_, _ = io.Copy(io.Discard, req.Body)
			hung.Add(1)
			select {
			case <-req.Context().Done():
			case <-stop:
			}
			return
		}
		rcv.srv.Config.Handler.ServeHTTP(w, req)
	}))
	t.Cleanup(front.Close)
	t.Cleanup(func() { close(stop) }) // runs first: no handler left waiting
	data := t.TempDir()
	env := map[string]string{
		"MAILHOOK_WEBHOOK_URL":    front.URL + "/hook",
		"MAILHOOK_WEBHOOK_SECRET": testSecret,
		"MAILHOOK_LEASE_TTL":      "60s",
		"MAILHOOK_LOG_LEVEL":      "info",
	}
	srv := startServer(t, data, env)
	const n = 3
	ids := map[string]bool{}
	for i := range n {
		msg := fmt.Appendf(nil, "From: a@example.org\r\nTo: b@example.com\r\nSubject: restart %d\r\n\r\nbody\r\n", i)
		id, err := sendGoSMTP(srv.smtpAddr, "a@example.org", []string{"b@example.com"}, msg)
		if err != nil {
			t.Fatal(err)
		}
		ids[id] = true
	}
	deadline := time.Now().Add(30 * time.Second)
	for hung.Load() < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d attempts in flight, want %d", hung.Load(), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	srv.kill9()
	hang.Store(false)

	start := time.Now()
	srv = startServer(t, data, env)
	rcv.waitFor(30*time.Second, "the three messages after the restart", func(d []delivery) bool {
		seen := map[string]bool{}
		for _, x := range d {
			if ids[header(x, "webhook-id")] {
				seen[header(x, "webhook-id")] = true
			}
		}
		return len(seen) == n
	})
	t.Logf("delivered %v after the restart (lease TTL 60s)", time.Since(start).Round(time.Millisecond))
	if !srv.logged("owner process gone", 5*time.Second) {
		t.Errorf("no takeover logged:\n%s", srv.Logs())
	}
}

func TestCrashLosesNothingAcknowledged(t *testing.T) {
	rcv := newReceiver(t, func(int, delivery) int { return http.StatusServiceUnavailable })
	data := t.TempDir()
	env := map[string]string{
		"MAILHOOK_WEBHOOK_URL":         rcv.URL(),
		"MAILHOOK_WEBHOOK_SECRET":      testSecret,
		"MAILHOOK_RETRY_INITIAL":       "100ms",
		"MAILHOOK_RETRY_MAX_INTERVAL":  "500ms",
		"MAILHOOK_LEASE_TTL":           "2s",
		"MAILHOOK_QUEUE_SCAN_INTERVAL": "500ms",
		"MAILHOOK_LOG_LEVEL":           "info",
	}
	var addr atomic.Value
	var mu sync.Mutex
	acked := map[string]bool{}
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(acked) }
	stop := make(chan struct{})
	var wg sync.WaitGroup
	srv := startServer(t, data, env)
	addr.Store(srv.smtpAddr)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				body := fmt.Sprintf("Subject: crash %d-%d\r\nMessage-ID: <%d.%d@crash.test>\r\n\r\n%s\r\n", w, i, w, i, strings.Repeat("x", 2000))
				id, err := sendGoSMTP(addr.Load().(string), "a@example.org", []string{"b@example.com"}, []byte(body))
				if err != nil {
					time.Sleep(5 * time.Millisecond)
					continue // refused or cut off by the kill: not acknowledged
				}
				mu.Lock()
				acked[id] = true
				mu.Unlock()
			}
		}(w)
	}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 0))
	var rounds []string
	for round := 0; round < 3; round++ {
		if round > 0 {
			srv = startServer(t, data, env)
			addr.Store(srv.smtpAddr)
		}
		// Crash after a random number of acknowledgements, at a random
		// moment after that.
		target := count() + 50 + rng.IntN(150)
		deadline := time.Now().Add(20 * time.Second)
		for count() < target && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		time.Sleep(time.Duration(rng.IntN(200)) * time.Millisecond)
		srv.kill9()
		rounds = append(rounds, fmt.Sprint(count()))
	}
	close(stop)
	wg.Wait()
	total := count()
	if total == 0 {
		t.Fatal("no message was acknowledged before the kills")
	}

	rcv.setStatus(func(int, delivery) int { return http.StatusOK })
	start := time.Now()
	srv2 := startServer(t, data, env)
	got := rcv.waitFor(120*time.Second, "every acknowledged message", func(d []delivery) bool {
		seen := map[string]bool{}
		for _, x := range d {
			seen[x.Event.Data.ID] = true
		}
		for id := range acked {
			if !seen[id] {
				return false
			}
		}
		return true
	})
	ids := map[string]int{}
	for _, d := range got {
		ids[d.Event.Data.ID]++
	}
	t.Logf("3 x kill -9 under load (acknowledged so far after each: %s); after restart delivered %d distinct of %d acknowledged (%d 2xx answers) in %v; lost 0",
		strings.Join(rounds, ", "), len(ids), total, len(got), time.Since(start).Round(time.Millisecond))
	srv2.stop()
}

func TestBadConfigurationExits2(t *testing.T) {
	cmd := exec.Command(binPath, "serve")
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"),
		"MAILHOOK_MAX_RECIPIENTS=many",
		"MAILHOOK_WEBHOOK_URL=not a url",
		"MAILHOOK_STORE=ftp://x",
		"MAILHOOK_MAX_BAD_COMMANDS=0",
	}
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 {
		t.Fatalf("exit = %v, want status 2\n%s", err, out)
	}
	for _, v := range []string{"MAILHOOK_MAX_RECIPIENTS", "MAILHOOK_WEBHOOK_URL", "MAILHOOK_STORE", "MAILHOOK_MAX_BAD_COMMANDS"} {
		if !strings.Contains(string(out), v) {
			t.Errorf("output does not name %s:\n%s", v, out)
		}
	}
}

// MAILHOOK_MAX_BAD_COMMANDS reaches the SMTP sessions: with 2, the second
// unknown command in a row ends the session with 421 4.7.0.
func TestMaxBadCommands(t *testing.T) {
	srv := startServer(t, t.TempDir(), map[string]string{"MAILHOOK_MAX_BAD_COMMANDS": "2"})
	c := dialRaw(t, srv.smtpAddr)
	c.expect("220 ")
	c.send("XYZZY\r\n")
	c.expect("500 5.5.2")
	c.send("XYZZY\r\n")
	c.expect("500 5.5.2")
	c.expect("421 4.7.0")
	if l, err := c.r.ReadString('\n'); err == nil {
		t.Errorf("session still open after 421: %q", l)
	}
}

// With MAILHOOK_RECIPIENTS set, postmaster is still accepted at the
// domains it serves and at MAILHOOK_HOSTNAME, bare "<Postmaster>"
// included (RFC 5321 §4.5.1), and its mail reaches the default webhook;
// postmaster at a domain not served is refused like anyone there.
func TestPostmasterAccepted(t *testing.T) {
	rcv := newReceiver(t, nil)
	srv := startServer(t, t.TempDir(), map[string]string{
		"MAILHOOK_WEBHOOK_URL":    rcv.URL(),
		"MAILHOOK_WEBHOOK_SECRET": testSecret,
		"MAILHOOK_RECIPIENTS":     "sales@example.com",
		"MAILHOOK_HOSTNAME":       "mx.example.net",
	})
	c := dialRaw(t, srv.smtpAddr)
	c.expect("220 ")
	c.send("EHLO client.example.org\r\n")
	c.expect("250 ")
	c.send("MAIL FROM:<bounce@example.org>\r\n")
	c.expect("250 ")
	for _, r := range []struct{ rcpt, want string }{
		{"<Postmaster>", "250 2.1.5"},
		{"<POSTMASTER@Example.COM>", "250 2.1.5"},
		{"<postmaster@mx.example.net>", "250 2.1.5"}, // the same mailbox as <Postmaster>
		{"<postmaster@other.example>", "550 5.1.1"},
		{"<info@example.com>", "550 5.1.1"},
	} {
		c.send("RCPT TO:" + r.rcpt + "\r\n")
		c.expect(r.want)
	}
	c.send("DATA\r\n")
	c.expect("354 ")
	c.send("From: bounce@example.org\r\nSubject: abuse report\r\n\r\nhello\r\n.\r\n")
	c.expect("250 2.0.0")
	ev := rcv.waitFor(30*time.Second, "the webhook", func(d []delivery) bool { return len(d) == 1 })[0].Event
	want := []string{"postmaster@mx.example.net", "POSTMASTER@Example.COM"}
	if !slices.Equal(ev.Data.Envelope.RcptTo, want) {
		t.Errorf("rcpt_to = %q, want %q", ev.Data.Envelope.RcptTo, want)
	}
}

// MAILHOOK_ENDPOINT_PAUSE_AFTER reaches the dispatcher: with 2, two 503s
// in a row pause the endpoint (logged, and counted in /metrics), and the
// first 2xx resumes it and delivers what waited.
func TestEndpointPauseFromEnvironment(t *testing.T) {
	var down atomic.Bool
	down.Store(true)
	rcv := newReceiver(t, func(int, delivery) int {
		if down.Load() {
			return http.StatusServiceUnavailable
		}
		return http.StatusNoContent
	})
	srv := startServer(t, t.TempDir(), map[string]string{
		"MAILHOOK_WEBHOOK_URL":          rcv.URL(),
		"MAILHOOK_WEBHOOK_SECRET":       testSecret,
		"MAILHOOK_ENDPOINT_PAUSE_AFTER": "2",
		"MAILHOOK_RETRY_INITIAL":        "200ms",
	})
	for i := range 4 {
		if _, err := sendGoSMTP(srv.smtpAddr, "a@example.org", []string{"b@example.com"},
			fmt.Appendf(nil, "From: a@example.org\r\nSubject: %d\r\n\r\nhello\r\n", i)); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(srv.Logs(), "endpoint paused") {
		if time.Now().After(deadline) {
			t.Fatal("the endpoint was not paused after failures in a row with MAILHOOK_ENDPOINT_PAUSE_AFTER=2")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if n := getMetrics(t, srv.httpAddr)["mailhook_endpoints_paused"]; n != 1 {
		t.Errorf("mailhook_endpoints_paused = %v, want 1", n)
	}
	down.Store(false)
	rcv.waitFor(30*time.Second, "the four webhooks", func(d []delivery) bool { return len(d) == 4 })
	if n := getMetrics(t, srv.httpAddr)["mailhook_endpoints_paused"]; n != 0 {
		t.Errorf("mailhook_endpoints_paused = %v once the endpoint answered, want 0", n)
	}
}

// MAILHOOK_ENDPOINT_PAUSE_AFTER=0: an endpoint is never paused, however
// many failures in a row.
func TestEndpointPauseOff(t *testing.T) {
	rcv := newReceiver(t, func(int, delivery) int { return http.StatusServiceUnavailable })
	srv := startServer(t, t.TempDir(), map[string]string{
		"MAILHOOK_WEBHOOK_URL":          rcv.URL(),
		"MAILHOOK_WEBHOOK_SECRET":       testSecret,
		"MAILHOOK_ENDPOINT_PAUSE_AFTER": "0",
		"MAILHOOK_RETRY_INITIAL":        "50ms",
		"MAILHOOK_RETRY_MAX_INTERVAL":   "100ms",
	})
	for i := range 4 {
		if _, err := sendGoSMTP(srv.smtpAddr, "a@example.org", []string{"b@example.com"},
			fmt.Appendf(nil, "From: a@example.org\r\nSubject: %d\r\n\r\nhello\r\n", i)); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for rcv.requests() < 25 {
		if time.Now().After(deadline) {
			t.Fatalf("%d requests in 30 s, want 25", rcv.requests())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if strings.Contains(srv.Logs(), "endpoint paused") {
		t.Error("paused with MAILHOOK_ENDPOINT_PAUSE_AFTER=0")
	}
}

// The parse caps reach the webhook from the environment: an attachment
// over MAILHOOK_MAX_ATTACHMENT_BYTES comes without its content, and parts
// past MAILHOOK_PARSE_MAX_PARTS are left out, each with a warning; the raw
// message keeps everything.
func TestParseLimitsFromEnvironment(t *testing.T) {
	rcv := newReceiver(t, nil)
	srv := startServer(t, t.TempDir(), map[string]string{
		"MAILHOOK_WEBHOOK_URL":          rcv.URL(),
		"MAILHOOK_WEBHOOK_SECRET":       testSecret,
		"MAILHOOK_MAX_ATTACHMENT_BYTES": "1000",
		"MAILHOOK_PARSE_MAX_PARTS":      "4",
	})
	var msg bytes.Buffer
	msg.WriteString("From: a@example.org\r\nTo: b@example.com\r\nSubject: limits\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n")
	for _, a := range []struct {
		name string
		size int
	}{{"a1.bin", 100}, {"a2.bin", 5000}, {"a3.bin", 10}, {"a4.bin", 10}} {
		fmt.Fprintf(&msg, "--b\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=%q\r\n"+
			"Content-Transfer-Encoding: base64\r\n\r\n%s\r\n", a.name, base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{'x'}, a.size)))
	}
	msg.WriteString("--b--\r\n")
	if _, err := sendGoSMTP(srv.smtpAddr, "a@example.org", []string{"b@example.com"}, msg.Bytes()); err != nil {
		t.Fatal(err)
	}
	ev := rcv.waitFor(30*time.Second, "the webhook", func(d []delivery) bool { return len(d) == 1 })[0].Event
	byName := map[string]event.Attachment{}
	for _, a := range ev.Data.Attachments {
		byName[a.Filename] = a
	}
	if a := byName["a1.bin"]; len(a.Content) != 100 {
		t.Errorf("a1.bin (100 bytes, under the cap): %d bytes of content, want 100", len(a.Content))
	}
	sum := sha256.Sum256(bytes.Repeat([]byte{'x'}, 5000))
	if a, ok := byName["a2.bin"]; !ok || a.Content != nil || a.Size != 5000 || a.SHA256 != hex.EncodeToString(sum[:]) {
		t.Errorf("a2.bin (5000 bytes, over the cap): found %v, %d bytes of content, size %d, sha256 %q; want no content, size 5000 and its sha256",
			ok, len(a.Content), a.Size, a.SHA256)
	}
	if _, ok := byName["a4.bin"]; ok {
		t.Errorf("a4.bin is past MAILHOOK_PARSE_MAX_PARTS=4 but was parsed")
	}
	warnings := strings.Join(ev.Data.Warnings, "\n")
	for _, want := range []string{"a2.bin", "larger than 1000", "more than 4 parts"} {
		if !strings.Contains(warnings, want) {
			t.Errorf("warnings %q lack %q", ev.Data.Warnings, want)
		}
	}
	if ev.Data.Raw.Size < int64(msg.Len()) {
		t.Errorf("raw message %d bytes, less than the %d sent", ev.Data.Raw.Size, msg.Len())
	}
}

// A misspelt variable is named at start, with the one it was meant to be.
func TestUnknownVariableWarned(t *testing.T) {
	srv := startServer(t, t.TempDir(), map[string]string{"MAILHOOK_WEBHOOK_SECRETS": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"})
	logs := srv.Logs()
	if !strings.Contains(logs, "MAILHOOK_WEBHOOK_SECRETS is not a mailhook variable: ignored (did you mean MAILHOOK_WEBHOOK_SECRET?)") {
		t.Errorf("no warning naming the misspelt variable:\n%s", logs)
	}
	if strings.Contains(logs, "MfKQ9r8G") {
		t.Error("the value of the unknown variable was logged")
	}
}

func TestVersionAndUsage(t *testing.T) {
	out, err := exec.Command(binPath, "version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "mailhook ") {
		t.Errorf("version: %v %q", err, out)
	}
	for _, args := range [][]string{{"frobnicate"}, {"version", "--foo"}, {"serve", "extra"}, {"replay", "--frobnicate"}} {
		err = exec.Command(binPath, args...).Run()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 {
			t.Errorf("%q: exit %v, want 2", args, err)
		}
	}
	// Asking for help is no error.
	for _, args := range [][]string{{"help"}, {"--help"}, {"replay", "--help"}, {"healthcheck", "--help"}} {
		out, err := exec.Command(binPath, args...).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "usage") && !strings.Contains(string(out), "Usage") {
			t.Errorf("%q: %v\n%s", args, err, out)
		}
	}
}

// A receiver that answers 400 gets one attempt and the delivery becomes a
// dead letter; `mailhook replay --failed`, run beside the live server,
// delivers it with the same webhook-id.
func TestDeadLetterAndReplay(t *testing.T) {
	var mu sync.Mutex
	var ids []string
	rcv := newReceiver(t, func(n int, d delivery) int {
		mu.Lock()
		ids = append(ids, header(d, "webhook-id"))
		mu.Unlock()
		if n == 1 {
			return http.StatusBadRequest
		}
		return http.StatusOK
	})
	data := t.TempDir()
	env := map[string]string{
		"MAILHOOK_WEBHOOK_URL":         rcv.URL(),
		"MAILHOOK_WEBHOOK_SECRET":      testSecret,
		"MAILHOOK_QUEUE_SCAN_INTERVAL": "200ms",
	}
	srv := startServer(t, data, env)
	id, err := sendGoSMTP(srv.smtpAddr, "a@example.org", []string{"b@example.com"}, []byte("Subject: dead letter\r\n\r\nhello\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	failedKey := filepath.Join(data, "deliveries", "failed", id+"-1.json")
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := os.Stat(failedKey); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no dead letter at %s", failedKey)
		}
		time.Sleep(50 * time.Millisecond)
	}
	rec, err := os.ReadFile(failedKey)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(rec, []byte(`"status": 400`)) && !bytes.Contains(rec, []byte(`"status":400`)) {
		t.Errorf("dead letter lacks the attempt log with status 400:\n%s", rec)
	}
	if n := rcv.requests(); n != 1 {
		t.Fatalf("%d attempts for a 400, want 1", n)
	}

	replay := exec.Command(binPath, "replay", "--failed")
	replay.Env = []string{"PATH=" + os.Getenv("PATH"), "MAILHOOK_STORE=file://" + data, "MAILHOOK_WEBHOOK_URL=" + rcv.URL()}
	out, err := replay.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "replayed 1 deliveries") {
		t.Fatalf("replay: %v\n%s", err, out)
	}
	rcv.waitFor(20*time.Second, "the replayed delivery", func(d []delivery) bool { return len(d) == 1 })
	mu.Lock()
	defer mu.Unlock()
	if len(ids) != 2 || ids[0] != id || ids[1] != id {
		t.Errorf("webhook-ids = %v, want [%s %s]", ids, id, id)
	}
	srv.stop()
}

type gosmtpError = gosmtp.SMTPError

// A message routed to two endpoints makes two events, each with its own
// recipients and its own webhook-id (the message's id for the first, the
// second delivery's for the other), so a receiver behind both routes that
// drops duplicates by webhook-id keeps both. Both verify with the stock
// library (the receiver checks every request); data.id is the message's.
func TestRoutedEventsHaveTheirOwnWebhookIDs(t *testing.T) {
	rcv := newReceiver(t, nil)
	srv := startServer(t, t.TempDir(), map[string]string{
		"MAILHOOK_ROUTES":         "a@example.com=" + rcv.srv.URL + "/a;c@example.com=" + rcv.srv.URL + "/c",
		"MAILHOOK_WEBHOOK_SECRET": testSecret,
	})
	id, err := sendGoSMTP(srv.smtpAddr, "s@example.org", []string{"a@example.com", "c@example.com"}, []byte("Subject: two routes\r\n\r\nhello\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	got := rcv.waitFor(30*time.Second, "both events", func(d []delivery) bool { return len(d) == 2 })
	byRcpt := map[string]string{}
	for _, d := range got {
		if d.Event.Data.ID != id || len(d.Event.Data.Envelope.RcptTo) != 1 {
			t.Errorf("event %+v", d.Event.Data)
			continue
		}
		byRcpt[d.Event.Data.Envelope.RcptTo[0]] = header(d, "webhook-id")
	}
	if byRcpt["a@example.com"] != id || byRcpt["c@example.com"] != id+"-2" {
		t.Errorf("webhook-ids by recipient %v, want %s and %s-2", byRcpt, id, id)
	}
	srv.stop()
}

// TestStoreLogSetting: MAILHOOK_STORE_LOG decides whether the filesystem
// store makes accepted messages durable through its log (.tmp/wal in the
// store) or through a syncfs each.
func TestStoreLogSetting(t *testing.T) {
	probe := t.TempDir()
	st, err := fs.New(probe)
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	if _, err := os.Stat(filepath.Join(probe, ".tmp", "wal")); err != nil {
		t.Skipf("no log on this filesystem: %v", err)
	}
	for _, tc := range []struct {
		value string
		want  bool
	}{{"", true}, {"true", true}, {"false", false}} {
		t.Run("MAILHOOK_STORE_LOG="+tc.value, func(t *testing.T) {
			data := t.TempDir()
			env := map[string]string{}
			if tc.value != "" {
				env["MAILHOOK_STORE_LOG"] = tc.value
			}
			srv := startServer(t, data, env)
			sendTo(t, srv, 1)
			entries, _ := os.ReadDir(filepath.Join(data, ".tmp", "wal"))
			if got := len(entries) > 0; got != tc.want {
				t.Errorf("a log in the store: %t, want %t", got, tc.want)
			}
		})
	}
}
