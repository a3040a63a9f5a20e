package metrics

import (
	"context"
	"errors"
	"io"
	"iter"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mailhook/mailhook/store"
)

// Store operations, the op label.
const (
	opPut = iota
	opGet
	opStat
	opDelete
	opList
	opPing
	opMove
	opAppend
	numOps
)

var opNames = [numOps]string{"put", "get", "stat", "delete", "list", "ping", "move", "append"}

// Results, the result label. Not found and a lost conditional write are
// part of normal operation, not store trouble, so they are told apart from
// error.
const (
	resOK = iota
	resNotFound
	resPrecondition
	resError
	numResults
)

var resultNames = [numResults]string{"ok", "not_found", "precondition", "error"}

func resultOf(err error) int {
	switch {
	case err == nil:
		return resOK
	case errors.Is(err, store.ErrNotFound):
		return resNotFound
	case errors.Is(err, store.ErrPrecondition):
		return resPrecondition
	}
	return resError
}

// InstrumentStore returns s timed by mailhook_store_operation_duration_seconds.
// It returns whatever s returns, unchanged, and its String is s's. When s
// is an io.Closer, so is the result (Close is forwarded, not timed).
func InstrumentStore(s store.Store, m *Metrics) store.Store {
	is := &instrumentedStore{inner: s, vec: m.storeDuration}
	for op := range numOps {
		// The ok series exist from the start; the others when first seen.
		is.ok[op] = m.storeDuration.WithLabelValues(opNames[op], resultNames[resOK])
	}
	if c, ok := s.(io.Closer); ok {
		return closingStore{is, c}
	}
	return is
}

type instrumentedStore struct {
	inner store.Store
	vec   *prometheus.HistogramVec
	ok    [numOps]prometheus.Observer
}

type closingStore struct {
	*instrumentedStore
	c io.Closer
}

func (s closingStore) Close() error { return s.c.Close() }

func (s *instrumentedStore) observe(op int, start time.Time, err error) {
	s.observeDuration(op, time.Since(start), err)
}

func (s *instrumentedStore) observeDuration(op int, d time.Duration, err error) {
	res := resultOf(err)
	o := s.ok[op]
	if res != resOK {
		o = s.vec.WithLabelValues(opNames[op], resultNames[res])
	}
	o.Observe(d.Seconds())
}

func (s *instrumentedStore) Put(ctx context.Context, key string, body io.Reader, opts store.PutOptions) (store.Object, error) {
	start := time.Now()
	obj, err := s.inner.Put(ctx, key, body, opts)
	s.observe(opPut, start, err)
	return obj, err
}

// PutAll passes a batch on to a store that batches (observed as one put);
// otherwise it puts each object, observed one by one.
func (s *instrumentedStore) PutAll(ctx context.Context, reqs []store.PutRequest) ([]store.Object, error) {
	b, ok := s.inner.(store.Batcher)
	if !ok {
		objs := make([]store.Object, len(reqs))
		for i, r := range reqs {
			var err error
			if objs[i], err = s.Put(ctx, r.Key, r.Body, r.Opts); err != nil {
				return nil, err
			}
		}
		return objs, nil
	}
	start := time.Now()
	objs, err := b.PutAll(ctx, reqs)
	s.observe(opPut, start, err)
	return objs, err
}

// MoveAppend passes a move on to a store that moves (store.Mover);
// otherwise it fails like store.MoveAppend, unobserved.
func (s *instrumentedStore) MoveAppend(ctx context.Context, from, to string, tail []byte, opts store.MoveOptions) (store.Object, error) {
	if _, ok := s.inner.(store.Mover); !ok {
		return store.MoveAppend(ctx, s.inner, from, to, tail, opts)
	}
	start := time.Now()
	obj, err := store.MoveAppend(ctx, s.inner, from, to, tail, opts)
	s.observe(opMove, start, err)
	return obj, err
}

