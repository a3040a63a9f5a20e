package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/mailhook/mailhook/internal/s3test"
)

// bigMessage builds a message of about size bytes with a base64 attachment.
func bigMessage(subject string, size int) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: a@example.org\r\nTo: b@example.com\r\nSubject: %s\r\nMIME-Version: 1.0\r\n", subject)
	b.WriteString("Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\nContent-Type: text/plain\r\n\r\nsee attachment\r\n")
	b.WriteString("--b1\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=\"blob.bin\"\r\nContent-Transfer-Encoding: base64\r\n\r\n")
	line := strings.Repeat("QUJD", 19) + "\r\n" // 76 base64 chars
	for b.Len() < size-len("--b1--\r\n") {
		b.WriteString(line)
	}
	b.WriteString("--b1--\r\n")
	return b.Bytes()
}

func getObject(t *testing.T, s3srv *s3test.Server, key string) []byte {
	t.Helper()
	out, err := s3srv.Client().GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(s3srv.Bucket), Key: aws.String(key)})
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// SMTP → versitygw → webhook for 200 B, 70 KB and 6 MB messages; the stored
// object equals what was sent, after mailhook's Received header.
func TestS3EndToEnd(t *testing.T) {
	s3srv := s3test.Start(t)
	rcv := newReceiver(t, nil)
	env := s3srv.Env()
	env["MAILHOOK_WEBHOOK_URL"] = rcv.URL()
	env["MAILHOOK_WEBHOOK_SECRET"] = testSecret
	srv := startServer(t, t.TempDir(), env)

	sizes := map[string]int{"200B": 200, "70KB": 70 << 10, "6MB": 6 << 20}
	sent := map[string][]byte{}
	for name, size := range sizes {
		msg := bigMessage("s3 "+name, size)
		if size <= 200 {
			msg = []byte("From: a@example.org\r\nSubject: s3 " + name + "\r\n\r\n" + strings.Repeat("x", 120) + "\r\n")
		}
		id, err := sendGoSMTP(srv.smtpAddr, "a@example.org", []string{"b@example.com"}, msg)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		sent[id] = msg
	}
	got := rcv.waitFor(120*time.Second, "three webhooks", func(d []delivery) bool { return len(d) == 3 })
	for _, d := range got {
		data := d.Event.Data
		msg, ok := sent[data.ID]
		if !ok {
			t.Fatalf("webhook for unknown id %s", data.ID)
		}
		obj := getObject(t, s3srv, data.Raw.Key)
		if !bytes.HasPrefix(obj, []byte("Received: ")) || !bytes.HasSuffix(obj, msg) {
			t.Errorf("%s: stored object (%d bytes) is not Received + the %d bytes sent", data.Subject, len(obj), len(msg))
		}
		sum := sha256.Sum256(obj)
		if data.Raw.Size != int64(len(obj)) || data.Raw.SHA256 != hex.EncodeToString(sum[:]) {
			t.Errorf("%s: raw = %+v, object has %d bytes", data.Subject, data.Raw, len(obj))
		}
		if strings.HasSuffix(data.Subject, "6MB") && (len(data.Attachments) != 1 || data.Attachments[0].Size < 4<<20) {
			t.Errorf("6MB: attachments = %d", len(data.Attachments))
		}
	}
	srv.stop()
}

func readyz(t *testing.T, httpAddr string) int {
	t.Helper()
	c := http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get("http://" + httpAddr + "/readyz")
	if err != nil {
		t.Fatalf("readyz: %v", err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// While the S3 server is down /readyz is 503 and SMTP answers 4xx, so
// nothing is acknowledged; when it is back, service resumes without a
// restart of mailhook.
func TestS3Outage(t *testing.T) {
	s3srv := s3test.Start(t)
	rcv := newReceiver(t, nil)
	env := s3srv.Env()
	env["MAILHOOK_WEBHOOK_URL"] = rcv.URL()
	env["MAILHOOK_WEBHOOK_SECRET"] = testSecret
	env["MAILHOOK_RETRY_INITIAL"] = "200ms"
	env["MAILHOOK_RETRY_MAX_INTERVAL"] = "1s"
	srv := startServer(t, t.TempDir(), env)
	if code := readyz(t, srv.httpAddr); code != http.StatusOK {
		t.Fatalf("readyz = %d before the outage", code)
	}
	if _, err := sendGoSMTP(srv.smtpAddr, "a@example.org", []string{"b@example.com"}, []byte("Subject: before\r\n\r\nx\r\n")); err != nil {
		t.Fatal(err)
	}

	s3srv.Stop()
	if code := readyz(t, srv.httpAddr); code != http.StatusServiceUnavailable {
		t.Errorf("readyz = %d during the outage, want 503", code)
	}
	for i := 0; i < 3; i++ {
		id, err := sendGoSMTP(srv.smtpAddr, "a@example.org", []string{"b@example.com"}, []byte("Subject: during\r\n\r\nx\r\n"))
		if err == nil {
			t.Fatalf("message acknowledged as %s while the store was down", id)
		}
		var se *gosmtpError
		if !errors.As(err, &se) || se.Code/100 != 4 {
			t.Errorf("during the outage: %v, want a 4xx reply", err)
		}
	}

	s3srv.Restart()
	deadline := time.Now().Add(30 * time.Second)
	for readyz(t, srv.httpAddr) != http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatal("readyz did not recover after the S3 server came back")
		}
		time.Sleep(200 * time.Millisecond)
	}
	if _, err := sendGoSMTP(srv.smtpAddr, "a@example.org", []string{"b@example.com"}, []byte("Subject: after\r\n\r\nx\r\n")); err != nil {
		t.Fatalf("after the outage: %v", err)
	}
	got := rcv.waitFor(60*time.Second, "before and after", func(d []delivery) bool { return len(d) >= 2 })
	subjects := map[string]bool{}
	for _, d := range got {
		subjects[d.Event.Data.Subject] = true
	}
	if !subjects["before"] || !subjects["after"] || subjects["during"] {
		t.Errorf("delivered subjects = %v", subjects)
	}
	srv.stop()
}

// A missing bucket and wrong credentials stop start-up with exit status 2
// and a message naming what to fix.
func TestS3BadConfiguration(t *testing.T) {
	s3srv := s3test.Start(t)
	tests := []struct {
		name string
		mod  func(map[string]string)
		want string
	}{
		{"missing bucket", func(e map[string]string) { e["MAILHOOK_STORE"] = "s3://no-such-bucket" }, "MAILHOOK_STORE"},
		{"wrong secret", func(e map[string]string) { e["AWS_SECRET_ACCESS_KEY"] = "wrong" }, "AWS_ACCESS_KEY_ID"},
		{"unreachable", func(e map[string]string) { e["MAILHOOK_S3_ENDPOINT"] = "http://127.0.0.1:1" }, "MAILHOOK_S3_ENDPOINT"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := s3srv.Env()
			tc.mod(env)
			cmd := exec.Command(binPath, "serve")
			cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "MAILHOOK_SMTP_ADDR=127.0.0.1:0", "MAILHOOK_HTTP_ADDR=127.0.0.1:0"}
			for k, v := range env {
				cmd.Env = append(cmd.Env, k+"="+v)
			}
			out, err := cmd.CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 2 {
				t.Fatalf("exit = %v, want status 2\n%s", err, out)
			}
			if !strings.Contains(string(out), tc.want) {
				t.Errorf("output does not name %s:\n%s", tc.want, out)
			}
		})
	}
}

