#!/usr/bin/env bash
# The customer-to-customer recommender against scikit-learn's NearestNeighbors(metric="correlation")
# on the same split as the nightly evaluation (train on all but the last 7 days, score on those):
# 50 neighbours per customer, the top 10 excluding each customer's training items, scored
# Σ similarity x weight over the neighbours (Persona's default). Prints, per scale and block size:
# NDCG@10 and recall@10 of both, the seconds of finding the neighbours and of recommending
# (the peer's fit + kneighbors for the holdout's customers and its Python scoring; Persona's two
# evaluation stages, eval_customer_neighbours and eval_user_knn, from the manifest), and the
# recall of Persona's pruned neighbours against the exact top 50 on a sample of 2,000
# customers. The peer is skipped where its dense matrix would not fit in 6 GB.
#
#   scripts/bench-user-knn.sh [SCALE ...]     # default: small medium
#   BLOCKS="25 50 100" CANDIDATES=200 scripts/bench-user-knn.sh small
#   PEER=0 scripts/bench-user-knn.sh small          # Persona only
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
bench_venv "sklearn, pyarrow, pandas, threadpoolctl" numpy scipy pandas pyarrow threadpoolctl scikit-learn
cargo build --release --locked --bin persona >&2
peer_env=(env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1)

printf '%-7s %-6s %-9s %9s %9s %9s %9s %9s %12s\n' scale block side ndcg@10 recall@10 neigh_s rec_s total_s nb_recall@50
for SCALE in ${@:-small medium}; do
  input=$(bench_input "$SCALE")
  skip_peer=""
  [ "${PEER:-1}" = 0 ] && skip_peer="--skip-peer"
  for BLOCK in ${BLOCKS:-25}; do
    out=$(mktemp -d)
    printf '[recommendations.user_knn]\nenabled = true\nblock = %s\ncandidates = %s\n' "$BLOCK" "${CANDIDATES:-400}" >"$out/persona.toml"
    "$BIN" evaluate --input "$input" --output "$out/o" --date "$DATE" --config "$out/persona.toml" \
      --export-split "$out/split" >/dev/null
    peer=$("${peer_env[@]}" "$VENV/bin/python" scripts/bench/user_knn_peer.py --dir "$out/split" $skip_peer)
    python3 - "$SCALE" "$BLOCK" "$peer" "$out/o/_runs/dt=$DATE/manifest.json" "$skip_peer" <<'PY'
import json, sys
scale, block, peer, manifest, skipped = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), json.load(open(sys.argv[4])), sys.argv[5]
ours = next(m for m in manifest["evaluation"]["models"] if m["model"] == "user_knn")
secs = {s["name"]: s["seconds"] for s in manifest["stages"]}
neigh, rec = secs["eval_customer_neighbours"], secs["eval_user_knn"]
fmt = "%-7s %-6s %-9s %9.4f %9.4f %9.2f %9.2f %9.2f %12s"
p, pruning = peer["peer"], peer["pruning"]
if "skipped" in p:
    if not skipped:
        print("%-7s %-6s %-9s %s" % (scale, "", "sklearn", "skipped: " + p["skipped"]))
else:
    print(fmt % (scale, "", "sklearn", p["ndcg_at_k"], p["recall_at_k"], p["fit_seconds"] + p["neighbour_seconds"], p["recommend_seconds"], p["fit_seconds"] + p["neighbour_seconds"] + p["recommend_seconds"], "1 (exact)"))
    if p["users"] != ours["users"]:
        print("        customers scored differ: sklearn %d, persona %d" % (p["users"], ours["users"]))
print(fmt % (scale, block, "persona", ours["ndcg_at_k"], ours["recall_at_k"], neigh, rec, neigh + rec, "%.4f" % pruning["recall_at_neighbours"]))
print("        neighbours vs exact, %d sampled customers: %.1f%% of the exact top 50's similarity; largest difference %.2e" % (pruning["customers"], 100 * pruning["similarity_captured"], pruning["max_similarity_difference"]))
PY
    rm -rf "$out"
    skip_peer="--skip-peer"
  done
done
