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
// from sees either the old object or none, and under to's lock, so that
// a conditional Delete of to (DeleteIfMatch: a replay removing the dead
// letter it read) cannot check the old object and then remove the one
// moved in over it.
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
	unlock, err := s.locks.lockBoth(ctx, from, to)
	if err != nil {
		return store.Object{}, s.moveErr(from, to, err)
	}
	obj, err := s.moveLocked(ctx, from, to, tail, opts.IfMatch)
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

func (s *Store) moveLocked(ctx context.Context, from, to string, tail []byte, ifMatch string) (store.Object, error) {
	src := s.path(from)
	f, fi, err := openAppend(src)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return store.Object{}, fmt.Errorf("fs: move %s: %w", from, err)
	case err != nil:
		return store.Object{}, s.moveErr(from, to, err)
	}
	defer f.Close()
	if ifMatch != "" && etag(fi) != ifMatch {
		return store.Object{}, fmt.Errorf("fs: move %s: %w", from, store.ErrPrecondition)
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

// openAppend opens the object file at p for appending and describes it;
// store.ErrNotFound if there is no regular file there (symbolic links are
// not objects). The caller closes the file.
func openAppend(p string) (*os.File, os.FileInfo, error) {
	f, err := openFile(p, os.O_WRONLY|os.O_APPEND|syscall.O_NOFOLLOW, 0)
	switch {
	case errors.Is(err, syscall.ENOENT), errors.Is(err, syscall.ENOTDIR),
		errors.Is(err, syscall.EISDIR), errors.Is(err, syscall.ELOOP):
		return nil, nil, store.ErrNotFound
	case err != nil:
		return nil, nil, err
	}
	fi, err := f.Stat()
	switch {
	case err != nil:
		f.Close()
		return nil, nil, err
	case !fi.Mode().IsRegular():
		f.Close()
		return nil, nil, store.ErrNotFound
	}
	return f, fi, nil
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

var _ store.Appender = (*Store)(nil)

// AppendIfMatch appends tail to the file of key if its ETag is etag (see
// store.Appender), under key's lock like a conditional Put, so that the
// comparison and the append are one step for every writer in every
// process. Nothing is created or renamed. The append is made durable
// before it returns, unless opts.Lazy in SyncFS mode (the next barrier,
// whoever's, covers it): by a barrier in SyncFS mode, by an fsync of the
// file in SyncFiles mode.
func (s *Store) AppendIfMatch(ctx context.Context, key, ifMatch string, tail []byte, opts store.AppendOptions) (store.Object, error) {
	if err := store.ValidKey(key); err != nil {
		return store.Object{}, fmt.Errorf("fs: append: %w", err)
	}
	if ifMatch == "" {
		return store.Object{}, fmt.Errorf("fs: append %s: no ETag to match", key)
	}
	if err := ctx.Err(); err != nil {
		return store.Object{}, fmt.Errorf("fs: append %s: %w", key, err)
	}
	gen := s.syncErrs.Load()
	unlock, err := s.locks.lock(ctx, key)
	if err != nil {
		return store.Object{}, s.appendErr(key, err)
	}
	obj, err := s.appendLocked(key, ifMatch, tail, s.mode != SyncFS)
	unlock()
	if err != nil || s.mode != SyncFS || opts.Lazy {
		return obj, err
	}
	if err := s.barrier(gen); err != nil {
		// Appended, but perhaps not durably: the caller must not rely on it.
		return store.Object{}, s.appendErr(key, err)
	}
	return obj, nil
}

// appendLocked is AppendIfMatch under key's lock; sync: fsync the file.
func (s *Store) appendLocked(key, ifMatch string, tail []byte, sync bool) (store.Object, error) {
	p := s.path(key)
	f, fi, err := openAppend(p)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return store.Object{}, fmt.Errorf("fs: append %s: %w", key, err)
	case err != nil:
		return store.Object{}, s.appendErr(key, err)
	}
	defer f.Close()
	if etag(fi) != ifMatch {
		return store.Object{}, fmt.Errorf("fs: append %s: %w", key, store.ErrPrecondition)
	}
	if _, err := f.Write(tail); err != nil {
		// Best effort: take a partial tail back off (a full disk).
		_ = f.Truncate(fi.Size())
		return store.Object{}, s.appendErr(key, err)
	}
	stamp := s.stamp() // the ETag must change, as for a Put
	if err := setMtime(f, p, stamp); err != nil {
		return store.Object{}, s.appendErr(key, err)
	}
	if sync {
		if err := f.Sync(); err != nil {
			return store.Object{}, s.appendErr(key, err)
		}
	}
	// As in moveLocked: the tail went to the end, under the key's lock.
	size := fi.Size() + int64(len(tail))
	return store.Object{Key: key, Size: size, ETag: etagOf(inode(fi), size, stamp), ModTime: stamp}, nil
}

// appendErr wraps err for an append, like putErr does for a Put.
func (s *Store) appendErr(key string, err error) error {
	return fmt.Errorf("fs: append %s: %w", key, classify(err))
}
