#!/usr/bin/env bash
# K-Means against scikit-learn, side by side on the same cores: same points, same k, same
# initial centroids, same number of Lloyd iterations. Prints time per iteration and final
# inertia of both, and their ratios; and, for information, scikit-learn on the points converted
# to single precision ("sklearn f32": Persona stores its prepared points so; the file holds
# double precision, and the ratio compares with that).
#
#   scripts/bench-kmeans.sh [ROWS ...]     # default: 200000 2000000 (30 features, k = 8)
#
# Environment: BENCH_ITERS (default 20), BENCH_K (8), BENCH_DIMS (30), BENCH_REPEAT (2: each
# side runs this many times, alternating; the best of each is reported); BENCH_SPARK=1 adds
# Spark MLlib's K-Means (local[2], same points and start; once per size, it is slow): pyspark
# is installed into the same venv, and Java 17 from apt when there is no `java`.
# The data sets are generated once into ~/.cache/persona/bench/kmeans-ROWS; the peer is
# installed once into ~/.cache/persona/bench-venv from PyPI.
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE="${PERSONA_CACHE_DIR:-$HOME/.cache/persona}"
VENV="$CACHE/bench-venv"
ITERS="${BENCH_ITERS:-20}"
K="${BENCH_K:-8}"
DIMS="${BENCH_DIMS:-30}"
REPEAT="${BENCH_REPEAT:-2}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CACHE/target}"
BIN="$CARGO_TARGET_DIR/release/persona"

if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c "import sklearn, pyarrow, threadpoolctl" 2>/dev/null; then
  echo "== installing scikit-learn, pyarrow into $VENV (once)" >&2
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check numpy scikit-learn pyarrow threadpoolctl
fi
SPARK="${BENCH_SPARK:-0}"
if [ "$SPARK" = 1 ]; then
  command -v java >/dev/null || { echo "== installing Java 17 (apt, once)" >&2; apt-get install -y -q openjdk-17-jre-headless >&2; }
  "$VENV/bin/python" -c "import pyspark" 2>/dev/null || {
    echo "== installing pyspark into $VENV (once)" >&2
    "$VENV/bin/pip" install --quiet --disable-pip-version-check pyspark
  }
fi
cargo build --release --locked --bin persona >&2
PEER="scripts/bench/kmeans_peer.py"
FEATURES=$(seq -s, -f 'f%g' 0 $((DIMS - 1)))

printf '%-9s %-13s %6s %12s %12s %8s %16s %16s %9s\n' rows side iters s/iter best_of fit_s inertia inertia_gap ratio
for ROWS in "${@:-200000 2000000}"; do
  DATA="$CACHE/bench/kmeans-$ROWS-$DIMS-$K"
  [ -f "$DATA/init.parquet" ] || "$VENV/bin/python" "$PEER" data --rows "$ROWS" --dims "$DIMS" --k "$K" --dir "$DATA"
  best_peer="" best_ours="" best_peer32=""
  for _ in $(seq 1 "$REPEAT"); do
    # The peer's OpenBLAS runs its best kernel: the machine's OPENBLAS_* overrides are for
    # old builds (see the environment notes); Persona does not use BLAS.
    peer=$(env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OMP_NUM_THREADS=2 \
      "$VENV/bin/python" "$PEER" sklearn --dir "$DATA" --k "$K" --iters "$ITERS")
    # The same peer on the points in single precision, as Persona stores them (for
    # information: the file holds double precision, and that is the comparison).
    peer32=$(env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OMP_NUM_THREADS=2 \
      "$VENV/bin/python" "$PEER" sklearn --dir "$DATA" --k "$K" --iters "$ITERS" --dtype float32)
    iters=$(echo "$peer" | python3 -c 'import json,sys; print(json.load(sys.stdin)["iterations"])')
    out=$(mktemp -d)
    /usr/bin/time -f '%e %M' -o "$out/time" "$BIN" kmeans --input "$DATA/points.parquet" --output "$out/o" \
      --features "$FEATURES" --k "$K" --no-standardize --init-from "$DATA/init.parquet" \
      --max-iter "$iters" --tol 0 >/dev/null
    ours=$(python3 - "$out/o/report/report.json" "$out/time" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["fit"]
wall, rss = open(sys.argv[2]).read().split()
s = r["seconds_per_iteration"]
print(json.dumps({"iterations": r["iterations"], "seconds_per_iteration": sum(s) / len(s),
                  "fit_seconds": float(wall), "inertia": r["final_inertia"], "peak_rss_kb": int(rss)}))
PY
)
    rm -rf "$out"
    best_peer32=$(python3 -c 'import json,sys; a=[json.loads(x) for x in sys.argv[1:] if x]; print(json.dumps(min(a, key=lambda r: r["seconds_per_iteration"])))' "${best_peer32:-}" "$peer32")
    best_peer=$(python3 -c 'import json,sys; a=[json.loads(x) for x in sys.argv[1:] if x]; print(json.dumps(min(a, key=lambda r: r["seconds_per_iteration"])))' "$best_peer" "$peer")
    best_ours=$(python3 -c 'import json,sys; a=[json.loads(x) for x in sys.argv[1:] if x]; print(json.dumps(min(a, key=lambda r: r["seconds_per_iteration"])))' "$best_ours" "$ours")
  done
  spark=""
  if [ "$SPARK" = 1 ]; then
    spark=$("$VENV/bin/python" "$PEER" spark --dir "$DATA" --k "$K" --iters "$iters" 2>/dev/null | tail -1)
  fi
  python3 - "$ROWS" "$REPEAT" "$best_peer" "$best_ours" "$best_peer32" "$spark" <<'PY'
import json, sys
rows, repeat = sys.argv[1], sys.argv[2]
peer, ours, peer32 = json.loads(sys.argv[3]), json.loads(sys.argv[4]), json.loads(sys.argv[5])
spark = json.loads(sys.argv[6]) if sys.argv[6] else None
gap = (ours["inertia"] - peer["inertia"]) / peer["inertia"]
ratio = ours["seconds_per_iteration"] / peer["seconds_per_iteration"]
fmt = "%-9s %-13s %6d %12.4f %12s %8.2f %16.6e %16s %9s"
print(fmt % (rows, "scikit-learn", peer["iterations"], peer["seconds_per_iteration"], repeat, peer["fit_seconds"], peer["inertia"], "", ""))
print(fmt % (rows, "persona", ours["iterations"], ours["seconds_per_iteration"], repeat, ours["fit_seconds"], ours["inertia"], "%+.4f%%" % (100 * gap), "%.2fx" % ratio))
print(fmt % (rows, "sklearn f32", peer32["iterations"], peer32["seconds_per_iteration"], repeat, peer32["fit_seconds"], peer32["inertia"], "", "(%.2fx)" % (ours["seconds_per_iteration"] / peer32["seconds_per_iteration"])))
if spark:
    gap = (spark["inertia"] - peer["inertia"]) / peer["inertia"]
    print(fmt % (rows, "spark-mllib", spark["iterations"], spark["seconds_per_iteration"], 1, spark["fit_seconds"], spark["inertia"], "%+.4f%%" % (100 * gap), "(%.3fx)" % (ours["seconds_per_iteration"] / spark["seconds_per_iteration"])))
print("          persona peak RSS %.0f MiB (whole command, reading the Parquet included)" % (ours["peak_rss_kb"] / 1024))
PY
done
