package dispatch

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"runtime/debug"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/mailhook/mailhook/queue"
	"github.com/mailhook/mailhook/store"
)

// maxDrainBytes bounds how much of a response body is read (and thrown
// away) so that the connection can be reused.
const maxDrainBytes = 64 << 10

// verdict is what an attempt's result means for the delivery.
type verdict int

const (
	verdictRetry verdict = iota
	verdictDelivered
	verdictFailed
)

func (v verdict) String() string {
	switch v {
	case verdictDelivered:
		return "delivered"
	case verdictFailed:
		return "failed"
	}
	return "retry"
}

// classify maps a receiver's answer to a verdict: 2xx delivered; 408, 429
// and 5xx retried; any other status (3xx, 4xx) failed; no response
// (status 0) retried, and so is a final 1xx (a 101 to a POST is a broken
// exchange, like a dropped connection, not an answer).
func classify(status int) verdict {
	switch {
	case status < 200:
		return verdictRetry
	case status >= 200 && status < 300:
		return verdictDelivered
	case status == http.StatusRequestTimeout, status == http.StatusTooManyRequests, status >= 500 && status < 600:
		return verdictRetry
	}
	return verdictFailed
}

// parseRetryAfter reads a Retry-After value (RFC 9110 §10.2.3: delay in
// seconds or an HTTP-date) as a delay from now, capped at limit.
func parseRetryAfter(v string, now time.Time, limit time.Duration) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	secs, err := strconv.ParseInt(v, 10, 64)
	if errors.Is(err, strconv.ErrRange) && v[0] != '-' {
		return limit, true // RFC 9110 §10.2.3 sets no bound on the digits
	}
	if err == nil {
		if secs < 0 {
			return 0, false
		}
		if secs > int64(limit/time.Second) {
			return limit, true
		}
		return time.Duration(secs) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return min(max(t.Sub(now), 0), limit), true
	}
	return 0, false
}

// result is what one HTTP attempt gave.
type result struct {
	status     int
	err        error // transport error, or why no request was sent
	permanent  bool  // err cannot be fixed by retrying
	latency    time.Duration
	response   string
	retryAfter time.Duration // 0 = none
	host       string        // the endpoint's host, once attempt parsed it
	// sent: the request went out and ended on its own (answered, refused,
	// timed out), not cut short by a shutdown or a lost lease: what it
	// says of the endpoint's health counts (see pause.go).
	sent bool
}

