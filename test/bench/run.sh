#!/usr/bin/env bash
# meshbox proxy benchmark: meshbox vs nginx vs HAProxy vs direct, one run, same backend.
#
#   test/bench/run.sh                 full run (3 rounds, 5 s wrk runs; ~3 min + build)
#   test/bench/run.sh --quick         smoke test (1 round, 2 s runs)
#   test/bench/run.sh --rounds N      N interleaved rounds (default 3)
#   test/bench/run.sh --profile       profile meshbox under saturation (perf, else callgrind)
#   test/bench/run.sh --help          all options
#
# Writes test/bench/RESULTS.md and raw per-run numbers in test/bench/out/ (gitignored).
# Only loopback traffic. Everything it starts is stopped on exit, Ctrl-C or failure.
# See test/bench/README.md.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$BENCH_DIR/../.." && pwd)
OUT_DIR=$BENCH_DIR/out
RESULTS=$BENCH_DIR/RESULTS.md
RELEASE_DIR=$REPO/build-release
LOG_TAG=bench
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$BENCH_DIR/lib.sh"

# ---------------------------------------------------------------- options
ROUNDS=3
DURATION=5          # seconds per measured wrk run
WARM_SAT=2          # warm-up before the saturation run
WARM_LOW=1          # warm-up before the low-load run
SAT_CONNS=50
IDLE_CONNS=1000
IDLE_CONCURRENCY=50
QUICK=0
PROFILE=0
PROFILE_TARGET=meshbox
PROFILER=auto
PROFILE_SECONDS=10
PROFILE_REQUESTS=20000
MESHBOX_BIN=""
CONTESTANTS="direct meshbox nginx haproxy"
ROUNDS_SET=0

usage() {
  cat <<EOF
usage: $0 [options]
  --quick               1 round, 2 s runs, 1 s warm-ups (smoke test)
  --rounds N            interleaved rounds (default $ROUNDS)
  --duration S          seconds per measured wrk run (default $DURATION)
  --idle-conns N        idle keep-alive connections for the memory test (default $IDLE_CONNS)
  --meshbox PATH        use this meshbox binary instead of building $RELEASE_DIR
  --only "A B"          run only these contestants (of: $CONTESTANTS)
  --results PATH        the file to write (default test/bench/RESULTS.md; its other scripts'
                        sections are carried over)
  --profile             profile meshbox during a saturation run and print the top 20
                        (perf record -g if usable, else valgrind --tool=callgrind)
  --profile-target T    profile T instead (meshbox, nginx or haproxy)
  --profiler P          auto (default), perf or callgrind
  -h, --help            this help
EOF
}

while (($#)); do
  case $1 in
    --idle-conns) IDLE_CONNS=${2:?--idle-conns needs a value}; shift 2 ;;
    --profile) PROFILE=1; shift ;;
    --profile-target) PROFILE_TARGET=${2:?}; PROFILE=1; shift 2 ;;
    --profiler) PROFILER=${2:?}; shift 2 ;;
    *) bench_opt "$@"; shift "$OPT_SHIFT" ;;
  esac
done
if ((QUICK)); then
  ((ROUNDS_SET)) || ROUNDS=1
  DURATION=2; WARM_SAT=1; WARM_LOW=1
fi
need_posint --rounds "$ROUNDS"
need_posint --duration "$DURATION"
need_posint --idle-conns "$IDLE_CONNS"
need_contestants "direct meshbox nginx haproxy"
case $PROFILE_TARGET in meshbox|nginx|haproxy) ;; *) echo "bad --profile-target" >&2; exit 2 ;; esac
case $PROFILER in auto|perf|callgrind) ;; *) echo "bad --profiler" >&2; exit 2 ;; esac

START_EPOCH=$(date +%s)
install_traps

# ---------------------------------------------------------------- dependencies
ensure_tools() {
  local missing
  # command:package (nginx: any flavour will do, nginx-light if none)
  missing=$(missing_tools wrk:wrk nginx:nginx-light haproxy:haproxy curl:curl python3:python3 getconf:libc-bin)
  # meshbox's build dependencies, unless a binary was given
  if [[ -z $MESHBOX_BIN ]] && [[ " $CONTESTANTS " == *" meshbox "* || ($PROFILE == 1 && $PROFILE_TARGET == meshbox) ]]; then
    missing+=" $(missing_build_deps)"
  fi
  # shellcheck disable=SC2086 # one package per word
  [[ -z ${missing//[[:space:]]/} ]] || apt_install $missing
}

# ---------------------------------------------------------------- /proc helpers (tree_pids, cpu_ticks: lib.sh)
CLK_TCK=100

mem_kib() {   # mem_kib PID FIELD: sum of FIELD (VmRSS, VmHWM) in kB over PID and its children
  local total=0 p k v _
  for p in $(tree_pids "$1"); do
    while read -r k v _; do
      [[ $k == "$2:" ]] && total=$((total + v))
    done 2>/dev/null <"/proc/$p/status" || true
  done
  echo "$total"
}

pss_kib() {   # pss_kib PID: proportional set size (shared pages split) over PID and its children
  local total=0 p k v _
  for p in $(tree_pids "$1"); do
    while read -r k v _; do
      [[ $k == "Pss:" ]] && total=$((total + v))
    done 2>/dev/null <"/proc/$p/smaps_rollup" || true
  done
  echo "$total"
}

nprocs() { tree_pids "$1" | wc -l; }

# ---------------------------------------------------------------- server configs (the backend's: lib.sh)
write_nginx_proxy_conf() {   # PREFIX PORT BACKEND_PORT
  mkdir -p "$1"
  {
    nginx_common "$1"
    echo "http {"
    nginx_http_common "$1"
    cat <<EOF
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
        }
    }
}
EOF
  } >"$1/nginx.conf"
}

