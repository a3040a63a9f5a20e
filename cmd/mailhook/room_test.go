package main

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

type fakeSpace struct {
	mu            sync.Mutex
	bytes, inodes int64
	err           error
	reads         int
}

func (f *fakeSpace) Space() (int64, int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reads++
	return f.bytes, f.inodes, f.err
}

func (f *fakeSpace) set(bytes, inodes int64, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.bytes, f.inodes, f.err = bytes, inodes, err
}

func TestRoomGate(t *testing.T) {
	var logs bytes.Buffer
	fs := &fakeSpace{bytes: 1 << 40, inodes: 1 << 20}
	now := time.Unix(1_800_000_000, 0)
	g := newRoomGate(fs, slog.New(slog.NewTextHandler(&logs, nil)))
	g.now = func() time.Time { return now }

	// Plenty of room: one reading a second.
	for range 100 {
		if !g.room(25 << 20) {
			t.Fatal("refused with plenty of room")
		}
	}
	if fs.reads != 1 {
		t.Errorf("free space read %d times within %v with plenty of room, want once", fs.reads, roomEvery)
	}
	if logs.Len() != 0 {
		t.Errorf("logged with plenty of room: %s", logs.String())
	}

	// Near the reserve, every MAIL reads it again: a burst cannot run
	// past it between two readings.
	fs.set(roomReserveBytes+1000, 1<<20, nil)
	now = now.Add(roomEvery)
	if !g.room(0) || !g.room(1000) {
		t.Error("a message within the free space minus the reserve was refused")
	}
	if g.room(1001) {
		t.Error("a message past the free space minus the reserve was taken")
	}
	fs.set(roomReserveBytes-1, 1<<20, nil) // the disk fills up: seen at once
	if g.room(0) {
		t.Error("an empty message was taken with less than the reserve left")
	}
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "452 4.3.1") {
		t.Errorf("no warning when the filesystem filled up; log:\n%s", logs.String())
	}
	logs.Reset()
	g.room(0)
	if logs.Len() != 0 {
		t.Errorf("warned again while still full: %s", logs.String())
	}

	// Inodes run out while bytes are plenty (and are read at every MAIL
	// once near their reserve).
	fs.set(1<<40, roomReserveInodes, nil)
	now = now.Add(roomEvery)
	if !g.room(0) {
		t.Error("refused with exactly the inode reserve left")
	}
	fs.set(1<<40, roomReserveInodes-1, nil)
	if g.room(0) {
		t.Error("taken with fewer free inodes than the reserve")
	}
	// A filesystem without a fixed number of inodes (-1) is judged by bytes.
	fs.set(1<<40, -1, nil)
	if !g.room(1 << 20) {
		t.Error("refused on a filesystem that reports no inode count")
	}
	if !strings.Contains(logs.String(), "has room") {
		t.Errorf("no notice when room came back; log:\n%s", logs.String())
	}

	// A filesystem that cannot tell: mail is taken, storing decides; the
	// log says so once.
	logs.Reset()
	fs.set(0, 0, errors.New("statfs: the filesystem reports no size"))
	now = now.Add(roomEvery)
	if !g.room(1 << 30) {
		t.Error("refused while the free space is unknown")
	}
	now = now.Add(roomEvery)
	g.room(0)
	if n := strings.Count(logs.String(), "cannot read the free space"); n != 1 {
		t.Errorf("%d warnings about an unreadable free space, want 1; log:\n%s", n, logs.String())
	}
	if strings.Contains(logs.String(), "has room") {
		t.Errorf("claimed room when it is unknown; log:\n%s", logs.String())
	}
}

// TestRoomGateSlowStatfs: while one MAIL waits on a slow statfs, the
// others are answered from the last reading.
func TestRoomGateSlowStatfs(t *testing.T) {
	release := make(chan struct{})
	var reads int
	var mu sync.Mutex
	g := newRoomGate(spaceFunc(func() (int64, int64, error) {
		mu.Lock()
		reads++
		first := reads == 1
		mu.Unlock()
		if !first {
			<-release
		}
		return 1 << 40, -1, nil
	}), slog.New(slog.NewTextHandler(&bytes.Buffer{}, nil)))
	now := time.Unix(1_800_000_000, 0)
	var clock sync.Mutex
	g.now = func() time.Time { clock.Lock(); defer clock.Unlock(); return now }
	g.room(0) // first reading, quick
	clock.Lock()
	now = now.Add(roomEvery)
	clock.Unlock()
	done := make(chan bool)
	go func() { done <- g.room(0) }() // takes the slow reading
	for {
		mu.Lock()
		n := reads
		mu.Unlock()
		if n == 2 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	answered := make(chan bool)
	go func() {
		ok := true
		for range 10 {
			ok = ok && g.room(0) // answered from the last reading
		}
		answered <- ok
	}()
	select {
	case ok := <-answered:
		if !ok {
			t.Error("refused while another MAIL reads the free space")
		}
	case <-time.After(10 * time.Second): // a liveness bound, not a speed one
		close(release)
		t.Fatal("MAILs waited for another's statfs")
	}
	close(release)
	if !<-done {
		t.Error("the reading MAIL was refused")
	}
}

type spaceFunc func() (int64, int64, error)

func (f spaceFunc) Space() (int64, int64, error) { return f() }
