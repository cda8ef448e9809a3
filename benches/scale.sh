#!/usr/bin/env bash
# Scale-out benchmark (issue 19): what the shared backends cost a request, next to the
# embedded defaults, in one run, in alternating rounds.
#
#   limits  local   per-key limits in process (requests_per_minute + concurrent_requests set)
#           redis   the same limits in Redis (limits.backend: redis): two Lua calls per request
#   stats   sqlite  usage statistics on, SQLite file (the embedded default)
#           postgres  usage statistics on, PostgreSQL (stats.backend: postgres)
#
# Each at 1 and 8 connections with wrk (small Anthropic request translated to an
# OpenAI-compatible fake provider), --rounds times alternating, printing req/s, p50 and p99.
# Redis and PostgreSQL are started on free loopback ports in a temp dir and stopped at the
# end (Debian's redis-server and postgresql; scripts/deps.sh installs them).
#
# Usage: benches/scale.sh [--duration SECONDS] [--rounds N] [--skip-build] [--out FILE]
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DURATION=10
ROUNDS=2
SKIP_BUILD=0
OUT=""
while [ $# -gt 0 ]; do
    case $1 in
        --duration) DURATION=$2; shift 2 ;;
        --rounds) ROUNDS=$2; shift 2 ;;
        --skip-build) SKIP_BUILD=1; shift ;;
        --out) OUT=$2; shift 2 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 1; }
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
if [ "$SKIP_BUILD" = 0 ]; then
    (cd "$ROOT" && cargo build --release --quiet --bin flexiproxy \
        && cargo build --release --quiet -p flexiproxy-testkit --bin fake-provider)
fi
FP=$TARGET/release/flexiproxy
FAKE=$TARGET/release/fake-provider

RUN=$(mktemp -d /tmp/flexiproxy-scale.XXXXXX)
chmod 0755 "$RUN"
PIDS=()
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1)
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    if [ -d "$RUN/pg" ]; then as_pg "$PGBIN/pg_ctl" -D "$RUN/pg" -m immediate stop >/dev/null 2>&1 || true; fi
    rm -rf "$RUN"
}
trap cleanup EXIT
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 1 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done; echo "port $1 never opened" >&2; exit 1; }

# Redis and PostgreSQL on loopback.
REDIS_PORT=$(free_port)
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no --dir "$RUN" >"$RUN/redis.log" 2>&1 &
PIDS+=($!)
PG_PORT=$(free_port)
mkdir "$RUN/pg"
[ "$(id -u)" = 0 ] && chown postgres "$RUN/pg"
as_pg "$PGBIN/initdb" -D "$RUN/pg" -A trust -U postgres >/dev/null
as_pg "$PGBIN/pg_ctl" -D "$RUN/pg" -l "$RUN/pg/log" -w -o "-p $PG_PORT -k $RUN/pg -c listen_addresses=127.0.0.1" start >/dev/null
psql -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -c "create database flexiproxy" >/dev/null
wait_port "$REDIS_PORT"

FAKE_PORT=$(free_port)
"$FAKE" --listen "127.0.0.1:$FAKE_PORT" --mode json >"$RUN/fake.log" 2>&1 &
PIDS+=($!)
wait_port "$FAKE_PORT"

KEY=fp-bench-scale-key
HASH=$(printf %s "$KEY" | sha256sum | cut -d' ' -f1)
cat >"$RUN/post.lua" <<LUA
wrk.method = "POST"
wrk.body = '{"model":"claude-sonnet-4-5","max_tokens":64,"messages":[{"role":"user","content":"Hello there"}]}'
wrk.headers["content-type"] = "application/json"
wrk.headers["x-api-key"] = "$KEY"
done = function(summary, latency, requests)
  io.write(string.format("RESULT %d %d %d %d %d\n", summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99), summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.timeout))
end
LUA

# config NAME EXTRA-YAML LIMITS-YAML: a config dir with one adapter.
config() {
    local dir=$RUN/$1 port
    port=$(free_port)
    mkdir -p "$dir/adapters"
    printf 'listen: 127.0.0.1:%s\nthreads: 1\naccess_log:\n  enabled: false\nadmin:\n  enabled: false\n%s' "$port" "$2" >"$dir/flexiproxy.yaml"
    printf 'source:\n  base_url: http://127.0.0.1:%s/v1\n  api_key: sk-bench\n  model: m\nkeys:\n  - sha256: %s\n%s' \
        "$FAKE_PORT" "$HASH" "$3" >"$dir/adapters/a.yaml"
    echo "$port"
}
LIMITS=$'limits:\n  requests_per_minute: 10000000\n  concurrent_requests: 100000\n'
declare -A PORT
PORT[limits-local]=$(config limits-local "" "$LIMITS")
PORT[limits-redis]=$(config limits-redis "$(printf 'limits:\n  backend: redis\nredis:\n  url: redis://127.0.0.1:%s/\n' "$REDIS_PORT")" "$LIMITS")
PORT[stats-sqlite]=$(config stats-sqlite $'stats:\n  enabled: true\n' "")
PORT[stats-postgres]=$(config stats-postgres "$(printf 'stats:\n  enabled: true\n  backend: postgres\n  url: postgres://postgres@127.0.0.1:%s/flexiproxy\n' "$PG_PORT")" "")

# bench NAME CONNS: start the proxy for NAME, warm up, measure, stop; prints "rps p50 p99".
bench() {
    local name=$1 conns=$2 port=${PORT[$1]} pid out req dur p50 p99 errs
    FLEXIPROXY_REASONING_KEY=bench "$FP" serve --config "$RUN/$name/flexiproxy.yaml" >"$RUN/$name.log" 2>&1 &
    pid=$!
    wait_port "$port"
    wrk -t1 -c"$conns" -d2s -s "$RUN/post.lua" "http://127.0.0.1:$port/v1/messages" >/dev/null 2>&1 || true
    out=$(wrk -t1 -c"$conns" -d"${DURATION}s" -s "$RUN/post.lua" "http://127.0.0.1:$port/v1/messages" 2>&1 | grep '^RESULT')
    kill "$pid"; wait "$pid" 2>/dev/null || true
    read -r _ req dur p50 p99 errs <<<"$out"
    if [ "$errs" != 0 ]; then echo "$name c=$conns: $errs errors" >&2; fi
    awk -v r="$req" -v d="$dur" -v a="$p50" -v b="$p99" 'BEGIN { printf "%.0f %.2f %.2f\n", r / (d / 1e6), a / 1000, b / 1000 }'
}

declare -A RESULTS
for round in $(seq 1 "$ROUNDS"); do
    for pair in "limits-local limits-redis" "stats-sqlite stats-postgres"; do
        for conns in 1 8; do
            for name in $pair; do
                RESULTS["$name $conns $round"]=$(bench "$name" "$conns")
                echo "round $round $name c=$conns: ${RESULTS["$name $conns $round"]}" >&2
            done
        done
    done
done

{
    echo "| workload | c | round | req/s | p50 ms | p99 ms |"
    echo "|---|---|---|---|---|---|"
    for name in limits-local limits-redis stats-sqlite stats-postgres; do
        for conns in 1 8; do
            for round in $(seq 1 "$ROUNDS"); do
                read -r rps p50 p99 <<<"${RESULTS["$name $conns $round"]}"
                echo "| $name | $conns | $round | $rps | $p50 | $p99 |"
            done
        done
    done
} | tee "${OUT:-/dev/null}"
