#!/usr/bin/env bash
# Route-table cost: a meshbox gateway whose virtual service has 100 HTTP routes vs the same
# gateway with one route, under the same saturation load.
#
#   test/bench/routes.sh               3 interleaved rounds of 10 s wrk runs (~2 min + build)
#   test/bench/routes.sh --quick       1 round of 3 s runs (smoke test)
#   test/bench/routes.sh --help        all options
#
# Both configs serve the same request (GET /api/v1/items/42 with x-tenant: tenant-0) through
# the same route: weighted 50/50 over two subsets (v1, v2), each an nginx "hello" backend. In
# the 100-route table that route is number 99: the 98 before it (uri prefixes, exact uris and
# header matches, each with its own weighted split) are tried and fail first, and a catch-all
# direct response (404) follows it. Target: the 100-route table within 5 % of the single
# route's requests/s. Replaces the section between <!-- routes:begin --> and
# <!-- routes:end --> in test/bench/RESULTS.md (appended the first time) and keeps raw
# numbers in test/bench/out/routes/ (gitignored). Only loopback traffic; everything it starts
# is stopped on exit, Ctrl-C or failure. See test/bench/README.md.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$BENCH_DIR/../.." && pwd)
OUT_DIR=$BENCH_DIR/out/routes
RESULTS=$BENCH_DIR/RESULTS.md
RELEASE_DIR=$REPO/build-release
LOG_TAG=routes
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$BENCH_DIR/lib.sh"

# ---------------------------------------------------------------- options
ROUNDS=3
DURATION=10   # seconds per measured wrk run
WARMUP=2      # wrk warm-up before each measured run (same connections' settings)
CONNS=50
ROUTES=100
MESHBOX_BIN=""
QUICK=0
ROUNDS_SET=0
DURATION_SET=0
TARGET_PCT=5  # the 100-route table may be at most this much slower (requests/s)
INSTRUCTIONS=1     # also count meshbox's instructions per request under callgrind
IR_WARMUP=1000     # requests before callgrind's counters are zeroed
IR_REQUESTS=5000   # requests counted
REQUEST_PATH=/api/v1/items/42
REQUEST_HEADER="x-tenant: tenant-0"

usage() {
  cat <<EOF
usage: $0 [options]
  --rounds N        interleaved rounds (default $ROUNDS): each runs both configs, alternating
                    which goes first
  --duration S      seconds per measured wrk run (default $DURATION)
  --routes N        routes in the big table (default $ROUTES, at least 3)
  --quick           1 round of 3 s runs, 1 s warm-ups (smoke test; numbers not quotable)
  --meshbox PATH    use this meshbox binary instead of building $RELEASE_DIR
  --results PATH    the file whose routes section is replaced (default test/bench/RESULTS.md)
  --no-instructions skip the instruction count (meshbox under valgrind --tool=callgrind,
                    $IR_REQUESTS sequential requests per config)
  -h, --help        this help
EOF
}

while (($#)); do
  case $1 in
    --routes) ROUTES=${2:?--routes needs a value}; shift 2 ;;
    --no-instructions) INSTRUCTIONS=0; shift ;;
    *) bench_opt "$@"; shift "$OPT_SHIFT" ;;
  esac
done
apply_quick 3
need_posint --rounds "$ROUNDS"
need_posint --duration "$DURATION"
if ! [[ $ROUTES =~ ^[1-9][0-9]*$ ]] || ((ROUTES < 3)); then
  echo "--routes must be an integer >= 3" >&2; exit 2
fi

START_EPOCH=$(date +%s)
install_traps

