package s3test

import (
	"errors"
	"os/exec"
	"path/filepath"
	"syscall"
)

// xattrsWork reports whether dir's file system keeps user extended
// attributes, where versitygw's posix backend stores ETags and metadata.
func xattrsWork(dir string) bool {
	err := syscall.Setxattr(dir, "user.mailhook-probe", []byte("1"), 0)
	if errors.Is(err, syscall.ENOTSUP) || errors.Is(err, syscall.EPERM) {
		return false
	}
	_ = syscall.Removexattr(filepath.Clean(dir), "user.mailhook-probe")
	return err == nil
}

// detach makes sure the server dies with the test binary.
func detach(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