// process makes one attempt at the delivery of it, under its lease,
// records its outcome and reschedules or forgets it.
func (d *Dispatcher) process(ctx context.Context, it *item) {
	d.mu.Lock()
	endpoint := it.endpoint
	rec := it.inMemory()
	it.rec, it.again, it.taken = nil, nil, true
	d.mu.Unlock()
	if ctx.Err() != nil {
		d.done1(it, endpoint, true, it.at)
		return
	}

	if rec == nil {
		var ok bool
		if rec, ok = d.load(ctx, it, endpoint); !ok {
			return
		}
	}
	if rec.NextAttemptAt.After(d.cfg.Now()) {
		// The store says later (another process recorded an attempt).
		d.setEndpoint(it, rec.Endpoint)
		d.done1(it, endpoint, true, rec.NextAttemptAt)
		return
	}

	actx, cancelAttempt := context.WithCancelCause(ctx)
	defer cancelAttempt(nil)
	var k *keeper
	// fresh: the record carries the claim this process wrote when it
	// accepted the message, with time to spare; the first attempt is made
	// under it, with no store write before it (see lease.go).
	fresh := d.freshClaim(rec)
	if fresh {
		k = d.keepClaim(rec.ID, rec.ClaimedAt(), cancelAttempt)
		d.claimed.Add(1)
	} else {
		if c := rec.Claim; c != nil && c.Owner != d.owner.ID {
			if later, held := d.claimHeld(it, c); held {
				d.heldElsewhere(ctx, it, "claim of "+c.Owner)
				d.done1(it, endpoint, true, later)
				return
			}
		}
		// Only the holder of the lease attempts (see lease.go).
		lease, prev, claimed, later := d.claim(ctx, it, d.cfg.Now().Add(d.policy.Delay(len(rec.Attempts)+1, d.cfg.Rand())))
		if lease == nil {
			d.heldElsewhere(ctx, it, "lease")
			d.done1(it, endpoint, true, later)
			return
		}
		if it.held != nil {
			it.held.since, it.held.warned = time.Time{}, false
		}
		if prev != nil {
			d.takeovers.Add(1)
			d.logTakeover(ctx, "lease taken over", prev)
		}
		k = d.keep(lease, claimed, cancelAttempt)
	}

	// Persist the attempt before making it: if the process dies during
	// it, the delivery is not due again before intent, the next retry of
	// the backoff, and no replica takes it up before the lease has
	// expired. (While the attempt runs, the lease, renewed, keeps the
	// others off, however long it takes.) A fresh record needs no such
	// write: its claim, written with it, already keeps everyone off
	// until it expires, this process too once restarted. Nor does the
	// first attempt on a record still carrying this process's claim
	// (one that waited too long, behind a paused endpoint or a backlog):
	// like a fresh one it is made by the process that accepted it, which
	// has not died since; should it die now, its successor, another
	// owner, persists its own attempt, so no message can crash-loop the
	// service without its attempts being counted and spaced. Only a
	// check that the record is still the version read, now that the
	// lease is held (another replica may have settled it before), takes
	// the write's place.
	var n int
	var delay time.Duration
	var start, intent time.Time
	for try := 0; ; try++ {
		d.mu.Lock()
		it.replays, it.windowStart = rec.Replays, rec.RetryWindowStart()
		d.mu.Unlock()
		start = d.cfg.Now()
		if rec.NextAttemptAt.After(start) {
			d.letGo(ctx, k)
			d.setEndpoint(it, rec.Endpoint)
			d.done1(it, endpoint, true, rec.NextAttemptAt)
			return
		}
		n = len(rec.Attempts) + 1
		delay = d.policy.Delay(n, d.cfg.Rand())
		intent = start.Add(delay)
		if fresh {
			break
		}
		bctx, cancel := d.persistCtx(ctx)
		var err error
		if d.claimedHere(rec) && len(rec.Attempts) == 0 {
			err = d.q.Unchanged(bctx, rec)
		} else {
			err = d.q.BeginAttempt(bctx, rec, start, intent)
		}
		cancel()
		if err == nil {
			break
		}
		if try == 0 && errors.Is(err, store.ErrPrecondition) {
			// What we read is stale; with the lease held, the current
			// version cannot change under us: read it and look again.
			var ok bool
			if rec, ok = d.load(ctx, it, endpoint); !ok {
				d.letGo(ctx, k)
				return
			}
			continue
		}
		d.letGo(ctx, k)
		d.storeTrouble(ctx, it, endpoint, "begin attempt", err, start.Add(delay))
		return
	}

	res := d.attempt(actx, rec)
	end := d.cfg.Now()
	d.answered(ctx, it, endpoint, start, end, res)
	a := queue.Attempt{
		At:        start.UTC(),
		Endpoint:  rec.Endpoint,
		Status:    res.status,
		LatencyMS: res.latency.Milliseconds(),
		Response:  res.response,
	}
	if res.err != nil {
		a.Error = res.err.Error()
	}
	if res.status != 0 {
		d.attempts[classOf(res.status)].Add(1)
	} else {
		d.attempts[classError].Add(1)
	}

	v := classify(res.status)
	if res.err != nil && res.status == 0 && res.permanent {
		v = verdictFailed
	}
	if v != verdictDelivered && k.isLost() {
		// Another replica may own the delivery now: leave the record
		// and the lease to it. Look again once a lease could expire.
		k.stop()
		res.err = errLeaseLost
		d.logAttempt(ctx, rec, n, res, verdictRetry, intent)
		d.done1(it, endpoint, true, end.Add(d.cfg.LeaseTTL))
		return
	}
	var next time.Time
	reason := a.Summary()
	if v == verdictRetry {
		next = end.Add(delay)
		if res.retryAfter > 0 && end.Add(res.retryAfter).After(next) {
			next = end.Add(res.retryAfter)
		}
		if next.Sub(rec.RetryWindowStart()) > d.cfg.RetryMaxElapsed {
			v = verdictFailed
			reason = fmt.Sprintf("retry window of %s exhausted; last: %s", d.cfg.RetryMaxElapsed, a.Summary())
		}
	}

	rctx, cancel := d.persistCtx(ctx)
	var err error
	switch v {
	case verdictDelivered:
		err = d.q.MarkDelivered(rctx, rec, a)
	case verdictFailed:
		err = d.q.MarkFailed(rctx, rec, a, reason)
	default:
		err = d.q.RecordAttempt(rctx, rec, a, next)
	}
	cancel()
	d.letGo(ctx, k)
	d.logAttempt(ctx, rec, n, res, v, next)
	if err != nil {
		// The store holds the intent written above: the delivery is due
		// again at intent at the latest, here or in another process.
		d.storeTrouble(ctx, it, endpoint, "record attempt", err, intent)
		return
	}
	switch v {
	case verdictDelivered:
		d.done1(it, endpoint, false, time.Time{})
		d.delivered.Add(1)
	case verdictFailed:
		d.done1(it, endpoint, false, time.Time{})
		d.failed.Add(1)
	default:
		// The record is not kept: a delivery waiting for its retry costs
		// only its scheduling facts, however long a receiver stays down
		// and however many deliveries wait for it. The next attempt
		// reads it again (one store read a retry).
		d.mu.Lock()
		it.endpoint = canonical(rec.Endpoint)
		d.mu.Unlock()
		d.done1(it, endpoint, true, next)
	}
}

