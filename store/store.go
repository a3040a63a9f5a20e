package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"strings"
	"time"
)

// Errors every backend translates its own failures into, so that callers
// never import a backend's SDK. Test with errors.Is.
var (
	// ErrNotFound: no object has that key.
	ErrNotFound = errors.New("store: not found")
	// ErrPrecondition: a conditional write lost (IfNoneMatch on an existing
	// key, or IfMatch on a key whose ETag has changed or that is gone).
	ErrPrecondition = errors.New("store: precondition failed")
	// ErrUnavailable: the store could not be reached or refused service;
	// the operation may succeed if retried later.
	ErrUnavailable = errors.New("store: unavailable")
	// ErrInvalidKey: the key is not a valid object key (see ValidKey).
	ErrInvalidKey = errors.New("store: invalid key")
)

// Object describes a stored object.
type Object struct {
	Key     string
	Size    int64
	ETag    string // opaque; changes whenever a Put stores different content (S3's is the MD5, so an identical rewrite may keep it)
	ModTime time.Time
}

// PutOptions qualify a Put.
type PutOptions struct {
	// IfNoneMatch makes the Put create the object only if the key does not
	// exist yet; otherwise it fails with ErrPrecondition.
	IfNoneMatch bool
	// IfMatch, when set, makes the Put replace the object only if its
	// current ETag equals IfMatch; otherwise it fails with ErrPrecondition.
	IfMatch string
	// ContentType is recorded where the backend can keep it.
	ContentType string
	// Size is the body's length when known in advance, or -1 (0 is taken
	// as an empty body only when the reader is also empty).
	Size int64
	// Lazy defers durability: when Put returns the object is visible and
	// atomic as always, but it may become durable only later: with the
	// next durable write of this process that covers it (the filesystem
	// store: its next barrier, at the latest its next checkpoint, within
	// about a second under load), or, in a batch, with the batch. A crash
	// of the machine (not merely of the process) before then may lose it:
	// the key then names the previous object or none, never a part.
	// Backends that cannot defer (S3) ignore it.
	Lazy bool
	// Unordered lets the backend make the body durable together with the
	// key rather than before it (on the filesystem store, one group commit
	// for the batch instead of two). The cost: after a crash of the
	// machine (not merely of the process) before Put returned, the key may
	// name an empty object, or on a filesystem that does not order data
	// before names, one holding a part of the body. Only for create-only
	// objects (IfNoneMatch) that nobody was told about before Put returned
	// and whose readers tell a torn object from a whole one (a checksum, a
	// decoder). It has no effect without IfNoneMatch; backends whose
	// writes are atomic anyway (S3) ignore it.
	Unordered bool
}

// Store is the object storage every stage shares. Keys are slash-separated
// relative paths (see ValidKey). Implementations are safe for concurrent use
// by many goroutines and, for backends that say so, many processes.
type Store interface {
	// Put reads body to EOF and stores it under key, atomically: readers see
	// the old object or the new one, never a part. When Put returns nil the
	// object is durable (fsync'd, or acknowledged by the server), unless
	// opts.Lazy says it need not be yet. If body
	// returns an error, Put stores nothing and returns an error that wraps it.
	Put(ctx context.Context, key string, body io.Reader, opts PutOptions) (Object, error)
	// Get opens the object for reading. The caller closes it.
	Get(ctx context.Context, key string) (io.ReadCloser, Object, error)
	// Stat describes the object without reading it.
	Stat(ctx context.Context, key string) (Object, error)
	// Delete removes the object. Deleting a missing key is not an error.
	Delete(ctx context.Context, key string) error
	// List yields the objects whose keys start with prefix, in lexical key
	// order. Iteration stops at the first error, which is yielded.
	List(ctx context.Context, prefix string) iter.Seq2[Object, error]
	// Ping checks that the store is reachable and usable (for /readyz).
	Ping(ctx context.Context) error
	// String names the store for logs, without secrets.
	String() string
}

// PutRequest is one object of a Batcher.PutAll.
type PutRequest struct {
	Key  string
	Body io.Reader
	Opts PutOptions
}

// Batcher is implemented by stores that can write several objects for the
// durability cost of one (the filesystem store's group commit).
type Batcher interface {
	// PutAll is like a Put of each request in order: it reads the bodies
	// in order (a body may depend on what an earlier one read), the
	// objects become visible in order, and it returns nil only when all
	// of them are durable (unless every request is Lazy). On error any
	// of them may have been stored, as with a failed Put: the caller
	// deletes what it does not want.
	PutAll(ctx context.Context, reqs []PutRequest) ([]Object, error)
}