write_haproxy_conf() {   # DIR PORT BACKEND_PORT
  mkdir -p "$1"
  cat >"$1/haproxy.cfg" <<EOF
global
    nbthread 1
    maxconn 8192

defaults
    mode http
    option http-keep-alive
    http-reuse always
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    timeout http-request 10s
    timeout http-keep-alive 60s

frontend fe
    bind 127.0.0.1:$2
    default_backend be

backend be
    server s1 127.0.0.1:$3
EOF
}

# ---------------------------------------------------------------- processes
BACKEND_PORT=""

# start_contestant NAME PORT: start it (fresh process), set CPID; returns 1 with CFAIL set on failure
CPID=""
CFAIL=""
start_contestant() {
  local name=$1 port=$2 dir=$TMP/$1
  CPID=""; CFAIL=""
  mkdir -p "$dir"
  case $name in
    meshbox)
      if [[ -z $MESHBOX_BIN || ! -x $MESHBOX_BIN ]]; then
        CFAIL="missing: $MESHBOX_MISSING"; return 1
      fi
      rm -f "$dir/ready"
      run_bg CPID "$MESHBOX_BIN" proxy --listen "127.0.0.1:$port" --to "127.0.0.1:$BACKEND_PORT" \
        --workers 1 --ready-file "$dir/ready" --log-level warn >"$dir/stdout.log" 2>"$dir/stderr.log"
      if ! wait_file "$dir/ready" "$CPID" 10; then
        CFAIL="did not write --ready-file within 10 s: $(tail -3 "$dir/stderr.log" | tr '\n' ' ')"
        forget_pid "$CPID"; CPID=""; return 1
      fi
      local addr
      addr=$(tr -d ' \n' <"$dir/ready")
      if [[ $addr != *":$port" ]]; then
        log "meshbox ready-file says '$addr', expected 127.0.0.1:$port"
      fi
      ;;
    nginx)
      write_nginx_proxy_conf "$dir" "$port" "$BACKEND_PORT"
      run_bg CPID nginx -p "$dir" -e "$dir/error.log" -c "$dir/nginx.conf"
      ;;
    haproxy)
      write_haproxy_conf "$dir" "$port" "$BACKEND_PORT"
      haproxy -c -q -f "$dir/haproxy.cfg" >"$dir/check.log" 2>&1 \
        || { CFAIL="config check failed: $(tail -3 "$dir/check.log" | tr '\n' ' ')"; return 1; }
      run_bg CPID haproxy -db -f "$dir/haproxy.cfg" >"$dir/stdout.log" 2>"$dir/stderr.log"
      ;;
  esac
  if ! wait_http "$port" "$CPID" "$name"; then
    CFAIL="not answering 200 hello on 127.0.0.1:$port: $(tail -3 "$dir/stderr.log" "$dir/error.log" 2>/dev/null | tr '\n' ' ')"
    forget_pid "$CPID"; CPID=""; return 1
  fi
  return 0
}

# ---------------------------------------------------------------- wrk
WRK_PID=""
run_wrk() {   # run_wrk OUTFILE CONNS SECONDS PORT [extra wrk args]: wrk in the background, wait
  local out=$1 conns=$2 secs=$3 port=$4; shift 4
  run_bg WRK_PID wrk -t1 "-c$conns" "-d${secs}s" --latency "$@" "http://127.0.0.1:$port/" >"$out" 2>&1
  local rc=0
  wait "$WRK_PID" || rc=$?
  forget_pid "$WRK_PID"
  WRK_PID=""
  return $rc
}

RUNS_CSV=""
MEM_CSV=""

declare -a PROBLEMS=()

