#!/usr/bin/env bash
# A multi-node mesh on etcd (issue 8): how fast a config change reaches another node, and what
# a node pays for a large registry.
#
#   test/bench/multinode.sh              50 applies; 1,000 services x 10 endpoints (~1 min + build)
#   test/bench/multinode.sh --quick      10 applies; 100 services x 10 endpoints (smoke test)
#   test/bench/multinode.sh --help       all options
#
# Starts its own etcd (Debian's etcd-server) on 127.0.0.1 with a temporary data dir, then:
#   1. apply → serve: node a (a gateway, a virtual service and the service `backend`, an nginx
#      "hello") and node b (no file), each `meshbox run --store etcd://… --workers 1` on its
#      own loopback address. N times `meshbox apply` against node b of a new virtual service
#      (a new host name through a's gateway); multinode.py measures from the start of the
#      command until node a's gateway serves that host (a persistent connection polled every
#      ~1 ms), and until the command returns; p50, p99, max.
#   2. registry scale: S `service` resources and S x E endpoints of a fake node (under a lease
#      kept alive) written straight into etcd; then a node started on it (`--workers 1`, then
#      the default workers): the time from its start to its first snapshot holding every
#      service's cluster with all its endpoints, and its memory (VmRSS, VmHWM) once settled.
#      The same services and endpoints from one file on the embedded store, for comparison.
# Replaces the section between <!-- multinode:begin --> and <!-- multinode:end --> in
# test/bench/RESULTS.md; raw numbers in test/bench/out/multinode/ (gitignored). Only loopback
# traffic (127.0.0.0/8); everything it starts is stopped on exit, Ctrl-C or failure.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$BENCH_DIR/../.." && pwd)
OUT_DIR=$BENCH_DIR/out/multinode
RESULTS=$BENCH_DIR/RESULTS.md
RELEASE_DIR=$REPO/build-release
LOG_TAG=multinode
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$BENCH_DIR/lib.sh"

# ---------------------------------------------------------------- options
APPLIES=50
SERVICES=1000
ENDPOINTS=10
NET=127.0.88   # the nodes' addresses: NET.2 (a), NET.3 (b), NET.4 (scale), NET.9 (fake node)
MESHBOX_BIN=""
QUICK=0
APPLIES_SET=0
SERVICES_SET=0

usage() {
  cat <<EOF
usage: $0 [options]
  --applies N      applies measured in part 1 (default $APPLIES)
  --services N     services loaded into etcd in part 2 (default $SERVICES)
  --endpoints N    endpoints per service in part 2 (default $ENDPOINTS)
  --net A.B.C      the nodes' loopback addresses are A.B.C.2, .3, .4 (default $NET)
  --quick          10 applies, 100 services (smoke test; numbers not quotable)
  --meshbox PATH   use this meshbox binary instead of building $RELEASE_DIR
  --results PATH   the file whose multinode section is replaced (default test/bench/RESULTS.md)
  -h, --help       this help
EOF
}

while (($#)); do
  case $1 in
    --applies) APPLIES=${2:?--applies needs a value}; APPLIES_SET=1; shift 2 ;;
    --services) SERVICES=${2:?--services needs a value}; SERVICES_SET=1; shift 2 ;;
    --endpoints) ENDPOINTS=${2:?--endpoints needs a value}; shift 2 ;;
    --net) NET=${2:?--net needs A.B.C}; shift 2 ;;
    *) bench_opt "$@"; shift "$OPT_SHIFT" ;;
  esac
done
if ((QUICK)); then
  ((APPLIES_SET)) || APPLIES=10
  ((SERVICES_SET)) || SERVICES=100
fi
need_posint --applies "$APPLIES"
need_posint --services "$SERVICES"
need_posint --endpoints "$ENDPOINTS"
((SERVICES * ENDPOINTS <= 45000)) \
  || { echo "--services x --endpoints must be at most 45,000 (one port each, from 20000)" >&2; exit 2; }
[[ $NET =~ ^127\.[0-9]{1,3}\.[0-9]{1,3}$ ]] || { echo "--net must be 127.B.C (loopback)" >&2; exit 2; }

START_EPOCH=$(date +%s)
install_traps