// persistCtx returns the context of one store call: its own timeout,
// detached from ctx so that an attempt cut short by a shutdown is still
// recorded.
func (d *Dispatcher) persistCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), persistTimeout)
}

// load reads the record of it. When there is nothing to attempt it
// reschedules or forgets it and reports false.
func (d *Dispatcher) load(ctx context.Context, it *item, endpoint string) (*queue.Delivery, bool) {
	lctx, cancel := d.persistCtx(ctx)
	rec, err := d.q.Load(lctx, it.id)
	cancel()
	switch {
	case errors.Is(err, store.ErrNotFound):
		d.done1(it, endpoint, false, time.Time{})
		return nil, false
	case err != nil:
		d.log.LogAttrs(ctx, slog.LevelWarn, "loading delivery failed", slog.String("id", it.id), slog.String("error", err.Error()))
		d.done1(it, endpoint, true, d.cfg.Now().Add(d.cfg.RescanInterval))
		return nil, false
	case rec.State != queue.StatePending || rec.Endpoint == "":
		d.done1(it, endpoint, false, time.Time{})
		return nil, false
	}
	return rec, true
}

func (d *Dispatcher) setEndpoint(it *item, endpoint string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	it.endpoint = canonical(endpoint)
}

// storeTrouble handles a failed store update: a lost race means another
// writer changed the record, so forget it (a rescan reads it again); other
// errors retry later without caching the record.
func (d *Dispatcher) storeTrouble(ctx context.Context, it *item, endpoint, op string, err error, retry time.Time) {
	if errors.Is(err, store.ErrPrecondition) || errors.Is(err, store.ErrNotFound) {
		d.log.LogAttrs(ctx, slog.LevelDebug, "delivery changed by another writer", slog.String("id", it.id), slog.String("op", op))
		d.done1(it, endpoint, false, time.Time{})
		return
	}
	d.log.LogAttrs(ctx, slog.LevelError, "storing delivery state failed", slog.String("id", it.id), slog.String("op", op), slog.String("error", err.Error()))
	d.done1(it, endpoint, true, retry)
}

