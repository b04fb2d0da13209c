#!/usr/bin/env bash
# The item-to-item recommenders against `implicit`'s CosineRecommender and BM25Recommender, side
# by side on the same cores and the same split (the nightly evaluation's: train on all but the
# last 7 days of generated data, score on those): 50 neighbours per item, BM25's K1 1.2 and
# B 0.75, the top 10 excluding each customer's training items. Prints NDCG@10 and recall@10 of
# both and the seconds of the neighbours and the recommendations: implicit's fit() and
# recommend() calls; Persona's two evaluation stages (eval_item_neighbours, eval_item_knn) of
# `persona evaluate`, from its manifest.
#
#   scripts/bench-knn.sh [SCALE ...]       # default: small medium
#
# Data is generated once into ~/.cache/persona/bench/als-SCALE (shared with bench-als.sh); the
# peer is installed once into ~/.cache/persona/bench-venv from PyPI.
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE="${PERSONA_CACHE_DIR:-$HOME/.cache/persona}"
VENV="$CACHE/bench-venv"
DATE=2026-11-22
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CACHE/target}"
BIN="$CARGO_TARGET_DIR/release/persona"
source scripts/bench/data.sh
bench_venv "implicit, pyarrow, pandas, threadpoolctl" numpy scipy pandas pyarrow threadpoolctl implicit
cargo build --release --locked --bin persona >&2
peer_env=(env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1)

printf '%-7s %-7s %-9s %9s %9s %9s %9s %9s %10s\n' scale model side ndcg@10 recall@10 neigh_s rec_s total_s ndcg_gap
for SCALE in ${@:-small medium}; do
  split=$(bench_split "$SCALE")
  input=$(bench_input "$SCALE")
  for MODEL in cosine bm25; do
    peer=$("${peer_env[@]}" "$VENV/bin/python" scripts/bench/knn_peer.py --dir "$split" --model "$MODEL")
    out=$(mktemp -d)
    printf '[recommendations.item_knn]\nsimilarity = "%s"\n' "$MODEL" >"$out/persona.toml"
    "$BIN" evaluate --input "$input" --output "$out/o" --date "$DATE" --config "$out/persona.toml" >/dev/null
    python3 - "$SCALE" "$MODEL" "$peer" "$out/o/_runs/dt=$DATE/manifest.json" <<'PY'
import json, sys
scale, model, peer, manifest = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), json.load(open(sys.argv[4]))
ours = next(m for m in manifest["evaluation"]["models"] if m["model"] == "item_knn")
secs = {s["name"]: s["seconds"] for s in manifest["stages"]}
neigh, rec = secs["eval_item_neighbours"], secs["eval_item_knn"]
fmt = "%-7s %-7s %-9s %9.4f %9.4f %9.2f %9.2f %9.2f %10s"
print(fmt % (scale, model, "implicit", peer["ndcg_at_k"], peer["recall_at_k"], peer["fit_seconds"], peer["recommend_seconds"], peer["fit_seconds"] + peer["recommend_seconds"], ""))
gap = (ours["ndcg_at_k"] - peer["ndcg_at_k"]) / peer["ndcg_at_k"]
print(fmt % (scale, model, "persona", ours["ndcg_at_k"], ours["recall_at_k"], neigh, rec, neigh + rec, "%+.2f%%" % (100 * gap)))
if peer["users"] != ours["users"]:
    print("        customers scored differ: implicit %d, persona %d" % (peer["users"], ours["users"]))
PY
    rm -rf "$out"
  done
done
