package dispatch

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailhook/mailhook/event"
	"github.com/mailhook/mailhook/parse"
	"github.com/mailhook/mailhook/queue"
)

// rawBytes opens the same raw message for every delivery.
type rawBytes []byte

func (r rawBytes) OpenRaw(context.Context, *queue.Delivery) (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(r)), nil
}

// fanOut returns the n delivery records of one message routed to n
// endpoints, each with its own recipient.
func fanOut(raw []byte, n int) []*queue.Delivery {
	sum := sha256.Sum256(raw)
	id := event.NewID(t0)
	var ds []*queue.Delivery
	for i := 1; i <= n; i++ {
		ds = append(ds, &queue.Delivery{
			ID: queue.RecordID(id, i), EventID: id, Records: n, ReceivedAt: t0,
			Envelope: event.Envelope{MailFrom: "a@example.org", RcptTo: []string{"rcpt" + strconv.Itoa(i) + "@example.com"}},
			Raw:      event.Raw{Key: queue.RawKey(id), Size: int64(len(raw)), SHA256: hex.EncodeToString(sum[:])},
		})
	}
	return ds
}

// countingParse is fakeParse counting its calls, failing while fail is
// set and, while gate is not nil, waiting for it to close.
type countingParse struct {
	calls atomic.Int32
	fail  atomic.Bool
	gate  chan struct{}
}

func (c *countingParse) parse(r io.Reader, opts parse.Options) (*event.Data, error) {
	c.calls.Add(1)
	if c.gate != nil {
		<-c.gate
	}
	if c.fail.Load() {
		return nil, errors.New("parse failed")
	}
	return fakeParse(r, opts)
}

// The deliveries of a message to several endpoints share one parse, each
// with its own envelope, whether they come together or one after the
// other; each body is what a parse of its own gives.
func TestSharedParse(t *testing.T) {
	raw := []byte("Subject: shared\r\n\r\nthe text\r\n")
	ctx := context.Background()
	decode := func(body []byte) event.Event {
		t.Helper()
		var ev event.Event
		if err := json.Unmarshal(body, &ev); err != nil {
			t.Fatal(err)
		}
		return ev
	}
	alone := func(d *queue.Delivery) []byte {
		t.Helper()
		body, err := newRenderer(rawBytes(raw), fakeParse, parse.Options{})(ctx, d)
		if err != nil {
			t.Fatal(err)
		}
		return body
	}

	t.Run("together", func(t *testing.T) {
		p := &countingParse{gate: make(chan struct{})}
		share := newParseShare()
		render := sharingRenderer(rawBytes(raw), p.parse, parse.Options{}, share)
		ds := fanOut(raw, 3)
		bodies := make([][]byte, len(ds))
		var wg sync.WaitGroup
		for i, d := range ds {
			wg.Go(func() {
				var err error
				if bodies[i], err = render(ctx, d); err != nil {
					t.Error(err)
				}
			})
		}
		waitFor(t, "all three renders joined", func() bool {
			share.mu.Lock()
			defer share.mu.Unlock()
			return len(share.m) == 0 && p.calls.Load() == 1
		})
		close(p.gate)
		wg.Wait()
		if n := p.calls.Load(); n != 1 {
			t.Errorf("%d parses, want 1", n)
		}
		for i, d := range ds {
			if ev := decode(bodies[i]); ev.Data.Subject != "shared" || ev.Data.Envelope.RcptTo[0] != d.Envelope.RcptTo[0] {
				t.Errorf("delivery %d: %+v", i+1, ev.Data)
			}
			if !bytes.Equal(bodies[i], alone(d)) {
				t.Errorf("delivery %d: the body differs from its own parse's", i+1)
			}
		}
	})

	t.Run("one after the other", func(t *testing.T) {
		p := &countingParse{}
		share := newParseShare()
		render := sharingRenderer(rawBytes(raw), p.parse, parse.Options{}, share)
		for _, d := range fanOut(raw, 3) {
			body, err := render(ctx, d)
			if err != nil || !bytes.Equal(body, alone(d)) {
				t.Errorf("%s: %v\n%s", d.ID, err, body)
			}
		}
		if n := p.calls.Load(); n != 1 {
			t.Errorf("%d parses, want 1", n)
		}
		if len(share.m) != 0 || share.held != 0 {
			t.Errorf("after the last taker: %d entries, %d bytes held", len(share.m), share.held)
		}
	})

	t.Run("not shared", func(t *testing.T) {
		for name, tc := range map[string]struct {
			ds    []*queue.Delivery
			parse int32
			setup func(p *countingParse, share *parseShare)
		}{
			"one endpoint": {ds: fanOut(raw, 1), parse: 1},
			"too late":     {ds: fanOut(raw, 2), parse: 2, setup: func(_ *countingParse, s *parseShare) { s.now = later(shareTTL + time.Second) }},
			"too large":    {ds: fanOut(bytes.Repeat([]byte("x"), shareBudget+1), 2), parse: 2},
		} {
			t.Run(name, func(t *testing.T) {
				p := &countingParse{}
				share := newParseShare()
				if tc.setup != nil {
					tc.setup(p, share)
				}
				r := raw
				if tc.ds[0].Raw.Size != int64(len(raw)) {
					r = bytes.Repeat([]byte("x"), int(tc.ds[0].Raw.Size))
				}
				render := sharingRenderer(rawBytes(r), p.parse, parse.Options{}, share)
				for _, d := range tc.ds {
					if _, err := render(ctx, d); err != nil {
						t.Errorf("%s: %v", d.ID, err)
					}
				}
				if n := p.calls.Load(); n != tc.parse {
					t.Errorf("%d parses, want %d", n, tc.parse)
				}
			})
		}
	})

	// A failed parse is not shared: the next delivery parses for itself,
	// and the failed one, retried, takes that parse.
	t.Run("a failed parse", func(t *testing.T) {
		p := &countingParse{}
		render := sharingRenderer(rawBytes(raw), p.parse, parse.Options{}, newParseShare())
		ds := fanOut(raw, 2)
		p.fail.Store(true)
		if _, err := render(ctx, ds[0]); err == nil {
			t.Error("the failed parse rendered")
		}
		p.fail.Store(false)
		for _, d := range []*queue.Delivery{ds[1], ds[0]} {
			if body, err := render(ctx, d); err != nil || !bytes.Equal(body, alone(d)) {
				t.Errorf("%s after the failed parse: %v", d.ID, err)
			}
		}
		if n := p.calls.Load(); n != 2 {
			t.Errorf("%d parses, want 2", n)
		}
	})

	t.Run("a panic in the parser", func(t *testing.T) {
		share := newParseShare()
		ds := fanOut(raw, 2)
		func() {
			defer func() { _ = recover() }()
			sharingRenderer(rawBytes(raw), func(io.Reader, parse.Options) (*event.Data, error) { panic("parser bug") }, parse.Options{}, share)(ctx, ds[0])
		}()
		body, err := sharingRenderer(rawBytes(raw), fakeParse, parse.Options{}, share)(ctx, ds[1])
		if err != nil || !bytes.Equal(body, alone(ds[1])) {
			t.Errorf("the taker after the owner's panic: %v", err)
		}
	})
}

