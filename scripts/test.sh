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

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo test (release profile)"
cargo test --release --workspace --locked

if [ "${PERSONA_SKIP_CLIPPY:-0}" != "1" ]; then
  echo "== cargo clippy (release profile, warnings are errors)"
  cargo clippy --release --workspace --all-targets --locked -- -D warnings
fi
