package queue

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"iter"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/mailhook/mailhook/event"
	"github.com/mailhook/mailhook/store"
)

// Router chooses the webhook endpoint of a recipient.
type Router interface {
	// Route returns the endpoint URL for rcpt, "" when none is configured.
	Route(rcpt string) (endpoint string)
}

// RouterFunc adapts a function to Router.
type RouterFunc func(rcpt string) string

// Route calls f.
func (f RouterFunc) Route(rcpt string) string { return f(rcpt) }

// Options configure a Queue.
type Options struct {
	// Store holds everything. Required.
	Store store.Store
	// Router maps recipients to endpoints; nil routes nothing (every
	// delivery is recorded as failed with ErrNoEndpoint).
	Router Router
	// Logger gets a summary line per accepted message: at debug level, or
	// info when some recipient has no endpoint. Default: discard.
	Logger *slog.Logger
	// Now is the clock. Default: time.Now.
	Now func() time.Time
	// OnEnqueue, if set, is called with each pending delivery once it is
	// durable (by Accept and Replay), typically dispatch.(*Dispatcher).Enqueue.
	// It must not block.
	OnEnqueue func(*Delivery)
	// Owner and ClaimTTL, when ClaimTTL > 0, make Accept write every
	// pending record with a Claim by Owner lasting ClaimTTL, so that the
	// accepting process may make the first attempt without a lease of
	// its own (see Claims in the package documentation).
	Owner    LeaseOwner
	ClaimTTL time.Duration
	// RawCacheBytes bounds the memory of raw messages kept from Accept
	// to their first attempt under a claim, so that OpenRaw need not read
	// them back from the store (messages up to 64 KiB routed to a single
	// endpoint). 0 means DefaultRawCacheBytes; a negative value keeps
	// none.
	RawCacheBytes int64
}

// Queue reads and writes delivery state in a store. It is safe for
// concurrent use; it keeps no state outside the store.
type Queue struct {
	store     store.Store
	router    Router
	log       *slog.Logger
	now       func() time.Time
	onEnqueue func(*Delivery)
	owner     LeaseOwner
	claimTTL  time.Duration

	rawCacheBytes int64
	rawCached     atomic.Int64 // bytes held by cachedRaw values
}

// cleanupTimeout bounds best-effort deletes done after a failure, when the
// caller's context may already be cancelled.
const cleanupTimeout = 10 * time.Second

// New returns a Queue on opts.Store.
func New(opts Options) *Queue {
	q := &Queue{
		store:     opts.Store,
		router:    opts.Router,
		log:       opts.Logger,
		now:       opts.Now,
		onEnqueue: opts.OnEnqueue,
		owner:     opts.Owner,
		claimTTL:  opts.ClaimTTL,

		rawCacheBytes: opts.RawCacheBytes,
	}
	if q.rawCacheBytes == 0 {
		q.rawCacheBytes = DefaultRawCacheBytes
	}
	if q.router == nil {
		q.router = RouterFunc(func(string) string { return "" })
	}
	if q.log == nil {
		q.log = slog.New(slog.DiscardHandler)
	}
	if q.now == nil {
		q.now = time.Now
	}
	return q
}