// later returns a clock that reads d after the first reading.
func later(d time.Duration) func() time.Time {
	var first time.Time
	return func() time.Time {
		if first.IsZero() {
			first = time.Now()
			return first
		}
		return first.Add(d)
	}
}

// A render whose parse ran out of time records the part where
// (queue.Delivery.ParseCut) with the attempt, and the next attempt's parse
// stops at that part: the receiver gets the same body again, whatever
// time the second parse has.
func TestParseCutRecordedAndReused(t *testing.T) {
	rc := newReceiver(t, statuses(500, 200))
	cfg := defaultTestConfig()
	cfg.Now = time.Now // real clock, 1-5 ms retries
	h := newHarness(t, newMemStore(), rc.srv.URL, cfg)
	var mu sync.Mutex
	var stopAts []string
	h.d.render = newRenderer(h.q, func(r io.Reader, o parse.Options) (*event.Data, error) {
		mu.Lock()
		first := len(stopAts) == 0
		stopAts = append(stopAts, o.StopAt)
		mu.Unlock()
		d, err := fakeParse(r, o)
		if err != nil {
			return nil, err
		}
		// The first parse runs out of time at part 2; a later one
		// without the cut would not (a quieter host).
		if first || o.StopAt != "" {
			o.BudgetSpent("2")
			d.Warnings = []string{"part 2: parse time budget spent: this part and the rest not decoded"}
		}
		return d, nil
	}, parse.Options{})
	h.start(t)
	id := h.accept(t, time.Now(), "a@example.com")
	d := h.waitState(t, id+"-1", queue.StateDelivered)
	reqs := rc.requests()
	if len(reqs) != 2 || !bytes.Equal(reqs[0].body, reqs[1].body) {
		t.Fatalf("%d requests; bodies the same: %v", len(reqs), len(reqs) == 2 && bytes.Equal(reqs[0].body, reqs[1].body))
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(stopAts, []string{"", "2"}) || d.ParseCut != "2" {
		t.Errorf("parses stopped at %q, record's cut %q; want the second at 2", stopAts, d.ParseCut)
	}
}
