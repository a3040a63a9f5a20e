package main

import (
	"log/slog"
	"sync"
	"time"

	"github.com/mailhook/mailhook/store/fs"
)

// What a message needs left on the store's filesystem besides its own
// size: room for its records and for the records of deliveries already
// under way, and inodes for its files.
const (
	roomReserveBytes  = 4 << 20
	roomReserveInodes = 64
	roomEvery         = time.Second // how often the free space is read again
)

// spaceReporter is implemented by stores that know the room left on their
// filesystem (store/fs).
type spaceReporter interface {
	Space() (bytes, inodes int64, err error)
}

var _ spaceReporter = (*fs.Store)(nil) // compose relies on it

// roomGate answers inbound.Config.Room from the store's free space, read
// at most once every roomEvery: mail is refused at MAIL (452 4.3.1) while
// a message of the declared size would not fit, rather than taken in full
// and answered 451 at its end. The log says when the filesystem fills up
// and when there is room again.
type roomGate struct {
	space func() (bytes, inodes int64, err error)
	now   func() time.Time
	log   *slog.Logger

	mu            sync.Mutex
	readAt        time.Time
	known         bool // the last read succeeded
	bytes, inodes int64
	full          bool // not even an empty message fits
}

func newRoomGate(sr spaceReporter, log *slog.Logger) *roomGate {
	return &roomGate{space: sr.Space, now: time.Now, log: log}
}

// room reports whether a message of size bytes fits. Unknown room (the
// filesystem cannot tell) counts as room: storing then fails as before.
func (g *roomGate) room(size int64) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if now := g.now(); g.readAt.IsZero() || now.Sub(g.readAt) >= roomEvery {
		g.readAt = now
		g.bytes, g.inodes, g.known = g.read()
		full := !g.fits(0)
		switch {
		case full && !g.full:
			g.log.Warn("the store's filesystem is full: new mail is refused (452 4.3.1) until there is room",
				"free_bytes", g.bytes, "free_inodes", g.inodes, "reserve_bytes", roomReserveBytes, "reserve_inodes", roomReserveInodes)
		case !full && g.full:
			g.log.Info("the store's filesystem has room again: mail is accepted",
				"free_bytes", g.bytes, "free_inodes", g.inodes)
		}
		g.full = full
	}
	return g.fits(size)
}

func (g *roomGate) read() (bytes, inodes int64, ok bool) {
	b, i, err := g.space()
	return b, i, err == nil
}

// fits reports whether size bytes fit in the last reading (g.mu held).
func (g *roomGate) fits(size int64) bool {
	if !g.known {
		return true
	}
	if g.inodes >= 0 && g.inodes < roomReserveInodes {
		return false
	}
	return g.bytes-roomReserveBytes >= size
}
