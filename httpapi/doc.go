// Package httpapi is mailhook's HTTP side: liveness (/healthz), readiness
// (/readyz) and, later, metrics and the admin API.
//
// It owns the HTTP routes and their JSON shapes. It never touches the store
// or the queue directly: it calls the small functions it is given.
package httpapi
