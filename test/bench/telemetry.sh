#!/usr/bin/env bash
# What telemetry costs on the mesh path: metrics, access logs and tracing (1 % sampling) all on
# against all off, on meshbox's path client → gateway → mTLS (PERMISSIVE, auto mTLS) → sidecar
# → app (an nginx "hello"), as mtls.sh's meshbox-plain but with the default mTLS.
#
#   test/bench/telemetry.sh              16 rounds of 3 s wrk slices per config (~4 min + build)
#   test/bench/telemetry.sh --quick      1 round of 2 s slices (smoke test; numbers not quotable)
#   test/bench/telemetry.sh --help       all options
#
# Configs (two `meshbox run --workers 2`, each with its own app, both started once and up for
# the whole benchmark; only the one under load does any work):
#   off  [mesh] enable_metrics = false, enable_tracing = false, no access_log_file
#   on   [mesh] enable_metrics = true, access_log_file = a file in the run's directory (JSON),
#        tracing_sampling = 1.0 % to zipkin_address = a local collector (an nginx answering 202
#        to POST /api/v2/spans)
# A round loads one config then the other, back to back (which goes first alternates): a
# saturation slice (wrk -c50) and a low-load slice (wrk -c1), each after a warm-up, giving
# requests/s, p50/p99 and meshbox's CPU µs per request (utime+stime of its own process, not
# the app it runs). On this VM meshbox's CPU per request moves by up to a half for seconds at
# a time with nothing changed (the host; placement on the two CPUs): slices seconds apart
# mostly share one state, so the verdict is the median of the rounds' paired on/off ratios. Target (issue 7): telemetry all on costs ≤ 10 %
# of requests/s at saturation (on/off ≥ 0.90). The on config must show that it recorded
# (istio_requests_total > 0 on /stats/prometheus, the access log grew in every slice, span
# batches at the collector); the off config none of these.
# Replaces the section between <!-- telemetry:begin --> and <!-- telemetry:end --> in
# test/bench/RESULTS.md; raw numbers in test/bench/out/telemetry/ (gitignored).
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$BENCH_DIR/../.." && pwd)
OUT_DIR=$BENCH_DIR/out/telemetry
RESULTS=$BENCH_DIR/RESULTS.md
RELEASE_DIR=$REPO/build-release
LOG_TAG=telemetry
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$BENCH_DIR/lib.sh"

# ---------------------------------------------------------------- options
ROUNDS=16
DURATION=3
LOW_DURATION=2
WARMUP=1
CONNS=50
WORKERS=2
SAMPLING=1.0   # tracing percentage when on
TARGET_PCT=10  # telemetry on may cost at most this much of the requests/s
MESHBOX_BIN=""
QUICK=0
ROUNDS_SET=0
DURATION_SET=0

usage() {
  cat <<EOF
usage: $0 [options]
  --rounds N       rounds (default $ROUNDS), alternating which config goes first
  --duration S     seconds of each measured saturation slice (default $DURATION; low load: $LOW_DURATION)
  --results PATH   the file whose telemetry section is replaced (default test/bench/RESULTS.md)
  --sampling PCT   tracing_sampling of the on config (default $SAMPLING; 0 fails the span check)
  --quick          1 round of 2 s runs, 1 s warm-ups (smoke test; numbers not quotable)
  --meshbox PATH   use this meshbox binary instead of building $RELEASE_DIR
  -h, --help       this help
EOF
}

while (($#)); do
  case $1 in
    --sampling) SAMPLING=${2:?--sampling needs a percentage}; shift 2 ;;
    *) bench_opt "$@"; shift "$OPT_SHIFT" ;;
  esac
done
apply_quick 2
((QUICK == 0)) || LOW_DURATION=1
need_posint --rounds "$ROUNDS"
need_posint --duration "$DURATION"
if ! [[ $SAMPLING =~ ^[0-9]+(\.[0-9]+)?$ ]] || ! awk -v p="$SAMPLING" 'BEGIN { exit !(p <= 100) }'; then
  echo "--sampling must be a percentage from 0 to 100" >&2; exit 2
fi

START_EPOCH=$(date +%s)
install_traps

