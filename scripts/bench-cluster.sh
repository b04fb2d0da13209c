#!/usr/bin/env bash
# The nightly job on every engine, side by side on the same data and machine: local (DataFusion
# in one process), standalone (in-process Ballista), and clusters of 1 and 2 executors as
# separate processes on 127.0.0.1 (scripts/cluster.sh). Prints wall time, peak RSS of the
# client and seconds per stage for each; the number of Ballista jobs and their fixed cost (the
# fastest job of the run); and the bytes the executors shuffle per ALS iteration, measured as
# the growth of their work folders between `persona als` fits of 1 and of 2 iterations on the
# evaluation's training pairs.
#
#   scripts/bench-cluster.sh [SCALE ...]     # default: small
#
# Environment: BENCH_STANDALONE=0 skips the standalone engine (it polls for work about once a
# second, so it is slow). Data is shared with scripts/bench.sh (~/.cache/persona/bench/als-SCALE).
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE="${PERSONA_CACHE_DIR:-$HOME/.cache/persona}"
DATE=2026-11-22
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CACHE/target}"
BIN="$CARGO_TARGET_DIR/release/persona"
export PERSONA_BIN="$BIN"
cargo build --release --locked --bin persona >&2
source scripts/bench/data.sh

for SCALE in "${@:-small}"; do
  INPUT=$(bench_input "$SCALE")
  SPLIT=$(bench_split "$SCALE")
  OUT=$(mktemp -d)
  trap 'scripts/cluster.sh stop >/dev/null 2>&1 || true; rm -rf "$OUT"' EXIT

  run() { # name engine
    echo "== $SCALE: persona run --engine $2" >&2
    /usr/bin/time -f '%e %M' -o "$OUT/$1.time" "$BIN" run --input "$INPUT" --output "$OUT/$1" \
      --date "$DATE" --engine "$2" >/dev/null 2>"$OUT/$1.log" \
      || { tail -5 "$OUT/$1.log" >&2; echo "FAILED: $1" >&2; exit 1; }
  }
  shuffled() { du -sb "$PERSONA_CLUSTER_DIR"/executor-*/ | awk '{s += $1} END {printf "%d\n", s}'; }
  als_fit() { # iterations engine
    "$BIN" als --input "$SPLIT/train.parquet" --output "$OUT/als-$1" --user user_idx \
      --item item_idx --weight weight --iterations "$1" --engine "$2" >/dev/null 2>"$OUT/als-$1.log" \
      || { tail -5 "$OUT/als-$1.log" >&2; echo "FAILED: persona als ($1 iterations)" >&2; exit 1; }
  }

  engines=(local)
  run local local
  if [ "${BENCH_STANDALONE:-1}" = 1 ]; then
    run standalone standalone
    engines+=(standalone)
  fi
  port=$((50200 + RANDOM % 500))
  for n in 1 2; do
    export PERSONA_CLUSTER_DIR="$OUT/cluster" PERSONA_SCHEDULER_PORT=$port
    scripts/cluster.sh start "$n" >/dev/null
    sleep 2
    run "cluster-$n" "ballista://127.0.0.1:$port"
    engines+=("cluster-$n")
    scripts/cluster.sh stop >/dev/null
    port=$((port + 100))
  done
  # Shuffle files of a job are removed some time after it ends (sooner when its client
  # disconnects), so each fit runs on a fresh two-executor cluster and the executors' folders
  # are sampled while it runs: the peak is what the fit wrote.
  echo "== $SCALE: shuffle bytes per ALS iteration (persona als, 1 and 2 iterations)" >&2
  for it in 1 2; do
    export PERSONA_CLUSTER_DIR="$OUT/cluster-fit-$it" PERSONA_SCHEDULER_PORT=$port
    scripts/cluster.sh start 2 >/dev/null
    sleep 2
    als_fit "$it" "ballista://127.0.0.1:$port" &
    fit=$! peak=0
    while kill -0 "$fit" 2>/dev/null; do
      now=$(shuffled); [ "$now" -gt "$peak" ] && peak=$now
      sleep 0.2
    done
    wait "$fit"
    echo "$peak" >>"$OUT/shuffle"
    scripts/cluster.sh stop >/dev/null
    port=$((port + 100))
  done

  python3 - "$SCALE" "$OUT" "$DATE" "${engines[@]}" <<'PY'
import json, re, sys
scale, out, date, engines = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
runs = {}
for e in engines:
    m = json.load(open(f"{out}/{e}/_runs/dt={date}/manifest.json"))
    wall, rss = open(f"{out}/{e}.time").read().split()
    jobs = [int(x) for x in re.findall(r"finished executing in (\d+)ms", open(f"{out}/{e}.log").read())]
    runs[e] = (m, float(wall), int(rss), jobs)
print(f"\n## {scale}: the nightly job per engine (seconds)\n")
print("| stage | " + " | ".join(engines) + " |")
print("|---|" + "---|" * len(engines))
stages = [s["name"] for s in runs["local"][0]["stages"]]
for s in stages:
    row = []
    for e in engines:
        sec = next((x["seconds"] for x in runs[e][0]["stages"] if x["name"] == s), None)
        row.append("" if sec is None else f"{sec:.2f}")
    print(f"| {s} | " + " | ".join(row) + " |")
print("| **wall** | " + " | ".join(f"**{runs[e][1]:.1f}**" for e in engines) + " |")
print("| client peak RSS (MiB) | " + " | ".join(f"{runs[e][2] / 1024:.0f}" for e in engines) + " |")
for e in engines:
    jobs = sorted(runs[e][3])
    if jobs:
        print(f"\n{e}: {len(jobs)} Ballista jobs, fastest {jobs[0]} ms, median {jobs[len(jobs) // 2]} ms")
try:
    one, two = (int(x) for x in open(f"{out}/shuffle").read().split())
    print(f"\nshuffle files of the executors at their peak: ALS fit of 1 iteration {one / 2**20:.0f} MiB, of 2 iterations {two / 2**20:.0f} MiB: {(two - one) / 2**20:.0f} MiB per iteration")
except FileNotFoundError:
    pass
PY
done