# measure ROUND NAME PORT PID LOAD CONNS: warm-up, measured run, one CSV row
measure() {
  local round=$1 name=$2 port=$3 pid=$4 load=$5 conns=$6
  local warm=$WARM_SAT; [[ $load == low ]] && warm=$WARM_LOW
  local raw=$OUT_DIR/raw/r${round}-${name}-${load}.txt
  local cpu_pid=$pid
  [[ $name == direct ]] && cpu_pid=$BACKEND_PID

  run_wrk "$raw.warmup" "$conns" "$warm" "$port" || true
  local p0 b0 p1 b1 rc=0
  p0=$(cpu_ticks "$cpu_pid"); b0=$(cpu_ticks "$BACKEND_PID")
  run_wrk "$raw" "$conns" "$DURATION" "$port" || rc=$?
  p1=$(cpu_ticks "$cpu_pid"); b1=$(cpu_ticks "$BACKEND_PID")

  local req rps p50 p75 p90 p99 ec er ew et serr non2xx
  read -r req rps p50 p75 p90 p99 _ ec er ew et non2xx < <(parse_wrk "$raw")
  serr=$((ec + er + ew + et))
  local status=ok why=""
  if ((rc != 0)); then status=fail; why+="wrk exit $rc; "; fi
  if ((serr > 0)); then status=fail; why+="$serr socket errors; "; fi
  if ((non2xx > 0)); then status=fail; why+="$non2xx non-2xx/3xx responses; "; fi
  if [[ $req == -1 || $p50 == -1 || $p99 == -1 ]] || ((${req%.*} <= 0)); then
    status=fail; why+="could not parse wrk output; "
  fi
  if ! kill -0 "$pid" 2>/dev/null; then status=fail; why+="$name died during the run; "; fi
  # warm-up errors count too: they mean the contestant misbehaved
  local wserr wnon
  read -r _ _ _ _ _ _ _ ec er ew et wnon < <(parse_wrk "$raw.warmup")
  wserr=$((ec + er + ew + et))
  if ((wserr > 0 || wnon > 0)); then
    status=fail; why+="warm-up: $wserr socket errors, $wnon non-2xx; "
  fi

  local pcpu=-1 bcpu=-1
  if ((${req%.*} > 0)); then
    pcpu=$(per_req_us $((p1 - p0)) "$req")
    bcpu=$(per_req_us $((b1 - b0)) "$req")
  fi
  echo "$round,$name,$load,$conns,$DURATION,$req,$rps,$p50,$p75,$p90,$p99,$serr,$non2xx,$pcpu,$bcpu,$((p1 - p0)),$((b1 - b0)),$status,$(csvq "$why")" >>"$RUNS_CSV"
  if [[ $status != ok ]]; then
    PROBLEMS+=("round $round, $name, $load load: ${why%; }")
    log "  $load: FAILED (${why%; }) - see ${raw#"$REPO"/}"
  else
    log "$(printf '  %-10s %9.0f req/s  p50 %7.0f us  p99 %7.0f us  cpu %6s us/req  backend %6s us/req' \
      "$load" "$rps" "$p50" "$p99" "$pcpu" "$bcpu")"
  fi
}

# idle_test ROUND NAME PORT PID PEAK_KIB: IDLE_CONNS idle keep-alive clients, then RSS
idle_test() {
  local round=$1 name=$2 port=$3 pid=$4 peak=$5
  local dir=$TMP/idle-$round-$name ipid rss=-1 hwm=-1 pss=-1 ok=-1 alive=-1 status=ok why=""
  mkdir -p "$dir"
  run_bg ipid python3 "$BENCH_DIR/idle_conns.py" --port "$port" --conns "$IDLE_CONNS" \
    --concurrency "$IDLE_CONCURRENCY" --ready-file "$dir/ready" --result-file "$dir/result" \
    --hold-max 120 2>"$dir/stderr.log"
  if wait_file "$dir/ready" "$ipid" 60; then
    rss=$(mem_kib "$pid" VmRSS); hwm=$(mem_kib "$pid" VmHWM); pss=$(pss_kib "$pid")
    kill -USR1 "$ipid" 2>/dev/null || true
    wait "$ipid" 2>/dev/null || true
    forget_pid "$ipid"
    if [[ -s $dir/result ]]; then
      read -r ok alive < <(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["ok"], d["alive"]); e=d["errors"]; e and print(e, file=sys.stderr)' "$dir/result" 2>"$dir/errors") || true
      if [[ -s $dir/errors ]]; then status=fail; why+="client errors $(cat "$dir/errors"); "; fi
      if ((alive != IDLE_CONNS)); then status=fail; why+="only $alive of $IDLE_CONNS connections still open; "; fi
    else
      status=fail; why+="idle client wrote no result; "
    fi
  else
    forget_pid "$ipid"
    status=fail; why+="idle client did not get its connections up within 60 s: $(tail -2 "$dir/stderr.log" | tr '\n' ' '); "
  fi
  if ! kill -0 "$pid" 2>/dev/null; then status=fail; why+="$name died during the idle test; "; fi
  echo "$round,$name,$peak,$IDLE_CONNS,$ok,$alive,$rss,$hwm,$pss,$(nprocs "$pid"),$status,$(csvq "$why")" >>"$MEM_CSV"
  if [[ $status != ok ]]; then
    PROBLEMS+=("round $round, $name, idle test: ${why%; }")
    log "  idle: FAILED (${why%; })"
  else
    log "$(printf '  idle       %d conns: RSS %d KiB (PSS %d KiB, VmHWM %d KiB); peak RSS after wrk runs %d KiB' \
      "$IDLE_CONNS" "$rss" "$pss" "$hwm" "$peak")"
  fi
}

MESHBOX_VERSION=""

# ---------------------------------------------------------------- profile mode
first20() { head -20; cat >/dev/null; }   # no SIGPIPE upstream (pipefail)

