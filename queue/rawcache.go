package queue

import (
	"bytes"
	"io"
	"runtime"
	"sync/atomic"
)

// Defaults of the raw message cache (see Options.RawCacheBytes).
const (
	// DefaultRawCacheBytes bounds the raw messages held in memory for the
	// first attempt of fresh deliveries.
	DefaultRawCacheBytes = 16 << 20
	// rawCacheMaxMessage is the largest raw message kept: the first
	// attempt of a larger one reads it back from the store, which it
	// streams anyway.
	rawCacheMaxMessage = 64 << 10
)

// cachedRaw is a raw message kept in memory from Accept to the first
// attempt, holding its share of the cache budget until released.
type cachedRaw struct {
	b        []byte
	n        int64 // the share of the budget
	budget   *atomic.Int64
	released atomic.Bool
}

func (c *cachedRaw) release() {
	if c.released.CompareAndSwap(false, true) {
		c.b = nil
		c.budget.Add(-c.n)
	}
}

// rawCapture keeps a copy of what passes through Read while it stays
// within max bytes.
type rawCapture struct {
	b    []byte
	max  int
	over bool
}

func (c *rawCapture) write(p []byte) {
	if c.over {
		return
	}
	if len(c.b)+len(p) > c.max {
		c.over, c.b = true, nil
		return
	}
	c.b = append(c.b, p...)
}

// cacheRaw attaches b, the raw message of d, to d if the budget allows.
// The share is released when the first attempt has read it, or when d
// is garbage (a delivery this process never attempted).
func (q *Queue) cacheRaw(d *Delivery, b []byte) {
	if q.rawCacheBytes <= 0 || b == nil {
		return
	}
	n := int64(cap(b))
	if q.rawCached.Add(n) > q.rawCacheBytes {
		q.rawCached.Add(-n)
		return
	}
	c := &cachedRaw{b: b, n: n, budget: &q.rawCached}
	d.raw = c
	runtime.AddCleanup(d, func(c *cachedRaw) { c.release() }, c)
}

// takeRaw detaches d's cached raw message, if any, as a reader whose
// Close releases it.
func takeRaw(d *Delivery) io.ReadCloser {
	c := d.raw
	if c == nil {
		return nil
	}
	d.raw = nil
	return &cachedReader{Reader: bytes.NewReader(c.b), c: c}
}

type cachedReader struct {
	*bytes.Reader
	c *cachedRaw
}

func (r *cachedReader) Close() error {
	r.c.release()
	return nil
}
