package dispatch

import (
	"context"
	"math"
	"runtime/debug"

	"golang.org/x/sync/semaphore"
)

// Rendering holds a message in memory: the raw message, read whole by the
// parser, its decoded parts and, for a body not streamed, the body itself.
// Unbounded, eight 25 MB messages sent at once to one endpoint would hold
// some 670 MB. The dispatcher therefore gives each attempt a weight,
// renderWeight, and lets attempts run only while their weights fit in
// Config.RenderMemory; the weight is held from the render until the
// receiver has answered, since a streamed body is encoded while it is sent.

// renderOverhead is the weight of what any render holds besides the
// message: the event's fields, buffers, the HTTP request.
const renderOverhead = 64 << 10

// newRenderMemory returns the semaphore of Config.RenderMemory, nil when
// unbounded.
func newRenderMemory(limit int64) *semaphore.Weighted {
	if limit < 0 {
		return nil
	}
	return semaphore.NewWeighted(limit)
}

// renderWeight estimates the memory an attempt at a message of rawSize
// bytes holds: the raw message, its decoded parts (at most its size
// again) and a text body converted from another charset (up to its size
// once more where most characters take two bytes in UTF-8; measured, one
// 24 MB message in ISO-8859-1 or quoted-printable raised the process's
// peak by 48 MB, a base64 attachment by 41 MB), plus,
// when the body is built in memory, the body (about 1.4 times the message:
// base64 in JSON) and its copy in the request.
func (d *Dispatcher) renderWeight(rawSize int64) int64 {
	rawSize = max(rawSize, 0)
	w := 3 * rawSize
	if d.cfg.StreamThreshold < 0 || rawSize <= d.cfg.StreamThreshold {
		w = 4 * rawSize
	}
	if rawSize > math.MaxInt64/8 {
		w = math.MaxInt64 / 2
	}
	return min(w+renderOverhead, d.cfg.RenderMemory)
}

// takeMemory waits until an attempt at a message of rawSize bytes fits in
// the render memory and returns the function that gives it back.
func (d *Dispatcher) takeMemory(ctx context.Context, rawSize int64) (release func(), err error) {
	if d.mem == nil {
		return func() {}, nil
	}
	w := d.renderWeight(rawSize)
	if err := d.mem.Acquire(ctx, w); err != nil {
		return nil, err
	}
	return func() {
		d.mem.Release(w)
		if rawSize >= freeAfterBytes {
			freeMemory()
		}
	}, nil
}

// freeAfterBytes is the raw size from which a message's attempt, once
// answered, has the memory its render held collected and handed back to
// the system at once (freeMemory). Left to the collector's pacing, the
// next large message is read in while the heap's goal still counts the
// last one's buffers: three 24 MB messages in a row took peak RSS to 88
// MB where one takes 63; collected after each, 64 MB. A collection of
// what is left costs a few milliseconds, next to the hundreds a message
// of that size takes.
const freeAfterBytes = 8 << 20

// freeMemory is debug.FreeOSMemory; tests count its calls.
var freeMemory = debug.FreeOSMemory
