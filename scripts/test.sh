#!/usr/bin/env bash
# Runs every check and test of the project: formatting, lints, unit and integration tests.
# This is the README's test command; .ci/run calls exactly this.
#
# One build profile (release) serves the tests, the demo and the benchmarks, so DataFusion and
# Ballista are compiled once. Set CARGO_TARGET_DIR to share the build between checkouts.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null; then
  echo "cargo not found: install the Rust toolchain (https://rustup.rs)" >&2
  exit 1
fi

# Real components for the integration tests, installed once into ~/.cache/persona: an
# S3-compatible server (MinIO when on PATH, otherwise s3s-fs from crates.io), pyarrow (from
# PyPI, to read the outputs with an engine that is not DataFusion), scipy and statsmodels
# (the A/B statistics are checked against them), and a headless Chromium (the report is
# rendered in it).
CACHE="${PERSONA_CACHE_DIR:-$HOME/.cache/persona}"
VENV="$CACHE/venv"
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c "import pyarrow, scipy, statsmodels" 2>/dev/null; then
  echo "== installing pyarrow, scipy and statsmodels into $VENV (once)"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "pyarrow>=15" "scipy>=1.11" "statsmodels>=0.14"
fi
export PERSONA_PYTHON="$VENV/bin/python"

# A real browser for the report's test: Debian's headless Chromium, installed once.
if ! command -v chromium-headless-shell >/dev/null && ! command -v chromium >/dev/null; then
  echo "== installing chromium-headless-shell (once, from Debian's packages)"
  SUDO=""; [ "$(id -u)" != 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium-headless-shell >/dev/null
fi

echo "== S3 server for the tests"
S3_TMP="$(mktemp -d)"
export PERSONA_S3_DIR="${PERSONA_S3_DIR:-$S3_TMP/s3}"
export PERSONA_S3_PORT="${PERSONA_S3_PORT:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')}"
trap 'scripts/s3-server.sh stop; rm -rf "$S3_TMP"' EXIT
eval "$(scripts/s3-server.sh start)"

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== the build and the test build share one set of features"
scripts/check-features.sh

echo "== cargo build + test (release profile)"
# The integration tests (tests/) run the `persona` binary of another package, which
# `cargo test` alone does not rebuild: build it first, same profile.
cargo build --release --workspace --locked --bins
cargo test --release --workspace --locked

if [ "${PERSONA_SKIP_CLIPPY:-0}" != "1" ]; then
  echo "== cargo clippy (release profile, warnings are errors)"
  cargo clippy --release --workspace --all-targets --locked -- -D warnings
fi
