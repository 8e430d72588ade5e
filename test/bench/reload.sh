#!/usr/bin/env bash
# Hot reload under load: meshbox vs `nginx -s reload` vs a HAProxy master-worker reload.
#
#   test/bench/reload.sh               one round, 20 s of wrk per contestant (~1.5 min + build)
#   test/bench/reload.sh --quick       5 s runs (smoke test)
#   test/bench/reload.sh --rounds 3    3 interleaved rounds, medians in the table
#   test/bench/reload.sh --help        all options
#
# Each contestant proxies to the same nginx "hello" backend on 127.0.0.1 and takes
# `wrk -t1 -c50 -dNs --latency` while its config is changed and reloaded once a second:
#   meshbox: `meshbox apply -f CHANGE.toml --wait` (route timeout 5s <-> 6s, a new snapshot)
#   nginx:   proxy_read_timeout 5s <-> 6s, then `nginx -s reload`
#   haproxy: timeout server 5s <-> 6s, then `kill -USR2` to the master (haproxy -W)
# Replaces the section between <!-- reload:begin --> and <!-- reload:end --> in
# test/bench/RESULTS.md (appended the first time; the rest of the file is left alone) and
# keeps raw numbers in test/bench/out/reload/ (gitignored). Only loopback traffic; everything
# it starts is stopped on exit, Ctrl-C or failure. See test/bench/README.md.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$BENCH_DIR/../.." && pwd)
OUT_DIR=$BENCH_DIR/out/reload
RESULTS=$BENCH_DIR/RESULTS.md
RELEASE_DIR=$REPO/build-release
LOG_TAG=reload
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$BENCH_DIR/lib.sh"

# ---------------------------------------------------------------- options
DURATION=20         # seconds of wrk per contestant and round
ROUNDS=1
WARMUP=2            # wrk warm-up before the measured run, no reloads
CONNS=50
MESHBOX_BIN=""
CONTESTANTS="meshbox nginx haproxy"
DURATION_SET=0

usage() {
  cat <<EOF
usage: $0 [options]
  --seconds N       seconds of wrk per contestant and round (default $DURATION; one reload a second)
  --rounds N        interleaved rounds (default $ROUNDS); the table shows medians when N > 1
  --quick           5 s runs, 1 s warm-up (smoke test; numbers not quotable)
  --meshbox PATH    use this meshbox binary instead of building $RELEASE_DIR
  --only "A B"      run only these contestants (of: $CONTESTANTS)
  --results PATH    the file whose reload section is replaced (default test/bench/RESULTS.md)
  -h, --help        this help
EOF
}

while (($#)); do
  case $1 in
    --seconds) DURATION=${2:?--seconds needs a value}; DURATION_SET=1; shift 2 ;;
    *) bench_opt "$@"; shift "$OPT_SHIFT" ;;
  esac
done
if ((${QUICK:-0})); then
  ((DURATION_SET)) || DURATION=5
  WARMUP=1
fi
if ! [[ $DURATION =~ ^[1-9][0-9]*$ ]] || ((DURATION < 2)); then
  echo "--seconds must be an integer >= 2" >&2; exit 2
fi
need_posint --rounds "$ROUNDS"
need_contestants "meshbox nginx haproxy"

START_EPOCH=$(date +%s)
install_traps