// AppendIfMatch passes an append on to a store that appends
// (store.Appender); otherwise it fails like store.AppendIfMatch,
// unobserved.
func (s *instrumentedStore) AppendIfMatch(ctx context.Context, key, etag string, tail []byte, opts store.AppendOptions) (store.Object, error) {
	if _, ok := s.inner.(store.Appender); !ok {
		return store.AppendIfMatch(ctx, s.inner, key, etag, tail, opts)
	}
	start := time.Now()
	obj, err := store.AppendIfMatch(ctx, s.inner, key, etag, tail, opts)
	s.observe(opAppend, start, err)
	return obj, err
}

func (s *instrumentedStore) Get(ctx context.Context, key string) (io.ReadCloser, store.Object, error) {
	start := time.Now()
	rc, obj, err := s.inner.Get(ctx, key)
	s.observe(opGet, start, err)
	return rc, obj, err
}

func (s *instrumentedStore) Stat(ctx context.Context, key string) (store.Object, error) {
	start := time.Now()
	obj, err := s.inner.Stat(ctx, key)
	s.observe(opStat, start, err)
	return obj, err
}

func (s *instrumentedStore) Delete(ctx context.Context, key string) error {
	start := time.Now()
	err := s.inner.Delete(ctx, key)
	s.observe(opDelete, start, err)
	return err
}

// DeleteLazy passes a lazy delete on to a store that has them
// (store.LazyDeleter), observed as a delete; otherwise it deletes.
func (s *instrumentedStore) DeleteLazy(ctx context.Context, key string) error {
	start := time.Now()
	err := store.DeleteLazy(ctx, s.inner, key)
	s.observe(opDelete, start, err)
	return err
}

// DeleteIfMatch passes a conditional delete on (store.DeleteIfMatch),
// observed as a delete.
func (s *instrumentedStore) DeleteIfMatch(ctx context.Context, key, etag string) error {
	start := time.Now()
	err := store.DeleteIfMatch(ctx, s.inner, key, etag)
	s.observe(opDelete, start, err)
	return err
}

// List times the whole iteration, leaving out the time spent in the
// caller's loop body. An iteration the caller stops early counts as ok; an
// iteration that is never started is not observed.
func (s *instrumentedStore) List(ctx context.Context, prefix string) iter.Seq2[store.Object, error] {
	return timedList(s, s.inner.List(ctx, prefix))
}

// ListKeys passes a key listing on to a store that lists keys
// (store.KeyLister), timed as List is; otherwise it lists objects.
func (s *instrumentedStore) ListKeys(ctx context.Context, prefix string) iter.Seq2[string, error] {
	if _, ok := s.inner.(store.KeyLister); !ok {
		return store.Keys(s.List(ctx, prefix))
	}
	return timedList(s, store.ListKeys(ctx, s.inner, prefix))
}

// ListKeysAfter passes a listing that starts after a key on
// (store.ListKeysAfter), timed as List is.
func (s *instrumentedStore) ListKeysAfter(ctx context.Context, prefix, after string) iter.Seq2[string, error] {
	return timedList(s, store.ListKeysAfter(ctx, s.inner, prefix, after))
}

// timedList observes seq's iteration as a list (see List).
func timedList[T any](s *instrumentedStore, seq iter.Seq2[T, error]) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		var (
			elapsed time.Duration
			failed  error
		)
		t := time.Now()
		seq(func(v T, err error) bool {
			elapsed += time.Since(t)
			if err != nil && failed == nil {
				failed = err
			}
			more := yield(v, err)
			t = time.Now()
			return more
		})
		elapsed += time.Since(t)
		s.observeDuration(opList, elapsed, failed)
	}
}

func (s *instrumentedStore) Ping(ctx context.Context) error {
	start := time.Now()
	err := s.inner.Ping(ctx)
	s.observe(opPing, start, err)
	return err
}

func (s *instrumentedStore) String() string { return s.inner.String() }
