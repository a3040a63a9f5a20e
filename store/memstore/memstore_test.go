package memstore_test

import (
	"testing"

	"github.com/mailhook/mailhook/store"
	"github.com/mailhook/mailhook/store/memstore"
	"github.com/mailhook/mailhook/store/storetest"
)

func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return memstore.New() })
}
