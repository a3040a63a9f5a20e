package metrics

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/mailhook/mailhook/dispatch"
	"github.com/mailhook/mailhook/inbound"
	"github.com/mailhook/mailhook/internal/promtext"
	"github.com/mailhook/mailhook/store"
)

// scrape GETs the handler and returns every sample, keyed by its series
// as written (name{label="value",…}, labels in the order exposed).
func scrape(t *testing.T, m *Metrics) map[string]float64 {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /metrics: %d\n%s", rec.Code, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("Content-Type = %q", ct)
	}
	return parseSamples(t, rec.Body.Bytes())
}

func parseSamples(t *testing.T, body []byte) map[string]float64 {
	t.Helper()
	samples, err := promtext.Parse(body)
	if err != nil {
		t.Fatal(err)
	}
	return samples
}

func want(t *testing.T, samples map[string]float64, series string, v float64) {
	t.Helper()
	got, ok := samples[series]
	switch {
	case !ok:
		t.Errorf("%s missing", series)
	case got != v:
		t.Errorf("%s = %v, want %v", series, got, v)
	}
}

func TestNewExposesBuildInfoAndRuntime(t *testing.T) {
	m := New("1.2.3")
	s := scrape(t, m)
	found := false
	for k, v := range s {
		if strings.HasPrefix(k, `mailhook_build_info{goversion="go`) && strings.Contains(k, `version="1.2.3"`) && v == 1 {
			found = true
		}
	}
	if !found {
		t.Error("mailhook_build_info{version=\"1.2.3\",goversion=…} 1 missing")
	}
	for _, name := range []string{"go_goroutines", "process_cpu_seconds_total", "mailhook_smtp_sessions_active",
		`mailhook_smtp_messages_total{reason="",result="accepted"}`,
		`mailhook_smtp_messages_total{reason="storage",result="rejected"}`,
		`mailhook_smtp_commands_total{class="2xx",verb="EHLO"}`,
		`mailhook_smtp_sessions_total{result="over_cap"}`} {
		if _, ok := s[name]; !ok {
			t.Errorf("%s missing", name)
		}
	}
	if problems, err := testutil.GatherAndLint(m.Registry()); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
}

func TestSMTPObserver(t *testing.T) {
	m := New("test")
	o := m.SMTPObserver()
	o.SessionStarted()
	o.SessionStarted()
	o.SessionEnded()
	o.SessionRefused(inbound.RefusedOverCap)
	o.SessionRefused("made-up")
	o.Command("EHLO", 250)
	o.Command("RCPT", 250)
	o.Command("RCPT", 250)
	o.Command("RCPT", 550)
	o.Command("RCPT", 452)
	o.Command("DATA", 354) // never reported by inbound; ignored
	o.Command("XYZZY", 500)
	o.Command("", 500)
	o.Message(inbound.ResultAccepted, "", 2000)
	o.Message(inbound.ResultRejected, inbound.ReasonTooLarge, 300)
	o.Message(inbound.ResultAborted, inbound.ReasonDisconnected, 0)
	o.Message(inbound.ResultRejected, "made-up", 0)

	s := scrape(t, m)
	want(t, s, "mailhook_smtp_sessions_active", 1)
	want(t, s, `mailhook_smtp_sessions_total{result="accepted"}`, 2)
	want(t, s, `mailhook_smtp_sessions_total{result="over_cap"}`, 1)
	want(t, s, `mailhook_smtp_sessions_total{result="other"}`, 1)
	want(t, s, `mailhook_smtp_commands_total{class="2xx",verb="EHLO"}`, 1)
	want(t, s, `mailhook_smtp_commands_total{class="2xx",verb="RCPT"}`, 2)
	want(t, s, `mailhook_smtp_commands_total{class="5xx",verb="RCPT"}`, 1)
	want(t, s, `mailhook_smtp_commands_total{class="4xx",verb="RCPT"}`, 1)
	want(t, s, `mailhook_smtp_commands_total{class="2xx",verb="DATA"}`, 0)
	want(t, s, `mailhook_smtp_commands_total{class="5xx",verb="other"}`, 2)
	want(t, s, `mailhook_smtp_messages_total{reason="",result="accepted"}`, 1)
	want(t, s, `mailhook_smtp_messages_total{reason="too_large",result="rejected"}`, 1)
	want(t, s, `mailhook_smtp_messages_total{reason="disconnected",result="aborted"}`, 1)
	want(t, s, `mailhook_smtp_messages_total{reason="other",result="rejected"}`, 1)
	want(t, s, "mailhook_smtp_received_bytes_total", 2300)
	want(t, s, "mailhook_smtp_message_size_bytes_count", 1)
	want(t, s, `mailhook_smtp_message_size_bytes_bucket{le="4096"}`, 1)
	want(t, s, `mailhook_smtp_message_size_bytes_bucket{le="1024"}`, 0)
	for k := range s {
		if strings.Contains(k, "XYZZY") || strings.Contains(k, "made-up") {
			t.Errorf("client-chosen label value leaked: %s", k)
		}
	}
}