profile_main() {
  local port target=$PROFILE_TARGET dir
  log "profiling $target"
  if [[ $PROFILER == auto || $PROFILER == perf ]]; then
    if ! command -v perf >/dev/null 2>&1; then
      apt_install linux-perf || true
    fi
    if command -v perf >/dev/null 2>&1 && perf record -q -o "$TMP/perf-probe.data" -- true >/dev/null 2>&1; then
      PROFILER=perf
    elif [[ $PROFILER == perf ]]; then
      die "perf is not usable here (not installable, or perf_event_open is not permitted)"
    else
      log "perf is not usable here; falling back to valgrind --tool=callgrind"
      PROFILER=callgrind
    fi
  fi
  if [[ $PROFILER == callgrind ]] && ! command -v valgrind >/dev/null 2>&1; then
    apt_install valgrind
  fi

  read -r BACKEND_PORT port < <(free_ports 2)
  start_backend
  dir=$TMP/$target
  mkdir -p "$dir"

  if [[ $PROFILER == perf ]]; then
    start_contestant "$target" "$port" || die "$target: $CFAIL"
    local pids perf_pid perf_data=$OUT_DIR/perf-$target.data
    pids=$(tree_pids "$CPID" | paste -sd, -)
    run_wrk "$dir/warmup.txt" "$SAT_CONNS" 1 "$port" || true
    log "perf record -g -p $pids for ${PROFILE_SECONDS} s under wrk -t1 -c$SAT_CONNS"
    run_bg perf_pid perf record -g -q -o "$perf_data" -p "$pids" 2>"$dir/perf.log"
    run_wrk "$dir/wrk.txt" "$SAT_CONNS" "$PROFILE_SECONDS" "$port" || true
    kill -INT "$perf_pid" 2>/dev/null || true
    wait "$perf_pid" 2>/dev/null || true
    forget_pid "$perf_pid"
    cat "$dir/wrk.txt" >&2
    echo
    perf report -i "$perf_data" --stdio --no-children -F overhead,dso,sym -g none 2>/dev/null \
      | grep -v -e '^#' -e '^$' >"$dir/report.txt" || true
    echo "== top 20 (perf, self time, $target, ${PROFILE_SECONDS} s at saturation) =="
    first20 <"$dir/report.txt"
    echo
    echo "== top 20 in user space (same profile; % of all samples) =="
    grep -F '[.]' "$dir/report.txt" | first20
    echo
    echo "perf data: ${perf_data#"$REPO"/}  (perf report -i $perf_data)"
  else
    # Start the target under callgrind, send a fixed number of requests, stop it.
    # wrk has no request count: a Lua hook stops the thread after N responses and
    # drops a file; wrk's main thread then sleeps until -d, so SIGINT ends it early.
    local lua=$TMP/count.lua out_pattern=$dir/callgrind.out.%p done_file=$TMP/count.done
    cat >"$lua" <<EOF
local n = 0
response = function(status, headers, body)
  n = n + 1
  if n == $PROFILE_REQUESTS then
    local f = io.open("$done_file", "w")
    f:write(n, "\\n")
    f:close()
    wrk.thread:stop()
  end
end
EOF
    local vg=(valgrind --tool=callgrind "--callgrind-out-file=$out_pattern")
    case $target in
      meshbox)
        [[ -n $MESHBOX_BIN ]] || die "meshbox: missing: $MESHBOX_MISSING"
        run_bg CPID "${vg[@]}" "$MESHBOX_BIN" proxy --listen "127.0.0.1:$port" --to "127.0.0.1:$BACKEND_PORT" \
          --workers 1 --ready-file "$dir/ready" --log-level warn 2>"$dir/stderr.log"
        wait_file "$dir/ready" "$CPID" 120 || die "meshbox under valgrind did not start: $(tail -3 "$dir/stderr.log")"
        ;;
      nginx)
        write_nginx_proxy_conf "$dir" "$port" "$BACKEND_PORT"
        run_bg CPID "${vg[@]}" nginx -p "$dir" -e "$dir/error.log" -c "$dir/nginx.conf" -g 'master_process off;' 2>"$dir/stderr.log"
        ;;
      haproxy)
        write_haproxy_conf "$dir" "$port" "$BACKEND_PORT"
        run_bg CPID "${vg[@]}" haproxy -db -f "$dir/haproxy.cfg" 2>"$dir/stderr.log"
        ;;
    esac
    local deadline=$((SECONDS + 120))
    until curl -fsS --max-time 5 "http://127.0.0.1:$port/" >/dev/null 2>&1; do
      kill -0 "$CPID" 2>/dev/null || die "$target under valgrind exited: $(tail -3 "$dir/stderr.log")"
      ((SECONDS < deadline)) || die "$target under valgrind did not answer within 120 s"
      sleep 0.2
    done
    log "callgrind: $PROFILE_REQUESTS requests with wrk -t1 -c10"
    local wpid
    run_bg wpid wrk -t1 -c10 -d300s --timeout 10s --latency -s "$lua" "http://127.0.0.1:$port/" >"$dir/wrk.txt" 2>&1
    while kill -0 "$wpid" 2>/dev/null && [[ ! -s $done_file ]]; do sleep 0.1; done
    kill -INT "$wpid" 2>/dev/null || true
    wait "$wpid" 2>/dev/null || true
    forget_pid "$wpid"
    cat "$dir/wrk.txt" >&2
    forget_pid "$CPID"   # TERM: valgrind writes the profile on the way out
    local f
    f=$(ls -S "$dir"/callgrind.out.* 2>/dev/null | head -1) || true
    [[ -n $f ]] || die "callgrind wrote no profile: $(tail -3 "$dir/stderr.log")"
    cp "$f" "$OUT_DIR/callgrind.out.$target"
    echo
    echo "== top 20 (callgrind, self instructions, $target, $PROFILE_REQUESTS requests) =="
    callgrind_annotate "$OUT_DIR/callgrind.out.$target" 2>/dev/null \
      | awk '/^-+$/ { sep++; next } sep >= 3 && NF' | grep -v -e 'PROGRAM TOTALS' -e '^ *Ir' | first20
    echo
    echo "profile: ${OUT_DIR#"$REPO"/}/callgrind.out.$target  (callgrind_annotate it, or kcachegrind)"
  fi
}

