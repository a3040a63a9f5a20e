package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailhook/mailhook/event"
	"github.com/mailhook/mailhook/queue"
	"github.com/mailhook/mailhook/store/fs"
)

// A dry run says what the replay would do: a dead letter with nowhere to
// go (no endpoint then, none now) is reported as one that could not be
// replayed, with the replay's exit status, until an endpoint is given.
// Neither run changes the store.
func TestReplayDryRunSaysWhatReplayWould(t *testing.T) {
	dir := t.TempDir()
	st, err := fs.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	q := queue.New(queue.Options{Store: st}) // no route: a dead letter at once
	id := event.NewID(time.Now())
	env := event.Envelope{MailFrom: "a@example.org", RcptTo: []string{"b@example.com"}, Helo: "c.example.org"}
	if err := q.Accept(t.Context(), id, time.Now(), env, strings.NewReader("Subject: x\r\n\r\nx\r\n")); err != nil {
		t.Fatal(err)
	}
	st.Close()
	failed := filepath.Join(dir, "deliveries", "failed", id+"-1.json")

	replay := func(args ...string) (string, string, error) {
		vars := map[string]string{"MAILHOOK_STORE": "file://" + dir}
		lookup := func(name string) (string, bool) { v, ok := vars[name]; return v, ok }
		var stdout, stderr bytes.Buffer
		err := run(context.Background(), append([]string{"replay"}, args...), lookup, &stdout, &stderr, func() {})
		return stdout.String(), stderr.String(), err
	}
	out, errOut, err := replay("--failed", "--dry-run")
	if exitCode(err, &bytes.Buffer{}) != 1 || !strings.Contains(out, "would replay 0 deliveries") ||
		!strings.Contains(errOut, "would not replay "+id+"-1") || !strings.Contains(errOut, "no webhook endpoint") {
		t.Errorf("dry run without an endpoint: %v\n%s%s", err, out, errOut)
	}
	out, errOut, err = replay("--failed", "--dry-run", "--endpoint", "https://hooks.example.com/in")
	if err != nil || !strings.Contains(out, "would replay "+id+"-1 event "+id+" to https://hooks.example.com/in") ||
		!strings.Contains(out, "would replay 1 deliveries") {
		t.Errorf("dry run with an endpoint: %v\n%s%s", err, out, errOut)
	}
	if _, err := os.Stat(failed); err != nil {
		t.Errorf("the dead letter moved in a dry run: %v", err)
	}
	// Credentials in the endpoint are not printed, by either run.
	const secret = "https://hook:s3cret@hooks.example.com/in?token=t0ken"
	const shown = "https://hook:xxxxx@hooks.example.com/in?token=xxxxx"
	for _, args := range [][]string{{"--dry-run"}, {"--rate", "0"}} {
		out, errOut, err = replay(append([]string{"--failed", "--endpoint", secret}, args...)...)
		if err != nil || !strings.Contains(out, id+" to "+shown) || strings.Contains(out+errOut, "s3cret") || strings.Contains(out+errOut, "t0ken") {
			t.Errorf("replay %v: %v\n%s%s", args, err, out, errOut)
		}
	}
}

// replay on a filesystem store that does not exist is bad usage (a
// mistyped path), and creates nothing.
func TestReplayMissingStore(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "nonexistent")
	lookup := func(name string) (string, bool) {
		if name == "MAILHOOK_STORE" {
			return "file://" + dir, true
		}
		return "", false
	}
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"replay", "--failed", "--dry-run"}, lookup, &stdout, &stderr, func() {})
	var ue usageError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "no such directory") {
		t.Errorf("replay on a missing store: %v, want a usage error naming it", err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("replay created the store directory: %v", err)
	}
}

