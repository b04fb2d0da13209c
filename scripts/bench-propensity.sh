#!/usr/bin/env bash
# The propensity model against scikit-learn, side by side on the same cores and the same
# numbers: the night runs with --export-split, which writes the standardised training matrix
# its logistic regression was fitted on; scikit-learn's LogisticRegression (lbfgs and
# newton-cholesky, C = 1 / l2, the intercept unpenalised) is fitted on the same `fit` rows.
# Prints, per scale: rows, features, fit seconds of each (Persona's from the manifest: every
# Newton pass as a DataFusion aggregation), the time ratio, AUC of each on the same `test`
# rows, and the largest relative coefficient difference.
#
#   scripts/bench-propensity.sh [SCALE ...]       # default: small medium
#
# Data is generated once into ~/.cache/persona/bench/als-SCALE (shared with the other
# benchmarks); scikit-learn is installed once into ~/.cache/persona/bench-venv from PyPI.
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE="${PERSONA_CACHE_DIR:-$HOME/.cache/persona}"
VENV="$CACHE/bench-venv"
DATE=2026-11-22
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CACHE/target}"
BIN="${PERSONA_BIN:-$CARGO_TARGET_DIR/release/persona}"   # PERSONA_BIN: a build to measure instead

source scripts/bench/data.sh
bench_venv "sklearn, pyarrow, pandas" numpy scipy pandas pyarrow scikit-learn
[ -n "${PERSONA_BIN:-}" ] || cargo build --release --locked --bin persona >&2
peer_env=(env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE)

printf '%-7s %9s %5s %9s %9s %9s %7s %9s %9s %9s %9s\n' \
  scale rows dims persona_s lbfgs_s newton_s ratio auc_ours auc_lbfgs auc_newton max_rel
for SCALE in "${@:-small medium}"; do
  input=$(bench_input "$SCALE")
  out=$(mktemp -d)
  "$BIN" run --input "$input" --output "$out/o" --date "$DATE" --export-split "$out/split" >/dev/null 2>&1
  l2=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["config"]["propensity"]["l2"])' "$out/o/_runs/dt=$DATE/manifest.json")
  peer=$("${peer_env[@]}" "$VENV/bin/python" scripts/bench/propensity_peer.py \
    --split "$out/split" --model "$out/o/propensity_model/dt=$DATE" \
    --manifest "$out/o/_runs/dt=$DATE/manifest.json" --l2 "$l2")
  python3 - "$SCALE" "$out/o/_runs/dt=$DATE/manifest.json" "$peer" <<'PY'
import json, sys
scale, manifest, peer = sys.argv[1], json.load(open(sys.argv[2])), json.loads(sys.argv[3])
p = manifest["propensity"]
ours_s = p["fit"]["seconds"]
auc = p["evaluation"]["logistic_uncalibrated"]["auc"]
# The SQL evaluation and scikit-learn's roc_auc_score must agree on Persona's own scores.
assert abs(auc - peer["persona_auc"]) < 1e-6, (auc, peer["persona_auc"])
fastest = min(peer["lbfgs"]["fit_seconds"], peer["newton-cholesky"]["fit_seconds"])
print("%-7s %9d %5d %9.3f %9.3f %9.3f %7.2f %9.4f %9.4f %9.4f %9.1e" % (
    scale, peer["rows"], peer["features"], ours_s, peer["lbfgs"]["fit_seconds"],
    peer["newton-cholesky"]["fit_seconds"], ours_s / fastest, auc, peer["lbfgs"]["auc"],
    peer["newton-cholesky"]["auc"],
    max(peer["lbfgs"]["max_relative_coefficient_difference"],
        peer["newton-cholesky"]["max_relative_coefficient_difference"])))
ev = p["evaluation"]
print("        holdout: AUC %.4f (rule %.4f), PR-AUC %.4f (rule %.4f), top-decile lift %.2f (rule %.2f), "
      "Brier %.5f -> %.5f, ECE %.4f -> %.4f after calibration, base rate %.4f, %d Newton steps" % (
    ev["logistic"]["auc"], ev["recency_frequency"]["auc"], ev["logistic"]["average_precision"],
    ev["recency_frequency"]["average_precision"], ev["logistic"]["top_decile_lift"],
    ev["recency_frequency"]["top_decile_lift"], ev["logistic_uncalibrated"]["brier"],
    ev["logistic"]["brier"], ev["logistic_uncalibrated"]["ece"], ev["logistic"]["ece"],
    ev["logistic"]["base_rate"], p["fit"]["iterations"]))
PY
  rm -rf "$out"
done
