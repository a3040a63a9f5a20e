package main

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
)

// probeServer answers /healthz and /readyz with the given codes.
func probeServer(t *testing.T, healthz, readyz int) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(healthz)
		w.Write([]byte(`{"status":"ok"}`))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(readyz)
		w.Write([]byte(`{"store":"bucket unreachable"}`))
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

// envOnly is a lookup holding only vars; it fails the test when asked for
// anything but MAILHOOK_HTTP_ADDR, since the probe must not depend on the
// rest of the configuration.
func envOnly(t *testing.T, vars map[string]string) func(string) (string, bool) {
	t.Helper()
	return func(name string) (string, bool) {
		if name != "MAILHOOK_HTTP_ADDR" {
			t.Errorf("healthcheck looked up %s; it must read only MAILHOOK_HTTP_ADDR", name)
		}
		v, ok := vars[name]
		return v, ok
	}
}

// refusedAddr returns a loopback address nothing listens on.
func refusedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestHealthcheck(t *testing.T) {
	up := probeServer(t, http.StatusOK, http.StatusOK)
	draining := probeServer(t, http.StatusOK, http.StatusServiceUnavailable)
	down := probeServer(t, http.StatusServiceUnavailable, http.StatusServiceUnavailable)

	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		wantErr string // "" = healthy
		wantOut string
	}{
		{"200 via HTTP_ADDR port", nil, map[string]string{"MAILHOOK_HTTP_ADDR": portOf(up)}, "", "/healthz: 200 OK"},
		{"200 via HTTP_ADDR host:port", nil, map[string]string{"MAILHOOK_HTTP_ADDR": up.Listener.Addr().String()}, "", "200 OK"},
		{"200 via 0.0.0.0", nil, map[string]string{"MAILHOOK_HTTP_ADDR": "0.0.0.0" + portOf(up)}, "", "200 OK"},
		{"ready 200", []string{"--ready"}, map[string]string{"MAILHOOK_HTTP_ADDR": portOf(up)}, "", "/readyz: 200 OK"},
		{"alive while draining", nil, map[string]string{"MAILHOOK_HTTP_ADDR": portOf(draining)}, "", "200 OK"},
		{"not ready while draining", []string{"--ready"}, map[string]string{"MAILHOOK_HTTP_ADDR": portOf(draining)}, "503 Service Unavailable: {\"store\":\"bucket unreachable\"}", ""},
		{"503", nil, map[string]string{"MAILHOOK_HTTP_ADDR": portOf(down)}, "503 Service Unavailable", ""},
		{"--url 200", []string{"--url", up.URL + "/healthz"}, nil, "", "200 OK"},
		{"--url 503", []string{"--url=" + down.URL + "/healthz"}, nil, "503", ""},
		{"--url 404", []string{"--url", up.URL + "/nope"}, nil, "404 Not Found", ""},
		{"connection refused", nil, map[string]string{"MAILHOOK_HTTP_ADDR": refusedAddr(t)}, "refused", ""},
		{"--url connection refused", []string{"--url", "http://" + refusedAddr(t) + "/healthz"}, nil, "refused", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			err := healthcheck(context.Background(), tt.args, envOnly(t, tt.env), &out)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("healthcheck: %v, want healthy", err)
				}
				if !strings.Contains(out.String(), tt.wantOut) {
					t.Errorf("stdout %q, want it to contain %q", out.String(), tt.wantOut)
				}
				return
			}
			if err == nil {
				t.Fatalf("healthcheck healthy, want an error containing %q", tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %q, want it to contain %q", err, tt.wantErr)
			}
			if errors.As(err, new(usageError)) {
				t.Errorf("error %q is a usage error (exit 2); an unhealthy server is exit 1", err)
			}
			if exitCode(err, &bytes.Buffer{}) != 1 {
				t.Errorf("exit status %d, want 1", exitCode(err, &bytes.Buffer{}))
			}
		})
	}
}

func TestHealthcheckDefaultAddr(t *testing.T) {
	// Unset MAILHOOK_HTTP_ADDR means :8080. Whatever answers there on this
	// machine, the request must go to 127.0.0.1:8080/healthz: check the URL
	// it names rather than the outcome.
	var out bytes.Buffer
	err := healthcheck(context.Background(), nil, envOnly(t, nil), &out)
	got := out.String()
	if err != nil {
		got = err.Error()
	}
	if !strings.Contains(got, "http://127.0.0.1:8080/healthz") {
		t.Errorf("got %q, want it to name http://127.0.0.1:8080/healthz", got)
	}
}

func TestHealthcheckIgnoresRestOfConfig(t *testing.T) {
	up := probeServer(t, http.StatusOK, http.StatusOK)
	// Variables that would stop serve from starting do not matter here.
	env := map[string]string{
		"MAILHOOK_HTTP_ADDR":      portOf(up),
		"MAILHOOK_STORE":          "ftp://nope",
		"MAILHOOK_WEBHOOK_SECRET": "not-base64!",
		"MAILHOOK_MAX_RECIPIENTS": "-1",
	}
	lookup := func(name string) (string, bool) { v, ok := env[name]; return v, ok }
	if err := healthcheck(context.Background(), nil, lookup, &bytes.Buffer{}); err != nil {
		t.Fatalf("healthcheck: %v", err)
	}
}

func TestHealthcheckUsage(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  map[string]string
	}{
		{"unknown flag", []string{"--nope"}, nil},
		{"stray argument", []string{"extra"}, nil},
		{"bad --url", []string{"--url", "127.0.0.1:8080/healthz"}, nil},
		{"HTTP_ADDR without port", nil, map[string]string{"MAILHOOK_HTTP_ADDR": "localhost"}},
		{"HTTP_ADDR port 0", nil, map[string]string{"MAILHOOK_HTTP_ADDR": "127.0.0.1:0"}},
		{"HTTP_ADDR named port", nil, map[string]string{"MAILHOOK_HTTP_ADDR": ":http"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := healthcheck(context.Background(), tt.args, envOnly(t, tt.env), &bytes.Buffer{})
			if !errors.As(err, new(usageError)) {
				t.Errorf("healthcheck(%q): %v, want a usage error", tt.args, err)
			}
		})
	}
}

func TestHealthcheckHonoursContext(t *testing.T) {
	// A server that accepts but never answers: the probe gives up when its
	// context ends (in production: the 3 s timeout).
	block := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-block:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(block) })

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := healthcheck(ctx, []string{"--url", srv.URL + "/healthz"}, envOnly(t, nil), &bytes.Buffer{})
	if err == nil {
		t.Fatal("healthcheck healthy against a server that never answers")
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error %v, want context.DeadlineExceeded", err)
	}
	if d := time.Since(start); d > healthcheckTimeout {
		t.Errorf("took %v, want it bounded by the context", d)
	}
}

// portOf returns ":PORT" of a test server.
func portOf(srv *httptest.Server) string {
	return ":" + strconv.Itoa(srv.Listener.Addr().(*net.TCPAddr).Port)
}
