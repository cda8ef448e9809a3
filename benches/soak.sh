#!/usr/bin/env bash
# Soak test (issue 30): FlexiProxy under a steady mixed load for a long time, watching what
# must not drift: RSS after the first five minutes (target: < 5 % growth), open file
# descriptors (no growth), p99 latency over time, and no failed request.
#
#   the four client protocols (Anthropic Messages, OpenAI Chat, Responses, Gemini) on an
#   OpenAI Chat source and an Anthropic source, half of the requests streamed, 1 % of the
#   clients leaving in the middle of the answer, 1 % of the requests answered by a provider
#   that resets the connection halfway, at a steady RATE requests/s (open loop).
#
# Usage: benches/soak.sh [SECONDS] [--rate N] [--skip-build] [--out DIR]
#
#   SECONDS       how long (default 1800: 30 minutes; the RSS growth is measured from minute
#                 5, so shorter runs compare with their middle sample instead)
#   --rate N      requests per second (default 200)
#   --skip-build  use the release binary already built
#   --out DIR     where results go (default $FP_BENCH_SCRATCH/soak/<time>)
#
# Writes samples.tsv (every 10 s: requests, failures, p50/p99, RSS, fds) and report.md (the
# summary and a per-minute table) to the output directory, and prints the report. Exits 1 if a
# request failed that was neither a planned client disconnect nor a planned provider reset.
# Environment: CARGO_TARGET_DIR (where to build), FP_BENCH_SCRATCH (default
# /tmp/flexiproxy-bench).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
HELPER="$ROOT/benches/soak_helper.py"
SECONDS_TOTAL=1800
RATE=200
SKIP_BUILD=0
OUT=""
SCRATCH=${FP_BENCH_SCRATCH:-/tmp/flexiproxy-bench}
while [ $# -gt 0 ]; do
    case "$1" in
        --rate) RATE=$2; shift ;;
        --skip-build) SKIP_BUILD=1 ;;
        --out) OUT=$2; shift ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        [0-9]*) SECONDS_TOTAL=$1 ;;
        *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
command -v python3 >/dev/null || die "need python3"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
if [ $SKIP_BUILD -eq 0 ]; then
    log "building FlexiProxy (release)"
    (cd "$ROOT" && cargo build --release --quiet --bin flexiproxy)
fi
FLEXI=$TARGET/release/flexiproxy
[ -x "$FLEXI" ] || die "missing $FLEXI (build first)"

OUT=${OUT:-$SCRATCH/soak/$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT/run/adapters"
OUT=$(cd "$OUT" && pwd)
RUN=$OUT/run
PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill -INT -- "-$pid" 2>/dev/null || kill -INT "$pid" 2>/dev/null || true
    done
    sleep 1
    for pid in "${PIDS[@]}"; do kill -KILL -- "-$pid" 2>/dev/null || true; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
waitport() {
    for _ in $(seq 300); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

log "starting the fake provider"
setsid python3 "$HELPER" provider "$RUN/provider.port" >"$RUN/provider.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do [ -s "$RUN/provider.port" ] && break; sleep 0.1; done
PROVIDER=127.0.0.1:$(cat "$RUN/provider.port")

PORT=$(freeport)
cat >"$RUN/flexiproxy.yaml" <<EOF
listen: 127.0.0.1:$PORT
adapters_dir: adapters
admin:
  listen: 127.0.0.1:$(freeport)
access_log:
  enabled: false
EOF
sha() { printf '%s' "$1" | sha256sum | cut -d' ' -f1; }
for a in chat anthropic; do
    case $a in
        chat) base="http://$PROVIDER/v1"; proto=openai ;;
        anthropic) base="http://$PROVIDER"; proto=anthropic ;;
    esac
    cat >"$RUN/adapters/$a.yaml" <<EOF
source:
  base_url: $base
  protocol: $proto
  api_key: provider-key-not-secret
  model: m
keys:
  - sha256: $(sha "fp-soak-$a")
    label: soak
EOF
done
"$FLEXI" check --config "$RUN/flexiproxy.yaml" >"$RUN/check.log" 2>&1 || die "flexiproxy check failed: $(cat "$RUN/check.log")"
setsid "$FLEXI" serve --config "$RUN/flexiproxy.yaml" >"$RUN/flexiproxy.log" 2>&1 &
FP_PID=$!
PIDS+=("$FP_PID")
waitport "$PORT" || die "FlexiProxy did not start: $(tail -n 20 "$RUN/flexiproxy.log")"

{
    echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "commit: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')"
    echo "nproc: $(nproc); load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "run: ${SECONDS_TOTAL}s at $RATE requests/s"
} | tee "$OUT/machine.txt" >&2
log "soak: ${SECONDS_TOTAL}s at $RATE requests/s against FlexiProxy (pid $FP_PID)"
status=0
python3 "$HELPER" load "http://127.0.0.1:$PORT" "$FP_PID" "$SECONDS_TOTAL" "$RATE" "$OUT/samples.tsv" \
    >"$OUT/load.txt" || status=$?
cat "$OUT/load.txt" >&2
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/machine.txt"
{
    echo '```'
    cat "$OUT/machine.txt" "$OUT/load.txt"
    echo '```'
    echo
    python3 "$HELPER" report "$OUT/samples.tsv"
} >"$OUT/report.md"
cat "$OUT/report.md"
log "results in $OUT (report.md, samples.tsv; logs in run/)"
exit "$status"
