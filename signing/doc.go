// Package signing signs and verifies webhook deliveries in the Standard
// Webhooks v1 format (https://www.standardwebhooks.com), symmetric variant.
//
// A delivery carries three headers:
//
//	webhook-id:        the event's id, the same on every attempt and replay
//	webhook-timestamp: the attempt's time, in Unix seconds
//	webhook-signature: "v1,<base64 HMAC-SHA256(key, id + "." + timestamp + "." + body)>",
//	                   one entry per secret, separated by single spaces
//
// Secrets are written "whsec_<base64 key>"; the prefix is optional, as in the
// reference libraries. Several secrets may be configured at once so that a
// receiver can rotate: mailhook signs with all of them and a receiver accepts a
// delivery if any v1 entry matches the secret it holds.
//
// What this package owns: secret parsing, the signature header (sign and
// parse), timestamp tolerance, and the committed test vectors in
// testdata/vectors.json that any receiver library can check itself against.
// Receivers written in Go import it directly; see [VerifyRequest].
//
// What it never does: it does not read the environment or any file, generate
// ids, serialise events, talk to the network or log. It never puts a secret
// or a key into an error message, and it signs exactly the bytes it is given:
// the caller must send those same bytes on the wire. It imports nothing else
// from mailhook, so receivers pull in only the standard library.
//
// Verification compares signatures in constant time and is safe on any input:
// malformed headers yield errors, never panics.
package signing