ensure_tools() {
  local missing
  missing=$(missing_tools wrk:wrk nginx:nginx-light curl:curl python3:python3 getconf:libc-bin)
  [[ -n $MESHBOX_BIN ]] || missing+=" $(missing_build_deps)"
  # shellcheck disable=SC2086 # one package per word
  [[ -z ${missing//[[:space:]]/} ]] || apt_install $missing
}

# ---------------------------------------------------------------- the span collector
# An nginx that answers 202 to POST /api/v2/spans and logs each POST (one line a batch).
COLLECTOR_PORT=""
COLLECTOR_LOG=""
# shellcheck disable=SC2034 # set by start_nginx (stopped on exit with the other started processes)
COLLECTOR_PID=""
start_collector() {
  local prefix=$TMP/collector
  read -r COLLECTOR_PORT < <(free_ports 1)
  COLLECTOR_LOG=$prefix/spans.log
  mkdir -p "$prefix"
  {
    nginx_common "$prefix"
    echo "http {"
    nginx_http_common "$prefix"
    cat <<EOF
    client_max_body_size 16m;
    server {
        listen 127.0.0.1:$COLLECTOR_PORT;
        location = /api/v2/spans {
            access_log $COLLECTOR_LOG;
            return 202;
        }
        location / {
            return 200 "hello\n";
        }
    }
}
EOF
  } >"$prefix/nginx.conf"
  start_nginx "$prefix" "$COLLECTOR_PORT" COLLECTOR_PID collector
}

span_batches() {   # POSTs the collector has answered so far
  local n=0
  [[ ! -f $COLLECTOR_LOG ]] || n=$(grep -c 'POST /api/v2/spans' "$COLLECTOR_LOG" || true)
  echo "$n"
}

# ---------------------------------------------------------------- meshbox
# One meshbox per config, both up for the whole benchmark: MPID[c], ADMIN[c], GW[c], DIR[c],
# and E0[c], the size of its stderr once it served (what it logs after that is a problem).
declare -A MPID=() ADMIN=() GW=() DIR=() E0=()

start_meshbox() {   # CONFIG (off|on)
  local config=$1 dir=$TMP/$1 telemetry port
  mkdir -p "$dir"
  read -r port < <(free_ports 1)
  if [[ $config == on ]]; then
    telemetry="enable_metrics = true
access_log_file = \"$dir/access.log\"
enable_tracing = true
tracing_sampling = $SAMPLING
zipkin_address = \"127.0.0.1:$COLLECTOR_PORT\""
  else
    telemetry="enable_metrics = false
enable_tracing = false"
  fi
  {
    printf '[mesh]\n%s\n\n' "$telemetry"
    hello_mesh "$dir" "$port"
  } >"$dir/mesh.toml"
  cp "$dir/mesh.toml" "$OUT_DIR/$config-mesh.toml"
  local mpid
  run_bg mpid "$MESHBOX_BIN" run "$dir/mesh.toml" --state-dir "$dir/state" --admin 127.0.0.1:0 \
    --ready-file "$dir/ready" --workers "$WORKERS" --log-level warn --no-watch \
    >"$dir/stdout.log" 2>"$dir/stderr.log"
  wait_file "$dir/ready" "$mpid" 10 || die "meshbox ($config) did not start: $(tail -3 "$dir/stderr.log")"
  wait_http "$port" "$mpid" "meshbox gateway ($config)" || die "meshbox ($config) does not serve"
  MPID[$config]=$mpid
  ADMIN[$config]=$(awk '$1 == "admin" { print $2; exit }' "$dir/ready")
  GW[$config]=$port
  DIR[$config]=$dir
  # What meshbox logs once it serves counts (before, the app may still be starting: "no endpoint").
  E0[$config]=$(file_size "$dir/stderr.log")
}

requests_total() {   # CONFIG: the sum of istio_requests_total on /stats/prometheus ("" if unreadable)
  curl -fsS --max-time 5 "http://${ADMIN[$1]}/stats/prometheus" 2>/dev/null \
    | awk '$1 ~ /^istio_requests_total(\{|$)/ { s += $NF } END { printf "%.0f\n", s }' || true
}

file_size() { stat -c %s "$1" 2>/dev/null || echo 0; }

# ---------------------------------------------------------------- one slice
RUNS_CSV=""
declare -a PROBLEMS=()

# slice ROUND CONFIG LOAD CONNS SECONDS: a warm-up, then the measured wrk run; one CSV row
slice() {
  local round=$1 config=$2 load=$3 conns=$4 secs=$5 raw=$OUT_DIR/r$1-$2-$3 rc=0
  local url=http://127.0.0.1:${GW[$config]}/ dir=${DIR[$config]} pid=${MPID[$config]}
  WHY=""
  wrk -t1 "-c$conns" "-d${WARMUP}s" "$url" >"$raw-warmup.txt" 2>&1 || true
  local c0 c1 log0 log1
  log0=$(file_size "$dir/access.log")
  c0=$(self_ticks "$pid")
  wrk -t1 "-c$conns" "-d${secs}s" --latency "$url" >"$raw-wrk.txt" 2>&1 || rc=$?
  c1=$(self_ticks "$pid")
  log1=$(file_size "$dir/access.log")
  wrk_check "$raw" "$rc"
  kill -0 "$pid" 2>/dev/null || die "meshbox ($config) died during round $round: $(tail -3 "$dir/stderr.log")"
  local cpu=-1
  if [[ $W_REQ != -1 ]] && ((${W_REQ%.*} > 0)); then
    cpu=$(per_req_us $((c1 - c0)) "$W_REQ")
  fi
  local grew=$((log1 - log0))
  if [[ $config == on ]]; then
    ((grew > 0)) || WHY+="the access log did not grow; "
    # Counted: delete it, so that its hundreds of MB are never written back to the disk
    # (dirty pages expire after 30 s) during a later slice. meshbox reopens it by its path.
    rm -f "$dir/access.log"
  else
    [[ ! -e $dir/access.log ]] || WHY+="an access log was written with telemetry off; "
  fi
  local status=ok
  [[ -z $WHY ]] || status=fail
  echo "$round,$config,$load,$W_REQ,$W_RPS,$W_P50,$W_P99,$W_MAX,$W_SERR,$W_NON2XX,$cpu,$grew,$status,$(csvq "$WHY")" >>"$RUNS_CSV"
  if [[ $status != ok ]]; then
    PROBLEMS+=("round $round, $config, $load: ${WHY%; }")
    log "  $config $load: FAILED (${WHY%; })"
  else
    log "$(printf '  %-3s %-10s %8.0f req/s  p50 %6.0f us  p99 %7.0f us  cpu %7s us/req  access log +%s B' \
      "$config" "$load" "$W_RPS" "$W_P50" "$W_P99" "$cpu" "$grew")"
  fi
}

# check_recorded CONFIG: after every round, what the config recorded (or must not have), and
# what its meshbox logged once it served. A failure leaves every slice of the config out of
# the medians.
check_recorded() {
  local config=$1 total batches=0 why="" deadline late dir=${DIR[$1]}
  total=$(requests_total "$config")
  if [[ $config == on ]]; then
    # A batch goes out within a second (the reporter's flush interval): wait up to 5 s.
    deadline=$((SECONDS + 5))
    batches=$(span_batches)
    while ((batches == 0 && SECONDS < deadline)); do
      sleep 0.1
      batches=$(span_batches)
    done
    [[ -n $total && $total != 0 ]] || why+="istio_requests_total is ${total:-unreadable} on /stats/prometheus; "
    ((batches > 0)) || why+="the collector got no span batch; "
  else
    # The off config has no zipkin_address: it cannot send spans; it must count nothing.
    [[ -z $total || $total == 0 ]] || why+="istio_requests_total is $total with metrics off; "
  fi
  late=$(tail -c "+$((${E0[$config]} + 1))" "$dir/stderr.log" | head -c 200 | tr '\n' ' ')
  [[ -z $late ]] || why+="meshbox logged warnings/errors: $late; "
  echo "$config,${total:-},$batches,$(csvq "$why")" >>"$CHECKS_CSV"
  if [[ -n $why ]]; then
    PROBLEMS+=("$config: ${why%; }")
    log "  $config: FAILED (${why%; })"
  else
    log "  $config: istio_requests_total ${total:-none}, $batches span batches at the collector"
  fi
  cp "$dir/stderr.log" "$OUT_DIR/$config-meshbox.log"
}

# ---------------------------------------------------------------- main
ensure_tools
CLK_TCK=$(getconf CLK_TCK)
mkdir -p "$OUT_DIR"
rm -f "$OUT_DIR"/r[0-9]*-* "$OUT_DIR"/o[nf]*-* "$OUT_DIR/runs.csv" "$OUT_DIR/checks.csv"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/meshbox-telemetry.XXXXXX")
chmod 755 "$TMP"   # nginx workers run as nobody when started by root
raise_fd_limit
t=$SECONDS
build_meshbox || die "$MESHBOX_MISSING"
BUILD_SECONDS=$((SECONDS - t))
start_collector
RUNS_CSV=$OUT_DIR/runs.csv
CHECKS_CSV=$OUT_DIR/checks.csv
echo "round,config,load,requests,rps,p50_us,p99_us,max_us,socket_errors,non2xx,cpu_us_per_req,access_log_bytes,status,note" >"$RUNS_CSV"
echo "config,istio_requests_total,span_batches,note" >"$CHECKS_CSV"
start_meshbox off
start_meshbox on
bench_began half
for ((round = 1; round <= ROUNDS; round++)); do
  # Alternate which config goes first: a drift within the round hits both alike.
  order=(off on)
  ((round % 2)) || order=(on off)
  log "round $round/$ROUNDS: ${order[0]}, ${order[1]}"
  for config in "${order[@]}"; do slice "$round" "$config" saturation "$CONNS" "$DURATION"; done
  for config in "${order[@]}"; do slice "$round" "$config" low 1 "$LOW_DURATION"; done
done
check_recorded off
check_recorded on
bench_ended "$OUT_DIR/problems.txt"

# ---------------------------------------------------------------- report
machine_env T
set -a
# shellcheck disable=SC2034
T_DATE=$(date -u '+%Y-%m-%d %H:%M UTC') T_ROUNDS=$ROUNDS T_DURATION=$DURATION T_LOW_DURATION=$LOW_DURATION \
  T_WARMUP=$WARMUP T_CONNS=$CONNS T_WORKERS=$WORKERS T_QUICK=$QUICK T_SAMPLING=$SAMPLING \
  T_TARGET_PCT=$TARGET_PCT T_MESHBOX_BIN="${MESHBOX_BIN#"$REPO"/}" \
  T_BUILD_SECONDS=$BUILD_SECONDS T_BENCH_SECONDS=$BENCH_SECONDS T_TOTAL_SECONDS=$TOTAL_SECONDS \
  T_RUNS_CSV=$RUNS_CSV T_CHECKS_CSV=$CHECKS_CSV T_PROBLEMS="$OUT_DIR/problems.txt" \
  T_LOAD_BEFORE="$LOAD_BEFORE" T_LOAD_AFTER="$LOAD_AFTER"
set +a
python3 - "$OUT_DIR/section.md" <<'PY'
import csv, os, sys

from benchlib import cell, med, problems_md, read_problems

E = os.environ
runs = list(csv.DictReader(open(E["T_RUNS_CSV"])))
checks = list(csv.DictReader(open(E["T_CHECKS_CSV"])))
problems = read_problems(E["T_PROBLEMS"])
target = float(E["T_TARGET_PCT"])
names = {"off": "all off", "on": f"all on (tracing {float(E['T_SAMPLING']):g} %)"}


# A config whose checks failed (it did not record, or recorded with telemetry off, or its
# meshbox logged something) counts for no load.
failed = {c["config"] for c in checks if c["note"]}


def ok(r):
    return r["status"] == "ok" and r["config"] not in failed


def series(config, load, field):
    return [float(r[field]) for r in runs if r["config"] == config and r["load"] == load and ok(r)]


def paired(load, field):
    """Each round's on/off ratio of `field`: its two slices ran back to back."""
    out = []
    for rnd in sorted({r["round"] for r in runs}, key=int):
        by = {c: [float(r[field]) for r in runs
                  if r["round"] == rnd and r["config"] == c and r["load"] == load and ok(r)]
              for c in ("off", "on")}
        if by["off"] and by["on"] and by["off"][0] > 0:
            out.append(by["on"][0] / by["off"][0])
    return out


L = []
w = L.append
w("<!-- telemetry:begin -->")
w(f"## Telemetry cost: metrics, access logs and tracing on vs off ({E['T_DATE']})")
w("")
w(f"Generated by `test/bench/telemetry.sh` (`./dev bench telemetry`). Benchmark time "
  f"{E['T_BENCH_SECONDS']} s (plus {E['T_BUILD_SECONDS']} s build).")
if E["T_QUICK"] == "1":
    w("")
    w("**Quick run (`--quick`): smoke-test numbers, not quotable.**")
w("")
mem_gib = int(E["T_MEM_KIB"]) / 1024 / 1024
w(f"- Machine: {E['T_NPROC']} CPUs, {E['T_CPU']}, {mem_gib:.1f} GiB; {E['T_KERNEL']}; {E['T_OS']}. "
  f"Load average before: {E['T_LOAD_BEFORE']}; after: {E['T_LOAD_AFTER']}.")
w(f"- Versions: meshbox git {E['T_COMMIT']} (`{E['T_MESHBOX_BIN']}`); {E['T_NGINX']}; {E['T_WRK']}.")
w(f"- Path: wrk → gateway → mesh mTLS (PERMISSIVE, auto mTLS) → the workload's sidecar → its app "
  f"(nginx \"hello\"). Two `meshbox run --workers {E['T_WORKERS']}`, one per config, each with "
  "its own app, both up for the whole benchmark (only the one under load works).")
w("- **all off**: `[mesh] enable_metrics = false`, `enable_tracing = false`, no "
  "`access_log_file`. **all on**: `enable_metrics = true`, `access_log_file` (JSON, a file), "
  f"`tracing_sampling = {float(E['T_SAMPLING']):g}` to `zipkin_address` = a local collector (nginx "
  "answering 202 to `POST /api/v2/spans`). The on config is checked to have recorded "
  "(`istio_requests_total` > 0 on `/stats/prometheus`, the access log grew in every slice, span "
  "batches at the collector), the off config to have recorded nothing.")
w(f"- Load: {E['T_ROUNDS']} rounds; in each, a saturation slice `wrk -t1 -c{E['T_CONNS']} "
  f"-d{E['T_DURATION']}s --latency` of one config then of the other, then a low-load slice "
  f"`-c1 -d{E['T_LOW_DURATION']}s` of each, every slice after a {E['T_WARMUP']} s warm-up; which "
  "config goes first alternates. CPU µs/request: utime+stime of meshbox's process (not its "
  "app) over the slice / requests. Medians, per-round values in small print.")
w("- Verdict: the median of the rounds' paired on/off ratios. On this VM meshbox's CPU per "
  "request moves by up to a half for seconds at a time with nothing changed (the host; where "
  "the scheduler puts wrk, the app and meshbox's busy worker): a round's two slices, seconds "
  "apart, mostly share one state, so their ratio cancels it where a ratio of the two configs' "
  "medians would not. See test/bench/README.md.")
w("")
for load in ("saturation", "low"):
    w(f"**{'Saturation' if load == 'saturation' else 'Low load (1 connection)'}**")
    w("")
    w("| telemetry | requests/s | p50 µs | p99 µs | meshbox CPU µs/req |")
    w("|---|---:|---:|---:|---:|")
    for c in ("off", "on"):
        w(f"| {names[c]} | {cell(series(c, load, 'rps'))} | {cell(series(c, load, 'p50_us'))} | "
          f"{cell(series(c, load, 'p99_us'))} | {cell(series(c, load, 'cpu_us_per_req'), 2)} |")
    w("")

sat = paired("saturation", "rps")
if sat:
    r = med(sat)
    met = r >= 1 - target / 100
    s = (f"**Target** (issue 7: telemetry all on costs ≤ {target:g} % of requests/s): at saturation "
         f"on/off requests/s = **{r:.3f}** ({(1 - r) * 100:+.1f} % cost; the median of "
         f"{len(sat)} rounds' ratios): **{'met' if met else 'MISSED'}**.")
    cpu = paired("saturation", "cpu_us_per_req")
    if cpu:
        s += f" CPU µs/request on/off = {med(cpu):.3f}."
    low, lcpu = paired("low", "rps"), paired("low", "cpu_us_per_req")
    if low:
        s += f" Low load: requests/s on/off = {med(low):.3f}" + (f", CPU on/off = {med(lcpu):.3f}." if lcpu else ".")
    w(s)
    w("")
    w("Per round, saturation requests/s on/off: " + " · ".join(f"{p:.3f}" for p in sat)
      + f"; CPU µs/request on/off: " + " · ".join(f"{p:.3f}" for p in cpu) + ".")
    off, on = med(series("off", "saturation", "rps")), med(series("on", "saturation", "rps"))
    if off and on:
        w(f"The ratio of the two configs' median requests/s, which the slow spells move "
          f"more: {on / off:.3f}.")
else:
    w("**Target** not measured: no successful round of both configs (see Problems).")
w("")
rec = [f"{c['config']}: istio_requests_total {c['istio_requests_total'] or 'absent'}, "
       f"{c['span_batches']} span batches" for c in checks]
if rec:
    w("Recorded: " + "; ".join(rec) + ".")
    w("")
w("Raw output: `test/bench/out/telemetry/` (`runs.csv`, `checks.csv`, each config's `mesh.toml` "
  "and meshbox log, every slice's wrk output).")
w("")
L += problems_md(problems, "None: every slice passed its checks (no socket errors, no non-2xx), "
                 "neither meshbox logged anything, the on config recorded and the off config did not.")
w("<!-- telemetry:end -->")
open(sys.argv[1], "w").write("\n".join(L) + "\n")
PY
finish_section telemetry
