package queue_test

import (
	"testing"

	"github.com/mailhook/mailhook/store"
	"github.com/mailhook/mailhook/store/storetest"
)

// The fake must keep the same promises as the real backends.
func TestMemStoreContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return newMemStore() })
}
