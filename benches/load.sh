#!/usr/bin/env bash
# shellcheck disable=SC2154  # ADDR_*, PID_*, BARE_*, PIDBARE_* are set with printf -v
# Load benchmark of FlexiProxy (issue 5): req/s and p50/p99 with wrk for
#
#   direct-to-provider, a bare Pingora passthrough (examples/bare_passthrough.rs), FlexiProxy
#   translating (Anthropic client -> OpenAI-compatible provider: small and 75 KB requests,
#   non-streaming, and a 75 KB streaming request with a 124-event response) and FlexiProxy's
#   Anthropic passthrough (issue 8) -- each at 1 and at 8 connections --; the translating
#   rows also through the same adapters with inspect: { keep: 50 } in a second FlexiProxy
#   (target flexiproxy-inspect, issue 29), alternating with the plain one
#
# plus FlexiProxy's RSS (VmHWM) after the runs and with 1,000 streams held open by a slow
# provider. With --peers, the same loads also go through LiteLLM's proxy and
# claude-code-router, installed into a scratch directory, in the same run.
#
# Every run must have zero non-2xx responses and zero socket errors; every target is checked
# once with a real request (status and response shape) before it is loaded.
#
# Usage: benches/load.sh [--peers] [--duration SECONDS] [--warmup SECONDS] [--conns "1 8"]
#                        [--threads N] [--layout pinned|shared] [--streams N]
#                        [--only REGEX] [--out DIR] [--skip-build] [--no-diagnostics]
#                        [--wait-quiet SECONDS] [--max-other PERCENT] [--retries N]
#                        [--rounds N]
#
#   --peers        also install and measure LiteLLM and claude-code-router
#   --duration     seconds per measured wrk run (default 10)
#   --warmup       seconds of unrecorded load before each run (default 2)
#   --conns        connection counts (default "1 8")
#   --threads      worker threads of FlexiProxy and the bare passthrough (default 1)
#   --layout       pinned (default): proxies (and the peer gateways) on CPUs 0..threads-1,
#                  wrk, the fake providers and the stream client on the other CPUs;
#                  shared: no pinning
#   --streams      concurrent streams for the memory test (default 1000; 0 skips it)
#   --only REGEX   run only the rows whose "workload target" matches (quick checks)
#   --out DIR      where results and logs go (default $FP_BENCH_SCRATCH/results/<time>)
#   --skip-build   use the binaries already built
#   --wait-quiet S wait up to S seconds (default 0) for other processes to go quiet before
#                  the load runs
#   --max-other P  a run during which processes outside the benchmark took more than P% of
#                  one CPU (default 15) is measured again, after waiting up to 120 s for quiet,
#                  up to --retries times in all (default 3); the quietest attempt is kept, and
#                  the "other CPU" column shows what it was. Errors of discarded attempts and
#                  of warm-ups are counted in the socket errors column too.
#   --rounds N     measure bare Pingora and FlexiProxy N times per workload (default 1),
#                  alternating: bare, FlexiProxy, bare, FlexiProxy... Single runs of the same
#                  binary swing by 20-30 % on a shared VM; the report then compares each
#                  FlexiProxy run with the bare run just before it and judges the ratios to
#                  bare Pingora by their median (the table shows each workload's median run)
#   --no-diagnostics  skip the two diagnostic targets (small and 75k only):
#                  bare-chunked  the bare passthrough with chunked framing both ways (what a
#                                body-rewriting proxy pays for not knowing the length early)
#                  fp-nolog      FlexiProxy with its access log off (the default is on, stdout)
#
# Environment: CARGO_TARGET_DIR (where to build), FP_BENCH_SCRATCH (default
# /tmp/flexiproxy-bench: peer installs, kept between runs), LITELLM_VERSION (default 1.108.7),
# CCR_VERSION (default 2.0.0). Ports are picked free on 127.0.0.1 every run.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
HELPER="$ROOT/benches/load_helper.py"
DURATION=10
WARMUP=2
CONNS="1 8"
THREADS=1
LAYOUT=pinned
STREAMS=1000
PEERS=0
ONLY=""
OUT=""
SKIP_BUILD=0
DIAG=1
WAIT_QUIET=0
MAX_OTHER=15
RETRIES=3
ROUNDS=1
ROUND=1
QUIET_WAIT=120
SCRATCH=${FP_BENCH_SCRATCH:-/tmp/flexiproxy-bench}
LITELLM_VERSION=${LITELLM_VERSION:-1.108.7}
CCR_VERSION=${CCR_VERSION:-2.0.0}

