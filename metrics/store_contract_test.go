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
	check := func(name string, ok bool) {
		if !ok {
			t.Errorf("the instrumented fs store is not a store.%s", name)
		}
	}
	_, ok := is.(store.Batcher)
	check("Batcher", ok)
	_, ok = is.(store.KeyLister)
	check("KeyLister", ok)
	_, ok = is.(store.AfterLister)
	check("AfterLister", ok)
	_, ok = is.(store.ConditionalDeleter)
	check("ConditionalDeleter", ok)
	_, ok = is.(store.LazyDeleter)
	check("LazyDeleter", ok)
	_, ok = is.(store.Appender)
	check("Appender", ok)
	_, ok = is.(store.Mover)
	check("Mover", ok)
}
