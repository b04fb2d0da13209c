#!/usr/bin/env bash
# Fails when `cargo build` and `cargo test` would compile a shared dependency with different
# features. Cargo unifies a dev-dependency's features into the crates the binary also uses only
# when tests are built, so one differing feature low in the tree (getrandom's `std`, pulled in
# by sqllogictest) makes the test build compile DataFusion and Ballista a second time. The
# workspace Cargo.toml asks for such features in `jobs` too; this check keeps it that way.
set -euo pipefail
cd "$(dirname "$0")/.."
tree() { cargo tree --locked --prefix none -f '{p}|{f}' "$@" | sed 's/ (\*)$//' | sort -u; }
# What `cargo build --workspace` and `cargo run` (the persona binary alone) compile, and what
# `cargo test --workspace` compiles.
workspace="$(tree --workspace -e normal,build)"
binary="$(tree -p persona-jobs -e normal,build)"
all="$(tree --workspace -e normal,build,dev)"
for normal in "$workspace" "$binary"; do
  python3 - "$normal" "$all" <<'PY'
import sys
def features(text):
    out = {}
    for line in text.splitlines():
        package, _, feats = line.partition("|")
        out.setdefault(package.strip(), set()).update(f for f in feats.split(",") if f)
    return out
normal, tests = features(sys.argv[1]), features(sys.argv[2])
diverged = [(p, sorted(tests[p] - normal[p])) for p in sorted(normal) if tests.get(p, set()) - normal[p]]
for package, extra in diverged:
    print(f"check-features: the test build adds {extra} to {package}; ask for them in jobs/Cargo.toml too", file=sys.stderr)
if diverged:
    sys.exit(1)
print(f"check-features: {len(normal)} shared crates, same features in the build and the test build")
PY
done
