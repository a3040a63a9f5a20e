package fs

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	iofs "io/fs"
	"maps"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/mailhook/mailhook/store"
)

// The log (SyncFS mode; see the package comment, "Log"): a small batch of
// create-only objects is made durable by appending a copy of it to the
// process's log file and fdatasyncing that, instead of by a syncfs(2) of
// the whole filesystem. Its files are placed first, so a syncfs that starts
// after the entry was written covers them: the log is then checkpointed.
const (
	walDir      = ".tmp/wal"                 // under the root: one log file per process
	walHalf     = 16 << 20                   // bytes in each half of a log file
	walHeader   = 512                        // each half starts with a header this long
	walMaxBatch = 256 << 10                  // a batch with more body bytes passes a barrier instead
	walEvery    = time.Second                // checkpoint period while the log is in use
	adoptEvery  = time.Minute                // period of adoptLogs
	walMagic    = "mailhook-wal\x00\x00\x03" // 15 bytes, then the epoch
	entryHead   = 24                         // u32 payload length, u32 CRC-32C of the rest, u64 epoch, u64 append stamp
	headerBody  = 104                        // magic(16) epoch(8) seq(8) flags(8) boot id(64): covered by the header's CRC
	flagRewrite = 1                          // header flag: a barrier failed; see wal.breakLog
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// errLogFull: the active half has no room; the batch passes a barrier.
var errLogFull = errors.New("log full")

// wal is the log of one Store. A log file has two halves; entries are
// appended to the active one. A checkpoint makes the other half active
// (under a new epoch, written in its header, so its old entries no longer
// count) and then passes a barrier, which covers every object of the
// entries of the half it left: that half is clean and may be reused.
type wal struct {
	s     *Store
	f     *os.File
	boot  string
	half  int64         // bytes in a half (walHalf but in tests)
	every time.Duration // checkpoint period (walEvery but in tests)

	mu      sync.Mutex
	active  int       // the half entries go to
	off     int64     // next entry's offset within the active half
	epoch   uint64    // the active half's epoch
	epochs  [2]uint64 // each half's epoch and sequence number, as in its header
	seqs    [2]uint64
	clean   [2]bool   // every object of the half's entries is durable without it
	gen     [2]uint64 // Store.syncErrs when the half was made active
	broken  error     // a write or fdatasync failed: the log is not used again
	flagged bool      // a barrier failed: halves flagged for rewrite (breakLog)
	settled bool      // broken by a failed write, then emptied (settle)
	last    uint64    // highest sequence number given out
	kicked  bool      // a checkpoint was asked for and has not run yet

	syncer *dirSyncer // groups fdatasyncs
	kick   chan struct{}
	stop   chan struct{}
	done   chan struct{}
}

// walObject is one object of an entry read back from a log.
type walObject struct {
	key   string
	ino   uint64 // the inode number of the file the object was written to
	gen   uint32 // and its generation (fileGeneration)
	stamp int64  // when its entry was appended (Unix ns): entries' order
	boot  string // the boot id of the entry's writer
	force bool   // its half is flagged for rewrite (the page cache may lie)
	body  []byte
}

// bootID returns this boot's id (Linux), or "" where there is none: a log
// whose writer shared this boot lost nothing the page cache holds.
func bootID() string {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// takenLog is a dead process's log this Store took over (locked).
type takenLog struct {
	f       *os.File
	path    string
	halfLen int64
	halves  []halfHeader // the valid ones
}

// openWAL takes over the logs no live process holds, restoring from them
// what a crash of the machine may have lost, whatever the mode (a log
// written before a restart with the log off still holds what it made
// durable); then, if use, opens this Store's log: one of them, or a new
// file. If this Store's log cannot be made ready (a full disk), it runs
// without one.
func (s *Store) openWAL(use bool) error {
	dir := filepath.Join(s.root, filepath.FromSlash(walDir))
	if use {
		if err := os.Mkdir(dir, dirMode); err != nil && !errors.Is(err, iofs.ErrExist) {
			return err
		}
	} else if _, err := os.Stat(dir); errors.Is(err, iofs.ErrNotExist) {
		return nil // never had a log
	}
	taken, unlock, err := s.sweepLogs(dir, true)
	if err != nil {
		return err
	}
	defer unlock()
	var mine *os.File
	var minePath string
	var last uint64
	removed := false
	for _, l := range taken {
		for _, hd := range l.halves {
			last = max(last, hd.seq)
		}
		if use && mine == nil && l.halfLen == s.logHalf {
			mine, minePath = l.f, l.path
			continue
		}
		// Another log to spare: nothing in it is needed any more.
		os.Remove(l.path)
		l.f.Close()
		removed = true
	}
	if removed {
		if err := syncDir(dir); err != nil {
			if mine != nil {
				mine.Close()
			}
			return err
		}
	}
	if !use {
		return nil
	}
	if err := s.startLog(dir, mine, last); err != nil && mine != nil {
		// Restored and durable, but its headers still count: remove it
		// while the takeover lock is held, as the others.
		os.Remove(minePath)
		mine.Close()
		return syncDir(dir)
	}
	return nil
}

// startLog makes mine, or a new log file if nil, this Store's log. On
// error the Store has no log; mine is left to the caller.
func (s *Store) startLog(dir string, mine *os.File, last uint64) error {
	if testHookStartLog != nil {
		if err := testHookStartLog(); err != nil {
			return err
		}
	}
	created := mine == nil
	if created {
		f, err := s.createLog(dir, s.logHalf)
		if err != nil {
			return err
		}
		mine = f
	}
	boot := headerBoot(s.bootFn())
	w := &wal{s: s, f: mine, boot: boot, half: s.logHalf, every: s.logEvery, last: last, clean: [2]bool{false, true},
		kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	w.syncer = &dirSyncer{sync: func(string) error { return fdatasync(w.f) }}
	// What the halves held is restored or durable, and must not be
	// restored again after a later crash.
	if err := w.empty(); err != nil {
		if created {
			mine.Close() // its headers may be half written: any takeover restores nothing from it
		}
		return err
	}
	w.epoch = w.epochs[0]
	w.off = walHeader
	w.gen[0] = s.syncErrs.Load()
	s.wal = w
	if w.every > 0 {
		go w.run()
	} else {
		close(w.done) // tests checkpoint by hand
	}
	return nil
}

// testHookStartLog, if set (by tests), runs first in startLog; its error
// is startLog's.
var testHookStartLog func() error

// sweepLogs takes over every log in dir that no live process holds,
// restores what they hold (recoverLogs) and returns them, locked, with the
// function that ends the takeover (the caller first empties or removes
// the logs). One process takes logs over at a time (a lock file), so that
// the first to start after a crash sees all of them: the newest entry for
// a key may be in any. If !wait and another process is taking logs over,
// it returns none.
func (s *Store) sweepLogs(dir string, wait bool) ([]takenLog, func(), error) {
	tl, err := openFile(filepath.Join(s.root, filepath.FromSlash(lockDir), "wal"), os.O_RDONLY|os.O_CREATE, fileMode)
	if err != nil {
		return nil, nil, err
	}
	op := syscall.LOCK_EX
	if !wait {
		op |= syscall.LOCK_NB
	}
	if err := flock(tl, op); err != nil {
		tl.Close()
		if !wait && errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, func() {}, nil
		}
		return nil, nil, err
	}
	unlock := func() { tl.Close() }
	taken, err := s.takeLogs(dir)
	if err == nil {
		err = s.recoverLogs(taken, headerBoot(s.bootFn()))
	}
	if err != nil {
		for _, l := range taken {
			l.f.Close()
		}
		unlock()
		return nil, nil, err
	}
	return taken, unlock, nil
}

// adoptLogs takes over, restores and removes the logs of processes that
// died since this one started (and were not restarted to take them over
// themselves), unless another process is taking logs over: their entries
// must not stay valid until the next crash of the machine.
func (s *Store) adoptLogs() error {
	dir := filepath.Join(s.root, filepath.FromSlash(walDir))
	taken, unlock, err := s.sweepLogs(dir, false)
	if err != nil || len(taken) == 0 {
		return err
	}
	defer unlock()
	for _, l := range taken {
		os.Remove(l.path)
		l.f.Close()
	}
	return syncDir(dir)
}

// generationsWork reports whether files in the root's filesystem have
// generation numbers.
func (s *Store) generationsWork() (bool, error) {
	f, tmp, err := s.createTemp("put-probe-")
	if err != nil {
		return false, err
	}
	defer os.Remove(tmp)
	defer f.Close()
	_, err = fileGeneration(f)
	return err == nil, nil
}

// headerBoot is the boot id as a header holds it: at most 64 bytes (a
// longer one is hashed).
func headerBoot(boot string) string {
	if len(boot) <= 64 {
		return boot
	}
	sum := sha256.Sum256([]byte(boot))
	return hex.EncodeToString(sum[:])
}

// takeLogs locks every log in dir that no live process holds.
func (s *Store) takeLogs(dir string) ([]takenLog, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var taken []takenLog
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		p := filepath.Join(dir, e.Name())
		f, err := openFile(p, os.O_RDWR, 0)
		if err != nil {
			if errors.Is(err, iofs.ErrNotExist) {
				continue // taken and removed by another process
			}
			return taken, err
		}
		if err := flock(f, syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			f.Close()
			if errors.Is(err, syscall.EWOULDBLOCK) {
				continue // its process is alive
			}
			return taken, err
		}
		fi, err := f.Stat()
		if err != nil {
			f.Close()
			return taken, err
		}
		if pi, err := os.Stat(p); err != nil || !os.SameFile(fi, pi) {
			f.Close() // taken over and removed meanwhile by another process
			continue
		}
		l := takenLog{f: f, path: p, halfLen: fi.Size() / 2}
		if l.halves, err = readHalves(f, l.halfLen); err != nil {
			f.Close()
			return taken, err
		}
		taken = append(taken, l)
	}
	return taken, nil
}

// recoverLogs restores what the taken logs hold and a crash may have lost,
// and then passes a barrier: every object they hold is durable without
// them when it returns nil. The halves whose writer ran in an earlier boot
// are restored, and so are those flagged for rewrite (see wal.breakLog);
// a half of this boot that is not flagged lost nothing the page cache
// does not hold. All entries for a key, of all logs, are weighed together
// (see restore). If the barrier fails, the halves are flagged, so that the
// next takeover rewrites them.
func (s *Store) recoverLogs(taken []takenLog, boot string) error {
	gen := s.syncErrs.Load()
	byKey := map[string][]walObject{}
	for _, l := range taken {
		for _, hd := range l.halves {
			flagged := hd.flags&flagRewrite != 0
			if hd.boot == boot && !flagged {
				continue // its writer was killed, not the machine: the page cache holds it all
			}
			half := io.NewSectionReader(l.f, int64(hd.h)*l.halfLen+walHeader, l.halfLen-walHeader)
			err := readEntries(half, hd.epoch, func(objs []walObject) error {
				for _, o := range objs {
					o.body, o.boot, o.force = bytes.Clone(o.body), hd.boot, flagged
					byKey[o.key] = append(byKey[o.key], o)
				}
				return nil
			})
			if err != nil {
				return fmt.Errorf("log %s: %w", l.path, err)
			}
		}
	}
	for _, key := range slices.Sorted(maps.Keys(byKey)) {
		if err := s.restore(byKey[key], boot); err != nil {
			return fmt.Errorf("restoring %s from a log: %w", key, err)
		}
	}
	err := s.flushAll(gen)
	if err == nil {
		return nil
	}
	for _, l := range taken {
		w := &wal{f: l.f, half: l.halfLen}
		for _, hd := range l.halves {
			w.writeHeader(hd.h, hd.epoch, hd.seq, hd.flags|flagRewrite, hd.boot) // best effort: a failing disk
		}
		fdatasync(l.f)
	}
	return err
}

// flushAll makes every change made so far durable: a barrier in SyncFS
// mode; otherwise (at start-up only: logs a process in SyncFS mode left)
// a syncfs(2) of the root's filesystem, or where there is none sync(2),
// which reports no error (restored files and their directories are
// fsynced on their own there, see rewrite).
func (s *Store) flushAll(gen uint64) error {
	if s.mode == SyncFS {
		return s.barrier(gen)
	}
	d, err := os.Open(s.root)
	if err != nil {
		return err
	}
	defer d.Close()
	err = syncfs(d)
	if errors.Is(err, syscall.ENOSYS) || errors.Is(err, syscall.EINVAL) {
		syscall.Sync()
		return nil
	}
	return err
}

// repair rewrites, at Close, the objects of the halves breakLog flagged,
// then passes a barrier; if both succeed the log is emptied.
func (w *wal) repair() error {
	halves, err := readHalves(w.f, w.half)
	if err != nil {
		return err
	}
	if err := w.s.recoverLogs([]takenLog{{f: w.f, path: w.f.Name(), halfLen: w.half, halves: halves}}, w.boot); err != nil {
		return err
	}
	return w.empty()
}

// empty gives both halves a new header, durably: nothing the log held
// counts any more.
func (w *wal) empty() error {
	err := errors.Join(w.writeHeader(0, newEpoch(), w.nextSeq(), 0, w.boot), w.writeHeader(1, newEpoch(), w.nextSeq(), 0, w.boot))
	if err == nil {
		err = fdatasync(w.f)
	}
	return err
}

// createLog creates a new log file in dir, locked, two halves long (a
// sparse file: the first round through it allocates its blocks).
func (s *Store) createLog(dir string, half int64) (*os.File, error) {
	for range 100 {
		// Made ready under a temporary name (which New removes if a
		// crash leaves it), so that a process taking over logs never
		// finds one not yet locked.
		name := strconv.FormatUint(rand.Uint64(), 36)
		p := filepath.Join(s.root, tmpDir, "put-log-"+name)
		f, err := openFile(p, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, iofs.ErrExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if err := flock(f, syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			f.Close()
			os.Remove(p)
			return nil, err
		}
		err = f.Truncate(2 * half)
		if err == nil {
			err = f.Sync()
		}
		if err == nil {
			err = unwrapSyscall(s.linkFn(p, filepath.Join(dir, name)))
			if noHardLinks(err) {
				err = unwrapSyscall(s.renameFn(p, filepath.Join(dir, name)))
			}
			if err == syscall.EEXIST {
				f.Close()
				os.Remove(p)
				continue
			}
		}
		if err == nil {
			os.Remove(p)
			err = syncDir(dir)
		}
		if err != nil {
			f.Close()
			os.Remove(p)
			return nil, err
		}
		return f, nil
	}
	return nil, errors.New("cannot find a free log file name")
}

// newEpoch returns a random epoch for a half: entries count only under
// their half's epoch, so entries a crash left behind a header it lost
// never count again (a counter or the clock could give their epoch out
// again).
func newEpoch() uint64 {
	for {
		if e := rand.Uint64(); e != 0 {
			return e
		}
	}
}

// nextSeq returns a sequence number higher than any this log has used:
// halves are restored in its order.
func (w *wal) nextSeq() uint64 {
	w.last++
	return w.last
}

// writeHeader starts half h afresh under epoch and seq: entries of other
// epochs that follow are ignored. boot is the writer's boot id, or "" for
// a half whose objects must be restored even in this boot (see
// breakLog). Not synced: the fdatasync of the first entry written after
// it makes it durable too.
func (w *wal) writeHeader(h int, epoch, seq, flags uint64, boot string) error {
	var b [walHeader]byte
	copy(b[:], walMagic)
	binary.LittleEndian.PutUint64(b[16:], epoch)
	binary.LittleEndian.PutUint64(b[24:], seq)
	binary.LittleEndian.PutUint64(b[32:], flags)
	copy(b[40:104], boot)
	binary.LittleEndian.PutUint32(b[headerBody:], crc32.Checksum(b[:headerBody], castagnoli))
	if _, err := w.f.WriteAt(b[:], int64(h)*w.half); err != nil {
		return err
	}
	w.epochs[h], w.seqs[h] = epoch, seq
	return nil
}

// halfHeader is a half's header as read back.
type halfHeader struct {
	h                 int
	epoch, seq, flags uint64
	boot              string
}

// readHalves returns the valid headers of a log file whose halves are
// halfLen long.
func readHalves(f *os.File, halfLen int64) ([]halfHeader, error) {
	if halfLen <= walHeader {
		return nil, nil
	}
	var halves []halfHeader
	for h := range 2 {
		hd, ok, err := readHeader(f, h, halfLen)
		if err != nil {
			return nil, err
		}
		if ok {
			halves = append(halves, hd)
		}
	}
	return halves, nil
}

// readHeader returns half h's header; ok is false for a half without a
// valid one (never written).
func readHeader(f *os.File, h int, half int64) (hd halfHeader, ok bool, err error) {
	var b [headerBody + 4]byte
	if _, err := f.ReadAt(b[:], int64(h)*half); err != nil {
		if err == io.EOF {
			return halfHeader{}, false, nil
		}
		return halfHeader{}, false, err
	}
	if string(b[:len(walMagic)]) != walMagic || binary.LittleEndian.Uint32(b[headerBody:]) != crc32.Checksum(b[:headerBody], castagnoli) {
		return halfHeader{}, false, nil
	}
	return halfHeader{h: h, epoch: binary.LittleEndian.Uint64(b[16:]), seq: binary.LittleEndian.Uint64(b[24:]),
		flags: binary.LittleEndian.Uint64(b[32:]), boot: string(bytes.TrimRight(b[40:104], "\x00"))}, true, nil
}

// readEntries calls fn with the objects of each entry of epoch in r, in
// order, up to the first that is torn, of another epoch, or missing.
func readEntries(r io.Reader, epoch uint64, fn func([]walObject) error) error {
	br := newEntryReader(r)
	for {
		payload, stamp, ok, err := br.next(epoch)
		if err != nil || !ok {
			return err
		}
		objs, ok := decodePayload(payload)
		if !ok {
			return nil // a CRC that matched garbage: stop as if torn
		}
		for i := range objs {
			objs[i].stamp = stamp
		}
		if err := fn(objs); err != nil {
			return err
		}
	}
}

type entryReader struct {
	r   io.Reader
	buf []byte
}

func newEntryReader(r io.Reader) *entryReader {
	return &entryReader{r: bufio.NewReaderSize(r, 64<<10)}
}

// next reads the next entry's payload; ok is false at the end of the log
// (a zero length, a torn or stale entry, or the end of the half).
func (e *entryReader) next(epoch uint64) (payload []byte, stamp int64, ok bool, err error) {
	var head [entryHead]byte
	if _, err := io.ReadFull(e.r, head[:]); err != nil {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return nil, 0, false, nil
		}
		return nil, 0, false, err
	}
	n := binary.LittleEndian.Uint32(head[0:])
	if n == 0 || n > 1<<30 || binary.LittleEndian.Uint64(head[8:]) != epoch {
		return nil, 0, false, nil
	}
	if cap(e.buf) < int(n) {
		e.buf = make([]byte, n)
	}
	e.buf = e.buf[:n]
	if _, err := io.ReadFull(e.r, e.buf); err != nil {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return nil, 0, false, nil
		}
		return nil, 0, false, err
	}
	c := crc32.Update(crc32.Checksum(head[8:], castagnoli), castagnoli, e.buf)
	if c != binary.LittleEndian.Uint32(head[4:]) {
		return nil, 0, false, nil
	}
	return e.buf, int64(binary.LittleEndian.Uint64(head[16:])), true, nil
}

