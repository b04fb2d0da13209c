#!/usr/bin/env bash
# The end-to-end benchmark of the nightly job: `persona run` on generated data with the release
# build, timed whole (wall, CPU, peak RSS) and per stage (from the run manifest), its results
# checked, beside a whole-night peer (scripts/bench/night_peer.py: the same job in DuckDB,
# scikit-learn and `implicit`, timed the same way), and the two model stages compared side by
# side with their usual peers on the same data and the same cores (scikit-learn's KMeans on the
# segments' points; `implicit`'s ALS on the evaluation's training pairs, the ones Persona's
# evaluation fit used).
#
#   scripts/bench.sh [SCALE ...]          # default: small medium
#
# Environment: BENCH_CONFIG (a persona.toml for the runs; default: the built-in defaults),
# BENCH_PEERS=0 (skip the peers). Data is generated once into ~/.cache/persona/bench/als-SCALE
# (shared with scripts/bench-als.sh); the peers are installed once into
# ~/.cache/persona/bench-venv from PyPI.
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE="${PERSONA_CACHE_DIR:-$HOME/.cache/persona}"
VENV="$CACHE/bench-venv"
DATE=2026-11-22
PEERS="${BENCH_PEERS:-1}"
CONFIG=()
[ -n "${BENCH_CONFIG:-}" ] && CONFIG=(--config "$BENCH_CONFIG")
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CACHE/target}"
BIN="$CARGO_TARGET_DIR/release/persona"

