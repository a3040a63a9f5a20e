package main

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mailhook/mailhook/signing"
)

const (
	testSecret  = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	otherSecret = "whsec_bW9yZS1vci1sZXNzLWFub3RoZXItc2VjcmV0"
)

var testBody = []byte(`{"type":"email.received","version":1,"data":{"id":"evt_1",` +
	`"envelope":{"mail_from":"a@example.org","rcpt_to":["b@example.com"]},"subject":"hello",` +
	`"attachments":[{"filename":"x.pdf"}],"raw":{"key":"raw/evt_1.eml","size":123},"unknown":true}}`)

func TestReceiver(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	signed := func(t *testing.T, secret, id string, ts time.Time, body []byte) http.Header {
		t.Helper()
		s, err := signing.NewSigner(secret)
		if err != nil {
			t.Fatal(err)
		}
		h := http.Header{}
		s.SetHeaders(h, id, ts, body)
		return h
	}
	tests := []struct {
		name     string
		method   string
		header   http.Header
		body     []byte
		wantCode int
		wantOut  string
	}{
		{"correctly signed", "POST", signed(t, testSecret, "evt_1", now, testBody), testBody, http.StatusNoContent,
			`email.received evt_1 from="a@example.org" to=["b@example.com"] subject="hello" attachments=["x.pdf"] raw=raw/evt_1.eml`},
		{"other secret", "POST", signed(t, otherSecret, "evt_1", now, testBody), testBody, http.StatusUnauthorized, "rejected"},
		{"body altered", "POST", signed(t, testSecret, "evt_1", now, testBody),
			bytes.Replace(testBody, []byte("hello"), []byte("forged"), 1), http.StatusUnauthorized, "no matching"},
		{"id altered", "POST", func() http.Header {
			h := signed(t, testSecret, "evt_1", now, testBody)
			h.Set(signing.HeaderID, "evt_2")
			return h
		}(), testBody, http.StatusUnauthorized, "rejected"},
		{"stale timestamp", "POST", signed(t, testSecret, "evt_1", now.Add(-time.Hour), testBody), testBody, http.StatusUnauthorized, "timestamp"},
		{"unsigned", "POST", http.Header{}, testBody, http.StatusUnauthorized, "missing"},
		{"GET", "GET", http.Header{}, nil, http.StatusMethodNotAllowed, ""},
	}
	signer, err := signing.NewSigner(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			h := newHandler(signer, &out, func() time.Time { return now })
			req := httptest.NewRequest(tt.method, "/webhook", bytes.NewReader(tt.body))
			for k, v := range tt.header {
				req.Header[k] = v
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tt.wantCode {
				t.Errorf("status %d, want %d (body %q)", rec.Code, tt.wantCode, rec.Body)
			}
			if !strings.Contains(out.String(), tt.wantOut) {
				t.Errorf("printed %q, want it to contain %q", out.String(), tt.wantOut)
			}
		})
	}
}

func TestReceiverDropsDuplicates(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	// Rotation: the receiver holds the old and new secret; mailhook signs
	// with the new one only.
	signer, err := signing.NewSigner(otherSecret, testSecret)
	if err != nil {
		t.Fatal(err)
	}
	mailhook, err := signing.NewSigner(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	h := newHandler(signer, &out, func() time.Time { return now })
	for i := range 2 {
		req := httptest.NewRequest("POST", "/webhook", bytes.NewReader(testBody))
		mailhook.SetHeaders(req.Header, "evt_1", now.Add(time.Duration(i)*time.Minute), testBody)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusNoContent {
			t.Fatalf("attempt %d: status %d, want 204", i+1, rec.Code)
		}
	}
	if got := strings.Count(out.String(), "email.received evt_1"); got != 1 {
		t.Errorf("printed the event %d times, want once:\n%s", got, out.String())
	}
	if !strings.Contains(out.String(), "duplicate evt_1 ignored") {
		t.Errorf("second attempt not reported as a duplicate:\n%s", out.String())
	}
}
