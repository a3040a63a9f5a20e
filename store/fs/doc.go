// Package fs is the filesystem store.Store backend: the embedded default
// behind MAILHOOK_STORE=file:///path, so mailhook runs with nothing else on
// the machine.
//
// It owns one root directory and everything in it. It never interprets
// object contents, never follows a key outside the root, and never serves a
// partially written object. It is safe for concurrent use by many
// goroutines and by several processes sharing the root directory on one
// local filesystem (it relies on flock(2), link(2) and rename(2) being
// atomic, which network filesystems may not honour). It runs on Unix only.
//
// # On-disk layout
//
//	<root>/<key>               one regular file per object; keys are paths
//	<root>/.tmp/put-<random>   bodies being written, renamed into place
//	<root>/.tmp/ping-<random>  Ping's probe files
//	<root>/.tmp/locks/<nn>     64 lock files, flock(2)ed around mutations
//
// Key segments can never start with ".tmp" (store.ValidKey), so .tmp never
// collides with an object. Empty directories left by Delete are kept. A key
// cannot name an object and also be a directory prefix of another key
// ("a" and "a/b"): such a Put fails with an error wrapping
// store.ErrInvalidKey.
//
// # Durability
//
// Put writes the body to a new temporary file in <root>/.tmp (the same
// filesystem as every object), sets its modification time, fsyncs it and
// only then moves it to its key with rename(2) (or link(2) for
// IfNoneMatch), so the key names either the old complete file or the new
// complete file, never a part. Then the key's directory is fsynced, which
// makes the new name durable. Directories Put creates are made durable by
// fsyncing their parents before the object is moved in. Put returns nil
// only after all of that, so an object Put acknowledged survives kill -9
// and power loss. (If only the directory fsync fails, the new object is
// already visible but Put still returns an error: the caller must not
// acknowledge it, and a retry may store it twice.) A Put that fails (body error, cancelled context, short
// body, disk error) removes its temporary file and leaves the key as it
// was. Temporary files left by a crash are removed by New once they are an
// hour old. Delete fsyncs the directory too, so a delete is not undone by
// a crash after it returned.
//
// Concurrent Puts into one directory share directory fsyncs (group commit):
// a caller waits for the next fsync that starts after its rename, and one
// fsync serves every caller that was waiting for it.
//
// # ETags
//
// An ETag is "<inode>-<size>-<mtime ns>" (hex) of the object's file. Put
// stamps each new file with a nanosecond modification time taken from the
// clock (strictly increasing within a process), so every Put yields a new
// ETag without hashing content. An inode number is reused only after its
// previous file is gone, which happened before the new file's stamp was
// taken, so an old ETag cannot come back (no ABA) unless the wall clock
// steps backwards onto the very nanosecond. New refuses a filesystem that
// does not keep nanosecond timestamps.
//
// # Locking
//
// Each key hashes to one of 64 stripes. A stripe is an in-process
// semaphore plus an exclusive flock(2) on <root>/.tmp/locks/<nn>, held
// only around the final rename/link/unlink (and, for IfMatch, the ETag
// comparison before it), never while a body is read or fsynced. Plain
// Puts, IfMatch Puts and Deletes take the lock, so a compare-and-swap is
// atomic with respect to every other writer, in any process. IfNoneMatch
// needs no lock: link(2) fails atomically if the key exists (on a
// filesystem without hard links it checks and renames under the lock).
package fs