// appendObject adds one object to an entry's payload: u16 key length, key,
// u64 inode number, u32 inode generation, u32 body length, body.
func appendObject(payload []byte, key string, ino uint64, gen uint32, body []byte) []byte {
	payload = binary.LittleEndian.AppendUint16(payload, uint16(len(key)))
	payload = append(payload, key...)
	payload = binary.LittleEndian.AppendUint64(payload, ino)
	payload = binary.LittleEndian.AppendUint32(payload, gen)
	payload = binary.LittleEndian.AppendUint32(payload, uint32(len(body)))
	return append(payload, body...)
}

// decodePayload splits an entry's payload into its objects (whose bodies
// share payload); ok is false if it is malformed.
func decodePayload(p []byte) (objs []walObject, ok bool) {
	for len(p) > 0 {
		if len(p) < 2 {
			return nil, false
		}
		kn := int(binary.LittleEndian.Uint16(p))
		p = p[2:]
		if len(p) < kn+16 {
			return nil, false
		}
		key := string(p[:kn])
		p = p[kn:]
		ino := binary.LittleEndian.Uint64(p)
		gen := binary.LittleEndian.Uint32(p[8:])
		bn := binary.LittleEndian.Uint32(p[12:])
		p = p[16:]
		if uint64(len(p)) < uint64(bn) {
			return nil, false
		}
		objs = append(objs, walObject{key: key, ino: ino, gen: gen, body: p[:bn:bn]})
		p = p[bn:]
	}
	return objs, len(objs) > 0
}

