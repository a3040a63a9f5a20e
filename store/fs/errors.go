package fs

import (
	"errors"
	"fmt"
	"syscall"

	"github.com/mailhook/mailhook/store"
)

// unavailable lists the errnos that mean the disk, not the request, is the
// problem: retrying later (or elsewhere) may succeed.
var unavailable = []syscall.Errno{
	syscall.EIO, syscall.ENOSPC, syscall.EDQUOT, syscall.EROFS, syscall.EACCES,
	syscall.EPERM, syscall.EMFILE, syscall.ENFILE, syscall.ENOMEM, syscall.ESTALE,
	syscall.ENOLCK,
}

// classify wraps store.ErrUnavailable around disk errors, keeping the cause.
func classify(err error) error {
	for _, e := range unavailable {
		if errors.Is(err, e) {
			return fmt.Errorf("%w: %w", store.ErrUnavailable, err)
		}
	}
	return err
}

// putErr explains a failed Put of key.
func (s *Store) putErr(key string, err error) error {
	switch {
	case errors.Is(err, syscall.ENOTDIR), errors.Is(err, syscall.EISDIR),
		errors.Is(err, syscall.ENOTEMPTY), errors.Is(err, syscall.EEXIST):
		// "a/b" where "a" is an object, or "a" where "a/..." exist.
		return fmt.Errorf("fs: put %s: %w: an object and a directory would share a name: %w", key, store.ErrInvalidKey, err)
	case errors.Is(err, syscall.ENAMETOOLONG):
		return fmt.Errorf("fs: put %s: %w: %w", key, store.ErrInvalidKey, err)
	case errors.Is(err, syscall.ENOENT):
		// The root or .tmp vanished under us.
		return fmt.Errorf("fs: put %s: %w: %w", key, store.ErrUnavailable, err)
	}
	return fmt.Errorf("fs: put %s: %w", key, classify(err))
}

// readErr explains a failed Get or Stat of key.
func (s *Store) readErr(op, key string, err error) error {
	if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ENOTDIR) || errors.Is(err, syscall.ENAMETOOLONG) {
		return fmt.Errorf("fs: %s %s: %w", op, key, store.ErrNotFound)
	}
	return s.opErr(op, key, err)
}

// opErr wraps err with the operation and key (or prefix).
func (s *Store) opErr(op, key string, err error) error {
	return fmt.Errorf("fs: %s %s: %w", op, key, classify(err))
}
