#!/usr/bin/env bash
# What telemetry costs on the mesh path: metrics, access logs and tracing (1 % sampling) all on
# against all off, on meshbox's path client → gateway → mTLS (PERMISSIVE, auto mTLS) → sidecar
# → app (an nginx "hello"), as mtls.sh's meshbox-plain but with the default mTLS.
#
#   test/bench/telemetry.sh              5 interleaved rounds of 5 s wrk runs (~2.5 min + build)
#   test/bench/telemetry.sh --quick      1 round of 2 s runs (smoke test; numbers not quotable)
#   test/bench/telemetry.sh --help       all options
#
# Configs (meshbox started fresh for every run, `--workers 2`):
#   off  [mesh] enable_metrics = false, enable_tracing = false, no access_log_file
#   on   [mesh] enable_metrics = true, access_log_file = a file in the run's directory (JSON),
#        tracing_sampling = 1.0 % to zipkin_address = a local collector (an nginx answering 202
#        to POST /api/v2/spans)
# Saturation (wrk -c50) and low load (wrk -c1), each after a warm-up: requests/s, p50/p99 and
# meshbox's CPU µs per request (utime+stime of its own process, not the app it runs). Target
# (issue 7): telemetry all on costs ≤ 10 % of requests/s at saturation (on/off ≥ 0.90). Each
# on run must show that it recorded: istio_requests_total > 0 on /stats/prometheus, a grown
# access log and span batches at the collector; each off run none of these.
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
ROUNDS=5
DURATION=5
WARMUP=2
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
  --rounds N       interleaved rounds (default $ROUNDS), alternating which config goes first
  --duration S     seconds per measured wrk run (default $DURATION)
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
MPID=""
MESH_ADMIN=""
GW_PORT=""

start_meshbox() {   # DIR CONFIG (off|on)
  local dir=$1 config=$2 telemetry
  read -r GW_PORT < <(free_ports 1)
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
    hello_mesh "$dir" "$GW_PORT"
  } >"$dir/mesh.toml"
  run_bg MPID "$MESHBOX_BIN" run "$dir/mesh.toml" --state-dir "$dir/state" --admin 127.0.0.1:0 \
    --ready-file "$dir/ready" --workers "$WORKERS" --log-level warn --no-watch \
    >"$dir/stdout.log" 2>"$dir/stderr.log"
  wait_file "$dir/ready" "$MPID" 10 || return 1
  MESH_ADMIN=$(awk '$1 == "admin" { print $2; exit }' "$dir/ready")
  wait_http "$GW_PORT" "$MPID" "meshbox gateway"
}

requests_total() {   # the sum of istio_requests_total on /stats/prometheus ("" if unreadable)
  curl -fsS --max-time 5 "http://$MESH_ADMIN/stats/prometheus" 2>/dev/null \
    | awk '$1 ~ /^istio_requests_total(\{|$)/ { s += $NF } END { printf "%.0f\n", s }' || true
}

file_size() { stat -c %s "$1" 2>/dev/null || echo 0; }

# ---------------------------------------------------------------- one measurement
RUNS_CSV=""
declare -a PROBLEMS=()