// attempt renders, signs and POSTs rec once.
func (d *Dispatcher) attempt(ctx context.Context, rec *queue.Delivery) (res result) {
	u, err := url.Parse(rec.Endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return result{err: errors.New("invalid endpoint URL"), permanent: true}
	}
	defer func() { res.host = u.Host }()
	release, err := d.takeMemory(ctx, rec.Raw.Size)
	if err != nil {
		return result{err: transportError(err, ctx, d.cfg.AttemptTimeout)}
	}
	defer release() // after the answer: a streamed body is encoded while sent
	sp := &stream{threshold: d.cfg.StreamThreshold}
	body, err := d.safeRender(withStream(ctx, sp), rec)
	if err != nil {
		return result{err: err, permanent: errors.Is(err, ErrPermanent) || errors.Is(err, store.ErrNotFound)}
	}

	ts := d.cfg.Now()
	var sig string
	size := int64(len(body))
	if sp.ev != nil {
		// First pass over the stream: its length and signature.
		if size, sig, err = d.measure(rec.WebhookID(), ts, sp); err != nil {
			return result{err: err}
		}
	} else if d.signer != nil {
		sig = d.signer.Sign(rec.WebhookID(), ts, body)
	}

	actx, cancel := context.WithTimeout(ctx, d.cfg.AttemptTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(actx, http.MethodPost, rec.Endpoint, nil)
	if err != nil {
		return result{err: errors.New("invalid endpoint URL"), permanent: true}
	}
	req.ContentLength = size
	req.GetBody = func() (io.ReadCloser, error) {
		if sp.ev != nil {
			return sp.open(), nil // the second pass
		}
		return io.NopCloser(bytes.NewReader(body)), nil
	}
	req.Body, _ = req.GetBody()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", d.cfg.UserAgent)
	// Standard Webhooks header names, lower case as the specification
	// writes them (HTTP header names are case-insensitive).
	req.Header["webhook-id"] = []string{rec.WebhookID()}
	req.Header["webhook-timestamp"] = []string{strconv.FormatInt(ts.Unix(), 10)}
	if d.signer != nil {
		req.Header["webhook-signature"] = []string{sig}
	}

	t0 := time.Now()
	resp, err := d.cfg.HTTPClient.Do(req)
	if err != nil {
		return result{err: transportError(err, actx, d.cfg.AttemptTimeout), latency: time.Since(t0), sent: ctx.Err() == nil}
	}
	defer resp.Body.Close()
	var head [queue.MaxResponseBytes]byte
	k, _ := io.ReadFull(resp.Body, head[:])
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxDrainBytes-int64(k)))
	res = result{
		status:   resp.StatusCode,
		latency:  time.Since(t0),
		response: strings.ToValidUTF8(string(head[:k]), string(utf8.RuneError)),
		sent:     true,
	}
	if classify(resp.StatusCode) == verdictRetry {
		res.retryAfter, _ = parseRetryAfter(resp.Header.Get("Retry-After"), d.cfg.Now(), d.cfg.RetryMaxInterval)
	}
	return res
}

// measure encodes the streamed event once and returns its length and,
// with a Signer, its signature (streamed when the Signer can, as
// *signing.Signer does, else from memory).
func (d *Dispatcher) measure(id string, ts time.Time, sp *stream) (int64, string, error) {
	r := sp.open()
	defer r.Close() // ends the encoder if the signer stops early
	cr := &countingReader{r: r}
	var sig string
	var err error
	switch s := d.signer.(type) {
	case nil:
		_, err = io.Copy(io.Discard, cr)
	case interface {
		SignReader(id string, ts time.Time, body io.Reader) (string, error)
	}:
		sig, err = s.SignReader(id, ts, cr)
	default:
		var body []byte
		if body, err = io.ReadAll(cr); err == nil {
			sig = s.Sign(id, ts, body)
		}
	}
	if err != nil {
		return 0, "", fmt.Errorf("encode event: %w", err)
	}
	return cr.n, sig, nil
}