while [ $# -gt 0 ]; do
    case "$1" in
        --peers) PEERS=1 ;;
        --duration) DURATION=$2; shift ;;
        --warmup) WARMUP=$2; shift ;;
        --conns) CONNS=$2; shift ;;
        --threads) THREADS=$2; shift ;;
        --layout) LAYOUT=$2; shift ;;
        --streams) STREAMS=$2; shift ;;
        --only) ONLY=$2; shift ;;
        --out) OUT=$2; shift ;;
        --skip-build) SKIP_BUILD=1 ;;
        --no-diagnostics) DIAG=0 ;;
        --wait-quiet) WAIT_QUIET=$2; shift ;;
        --max-other) MAX_OTHER=$2; shift ;;
        --retries) RETRIES=$2; shift ;;
        --rounds) ROUNDS=$2; shift ;;
        -h|--help) sed -n '3,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || { echo "--rounds takes a positive number, not '$ROUNDS'" >&2; exit 2; }

log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# ------------------------------------------------------------------------------------------
# Tools

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
APT_UPDATED=0
apt_install() {
    command -v apt-get >/dev/null || die "need $* (no apt-get here: install it yourself)"
    if [ $APT_UPDATED -eq 0 ]; then
        $SUDO apt-get update -qq
        APT_UPDATED=1
    fi
    log "installing $* with apt-get"
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}
command -v wrk >/dev/null || apt_install wrk
command -v taskset >/dev/null || apt_install util-linux
command -v python3 >/dev/null || apt_install python3
command -v cargo >/dev/null || die "need a Rust toolchain (cargo)"
if [ $PEERS -eq 1 ]; then
    python3 -c 'import ensurepip, venv' 2>/dev/null || apt_install python3-venv
    command -v npm >/dev/null || apt_install nodejs npm
fi

# 1,000 held streams need ~3,000 descriptors across client, proxy and provider.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
[ "$(ulimit -n)" = unlimited ] || [ "$(ulimit -n)" -ge 4096 ] || log "warning: ulimit -n is $(ulimit -n)"

# ------------------------------------------------------------------------------------------
# Build

TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
if [ $SKIP_BUILD -eq 0 ]; then
    log "building FlexiProxy, the bare passthrough and the fake provider (release)"
    (cd "$ROOT" && cargo build --release --quiet --bin flexiproxy --example bare_passthrough \
        && cargo build --release --quiet -p flexiproxy-testkit --bin fake-provider)
fi
FLEXI=$TARGET/release/flexiproxy
BARE=$TARGET/release/examples/bare_passthrough
FAKE=$TARGET/release/fake-provider
for b in "$FLEXI" "$BARE" "$FAKE"; do [ -x "$b" ] || die "missing $b (build first)"; done

# ------------------------------------------------------------------------------------------
# Processes: every one in its own session, stopped (with its children) on exit.

OUT=${OUT:-$SCRATCH/results/$(date +%Y%m%d-%H%M%S)}
RUN=$OUT/run
mkdir -p "$RUN"
OUT=$(cd "$OUT" && pwd)
RUN=$OUT/run
PIDS=()

# SIGINT first: FlexiProxy and Pingora treat it as a fast shutdown (SIGTERM waits out a 30 s
# grace period); the others exit on it too. SIGKILL after 5 s.
stop_pid() {
    local pid=$1
    kill -INT -- "-$pid" 2>/dev/null || kill -INT "$pid" 2>/dev/null || return 0
    for _ in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL -- "-$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
    PIDS=()
}
trap cleanup EXIT
trap 'exit 130' INT TERM

NCPU=$(nproc)
CLK_TCK=$(getconf CLK_TCK)
PROXY_CPUS=""
LOAD_CPUS=""
if [ "$LAYOUT" = pinned ] && [ "$NCPU" -gt "$THREADS" ]; then
    PROXY_CPUS="0-$((THREADS - 1))"
    LOAD_CPUS="$THREADS-$((NCPU - 1))"
fi
pin() { # pin CPUS CMD...  (CPUS empty: unpinned)
    local cpus=$1
    shift
    if [ -n "$cpus" ]; then taskset -c "$cpus" "$@"; else "$@"; fi
}

# start NAME CPUS CMD... : runs CMD in the background, logs to $RUN/NAME.log, sets LAST_PID.
start() {
    local name=$1 cpus=$2
    shift 2
    if [ -n "$cpus" ]; then
        setsid taskset -c "$cpus" "$@" >"$RUN/$name.log" 2>&1 &
    else
        setsid "$@" >"$RUN/$name.log" 2>&1 &
    fi
    LAST_PID=$!
    PIDS+=("$LAST_PID")
}

forget() { # drop a stopped PID from the cleanup list
    local keep=() p
    for p in "${PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
    PIDS=("${keep[@]}")
}

# fake NAME MODE [ARGS...]: starts a fake provider on a free port; sets ADDR_<NAME>.
fake() {
    local name=$1 mode=$2 addr=""
    shift 2
    start "fake-$name" "$LOAD_CPUS" "$FAKE" --listen 127.0.0.1:0 --mode "$mode" --threads 1 "$@"
    for _ in $(seq 100); do
        # The log file appears when the process starts: not there yet is "not listening yet".
        addr=$(sed -n 's|^listening on http://||p' "$RUN/fake-$name.log" 2>/dev/null | head -n1 || true)
        [ -n "$addr" ] && break
        sleep 0.1
    done
    [ -n "$addr" ] || die "fake provider $name did not start: $(cat "$RUN/fake-$name.log")"
    printf -v "ADDR_$name" '%s' "$addr"
    printf -v "PID_$name" '%s' "$LAST_PID"
}

