//go:build !linux

package dispatch

// procIdentity is "" where there is no /proc to tell a dead owner by.
func procIdentity() string { return "" }

// processGone never knows.
func processGone(string) bool { return false }
