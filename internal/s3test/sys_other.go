//go:build !linux

package s3test

import "os/exec"

func xattrsWork(string) bool { return true }

func detach(*exec.Cmd) {}
