#!/usr/bin/env bash
# Smoke test for meshbox-httpbin: starts the real binary on port 0 and drives every endpoint
# with curl (and bash /dev/tcp for raw pipelining and a WebSocket frame).
# Usage: smoke_test.sh PATH/TO/meshbox-httpbin
set -u -o pipefail

BIN=${1:?usage: smoke_test.sh PATH/TO/meshbox-httpbin}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/httpbin-smoke.XXXXXX")
SERVER_PID=""
FAILURES=0

cleanup() {
  if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -KILL "$SERVER_PID" 2>/dev/null
    wait "$SERVER_PID" 2>/dev/null
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

fail() {
  echo "FAIL: $*" >&2
  FAILURES=$((FAILURES + 1))
}
pass() { echo "ok: $*"; }

# expect_eq NAME EXPECTED ACTUAL
expect_eq() {
  if [[ "$2" == "$3" ]]; then pass "$1"; else fail "$1: expected [$2], got [$3]"; fi
}
# expect_match NAME REGEX TEXT
expect_match() {
  if [[ "$3" =~ $2 ]]; then pass "$1"; else fail "$1: [$3] does not match /$2/"; fi
}

# Waits until `cond` (a command) succeeds or SECONDS_LEFT run out; polls, no fixed sleeps.
wait_for() {
  local deadline=$((SECONDS + $1))
  shift
  until "$@"; do
    ((SECONDS >= deadline)) && return 1
    sleep 0.02
  done
}

# ---- flags -----------------------------------------------------------------------------------
"$BIN" --help >/dev/null
expect_eq "--help exits 0" 0 $?
"$BIN" --bogus 2>/dev/null
expect_eq "unknown flag exits 2" 2 $?
"$BIN" 2>/dev/null
expect_eq "missing --listen exits 2" 2 $?
"$BIN" --listen nonsense 2>/dev/null
expect_eq "bad --listen exits 2" 2 $?
"$BIN" --listen 127.0.0.1:0 --log-level loud 2>/dev/null
expect_eq "bad --log-level exits 2" 2 $?

# ---- start -----------------------------------------------------------------------------------
READY="$WORK/ready"
"$BIN" --listen 127.0.0.1:0 --name smoke --ready-file "$READY" --log-level warn \
  2>"$WORK/server.log" &
SERVER_PID=$!
if ! wait_for 10 test -s "$READY"; then
  echo "FAIL: server did not write its ready file" >&2
  cat "$WORK/server.log" >&2
  exit 1
fi
ADDR=$(head -n1 "$READY")
HOST=${ADDR%:*}
PORT=${ADDR##*:}
URL="http://$ADDR"
expect_match "ready file holds HOST:PORT" '^127\.0\.0\.1:[0-9]+$' "$ADDR"
[[ -e "$READY.tmp" ]] && fail "ready file's .tmp was left behind"

C=(curl -s --max-time 10)

# ---- endpoints -------------------------------------------------------------------------------
expect_eq "GET /" "hello from smoke" "$("${C[@]}" "$URL/")"
headers=$("${C[@]}" -D - -o /dev/null "$URL/")
expect_match "x-backend-name" $'x-backend-name: smoke\r' "$headers"
expect_match "x-backend-conn" $'x-backend-conn: [0-9]+\r' "$headers"

expect_eq "GET /bytes/100000 size" 100000 "$("${C[@]}" "$URL/bytes/100000" | wc -c)"
expect_eq "GET /bytes/64 pattern" "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ+/" \
  "$("${C[@]}" "$URL/bytes/64")"
headers=$("${C[@]}" -D - -o "$WORK/chunked" "$URL/bytes/100000?chunked=1")
expect_match "?chunked=1 is chunked" $'transfer-encoding: chunked\r' "$headers"
expect_eq "?chunked=1 size" 100000 "$(wc -c <"$WORK/chunked")"
expect_eq "GET /bytes/20MiB size" 20971520 "$("${C[@]}" "$URL/bytes/20971520" | wc -c)"

head -c 3000000 /dev/urandom >"$WORK/body"
"${C[@]}" --data-binary @"$WORK/body" -o "$WORK/echo" "$URL/echo"
if cmp -s "$WORK/body" "$WORK/echo"; then pass "POST /echo"; else fail "POST /echo differs"; fi
"${C[@]}" -H 'Transfer-Encoding: chunked' --data-binary @"$WORK/body" -D "$WORK/echo.h" \
  -o "$WORK/echo2" "$URL/echo"
if cmp -s "$WORK/body" "$WORK/echo2"; then pass "chunked POST /echo"; else fail "chunked echo differs"; fi
expect_match "chunked echo is chunked" $'transfer-encoding: chunked\r' "$(cat "$WORK/echo.h")"
expect_eq "PUT /echo" "put-body" "$("${C[@]}" -X PUT --data-binary put-body "$URL/echo")"

# FNV-1a 64 of "abc" is e71fa2190541574b.
expect_eq "POST /upload" '{"bytes":3,"fnv1a":"e71fa2190541574b"}' \
  "$("${C[@]}" --data-binary abc "$URL/upload")"
expect_match "POST /upload 3 MB" '^\{"bytes":3000000,"fnv1a":"[0-9a-f]{16}"\}$' \
  "$("${C[@]}" --data-binary @"$WORK/body" "$URL/upload")"

expect_eq "GET /status/418" 418 "$("${C[@]}" -o /dev/null -w '%{http_code}' "$URL/status/418")"
expect_eq "GET /status/204" "204:0" \
  "$("${C[@]}" -o "$WORK/s204" -w '%{http_code}:%{size_download}' "$URL/status/204")"
expect_eq "GET /status/99 is 400" 400 "$("${C[@]}" -o /dev/null -w '%{http_code}' "$URL/status/99")"

start=$(date +%s%N)
expect_eq "GET /delay/200" 200 "$("${C[@]}" -o /dev/null -w '%{http_code}' "$URL/delay/200")"
elapsed_ms=$((($(date +%s%N) - start) / 1000000))
if ((elapsed_ms >= 190)); then pass "delay took ${elapsed_ms} ms"; else fail "delay too short: $elapsed_ms ms"; fi

json=$("${C[@]}" -H 'X-Smoke: "quoted" \ back' "$URL/headers?x=1")
expect_match "/headers method+target" '^\{"method":"GET","target":"/headers\?x=1","version":"1.1","headers":\[\["Host",' "$json"
expect_match "/headers escapes" '\["X-Smoke","\\"quoted\\" \\\\ back"\]' "$json"
expect_match "POST /headers" '"method":"POST"' "$("${C[@]}" -d x "$URL/headers")"

expect_match "/stats" '^\{"connections_total":[0-9]+,"connections_active":1,"requests_total":[0-9]+\}$' \
  "$("${C[@]}" "$URL/stats")"
expect_eq "unknown path is 404" 404 "$("${C[@]}" -o /dev/null -w '%{http_code}' "$URL/nope")"
expect_eq "wrong method is 404" 404 "$("${C[@]}" -o /dev/null -w '%{http_code}' -X DELETE "$URL/")"

"${C[@]}" -o "$WORK/abort" "$URL/abort-mid-body"
expect_eq "abort-mid-body: curl sees a reset (56)" 56 $?
expect_eq "abort-mid-body: 1000 bytes arrived" 1000 "$(wc -c <"$WORK/abort")"
"${C[@]}" -o /dev/null "$URL/close-before-response"
expect_eq "close-before-response: empty reply (52)" 52 $?

# Keep-alive: two requests in one curl run share a connection.
ids=$("${C[@]}" -D - -o /dev/null -o /dev/null "$URL/" "$URL/stats" | tr -d '\r' |
  sed -n 's/^x-backend-conn: //p' | sort -u | wc -l)
expect_eq "keep-alive reuses the connection" 1 "$ids"

# ---- raw bytes: pipelining, bad requests, HTTP/1.0, WebSocket -----------------------------------
raw() {  # raw REQUEST-BYTES: sends them on a new connection, prints everything until close
  exec 3<>"/dev/tcp/$HOST/$PORT" || return 1
  printf '%b' "$1" >&3
  timeout 10 cat <&3
  exec 3<&-
}
out=$(raw 'GET / HTTP/1.1\r\nHost: a\r\n\r\nGET /status/201 HTTP/1.1\r\nHost: a\r\n\r\nGET /stats HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n' | tr -d '\r')
expect_eq "pipelined: three answers in order" "200 201 200" \
  "$(sed -n 's/^HTTP\/1.1 \([0-9]*\).*/\1/p' <<<"$out" | tr '\n' ' ' | sed 's/ $//')"
expect_eq "pipelined: one connection" 1 "$(sed -n 's/^x-backend-conn: //p' <<<"$out" | sort -u | wc -l)"

out=$(raw 'GET / HTTP/1.1\r\nHost: a\r\nbad header: x\r\n\r\n' | tr -d '\r')
expect_match "bad request is 400 + close" $'^HTTP/1.1 400 .*\nconnection: close' "$out"
out=$(raw 'GET / HTTP/1.0\r\n\r\n' | tr -d '\r')
expect_match "HTTP/1.0 closes" $'connection: close\n.*hello from smoke' "$out"

# WebSocket: the RFC 6455 sample key, then a masked "hello" (key 01 02 03 04) sent in the
# same write as the handshake, then a close frame with status 1000.
exec 3<>"/dev/tcp/$HOST/$PORT"
printf '%b' 'GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n\x81\x85\x01\x02\x03\x04\x69\x67\x6f\x68\x6e' >&3
ws_head=""
while IFS= read -r -t 10 line <&3; do
  line=${line%$'\r'}
  [[ -z "$line" ]] && break
  ws_head+="$line"$'\n'
done
expect_match "ws: 101" '^HTTP/1.1 101 ' "$ws_head"
expect_match "ws: accept key" 'sec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK\+xOo=' "$ws_head"
expect_eq "ws: echo frame" "81 05 68 65 6c 6c 6f" \
  "$(timeout 10 head -c 7 <&3 | od -An -tx1 | xargs)"
printf '%b' '\x88\x82\x01\x02\x03\x04\x02\xea' >&3
expect_eq "ws: close answered" "88 02 03 e8" "$(timeout 10 head -c 4 <&3 | od -An -tx1 | xargs)"
exec 3<&-

# ---- shutdown --------------------------------------------------------------------------------
exec 3<>"/dev/tcp/$HOST/$PORT"  # an idle connection must not hold up the exit
kill -TERM "$SERVER_PID"
if wait_for 10 bash -c "! kill -0 $SERVER_PID 2>/dev/null"; then
  wait "$SERVER_PID"
  expect_eq "SIGTERM exits 0" 0 $?
else
  fail "server still running 10 s after SIGTERM"
fi
SERVER_PID=""
exec 3<&-
if grep -q 'loop closed with handles still open' "$WORK/server.log"; then
  fail "loop did not close cleanly: $(cat "$WORK/server.log")"
fi

if ((FAILURES > 0)); then
  echo "$FAILURES check(s) failed; server log:" >&2
  cat "$WORK/server.log" >&2
  exit 1
fi
echo "all checks passed"