freeport() { python3 "$HELPER" freeport; }
waitport() { python3 "$HELPER" waitport "$1" "${2:-30}"; }

mb() { awk -v kb="$1" 'BEGIN { printf "%.1f MB", kb / 1024 }'; }

# ------------------------------------------------------------------------------------------
# Measuring

RESULTS=$OUT/results.tsv
MEM=$OUT/mem.tsv
NOTES=$OUT/notes.txt
printf 'workload\ttarget\tconns\trps\tp50_us\tp99_us\trequests\tnon2xx\tsock_errors\twarm_errors\tmb_s\tcpu_us_per_req\tother_cpu_pct\tround\n' >"$RESULTS"
: >"$MEM"
: >"$NOTES"

cat >"$RUN/post.lua" <<'LUA'
-- POST the body in $FPB_BODY with the key in $FPB_KEY; print one machine-readable line.
local f = assert(io.open(os.getenv("FPB_BODY"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["content-type"] = "application/json"
wrk.headers["anthropic-version"] = "2023-06-01"
local key = os.getenv("FPB_KEY") or ""
if key ~= "" then wrk.headers["x-api-key"] = key end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "FPB_RESULT requests=%d duration_us=%d bytes=%d p50_us=%d p99_us=%d connect=%d read=%d write=%d timeout=%d status=%d\n",
    summary.requests, summary.duration, summary.bytes, latency:percentile(50),
    latency:percentile(99), e.connect, e.read, e.write, e.timeout, e.status))
end
LUA

# wrk_run URL BODY KEY CONNS SECONDS -> prints the FPB_RESULT line
wrk_run() {
    local url=$1 body=$2 key=$3 conns=$4 secs=$5 out
    out=$(FPB_BODY=$body FPB_KEY=$key pin "$LOAD_CPUS" \
        wrk -t1 -c"$conns" -d"${secs}s" --timeout 30s -s "$RUN/post.lua" "$url" 2>&1) || true
    printf '%s\n' "$out" >>"$RUN/wrk.log"
    grep '^FPB_RESULT' <<<"$out" || echo "FPB_RESULT requests=0 duration_us=1 bytes=0 p50_us=0 p99_us=0 connect=1 read=0 write=0 timeout=0 status=0"
}

field() { sed -n "s/.* $2=\([0-9]*\).*/\1/p" <<<" $1"; }
errors_of() { echo $(($(field "$1" connect) + $(field "$1" read) + $(field "$1" write) + $(field "$1" timeout) + $(field "$1" status))); }

# cputicks PID: user+system CPU ticks of PID and its descendants
cputicks() { python3 "$HELPER" cputicks "$1"; }

# measure WORKLOAD TARGET URL BODY KEY KIND PID: a shape check, then warm-up and run per
# conns. PID is the process whose CPU time per request is recorded (the proxy; for direct,
# the provider).
measure() {
    local workload=$1 target=$2 url=$3 body=$4 key=$5 kind=$6 pid=$7 c r w t0 t1
    local req dur bytes p50 p99 sock non2xx warm rps mbs cpu other b0 o0 b1 o1 best_cpu
    if [ -n "$ONLY" ] && ! grep -Eq -- "$ONLY" <<<"$workload $target"; then return 0; fi
    if ! python3 "$HELPER" check "$url" "$body" "$kind" "x-api-key: $key" \
        "anthropic-version: 2023-06-01" 2>>"$NOTES"; then
        log "CHECK FAILED: $workload via $target (see $NOTES); not measured"
        echo "$workload via $target: check failed, not measured" >>"$NOTES"
        return 0
    fi
    for c in $CONNS; do
        local attempt=1 best="" best_other=100000 extra_errors=0
        while :; do
            w=$(wrk_run "$url" "$body" "$key" "$c" "$WARMUP")
            t0=$(cputicks "$pid")
            read -r b0 o0 < <(python3 "$HELPER" busy $$)
            r=$(wrk_run "$url" "$body" "$key" "$c" "$DURATION")
            read -r b1 o1 < <(python3 "$HELPER" busy $$)
            t1=$(cputicks "$pid")
            dur=$(field "$r" duration_us)
            # CPU taken by processes that are not part of this benchmark, in % of one CPU.
            other=$(awk -v b="$((b1 - b0))" -v o="$((o1 - o0))" -v d="$dur" -v hz="$CLK_TCK" \
                'BEGIN { x = (b - o) / hz / (d / 1e6) * 100; printf "%.0f", x < 0 ? 0 : x }')
            warm=$(($(field "$w" connect) + $(field "$w" read) + $(field "$w" write) + $(field "$w" timeout) + $(field "$w" status)))
            extra_errors=$((extra_errors + warm))
            if [ "$other" -lt "$best_other" ]; then
                [ -n "$best" ] && extra_errors=$((extra_errors + $(errors_of "$best")))
                best=$r best_other=$other best_cpu=$((t1 - t0))
            else
                extra_errors=$((extra_errors + $(errors_of "$r")))
            fi
            if [ "$other" -le "$MAX_OTHER" ] || [ "$attempt" -ge "$RETRIES" ]; then break; fi
            log "$workload via $target c=$c: other processes took ${other}% of a CPU; measuring again"
            echo "$workload via $target c=$c: attempt $attempt discarded (other CPU ${other}%)" >>"$NOTES"
            python3 "$HELPER" waitquiet $$ "$QUIET_WAIT" "$MAX_OTHER" 2>/dev/null || true
            attempt=$((attempt + 1))
        done
        r=$best
        other=$best_other
        req=$(field "$r" requests)
        dur=$(field "$r" duration_us)
        bytes=$(field "$r" bytes)
        p50=$(field "$r" p50_us)
        p99=$(field "$r" p99_us)
        sock=$(($(field "$r" connect) + $(field "$r" read) + $(field "$r" write) + $(field "$r" timeout)))
        non2xx=$(field "$r" status)
        warm=$extra_errors
        rps=$(awk -v n="$req" -v d="$dur" 'BEGIN { printf "%.1f", n / (d / 1e6) }')
        mbs=$(awk -v n="$bytes" -v d="$dur" 'BEGIN { printf "%.2f", n / (d / 1e6) / 1e6 }')
        cpu=$(awk -v t="$best_cpu" -v n="$req" -v hz="$CLK_TCK" 'BEGIN { printf "%.0f", n ? t * 1e6 / hz / n : 0 }')
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$workload" "$target" "$c" \
            "$rps" "$p50" "$p99" "$req" "$non2xx" "$sock" "$warm" "$mbs" "$cpu" "$other" "$ROUND" >>"$RESULTS"
        log "$([ "$ROUNDS" -gt 1 ] && printf 'round %s/%s  ' "$ROUND" "$ROUNDS")$(printf '%-16s %-14s c=%-3s %9s req/s  p50 %6s us  p99 %7s us  cpu %5s us/req  non-2xx %s  socket errors %s  other CPU %s%%' \
            "$workload" "$target" "$c" "$rps" "$p50" "$p99" "$cpu" "$non2xx" "$((sock + warm))" "$other")"
    done
}

# ------------------------------------------------------------------------------------------
# The machine and the inputs

{
    echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "commit: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" diff --quiet HEAD -- src Cargo.toml 2>/dev/null || echo ' (+ uncommitted changes in src/ or Cargo.toml)')"
    echo "nproc: $NCPU"
    echo "cpu: $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)"
    echo "memory: $(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
    echo "kernel: $(uname -r)"
    echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "other CPU: the CPU time, in % of one CPU, that processes outside this benchmark took during each run"
    echo "flexiproxy binary: $FLEXI, built $(date -u -r "$FLEXI" +%Y-%m-%dT%H:%M:%SZ)"
    echo "wrk: $(wrk -v 2>&1 | head -n1)"
    echo "layout: $LAYOUT; proxies on CPUs ${PROXY_CPUS:-any}, wrk + fake providers on CPUs ${LOAD_CPUS:-any}; proxy threads $THREADS"
    echo "runs: wrk -t1 -c{$CONNS} -d${DURATION}s after ${WARMUP}s warm-up, --timeout 30s; bare Pingora and FlexiProxy alternately, $ROUNDS round(s)"
} | tee "$OUT/machine.txt" >&2