// safeRender calls the renderer, turning a panic (a parser bug on hostile
// input) into a permanent error: the delivery becomes a dead letter that
// can be replayed once the bug is fixed, and the process stays up.
func (d *Dispatcher) safeRender(ctx context.Context, rec *queue.Delivery) (body []byte, err error) {
	defer func() {
		if p := recover(); p != nil {
			d.log.LogAttrs(ctx, slog.LevelError, "render panicked", slog.String("id", rec.ID), slog.Any("panic", p), slog.String("stack", string(debug.Stack())))
			body, err = nil, fmt.Errorf("%w: render panicked", ErrPermanent)
		}
	}()
	return d.render(ctx, rec)
}

// transportError describes err without the request URL, which may carry a
// secret in its query.
func transportError(err error, actx context.Context, timeout time.Duration) error {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(actx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("timeout after %s", timeout)
	}
	if errors.Is(context.Cause(actx), errLeaseLost) {
		return errLeaseLost
	}
	if errors.Is(err, context.Canceled) {
		return errors.New("cancelled: dispatcher stopping")
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		if ue.Timeout() {
			return fmt.Errorf("timeout after %s", timeout)
		}
		return ue.Err
	}
	return err
}

// logAttempt writes the one line per attempt: ids, endpoint host, status,
// latency, outcome, next attempt. Never bodies, secrets or full URLs. It
// also tells Config.OnAttempt.
func (d *Dispatcher) logAttempt(ctx context.Context, rec *queue.Delivery, n int, res result, v verdict, next time.Time) {
	host := res.host
	if host == "" {
		host = endpointHost(rec.Endpoint)
	}
	attrs := []slog.Attr{
		slog.String("id", rec.ID),
		slog.String("event_id", rec.EventID),
		slog.String("endpoint_host", host),
		slog.Int("attempt", n),
		slog.Int("status", res.status),
		slog.Int64("latency_ms", res.latency.Milliseconds()),
		slog.String("outcome", v.String()),
	}
	if res.err != nil {
		attrs = append(attrs, slog.String("error", res.err.Error()))
	}
	if v == verdictRetry {
		attrs = append(attrs, slog.Time("next_attempt", next))
	}
	d.log.LogAttrs(ctx, slog.LevelInfo, "delivery attempt", attrs...)
	if d.cfg.OnAttempt != nil {
		d.cfg.OnAttempt(res.status, v.String(), res.latency)
	}
}

func endpointHost(endpoint string) string {
	u, err := url.Parse(endpoint)
	if err != nil {
		return "invalid"
	}
	return u.Host
}

// heldStuckTTLs is how many lease TTLs a delivery may wait on another
// process's claim or lease (or on store errors in taking its own) before
// heldElsewhere warns: an owner alive and attempting renews for at most
// about DeliveryTimeout, and a dead one's hold runs out within about two
// TTLs, so a wait ten times as long means something is wrong.
const heldStuckTTLs = 10

// heldElsewhere notes that it could not be attempted because another
// process holds it (what, for the log), and warns once when that has
// lasted heldStuckTTLs lease TTLs.
func (d *Dispatcher) heldElsewhere(ctx context.Context, it *item, what string) {
	now := d.cfg.Now()
	h := it.hold()
	if h.since.IsZero() {
		h.since = now
		return
	}
	if waited := now.Sub(h.since); !h.warned && waited > heldStuckTTLs*d.cfg.LeaseTTL {
		h.warned = true
		d.log.LogAttrs(ctx, slog.LevelWarn, "delivery held by another process for long: check the replicas and deliveries/leases",
			slog.String("id", it.id), slog.String("held_by", what), slog.Duration("waited", waited))
	}
}
