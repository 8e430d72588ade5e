// Issue 8's CI test: one mesh of three `meshbox run` nodes on a real etcd (Debian's
// etcd-server, test/support/etcd.h), each node in a network namespace of its own with its own
// address on a bridge the test makes (etcd listens on the bridge's address in the host's
// namespace). Where `ip netns add` is not permitted the nodes run in this namespace on
// 127.0.0.11-13 instead, and the test says so.
//
// Bookinfo (examples/bookinfo/mesh.toml, given to node 1 only) is split across the nodes:
// productpage on n1, details, ratings, reviews v1 and v2 on n2, reviews v3 on n3. Checked, in
// one run: the product page through n1's gateway (whose workloads sit on n2 and n3) with
// details and reviews from both nodes; n2 and n3 saw mTLS requests from productpage's identity
// (one CA, sealed in etcd under --mesh-key); GET /nodes and `meshbox get nodes` list three
// nodes; n3 killed (SIGKILL) under a client loop: its endpoints leave n1 within the lease TTL
// and slack, the failures meanwhile are counted and reported, then requests succeed again;
// etcd stopped: pages still served, n1's /ready reports the store degraded; etcd back: a
// virtual_service applied through n2's admin API serves on n1's gateway; n2 stopped (SIGTERM):
// it leaves n1's /nodes at once (its lease revoked) and exits 0.
//
// Root and `ip` are needed for namespaces (MESHBOX_TEST_NO_NETNS=1 asks for the loopback
// fallback anyway); without /usr/bin/etcd the test is SKIPPED with a message. Every wait polls with
// a deadline; processes, namespaces and the bridge are removed even when an assertion fails.
#include <arpa/inet.h>
#include <dirent.h>
#include <doctest/doctest.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

#include "test/support/deadline.h"
#include "test/support/etcd.h"
#include "test/support/failure_logs.h"
#include "test/support/files.h"
#include "test/support/http_response.h"
#include "test/support/json.h"
#include "test/support/mesh.h"
#include "test/support/meshbox.h"
#include "test/support/process.h"

namespace meshbox::test {
namespace {

constexpr auto kTimeout = 10s;
constexpr int kLeaseTtlS = 3;
constexpr int kNodes = 3;

std::string env_or_throw(const char* name) {
  const char* v = ::getenv(name);
  if (!v || !*v) throw std::runtime_error(std::string("environment variable ") + name + " unset");
  return v;
}

bool contains(std::string_view text, std::string_view what) {
  return text.find(what) != std::string_view::npos;
}

size_t replace_all(std::string& text, const std::string& from, const std::string& to) {
  size_t n = 0;
  for (size_t at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size())) {
    text.replace(at, from.size(), to);
    ++n;
  }
  return n;
}

template <typename Strings>
std::string join(const Strings& items, const std::string& sep = "; ") {
  std::string s;
  for (const auto& i : items)
    s += (s.empty() ? "" : sep) + i;
  return s;
}

// Runs a command to completion; its exit code (-1 if killed at the deadline), its output
// (stdout and stderr) in `out`.
int run(TempDir& dir, const std::vector<std::string>& argv, std::string* out = nullptr) {
  static int n = 0;
  std::string log = dir.file("cmd" + std::to_string(n++) + ".out");
  SpawnOptions opts;
  opts.argv = argv;
  opts.stdout_path = opts.stderr_path = log;
  Process p(opts);
  auto status = p.wait(Deadline(kTimeout));
  if (!status) p.kill_and_wait();
  if (out) *out = read_file(log).value_or("");
  return status && status->exited ? status->code : -1;
}

// "10.A.B": a /24 (from `seed`) that none of this host's addresses is in.
std::string free_subnet(int seed) {
  std::set<uint32_t> used;  // the /24s in use, host order
  ifaddrs* list = nullptr;
  if (::getifaddrs(&list) == 0) {
    for (ifaddrs* i = list; i; i = i->ifa_next)
      if (i->ifa_addr && i->ifa_addr->sa_family == AF_INET)
        used.insert(ntohl(reinterpret_cast<sockaddr_in*>(i->ifa_addr)->sin_addr.s_addr) >> 8);
    ::freeifaddrs(list);
  }
  uint32_t a = 0, b = 0;
  for (int n = 0; n < 1000; ++n) {
    a = 100 + static_cast<uint32_t>(seed + n) % 100;
    b = 1 + static_cast<uint32_t>(seed / 100 + n) % 250;
    if (!used.count((10u << 16) | (a << 8) | b)) break;
  }
  return "10." + std::to_string(a) + "." + std::to_string(b);
}

// The nodes' network: a bridge in this namespace (at SUBNET.1, where etcd listens) and one
// namespace per node, joined to the bridge by a veth pair, at SUBNET.11, .12, .13 — or, where
// namespaces cannot be made, 127.0.0.1 and 127.0.0.11-13 here. The destructor deletes the
// namespaces (their veth ends go with them) and the bridge: start the nodes' processes after
// this object, so that they are killed before it goes.
class NodeNetwork {
 public:
  explicit NodeNetwork(TempDir& dir) : dir_(dir) {
    int pid = static_cast<int>(::getpid());
    tag_ = std::to_string(pid);
    subnet_ = free_subnet(pid);
    if (::geteuid() != 0) {
      why_not_ = "not root";
      return;
    }
    if (const char* no = ::getenv("MESHBOX_TEST_NO_NETNS"); no && *no) {
      why_not_ = "MESHBOX_TEST_NO_NETNS is set";
      return;
    }
    remove_stale();
    std::string out;
    if (run(dir_, {"ip", "netns", "add", ns(1)}, &out) != 0) {
      why_not_ = "`ip netns add` failed: " + out;
      return;
    }
    namespaced_ = true;
  }