# run_load ROUND CONFIG LOAD CONNS DIR: a warm-up, then the measured wrk run; one CSV row
run_load() {
  local round=$1 config=$2 load=$3 conns=$4 dir=$5 raw=$OUT_DIR/r$1-$2-$3 rc=0
  local url=http://127.0.0.1:$GW_PORT/
  WHY=""
  wrk -t1 "-c$conns" "-d${WARMUP}s" "$url" >"$raw-warmup.txt" 2>&1 || true
  local c0 c1 log0 log1
  log0=$(file_size "$dir/access.log")
  c0=$(self_ticks "$MPID")
  wrk -t1 "-c$conns" "-d${DURATION}s" --latency "$url" >"$raw-wrk.txt" 2>&1 || rc=$?
  c1=$(self_ticks "$MPID")
  log1=$(file_size "$dir/access.log")
  wrk_check "$raw" "$rc"
  kill -0 "$MPID" 2>/dev/null || WHY+="meshbox died during the run; "
  local cpu=-1
  if [[ $W_REQ != -1 ]] && ((${W_REQ%.*} > 0)); then
    cpu=$(per_req_us $((c1 - c0)) "$W_REQ")
  fi
  local grew=$((log1 - log0))
  if [[ $config == on ]]; then
    ((grew > 0)) || WHY+="the access log did not grow; "
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

# check_recorded ROUND CONFIG B0 DIR E0: after both loads, what the run recorded (or must not
# have), and what meshbox logged after byte E0 of its stderr. A failure leaves the config's
# runs of this round out of the medians.
check_recorded() {
  local round=$1 config=$2 b0=$3 dir=$4 e0=$5 total batches why="" deadline late
  total=$(requests_total)
  # A batch goes out within a second (the reporter's flush interval): wait up to 5 s.
  deadline=$((SECONDS + 5))
  batches=$(($(span_batches) - b0))
  while [[ $config == on ]] && ((batches == 0 && SECONDS < deadline)); do
    sleep 0.1
    batches=$(($(span_batches) - b0))
  done
  if [[ $config == on ]]; then
    [[ -n $total && $total != 0 ]] || why+="istio_requests_total is ${total:-unreadable} on /stats/prometheus; "
    ((batches > 0)) || why+="the collector got no span batch; "
  else
    [[ -z $total || $total == 0 ]] || why+="istio_requests_total is $total with metrics off; "
    ((batches == 0)) || why+="the collector got $batches span batches with tracing off; "
  fi
  late=$(tail -c "+$((e0 + 1))" "$dir/stderr.log" | head -c 200 | tr '\n' ' ')
  [[ -z $late ]] || why+="meshbox logged warnings/errors: $late; "
  echo "$round,$config,${total:-},$batches,$(csvq "$why")" >>"$CHECKS_CSV"
  if [[ -n $why ]]; then
    PROBLEMS+=("round $round, $config: ${why%; }")
    log "  $config: FAILED (${why%; })"
  else
    log "  $config: istio_requests_total ${total:-none}, $batches span batches at the collector"
  fi
}

measure() {   # ROUND CONFIG
  local round=$1 config=$2 dir=$TMP/r$1-$2 b0 e0
  mkdir -p "$dir"
  b0=$(span_batches)
  if start_meshbox "$dir" "$config"; then
    cp "$dir/mesh.toml" "$OUT_DIR/r$round-$config-mesh.toml"
    # What meshbox logs once it serves counts (before, the app may still be starting: "no endpoint").
    e0=$(file_size "$dir/stderr.log")
    run_load "$round" "$config" saturation "$CONNS" "$dir"
    run_load "$round" "$config" low 1 "$dir"
    check_recorded "$round" "$config" "$b0" "$dir" "$e0"
    # The log's bytes are counted: delete it now, so that the kernel's writeback of this
    # run's hundreds of MB (dirty pages expire after 30 s) does not land in a later run.
    rm -f "$dir/access.log"
  else
    PROBLEMS+=("round $round, $config: did not start: $(tail -3 "$dir/stderr.log" | tr '\n' ' ')")
    log "  $config: FAILED to start"
  fi
  [[ ! -f $dir/stderr.log ]] || cp "$dir/stderr.log" "$OUT_DIR/r$round-$config-meshbox.log"
  forget_pid "$MPID"
  MPID=""
}

# ---------------------------------------------------------------- main
ensure_tools
CLK_TCK=$(getconf CLK_TCK)
mkdir -p "$OUT_DIR"
rm -f "$OUT_DIR"/r[0-9]*-* "$OUT_DIR/runs.csv" "$OUT_DIR/checks.csv"
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
echo "round,config,istio_requests_total,span_batches,note" >"$CHECKS_CSV"
bench_began half
for ((round = 1; round <= ROUNDS; round++)); do
  # Alternate which config goes first: drift over time hits both alike.
  order=(off on)
  ((round % 2)) || order=(on off)
  for config in "${order[@]}"; do
    log "round $round/$ROUNDS: telemetry $config"
    measure "$round" "$config"
  done
done
bench_ended "$OUT_DIR/problems.txt"

# ---------------------------------------------------------------- report
machine_env T
set -a
# shellcheck disable=SC2034
T_DATE=$(date -u '+%Y-%m-%d %H:%M UTC') T_ROUNDS=$ROUNDS T_DURATION=$DURATION \
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


# A round whose checks failed (it did not record, or recorded with telemetry off, or meshbox
# logged something) counts for neither load.
failed = {(c["round"], c["config"]) for c in checks if c["note"]}


def series(config, load, field):
    return [float(r[field]) for r in runs
            if r["config"] == config and r["load"] == load and r["status"] == "ok"
            and (r["round"], config) not in failed]


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
  f"(nginx \"hello\"), one `meshbox run --workers {E['T_WORKERS']}` started fresh for every run.")
