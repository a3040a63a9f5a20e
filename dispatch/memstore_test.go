package dispatch

import "github.com/mailhook/mailhook/store/memstore"

// memStore is the in-memory store the tests run on besides store/fs.
type memStore = memstore.Store

func newMemStore() *memStore { return memstore.New() }