ensure_tools() {
  local missing
  missing=$(missing_tools wrk:wrk nginx:nginx-light curl:curl python3:python3 getconf:libc-bin)
  ((!INSTRUCTIONS)) || missing+=" $(missing_tools valgrind:valgrind)"
  [[ -n $MESHBOX_BIN ]] || missing+=" $(missing_build_deps)"
  # shellcheck disable=SC2086 # one package per word
  [[ -z ${missing//[[:space:]]/} ]] || apt_install $missing
}

# ---------------------------------------------------------------- configs
# The mesh both configs share: the service "backend" with two workloads (v1 and v2, one nginx
# each), a destination rule with both subsets, a gateway on PORT.
write_mesh_base() {   # FILE PORT BACKEND1_PORT BACKEND2_PORT
  cat >"$1" <<EOF
[mesh]
name = "routes-bench"

[[service]]
name = "backend"
port = 8000

[[workload]]
name = "backend-v1"
service = "backend"
labels = { version = "v1" }
address = "127.0.0.1"
port = $3

[[workload]]
name = "backend-v2"
service = "backend"
labels = { version = "v2" }
address = "127.0.0.1"
port = $4

[[destination_rule]]
name = "backend"
host = "backend"
subsets = [
  { name = "v1", labels = { version = "v1" } },
  { name = "v2", labels = { version = "v2" } },
]

[[gateway]]
name = "edge"
servers = [{ port = $2, bind = "127.0.0.1", protocol = "http", hosts = ["*"] }]

[[virtual_service]]
name = "backend"
hosts = ["*"]
gateways = ["edge"]
EOF
}

weights() {   # weights W: destinations v1 W %, v2 100-W %
  echo "route = [{ destination = { host = \"backend\", subset = \"v1\" }, weight = $1 }, { destination = { host = \"backend\", subset = \"v2\" }, weight = $((100 - $1)) }]"
}

# The route the benchmark's request takes, in both configs.
matching_route() {
  cat <<EOF

  [[virtual_service.http]]
  name = "items"
  match = [{ uri = { prefix = "/api/" }, headers = { x-tenant = { exact = "tenant-0" } } }]
  headers = { response = { set = { x-route = "items" } } }
  $(weights 50)
EOF
}

write_single() {   # FILE PORT B1 B2: the virtual service has the matching route only
  write_mesh_base "$@"
  matching_route >>"$1"
}

# ROUTES routes: ROUTES-2 that the request fails (in turn: a uri prefix that shares "/api/v1/"
# with it; an exact uri that shares "/api/v1/items/" or a second prefix; the x-tenant header
# with another value), the matching route,
# then a catch-all that answers 404 itself (a request that reached it would count as non-2xx).
write_many() {   # FILE PORT B1 B2
  write_mesh_base "$@"
  local i
  {
    for ((i = 1; i <= ROUTES - 2; i++)); do
      printf '\n  [[virtual_service.http]]\n  name = "r%d"\n' "$i"
      case $((i % 3)) in
        1) printf '  match = [{ uri = { prefix = "/api/v1/service-%d/" } }]\n' "$i" ;;
        2) printf '  match = [{ headers = { x-tenant = { exact = "tenant-%d" } } }]\n' "$i" ;;
        0) printf '  match = [{ uri = { exact = "/api/v1/items/%d/reviews" } }, { uri = { prefix = "/api/v2/service-%d/" } }]\n' "$i" "$i" ;;
      esac
      printf '  %s\n' "$(weights $((i % 101)))"
    done
    matching_route
    printf '\n  [[virtual_service.http]]\n  name = "fallback"\n'
    printf '  direct_response = { status = 404, body = "no route\\n" }\n'
  } >>"$1"
}

# ---------------------------------------------------------------- one measurement
MPID=""
RUNS_CSV=""
declare -a PROBLEMS=()

