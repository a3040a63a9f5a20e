// Package httpapi is mailhook's HTTP side: liveness (/healthz), readiness
// (/readyz) and the admin API under /v1/ (deliveries, events, raw
// messages, replay), behind a bearer token.
//
// It owns the HTTP routes and their JSON shapes. It never touches the store
// or the queue directly: it calls the small functions it is given.
package httpapi
