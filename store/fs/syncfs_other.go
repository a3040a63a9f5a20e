//go:build !linux || !(amd64 || arm64)

package fs

import (
	"os"
	"syscall"
)

// syncfs is not available here: SyncAuto falls back to SyncFiles.
func syncfs(f *os.File) error {
	return &os.PathError{Op: "syncfs", Path: f.Name(), Err: syscall.ENOSYS}
}

func kernelAtLeast(major, minor int) bool { return false }

func renameNoReplace(oldname, newname string) error {
	return &os.LinkError{Op: "renameat2", Old: oldname, New: newname, Err: syscall.ENOSYS}
}