# ---------------------------------------------------------------- dependencies
ensure_tools() {
  local missing
  missing=$(missing_tools wrk:wrk nginx:nginx-light haproxy:haproxy curl:curl python3:python3 timeout:coreutils)
  # a C compiler for the connect() counter (meshbox's build needs one anyway)
  missing+=" $(missing_tools cc:gcc)"
  if [[ -z $MESHBOX_BIN && " $CONTESTANTS " == *" meshbox "* ]]; then
    missing+=" $(missing_build_deps)"
  fi
  # shellcheck disable=SC2086 # one package per word
  [[ -z ${missing//[[:space:]]/} ]] || apt_install $missing
}

# ---------------------------------------------------------------- connect() counter
# wrk does not report reconnects. This LD_PRELOAD shim counts wrk's connect() calls on
# IP sockets and writes the count to $CONNECT_COUNT_FILE when wrk exits. wrk makes one
# probe connection before the run, then one per connection, then one per reconnect; every
# one of them is a connection the proxy accepts.
COUNTER_SO=""
build_connect_counter() {
  cat >"$TMP/connect_count.c" <<'EOF'
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>

typedef int (*connect_fn)(int, const struct sockaddr *, socklen_t);
static unsigned long attempts;
static connect_fn real_connect;

int connect(int fd, const struct sockaddr *addr, socklen_t len) {
  if (!real_connect) real_connect = (connect_fn)dlsym(RTLD_NEXT, "connect");
  if (addr && (addr->sa_family == AF_INET || addr->sa_family == AF_INET6))
    __atomic_add_fetch(&attempts, 1, __ATOMIC_RELAXED);
  return real_connect(fd, addr, len);
}

__attribute__((destructor)) static void report(void) {
  const char *path = getenv("CONNECT_COUNT_FILE");
  FILE *f;
  if (!path || !(f = fopen(path, "w"))) return;
  fprintf(f, "%lu\n", __atomic_load_n(&attempts, __ATOMIC_RELAXED));
  fclose(f);
}
EOF
  if cc -shared -fPIC -O2 -o "$TMP/connect_count.so" "$TMP/connect_count.c" -ldl >"$TMP/cc.log" 2>&1; then
    COUNTER_SO=$TMP/connect_count.so
  else
    log "warning: cannot build the connect() counter, reconnects will not be counted: $(head -3 "$TMP/cc.log")"
  fi
}

# ---------------------------------------------------------------- configs (the backend's: lib.sh)
# The proxy configs are run.sh's plus the one setting that flips on every reload.
# nginx logs at "notice" so that each reload's "start worker process" line can be counted.
write_nginx_conf() {   # PREFIX PORT BACKEND_PORT TIMEOUT
  mkdir -p "$1"
  cat >"$1/nginx.conf.new" <<EOF
daemon off;
worker_processes 1;
pid $1/nginx.pid;
error_log $1/error.log notice;
worker_rlimit_nofile 16384;
events {
    worker_connections 8192;
}
http {
    access_log off;
    keepalive_requests 1000000;
    keepalive_timeout 75s;
    client_body_temp_path $1/client_body_temp;
    proxy_temp_path $1/proxy_temp;
    upstream backend {
        server 127.0.0.1:$3;
        keepalive 64;
        keepalive_requests 1000000;
    }
    server {
        listen 127.0.0.1:$2 backlog=4096;
        location / {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_read_timeout $4;
        }
    }
}
EOF
  mv -f "$1/nginx.conf.new" "$1/nginx.conf"
}

write_haproxy_conf() {   # DIR PORT BACKEND_PORT TIMEOUT
  mkdir -p "$1"
  cat >"$1/haproxy.cfg.new" <<EOF
global
    nbthread 1
    maxconn 8192

defaults
    mode http
    option http-keep-alive
    http-reuse always
    timeout connect 5s
    timeout client 60s
    timeout server $4
    timeout http-request 10s
    timeout http-keep-alive 60s

frontend fe
    bind 127.0.0.1:$2
    default_backend be

backend be
    server s1 127.0.0.1:$3
EOF
  mv -f "$1/haproxy.cfg.new" "$1/haproxy.cfg"
}

write_mesh_conf() {   # DIR PORT BACKEND_PORT
  mkdir -p "$1"
  cat >"$1/mesh.toml" <<EOF
[[service]]
name = "backend"
port = 8000

[[workload]]
service = "backend"
address = "127.0.0.1"
port = $3

[[gateway]]
name = "edge"
servers = [{ port = $2, bind = "127.0.0.1", protocol = "http", hosts = ["*"] }]

EOF
  write_mesh_route 5s >>"$1/mesh.toml"
}

write_mesh_route() {   # TIMEOUT: the virtual service, the resource every reload replaces
  cat <<EOF
[[virtual_service]]
name = "backend"
hosts = ["*"]
gateways = ["edge"]
http = [{ timeout = "$1", route = [{ destination = { host = "backend" } }] }]
EOF
}

# ---------------------------------------------------------------- processes
BACKEND_PORT=""

CPID=""
CFAIL=""
MESH_ADMIN=""
start_contestant() {   # NAME PORT DIR: start it fresh, set CPID; returns 1 with CFAIL set on failure
  local name=$1 port=$2 dir=$3
  CPID=""; CFAIL=""
  mkdir -p "$dir"
  case $name in
    meshbox)
      write_mesh_conf "$dir" "$port" "$BACKEND_PORT"
      run_bg CPID "$MESHBOX_BIN" run "$dir/mesh.toml" --state-dir "$dir/state" --admin 127.0.0.1:0 \
        --ready-file "$dir/ready" --workers 1 --log-level warn >"$dir/stdout.log" 2>"$dir/stderr.log"
      if ! wait_file "$dir/ready" "$CPID" 10; then
        CFAIL="did not write --ready-file within 10 s: $(tail -3 "$dir/stderr.log" | tr '\n' ' ')"
        forget_pid "$CPID"; CPID=""; return 1
      fi
      MESH_ADMIN=$(awk '$1 == "admin" { print $2; exit }' "$dir/ready")
      if ! awk -v p=":$port" '$1 == "listener" && substr($3, length($3) - length(p) + 1) == p { f = 1 } END { exit !f }' "$dir/ready"; then
        CFAIL="ready file lists no listener on port $port: $(tr '\n' ' ' <"$dir/ready")"
        forget_pid "$CPID"; CPID=""; return 1
      fi
      ;;
    nginx)
      write_nginx_conf "$dir" "$port" "$BACKEND_PORT" 5s
      nginx -t -q -p "$dir" -e "$dir/error.log" -c "$dir/nginx.conf" 2>"$dir/check.log" \
        || { CFAIL="config test failed: $(tail -3 "$dir/check.log" | tr '\n' ' ')"; return 1; }
      run_bg CPID nginx -p "$dir" -e "$dir/error.log" -c "$dir/nginx.conf"
      ;;
    haproxy)
      write_haproxy_conf "$dir" "$port" "$BACKEND_PORT" 5s
      haproxy -c -q -f "$dir/haproxy.cfg" >"$dir/check.log" 2>&1 \
        || { CFAIL="config check failed: $(tail -3 "$dir/check.log" | tr '\n' ' ')"; return 1; }
      run_bg CPID haproxy -W -db -f "$dir/haproxy.cfg" >"$dir/stdout.log" 2>"$dir/stderr.log"
      ;;
  esac
  if ! wait_http "$port" "$CPID"; then
    CFAIL="not answering 200 hello on 127.0.0.1:$port: $(tail -3 "$dir/stderr.log" "$dir/error.log" 2>/dev/null | tr '\n' ' ')"
    forget_pid "$CPID"; CPID=""; return 1
  fi
  return 0
}

