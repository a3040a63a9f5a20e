package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"strconv"
	"sync/atomic"
	"time"
)

// rssSampler follows a process's resident memory from /proc/PID/status
// (Linux only): VmRSS every interval, and VmHWM (the kernel's own peak
// since the process started) at the end.
type rssSampler struct {
	pid      int
	peakKB   atomic.Int64
	samples  atomic.Int64
	stopped  chan struct{}
	lastErr  atomic.Value // string
	cancel   context.CancelFunc
	interval time.Duration
}

// rssReport is the server's memory as the JSON line reports it.
type rssReport struct {
	PID           int    `json:"pid"`
	VmHWMKB       int64  `json:"vm_hwm_kb"`       // peak RSS since the process started (kernel)
	VmRSSKB       int64  `json:"vm_rss_kb"`       // RSS at the end of the run
	PeakSampledKB int64  `json:"peak_rss_kb"`     // highest VmRSS seen every 100 ms during the run
	Samples       int64  `json:"samples"`         // how many samples that peak is from
	Error         string `json:"error,omitempty"` // why some figure is missing
}

func startRSS(pid int, interval time.Duration) *rssSampler {
	ctx, cancel := context.WithCancel(context.Background())
	s := &rssSampler{pid: pid, stopped: make(chan struct{}), cancel: cancel, interval: interval}
	go func() {
		defer close(s.stopped)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			s.sample()
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return s
}

func (s *rssSampler) sample() (rss, hwm int64) {
	rss, hwm, err := readStatus(s.pid)
	if err != nil {
		s.lastErr.Store(err.Error())
		return 0, 0
	}
	s.samples.Add(1)
	for {
		p := s.peakKB.Load()
		if rss <= p || s.peakKB.CompareAndSwap(p, rss) {
			break
		}
	}
	return rss, hwm
}

// stop ends sampling and takes the final reading.
func (s *rssSampler) stop() *rssReport {
	s.cancel()
	<-s.stopped
	rss, hwm := s.sample()
	r := &rssReport{PID: s.pid, VmHWMKB: hwm, VmRSSKB: rss, PeakSampledKB: s.peakKB.Load(), Samples: s.samples.Load()}
	if e, ok := s.lastErr.Load().(string); ok && (rss == 0 || r.Samples == 0) {
		r.Error = e
	}
	return r
}

// readStatus returns VmRSS and VmHWM of pid, in kB.
func readStatus(pid int) (rss, hwm int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	return parseStatus(b)
}

func parseStatus(b []byte) (rss, hwm int64, err error) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	found := 0
	for sc.Scan() {
		line := sc.Bytes()
		var dst *int64
		switch {
		case bytes.HasPrefix(line, []byte("VmRSS:")):
			dst = &rss
		case bytes.HasPrefix(line, []byte("VmHWM:")):
			dst = &hwm
		default:
			continue
		}
		f := bytes.Fields(line)
		if len(f) < 2 {
			return 0, 0, fmt.Errorf("bad status line %q", line)
		}
		v, err := strconv.ParseInt(string(f[1]), 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("bad status line %q", line)
		}
		*dst = v
		found++
	}
	if found < 2 {
		return 0, 0, fmt.Errorf("no VmRSS/VmHWM in /proc status (a kernel thread or not Linux?)")
	}
	return rss, hwm, nil
}