// Accept makes a message durable: it streams body to raw/<id>.eml,
// computing its size and SHA-256 on the way, and writes one delivery
// record per endpoint its recipients route to, and only then calls
// OnEnqueue for the pending ones. It returns nil only when all of that is
// durable.
//
// The raw object and the records are written as one store.PutAll batch,
// raw object first: the records are encoded once the body has been read,
// become visible only after the raw object, and (on the filesystem store)
// the whole batch costs one barrier, data and names together
// (store.PutOptions.Unordered). On a store that does not batch, the raw
// object is written Lazy (store.PutOptions.Lazy) and the records' durable
// writes make it durable. Either way, once Accept has returned, a record
// never points to a raw object that is not there or not durable. A power
// loss before it returned, so for a message never acknowledged, may leave
// an empty record (ErrEmptyRecord; the dispatcher's scan removes it with
// DropEmpty) or a record whose raw object is empty (its attempt fails
// with dispatch.ErrRawMismatch and the delivery is failed).
//
// Recipients without an endpoint get one record written straight to the
// failed state with LastError ErrNoEndpoint, to be replayed later.
//
// If reading body fails, Accept stores nothing that would be delivered and
// returns an error wrapping the read error. If a later write fails, it
// deletes what it wrote, best effort, and returns the error.
func (q *Queue) Accept(ctx context.Context, id string, receivedAt time.Time, env event.Envelope, body io.Reader) error {
	if !event.ValidID(id) {
		return fmt.Errorf("queue: accept: invalid message id %q", id)
	}
	if len(env.RcptTo) == 0 {
		return fmt.Errorf("queue: accept %s: no recipients", id)
	}

	claimedAt := time.Now() // monotonic: the claim counts from before its write
	now := q.now().UTC()
	groups := q.group(env.RcptTo)
	rawKey := RawKey(id)
	hr := &hashingReader{r: body, h: sha256.New()}
	if q.claimTTL > 0 && q.rawCacheBytes > 0 && routedToOne(groups) {
		// This process makes the first attempt: keep the message for it.
		hr.capture = &rawCapture{max: rawCacheMaxMessage}
	}
	var raw event.Raw
	rawRead := func() event.Raw {
		if raw.Key == "" {
			raw = event.Raw{Key: rawKey, Size: hr.n, SHA256: hex.EncodeToString(hr.h.Sum(nil))}
		}
		return raw
	}
	reqs := make([]store.PutRequest, 0, len(groups)+1)
	reqs = append(reqs, store.PutRequest{Key: rawKey, Body: hr,
		Opts: store.PutOptions{IfNoneMatch: true, ContentType: "message/rfc822", Size: -1, Lazy: true, Unordered: true}})
	recs := make([]*Delivery, len(groups))
	pending := make([]*Delivery, 0, len(groups))
	unrouted := 0
	for i, g := range groups {
		e := env
		e.RcptTo = g.rcpts
		d := &Delivery{
			Version:    RecordVersion,
			ID:         RecordID(id, i+1),
			EventID:    id,
			Endpoint:   g.endpoint,
			Envelope:   e,
			ReceivedAt: receivedAt.UTC(),
			Records:    len(groups),
			State:      StatePending,
			CreatedAt:  now,
			Attempts:   []Attempt{},
		}
		if g.endpoint == "" {
			d.State = StateFailed
			d.LastError = ErrNoEndpoint.Error()
			unrouted += len(g.rcpts)
		} else {
			d.NextAttemptAt = now
			if q.claimTTL > 0 {
				d.Claim = &Claim{Owner: q.owner.ID, Host: q.owner.Host, PID: q.owner.PID, Proc: q.owner.Proc, ExpiresAt: now.Add(q.claimTTL)}
				d.claimedAt = claimedAt
			}
			pending = append(pending, d)
		}
		recs[i] = d
		// Encoded when the store reads it, after the raw body.
		reqs = append(reqs, store.PutRequest{Key: RecordKey(d.State, d.ID), Body: &lazyReader{encode: func() ([]byte, error) {
			d.Raw = rawRead()
			return marshalRecord(d)
		}}, Opts: store.PutOptions{IfNoneMatch: true, ContentType: "application/json", Size: -1, Unordered: true}})
	}

	objs, err := store.PutAll(ctx, q.store, reqs)
	switch {
	case hr.err != nil:
		// The store must not have kept anything, but make sure: a raw
		// object without records is garbage, not a delivery, yet it must
		// not survive to be mistaken for one.
		q.cleanup(ctx, []string{rawKey})
		return fmt.Errorf("queue: reading message %s: %w", id, hr.err)
	case err != nil:
		// Every key, the one that failed too: a write may have happened
		// with its answer lost. But not after a lost IfNoneMatch race: the
		// key is someone else's (ids are unique, so this is theory).
		keys := make([]string, 0, len(reqs))
		for _, r := range reqs[1:] {
			keys = append(keys, r.Key)
		}
		if !errors.Is(err, store.ErrPrecondition) {
			keys = append(keys, rawKey)
		}
		q.cleanup(ctx, keys)
		return fmt.Errorf("queue: accept %s: %w", id, err)
	}
	for i, d := range recs {
		d.etag, d.size = objs[i+1].ETag, objs[i+1].Size
		d.fresh = true
	}
	if hr.capture != nil && !hr.capture.over { // routed to one: pending[0]
		q.cacheRaw(pending[0], hr.capture.b)
	}

	// The SMTP transaction line already says the message was taken, with
	// its id: this one is for debugging, unless some recipient has no
	// endpoint to go to.
	level := slog.LevelDebug
	if unrouted > 0 {
		level = slog.LevelInfo
	}
	q.log.LogAttrs(ctx, level, "message stored",
		slog.String("id", id),
		slog.Int("rcpts", len(env.RcptTo)),
		slog.Int("endpoints", len(pending)),
		slog.Int("unrouted_rcpts", unrouted),
		slog.Int64("size", raw.Size))

	if q.onEnqueue != nil {
		for _, d := range pending {
			q.onEnqueue(d)
		}
	}
	return nil
}

// lazyReader reads what encode returns, calling it on the first Read.
type lazyReader struct {
	encode func() ([]byte, error)
	r      *bytes.Reader
}

func (l *lazyReader) Read(p []byte) (int, error) {
	if l.r == nil {
		b, err := l.encode()
		if err != nil {
			return 0, err
		}
		l.r = bytes.NewReader(b)
	}
	return l.r.Read(p)
}

// hashingReader counts and hashes what passes through, and remembers the
// first error other than io.EOF.
type hashingReader struct {
	r       io.Reader
	h       hash.Hash
	n       int64
	err     error
	capture *rawCapture // if set, keeps a copy
}