# reload_once NAME DIR PORT K: change the setting (5s on even K, 6s on odd K) and reload
reload_once() {
  local name=$1 dir=$2 port=$3 k=$4 t=5s
  ((k % 2)) && t=6s
  case $name in
    meshbox)
      write_mesh_route "$t" >"$dir/change.toml"
      timeout 10 "$MESHBOX_BIN" apply -f "$dir/change.toml" --state-dir "$dir/state" --wait
      ;;
    nginx)
      write_nginx_conf "$dir" "$port" "$BACKEND_PORT" "$t"
      timeout 10 nginx -p "$dir" -e "$dir/error.log" -c "$dir/nginx.conf" -s reload
      ;;
    haproxy)
      write_haproxy_conf "$dir" "$port" "$BACKEND_PORT" "$t"
      kill -USR2 "$CPID"
      ;;
  esac
}

# reload_count NAME DIR: the proxy's own count of completed reloads (so far)
#   meshbox: the snapshot version every worker has applied (GET /ready on the admin API)
#   nginx:   "start worker process" notices (one per worker generation)
#   haproxy: the master's "Loading success." notices (one per worker generation)
reload_count() {
  local name=$1 dir=$2 n=-1
  case $name in
    meshbox)
      n=$(curl -fsS --max-time 5 "http://$MESH_ADMIN/ready" 2>/dev/null \
        | sed -n 's/.*"applied_version":\([0-9]*\).*/\1/p') || true
      [[ -n $n ]] || n=-1
      ;;
    nginx) n=$(grep -c 'start worker process [0-9]' "$dir/error.log" 2>/dev/null) || n=0 ;;
    haproxy) n=$(grep -c 'Loading success' "$dir/stderr.log" 2>/dev/null) || n=0 ;;
  esac
  echo "$n"
}

