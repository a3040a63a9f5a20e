package main

import (
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// hostReport says how busy the machine was, so that results from a shared
// machine can be judged: the load average before and after the run and the
// CPU time the generator (with its sink) itself used.
type hostReport struct {
	NumCPU         int     `json:"num_cpu"`
	LoadAvgStart   float64 `json:"loadavg_1m_start"` // -1 where /proc/loadavg is unavailable
	LoadAvgEnd     float64 `json:"loadavg_1m_end"`
	GeneratorCPU   float64 `json:"generator_cpu_s"`   // user+system CPU seconds of this process
	GeneratorShare float64 `json:"generator_cpu_pct"` // of one core, over the run
}

func loadAvg1() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return -1
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return -1
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return -1
	}
	return v
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// hostProbe is taken at the start of a run and completed at its end.
type hostProbe struct {
	load  float64
	cpu   time.Duration
	start time.Time
}

func probeHost() hostProbe { return hostProbe{load: loadAvg1(), cpu: cpuTime(), start: time.Now()} }

func (p hostProbe) finish() *hostReport {
	cpu := cpuTime() - p.cpu
	wall := time.Since(p.start)
	r := &hostReport{NumCPU: runtime.NumCPU(), LoadAvgStart: p.load, LoadAvgEnd: loadAvg1(), GeneratorCPU: round3(cpu.Seconds())}
	if wall > 0 {
		r.GeneratorShare = round3(100 * cpu.Seconds() / wall.Seconds())
	}
	return r
}
