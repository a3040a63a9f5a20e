// Command mailhook-bench is a load generator for mailhook (or any SMTP
// server): it sends realistic MIME mail over many concurrent SMTP sessions
// and, with its own webhook sink, checks that every message the server
// acknowledged with 250 comes back as a correctly signed webhook, exactly
// once, and how fast.
//
// # What it does
//
//   - Sends -n messages or for -d (whichever comes first) over -c sessions,
//     -per-conn messages per connection, each of -size bytes:
//     multipart/alternative text+HTML, and above 64 KB a base64
//     application/pdf attachment that makes up the rest. Message bodies are
//     built once; each message differs only by a token
//     (mhb<run>-<sequence>) patched into Subject, Message-ID and the first
//     text line. With -pipelining, MAIL, RCPT and DATA go out in one write
//     when the server advertises PIPELINING (RFC 2920).
//   - With -rate N, runs open loop: message k (in the order sessions claim
//     them) is due at start + k/N seconds — fixed intervals, not a Poisson
//     process — across all -c sessions. A session waits for its message's
//     due time; if every session is busy when a message falls due, it goes
//     out as soon as one is free, and its SMTP latency is still measured
//     from the due time, so queueing at a slow server shows in the
//     percentiles instead of being hidden by fewer, later sends
//     (coordinated omission). The report then also gives MAIL→250 alone
//     (service time) and due→MAIL (send lag); a send lag that keeps
//     growing means -c sessions cannot carry the rate. The 250→webhook
//     latency is measured from the 250 as without -rate. Without -rate
//     (the default) each session sends its next message as soon as the
//     previous one is answered (closed loop).
//   - Runs a webhook sink (-sink, default a free loopback port; its URL is
//     printed on stderr and written to -sink-url-file) that verifies each
//     Standard Webhooks signature with -secret through package signing,
//     finds the token in data.subject or data.message_id without decoding
//     the whole event, and counts missing messages and duplicates (by
//     webhook-id and by message).
//   - After sending, waits for the webhook of every acknowledged message, at
//     most -drain-timeout.
//   - Reports throughput (acknowledged messages/s over the SMTP phase;
//     delivered messages/s from start to the last webhook), latency p50/p90/
//     p99/max of MAIL→250 and of 250→webhook, counts, bytes/s and, with
//     -rss-pid, the server's peak RSS: a summary on stderr and one JSON line
//     on stdout.
//
// Exit status: 0 when messages were acknowledged, none is missing and no
// signature failed; 1 otherwise; 2 on bad flags.
//
// What it never does: it does not retry failed transactions (they are
// counted), does not use TLS or AUTH, and talks to exactly one SMTP server.
// -no-sink measures the SMTP side alone, e.g. against Postfix's smtp-sink.
//
// # Examples
//
// Load a local mailhook end to end. Start the tool first so its sink URL is
// known; it waits (-wait) for the SMTP port to open:
//
//	mailhook-bench -smtp 127.0.0.1:2525 -c 32 -n 20000 -d 30s -size 2KB -pipelining \
//	    -secret whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw -sink-url-file /tmp/sink.url > result.json &
//	until [ -s /tmp/sink.url ]; do sleep 0.1; done
//	MAILHOOK_WEBHOOK_URL=$(cat /tmp/sink.url) \
//	MAILHOOK_WEBHOOK_SECRET=whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw \
//	MAILHOOK_MAX_SESSIONS_PER_IP=64 MAILHOOK_STORE=file:///tmp/mh-bench mailhook &
//	wait %1
//
// Or give the sink a fixed port and point a running deployment at it:
//
//	mailhook-bench -sink 0.0.0.0:9099 -smtp mx.staging.example:25 -rcpt bench@staging.example \
//	    -secret "$MAILHOOK_WEBHOOK_SECRET" -c 16 -d 60s -n 0 -size 100KB
//
// Large messages, with the server's memory:
//
//	mailhook-bench -size 1MB -c 32 -d 30s -n 0 -rss-pid "$(pidof mailhook)" -secret "$SECRET"
//	mailhook-bench -size 25MB -c 1 -n 1 -rss-pid "$(pidof mailhook)" -secret "$SECRET"
//
// Open loop at a fixed rate, e.g. half of the sustainable delivery rate:
//
//	mailhook-bench -rate 350 -c 32 -n 0 -d 30s -size 2KB -pipelining -secret "$SECRET"
//
// A receiver outage: the sink answers 503 for the first minute, then takes
// everything; recovery_seconds is how long after its return the last
// webhook came (the sender's retries and backoff):
//
//	mailhook-bench -sink-down 60s -n 20000 -d 0 -drain-timeout 10m -c 32 -size 2KB -pipelining -secret "$SECRET"
//
// SMTP only, against a reference sink (Postfix's smtp-sink):
//
//	smtp-sink -u nobody 127.0.0.1:2526 1000 &
//	mailhook-bench -no-sink -smtp 127.0.0.1:2526 -c 32 -n 20000 -size 2KB -pipelining
//
// Read the JSON line with jq:
//
//	mailhook-bench … | jq '{smtp: .smtp_msgs_per_s, e2e: .e2e_msgs_per_s, p99: .smtp_latency_ms.p99, missing}'
//
// Note that mailhook allows 20 sessions per client IP by default
// (MAILHOOK_MAX_SESSIONS_PER_IP): with more -c from one address the extra
// sessions are refused with 421 and show up as connection errors.
package main