// restore puts back, under the key's lock, what a crash of the machine
// (or a write-back error) took from the key of the log entries list (in
// any order; the one appended last is the newest). boot is this boot's
// id. The file under the key is:
//   - missing: given the newest entry's body, unless that entry was
//     written in this boot (no crash since: the object was deleted) or
//     someone creates the key meanwhile;
//   - the very file of the newest entry (inode number and generation):
//     written afresh with the logged body if it does not start with it,
//     or with what it reads if the entry's half is flagged for rewrite;
//     kept otherwise (it may have grown by appends);
//   - the file of an older entry, or another file stamped before the
//     newest entry was appended: an older object a crash brought back,
//     replaced by the newest body (not in this boot: files do not come
//     back without a crash);
//   - another file stamped later: a newer object, kept.
//
// New files are synced; the caller passes a barrier for their names.
func (s *Store) restore(list []walObject, boot string) error {
	newest := slices.MaxFunc(list, func(a, b walObject) int { return cmp.Compare(a.stamp, b.stamp) })
	if store.ValidKey(newest.key) != nil {
		return nil // not an object key: nothing a log could have written
	}
	unlock, err := s.locks.lock(context.Background(), newest.key)
	if err != nil {
		return err
	}
	defer unlock()
	p := s.path(newest.key)
	crashed := newest.boot != boot
	f, err := openFile(p, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	switch {
	case err == nil:
		body, err := restored(f, list, newest, crashed)
		f.Close()
		if err != nil || body == nil {
			return err
		}
		return s.rewrite(newest.key, p, body, true)
	case errors.Is(err, syscall.ENOTDIR) || errors.Is(err, syscall.ELOOP):
		return nil // a parent is an object now, or a link: the key names none
	case !errors.Is(err, iofs.ErrNotExist):
		return err
	case !crashed:
		return nil // deleted since
	}
	return s.rewrite(newest.key, p, newest.body, false)
}

// restored returns what the file f under the key of list must hold
// instead (nil: it is fine as it is); see restore.
func restored(f *os.File, list []walObject, newest walObject, crashed bool) ([]byte, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, nil // not an object any more
	}
	g, err := fileGeneration(f)
	if err != nil {
		return nil, err
	}
	very := func(o walObject) bool { return inode(fi) == o.ino && g == o.gen }
	switch {
	case very(newest):
		cur, err := io.ReadAll(f)
		switch {
		case err != nil || !bytes.HasPrefix(cur, newest.body):
			return newest.body, nil // a read error: what the log holds is sure
		case newest.force:
			return cur, nil
		}
		return nil, nil
	case !crashed:
		return nil, nil
	case slices.ContainsFunc(list, very) || fi.ModTime().UnixNano() <= newest.stamp:
		return newest.body, nil
	}
	return nil, nil
}