// A server whose only fault is that If-Match creates a missing key (MinIO
// before the fix of minio/minio#21526) is used, with a warning naming the
// fault; a server that ignores conditional writes altogether still stops
// start-up (TestS3BadConfiguration).
func TestS3IfMatchCreatesWarns(t *testing.T) {
	lax := s3test.StartIfMatchCreates(t, "lax")
	for k, v := range map[string]string{
		"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_SESSION_TOKEN": "", "AWS_PROFILE": "",
		"AWS_CONFIG_FILE": "/nonexistent/mailhook", "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/mailhook",
		"AWS_EC2_METADATA_DISABLED": "true",
	} {
		t.Setenv(k, v)
	}
	env := map[string]string{
		"MAILHOOK_STORE":         "s3://lax",
		"MAILHOOK_S3_ENDPOINT":   lax.Endpoint,
		"MAILHOOK_S3_PATH_STYLE": "true",
		"MAILHOOK_LOG_FORMAT":    "json",
	}
	cfg, err := loadConfig(func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	st, err := openStore(t.Context(), cfg, newLogger(cfg, &logs))
	if err != nil {
		t.Fatalf("openStore: %v", err)
	}
	if st == nil || !strings.Contains(logs.String(), `"level":"WARN"`) || !strings.Contains(logs.String(), "If-Match") {
		t.Errorf("store %v, logs %q: want the store and a warning about If-Match", st, logs.String())
	}
	if n := lax.Keys(); n != 0 {
		t.Errorf("probe left %d objects", n)
	}
}

// On S3, deliveries held by a paused endpoint until their claims have
// grown old are each delivered once when the endpoint answers again: the
// first attempt of such a delivery checks the record it read against the
// store's ETag (a HEAD) instead of rewriting it.
func TestS3BacklogAfterPause(t *testing.T) {
	s3srv := s3test.Start(t)
	var down atomic.Bool
	down.Store(true)
	rcv := newReceiver(t, func(int, delivery) int {
		if down.Load() {
			return http.StatusServiceUnavailable
		}
		return http.StatusNoContent
	})
	env := s3srv.Env()
	env["MAILHOOK_WEBHOOK_URL"] = rcv.URL()
	env["MAILHOOK_WEBHOOK_SECRET"] = testSecret
	env["MAILHOOK_ENDPOINT_PAUSE_AFTER"] = "2"
	env["MAILHOOK_RETRY_INITIAL"] = "200ms"
	env["MAILHOOK_LEASE_TTL"] = "2s" // claims too old to start under after 0.9 s
	srv := startServer(t, t.TempDir(), env)
	const n = 6
	for i := range n {
		if _, err := sendGoSMTP(srv.smtpAddr, "a@example.org", []string{"b@example.com"},
			fmt.Appendf(nil, "From: a@example.org\r\nSubject: %d\r\n\r\nhello\r\n", i)); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(srv.Logs(), "endpoint paused") {
		if time.Now().After(deadline) {
			t.Fatal("the endpoint was not paused")
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(1500 * time.Millisecond) // the claims of the parked deliveries grow old
	down.Store(false)
	rcv.waitFor(60*time.Second, "every message", func(d []delivery) bool { return len(d) >= n })
	time.Sleep(time.Second) // a second delivery of any would show now
	got := rcv.accepted()
	ids := map[string]int{}
	for _, d := range got {
		ids[d.Header.Get("webhook-id")]++
	}
	if len(got) != n || len(ids) != n {
		t.Errorf("%d webhooks answered 2xx for %d webhook-ids, want %d of each", len(got), len(ids), n)
	}
	srv.stop()
}