func TestCommandDoesNotAllocate(t *testing.T) {
	o := New("test").SMTPObserver()
	allocs := testing.AllocsPerRun(1000, func() {
		o.Command("RCPT", 250)
		o.Command("NOPE", 502)
	})
	if allocs != 0 {
		t.Errorf("Command allocates %v times per call pair", allocs)
	}
}

// fakeStore is a hand-written store.Store whose answers are set by the test.
type fakeStore struct {
	mu      sync.Mutex
	calls   []string
	err     error // returned by every call
	objects []store.Object
	listErr error // yielded after objects
}

func (f *fakeStore) call(name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, name)
	return f.err
}

func (f *fakeStore) Put(_ context.Context, key string, body io.Reader, _ store.PutOptions) (store.Object, error) {
	if err := f.call("put " + key); err != nil {
		return store.Object{}, err
	}
	n, err := io.Copy(io.Discard, body)
	return store.Object{Key: key, Size: n, ETag: "e1"}, err
}

func (f *fakeStore) Get(_ context.Context, key string) (io.ReadCloser, store.Object, error) {
	if err := f.call("get " + key); err != nil {
		return nil, store.Object{}, err
	}
	return io.NopCloser(strings.NewReader("body")), store.Object{Key: key, Size: 4}, nil
}

func (f *fakeStore) Stat(_ context.Context, key string) (store.Object, error) {
	if err := f.call("stat " + key); err != nil {
		return store.Object{}, err
	}
	return store.Object{Key: key, Size: 4}, nil
}

func (f *fakeStore) Delete(_ context.Context, key string) error { return f.call("delete " + key) }

func (f *fakeStore) List(_ context.Context, prefix string) iter.Seq2[store.Object, error] {
	return func(yield func(store.Object, error) bool) {
		_ = f.call("list " + prefix)
		for _, o := range f.objects {
			if !yield(o, nil) {
				return
			}
		}
		if f.listErr != nil {
			yield(store.Object{}, f.listErr)
		}
	}
}

func (f *fakeStore) Ping(context.Context) error { return f.call("ping") }
func (f *fakeStore) String() string             { return "fake://" }

type closingFake struct {
	fakeStore
	closed int
}

func (c *closingFake) Close() error { c.closed++; return nil }

