// Package event is mailhook's shared vocabulary: the SMTP envelope, the
// JSON event posted to webhooks (schema version 1), and message ids.
//
// It owns the wire shape of the event and nothing else. It imports no other
// mailhook package, performs no I/O, and never parses MIME (package parse
// does that).
package event