# ---------------------------------------------------------------- main
ensure_tools
CLK_TCK=$(getconf CLK_TCK)
TMP=$(mktemp -d "${TMPDIR:-/tmp}/meshbox-bench.XXXXXX")
chmod 755 "$TMP"   # nginx workers run as nobody when started by root
raise_fd_limit
if (($(ulimit -n) < 2 * IDLE_CONNS + 256)); then
  log "warning: open-file limit $(ulimit -n) is low for $IDLE_CONNS idle connections"
fi

mkdir -p "$OUT_DIR"
if ((PROFILE)); then
  if [[ $PROFILE_TARGET == meshbox ]]; then
    build_meshbox || die "meshbox: $MESHBOX_MISSING"
  fi
  profile_main
  exit 0
fi

rm -rf "$OUT_DIR/raw" "$OUT_DIR/runs.csv" "$OUT_DIR/memory.csv"
mkdir -p "$OUT_DIR/raw"
BUILD_SECONDS=0
if [[ " $CONTESTANTS " == *" meshbox "* ]]; then
  t0=$SECONDS
  build_meshbox || true
  BUILD_SECONDS=$((SECONDS - t0))
  if [[ -n $MESHBOX_BIN ]]; then
    MESHBOX_VERSION=$("$MESHBOX_BIN" --version 2>/dev/null | head -1 || true)
    log "meshbox: $MESHBOX_BIN ${MESHBOX_VERSION:+($MESHBOX_VERSION)}"
  else
    log "meshbox: MISSING ($MESHBOX_MISSING) - its rows will say so"
  fi
fi

RUNS_CSV=$OUT_DIR/runs.csv
MEM_CSV=$OUT_DIR/memory.csv
echo "round,contestant,load,connections,duration_s,requests,rps,p50_us,p75_us,p90_us,p99_us,socket_errors,non2xx,proxy_cpu_us_per_req,backend_cpu_us_per_req,proxy_cpu_ticks,backend_cpu_ticks,status,note" >"$RUNS_CSV"
echo "round,contestant,peak_rss_kib,idle_conns,idle_ok,idle_alive,idle_rss_kib,idle_hwm_kib,idle_pss_kib,processes,status,note" >"$MEM_CSV"
MISSING_CSV=$OUT_DIR/raw/missing.csv
: >"$MISSING_CSV"

bench_began 0.5
read -r BACKEND_PORT < <(free_ports 1)
log "backend nginx on 127.0.0.1:$BACKEND_PORT"
start_backend
BENCH_T0=$SECONDS

for ((round = 1; round <= ROUNDS; round++)); do
  # fresh ports each round: a restarted proxy never races its predecessor's sockets
  read -r P_MESHBOX P_NGINX P_HAPROXY < <(free_ports 3)
  for name in $CONTESTANTS; do
    log "round $round/$ROUNDS: $name"
    if [[ $name == direct ]]; then
      measure "$round" direct "$BACKEND_PORT" "$BACKEND_PID" saturation "$SAT_CONNS"
      measure "$round" direct "$BACKEND_PORT" "$BACKEND_PID" low 1
      continue
    fi
    case $name in meshbox) port=$P_MESHBOX ;; nginx) port=$P_NGINX ;; haproxy) port=$P_HAPROXY ;; esac
    if ! start_contestant "$name" "$port"; then
      log "  $name: $CFAIL"
      echo "$round,$name,$(csvq "$CFAIL")" >>"$MISSING_CSV"
      [[ $CFAIL == missing:* ]] || PROBLEMS+=("round $round, $name: failed to start: $CFAIL")
      continue
    fi
    measure "$round" "$name" "$port" "$CPID" saturation "$SAT_CONNS"
    measure "$round" "$name" "$port" "$CPID" low 1
    peak=$(mem_kib "$CPID" VmHWM)
    idle_test "$round" "$name" "$port" "$CPID" "$peak"
    forget_pid "$CPID"; CPID=""
  done
done
bench_ended "$OUT_DIR/raw/problems.txt"

# ---------------------------------------------------------------- report

