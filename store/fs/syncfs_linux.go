//go:build amd64 || arm64

package fs

import (
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"
)

// syncfs calls syncfs(2) on the filesystem holding f.
func syncfs(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	err = rc.Control(func(fd uintptr) {
		for {
			_, _, errno := syscall.Syscall(sysSyncfs, fd, 0, 0)
			if errno != syscall.EINTR {
				if errno != 0 {
					serr = errno
				}
				return
			}
		}
	})
	if err != nil {
		return err
	}
	if serr != nil {
		return &os.PathError{Op: "syncfs", Path: f.Name(), Err: serr}
	}
	return nil
}

// kernelAtLeast reports whether the running Linux kernel is at least
// major.minor. Before 5.8, syncfs(2) did not report write-back errors, so
// a failed write could go unnoticed: SyncAuto does not use it there.
func kernelAtLeast(major, minor int) bool {
	var u syscall.Utsname
	if err := syscall.Uname(&u); err != nil {
		return false
	}
	var b strings.Builder
	for _, c := range u.Release {
		if c == 0 {
			break
		}
		b.WriteByte(byte(c))
	}
	parts := strings.SplitN(b.String(), ".", 3)
	if len(parts) < 2 {
		return false
	}
	ma, err1 := strconv.Atoi(parts[0])
	mi, err2 := strconv.Atoi(strings.TrimFunc(parts[1], func(r rune) bool { return r < '0' || r > '9' }))
	if err1 != nil || err2 != nil {
		return false
	}
	return ma > major || (ma == major && mi >= minor)
}

// renameNoReplace renames oldname to newname unless newname exists
// (renameat2(2) with RENAME_NOREPLACE).
func renameNoReplace(oldname, newname string) error {
	const renameNoReplaceFlag = 1
	if err := twoPaths(sysRenameat2, oldname, newname, renameNoReplaceFlag); err != nil {
		return &os.LinkError{Op: "renameat2", Old: oldname, New: newname, Err: err}
	}
	return nil
}

// twoPaths makes the system call trap(AT_FDCWD, from, AT_FDCWD, to,
// flags), as renameat2 and linkat take them, retrying when interrupted.
// The error is the errno or a path's conversion error.
func twoPaths(trap uintptr, from, to string, flags uintptr) error {
	f, err := syscall.BytePtrFromString(from)
	if err != nil {
		return err
	}
	t, err := syscall.BytePtrFromString(to)
	if err != nil {
		return err
	}
	atFDCWD := -100 // AT_FDCWD: paths are absolute anyway
	for {
		_, _, errno := syscall.Syscall6(trap, uintptr(atFDCWD), uintptr(unsafe.Pointer(f)),
			uintptr(atFDCWD), uintptr(unsafe.Pointer(t)), flags, 0)
		switch errno {
		case 0:
			return nil
		case syscall.EINTR:
			continue
		}
		return errno
	}
}

// oTmpfile is O_TMPFILE (with O_DIRECTORY, as the kernel defines it).
const oTmpfile = 0x400000 | syscall.O_DIRECTORY

// openTmpfile creates an unnamed regular file on the filesystem of dir
// (open(2) with O_TMPFILE). It is gone when closed unless linked first.
func openTmpfile(dir string, perm os.FileMode) (*os.File, error) {
	return openFile(dir, oTmpfile|syscall.O_WRONLY, perm)
}

// linkTmpfile gives the unnamed file f the name newname, failing with
// EEXIST if it exists. It links /proc/self/fd/N with AT_SYMLINK_FOLLOW,
// which needs no privilege (AT_EMPTY_PATH would need CAP_DAC_READ_SEARCH).
func linkTmpfile(f *os.File, newname string) error {
	const atSymlinkFollow = 0x400
	if err := twoPaths(syscall.SYS_LINKAT, "/proc/self/fd/"+strconv.Itoa(int(f.Fd())), newname, atSymlinkFollow); err != nil {
		return &os.LinkError{Op: "linkat", Old: "(unnamed)", New: newname, Err: err}
	}
	return nil
}

// fileGeneration returns the generation number the filesystem gave f's
// inode when it allocated it (FS_IOC_GETVERSION; ext4, XFS and Btrfs have
// one; an error where there is none). With the inode number it tells a
// file from a later one that reused the number.
func fileGeneration(f *os.File) (uint32, error) {
	const fsIocGetversion = 0x80087601 // _IOR('v', 1, long)
	var v uint64
	for {
		_, _, errno := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), fsIocGetversion, uintptr(unsafe.Pointer(&v)))
		switch errno {
		case 0:
			return uint32(v), nil // the kernel writes an int
		case syscall.EINTR:
			continue
		}
		return 0, &os.PathError{Op: "ioctl FS_IOC_GETVERSION", Path: f.Name(), Err: errno}
	}
}

// setMtime sets f's access and modification times to t, to the
// nanosecond (utimensat(2) on the descriptor: f may have no name).
func setMtime(f *os.File, _ string, t time.Time) error {
	ts := [2]syscall.Timespec{syscall.NsecToTimespec(t.UnixNano()), syscall.NsecToTimespec(t.UnixNano())}
	for {
		_, _, errno := syscall.Syscall6(syscall.SYS_UTIMENSAT, f.Fd(), 0, uintptr(unsafe.Pointer(&ts[0])), 0, 0, 0)
		switch errno {
		case 0:
			return nil
		case syscall.EINTR:
			continue
		}
		return &os.PathError{Op: "utimensat", Path: f.Name(), Err: errno}
	}
}

// dropCache asks the kernel to drop f's cached pages (posix_fadvise(2)
// POSIX_FADV_DONTNEED). Only clean pages go (dirty ones are written back
// sooner, not lost), and nothing a reader sees changes: an error is
// ignored.
func dropCache(f *os.File) {
	const fadvDontneed = 4
	_, _, _ = syscall.Syscall6(syscall.SYS_FADVISE64, f.Fd(), 0, 0, fadvDontneed, 0, 0)
}

// fdatasync makes f's data durable.
func fdatasync(f *os.File) error {
	for {
		err := syscall.Fdatasync(int(f.Fd()))
		if err != syscall.EINTR {
			if err != nil {
				return &os.PathError{Op: "fdatasync", Path: f.Name(), Err: err}
			}
			return nil
		}
	}
}