# log_lines NAME DIR: lines in the proxy's log that suggest trouble
log_lines() {
  local name=$1 dir=$2
  case $name in
    meshbox) grep -v -c '^[[:space:]]*$' "$dir/stderr.log" 2>/dev/null || true ;;
    nginx) grep -E -c '\[(warn|error|crit|alert|emerg)\]' "$dir/error.log" 2>/dev/null || true ;;
    haproxy) grep -E -c '\[(ALERT|EMERG)\]' "$dir/stderr.log" 2>/dev/null || true ;;
  esac
}

# ---------------------------------------------------------------- wrk
RUNS_CSV=""
RELOADS_CSV=""
declare -a PROBLEMS=()

# measure ROUND NAME: start NAME fresh, warm up, then wrk with one reload a second
measure() {
  local round=$1 name=$2 port dir=$TMP/r$1-$2 raw=$OUT_DIR/r$1-$2
  read -r port < <(free_ports 1)
  if ! start_contestant "$name" "$port" "$dir"; then
    PROBLEMS+=("round $round, $name: failed to start: $CFAIL")
    log "  $name: FAILED to start: $CFAIL"
    echo "$round,$name,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1,fail,$(csvq "failed to start: $CFAIL")" >>"$RUNS_CSV"
    return 0
  fi
  local pid=$CPID wpid rc=0
  wrk -t1 "-c$CONNS" "-d${WARMUP}s" --latency "http://127.0.0.1:$port/" >"$raw-warmup.txt" 2>&1 || true

  local before after
  before=$(reload_count "$name" "$dir")
  : >"$raw-reload.log"
  local env=()
  [[ -n $COUNTER_SO ]] && env=(env "LD_PRELOAD=$COUNTER_SO" "CONNECT_COUNT_FILE=$dir/connects")
  run_bg wpid "${env[@]}" wrk -t1 "-c$CONNS" "-d${DURATION}s" --latency "http://127.0.0.1:$port/" >"$raw-wrk.txt" 2>&1
  # one reload a second, at t0 + 1 s, t0 + 2 s, … while wrk runs (the last ~1 s before it ends)
  local t0 k=0 target now start took rrc tried=0 cmd_ok=0
  t0=$(now_us)
  while ((++k < DURATION)); do
    target=$((t0 + k * 1000000))
    now=$(now_us)
    ((target > now)) && sleep "$(printf '%d.%06d' $(((target - now) / 1000000)) $(((target - now) % 1000000)))"
    kill -0 "$wpid" 2>/dev/null || break
    start=$(now_us)
    rrc=0
    {
      echo "--- reload $k at +$(((start - t0) / 1000)) ms"
      reload_once "$name" "$dir" "$port" "$k" || rrc=$?
    } >>"$raw-reload.log" 2>&1
    took=$(($(now_us) - start))
    tried=$((tried + 1))
    ((rrc == 0)) && cmd_ok=$((cmd_ok + 1))
    ((rrc == 0)) || echo "--- reload $k: exit $rrc" >>"$raw-reload.log"
    echo "$round,$name,$k,$(((start - t0) / 1000)),$((took / 1000)).$(printf '%03d' $((took % 1000))),$rrc" >>"$RELOADS_CSV"
  done
  wait "$wpid" || rc=$?
  forget_pid "$wpid"
  sleep 0.5   # let the last reload finish before counting
  after=$(reload_count "$name" "$dir")
  local done_=-1
  ((before >= 0 && after >= 0)) && done_=$((after - before))

  local warm_rps
  read -r _ warm_rps _ < <(parse_wrk "$raw-warmup.txt")

  local connects=-1
  [[ -s $dir/connects ]] && connects=$(($(cat "$dir/connects") - 1))   # minus wrk's probe connection

  local req rps p50 p99 max ec er ew et non2xx status=ok why=""
  read -r req rps p50 _ _ p99 max ec er ew et non2xx < <(parse_wrk "$raw-wrk.txt")
  if ((rc != 0)); then status=fail; why+="wrk exit $rc; "; fi
  if [[ $req == -1 || $p50 == -1 || $p99 == -1 ]]; then status=fail; why+="could not parse wrk output; "; fi
  if ! kill -0 "$pid" 2>/dev/null; then status=fail; why+="$name died during the run; "; fi
  if ((cmd_ok != tried)); then why+="$((tried - cmd_ok)) of $tried reload commands failed (see ${raw#"$REPO"/}-reload.log); "; fi
  if ((done_ != tried)); then why+="the proxy reports $done_ reloads for $tried reload commands; "; fi
  if ! wait_http "$port" "$pid"; then status=fail; why+="not answering 200 hello after the run; "; fi
  local loglines
  loglines=$(log_lines "$name" "$dir")
  ((loglines > 0)) && why+="$loglines warning/error log lines; "

  # keep the proxy's logs next to wrk's output
  local f
  for f in stderr.log stdout.log error.log; do
    [[ -s $dir/$f ]] && cp "$dir/$f" "$raw-$f"
  done
  echo "$round,$name,$req,$rps,$p50,$p99,$max,$ec,$er,$ew,$et,$non2xx,$tried,$cmd_ok,$done_,$connects,$warm_rps,$loglines,$status,$(csvq "$why")" >>"$RUNS_CSV"
  if [[ -n $why ]]; then
    PROBLEMS+=("round $round, $name: ${why%; }")
  fi
  log "$(printf '  %-8s %s  %7.0f req/s  p50 %6.0f us  p99 %7.0f us  errors c/r/w/t %d/%d/%d/%d  non-2xx %d  reloads %d/%d  wrk connects %d' \
    "$name" "$status" "$rps" "$p50" "$p99" "$ec" "$er" "$ew" "$et" "$non2xx" "$done_" "$tried" "$connects")"
  [[ -z $why ]] || log "    ${why%; }"
  forget_pid "$pid"
}