python3 "$HELPER" bodies "$ROOT/tests/fixtures" "$RUN/bodies" >"$RUN/bodies.txt"
SMALL=$RUN/bodies/small.json
BIG=$RUN/bodies/big.json
BIG_STREAM=$RUN/bodies/big-stream.json
SMALL_STREAM=$RUN/bodies/small-stream.json
CODEX=$RUN/bodies/codex.json
CODEX_STREAM=$RUN/bodies/codex-stream.json
sed 's/^/body /' "$RUN/bodies.txt" >&2

# ------------------------------------------------------------------------------------------
# Fake providers (fixed bodies built at startup), bare passthroughs, FlexiProxy

log "starting fake providers"
fake json json
fake sse sse
fake ajson anthropic-json
fake asse anthropic-sse
fake slow slow-sse --slow-interval-ms 100
fake rjson responses-json
fake rsse responses-sse

log "starting bare Pingora passthroughs"
for up in json sse ajson asse rjson rsse; do
    port=$(freeport)
    upstream_var="ADDR_$up"
    start "bare-$up" "$PROXY_CPUS" "$BARE" --listen "127.0.0.1:$port" --upstream "${!upstream_var}" --threads "$THREADS"
    printf -v "BARE_$up" '%s' "127.0.0.1:$port"
    printf -v "PIDBARE_$up" '%s' "$LAST_PID"
    waitport "127.0.0.1:$port"