machine_env B
set -a   # everything assigned below goes to the report generator's environment
# shellcheck disable=SC2034
B_DATE=$(date -u) \
  B_PYTHON="$(python3 --version 2>&1)" \
  B_MESHBOX_BIN="${MESHBOX_BIN:-}" \
  B_MESHBOX_VERSION="$MESHBOX_VERSION" \
  B_MESHBOX_MISSING="$MESHBOX_MISSING" \
  B_ROUNDS=$ROUNDS B_DURATION=$DURATION B_WARM_SAT=$WARM_SAT B_WARM_LOW=$WARM_LOW \
  B_SAT_CONNS=$SAT_CONNS B_IDLE_CONNS=$IDLE_CONNS B_IDLE_CONCURRENCY=$IDLE_CONCURRENCY \
  B_QUICK=$QUICK B_CONTESTANTS="$CONTESTANTS" B_CLK_TCK=$CLK_TCK \
  B_BUILD_SECONDS=$BUILD_SECONDS B_BENCH_SECONDS=$BENCH_SECONDS B_TOTAL_SECONDS=$TOTAL_SECONDS \
  B_RUNS_CSV=$RUNS_CSV B_MEM_CSV=$MEM_CSV B_MISSING_CSV=$MISSING_CSV \
  B_PROBLEMS="$OUT_DIR/raw/problems.txt" B_NOFILE="$(ulimit -n)" \
  B_LOAD_BEFORE="$LOAD_BEFORE" B_LOAD_AFTER="$LOAD_AFTER"
set +a

python3 - "$RESULTS" <<'PY'
import csv, os, sys

from benchlib import med, read_problems

E = os.environ
out_path = sys.argv[1]
rounds = int(E["B_ROUNDS"])
contestants = E["B_CONTESTANTS"].split()
proxies = [c for c in contestants if c != "direct"]

runs = list(csv.DictReader(open(E["B_RUNS_CSV"])))
mem = list(csv.DictReader(open(E["B_MEM_CSV"])))
missing = {}
for row in csv.reader(open(E["B_MISSING_CSV"])):
    if row:
        missing.setdefault(row[1], row[2])
problems = read_problems(E["B_PROBLEMS"])


def series(load, name, field):
    """Per-round values of field from the ok runs, in round order."""
    return [float(r[field]) for r in runs
            if r["load"] == load and r["contestant"] == name and r["status"] == "ok"]


def mseries(name, field):
    return [float(r[field]) for r in mem if r["contestant"] == name and r["status"] == "ok"]


def fmt(v, nd=0):
    if v is None:
        return "—"
    return f"{v:,.{nd}f}"


def cell(vals, nd=0):
    """median, with the per-round values after it when there is more than one round"""
    if not vals:
        return "—"
    s = fmt(med(vals), nd)
    if len(vals) > 1:
        s += " <sub>(" + " · ".join(fmt(v, nd) for v in vals) + ")</sub>"
    return s


def n_ok(load, name):
    tot = [r for r in runs if r["load"] == load and r["contestant"] == name]
    ok = [r for r in tot if r["status"] == "ok"]
    if name in missing and not tot:
        return "missing"
    return f"{len(ok)}/{rounds}"


def label(name):
    if name in missing and not any(r["contestant"] == name for r in runs):
        return f"{name} (**missing**)"
    return name


L = []
w = L.append
w("# meshbox proxy benchmark: meshbox vs nginx vs HAProxy")
w("")
if E["B_QUICK"] == "1":
    w("> **Quick run (`--quick`)**: 1 round of 2 s runs, a smoke test. Do not quote these numbers.")
    w("")
w(f"Generated by `test/bench/run.sh` on {E['B_DATE']}. "
  f"Benchmark time {E['B_BENCH_SECONDS']} s (plus {E['B_BUILD_SECONDS']} s build), "
  f"{E['B_TOTAL_SECONDS']} s in all.")
w("")
w("## Machine")
w("")
mem_gib = int(E["B_MEM_KIB"]) / 1024 / 1024
w(f"- CPUs (`nproc`): {E['B_NPROC']}, model: {E['B_CPU']}")
w(f"- Kernel: {E['B_KERNEL']}; OS: {E['B_OS']}")
w(f"- Memory: {mem_gib:.1f} GiB")
w(f"- Load average (1, 5, 15 min) before the benchmark: {E['B_LOAD_BEFORE']}; after: {E['B_LOAD_AFTER']} "
  "(the benchmark itself keeps about 2-3 processes busy).")
w("")
w("## Parameters")
w("")
d, sat = E["B_DURATION"], E["B_SAT_CONNS"]
w(f"- Rounds: {rounds}, interleaved (each round: {', '.join(contestants)}); every contestant but "
  "`direct` is a fresh process each round. Figures are medians across rounds; the per-round "
  "values follow in small print.")
w(f"- Saturation: `wrk -t1 -c{sat} -d{d}s --latency` after a `wrk -t1 -c{sat} -d{E['B_WARM_SAT']}s` warm-up.")
w(f"- Low load: `wrk -t1 -c1 -d{d}s --latency` after a `wrk -t1 -c1 -d{E['B_WARM_LOW']}s` warm-up.")
w("- A run with socket errors, non-2xx/3xx responses, a wrk failure or a dead contestant "
  "(in the run or its warm-up) counts as failed and is left out of the medians.")
w(f"- CPU-µs/request: utime+stime (`/proc/PID/stat` fields 14+15, CLK_TCK={E['B_CLK_TCK']}) of the "
  "contestant's processes sampled right before and after the measured run, divided by the "
  "requests wrk completed. For `direct` the figure is the backend's. The backend's CPU/request "
  "is recorded in every run as well.")
