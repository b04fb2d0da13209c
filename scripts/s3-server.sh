#!/usr/bin/env bash
# A local S3-compatible server on 127.0.0.1 for trying Persona against object storage and for the
# tests: MinIO when a `minio` binary is on PATH, otherwise s3s-fs 0.14.1 from crates.io (installed
# once into ~/.cache/persona/tools; it verifies SigV4 signatures and serves ranged GETs, copies and
# conditional PUTs, which Parquet readers and atomic publishing need).
#
#   scripts/s3-server.sh start     # starts the server, creates the bucket, prints the export lines
#   eval "$(scripts/s3-server.sh env)"
#   scripts/s3-server.sh stop      # stops it by its PID
#   scripts/s3-server.sh install   # only installs s3s-fs (CI warms it up front)
#
# Environment: PERSONA_S3_DIR (state folder: data, log, pid; default .s3), PERSONA_S3_PORT
# (default 9101), PERSONA_S3_BUCKET (default persona), PERSONA_S3_ACCESS_KEY / _SECRET_KEY.
set -euo pipefail
cd "$(dirname "$0")/.."

STATE="${PERSONA_S3_DIR:-.s3}"
PORT="${PERSONA_S3_PORT:-9101}"
BUCKET="${PERSONA_S3_BUCKET:-persona}"
ACCESS_KEY="${PERSONA_S3_ACCESS_KEY:-persona-dev}"
SECRET_KEY="${PERSONA_S3_SECRET_KEY:-persona-dev-secret}"
REGION=us-east-1
TOOLS="${PERSONA_TOOLS_DIR:-$HOME/.cache/persona/tools}"
S3S_VERSION=0.14.1

s3s_bin() { echo "$TOOLS/s3s-fs-$S3S_VERSION/bin/s3s-fs"; }

install_s3s() {
  local bin
  bin="$(s3s_bin)"
  if [ -x "$bin" ]; then return; fi
  echo "installing s3s-fs $S3S_VERSION from crates.io into $TOOLS (once, a few minutes)" >&2
  local build
  build="$(mktemp -d)"
  cargo install --locked s3s-fs --version "$S3S_VERSION" --features binary \
    --root "$TOOLS/s3s-fs-$S3S_VERSION" --target-dir "$build" >&2
  rm -rf "$build"
}

endpoint() { echo "http://127.0.0.1:$PORT"; }

print_env() {
  cat <<EOF
export AWS_ACCESS_KEY_ID=$ACCESS_KEY
export AWS_SECRET_ACCESS_KEY=$SECRET_KEY
export AWS_REGION=$REGION
export AWS_ENDPOINT_URL=$(endpoint)
export AWS_ALLOW_HTTP=true
export PERSONA_S3_BUCKET=$BUCKET
EOF
}

running() { [ -f "$STATE/server.pid" ] && kill -0 "$(cat "$STATE/server.pid")" 2>/dev/null; }

wait_for_port() {
  for _ in $(seq 1 200); do
    (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && return 0
    if ! running; then break; fi
    sleep 0.05
  done
  echo "the S3 server did not start; its log ($STATE/server.log) says:" >&2
  tail -20 "$STATE/server.log" >&2 || true
  return 1
}

start() {
  if running; then
    echo "an S3 server is already running from $STATE (pid $(cat "$STATE/server.pid"))" >&2
    print_env
    return
  fi
  mkdir -p "$STATE/data"
  if command -v minio >/dev/null; then
    MINIO_ROOT_USER="$ACCESS_KEY" MINIO_ROOT_PASSWORD="$SECRET_KEY" \
      minio server "$STATE/data" --address "127.0.0.1:$PORT" >"$STATE/server.log" 2>&1 &
    echo $! >"$STATE/server.pid"
    wait_for_port
    # MinIO creates buckets over the API (a signed PUT on the bucket; 409 if it already exists).
    local empty_sha256=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
    curl -s -o /dev/null --aws-sigv4 "aws:amz:$REGION:s3" --user "$ACCESS_KEY:$SECRET_KEY" \
      -H "x-amz-content-sha256: $empty_sha256" -X PUT "$(endpoint)/$BUCKET" || true
  else
    install_s3s
    mkdir -p "$STATE/data/$BUCKET" # s3s-fs: a bucket is a folder
    "$(s3s_bin)" --host 127.0.0.1 --port "$PORT" --access-key "$ACCESS_KEY" \
      --secret-key "$SECRET_KEY" "$STATE/data" >"$STATE/server.log" 2>&1 &
    echo $! >"$STATE/server.pid"
    wait_for_port
  fi
  echo "S3 server on $(endpoint), bucket s3://$BUCKET; state in $STATE/" >&2
  print_env
}

stop() {
  if [ -f "$STATE/server.pid" ]; then
    kill "$(cat "$STATE/server.pid")" 2>/dev/null || true
    rm -f "$STATE/server.pid"
    echo "stopped the S3 server of $STATE" >&2
  fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  env) print_env ;;
  install) if ! command -v minio >/dev/null; then install_s3s; fi ;;
  *) echo "usage: scripts/s3-server.sh start | stop | env | install" >&2; exit 2 ;;
esac
