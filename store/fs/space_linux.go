package fs

import (
	"fmt"
	"syscall"
)

// Space returns what is left on the store's filesystem for a writer
// without privileges: bytes (statfs(2) f_bavail) and inodes (f_ffree; -1
// where the filesystem reports no fixed number of them, as Btrfs does).
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
	unit := int64(st.Frsize)
	if unit <= 0 {
		unit = int64(st.Bsize)
	}
	inodes = int64(st.Ffree)
	if st.Files == 0 {
		inodes = -1
	}
	return int64(st.Bavail) * unit, inodes, nil
}
