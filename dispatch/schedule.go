package dispatch

import (
	"container/heap"
	"strings"
	"sync"
	"time"

	"github.com/mailhook/mailhook/queue"
)

// newItem is the item of the pending delivery id, scheduled as rec says;
// cached, when not nil, is the record to keep until its first attempt.
func newItem(id string, rec, cached *queue.Delivery) *item {
	return &item{id: id, endpoint: canonical(rec.Endpoint), at: rec.NextAttemptAt, receivedAt: rec.ReceivedAt, windowStart: rec.RetryWindowStart(), rec: cached}
}

// canonical returns the one copy of endpoint that the items share: a
// backlog of deliveries to a few endpoints holds a few strings, not one
// an item.
func canonical(endpoint string) string {
	if v, ok := endpointNames.Load(endpoint); ok {
		return v.(string)
	}
	c := strings.Clone(endpoint) // not a slice of a record being decoded
	v, _ := endpointNames.LoadOrStore(c, c)
	return v.(string)
}

// endpointNames holds the one copy of every endpoint met. Endpoints are
// few: the configuration's, and those replays name.
var endpointNames sync.Map

// item is one pending delivery known to the dispatcher. Only its
// scheduling facts are kept in memory; the record itself is cached only
// until its first attempt and read from the store again before each retry.
type item struct {
	id         string
	endpoint   string
	at         time.Time // not before
	receivedAt time.Time
	// windowStart is when its retry window began, as of the version
	// last read (queue.Delivery.RetryWindowStart: a replay restarts it).
	windowStart time.Time
	rec         *queue.Delivery // cached record, nil = load before the attempt
	// replays is the Replays count of the version last attempted.
	replays int
	// again is a version handed to Enqueue while the item was known. It
	// is used only if it is a later replay than the version attempted
	// (replayed while its failing attempt was being recorded); an
	// Enqueue that lost a race with a rescan is ignored.
	again *queue.Delivery
	// held: what was seen of other processes' hold on the delivery, nil
	// until any was (most deliveries never meet one: kept apart, a
	// backlog of them costs less memory).
	held *held
	// slot: the item holds one of its endpoint's PerEndpointConcurrency
	// slots (from take until its request is answered).
	slot bool
	// taken: a worker has taken it up (process) since it became known,
	// working from the version it had or reading the store's.
	taken bool
	index int // in the heap, -1 when not in it
}

// held tracks another process's claim or lease on a delivery.
type held struct {
	// leaseETag is the version of another replica's lease on the delivery
	// seen first at leaseSeen (this dispatcher's clock): a lease may be
	// taken over only once it has stood unchanged for a whole TTL.
	leaseETag string
	leaseSeen time.Time
	// claimTag and claimSeen do the same for another replica's claim in
	// the record (claimHeld), apart from the lease's.
	claimTag  string
	claimSeen time.Time
	// since: since when another process's claim or lease has kept the
	// delivery from being attempted (zero when not); warned: the long
	// wait was logged (heldElsewhere).
	since  time.Time
	warned bool
}

// hold returns it.held, made if it is nil.
func (it *item) hold() *held {
	if it.held == nil {
		it.held = &held{}
	}
	return it.held
}

// leaseETag returns the version of another replica's lease last seen on
// it ("" when none).
func (it *item) leaseETag() string {
	if it.held == nil {
		return ""
	}
	return it.held.leaseETag
}

// forgetLease forgets the lease seen on it.
func (it *item) forgetLease() {
	if it.held != nil {
		it.held.leaseETag = ""
	}
}

// schedule is a min-heap of items by (at, id).
type schedule []*item

func (s schedule) Len() int { return len(s) }
func (s schedule) Less(i, j int) bool {
	if !s[i].at.Equal(s[j].at) {
		return s[i].at.Before(s[j].at)
	}
	return s[i].id < s[j].id
}
func (s schedule) Swap(i, j int) {
	s[i], s[j] = s[j], s[i]
	s[i].index = i
	s[j].index = j
}
func (s *schedule) Push(x any) {
	it := x.(*item)
	it.index = len(*s)
	*s = append(*s, it)
}
func (s *schedule) Pop() any {
	old := *s
	n := len(old)
	it := old[n-1]
	old[n-1] = nil
	it.index = -1
	*s = old[:n-1]
	return it
}

var _ heap.Interface = (*schedule)(nil)
