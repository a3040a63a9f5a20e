// Package dispatch sends pending deliveries to their webhooks: it renders
// the event, signs it (Standard Webhooks headers), POSTs it, classifies the
// answer and records the outcome through the queue, retrying with
// exponential backoff until the receiver takes it, rejects it, or the retry
// window closes.
//
// It owns scheduling (a min-heap by next attempt time, a fixed pool of
// workers, a per-endpoint concurrency limit), the retry policy and the HTTP
// client. It never stores anything itself: every outcome goes through the
// Queue interface before the next attempt is scheduled, so a dispatcher can
// be killed at any moment and a fresh one (in this process or another)
// resumes from the store. It never follows redirects, never logs bodies,
// secrets or full endpoint URLs, and never sends the same delivery twice at
// once: within one process by its schedule, and between processes sharing
// a store (replicas) by a lease per delivery in flight, created, renewed
// and taken over with conditional writes (see lease.go). A replica that
// dies has its deliveries finished by the others once its leases have
// stood unrenewed for Config.LeaseTTL; each replica finds them by listing
// the pending records every RescanInterval.
//
// Receiver answers: 2xx → delivered; 5xx, 408, 429, timeouts and transport
// errors → retried (Retry-After honoured, capped at RetryMaxInterval);
// other 4xx and all 3xx → failed at once (dead letter, replayable). An
// endpoint that keeps failing is paused: its deliveries wait while one at
// a time is tried, and all go out once it answers (see pause.go).
package dispatch
