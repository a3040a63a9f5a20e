// Package queue keeps mailhook's durable delivery state in a store.Store:
// the raw message of every accepted email and one delivery record per
// (message, webhook endpoint).
//
// It owns the key layout, the record schema and the state transitions of a
// delivery (pending → delivered | failed, failed → pending by replay). It
// never speaks HTTP, never parses MIME, never decides when to retry (package
// dispatch does), and keeps no state of its own outside the store, so any
// number of processes may share one store.
//
// # Key layout
//
// Keys are relative to the store root (an S3 bucket prefix or a directory)
// and are shared by every backend and every replica:
//
//	raw/<msgid>.eml                    the message as received, byte for byte
//	deliveries/pending/<recid>.json    deliveries still to be sent
//	deliveries/delivered/<recid>.json  deliveries a receiver answered 2xx
//	deliveries/failed/<recid>.json     dead letters: given up, or no endpoint
//	deliveries/leases/<recid>          a replica's claim on a pending delivery
//	                                   while it works on it (see Leases)
//
// <msgid> is an event.NewID id: 26 characters, ULID layout, sorting by time,
// so listings come out oldest first. <recid> is "<msgid>-<n>", n = 1, 2, …
// numbering the message's endpoints in the order their first recipient was
// given at RCPT. A record lives under exactly one state prefix at a time,
// except for the short window of a transition described below.
//
// # Delivery record (JSON, schema version 1)
//
//	{
//	  "version": 1,                        record schema version
//	  "id": "<recid>",
//	  "event_id": "<msgid>",               the event's data.id; its webhook-id
//	                                       too for record 1, the record's id
//	                                       for the others (Delivery.WebhookID)
//	  "endpoint": "https://…",             "" = no endpoint configured
//	  "envelope": {…},                     event.Envelope; rcpt_to holds only
//	                                       the recipients routed to endpoint
//	  "received_at": "RFC 3339",
//	  "raw": {"key": "raw/<msgid>.eml", "size": 123, "sha256": "<hex>"},
//	  "records": 2,                        the message's record count: ids
//	                                       <msgid>-1 to <msgid>-2 (absent
//	                                       in records of older versions)
//	  "state": "pending" | "delivered" | "failed",
//	  "created_at": "RFC 3339",
//	  "next_attempt_at": "RFC 3339",       pending only: not before this
//	  "replayed_at": "RFC 3339",           last replay, if any: the retry
//	                                       window restarts here
//	  "replays": 0,
//	  "attempts": [{
//	    "at": "RFC 3339",                  when the attempt started
//	    "endpoint": "https://…",
//	    "status": 503,                     HTTP status, 0 = no response
//	    "error": "…",                      transport error or short reason
//	    "latency_ms": 12,
//	    "response": "…",                   first 1 KiB of the response body
//	    "unfinished": true                 written before the request went
//	                                       out; still set = no result was
//	                                       recorded (the process stopped)
//	  }],
//	  "last_error": "…",
//	  "parse_cut": "1.3",                  the part where the first render's
//	                                       parse ran out of time, if it did:
//	                                       later renders stop there too
//	  "claim": {                           pending only, until the first
//	    "owner": "<replica id>",           update: see Claims
//	    "host": "…", "pid": 123,
//	    "proc": "linux/<boot id>/pid:[…]/123/<start>",  the owner's process,
//	                                       beyond doubt: see LeaseOwner
//	    "expires_at": "RFC 3339"
//	  }
//	}
//
// Readers ignore fields they do not know; writers keep "version" at 1 as
// long as the change is additive.
//
// # Transitions and crashes
//
// Every write is a single atomic, durable Put, except where said (Lazy:
// made durable by the durable write that follows it; see
// store.PutOptions.Lazy). Pending records are updated
// with IfMatch on the ETag that was read, so a writer that lost a race gets
// store.ErrPrecondition and must reload instead of overwriting.
//
//   - Accept writes raw/<msgid>.eml first, then the records (IfNoneMatch).
//     A record never points to a raw object that is not durable yet: the
//     raw object is written Lazy (visible and complete, durable at the
//     latest when the records' own durable writes return).
//   - Before each HTTP attempt the dispatcher, holding the delivery's
//     lease, persists an "unfinished" attempt together with a
//     NextAttemptAt after the backoff (BeginAttempt, Lazy: a machine
//     crash may undo it, which only brings the attempt forward). A crash
//     during the attempt therefore leaves a record that is not due yet
//     and a lease that nobody may take over before it has expired: no
//     tight loop, even for a message that crashes the process. The first
//     attempt of a delivery made under its claim (below) skips this
//     write: the claim plays its part. So does the first attempt that the
//     process which accepted the message makes after its claim grew too
//     old to start under (a backlog, a paused endpoint): it takes the
//     lease and checks that the record is the version it read
//     (Unchanged), a stat instead of a write. That process has not died
//     since; its successor is another owner and persists its attempts.
//   - On a store that appends (store.Appender: the filesystem store),
//     BeginAttempt, RecordAttempt and ReleaseClaim append the new version
//     to the pending record's object, conditional on its ETag, instead
//     of replacing the object: no new file, no rename, no wait for a
//     group commit. A crash may cut the appended document, which is
//     ignored: the previous version again. An object grown past 16 KiB
//     is replaced by its last version alone.
//   - MarkDelivered and MarkFailed, on a store that moves objects
//     (store.Mover: the filesystem store), append the new record to the
//     pending one and rename it under its new state prefix: no object
//     created, none deleted. A record object therefore holds one JSON
//     document or several in a row, each after a line break, and the
//     last complete one is the
//     record. A crash may cut the append anywhere: a partial document is
//     ignored, and a record found under delivered/ or failed/ whose last
//     complete document still says pending takes the state of its key
//     (its outcome lost, the move kept); one left under pending/ is sent
//     again, or settled if its appended outcome is complete. The move is
//     Lazy (store.MoveOptions): a machine crash before the next durable
//     write may undo it, and the record, pending again, is delivered
//     again with the same webhook-id (at least once; nothing is lost).
//     The dispatcher thus waits at no barrier for an outcome.
//   - On other stores (S3) they write the record under its new state
//     prefix (Lazy), then delete the pending one. After a crash between the two,
//     the pending record still ends in its unfinished attempt; on load such
//     a record is compared with its delivered/failed twin, and when the twin
//     holds the outcome of that attempt the pending record is deleted
//     instead of being sent again.
//   - Replay writes the pending record (IfNoneMatch), then deletes the
//     failed one. Repeating a replay that was interrupted finishes it.
//   - Expire (retention) deletes delivered or failed records, then the
//     raw object of a message none of whose records is left in any state.
//     Every move above writes its target before it removes its source (or
//     renames), so Expire, looking for a message's other records under
//     pending, failed, delivered and pending again, sees a record that
//     moves meanwhile. A crash between the two leaves a raw object that
//     nothing names: garbage, never a record without its message.
//
// # Claims
//
// With Options.ClaimTTL set, Accept writes each pending record with a
// claim: the accepting replica's lease, kept in the record itself, valid
// until expires_at. The accepting process may then make the first attempt
// with no store write before it, neither lease nor BeginAttempt, which
// halves the writes of a delivery that succeeds at once. Every other
// process (the same one restarted included: its replica id is new)
// treats a claim as a lease it has read, held until expires_at (see
// package dispatch for the margins), after which the delivery's lease
// decides as usual. The first update of a record (BeginAttempt,
// RecordAttempt, ReleaseClaim, or the move to delivered or failed) drops
// the claim. An owner whose attempt outlasts its claim creates the
// delivery's lease before the claim expires, and a process that stops
// gracefully releases the claims it did not use (ReleaseClaim), so that
// the others need not wait for them to expire. A record still carrying
// its claim has no unfinished attempt, so on load it is compared with its
// delivered/failed twin the same way. For that first attempt Accept also
// keeps a message of up to 64 KiB routed to one endpoint in memory, within
// Options.RawCacheBytes, and OpenRaw hands it over once instead of reading
// the store (one S3 GET less per message).
//
// # Leases (JSON, schema version 1)
//
// A replica works on a delivery only while it holds the delivery's lease:
//
//	{
//	  "version": 1,
//	  "id": "<recid>",
//	  "owner": "<replica id>",             random per process: ownership
//	  "host": "…", "pid": 123,             for humans
//	  "proc": "…",                         as in a claim
//	  "acquired_at": "RFC 3339",
//	  "renewed_at": "RFC 3339",
//	  "expires_at": "RFC 3339",            renewed_at + the owner's TTL, by
//	                                       the owner's clock
//	  "renewals": 0                        also makes every write's content,
//	                                       hence its S3 ETag, unique
//	}
//
// ClaimLease creates it with IfNoneMatch, or takes over one read with
// ReadLease with IfMatch on its ETag (of several takers one wins);
// RenewLease rewrites it with IfMatch; ReleaseLease deletes it. The queue
// only performs these writes: when to renew, when a lease counts as
// expired and what to do when one is lost is package dispatch's policy. A
// lease outlives nothing it guards: one left on a delivery that is no
// longer pending is garbage, removed by the dispatcher's rescan. Lease
// writes are Lazy: a lease only keeps live processes apart, and a crash
// that could lose one (of the machine) also ends every process it kept
// apart.
package queue