done
if [ $DIAG -eq 1 ]; then
    port=$(freeport)
    start bare-chunked "$PROXY_CPUS" "$BARE" --listen "127.0.0.1:$port" --upstream "$ADDR_json" --threads "$THREADS" --chunked
    BARE_chunked=127.0.0.1:$port
    BARE_CHUNKED_PID=$LAST_PID
    waitport "$BARE_chunked"
fi

log "starting FlexiProxy"
FP_DIR=$RUN/flexiproxy
mkdir -p "$FP_DIR/adapters"
FP_PORT=$(freeport)
# Defaults otherwise (access log on, to stdout = $RUN/flexiproxy.log; admin listener on, on a
# free port instead of the fixed default so a running FlexiProxy does not get in the way).
cat >"$FP_DIR/flexiproxy.yaml" <<EOF
listen: 127.0.0.1:$FP_PORT
threads: $THREADS
adapters_dir: adapters
admin:
  listen: 127.0.0.1:$(freeport)
EOF
sha() { printf '%s' "$1" | sha256sum | cut -d' ' -f1; }
adapter() { # adapter NAME PROTOCOL BASE_URL
    cat >"$FP_DIR/adapters/$1.yaml" <<EOF
source:
  base_url: $3
  protocol: $2
  api_key: provider-key-not-secret
  model: m
keys:
  - sha256: $(sha "fp-bench-$1")
    label: bench
EOF
}
adapter json openai "http://$ADDR_json/v1"
# Issue 25: the same upstream behind ten routes (none matching: the default route serves)
# and a sticky pool of three keys, so every request is decoded for routing and hashed to a key.
{
    printf 'source:\n  base_url: http://%s/v1\n  protocol: openai\n' "$ADDR_json"
    printf '  api_keys: [provider-key-1, provider-key-2, provider-key-3]\n  model: m\nroutes:\n'
    for i in $(seq 10); do
        printf '  - when: { model: "gpt-%s-*", thinking: true }\n' "$i"
        printf '    source: { base_url: "http://%s/v1", api_key: k, model: m }\n' "$ADDR_json"
    done
    printf 'keys:\n  - sha256: %s\n    label: bench\n' "$(sha fp-bench-routed)"
} >"$FP_DIR/adapters/routed.yaml"
adapter sse openai "http://$ADDR_sse/v1"
adapter slow openai "http://$ADDR_slow/v1"
adapter ajson anthropic "http://$ADDR_ajson"
adapter asse anthropic "http://$ADDR_asse"
adapter rjson responses "http://$ADDR_rjson/v1"
adapter rsse responses "http://$ADDR_rsse/v1"
"$FLEXI" check --config "$FP_DIR/flexiproxy.yaml" >"$RUN/flexiproxy-check.log" 2>&1 \
    || die "flexiproxy check failed: $(cat "$RUN/flexiproxy-check.log")"
start flexiproxy "$PROXY_CPUS" "$FLEXI" serve --config "$FP_DIR/flexiproxy.yaml"
FP_PID=$LAST_PID
waitport "127.0.0.1:$FP_PORT" || die "FlexiProxy did not start: $(tail -n 20 "$RUN/flexiproxy.log")"
FP=http://127.0.0.1:$FP_PORT
if [ $DIAG -eq 1 ]; then
    NOLOG_PORT=$(freeport)
    mkdir -p "$RUN/fp-nolog"
    cat >"$RUN/fp-nolog/flexiproxy.yaml" <<EOF
listen: 127.0.0.1:$NOLOG_PORT
threads: $THREADS
adapters_dir: ../flexiproxy/adapters
admin:
  listen: 127.0.0.1:$(freeport)
access_log:
  enabled: false
EOF
    start fp-nolog "$PROXY_CPUS" "$FLEXI" serve --config "$RUN/fp-nolog/flexiproxy.yaml"
    NOLOG_PID=$LAST_PID
    waitport "127.0.0.1:$NOLOG_PORT" || die "FlexiProxy (no access log) did not start"
fi
# Issue 29: the same translated adapters with the inspector on (inspect: { keep: 50 }), in a
# process of their own so its CPU per request and RSS are its own.
INSPECT_PORT=$(freeport)
mkdir -p "$RUN/fp-inspect/adapters"
for a in json sse; do
    { cat "$FP_DIR/adapters/$a.yaml"; echo 'inspect: { keep: 50 }'; } >"$RUN/fp-inspect/adapters/$a.yaml"
done
cat >"$RUN/fp-inspect/flexiproxy.yaml" <<EOF
listen: 127.0.0.1:$INSPECT_PORT
threads: $THREADS
adapters_dir: adapters
admin:
  listen: 127.0.0.1:$(freeport)
