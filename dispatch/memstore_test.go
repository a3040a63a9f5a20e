package dispatch

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

// memStore is an in-memory store.Store for tests. It passes the
// storetest contract suite (TestMemStoreContract). Fail, when set, is asked
// before every operation and may inject an error.
type memStore struct {
	mu   sync.Mutex
	objs map[string]memObj
	seq  int
	Fail func(op, key string) error
}

type memObj struct {
	data []byte
	obj  store.Object
}

var _ store.Store = (*memStore)(nil)

func newMemStore() *memStore { return &memStore{objs: make(map[string]memObj)} }

func (m *memStore) check(ctx context.Context, op, key string) error {
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

func (m *memStore) Put(ctx context.Context, key string, body io.Reader, opts store.PutOptions) (store.Object, error) {
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
	m.objs[key] = memObj{data: data, obj: o}
	return o, nil
}

func (m *memStore) Get(ctx context.Context, key string) (io.ReadCloser, store.Object, error) {
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

func (m *memStore) Stat(ctx context.Context, key string) (store.Object, error) {
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

func (m *memStore) Delete(ctx context.Context, key string) error {
	if err := m.check(ctx, "delete", key); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.objs, key)
	return nil
}

func (m *memStore) List(ctx context.Context, prefix string) iter.Seq2[store.Object, error] {
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

func (m *memStore) Ping(ctx context.Context) error { return ctx.Err() }
func (m *memStore) String() string                 { return "memory" }