func TestInstrumentStoreForwardsAndCounts(t *testing.T) {
	m := New("test")
	inner := &fakeStore{objects: []store.Object{{Key: "a"}, {Key: "b"}, {Key: "c"}}}
	s := InstrumentStore(inner, m)
	ctx := context.Background()

	if s.String() != "fake://" {
		t.Errorf("String = %q", s.String())
	}
	if _, ok := s.(io.Closer); ok {
		t.Error("decorator of a store without Close is an io.Closer")
	}
	obj, err := s.Put(ctx, "k", strings.NewReader("hello"), store.PutOptions{Size: -1})
	if err != nil || obj.Size != 5 || obj.ETag != "e1" {
		t.Errorf("Put = %+v, %v", obj, err)
	}
	rc, obj, err := s.Get(ctx, "k")
	if err != nil || obj.Size != 4 {
		t.Fatalf("Get = %+v, %v", obj, err)
	}
	if b, _ := io.ReadAll(rc); string(b) != "body" {
		t.Errorf("Get body = %q", b)
	}
	_ = rc.Close()
	if _, err := s.Stat(ctx, "k"); err != nil {
		t.Error(err)
	}
	if err := s.Delete(ctx, "k"); err != nil {
		t.Error(err)
	}
	if err := s.Ping(ctx); err != nil {
		t.Error(err)
	}
	var keys []string
	for o, err := range s.List(ctx, "p/") {
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, o.Key)
	}
	if strings.Join(keys, ",") != "a,b,c" {
		t.Errorf("List = %v", keys)
	}
	for range s.List(ctx, "early/") {
		break // stopped early: ok
	}

	inner.listErr = fmt.Errorf("%w: connection reset", store.ErrUnavailable)
	var gotErr error
	for _, err := range s.List(ctx, "q/") {
		gotErr = err
	}
	if !errors.Is(gotErr, store.ErrUnavailable) {
		t.Errorf("List error = %v", gotErr)
	}

	inner.err = fmt.Errorf("wrapped: %w", store.ErrNotFound)
	if _, _, err := s.Get(ctx, "missing"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get missing = %v", err)
	}
	inner.err = store.ErrPrecondition
	if _, err := s.Put(ctx, "k", strings.NewReader("x"), store.PutOptions{IfNoneMatch: true}); err != store.ErrPrecondition {
		t.Errorf("Put conflict = %v, want the store's error unchanged", err)
	}
	inner.err = errors.New("disk on fire")
	if err := s.Delete(ctx, "k"); err != inner.err {
		t.Errorf("Delete = %v, want the store's error unchanged", err)
	}

	wantCalls := "put k,get k,stat k,delete k,ping,list p/,list early/,list q/,get missing,put k,delete k"
	if got := strings.Join(inner.calls, ","); got != wantCalls {
		t.Errorf("calls:\n got %s\nwant %s", got, wantCalls)
	}

	smp := scrape(t, m)
	const h = "mailhook_store_operation_duration_seconds_count"
	for series, n := range map[string]float64{
		`{op="put",result="ok"}`:           1,
		`{op="get",result="ok"}`:           1,
		`{op="stat",result="ok"}`:          1,
		`{op="delete",result="ok"}`:        1,
		`{op="ping",result="ok"}`:          1,
		`{op="list",result="ok"}`:          2,
		`{op="list",result="error"}`:       1,
		`{op="get",result="not_found"}`:    1,
		`{op="put",result="precondition"}`: 1,
		`{op="delete",result="error"}`:     1,
	} {
		want(t, smp, h+series, n)
	}
	if _, ok := smp[h+`{op="stat",result="error"}`]; ok {
		t.Error("error series exist before any error")
	}
}

func TestInstrumentStoreForwardsClose(t *testing.T) {
	inner := &closingFake{}
	s := InstrumentStore(inner, New("test"))
	c, ok := s.(io.Closer)
	if !ok {
		t.Fatal("decorator of an io.Closer store is not an io.Closer")
	}
	if err := c.Close(); err != nil || inner.closed != 1 {
		t.Errorf("Close = %v, inner closed %d times", err, inner.closed)
	}
	if err := s.Ping(context.Background()); err != nil {
		t.Error(err)
	}
}

// movingFake is a fakeStore that moves.
type movingFake struct{ fakeStore }

func (m *movingFake) MoveAppend(_ context.Context, from, to string, tail []byte, _ store.MoveOptions) (store.Object, error) {
	return store.Object{Key: to, Size: int64(len(tail))}, m.call("move " + from + " " + to)
}