EOF
start fp-inspect "$PROXY_CPUS" "$FLEXI" serve --config "$RUN/fp-inspect/flexiproxy.yaml"
INSPECT_PID=$LAST_PID
waitport "127.0.0.1:$INSPECT_PORT" || die "FlexiProxy (inspected) did not start: $(tail -n 20 "$RUN/fp-inspect.log")"
read -r rss hwm < <(python3 "$HELPER" rss "$FP_PID")
printf 'flexiproxy RSS at start\t%s\n' "$(mb "$rss")" >>"$MEM"
read -r rss hwm < <(python3 "$HELPER" rss "$INSPECT_PID")
printf 'flexiproxy-inspect RSS at start\t%s\n' "$(mb "$rss")" >>"$MEM"

# ------------------------------------------------------------------------------------------
# FlexiProxy, direct and bare

if [ "$WAIT_QUIET" -gt 0 ]; then
    log "waiting up to ${WAIT_QUIET}s for other processes to go quiet"
    python3 "$HELPER" waitquiet $$ "$WAIT_QUIET" "$MAX_OTHER" || true
fi
log "load runs: direct, bare Pingora, FlexiProxy"
for w in small 75k stream-75k; do
    case $w in
        small) body=$SMALL; up=json; okind=openai-json; akind=anthropic-json; key=fp-bench-json ;;
        75k) body=$BIG; up=json; okind=openai-json; akind=anthropic-json; key=fp-bench-json ;;
        stream-75k) body=$BIG_STREAM; up=sse; okind=openai-sse; akind=anthropic-sse; key=fp-bench-sse ;;
    esac
    a="ADDR_$up"
    b="BARE_$up"
    p="PID_$up"
    bp="PIDBARE_$up"
    measure "$w" direct "http://${!a}/v1/chat/completions" "$body" "" "$okind" "${!p}"
    for ROUND in $(seq "$ROUNDS"); do
        measure "$w" bare-pingora "http://${!b}/v1/chat/completions" "$body" "" "$okind" "${!bp}"
        measure "$w" flexiproxy "$FP/v1/messages" "$body" "$key" "$akind" "$FP_PID"
        measure "$w" flexiproxy-inspect "http://127.0.0.1:$INSPECT_PORT/v1/messages" "$body" "$key" "$akind" "$INSPECT_PID"
        if [ "$w" != stream-75k ]; then
            measure "$w" flexiproxy-routed "$FP/v1/messages" "$body" fp-bench-routed "$akind" "$FP_PID"
        fi
    done
    ROUND=1
    if [ $DIAG -eq 1 ] && [ "$w" != stream-75k ]; then
        measure "$w" bare-chunked "http://$BARE_chunked/v1/chat/completions" "$body" "" "$okind" "$BARE_CHUNKED_PID"
        measure "$w" fp-nolog "http://127.0.0.1:$NOLOG_PORT/v1/messages" "$body" "$key" "$akind" "$NOLOG_PID"
    fi
done
for w in anth-small anth-75k anth-stream-75k; do
    case $w in
        anth-small) body=$SMALL; up=ajson; kind=anthropic-json ;;
        anth-75k) body=$BIG; up=ajson; kind=anthropic-json ;;
        anth-stream-75k) body=$BIG_STREAM; up=asse; kind=anthropic-sse ;;
    esac
    a="ADDR_$up"
    b="BARE_$up"
    p="PID_$up"
    bp="PIDBARE_$up"
    measure "$w" direct "http://${!a}/v1/messages" "$body" "" "$kind" "${!p}"
    for ROUND in $(seq "$ROUNDS"); do
        measure "$w" bare-pingora "http://${!b}/v1/messages" "$body" "" "$kind" "${!bp}"
        measure "$w" flexiproxy "$FP/v1/messages" "$body" "fp-bench-$up" "$kind" "$FP_PID"
    done
    ROUND=1
done

# Issue 16: Codex's 45 KB request through the Responses passthrough.
for w in resp-codex-45k resp-stream-codex-45k; do
    case $w in
        resp-codex-45k) body=$CODEX; up=rjson; kind=responses-json ;;
        resp-stream-codex-45k) body=$CODEX_STREAM; up=rsse; kind=responses-sse ;;
    esac
    a="ADDR_$up"
    b="BARE_$up"
    p="PID_$up"
    bp="PIDBARE_$up"
    measure "$w" direct "http://${!a}/v1/responses" "$body" "" "$kind" "${!p}"
    for ROUND in $(seq "$ROUNDS"); do
        measure "$w" bare-pingora "http://${!b}/v1/responses" "$body" "" "$kind" "${!bp}"
        measure "$w" flexiproxy "$FP/v1/responses" "$body" "fp-bench-$up" "$kind" "$FP_PID"
    done
    ROUND=1
done

read -r rss hwm < <(python3 "$HELPER" rss "$FP_PID")
printf 'flexiproxy RSS after the load runs\t%s\n' "$(mb "$rss")" >>"$MEM"
printf 'flexiproxy peak RSS (VmHWM) after the load runs\t%s\n' "$(mb "$hwm")" >>"$MEM"
read -r rss hwm < <(python3 "$HELPER" rss "$INSPECT_PID")
printf 'flexiproxy-inspect RSS after the load runs\t%s (VmHWM %s)\n' "$(mb "$rss")" "$(mb "$hwm")" >>"$MEM"

