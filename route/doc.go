// Package route decides what happens to a recipient address: whether the
// SMTP acceptor takes mail for it (Policy, from MAILHOOK_RECIPIENTS) and
// which webhook endpoint its event goes to (Table, from MAILHOOK_ROUTES and
// MAILHOOK_WEBHOOK_URL).
//
// It owns the pattern language and nothing else: it performs no I/O and
// never sees a message.
package route
