package main

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/mailhook/mailhook/event"
	"github.com/mailhook/mailhook/internal/s3test"
)

// MAILHOOK_RETENTION deletes a delivered message, record and raw message,
// once it is older than the period, while a dead letter (no
// MAILHOOK_FAILED_RETENTION) keeps its record and its raw message; on the
// filesystem store and on S3.
func TestRetention(t *testing.T) {
	t.Run("fs", func(t *testing.T) {
		dir := t.TempDir()
		testRetention(t, dir, nil, func(key string) {
			p := filepath.Join(dir, filepath.FromSlash(key))
			if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte("Subject: lost\r\n\r\n"), 0o640); err != nil {
				t.Fatal(err)
			}
		}, func(key string) bool {
			_, err := os.Stat(filepath.Join(dir, filepath.FromSlash(key)))
			return err == nil
		})
	})
	t.Run("s3", func(t *testing.T) {
		s3srv := s3test.Start(t)
		client := s3srv.Client()
		testRetention(t, t.TempDir(), s3srv.Env(), func(key string) {
			if _, err := client.PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String(s3srv.Bucket), Key: aws.String(key),
				Body: strings.NewReader("Subject: lost\r\n\r\n")}); err != nil {
				t.Fatalf("PUT %s: %v", key, err)
			}
		}, func(key string) bool {
			_, err := client.HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: aws.String(s3srv.Bucket), Key: aws.String(key)})
			var nf *types.NotFound
			if err != nil && !errors.As(err, &nf) {
				t.Fatalf("HEAD %s: %v", key, err)
			}
			return err == nil
		})
	})
}

func testRetention(t *testing.T, dir string, env map[string]string, put func(key string), exists func(key string) bool) {
	// A raw message that a crash left without records two hours ago, and
	// one of a minute ago, which may still be on its way to its records.
	orphan, young := "raw/"+event.NewID(time.Now().Add(-2*time.Hour))+".eml", "raw/"+event.NewID(time.Now().Add(-time.Minute))+".eml"
	put(orphan)
	put(young)

	rcv := newReceiver(t, func(_ int, d delivery) int {
		if strings.Contains(d.Event.Data.Subject, "refused") {
			return http.StatusGone // a dead letter at once
		}
		return http.StatusNoContent
	})
	if env == nil {
		env = map[string]string{}
	}
	env["MAILHOOK_WEBHOOK_URL"] = rcv.URL()
	env["MAILHOOK_WEBHOOK_SECRET"] = testSecret
	env["MAILHOOK_RETENTION"] = "2s"
	srv := startServer(t, dir, env)
	ids := map[string]string{}
	for _, subject := range []string{"kept a while", "refused"} {
		id, err := sendGoSMTP(srv.smtpAddr, "a@example.org", []string{"b@example.com"},
			[]byte("From: a@example.org\r\nSubject: "+subject+"\r\n\r\nhello\r\n"))
		if err != nil {
			t.Fatal(err)
		}
		ids[subject] = id
	}
	rcv.waitFor(30*time.Second, "the delivery", func(d []delivery) bool { return len(d) == 1 })
	raw := func(subject string) string { return "raw/" + ids[subject] + ".eml" }
	record := func(subject, state string) string { return "deliveries/" + state + "/" + ids[subject] + "-1.json" }

	// Both are finished within the period, then the delivered one goes.
	deadline := time.Now().Add(30 * time.Second)
	for exists(raw("kept a while")) || exists(record("kept a while", "delivered")) {
		if time.Now().After(deadline) {
			t.Fatalf("delivered message still stored after 30 s with MAILHOOK_RETENTION=2s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !exists(raw("refused")) || !exists(record("refused", "failed")) {
		t.Errorf("the dead letter lost its record or raw message without MAILHOOK_FAILED_RETENTION")
	}
	if n := rcv.requests(); n != 2 {
		t.Errorf("%d webhook requests, want 2", n)
	}
	if exists(orphan) || !exists(young) {
		t.Errorf("orphaned raw message of two hours ago left: %v, of a minute ago left: %v; want false, true", exists(orphan), exists(young))
	}
	m := getMetrics(t, srv.httpAddr)
	for _, series := range []string{`mailhook_expired_total{kind="delivered"}`, `mailhook_expired_total{kind="raw"}`, `mailhook_expired_total{kind="orphan"}`} {
		if m[series] != 1 {
			t.Errorf("%s = %v, want 1", series, m[series])
		}
	}
}