# ------------------------------------------------------------------------------------------
# 1,000 streams held open by a slow provider (124 events, 100 ms apart: ~12 s each)

# hold NAME URL KEY PID KIND SIZE: hold $STREAMS streams open through one proxy.
hold() {
    local name=$1 url=$2 key=$3 pid=$4 kind=$5 size=$6 body line all_open failed
    body=$SMALL_STREAM
    [ "$size" = 75k ] && body=$BIG_STREAM
    log "holding $STREAMS streams open through $name ($size request, slow provider)"
    line=$(pin "$LOAD_CPUS" python3 "$HELPER" streams "$url" "$body" "$key" "$STREAMS" "$pid" "$kind") \
        || log "stream test reported a failure: $line"
    log "$line"
    echo "streams via $name ($size): $line" >>"$NOTES"
    all_open=$(sed -n 's/.*rss_all_open_max_kb=\([0-9]*\).*/\1/p' <<<"$line")
    failed=$(sed -n 's/.* failed=\([0-9]*\).*/\1/p' <<<"$line")
    printf '%s RSS, %s open streams (%s request)\t%s (max while all open; failed=%s)\n' \
        "$name" "$STREAMS" "$size" "$(mb "${all_open:-0}")" "${failed:-?}" >>"$MEM"
}

if [ "$STREAMS" -gt 0 ]; then
    # Small first: RSS does not shrink afterwards (freed memory stays in the allocator), so
    # each figure is the peak so far. The bare passthrough runs one fresh process per size.
    hold flexiproxy "$FP/v1/messages" fp-bench-slow "$FP_PID" anthropic small
    hold flexiproxy "$FP/v1/messages" fp-bench-slow "$FP_PID" anthropic 75k
    read -r rss hwm < <(python3 "$HELPER" rss "$FP_PID")
    printf 'flexiproxy RSS after the stream tests\t%s (VmHWM %s)\n' "$(mb "$rss")" "$(mb "$hwm")" >>"$MEM"
    # Issue 30: memory goes back to the OS within a minute of the burst's end.
    log "watching FlexiProxy's RSS for 60 s after the streams"
    read -r under rss < <(python3 "$HELPER" settle "$FP_PID" 60 51200)
    printf 'flexiproxy RSS 60 s after the stream tests\t%s (under 50 MB after %s)\n' "$(mb "$rss")" \
        "$([ "$under" -ge 0 ] && echo "${under} s" || echo 'never')" >>"$MEM"
    for size in small 75k; do
        port=$(freeport)
        start "bare-slow-$size" "$PROXY_CPUS" "$BARE" --listen "127.0.0.1:$port" --upstream "$ADDR_slow" --threads "$THREADS"
        waitport "127.0.0.1:$port"
        hold bare-pingora "http://127.0.0.1:$port/v1/chat/completions" "" "$LAST_PID" openai "$size"
        stop_pid "$LAST_PID"
        forget "$LAST_PID"
    done
fi

# ------------------------------------------------------------------------------------------
# Peer gateways: one instance per upstream (the fake providers answer every request with one
# fixed body, so JSON and SSE loads need different upstreams), started one at a time.

litellm_install() {
    LITELLM_VENV=$SCRATCH/litellm-$LITELLM_VERSION
    if [ ! -x "$LITELLM_VENV/bin/litellm" ]; then
        log "installing litellm[proxy]==$LITELLM_VERSION into $LITELLM_VENV"
        rm -rf "$LITELLM_VENV"
        python3 -m venv "$LITELLM_VENV"
        "$LITELLM_VENV/bin/pip" install -q --disable-pip-version-check "litellm[proxy]==$LITELLM_VERSION"
    fi
}

# litellm_start UPSTREAM_ADDR NAME: sets PEER_URL, PEER_PID, PEER_KEY. LiteLLM refuses to
# start without a master key; clients send it as x-api-key.
litellm_start() {
    local port
    port=$(freeport)
    PEER_KEY=sk-$(printf fp-bench-litellm | sha256sum | cut -c1-48)
    cat >"$RUN/litellm-$2.yaml" <<EOF
model_list:
  - model_name: claude-opus-5-5
    litellm_params:
      model: openai/m
      api_base: http://$1/v1
      api_key: provider-key-not-secret
litellm_settings:
  drop_params: true
general_settings:
  master_key: $PEER_KEY
EOF
    # LiteLLM >= 1.10x sends /v1/messages for openai/ models to the Responses API unless told
    # to use chat/completions; the local cost map avoids a fetch from GitHub at startup.
    start "litellm-$2" "$PROXY_CPUS" env LITELLM_USE_CHAT_COMPLETIONS_URL_FOR_ANTHROPIC_MESSAGES=True \
        LITELLM_LOCAL_MODEL_COST_MAP=True NO_PROXY='*' \
        "$LITELLM_VENV/bin/litellm" --config "$RUN/litellm-$2.yaml" --host 127.0.0.1 \
        --port "$port" --num_workers 1
    PEER_PID=$LAST_PID
    PEER_URL=http://127.0.0.1:$port/v1/messages
    waitport "127.0.0.1:$port" 180 || die "LiteLLM did not start: $(tail -n 20 "$RUN/litellm-$2.log")"
}

