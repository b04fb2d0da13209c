#!/usr/bin/env bash
# A local Ballista cluster for Persona: one scheduler and N executors as separate processes on
# 127.0.0.1, with logs and PIDs in a run folder.
#
#   scripts/cluster.sh start [N]   # default N=2; prints the --engine to use
#   scripts/cluster.sh stop
#   scripts/cluster.sh status
#
# Environment: PERSONA_CLUSTER_DIR (run folder, default .cluster), PERSONA_SCHEDULER_PORT
# (default 50050), PERSONA_BIN (default: the release build, built if missing).
set -euo pipefail
cd "$(dirname "$0")/.."

RUN_DIR="${PERSONA_CLUSTER_DIR:-.cluster}"
PORT="${PERSONA_SCHEDULER_PORT:-50050}"
TARGET="${CARGO_TARGET_DIR:-target}"
BIN="${PERSONA_BIN:-$TARGET/release/persona}"

start() {
  local n="${1:-2}"
  if [ -f "$RUN_DIR/scheduler.pid" ] && kill -0 "$(cat "$RUN_DIR/scheduler.pid")" 2>/dev/null; then
    echo "a cluster is already running from $RUN_DIR (scripts/cluster.sh stop first)" >&2
    exit 1
  fi
  [ -x "$BIN" ] || cargo build --release --bin persona
  mkdir -p "$RUN_DIR"
  "$BIN" scheduler --bind 127.0.0.1 --port "$PORT" >"$RUN_DIR/scheduler.log" 2>&1 &
  echo $! >"$RUN_DIR/scheduler.pid"
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
    sleep 0.1
  done
  for i in $(seq 1 "$n"); do
    local flight=$((PORT + 10 * i + 1)) grpc=$((PORT + 10 * i + 2))
    mkdir -p "$RUN_DIR/executor-$i"
    "$BIN" executor --bind 127.0.0.1 --port "$flight" --grpc-port "$grpc" \
      --scheduler-host 127.0.0.1 --scheduler-port "$PORT" --work-dir "$RUN_DIR/executor-$i" \
      >"$RUN_DIR/executor-$i.log" 2>&1 &
    echo $! >"$RUN_DIR/executor-$i.pid"
  done
  echo "scheduler on 127.0.0.1:$PORT with $n executors; logs in $RUN_DIR/"
  echo "run with: persona run ... --engine ballista://127.0.0.1:$PORT"
}

stop() {
  shopt -s nullglob
  for pidfile in "$RUN_DIR"/*.pid; do
    kill "$(cat "$pidfile")" 2>/dev/null || true
    rm -f "$pidfile"
  done
  echo "stopped the cluster in $RUN_DIR"
}

status() {
  shopt -s nullglob
  for pidfile in "$RUN_DIR"/*.pid; do
    if kill -0 "$(cat "$pidfile")" 2>/dev/null; then state=running; else state=dead; fi
    echo "$(basename "$pidfile" .pid): $state (pid $(cat "$pidfile"))"
  done
}

case "${1:-}" in
  start) start "${2:-2}" ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: scripts/cluster.sh start [N] | stop | status" >&2; exit 2 ;;
esac