# measure ROUND CONFIG: meshbox run on CONFIG's file (fresh), a warm-up, then the measured run
measure() {
  local round=$1 config=$2 port dir raw=$OUT_DIR/r$1-$2
  read -r port < <(free_ports 1)
  dir=$TMP/r$round-$config
  mkdir -p "$dir"
  case $config in
    single) write_single "$dir/mesh.toml" "$port" "$B1_PORT" "$B2_PORT" ;;
    many) write_many "$dir/mesh.toml" "$port" "$B1_PORT" "$B2_PORT" ;;
  esac
  cp "$dir/mesh.toml" "$raw-mesh.toml"
  local status=ok
  WHY=""
  run_bg MPID "$MESHBOX_BIN" run "$dir/mesh.toml" --state-dir "$dir/state" --admin 127.0.0.1:0 \
    --ready-file "$dir/ready" --workers 1 --log-level warn --no-watch \
    >"$dir/stdout.log" 2>"$dir/stderr.log"
  if ! wait_file "$dir/ready" "$MPID" 10; then
    WHY="did not write --ready-file within 10 s: $(tail -3 "$dir/stderr.log" | tr '\n' ' ')"
    PROBLEMS+=("round $round, $config: $WHY")
    echo "$round,$config,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1,fail,$(csvq "$WHY")" >>"$RUNS_CSV"
    forget_pid "$MPID"
    return 0
  fi
  local url=http://127.0.0.1:$port$REQUEST_PATH body code
  # The request is served by the matching route (it sets x-route: items, a backend says
  # hello); in the big table a request no route matches falls through to the catch-all.
  body=$(curl -sS -i --max-time 5 -H "$REQUEST_HEADER" "$url" 2>&1 | tr -d '\r') || true
  [[ $body == *$'\nx-route: items\n'* && $body == *$'\n\nhello' ]] \
    || WHY+="the benchmark request was not answered by the route 'items' and a backend: $(head -c 200 <<<"$body" | tr '\n' ' '); "
  if [[ $config == many ]]; then
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://127.0.0.1:$port/other") || true
    [[ $code == 404 ]] || WHY+="an unrouted request got $code, not the catch-all's 404; "
  fi

  wrk -t1 "-c$CONNS" "-d${WARMUP}s" -H "$REQUEST_HEADER" "$url" >"$raw-warmup.txt" 2>&1 || true
  local m0 m1 b0 b1 rc=0
  m0=$(cpu_ticks "$MPID"); b0=$(($(cpu_ticks "$B1_PID") + $(cpu_ticks "$B2_PID")))
  wrk -t1 "-c$CONNS" "-d${DURATION}s" --latency -H "$REQUEST_HEADER" "$url" >"$raw-wrk.txt" 2>&1 || rc=$?
  m1=$(cpu_ticks "$MPID"); b1=$(($(cpu_ticks "$B1_PID") + $(cpu_ticks "$B2_PID")))
  local c1 c2
  c1=$(cpu_ticks "$B1_PID"); c2=$(cpu_ticks "$B2_PID")

  wrk_check "$raw" "$rc"
  kill -0 "$MPID" 2>/dev/null || WHY+="meshbox died during the run; "
  [[ ! -s $dir/stderr.log ]] || WHY+="meshbox logged warnings/errors ($(head -c 200 "$dir/stderr.log" | tr '\n' ' ')); "
  [[ -n $WHY ]] && status=fail

  local mcpu=-1 bcpu=-1
  if [[ $W_REQ != -1 ]] && ((${W_REQ%.*} > 0)); then
    mcpu=$(per_req_us $((m1 - m0)) "$W_REQ")
    bcpu=$(per_req_us $((b1 - b0)) "$W_REQ")
  fi
  echo "$round,$config,$W_REQ,$W_RPS,$W_P50,$W_P99,$W_MAX,$W_SERR,$W_NON2XX,$mcpu,$bcpu,$c1,$c2,$status,$(csvq "$WHY")" >>"$RUNS_CSV"
  cp "$dir/stderr.log" "$raw-meshbox.log"
  if [[ $status != ok ]]; then
    PROBLEMS+=("round $round, $config: ${WHY%; }")
    log "  $config: FAILED (${WHY%; }) - see ${raw#"$REPO"/}-wrk.txt"
  else
    log "$(printf '  %-6s %8.0f req/s  p50 %6.0f us  p99 %7.0f us  meshbox cpu %6s us/req  backends %s us/req' \
      "$config" "$W_RPS" "$W_P50" "$W_P99" "$mcpu" "$bcpu")"
  fi
  forget_pid "$MPID"
  MPID=""
}

# ---------------------------------------------------------------- instructions per request
# requests PORT N: N sequential GETs of the benchmark's request on one keep-alive connection;
# fails unless every one is a 200 from a backend.
requests() {
  python3 - "$1" "$2" "$REQUEST_PATH" "$REQUEST_HEADER" <<'PY'
import socket, sys
port, n, path, header = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
req = f"GET {path} HTTP/1.1\r\nHost: bench\r\n{header}\r\n\r\n".encode()
s = socket.create_connection(("127.0.0.1", port), timeout=60)
buf = b""
for i in range(n):
    s.sendall(req)
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(65536)
        if not chunk:
            sys.exit(f"request {i + 1}: connection closed")
        buf += chunk
    head, buf = buf.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    length = next(int(l.split(":", 1)[1]) for l in lines if l.lower().startswith("content-length:"))
    while len(buf) < length:
        buf += s.recv(65536)
    body, buf = buf[:length], buf[length:]
    if not lines[0].startswith("HTTP/1.1 200") or body != b"hello\n":
        sys.exit(f"request {i + 1}: {lines[0]!r}, body {body[:40]!r}")
PY
}

