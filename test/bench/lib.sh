# shellcheck shell=bash
# Helpers shared by the benchmark scripts (run.sh, reload.sh, routes.sh, mtls.sh,
# telemetry.sh): logging, the options they share, the processes a script starts (and stops on
# exit, Ctrl-C or failure), package installs, free ports and waits, /proc readings, wrk's output
# and its checks, the nginx "hello" backend, the release build of meshbox, the machine's
# description and the RESULTS.md section writer. Sourced, never run. The script that sources it
# sets `set -euo pipefail` and, before using what needs them: LOG_TAG (log prefix), REPO,
# OUT_DIR, RELEASE_DIR, TMP (its mktemp -d directory) and BACKEND_PORT. The report generators
# (Python) import benchlib.py from this directory.

# ---------------------------------------------------------------- logging
log() { printf '[%s %s] %s\n' "${LOG_TAG:-bench}" "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "FATAL: $*"; exit 1; }

now_us() { local t=$EPOCHREALTIME; echo $((10#${t/./})); }   # wall clock in µs

BENCH_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export PYTHONPATH="$BENCH_LIB_DIR${PYTHONPATH:+:$PYTHONPATH}"   # benchlib.py for the reports
export PYTHONDONTWRITEBYTECODE=1   # no __pycache__ in the source tree

# ---------------------------------------------------------------- options
# bench_opt "$@": one of the options the scripts share (--rounds, --duration, --quick,
# --meshbox, --results, --only where the script sets CONTESTANTS, -h/--help: the script's
# usage); sets OPT_SHIFT to the words it took. Anything else: usage on stderr, exit 2.
# It sets ROUNDS/ROUNDS_SET, DURATION/DURATION_SET, QUICK, MESHBOX_BIN, RESULTS, CONTESTANTS.
# shellcheck disable=SC2034 # read by the scripts
bench_opt() {
  OPT_SHIFT=2
  case $1 in
    --rounds) ROUNDS=${2:?--rounds needs a value}; ROUNDS_SET=1 ;;
    --duration) DURATION=${2:?--duration needs a value}; DURATION_SET=1 ;;
    --meshbox) MESHBOX_BIN=${2:?--meshbox needs a path} ;;
    --results) RESULTS=${2:?--results needs a path} ;;
    --quick) QUICK=1; OPT_SHIFT=1 ;;
    --only)
      [[ -v CONTESTANTS ]] || { echo "unknown option: $1" >&2; usage >&2; exit 2; }
      CONTESTANTS=${2:?--only needs a list} ;;
    -h|--help) usage; exit 0 ;;
    *) echo "unknown option: $1" >&2; usage >&2; exit 2 ;;
  esac
}

# apply_quick SECONDS: with --quick, 1 round (unless --rounds) of SECONDS-second runs (unless
# --duration) and 1 s warm-ups
# shellcheck disable=SC2034 # read by the scripts
apply_quick() {
  ((QUICK)) || return 0
  ((ROUNDS_SET)) || ROUNDS=1
  ((DURATION_SET)) || DURATION=$1
  WARMUP=1
}

need_posint() {   # need_posint OPTION VALUE: exit 2 unless VALUE is a positive integer
  [[ $2 =~ ^[1-9][0-9]*$ ]] || { echo "$1 must be a positive integer" >&2; exit 2; }
}

need_contestants() {   # need_contestants "A B C": exit 2 if CONTESTANTS names another
  local c
  for c in $CONTESTANTS; do
    [[ " $1 " == *" $c "* ]] || { echo "unknown contestant: $c" >&2; exit 2; }
  done
}

# ---------------------------------------------------------------- processes and cleanup
TMP=""
declare -a STARTED_PIDS=()   # every background process the script started
CLEANED=0

stop_pid() {   # stop_pid PID: TERM, wait up to 5 s, then KILL; reaps it
  local pid=$1 i
  kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 100; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  if kill -0 "$pid" 2>/dev/null; then
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}