// rewrite stores body under key (at p) afresh: a new file, synced, renamed
// into place; if not replace, only if the key is still missing.
func (s *Store) rewrite(key, p string, body []byte, replace bool) error {
	if err := s.ensureDir(path.Dir(key)); err != nil {
		if errors.Is(err, syscall.ENOTDIR) {
			return nil // a parent is an object now: the key names none
		}
		return err
	}
	f, tmp, err := s.createTemp("put-")
	if err != nil {
		return err
	}
	defer os.Remove(tmp) // gone once renamed; left by a link
	_, err = f.Write(body)
	if err == nil {
		err = setMtime(f, tmp, s.stamp())
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if replace {
		if err := s.renameFn(tmp, p); err != nil {
			return err
		}
		return s.syncRestored(p)
	}
	// Create-only, as a Put with IfNoneMatch, under the lock restore holds.
	_, err = s.commit(context.Background(), tmp, key, store.PutOptions{IfNoneMatch: true}, true)
	if errors.Is(err, store.ErrPrecondition) || errors.Is(err, syscall.EISDIR) {
		return nil // created meanwhile: newer
	}
	if err != nil {
		return err
	}
	return s.syncRestored(p)
}

// syncRestored makes the name of a restored file durable outside SyncFS
// mode (in SyncFS mode the barrier after the restore does).
func (s *Store) syncRestored(p string) error {
	if s.mode == SyncFS {
		return nil
	}
	return syncDir(filepath.Dir(p))
}

// logged makes the placed objects of reqs durable through the log, if it
// can (every body copied in caps), and reports whether it did.
func (s *Store) logged(reqs []store.PutRequest, tmps []*staged, caps []capture) bool {
	n := entryHead
	for i, c := range caps {
		if c.over || tmps[i].noGen {
			return false
		}
		n += 18 + len(reqs[i].Key) + len(c.buf)
	}
	entry := make([]byte, entryHead, n)
	for i, c := range caps {
		entry = appendObject(entry, reqs[i].Key, tmps[i].ino, tmps[i].gen, c.buf)
	}
	return s.wal.commit(entry) == nil
}

// commit appends entry (entryHead bytes of room, then the payload) to the
// log and returns once it is durable. An error says nothing is known: the
// caller passes a barrier instead.
func (w *wal) commit(entry []byte) error {
	n := int64(len(entry))
	w.mu.Lock()
	if w.broken != nil {
		w.mu.Unlock()
		return w.broken
	}
	if w.off+n > w.half {
		w.askCheckpoint()
		w.mu.Unlock()
		return errLogFull
	}
	binary.LittleEndian.PutUint32(entry[0:], uint32(n-entryHead))
	binary.LittleEndian.PutUint64(entry[8:], w.epoch)
	// Stamped under w.mu, after its objects were placed: the order of
	// the stamps is the order of the placements (across processes, as far
	// as their clocks agree).
	binary.LittleEndian.PutUint64(entry[16:], uint64(w.s.stamp().UnixNano()))
	binary.LittleEndian.PutUint32(entry[4:], crc32.Checksum(entry[8:], castagnoli))
	_, err := w.f.WriteAt(entry, int64(w.active)*w.half+w.off)
	if err != nil {
		// The half may now hold a torn entry before later ones: never
		// write to this log again.
		w.broken = err
		w.mu.Unlock()
		return err
	}
	w.off += n
	if w.off-walHeader > (w.half-walHeader)/2 {
		w.askCheckpoint()
	}
	w.mu.Unlock()
	if err := w.syncer.syncNow(); err != nil {
		w.mu.Lock()
		w.broken = err
		w.mu.Unlock()
		return err
	}
	return nil
}

// askCheckpoint wakes the checkpointer early (w.mu held).
func (w *wal) askCheckpoint() {
	if w.kicked {
		return
	}
	w.kicked = true
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// run checkpoints the log every walEvery while it is in use, and whenever
// a half fills up.
func (w *wal) run() {
	defer close(w.done)
	t := time.NewTicker(w.every)
	defer t.Stop()
	adopted := time.Now()
	for {
		select {
		case <-w.stop:
			return
		case <-t.C:
		case <-w.kick:
		}
		w.checkpoint() // a failure leaves the half unclean: retried next time
		if time.Since(adopted) >= adoptEvery {
			w.s.adoptLogs() // retried next time
			adopted = time.Now()
		}
	}
}

// checkpoint makes the other half active, if the active one holds any
// entry, and passes a barrier so that the entries of the half it left are
// no longer needed.
func (w *wal) checkpoint() error {
	w.mu.Lock()
	w.kicked = false
	if w.broken != nil {
		settle := !w.flagged && !w.settled
		w.mu.Unlock()
		if settle {
			return w.settle()
		}
		return nil
	}
	if w.off == walHeader {
		w.mu.Unlock()
		return nil
	}
	other := 1 - w.active
	if !w.clean[other] {
		w.mu.Unlock()
		return errors.New("log: no clean half") // cannot happen: a failed barrier breaks the log
	}
	epoch := newEpoch()
	if err := w.writeHeader(other, epoch, w.nextSeq(), 0, w.boot); err != nil {
		w.broken = err
		w.mu.Unlock()
		return err
	}
	left, gen := w.active, w.gen[w.active]
	w.active, w.off, w.epoch, w.clean[other] = other, walHeader, epoch, false
	w.gen[other] = w.s.syncErrs.Load()
	w.mu.Unlock()
	// Every entry of the half left was written after its objects were
	// placed, and before now: a barrier starting now covers them all,
	// unless a syncfs failed since the half was made active (a PutAll
	// that saw one before it returned passed a barrier of its own, and
	// failed). Then the kernel may have dropped their pages: the half is
	// kept, marked for a restore by whoever takes the log over, and the
	// log is no longer used.
	if err := w.barrierOrBreak(gen); err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.clean[left] = true
	// A new epoch empties the half: after a crash of the machine its
	// entries are not restored any more (if this header is durable by then).
	if err := w.writeHeader(left, newEpoch(), w.nextSeq(), 0, w.boot); err != nil {
		w.broken = err
		return err
	}
	return nil
}

// close checkpoints both halves, so that nothing in the log is needed,
// and releases it. The file stays for the next process to take over.
func (w *wal) close() error {
	close(w.stop)
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	var err error
	switch {
	case w.flagged:
		err = w.repair()
	case w.broken != nil && !w.settled:
		w.mu.Unlock()
		err = w.settle()
		w.mu.Lock()
	case w.broken == nil:
		gen := w.gen[w.active] // the other half is clean
		w.broken = errClosed   // a batch arriving now passes a barrier itself
		w.mu.Unlock()
		err = w.barrierOrBreak(gen)
		w.mu.Lock()
		if err == nil {
			err = w.empty()
		}
	}
	w.broken = errClosed
	return errors.Join(err, w.f.Close())
}

// errClosed: the Store is closing; batches pass barriers.
var errClosed = errors.New("store closed")

// settle empties a log broken by a failed write or fdatasync (not by a
// failed barrier: see breakLog) once a barrier covers what its halves
// hold; otherwise their entries would count until the next crash of the
// machine. The batches acknowledged through it were placed before the
// break, so before the barrier starts.
func (w *wal) settle() error {
	w.mu.Lock()
	gen := w.gen[w.active] // the other half is clean: checkpoints run one at a time
	w.mu.Unlock()
	if err := w.barrierOrBreak(gen); err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.flagged {
		return nil // broken again meanwhile: Close repairs
	}
	err := w.empty()
	w.settled = err == nil
	return err
}

// barrierOrBreak passes a barrier for gen; if it fails, breakLog.
func (w *wal) barrierOrBreak(gen uint64) error {
	err := w.s.barrier(gen)
	if err != nil {
		w.mu.Lock()
		w.breakLog(err)
		w.mu.Unlock()
	}
	return err
}

// breakLog stops the use of the log after a failed barrier (w.mu held).
// The kernel may have dropped pages of objects only the log still holds
// (it keeps such pages in its cache, clean, so reading them back shows
// data the disk lacks): the halves that are not clean are flagged for
// rewrite, and Close, or whoever takes the log over, writes their files
// afresh from what they read and the log holds (see repair).
func (w *wal) breakLog(err error) {
	w.broken, w.flagged = err, true
	for h := range 2 {
		if !w.clean[h] {
			w.writeHeader(h, w.epochs[h], w.seqs[h], flagRewrite, w.boot) // best effort: a failing disk
		}
	}
	fdatasync(w.f)
}

// capture is a Put body that keeps a copy of what it reads, up to
// walMaxBatch bytes shared by a batch (*left); past that it drops its copy.
type capture struct {
	r    io.Reader
	buf  []byte
	left *int
	over bool
}

func (c *capture) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if !c.over && n > 0 {
		if n > *c.left {
			c.over, c.buf = true, nil
		} else {
			*c.left -= n
			c.buf = append(c.buf, p[:n]...)
		}
	}
	return n, err
}
