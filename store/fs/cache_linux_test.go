//go:build linux && (amd64 || arm64)

package fs

import (
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"os"
	"syscall"
	"testing"
	"unsafe"

	"github.com/mailhook/mailhook/store"
)

// residentPages reports how many of the file's pages are in the page
// cache (mincore(2) on a fresh read-only mapping).
func residentPages(t *testing.T, name string) int {
	t.Helper()
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	m, err := syscall.Mmap(int(f.Fd()), 0, int(fi.Size()), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Munmap(m)
	page := os.Getpagesize()
	vec := make([]byte, (len(m)+page-1)/page)
	if _, _, errno := syscall.Syscall(syscall.SYS_MINCORE, uintptr(unsafe.Pointer(&m[0])), uintptr(len(m)), uintptr(unsafe.Pointer(&vec[0]))); errno != 0 {
		t.Fatalf("mincore: %v", errno)
	}
	n := 0
	for _, v := range vec {
		n += int(v & 1)
	}
	return n
}

// TestGetDropsLargeObjectsFromCache checks that closing the reader of a
// large object drops its pages from the page cache once it was read, and
// that a small object's stay.
func TestGetDropsLargeObjectsFromCache(t *testing.T) {
	var sfs syscall.Statfs_t
	dir := t.TempDir()
	if err := syscall.Statfs(dir, &sfs); err != nil {
		t.Fatal(err)
	}
	switch sfs.Type {
	case 0xEF53, 0x58465342, 0x9123683E: // ext4, XFS, Btrfs: they drop clean pages when asked
	default: // tmpfs keeps its data in the cache; network and FUSE filesystems may ignore the advice
		t.Skipf("filesystem type %#x: not one whose page cache the test can rely on", sfs.Type)
	}
	for _, m := range []SyncMode{SyncFS, SyncFiles} {
		t.Run(m.String(), func(t *testing.T) {
			s := newTestStore(t, t.TempDir(), WithSync(m))
			ctx := context.Background()
			for _, tc := range []struct {
				size int
				drop bool
			}{{dropCacheMin + 1000, true}, {dropCacheMin - 1, false}, {4096, false}} {
				body := make([]byte, tc.size)
				for i := range body {
					body[i] = byte(rand.Uint32())
				}
				key := "raw/object.eml"
				if _, err := s.Put(ctx, key, bytes.NewReader(body), store.PutOptions{Size: -1}); err != nil {
					t.Fatal(err)
				}
				rc, _, err := s.Get(ctx, key)
				if err != nil {
					t.Fatal(err)
				}
				got, err := io.ReadAll(rc)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, body) {
					t.Fatalf("%d bytes: read back %d bytes that differ", tc.size, len(got))
				}
				before := residentPages(t, s.path(key))
				if before == 0 {
					t.Skipf("%d bytes: no page cached after a read: the page cache is not observable here", tc.size)
				}
				if err := rc.Close(); err != nil {
					t.Fatal(err)
				}
				after := residentPages(t, s.path(key))
				switch {
				case tc.drop && after != 0:
					t.Errorf("%d bytes: %d of %d pages still cached after Close, want none", tc.size, after, before)
				case !tc.drop && after != before:
					t.Errorf("%d bytes: %d pages cached after Close, want the %d cached before", tc.size, after, before)
				}
				// Dropped pages are read again from the disk.
				rc, _, err = s.Get(ctx, key)
				if err != nil {
					t.Fatal(err)
				}
				if got, err = io.ReadAll(rc); err != nil || !bytes.Equal(got, body) {
					t.Fatalf("%d bytes: second read: %d bytes, %v", tc.size, len(got), err)
				}
				rc.Close()
				if err := s.Delete(ctx, key); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}
