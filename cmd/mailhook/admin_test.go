package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailhook/mailhook/queue"
)

const testAdminToken = "admin-token-for-tests-0123456789"

// adminCall is one admin API request to a running server.
func adminCall(t *testing.T, srv *server, method, path, auth, body string) (*http.Response, []byte) {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, "http://"+srv.httpAddr+path, r)
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", method, path, err)
	}
	return resp, b
}

// admin calls the admin API with the right token, checks the status and
// decodes the JSON answer into v (if not nil).
func admin(t *testing.T, srv *server, method, path, body string, code int, v any) []byte {
	t.Helper()
	resp, b := adminCall(t, srv, method, path, "Bearer "+testAdminToken, body)
	if resp.StatusCode != code {
		t.Fatalf("%s %s: status %d, want %d; body %s", method, path, resp.StatusCode, code, b)
	}
	if v != nil {
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatalf("%s %s: %v\n%s", method, path, err, b)
		}
	}
	return b
}

type adminList struct {
	Deliveries []queue.Delivery `json:"deliveries"`
	Next       string           `json:"next"`
}

// waitList polls GET /v1/deliveries?state=… until it holds n deliveries.
func waitList(t *testing.T, srv *server, state string, n int) []queue.Delivery {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var l adminList
		admin(t, srv, "GET", "/v1/deliveries?state="+state, "", http.StatusOK, &l)
		if len(l.Deliveries) == n {
			return l.Deliveries
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d %s deliveries listed, want %d", len(l.Deliveries), state, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// The admin API, end to end: a receiver answers 400, the dead letter shows
// in the listing with its attempt log, its event and raw message can be
// fetched, and a replay through the API delivers it with the same
// webhook-id.
func TestAdminAPI(t *testing.T) {
	var mu sync.Mutex
	var seen []delivery
	rcv := newReceiver(t, func(n int, d delivery) int {
		mu.Lock()
		seen = append(seen, d)
		mu.Unlock()
		if n == 1 {
			return http.StatusBadRequest
		}
		return http.StatusOK
	})
	data := t.TempDir()
	srv := startServer(t, data, map[string]string{
		"MAILHOOK_WEBHOOK_URL":         rcv.URL(),
		"MAILHOOK_WEBHOOK_SECRET":      testSecret,
		"MAILHOOK_ADMIN_TOKEN":         testAdminToken,
		"MAILHOOK_QUEUE_SCAN_INTERVAL": "200ms",
	})
	msg := []byte("From: a@example.org\r\nTo: b@example.com\r\nSubject: admin API\r\n\r\nbody with trailing spaces   \r\n\tand a tab\r\n")
	id, err := sendGoSMTP(srv.smtpAddr, "a@example.org", []string{"b@example.com"}, msg)
	if err != nil {
		t.Fatal(err)
	}
	recID := queue.RecordID(id, 1)

	// The token is required.
	for _, auth := range []string{"", "Bearer wrong", "Basic " + testAdminToken, "Bearer " + testAdminToken[1:]} {
		resp, body := adminCall(t, srv, "GET", "/v1/deliveries?state=failed", auth, "")
		if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("Authorization %q: status %d, WWW-Authenticate %q: %s", auth, resp.StatusCode, resp.Header.Get("WWW-Authenticate"), body)
		}
	}
	resp, _ := adminCall(t, srv, "POST", "/v1/deliveries/"+recID+"/replay", "Bearer wrong", "")
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("replay with a wrong token: status %d", resp.StatusCode)
	}

	// The dead letter is listed, with its attempt log.
	failed := waitList(t, srv, "failed", 1)
	if d := failed[0]; d.ID != recID || d.EventID != id || len(d.Attempts) != 1 || d.Attempts[0].Status != http.StatusBadRequest {
		t.Errorf("listed %+v", d)
	}
	var one queue.Delivery
	admin(t, srv, "GET", "/v1/deliveries/"+recID, "", http.StatusOK, &one)
	if one.ID != recID || one.State != queue.StateFailed || one.Attempts[0].Status != http.StatusBadRequest {
		t.Errorf("shown %+v", one)
	}
	admin(t, srv, "GET", "/v1/deliveries/"+queue.RecordID(id, 2), "", http.StatusNotFound, nil)
	admin(t, srv, "GET", "/v1/deliveries/..%2F..%2Fconfig", "", http.StatusBadRequest, nil)

	// The event is the body that was POSTed, byte for byte.
	ev := admin(t, srv, "GET", "/v1/events/"+id, "", http.StatusOK, nil)
	mu.Lock()
	first := seen[0]
	mu.Unlock()
	if !bytes.Equal(ev, first.Body) {
		t.Errorf("GET /v1/events/%s:\n%s\nwant the POSTed body:\n%s", id, ev, first.Body)
	}

	// The raw message is the stored object, byte for byte.
	stored, err := os.ReadFile(filepath.Join(data, "raw", id+".eml"))
	if err != nil {
		t.Fatal(err)
	}
	resp, raw := adminCall(t, srv, "GET", "/v1/events/"+id+"/raw", "Bearer "+testAdminToken, "")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "message/rfc822" {
		t.Fatalf("raw: status %d, Content-Type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if !bytes.Equal(raw, stored) {
		t.Errorf("raw download (%d bytes) differs from the stored object (%d bytes)", len(raw), len(stored))
	}
	if !bytes.HasSuffix(raw, msg) {
		t.Errorf("raw download does not end with the message as sent:\n%q", raw)
	}
	if resp.ContentLength != int64(len(stored)) {
		t.Errorf("Content-Length %d, want %d", resp.ContentLength, len(stored))
	}

	// A dry run by filter changes nothing.
	var rr struct {
		Replayed  []string `json:"replayed"`
		Count     int      `json:"count"`
		DryRun    bool     `json:"dry_run"`
		Truncated bool     `json:"truncated"`
	}
	admin(t, srv, "POST", "/v1/replay", `{"failed": true, "since": "1h", "dry_run": true}`, http.StatusOK, &rr)
	if rr.Count != 1 || len(rr.Replayed) != 1 || rr.Replayed[0] != recID || !rr.DryRun || rr.Truncated {
		t.Errorf("dry run: %+v", rr)
	}
	admin(t, srv, "POST", "/v1/replay", `{"since": "2999-01-01T00:00:00Z", "dry_run": true}`, http.StatusOK, &rr)
	if rr.Count != 0 {
		t.Errorf("dry run since the future: %+v", rr)
	}
	admin(t, srv, "POST", "/v1/replay", `{"dry_run": true}`, http.StatusBadRequest, nil)
	time.Sleep(300 * time.Millisecond) // more than a queue scan
	if n := rcv.requests(); n != 1 {
		t.Fatalf("%d requests after dry runs, want 1", n)
	}
	waitList(t, srv, "failed", 1)

	// Replay by id: delivered with the same webhook-id and body.
	var replayed queue.Delivery
	admin(t, srv, "POST", "/v1/deliveries/"+recID+"/replay", "", http.StatusAccepted, &replayed)
	if replayed.ID != recID || replayed.State == queue.StateFailed || replayed.Replays != 1 {
		t.Errorf("replay answered %+v", replayed)
	}
	got := rcv.waitFor(20*time.Second, "the replayed delivery", func(d []delivery) bool { return len(d) == 1 })
	if h := header(got[0], "webhook-id"); h != id {
		t.Errorf("replayed webhook-id %q, want %q", h, id)
	}
	if !bytes.Equal(got[0].Body, first.Body) {
		t.Error("the replayed body differs from the first attempt's")
	}
	delivered := waitList(t, srv, "delivered", 1)
	if d := delivered[0]; d.ID != recID || len(d.Attempts) != 2 || d.Attempts[1].Status != http.StatusOK {
		t.Errorf("delivered %+v", d)
	}
	waitList(t, srv, "failed", 0)
	admin(t, srv, "POST", "/v1/deliveries/"+recID+"/replay", "", http.StatusConflict, nil)

	if logs := srv.Logs(); strings.Contains(logs, testAdminToken[:12]) {
		t.Error("the log shows the admin token")
	}
	srv.stop()
}

// Without MAILHOOK_ADMIN_TOKEN the admin API is off.
func TestAdminAPIOff(t *testing.T) {
	srv := startServer(t, t.TempDir(), nil)
	resp, body := adminCall(t, srv, "GET", "/v1/deliveries?state=failed", "Bearer x", "")
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("status %d, want 404: %s", resp.StatusCode, body)
	}
	srv.stop()
}
