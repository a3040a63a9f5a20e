package main

import (
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mailhook/mailhook/store/fs"
)

// What a message needs left on the store's filesystem besides its own
// size: room for its records and for the records of deliveries already
// under way, and inodes for its files.
const (
	roomReserveBytes  = 4 << 20
	roomReserveInodes = 64
	// roomEvery is how often the free space is read again; near the
	// reserve (roomNearBytes, roomNearInodes) it is read at every MAIL,
	// so that a burst cannot run past it between two readings.
	roomEvery      = time.Second
	roomNearBytes  = 256 << 20
	roomNearInodes = 1024
)

// spaceReporter is implemented by stores that know the room left on their
// filesystem (store/fs).
type spaceReporter interface {
	Space() (bytes, inodes int64, err error)
}

var _ spaceReporter = (*fs.Store)(nil) // compose relies on it

// roomGate answers inbound.Config.Room from the store's free space: mail
// is refused at MAIL (452 4.3.1) while a message of the declared size
// would not fit, rather than taken in full and answered 451 at its end.
// The log says when the filesystem fills up, when there is room again,
// and when its free space cannot be read.
//
// One caller at a time reads the free space, outside any lock; the others
// judge by the last reading meanwhile, so a filesystem slow to answer
// statfs holds up no session but the reader.
type roomGate struct {
	space func() (bytes, inodes int64, err error)
	now   func() time.Time
	log   *slog.Logger

	last    atomic.Pointer[roomReading]
	reading atomic.Bool // a caller is reading the free space

	mu    sync.Mutex // orders the log lines of successive readings
	state roomState  // as last logged
}

type roomReading struct {
	at            time.Time
	err           error // the free space could not be read: room is unknown
	bytes, inodes int64
}

type roomState int

const (
	roomOK roomState = iota
	roomFull
	roomUnknown
)

func newRoomGate(sr spaceReporter, log *slog.Logger) *roomGate {
	return &roomGate{space: sr.Space, now: time.Now, log: log}
}

// room reports whether a message of size bytes fits. Unknown room counts
// as room: storing then fails as it would have without the gate.
func (g *roomGate) room(size int64) bool {
	r := g.last.Load()
	if (r == nil || r.stale(g.now())) && g.reading.CompareAndSwap(false, true) {
		r = g.read()
		g.reading.Store(false)
	}
	if r == nil { // the first reading is still under way
		return true
	}
	return r.fits(size)
}

// stale reports whether the reading must be taken again.
func (r *roomReading) stale(now time.Time) bool {
	if now.Sub(r.at) >= roomEvery {
		return true
	}
	return r.err == nil && (r.bytes < roomNearBytes || r.inodes >= 0 && r.inodes < roomNearInodes)
}

func (r *roomReading) fits(size int64) bool {
	switch {
	case r.err != nil:
		return true
	case r.inodes >= 0 && r.inodes < roomReserveInodes:
		return false
	}
	return r.bytes-roomReserveBytes >= size
}

// read takes a reading, keeps it and logs a change of state.
func (g *roomGate) read() *roomReading {
	r := &roomReading{at: g.now()}
	r.bytes, r.inodes, r.err = g.space()
	g.last.Store(r)
	state := roomOK
	switch {
	case r.err != nil:
		state = roomUnknown
	case !r.fits(0):
		state = roomFull
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if state == g.state {
		return r
	}
	g.state = state
	switch state {
	case roomFull:
		g.log.Warn("the store's filesystem is full: new mail is refused (452 4.3.1) until there is room",
			"free_bytes", r.bytes, "free_inodes", r.inodes, "reserve_bytes", roomReserveBytes, "reserve_inodes", roomReserveInodes)
	case roomUnknown:
		g.log.Warn("cannot read the free space of the store's filesystem: mail is accepted without checking it", "err", r.err)
	default:
		g.log.Info("the store's filesystem has room: mail is accepted", "free_bytes", r.bytes, "free_inodes", r.inodes)
	}
	return r
}