// Mover is implemented by stores that can move an object to another key
// without copying it (the filesystem store's rename). Records change state
// this way: no new object to create and no old one to delete.
type Mover interface {
	// MoveAppend appends tail to the object at from, then moves the object
	// to the key to, replacing any object there. When it returns nil the
	// move is durable (unless opts.Lazy) and the object is no longer at
	// from. tail need not be: the append is not atomic, so a reader (or a
	// restart after a crash) may find the object, at either key, ending
	// with any prefix of tail, including none. ErrNotFound: there is no
	// object at from.
	MoveAppend(ctx context.Context, from, to string, tail []byte, opts MoveOptions) (Object, error)
}

// MoveOptions qualify a MoveAppend.
type MoveOptions struct {
	// Lazy defers durability as PutOptions.Lazy does: a crash of the
	// machine before the next durable write of this process may undo the
	// move (the object is then at from again), never leave it at both
	// keys or neither.
	Lazy bool
	// IfMatch, if not empty, moves the object only if its current ETag is
	// this; otherwise the move fails with ErrPrecondition and changes
	// nothing.
	IfMatch string
}

// Appender is implemented by stores that can append to an object in place
// (the filesystem store). The queue gives a pending record its next
// version this way: no new file, no rename, and no wait for the data to be
// durable before the name.
type Appender interface {
	// AppendIfMatch appends tail to the object at key if its current ETag
	// is etag, and returns the object as it now is; otherwise it fails
	// with ErrPrecondition (ErrNotFound: there is no object at key). As
	// with MoveAppend, the append is not atomic: a reader, or a restart
	// after a crash, may find the object ending with any prefix of tail,
	// including none. When it returns nil the append is durable, unless
	// opts.Lazy.
	AppendIfMatch(ctx context.Context, key, etag string, tail []byte, opts AppendOptions) (Object, error)
}

// AppendOptions qualify an AppendIfMatch.
type AppendOptions struct {
	// Lazy defers durability as PutOptions.Lazy does: a crash of the
	// machine before the next durable write of this process may cut the
	// append, anywhere.
	Lazy bool
}

// AppendIfMatch calls s.AppendIfMatch when s is an Appender; otherwise it
// returns an error wrapping errors.ErrUnsupported and does nothing.
func AppendIfMatch(ctx context.Context, s Store, key, etag string, tail []byte, opts AppendOptions) (Object, error) {
	if a, ok := s.(Appender); ok {
		return a.AppendIfMatch(ctx, key, etag, tail, opts)
	}
	return Object{}, fmt.Errorf("store: append %s: %w", key, errors.ErrUnsupported)
}

// KeyLister is implemented by stores that list keys more cheaply than
// objects (the filesystem store: no stat of each file).
type KeyLister interface {
	// ListKeys yields the keys List would yield for prefix, in the same
	// order, without describing the objects. A key may name an object
	// deleted while the listing ran.
	ListKeys(ctx context.Context, prefix string) iter.Seq2[string, error]
}

// ConditionalDeleter is implemented by stores that can delete an object
// only while it is the version the caller read (S3's DeleteObject with
// If-Match). Removing the old copy of a record moved by writing the new
// one and deleting the old needs it: a plain delete that arrives late
// removes a copy another process has written in the meantime (a replay
// putting a dead letter back while the first move's delete was on its way).
type ConditionalDeleter interface {
	// DeleteIfMatch removes the object if its ETag is etag; the error
	// wraps ErrPrecondition if it is another version. A missing key is
	// not an error.
	DeleteIfMatch(ctx context.Context, key, etag string) error
}

// DeleteIfMatch deletes key with s.DeleteIfMatch when s is a
// ConditionalDeleter and etag is known, else with s.Delete.
func DeleteIfMatch(ctx context.Context, s Store, key, etag string) error {
	if cd, ok := s.(ConditionalDeleter); ok && etag != "" {
		return cd.DeleteIfMatch(ctx, key, etag)
	}
	return s.Delete(ctx, key)
}

