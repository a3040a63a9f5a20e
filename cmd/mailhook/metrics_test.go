package main

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mailhook/mailhook/internal/promtext"
)

// getMetrics scrapes GET /metrics and returns every sample keyed by its
// series as exposed (name{label="value",…}).
func getMetrics(t *testing.T, httpAddr string) map[string]float64 {
	t.Helper()
	resp, err := http.Get("http://" + httpAddr + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %d %v\n%s", resp.StatusCode, err, body)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("GET /metrics Content-Type = %q", ct)
	}
	samples, err := promtext.Parse(body)
	if err != nil {
		t.Fatal(err)
	}
	return samples
}

// waitMetrics polls /metrics until cond holds.
func waitMetrics(t *testing.T, httpAddr, what string, cond func(map[string]float64) bool) map[string]float64 {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		m := getMetrics(t, httpAddr)
		if cond(m) {
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestMetricsMoveAfterOneMessage(t *testing.T) {
	rcv := newReceiver(t, nil)
	srv := startServer(t, t.TempDir(), map[string]string{
		"MAILHOOK_WEBHOOK_URL":    rcv.URL(),
		"MAILHOOK_WEBHOOK_SECRET": testSecret,
		"MAILHOOK_RECIPIENTS":     "*@example.com",
	})

	const (
		accepted  = `mailhook_smtp_messages_total{reason="",result="accepted"}`
		delivered = `mailhook_deliveries_total{outcome="delivered"}`
		puts      = `mailhook_store_operation_duration_seconds_count{op="put",result="ok"}`
		moves     = `mailhook_store_operation_duration_seconds_count{op="move",result="ok"}`
	)
	before := getMetrics(t, srv.httpAddr)
	buildInfo := false
	for k, v := range before {
		if strings.HasPrefix(k, "mailhook_build_info{") && strings.Contains(k, `version="`+"dev"+`"`) && strings.Contains(k, `goversion="go`) && v == 1 {
			buildInfo = true
		}
	}
	if !buildInfo {
		t.Error(`mailhook_build_info{goversion="go…",version="dev"} 1 missing`)
	}
	for _, series := range []string{accepted, delivered, "mailhook_queue_pending", "mailhook_smtp_sessions_active",
		"mailhook_queue_oldest_pending_age_seconds", "mailhook_deliveries_in_flight", "go_goroutines"} {
		if v, ok := before[series]; !ok || v != 0 && !strings.HasPrefix(series, "go_") {
			t.Errorf("before any mail: %s = %v (present %v), want 0", series, v, ok)
		}
	}

	msg := []byte("From: a@example.org\r\nTo: b@example.com\r\nSubject: metrics\r\n\r\nCount me.\r\n")
	if _, err := sendGoSMTP(srv.smtpAddr, "a@example.org", []string{"b@example.com"}, msg); err != nil {
		t.Fatal(err)
	}
	rcv.waitFor(30*time.Second, "the delivery", func(d []delivery) bool { return len(d) == 1 })

	after := waitMetrics(t, srv.httpAddr, "the delivery and the session end to be counted", func(m map[string]float64) bool {
		return m[delivered] == 1 && m["mailhook_smtp_sessions_active"] == 0 && m["mailhook_queue_pending"] == 0
	})
	for series, want := range map[string]float64{
		accepted: 1,
		`mailhook_smtp_sessions_total{result="accepted"}`:       1,
		`mailhook_smtp_commands_total{class="2xx",verb="EHLO"}`: 1,
		`mailhook_smtp_commands_total{class="2xx",verb="MAIL"}`: 1,
		`mailhook_smtp_commands_total{class="2xx",verb="RCPT"}`: 1,
		`mailhook_smtp_commands_total{class="2xx",verb="DATA"}`: 1,
		`mailhook_smtp_commands_total{class="2xx",verb="QUIT"}`: 1,
		"mailhook_smtp_message_size_bytes_count":                1,
		`mailhook_delivery_attempts_total{class="2xx"}`:         1,
		`mailhook_deliveries_total{outcome="failed"}`:           0,
		"mailhook_delivery_attempt_duration_seconds_count":      1,
		"mailhook_deliveries_in_flight":                         0,
	} {
		if got := after[series]; got != want {
			t.Errorf("after one message: %s = %v, want %v", series, got, want)
		}
	}
	if got := after["mailhook_smtp_received_bytes_total"]; got != float64(len(msg)) {
		t.Errorf("mailhook_smtp_received_bytes_total = %v, want %d", got, len(msg))
	}
	// The raw message and its delivery record (one batch on the
	// filesystem store), then the record moved to delivered.
	if got := after[puts]; got < 1 {
		t.Errorf("%s = %v, want ≥ 1", puts, got)
	}
	if got := after[moves]; got != 1 {
		t.Errorf("%s = %v, want 1", moves, got)
	}
}