# ---------------------------------------------------------------- main
ensure_tools
mkdir -p "$OUT_DIR"
rm -f "$OUT_DIR"/r[0-9]*-* "$OUT_DIR/runs.csv" "$OUT_DIR/reloads.csv"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/meshbox-reload.XXXXXX")
chmod 755 "$TMP"   # nginx workers run as nobody when started by root
raise_fd_limit

BUILD_SECONDS=0
MESHBOX_VERSION=""
if [[ " $CONTESTANTS " == *" meshbox "* ]]; then
  t=$SECONDS
  build_meshbox || die "$MESHBOX_MISSING"
  BUILD_SECONDS=$((SECONDS - t))
  MESHBOX_VERSION=$("$MESHBOX_BIN" --version 2>/dev/null | head -1 || true)
  log "meshbox: $MESHBOX_BIN ${MESHBOX_VERSION:+($MESHBOX_VERSION)}"
fi
build_connect_counter

RUNS_CSV=$OUT_DIR/runs.csv
RELOADS_CSV=$OUT_DIR/reloads.csv
echo "round,contestant,requests,rps,p50_us,p99_us,max_us,err_connect,err_read,err_write,err_timeout,non2xx,reloads_tried,reload_cmds_ok,reloads_done,wrk_connects,warmup_rps,log_lines,status,note" >"$RUNS_CSV"
echo "round,contestant,reload,at_ms,took_ms,exit" >"$RELOADS_CSV"

bench_began half
read -r BACKEND_PORT < <(free_ports 1)
log "backend nginx on 127.0.0.1:$BACKEND_PORT"
start_backend
BENCH_T0=$SECONDS

for ((round = 1; round <= ROUNDS; round++)); do
  for name in $CONTESTANTS; do
    log "round $round/$ROUNDS: $name, ${DURATION} s of wrk -t1 -c$CONNS, one reload a second"
    measure "$round" "$name"
  done
