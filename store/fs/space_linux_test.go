package fs

import (
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