  ~NodeNetwork() {
    if (!namespaced_) return;
    for (int i = 1; i <= kNodes; ++i)
      run(dir_, {"ip", "netns", "del", ns(i)});
    run(dir_, {"ip", "link", "del", bridge()});
  }

  NodeNetwork(const NodeNetwork&) = delete;
  NodeNetwork& operator=(const NodeNetwork&) = delete;

  /// Makes the bridge, the other namespaces and the links; fails the test on any error.
  void up() {
    if (!namespaced_) return;
    auto must = [&](std::vector<std::string> argv) {
      std::string out;
      int code = run(dir_, argv, &out);
      REQUIRE_MESSAGE(code == 0, join(argv, " ") << " → " << code << ": " << out);
    };
    must({"ip", "link", "add", bridge(), "type", "bridge"});
    must({"ip", "addr", "add", host_ip() + "/24", "dev", bridge()});
    must({"ip", "link", "set", bridge(), "up"});
    for (int i = 1; i <= kNodes; ++i) {
      if (i > 1) must({"ip", "netns", "add", ns(i)});
      std::string outer = bridge() + "v" + std::to_string(i),
                  inner = bridge() + "p" + std::to_string(i);
      must({"ip", "link", "add", outer, "type", "veth", "peer", "name", inner});
      must({"ip", "link", "set", inner, "netns", ns(i)});
      must({"ip", "link", "set", outer, "master", bridge(), "up"});
      must({"ip", "-n", ns(i), "addr", "add", node_ip(i) + "/24", "dev", inner});
      must({"ip", "-n", ns(i), "link", "set", inner, "up"});
      must({"ip", "-n", ns(i), "link", "set", "lo", "up"});
    }
  }

  bool namespaced() const { return namespaced_; }
  const std::string& why_not() const { return why_not_; }
  /// Where etcd listens: reachable from every node.
  std::string host_ip() const { return namespaced_ ? subnet_ + ".1" : "127.0.0.1"; }
  /// Node `i` (1-based): its address.
  std::string node_ip(int i) const {
    return (namespaced_ ? subnet_ + "." : std::string("127.0.0.")) + std::to_string(10 + i);
  }
  /// `argv` run in node `i`'s namespace (`ip netns exec` execs it: same pid).
  std::vector<std::string> in_node(int i, std::vector<std::string> argv) const {
    if (!namespaced_) return argv;
    std::vector<std::string> out = {"ip", "netns", "exec", ns(i)};
    out.insert(out.end(), argv.begin(), argv.end());
    return out;
  }

