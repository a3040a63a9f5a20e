package fs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"syscall"

	"github.com/mailhook/mailhook/store"
)

var _ store.Mover = (*Store)(nil)

// MoveAppend appends tail to the file of from and renames it to to (see
// store.Mover). The file keeps its inode: nothing is created, copied or
// freed, where a Put of the new object and a Delete of the old one would
// create one file and free another. The rename is made durable before it
// returns, unless opts.Lazy in SyncFS mode (the next barrier, whoever's,
// covers it; SyncFiles mode has no such barrier and ignores Lazy); tail
// is not synced on its own, since the Mover contract lets a crash cut it.
//
// It runs under from's lock, like Delete, so that a conditional Put of
// from sees either the old object or none.
func (s *Store) MoveAppend(ctx context.Context, from, to string, tail []byte, opts store.MoveOptions) (store.Object, error) {
	for _, k := range [2]string{from, to} {
		if err := store.ValidKey(k); err != nil {
			return store.Object{}, fmt.Errorf("fs: move: %w", err)
		}
	}
	if err := ctx.Err(); err != nil {
		return store.Object{}, fmt.Errorf("fs: move %s: %w", from, err)
	}
	if from == to {
		return store.Object{}, fmt.Errorf("fs: move %s: %w: source and destination are the same key", from, store.ErrInvalidKey)
	}
	gen := s.syncErrs.Load()
	if err := s.ensureDir(path.Dir(to)); err != nil {
		return store.Object{}, s.moveErr(from, to, err)
	}
	unlock, err := s.locks.lock(ctx, from)
	if err != nil {
		return store.Object{}, s.moveErr(from, to, err)
	}
	obj, err := s.moveLocked(ctx, from, to, tail)
	unlock()
	if err != nil {
		return store.Object{}, err
	}
	if opts.Lazy && s.mode == SyncFS {
		return obj, nil
	}
	if err := s.syncMove(gen, from, to); err != nil {
		// Moved, but perhaps not durably: the caller must not rely on it.
		return store.Object{}, s.moveErr(from, to, err)
	}
	return obj, nil
}

func (s *Store) moveLocked(ctx context.Context, from, to string, tail []byte) (store.Object, error) {
	src := s.path(from)
	f, err := openFile(src, os.O_WRONLY|os.O_APPEND|syscall.O_NOFOLLOW, 0)
	switch {
	case errors.Is(err, syscall.ENOENT), errors.Is(err, syscall.ENOTDIR),
		errors.Is(err, syscall.EISDIR), errors.Is(err, syscall.ELOOP):
		return store.Object{}, fmt.Errorf("fs: move %s: %w", from, store.ErrNotFound)
	case err != nil:
		return store.Object{}, s.moveErr(from, to, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return store.Object{}, s.moveErr(from, to, err)
	}
	if !fi.Mode().IsRegular() {
		return store.Object{}, fmt.Errorf("fs: move %s: %w", from, store.ErrNotFound)
	}
	if len(tail) > 0 {
		if _, err := f.Write(tail); err != nil {
			// Best effort: take a partial tail back off (a full disk), so
			// that a later move does not append after it.
			_ = f.Truncate(fi.Size())
			return store.Object{}, s.moveErr(from, to, err)
		}
	}
	// A stamp of our own, as Put gives: the ETag must change.
	stamp := s.stamp()
	if err := setMtime(f, src, stamp); err != nil {
		return store.Object{}, s.moveErr(from, to, err)
	}
	// What a second fstat would say: the tail went to the end (O_APPEND,
	// under the key's lock; a key's file grows only by moves), and the
	// filesystem keeps the stamp to the nanosecond (New checks).
	size := fi.Size() + int64(len(tail))
	obj := store.Object{Key: to, Size: size, ETag: etagOf(inode(fi), size, stamp), ModTime: stamp}
	if err := ctx.Err(); err != nil {
		return store.Object{}, fmt.Errorf("fs: move %s: %w", from, err)
	}
	dst := s.path(to)
	err = unwrapSyscall(s.renameFn(src, dst))
	if errors.Is(err, syscall.ENOENT) {
		// The destination's directory vanished since it was cached.
		s.forgetDir(path.Dir(to))
		if err = s.ensureDir(path.Dir(to)); err == nil {
			err = unwrapSyscall(s.renameFn(src, dst))
		}
	}
	if err != nil {
		return store.Object{}, s.moveErr(from, to, err)
	}
	return obj, nil
}

// syncMove makes a rename from one key's directory to another's durable.
func (s *Store) syncMove(gen uint64, from, to string) error {
	if s.mode == SyncFS {
		return s.barrier(gen)
	}
	// Both directories: the new entry, and the old one gone.
	if err := s.syncDirGrouped(path.Dir(to)); err != nil {
		return err
	}
	if path.Dir(from) == path.Dir(to) {
		return nil
	}
	return s.syncDirGrouped(path.Dir(from))
}

// moveErr wraps err for a move, like putErr does for a Put.
func (s *Store) moveErr(from, to string, err error) error {
	switch {
	case errors.Is(err, syscall.ENOTDIR), errors.Is(err, syscall.EISDIR),
		errors.Is(err, syscall.ENOTEMPTY), errors.Is(err, syscall.EEXIST):
		return fmt.Errorf("fs: move %s to %s: %w: an object and a directory would share a name: %w", from, to, store.ErrInvalidKey, err)
	case errors.Is(err, syscall.ENAMETOOLONG):
		return fmt.Errorf("fs: move %s to %s: %w: %w", from, to, store.ErrInvalidKey, err)
	}
	return fmt.Errorf("fs: move %s to %s: %w", from, to, classify(err))
}
