// Regenerates ../vectors.json. Every signature in it is computed here by the
// reference JavaScript library (npm "standardwebhooks"), not by mailhook's Go
// code, so that signing_test.go reproducing them is a real cross-check.
//
//   mkdir -p /tmp/nodewh && cp package.json package-lock.json /tmp/nodewh/ && npm ci --prefix /tmp/nodewh
//   (or: npm install --prefix /tmp/nodewh standardwebhooks@1.1.1)
//   MAILHOOK_NODE_MODULES=/tmp/nodewh/node_modules node genvectors.mjs > ../vectors.json
//
// Edit the cases below, never the JSON by hand.
import { createRequire } from "node:module";
import path from "node:path";

const dir = process.env.MAILHOOK_NODE_MODULES;
const require = createRequire(dir ? path.join(path.resolve(dir), "_.js") : import.meta.url);
const { Webhook } = require("standardwebhooks");

// The Standard Webhooks libraries' published test vector.
const A = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const ID = "msg_p5jXN8AQM9LWM0D4loKWxJek";
const TS = 1614265330;
const BODY = '{"test": 2432232314}';
// A second secret for rotation: base64("mailhook-rotation-test-key-0002!").
const B = "whsec_bWFpbGhvb2stcm90YXRpb24tdGVzdC1rZXktMDAwMiE=";
const EVT_ID = "01KB4Q7N3Z8X2C6V9M0P5R7T1W";
const EVT_TS = 1764331200; // 2025-11-28T12:00:00Z
const EVT =
  '{"type":"email.received","timestamp":"2025-11-28T12:00:00Z","data":{"id":"01KB4Q7N3Z8X2C6V9M0P5R7T1W","subject":"hello"}}';
const UNICODE =
  '{"type":"email.received","data":{"subject":"Grüße aus Köln — 日本語のメール ✉️","from":[{"name":"Zoë Ångström","address":"zoe@exämple.com"}],"text":"naïve café\\r\\n"}}';
const SPACED = '{\n  "type": "email.received",\r\n  "data": {"text": "line one\\nline two"}\n}\n';

const sign = (secret, id, ts, body) => new Webhook(secret).sign(id, new Date(ts * 1000), body);
const header = (secrets, id, ts, body) => secrets.map((s) => sign(s, id, ts, body)).join(" ");
const sigA = sign(A, ID, TS, BODY);
const b64A = sigA.slice(3);

const vectors = [];
const ok = (name, v) => vectors.push({ name, valid: true, ...v });
const bad = (name, error, v) => vectors.push({ name, valid: false, error, ...v });
const signed = (secrets, id, ts, body) => ({
  sign_with: secrets,
  id,
  timestamp: String(ts),
  body,
  signature: header(secrets, id, ts, body),
});
const published = (over = {}) => ({
  secret: A,
  id: ID,
  timestamp: String(TS),
  body: BODY,
  signature: sigA,
  now: TS,
  ...over,
});

// Valid deliveries.
ok("standard-webhooks-published-vector", { secret: A, ...signed([A], ID, TS, BODY), now: TS });
ok("secret-without-whsec-prefix", {
  secret: A.slice("whsec_".length),
  ...signed([A.slice("whsec_".length)], ID, TS, BODY),
  now: TS,
});
ok("rotation-two-secrets-verified-with-first", { secret: A, ...signed([A, B], EVT_ID, EVT_TS, EVT), now: EVT_TS + 1 });
ok("rotation-two-secrets-verified-with-second", { secret: B, ...signed([A, B], EVT_ID, EVT_TS, EVT), now: EVT_TS + 1 });
ok("non-ascii-utf8-body", { secret: B, ...signed([B], EVT_ID, EVT_TS, UNICODE), now: EVT_TS });
ok("empty-body", { secret: A, ...signed([A], EVT_ID, EVT_TS, ""), now: EVT_TS });
ok("body-whitespace-and-crlf-kept-byte-for-byte", { secret: A, ...signed([A], EVT_ID, EVT_TS, SPACED), now: EVT_TS });
ok("unknown-version-and-bad-v1-entries-ignored", published({
  signature: `v2,${b64A} v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= ${sigA}`,
}));
ok("double-space-between-entries", published({ signature: `v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=  ${sigA}` }));
ok("timestamp-exactly-tolerance-old", published({ now: TS + 300 }));
ok("timestamp-exactly-tolerance-ahead", published({ now: TS - 300 }));

// Rejected deliveries; "error" is one of missing_headers, timestamp, no_match.
bad("wrong-secret", "no_match", published({ secret: B }));
bad("body-tampered", "no_match", published({ body: '{"test": 2432232315}' }));
bad("body-reformatted-json", "no_match", published({ body: '{"test":2432232314}' }));
bad("id-tampered", "no_match", published({ id: "msg_p5jXN8AQM9LWM0D4loKWxJeK" }));
bad("timestamp-header-changed", "no_match", published({ timestamp: String(TS + 1), now: TS + 1 }));
bad("timestamp-too-old", "timestamp", published({ now: TS + 301 }));
bad("timestamp-too-new", "timestamp", published({ now: TS - 301 }));
bad("timestamp-not-a-number", "timestamp", published({ timestamp: "yesterday" }));
bad("only-unknown-version", "no_match", published({ signature: `v2,${b64A}` }));
bad("uppercase-version", "no_match", published({ signature: `V1,${b64A}` }));
bad("missing-version-prefix", "no_match", published({ signature: b64A }));
bad("signature-truncated", "no_match", published({ signature: sigA.slice(0, -1) }));
bad("signature-of-another-secret", "no_match", published({ signature: sign(B, ID, TS, BODY) }));
bad("missing-signature", "missing_headers", published({ signature: "" }));
bad("missing-id", "missing_headers", published({ id: "" }));
bad("missing-timestamp", "missing_headers", published({ timestamp: "" }));

const doc = {
  about:
    "Standard Webhooks v1 (symmetric) test vectors for mailhook receivers. " +
    "Verify each with secret, the headers webhook-id = id, webhook-timestamp = timestamp " +
    "(a string, exactly as sent), webhook-signature = signature, the body as its UTF-8 bytes, " +
    "the clock set to now (Unix seconds) and a tolerance of 300 seconds. valid tells the expected outcome; " +
    "error names the failure: missing_headers, timestamp (malformed or outside tolerance) or no_match. " +
    "Where sign_with is given, signing id, timestamp and body with those secrets in that order " +
    "yields signature exactly. Signatures were computed with the npm package standardwebhooks.",
  tolerance_seconds: 300,
  vectors,
};
process.stdout.write(JSON.stringify(doc, null, 2) + "\n");
