package httpapi

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"iter"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailhook/mailhook/event"
	"github.com/mailhook/mailhook/queue"
	"github.com/mailhook/mailhook/store"
)

const testToken = "s3cret-admin-token-0123456789"

// fakeBackend is an in-memory AdminBackend.
type fakeBackend struct {
	mu      sync.Mutex
	recs    map[string]*queue.Delivery
	raws    map[string][]byte // by raw key
	replays []string          // "id endpoint" per Replay call
	// openRaw, if set, replaces the raw reader (for the streaming test).
	openRaw func(d *queue.Delivery) io.ReadCloser
	listErr error
	damaged map[string]bool // record ids whose Load finds them damaged
}

func newFakeBackend() *fakeBackend {
	return &fakeBackend{recs: map[string]*queue.Delivery{}, raws: map[string][]byte{}}
}

// add stores a record of message msgID (n-th endpoint) in state s, with
// a raw message.
func (f *fakeBackend) add(msgID string, n int, s queue.State, endpoint string, receivedAt time.Time, raw []byte) *queue.Delivery {
	f.mu.Lock()
	defer f.mu.Unlock()
	d := &queue.Delivery{
		Version:    queue.RecordVersion,
		ID:         queue.RecordID(msgID, n),
		EventID:    msgID,
		Endpoint:   endpoint,
		Envelope:   event.Envelope{MailFrom: "a@example.org", RcptTo: []string{fmt.Sprintf("b%d@example.com", n)}},
		ReceivedAt: receivedAt,
		Raw:        event.Raw{Key: queue.RawKey(msgID), Size: int64(len(raw))},
		State:      s,
		Attempts:   []queue.Attempt{{At: receivedAt, Endpoint: endpoint, Status: 400}},
	}
	f.recs[d.ID] = d
	f.raws[d.Raw.Key] = raw
	return d
}

func (f *fakeBackend) IDs(ctx context.Context, s queue.State, after string) iter.Seq2[string, error] {
	return func(yield func(string, error) bool) {
		if f.listErr != nil {
			yield("", f.listErr)
			return
		}
		f.mu.Lock()
		var ids []string
		for id, d := range f.recs {
			if d.State == s {
				ids = append(ids, id)
			}
		}
		f.mu.Unlock()
		slices.Sort(ids) // key order
		for _, id := range ids {
			if !yield(id, nil) {
				return
			}
		}
	}
}

func (f *fakeBackend) Load(ctx context.Context, recID string) (*queue.Delivery, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	d, ok := f.recs[recID]
	if !ok {
		return nil, fmt.Errorf("fake: load %s: %w", recID, store.ErrNotFound)
	}
	if f.damaged[recID] {
		return nil, fmt.Errorf("fake: load %s: %w", recID, queue.ErrDamagedRecord)
	}
	c := *d
	return &c, nil
}

func (f *fakeBackend) OpenRaw(ctx context.Context, d *queue.Delivery) (io.ReadCloser, error) {
	if f.openRaw != nil {
		return f.openRaw(d), nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	b, ok := f.raws[d.Raw.Key]
	if !ok {
		return nil, fmt.Errorf("fake: open %s: %w", d.Raw.Key, store.ErrNotFound)
	}
	return io.NopCloser(bytes.NewReader(b)), nil
}

func (f *fakeBackend) Replay(ctx context.Context, recID, endpoint string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.replays = append(f.replays, recID+" "+endpoint)
	d, ok := f.recs[recID]
	if !ok || d.State != queue.StateFailed {
		return fmt.Errorf("fake: replay %s: %w", recID, store.ErrNotFound)
	}
	if endpoint == "" {
		endpoint = d.Endpoint
	}
	if endpoint == "" {
		return fmt.Errorf("fake: replay %s: %w", recID, queue.ErrNoEndpoint)
	}
	d.State, d.Endpoint = queue.StatePending, endpoint
	d.Replays++
	return nil
}

func (f *fakeBackend) ReplayEndpoint(d *queue.Delivery, endpoint string) (string, error) {
	if endpoint == "" {
		endpoint = d.Endpoint
	}
	if endpoint == "" {
		return "", queue.ErrNoEndpoint
	}
	return endpoint, nil
}

func (f *fakeBackend) Render(ctx context.Context, d *queue.Delivery) ([]byte, error) {
	f.mu.Lock()
	_, ok := f.raws[d.Raw.Key]
	f.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("fake: render %s: %w", d.ID, store.ErrNotFound) // as the renderer's OpenRaw
	}
	return fmt.Appendf(nil, `{"type":"email.received","data":{"id":%q,"envelope":{"rcpt_to":[%q]}}}`, d.EventID, d.Envelope.RcptTo[0]), nil
}