done
bench_ended "$OUT_DIR/problems.txt"

# ---------------------------------------------------------------- report
machine_env R
set -a   # everything assigned below goes to the report generator's environment
# shellcheck disable=SC2034,SC1091
R_DATE=$(date -u) \
  R_MESHBOX_BIN="${MESHBOX_BIN:-}" \
  R_MESHBOX_VERSION="$MESHBOX_VERSION" \
  R_REPO="$REPO" \
  R_ROUNDS=$ROUNDS R_DURATION=$DURATION R_WARMUP=$WARMUP R_CONNS=$CONNS R_QUICK=${QUICK:-0} \
  R_CONTESTANTS="$CONTESTANTS" R_COUNTER="${COUNTER_SO:+1}" \
  R_BUILD_SECONDS=$BUILD_SECONDS R_BENCH_SECONDS=$BENCH_SECONDS R_TOTAL_SECONDS=$TOTAL_SECONDS \
  R_RUNS_CSV=$RUNS_CSV R_RELOADS_CSV=$RELOADS_CSV R_PROBLEMS="$OUT_DIR/problems.txt" \
  R_LOAD_BEFORE="$LOAD_BEFORE" R_LOAD_AFTER="$LOAD_AFTER"
set +a

python3 - "$RESULTS" "$OUT_DIR/section.md" <<'PY'
import csv, os, statistics, sys

from benchlib import cell, fmt, med, problems_md, read_problems

E = os.environ
results_path, section_path = sys.argv[1], sys.argv[2]
rounds = int(E["R_ROUNDS"])
secs = int(E["R_DURATION"])
conns = int(E["R_CONNS"])
contestants = E["R_CONTESTANTS"].split()
runs = list(csv.DictReader(open(E["R_RUNS_CSV"])))
reloads = list(csv.DictReader(open(E["R_RELOADS_CSV"])))
problems = read_problems(E["R_PROBLEMS"])
counted = E.get("R_COUNTER") == "1"


def ok_runs(name):
    return [r for r in runs if r["contestant"] == name and r["status"] == "ok"]


def series(name, field):
    return [float(r[field]) for r in ok_runs(name)]


def ms(us):
    return "—" if us is None or us < 0 else (f"{us / 1000:,.2f} ms" if us < 100000 else f"{us / 1000:,.0f} ms")


def mscell(vals):
    if not vals:
        return "—"
    s = ms(med(vals))
    if len(vals) > 1:
        s += " <sub>(" + " · ".join(ms(v) for v in vals) + ")</sub>"
    return s


def reload_cell(name):
    rs = ok_runs(name)
    if not rs:
        return "—"
    parts = [f"{int(r['reloads_done']) if int(r['reloads_done']) >= 0 else '?'}/{r['reloads_tried']}" for r in rs]
    if len(rs) == 1:
        return parts[0]
    done = [float(r["reloads_done"]) for r in rs if int(r["reloads_done"]) >= 0]
    s = f"{fmt(med(done))}/{fmt(med([float(r['reloads_tried']) for r in rs]))}"
    return s + " <sub>(" + " · ".join(parts) + ")</sub>"


def errs_cell(name):
    rs = ok_runs(name)
    if not rs:
        return "—"
    keys = ["err_connect", "err_read", "err_write", "err_timeout"]
    m = "/".join(fmt(med([float(r[k]) for r in rs])) for k in keys)
    if len(rs) > 1:
        m += " <sub>(" + " · ".join("/".join(r[k] for k in keys) for r in rs) + ")</sub>"
    return m


def reconnects(r):
    c = int(r["wrk_connects"])
    return c - conns if c >= 0 else -1


L = []
w = L.append
w("<!-- reload:begin -->")
w("## Hot reload under load")
w("")
w(f"Generated by `test/bench/reload.sh` on {E['R_DATE']}. Benchmark time {E['R_BENCH_SECONDS']} s "
  f"(plus {E['R_BUILD_SECONDS']} s build). `test/bench/run.sh` keeps this section when it "
  "rewrites the rest of the file.")
