# Generated benchmark data and the peers' venv, shared by scripts/bench*.sh (sourced; they set
# BIN, CACHE, DATE, VENV):
# one input per scale in $CACHE/bench/als-SCALE/input, and the evaluation's train/holdout split
# of it in .../split, each made once and reused.

# bench_venv IMPORTS PACKAGE...: makes the benchmark venv ($VENV) once, installing PACKAGE...
# when `import IMPORTS` fails in it (e.g. bench_venv "sklearn, pyarrow" scikit-learn pyarrow).
bench_venv() {
  local imports="$1"; shift
  if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c "import $imports" 2>/dev/null; then
    echo "== installing $* into $VENV (once)" >&2
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "$@"
  fi
}

# bench_input SCALE: the input folder of SCALE, generated first if missing.
bench_input() {
  local data="$CACHE/bench/als-$1"
  # .complete-v2: written by the generator that also writes the hidden truth (_truth/).
  if [ ! -f "$data/input/.complete-v2" ]; then
    echo "== generating $1 data into $data/input (once)" >&2
    rm -rf "$data/input" && mkdir -p "$data"
    "$BIN" generate --scale "$1" --out "$data/input" --end-date "$DATE" >&2
    touch "$data/input/.complete-v2"
  fi
  echo "$data/input"
}

# bench_split SCALE: the folder of the evaluation's split (train.parquet, holdout.parquet) of
# SCALE's input, exported first if missing.
bench_split() {
  local data="$CACHE/bench/als-$1" input
  input=$(bench_input "$1")
  if [ ! -f "$data/split/holdout.parquet" ] || [ "$data/split/holdout.parquet" -ot "$input/.complete-v2" ]; then
    echo "== exporting the evaluation split of $1 into $data/split (once)" >&2
    "$BIN" evaluate --input "$input" --output "$data/output" --date "$DATE" \
      --export-split "$data/split" >/dev/null
  fi
  echo "$data/split"
}