func (r *hashingReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	r.h.Write(p[:n])
	if r.capture != nil {
		r.capture.write(p[:n])
	}
	r.n += int64(n)
	if err != nil && err != io.EOF && r.err == nil {
		r.err = err
	}
	return n, err
}

type group struct {
	endpoint string
	rcpts    []string
}

// routedToOne reports whether gs has exactly one group with an endpoint.
func routedToOne(gs []group) bool {
	n := 0
	for _, g := range gs {
		if g.endpoint != "" {
			n++
		}
	}
	return n == 1
}

// group splits rcpts by endpoint, in the order each endpoint is first seen.
func (q *Queue) group(rcpts []string) []group {
	var gs []group
	idx := make(map[string]int)
	for _, r := range rcpts {
		ep := q.router.Route(r)
		i, ok := idx[ep]
		if !ok {
			i = len(gs)
			idx[ep] = i
			gs = append(gs, group{endpoint: ep})
		}
		gs[i].rcpts = append(gs[i].rcpts, r)
	}
	return gs
}

// cleanup deletes keys, best effort, even if ctx is already cancelled.
func (q *Queue) cleanup(ctx context.Context, keys []string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	for _, k := range keys {
		if err := q.store.Delete(ctx, k); err != nil {
			q.log.LogAttrs(ctx, slog.LevelWarn, "cleanup failed", slog.String("key", k), slog.String("error", err.Error()))
		}
	}
}

// put encodes d and writes it to key; on success it records the new ETag.
func (q *Queue) put(ctx context.Context, key string, d *Delivery, opts store.PutOptions) error {
	b, err := marshalRecord(d)
	if err != nil {
		return fmt.Errorf("encode %s: %w", key, err)
	}
	return q.putEncoded(ctx, key, d, b, opts)
}

// putEncoded is put with d already encoded as b.
func (q *Queue) putEncoded(ctx context.Context, key string, d *Delivery, b []byte, opts store.PutOptions) error {
	opts.ContentType = "application/json"
	opts.Size = int64(len(b))
	obj, err := q.store.Put(ctx, key, bytes.NewReader(b), opts)
	if err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	d.etag, d.size = obj.ETag, obj.Size
	return nil
}

// get reads the record at key. Errors wrap store.ErrNotFound when it is
// missing.
//
// A record object holds one JSON document, or several in a row once
// update has appended versions or finish has appended the outcome and
// moved it (store.Appender, store.Mover): the last complete document is
// the record. An append cut short by a crash leaves a partial document,
// which is ignored (see lastDocument); if the move happened, the key's
// state is the record's state even though its outcome was lost.
func (q *Queue) get(ctx context.Context, key string) (*Delivery, error) {
	rc, obj, err := q.store.Get(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	defer rc.Close()
	if obj.Size == 0 {
		return nil, fmt.Errorf("get %s: %w", key, ErrEmptyRecord)
	}
	b, err := io.ReadAll(rc)
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	d, whole, err := lastDocument(b)
	switch {
	case d == nil:
		return nil, fmt.Errorf("decode %s: %w: %w", key, ErrDamagedRecord, err)
	case err != nil && !isCut(err):
		q.log.LogAttrs(ctx, slog.LevelWarn, "record has a damaged tail; using its last complete document",
			slog.String("key", key), slog.String("error", err.Error()))
	}
	if s := keyState(key); s != "" && s != StatePending && d.State == StatePending {
		// Moved, but the outcome appended before the move was lost.
		d.State = s
		d.NextAttemptAt = time.Time{}
		if s == StateFailed && d.LastError == "" {
			d.LastError = errOutcomeLost
		}
	}
	d.etag, d.size = obj.ETag, obj.Size
	if !whole {
		// The next update rewrites the object (see update), leaving
		// the damaged part behind.
		d.size = 0
	}
	return d, nil
}

// lastDocument decodes the last complete record document of b, a record
// object: documents follow each other, each appended one after a line
// break, and a crash may have cut the last of them or left zeros where it
// was to be, after which later ones may still have been appended. The
// JSON encoder never writes a raw line break, so a line break followed by
// "{" always starts a document. whole reports that the document decoded
// is the last thing in b; err is why a later part did not decode.
func lastDocument(b []byte) (d *Delivery, whole bool, err error) {
	whole = true
	for end := len(b); end > 0; {
		start := bytes.LastIndex(b[:end], []byte("\n{")) + 1 // 0: the first document
		var next Delivery
		derr := json.Unmarshal(bytes.TrimRight(b[start:end], "\x00 \t\r\n"), &next)
		if derr == nil {
			return &next, whole, err
		}
		if err == nil {
			err = derr
		}
		whole = false
		end = start - 1 // before the line break
	}
	if err == nil {
		err = io.ErrUnexpectedEOF
	}
	return nil, false, err
}

// isCut reports whether a decoding error is what an append cut short by a
// crash leaves: a document that ends early, or the zeros of blocks that
// were allocated and never written.
func isCut(err error) bool {
	var se *json.SyntaxError
	return errors.Is(err, io.ErrUnexpectedEOF) || errors.As(err, &se)
}

// keyState is the state whose prefix key is under, or "".
func keyState(key string) State {
	for _, s := range []State{StatePending, StateDelivered, StateFailed} {
		if strings.HasPrefix(key, DeliveriesRoot+string(s)+"/") {
			return s
		}
	}
	return ""
}

// Load returns the delivery record recID in whatever state it is. A
// pending record left behind by a crash after its outcome was recorded is
// cleaned up, and the recorded outcome returned. Errors wrap
// store.ErrNotFound when there is no such record.
func (q *Queue) Load(ctx context.Context, recID string) (*Delivery, error) {
	if !ValidRecordID(recID) {
		return nil, fmt.Errorf("queue: load: invalid record id %q: %w", recID, store.ErrNotFound)
	}
	d, err := q.loadPending(ctx, recID)
	if err == nil {
		return d, nil
	}
	if !errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("queue: load %s: %w", recID, err)
	}
	// Delivered first: nothing moves a delivery out of delivered, so a
	// failed record beside it is stale (one an interrupted cleanup left:
	// a replayed delivery's old dead letter, or a failure recorded on the
	// version before a replay --pending, on a store without moves).
	for _, s := range []State{StateDelivered, StateFailed} {
		d, err := q.get(ctx, RecordKey(s, recID))
		if err == nil {
			return d, nil
		}
		if !errors.Is(err, store.ErrNotFound) {
			return nil, fmt.Errorf("queue: load %s: %w", recID, err)
		}
	}
	return nil, fmt.Errorf("queue: load %s: %w", recID, store.ErrNotFound)
}