# count_instructions CONFIG: meshbox under callgrind on CONFIG; its counters are zeroed after
# IR_WARMUP requests, then IR_REQUESTS are sent and the counters dumped. Prints the
# instructions (all threads) per request, or returns 1 with IR_FAIL set.
IR_FAIL=""
count_instructions() {
  local config=$1 port dir=$TMP/ir-$1 vpid ir
  read -r port < <(free_ports 1)
  mkdir -p "$dir"
  "write_$config" "$dir/mesh.toml" "$port" "$B1_PORT" "$B2_PORT"
  run_bg vpid valgrind --tool=callgrind "--callgrind-out-file=$dir/callgrind.out" \
    "$MESHBOX_BIN" run "$dir/mesh.toml" --state-dir "$dir/state" --admin 127.0.0.1:0 \
    --ready-file "$dir/ready" --workers 1 --log-level warn --no-watch \
    >"$dir/stdout.log" 2>"$dir/valgrind.log"
  IR_FAIL=""
  if ! wait_file "$dir/ready" "$vpid" 120; then
    IR_FAIL="meshbox under callgrind did not start: $(tail -3 "$dir/valgrind.log" | tr '\n' ' ')"
  elif ! requests "$port" "$IR_WARMUP" 2>"$dir/client.log"; then
    IR_FAIL="warm-up: $(tail -1 "$dir/client.log")"
  elif ! callgrind_control --zero "$vpid" >"$dir/control.log" 2>&1; then
    IR_FAIL="callgrind_control --zero failed: $(tail -1 "$dir/control.log")"
  elif ! requests "$port" "$IR_REQUESTS" 2>"$dir/client.log"; then
    IR_FAIL="counted run: $(tail -1 "$dir/client.log")"
  elif ! callgrind_control --dump "$vpid" >>"$dir/control.log" 2>&1; then
    IR_FAIL="callgrind_control --dump failed: $(tail -1 "$dir/control.log")"
  fi
  # --dump writes callgrind.out.1: the events since --zero, its "summary:" line
  if [[ -z $IR_FAIL ]]; then
    ir=$(awk '$1 == "summary:" { print $2; exit }' "$dir/callgrind.out.1" 2>/dev/null || true)
    [[ -n $ir ]] || IR_FAIL="no summary line in $dir/callgrind.out.1"
  fi
  cp "$dir/mesh.toml" "$OUT_DIR/ir-$config-mesh.toml"
  [[ -f $dir/callgrind.out.1 ]] && cp "$dir/callgrind.out.1" "$OUT_DIR/callgrind.out.$config"
  forget_pid "$vpid"
  [[ -z $IR_FAIL ]] || return 1
  awk -v ir="$ir" -v n="$IR_REQUESTS" 'BEGIN { printf "%.0f\n", ir / n }'
}

# ---------------------------------------------------------------- main
ensure_tools
CLK_TCK=$(getconf CLK_TCK)
mkdir -p "$OUT_DIR"
rm -f "$OUT_DIR"/r[0-9]*-* "$OUT_DIR/runs.csv"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/meshbox-routes.XXXXXX")
chmod 755 "$TMP"   # nginx workers run as nobody when started by root
raise_fd_limit

t=$SECONDS
build_meshbox || die "$MESHBOX_MISSING"
BUILD_SECONDS=$((SECONDS - t))
MESHBOX_VERSION=$("$MESHBOX_BIN" --version 2>/dev/null | head -1 || true)
log "meshbox: $MESHBOX_BIN ${MESHBOX_VERSION:+($MESHBOX_VERSION)}"

# Both configs must be valid, without warnings, before anything is measured.
read -r B1_PORT B2_PORT GW_PORT < <(free_ports 3)
for config in single many; do
  "write_$config" "$TMP/check-$config.toml" "$GW_PORT" "$B1_PORT" "$B2_PORT"
  out=$("$MESHBOX_BIN" validate "$TMP/check-$config.toml" 2>&1) || die "the $config config does not validate: $out"
  [[ $out != *warning* ]] || die "the $config config has warnings: $out"
  log "$config config: $(grep -c '^  \[\[virtual_service.http\]\]' "$TMP/check-$config.toml") routes, $out"