# shellcheck disable=SC2317 # called from the traps below
cleanup() {   # stops everything started (newest first: clients before servers), removes TMP
  ((CLEANED)) && return 0
  CLEANED=1
  local i
  for ((i = ${#STARTED_PIDS[@]} - 1; i >= 0; i--)); do
    stop_pid "${STARTED_PIDS[i]}"
  done
  if [[ -n $TMP && -d $TMP ]]; then
    rm -rf -- "$TMP"
  fi
}

install_traps() {   # cleanup on exit, Ctrl-C, TERM and HUP; every failed command is logged
  set -E
  trap 'log "error: line $LINENO: $BASH_COMMAND exited with status $?"' ERR
  trap cleanup EXIT
  trap 'log "interrupted"; cleanup; exit 130' INT
  trap 'log "terminated"; cleanup; exit 143' TERM
  trap 'cleanup; exit 129' HUP
}

run_bg() {   # run_bg VAR CMD...: start CMD in the background, PID in VAR and in STARTED_PIDS
  local __var=$1; shift
  "$@" &
  local pid=$!
  STARTED_PIDS+=("$pid")
  printf -v "$__var" '%s' "$pid"
}

forget_pid() {   # forget_pid PID: stop a started process and drop it from the list
  local pid=$1 i
  stop_pid "$pid"
  for i in "${!STARTED_PIDS[@]}"; do
    [[ ${STARTED_PIDS[i]} == "$pid" ]] && unset 'STARTED_PIDS[i]'
  done
  STARTED_PIDS=("${STARTED_PIDS[@]}")
}

# ---------------------------------------------------------------- packages
APT_UPDATED=0
apt_install() {   # apt_install PKG...: install packages, apt-get update once
  ((EUID == 0)) || die "missing packages ($*) and not root: install them with apt-get first"
  if ((!APT_UPDATED)); then
    log "apt-get update"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    APT_UPDATED=1
  fi
  log "apt-get install $*"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >&2
}

have_pkg() { dpkg -s "$1" >/dev/null 2>&1; }

missing_tools() {   # missing_tools CMD:PKG...: the packages of the commands not in PATH
  local pair
  for pair in "$@"; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || echo "${pair#*:}"
  done
}

missing_build_deps() {   # the packages meshbox's build needs (see meson.build) that are missing
  missing_tools meson:meson ninja:ninja-build g++:g++ pkg-config:pkg-config
  local pkg
  for pkg in libuv1-dev libfmt-dev libtomlplusplus-dev libre2-dev doctest-dev node-llhttp \
    android-libboringssl-dev; do
    have_pkg "$pkg" || echo "$pkg"
  done
}

raise_fd_limit() {   # the soft open-file limit up to 65536 (or the hard limit)
  local hard
  hard=$(ulimit -Hn)
  if [[ $hard == unlimited ]] || ((hard > 65536)); then ulimit -n 65536; else ulimit -n "$hard"; fi
}

# ---------------------------------------------------------------- ports and waits
free_ports() {   # free_ports N: N distinct free TCP ports on 127.0.0.1
  python3 - "$1" <<'PY'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
PY
}

wait_http() {   # wait_http PORT PID [NAME]: poll until GET / answers 200 "hello" (10 s deadline)
  local port=$1 pid=$2 name=${3:-127.0.0.1:$1} deadline=$((SECONDS + 10)) body
  while ((SECONDS < deadline)); do
    if ! kill -0 "$pid" 2>/dev/null; then
      log "$name (pid $pid) exited during start-up"
      return 1
    fi
    if body=$(curl -fsS --max-time 2 "http://127.0.0.1:$port/" 2>/dev/null); then
      if [[ $body == hello ]]; then
        return 0
      fi
      log "$name answered an unexpected body: ${body:0:80}"
      return 1
    fi
    sleep 0.05
  done
  log "$name did not answer on 127.0.0.1:$port within 10 s"
  return 1
}

wait_file() {   # wait_file PATH PID SECONDS: poll until PATH is non-empty; 1 if PID exits first
  local path=$1 pid=$2 deadline=$((SECONDS + $3))
  while ((SECONDS < deadline)); do
    [[ -s $path ]] && return 0
    kill -0 "$pid" 2>/dev/null || return 1
    sleep 0.02
  done
  return 1
}

# ---------------------------------------------------------------- /proc
tree_pids() {   # tree_pids PID: PID and its direct children (nginx master -> workers)
  local root=$1 f line rest
  echo "$root"
  for f in /proc/[0-9]*/stat; do
    { read -r line <"$f"; } 2>/dev/null || continue
    rest=${line##*) }
    # shellcheck disable=SC2086 # split the stat fields on purpose
    set -- $rest
    [[ ${2:-} == "$root" ]] && { f=${f#/proc/}; echo "${f%/stat}"; }
  done
  return 0
}

self_ticks() {   # self_ticks PID: utime+stime (stat fields 14+15) of PID alone (0 if gone)
  local line rest
  { read -r line <"/proc/$1/stat"; } 2>/dev/null || { echo 0; return 0; }
  rest=${line##*) }
  # shellcheck disable=SC2086 # split the stat fields on purpose
  set -- $rest
  echo $((${12} + ${13}))
}

cpu_ticks() {   # cpu_ticks PID: utime+stime of PID and its children
  local total=0 p
  for p in $(tree_pids "$1"); do
    total=$((total + $(self_ticks "$p")))
  done
  echo "$total"
}

per_req_us() {   # per_req_us TICKS REQUESTS: CPU µs per request (CLK_TCK set by the script)
  awk -v t="$1" -v hz="$CLK_TCK" -v n="$2" 'BEGIN { printf "%.3f", t / hz * 1e6 / n }'
}

# ---------------------------------------------------------------- wrk
# parse_wrk FILE -> "requests rps p50_us p75_us p90_us p99_us max_us connect read write timeout non2xx"
# (-1 for what the output does not hold; the socket errors and non2xx are 0 when wrk reports none)
parse_wrk() {
  awk '
    function us(v,   n, u) {
      n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
      if (u == "us") return n
      if (u == "ms") return n * 1000
      if (u == "s")  return n * 1000000
      if (u == "m")  return n * 60000000
      if (u == "h")  return n * 3600000000
      return -1
    }
    $1 == "Latency" && $2 != "Distribution" { max = us($4) }
    /Latency Distribution/ { dist = 1; next }
    dist && $1 ~ /^[0-9]+%$/ { p[$1] = us($2); next }
    dist { dist = 0 }
    / requests in / { req = $1 }
    /^Requests\/sec:/ { rps = $2 }
    /Socket errors:/ {
      line = $0; sub(/.*Socket errors:/, "", line); gsub(/,/, "", line)
      n = split(line, f, " ")
      for (i = 1; i < n; i += 2) e[f[i]] = f[i + 1] + 0
    }
    /Non-2xx or 3xx responses:/ { non2xx = $NF }
    END {
      printf "%s %s %s %s %s %s %s %d %d %d %d %d\n", (req == "" ? -1 : req), (rps == "" ? -1 : rps),
        ("50%" in p ? p["50%"] : -1), ("75%" in p ? p["75%"] : -1),
        ("90%" in p ? p["90%"] : -1), ("99%" in p ? p["99%"] : -1), (max == "" ? -1 : max),
        e["connect"], e["read"], e["write"], e["timeout"], non2xx
    }' "$1"
}

# wrk_check PREFIX RC: reads PREFIX-wrk.txt (the measured run, wrk's exit status RC) and
# PREFIX-warmup.txt; sets W_REQ W_RPS W_P50 W_P99 W_MAX (parse_wrk's), W_SERR (socket errors),
# W_NON2XX, and appends to WHY what fails the run ("; "-terminated reasons).
# shellcheck disable=SC2034 # read by the scripts
wrk_check() {
  local ec er ew et wnon
  read -r W_REQ W_RPS W_P50 _ _ W_P99 W_MAX ec er ew et W_NON2XX < <(parse_wrk "$1-wrk.txt")
  W_SERR=$((ec + er + ew + et))
  read -r _ _ _ _ _ _ _ ec er ew et wnon < <(parse_wrk "$1-warmup.txt")
  (($2 == 0)) || WHY+="wrk exit $2; "
  ((W_SERR == 0)) || WHY+="$W_SERR socket errors; "
  ((W_NON2XX == 0)) || WHY+="$W_NON2XX non-2xx responses; "
  ((ec + er + ew + et + wnon == 0)) || WHY+="warm-up: $((ec + er + ew + et)) socket errors, $wnon non-2xx; "
  if [[ $W_REQ == -1 || $W_P50 == -1 || $W_P99 == -1 ]]; then WHY+="could not parse wrk output; "; fi
  return 0
}

csvq() {   # csvq TEXT: TEXT as one quoted CSV field (trailing "; " dropped, " -> ')
  local s=${1%; }
  s=${s//\"/\'}
  s=${s//$'\n'/ }
  printf '"%s"' "$s"
}

# ---------------------------------------------------------------- the nginx "hello" backend
nginx_common() {   # nginx_common PREFIX: main-context lines shared by every nginx instance
  cat <<EOF
daemon off;
worker_processes 1;
pid $1/nginx.pid;
error_log $1/error.log warn;
worker_rlimit_nofile 16384;
events {
    worker_connections 8192;
}
EOF
}

nginx_http_common() {   # nginx_http_common PREFIX: http-context lines shared by every instance
  cat <<EOF
    access_log off;
    keepalive_requests 1000000;
    keepalive_timeout 75s;
    client_body_temp_path $1/client_body_temp;
    proxy_temp_path $1/proxy_temp;
EOF
}

write_backend_conf() {   # write_backend_conf PREFIX PORT: nginx answering 200 "hello\n"
  mkdir -p "$1"
  {
    nginx_common "$1"
    echo "http {"
    nginx_http_common "$1"
    cat <<EOF
    default_type text/plain;
    server {
        listen 127.0.0.1:$2 backlog=4096;
        location / {
            return 200 "hello\n";
        }
    }
}
EOF
  } >"$1/nginx.conf"
}

# start_nginx PREFIX PORT VAR NAME: the nginx of PREFIX/nginx.conf, whose 127.0.0.1:PORT
# answers GET / with "hello"; its PID in VAR. Dies (naming NAME) if it does not start.
start_nginx() {
  local prefix=$1 port=$2 __var=$3 name=$4 __pid
  nginx -t -q -p "$prefix" -e "$prefix/error.log" -c "$prefix/nginx.conf" \
    || die "$name nginx config test failed: $(tail -5 "$prefix/error.log" 2>/dev/null)"
  run_bg __pid nginx -p "$prefix" -e "$prefix/error.log" -c "$prefix/nginx.conf"
  wait_http "$port" "$__pid" "$name" \
    || die "$name nginx did not start: $(tail -5 "$prefix/error.log" 2>/dev/null)"
  printf -v "$__var" '%s' "$__pid"
}

# start_nginx_backend PREFIX PORT VAR: a "hello" backend in PREFIX on 127.0.0.1:PORT, its PID in VAR
start_nginx_backend() {
  write_backend_conf "$1" "$2"
  start_nginx "$1" "$2" "$3" backend
}

# shellcheck disable=SC2034 # read by the scripts
BACKEND_PID=""
start_backend() {   # the backend of run.sh and reload.sh: $TMP/backend on BACKEND_PORT
  start_nginx_backend "$TMP/backend" "$BACKEND_PORT" BACKEND_PID
}

# ---------------------------------------------------------------- meshbox
MESHBOX_COMMIT=$(git -C "$REPO" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
if [[ $MESHBOX_COMMIT != unknown ]] && [[ -n $(git -C "$REPO" status --porcelain --untracked-files=no 2>/dev/null) ]]; then
  MESHBOX_COMMIT+=" (working tree has uncommitted changes)"
fi
MESHBOX_MISSING="not built"

# build_meshbox: sets MESHBOX_BIN to an absolute path: the --meshbox binary the script was given
# (MESHBOX_BIN already set), else a release build in RELEASE_DIR (meson setup once, then
# ninja cli/meshbox; output in OUT_DIR/build.log). On failure: MESHBOX_BIN empty,
# MESHBOX_MISSING says why, returns 1.
build_meshbox() {
  mkdir -p "$OUT_DIR"
  local blog=$OUT_DIR/build.log
  : >"$blog"
  if [[ -n $MESHBOX_BIN ]]; then
    [[ -x $MESHBOX_BIN ]] || { MESHBOX_MISSING="--meshbox $MESHBOX_BIN is not an executable"; MESHBOX_BIN=""; return 1; }
    MESHBOX_BIN=$(cd "$(dirname "$MESHBOX_BIN")" && pwd)/$(basename "$MESHBOX_BIN")
    return 0
  fi
  log "building meshbox (release) in ${RELEASE_DIR#"$REPO"/}"
  if [[ ! -f $RELEASE_DIR/build.ninja ]]; then
    if ! meson setup "$RELEASE_DIR" "$REPO" --buildtype=release -Db_ndebug=true >>"$blog" 2>&1; then
      MESHBOX_MISSING="meson setup failed (see ${blog#"$REPO"/})"
      log "$MESHBOX_MISSING"; tail -5 "$blog" >&2; return 1
    fi
  fi
  if ! ninja -C "$RELEASE_DIR" cli/meshbox >>"$blog" 2>&1; then
    MESHBOX_MISSING="ninja -C ${RELEASE_DIR#"$REPO"/} cli/meshbox failed (see ${blog#"$REPO"/})"
    if [[ -x $RELEASE_DIR/cli/meshbox ]]; then
      MESHBOX_MISSING+="; an older ${RELEASE_DIR#"$REPO"/}/cli/meshbox exists: --meshbox ${RELEASE_DIR#"$REPO"/}/cli/meshbox runs it"
    fi
    log "$MESHBOX_MISSING"; tail -5 "$blog" >&2; return 1
  fi
  MESHBOX_BIN=$RELEASE_DIR/cli/meshbox
  [[ -x $MESHBOX_BIN ]] || { MESHBOX_MISSING="the build produced no $MESHBOX_BIN"; MESHBOX_BIN=""; return 1; }
  return 0
}

# hello_mesh DIR GW_PORT: writes DIR/app/nginx.conf, an nginx "hello" for a workload's command
# to start on the port meshbox gives it, and prints the mesh.toml resources of mtls.sh's and
# telemetry.sh's path: the service `backend` and its workload (that app), a gateway on
# 127.0.0.1:GW_PORT and a virtual service routing everything to `backend`.
hello_mesh() {
  local dir=$1
  mkdir -p "$dir/app"
  write_backend_conf "$dir/app" 0
  sed -i 's/listen 127.0.0.1:0 /listen 127.0.0.1:@PORT@ /' "$dir/app/nginx.conf"
  cat <<EOF
[[service]]
name = "backend"
port = 8000

[[workload]]
name = "backend"
service = "backend"
command = ["sh", "-c", "sed 's/@PORT@/\${PORT}/' $dir/app/nginx.conf > $dir/app/run.conf && exec nginx -p $dir/app -e $dir/app/error.log -c $dir/app/run.conf"]

[[gateway]]
name = "edge"
servers = [{ port = $2, bind = "127.0.0.1", protocol = "http", hosts = ["*"] }]

[[virtual_service]]
name = "backend"
hosts = ["*"]
gateways = ["edge"]
http = [{ route = [{ destination = { host = "backend" } }] }]
EOF
}

# bench_began LOAD / bench_ended PROBLEMS_FILE: the benchmark's wall time and load average
# around it (LOAD_BEFORE, with a warning when above LOAD: a number or `half` the CPUs; BENCH_T0;
# BENCH_SECONDS, LOAD_AFTER, TOTAL_SECONDS since START_EPOCH), and the PROBLEMS list written to
# PROBLEMS_FILE, one a line, for the report generator.
# shellcheck disable=SC2034 # read by the scripts
bench_began() {
  LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
  local max=$1
  [[ $max != half ]] || max=$(awk -v n="$(nproc)" 'BEGIN { print n / 2 }')
  if awk -v l="${LOAD_BEFORE%% *}" -v m="$max" 'BEGIN { exit !(l > m) }'; then
    log "warning: load average is $LOAD_BEFORE before the benchmark: other work on this machine skews the numbers"
  fi
  BENCH_T0=$SECONDS
}
# shellcheck disable=SC2034 # read by the scripts
bench_ended() {
  BENCH_SECONDS=$((SECONDS - BENCH_T0))
  LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
  TOTAL_SECONDS=$(($(date +%s) - START_EPOCH))
  printf '%s\n' "${PROBLEMS[@]+"${PROBLEMS[@]}"}" >"$1"
}

# ---------------------------------------------------------------- the machine
cpu_model() {
  local m
  m=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
  [[ -n $m ]] || m=$(awk -F': ' '/^(Hardware|Model|cpu model)/ { print $2; exit }' /proc/cpuinfo)
  echo "${m:-unknown}"
}

os_name() { (. /etc/os-release 2>/dev/null && echo "${PRETTY_NAME:-}"); }

# machine_env PREFIX: exports PREFIX_NPROC, _CPU, _KERNEL, _OS, _MEM_KIB, _WRK, _NGINX,
# _HAPROXY (when installed) and _COMMIT for a report generator.
machine_env() {
  local p=$1
  export "${p}_NPROC=$(nproc)" "${p}_CPU=$(cpu_model)" "${p}_KERNEL=$(uname -srm)" \
    "${p}_OS=$(os_name)" "${p}_MEM_KIB=$(awk '/^MemTotal:/ { print $2 }' /proc/meminfo)" \
    "${p}_WRK=$(wrk -v 2>&1 | awk 'NR == 1' || true)" \
    "${p}_NGINX=$(nginx -v 2>&1 | awk 'NR == 1' || true)" "${p}_COMMIT=$MESHBOX_COMMIT"
  if command -v haproxy >/dev/null 2>&1; then
    export "${p}_HAPROXY=$(haproxy -v 2>&1 | awk 'NR == 1' || true)"
  fi
}

# finish_section TAG: splices OUT_DIR/section.md into RESULTS as TAG's section, logs it and
# exits: 1 when PROBLEMS holds anything (listed on stderr), else 0.
finish_section() {
  splice_results "$RESULTS" "$OUT_DIR/section.md" "$1"
  log "wrote the $1 section of ${RESULTS#"$REPO"/} (benchmark ${BENCH_SECONDS} s, total ${TOTAL_SECONDS} s)"
  if ((${#PROBLEMS[@]})); then
    log "PROBLEMS (${#PROBLEMS[@]}):"
    printf '  %s\n' "${PROBLEMS[@]}" >&2
    exit 1
  fi
  exit 0
}

# splice_results RESULTS SECTION TAG: puts SECTION's text in RESULTS between
# <!-- TAG:begin --> and <!-- TAG:end --> (the markers are part of SECTION), replacing what
# was there, or appends it the first time; written to a temp file and renamed.
splice_results() {
  python3 - "$1" "$2" "$3" <<'PY'
import os, sys

results_path, section_path, tag = sys.argv[1:4]
section = open(section_path).read()
begin, end = f"<!-- {tag}:begin -->", f"<!-- {tag}:end -->"
text = open(results_path).read() if os.path.exists(results_path) else ""
i = text.find(begin)
j = text.find(end, i + len(begin)) if i >= 0 else -1
if i >= 0 and j >= 0:
    text = text[:i] + section.rstrip("\n") + text[j + len(end):]
    if not text.endswith("\n"):
        text += "\n"
else:
    text = (text.rstrip("\n") + "\n\n" if text.strip() else "") + section
tmp = results_path + ".tmp"
with open(tmp, "w") as fh:
    fh.write(text)
os.replace(tmp, results_path)
PY
}