// loadPending reads deliveries/pending/<recID>.json and settles a record
// whose outcome was recorded but which a crash left behind.
func (q *Queue) loadPending(ctx context.Context, recID string) (*Delivery, error) {
	d, err := q.get(ctx, RecordKey(StatePending, recID))
	if err != nil {
		return nil, err
	}
	if d.State != StatePending {
		// Not written by this version, but unambiguous: finish the move.
		read := d.etag // q.put sets d.etag to the copy's
		if err := q.put(ctx, RecordKey(d.State, recID), d, store.PutOptions{IfNoneMatch: true}); err != nil && !errors.Is(err, store.ErrPrecondition) {
			return nil, err
		}
		if err := store.DeleteIfMatch(ctx, q.store, RecordKey(StatePending, recID), read); err != nil {
			return nil, err // changed since it was read (ErrPrecondition): read it again
		}
		return q.Load(ctx, recID)
	}
	if !d.lastUnfinished() && d.Claim == nil {
		return d, nil
	}
	// The process stopped during an attempt, or after recording its
	// outcome and before deleting this record. A twin that holds as many
	// attempts holds that outcome. (A record still under the claim it was
	// accepted with has none: its first attempt is not persisted before
	// it is made.)
	for _, s := range []State{StateDelivered, StateFailed} {
		twin, err := q.get(ctx, RecordKey(s, recID))
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		// A failed twin of an earlier replay is not this version's
		// outcome: the delivery was replayed (ReplayPending) while the
		// attempt that failed it ran, and the replay goes on.
		if twin.EventID == d.EventID && len(twin.Attempts) >= len(d.Attempts) && (s == StateDelivered || twin.Replays >= d.Replays) {
			// Only the version read: a replay may have just put a new one.
			if err := store.DeleteIfMatch(ctx, q.store, RecordKey(StatePending, recID), d.etag); err != nil {
				return nil, err // ErrPrecondition: read it again
			}
			return twin, nil
		}
	}
	return d, nil
}

// records yields the records listed under prefix; load reads one by id.
func (q *Queue) records(ctx context.Context, prefix string, load func(context.Context, string) (*Delivery, error), want State) iter.Seq2[*Delivery, error] {
	return func(yield func(*Delivery, error) bool) {
		for id, err := range q.ids(ctx, prefix, "") {
			if err != nil {
				yield(nil, err)
				return
			}
			d, err := load(ctx, id)
			if errors.Is(err, store.ErrNotFound) {
				continue // moved on since it was listed
			}
			if err != nil {
				err = fmt.Errorf("queue: load %s: %w", id, err)
			} else if d.State != want {
				continue
			}
			if !yield(d, err) {
				return
			}
		}
	}
}

// ids yields the record ids listed under prefix, oldest first.
func (q *Queue) ids(ctx context.Context, prefix, afterKey string) iter.Seq2[string, error] {
	return func(yield func(string, error) bool) {
		for key, err := range store.ListKeysAfter(ctx, q.store, prefix, afterKey) {
			if err != nil {
				yield("", fmt.Errorf("queue: list %s: %w", prefix, err))
				return
			}
			id, ok := strings.CutSuffix(strings.TrimPrefix(key, prefix), recordExt)
			if !ok || !ValidRecordID(id) {
				continue // not ours (a temporary file, a stray object)
			}
			if !yield(id, nil) {
				return
			}
		}
	}
}