 private:
  std::string ns(int i) const { return "mbxmn-" + tag_ + "-n" + std::to_string(i); }
  // What an earlier run killed before its destructor ran (a test timeout) left behind.
  void remove_stale() {
    DIR* d = ::opendir("/run/netns");
    if (!d) return;
    std::set<std::string> stale;
    while (dirent* e = ::readdir(d)) {
      std::string name = e->d_name;
      if (name.rfind("mbxmn-", 0) != 0) continue;
      std::string pid = name.substr(6, name.find('-', 6) - 6);
      if (pid != tag_ && !pid.empty() && !process_alive(std::atoi(pid.c_str()))) {
        run(dir_, {"ip", "netns", "del", name});
        stale.insert(pid);
      }
    }
    ::closedir(d);
    for (const auto& pid : stale)
      run(dir_, {"ip", "link", "del", "mbxmn" + pid});
  }
  std::string bridge() const { return "mbxmn" + tag_; }  // + "v1" etc.: 15 characters at most

  TempDir& dir_;
  std::string tag_, subnet_, why_not_;
  bool namespaced_ = false;
};

// One `meshbox run` node and its admin API (NODE_IP:15000, or a free port on loopback).
struct Node {
  std::string name, ip, state_dir, ready_path, log_path;
  uint16_t admin_port = 0;
  std::optional<ScopedFailureLog> failure_log;
  Process proc;

  std::string admin() const { return ip + ":" + std::to_string(admin_port); }
};

// Starts node `i`; `paths`: the config files it writes into etcd (node 1's only).
void start_node(Node& n, int i, const NodeNetwork& net, TempDir& dir, const std::string& store,
                const std::string& mesh_key, std::vector<std::string> paths) {
  n.name = "n" + std::to_string(i);
  n.ip = net.node_ip(i);
  // Istio's admin port where the node has an address of its own; any free one otherwise.
  n.admin_port = net.namespaced() ? 15000 : free_port();
  n.state_dir = dir.file(n.name + "-state");
  n.ready_path = dir.file(n.name + ".ready");
  n.log_path = dir.file(n.name + ".log");
  std::vector<std::string> argv = {meshbox_bin(), "run"};
  argv.insert(argv.end(), paths.begin(), paths.end());
  std::vector<std::string> flags = {
      "--store",         store,       "--node",       n.name,
      "--node-address",  n.ip,        "--lease-ttl",  std::to_string(kLeaseTtlS) + "s",
      "--mesh-key",      mesh_key,    "--admin",      n.admin(),
      "--state-dir",     n.state_dir, "--ready-file", n.ready_path,
      "--workers",       "1",         "--log-level",  "info",
      "--no-cpu-pinning"};
  argv.insert(argv.end(), flags.begin(), flags.end());
  SpawnOptions spawn;
  spawn.argv = net.in_node(i, argv);
  spawn.stdout_path = spawn.stderr_path = n.log_path;
  n.failure_log.emplace(join(spawn.argv, " "), n.log_path);
  n.proc = Process(spawn);
}

// Waits for the node's ready file (every worker serves its first config).
void wait_ready(Node& n, Deadline deadline) {
  while (!deadline.expired()) {
    std::optional<std::string> text = read_file(n.ready_path);
    if (text && contains(*text, "admin ")) return;
    REQUIRE_MESSAGE(!n.proc.exited(), n.name << " exited at start:\n"
                                             << read_file_tail(n.log_path));
    poll_pause(10ms);
  }
  FAIL(n.name << " did not become ready:\n" << read_file_tail(n.log_path));
}

HttpResponse get(const std::string& addr, const std::string& target,
                 const std::string& host = "bookinfo.example",
                 Deadline deadline = Deadline(kTimeout)) {
  return exchange(addr,
                  "GET " + target + " HTTP/1.1\r\nHost: " + host + "\r\nConnection: close\r\n\r\n",
                  deadline);
}

std::optional<Json> get_json(const std::string& addr, const std::string& target) {
  HttpResponse r = get(addr, target, "admin");
  if (r.status != 200) return std::nullopt;
  return parse_json(r.body);
}

size_t count_of(std::string_view text, std::string_view what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string_view::npos; at = text.find(what, at + 1))
    ++n;
  return n;
}

