#!/usr/bin/env bash
# ALS against the `implicit` library, side by side on the same cores: the same interactions
# (the nightly evaluation's split of generated data: train on all but the last 7 days, score
# on those), the same model (confidence 1 + alpha·weight, lambda, rank, conjugate gradient with
# the same steps), the same number of iterations. Prints seconds per iteration, fit time, peak
# memory and NDCG@10 of both, and their ratios.
#
#   scripts/bench-als.sh [SCALE ...]       # default: small medium
#
# Environment: BENCH_RANK (64), BENCH_ITERS (15), BENCH_ALPHA (10), BENCH_LAMBDA (0.1),
# BENCH_CG_STEPS (3), BENCH_REPEAT (2: each side runs this many times, alternating; the best
# of each is reported). Data is generated once into ~/.cache/persona/bench/als-SCALE; the peer
# is installed once into ~/.cache/persona/bench-venv from PyPI.
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE="${PERSONA_CACHE_DIR:-$HOME/.cache/persona}"
VENV="$CACHE/bench-venv"
RANK="${BENCH_RANK:-64}"
ITERS="${BENCH_ITERS:-15}"
ALPHA="${BENCH_ALPHA:-10}"
LAMBDA="${BENCH_LAMBDA:-0.1}"
CG="${BENCH_CG_STEPS:-3}"
REPEAT="${BENCH_REPEAT:-2}"
DATE=2026-11-22
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CACHE/target}"
BIN="$CARGO_TARGET_DIR/release/persona"

if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c "import implicit, pyarrow, pandas, threadpoolctl" 2>/dev/null; then
  echo "== installing implicit, pyarrow, pandas into $VENV (once)" >&2
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check numpy scipy pandas pyarrow threadpoolctl implicit
fi
cargo build --release --locked --bin persona >&2
source scripts/bench/data.sh
PEER="scripts/bench/als_peer.py"
# implicit's OpenBLAS and threads: the machine's OPENBLAS_* overrides are for old builds.
peer_env=(env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1)

best() { python3 -c 'import json,sys; a=[json.loads(x) for x in sys.argv[1:] if x]; print(json.dumps(min(a, key=lambda r: r["seconds_per_iteration"])))' "$@"; }

printf '%-7s %-9s %9s %5s %10s %8s %9s %8s %8s %9s\n' scale side pairs iters s/iter fit_s peak_MiB ndcg@10 ndcg_gap time_ratio
for SCALE in "${@:-small medium}"; do
  DATA="$CACHE/bench/als-$SCALE"
  bench_split "$SCALE" >/dev/null
  best_peer="" best_ours=""
  for _ in $(seq 1 "$REPEAT"); do
    peer=$("${peer_env[@]}" /usr/bin/time -f '%M' -o "$DATA/peer.rss" "$VENV/bin/python" "$PEER" implicit \
      --dir "$DATA/split" --rank "$RANK" --iters "$ITERS" --alpha "$ALPHA" --lambda "$LAMBDA" --cg-steps "$CG")
    peer=$(python3 -c 'import json,sys; r=json.loads(sys.argv[1]); r["peak_rss_kb"]=int(open(sys.argv[2]).read().split()[-1]); print(json.dumps(r))' "$peer" "$DATA/peer.rss")
    out=$(mktemp -d)
    /usr/bin/time -f '%e %M' -o "$out/time" "$BIN" als --input "$DATA/split/train.parquet" \
      --holdout "$DATA/split/holdout.parquet" --output "$out/o" --user user_idx --item item_idx \
      --weight weight --rank "$RANK" --iterations "$ITERS" --alpha "$ALPHA" --lambda "$LAMBDA" \
      --cg-steps "$CG" >/dev/null
    check=$("$VENV/bin/python" "$PEER" score --dir "$DATA/split" --factors "$out/o")
    ours=$(python3 - "$out/o/report/report.json" "$out/time" "$check" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
wall, rss = open(sys.argv[2]).read().split()
check = json.loads(sys.argv[3])
als = next(m for m in r["holdout"] if m["model"] == "als")
# The SQL evaluation and the Python one must agree on Persona's own factors.
assert abs(als["ndcg_at_k"] - check["ndcg_at_k"]) < 1e-3, (als, check)
s = r["fit"]["seconds_per_iteration"]
print(json.dumps({"seconds_per_iteration": sum(s) / len(s), "iterations": len(s),
                  "fit_seconds": float(wall), "peak_rss_kb": int(rss), "pairs": r["fit"]["interactions"],
                  "ndcg_at_k": als["ndcg_at_k"],
                  "popular_ndcg": next(m for m in r["holdout"] if m["model"] == "popular")["ndcg_at_k"]}))
PY
)
    rm -rf "$out"
    best_peer=$(best "$best_peer" "$peer")
    best_ours=$(best "$best_ours" "$ours")
  done
  python3 - "$SCALE" "$best_peer" "$best_ours" <<'PY'
import json, sys
scale, peer, ours = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
fmt = "%-7s %-9s %9d %5d %10.4f %8.2f %9.0f %8.4f %8s %9s"
print(fmt % (scale, "implicit", ours["pairs"], peer["iterations"], peer["seconds_per_iteration"], peer["fit_seconds"], peer["peak_rss_kb"] / 1024, peer["ndcg_at_k"], "", ""))
gap = (ours["ndcg_at_k"] - peer["ndcg_at_k"]) / peer["ndcg_at_k"]
ratio = ours["seconds_per_iteration"] / peer["seconds_per_iteration"]
print(fmt % (scale, "persona", ours["pairs"], ours["iterations"], ours["seconds_per_iteration"], ours["fit_seconds"], ours["peak_rss_kb"] / 1024, ours["ndcg_at_k"], "%+.2f%%" % (100 * gap), "%.2fx" % ratio))
print("        popularity ndcg@10 on the same holdout: %.4f" % ours["popular_ndcg"])
print("        fit_s: implicit's fit() call; persona's whole command (reading Parquet, indexing, publishing factors and top-10 included)")
PY
done
