#!/usr/bin/env python3
"""The measuring half of test/bench/multinode.sh (which starts etcd and the nodes of part 1,
and writes the report). Two subcommands, each writing a JSON file of results:

  apply-serve  N times: `meshbox apply` of a new virtual service (a new host name) against
               node b; measures from the start of the command until node a's gateway answers
               the new host with the backend's "hello" (a persistent connection, a request
               every ~1 ms), and until the command returns. Reads both nodes' logs afterwards
               for the time each published the snapshot of that config revision.
  scale        loads S `service` resources and S x E endpoints of a fake node into etcd (v3
               JSON gateway, transactions; the endpoints under a lease it keeps alive), then
               starts one node at a time (etcd store with --workers 1 and with the default,
               then the same services and endpoints from one file on the embedded store) and
               measures the time from the process start to the first snapshot holding every
               service's cluster with all its endpoints, and the node's memory once settled.

Only 127.0.0.0/8 addresses. Every process it starts dies with it (PR_SET_PDEATHSIG) and is
stopped on exit or SIGTERM.
"""

import argparse
import base64
import ctypes
import datetime
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

CHILDREN = []
LOG_TS = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+)Z ")
PUBLISHED = re.compile(r" \[control\] snapshot (\d+) published \(config revision (\d+)\)")


