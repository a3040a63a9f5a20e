//go:build !linux || !(amd64 || arm64)

package fs

import (
	"os"
	"syscall"
	"time"
)

// syncfs is not available here: SyncAuto falls back to SyncFiles.
func syncfs(f *os.File) error {
	return &os.PathError{Op: "syncfs", Path: f.Name(), Err: syscall.ENOSYS}
}

func kernelAtLeast(major, minor int) bool { return false }

func renameNoReplace(oldname, newname string) error {
	return &os.LinkError{Op: "renameat2", Old: oldname, New: newname, Err: syscall.ENOSYS}
}

// Unnamed temporary files are a Linux feature: Puts stage a named file
// here.
func openTmpfile(dir string, _ os.FileMode) (*os.File, error) {
	return nil, &os.PathError{Op: "open O_TMPFILE", Path: dir, Err: syscall.ENOSYS}
}

func linkTmpfile(f *os.File, newname string) error {
	return &os.LinkError{Op: "linkat", Old: "(unnamed)", New: newname, Err: syscall.ENOSYS}
}

func fileGeneration(f *os.File) (uint32, error) {
	return 0, &os.PathError{Op: "ioctl FS_IOC_GETVERSION", Path: f.Name(), Err: syscall.ENOSYS}
}

// setMtime sets the times of the named file to t.
func setMtime(_ *os.File, name string, t time.Time) error { return os.Chtimes(name, t, t) }

func dropCache(*os.File) {}

// fdatasync makes f's data durable (fsync(2) here: fdatasync(2) is not
// everywhere).
func fdatasync(f *os.File) error { return f.Sync() }
