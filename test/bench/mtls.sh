#!/usr/bin/env bash
# The mesh path with mTLS: client → outbound proxy → mTLS (client certificates, TLS 1.3) →
# inbound proxy → backend, for meshbox, nginx and HAProxy, plus meshbox's plain-text path of
# the same shape.
#
#   test/bench/mtls.sh              3 interleaved rounds of 5 s wrk runs (~3 min + build)
#   test/bench/mtls.sh --quick      1 round of 2 s runs (smoke test; numbers not quotable)
#   test/bench/mtls.sh --help       all options
#
# Contestants (each started fresh for every run, two processes' worth of CPU each):
#   meshbox-plain  `meshbox run --workers 2`: a gateway (outbound) → the sidecar of a workload
#                  (inbound) → its app, plain text (peer_authentication DISABLE)
#   meshbox-mtls   the same under STRICT: gateway → sidecar is mesh mTLS (ECDSA P-256
#                  certificates from meshbox's CA, TLS 1.3, sessions resumed, pooled)
#   nginx-mtls     two nginx (`worker_processes 1` each): the first with proxy_ssl_certificate,
#                  proxy_ssl_verify on, TLS 1.3, session reuse and upstream keepalive; the
#                  second with ssl_verify_client on; both ECDSA P-256 certificates of one CA
#   haproxy-mtls   two HAProxy (`nbthread 1` each): `ssl crt … ca-file … verify required`
#                  on the first's server line, the same on the second's bind; http-reuse always
# The backend is an nginx "hello" (meshbox: the workload's app is that nginx, started by
# meshbox). Measured like run.sh: saturation (wrk -c50) and low load (wrk -c1): requests/s,
# p50/p99 and the proxies' CPU µs per request (utime+stime from /proc, both proxies; for
# meshbox its own process, not the app it runs). Targets: meshbox mTLS CPU/request ≤ 1.3×
# meshbox plain and ≤ 1.0× the better peer's mTLS; meshbox mTLS p99 ≤ 1.0× the better peer's.
# Replaces the section between <!-- mtls:begin --> and <!-- mtls:end --> in
# test/bench/RESULTS.md; raw numbers in test/bench/out/mtls/ (gitignored).
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$BENCH_DIR/../.." && pwd)
OUT_DIR=$BENCH_DIR/out/mtls
RESULTS=$BENCH_DIR/RESULTS.md
RELEASE_DIR=$REPO/build-release
LOG_TAG=mtls
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$BENCH_DIR/lib.sh"

# ---------------------------------------------------------------- options
ROUNDS=3
DURATION=5
WARMUP=2
CONNS=50
WORKERS=2
MESHBOX_BIN=""
QUICK=0
ROUNDS_SET=0
DURATION_SET=0
CONTESTANTS="meshbox-plain meshbox-mtls nginx-mtls haproxy-mtls"

usage() {
  cat <<EOF
usage: $0 [options]
  --rounds N       interleaved rounds (default $ROUNDS)
  --duration S     seconds per measured wrk run (default $DURATION)
  --only "A B"     a subset of: $CONTESTANTS
  --results PATH   the file whose mtls section is replaced (default test/bench/RESULTS.md)
  --quick          1 round of 2 s runs, 1 s warm-ups (smoke test; numbers not quotable)
  --meshbox PATH   use this meshbox binary instead of building $RELEASE_DIR
  -h, --help       this help
EOF
}

