package dispatch

import (
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestProcessGone(t *testing.T) {
	me := procIdentity()
	if me == "" {
		t.Skip("no readable /proc here")
	}
	if processGone(me) {
		t.Fatalf("this process (%s) judged gone", me)
	}

	// A child: alive, then reaped.
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	start, err := startTime(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	boot, ns := self()
	child := procPrefix + boot + "/" + ns + "/" + strconv.Itoa(cmd.Process.Pid) + "/" + start
	if processGone(child) {
		t.Errorf("a running child judged gone")
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	if !processGone(child) {
		t.Errorf("a child killed and reaped judged alive")
	}

	parts := strings.Split(strings.TrimPrefix(me, procPrefix), "/")
	pid := strconv.Itoa(os.Getpid())
	for _, tc := range []struct {
		name string
		proc string
		gone bool
	}{
		{"a reused pid (same pid, other start time)", procPrefix + parts[0] + "/" + parts[1] + "/" + pid + "/1", true},
		{"another boot", procPrefix + "00000000-0000-0000-0000-000000000000/" + parts[1] + "/999999999/1", false},
		{"another pid namespace", procPrefix + parts[0] + "/pid:[1]/999999999/1", false},
		{"empty", "", false},
		{"another system", "darwin/x/y/1/2", false},
		{"malformed", procPrefix + "a/b/c", false},
		{"bad pid", procPrefix + parts[0] + "/" + parts[1] + "/-1/1", false},
	} {
		if got := processGone(tc.proc); got != tc.gone {
			t.Errorf("%s: processGone(%q) = %v, want %v", tc.name, tc.proc, got, tc.gone)
		}
	}
}

// The owner's identity is this process's, and is never judged gone by its
// own dispatcher; a dead one is, from when it was first found dead.
func TestOwnerGoneAt(t *testing.T) {
	o := NewOwner()
	if o.Proc == "" {
		t.Skip("no readable /proc here")
	}
	clock := newFakeClock()
	d := &Dispatcher{owner: o, log: slog.New(slog.DiscardHandler), cfg: Config{Now: clock.Now}}
	for _, p := range []string{o.Proc, ""} {
		if _, ok := d.ownerGoneAt(p); ok {
			t.Errorf("%q judged gone", p)
		}
	}
	boot, ns := self()
	dead := procPrefix + boot + "/" + ns + "/" + strconv.Itoa(os.Getpid()) + "/1"
	found := clock.Now()
	for i := range 2 {
		at, ok := d.ownerGoneAt(dead)
		if !ok || !at.Equal(found) {
			t.Errorf("call %d: ownerGoneAt = %v, %v; want %v, true (first found)", i+1, at, ok, found)
		}
		clock.Advance(time.Second)
	}
}