done

RUNS_CSV=$OUT_DIR/runs.csv
echo "round,config,requests,rps,p50_us,p99_us,max_us,socket_errors,non2xx,meshbox_cpu_us_per_req,backend_cpu_us_per_req,backend1_ticks,backend2_ticks,status,note" >"$RUNS_CSV"

bench_began half
B1_PID="" B2_PID=""
start_nginx_backend "$TMP/backend-1" "$B1_PORT" B1_PID
start_nginx_backend "$TMP/backend-2" "$B2_PORT" B2_PID
log "backends (nginx) on 127.0.0.1:$B1_PORT (v1) and 127.0.0.1:$B2_PORT (v2)"
BENCH_T0=$SECONDS
for ((round = 1; round <= ROUNDS; round++)); do
  order="single many"
  ((round % 2)) || order="many single"   # alternate: drift over time hits both alike
  for config in $order; do
    log "round $round/$ROUNDS: $config, ${DURATION} s of wrk -t1 -c$CONNS"
    measure "$round" "$config"
  done
done
IR_SINGLE=-1 IR_MANY=-1
if ((INSTRUCTIONS)); then
  for config in single many; do
    log "instructions: meshbox under callgrind, $config, $IR_REQUESTS requests after $IR_WARMUP"
    if ir=$(count_instructions "$config"); then
      log "  $config: $ir instructions per request"
      if [[ $config == single ]]; then IR_SINGLE=$ir; else IR_MANY=$ir; fi
    else
      PROBLEMS+=("instructions, $config: $IR_FAIL")
      log "  $config: FAILED ($IR_FAIL)"
    fi
  done
fi
bench_ended "$OUT_DIR/problems.txt"

# ---------------------------------------------------------------- report
machine_env T
set -a   # everything assigned below goes to the report generator's environment
# shellcheck disable=SC2034
T_DATE=$(date -u '+%Y-%m-%d %H:%M UTC') \
  T_MESHBOX_BIN="${MESHBOX_BIN#"$REPO"/}" \
  T_MESHBOX_VERSION="$MESHBOX_VERSION" \
  T_ROUNDS=$ROUNDS T_DURATION=$DURATION T_WARMUP=$WARMUP T_CONNS=$CONNS T_ROUTES=$ROUTES \
  T_QUICK=$QUICK T_TARGET_PCT=$TARGET_PCT T_PATH="$REQUEST_PATH" T_HEADER="$REQUEST_HEADER" \
  T_BUILD_SECONDS=$BUILD_SECONDS T_BENCH_SECONDS=$BENCH_SECONDS T_TOTAL_SECONDS=$TOTAL_SECONDS \
  T_RUNS_CSV=$RUNS_CSV T_PROBLEMS="$OUT_DIR/problems.txt" \
  T_IR_SINGLE=$IR_SINGLE T_IR_MANY=$IR_MANY T_IR_REQUESTS=$IR_REQUESTS T_IR_WARMUP=$IR_WARMUP \
  T_INSTRUCTIONS=$INSTRUCTIONS \
  T_LOAD_BEFORE="$LOAD_BEFORE" T_LOAD_AFTER="$LOAD_AFTER"
set +a

python3 - "$RESULTS" "$OUT_DIR/section.md" <<'PY'
import csv, os, sys

from benchlib import cell, fmt, med, problems_md, read_problems

E = os.environ
results_path, section_path = sys.argv[1], sys.argv[2]
rounds, routes = int(E["T_ROUNDS"]), int(E["T_ROUTES"])
runs = list(csv.DictReader(open(E["T_RUNS_CSV"])))
problems = read_problems(E["T_PROBLEMS"])
target = float(E["T_TARGET_PCT"])
names = {"single": "1 route", "many": f"{routes} routes"}


def series(config, field):
    return [float(r[field]) for r in runs if r["config"] == config and r["status"] == "ok"]