w("- Peak RSS: VmHWM after the saturation and low-load runs. Idle RSS: VmRSS while "
  f"{E['B_IDLE_CONNS']} keep-alive client connections (each did one `GET /`, at most "
  f"{E['B_IDLE_CONCURRENCY']} in flight) sit idle (`test/bench/idle_conns.py`). Memory figures "
  "are summed over the contestant's processes (nginx: master + 1 worker).")
w("- Backend: one nginx, `worker_processes 1`, `access_log off`, `keepalive_requests 1000000`, "
  "`return 200 \"hello\\n\"`.")
w("- Contestants, one worker/thread each, upstream keep-alive, no logging:")
w(f"  - **direct**: wrk → backend")
mb = E["B_MESHBOX_BIN"]
if mb:
    w(f"  - **meshbox**: `meshbox proxy --listen … --to … --workers 1 --log-level warn` "
      f"({E['B_MESHBOX_VERSION'] or 'version n/a'}; binary `{mb.replace(os.getcwd() + '/', '')}`)")
else:
    w(f"  - **meshbox**: MISSING — {E['B_MESHBOX_MISSING']}")
w("  - **nginx**: `worker_processes 1`, upstream `keepalive 64`, `proxy_http_version 1.1`, "
  "`proxy_set_header Connection \"\"`, `access_log off`, `keepalive_requests 1000000`")
w("  - **haproxy**: `nbthread 1`, `mode http`, `option http-keep-alive`, `http-reuse always`, no `log`")
w(f"- Versions: {E['B_NGINX']}; {E['B_HAPROXY']}; {E['B_WRK']}; {E['B_PYTHON']}")
w(f"- meshbox git commit: {E['B_COMMIT']}")
w(f"- All traffic on 127.0.0.1; open-file limit {E['B_NOFILE']}. wrk, the contestant and the "
  f"backend share {E['B_NPROC']} CPUs.")
w("")

for load, title, conns in (("saturation", "Saturation", sat), ("low", "Low load", "1")):
    w(f"## {title} (`wrk -t1 -c{conns} -d{d}s`)")
    w("")
    w("| contestant | requests/s | p50 µs | p99 µs | CPU µs/req (proxy) | CPU µs/req (backend) | ok runs |")
    w("|---|---:|---:|---:|---:|---:|---:|")
    for c in contestants:
        pc = cell(series(load, c, "proxy_cpu_us_per_req"), 2)
        if c == "direct" and pc != "—":
            pc += " (backend)"
        w(f"| {label(c)} | {cell(series(load, c, 'rps'))} | {cell(series(load, c, 'p50_us'))} | "
          f"{cell(series(load, c, 'p99_us'))} | {pc} | "
          f"{cell(series(load, c, 'backend_cpu_us_per_req'), 2)} | {n_ok(load, c)} |")
    w("")

w(f"## Memory")
w("")
w(f"| contestant | peak RSS after wrk runs (VmHWM) KiB | idle RSS, {E['B_IDLE_CONNS']} conns (VmRSS) KiB | "
  "idle PSS KiB | VmHWM after idle test KiB | processes | ok runs |")
w("|---|---:|---:|---:|---:|---:|---:|")
for c in proxies:
    ok = [r for r in mem if r["contestant"] == c]
    okn = "missing" if (c in missing and not ok) else f"{sum(r['status'] == 'ok' for r in ok)}/{rounds}"
    w(f"| {label(c)} | {cell(mseries(c, 'peak_rss_kib'))} | {cell(mseries(c, 'idle_rss_kib'))} | "
      f"{cell(mseries(c, 'idle_pss_kib'))} | {cell(mseries(c, 'idle_hwm_kib'))} | "
      f"{fmt(med(mseries(c, 'processes')))} | {okn} |")
w("")
w("RSS counts shared pages (libraries) in full for every process, so nginx's two processes count "
  "them twice; PSS splits shared pages between the processes that map them.")
w("")

# ---- derived figures, all from medians
def m(load, c, f):
    return med(series(load, c, f))


def mm(c, f):
    return med(mseries(c, f))


def added(load, c, f):
    a, b = m(load, c, f), m(load, "direct", f)
    return None if a is None or b is None else a - b


w("## Added latency over direct (contestant median minus direct median, µs)")
w("")
w("| contestant | saturation p50 | saturation p99 | low load p50 | low load p99 |")
w("|---|---:|---:|---:|---:|")
for c in proxies:
    w(f"| {label(c)} | " + " | ".join(fmt(added(l, c, f)) for l in ("saturation", "low")
                                      for f in ("p50_us", "p99_us")) + " |")
w("")


def ratio(a, b):
    if a is None or b is None or b <= 0 or a < 0:
        return None
    return a / b


def rfmt(r):
    return "—" if r is None else f"{r:.2f}×"


