#!/usr/bin/env bash
# The proxy demo: meshbox-httpbin (a small HTTP server) behind `meshbox proxy` on
# 127.0.0.1:8080. Runs in the foreground until Ctrl-C; --check makes a few requests and exits.
#   examples/proxy-demo/run.sh BUILD_DIR [--check] [--port PORT]
set -euo pipefail
BUILD=${1:?usage: run.sh BUILD_DIR [--check] [--port PORT]}
shift
CHECK=0
PORT=8080
while (($#)); do
  case "$1" in
    --check) CHECK=1 ;;
    --port) PORT=$2; shift ;;
    *) echo "run.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done

MESHBOX=$BUILD/cli/meshbox
HTTPBIN=$BUILD/examples/httpbin/meshbox-httpbin
TMP=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 0' INT TERM

# wait_file PATH: poll until PATH exists (10 s deadline).
wait_file() {
  local deadline=$((SECONDS + 10))
  until [ -s "$1" ]; do
    if ((SECONDS > deadline)); then echo "timed out waiting for $1" >&2; exit 1; fi
    sleep 0.05
  done
}

"$HTTPBIN" --listen 127.0.0.1:0 --name demo-backend --ready-file "$TMP/backend" &
pids+=($!)
wait_file "$TMP/backend"
BACKEND=$(head -n1 "$TMP/backend")

"$MESHBOX" proxy --listen "127.0.0.1:$PORT" --to "$BACKEND" --ready-file "$TMP/proxy" &
pids+=($!)
wait_file "$TMP/proxy"
PROXY=$(head -n1 "$TMP/proxy")

cat <<MSG

  meshbox proxy is listening on http://$PROXY  →  demo backend on $BACKEND

  try:
    curl -i http://$PROXY/
    curl -s http://$PROXY/headers            # what the backend received (X-Forwarded-For, x-request-id)
    curl -s http://$PROXY/bytes/1048576 | wc -c
    curl -s -X POST --data-binary @/etc/os-release http://$PROXY/echo

MSG

if [ "$CHECK" = 1 ]; then
  curl -fsS "http://$PROXY/" | grep -q "hello from demo-backend"
  curl -fsS "http://$PROXY/headers" | grep -qi "x-request-id"
  echo "demo check passed"
  exit 0
fi
echo "  Ctrl-C stops the demo."
wait
