package main

import (
	"context"

	"github.com/mailhook/mailhook/dispatch"
	"github.com/mailhook/mailhook/queue"
)

// adminBackend is what the admin API needs: the queue and the dispatcher's
// renderer.
type adminBackend struct {
	*queue.Queue
	render dispatch.Renderer
}

func (b adminBackend) Render(ctx context.Context, d *queue.Delivery) ([]byte, error) {
	return b.render(ctx, d)
}