metrics = [
    ("CPU µs/req, saturation (lower is better)", lambda c: m("saturation", c, "proxy_cpu_us_per_req")),
    ("CPU µs/req, low load (lower is better)", lambda c: m("low", c, "proxy_cpu_us_per_req")),
    ("backend CPU µs/req, saturation (lower is better)", lambda c: m("saturation", c, "backend_cpu_us_per_req")),
    ("added latency p50, saturation (lower is better)", lambda c: added("saturation", c, "p50_us")),
    ("added latency p99, saturation (lower is better)", lambda c: added("saturation", c, "p99_us")),
    ("added latency p50, low load (lower is better)", lambda c: added("low", c, "p50_us")),
    ("added latency p99, low load (lower is better)", lambda c: added("low", c, "p99_us")),
    ("requests/s, saturation (higher is better)", lambda c: m("saturation", c, "rps")),
    ("requests/s, low load (higher is better)", lambda c: m("low", c, "rps")),
    ("peak RSS (lower is better)", lambda c: mm(c, "peak_rss_kib")),
    (f"idle RSS, {E['B_IDLE_CONNS']} conns (lower is better)", lambda c: mm(c, "idle_rss_kib")),
    (f"idle PSS, {E['B_IDLE_CONNS']} conns (lower is better)", lambda c: mm(c, "idle_pss_kib")),
]
w("## Ratios")
w("")
w("| metric | meshbox | nginx | haproxy | meshbox / nginx | meshbox / haproxy |")
w("|---|---:|---:|---:|---:|---:|")
for name, f in metrics:
    v = {c: (f(c) if c in contestants else None) for c in ("meshbox", "nginx", "haproxy")}
    nd = 2 if "CPU" in name else 0
    w(f"| {name} | {fmt(v['meshbox'], nd)} | {fmt(v['nginx'], nd)} | {fmt(v['haproxy'], nd)} | "
      f"{rfmt(ratio(v['meshbox'], v['nginx']))} | {rfmt(ratio(v['meshbox'], v['haproxy']))} |")
w("")
w("Added-latency ratios are — when the reference's added latency is zero or negative "
  "(within noise of direct).")
w("")

# ---- targets
w("## Targets")
w("")
w("| target | meshbox | threshold | meshbox vs threshold | result |")
w("|---|---:|---:|---:|---|")


def better(vals):
    vals = [x for x in vals if x is not None]
    return min(vals) if vals else None


def verdict(val, thr):
    if val is None or thr is None:
        return "not measured"
    return "**met**" if val <= thr else "**MISSED**"


def target(desc, val, thr, nd, unit, floor=None):
    if thr is not None and floor is not None and thr < floor:
        thr = floor
    margin = "—"
    if val is not None and thr is not None and thr > 0:
        margin = f"{(val - thr) / thr * 100:+.1f}%"
    w(f"| {desc} | {fmt(val, nd)}{unit if val is not None else ''} | "
      f"{fmt(thr, nd)}{unit if thr is not None else ''} | {margin} | {verdict(val, thr)} |")


for load, lname in (("saturation", "saturation"), ("low", "low load")):
    target(f"CPU µs/req ({lname}) ≤ 1.0× the better of nginx and haproxy",
           m(load, "meshbox", "proxy_cpu_us_per_req"),
           better([m(load, c, "proxy_cpu_us_per_req") for c in ("nginx", "haproxy")]), 2, " µs")
for load, lname in (("saturation", "saturation"), ("low", "low load")):
    for f, p in (("p50_us", "p50"), ("p99_us", "p99")):
        target(f"added latency {p} ({lname}) ≤ 1.0× the better of nginx and haproxy",
               added(load, "meshbox", f), better([added(load, c, f) for c in ("nginx", "haproxy")]), 0, " µs",
               floor=0.0)
idle = mm("meshbox", "idle_rss_kib")
target(f"RSS (VmRSS) with {E['B_IDLE_CONNS']} idle keep-alive conns ≤ 10 MiB",
       None if idle is None else idle / 1024, 10.0, 2, " MiB")
w("")
w("Latency thresholds: the better (smaller) added latency of nginx and haproxy; when that is below "
  "zero (the reference is within noise of direct) the threshold is 0. A margin of a few percent "
  "either way is within the round-to-round spread shown in the tables above.")
w("")

w("## Problems")
w("")
if missing:
    for c, why in missing.items():
        w(f"- **{c}** did not run: {why}")
if problems:
    for p in problems:
        w(f"- FAILED run: {p}")
if not missing and not problems:
    w("None: no socket errors, no non-2xx/3xx responses, every contestant ran every round.")
w("")
w("Raw per-run numbers: `test/bench/out/runs.csv` (wrk runs), `test/bench/out/memory.csv` "
  "(memory), wrk output in `test/bench/out/raw/`.")
# reload.sh and routes.sh keep their own sections between <!-- NAME:begin --> and
# <!-- NAME:end --> markers: carry every such section over, in its order.
kept = ""
if os.path.exists(out_path):
    import re
    old = open(out_path).read()
    for sec in re.finditer(r"<!-- ([a-z-]+):begin -->.*?<!-- \1:end -->", old, re.S):
        kept += "\n" + sec.group(0) + "\n"
with open(out_path, "w") as fh:
    fh.write("\n".join(L) + "\n" + kept)
PY

log "wrote ${RESULTS#"$REPO"/} (benchmark ${BENCH_SECONDS} s, total ${TOTAL_SECONDS} s)"
status=0
if [[ -s $MISSING_CSV ]]; then
  log "NOTE: some contestants did not run: $(cut -d, -f2- "$MISSING_CSV" | sort -u | tr '\n' ' ')"
  status=1
fi
if ((${#PROBLEMS[@]})); then
  log "FAILED RUNS (${#PROBLEMS[@]}):"
  printf '  %s\n' "${PROBLEMS[@]}" >&2
  status=1
fi
exit $status
