#!/usr/bin/env bash
# What the audiences cost a night, and how fast a marketer's preview is, beside the analyst's
# hand-written DuckDB query for the same list:
#
#   scripts/bench-audiences.sh [SCALE]          # default: medium
#
# 1. `persona run` with the demo's two audiences (jobs/src/commands/demo_audiences.toml), then each
#    audience stage's seconds from the manifest, beside the night's;
# 2. `persona run --dry-run`: the plan that runs before every night that declares audiences
#    (a bad predicate fails there, before anything is computed);
# 3. `persona audience preview` of each audience, five times (process wall time, median), and
#    scripts/bench/audience_peer.py: the same audience in DuckDB over the published Parquet,
#    in-process query time (median of five), and whether its customer ids are Persona's.
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE="${PERSONA_CACHE_DIR:-$HOME/.cache/persona}"
VENV="$CACHE/bench-venv"
DATE=2026-11-22
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CACHE/target}"
BIN="$CARGO_TARGET_DIR/release/persona"
SCALE="${1:-medium}"
CONFIG=jobs/src/commands/demo_audiences.toml

cargo build --release --locked --bin persona >&2
source scripts/bench/data.sh
bench_venv "duckdb, pyarrow" duckdb pyarrow
INPUT=$(bench_input "$SCALE")
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT

echo "== $SCALE: persona run with two audiences" >&2
/usr/bin/time -f '%e %M' -o "$OUT/time" "$BIN" run --input "$INPUT" --output "$OUT/o" --date "$DATE" \
  --config "$CONFIG" >/dev/null 2>"$OUT/log" || { tail -5 "$OUT/log" >&2; exit 1; }
python3 - "$OUT/o/_runs/dt=$DATE/manifest.json" "$(cat "$OUT/time")" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
wall, rss = sys.argv[2].split()
stages = {s["name"]: s for s in m["stages"]}
names = ["audience_customers", "audiences", "audience_changes", "audience_summary", "audience_export_rows"]
total = sum(stages[n]["seconds"] for n in names)
print(f"night: {float(wall):.1f} s wall, {int(rss) / 1024:.0f} MB peak RSS; manifest seconds {m['seconds']:.1f}")
for n in names:
    print(f"  {n:<22} {stages[n]['seconds']:6.2f} s  {stages[n]['rows']:>9} rows")
print(f"  audience stages        {total:6.2f} s  ({100 * total / m['seconds']:.1f}% of the night)")
for a in m["audiences"]["audiences"]:
    print(f"  {a['name']}: {a['size']} customers, {a['holdout']} held out; matched {a['matched']}, "
          f"excluded {a['excluded_opt_out']} without opt-in")
PY

echo "== $SCALE: persona run --dry-run (the plan before the night)" >&2
dry=()
for _ in 1 2 3; do
  s=$(date +%s.%N)
  "$BIN" run --dry-run --input "$INPUT" --output "$OUT/o" --date "$DATE" --config "$CONFIG" >/dev/null
  dry+=("$(python3 -c "import sys,time; print(f'{time.time() - float(sys.argv[1]):.3f}')" "$s")")
done
echo "dry run (plan of the night): ${dry[*]} s"

median() { python3 -c 'import statistics,sys; print(f"{statistics.median(map(float, sys.argv[1:])):.3f}")' "$@"; }
preview_and_peer() { # NAME WHERE ORDER_BY LIMIT
  local name="$1" where="$2" order="$3" limit="$4" times=() peer=() line
  for _ in 1 2 3 4 5; do
    s=$(date +%s.%N)
    "$BIN" audience preview "$name" --output "$OUT/o" --config "$CONFIG" >/dev/null
    times+=("$(python3 -c "import sys,time; print(f'{time.time() - float(sys.argv[1]):.3f}')" "$s")")
    args=(--output "$OUT/o" --date "$DATE" --name "$name" --where "$where")
    [ -n "$order" ] && args+=(--order-by "$order")
    [ -n "$limit" ] && args+=(--limit "$limit")
    line=$("$VENV/bin/python" scripts/bench/audience_peer.py "${args[@]}")
    peer+=("${line##*query_s=}")
  done
  echo "$name: persona audience preview $(median "${times[@]}") s (process, median of 5); DuckDB query $(median "${peer[@]}") s (in-process, median of 5); ${line% query_s=*}"
}
preview_and_peer likely_buyers "decile <= 2 AND lifecycle <> 'dormant'" "probability DESC" 1000
preview_and_peer winback_loyal "lifecycle = 'dormant' AND loyalty_tier IN ('gold', 'platinum')" "" ""
