#!/usr/bin/env bash
# Every recommender against the generator's hidden next week: one night per
# `[recommendations] model` (als, item_knn, user_knn; the neighbourhood models at their defaults),
# each scored by scripts/bench/truth_score.py on the published `recommendations` (recall@10 and
# NDCG@10 against the catalog items each customer touches in the week after the window, less
# what they bought in it), beside `implicit`'s ALS on the same matrix and overall popularity.
# Prints one line per model, and the seconds of the night.
#
#   scripts/bench-recommenders.sh [SCALE ...]     # default: small
#
# Data is generated once into ~/.cache/persona/bench/als-SCALE (shared with bench-als.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE="${PERSONA_CACHE_DIR:-$HOME/.cache/persona}"
VENV="$CACHE/bench-venv"
DATE=2026-11-22
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CACHE/target}"
BIN="$CARGO_TARGET_DIR/release/persona"
source scripts/bench/data.sh
bench_venv "implicit, sklearn, pyarrow, pandas, threadpoolctl" numpy scipy pandas pyarrow threadpoolctl implicit scikit-learn
cargo build --release --locked --bin persona >&2
peer_env=(env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1)

printf '%-7s %-9s %10s %9s %9s %9s\n' scale model customers recall@10 ndcg@10 night_s
for SCALE in ${@:-small}; do
  split=$(bench_split "$SCALE")
  input=$(bench_input "$SCALE")
  for MODEL in als item_knn user_knn; do
    out=$(mktemp -d)
    printf '[recommendations]\nmodel = "%s"\n[evaluation]\nenabled = false\n[propensity]\nenabled = false\n' "$MODEL" >"$out/persona.toml"
    "$BIN" run --input "$input" --output "$out/o" --date "$DATE" --config "$out/persona.toml" >/dev/null 2>&1
    scores=$("${peer_env[@]}" "$VENV/bin/python" scripts/bench/truth_score.py --output "$out/o" --date "$DATE" \
      --truth "$input/_truth" --split "$split")
    python3 - "$SCALE" "$MODEL" "$scores" "$out/o/_runs/dt=$DATE/manifest.json" <<'PY'
import json, sys
scale, model, scores, manifest = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), json.load(open(sys.argv[4]))
r = scores["recommendations"]
fmt = "%-7s %-9s %10d %9.4f %9.4f %9s"
print(fmt % (scale, model, r["persona"]["customers"], r["persona"]["recall_at_10"], r["persona"]["ndcg_at_10"], "%.1f" % manifest["seconds"]))
if model == "als":
    for peer in ("implicit", "popular"):
        if peer in r:
            print(fmt % (scale, peer, r[peer]["customers"], r[peer]["recall_at_10"], r[peer]["ndcg_at_10"], ""))
PY
    rm -rf "$out"
  done
done
