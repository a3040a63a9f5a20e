package fs

import (
	"fmt"
	"math"
	"syscall"
)

// Space returns what is left on the store's filesystem for a writer
// without privileges: bytes (statfs(2) f_bavail) and inodes (f_ffree; -1
// where the filesystem reports no fixed number of them, as Btrfs does).
// A filesystem that reports no size at all is an error: the room is
// unknown, not nil.
func (s *Store) Space() (bytes, inodes int64, err error) {
	var st syscall.Statfs_t
	for {
		err = syscall.Statfs(s.root, &st)
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		return 0, 0, fmt.Errorf("fs: statfs %s: %w", s.root, err)
	}
	bytes, inodes, ok := spaceOf(&st)
	if !ok {
		// ramfs, tmpfs with size=0, FUSE filesystems that do not say:
		// no size, so no telling what is left.
		return 0, 0, fmt.Errorf("fs: statfs %s: the filesystem reports no size", s.root)
	}
	return bytes, inodes, nil
}

// spaceOf reads Space's figures from a statfs result; false when it
// reports no size.
func spaceOf(st *syscall.Statfs_t) (bytes, inodes int64, ok bool) {
	if st.Blocks == 0 {
		return 0, 0, false
	}
	unit := uint64(st.Frsize)
	if unit == 0 {
		unit = uint64(st.Bsize)
	}
	inodes = -1
	if st.Files != 0 {
		inodes = int64(min(uint64(st.Ffree), math.MaxInt64))
	}
	if avail := uint64(st.Bavail); unit != 0 && avail > math.MaxInt64/unit {
		return math.MaxInt64, inodes, true
	}
	return int64(uint64(st.Bavail) * unit), inodes, true
}
