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
//	                           (on Linux most bodies have no name at
//	                           all: see Durability)
//	<root>/.tmp/ping-<random>  Ping's probe files
//	<root>/.tmp/locks/<nn>     64 lock files, flock(2)ed around mutations
//	<root>/.tmp/locks/wal      flock(2)ed while a process takes logs over
//	<root>/.tmp/wal/<random>   a process's log (SyncFS mode): see Log
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
// filesystem as every object), sets its modification time, makes it
// durable and only then moves it to its key with rename(2) (or, for
// IfNoneMatch, renameat2(2) with RENAME_NOREPLACE, falling back to link(2)
// and unlink(2)), so the key names either the old complete file or the new
// complete file, never a part. Then it makes the new name durable. Put
// returns nil only after all of that, so an object Put acknowledged
// survives kill -9 and power loss. (If only the second step fails, the new
// object is already visible but Put still returns an error: the caller
// must not acknowledge it, and a retry may store it twice.) A Put that
// fails (body error, cancelled context, short body, disk error) removes
// its temporary file and leaves the key as it was. Temporary files left by
// a crash are removed by New once they are an hour old. Delete makes the
// unlink durable before it returns, so a delete is not undone by a crash
// after it returned. How "durable" is achieved depends on the SyncMode.
//
// SyncFS (the default on Linux 5.8 and later): group commit with
// syncfs(2). Put writes the temporary file without fsync, then waits at a
// barrier: a syncfs of the root's filesystem that started after the file
// was written (and after any directory the Put created). Only then does it
// rename the file into place, and it then waits at a second barrier, a
// syncfs that started after the rename, before returning. Delete waits
// at a barrier after its unlink. A barrier is shared: a caller joins the
// syncfs that starts next (one already running may have started before
// its write) and one syncfs serves every caller that joined it, so with
// many concurrent Puts a pair of syncfs calls covers many objects. The
// order is what makes it safe: the data is durable before it becomes
// visible under its key, and visible-and-durable before Put returns, so a
// crash at any point leaves complete objects and stray temporary files,
// never a truncated object (an fsync-less rename of a new file could
// otherwise surface as an empty file after a power loss on ext4).
//
// A create-only Put (or a PutAll whose requests all are) marked
// store.PutOptions.Unordered skips the first barrier: its files are linked
// as soon as they are written, and the one barrier after the links makes
// data and names durable together. A kill -9 changes nothing (the page
// cache holds the whole files); a power loss before that barrier ended, so
// before the Put returned and anybody was told of the object, may leave
// the key naming an empty file (ext4 and XFS allocate a delayed-allocation
// file's blocks, and set its size on disk, only when they write it back).
// Callers use it for objects whose readers tell: mailhook's raw messages
// are checked against their recorded size and SHA-256, its records must
// decode, and an empty pending record is deleted by the dispatcher's scan
// once a minute old. Under load this halves the barriers a message waits
// for: at 2 KB × 32 sessions, 6-24 % more messages a second on the
// benchmark machine, depending on its speed at the time.
//
// Commit delay: a syncfs costs about the same for one file as for twenty
// (a journal commit and the write-back of the inode table, bitmap and
// directory blocks it touched), so under load the round queued behind a
// running syncfs waits, up to the commit delay (WithCommitDelay, 2 ms by
// default; MAILHOOK_STORE_COMMIT_DELAY), while a PutAll is still writing
// the bodies or names the round must cover, and starts as soon as none is.
// A round with no writer on the way, or none running before it, starts at
// once, so a lone client never waits. With 32 SMTP sessions of 2 KB
// messages, mailhook's CPU per delivered message fell by 12-16 % with it
// on the benchmark machine (BENCHMARKS.md).
//
// syncfs reports a write-back error only once per open file, to whichever
// call comes first, which may serve other callers. So every operation
// notes how many syncfs calls had failed when it began, and fails if that
// count has grown by the time its barrier passes, even if its own syncfs
// succeeded: an error is never swallowed for someone else. Kernels before
// 5.8 did not report write-back errors from syncfs at all; SyncAuto does
// not use it there.
//
// Caveat: syncfs flushes the whole filesystem, including other programs'
// dirty data, and its cost grows with it. In production give the data
// directory a filesystem of its own (a volume or partition), as one does
// for a database. A write-back error anywhere on that filesystem fails the
// operations in flight (they are retried; nothing acknowledged is lost).
//
// SyncFiles (the fallback where syncfs is missing or unsuitable, and
// selectable with WithSync): Put fsyncs the temporary file before the
// rename and then fsyncs the key's directory; Delete fsyncs the directory
// after the unlink. Directories Put creates are made durable by fsyncing
// their parents before the object is moved in. Concurrent Puts into one
// directory share directory fsyncs (group commit): a caller waits for the
// next fsync that starts after its rename, and one fsync serves every
// caller that was waiting for it.
//
// Unnamed files: on Linux, a Put without IfMatch writes its body to an
// unnamed file (open(2) with O_TMPFILE in .tmp) and, where the rename
// would be, links it in under its key with linkat(2) through
// /proc/self/fd, which fails if the key exists (IfNoneMatch; a plain Put
// then names the file in .tmp and renames it over the key). The barriers are the same;
// the file has no name until it is complete and durable, and vanishes with
// its descriptor if the Put fails or the process dies. It spares the name
// in .tmp and the rename (about six times the throughput of
// create-and-rename with 32 writers on ext4, without barriers). New checks
// that O_TMPFILE and /proc work and otherwise uses named files.
//
// PutAll (store.Batcher) writes several objects for the price of one Put:
// in SyncFS mode it stages every body, passes one barrier (none when every
// request is create-only and Unordered), places the objects in order and
// passes a second barrier; in SyncFiles mode it puts them one after the
// other.
//
// # Log
//
// In SyncFS mode a small batch of create-only objects (a PutAll, or Put,
// whose requests are all IfNoneMatch and Unordered, at most 256 KiB of
// bodies, not all Lazy) passes no barrier at all. Its files are placed as
// above, without waiting; then a copy of the batch is appended to the
// process's log file, <root>/.tmp/wal/<random>, and the Put returns once
// an fdatasync(2) of that file that started after the append has
// returned. Concurrent batches share fdatasyncs (group commit, as for
// barriers). An fdatasync of a file whose blocks are already allocated
// writes just the new bytes and flushes the disk's cache, where a syncfs
// writes back every file, directory and inode the batches touched. A kill
// -9 loses nothing either way (the page cache holds the files); the log is
// for a crash of the machine.
//
// The log file has two halves, each with a header (magic, epoch, sequence
// number, flags, the boot id of the writer, CRC-32C) followed by entries
// (payload length, CRC-32C, epoch, the time it was appended, then per
// object: key length, key, the inode number and generation of its file,
// body length, body). Only entries of the epoch in their half's header
// count. Each header gets a random epoch, so entries a crash left after a
// header it lost never count again; the sequence number orders the
// halves. An entry is stamped under the log's mutex, after its objects
// were placed: the stamps order the placements. About every second while
// the log is in use, and when the active half is half full, a checkpoint
// makes the other half active under a new header and then passes a
// barrier: every object of the half it left was placed before its entry
// was written, so before the barrier started, and is now durable without
// the log; the half left gets a new header, which empties it. A batch that
// finds no room passes a barrier itself. A failed write or fdatasync of
// the log stops its use: batches pass barriers from then on, and the next
// checkpoint (at the latest Close) empties it once a barrier covers it. So does a
// checkpoint whose barrier fails, or that finds a syncfs failed since the
// half it leaves was made active: the kernel may have dropped pages of its
// objects (it keeps such pages cached, clean, so reading them back shows
// what the disk lacks), so the halves not yet clean are flagged for
// rewrite, and Close writes their objects afresh (see below) before it
// empties them. Without a boot id (no /proc) there is no log, and dead
// logs are left alone (a kill could not be told from a crash); on a
// filesystem that gives files no generation number (FS_IOC_GETVERSION;
// ext4, XFS and Btrfs do) there is no log either.
//
// The log file is flock(2)ed by its process; a new one is made ready in
// .tmp and linked into .tmp/wal only once locked. New takes over every log
// no live process holds, one process at a time (a lock file,
// .tmp/locks/wal), so that the first to start after a crash sees all of
// them; it does so in every mode, with the log on or off, since a log
// written before holds what it made durable. A process with a log also
// adopts, every minute, the logs of processes that died since (killed and
// not restarted), so that their entries do not stay valid until the next
// crash. It restores the halves whose writer ran in an earlier boot (their
// boot id is not /proc/sys/kernel/random/boot_id) and those flagged for
// rewrite; a half of this boot that is not flagged lost nothing the page
// cache does not hold. All entries for a key, of all logs, are weighed
// together, under the key's lock, the newest (last appended) deciding:
// a missing key gets its body (unless the entry was written in this boot:
// then the object was deleted, and stays so; or someone creates the key
// meanwhile); the very file of that entry (same inode number and
// generation) is written afresh with its body if it does not start with
// it, or with what it reads if its half is flagged; the file of an older
// entry, or another file stamped before the newest entry was appended, is
// an older object a crash brought back and is replaced; another file
// stamped later is a newer object and is kept. Restored files are fsynced
// and renamed into place. New then passes a barrier (the objects may not
// be on disk yet); if it fails, the halves are flagged and New fails.
// Then New gives both halves a new header and keeps one file as its own
// log (others it took over are removed; if its own cannot be made ready,
// on a full disk, the Store runs without a log); Close stops the log's
// use, checkpoints both halves and leaves the file for the next process. After a crash of the machine, an
// object deleted or moved in its last second or so may come back from the
// log: for mailhook, a delivery finished just before the crash is sent
// again, with the same webhook-id (at least once).
//
// A Put with store.PutOptions.Lazy skips the second step in SyncFS mode:
// it is atomic (the first barrier still runs before the rename) and
// becomes durable with the next barrier anyone passes: at the latest when
// the next Put or Delete that passes one returns, or the log's next
// checkpoint (a batch the log makes durable passes none). In SyncFiles
// mode a directory
// fsync would not cover other directories, so Lazy is ignored there.
//
// MoveAppend (store.Mover) appends to an object's file and renames it to
// another key, under the source key's lock, then passes one barrier (in
// SyncFiles mode: fsyncs both directories), unless store.MoveOptions.Lazy
// says it need not in SyncFS mode (the next barrier covers it, as for a
// Lazy Put). The appended bytes are not
// synced on their own: the contract lets a crash cut them. The queue moves
// a delivery record to its final state this way, which costs a rename
// instead of a new file and the unlink of the old one.
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
// comparison before it), never while a body is read or synced. Plain
// Puts, IfMatch Puts and Deletes take the lock, so a compare-and-swap is
// atomic with respect to every other writer, in any process. IfNoneMatch
// needs no lock: renameat2(RENAME_NOREPLACE), or else link(2), fails
// atomically if the key exists (on a filesystem with neither it checks and
// renames under the lock). The lock is never held across a barrier.
package fs