// PendingIDs yields the ids of the pending records, oldest message first,
// without reading them: one listing, no per-record reads.
func (q *Queue) PendingIDs(ctx context.Context) iter.Seq2[string, error] {
	return q.ids(ctx, PendingPrefix, "")
}

// IDs yields the ids of the records in state s, oldest message first,
// without reading the records; only those after the id after unless it is
// "" (the listing starts there: store.AfterLister).
func (q *Queue) IDs(ctx context.Context, s State, after string) iter.Seq2[string, error] {
	afterKey := ""
	if after != "" {
		afterKey = RecordKey(s, after)
	}
	return q.ids(ctx, DeliveriesRoot+string(s)+"/", afterKey)
}

// Pending yields the pending deliveries, oldest message first. Records
// whose outcome was already recorded are cleaned up and skipped. A read
// error is yielded and iteration goes on; a listing error ends it.
func (q *Queue) Pending(ctx context.Context) iter.Seq2[*Delivery, error] {
	return q.records(ctx, PendingPrefix, q.loadPending, StatePending)
}

// Failed yields the failed deliveries (dead letters), oldest message first.
func (q *Queue) Failed(ctx context.Context) iter.Seq2[*Delivery, error] {
	return q.records(ctx, FailedPrefix, func(ctx context.Context, id string) (*Delivery, error) {
		return q.get(ctx, RecordKey(StateFailed, id))
	}, StateFailed)
}

// BeginAttempt persists, before an attempt is made, an unfinished attempt
// started at at and NextAttemptAt = retryAt, so that if the process stops
// during the attempt the delivery is not retried before retryAt. d must be
// pending; the update is conditional on d being the current version
// (errors wrap store.ErrPrecondition otherwise: reload it).
func (q *Queue) BeginAttempt(ctx context.Context, d *Delivery, at, retryAt time.Time) error {
	nd := d.clone()
	nd.Attempts = append(nd.Attempts, Attempt{At: at.UTC(), Endpoint: d.Endpoint, Error: errUnfinished, Unfinished: true})
	nd.NextAttemptAt = retryAt.UTC()
	return q.update(ctx, d, nd)
}

// Unchanged checks that d is still the current version of its pending
// record, as BeginAttempt would before writing: an error wrapping
// store.ErrPrecondition if it has changed or is gone (reload it).
func (q *Queue) Unchanged(ctx context.Context, d *Delivery) error {
	if d.State != StatePending {
		return fmt.Errorf("queue: check %s: state is %s, not pending", d.ID, d.State)
	}
	obj, err := q.store.Stat(ctx, RecordKey(StatePending, d.ID))
	switch {
	case errors.Is(err, store.ErrNotFound) || err == nil && obj.ETag != d.etag:
		return fmt.Errorf("queue: check %s: record changed: %w", d.ID, store.ErrPrecondition)
	case err != nil:
		return fmt.Errorf("queue: check %s: %w", d.ID, err)
	}
	return nil
}

// RecordAttempt persists the result a of an attempt that will be retried
// at next (it replaces the unfinished attempt BeginAttempt wrote). Like
// BeginAttempt it is conditional on d being the current version.
func (q *Queue) RecordAttempt(ctx context.Context, d *Delivery, a Attempt, next time.Time) error {
	nd := d.clone()
	nd.settle(a)
	nd.NextAttemptAt = next.UTC()
	nd.LastError = a.Summary()
	return q.update(ctx, d, nd)
}

// ReleaseClaim rewrites the pending record d without its Claim, so that
// any replica may attempt it at once (a process stopping gracefully
// releases the claims it will not use). Like BeginAttempt it is
// conditional on d being the current version.
func (q *Queue) ReleaseClaim(ctx context.Context, d *Delivery) error {
	if d.Claim == nil {
		return nil
	}
	return q.update(ctx, d, d.clone())
}

// maxAppendedRecord bounds a pending record object that updates append
// to: past it, the next update rewrites the object with its last version
// alone.
const maxAppendedRecord = 16 << 10