L = []
w = L.append
w("<!-- routes:begin -->")
w(f"## Route-table cost: {routes} routes vs 1 route ({E['T_DATE']})")
w("")
w(f"Generated by `test/bench/routes.sh` on {E['T_DATE']}. Benchmark time {E['T_BENCH_SECONDS']} s "
  f"(plus {E['T_BUILD_SECONDS']} s build). `test/bench/run.sh` keeps this section when it rewrites "
  "the rest of the file.")
if E["T_QUICK"] == "1":
    w("")
    w("**Quick run (`--quick`): smoke-test numbers, not quotable.**")
w("")
mem_gib = int(E["T_MEM_KIB"]) / 1024 / 1024
w(f"- Machine: {E['T_NPROC']} CPUs (`nproc`), {E['T_CPU']}, {mem_gib:.1f} GiB; {E['T_KERNEL']}; "
  f"{E['T_OS']}. Load average (1, 5, 15 min) before: {E['T_LOAD_BEFORE']}; after: "
  f"{E['T_LOAD_AFTER']}. wrk, meshbox and the two backends share the CPUs with whatever else "
  "runs on the machine (here: other developers' builds and tests when the load average is above "
  "about 2): compare the two configs within one run, not across runs.")
w(f"- Versions: {E['T_MESHBOX_VERSION'] or 'meshbox'} (`{E['T_MESHBOX_BIN']}`, git {E['T_COMMIT']}); "
  f"{E['T_NGINX']}; {E['T_WRK']}.")
w(f"- meshbox: `meshbox run mesh.toml --workers 1 --log-level warn --no-watch`: one gateway on "
  "127.0.0.1, one virtual service (`hosts = [\"*\"]`), the service `backend` with two workloads "
  "(v1, v2), a destination rule with both subsets. Backends: two nginx (`worker_processes 1`, "
  "`return 200 \"hello\\n\"`), one per subset.")
w(f"- **1 route**: the virtual service has one route: `uri prefix /api/` and header "
  "`x-tenant: tenant-0` → v1 50 %, v2 50 %.")
w(f"- **{routes} routes**: {routes - 2} routes that the request fails first, in turn a uri prefix "
  "sharing `/api/v1/` with it (`/api/v1/service-N/`), an exact uri or a second prefix "
  "(`/api/v1/items/N/reviews`, `/api/v2/service-N/`), and the header `x-tenant` with another value "
  f"(`tenant-N`), each with its own weighted v1/v2 split; then the same matching route as "
  f"above (number {routes - 1}); then a catch-all `direct_response` 404. Before measuring, the "
  "script checks that the request is answered by the matching route (which sets a response "
  "header `x-route: items`) and a backend (`hello`), and that a request to `/other` gets the "
  "catch-all's 404 (so the whole table is live).")
w(f"- Load: `wrk -t1 -c{E['T_CONNS']} -d{E['T_DURATION']}s --latency -H '{E['T_HEADER']}' "
  f"http://127.0.0.1:PORT{E['T_PATH']}` after a {E['T_WARMUP']} s warm-up, meshbox started fresh "
  f"for every run. Rounds: {rounds}, interleaved, alternating which config goes first "
  "(1 route, then the table; then the other way round; …). Figures are medians across rounds, "
  "per-round values in small print.")
w("- meshbox CPU µs/request: utime+stime of the meshbox process over the measured run divided "
  "by wrk's requests; backends: the same for both nginx together.")
w("")


def busy(c):
    """per round: the share of one core meshbox used during the run, in percent"""
    return [float(r["rps"]) * float(r["meshbox_cpu_us_per_req"]) / 1e4
            for r in runs if r["config"] == c and r["status"] == "ok"]


w("| config | requests/s | p50 µs | p99 µs | meshbox CPU µs/req | meshbox busy, % of a core | backends CPU µs/req | ok runs |")
w("|---|---:|---:|---:|---:|---:|---:|---:|")
for c in ("single", "many"):
    n = sum(1 for r in runs if r["config"] == c and r["status"] == "ok")
    w(f"| {names[c]} | {cell(series(c, 'rps'))} | {cell(series(c, 'p50_us'))} | "
      f"{cell(series(c, 'p99_us'))} | {cell(series(c, 'meshbox_cpu_us_per_req'), 2)} | "
      f"{cell(busy(c))} | {cell(series(c, 'backend_cpu_us_per_req'), 2)} | {n}/{rounds} |")
