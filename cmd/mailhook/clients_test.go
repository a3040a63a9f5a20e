package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Real-world clients we did not write. They are installed by .ci/run; on a
// machine without them the test says so and skips.

func TestPythonSmtplib(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 is not installed; .ci/run runs this test where it is")
	}
	rcv := newReceiver(t, nil)
	srv := startServer(t, t.TempDir(), map[string]string{
		"MAILHOOK_WEBHOOK_URL":    rcv.URL(),
		"MAILHOOK_WEBHOOK_SECRET": testSecret,
		"MAILHOOK_RECIPIENTS":     "*@example.com",
	})
	host, port := splitAddr(t, srv.smtpAddr)
	script := `
import smtplib, sys
from email.message import EmailMessage
m = EmailMessage()
m["From"] = "Zoë Sender <zoe@example.org>"
m["To"] = "hello@example.com"
m["Subject"] = "Grüße from smtplib"
m.set_content("Plain body ✓\n.leading dot line\n")
m.add_alternative("<p>HTML body ✓</p>", subtype="html")
m.add_attachment(b"col1,col2\n1,2\n", maintype="text", subtype="csv", filename="data.csv")
with smtplib.SMTP(sys.argv[1], int(sys.argv[2])) as s:
    s.ehlo("python.test")
    refused = s.send_message(m)
    assert not refused, refused
    # International addresses, SMTPUTF8 asked for as the docs show: smtplib
    # then sends the parameter twice.
    u = EmailMessage()
    u["From"] = "Zoë <zoë@example.org>"
    u["To"] = "grüße@example.com"
    u["Subject"] = "international"
    u.set_content("hi\n")
    refused = s.send_message(u, mail_options=["SMTPUTF8"])
    assert not refused, refused
    # A script's message: text, no header at all.
    refused = s.sendmail("zoe@example.org", ["hello@example.com"], "Hello from a script\nSee you: soon\n")
    assert not refused, refused
    try:
        s.sendmail("zoe@example.org", ["nobody@elsewhere.test"], "Subject: x\r\n\r\nx\r\n")
        sys.exit("unknown recipient was accepted")
    except smtplib.SMTPRecipientsRefused as e:
        code, text = e.recipients["nobody@elsewhere.test"]
        assert code == 550 and text.startswith(b"5.1.1"), (code, text)
print("ok")
`
	out, err := exec.Command(py, "-c", script, host, port).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "ok") {
		t.Fatalf("smtplib: %v\n%s", err, out)
	}
	got := rcv.waitFor(30*time.Second, "the smtplib messages", func(d []delivery) bool { return len(d) == 3 })
	var intl delivery
	for i, d := range got {
		if d.Event.Data.Subject == "international" {
			intl = d
			got = append(got[:i:i], got[i+1:]...)
			break
		}
	}
	if env := intl.Event.Data.Envelope; env.MailFrom != "zoë@example.org" || len(env.RcptTo) != 1 || env.RcptTo[0] != "grüße@example.com" || !env.SMTPUTF8 {
		t.Errorf("the SMTPUTF8 message: envelope %+v", env)
	}
	if got[0].Event.Data.Subject == "" {
		got[0], got[1] = got[1], got[0]
	}
	if bare := got[1].Event.Data; bare.Text != "Hello from a script\r\nSee you: soon\r\n" || bare.Subject != "" || len(bare.Headers) != 1 {
		t.Errorf("the message without a header: text %q, subject %q, headers %q", bare.Text, bare.Subject, bare.Headers)
	}
	verifyWithPythonLibrary(t, py, got)
	data := got[0].Event.Data
	if data.Subject != "Grüße from smtplib" || len(data.From) != 1 || data.From[0].Name != "Zoë Sender" ||
		!strings.Contains(data.Text, "Plain body ✓") || !strings.Contains(data.Text, ".leading dot line") ||
		!strings.Contains(data.HTML, "HTML body ✓") || len(data.Attachments) != 1 || data.Attachments[0].Filename != "data.csv" ||
		string(data.Attachments[0].Content) != "col1,col2\n1,2\n" {
		t.Errorf("event data = %+v", data)
	}
	if data.Envelope.Helo != "python.test" || data.Envelope.MailFrom != "zoe@example.org" {
		t.Errorf("envelope = %+v", data.Envelope)
	}
}

// verifyWithPythonLibrary checks the deliveries' signatures with the
// Python package standardwebhooks, which the Go module of the reference
// libraries carries (standard library only, so no pip needed).
func verifyWithPythonLibrary(t *testing.T, py string, ds []delivery) {
	t.Helper()
	dir, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/standard-webhooks/standard-webhooks/libraries").Output()
	if err != nil || len(bytes.TrimSpace(dir)) == 0 {
		t.Fatalf("go list the standard-webhooks module: %v", err)
	}
	type signed struct {
		Headers map[string]string `json:"headers"`
		Body    []byte            `json:"body"`
	}
	var in []signed
	for _, d := range ds {
		h := map[string]string{}
		for _, k := range []string{"webhook-id", "webhook-timestamp", "webhook-signature"} {
			h[k] = d.Header.Get(k)
		}
		in = append(in, signed{h, d.Body})
	}
	input, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	script := `
import base64, json, sys
from standardwebhooks import Webhook
wh = Webhook(sys.argv[1])
for d in json.load(sys.stdin):
    wh.verify(base64.b64decode(d["body"]), d["headers"])
print("verified")
`
	cmd := exec.Command(py, "-c", script, testSecret)
	cmd.Env = append(os.Environ(), "PYTHONPATH="+filepath.Join(string(bytes.TrimSpace(dir)), "python"))
	cmd.Stdin = bytes.NewReader(input)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "verified") {
		t.Errorf("the Python standardwebhooks library refused a delivery: %v\n%s", err, out)
	}
}

func TestSwaks(t *testing.T) {
	swaks, err := exec.LookPath("swaks")
	if err != nil {
		t.Skip("swaks is not installed; .ci/run installs it (Debian package swaks)")
	}
	rcv := newReceiver(t, nil)
	srv := startServer(t, t.TempDir(), map[string]string{
		"MAILHOOK_WEBHOOK_URL":    rcv.URL(),
		"MAILHOOK_WEBHOOK_SECRET": testSecret,
	})
	for _, extra := range [][]string{nil, {"--pipeline"}} {
		args := append([]string{"--server", srv.smtpAddr, "--to", "hello@example.com", "--from", "me@example.org",
			"--helo", "swaks.test", "--header", "Subject: from swaks", "--body", "It works."}, extra...)
		out, err := exec.Command(swaks, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("swaks %v: %v\n%s", extra, err, out)
		}
		if !strings.Contains(string(out), "250 2.0.0 Ok: queued as ") {
			t.Errorf("swaks %v transcript lacks the queued reply:\n%s", extra, out)
		}
	}
	got := rcv.waitFor(30*time.Second, "both swaks messages", func(d []delivery) bool { return len(d) == 2 })
	for _, d := range got {
		if d.Event.Data.Subject != "from swaks" || !strings.Contains(d.Event.Data.Text, "It works.") {
			t.Errorf("event data = %+v", d.Event.Data)
		}
	}
}

func splitAddr(t *testing.T, addr string) (string, string) {
	t.Helper()
	i := strings.LastIndexByte(addr, ':')
	if i < 0 {
		t.Fatalf("bad address %q", addr)
	}
	return addr[:i], addr[i+1:]
}