// Which reviews version rendered a product page that has its details ("v1": no stars, "v2":
// black stars, "v3": red stars); "?" for anything else (an error, reviews or details
// unavailable), as in bookinfo_test.cpp.
std::string page_version(const HttpResponse& r) {
  const std::string& page = r.body;
  if (r.status != 200 || !contains(page, "<title>Simple Bookstore App</title>")) return "?";
  if (!contains(page, "William Shakespeare")) return "?";  // details answered
  size_t full = count_of(page, "class=\"glyphicon glyphicon-star\"");
  size_t black = count_of(page, "style=\"color:black\""),
         red = count_of(page, "style=\"color:red\"");
  if (contains(page, "Reviews served by: reviews-v1<")) return full == 0 ? "v1" : "?";
  if (contains(page, "Reviews served by: reviews-v2<"))
    return full == 9 && black == 10 ? "v2" : "?";
  if (contains(page, "Reviews served by: reviews-v3<")) return full == 9 && red == 10 ? "v3" : "?";
  return "?";
}

// The sum of the Prometheus samples of `name` whose labels include every one of `labels`.
double metric(const std::string& text, const std::string& name,
              const std::map<std::string, std::string>& labels = {}) {
  double sum = 0;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(name + "{", 0) != 0 && line.rfind(name + " ", 0) != 0) continue;
    bool all = true;
    for (const auto& [k, v] : labels)
      all = all && contains(line, k + "=\"" + v + "\"");
    if (all) sum += std::stod(line.substr(line.rfind(' ') + 1));
  }
  return sum;
}

// Node `admin`'s GET /endpoints: the healthy ones, as "HOST version@ADDRESS".
std::multiset<std::string> healthy_endpoints(const std::string& admin) {
  std::multiset<std::string> out;
  std::optional<Json> j = get_json(admin, "/endpoints");
  if (!j) return out;
  for (const Json& e : j->array) {
    const Json* healthy = e.get("healthy");
    const Json* host = e.get("host");
    const Json* address = e.get("address");
    const Json* labels = e.get("labels");
    const Json* version = labels ? labels->get("version") : nullptr;
    if (healthy && healthy->boolean && host && address)
      out.insert(host->string.substr(0, host->string.find('.')) + " " +
                 (version ? version->string : "") + "@" + address->string);
  }
  return out;
}

// Node `admin`'s GET /nodes: the node names.
std::vector<std::string> node_names(const std::string& admin) {
  std::vector<std::string> out;
  std::optional<Json> j = get_json(admin, "/nodes");
  const Json* nodes = j ? j->get("nodes") : nullptr;
  if (nodes)
    for (const Json& n : nodes->array)
      if (const Json* name = n.get("name")) out.push_back(name->string);
  return out;
}

// GET /ready: {"store":{"connected":…}} of a node; nullopt when it does not answer 200 JSON.
std::optional<bool> store_connected(const std::string& admin) {
  std::optional<Json> j = get_json(admin, "/ready");
  const Json* store = j ? j->get("store") : nullptr;
  const Json* connected = store ? store->get("connected") : nullptr;
  if (!connected) return std::nullopt;
  return connected->boolean;
}

// examples/bookinfo/mesh.toml with its programs by absolute path, its gateway on `port` at
// each node's address, health checks every 200 ms, and its workloads placed on the nodes.
std::string bookinfo_config(uint16_t port) {
  const char* dir = ::getenv("BOOKINFO_DIR");
  std::string path =
      (dir && *dir ? std::string(dir) : source_dir() + "/examples/bookinfo") + "/mesh.toml";
  std::string text = read_file(path).value_or("");
  REQUIRE_MESSAGE(!text.empty(), "cannot read " << path);
  const std::pair<const char*, const char*> programs[] = {
      {"meshbox-productpage", "PRODUCTPAGE_BIN"},
      {"meshbox-details", "DETAILS_BIN"},
      {"meshbox-reviews", "REVIEWS_BIN"},
      {"meshbox-ratings", "RATINGS_BIN"}};
  for (const auto& [program, var] : programs)
    REQUIRE(replace_all(text, "command = [\"" + std::string(program) + "\"",
                        "command = [\"" + env_or_throw(var) + "\"") >= 1);
  // No bind: a gateway listens on its node's --node-address.
  REQUIRE(replace_all(text, "port = 8080, bind = \"127.0.0.1\"",
                      "port = " + std::to_string(port)) == 1);
  REQUIRE(replace_all(text, "interval = \"5s\"", "interval = \"200ms\"") == 6);
  const std::pair<const char*, const char*> placement[] = {
      {"productpage-v1", "n1"}, {"details-v1", "n2"}, {"ratings-v1", "n2"},
      {"reviews-v1", "n2"},     {"reviews-v2", "n2"}, {"reviews-v3", "n3"}};
  for (const auto& [workload, node] : placement)
    REQUIRE(replace_all(text, "name = \"" + std::string(workload) + "\"\n",
                        "name = \"" + std::string(workload) + "\"\nnodes = [\"" + node + "\"]\n") ==
            1);
  return text;
}

