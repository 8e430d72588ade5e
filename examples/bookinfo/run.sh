#!/usr/bin/env bash
# The Bookinfo demo: `meshbox run examples/bookinfo/mesh.toml` — productpage, details, reviews
# v1/v2/v3 and ratings as child processes, each with its sidecar, behind the ingress gateway
# on 127.0.0.1:8080. Runs in the foreground until Ctrl-C; --check waits for the product page,
# checks it, prints how long the first good page took and meshbox's memory, and exits.
#   examples/bookinfo/run.sh BUILD_DIR [--check] [--port PORT]
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
BUILD=$(cd "${1:?usage: run.sh BUILD_DIR [--check] [--port PORT]}" && pwd)
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
if [ "$PORT" = 0 ]; then
  PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
fi

MESHBOX=$BUILD/cli/meshbox
TMP=$(mktemp -d)
pid=
cleanup() {
  if [ -n "$pid" ]; then kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 0' INT TERM

# The example's config, on the chosen port; the services' programs are found on PATH.
sed "s/port = 8080, bind/port = $PORT, bind/" "$HERE/mesh.toml" >"$TMP/mesh.toml"
export PATH="$BUILD/examples/bookinfo:$PATH"
start_ms=$(date +%s%3N)
"$MESHBOX" run "$TMP/mesh.toml" --state-dir "$TMP/state" --admin 127.0.0.1:0 --no-watch \
  --ready-file "$TMP/ready" 2>"$TMP/meshbox.log" &
pid=$!

URL=http://127.0.0.1:$PORT/productpage
# The first good page: the title, the details and a reviews version that answered.
first_ms=
deadline=$((SECONDS + 20))
while ((SECONDS < deadline)); do
  if page=$(curl -fsS -m 2 "$URL" 2>/dev/null) && [[ $page == *"Simple Bookstore App"* ]] &&
     [[ $page == *"Reviews served by: reviews-v"* ]] && [[ $page == *"William Shakespeare"* ]]; then
    first_ms=$(($(date +%s%3N) - start_ms))
    break
  fi
  if ! kill -0 "$pid" 2>/dev/null; then echo "meshbox exited:" >&2; cat "$TMP/meshbox.log" >&2; exit 1; fi
  sleep 0.05
done
if [ -z "$first_ms" ]; then
  echo "no good product page within 20 s; meshbox's log:" >&2
  tail -n 40 "$TMP/meshbox.log" >&2
  exit 1
fi

cat <<MSG

  Bookinfo is up: open $URL
  (first good page $first_ms ms after start)

  try:
    curl -s $URL | grep 'Reviews served by'     # v1, v2, v3 in turn
    $MESHBOX get workloads --state-dir $TMP/state
    $MESHBOX get routes --state-dir $TMP/state

MSG

if [ "$CHECK" = 1 ]; then
  # Every version answers in turn (round robin over reviews v1, v2, v3), each with its stars.
  # (The first good page may come before every reviews instance passed its first health
  # check: poll, with a deadline.)
  seen=""
  deadline=$((SECONDS + 15))
  while ((SECONDS < deadline)) && ! [[ $seen == *v1* && $seen == *v2* && $seen == *v3* ]]; do
    page=$(curl -fsS -m 5 "$URL")
    case "$page" in
      *"Reviews served by: reviews-v1"*) [[ $page != *glyphicon-star\"* ]] && seen+=" v1" ;;
      *"Reviews served by: reviews-v2"*) [[ $page == *'style="color:black"'* ]] && seen+=" v2" ;;
      *"Reviews served by: reviews-v3"*) [[ $page == *'style="color:red"'* ]] && seen+=" v3" ;;
    esac
  done
  for v in v1 v2 v3; do
    if [[ $seen != *$v* ]]; then
      echo "reviews $v never answered with its stars (seen:$seen); meshbox's log:" >&2
      tail -n 40 "$TMP/meshbox.log" >&2
      exit 1
    fi
  done
  rss_kib=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status")
  echo "bookinfo: first good page ${first_ms} ms after start; meshbox RSS $((rss_kib / 1024)) MiB" \
    "(control plane, 6 sidecars, gateway; the apps not counted)"
  echo "demo check passed"
  exit 0
fi
echo "  Ctrl-C stops the demo."
wait "$pid"
