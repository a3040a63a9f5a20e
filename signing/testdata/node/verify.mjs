// Verifies Standard Webhooks vectors with the stock npm library
// "standardwebhooks", to prove that receivers using it accept what mailhook
// signs and reject what it should reject.
//
//   mkdir -p /tmp/nodewh && cp package.json package-lock.json /tmp/nodewh/ && npm ci --prefix /tmp/nodewh
//   (or: npm install --prefix /tmp/nodewh standardwebhooks@1.1.1)
//   MAILHOOK_NODE_MODULES=/tmp/nodewh/node_modules node verify.mjs ../vectors.json
//   ... | node verify.mjs -          (the same JSON shape on standard input)
//
// Input: {"vectors": [{name, secret, id, timestamp, signature, body, now?,
// valid?, error?}]}; now (Unix seconds) fixes the library's clock, which
// otherwise is the real one. Output: one JSON line per vector,
// {name, ok, kind, message, agrees}, where kind is "" when accepted, else
// missing_headers, timestamp, no_match or other. Exit status 1 if any vector
// that states valid/error got another outcome, 2 on bad usage or input.
//
// ESM ignores NODE_PATH, hence createRequire rooted at MAILHOOK_NODE_MODULES
// (a node_modules directory, or the --prefix directory holding one).
import { createRequire } from "node:module";
import { readFileSync } from "node:fs";
import path from "node:path";

const dir = process.env.MAILHOOK_NODE_MODULES;
const require = createRequire(dir ? path.join(path.resolve(dir), "_.js") : import.meta.url);

let lib;
try {
  lib = require("standardwebhooks");
} catch (err) {
  console.error(`verify.mjs: cannot load standardwebhooks (set MAILHOOK_NODE_MODULES): ${err.message}`);
  process.exit(2);
}
const { Webhook, WebhookVerificationError } = lib;

const arg = process.argv[2];
if (!arg) {
  console.error("usage: node verify.mjs VECTORS.json | -");
  process.exit(2);
}
let doc;
try {
  doc = JSON.parse(readFileSync(arg === "-" ? 0 : arg, "utf8"));
} catch (err) {
  console.error(`verify.mjs: reading ${arg}: ${err.message}`);
  process.exit(2);
}

function kindOf(err) {
  if (!(err instanceof WebhookVerificationError)) return "other";
  if (/missing required headers/i.test(err.message)) return "missing_headers";
  if (/timestamp|invalid signature headers/i.test(err.message)) return "timestamp";
  if (/no matching signature/i.test(err.message)) return "no_match";
  return "other";
}

const realNow = Date.now;
let disagreements = 0;
for (const v of doc.vectors ?? []) {
  const headers = {
    "webhook-id": v.id,
    "webhook-timestamp": v.timestamp,
    "webhook-signature": v.signature,
  };
  let kind = "";
  let message = "";
  try {
    if (typeof v.now === "number" && v.now > 0) Date.now = () => v.now * 1000;
    // A Buffer of the UTF-8 bytes, as a receiver reading the raw body has.
    new Webhook(v.secret).verify(Buffer.from(v.body, "utf8"), headers);
  } catch (err) {
    kind = kindOf(err);
    message = String(err && err.message);
  } finally {
    Date.now = realNow;
  }
  const ok = kind === "";
  let agrees = true;
  if (typeof v.valid === "boolean") {
    agrees = ok === v.valid && (ok || !v.error || v.error === kind);
  }
  if (!agrees) disagreements++;
  process.stdout.write(JSON.stringify({ name: v.name, ok, kind, message, agrees }) + "\n");
}
process.exit(disagreements > 0 ? 1 : 0);
