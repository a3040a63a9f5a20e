package main

import (
	"context"
	"iter"
	"path"
	"strings"

	"github.com/mailhook/mailhook/dispatch"
	"github.com/mailhook/mailhook/queue"
	"github.com/mailhook/mailhook/store"
)

// adminBackend is what the admin API needs: the queue, a listing of the
// record ids in a state, and the dispatcher's renderer.
type adminBackend struct {
	*queue.Queue
	store  store.Store
	render dispatch.Renderer
}

func (b adminBackend) Render(ctx context.Context, d *queue.Delivery) ([]byte, error) {
	return b.render(ctx, d)
}

// IDs lists the ids of the records in state s, in store key order (oldest
// message first), without reading them.
func (b adminBackend) IDs(ctx context.Context, s queue.State) iter.Seq2[string, error] {
	prefix := queue.DeliveriesRoot + string(s) + "/"
	return func(yield func(string, error) bool) {
		for obj, err := range b.store.List(ctx, prefix) {
			if err != nil {
				yield("", err)
				return
			}
			name := strings.TrimPrefix(obj.Key, prefix)
			id := strings.TrimSuffix(name, path.Ext(name))
			if !queue.ValidRecordID(id) || queue.RecordKey(s, id) != obj.Key {
				continue // not a record: a temporary file, a stray object
			}
			if !yield(id, nil) {
				return
			}
		}
	}
}
