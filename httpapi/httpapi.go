package httpapi

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"
)

// Checker reports whether a dependency is usable, for /readyz.
type Checker func(ctx context.Context) error

// Handler serves the HTTP side.
type Handler struct {
	mux      *http.ServeMux
	checks   map[string]Checker
	draining atomic.Bool
	log      *slog.Logger
}

// New returns the HTTP side. checks run on every /readyz (each with a short
// timeout); /readyz is 503 when one fails or once Drain was called.
func New(checks map[string]Checker, log *slog.Logger) *Handler {
	h := &Handler{mux: http.NewServeMux(), checks: checks, log: log}
	h.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	h.mux.HandleFunc("GET /readyz", h.readyz)
	return h
}

// Handle adds a route (metrics, admin API).
func (h *Handler) Handle(pattern string, handler http.Handler) { h.mux.Handle(pattern, handler) }

// Drain makes /readyz fail from now on, so load balancers stop sending
// traffic while the process shuts down.
func (h *Handler) Drain() { h.draining.Store(true) }

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

func (h *Handler) readyz(w http.ResponseWriter, r *http.Request) {
	status := map[string]string{}
	code := http.StatusOK
	if h.draining.Load() {
		status["process"] = "shutting down"
		code = http.StatusServiceUnavailable
	}
	for name, check := range h.checks {
		ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
		err := check(ctx)
		cancel()
		if err != nil {
			status[name] = err.Error()
			code = http.StatusServiceUnavailable
			h.log.Warn("readiness check failed", "check", name, "err", err)
			continue
		}
		status[name] = "ok"
	}
	writeJSON(w, code, status)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