func (f *fakeBackend) replayCalls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.replays)
}

func (f *fakeBackend) state(id string) queue.State {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.recs[id].State
}

var (
	msgIDsMu sync.Mutex
	msgIDs   = map[int]string{}
)

// msgID returns the event id of the i-th test message; ids sort by i.
func msgID(i int) string {
	msgIDsMu.Lock()
	defer msgIDsMu.Unlock()
	if _, ok := msgIDs[i]; !ok {
		msgIDs[i] = event.NewID(time.UnixMilli(1_700_000_000_000 + int64(i)*1000))
	}
	return msgIDs[i]
}

// testAdmin is the admin API on a fake backend, with its log.
type testAdmin struct {
	t    *testing.T
	h    http.Handler
	b    *fakeBackend
	logs *bytes.Buffer
}

func newTestAdmin(t *testing.T) *testAdmin {
	t.Helper()
	var logs bytes.Buffer
	b := newFakeBackend()
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	return &testAdmin{t: t, h: NewAdmin(testToken, b, log), b: b, logs: &logs}
}

// do sends a request with the right token and returns the response.
func (ta *testAdmin) do(method, target, body string) *httptest.ResponseRecorder {
	ta.t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, target, r)
	req.Header.Set("Authorization", "Bearer "+testToken)
	w := httptest.NewRecorder()
	ta.h.ServeHTTP(w, req)
	return w
}

// wantJSON checks the status and decodes the JSON body into v (if not nil).
func wantJSON(t *testing.T, w *httptest.ResponseRecorder, code int, v any) {
	t.Helper()
	if w.Code != code {
		t.Fatalf("status %d, want %d; body %s", w.Code, code, w.Body)
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type %q, want application/json", ct)
	}
	if v != nil {
		if err := json.Unmarshal(w.Body.Bytes(), v); err != nil {
			t.Fatalf("body is not JSON: %v\n%s", err, w.Body)
		}
	}
}

// wantError checks the status and that the error message mentions want.
func wantError(t *testing.T, w *httptest.ResponseRecorder, code int, want string) {
	t.Helper()
	var e errorResponse
	wantJSON(t, w, code, &e)
	if !strings.Contains(e.Error, want) {
		t.Errorf("error %q does not mention %q", e.Error, want)
	}
}