ensure_tools() {
  local missing
  missing=$(missing_tools etcd:etcd-server nginx:nginx-light curl:curl python3:python3)
  [[ -n $MESHBOX_BIN ]] || missing+=" $(missing_build_deps)"
  # shellcheck disable=SC2086 # one package per word
  [[ -z ${missing//[[:space:]]/} ]] || apt_install $missing
}

# ---------------------------------------------------------------- etcd
ETCD_PID=""
ETCD_EP=""
start_etcd() {   # on 127.0.0.1, data in $TMP/etcd; sets ETCD_EP (HOST:PORT)
  local cport pport deadline
  read -r cport pport < <(free_ports 2)
  ETCD_EP=127.0.0.1:$cport
  run_bg ETCD_PID etcd --name bench --data-dir "$TMP/etcd" \
    --listen-client-urls "http://$ETCD_EP" --advertise-client-urls "http://$ETCD_EP" \
    --listen-peer-urls "http://127.0.0.1:$pport" --initial-advertise-peer-urls "http://127.0.0.1:$pport" \
    --initial-cluster "bench=http://127.0.0.1:$pport" --initial-cluster-state new \
    --log-level warn >"$OUT_DIR/etcd.log" 2>&1
  deadline=$((SECONDS + 15))
  while ((SECONDS < deadline)); do
    kill -0 "$ETCD_PID" 2>/dev/null || die "etcd exited at start: $(tail -3 "$OUT_DIR/etcd.log")"
    if curl -fsS --max-time 1 "http://$ETCD_EP/health" 2>/dev/null | grep -q '"true"'; then
      return 0
    fi
    sleep 0.05
  done
  die "etcd did not become healthy within 15 s: $(tail -3 "$OUT_DIR/etcd.log")"
}

# ---------------------------------------------------------------- nodes
# start_node NAME IP VAR [ARGS…]: meshbox run --store … on IP (admin IP:ADMIN_PORT), its PID in
# VAR; waits for its --ready-file (20 s).
start_node() {
  local name=$1 ip=$2 __var=$3 __pid dir=$TMP/$1
  shift 3
  mkdir -p "$dir"
  run_bg __pid "$MESHBOX_BIN" run --store "etcd://$ETCD_EP/bench-apply" --node "$name" \
    --node-address "$ip" --admin "$ip:$ADMIN_PORT" --state-dir "$dir/state" \
    --mesh-key "$TMP/mesh.key" --ready-file "$dir/ready" --workers 1 --no-watch "$@" \
    >"$OUT_DIR/node-$name.log" 2>&1
  wait_file "$dir/ready" "$__pid" 20 \
    || die "node $name did not start: $(tail -5 "$OUT_DIR/node-$name.log")"
  printf -v "$__var" '%s' "$__pid"
}

node_revision() {   # node_revision IP: the config revision the node serves (/ready)
  curl -fsS --max-time 2 "http://$1:$ADMIN_PORT/ready" 2>/dev/null \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["revision"])' 2>/dev/null || echo -1
}

write_node_a_conf() {   # FILE: the gateway, its route and the backend, all on node a's file
  cat >"$1" <<EOF
[[service]]
name = "backend"
port = 8000

[[workload]]
name = "backend"
service = "backend"
address = "127.0.0.1"
port = $BACKEND_PORT

[[gateway]]
name = "edge"
servers = [{ port = $GW_PORT, protocol = "http", hosts = ["*"] }]

[[virtual_service]]
name = "base"
hosts = ["base.bench"]
gateways = ["edge"]
http = [{ route = [{ destination = { host = "backend" } }] }]
EOF
}

# ---------------------------------------------------------------- main
ensure_tools
mkdir -p "$OUT_DIR"
rm -rf "${OUT_DIR:?}"/*
TMP=$(mktemp -d "${TMPDIR:-/tmp}/meshbox-multinode.XXXXXX")
chmod 755 "$TMP"   # nginx workers run as nobody when started by root
raise_fd_limit

t=$SECONDS
build_meshbox || die "$MESHBOX_MISSING"
BUILD_SECONDS=$((SECONDS - t))
MESHBOX_VERSION=$("$MESHBOX_BIN" --version 2>/dev/null | head -1 || true)
log "meshbox: $MESHBOX_BIN ${MESHBOX_VERSION:+($MESHBOX_VERSION)}"
ETCD_VERSION=$(etcd --version 2>/dev/null | head -1 || true)

python3 -c 'import secrets; print(secrets.token_hex(32))' >"$TMP/mesh.key"
chmod 600 "$TMP/mesh.key"

bench_began half
PROBLEMS=()
start_etcd
log "etcd on $ETCD_EP ($ETCD_VERSION)"

# ---- part 1: apply on node b → serving on node a
read -r BACKEND_PORT ADMIN_PORT GW_PORT < <(free_ports 3)
start_backend
write_node_a_conf "$TMP/a.toml"
log "part 1: node a ($NET.2, gateway :$GW_PORT) and node b ($NET.3)"
start_node a "$NET.2" PID_A "$TMP/a.toml"
start_node b "$NET.3" PID_B
deadline=$((SECONDS + 10))
rev_a=$(node_revision "$NET.2")
until [[ $(node_revision "$NET.3") == "$rev_a" ]]; do
  ((SECONDS < deadline)) || die "node b does not serve node a's config revision $rev_a within 10 s"
  sleep 0.05
done
body=$(curl -fsS --max-time 2 -H 'Host: base.bench' "http://$NET.2:$GW_PORT/" 2>&1) \
  || die "node a's gateway does not serve base.bench: $body"
[[ $body == hello ]] || die "node a's gateway answered base.bench with: ${body:0:80}"
status=$(curl -sS -o /dev/null -w '%{http_code}' --max-time 2 -H 'Host: nothing.bench' "http://$NET.2:$GW_PORT/" || true)
[[ $status != 200 ]] || die "node a's gateway answers 200 for a host without a route: the probe would not measure anything"
log "  both nodes serve config revision $rev_a; $APPLIES applies on b, polling a's gateway"
LOAD_P1_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
python3 "$BENCH_DIR/multinode.py" apply-serve --meshbox "$MESHBOX_BIN" --state-dir "$TMP/b/state" \
  --admin-a "$NET.2:$ADMIN_PORT" --gateway "$NET.2:$GW_PORT" --log-a "$OUT_DIR/node-a.log" \
  --log-b "$OUT_DIR/node-b.log" --applies "$APPLIES" --dir "$TMP/applies" \
  --out "$OUT_DIR/apply.json" || PROBLEMS+=("part 1: multinode.py apply-serve exited $?")
LOAD_P1_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
for n in a b; do
  pid_var=PID_${n^^}
  kill -0 "${!pid_var}" 2>/dev/null || PROBLEMS+=("part 1: node $n died (see out/multinode/node-$n.log)")
  forget_pid "${!pid_var}"
done
forget_pid "$BACKEND_PID"

# ---- part 2: registry scale
log "part 2: $SERVICES services x $ENDPOINTS endpoints in etcd; a node on $NET.4"
LOAD_P2_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
python3 "$BENCH_DIR/multinode.py" scale --meshbox "$MESHBOX_BIN" --etcd "$ETCD_EP" \
  --mesh-key "$TMP/mesh.key" --services "$SERVICES" --endpoints "$ENDPOINTS" \
  --node-address "$NET.4" --fake-address "$NET.9" --admin-port "$ADMIN_PORT" \
  --dir "$TMP/scale" --out "$OUT_DIR/scale.json" || PROBLEMS+=("part 2: multinode.py scale exited $?")
LOAD_P2_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
for f in "$TMP"/scale/run*/meshbox.log; do
  [[ -f $f ]] && cp "$f" "$OUT_DIR/scale-$(basename "$(dirname "$f")").log"
done
ETCD_RSS_KIB=$(awk '/^VmRSS:/ { print $2 }' "/proc/$ETCD_PID/status" 2>/dev/null || echo -1)
ETCD_DB_BYTES=$(stat -c %s "$TMP/etcd/member/snap/db" 2>/dev/null || echo -1)
bench_ended "$OUT_DIR/problems.txt"

# ---------------------------------------------------------------- report
machine_env R
set -a   # everything assigned below goes to the report generator's environment
# shellcheck disable=SC2034
R_DATE=$(date -u '+%Y-%m-%d %H:%M UTC') \
  R_MESHBOX_BIN="$MESHBOX_BIN" R_MESHBOX_VERSION="$MESHBOX_VERSION" R_REPO="$REPO" \
  R_ETCD_VERSION="$ETCD_VERSION" R_QUICK=$QUICK R_APPLIES=$APPLIES \
  R_SERVICES=$SERVICES R_ENDPOINTS=$ENDPOINTS R_NET=$NET \
  R_BUILD_SECONDS=$BUILD_SECONDS R_BENCH_SECONDS=$BENCH_SECONDS R_TOTAL_SECONDS=$TOTAL_SECONDS \
  R_LOAD_BEFORE="$LOAD_BEFORE" R_LOAD_AFTER="$LOAD_AFTER" \
  R_LOAD_P1="$LOAD_P1_BEFORE → $LOAD_P1_AFTER" R_LOAD_P2="$LOAD_P2_BEFORE → $LOAD_P2_AFTER" \
  R_ETCD_RSS_KIB=$ETCD_RSS_KIB R_ETCD_DB_BYTES=$ETCD_DB_BYTES \
  R_APPLY_JSON=$OUT_DIR/apply.json R_SCALE_JSON=$OUT_DIR/scale.json R_PROBLEMS=$OUT_DIR/problems.txt
set +a

python3 - "$OUT_DIR/section.md" <<'PY'
import json, os, sys

from benchlib import fmt, problems_md, read_problems

E = os.environ
problems = read_problems(E["R_PROBLEMS"])


def load(path):
    try:
        return json.load(open(path))
    except (OSError, ValueError):
        return {"rows": [], "problems": [f"{os.path.basename(path)}: no results"]}


apply, scale = load(E["R_APPLY_JSON"]), load(E["R_SCALE_JSON"])
problems += [f"part 1: {p}" for p in apply.get("problems", [])]
problems += [f"part 2: {p}" for p in scale.get("problems", [])]


def pct(vals, q):
    """Nearest-rank q-quantile of vals (None when empty)."""
    v = sorted(x for x in vals if x is not None)
    if not v:
        return None
    k = max(0, min(len(v) - 1, -(-int(q * 1000) * len(v) // 1000) - 1))
    return v[k]


def ms(v, nd=1):
    return "—" if v is None else f"{v:,.{nd}f} ms"


def mib(kib):
    return "—" if kib is None or kib < 0 else f"{kib / 1024:,.1f} MiB"


L = []
w = L.append
w("<!-- multinode:begin -->")
w(f"## multinode (issue 8): config propagation and registry scale on etcd ({E['R_DATE']})")
w("")
w(f"Generated by `test/bench/multinode.sh` (`./dev bench multinode`). Benchmark time "
  f"{E['R_BENCH_SECONDS']} s (plus {E['R_BUILD_SECONDS']} s build).")
if E["R_QUICK"] == "1":
    w("")
    w("**Quick run (`--quick`): smoke-test numbers, not quotable.**")
w("")
mem_gib = int(E["R_MEM_KIB"]) / 1024 / 1024
w(f"- Machine: {E['R_NPROC']} CPUs, {E['R_CPU']}, {mem_gib:.1f} GiB; {E['R_KERNEL']}; {E['R_OS']}. "
  f"Load average (1, 5, 15 min) before: {E['R_LOAD_BEFORE']}; after: {E['R_LOAD_AFTER']} "
  f"(part 1: {E['R_LOAD_P1']}; part 2: {E['R_LOAD_P2']}). The machine is shared: a load "
  f"above {E['R_NPROC']} means other work (builds, tests) ran on the same cores, which "
  "stretches the tails most.")
mb = E["R_MESHBOX_BIN"].replace(E["R_REPO"] + "/", "")
w(f"- Versions: {E['R_MESHBOX_VERSION'] or 'meshbox'} (`{mb}`, git {E['R_COMMIT']}); "
  f"{E['R_ETCD_VERSION'] or 'etcd'} (one member on 127.0.0.1, its own data dir, default "
  "settings: every write is fsynced).")
w("")

# ---- part 1
rows = apply.get("rows", [])
served = [r["serve_ms"] for r in rows if r.get("serve_ms") is not None]
applied = [r["apply_ms"] for r in rows if r.get("apply_ms") is not None]
a_pub = [r["a_published_ms"] for r in rows if r.get("a_published_ms") is not None]
b_pub = [r["b_published_ms"] for r in rows if r.get("b_published_ms") is not None]
w("### `meshbox apply` on node b → the new route serving on node a")
w("")
w(f"Two nodes, `meshbox run --store etcd://… --node a|b --node-address {E['R_NET']}.2|.3 "
  "--workers 1`, each with its own loopback address, admin API and state dir, one mesh key. "
  "Node a was started with a file (the service `backend` = an nginx \"hello\", a gateway, a "
  "virtual service for `base.bench`), node b with none (it serves the same config from etcd). "
  f"{len(rows)} times, 0.1 s apart: `meshbox apply -f probe-N.toml --state-dir B` (node b's admin "
  "API) of a new virtual service for the host `probe-N.bench` through the gateway, while a "
  "persistent connection asks node a's gateway for `Host: probe-N.bench` every ~1 ms (404 "
  "until the route is there; before each apply the script checks it is not served yet). "
  "Measured from just before the command starts (fork and exec included).")
w("")
w("| measured from the start of `meshbox apply` | n | p50 | p90 | p99 | max |")
w("|---|---:|---:|---:|---:|---:|")
for label, vals in [
        ("the command returns (node b validated the change and committed it to etcd)", applied),
        ("node b published its snapshot of the new revision (its log, ms resolution)", b_pub),
        ("node a published its snapshot of the new revision (its log, ms resolution)", a_pub),
        ("**node a's gateway serves the new route** (the first 200 `hello`)", served)]:
    w(f"| {label} | {len(vals)} | {ms(pct(vals, 0.5))} | {ms(pct(vals, 0.9))} | {ms(pct(vals, 0.99))} | "
      f"{ms(max(vals) if vals else None)} |")
w("")


def diffs(a, b):
    return [r[a] - r[b] for r in rows if r.get(a) is not None and r.get(b) is not None]


watch = diffs("a_published_ms", "b_published_ms")
push = diffs("serve_ms", "a_published_ms")
w(f"Per apply, medians of the differences: node a published {ms(pct(watch, 0.5))} after node b "
  "(etcd's watch delivering the commit to a, and a's compile, against b's compile right after "
  f"its commit); node a served {ms(pct(push, 0.5))} after it published (the snapshot posted to "
  "the worker and swapped in, and the probe's next request). With "
  f"{len(rows)} applies the nearest-rank p99 is the {-(-99 * len(rows) // 100)}th value"
  + (" (the max)." if -(-99 * len(rows) // 100) == len(rows) else "."))
w("")
w("What is inside: the `meshbox` CLI process starts and reads node b's admin address and token; "
  "node b decodes and validates the change against its running config, then commits it as one "
  "etcd transaction (the resource's key and `PREFIX/config-rev`, conditional on the revision it "
  "read; etcd fsyncs its log before answering) and answers, so the command returns. etcd's "
  "watch stream (HTTP/JSON gateway, one long-lived request per node) delivers the two keys to "
  "node a, whose store applies them; a recompiles the snapshot (config → route tables, "
  "clusters, listeners), publishes it and posts it to its worker, which swaps it in between two "
  "events; the next probe request then matches the new route. The probe adds up to ~1 ms "
  "(its interval) plus one request's round trip.")
w("")

# ---- part 2
srows = scale.get("rows", [])
S, EP = int(E["R_SERVICES"]), int(E["R_ENDPOINTS"])
ld = scale.get("load", {})
w(f"### Registry scale: {S:,} services × {EP} endpoints")
w("")
w(f"Written straight into etcd under `/bench-scale` through its v3 JSON gateway in "
  f"{ld.get('load_s', 0):.1f} s ({ld.get('bytes', 0) / 1e6:.1f} MB of keys and values, "
  f"transactions of 100 puts): {S:,} `service` resources (`PREFIX/config/service/default/svc-N`, "
  "the value as the store writes it, `{\"toml\": \"[[service]]\\nname = \\\"svc-N\\\"\\nport = "
  "8000\\n\", \"origin\": \"api\", \"revision\": 1}`, and `PREFIX/config-rev`), and for each "
  f"{EP} endpoints published by a fake node (`PREFIX/endpoints/fake/HOST|INSTANCE|PORT`, the "
  "JSON of `NodeSync::encode_endpoint`, and `PREFIX/nodes/fake`, all under a lease the script "
  "keeps alive). Then one node at a time, `meshbox run --store etcd://…/bench-scale --node scaleN "
  f"--node-address {E['R_NET']}.4 --mesh-key …` with no file. **complete**: from the process "
  "start to its log's `snapshot N published` of the first snapshot in which every service's "
  f"cluster holds its {EP} endpoints (found by polling `/ready` every 10 ms and reading "
  "`/clusters` when the applied version changes); **first snapshot**: its first one (the "
  "config read from etcd, before the registry arrives). Memory: `VmRSS` and `VmHWM` from "
  "`/proc/PID/status` 1 s after complete (the peak includes building one `/clusters` answer "
  "of the size shown). CPU: the process's utime+stime up to then. For comparison, the same "
  f"services and endpoints from one file on the embedded store ({S:,} `[[service]]` and "
  f"{S * EP:,} static `[[workload]]`s with an address, {scale.get('file_bytes', 0) / 1e6:.1f} MB): "
  "every snapshot of a single node is built the same way, so the difference is etcd's share.")
w("")
w("| node | store read | first snapshot | nodes read | **complete** | nodes read → complete | RSS | peak RSS (HWM) | CPU | threads | `/clusters` size |")
w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for r in srows:
    gap = (r["complete_ms"] - r["nodes_read_ms"]
           if r.get("complete_ms") is not None and r.get("nodes_read_ms") is not None else None)
    w(f"| {r['name']} | {ms(r.get('store_read_ms'), 0)} | {ms(r.get('first_snapshot_ms'), 0)} | "
      f"{ms(r.get('nodes_read_ms'), 0)} | **{ms(r.get('complete_ms'), 0)}** | {ms(gap, 0)} | {mib(r['rss_kib'])} | "
      f"{mib(r['hwm_kib'])} | {r['cpu_s']:.2f} s | {r['threads']} | "
      f"{r['clusters_bytes'] / 1e6:.1f} MB |")
w("")
w("*store read*: the log line `config store in etcd under …` (the config's range read answered); "
  "*nodes read*: `watching the mesh's nodes` (the endpoints' range read answered); *nodes read → "
  "complete*: from there to the complete snapshot, i.e. the registry update and one compile of "
  "the whole snapshot, which every later change of the config or of the endpoints pays again. "
  f"etcd itself afterwards: RSS {mib(int(E['R_ETCD_RSS_KIB']))}, data dir "
  f"{int(E['R_ETCD_DB_BYTES']) / 1e6:.1f} MB (its bbolt database, `member/snap/db`).")
w("")
ap = [r for r in srows if r.get("apply_ms") is not None]
if ap:
    w(f"One more change on the loaded node ({ap[0]['name']}, after the memory reading): "
      "`meshbox apply` of one more service against it took "
      f"**{ms(ap[0]['apply_ms'], 0)}** until its worker served it (`/ready`: the new revision, "
      "a new applied version), i.e. validation of the whole config, the etcd commit, the watch "
      "and a compile of the whole snapshot.")
    w("")

# ---- reading
by = {r["name"]: r for r in srows}
read = []
if served:
    read.append(f"A change applied on one node serves on the other in {ms(pct(served, 0.5))} at "
                f"the median and {ms(pct(served, 0.99))} at p99 ({len(served)} applies); the "
                f"apply command itself returns in {ms(pct(applied, 0.5))} (p50).")
    if a_pub and watch and push:
        read.append(f"Node a publishes the new snapshot {ms(pct(a_pub, 0.5))} after the start "
                    f"(p50), {ms(pct(watch, 0.5))} after node b (the median difference: etcd's "
                    "watch delivers the commit to the other node about as fast as the "
                    "committing node's own answer arrives), and serves it "
                    f"{ms(pct(push, 0.5))} later: the time goes to the CLI, node b's "
                    "validate-and-commit (etcd's fsync) and the compile, and the machine's "
                    "load stretches all of them.")
e1, f1 = by.get("etcd, --workers 1"), by.get("file, --workers 1")
if e1 and f1 and e1.get("complete_ms") and f1.get("complete_ms"):
    read.append(f"With {S:,} services × {EP} endpoints a node on etcd has its complete snapshot "
                f"{ms(e1['complete_ms'], 0)} after it starts (the same registry from a file: "
                f"{ms(f1['complete_ms'], 0)}), at {mib(e1['rss_kib'])} RSS "
                f"({mib(f1['rss_kib'])} from the file).")
if read:
    w("**Reading.** " + " ".join(read))
    w("")
w("Raw output: `test/bench/out/multinode/` (`apply.json` with every apply's times, "
  "`scale.json`, the nodes' and etcd's logs).")
w("")
L += problems_md(problems, "None: every apply was served on the other node, every command "
                 "succeeded, and every node reached its complete snapshot.")
w("<!-- multinode:end -->")
open(sys.argv[1], "w").write("\n".join(L) + "\n")
if problems:
    with open(E["R_PROBLEMS"], "w") as f:
        f.write("\n".join(problems) + "\n")
PY
mapfile -t PROBLEMS < <(grep -v '^$' "$OUT_DIR/problems.txt" || true)
finish_section multinode