while (($#)); do
  bench_opt "$@"
  shift "$OPT_SHIFT"
done
apply_quick 2
need_posint --rounds "$ROUNDS"
need_posint --duration "$DURATION"
need_contestants "meshbox-plain meshbox-mtls nginx-mtls haproxy-mtls"

START_EPOCH=$(date +%s)
install_traps

ensure_tools() {
  local missing
  missing=$(missing_tools wrk:wrk nginx:nginx-light haproxy:haproxy curl:curl python3:python3 \
    openssl:openssl getconf:libc-bin)
  [[ -n $MESHBOX_BIN ]] || missing+=" $(missing_build_deps)"
  # shellcheck disable=SC2086 # one package per word
  [[ -z ${missing//[[:space:]]/} ]] || apt_install $missing
}

# ---------------------------------------------------------------- certificates (nginx, HAProxy)
# One CA; the inbound proxy's certificate names "inbound.mesh" (DNS SAN), the outbound's is a
# client certificate. ECDSA P-256, as meshbox's CA issues.
make_certs() {
  local d=$TMP/certs ec="-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
  mkdir -p "$d"
  (
    cd "$d"
    # shellcheck disable=SC2086 # $ec is several arguments
    {
      openssl req -x509 $ec -days 2 -subj /CN=bench-ca -keyout ca.key -out ca.pem
      openssl req $ec -subj /CN=inbound.mesh -keyout server.key -out server.csr
      printf 'subjectAltName=DNS:inbound.mesh\nextendedKeyUsage=serverAuth\n' >server.ext
      openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
        -extfile server.ext -out server.pem
      openssl req $ec -subj /CN=outbound.mesh -keyout client.key -out client.csr
      printf 'extendedKeyUsage=clientAuth\n' >client.ext
      openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
        -extfile client.ext -out client.pem
      cat server.pem server.key >server-combined.pem
      cat client.pem client.key >client-combined.pem
    } >"$d/openssl.log" 2>&1
  ) || die "making certificates failed: $(tail -5 "$d/openssl.log")"
}

# ---------------------------------------------------------------- contestants
# Each start_* writes its config in DIR, starts the processes (PIDs in CPIDS, the ones whose
# CPU counts in CPU_PIDS, with CPU_SELF=1 when only the process itself counts) and leaves the
# client's port in CPORT.
declare -a CPIDS=() CPU_PIDS=()
CPU_SELF=0
CPORT=""
MESH_ADMIN=""

start_meshbox() {   # DIR MODE (disable|strict)
  local dir=$1 mode=$2 gw mpid
  read -r gw < <(free_ports 1)
  {
    hello_mesh "$dir" "$gw"
    cat <<EOF

[[peer_authentication]]
name = "default"
namespace = "default"
mtls = { mode = "$mode" }
EOF
  } >"$dir/mesh.toml"
  run_bg mpid "$MESHBOX_BIN" run "$dir/mesh.toml" --state-dir "$dir/state" --admin 127.0.0.1:0 \
    --ready-file "$dir/ready" --workers "$WORKERS" --log-level warn --no-watch \
    >"$dir/stdout.log" 2>"$dir/stderr.log"
  CPIDS=("$mpid") CPU_PIDS=("$mpid") CPU_SELF=1 CPORT=$gw
  wait_file "$dir/ready" "$mpid" 10 || return 1
  MESH_ADMIN=$(awk '$1 == "admin" { print $2; exit }' "$dir/ready")
  wait_http "$gw" "$mpid" "meshbox gateway"
}

nginx_conf() {   # PREFIX LISTEN_LINE UPSTREAM_SERVER PROXY_LINES
  {
    nginx_common "$1"
    echo "http {"
    nginx_http_common "$1"
    cat <<EOF
    upstream next {
        server $3;
        keepalive 64;
        keepalive_requests 1000000;
    }
    server {
        $2
        location / {
            proxy_http_version 1.1;
            proxy_set_header Connection "";
$4
        }
    }
}
EOF
  } >"$1/nginx.conf"
}

start_nginx_proxy() {   # PREFIX VAR
  local prefix=$1 __var=$2 __pid
  nginx -t -q -p "$prefix" -e "$prefix/error.log" -c "$prefix/nginx.conf" \
    || { log "nginx config test failed: $(tail -3 "$prefix/error.log")"; return 1; }
  run_bg __pid nginx -p "$prefix" -e "$prefix/error.log" -c "$prefix/nginx.conf"
  printf -v "$__var" '%s' "$__pid"
}

start_nginx_mtls() {   # DIR
  local dir=$1 out in c=$TMP/certs pin pout
  read -r out in < <(free_ports 2)
  mkdir -p "$dir/in" "$dir/out"
  nginx_conf "$dir/in" "listen 127.0.0.1:$in ssl backlog=4096;
        ssl_certificate $c/server.pem;
        ssl_certificate_key $c/server.key;
        ssl_client_certificate $c/ca.pem;
        ssl_verify_client on;
        ssl_protocols TLSv1.3;
        ssl_session_cache shared:in:1m;" "127.0.0.1:$BACKEND_PORT" "            proxy_pass http://next;"
  nginx_conf "$dir/out" "listen 127.0.0.1:$out backlog=4096;" "127.0.0.1:$in" \
    "            proxy_pass https://next;
            proxy_ssl_certificate $c/client.pem;
            proxy_ssl_certificate_key $c/client.key;
            proxy_ssl_trusted_certificate $c/ca.pem;
            proxy_ssl_verify on;
            proxy_ssl_name inbound.mesh;
            proxy_ssl_server_name on;
            proxy_ssl_protocols TLSv1.3;
            proxy_ssl_session_reuse on;"
  start_nginx_proxy "$dir/in" pin || return 1
  start_nginx_proxy "$dir/out" pout || return 1
  CPIDS=("$pout" "$pin") CPU_PIDS=("$pout" "$pin") CPU_SELF=0 CPORT=$out
  wait_http "$out" "$pout" "nginx outbound"
}

start_haproxy_mtls() {   # DIR
  local dir=$1 out in c=$TMP/certs pin pout
  read -r out in < <(free_ports 2)
  mkdir -p "$dir"
  local common="global
    nbthread 1
    maxconn 8000
    ssl-default-bind-options ssl-min-ver TLSv1.3
    ssl-default-server-options ssl-min-ver TLSv1.3
defaults
    mode http
    option http-keep-alive
    http-reuse always
    timeout connect 5s
    timeout client 60s
    timeout server 60s"
  cat >"$dir/in.cfg" <<EOF
$common
frontend in
    bind 127.0.0.1:$in ssl crt $c/server-combined.pem ca-file $c/ca.pem verify required
    default_backend app
backend app
    server app 127.0.0.1:$BACKEND_PORT
EOF
  cat >"$dir/out.cfg" <<EOF
$common
frontend out
    bind 127.0.0.1:$out
    default_backend next
backend next
    server in 127.0.0.1:$in ssl crt $c/client-combined.pem ca-file $c/ca.pem verify required verifyhost inbound.mesh sni str(inbound.mesh)
EOF
  if ! { haproxy -c -q -f "$dir/in.cfg" && haproxy -c -q -f "$dir/out.cfg"; } >"$dir/check.log" 2>&1; then
    log "haproxy config check failed: $(tail -3 "$dir/check.log")"
    return 1
  fi
  run_bg pin haproxy -db -f "$dir/in.cfg"
  run_bg pout haproxy -db -f "$dir/out.cfg"
  CPIDS=("$pout" "$pin") CPU_PIDS=("$pout" "$pin") CPU_SELF=0 CPORT=$out
  wait_http "$out" "$pout" "haproxy outbound"
}

cpu_now() {   # the contestant's CPU ticks: its processes (with their children, unless CPU_SELF)
  local total=0 p
  for p in "${CPU_PIDS[@]}"; do
    if ((CPU_SELF)); then
      total=$((total + $(self_ticks "$p")))
    else
      total=$((total + $(cpu_ticks "$p")))
    fi
  done
  echo "$total"
}

# ---------------------------------------------------------------- one measurement
RUNS_CSV=""
declare -a PROBLEMS=()

# run_load ROUND CONTESTANT LOAD CONNS: a warm-up, then the measured wrk run; one CSV row
run_load() {
  local round=$1 name=$2 load=$3 conns=$4 raw=$OUT_DIR/r$1-$2-$3 rc=0
  WHY=""
  local url=http://127.0.0.1:$CPORT/
  wrk -t1 "-c$conns" "-d${WARMUP}s" "$url" >"$raw-warmup.txt" 2>&1 || true
  local tls0="" tls1=""
  [[ $name != meshbox-* ]] || tls0=$(curl -fsS --max-time 2 "http://$MESH_ADMIN/stats/tls" 2>/dev/null || true)
  local c0 c1
  c0=$(cpu_now)
  wrk -t1 "-c$conns" "-d${DURATION}s" --latency "$url" >"$raw-wrk.txt" 2>&1 || rc=$?
  c1=$(cpu_now)
  [[ $name != meshbox-* ]] || tls1=$(curl -fsS --max-time 2 "http://$MESH_ADMIN/stats/tls" 2>/dev/null || true)
  wrk_check "$raw" "$rc"
  local p
  for p in "${CPIDS[@]}"; do kill -0 "$p" 2>/dev/null || WHY+="a process died during the run; "; done
  local cpu=-1
  if [[ $W_REQ != -1 ]] && ((${W_REQ%.*} > 0)); then
    cpu=$(per_req_us $((c1 - c0)) "$W_REQ")
  fi
  # meshbox: upstream TLS handshakes during the run (full, resumed), from GET /stats/tls.
  local hs=""
  if [[ -n $tls0 && -n $tls1 ]]; then
    hs=$(python3 - "$tls0" "$tls1" 2>/dev/null <<'PY' || true
import json, sys
a, b = (json.loads(x)["client"] for x in sys.argv[1:3])
print(f"{b['full'] - a['full']} full, {b['resumed'] - a['resumed']} resumed")
PY
)
  fi
  local status=ok
  [[ -z $WHY ]] || status=fail
  echo "$round,$name,$load,$W_REQ,$W_RPS,$W_P50,$W_P99,$W_MAX,$W_SERR,$W_NON2XX,$cpu,$(csvq "$hs"),$status,$(csvq "$WHY")" >>"$RUNS_CSV"
  if [[ $status != ok ]]; then
    PROBLEMS+=("round $round, $name, $load: ${WHY%; }")
    log "  $name $load: FAILED (${WHY%; })"
  else
    log "$(printf '  %-13s %-10s %8.0f req/s  p50 %6.0f us  p99 %7.0f us  cpu %7s us/req  %s' \
      "$name" "$load" "$W_RPS" "$W_P50" "$W_P99" "$cpu" "${hs:+handshakes: $hs}")"
  fi
}

measure() {   # ROUND CONTESTANT
  local round=$1 name=$2 dir=$TMP/r$1-$2 ok=1
  mkdir -p "$dir"
  case $name in
    meshbox-plain) start_meshbox "$dir" disable || ok=0 ;;
    meshbox-mtls) start_meshbox "$dir" strict || ok=0 ;;
    nginx-mtls) start_nginx_mtls "$dir" || ok=0 ;;
    haproxy-mtls) start_haproxy_mtls "$dir" || ok=0 ;;
  esac
  if ((ok)); then
    run_load "$round" "$name" saturation "$CONNS"
    run_load "$round" "$name" low 1
  else
    local why="did not start (see ${dir#"$TMP"/} logs)"
    [[ ! -f $dir/stderr.log ]] || why+=": $(tail -3 "$dir/stderr.log" | tr '\n' ' ')"
    PROBLEMS+=("round $round, $name: $why")
    log "  $name: FAILED to start"
  fi
  [[ ! -f $dir/stderr.log ]] || cp "$dir/stderr.log" "$OUT_DIR/r$round-$name-meshbox.log"
  local p
  for p in "${CPIDS[@]}"; do forget_pid "$p"; done
  CPIDS=() CPU_PIDS=()
}

