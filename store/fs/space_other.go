//go:build !linux

package fs

import "syscall"

// Space is not implemented here: it reports ENOSYS, and callers treat the
// room left as unknown.
func (s *Store) Space() (bytes, inodes int64, err error) {
	return 0, 0, syscall.ENOSYS
}
