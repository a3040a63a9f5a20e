package dispatch

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/mailhook/mailhook/event"
	"github.com/mailhook/mailhook/queue"
)

// A message routed to several endpoints has a delivery record for each,
// and each attempt renders its event: the same raw message parsed once
// per endpoint (16 endpoints of a 5 MB message: 16 parses, 990 ms). The
// renderer lets the first attempts of such deliveries share one parse:
// the first to come parses, the others wait for it and take a copy of
// its result with their own envelope. A parse is shared only while its
// takers come within shareTTL and the raw messages held stay within
// shareBudget bytes; an attempt that finds neither parses alone, as a
// delivery of a message with one endpoint always does.

const (
	// shareTTL is how long a shared parse waits for the deliveries yet
	// to take it (those of other replicas, or retried later, never do).
	shareTTL = 5 * time.Second
	// shareBudget bounds the raw sizes of the messages whose parses are
	// held for takers, and shareEntries their number.
	shareBudget  = 16 << 20
	shareEntries = 1024
)

// parseShare holds the parses being shared, by event id.
type parseShare struct {
	mu      sync.Mutex
	m       map[string]*sharedParse
	held    int64 // raw bytes of the entries in m
	expired time.Time
	now     func() time.Time
}

// sharedParse is one message's parse and the deliveries yet to take it.
type sharedParse struct {
	done    chan struct{} // closed when data or err is set
	data    *event.Data
	cut     string // where the parse ran out of time, if it did
	err     error
	left    int // deliveries that may still come for it
	size    int64
	sha     string
	stopAt  string // the cut the parse stops at (queue.Delivery.ParseCut): takers need the same
	expires time.Time
}

var errNotParsed = errors.New("the shared parse was not made")

func newParseShare() *parseShare {
	return &parseShare{m: make(map[string]*sharedParse), now: time.Now}
}

// join returns the shared parse of d's message and whether the caller is
// to make it (then it must call finish), or nil when d parses alone.
func (s *parseShare) join(d *queue.Delivery) (e *sharedParse, owner bool) {
	if d.Records < 2 || d.Raw.SHA256 == "" {
		return nil, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if now.Sub(s.expired) >= time.Second {
		s.expire(now)
		s.expired = now
	}
	if e = s.m[d.EventID]; e != nil && e.sha == d.Raw.SHA256 && e.size == d.Raw.Size && e.stopAt == d.ParseCut {
		if e.left--; e.left <= 0 {
			s.drop(d.EventID)
		}
		return e, false
	}
	if e != nil || s.held+d.Raw.Size > shareBudget || len(s.m) >= shareEntries {
		return nil, false
	}
	e = &sharedParse{done: make(chan struct{}), left: d.Records - 1, size: d.Raw.Size, sha: d.Raw.SHA256, stopAt: d.ParseCut, expires: now.Add(shareTTL)}
	s.m[d.EventID] = e
	s.held += e.size
	return e, true
}

// finish publishes the owner's parse of the message of eventID; a failed
// one (or none, after a panic: errNotParsed) is not shared: each taker
// parses for itself and meets the error on its own.
func (s *parseShare) finish(eventID string, e *sharedParse, data *event.Data, cut string, err error) {
	e.data, e.cut, e.err = data, cut, err
	close(e.done)
	if err != nil {
		s.mu.Lock()
		if s.m[eventID] == e {
			s.drop(eventID)
		}
		s.mu.Unlock()
	}
}

// wait returns the shared parse e for a taker, not to be changed, and
// where it ran out of time if it did; nil when the taker should parse
// for itself.
func (e *sharedParse) wait(ctx context.Context) (*event.Data, string) {
	select {
	case <-e.done:
	case <-ctx.Done():
		return nil, ""
	}
	if e.err != nil {
		return nil, ""
	}
	return e.data, e.cut
}

func (s *parseShare) drop(eventID string) {
	s.held -= s.m[eventID].size
	delete(s.m, eventID)
}

// expire drops the entries whose time is up.
func (s *parseShare) expire(now time.Time) {
	for id, e := range s.m {
		if now.After(e.expires) {
			s.drop(id)
		}
	}
}