if [ "$PEERS" = 1 ] && { [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c "import implicit, sklearn, pyarrow, pandas, threadpoolctl, duckdb" 2>/dev/null; }; then
  echo "== installing scikit-learn, implicit, pyarrow, pandas into $VENV (once)" >&2
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check numpy scipy pandas pyarrow threadpoolctl scikit-learn implicit duckdb
fi
cargo build --release --locked --bin persona >&2
source scripts/bench/data.sh
peer_env=(env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1)

for SCALE in "${@:-small medium}"; do
  DATA="$CACHE/bench/als-$SCALE"
  bench_input "$SCALE" >/dev/null
  OUT=$(mktemp -d)
  trap 'rm -rf "$OUT"' EXIT
  echo "== $SCALE: persona run" >&2
  /usr/bin/time -f '%e %U %S %M' -o "$OUT/time" "$BIN" run --input "$DATA/input" --output "$OUT/o" \
    --date "$DATE" "${CONFIG[@]}" >/dev/null 2>"$OUT/log" || { tail -5 "$OUT/log" >&2; echo "FAILED: persona run ($SCALE)" >&2; exit 1; }
  kmeans_peer="" als_peer="" truth="" night_peer=""
  if [ "$PEERS" = 1 ]; then
    echo "== $SCALE: the whole-night peer (DuckDB + scikit-learn + implicit)" >&2
    # Both cores for the peer, as Persona has them (DuckDB threads, scikit-learn's and implicit's
    # thread counts are set by the script).
    night_peer=$(env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE /usr/bin/time -f '%e %U %S %M' -o "$OUT/peer-time" "$VENV/bin/python" \
      scripts/bench/night_peer.py --input "$DATA/input" --output "$OUT/peer" --date "$DATE" --threads 2)
    night_peer="$night_peer $(cat "$OUT/peer-time")"
    echo "== $SCALE: scikit-learn on the segments' points" >&2
    kmeans_peer=$("${peer_env[@]}" "$VENV/bin/python" scripts/bench/kmeans_peer.py segments --output "$OUT/o" --date "$DATE")
    # The exact pairs the run's evaluation trained on (same input, date and configuration).
    "$BIN" evaluate --input "$DATA/input" --output "$OUT/eval" --date "$DATE" "${CONFIG[@]}" \
      --export-split "$OUT/split" >/dev/null 2>&1
    read -r rank iters alpha lambda cg < <(python3 -c 'import json,sys; c=json.load(open(sys.argv[1]))["config"]["recommendations"]; print(c["rank"], c["iterations"], c["alpha"], c["lambda"], c["cg_steps"])' "$OUT/o/_runs/dt=$DATE/manifest.json")
    echo "== $SCALE: implicit on the evaluation's training pairs (rank $rank, $iters iterations)" >&2
    als_peer=$("${peer_env[@]}" "$VENV/bin/python" scripts/bench/als_peer.py implicit --dir "$OUT/split" \
      --rank "$rank" --iters "$iters" --alpha "$alpha" --lambda "$lambda" --cg-steps "$cg")
    echo "== $SCALE: the night and its peers against the generator's hidden truth" >&2
    truth=$("${peer_env[@]}" "$VENV/bin/python" scripts/bench/truth_score.py --output "$OUT/o" --date "$DATE" \
      --truth "$DATA/input/_truth" --split "$OUT/split")
  fi
  python3 - "$SCALE" "$OUT/o/_runs/dt=$DATE/manifest.json" "$OUT/time" "$kmeans_peer" "$als_peer" "$truth" "$night_peer" <<'PY'
import json, sys
scale, manifest, timing, kmeans_peer, als_peer, truth, night_peer = sys.argv[1:8]
m = json.load(open(manifest))
wall, user, system, rss = open(timing).read().split()
groups = [
    ("staging", ("inputs", "web_logs_flagged", "app_events_flagged", "customers", "identity_map", "events", "event_drops", "gates", "data_quality")),
    ("features", ("user_features",)),
    ("segments", ("kmeans", "user_profiles", "segments")),
    ("ALS", ("item_index", "user_index", "interactions", "als")),
    ("recommendations", ("popular_items", "als_recommendations", "recommendations", "user_factors", "item_factors", "similar_items")),
    ("evaluation", ("eval_train", "eval_holdout", "eval_fit", "evaluation")),
    ("publish", ("publish",)),
]
seconds = {}
rows = {}
read = {}
for s in m["stages"]:
    seconds[s["name"]] = seconds.get(s["name"], 0) + s["seconds"]
    rows[s["name"]] = s["rows"]
    read[s["name"]] = s.get("bytes_read") or 0
print(f"\n{scale}: wall {float(wall):.1f} s, CPU {float(user) + float(system):.1f} s, peak RSS {int(rss) / 1048576:.2f} GiB")
print(f"  {'stage':<16} {'seconds':>8} {'share':>6} {'MB read':>8} {'MB/s':>6}  rows")
known = set()
for name, stages in groups:
    t = sum(seconds.get(s, 0.0) for s in stages)
    known.update(stages)
    main_rows = max((rows.get(s, 0) for s in stages), default=0)
    mb = sum(read.get(s, 0) for s in stages) / 1e6
    rate = f"{mb / t:>6.0f}" if mb and t else f"{'':>6}"
    print(f"  {name:<16} {t:>8.2f} {100 * t / float(wall):>5.0f}% {mb:>8.0f} {rate}  {main_rows:,}")
# Staging, stage by stage: the Parquet bytes each query scanned and how fast; a stage far below
# the others' rate spends its time computing, not reading.
print("  staging stages: " + ", ".join(
    f"{s} {seconds[s]:.2f} s ({read[s] / 1e6:.0f} MB, {read[s] / 1e6 / seconds[s]:.0f} MB/s)"
    for s in groups[0][1] if read.get(s) and seconds.get(s)))
other = [n for n in seconds if n not in known]
assert not other, f"stages missing from the table: {other}"
if night_peer:
    # The peer's JSON line, then its /usr/bin/time figures.
    stages_json, p_wall, p_user, p_sys, p_rss = night_peer.rsplit(" ", 4)
    peer = json.loads(stages_json)
    p_cpu = float(p_user) + float(p_sys)
    print(f"  whole-night peer (DuckDB + scikit-learn + implicit): wall {float(p_wall):.1f} s, "
          f"CPU {p_cpu:.1f} s, peak RSS {int(p_rss) / 1048576:.2f} GiB; Persona / peer: wall "
          f"{float(wall) / float(p_wall):.2f}x, peak RSS {int(rss) / int(p_rss):.2f}x")
    print("    peer stages: " + ", ".join(f"{k} {v:.2f} s" for k, v in peer.items() if k != "ndcg_at_10")
          + f"; its evaluation NDCG@10 {peer['ndcg_at_10']:.4f}")

# Results, not only time: every table published, the models did their job.
problems = []
for table, n in m["tables"].items():
    if n == 0:
        problems.append(f"{table} is empty")
ev = m.get("evaluation") or {}
scores = {s["model"]: s for s in ev.get("models", [])}
if "als" not in scores:
    problems.append(f"no evaluation ({ev.get('skipped')})")
else:
    als, pop = scores["als"]["ndcg_at_k"], scores["popular"]["ndcg_at_k"]
    print(f"  evaluation: ALS NDCG@10 {als:.4f}, popularity {pop:.4f}")
    if not (0.03 <= als <= 0.5):
        problems.append(f"ALS NDCG@10 {als:.4f} outside the expected 0.03..0.5")
    if als < 2 * pop:
        problems.append(f"ALS NDCG@10 {als:.4f} is not twice popularity's {pop:.4f}")
seg = m["segments"]
if not (2 <= seg["fit"]["k"] <= 12) or min(seg["sizes"]) == 0:
    problems.append(f"segments look wrong: k {seg['fit']['k']}, sizes {seg['sizes']}")

if kmeans_peer:
    peer = json.loads(kmeans_peer)
    ours = seg["fit"]["seconds_per_iteration"]
    ours = sum(ours) / len(ours)
    theirs = peer["seconds_per_iteration"]
    ratio = f"ratio {ours / theirs:.2f}x" if theirs > 0 else "no ratio (scikit-learn's per-iteration time is below the noise)"
    print(f"  K-Means {peer['rows']:,} x {peer['dims']}, k={peer['k']}: persona {ours:.4f} s/iter, "
          f"scikit-learn {theirs:.4f} s/iter, {ratio}")
if als_peer:
    peer = json.loads(als_peer)
    fit = ev["fit"]
    ours = sum(fit["seconds_per_iteration"]) / len(fit["seconds_per_iteration"])
    print(f"  ALS on {fit['interactions']:,} training pairs: persona {ours:.4f} s/iter, implicit "
          f"{peer['seconds_per_iteration']:.4f} s/iter, ratio {ours / peer['seconds_per_iteration']:.2f}x; "
          f"NDCG@10 persona {scores['als']['ndcg_at_k']:.4f}, implicit {peer['ndcg_at_k']:.4f}")
if truth:
    t = json.loads(truth)
    seg = t["segments"]
    print(f"  segments against the hidden types ({seg['customers']:,} customers, k={seg['k']}): "
          f"persona ARI {seg['persona']['ari']:.3f} NMI {seg['persona']['nmi']:.3f}")
    for name, s in seg["sklearn"].items():
        print(f"    scikit-learn StandardScaler + KMeans on {name:<10} ({s['dims']:>2} dims): "
              f"ARI {s['ari']:.3f} NMI {s['nmi']:.3f}")
    best = max(s["ari"] for s in seg["sklearn"].values())
    if seg["persona"]["ari"] < best - 0.02:
        problems.append(f"segments ARI {seg['persona']['ari']:.3f} below scikit-learn's best {best:.3f}")
    rec = t["recommendations"]
    print(f"  recommendations against the hidden next week ({rec['persona']['customers']:,} customers):")
    for name in ("persona", "implicit", "popular"):
        if name in rec:
            print(f"    {name:<9} recall@10 {rec[name]['recall_at_10']:.4f}  NDCG@10 {rec[name]['ndcg_at_10']:.4f}")
if problems:
    print("  RESULT CHECKS FAILED: " + "; ".join(problems))
    sys.exit(1)
print("  result checks passed")
PY
  rm -rf "$OUT"
done