// 64 hex characters, mode 0600: the mesh key every node gets.
std::string write_mesh_key(TempDir& dir) {
  std::random_device rd;
  std::string hex;
  for (int i = 0; i < 64; ++i)
    hex += "0123456789abcdef"[rd() % 16];
  std::string path = dir.file("mesh.key");
  std::ofstream(path) << hex << "\n";
  REQUIRE(::chmod(path.c_str(), 0600) == 0);
  return path;
}

}  // namespace

TEST_CASE("multinode: Bookinfo on three nodes and etcd; a node killed, etcd stopped and back") {
  if (!etcd_installed()) {
    MESSAGE("SKIPPED: no etcd (/usr/bin/etcd; Debian's etcd-server)");
    return;
  }
  auto started = Deadline::Clock::now();
  TempDir dir;
  NodeNetwork net(dir);
  if (!net.namespaced())
    MESSAGE("no network namespaces (" << net.why_not() << "): the nodes run here on 127.0.0.11-13");
  net.up();
  Etcd etcd(dir, "etcd", net.host_ip());
  ScopedFailureLog etcd_log("etcd", dir.file("etcd.log"));
  etcd.start();

  uint16_t gw_port = free_port();
  std::ofstream(dir.file("bookinfo.toml")) << bookinfo_config(gw_port);
  std::string key = write_mesh_key(dir);
  std::string store = "etcd://" + etcd.endpoint() + "/meshbox/mn";
  std::array<Node, kNodes> nodes;
  for (int i = 1; i <= kNodes; ++i)
    start_node(
        nodes[i - 1], i, net, dir, store, key,
        i == 1 ? std::vector<std::string>{dir.file("bookinfo.toml")} : std::vector<std::string>{});
  Deadline ready_by(20s);
  for (Node& n : nodes)
    wait_ready(n, ready_by);
  Node &n1 = nodes[0], &n2 = nodes[1], &n3 = nodes[2];
  const std::string gw = n1.ip + ":" + std::to_string(gw_port);

  // ---- one mesh: every instance in service on n1, the page through n1's gateway ----------
  std::multiset<std::string> want = {
      "productpage v1@127.0.0.1",  // n1's own instance: its app's loopback address
      "details v1@" + n2.ip,      "ratings v1@" + n2.ip, "reviews v1@" + n2.ip,
      "reviews v2@" + n2.ip,      "reviews v3@" + n3.ip};
  std::multiset<std::string> seen;
  CHECK_MESSAGE(eventually([&] { return (seen = healthy_endpoints(n1.admin())) == want; }, 20s),
                "n1's healthy endpoints: " << join(seen));
  REQUIRE(eventually([&] { return page_version(get(gw, "/productpage")) != "?"; }, 20s));
  int64_t first_page_ms = ms_since(started);

  std::vector<std::string> names;
  CHECK(eventually([&] { return (names = node_names(n1.admin())).size() == 3; }, kTimeout));
  CHECK(names == std::vector<std::string>{"n1", "n2", "n3"});
  RunResult table =
      run_meshbox({"get", "nodes", "--state-dir", n1.state_dir}, dir, Deadline(kTimeout));
  CHECK_MESSAGE((table.status && table.status->ok()), table.out << table.err);
  for (const Node& n : nodes)
    CHECK_MESSAGE(contains(table.out, n.ip), table.out);
  auto gauge = [&](const Node& n, const std::string& name) {
    return metric(get(n.admin(), "/stats/prometheus", "admin").body, name);
  };
  CHECK(gauge(n1, "meshbox_mesh_nodes") == 3);
  CHECK(gauge(n1, "meshbox_store_connected") == 1);

  // Round robin over reviews: versions from n2 (v1, v2) and from n3 (v3).
  std::map<std::string, int> versions;
  for (int i = 0; i < 12; ++i)
    ++versions[page_version(get(gw, "/productpage"))];
  CHECK(versions["?"] == 0);
  CHECK(versions["v1"] + versions["v2"] >= 1);
  CHECK(versions["v3"] >= 1);
  MESSAGE("12 pages through n1's gateway: v1 " << versions["v1"] << ", v2 " << versions["v2"]
                                               << ", v3 " << versions["v3"] << ", bad "
                                               << versions["?"]);

  // The requests crossed nodes over mTLS: n2 (details) and n3 (reviews v3) saw productpage's
  // identity, issued on n1 under the mesh's one root.
  auto mtls_from_productpage = [&](const Node& n, const std::string& workload) {
    return metric(
        get(n.admin(), "/stats/prometheus", "admin").body, "istio_requests_total",
        {{"reporter", "destination"},
         {"source_workload", "productpage-v1"},
         {"source_principal", "spiffe://cluster.local/ns/default/sa/bookinfo-productpage"},
         {"destination_workload", workload},
         {"connection_security_policy", "mutual_tls"},
         {"response_code", "200"}});
  };
  CHECK(eventually([&] { return mtls_from_productpage(n2, "details-v1") >= 1; }, kTimeout));
  CHECK(eventually([&] { return mtls_from_productpage(n3, "reviews-v3") >= 1; }, kTimeout));

  // ---- n3 killed (SIGKILL) under a client loop: its endpoints leave within the TTL --------
  struct Counts {
    std::atomic<int> total{0}, failures{0}, streak{0};
    std::mutex mu;
    std::vector<std::string> samples;  // the first failures
  } counts;                            // the client loop's
  std::jthread client([&](std::stop_token stop) {
    while (!stop.stop_requested()) {
      HttpResponse r = get(gw, "/productpage", "bookinfo.example", Deadline(5s));
      ++counts.total;
      if (page_version(r) != "?") {
        ++counts.streak;
        continue;
      }
      ++counts.failures;
      counts.streak = 0;
      std::lock_guard lock(counts.mu);
      if (counts.samples.size() < 5)
        counts.samples.push_back("\n  " + r.summary() +
                                 (contains(r.body, "unavailable") ? " (unavailable)" : ""));
    }
  });
  REQUIRE(eventually([&] { return counts.total >= 5; }, kTimeout));
  auto killed = Deadline::Clock::now();
  n3.proc.kill_and_wait();
  auto on_n3 = [&] {
    size_t n = 0;
    for (const auto& e : healthy_endpoints(n1.admin()))
      n += contains(e, "@" + n3.ip);
    return n;
  };
  bool left = eventually([&] { return on_n3() == 0; }, std::chrono::seconds(kLeaseTtlS + 5), 50ms);
  int64_t left_ms = ms_since(killed);
  CHECK_MESSAGE(left, "n3's endpoints still on n1 " << left_ms << " ms after the kill");
  int at_left = counts.total;
  CHECK(eventually(
      [&] {
        return node_names(n1.admin()) == std::vector<std::string>{"n1", "n2"};
      },
      kTimeout));
  // Then 20 good pages in a row, all after the endpoints left.
  bool recovered =
      eventually([&] { return counts.streak >= 20 && counts.total >= at_left + 20; }, 20s, 50ms);
  client.request_stop();
  client.join();
  int total = counts.total, failures = counts.failures;
  MESSAGE("n3 killed: its endpoints left n1 after "
          << left_ms << " ms (lease TTL " << kLeaseTtlS << " s); client loop: " << failures
          << " of " << total << " pages failed" << join(counts.samples, ""));
  CHECK(recovered);
  CHECK(failures * 10 <= total);

  // ---- etcd stopped: the nodes keep serving, n1 reports the store degraded ---------------
  etcd.stop();
  CHECK(eventually([&] { return store_connected(n1.admin()) == false; }, kTimeout));
  HttpResponse ready = get(n1.admin(), "/ready", "admin");
  CHECK(ready.status == 200);  // still ready: it serves its last config
  CHECK_MESSAGE(contains(ready.body, "\"degraded\":true"), ready.body);
  CHECK(gauge(n1, "meshbox_store_connected") == 0);
  int good = 0;
  for (int i = 0; i < 20; ++i)
    good += page_version(get(gw, "/productpage")) != "?";
  CHECK(good == 20);

  // ---- etcd back: a virtual_service applied through n2's admin API serves on n1 ----------
  etcd.start();
  CHECK(eventually([&] { return store_connected(n2.admin()) == true; }, 15s));
  const std::string host = "ratings.bookinfo.example";
  CHECK(get(gw, "/ratings/0", host).status == 404);  // the bookinfo route does not match it
  std::ofstream(dir.file("ratings-vs.toml"))
      << "[[virtual_service]]\nname = \"ratings-direct\"\nhosts = [\"" << host
      << "\"]\ngateways = [\"bookinfo-gateway\"]\n"
         "http = [{ route = [{ destination = { host = \"ratings\", port = 9080 } }] }]\n";
  auto applied = Deadline::Clock::now();
  RunResult r =
      run_meshbox({"apply", "-f", dir.file("ratings-vs.toml"), "--state-dir", n2.state_dir}, dir,
                  Deadline(kTimeout));
  REQUIRE_MESSAGE((r.status && r.status->ok()), r.out << r.err);
  HttpResponse rated;
  CHECK_MESSAGE(eventually(
                    [&] {
                      rated = get(gw, "/ratings/0", host);
                      return rated.status == 200 && contains(rated.body, "Reviewer1");
                    },
                    kTimeout),
                rated.summary() << " " << rated.body);
  int64_t apply_ms = ms_since(applied);
  CHECK(store_connected(n1.admin()) == true);

  // ---- two applies at once, on n1 and on n2: both land (the loser of the etcd transaction
  // validates again on top of the winner's change), and both serve on n1 ----------------------
  std::vector<std::string> both_hosts = {"r1.bookinfo.example", "r2.bookinfo.example"};
  std::vector<Process> appliers;
  for (size_t i = 0; i < both_hosts.size(); ++i) {
    std::string file = dir.file("concurrent-" + std::to_string(i) + ".toml");
    std::ofstream(file) << "[[virtual_service]]\nname = \"concurrent-" << i << "\"\nhosts = [\""
                        << both_hosts[i]
                        << "\"]\ngateways = [\"bookinfo-gateway\"]\n"
                           "http = [{ route = [{ destination = { host = \"ratings\", port = 9080 "
                           "} }] }]\n";
    SpawnOptions opts;
    opts.argv = {meshbox_bin(), "apply",       "-f",
                 file,          "--state-dir", i == 0 ? n1.state_dir : n2.state_dir};
    opts.stdout_path = opts.stderr_path = file + ".log";
    appliers.emplace_back(opts);
  }
  for (size_t i = 0; i < appliers.size(); ++i) {
    std::optional<ExitStatus> st = appliers[i].wait(Deadline(kTimeout));
    CHECK_MESSAGE((st && st->ok()),
                  "apply " << i << ": "
                           << read_file(dir.file("concurrent-" + std::to_string(i) + ".toml.log"))
                                  .value_or(""));
  }
  for (const auto& h : both_hosts)
    CHECK_MESSAGE(eventually([&] { return get(gw, "/ratings/0", h).status == 200; }, kTimeout), h);

  // ---- n2 stopped (SIGTERM): it revokes its lease and leaves at once, well within the TTL ---
  auto stopped = Deadline::Clock::now();
  n2.proc.signal(SIGTERM);
  CHECK(eventually([&] { return node_names(n1.admin()) == std::vector<std::string>{"n1"}; },
                   kTimeout, 10ms));
  int64_t leave_ms = ms_since(stopped);
  // A lease left to expire would go 2-3 s after its last keepalive (every TTL/3).
  CHECK_MESSAGE(leave_ms < 1500, "n2 left n1's /nodes " << leave_ms << " ms after SIGTERM");
  std::optional<ExitStatus> n2_exit = n2.proc.wait(Deadline(15s));
  CHECK_MESSAGE((n2_exit && n2_exit->ok()), (n2_exit ? n2_exit->describe() : "still running"));
  MESSAGE("first good page " << first_page_ms
                             << " ms after the test began; apply on n2 → served on n1: " << apply_ms
                             << " ms; n2 left " << leave_ms << " ms after SIGTERM; whole test "
                             << ms_since(started) << " ms ("
                             << (net.namespaced() ? "network namespaces" : "loopback addresses")
                             << ")");
}

}  // namespace meshbox::test