// update replaces the pending record d with nd, conditional on d being
// the current version. It writes Lazy (store.PutOptions.Lazy): only a
// crash of the machine before the next durable write can undo it, which
// brings back the previous version: an attempt is then repeated sooner,
// nothing is lost.
//
// On a store that appends (store.Appender, the filesystem store) nd is
// appended to the record's object, as finish appends the outcome: no new
// file, no rename, no wait for a group commit. A crash may cut the
// appended document, which is then ignored (see get): the previous
// version again. Elsewhere, or once the object has grown past
// maxAppendedRecord, nd replaces it.
func (q *Queue) update(ctx context.Context, d, nd *Delivery) error {
	if d.State != StatePending {
		return fmt.Errorf("queue: update %s: state is %s, not pending", d.ID, d.State)
	}
	key := RecordKey(StatePending, d.ID)
	// The tail: a line break, then the record.
	tail, err := appendRecordJSON(append(make([]byte, 0, 1024), '\n'), nd)
	if err != nil {
		return fmt.Errorf("queue: update %s: encode: %w", d.ID, err)
	}
	if d.size > 0 && d.size+int64(len(tail)) <= maxAppendedRecord {
		obj, err := store.AppendIfMatch(ctx, q.store, key, d.etag, tail, store.AppendOptions{Lazy: true})
		switch {
		case err == nil:
			nd.etag, nd.size = obj.ETag, obj.Size
			*d = *nd
			return nil
		case !errors.Is(err, errors.ErrUnsupported):
			return fmt.Errorf("queue: update %s: %w", d.ID, err)
		}
	}
	if err := q.putEncoded(ctx, key, nd, tail[1:], store.PutOptions{IfMatch: d.etag, Lazy: true}); err != nil {
		return fmt.Errorf("queue: update %s: %w", d.ID, err)
	}
	*d = *nd
	return nil
}

// MarkDelivered records a, the successful attempt, and moves d to
// delivered. It is idempotent: repeating it after a crash is harmless.
func (q *Queue) MarkDelivered(ctx context.Context, d *Delivery, a Attempt) error {
	nd := d.clone()
	nd.settle(a)
	nd.State = StateDelivered
	nd.NextAttemptAt = time.Time{}
	nd.LastError = ""
	return q.finish(ctx, d, nd)
}

// MarkFailed records a (a zero Attempt records none) and moves d to the
// failed state with LastError reason. It is idempotent like MarkDelivered.
func (q *Queue) MarkFailed(ctx context.Context, d *Delivery, a Attempt, reason string) error {
	nd := d.clone()
	nd.settle(a)
	nd.State = StateFailed
	nd.NextAttemptAt = time.Time{}
	nd.LastError = reason
	return q.finish(ctx, d, nd)
}

// finish moves d's record to nd's state, recording nd, then removes a
// failed record a replay may have left behind.
//
// On a store that moves (store.Mover, the filesystem store) nd is
// appended to the pending record, which is then renamed into place: no
// object created or deleted. Elsewhere nd is written under its state's
// prefix, Lazy, and the pending record deleted: the delete makes the
// write durable before it returns (store.PutOptions.Lazy). Either way a
// crash leaves the pending record, to be settled by loadPending or the
// attempt repeated, or the new one; never neither.
func (q *Queue) finish(ctx context.Context, d, nd *Delivery) error {
	if err := q.move(ctx, nd); err != nil {
		return fmt.Errorf("queue: mark %s %s: %w", nd.ID, nd.State, err)
	}
	if nd.State == StateDelivered && nd.Replays > 0 {
		if err := q.store.Delete(ctx, RecordKey(StateFailed, nd.ID)); err != nil {
			return fmt.Errorf("queue: mark %s %s: %w", nd.ID, nd.State, err)
		}
	}
	*d = *nd
	return nil
}

// move stores nd, a pending record's next state, in place of the pending
// record; see finish.
func (q *Queue) move(ctx context.Context, nd *Delivery) error {
	from, to := RecordKey(StatePending, nd.ID), RecordKey(nd.State, nd.ID)
	fromETag := nd.etag // the pending version nd follows (clone keeps it)
	// The tail: a line break, then the record.
	tail, err := appendRecordJSON(append(make([]byte, 0, 1024), '\n'), nd)
	if err != nil {
		return fmt.Errorf("encode %s: %w", to, err)
	}
	b := tail[1:]
	// Lazy: a crash of the machine that undoes the move leaves the record
	// pending, and the delivery is made again (at least once, same
	// webhook-id); nothing is lost.
	opts := store.MoveOptions{Lazy: true}
	if nd.State == StateFailed {
		// Only the version the failure follows: a delivery replayed
		// while its attempt ran (ReplayPending) stays pending for the
		// replay. A success settles it whatever happened since.
		opts.IfMatch = fromETag
	}
	obj, err := store.MoveAppend(ctx, q.store, from, to, tail, opts)
	switch {
	case err == nil:
		nd.etag = obj.ETag
		return nil
	case !errors.Is(err, errors.ErrUnsupported) && !errors.Is(err, store.ErrNotFound):
		return err
	}
	// No moves here, or no pending record left to move (a crash after
	// the move, or a record settled by someone else): write nd.
	if err := q.putEncoded(ctx, to, nd, b, store.PutOptions{Lazy: true}); err != nil {
		return err
	}
	// Only the version this move replaces: a replay may have put the
	// delivery back under from since (another process, or this delete
	// arriving late), and that record must stay.
	if err := store.DeleteIfMatch(ctx, q.store, from, fromETag); err != nil && !errors.Is(err, store.ErrPrecondition) {
		return err
	}
	return nil
}

