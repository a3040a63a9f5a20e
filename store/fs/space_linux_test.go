package fs

import (
	"math"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func TestSpace(t *testing.T) {
	dir := t.TempDir()
	s, err := New(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	b, inodes, err := s.Space()
	if err != nil {
		t.Fatal(err)
	}
	if b <= 0 {
		t.Errorf("free bytes %d on the test directory's filesystem, want > 0", b)
	}
	if inodes == 0 || inodes < -1 {
		t.Errorf("free inodes %d, want > 0 or -1 (no fixed number)", inodes)
	}
	// The same filesystem as the root: statfs of a file in it agrees on
	// the total size (free space moves with other tests).
	var st syscall.Statfs_t
	if err := syscall.Statfs(filepath.Join(dir, tmpDir), &st); err != nil {
		t.Fatal(err)
	}
	if limit := int64(st.Blocks) * int64(max(st.Frsize, st.Bsize)); b > limit {
		t.Errorf("free bytes %d exceed the filesystem's size %d", b, limit)
	}

	// A root that is gone is an error, not room.
	os.RemoveAll(dir)
	if _, _, err := s.Space(); err == nil {
		t.Error("no error for a store root that no longer exists")
	}
}

func TestSpaceOf(t *testing.T) {
	for _, tc := range []struct {
		name          string
		st            syscall.Statfs_t
		bytes, inodes int64
		ok            bool
	}{
		{"ext4", syscall.Statfs_t{Blocks: 1000, Bavail: 10, Frsize: 4096, Bsize: 4096, Files: 100, Ffree: 7}, 40960, 7, true},
		{"fragment size rules", syscall.Statfs_t{Blocks: 1000, Bavail: 10, Frsize: 1024, Bsize: 4096, Files: 100, Ffree: 7}, 10240, 7, true},
		{"no fragment size", syscall.Statfs_t{Blocks: 1000, Bavail: 10, Bsize: 512, Files: 100, Ffree: 7}, 5120, 7, true},
		{"no fixed inode count (Btrfs)", syscall.Statfs_t{Blocks: 1000, Bavail: 1, Frsize: 4096, Files: 0, Ffree: 0}, 4096, -1, true},
		{"full", syscall.Statfs_t{Blocks: 1000, Bavail: 0, Frsize: 4096, Files: 100, Ffree: 0}, 0, 0, true},
		{"no size (ramfs, tmpfs size=0)", syscall.Statfs_t{Blocks: 0, Bavail: 0, Frsize: 4096, Files: 0, Ffree: 0}, 0, 0, false},
		{"absurdly large", syscall.Statfs_t{Blocks: 1 << 62, Bavail: 1 << 62, Frsize: 1 << 20, Files: 1, Ffree: 1}, math.MaxInt64, 1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, i, ok := spaceOf(&tc.st)
			if b != tc.bytes || i != tc.inodes || ok != tc.ok {
				t.Errorf("spaceOf = %d bytes, %d inodes, %v; want %d, %d, %v", b, i, ok, tc.bytes, tc.inodes, tc.ok)
			}
		})
	}
}