# ---------------------------------------------------------------- main
ensure_tools
CLK_TCK=$(getconf CLK_TCK)
mkdir -p "$OUT_DIR"
rm -f "$OUT_DIR"/r[0-9]*-* "$OUT_DIR/runs.csv"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/meshbox-mtls.XXXXXX")
chmod 755 "$TMP"   # nginx workers run as nobody when started by root
raise_fd_limit
if [[ $CONTESTANTS == *meshbox* ]]; then
  t=$SECONDS
  build_meshbox || die "$MESHBOX_MISSING"
  BUILD_SECONDS=$((SECONDS - t))
else
  BUILD_SECONDS=0
fi
make_certs
read -r BACKEND_PORT < <(free_ports 1)
start_backend
RUNS_CSV=$OUT_DIR/runs.csv
echo "round,contestant,load,requests,rps,p50_us,p99_us,max_us,socket_errors,non2xx,cpu_us_per_req,handshakes,status,note" >"$RUNS_CSV"
bench_began half
for ((round = 1; round <= ROUNDS; round++)); do
  # Rotate the order each round: drift over time hits every contestant alike.
  read -r -a order <<<"$CONTESTANTS"
  for ((i = 0; i < ${#order[@]}; i++)); do
    name=${order[(i + round - 1) % ${#order[@]}]}
    log "round $round/$ROUNDS: $name"
    measure "$round" "$name"
  done
done
bench_ended "$OUT_DIR/problems.txt"

# ---------------------------------------------------------------- report
machine_env T
set -a
# shellcheck disable=SC2034
T_DATE=$(date -u '+%Y-%m-%d %H:%M UTC') T_ROUNDS=$ROUNDS T_DURATION=$DURATION \
  T_WARMUP=$WARMUP T_CONNS=$CONNS T_WORKERS=$WORKERS T_QUICK=$QUICK \
  T_BUILD_SECONDS=$BUILD_SECONDS T_BENCH_SECONDS=$BENCH_SECONDS T_TOTAL_SECONDS=$TOTAL_SECONDS \
  T_RUNS_CSV=$RUNS_CSV T_PROBLEMS="$OUT_DIR/problems.txt" \
  T_LOAD_BEFORE="$LOAD_BEFORE" T_LOAD_AFTER="$LOAD_AFTER"
set +a
python3 - "$OUT_DIR/section.md" <<'PY'
import csv, os, sys

from benchlib import cell, med, problems_md, read_problems

E = os.environ
runs = list(csv.DictReader(open(E["T_RUNS_CSV"])))
problems = read_problems(E["T_PROBLEMS"])
names = ["meshbox-plain", "meshbox-mtls", "nginx-mtls", "haproxy-mtls"]


def series(name, load, field):
    return [float(r[field]) for r in runs
            if r["contestant"] == name and r["load"] == load and r["status"] == "ok"]


L = []
w = L.append
w("<!-- mtls:begin -->")
w(f"## The mesh path with mTLS ({E['T_DATE']})")
w("")
w(f"Generated by `test/bench/mtls.sh` (`./dev bench mtls`). Benchmark time {E['T_BENCH_SECONDS']} s "
  f"(plus {E['T_BUILD_SECONDS']} s build).")
if E["T_QUICK"] == "1":
    w("")
    w("**Quick run (`--quick`): smoke-test numbers, not quotable.**")
w("")
w(f"- Machine: {E['T_NPROC']} CPUs, {E['T_CPU']}; {E['T_KERNEL']}; {E['T_OS']}. Load average "
  f"before: {E['T_LOAD_BEFORE']}; after: {E['T_LOAD_AFTER']}.")
w(f"- Versions: meshbox git {E['T_COMMIT']}; {E['T_NGINX']}; {E['T_HAPROXY']}; {E['T_WRK']}.")
w(f"- Path: wrk → outbound proxy → TLS 1.3 with client certificates (ECDSA P-256) → inbound "
  f"proxy → nginx \"hello\". meshbox: one `meshbox run --workers {E['T_WORKERS']}` (a gateway, "
  "then the workload's sidecar, STRICT; `-plain`: DISABLE); nginx and HAProxy: two processes "
  "with one worker each, upstream keep-alive and session reuse. Every run starts fresh.")
w(f"- Load: saturation `wrk -t1 -c{E['T_CONNS']} -d{E['T_DURATION']}s --latency`, low load "
  f"`-c1`, each after a {E['T_WARMUP']} s warm-up; {E['T_ROUNDS']} rounds, order rotated. "
  "CPU µs/request: utime+stime of the proxies (meshbox: its own process) over the run / "
  "requests. Medians, per-round values in small print.")
w("")
for load in ("saturation", "low"):
    w(f"**{'Saturation' if load == 'saturation' else 'Low load (1 connection)'}**")
    w("")
    w("| contestant | requests/s | p50 µs | p99 µs | proxies' CPU µs/req | meshbox upstream handshakes |")
    w("|---|---:|---:|---:|---:|---|")
    for n in names:
        hs = [r["handshakes"] for r in runs if r["contestant"] == n and r["load"] == load
              and r["status"] == "ok" and r["handshakes"]]
        w(f"| {n} | {cell(series(n, load, 'rps'))} | {cell(series(n, load, 'p50_us'))} | "
          f"{cell(series(n, load, 'p99_us'))} | {cell(series(n, load, 'cpu_us_per_req'), 2)} | "
          f"{'; '.join(hs) if hs else '—'} |")
    w("")

verdicts = []
for load in ("saturation", "low"):
    m = med(series("meshbox-mtls", load, "cpu_us_per_req"))
    p = med(series("meshbox-plain", load, "cpu_us_per_req"))
    peers = [x for x in (med(series("nginx-mtls", load, "cpu_us_per_req")),
                         med(series("haproxy-mtls", load, "cpu_us_per_req"))) if x]
    p99 = med(series("meshbox-mtls", load, "p99_us"))
    peer99 = [x for x in (med(series("nginx-mtls", load, "p99_us")),
                          med(series("haproxy-mtls", load, "p99_us"))) if x]
    if m and p:
        verdicts.append(f"{load}: meshbox mTLS / plain CPU = {m / p:.2f} (target ≤ 1.3: "
                        f"**{'met' if m / p <= 1.3 else 'MISSED'}**)")
    if m and peers:
        verdicts.append(f"{load}: meshbox mTLS / best peer CPU = {m / min(peers):.2f} (target ≤ 1.0: "
                        f"**{'met' if m <= min(peers) else 'MISSED'}**)")
    if p99 and peer99:
        verdicts.append(f"{load}: meshbox mTLS / best peer p99 = {p99 / min(peer99):.2f} (target ≤ 1.0: "
                        f"**{'met' if p99 <= min(peer99) else 'MISSED'}**)")
w("**Targets.** " + ("; ".join(verdicts) if verdicts else "not measured (see Problems)") + ".")
w("")
w("Raw output: `test/bench/out/mtls/` (`runs.csv`, wrk's output, meshbox's logs).")
w("")
L += problems_md(problems, "None: every run passed its checks (no socket errors, no non-2xx, "
                 "no process died).")
w("<!-- mtls:end -->")
open(sys.argv[1], "w").write("\n".join(L) + "\n")
PY
finish_section mtls