// OpenRaw opens the raw message of d. The caller closes it. The first
// attempt of a delivery this process accepted may get the message from
// memory (see Options.RawCacheBytes), once; every other read goes to the
// store. The first read of such a delivery is Verified.
func (q *Queue) OpenRaw(ctx context.Context, d *Delivery) (io.ReadCloser, error) {
	fresh := d.fresh
	d.fresh = false
	if rc := takeRaw(d); rc != nil {
		return rc, nil
	}
	rc, _, err := q.store.Get(ctx, d.Raw.Key)
	if err != nil {
		return nil, fmt.Errorf("queue: open raw %s: %w", d.Raw.Key, err)
	}
	if fresh {
		return verifiedReader{rc}, nil
	}
	return rc, nil
}

// Verified reports whether r, a reader from OpenRaw, is the first read of
// the raw message of a delivery that this process's Accept made and that
// was not updated since: its bytes are those Accept hashed into Raw.SHA256
// as it stored them, moments before, read back from memory or from the
// store that had just made them durable. Checking them against that hash
// again would find nothing; their size is still worth checking. Every
// other read of a raw message, one from a record loaded from the store
// or a later attempt's, is not Verified: the store may have damaged it.
func Verified(r io.Reader) bool {
	switch r.(type) {
	case verifiedReader, *cachedReader:
		return true
	}
	return false
}

// verifiedReader marks a store's reader as Verified.
type verifiedReader struct{ io.ReadCloser }

// ErrEmptyRecord: a record object holds nothing. Accept writes its
// records with store.PutOptions.Unordered, so a power loss before Accept
// returned (the message was not acknowledged) may leave an empty pending
// one; anything else empty was damaged.
var ErrEmptyRecord = errors.New("record is empty")

// ErrDamagedRecord: a record object holds no complete JSON document.
var ErrDamagedRecord = errors.New("record is damaged")

// Unreadable reports whether err says that a record exists but cannot be
// read (ErrEmptyRecord, ErrDamagedRecord): listings and replays skip such
// a record, naming it, rather than stop at it.
func Unreadable(err error) bool {
	return errors.Is(err, ErrEmptyRecord) || errors.Is(err, ErrDamagedRecord)
}

// DropEmpty deletes the pending record recID if it is empty (see
// ErrEmptyRecord) and was last modified before notAfter (the store's
// clock), and reports whether it did. The age is a margin: a record is
// never empty once visible on a local filesystem, but a store shared
// through a network filesystem might show one a moment before its data.
// The raw object it named, if any, is left where it is.
func (q *Queue) DropEmpty(ctx context.Context, recID string, notAfter time.Time) (bool, error) {
	key := RecordKey(StatePending, recID)
	obj, err := q.store.Stat(ctx, key)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("queue: drop empty %s: %w", recID, err)
	}
	if obj.Size != 0 || !obj.ModTime.Before(notAfter) {
		return false, nil
	}
	// Only the empty object seen: a record that came back meanwhile (the
	// filesystem store restoring it from its log after a crash of the
	// machine) is kept.
	err = store.DeleteIfMatch(ctx, q.store, key, obj.ETag)
	if errors.Is(err, store.ErrPrecondition) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("queue: drop empty %s: %w", recID, err)
	}
	return true, nil
}

// Replay puts the failed delivery recID back on the queue: pending, due
// now, its attempt log kept, the same EventID (webhook-id), and a fresh
// retry window. A non-empty endpoint replaces the delivery's endpoint. A
// delivery recorded without an endpoint and replayed without one is routed
// again with the current Router (errors wrap ErrNoEndpoint if that still
// gives none). Errors wrap store.ErrNotFound when recID is not failed.
// Repeating a replay that was interrupted by a crash finishes it.
func (q *Queue) Replay(ctx context.Context, recID string, endpoint string) error {
	if !ValidRecordID(recID) {
		return fmt.Errorf("queue: replay: invalid record id %q: %w", recID, store.ErrNotFound)
	}
	failedKey := RecordKey(StateFailed, recID)
	d, err := q.get(ctx, failedKey)
	if err != nil {
		return fmt.Errorf("queue: replay %s: %w", recID, err)
	}
	if _, err := q.get(ctx, RecordKey(StateDelivered, recID)); err == nil {
		// Delivered since: the dead letter is a stale one a cleanup left.
		if err := store.DeleteIfMatch(ctx, q.store, failedKey, d.etag); err != nil && !errors.Is(err, store.ErrPrecondition) {
			return fmt.Errorf("queue: replay %s: %w", recID, err)
		}
		return fmt.Errorf("queue: replay %s: delivered already: %w", recID, store.ErrNotFound)
	}
	if endpoint, err = q.ReplayEndpoint(d, endpoint); err != nil {
		return fmt.Errorf("queue: replay %s: %w", recID, err)
	}
	now := q.now().UTC()
	nd := d.clone()
	nd.State = StatePending
	nd.Endpoint = endpoint
	nd.NextAttemptAt = now
	nd.ReplayedAt = now
	nd.Replays++
	for try := 0; ; try++ {
		err = q.put(ctx, RecordKey(StatePending, recID), nd, store.PutOptions{IfNoneMatch: true})
		if !errors.Is(err, store.ErrPrecondition) || try > 0 {
			break
		}
		// A pending record exists: either an interrupted replay (finish
		// it) or an interrupted MarkFailed (loading settles it; try again).
		cur, lerr := q.loadPending(ctx, recID)
		if lerr != nil && !errors.Is(lerr, store.ErrNotFound) {
			return fmt.Errorf("queue: replay %s: %w", recID, lerr)
		}
		if lerr == nil && cur.State == StatePending {
			nd, err = cur, nil
			break
		}
	}
	if err != nil {
		return fmt.Errorf("queue: replay %s: %w", recID, err)
	}
	// Only the dead letter read: if it was written again since (the
	// replayed delivery failed again meanwhile), the newer one stays.
	if err := store.DeleteIfMatch(ctx, q.store, failedKey, d.etag); err != nil && !errors.Is(err, store.ErrPrecondition) {
		return fmt.Errorf("queue: replay %s: %w", recID, err)
	}
	q.log.LogAttrs(ctx, slog.LevelInfo, "delivery replayed", slog.String("id", recID), slog.Int("replays", nd.Replays))
	if q.onEnqueue != nil {
		q.onEnqueue(nd)
	}
	return nil
}

