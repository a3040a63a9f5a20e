package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mailhook/mailhook/signing"
)

// sink is the webhook receiver: it verifies each delivery's Standard
// Webhooks signature, finds the message's token in the event and reports
// the arrival to the tracker. It is deliberately cheap: the body is read
// into a pooled buffer and scanned, never decoded into structs.
type sink struct {
	ln     net.Listener
	srv    *http.Server
	url    string
	signer *signing.Signer // nil: signatures are not checked
	run    string

	mu  sync.Mutex
	trk *tracker            // set by attach; nil until the load starts
	ids map[string]struct{} // webhook-ids seen

	requests   atomic.Int64 // POSTs received
	verified   atomic.Int64 // POSTs whose signature verified (or all, unchecked)
	sigFails   atomic.Int64
	dupIDs     atomic.Int64 // webhook-id seen before
	dupTokens  atomic.Int64 // token seen before under another or the same id
	foreign    atomic.Int64 // no token of this run (earlier runs, other mail)
	bytes      atomic.Int64
	badRequest atomic.Int64

	bufs sync.Pool // *bytes.Buffer

	// downFor (-sink-down): answer 503 to every request for this long
	// from attach on, as a receiver in an outage; downUntil is when that
	// ends (Unix ns, 0: never down).
	downFor   time.Duration
	downUntil atomic.Int64
	refused   atomic.Int64 // requests answered 503 while down
}

// maxEventBytes bounds one webhook body: a 25 MB message becomes about
// 26 MB of JSON (its attachments decoded and re-encoded as base64), far
// more if its parts are not base64 on the wire.
const maxEventBytes = 256 << 20

// startSink listens on addr (e.g. "127.0.0.1:0") and serves until Close.
// secret is the whsec_… secret to verify with ("" = do not verify); run is
// the run id whose tokens count.
func startSink(addr, secret, run string) (*sink, error) {
	s := &sink{run: run, ids: make(map[string]struct{}, 1<<14)}
	if secret != "" {
		signer, err := signing.NewSigner(secret)
		if err != nil {
			return nil, fmt.Errorf("-secret: %w", err)
		}
		s.signer = signer
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("-sink %s: %w", addr, err)
	}
	s.ln = ln
	s.url = "http://" + ln.Addr().String() + "/webhook"
	s.srv = &http.Server{Handler: s, ReadHeaderTimeout: 30 * time.Second, IdleTimeout: 5 * time.Minute}
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

// URL is the endpoint to configure as MAILHOOK_WEBHOOK_URL.
func (s *sink) URL() string { return s.url }

// attach starts matching webhooks against trk. Webhooks that arrive before
// are counted as foreign.
func (s *sink) attach(trk *tracker) {
	s.mu.Lock()
	s.trk = trk
	s.mu.Unlock()
	if s.downFor > 0 {
		s.downUntil.Store(time.Now().Add(s.downFor).UnixNano())
	}
}

// Close stops the server.
func (s *sink) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := s.srv.Shutdown(ctx); err != nil {
		return s.srv.Close()
	}
	return nil
}

func (s *sink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	now := time.Now()
	s.requests.Add(1)
	if until := s.downUntil.Load(); until != 0 && now.UnixNano() < until {
		s.refused.Add(1)
		_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, maxEventBytes))
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	buf, _ := s.bufs.Get().(*bytes.Buffer)
	if buf == nil {
		buf = new(bytes.Buffer)
	}
	defer func() {
		if buf.Cap() <= 4<<20 { // do not pin huge bodies
			buf.Reset()
			s.bufs.Put(buf)
		}
	}()
	buf.Reset()
	if r.ContentLength > 0 && r.ContentLength <= maxEventBytes {
		buf.Grow(int(r.ContentLength))
	}
	n, err := buf.ReadFrom(io.LimitReader(r.Body, maxEventBytes+1))
	s.bytes.Add(n)
	if err != nil || n > maxEventBytes {
		s.badRequest.Add(1)
		http.Error(w, "bad body", http.StatusBadRequest)
		return
	}
	body := buf.Bytes()
	if s.signer != nil {
		if err := s.signer.VerifyRequest(r.Header, body, time.Now(), 0); err != nil {
			s.sigFails.Add(1)
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
	}
	s.verified.Add(1)

	id := r.Header.Get(signing.HeaderID)
	s.mu.Lock()
	trk := s.trk
	_, seen := s.ids[id]
	if !seen {
		s.ids[id] = struct{}{}
	}
	s.mu.Unlock()
	if seen {
		s.dupIDs.Add(1)
	}

	seq, ok := eventToken(body, s.run)
	known, dup := false, false
	if ok && trk != nil {
		known, dup = trk.Webhook(seq, now)
	}
	switch {
	case !known:
		s.foreign.Add(1)
	case dup:
		s.dupTokens.Add(1)
	}
	w.WriteHeader(http.StatusNoContent)
}

