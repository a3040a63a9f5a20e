package main

import (
	"sync/atomic"
	"time"
)

// tracker follows every message of a run by its sequence number: when the
// server acknowledged it, when its first webhook arrived, and how many
// webhooks carried its token. Slots live in pages allocated on first use,
// so memory follows the messages actually sent, not -n.
type tracker struct {
	start time.Time
	pages [maxPages]atomic.Pointer[page]

	issued atomic.Uint64 // sequence numbers handed out: 0 … issued-1

	acked     atomic.Int64 // slots with an ack
	delivered atomic.Int64 // acked slots whose first webhook arrived
	e2e       histogram    // ack → first webhook
	lastHit   atomic.Int64 // ns since start of the latest first webhook of an acked message
}

const (
	pageBits = 16
	pageSize = 1 << pageBits
	maxPages = 1 << 15 // 2^31 messages
	maxCount = maxPages * pageSize
)

type page [pageSize]slot

// slot is one message. Times are nanoseconds since tracker.start plus one,
// so 0 means "not yet".
type slot struct {
	ack    atomic.Int64
	arrive atomic.Int64
	hits   atomic.Uint32
	paired atomic.Uint32 // 1 once ack and first arrival were both seen and counted
}

func newTracker(start time.Time) *tracker { return &tracker{start: start} }

func (t *tracker) slot(seq uint64) *slot {
	if seq >= maxCount {
		return nil
	}
	p := &t.pages[seq>>pageBits]
	pg := p.Load()
	if pg == nil {
		pg = new(page)
		if !p.CompareAndSwap(nil, pg) {
			pg = p.Load()
		}
	}
	return &pg[seq&(pageSize-1)]
}

// lookup returns the slot of seq if its page exists.
func (t *tracker) lookup(seq uint64) *slot {
	if seq >= maxCount {
		return nil
	}
	pg := t.pages[seq>>pageBits].Load()
	if pg == nil {
		return nil
	}
	return &pg[seq&(pageSize-1)]
}

func (t *tracker) since(now time.Time) int64 { return int64(now.Sub(t.start)) + 1 }

// Ack records that the server answered 250 for seq at now.
func (t *tracker) Ack(seq uint64, now time.Time) {
	s := t.slot(seq)
	if s == nil {
		return
	}
	s.ack.Store(t.since(now))
	t.acked.Add(1)
	t.pair(s)
}

// Webhook records a webhook carrying seq's token, arriving at now, and
// reports whether it is a repeat (by token).
// A token of this run that was never issued is reported as not known.
func (t *tracker) Webhook(seq uint64, now time.Time) (known, dup bool) {
	if seq >= t.issued.Load() {
		return false, false
	}
	s := t.slot(seq)
	if s == nil {
		return false, false
	}
	if s.hits.Add(1) > 1 {
		return true, true
	}
	s.arrive.Store(t.since(now))
	t.pair(s)
	return true, false
}

// Next hands out the next sequence number, or false once limit (if > 0)
// numbers have been handed out.
func (t *tracker) Next(limit uint64) (uint64, bool) {
	seq := t.issued.Add(1) - 1
	if (limit > 0 && seq >= limit) || seq >= maxCount {
		t.issued.Add(^uint64(0)) // give it back so issued stays exact
		return 0, false
	}
	return seq, true
}

// pair counts s as delivered once both its ack and its first webhook are
// known, whichever came last (a webhook may overtake the 250 on its way to
// the client).
func (t *tracker) pair(s *slot) {
	ack, arr := s.ack.Load(), s.arrive.Load()
	if ack == 0 || arr == 0 || !s.paired.CompareAndSwap(0, 1) {
		return
	}
	t.e2e.Record(time.Duration(arr - ack))
	t.delivered.Add(1)
	for {
		l := t.lastHit.Load()
		if arr <= l || t.lastHit.CompareAndSwap(l, arr) {
			break
		}
	}
}

// unackedDelivered counts issued messages that reached the sink but
// were never acknowledged (the client gave up on the reply, or the
// transaction failed after the server had stored the message).
func (t *tracker) unackedDelivered() int64 {
	issued := t.issued.Load()
	var n int64
	for seq := uint64(0); seq < issued; seq++ {
		if seq&(pageSize-1) == 0 && t.pages[seq>>pageBits].Load() == nil {
			seq += pageSize - 1
			continue
		}
		s := t.lookup(seq)
		if s != nil && s.ack.Load() == 0 && s.hits.Load() > 0 {
			n++
		}
	}
	return n
}