if E["R_QUICK"] == "1":
    w("")
    w("**Quick run (`--quick`): smoke-test numbers, not quotable.**")
w("")
w(f"- Machine: {E['R_NPROC']} CPUs (`nproc`), {E['R_CPU']}; {E['R_KERNEL']}; {E['R_OS']}. "
  f"Load average (1, 5, 15 min) before: {E['R_LOAD_BEFORE']}; after: {E['R_LOAD_AFTER']}.")
mb = E["R_MESHBOX_BIN"].replace(E["R_REPO"] + "/", "")
w(f"- Versions: {E['R_MESHBOX_VERSION'] or 'meshbox'} (`{mb}`, git {E['R_COMMIT']}); "
  f"{E['R_NGINX']}; {E['R_HAPROXY']}; {E['R_WRK']}.")
w(f"- Load: `wrk -t1 -c{conns} -d{secs}s --latency` against each proxy on 127.0.0.1, after a "
  f"`wrk -t1 -c{conns} -d{E['R_WARMUP']}s` warm-up without reloads. While wrk runs, the proxy's "
  f"config is changed and reloaded once a second (at +1 s, +2 s, … +{secs - 1} s: "
  f"{secs - 1} reloads). Rounds: {rounds}"
  + (", interleaved (meshbox, nginx, haproxy, then again); figures are medians across rounds, per-round values in small print." if rounds > 1 else "."))
w("- Backend: one nginx (`worker_processes 1`, `return 200 \"hello\\n\"`, `keepalive_requests 1000000`), shared by all.")
w("- Contestants, one worker each, upstream keep-alive, no access logging (the same settings as `run.sh`), each started fresh per round:")
w("  - **meshbox**: `meshbox run mesh.toml --state-dir DIR --admin 127.0.0.1:0 --workers 1 --log-level warn` "
  "(a gateway on the proxy port, a virtual service routing `*` to the backend service, one static workload); "
  "reload = `meshbox apply -f change.toml --state-dir DIR --wait` with the virtual service's route `timeout` "
  "flipped between \"5s\" and \"6s\" (a new snapshot every time).")
w("  - **nginx**: master + `worker_processes 1`, upstream `keepalive 64`; reload = `proxy_read_timeout` "
  "flipped between 5s and 6s, then `nginx -s reload` (same `-p`/`-c`). `error_log … notice` so reloads can be counted.")
w("  - **haproxy**: master-worker `haproxy -W -db`, `nbthread 1`, `http-reuse always`, `option http-keep-alive`; "
  "reload = `timeout server` flipped between 5s and 6s, then `kill -USR2` to the master.")
w("- **reloads**: reloads the proxy itself reports as done / reload commands sent. meshbox: the admin API's "
  "`applied_version` (`GET /ready`: the snapshot every worker serves) after minus before; nginx: new "
  "\"start worker process\" notices; haproxy: the master's \"Loading success.\" notices.")
w("- **socket errors** are wrk's connect/read/write/timeout counts. wrk counts a connection the server "
  "closes between two responses as a *read* error, and reconnects it.")
if counted:
    w(f"- **reconnects**: `connect()` calls wrk made beyond its {conns} initial connections (and its one probe "
      "connection), counted by an `LD_PRELOAD` shim around wrk's `connect()`; each is a connection the proxy "
      "had to accept because it closed (or refused) one. 0 means every keep-alive connection survived every reload.")
else:
    w("- **reconnects**: not measured (no C compiler for the `connect()` counter).")
w(f"- **rps without reloads**: requests/s of the {E['R_WARMUP']} s warm-up just before, same connections, no "
  "reloads: a rough reference for what the reloads cost (short, so noisier than the measured run).")
w("- Raw output: `test/bench/out/reload/` (`runs.csv`, `reloads.csv` with every reload command's time and exit "
  "status, wrk's output, the reload commands' output, the proxies' logs).")