ccr_install() {
    CCR_DIR=$SCRATCH/ccr-$CCR_VERSION
    CCR_CLI=$CCR_DIR/node_modules/@musistudio/claude-code-router/dist/cli.js
    if [ ! -f "$CCR_CLI" ]; then
        log "installing @musistudio/claude-code-router@$CCR_VERSION into $CCR_DIR"
        mkdir -p "$CCR_DIR"
        npm install --prefix "$CCR_DIR" --no-audit --no-fund --loglevel=error \
            "@musistudio/claude-code-router@$CCR_VERSION" >/dev/null
    fi
}

# ccr_start UPSTREAM_ADDR NAME: sets PEER_URL, PEER_PID, PEER_KEY. Its config lives in
# $HOME/.claude-code-router/config.json, so each instance gets its own HOME. No APIKEY:
# on 127.0.0.1 it accepts any key. LOG false: no request logging to files.
ccr_start() {
    local port home
    port=$(freeport)
    PEER_KEY=fp-bench
    home=$RUN/ccr-home-$2
    mkdir -p "$home/.claude-code-router"
    cat >"$home/.claude-code-router/config.json" <<EOF
{
  "HOST": "127.0.0.1",
  "PORT": $port,
  "LOG": false,
  "API_TIMEOUT_MS": 600000,
  "Providers": [
    {
      "name": "fake",
      "api_base_url": "http://$1/v1/chat/completions",
      "api_key": "provider-key-not-secret",
      "models": ["m"]
    }
  ],
  "Router": { "default": "fake,m" }
}
EOF
    start "ccr-$2" "$PROXY_CPUS" env HOME="$home" NO_PROXY='*' node "$CCR_CLI" start
    PEER_PID=$LAST_PID
    PEER_URL=http://127.0.0.1:$port/v1/messages
    waitport "127.0.0.1:$port" 120 || die "claude-code-router did not start: $(tail -n 20 "$RUN/ccr-$2.log")"
}

# peer NAME: runs the translation workloads through that gateway, records its peak RSS.
peer() {
    local name=$1 hwm_max=0 rss hwm
    for phase in json sse; do
        if [ -n "$ONLY" ] && ! grep -Eq -- "$ONLY" <<<"$name"; then return 0; fi
        a="ADDR_$phase"
        "${name}_start" "${!a}" "$phase"
        sleep 2
        if [ $phase = json ]; then
            measure small "$name" "$PEER_URL" "$SMALL" "$PEER_KEY" "anthropic-json" "$PEER_PID"
            measure 75k "$name" "$PEER_URL" "$BIG" "$PEER_KEY" "anthropic-json" "$PEER_PID"
        else
            measure stream-75k "$name" "$PEER_URL" "$BIG_STREAM" "$PEER_KEY" "anthropic-sse" "$PEER_PID"
        fi
        read -r rss hwm < <(python3 "$HELPER" rss "$PEER_PID")
        [ "$hwm" -gt "$hwm_max" ] && hwm_max=$hwm
        printf '%s RSS after its %s runs\t%s (VmHWM %s, process tree)\n' "$name" "$phase" \
            "$(mb "$rss")" "$(mb "$hwm")" >>"$MEM"
        stop_pid "$PEER_PID"
        forget "$PEER_PID"
    done
}

if [ $PEERS -eq 1 ]; then
    litellm_install
    ccr_install
    {
        echo "litellm: $("$LITELLM_VENV/bin/pip" show litellm 2>/dev/null | sed -n 's/^Version: //p')"
        echo "claude-code-router: $(node -p "require('$CCR_DIR/node_modules/@musistudio/claude-code-router/package.json').version")"
        echo "node: $(node --version); python: $("$LITELLM_VENV/bin/python" --version 2>&1)"
    } | tee -a "$OUT/machine.txt" >&2
    log "load runs: LiteLLM"
    peer litellm
    log "load runs: claude-code-router"
    peer ccr
fi

# ------------------------------------------------------------------------------------------
# Report

read -r rss hwm < <(python3 "$HELPER" rss "$FP_PID")
printf 'flexiproxy peak RSS (VmHWM) at the end\t%s\n' "$(mb "$hwm")" >>"$MEM"
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/machine.txt" >&2
{
    echo '```'
    cat "$OUT/machine.txt"
    echo '```'
    echo
    python3 "$HELPER" table "$RESULTS" "$MEM"
    if [ -s "$NOTES" ]; then
        echo
        echo '```'
        cat "$NOTES"
        echo '```'
    fi
} >"$OUT/report.md"
cat "$OUT/report.md"
log "results in $OUT (report.md, results.tsv, mem.tsv; logs in run/)"
