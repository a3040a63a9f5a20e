package dispatch

import (
	"errors"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"sync"
)

// Process identities (queue.LeaseOwner.Proc) on Linux:
//
//	linux/<boot id>/<pid namespace>/<pid>/<start time>
//
// The boot id changes with every boot; the pid namespace is the link
// target of /proc/self/ns/pid, unique among live namespaces; the start
// time, in clock ticks since boot, tells a pid reused by a later process.
// A process that shares the boot and the pid namespace of an identity
// sees the process it names, if alive, at /proc/<pid> with that start
// time: if there is none, or one that started at another time, the owner
// is dead. Anything else (another machine, another container, a /proc
// that cannot be read) proves nothing.

const procPrefix = "linux/"

// self is this process's boot id and pid namespace, read once; both ""
// when /proc cannot be trusted to show this process's own pid namespace
// (a /proc mounted from another namespace shows other pids).
var self = sync.OnceValues(func() (string, string) {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return "", ""
	}
	ns, err := os.Readlink("/proc/self/ns/pid")
	if err != nil {
		return "", ""
	}
	stat, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return "", ""
	}
	pid, _, _ := strings.Cut(string(stat), " ")
	if pid != strconv.Itoa(os.Getpid()) {
		return "", ""
	}
	return strings.TrimSpace(string(b)), ns
})

// procIdentity is this process's identity, or "" when /proc cannot tell.
func procIdentity() string {
	boot, ns := self()
	pid := os.Getpid()
	start, err := startTime(pid)
	if boot == "" || err != nil {
		return ""
	}
	return procPrefix + boot + "/" + ns + "/" + strconv.Itoa(pid) + "/" + start
}

// processGone reports whether the process named by proc has certainly
// exited (see above).
func processGone(proc string) bool {
	rest, ok := strings.CutPrefix(proc, procPrefix)
	if !ok {
		return false
	}
	parts := strings.Split(rest, "/")
	if len(parts) != 4 {
		return false
	}
	boot, ns := self()
	if boot == "" || parts[0] != boot || parts[1] != ns {
		return false
	}
	pid, err := strconv.Atoi(parts[2])
	if err != nil || pid <= 0 {
		return false
	}
	start, err := startTime(pid)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return true
	case err != nil:
		return false
	}
	return start != parts[3]
}

// startTime is field 22 of /proc/<pid>/stat: when the process started,
// in clock ticks since boot.
func startTime(pid int) (string, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return "", err
	}
	// The command name (field 2) is in parentheses and may hold spaces
	// and parentheses: the fields after it start after the last ')'.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return "", errors.New("unreadable stat")
	}
	fields := strings.Fields(string(b[i+1:]))
	const startField = 22 - 3 // fields[0] is field 3 (state)
	if len(fields) <= startField {
		return "", errors.New("unreadable stat")
	}
	return fields[startField], nil
}
