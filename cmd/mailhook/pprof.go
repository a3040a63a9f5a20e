//go:build pprof

package main

import (
	"net/http"
	_ "net/http/pprof" // registers /debug/pprof/ on http.DefaultServeMux
	"os"
)

// Built with -tags pprof, mailhook serves net/http/pprof on
// MAILHOOK_PPROF_ADDR (default 127.0.0.1:6060) for profiling under load.
// It is never in a release build.
func init() {
	extraVars = append(extraVars, "MAILHOOK_PPROF_ADDR")
	addr := os.Getenv("MAILHOOK_PPROF_ADDR")
	if addr == "" {
		addr = "127.0.0.1:6060"
	}
	go func() { _ = http.ListenAndServe(addr, nil) }()
}