// A move reaches a store that moves, observed as op="move"; on one that
// does not it fails as store.MoveAppend does, so callers fall back.
func TestInstrumentStoreMoveAppend(t *testing.T) {
	ctx := context.Background()
	m := New("test")
	s := InstrumentStore(&fakeStore{}, m)
	if _, err := store.MoveAppend(ctx, s, "a", "b", nil, store.MoveOptions{}); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("MoveAppend through a store that does not move = %v, want ErrUnsupported", err)
	}
	inner := &movingFake{}
	s = InstrumentStore(inner, m)
	obj, err := store.MoveAppend(ctx, s, "a", "b", []byte("xy"), store.MoveOptions{})
	if err != nil || obj.Key != "b" || obj.Size != 2 {
		t.Errorf("MoveAppend = %+v, %v", obj, err)
	}
	if got := strings.Join(inner.calls, ","); got != "move a b" {
		t.Errorf("calls = %q", got)
	}
	smp := scrape(t, m)
	want(t, smp, `mailhook_store_operation_duration_seconds_count{op="move",result="ok"}`, 1)
}

// The List timer leaves out the caller's loop body.
func TestInstrumentStoreListExcludesCaller(t *testing.T) {
	m := New("test")
	s := InstrumentStore(&fakeStore{objects: []store.Object{{Key: "a"}, {Key: "b"}}}, m)
	for range s.List(context.Background(), "") {
		time.Sleep(50 * time.Millisecond)
	}
	smp := scrape(t, m)
	const series = `mailhook_store_operation_duration_seconds_sum{op="list",result="ok"}`
	if v, ok := smp[series]; !ok || v >= 0.05 {
		t.Errorf("%s = %v (present %v), want well under the 100ms spent in the loop body", series, v, ok)
	}
}

type fakeStats struct{ s dispatch.Stats }

func (f fakeStats) Stats() dispatch.Stats { return f.s }

func TestDispatcherMetrics(t *testing.T) {
	m := New("test")
	m.WatchDispatcher(fakeStats{dispatch.Stats{
		Pending: 3, InFlight: 2, Delivered: 10, Failed: 1,
		Attempts:         dispatch.AttemptCounts{Status2xx: 10, Status3xx: 1, Status4xx: 2, Status5xx: 4, Error: 5},
		OldestPendingAge: 90 * time.Second,
		LeaseTakeovers:   3, ClaimedAttempts: 7,
	}})
	m.DeliveryAttempt(204, "delivered", 120*time.Millisecond)
	m.DeliveryAttempt(503, "retry", 2*time.Second)
	m.DeliveryAttempt(0, "retry", 0) // no request was sent: not timed
	m.DeliveryAttempt(410, "failed", 10*time.Millisecond)

	s := scrape(t, m)
	want(t, s, "mailhook_queue_pending", 3)
	want(t, s, "mailhook_deliveries_in_flight", 2)
	want(t, s, "mailhook_queue_oldest_pending_age_seconds", 90)
	want(t, s, "mailhook_lease_takeovers_total", 3)
	want(t, s, "mailhook_delivery_claimed_attempts_total", 7)
	want(t, s, `mailhook_deliveries_total{outcome="delivered"}`, 10)
	want(t, s, `mailhook_deliveries_total{outcome="failed"}`, 1)
	want(t, s, `mailhook_deliveries_total{outcome="retry"}`, 2)
	want(t, s, `mailhook_delivery_attempts_total{class="2xx"}`, 10)
	want(t, s, `mailhook_delivery_attempts_total{class="3xx"}`, 1)
	want(t, s, `mailhook_delivery_attempts_total{class="4xx"}`, 2)
	want(t, s, `mailhook_delivery_attempts_total{class="5xx"}`, 4)
	want(t, s, `mailhook_delivery_attempts_total{class="error"}`, 5)
	want(t, s, "mailhook_delivery_attempt_duration_seconds_count", 3)
	want(t, s, `mailhook_delivery_attempt_duration_seconds_bucket{le="0.25"}`, 2)
	if problems, err := testutil.GatherAndLint(m.Registry()); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
}
