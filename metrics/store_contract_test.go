package metrics

import (
	"io"
	"testing"

	"github.com/mailhook/mailhook/store"
	"github.com/mailhook/mailhook/store/fs"
	"github.com/mailhook/mailhook/store/storetest"
)

// The decorator keeps every promise of the store contract.
func TestInstrumentedStoreContract(t *testing.T) {
	m := New("test")
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := fs.New(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		is := InstrumentStore(s, m)
		t.Cleanup(func() { _ = is.(io.Closer).Close() })
		return is
	})
}
