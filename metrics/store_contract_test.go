package metrics

import (
	"io"
	"testing"

	"github.com/mailhook/mailhook/store"
	"github.com/mailhook/mailhook/store/fs"
	"github.com/mailhook/mailhook/store/memstore"
	"github.com/mailhook/mailhook/store/storetest"
)

// The decorator keeps every promise of the store contract, over a store
// with every optional interface (fs) and over one with none (memstore).
func TestInstrumentedStoreContract(t *testing.T) {
	m := New("test")
	t.Run("fs", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T) store.Store {
			s, err := fs.New(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			is := InstrumentStore(s, m)
			t.Cleanup(func() { _ = is.(io.Closer).Close() })
			return is
		})
	})
	t.Run("memstore", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T) store.Store { return InstrumentStore(memstore.New(), m) })
	})
}

// The decorator offers every optional interface of the store contract
// that queue and dispatch look for: one it hid would silently turn a
// conditional delete into a plain one, or a listing from a key into one
// from the start.
func TestInstrumentedStoreInterfaces(t *testing.T) {
	s, err := fs.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	is := InstrumentStore(s, New("test"))
	for name, ok := range map[string]func(store.Store) bool{
		"Batcher":            func(s store.Store) bool { _, ok := s.(store.Batcher); return ok },
		"KeyLister":          func(s store.Store) bool { _, ok := s.(store.KeyLister); return ok },
		"AfterLister":        func(s store.Store) bool { _, ok := s.(store.AfterLister); return ok },
		"ConditionalDeleter": func(s store.Store) bool { _, ok := s.(store.ConditionalDeleter); return ok },
		"LazyDeleter":        func(s store.Store) bool { _, ok := s.(store.LazyDeleter); return ok },
		"Appender":           func(s store.Store) bool { _, ok := s.(store.Appender); return ok },
		"Mover":              func(s store.Store) bool { _, ok := s.(store.Mover); return ok },
	} {
		switch {
		case !ok(s):
			t.Errorf("the fs store is not a store.%s: the test needs one that is", name)
		case !ok(is):
			t.Errorf("the fs store is a store.%s; the instrumented one is not", name)
		}
	}
}
