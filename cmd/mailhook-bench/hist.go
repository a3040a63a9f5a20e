package main

import (
	"math"
	"math/bits"
	"sync/atomic"
	"time"
)

// histogram is a fixed-bucket, HDR-like log-linear histogram of durations in
// microseconds: exact below 128 µs, then 64 linear sub-buckets per power of
// two, so any recorded value is reported within 1/64 (1.6 %) of itself. It
// is safe for concurrent use (atomic counters, no locks) and never
// allocates after construction; its size is fixed (about 30 KB).
type histogram struct {
	counts [histBuckets]atomic.Uint64
	total  atomic.Uint64
	max    atomic.Uint64 // µs
}

const (
	histSubBits = 7 // 128 exact values, then 64 per octave
	histHalf    = 1 << (histSubBits - 1)
	histBuckets = (64-histSubBits+1)*histHalf + histHalf
)

// bucketOf returns the bucket index of v (µs).
func bucketOf(v uint64) int {
	if v < 1<<histSubBits {
		return int(v)
	}
	shift := bits.Len64(v) - histSubBits
	return shift*histHalf + int(v>>uint(shift))
}

// bucketRange returns the smallest and largest value of bucket i.
func bucketRange(i int) (lo, hi uint64) {
	if i < 1<<histSubBits {
		return uint64(i), uint64(i)
	}
	shift := i/histHalf - 1
	sub := uint64(i - shift*histHalf)
	return sub << uint(shift), (sub+1)<<uint(shift) - 1
}

// Record adds one duration (negative durations count as 0).
func (h *histogram) Record(d time.Duration) {
	us := uint64(0)
	if d > 0 {
		us = uint64(d / time.Microsecond)
	}
	h.counts[bucketOf(us)].Add(1)
	h.total.Add(1)
	for {
		m := h.max.Load()
		if us <= m || h.max.CompareAndSwap(m, us) {
			break
		}
	}
}

// Count is the number of recorded values.
func (h *histogram) Count() uint64 { return h.total.Load() }

// Max is the largest recorded value, exactly.
func (h *histogram) Max() time.Duration { return time.Duration(h.max.Load()) * time.Microsecond }

// Percentile returns the value at quantile q (0 < q <= 1) using the nearest
// rank definition: the smallest recorded value v such that at least q of
// all values are <= v. It reports the midpoint of that value's bucket
// (capped by the exact maximum), and 0 on an empty histogram.
func (h *histogram) Percentile(q float64) time.Duration {
	n := h.total.Load()
	if n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(n)))
	if rank < 1 {
		rank = 1
	}
	if rank > n {
		rank = n
	}
	var seen uint64
	for i := range h.counts {
		seen += h.counts[i].Load()
		if seen >= rank {
			lo, hi := bucketRange(i)
			v := lo + (hi-lo)/2
			if m := h.max.Load(); v > m {
				v = m
			}
			return time.Duration(v) * time.Microsecond
		}
	}
	return h.Max()
}