// A dead letter that cannot be read is reported and skipped: the others
// are replayed, and the exit status says one could not be.
func TestReplaySkipsUnreadableRecords(t *testing.T) {
	dir := t.TempDir()
	st, err := fs.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	q := queue.New(queue.Options{Store: st}) // no route: dead letters at once
	var ids []string
	for range 3 {
		id := event.NewID(time.Now())
		env := event.Envelope{MailFrom: "a@example.org", RcptTo: []string{"b@example.com"}}
		if err := q.Accept(t.Context(), id, time.Now(), env, strings.NewReader("Subject: x\r\n\r\nx\r\n")); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id+"-1")
	}
	st.Close()
	for i, body := range []string{"", "{\"version\":1,\"id\""} { // empty, and cut
		if err := os.WriteFile(filepath.Join(dir, "deliveries", "failed", ids[i]+".json"), []byte(body), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	vars := map[string]string{"MAILHOOK_STORE": "file://" + dir}
	lookup := func(name string) (string, bool) { v, ok := vars[name]; return v, ok }
	var stdout, stderr bytes.Buffer
	err = run(context.Background(), []string{"replay", "--failed", "--rate", "0", "--endpoint", "https://hooks.example.com/in"}, lookup, &stdout, &stderr, func() {})
	if exitCode(err, &bytes.Buffer{}) != 1 || !strings.Contains(stdout.String(), "replayed "+ids[2]) || !strings.Contains(stdout.String(), "replayed 1 deliveries") ||
		!strings.Contains(stderr.String(), "record is empty") || !strings.Contains(stderr.String(), "record is damaged") {
		t.Errorf("replay: %v\nstdout: %s\nstderr: %s", err, stdout.String(), stderr.String())
	}
}

// --rate takes 0 or a rate a ticker can keep; anything else is bad usage,
// not a crash or no limit.
func TestReplayRate(t *testing.T) {
	for _, rate := range []string{"NaN", "-1", "Inf", "-Inf", "2e9", "1e-12"} {
		var stdout, stderr bytes.Buffer
		err := run(context.Background(), []string{"replay", "--failed", "--rate", rate}, func(string) (string, bool) { return "", false }, &stdout, &stderr, func() {})
		var ue usageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), "--rate") {
			t.Errorf("--rate %s: %v, want a usage error naming --rate", rate, err)
		}
	}
}

// replay --pending sends pending deliveries now, to where their
// recipients route in the configuration of the run (the webhook URL was
// mistyped when the mail came in), or to --endpoint; --failed with it is
// bad usage.
func TestReplayPending(t *testing.T) {
	dir := t.TempDir()
	st, err := fs.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	q := queue.New(queue.Options{Store: st, Router: queue.RouterFunc(func(string) string { return "https://typo.example.com/in" })})
	id := event.NewID(time.Now())
	env := event.Envelope{MailFrom: "a@example.org", RcptTo: []string{"b@example.com"}, Helo: "c.example.org"}
	if err := q.Accept(t.Context(), id, time.Now(), env, strings.NewReader("Subject: x\r\n\r\nx\r\n")); err != nil {
		t.Fatal(err)
	}
	st.Close()
	replay := func(args ...string) (string, string, error) {
		vars := map[string]string{"MAILHOOK_STORE": "file://" + dir, "MAILHOOK_WEBHOOK_URL": "https://hooks.example.com/in"}
		lookup := func(name string) (string, bool) { v, ok := vars[name]; return v, ok }
		var stdout, stderr bytes.Buffer
		err := run(context.Background(), append([]string{"replay"}, args...), lookup, &stdout, &stderr, func() {})
		return stdout.String(), stderr.String(), err
	}
	endpoint := func() string {
		st, err := fs.New(dir)
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		d, err := queue.New(queue.Options{Store: st}).Load(t.Context(), id+"-1")
		if err != nil {
			t.Fatal(err)
		}
		return d.Endpoint
	}
	if _, _, err := replay("--failed", "--pending"); exitCode(err, &bytes.Buffer{}) != 2 {
		t.Errorf("--failed --pending: %v, want bad usage", err)
	}
	out, errOut, err := replay("--pending", "--dry-run")
	if err != nil || !strings.Contains(out, "would replay pending "+id+"-1 event "+id+" to https://hooks.example.com/in") || endpoint() != "https://typo.example.com/in" {
		t.Errorf("dry run: %v\n%s%s", err, out, errOut)
	}
	out, errOut, err = replay("--pending", "--rate", "0")
	if err != nil || !strings.Contains(out, "replayed pending "+id+"-1") || !strings.Contains(out, "replayed 1 deliveries") || endpoint() != "https://hooks.example.com/in" {
		t.Errorf("replay --pending: %v\n%s%s", err, out, errOut)
	}
	out, errOut, err = replay("--pending", "--id", id, "--endpoint", "https://other.example.com/in")
	if err != nil || !strings.Contains(out, "to https://other.example.com/in") || endpoint() != "https://other.example.com/in" {
		t.Errorf("replay --pending --id --endpoint: %v\n%s%s", err, out, errOut)
	}
	if _, _, err := replay("--failed", "--id", id); err == nil {
		t.Error("replay --failed --id of a pending delivery: no error")
	}
}
