#!/bin/sh
# run-benchmarks.sh reproduces BENCHMARKS.md: mailhook (filesystem store)
# and Postfix's smtp-sink, each loaded by mailhook-bench, RUNS times per
# shape. Results (one JSON line per run) go to OUT.
#
#   cmd/mailhook-bench/run-benchmarks.sh OUT MAILHOOK_BIN BENCH_BIN [SMTP_SINK_BIN [RUNS]]
#
# SHAPES='name flags…' (one per line) replaces the default shapes.
#
# Loopback only; every process it starts is stopped by its PID.
set -eu
OUT=$1 MAILHOOK=$2 BENCH=$3 SMTPSINK=${4:-} RUNS=${5:-3}
SECRET=whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw
SMTP_PORT=${SMTP_PORT:-25250} SINK_PORT=${SINK_PORT:-18099} REF_PORT=${REF_PORT:-25260}
mkdir -p "$OUT"

# shape name, then the bench flags of that shape
shapes() {
	if [ -n "${SHAPES:-}" ]; then printf '%s\n' "$SHAPES"; return; fi
	echo "2KBx32 -c 32 -n 20000 -d 30s -size 2KB"
	echo "1MBx32 -c 32 -n 0 -d 30s -size 1MB"
	echo "25MBx1 -c 1 -n 1 -size 25MB"
}

run_mailhook() { # name run flags...
	name=$1 i=$2; shift 2
	store=$(mktemp -d /tmp/mhbench-store.XXXXXX)
	MAILHOOK_SMTP_ADDR=127.0.0.1:$SMTP_PORT MAILHOOK_HTTP_ADDR=127.0.0.1:0 \
	MAILHOOK_LOG_FORMAT=json MAILHOOK_STORE=file://$store \
	MAILHOOK_WEBHOOK_URL=http://127.0.0.1:$SINK_PORT/webhook MAILHOOK_WEBHOOK_SECRET=$SECRET \
	MAILHOOK_MAX_SESSIONS_PER_IP=64 \
		"$MAILHOOK" serve 2>"$OUT/mailhook-$name-$i.log" &
	mpid=$!
	rc=0
	"$BENCH" -smtp 127.0.0.1:$SMTP_PORT -sink 127.0.0.1:$SINK_PORT -secret $SECRET \
		-pipelining -drain-timeout 300s -rss-pid $mpid -progress 10s "$@" \
		>"$OUT/mailhook-$name-$i.json" 2>"$OUT/mailhook-$name-$i.err" || rc=$?
	kill -TERM $mpid; wait $mpid || true
	echo "mailhook $name run $i: exit $rc, store $(du -sh "$store" | cut -f1)"
	# Kept until the shape's runs are over: removing tens of thousands of
	# files right before a run slowed it by up to 2x on a disk mounted with
	# discard (the kernel frees and discards the blocks in the background).
	echo "$store" >>"$OUT/stores"
	sync
	sleep 3
}

remove_stores() { # after a shape: free the disk (1 MB shapes store GBs), then let it settle
	if [ -f "$OUT/stores" ]; then
		xargs rm -rf <"$OUT/stores"
		rm -f "$OUT/stores"
		sync
		sleep 30
	fi
}

run_ref() { # name run flags...
	name=$1 i=$2; shift 2
	LD_LIBRARY_PATH=$(dirname "$SMTPSINK")/../lib/postfix \
		"$SMTPSINK" -u nobody -c 127.0.0.1:$REF_PORT 1000 >"$OUT/smtp-sink-$name-$i.counter" 2>&1 &
	spid=$!
	rc=0
	"$BENCH" -no-sink -smtp 127.0.0.1:$REF_PORT -pipelining -rss-pid $spid -progress 10s "$@" \
		>"$OUT/smtp-sink-$name-$i.json" 2>"$OUT/smtp-sink-$name-$i.err" || rc=$?
	kill -TERM $spid; wait $spid || true
	echo "smtp-sink $name run $i: exit $rc"
}

shapes | while read -r name flags; do
	i=1
	while [ $i -le "$RUNS" ]; do
		# shellcheck disable=SC2086 # flags are words
		run_mailhook "$name" $i $flags
		if [ -n "$SMTPSINK" ]; then run_ref "$name" $i $flags; fi
		i=$((i + 1))
	done
	remove_stores
done
