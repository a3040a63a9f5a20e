package config

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

func lookupMap(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestDefaults(t *testing.T) {
	c, err := Load(lookupMap(nil))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if c.SMTPAddr != ":2525" || c.HTTPAddr != ":8080" || c.Store != "file://./data" ||
		c.MaxMessageBytes != 26214400 || c.MaxRecipients != 100 || c.S3Region != "us-east-1" ||
		c.RetryInitial != 10*time.Second || c.RetryMaxInterval != time.Hour || c.RetryMaxElapsed != 72*time.Hour ||
		c.BareNewline != "normalize" || c.StoreCommitDelay != 2*time.Millisecond || !c.StoreLog {
		t.Errorf("defaults wrong: %+v", c)
	}
	if c.Hostname == "" {
		t.Error("Hostname default is empty")
	}
}

// Every duration may be given in days too.
func TestDurationsInDays(t *testing.T) {
	c, err := Load(lookupMap(map[string]string{
		"MAILHOOK_RETENTION": "7d", "MAILHOOK_FAILED_RETENTION": "1.5d", "MAILHOOK_RETRY_MAX_ELAPSED": "2d",
		"MAILHOOK_RETRY_MAX_INTERVAL": "90m",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Retention != 7*24*time.Hour || c.FailedRetention != 36*time.Hour || c.RetryMaxElapsed != 48*time.Hour ||
		c.RetryMaxInterval != 90*time.Minute {
		t.Errorf("got %s, %s, %s, %s", c.Retention, c.FailedRetention, c.RetryMaxElapsed, c.RetryMaxInterval)
	}
	for _, v := range []string{"d", "1h2d", "NaNd", "Infd", "1e9d"} {
		if _, err := Load(lookupMap(map[string]string{"MAILHOOK_RETENTION": v})); err == nil {
			t.Errorf("MAILHOOK_RETENTION=%q accepted", v)
		}
	}
}

func TestEveryBadVariableIsNamed(t *testing.T) {
	_, err := Load(lookupMap(map[string]string{
		"MAILHOOK_MAX_RECIPIENTS":       "lots",
		"MAILHOOK_RETRY_INITIAL":        "soon",
		"MAILHOOK_S3_PATH_STYLE":        "maybe",
		"MAILHOOK_RECIPIENTS":           "ok@example.com,not-an-address",
		"MAILHOOK_WEBHOOK_URL":          "ftp://x/",
		"MAILHOOK_WEBHOOK_SECRET":       "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw,whsec_!!!",
		"MAILHOOK_ROUTES":               "a@b.com",
		"MAILHOOK_STORE":                "gopher://x",
		"MAILHOOK_TLS_CERT_FILE":        "/nonexistent/cert.pem",
		"MAILHOOK_BARE_NEWLINE":         "ignore",
		"MAILHOOK_SMTP_ADDR":            "25",
		"MAILHOOK_MAX_MESSAGE_BYTES":    "0",
		"MAILHOOK_STORE_COMMIT_DELAY":   "-1ms",
		"MAILHOOK_MAX_BAD_COMMANDS":     "0",
		"MAILHOOK_MAX_ATTACHMENT_BYTES": "-1",
		"MAILHOOK_PARSE_MAX_PARTS":      "0",
		"MAILHOOK_PARSE_MAX_DEPTH":      "-3",
		"MAILHOOK_PARSE_TIMEOUT":        "0s",
		"MAILHOOK_RETENTION":            "-1d",
		"MAILHOOK_FAILED_RETENTION":     "2w",
		"MAILHOOK_DELIVERY_CONCURRENCY": "-4",
		"MAILHOOK_HOSTNAME":             "mx\r\n250 injected",
		"MAILHOOK_ADMIN_TOKEN":          " ",
	}))
	var ce *Error
	if !errors.As(err, &ce) {
		t.Fatalf("Load error = %v, want *Error", err)
	}
	for _, v := range []string{"MAX_RECIPIENTS", "RETRY_INITIAL", "S3_PATH_STYLE", "RECIPIENTS:", "WEBHOOK_URL",
		"WEBHOOK_SECRET: secret #2", "ROUTES", "STORE", "TLS_CERT_FILE", "TLS_KEY_FILE", "BARE_NEWLINE", "SMTP_ADDR", "MAX_MESSAGE_BYTES",
		"STORE_COMMIT_DELAY=-1ms: want 0 to 1s", "MAX_BAD_COMMANDS=0", "MAX_ATTACHMENT_BYTES=-1", "PARSE_MAX_PARTS=0",
		"PARSE_MAX_DEPTH=-3", "PARSE_TIMEOUT=0s", "RETENTION=-24h0m0s: must not be negative",
		`FAILED_RETENTION="2w": not a valid duration like 30s, 5m, 1h or 7d`, "DELIVERY_CONCURRENCY=-4: must not be negative",
		`HOSTNAME="mx\r\n250 injected": character '\r'`, "ADMIN_TOKEN: must not contain spaces"} {
		if !strings.Contains(err.Error(), "MAILHOOK_"+v) {
			t.Errorf("error does not name MAILHOOK_%s:\n%v", v, err)
		}
	}
	// A value that does not parse is reported once, not checked again as
	// the zero value it left behind.
	for _, v := range []string{"MAX_RECIPIENTS", "RETRY_INITIAL"} {
		if n := strings.Count(err.Error(), "MAILHOOK_"+v); n != 1 {
			t.Errorf("MAILHOOK_%s named %d times:\n%v", v, n, err)
		}
	}
	if strings.Contains(err.Error(), "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw") {
		t.Error("error text leaks a secret")
	}
}

func TestParseStore(t *testing.T) {
	tests := []struct {
		in   string
		want StoreURL
	}{
		{"file://./data", StoreURL{Scheme: "file", Path: "./data"}},
		{"file:///var/lib/mailhook", StoreURL{Scheme: "file", Path: "/var/lib/mailhook"}},
		{"file:data", StoreURL{Scheme: "file", Path: "data"}},
		{"s3://bucket", StoreURL{Scheme: "s3", Bucket: "bucket"}},
		{"s3://bucket/a/b/", StoreURL{Scheme: "s3", Bucket: "bucket", Prefix: "a/b"}},
	}
	for _, tc := range tests {
		got, err := ParseStore(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseStore(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "s3://", "file://", "http://x/y", "::"} {
		if _, err := ParseStore(bad); err == nil {
			t.Errorf("ParseStore(%q) accepted", bad)
		}
	}
}

func TestEffectiveRedactsSecrets(t *testing.T) {
	c, err := Load(lookupMap(map[string]string{
		"MAILHOOK_WEBHOOK_SECRET": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
		"MAILHOOK_ADMIN_TOKEN":    "hunter2",
		"MAILHOOK_WEBHOOK_URL":    "https://alice:S3cretPassw0rd@hooks.example.com/in?token=QSECRET",
		"MAILHOOK_ROUTES":         "*@a.example=https://bob:B0bPass@a.example/h;*@b.example=https://b.example/h?key=KSECRET",
	}))
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := c.WriteEffective(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	if strings.Contains(out, "hunter2") || strings.Contains(out, "MfKQ9r8G") || strings.Contains(out, "S3cretPassw0rd") ||
		strings.Contains(out, "QSECRET") || strings.Contains(out, "B0bPass") || strings.Contains(out, "KSECRET") {
		t.Errorf("secrets printed:\n%s", out)
	}
	for _, want := range []string{"MAILHOOK_ADMIN_TOKEN=<redacted>", "MAILHOOK_SMTP_ADDR=:2525", "MAILHOOK_RETRY_MAX_ELAPSED=72h0m0s",
		"MAILHOOK_WEBHOOK_URL=https://alice:xxxxx@hooks.example.com/in?token=xxxxx",
		"MAILHOOK_ROUTES=*@a.example=https://bob:xxxxx@a.example/h;*@b.example=https://b.example/h?key=xxxxx"} {
		if !strings.Contains(out, want) {
			t.Errorf("effective config lacks %q:\n%s", want, out)
		}
	}
}

// The SPEC's variables must all exist; the help table must list every field.
func TestSpecVariablesExist(t *testing.T) {
	known := map[string]bool{}
	for _, f := range Fields() {
		known[f.Var] = true
		if f.Help == "" {
			t.Errorf("%s has no help text", f.Var)
		}
	}
	for _, v := range []string{"SMTP_ADDR", "HTTP_ADDR", "HOSTNAME", "RECIPIENTS", "WEBHOOK_URL", "WEBHOOK_SECRET",
		"ROUTES", "STORE", "S3_ENDPOINT", "S3_REGION", "S3_PATH_STYLE", "MAX_MESSAGE_BYTES", "MAX_RECIPIENTS",
		"RETRY_INITIAL", "RETRY_MAX_INTERVAL", "RETRY_MAX_ELAPSED", "TLS_CERT_FILE", "TLS_KEY_FILE", "ADMIN_TOKEN"} {
		if !known[Prefix+v] {
			t.Errorf("SPEC variable %s%s missing", Prefix, v)
		}
	}
	var b bytes.Buffer
	if err := WriteHelp(&b); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(b.String(), "\n| `MAILHOOK_"); n != len(Fields()) {
		t.Errorf("help table has %d rows, want %d", n, len(Fields()))
	}
}

// The README's configuration table is generated from the struct; this test
// fails when they drift (regenerate with: go run ./cmd/mailhook config --help-env).
func TestReadmeTableInSync(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatalf("read README: %v", err)
	}
	var b bytes.Buffer
	if err := WriteHelp(&b); err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(readme, b.Bytes()) {
		t.Errorf("README.md's configuration table differs from `mailhook config --help-env`; paste its output into README.md")
	}
}

func TestProxyAndTLSRequired(t *testing.T) {
	_, err := Load(lookupMap(map[string]string{
		"MAILHOOK_PROXY_PROTOCOL": "10.0.0.0/8, 10.0.0.0/33,nonsense",
		"MAILHOOK_TLS_REQUIRED":   "true",
	}))
	if err == nil {
		t.Fatal("want an error")
	}
	for _, want := range []string{`MAILHOOK_PROXY_PROTOCOL: "10.0.0.0/33"`, `"nonsense"`, "MAILHOOK_TLS_REQUIRED=true"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	nets, err := ParseNetworks("10.1.2.3/8, 192.0.2.7, fd00::/8")
	if err != nil || len(nets) != 3 || nets[0].String() != "10.0.0.0/8" || nets[1].String() != "192.0.2.7/32" {
		t.Errorf("ParseNetworks = %v, %v", nets, err)
	}
}

func TestHostname(t *testing.T) {
	for _, h := range []string{"mx.example.com", "mx", "MX-1.example.com.", "[192.0.2.1]", "[IPv6:2001:db8::1]", "a_b.example.com"} {
		if err := validHostname(h); err != nil {
			t.Errorf("validHostname(%q) = %v, want nil", h, err)
		}
	}
	for _, h := range []string{"", "mx example.com", "mx\r\n250 x", "<mx>", "-mx.example.com", "mx..example.com",
		strings.Repeat("a", 64) + ".com", "[::1]", "[IPv6:192.0.2.1]", "[192.0.2.1", "[not an ip]"} {
		if err := validHostname(h); err == nil {
			t.Errorf("validHostname(%q) = nil, want an error", h)
		}
	}
	c, err := Load(lookupMap(map[string]string{}))
	if err != nil {
		t.Fatal(err)
	}
	if validHostname(c.Hostname) != nil {
		t.Errorf("default hostname %q is not a valid one", c.Hostname)
	}
}
