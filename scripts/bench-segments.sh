#!/usr/bin/env bash
# The segments on a family of generated shops (issue "Segments that generalise"): the same six
# hidden customer types, told apart by a different group of features in each member
# (`persona generate --types-by`: shop, behaviour, channel, taste, demographics, mixed). For
# each member the night runs with the default configuration (or PERSONA_CONFIG) and its
# segments are scored against the hidden types (ARI / NMI), beside scikit-learn's pipeline
# (StandardScaler + k-means++, n_init 4, the night's k) on feature sets of the published
# user_features, block-weighted groups among them (scripts/bench/truth_score.py).
#
#   scripts/bench-segments.sh [SCALE] [MEMBER ...]    # default: small, every member
#
# Prints one line per member and set: ARI and NMI. Data is generated once into
# ~/.cache/persona/bench/family-MEMBER-SCALE; scikit-learn lives in ~/.cache/persona/bench-venv.
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE="${PERSONA_CACHE_DIR:-$HOME/.cache/persona}"
VENV="$CACHE/bench-venv"
DATE=2026-11-22
SCALE="${1:-small}"; shift || true
MEMBERS=("${@:-shop behaviour channel taste demographics mixed}")
read -r -a MEMBERS <<<"${MEMBERS[*]}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CACHE/target}"
BIN="${PERSONA_BIN:-$CARGO_TARGET_DIR/release/persona}"   # PERSONA_BIN: a build to measure instead

source scripts/bench/data.sh
bench_venv "sklearn, pyarrow, pandas" numpy scipy pandas pyarrow scikit-learn
[ -n "${PERSONA_BIN:-}" ] || cargo build --release --workspace --locked --bins >&2
config=()
[ -n "${PERSONA_CONFIG:-}" ] && config=(--config "$PERSONA_CONFIG")

printf '%-13s %-22s %5s %7s %7s\n' member set dims ari nmi
for member in "${MEMBERS[@]}"; do
  input="$CACHE/bench/family-$member-$SCALE"
  if [ ! -f "$input/.complete" ]; then
    rm -rf "$input"
    "$BIN" generate --scale "$SCALE" --types-by "$member" --out "$input" --end-date "$DATE" >/dev/null 2>&1
    touch "$input/.complete"
  fi
  out=$(mktemp -d)
  "$BIN" run --input "$input" --output "$out" --date "$DATE" "${config[@]}" >/dev/null 2>"$out.log" \
    || { tail -3 "$out.log" >&2; exit 1; }
  "$VENV/bin/python" scripts/bench/truth_score.py --output "$out" --date "$DATE" \
    --truth "$input/_truth" --segments-only \
    | "$VENV/bin/python" scripts/bench/segments_table.py "$member"
  rm -rf "$out" "$out.log"
done