w("")
rs, rm = med(series("single", "rps")), med(series("many", "rps"))
cs, cm = med(series("single", "meshbox_cpu_us_per_req")), med(series("many", "meshbox_cpu_us_per_req"))
if rs and rm:
    ratio = rm / rs
    met = ratio >= 1 - target / 100
    per_round = []
    for r in range(1, rounds + 1):
        a = [float(x["rps"]) for x in runs if x["round"] == str(r) and x["config"] == "single" and x["status"] == "ok"]
        b = [float(x["rps"]) for x in runs if x["round"] == str(r) and x["config"] == "many" and x["status"] == "ok"]
        if a and b:
            per_round.append(f"{b[0] / a[0]:.3f}")
    s = (f"**Result.** {routes} routes: {fmt(rm)} requests/s, 1 route: {fmt(rs)} requests/s; "
         f"ratio **{ratio:.3f}** ({(ratio - 1) * 100:+.1f} %)")
    if len(per_round) > 1:
        s += f" (per round: {', '.join(per_round)})"
    s += (f". Target: the {routes}-route table within {target:g} % of the single route, i.e. a "
          f"ratio ≥ {1 - target / 100:.2f}: **{'met' if met else 'MISSED'}**.")
    spread = [float(x) for x in per_round]
    if len(spread) > 1 and max(spread) - min(spread) > 2 * target / 100:
        s += (f" But the rounds disagree by {(max(spread) - min(spread)) * 100:.0f} points: the "
              f"machine was too busy for requests/s to resolve a {target:g} % difference, so this "
              "verdict is noise; meshbox's CPU per request, next, is the measure to go by.")
    if cs and cm:
        cap = cs / cm
        b = med(busy("single") + busy("many"))
        s += (f" meshbox's CPU per request: {cm:.2f} µs with {routes} routes vs {cs:.2f} µs with 1 "
              f"({(cm / cs - 1) * 100:+.1f} %, about {(cm - cs) * 1000 / max(routes - 2, 1):.0f} ns "
              "per route that fails to match).")
        if b is not None and b < 90:
            s += (f" meshbox kept its core only about {b:.0f} % busy: requests/s also depend on "
                  "the rest of the machine (wrk, the backends and everything else on the CPUs), so "
                  "their ratio mixes the table's cost with the other processes' share of the CPUs.")
        s += (f" Where meshbox is the bottleneck, a worker's capacity goes as 1 / CPU per request: "
              f"the {routes}-route table would serve {cap:.3f}× the single route's requests/s "
              f"({(cap - 1) * 100:+.1f} %), which is **{'within' if cap >= 1 - target / 100 else 'outside'}** "
              f"the {target:g} % target.")
    w(s)
else:
    w("**Result.** Not measured: no successful run of one of the configs (see Problems).")
w("")
irs, irm = int(E["T_IR_SINGLE"]), int(E["T_IR_MANY"])
if E["T_INSTRUCTIONS"] == "1":
    t = (f"**Instructions per request**, which other work on the machine does not change: meshbox "
         f"under `valgrind --tool=callgrind` (all threads, user space only), counters zeroed after "
         f"{int(E['T_IR_WARMUP']):,} requests, then {int(E['T_IR_REQUESTS']):,} sequential "
         "requests on one keep-alive connection (each checked: 200, the backend's `hello`). ")
    if irs > 0 and irm > 0:
        t += (f"1 route: **{irs:,}**, {routes} routes: **{irm:,}** instructions per request "
              f"({(irm / irs - 1) * 100:+.1f} %, {(irm - irs) / max(routes - 2, 1):.0f} per route "
              "that fails to match). This is the router's work, exactly; it is not a capacity "
              "ratio, since the kernel's share of a request (most of its CPU time, see the CPU "
              "column) is not in it.")
    else:
        t += "Not measured: see Problems."
    w(t)
    w("")
w("Raw output: `test/bench/out/routes/` (`runs.csv`, each run's `mesh.toml`, wrk's output, "
  "meshbox's log, `callgrind.out.single` and `callgrind.out.many` for `callgrind_annotate`).")
w("")
L += problems_md(problems, "None: every run of both configs passed its checks, with no socket "
                 "errors, no non-2xx responses and nothing in meshbox's log.")
w("<!-- routes:end -->")
section = "\n".join(L) + "\n"
open(section_path, "w").write(section)

PY
finish_section routes
