package main

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"
)

type fakeSpace struct {
	bytes, inodes int64
	err           error
	reads         int
}

func (f *fakeSpace) Space() (int64, int64, error) {
	f.reads++
	return f.bytes, f.inodes, f.err
}

func TestRoomGate(t *testing.T) {
	var logs bytes.Buffer
	fs := &fakeSpace{bytes: roomReserveBytes + 1000, inodes: 1000}
	now := time.Unix(1_800_000_000, 0)
	g := newRoomGate(fs, slog.New(slog.NewTextHandler(&logs, nil)))
	g.now = func() time.Time { return now }

	if !g.room(0) || !g.room(1000) {
		t.Error("a message within the free space minus the reserve was refused")
	}
	if g.room(1001) {
		t.Error("a message past the free space minus the reserve was taken")
	}
	if fs.reads != 1 {
		t.Errorf("free space read %d times within %v, want once", fs.reads, roomEvery)
	}

	// The disk fills up: seen at the next reading, not before.
	fs.bytes = roomReserveBytes - 1
	if !g.room(0) {
		t.Error("refused before the next reading")
	}
	now = now.Add(roomEvery)
	if g.room(0) {
		t.Error("an empty message was taken with less than the reserve left")
	}
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "452 4.3.1") {
		t.Errorf("no warning when the filesystem filled up; log:\n%s", logs.String())
	}
	logs.Reset()
	now = now.Add(roomEvery)
	g.room(0)
	if logs.Len() != 0 {
		t.Errorf("warned again while still full: %s", logs.String())
	}

	// Inodes run out while bytes are plenty.
	fs.bytes, fs.inodes = 1<<40, roomReserveInodes-1
	now = now.Add(roomEvery)
	if g.room(0) {
		t.Error("taken with fewer free inodes than the reserve")
	}
	// A filesystem without a fixed number of inodes (-1) is judged by bytes.
	fs.inodes = -1
	now = now.Add(roomEvery)
	if !g.room(1 << 20) {
		t.Error("refused on a filesystem that reports no inode count")
	}
	if !strings.Contains(logs.String(), "room again") {
		t.Errorf("no notice when room came back; log:\n%s", logs.String())
	}

	// A filesystem that cannot tell: mail is taken, storing decides.
	fs.err = errors.New("statfs: no such thing")
	now = now.Add(roomEvery)
	if !g.room(1 << 30) {
		t.Error("refused while the free space is unknown")
	}
}