w("")
w("| contestant | reloads | requests | rps | p50 | p99 | max | socket errors (c/r/w/t) | non-2xx | reconnects | rps without reloads (warm-up) |")
w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for c in contestants:
    rs = ok_runs(c)
    if not rs:
        w(f"| {c} (**failed**) | — | — | — | — | — | — | — | — | — | — |")
        continue
    rec = [float(reconnects(r)) for r in rs if int(r["wrk_connects"]) >= 0]
    w(f"| {c} | {reload_cell(c)} | {cell(series(c, 'requests'))} | {cell(series(c, 'rps'))} | "
      f"{mscell(series(c, 'p50_us'))} | {mscell(series(c, 'p99_us'))} | {mscell(series(c, 'max_us'))} | "
      f"{errs_cell(c)} | {cell(series(c, 'non2xx'))} | {cell(rec) if counted else 'n/a'} | "
      f"{cell(series(c, 'warmup_rps'))} |")
w("")

# reload command times
parts = []
for c in contestants:
    t = sorted(float(r["took_ms"]) for r in reloads if r["contestant"] == c)
    if t:
        what = {"meshbox": "`meshbox apply --wait` (returns once every worker serves the change)",
                "nginx": "`nginx -s reload` (returns once the signal is sent)",
                "haproxy": "`kill -USR2` (asynchronous)"}[c]
        parts.append(f"{c} {what}: median {statistics.median(t):.1f} ms, max {t[-1]:.1f} ms")
if parts:
    w("Reload wall time (rewriting the config plus the reload command) — " + "; ".join(parts) + ".")
    w("")

# the reading, from the numbers
def m(c, f):
    return med(series(c, f))

ran = [c for c in contestants if ok_runs(c)]
sent = []
if ran:
    for c in ran:
        rec = [float(reconnects(r)) for r in ok_runs(c) if int(r["wrk_connects"]) >= 0]
        errs = sum(m(c, k) for k in ["err_connect", "err_read", "err_write", "err_timeout"])
        wr = m(c, "warmup_rps")
        nrel = m(c, "reloads_done")
        s = (f"**{c}** did {reload_cell(c).split(' ')[0]} reloads at {fmt(m(c, 'rps'))} requests/s"
             + (f" ({100 * m(c, 'rps') / wr:.0f}% of its {fmt(wr)} without reloads)" if wr and wr > 0 else "")
             + f", p50 {ms(m(c, 'p50_us'))}, p99 {ms(m(c, 'p99_us'))}, max {ms(m(c, 'max_us'))}, with "
             f"{fmt(errs)} socket errors and {fmt(m(c, 'non2xx'))} non-2xx responses")
        if counted and rec:
            r = med(rec)
            if r == 0:
                s += "; wrk never reconnected: every keep-alive connection survived every reload"
            else:
                s += f"; wrk reconnected {fmt(r)} times"
                if nrel and nrel > 0:
                    s += f", {r / nrel:.0f} per reload"
                    if r / nrel >= 0.9 * conns:
                        s += f": every reload closed (nearly) all {conns} client connections"
                rw = m(c, "err_read") + m(c, "err_write")
                if 0 < rw <= r:
                    s += (f" ({fmt(rw)} of them after a read/write error, i.e. a keep-alive connection closed "
                          "without notice, possibly with a request already written on it; the other "
                          f"{fmt(r - rw)} after a response carrying `Connection: close`)")
        sent.append(s + ".")
    best = max(ran, key=lambda c: m(c, "rps"))
    low = min(ran, key=lambda c: m(c, "p99_us"))
    tail = (f"Highest throughput under reloads: {best}; lowest p99: {low}. "
            f"Throughput differences of a few percent are within the run-to-run noise of this "
            f"{E['R_NPROC']}-CPU machine, where wrk, the proxy, the backend and the reload command share the cores")
    if rounds == 1:
        tail += " (one round only: rerun with `--rounds 3` for medians)"
    w("**Reading.** " + " ".join(sent) + " " + tail + ".")
    w("")

L += problems_md(problems, "None: every contestant ran every round, every reload command succeeded "
                 "and the proxy reported every reload done, no warnings in the proxies' logs.")
w("<!-- reload:end -->")
section = "\n".join(L) + "\n"
open(section_path, "w").write(section)

PY
finish_section reload