// ReplayEndpoint is where Replay would send the failed delivery d:
// endpoint if not empty, else d's own, else the one endpoint its
// recipients route to now. The error wraps ErrNoEndpoint when there is
// none (or several). A dry run asks it what Replay would do.
func (q *Queue) ReplayEndpoint(d *Delivery, endpoint string) (string, error) {
	if endpoint == "" {
		endpoint = d.Endpoint
	}
	if endpoint == "" {
		return q.reroute(d.Envelope.RcptTo)
	}
	return endpoint, nil
}

// PendingEndpoint is where ReplayPending would send the pending delivery
// d: endpoint if not empty, else the one endpoint its recipients route
// to now (which the configuration may have changed since the message was
// accepted). The error wraps ErrNoEndpoint when there is none (or
// several).
func (q *Queue) PendingEndpoint(d *Delivery, endpoint string) (string, error) {
	if endpoint != "" {
		return endpoint, nil
	}
	return q.reroute(d.Envelope.RcptTo)
}

// ReplayPending makes the pending delivery recID due now, to endpoint (or
// where PendingEndpoint says), as a replay: the same webhook-id, a fresh
// retry window. It is how deliveries queued for an endpoint that was
// mistyped, or has moved, go to the right one without waiting for their
// retries to run out. A claim or lease on the delivery stays, so no two
// processes attempt it at once: an attempt under way finishes, and if it
// succeeds the delivery is delivered (to the endpoint it was made to);
// if not, neither its retry nor its failure can be recorded over this
// version, which the next attempt reads. It returns the endpoint written; the error wraps
// store.ErrNotFound when the delivery is no longer pending.
func (q *Queue) ReplayPending(ctx context.Context, recID, endpoint string) (string, error) {
	if !ValidRecordID(recID) {
		return "", fmt.Errorf("queue: replay %s: invalid record id: %w", recID, store.ErrNotFound)
	}
	for try := 0; ; try++ {
		d, err := q.loadPending(ctx, recID)
		if err == nil && d.State != StatePending {
			err = store.ErrNotFound // settled while it was read
		}
		if err != nil {
			return "", fmt.Errorf("queue: replay %s: %w", recID, err)
		}
		to, err := q.PendingEndpoint(d, endpoint)
		if err != nil {
			return "", fmt.Errorf("queue: replay %s: %w", recID, err)
		}
		now := q.now().UTC()
		nd := d.clone()
		nd.Endpoint = to
		nd.NextAttemptAt = now
		nd.ReplayedAt = now
		nd.Replays++
		err = q.put(ctx, RecordKey(StatePending, recID), nd, store.PutOptions{IfMatch: d.etag})
		if errors.Is(err, store.ErrPrecondition) && try < 4 {
			continue // updated by an attempt meanwhile: read it again
		}
		if err != nil {
			return "", fmt.Errorf("queue: replay %s: %w", recID, err)
		}
		q.log.LogAttrs(ctx, slog.LevelInfo, "pending delivery replayed", slog.String("id", recID), slog.Int("replays", nd.Replays))
		if q.onEnqueue != nil {
			q.onEnqueue(nd)
		}
		return to, nil
	}
}

// reroute finds the one endpoint the recipients route to now.
func (q *Queue) reroute(rcpts []string) (string, error) {
	gs := q.group(rcpts)
	switch {
	case len(gs) == 1 && gs[0].endpoint != "":
		return gs[0].endpoint, nil
	case len(gs) > 1:
		return "", fmt.Errorf("%w: recipients now route to %d endpoints, give one explicitly", ErrNoEndpoint, len(gs))
	}
	return "", ErrNoEndpoint
}