// eventToken finds the token of run in the event's data.subject or
// data.message_id. It first scans for the two keys (a JSON encoder escapes
// quotes inside strings, so `"subject":"` can only be a key, and the event
// schema has exactly one such key), and falls back to a streaming decode.
func eventToken(body []byte, run string) (uint64, bool) {
	for _, key := range []string{`"subject":"`, `"message_id":"`} {
		if v, ok := quickString(body, key); ok {
			if seq, ok := findToken(v, run); ok {
				return seq, true
			}
		}
	}
	return streamToken(body, run)
}

// quickString returns the raw (still escaped) string value after key.
func quickString(body []byte, key string) ([]byte, bool) {
	i := bytes.Index(body, []byte(key))
	if i < 0 {
		return nil, false
	}
	v := body[i+len(key):]
	for j := 0; j < len(v); j++ {
		switch v[j] {
		case '\\':
			j++
		case '"':
			return v[:j], true
		}
	}
	return nil, false
}

// streamToken walks the event with a streaming decoder, to data.subject and
// data.message_id, whatever the spacing, skipping other values unparsed.
func streamToken(body []byte, run string) (uint64, bool) {
	dec := json.NewDecoder(bytes.NewReader(body))
	if !expectDelim(dec, '{') {
		return 0, false
	}
	for dec.More() {
		key, ok := nextKey(dec)
		if !ok {
			return 0, false
		}
		if key != "data" {
			if !skipValue(dec) {
				return 0, false
			}
			continue
		}
		if !expectDelim(dec, '{') {
			return 0, false
		}
		for dec.More() {
			k, ok := nextKey(dec)
			if !ok {
				return 0, false
			}
			if k == "subject" || k == "message_id" {
				tok, err := dec.Token()
				if err != nil {
					return 0, false
				}
				if str, isStr := tok.(string); isStr {
					if seq, ok := findToken([]byte(str), run); ok {
						return seq, true
					}
				}
				continue
			}
			if !skipValue(dec) {
				return 0, false
			}
		}
		return 0, false
	}
	return 0, false
}

func expectDelim(dec *json.Decoder, d json.Delim) bool {
	tok, err := dec.Token()
	return err == nil && tok == d
}

func nextKey(dec *json.Decoder) (string, bool) {
	tok, err := dec.Token()
	if err != nil {
		return "", false
	}
	k, ok := tok.(string)
	return k, ok
}

// skipValue consumes one value, however nested.
func skipValue(dec *json.Decoder) bool {
	depth := 0
	for {
		tok, err := dec.Token()
		if err != nil {
			return false
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			depth++
		case json.Delim('}'), json.Delim(']'):
			depth--
		}
		if depth == 0 {
			return true
		}
	}
}

// sinkStats is a snapshot of the sink's counters.
type sinkStats struct {
	Requests, Verified, SigFails, DupIDs, DupTokens, Foreign, Bytes, BadRequests, Refused int64
}

func (s *sink) stats() sinkStats {
	return sinkStats{
		Requests: s.requests.Load(), Verified: s.verified.Load(), SigFails: s.sigFails.Load(),
		DupIDs: s.dupIDs.Load(), DupTokens: s.dupTokens.Load(), Foreign: s.foreign.Load(),
		Bytes: s.bytes.Load(), BadRequests: s.badRequest.Load(), Refused: s.refused.Load(),
	}
}
