// Package memstore is an in-memory store.Store for tests of the stages that
// sit on a store. It keeps nothing across processes and is never used by
// the mailhook binary.
package memstore

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"iter"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mailhook/mailhook/store"
)

// Store is an in-memory store.Store for tests. It passes the storetest
// contract suite. Fail, when set, is asked before every operation and may
// inject an error.
type Store struct {
	mu   sync.Mutex
	objs map[string]object
	seq  int
	Fail func(op, key string) error
}

type object struct {
	data []byte
	obj  store.Object
}

var _ store.Store = (*Store)(nil)

// New returns an empty store.
func New() *Store { return &Store{objs: make(map[string]object)} }

func (m *Store) check(ctx context.Context, op, key string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if op != "list" || key != "" {
		if err := store.ValidKey(key); err != nil && op != "list" {
			return err
		}
	}
	m.mu.Lock()
	fail := m.Fail
	m.mu.Unlock()
	if fail != nil {
		return fail(op, key)
	}
	return nil
}

func (m *Store) Put(ctx context.Context, key string, body io.Reader, opts store.PutOptions) (store.Object, error) {
	if err := m.check(ctx, "put", key); err != nil {
		return store.Object{}, err
	}
	data, err := io.ReadAll(body)
	if err != nil {
		return store.Object{}, fmt.Errorf("memstore: put %s: %w", key, err)
	}
	if err := ctx.Err(); err != nil {
		return store.Object{}, err
	}
	if opts.Size > 0 && int64(len(data)) != opts.Size {
		return store.Object{}, fmt.Errorf("memstore: put %s: size %d, want %d", key, len(data), opts.Size)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	cur, exists := m.objs[key]
	if opts.IfNoneMatch && exists {
		return store.Object{}, fmt.Errorf("memstore: put %s: %w", key, store.ErrPrecondition)
	}
	if opts.IfMatch != "" && (!exists || cur.obj.ETag != opts.IfMatch) {
		return store.Object{}, fmt.Errorf("memstore: put %s: %w", key, store.ErrPrecondition)
	}
	m.seq++
	o := store.Object{Key: key, Size: int64(len(data)), ETag: strconv.Itoa(m.seq), ModTime: time.Now()}
	m.objs[key] = object{data: data, obj: o}
	return o, nil
}

func (m *Store) Get(ctx context.Context, key string) (io.ReadCloser, store.Object, error) {
	if err := m.check(ctx, "get", key); err != nil {
		return nil, store.Object{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	o, ok := m.objs[key]
	if !ok {
		return nil, store.Object{}, fmt.Errorf("memstore: get %s: %w", key, store.ErrNotFound)
	}
	return io.NopCloser(bytes.NewReader(o.data)), o.obj, nil
}

func (m *Store) Stat(ctx context.Context, key string) (store.Object, error) {
	if err := m.check(ctx, "stat", key); err != nil {
		return store.Object{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	o, ok := m.objs[key]
	if !ok {
		return store.Object{}, fmt.Errorf("memstore: stat %s: %w", key, store.ErrNotFound)
	}
	return o.obj, nil
}

func (m *Store) Delete(ctx context.Context, key string) error {
	if err := m.check(ctx, "delete", key); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.objs, key)
	return nil
}

// DeleteIfMatch removes the object if its ETag is etag
// (store.ConditionalDeleter).
func (m *Store) DeleteIfMatch(ctx context.Context, key, etag string) error {
	if err := m.check(ctx, "delete", key); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	o, ok := m.objs[key]
	switch {
	case !ok:
		return nil
	case o.obj.ETag != etag:
		return fmt.Errorf("memstore: delete %s: %w", key, store.ErrPrecondition)
	}
	delete(m.objs, key)
	return nil
}

func (m *Store) List(ctx context.Context, prefix string) iter.Seq2[store.Object, error] {
	return func(yield func(store.Object, error) bool) {
		if err := m.check(ctx, "list", prefix); err != nil {
			yield(store.Object{}, err)
			return
		}
		m.mu.Lock()
		var objs []store.Object
		for k, o := range m.objs {
			if strings.HasPrefix(k, prefix) {
				objs = append(objs, o.obj)
			}
		}
		m.mu.Unlock()
		slices.SortFunc(objs, func(a, b store.Object) int { return strings.Compare(a.Key, b.Key) })
		for _, o := range objs {
			if !yield(o, nil) {
				return
			}
		}
	}
}

func (m *Store) Ping(ctx context.Context) error { return ctx.Err() }
func (m *Store) String() string                 { return "memory" }

// Keys lists every key, sorted.
func (m *Store) Keys() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var ks []string
	for k := range m.objs {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// SetFail sets Fail while operations may be running.
func (m *Store) SetFail(f func(op, key string) error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.Fail = f
}
