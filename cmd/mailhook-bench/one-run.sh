#!/usr/bin/env bash
# one-run.sh runs one mailhook (filesystem store, fresh directory) under one
# mailhook-bench load and prints the tool's JSON line followed by mailhook's
# CPU time (user + system, from /proc) per delivered message. Interleave
# calls with two binaries to compare them: the host's speed drifts, so only
# runs close in time compare.
#
#   cmd/mailhook-bench/one-run.sh MAILHOOK_BIN BENCH_BIN [bench flags…]
#
# Default flags: -c 32 -n 0 -d 12s -size 2KB. EXTRA_ENV="K=V …" adds
# environment to mailhook (MAILHOOK_STORE_COMMIT_DELAY=0s, GOGC=200, …).
# STORE_PARENT (default /tmp) is where the store's directory is made. The
# store is left in place; its path is printed to stderr. Remove stores
# after a batch, never between runs to be compared: on ext4 without a
# journal, files created in the minutes after many were deleted cost up
# to ten times the CPU (BENCHMARKS.md, "Deleted files"). A fresh
# filesystem of its own (a loop-mounted image) gives the steadiest
# figures. Loopback only; mailhook is stopped by its PID.
set -euo pipefail
MAILHOOK=$1 BENCH=$2
shift 2
[ $# -gt 0 ] || set -- -c 32 -n 0 -d 12s -size 2KB
SECRET=whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw
SMTP_PORT=${SMTP_PORT:-25250} SINK_PORT=${SINK_PORT:-18099}
store=$(mktemp -d "${STORE_PARENT:-/tmp}/mhbench-store.XXXXXX")
echo "store: $store" >&2
# shellcheck disable=SC2086 # EXTRA_ENV is words
env MAILHOOK_SMTP_ADDR=127.0.0.1:$SMTP_PORT MAILHOOK_HTTP_ADDR=127.0.0.1:0 \
	MAILHOOK_LOG_FORMAT=json MAILHOOK_STORE=file://$store \
	MAILHOOK_WEBHOOK_URL=http://127.0.0.1:$SINK_PORT/webhook MAILHOOK_WEBHOOK_SECRET=$SECRET \
	MAILHOOK_MAX_SESSIONS_PER_IP=64 ${EXTRA_ENV:-} \
	"$MAILHOOK" serve 2>"$store.log" &
mpid=$!
i=0
until (echo >/dev/tcp/127.0.0.1/$SMTP_PORT) 2>/dev/null || [ $i -ge 50 ]; do sleep 0.1; i=$((i + 1)); done
# utime + stime, in clock ticks (fields 14 and 15; the name in field 2 has no spaces)
ticks() { awk '{print $14 + $15}' /proc/$mpid/stat; }
t0=$(ticks)
rc=0
out=$("$BENCH" -smtp 127.0.0.1:$SMTP_PORT -sink 127.0.0.1:$SINK_PORT -secret $SECRET \
	-pipelining -drain-timeout 60s -rss-pid $mpid "$@" 2>/dev/null) || rc=$?
t1=$(ticks)
kill -TERM $mpid
wait $mpid || true
line=$(printf '%s\n' "$out" | tail -n 1)
printf '%s\n' "$line"
delivered=$(printf '%s' "$line" | sed -n 's/.*"delivered":\([0-9]*\).*/\1/p')
hz=$(getconf CLK_TCK)
if [ -n "$delivered" ] && [ "$delivered" -gt 0 ]; then
	echo "mailhook_cpu_us_per_msg $(((t1 - t0) * 1000000 / hz / delivered))"
fi
exit $rc
