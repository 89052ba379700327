#!/usr/bin/env bash
# Runs the Autobahn|Testsuite fuzzingclient against a real herald-gateway's /ws/echo and
# fails when any case FAILED or is MISSING (AB_STRICT=1). Called by `make autobahn`.
#
#   tests/autobahn/gateway.sh [CASES] [OUTDIR]
#
# CASES defaults to sections 1-10 (12-13 need permessage-deflate, which the gateway does
# not negotiate yet). The gateway is built in debug (CARGO, default `cargo`), started on a
# free loopback port with a 20 MB message limit (section 9 sends 16 MiB messages) on the
# local Redis (HERALD_REDIS_URL, default redis://127.0.0.1:6379), and stopped at the end.
# setup.sh installs the suite into AB_VENV when it is missing (run.sh calls it).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
CASES="${1:-1.*,2.*,3.*,4.*,5.*,6.*,7.*,8.*,9.*,10.*}"
OUT="${2:-$ROOT/target/autobahn}"
CARGO="${CARGO:-cargo}"

SQLX_OFFLINE=true $CARGO build -q -p herald-gateway --bin herald-gateway
BIN="$ROOT/target/debug/herald-gateway"
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
LOG="$OUT.gateway.log"
mkdir -p "$(dirname "$LOG")"

HERALD_LISTEN="127.0.0.1:$PORT" \
  HERALD_REDIS_PREFIX="autobahn:$$:" \
  HERALD_LIMITS__MAX_MESSAGE_SIZE=20000000 \
  HERALD_WEBSOCKET__ECHO=true \
  "$BIN" >"$LOG" 2>&1 &
GW=$!
trap 'kill "$GW" 2>/dev/null || true; wait "$GW" 2>/dev/null || true' EXIT

for _ in $(seq 1 100); do
  if python3 -c "import socket,sys; socket.create_connection(('127.0.0.1', $PORT), 0.2)" 2>/dev/null; then
    break
  fi
  kill -0 "$GW" 2>/dev/null || { echo "herald-gateway exited; see $LOG" >&2; exit 2; }
  sleep 0.1
done

AB_STRICT=1 AB_EXCLUDE="${AB_EXCLUDE:-12.*,13.*}" AB_AGENT=herald-gateway \
  "$HERE/run.sh" "ws://127.0.0.1:$PORT/ws/echo" "$CASES" "$OUT"
