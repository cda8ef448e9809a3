#!/usr/bin/env bash
# Criterion A/B of two commits in alternating rounds (the cost of a change on the translation
# path, e.g. issue 29's notes: benches/translate_ab.sh 7af8ee5 6f4ad2d): runs two builds of
# benches/translate.rs in turn — A (the tree before a change) and B (after) — on the same
# rows, and prints each round's point estimate and the medians. On a busy machine the same
# binary on both sides moved 70–163 µs between rounds: compare medians of many rounds.
#
# Usage: benches/translate_ab.sh BEFORE_REV AFTER_REV [ROUNDS] [FILTER...]
#   BEFORE_REV, AFTER_REV  the two commits (exported with git archive, both built into
#               $AB_TARGET, default /tmp/flexiproxy-ab-target, so the dependencies compile
#               once)
#   ROUNDS      default 6
#   FILTER      criterion filters, default request/claude_code_75k stream/one_event_per_read
# AB_BEFORE_BIN and AB_AFTER_BIN: two translate bench executables already built (no build).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BEFORE=${1:?the commit before the change}
AFTER=${2:?the commit with the change}
ROUNDS=${3:-6}
shift $(( $# >= 3 ? 3 : $# ))
FILTERS=("$@")
[ ${#FILTERS[@]} -gt 0 ] || FILTERS=(request/claude_code_75k stream/one_event_per_read)
TARGET=${AB_TARGET:-/tmp/flexiproxy-ab-target}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# bench_binary DIR OUT: builds DIR's translate bench into $TARGET and copies it to OUT (the
# newest translate-* executable there: the one just built).
bench_binary() {
    # git archive stamps files with the commit's time, older than the target's last build:
    # cargo would call the second tree fresh and hand back the first tree's binary (the two
    # trees share one fingerprint, workspace paths being relative). Stamp them now.
    find "$1" -type f -exec touch {} +
    (cd "$1" && CARGO_TARGET_DIR=$TARGET cargo bench --bench translate --no-run)
    find "$TARGET/release/deps" -maxdepth 1 -name 'translate-*' -type f -executable \
        -printf '%T@ %p\n' | sort -n | tail -n1 | cut -d' ' -f2 | xargs -I{} cp {} "$2"
}
if [ -n "${AB_BEFORE_BIN:-}" ] && [ -n "${AB_AFTER_BIN:-}" ]; then
    cp "$AB_BEFORE_BIN" "$WORK/a" && cp "$AB_AFTER_BIN" "$WORK/b"
else
    mkdir -p "$WORK/before" "$WORK/after"
    git -C "$ROOT" archive "$BEFORE" | tar -x -C "$WORK/before"
    git -C "$ROOT" archive "$AFTER" | tar -x -C "$WORK/after"
    bench_binary "$WORK/before" "$WORK/a"
    bench_binary "$WORK/after" "$WORK/b"
fi
if cmp -s "$WORK/a" "$WORK/b"; then
    echo "the two builds are the same binary: nothing to compare" >&2
    exit 1
fi

for round in $(seq "$ROUNDS"); do
    for side in a b; do
        for filter in "${FILTERS[@]}"; do
            # Criterion prints "time:   [low estimate high]"; the estimate is the middle one.
            est=$(cd "$WORK" && "$WORK/$side" --bench "^${filter}\$" --warm-up-time 1 \
                --measurement-time 4 --noplot 2>/dev/null |
                sed -n 's/.*time: *\[[^ ]* [^ ]* \([^ ]*\) \([^ ]*\) .*/\1 \2/p' | head -n1)
            echo "$round $side $filter $est"
        done
    done
done | tee "$WORK/rounds.txt"
python3 - "$WORK/rounds.txt" <<'PY'
import statistics, sys
scale = {"ns": 1e-3, "µs": 1.0, "us": 1.0, "ms": 1e3, "s": 1e6}
rows = {}
for line in open(sys.argv[1]):
    _, side, name, value, unit = line.split()
    rows.setdefault(name, {}).setdefault(side, []).append(float(value) * scale[unit])
for name, sides in rows.items():
    a, b = statistics.median(sides["a"]), statistics.median(sides["b"])
    print(f"{name}: before {a:.1f} µs, after {b:.1f} µs, after/before {b / a:.3f} "
          f"(rounds {len(sides['a'])}/{len(sides['b'])})")
PY