func TestAdminOff(t *testing.T) {
	h := NewAdmin("", newFakeBackend(), slog.New(slog.DiscardHandler))
	for _, auth := range []string{"", "Bearer ", "Bearer x"} {
		req := httptest.NewRequest("GET", "/v1/deliveries?state=failed", nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		wantError(t, w, http.StatusNotFound, "admin API is off")
	}
}

func TestAdminTokenRequired(t *testing.T) {
	ta := newTestAdmin(t)
	ta.b.add(msgID(1), 1, queue.StateFailed, "http://x.test/", time.Now(), []byte("raw"))
	tests := []struct {
		name      string
		auth      string // "" = no header
		code      int
		challenge string
	}{
		{"no header", "", 401, `Bearer realm="mailhook"`},
		{"wrong token", "Bearer wrong", 401, `Bearer realm="mailhook", error="invalid_token"`},
		{"token prefix", "Bearer " + testToken[:10], 401, `Bearer realm="mailhook", error="invalid_token"`},
		{"token and more", "Bearer " + testToken + "x", 401, `Bearer realm="mailhook", error="invalid_token"`},
		{"basic scheme", "Basic " + testToken, 401, `Bearer realm="mailhook", error="invalid_token"`},
		{"no scheme", testToken, 401, `Bearer realm="mailhook", error="invalid_token"`},
		{"empty bearer", "Bearer ", 401, `Bearer realm="mailhook", error="invalid_token"`},
		{"right token", "Bearer " + testToken, 200, ""},
		{"scheme in lower case", "bearer " + testToken, 200, ""},
	}
	targets := []struct{ method, target string }{
		{"GET", "/v1/deliveries?state=failed"},
		{"GET", "/v1/deliveries/" + queue.RecordID(msgID(1), 1)},
		{"GET", "/v1/events/" + msgID(1) + "/raw"},
		{"POST", "/v1/replay"},
		{"GET", "/v1/nothing-here"},
	}
	for _, tt := range tests {
		for _, tg := range targets {
			req := httptest.NewRequest(tg.method, tg.target, strings.NewReader(`{"failed":true,"dry_run":true}`))
			if tt.auth != "" {
				req.Header.Set("Authorization", tt.auth)
			}
			w := httptest.NewRecorder()
			ta.h.ServeHTTP(w, req)
			if tt.code == 401 {
				if w.Code != 401 {
					t.Errorf("%s: %s %s: status %d, want 401", tt.name, tg.method, tg.target, w.Code)
				}
				if got := w.Header().Get("WWW-Authenticate"); got != tt.challenge {
					t.Errorf("%s: WWW-Authenticate %q, want %q", tt.name, got, tt.challenge)
				}
				continue
			}
			if w.Code == 401 {
				t.Errorf("%s: %s %s: 401 with the right token", tt.name, tg.method, tg.target)
			}
		}
	}
	if calls := ta.b.replayCalls(); len(calls) != 0 {
		t.Errorf("replays %v: a dry run replays nothing", calls)
	}
	if strings.Contains(ta.logs.String(), testToken[:10]) || strings.Contains(ta.logs.String(), "wrong") {
		t.Errorf("the log shows a token:\n%s", ta.logs)
	}
	if !strings.Contains(ta.logs.String(), "unauthorized") {
		t.Errorf("unauthorized requests are not logged:\n%s", ta.logs)
	}
}

func TestAdminList(t *testing.T) {
	ta := newTestAdmin(t)
	now := time.Now().UTC().Truncate(time.Second)
	var failed []string
	for i := range 5 {
		d := ta.b.add(msgID(i), 1, queue.StateFailed, "http://x.test/", now, []byte("raw"))
		failed = append(failed, d.ID)
	}
	ta.b.add(msgID(10), 1, queue.StatePending, "http://x.test/", now, nil)
	ta.b.add(msgID(11), 1, queue.StateDelivered, "http://x.test/", now, nil)

	// Pages of 2, oldest first, with the attempt log.
	var got []string
	after := ""
	for page := 0; ; page++ {
		if page > 5 {
			t.Fatal("pagination does not end")
		}
		var resp listResponse
		wantJSON(t, ta.do("GET", "/v1/deliveries?state=failed&limit=2&after="+after, ""), 200, &resp)
		for _, d := range resp.Deliveries {
			got = append(got, d.ID)
			if d.State != queue.StateFailed || len(d.Attempts) != 1 || d.Attempts[0].Status != 400 {
				t.Errorf("record %s: state %s, attempts %+v", d.ID, d.State, d.Attempts)
			}
		}
		if resp.Next == "" {
			break
		}
		if len(resp.Deliveries) != 2 {
			t.Errorf("page %d holds %d deliveries and has a next page", page, len(resp.Deliveries))
		}
		after = resp.Next
	}
	if !slices.Equal(got, failed) {
		t.Errorf("listed %v, want %v", got, failed)
	}

	for _, s := range []queue.State{queue.StatePending, queue.StateDelivered} {
		var resp listResponse
		wantJSON(t, ta.do("GET", "/v1/deliveries?state="+string(s), ""), 200, &resp)
		if len(resp.Deliveries) != 1 || resp.Deliveries[0].State != s || resp.Next != "" {
			t.Errorf("state=%s: %+v", s, resp)
		}
	}

	// The raw JSON shape: "deliveries" is a list even when empty.
	empty := newTestAdmin(t)
	w := empty.do("GET", "/v1/deliveries?state=delivered", "")
	if body := strings.TrimSpace(w.Body.String()); body != `{"deliveries":[],"next":""}` {
		t.Errorf("empty list: %s", body)
	}
	// A large limit is capped, not refused.
	wantJSON(t, ta.do("GET", "/v1/deliveries?state=failed&limit=5000", ""), 200, nil)
	wantJSON(t, ta.do("GET", "/v1/deliveries?state=failed&limit=99999999999999999999", ""), 200, nil)

	for _, tt := range []struct{ query, field string }{
		{"", "state"},
		{"state=dead", "state"},
		{"state=failed&limit=0", "limit"},
		{"state=failed&limit=x", "limit"},
		{"state=failed&limit=-1", "limit"},
		{"state=failed&limit=-99999999999999999999", "limit"},
		{"state=delivered&state=failed", "state"},
		{"state=failed&limit=1&limit=2", "limit"},
		{"state=failed&after=../../etc/passwd", "after"},
		{"state=failed&after=" + msgID(1), "after"},
	} {
		wantError(t, ta.do("GET", "/v1/deliveries?"+tt.query, ""), 400, tt.field)
	}
}

func TestAdminListError(t *testing.T) {
	ta := newTestAdmin(t)
	ta.b.listErr = fmt.Errorf("list deliveries/failed/: %w: connection refused to secret-host", store.ErrUnavailable)
	w := ta.do("GET", "/v1/deliveries?state=failed", "")
	var e errorResponse
	wantJSON(t, w, http.StatusServiceUnavailable, &e)
	if strings.Contains(w.Body.String(), "secret-host") || e.Ref == "" {
		t.Errorf("error answer %s: want a fixed text and a reference", w.Body)
	}
	if !strings.Contains(ta.logs.String(), e.Ref) || !strings.Contains(ta.logs.String(), "secret-host") {
		t.Errorf("the log lacks the cause under ref %s:\n%s", e.Ref, ta.logs)
	}
}

func TestAdminShow(t *testing.T) {
	ta := newTestAdmin(t)
	d := ta.b.add(msgID(1), 2, queue.StateDelivered, "http://x.test/", time.Now(), []byte("raw"))
	var got queue.Delivery
	wantJSON(t, ta.do("GET", "/v1/deliveries/"+d.ID, ""), 200, &got)
	if got.ID != d.ID || got.State != queue.StateDelivered || len(got.Attempts) != 1 {
		t.Errorf("got %+v", got)
	}
	wantError(t, ta.do("GET", "/v1/deliveries/"+queue.RecordID(msgID(2), 1), ""), 404, "no delivery")
	for _, bad := range []string{msgID(1), "..%2F..%2Fetc", "x-1", msgID(1) + "-0", msgID(1) + "-1a", strings.ToLower(msgID(1)) + "-1"} {
		wantError(t, ta.do("GET", "/v1/deliveries/"+bad, ""), 400, "id")
	}
}

func TestAdminEvent(t *testing.T) {
	ta := newTestAdmin(t)
	id := msgID(1)
	ta.b.add(id, 1, queue.StateFailed, "http://x.test/", time.Now(), []byte("raw"))
	ta.b.add(id, 2, queue.StateDelivered, "http://y.test/", time.Now(), []byte("raw"))

	for _, tt := range []struct{ target, recID string }{
		{id, queue.RecordID(id, 1)}, // an event id: its first delivery
		{queue.RecordID(id, 2), queue.RecordID(id, 2)},
	} {
		d, err := ta.b.Load(context.Background(), tt.recID)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := ta.b.Render(context.Background(), d)
		w := ta.do("GET", "/v1/events/"+tt.target, "")
		wantJSON(t, w, 200, nil)
		if !bytes.Equal(w.Body.Bytes(), want) {
			t.Errorf("%s: body %s, want exactly %s", tt.target, w.Body, want)
		}
		if cl := w.Header().Get("Content-Length"); cl != strconv.Itoa(len(want)) {
			t.Errorf("Content-Length %q", cl)
		}
	}
	wantError(t, ta.do("GET", "/v1/events/"+msgID(2), ""), 404, "no delivery")
	wantError(t, ta.do("GET", "/v1/events/nope", ""), 400, "event_id")
}

func TestAdminRawByteExact(t *testing.T) {
	ta := newTestAdmin(t)
	raw := make([]byte, 3<<20+17) // binary, with CR, LF, NUL, high bytes
	_, _ = rand.Read(raw)
	copy(raw, "Received: from x\r\nSubject: bytes\r\n\r\n")
	id := msgID(1)
	ta.b.add(id, 1, queue.StateFailed, "http://x.test/", time.Now(), raw)

	for _, target := range []string{id, queue.RecordID(id, 1)} {
		w := ta.do("GET", "/v1/events/"+target+"/raw", "")
		if w.Code != 200 {
			t.Fatalf("status %d: %s", w.Code, w.Body)
		}
		if !bytes.Equal(w.Body.Bytes(), raw) {
			t.Errorf("%s: raw download differs (%d bytes, want %d)", target, w.Body.Len(), len(raw))
		}
		h := w.Header()
		if h.Get("Content-Type") != "message/rfc822" || h.Get("Content-Length") != strconv.Itoa(len(raw)) {
			t.Errorf("headers %v", h)
		}
	}

	w := ta.do("HEAD", "/v1/events/"+id+"/raw", "")
	if w.Code != 200 || w.Body.Len() != 0 || w.Header().Get("Content-Length") != strconv.Itoa(len(raw)) {
		t.Errorf("HEAD: status %d, %d body bytes, headers %v", w.Code, w.Body.Len(), w.Header())
	}

	wantError(t, ta.do("GET", "/v1/events/"+msgID(2)+"/raw", ""), 404, "no delivery")
	wantError(t, ta.do("GET", "/v1/events/..%2Fraw/raw", ""), 400, "event_id")
	ta.b.mu.Lock()
	delete(ta.b.raws, queue.RawKey(id))
	ta.b.mu.Unlock()
	wantError(t, ta.do("GET", "/v1/events/"+id+"/raw", ""), 404, "gone")
}

// gatedReader yields first, then blocks until gate is closed, then rest.
type gatedReader struct {
	first, rest []byte
	gate        chan struct{}
}

func (g *gatedReader) Read(p []byte) (int, error) {
	if len(g.first) > 0 {
		n := copy(p, g.first)
		g.first = g.first[n:]
		return n, nil
	}
	if g.gate != nil {
		<-g.gate
		g.gate = nil
	}
	if len(g.rest) == 0 {
		return 0, io.EOF
	}
	n := copy(p, g.rest)
	g.rest = g.rest[n:]
	return n, nil
}

func (g *gatedReader) Close() error { return nil }

// The raw message is streamed: the client gets the first bytes before the
// store has given the rest.
func TestAdminRawStreams(t *testing.T) {
	ta := newTestAdmin(t)
	first := bytes.Repeat([]byte("a"), 256<<10)
	rest := []byte("the end\r\n")
	id := msgID(1)
	ta.b.add(id, 1, queue.StateFailed, "http://x.test/", time.Now(), append(slices.Clone(first), rest...))
	gate := make(chan struct{})
	ta.b.openRaw = func(d *queue.Delivery) io.ReadCloser {
		return &gatedReader{first: first, rest: rest, gate: gate}
	}
	srv := httptest.NewServer(ta.h)
	defer srv.Close()
	defer func() {
		select {
		case <-gate:
		default:
			close(gate)
		}
	}()

	req, _ := http.NewRequest("GET", srv.URL+"/v1/events/"+id+"/raw", nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	buf := make([]byte, len(first))
	if _, err := io.ReadFull(resp.Body, buf); err != nil {
		t.Fatalf("reading the first part while the rest is held back: %v", err)
	}
	close(gate)
	tail, err := io.ReadAll(resp.Body)
	if err != nil || !bytes.Equal(tail, rest) {
		t.Fatalf("tail %q, %v", tail, err)
	}
}

func TestAdminReplayOne(t *testing.T) {
	ta := newTestAdmin(t)
	id := msgID(1)
	d := ta.b.add(id, 1, queue.StateFailed, "http://x.test/", time.Now(), nil)

	var got queue.Delivery
	wantJSON(t, ta.do("POST", "/v1/deliveries/"+d.ID+"/replay", ""), http.StatusAccepted, &got)
	if got.ID != d.ID || got.State != queue.StatePending || got.EventID != id {
		t.Errorf("answer %+v", got)
	}
	wantError(t, ta.do("POST", "/v1/deliveries/"+d.ID+"/replay", ""), http.StatusConflict, "pending")

	// Another endpoint.
	d2 := ta.b.add(msgID(2), 1, queue.StateFailed, "http://x.test/", time.Now(), nil)
	wantJSON(t, ta.do("POST", "/v1/deliveries/"+d2.ID+"/replay", `{"endpoint": "https://other.test/hook"}`), http.StatusAccepted, &got)
	if got.Endpoint != "https://other.test/hook" {
		t.Errorf("endpoint %q", got.Endpoint)
	}
	// No endpoint anywhere.
	d3 := ta.b.add(msgID(3), 1, queue.StateFailed, "", time.Now(), nil)
	wantError(t, ta.do("POST", "/v1/deliveries/"+d3.ID+"/replay", ""), http.StatusUnprocessableEntity, `"endpoint"`)

	want := []string{d.ID + " ", d2.ID + " https://other.test/hook", d3.ID + " "}
	if calls := ta.b.replayCalls(); !slices.Equal(calls, want) {
		t.Errorf("replays %q, want %q", calls, want)
	}

	d4 := ta.b.add(msgID(4), 1, queue.StateFailed, "http://x.test/", time.Now(), nil)
	for _, tt := range []struct {
		target, body string
		code         int
		want         string
	}{
		{d4.ID, `{"endpoint": "ftp://x.test/"}`, 400, "endpoint"},
		{d4.ID, `{"endpoint": "https://x.test/#frag"}`, 400, "endpoint"},
		{d4.ID, `{"endpont": "https://x.test/"}`, 400, "endpont"},
		{d4.ID, `{"endpoint": 1}`, 400, "endpoint"},
		{d4.ID, `{`, 400, "body"},
		{d4.ID, `{} {}`, 400, "body"},
		{d4.ID, `{"endpoint": "` + strings.Repeat("x", maxRequestBody) + `"}`, 400, "too large"},
		{msgID(4), ``, 400, "id"},
		{"..%2F..%2Fx-1", ``, 400, "id"},
		{queue.RecordID(msgID(9), 1), ``, 404, "no delivery"},
	} {
		wantError(t, ta.do("POST", "/v1/deliveries/"+tt.target+"/replay", tt.body), tt.code, tt.want)
	}
	if ta.b.state(d4.ID) != queue.StateFailed {
		t.Error("a refused replay changed the delivery")
	}
}

func TestAdminReplayMatching(t *testing.T) {
	ta := newTestAdmin(t)
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	ta.h.(*admin).now = func() time.Time { return now }
	old := ta.b.add(msgID(1), 1, queue.StateFailed, "http://x.test/", now.Add(-48*time.Hour), nil)
	e2a := ta.b.add(msgID(2), 1, queue.StateFailed, "http://x.test/", now.Add(-time.Hour), nil)
	e2b := ta.b.add(msgID(2), 2, queue.StateFailed, "http://y.test/", now.Add(-time.Hour), nil)
	ta.b.add(msgID(2), 3, queue.StateDelivered, "http://z.test/", now.Add(-time.Hour), nil)
	noEP := ta.b.add(msgID(3), 1, queue.StateFailed, "", now.Add(-time.Minute), nil)

	replay := func(body string, code int) replayResponse {
		t.Helper()
		var resp replayResponse
		wantJSON(t, ta.do("POST", "/v1/replay", body), code, &resp)
		if resp.Count != len(resp.Replayed) {
			t.Errorf("count %d for %d ids", resp.Count, len(resp.Replayed))
		}
		return resp
	}

	// Dry runs change nothing, and say what a replay would: the delivery
	// without an endpoint would fail.
	noEPFailed := []replayFailure{{ID: noEP.ID, Error: noEndpoint}}
	resp := replay(`{"failed": true, "dry_run": true}`, 200)
	if want := []string{old.ID, e2a.ID, e2b.ID}; !slices.Equal(resp.Replayed, want) || !slices.Equal(resp.Failed, noEPFailed) ||
		!resp.DryRun || resp.Truncated {
		t.Errorf("dry run: %+v, want %v and %v failed", resp, want, noEPFailed)
	}
	resp = replay(`{"since": "24h", "dry_run": true}`, 200)
	if want := []string{e2a.ID, e2b.ID}; !slices.Equal(resp.Replayed, want) || !slices.Equal(resp.Failed, noEPFailed) {
		t.Errorf("since 24h: %+v, want %v", resp, want)
	}
	resp = replay(`{"since": "2026-11-28T11:30:00Z", "dry_run": true}`, 200)
	if len(resp.Replayed) != 0 || !slices.Equal(resp.Failed, noEPFailed) {
		t.Errorf("since RFC 3339: %+v, want only %v failed", resp, noEPFailed)
	}
	resp = replay(`{"since": "2026-11-28T11:30:00Z", "endpoint": "https://new.test/", "dry_run": true}`, 200)
	if want := []string{noEP.ID}; !slices.Equal(resp.Replayed, want) || len(resp.Failed) != 0 {
		t.Errorf("since RFC 3339 with an endpoint: %+v, want %v", resp, want)
	}
	resp = replay(`{"since": "3d", "event_id": "`+msgID(2)+`", "dry_run": true}`, 200)
	if want := []string{e2a.ID, e2b.ID}; !slices.Equal(resp.Replayed, want) {
		t.Errorf("event and since: %v, want %v", resp.Replayed, want)
	}
	if calls := ta.b.replayCalls(); len(calls) != 0 {
		t.Fatalf("dry runs replayed %v", calls)
	}

	// Truncation.
	ta.h.(*admin).maxReplay = 2
	resp = replay(`{"failed": true, "dry_run": true}`, 200)
	if !resp.Truncated || resp.Count != 2 {
		t.Errorf("bounded: %+v", resp)
	}
	ta.h.(*admin).maxReplay = maxReplayPerCall

	// One delivery by its id, then a whole event.
	resp = replay(`{"event_id": "`+e2b.ID+`"}`, 202)
	if want := []string{e2b.ID}; !slices.Equal(resp.Replayed, want) {
		t.Errorf("by delivery id: %v", resp.Replayed)
	}
	resp = replay(`{"event_id": "`+msgID(2)+`", "endpoint": "https://new.test/"}`, 202)
	if want := []string{e2a.ID}; !slices.Equal(resp.Replayed, want) {
		t.Errorf("by event id: %v", resp.Replayed)
	}
	wantError(t, ta.do("POST", "/v1/replay", `{"event_id": "`+msgID(2)+`"}`), 404, "no failed delivery")

	// Everything left; the one without an endpoint is reported.
	resp = replay(`{"failed": true}`, 202)
	if want := []string{old.ID}; !slices.Equal(resp.Replayed, want) || len(resp.Failed) != 1 || resp.Failed[0].ID != noEP.ID {
		t.Errorf("failed: %+v", resp)
	}
	want := []string{e2b.ID + " ", e2a.ID + " https://new.test/", old.ID + " ", noEP.ID + " "}
	if calls := ta.b.replayCalls(); !slices.Equal(calls, want) {
		t.Errorf("replays %q, want %q", calls, want)
	}

	for _, tt := range []struct{ body, want string }{
		{``, "say what to replay"},
		{`{}`, "say what to replay"},
		{`{"dry_run": true}`, "say what to replay"},
		{`{"event_id": "../x"}`, "event_id"},
		{`{"since": "yesterday"}`, "since"},
		{`{"since": "-1h"}`, "since"},
		{`{"failed": true, "endpoint": "mailto:x@y"}`, "endpoint"},
		{`{"failed": "yes"}`, "failed"},
		{`{"failed": true, "all": true}`, "all"},
	} {
		wantError(t, ta.do("POST", "/v1/replay", tt.body), 400, tt.want)
	}
}

func TestAdminRoutes(t *testing.T) {
	ta := newTestAdmin(t)
	id := queue.RecordID(msgID(1), 1)
	for _, tt := range []struct {
		method, target string
		code           int
		allow          string
	}{
		{"POST", "/v1/deliveries?state=failed", 405, "GET, HEAD"},
		{"DELETE", "/v1/deliveries/" + id, 405, "GET, HEAD"},
		{"GET", "/v1/deliveries/" + id + "/replay", 405, "POST"},
		{"GET", "/v1/replay", 405, "POST"},
		{"PUT", "/v1/events/" + msgID(1) + "/raw", 405, "GET, HEAD"},
		{"GET", "/v1/", 404, ""},
		{"GET", "/v1/deliveries/", 404, ""},
		{"GET", "/v1/events/" + msgID(1) + "/raw/more", 404, ""},
	} {
		w := ta.do(tt.method, tt.target, "")
		wantJSON(t, w, tt.code, nil)
		if got := w.Header().Get("Allow"); got != tt.allow {
			t.Errorf("%s %s: Allow %q, want %q", tt.method, tt.target, got, tt.allow)
		}
	}
}

// Mounted on the HTTP side as cmd/mailhook does it.
func TestAdminMounted(t *testing.T) {
	b := newFakeBackend()
	d := b.add(msgID(1), 1, queue.StateFailed, "http://x.test/", time.Now(), []byte("raw"))
	h := New(nil, slog.New(slog.DiscardHandler))
	h.Handle("/v1/", NewAdmin(testToken, b, slog.New(slog.DiscardHandler)))
	for _, tt := range []struct {
		target, auth string
		code         int
	}{
		{"/healthz", "", 200},
		{"/v1/deliveries/" + d.ID, "", 401},
		{"/v1/deliveries/" + d.ID, "Bearer " + testToken, 200},
	} {
		req := httptest.NewRequest("GET", tt.target, nil)
		if tt.auth != "" {
			req.Header.Set("Authorization", tt.auth)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != tt.code {
			t.Errorf("%s: %d, want %d", tt.target, w.Code, tt.code)
		}
	}
}

func TestParseSince(t *testing.T) {
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		in   string
		want time.Time
		bad  bool
	}{
		{in: "24h", want: now.Add(-24 * time.Hour)},
		{in: "90m", want: now.Add(-90 * time.Minute)},
		{in: "7d", want: now.Add(-7 * 24 * time.Hour)},
		{in: "2026-11-01T00:00:00Z", want: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)},
		{in: "", bad: true},
		{in: "-1h", bad: true},
		{in: "d", bad: true},
		{in: "2026-11-01", bad: true},
	} {
		got, err := queue.ParseSince(tt.in, now)
		if tt.bad != (err != nil) || !tt.bad && !got.Equal(tt.want) {
			t.Errorf("parseSince(%q) = %v, %v", tt.in, got, err)
		}
	}
}

// A damaged record does not hide the others: the listing skips it (with a
// warning in the log), a dry run reports it as one that would fail.
func TestDamagedRecordSkipped(t *testing.T) {
	ta := newTestAdmin(t)
	now := time.Now().UTC().Truncate(time.Second)
	var ids []string
	for i := range 3 {
		ids = append(ids, ta.b.add(msgID(i), 1, queue.StateFailed, "http://x.test/", now, []byte("raw")).ID)
	}
	ta.b.damaged = map[string]bool{ids[1]: true}
	var list listResponse
	wantJSON(t, ta.do("GET", "/v1/deliveries?state=failed", ""), 200, &list)
	if len(list.Deliveries) != 2 || list.Deliveries[0].ID != ids[0] || list.Deliveries[1].ID != ids[2] {
		t.Errorf("listing %+v, want %s and %s", list.Deliveries, ids[0], ids[2])
	}
	if !strings.Contains(ta.logs.String(), "unreadable record") || !strings.Contains(ta.logs.String(), ids[1]) {
		t.Errorf("log does not name the skipped record:\n%s", ta.logs)
	}
	var dry replayResponse
	wantJSON(t, ta.do("POST", "/v1/replay", `{"since": "1h", "dry_run": true}`), 200, &dry)
	if dry.Count != 2 || len(dry.Failed) != 1 || dry.Failed[0].ID != ids[1] || !strings.Contains(dry.Failed[0].Error, "damaged") {
		t.Errorf("dry run %+v, want 2 replayed and the damaged one failed", dry)
	}
}

// An event whose raw message is gone (deleted by hand, or by retention
// between the listing and the request) is a 404 saying so, not a 500.
func TestEventRawGone(t *testing.T) {
	ta := newTestAdmin(t)
	d := ta.b.add(msgID(1), 1, queue.StateFailed, "http://x.test/", time.Now(), []byte("raw"))
	ta.b.mu.Lock()
	delete(ta.b.raws, d.Raw.Key)
	ta.b.mu.Unlock()
	for _, path := range []string{"/v1/events/" + d.EventID, "/v1/events/" + d.EventID + "/raw"} {
		wantError(t, ta.do("GET", path, ""), 404, "gone")
	}
}

// The admin API shows endpoint URLs without their credentials, in the
// record and in each attempt, and leaves the stored record whole.
func TestAdminRedactsEndpoints(t *testing.T) {
	ta := newTestAdmin(t)
	const secretURL = "https://hook:s3cret@x.test/in?token=t0ken&route=a"
	failed := ta.b.add(msgID(1), 1, queue.StateFailed, secretURL, time.Now(), nil)
	delivered := ta.b.add(msgID(2), 1, queue.StateDelivered, secretURL, time.Now(), nil)

	var one queue.Delivery
	show := ta.do("GET", "/v1/deliveries/"+delivered.ID, "")
	wantJSON(t, show, 200, &one)
	var list listResponse
	listed := ta.do("GET", "/v1/deliveries?state=delivered", "")
	wantJSON(t, listed, 200, &list)
	var replayed queue.Delivery
	replay := ta.do("POST", "/v1/deliveries/"+failed.ID+"/replay", "")
	wantJSON(t, replay, http.StatusAccepted, &replayed)
	for name, w := range map[string]*httptest.ResponseRecorder{"show": show, "list": listed, "replay": replay} {
		if body := w.Body.String(); strings.Contains(body, "s3cret") || strings.Contains(body, "t0ken") {
			t.Errorf("%s shows a credential: %s", name, body)
		}
	}
	if len(list.Deliveries) != 1 {
		t.Fatalf("listed %d deliveries", len(list.Deliveries))
	}
	const shown = "https://hook:xxxxx@x.test/in?route=xxxxx&token=xxxxx"
	for name, d := range map[string]*queue.Delivery{"show": &one, "list": list.Deliveries[0], "replay": &replayed} {
		if d.Endpoint != shown || len(d.Attempts) != 1 || d.Attempts[0].Endpoint != shown {
			t.Errorf("%s: endpoint %q, attempts %+v; want %q", name, d.Endpoint, d.Attempts, shown)
		}
	}
	if d, _ := ta.b.Load(context.Background(), delivered.ID); d.Endpoint != secretURL || d.Attempts[0].Endpoint != secretURL {
		t.Errorf("the stored record changed: %+v", d)
	}
}