def die_with_parent():
    """preexec_fn: the child gets SIGKILL when this process dies, however it dies."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def spawn(argv, log_path):
    log = open(log_path, "wb")
    p = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                         preexec_fn=die_with_parent)
    log.close()
    CHILDREN.append(p)
    return p


def stop(p, timeout=10):
    if p.poll() is None:
        p.terminate()
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    if p in CHILDREN:
        CHILDREN.remove(p)


def on_term(signum, _frame):
    raise SystemExit(128 + signum)


def log(msg):
    print(f"[multinode {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def write_json(path, obj):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=1)
        f.write("\n")
    os.replace(tmp, path)


def log_time(line):
    """The wall-clock time (unix seconds) of a meshbox log line, None if it has none."""
    m = LOG_TS.match(line)
    if not m:
        return None
    t = datetime.datetime.fromisoformat(m.group(1)).replace(tzinfo=datetime.timezone.utc)
    return t.timestamp()


def published_times(log_path):
    """{config revision: unix time of the first 'snapshot N published (config revision R)'},
    and {snapshot version: unix time}."""
    by_rev, by_version = {}, {}
    try:
        with open(log_path, errors="replace") as f:
            for line in f:
                m = PUBLISHED.search(line)
                t = log_time(line) if m else None
                if t is None:
                    continue
                by_version.setdefault(int(m.group(1)), t)
                by_rev.setdefault(int(m.group(2)), t)
    except FileNotFoundError:
        pass
    return by_rev, by_version


class Http:
    """One persistent HTTP/1.1 connection; reconnects when the server closed it."""

    def __init__(self, host, port, timeout=2.0):
        self.host, self.port, self.timeout = host, port, timeout
        self.conn = None
        self.connects = 0

    def get(self, path, host_header=None):
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
                self.connects += 1
            try:
                headers = {"Host": host_header} if host_header else {}
                self.conn.request("GET", path, headers=headers)
                r = self.conn.getresponse()
                body = r.read()
                if r.will_close:
                    self.conn.close()
                    self.conn = None
                return r.status, body
            except (OSError, http.client.HTTPException):
                self.conn.close()
                self.conn = None
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def close(self):
        if self.conn:
            self.conn.close()
            self.conn = None


def host_port(text):
    h, _, p = text.rpartition(":")
    return h, int(p)


# ---------------------------------------------------------------- apply → serve
VS_TOML = """[[virtual_service]]
name = "probe-{i}"
hosts = ["probe-{i}.bench"]
gateways = ["edge"]
http = [{{ route = [{{ destination = {{ host = "backend" }} }}] }}]
"""


def apply_serve(a):
    gw = Http(*host_port(a.gateway))
    admin_a = Http(*host_port(a.admin_a))
    status, body = admin_a.get("/ready")
    base_rev = json.loads(body)["revision"]
    rows, problems = [], []
    os.makedirs(a.dir, exist_ok=True)
    for i in range(1, a.applies + 1):
        host = f"probe-{i}.bench"
        path = os.path.join(a.dir, f"probe-{i}.toml")
        with open(path, "w") as f:
            f.write(VS_TOML.format(i=i))
        status, _ = gw.get("/", host)
        if status == 200:
            problems.append(f"apply {i}: {host} answered 200 before the apply")
        polls = 0
        wall0 = time.time()
        t0 = time.perf_counter()
        proc = subprocess.Popen([a.meshbox, "apply", "-f", path, "--state-dir", a.state_dir],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
        t_apply = t_serve = None
        deadline = t0 + a.timeout
        while (t_apply is None or t_serve is None) and time.perf_counter() < deadline:
            if t_apply is None and proc.poll() is not None:
                t_apply = time.perf_counter() - t0
            if t_serve is None:
                try:
                    status, body = gw.get("/", host)
                except OSError as e:
                    problems.append(f"apply {i}: gateway request failed: {e}")
                    status, body = 0, b""
                polls += 1
                if status == 200 and body.strip() == b"hello":
                    t_serve = time.perf_counter() - t0
                    continue
            time.sleep(a.interval)
        out = b""
        if proc.poll() is None:
            proc.kill()
        out = proc.communicate()[0]
        rc = proc.returncode
        if rc != 0:
            problems.append(f"apply {i}: meshbox apply exited {rc}: {out.decode(errors='replace').strip()[:200]}")
        if t_serve is None:
            problems.append(f"apply {i}: node a did not serve {host} within {a.timeout} s")
        rows.append({"i": i, "wall0": wall0, "rev": base_rev + i, "rc": rc, "polls": polls,
                     "apply_ms": None if t_apply is None else t_apply * 1000,
                     "serve_ms": None if t_serve is None else t_serve * 1000})
        time.sleep(a.pause)
    gw.close()
    # when each node published that revision's snapshot (log lines, ms resolution)
    rev_a, _ = published_times(a.log_a)
    rev_b, _ = published_times(a.log_b)
    for r in rows:
        ta, tb = rev_a.get(r["rev"]), rev_b.get(r["rev"])
        r["a_published_ms"] = None if ta is None else (ta - r["wall0"]) * 1000
        r["b_published_ms"] = None if tb is None else (tb - r["wall0"]) * 1000
    status, body = admin_a.get("/ready")
    final_rev = json.loads(body)["revision"]
    if final_rev != base_rev + a.applies:
        problems.append(f"node a's config revision is {final_rev} after {a.applies} applies "
                        f"from {base_rev}")
    admin_a.close()
    write_json(a.out, {"rows": rows, "problems": problems, "gw_connects": gw.connects,
                       "base_rev": base_rev})
    ok = [r["serve_ms"] for r in rows if r["serve_ms"] is not None]
    log(f"apply → serve: {len(ok)}/{len(rows)} served; median {sorted(ok)[len(ok) // 2]:.1f} ms"
        if ok else "apply → serve: nothing served")
    return 0


# ---------------------------------------------------------------- etcd (v3 JSON gateway)
def b64(s):
    return base64.b64encode(s.encode()).decode()


class Etcd:
    def __init__(self, endpoint):
        self.http = http.client.HTTPConnection(*host_port(endpoint), timeout=30)

    def post(self, path, obj):
        self.http.request("POST", path, body=json.dumps(obj),
                          headers={"Content-Type": "application/json"})
        r = self.http.getresponse()
        body = r.read()
        if r.status != 200:
            raise RuntimeError(f"etcd {path}: {r.status} {body[:300]!r}")
        return json.loads(body)

    def txn_puts(self, kvs, lease=None, batch=100):
        """Puts (key, value) pairs, `batch` to a transaction (etcd's default limit is 128)."""
        for k in range(0, len(kvs), batch):
            ops = []
            for key, value in kvs[k:k + batch]:
                put = {"key": b64(key), "value": b64(value)}
                if lease:
                    put["lease"] = str(lease)
                ops.append({"requestPut": put})
            self.post("/v3/kv/txn", {"success": ops})

    def count(self, prefix):
        end = prefix[:-1] + chr(ord(prefix[-1]) + 1)
        r = self.post("/v3/kv/range", {"key": b64(prefix), "range_end": b64(end),
                                       "count_only": True})
        return int(r.get("count", 0))


def endpoint_json(host, address, port, instance, app):
    """NodeSync::encode_endpoint's JSON, field for field."""
    return json.dumps({
        "host": host, "namespace": "default", "address": address, "port": port, "locality": "",
        "weight": 1, "instance": instance, "service_account": "default",
        "sidecar_inbound_port": port, "labels": {"app": app}, "named_ports": {}},
        separators=(",", ":"))


def service_toml(i):
    """A service resource as the stores keep it (the embedded store's store.json after a
    `meshbox apply`): one full TOML document."""
    return f'[[service]]\nname = "svc-{i}"\nport = 8000\n'


def load_etcd(a):
    etcd = Etcd(a.etcd)
    p = a.prefix
    t0 = time.perf_counter()
    config = [(f"{p}/config/service/default/svc-{i}",
               json.dumps({"toml": service_toml(i), "origin": "api", "revision": 1},
                          separators=(",", ":")))
              for i in range(1, a.services + 1)]
    etcd.txn_puts(config)
    etcd.post("/v3/kv/put", {"key": b64(f"{p}/config-rev"), "value": b64("1")})
    lease = int(etcd.post("/v3/lease/grant", {"TTL": a.lease_ttl})["ID"])
    now_ms = int(time.time() * 1000)
    eps, instances = [], []
    port = 20000
    for i in range(1, a.services + 1):
        host = f"svc-{i}.default.svc.cluster.local"
        for k in range(1, a.endpoints + 1):
            inst = f"svc-{i}-{k}"
            instances.append(f"default/{inst}")
            eps.append((f"{p}/endpoints/fake/{host}|{inst}|{port}",
                        endpoint_json(host, a.fake_address, port, inst, f"svc-{i}")))
            port += 1
    node = json.dumps({"name": "fake", "address": a.fake_address, "locality": "",
                       "started": now_ms, "heartbeat": now_ms, "instances": instances},
                      separators=(",", ":"))
    etcd.txn_puts([(f"{p}/nodes/fake", node)], lease)
    etcd.txn_puts(eps, lease)
    took = time.perf_counter() - t0
    n_cfg, n_eps = etcd.count(f"{p}/config/"), etcd.count(f"{p}/endpoints/fake/")
    if n_cfg != a.services or n_eps != a.services * a.endpoints:
        raise RuntimeError(f"etcd holds {n_cfg} services and {n_eps} endpoints, "
                           f"expected {a.services} and {a.services * a.endpoints}")
    size = sum(len(k) + len(v) for k, v in config + eps) + len(node)
    log(f"loaded {n_cfg} services and {n_eps} endpoints ({size / 1e6:.1f} MB of keys and "
        f"values) into etcd in {took:.1f} s")
    return etcd, lease, {"load_s": took, "bytes": size}


def keep_alive(endpoint, lease, every, stop_event):
    etcd = Etcd(endpoint)
    while not stop_event.wait(every):
        try:
            etcd.post("/v3/lease/keepalive", {"ID": str(lease)})
        except Exception as e:  # noqa: BLE001 - logged, the run checks the endpoints anyway
            log(f"warning: lease keepalive failed: {e}")


def file_config(path, a):
    """The same services and endpoints, as one file for a single node (static workloads)."""
    with open(path, "w") as f:
        port = 20000
        for i in range(1, a.services + 1):
            f.write(service_toml(i) + "\n")
            for k in range(1, a.endpoints + 1):
                f.write(f'[[workload]]\nname = "svc-{i}-{k}"\nservice = "svc-{i}"\n'
                        f'address = "{a.fake_address}"\nport = {port}\n\n')
                port += 1


def proc_status(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM", "Threads"):
                out[k] = int(v.split()[0])
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    out["cpu_s"] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return out


def complete(clusters, services, endpoints):
    """How many of the services' clusters hold all their endpoints."""
    names = {f"outbound|8000||svc-{i}.default.svc.cluster.local" for i in range(1, services + 1)}
    return sum(1 for c in clusters
               if c.get("name") in names and len(c.get("endpoints", [])) == endpoints)


def apply_once(a, state_dir, admin):
    """`meshbox apply` of one more service against the node: the time until its workers serve
    the new config revision (/ready: applied_version past the one before, revision + 1), in
    ms; None if it failed. (Not `--wait`: with --store etcd it can return before the node
    compiled the change.)"""
    path = os.path.join(a.dir, "extra.toml")
    with open(path, "w") as f:
        f.write('[[service]]\nname = "svc-extra"\nport = 8000\n')
    before = json.loads(admin.get("/ready")[1])
    t0 = time.perf_counter()
    r = subprocess.run([a.meshbox, "apply", "-f", path, "--state-dir", state_dir],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=a.timeout)
    if r.returncode != 0:
        log(f"warning: meshbox apply exited {r.returncode}: {r.stdout.decode(errors='replace')[:200]}")
        return None
    while time.perf_counter() - t0 < a.timeout:
        now = json.loads(admin.get("/ready")[1])
        if (now.get("revision") == before.get("revision", 0) + 1
                and now.get("applied_version", 0) > before.get("applied_version", 0)):
            return (time.perf_counter() - t0) * 1000
        time.sleep(0.005)
    log(f"warning: the node did not serve the applied change within {a.timeout} s")
    return None


def measure_node(a, name, argv, addr, log_path, state_dir=None):
    """Starts a node, waits for its first complete snapshot, reads its memory (then, with
    state_dir, times one `meshbox apply`), stops it."""
    host, port = addr.rsplit(":", 1)
    admin = Http(host, int(port), timeout=10)
    wall0 = time.time()
    t0 = time.perf_counter()
    p = spawn(argv, log_path)
    deadline = t0 + a.timeout
    seen_version, done_version, t_seen, clusters_bytes, polls = -1, None, None, 0, 0
    try:
        while time.perf_counter() < deadline:
            if p.poll() is not None:
                raise RuntimeError(f"{name}: meshbox exited {p.returncode} (see {log_path})")
            try:
                status, body = admin.get("/ready")
            except OSError:
                admin.close()
                time.sleep(0.01)
                continue
            v = json.loads(body).get("applied_version", 0) if status in (200, 503) else 0
            if v and v != seen_version:
                seen_version = v
                status, body = admin.get("/clusters")
                polls += 1
                clusters_bytes = len(body)
                n = complete(json.loads(body), a.services, a.endpoints) if status == 200 else 0
                # the clusters are those of version v if it still is the applied one
                _, body2 = admin.get("/ready")
                if n == a.services and json.loads(body2).get("applied_version") == v:
                    done_version, t_seen = v, time.perf_counter() - t0
                    break
            time.sleep(0.01)
        if done_version is None:
            raise RuntimeError(f"{name}: no snapshot with all {a.services} clusters and "
                               f"{a.endpoints} endpoints each within {a.timeout} s "
                               f"(last applied version {seen_version}; see {log_path})")
        time.sleep(a.settle)
        mem = proc_status(p.pid)
        apply_ms = apply_once(a, state_dir, admin) if state_dir else None
        admin.close()
    finally:
        stop(p)
    _, by_version = published_times(log_path)
    t_pub = by_version.get(done_version)
    first = min(by_version.values()) if by_version else None
    marks = {}
    with open(log_path, errors="replace") as f:
        for line in f:
            t = log_time(line)
            if t is None:
                continue
            if "config store in etcd under" in line:
                marks.setdefault("store_read_ms", (t - wall0) * 1000)
            elif "watching the mesh's nodes" in line:
                marks.setdefault("nodes_read_ms", (t - wall0) * 1000)
    row = {"name": name, "version": done_version,
           "complete_ms": None if t_pub is None else (t_pub - wall0) * 1000,
           "first_snapshot_ms": None if first is None else (first - wall0) * 1000,
           "seen_ms": t_seen * 1000, "clusters_bytes": clusters_bytes, "clusters_polls": polls,
           "rss_kib": mem["VmRSS"], "hwm_kib": mem["VmHWM"], "threads": mem["Threads"],
           "cpu_s": mem["cpu_s"], "apply_ms": apply_ms, **marks}
    log(f"{name}: complete at {row['complete_ms'] or -1:.0f} ms (snapshot {done_version}), "
        f"RSS {mem['VmRSS'] / 1024:.1f} MiB, HWM {mem['VmHWM'] / 1024:.1f} MiB, "
        f"CPU {mem['cpu_s']:.2f} s")
    return row


def scale(a):
    os.makedirs(a.dir, exist_ok=True)
    etcd, lease, load = load_etcd(a)
    stop_event = threading.Event()
    ka = threading.Thread(target=keep_alive, args=(a.etcd, lease, max(1, a.lease_ttl // 3),
                                                   stop_event), daemon=True)
    ka.start()
    rows, problems = [], []
    ip = a.node_address
    runs = [("etcd, --workers 1", "etcd", ["--workers", "1"]),
            ("etcd, default workers", "etcd", []),
            ("file, --workers 1", "file", ["--workers", "1"]),
            ("file, default workers", "file", [])]
    cfg = os.path.join(a.dir, "scale.toml")
    file_config(cfg, a)
    try:
        for k, (name, kind, extra) in enumerate(runs, 1):
            d = os.path.join(a.dir, f"run{k}")
            os.makedirs(d)
            admin = f"{ip}:{a.admin_port}"
            argv = [a.meshbox, "run", "--state-dir", os.path.join(d, "state"), "--admin", admin,
                    "--no-watch"] + extra
            if kind == "etcd":
                argv += ["--store", f"etcd://{a.etcd}{a.prefix}", "--node", f"scale{k}",
                         "--node-address", ip, "--mesh-key", a.mesh_key]
            else:
                argv += [cfg]
            try:
                row = measure_node(a, name, argv, admin, os.path.join(d, "meshbox.log"),
                                   os.path.join(d, "state") if k == 1 else None)
                row["kind"], row["workers"] = kind, "1" if extra else "default"
                rows.append(row)
            except RuntimeError as e:
                problems.append(str(e))
                log(f"FAILED: {e}")
    finally:
        stop_event.set()
        try:
            etcd.post("/v3/lease/revoke", {"ID": str(lease)})
        except Exception:  # noqa: BLE001 - etcd is stopped next anyway
            pass
    write_json(a.out, {"rows": rows, "problems": problems, "load": load,
                       "file_bytes": os.path.getsize(cfg)})
    return 0


def main():
    signal.signal(signal.SIGTERM, on_term)
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("apply-serve")
    s.add_argument("--meshbox", required=True)
    s.add_argument("--state-dir", required=True, help="node b's (for meshbox apply)")
    s.add_argument("--admin-a", required=True, help="node a's admin HOST:PORT")
    s.add_argument("--gateway", required=True, help="node a's gateway HOST:PORT")
    s.add_argument("--log-a", required=True)
    s.add_argument("--log-b", required=True)
    s.add_argument("--applies", type=int, default=50)
    s.add_argument("--interval", type=float, default=0.001, help="seconds between polls")
    s.add_argument("--pause", type=float, default=0.1, help="seconds between applies")
    s.add_argument("--timeout", type=float, default=10)
    s.add_argument("--dir", required=True)
    s.add_argument("--out", required=True)
    s = sub.add_parser("scale")
    s.add_argument("--meshbox", required=True)
    s.add_argument("--etcd", required=True, help="HOST:PORT")
    s.add_argument("--prefix", default="/bench-scale")
    s.add_argument("--mesh-key", required=True)
    s.add_argument("--services", type=int, default=1000)
    s.add_argument("--endpoints", type=int, default=10)
    s.add_argument("--node-address", required=True)
    s.add_argument("--fake-address", required=True)
    s.add_argument("--admin-port", type=int, default=15000)
    s.add_argument("--lease-ttl", type=int, default=30)
    s.add_argument("--settle", type=float, default=1.0)
    s.add_argument("--timeout", type=float, default=60)
    s.add_argument("--dir", required=True)
    s.add_argument("--out", required=True)
    a = ap.parse_args()
    try:
        return apply_serve(a) if a.cmd == "apply-serve" else scale(a)
    finally:
        for p in list(CHILDREN):
            stop(p)


if __name__ == "__main__":
    sys.exit(main())