w("- **all off**: `[mesh] enable_metrics = false`, `enable_tracing = false`, no "
  "`access_log_file`. **all on**: `enable_metrics = true`, `access_log_file` (JSON, a file), "
  f"`tracing_sampling = {float(E['T_SAMPLING']):g}` to `zipkin_address` = a local collector (nginx "
  "answering 202 to `POST /api/v2/spans`). Every on run is checked to have recorded "
  "(`istio_requests_total` > 0 on `/stats/prometheus`, the access log grew, span batches at "
  "the collector), every off run to have recorded nothing.")
w(f"- Load: saturation `wrk -t1 -c{E['T_CONNS']} -d{E['T_DURATION']}s --latency`, low load "
  f"`-c1`, each after a {E['T_WARMUP']} s warm-up; {E['T_ROUNDS']} rounds, alternating which "
  "config goes first. CPU µs/request: utime+stime of meshbox's process (not its app) over the "
  "run / requests. Medians, per-round values in small print.")
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

ratios = {}
for load in ("saturation", "low"):
    off, on = med(series("off", load, "rps")), med(series("on", load, "rps"))
    coff, con = med(series("off", load, "cpu_us_per_req")), med(series("on", load, "cpu_us_per_req"))
    if off and on:
        ratios[load] = (on / off, con / coff if coff and con else None)
if "saturation" in ratios:
    r, cr = ratios["saturation"]
    met = r >= 1 - target / 100
    s = (f"**Target** (issue 7: telemetry all on costs ≤ {target:g} % of requests/s): at saturation "
         f"on/off requests/s = **{r:.3f}** ({(1 - r) * 100:+.1f} % cost): **{'met' if met else 'MISSED'}**.")
    if cr:
        s += f" CPU µs/request on/off = {cr:.2f}."
    if "low" in ratios:
        lr, lcr = ratios["low"]
        s += f" Low load: requests/s on/off = {lr:.3f}" + (f", CPU on/off = {lcr:.2f}." if lcr else ".")
    w(s)
    # The two runs of a round are back to back: their ratio cancels drift between rounds.
    paired = []
    for rnd in sorted({r["round"] for r in runs}, key=int):
        by = {c: [float(r["rps"]) for r in runs if r["round"] == rnd and r["config"] == c
                  and r["load"] == "saturation" and r["status"] == "ok" and (rnd, c) not in failed]
              for c in ("off", "on")}
        if by["off"] and by["on"]:
            paired.append(by["on"][0] / by["off"][0])
    if paired:
        w("")
        w("Per round (its two runs back to back), saturation requests/s on/off: "
          + " · ".join(f"{p:.3f}" for p in paired) + f" (median {med(paired):.3f}).")
else:
    w("**Target** not measured: no successful run of one of the configs (see Problems).")
w("")
rec = [f"round {c['round']} {c['config']}: istio_requests_total {c['istio_requests_total'] or 'absent'}, "
       f"{c['span_batches']} span batches" for c in checks]
if rec:
    w("Recorded: " + "; ".join(rec) + ".")
    w("")
w("Raw output: `test/bench/out/telemetry/` (`runs.csv`, `checks.csv`, each run's `mesh.toml`, "
  "wrk's output, meshbox's logs).")
w("")
L += problems_md(problems, "None: every run passed its checks (no socket errors, no non-2xx, "
                 "meshbox logged nothing, on runs recorded and off runs did not).")
w("<!-- telemetry:end -->")
open(sys.argv[1], "w").write("\n".join(L) + "\n")
PY
finish_section telemetry
