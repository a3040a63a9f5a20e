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