// AfterLister is implemented by stores that can start a listing of keys
// after a given key (S3's StartAfter), so that a page deep into a long
// listing does not list everything before it again.
type AfterLister interface {
	// ListKeysAfter yields the keys ListKeys would yield for prefix that
	// sort after after.
	ListKeysAfter(ctx context.Context, prefix, after string) iter.Seq2[string, error]
}

// ListKeysAfter lists the keys under prefix that sort after after (all
// of them when after is ""), with s.ListKeysAfter when s is an
// AfterLister, else by skipping the first ones of ListKeys.
func ListKeysAfter(ctx context.Context, s Store, prefix, after string) iter.Seq2[string, error] {
	if after == "" {
		return ListKeys(ctx, s, prefix)
	}
	if al, ok := s.(AfterLister); ok {
		return al.ListKeysAfter(ctx, prefix, after)
	}
	return func(yield func(string, error) bool) {
		for key, err := range ListKeys(ctx, s, prefix) {
			if err == nil && key <= after {
				continue
			}
			if !yield(key, err) || err != nil {
				return
			}
		}
	}
}

// LazyDeleter is implemented by stores whose Delete waits for the removal
// to be durable (the filesystem store's group commit) and can skip that.
type LazyDeleter interface {
	// DeleteLazy removes the object as Delete does, visibly at once, but
	// the removal may become durable only when the next Put, Delete or
	// move without Lazy made by this process on this store returns: a
	// crash of the machine (not merely of the process) before then may
	// bring the object back whole. For objects whose return is harmless
	// (a lease whose owner is gone).
	DeleteLazy(ctx context.Context, key string) error
}

// DeleteLazy deletes key with s.DeleteLazy when s is a LazyDeleter, else
// with s.Delete.
func DeleteLazy(ctx context.Context, s Store, key string) error {
	if ld, ok := s.(LazyDeleter); ok {
		return ld.DeleteLazy(ctx, key)
	}
	return s.Delete(ctx, key)
}

// ListKeys lists the keys under prefix with s.ListKeys when s is a
// KeyLister, else with s.List.
func ListKeys(ctx context.Context, s Store, prefix string) iter.Seq2[string, error] {
	if kl, ok := s.(KeyLister); ok {
		return kl.ListKeys(ctx, prefix)
	}
	return Keys(s.List(ctx, prefix))
}

// Keys yields the keys of the objects objs yields, and its error.
func Keys(objs iter.Seq2[Object, error]) iter.Seq2[string, error] {
	return func(yield func(string, error) bool) {
		for obj, err := range objs {
			if !yield(obj.Key, err) || err != nil {
				return
			}
		}
	}
}

// MoveAppend calls s.MoveAppend when s is a Mover; otherwise it returns
// an error wrapping errors.ErrUnsupported and does nothing.
func MoveAppend(ctx context.Context, s Store, from, to string, tail []byte, opts MoveOptions) (Object, error) {
	if m, ok := s.(Mover); ok {
		return m.MoveAppend(ctx, from, to, tail, opts)
	}
	return Object{}, fmt.Errorf("store: move %s: %w", from, errors.ErrUnsupported)
}

// PutAll stores reqs with s.PutAll when s is a Batcher, else with one Put
// each, in order.
func PutAll(ctx context.Context, s Store, reqs []PutRequest) ([]Object, error) {
	if b, ok := s.(Batcher); ok {
		return b.PutAll(ctx, reqs)
	}
	objs := make([]Object, len(reqs))
	for i, r := range reqs {
		var err error
		if objs[i], err = s.Put(ctx, r.Key, r.Body, r.Opts); err != nil {
			return nil, err
		}
	}
	return objs, nil
}

// ValidKey reports nil if key can name an object on every backend: 1 to
// 1024 bytes, slash-separated segments that are neither empty, ".", ".."
// nor start with ".tmp", and no control characters or backslashes.
func ValidKey(key string) error {
	if key == "" || len(key) > 1024 {
		return fmt.Errorf("%w: length %d", ErrInvalidKey, len(key))
	}
	for _, seg := range strings.Split(key, "/") {
		if seg == "" || seg == "." || seg == ".." || strings.HasPrefix(seg, ".tmp") {
			return fmt.Errorf("%w: %q", ErrInvalidKey, key)
		}
	}
	for i := 0; i < len(key); i++ {
		if c := key[i]; c < 0x20 || c == 0x7f || c == '\\' {
			return fmt.Errorf("%w: %q", ErrInvalidKey, key)
		}
	}
	return nil
}
