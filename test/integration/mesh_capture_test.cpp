// Transparent capture (workload capture = "iptables", plane/control/netns.h): `meshbox run`
// with two captured workloads, each in a network namespace of its own that meshbox makes.
// A gateway sends to A (a small Python app); A calls B (meshbox-httpbin) by its plain name,
// `http://b:8001/`, with no HTTP_PROXY: the name is B's virtual IP in A's hosts file, iptables
// in A's namespace hands the connection to A's outbound sidecar, which applies B's mesh route
// (header operations only a sidecar can apply) and sends it to B's namespace address, where
// iptables hands it to B's inbound sidecar and that to the app. Also: a call from inside A's
// namespace to an address outside the mesh (allow_any: passed through to it; registry_only:
// 502), and nothing left (namespaces, veths, hosts files) once meshbox stops.
//
// Needs root and network namespaces: SKIPPED (with a message) without them. Every wait polls
// with a deadline; namespaces of a meshbox this test started are removed even when it fails.
#include <dirent.h>
#include <doctest/doctest.h>
#include <signal.h>
#include <unistd.h>

#include <fstream>
#include <set>

#include "test/support/curl.h"
#include "test/support/deadline.h"
#include "test/support/http_response.h"
#include "test/support/json.h"
#include "test/support/mesh.h"
#include "test/support/meshbox.h"

namespace meshbox::test {
namespace {

using namespace std::chrono_literals;
constexpr auto kTimeout = 20s;

void write(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::trunc) << text;
}

// Runs a command to completion (stdout+stderr into `out`); its exit code, -1 if killed.
int run(TempDir& dir, const std::vector<std::string>& argv, std::string* out = nullptr,
        std::chrono::milliseconds within = kTimeout) {
  static int n = 0;
  std::string log = dir.file("cmd" + std::to_string(n++) + ".out");
  SpawnOptions opts;
  opts.argv = argv;
  opts.stdout_path = opts.stderr_path = log;
  Process p(opts);
  auto status = p.wait(Deadline(within));
  if (!status) p.kill_and_wait();
  if (out) *out = read_file(log).value_or("");
  return status && status->exited ? status->code : -1;
}

// Names in /run/netns starting with `prefix`.
std::set<std::string> namespaces(const std::string& prefix) {
  std::set<std::string> out;
  if (DIR* d = ::opendir("/run/netns")) {
    while (dirent* e = ::readdir(d))
      if (std::string(e->d_name).rfind(prefix, 0) == 0) out.insert(e->d_name);
    ::closedir(d);
  }
  return out;
}

// Host network interfaces starting with `prefix`.
std::set<std::string> interfaces(const std::string& prefix) {
  std::set<std::string> out;
  if (DIR* d = ::opendir("/sys/class/net")) {
    while (dirent* e = ::readdir(d))
      if (std::string(e->d_name).rfind(prefix, 0) == 0) out.insert(e->d_name);
    ::closedir(d);
  }
  return out;
}

// Why this host cannot run the test ("" = it can): root, and a namespace can be made.
std::string cannot_capture(TempDir& dir) {
  if (::geteuid() != 0) return "not root";
  std::string name = "mbxtest-probe-" + std::to_string(::getpid()), out;
  if (run(dir, {"ip", "netns", "add", name}, &out) != 0) return "`ip netns add` failed: " + out;
  run(dir, {"ip", "netns", "del", name});
  if (run(dir, {"iptables-restore", "--version"}, &out) != 0)
    return "iptables-restore is missing: " + out;
  return "";
}

// Removes whatever namespaces and veths meshbox `pid` made, if the test ends before it did.
struct NetnsCleanup {
  TempDir& dir;
  pid_t pid;
  ~NetnsCleanup() {
    for (const auto& n : namespaces("mbx-" + std::to_string(pid) + "-")) {
      run(dir, {"ip", "netns", "del", n});
      std::string etc = "/etc/netns/" + n;
      ::unlink((etc + "/hosts").c_str());
      ::rmdir(etc.c_str());
    }
  }
};

// A: answers /health, and /call?url=URL by fetching URL itself (no proxy, names through
// /etc/hosts) and returning what it got as JSON, with the proxy variables it was given.
constexpr const char* kAppA = R"PY(
import http.server, json, os, sys, urllib.error, urllib.parse, urllib.request
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        status, body = 200, b"ok"
        if self.path.startswith("/call?url="):
            url = urllib.parse.unquote(self.path[len("/call?url="):])
            try:
                with opener.open(url, timeout=10) as r:
                    got = (r.status, dict(r.headers), r.read())
            except urllib.error.HTTPError as e:
                got = (e.code, dict(e.headers), e.read())
            except Exception as e:
                got = (599, {}, str(e).encode())
            body = json.dumps({
                "status": got[0],
                "headers": {k.lower(): v for k, v in got[1].items()},
                "body": got[2].decode("utf-8", "replace"),
                "http_proxy": os.environ.get("HTTP_PROXY", "") + os.environ.get("http_proxy", ""),
            }).encode()
        elif self.path != "/health":
            status, body = 404, b"not found"
        self.send_response(status)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
)PY";

std::string mesh_toml(TempDir& dir, uint16_t gw_port, const std::string& policy) {
  return "[mesh]\noutbound_traffic_policy = \"" + policy +
         "\"\n\n"
         "[[service]]\nname = \"a\"\nport = 8000\n\n"
         "[[service]]\nname = \"b\"\nport = 8001\n\n"
         "[[service]]\nname = \"c\"\nport = 9000\nprotocol = \"tcp\"\n\n"
         "[[workload]]\nname = \"a\"\nservice = \"a\"\ncapture = \"iptables\"\n"
         "command = [\"python3\", \"" +
         dir.file("app_a.py") +
         "\", \"${PORT}\"]\n"
         "health = { http = \"/health\", interval = \"1s\" }\n\n"
         "[[workload]]\nname = \"b\"\nservice = \"b\"\ncapture = \"iptables\"\n"
         "command = [\"" +
         httpbin_bin() +
         "\", \"--listen\", \"127.0.0.1:${PORT}\", \"--name\", \"b\"]\n"
         "health = { http = \"/status/200\", interval = \"1s\" }\n\n"
         // A tcp service outside the mesh's capture: reached by its virtual IP, tunnelled.
         "[[workload]]\nname = \"c\"\nservice = \"c\"\ncommand = [\"" +
         httpbin_bin() +
         "\", \"--listen\", \"127.0.0.1:${PORT}\", \"--name\", \"c\"]\n\n"
         "[[gateway]]\nname = \"edge\"\nservers = [{ port = " +
         std::to_string(gw_port) +
         ", bind = \"127.0.0.1\", protocol = \"http\", hosts = [\"*\"] }]\n\n"
         "[[virtual_service]]\nname = \"a\"\nhosts = [\"*\"]\ngateways = [\"edge\"]\n"
         "http = [{ route = [{ destination = { host = \"a\" } }] }]\n\n"
         // Only a sidecar applies these: A's outbound one, for the mesh (no gateways).
         "[[virtual_service]]\nname = \"b\"\nhosts = [\"b\"]\n"
         "http = [{ headers = { request = { set = { x-mesh-route = \"b-by-sidecar\" } }, "
         "response = { set = { x-b-route = \"applied\" } } }, "
         "route = [{ destination = { host = \"b\" } }] }]\n";
}

// GET /call?url=URL on A through the gateway: the JSON A answers with.
std::optional<Json> call_via_a(const std::string& gw, const std::string& url) {
  auto r = curl_http({"http://" + gw + "/call?url=" + url}, Deadline(kTimeout));
  if (r.status != 200) return std::nullopt;
  return parse_json(r.body);
}

// Inside namespace `ns`: connects to host:port (a name resolves through the namespace's hosts
// file), sends `payload`, and returns every byte read until the peer closes (or 5 s pass).
std::string tcp_in_ns(TempDir& dir, const std::string& ns, const std::string& host,
                      const std::string& port, const std::string& payload) {
  std::string out;
  run(dir,
      {"ip", "netns", "exec", ns, "python3", "-c",
       "import socket, sys\n"
       "s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)\n"
       "s.sendall(sys.argv[3].encode().decode('unicode_escape').encode('latin-1'))\n"
       "got = b''\n"
       "try:\n"
       "    while True:\n"
       "        b = s.recv(65536)\n"
       "        if not b: break\n"
       "        got += b\n"
       "except Exception as e:\n"
       "    got += b'<' + type(e).__name__.encode() + b'>'\n"
       "sys.stdout.write(got.decode('latin-1'))\n",
       host, port, payload},
      &out);
  return out;
}

std::string field(const Json& j, const char* key) {
  return j.get(key) ? j.get(key)->string : "";
}

}  // namespace

TEST_CASE("capture: iptables in per-instance network namespaces, A calls B by name") {
  TempDir dir;
  if (std::string why = cannot_capture(dir); !why.empty()) {
    MESSAGE("SKIPPED: transparent capture needs root and network namespaces: " << why);
    return;
  }
  write(dir.file("app_a.py"), kAppA);
  uint16_t gw_port = free_port();
  std::string gw = "127.0.0.1:" + std::to_string(gw_port);
  std::string config = dir.file("mesh.toml");
  write(config, mesh_toml(dir, gw_port, "allow_any"));
  // Outside the mesh, on every address of the host: reached from A's namespace at meshbox's
  // end of A's veth pair.
  Httpbin outside(dir, "outside", "0.0.0.0:0");

  Mesh mesh(dir, MeshOptions{.paths = {config}});
  pid_t pid = mesh.process().pid();
  NetnsCleanup cleanup{dir, pid};
  std::string prefix = "mbx-" + std::to_string(pid) + "-";

  // Two namespaces; each instance's endpoint is its namespace's address.
  REQUIRE(eventually([&] { return namespaces(prefix).size() == 2; }, kTimeout));
  std::map<std::string, std::string> ip_of;  // service → endpoint address
  REQUIRE(eventually(
      [&] {
        auto r = curl_http({"http://" + mesh.admin() + "/endpoints"}, Deadline(kTimeout));
        auto j = parse_json(r.body);
        if (!j) return false;
        ip_of.clear();
        for (const auto& e : j->array) {
          std::string host = field(e, "host");
          if (host.rfind("a.", 0) == 0 || host.rfind("b.", 0) == 0)
            ip_of[host.substr(0, 1)] = field(e, "address");
        }
        return ip_of.size() == 2;
      },
      kTimeout));
  CHECK(ip_of["a"].rfind("10.250.", 0) == 0);
  CHECK(ip_of["b"].rfind("10.250.", 0) == 0);

  SUBCASE("gateway → A → B by plain name, through both sidecars") {
    std::optional<Json> j;
    REQUIRE(eventually(
        [&] {
          j = call_via_a(gw, "http://b:8001/headers");
          return j && j->get("status") && j->get("status")->number == 200;
        },
        kTimeout));
    INFO("A got: " << field(*j, "body"));
    // No HTTP_PROXY: iptables did the capturing.
    CHECK(field(*j, "http_proxy").empty());
    // A's outbound sidecar applied B's mesh route, both ways.
    const Json* headers = j->get("headers");
    REQUIRE(headers);
    REQUIRE(headers->get("x-b-route"));
    CHECK(headers->get("x-b-route")->string == "applied");
    CHECK(headers->get("x-backend-name"));
    std::string body = field(*j, "body");
    CHECK(body.find("b-by-sidecar") != std::string::npos);
    // B saw the name A called, as A wrote it.
    CHECK(body.find("b:8001") != std::string::npos);

    // The same from a shell in A's namespace (`ip netns exec` uses the same hosts file).
    std::string a_ns;
    for (const auto& n : namespaces(prefix)) {
      std::string addrs;
      run(dir, {"ip", "-n", n, "-o", "-4", "addr", "show"}, &addrs);
      if (addrs.find(ip_of["a"] + "/") != std::string::npos) a_ns = n;
    }
    REQUIRE(!a_ns.empty());
    std::string out;
    CHECK(run(dir, {"ip", "netns", "exec", a_ns, "getent", "hosts", "b"}, &out) == 0);
    CHECK(out.find("240.240.") == 0);
    CHECK(run(dir,
              {"ip", "netns", "exec", a_ns, "curl", "-sS", "--noproxy", "*", "-D", "-",
               "http://b:8001/headers"},
              &out) == 0);
    CHECK(out.find("x-b-route: applied") != std::string::npos);

    // A tcp service by name: its virtual IP and port pick its cluster at accept; the bytes
    // go through untouched (no x-request-id, which the HTTP path would add).
    out = tcp_in_ns(dir, a_ns, "c", "9000",
                    "GET /headers HTTP/1.1\\r\\nHost: c\\r\\nConnection: close\\r\\n\\r\\n");
    CHECK(out.find("HTTP/1.1 200") == 0);
    CHECK(out.find("x-backend-name: c") != std::string::npos);
    CHECK_MESSAGE(out.find("x-request-id") == std::string::npos, out);
  }

  SUBCASE("an address outside the mesh: allow_any passes through, registry_only is 502") {
    // Meshbox's end of A's veth pair: A's address with .1 for .2.
    std::string a_ip = ip_of["a"];
    std::string host_ip = a_ip.substr(0, a_ip.rfind('.')) + "." +
                          std::to_string(std::stoi(a_ip.substr(a_ip.rfind('.') + 1)) - 1);
    std::string port = outside.address().substr(outside.address().rfind(':') + 1);
    std::string url = "http://" + host_ip + ":" + port + "/status/200";
    std::optional<Json> j;
    REQUIRE(eventually(
        [&] {
          j = call_via_a(gw, url);
          return j && j->get("status") && j->get("status")->number != 599;
        },
        kTimeout));
    INFO("A got: " << j->get("status")->number << " " << field(*j, "body"));
    CHECK(j->get("status")->number == 200);
    // Not HTTP (the first byte is no method's): passed through as TCP to where A connected.
    std::string a_ns;
    for (const auto& n : namespaces(prefix)) {
      std::string addrs;
      run(dir, {"ip", "-n", n, "-o", "-4", "addr", "show"}, &addrs);
      if (addrs.find(ip_of["a"] + "/") != std::string::npos) a_ns = n;
    }
    REQUIRE(!a_ns.empty());
    std::string junk = "\\x16\\x03\\x01 not http\\r\\n\\r\\n";
    std::string out = tcp_in_ns(dir, a_ns, host_ip, port, junk);
    CHECK(out.find("HTTP/1.1 400") == 0);  // the outside server's own answer
    CHECK(outside.stats().connections_total >= 2);

    write(config, mesh_toml(dir, gw_port, "registry_only"));
    REQUIRE(mesh.process().signal(SIGHUP));
    CHECK(eventually(
        [&] {
          j = call_via_a(gw, url);
          return j && j->get("status") && j->get("status")->number == 502;
        },
        kTimeout));
    // registry_only: the same non-HTTP connection is reset by the sidecar, unanswered.
    out = tcp_in_ns(dir, a_ns, host_ip, port, junk);
    CHECK(out.find("HTTP") == std::string::npos);
  }

  // Stopping meshbox takes the namespaces, veth pairs and hosts files along.
  REQUIRE(mesh.process().signal(SIGTERM));
  auto status = mesh.process().wait(Deadline(30s));
  REQUIRE(status);
  CHECK(status->ok());
  CHECK(namespaces(prefix).empty());
  char hex[16];
  snprintf(hex, sizeof hex, "mbh%x", static_cast<unsigned>(pid));
  CHECK(interfaces(hex).empty());
  DIR* etc = ::opendir("/etc/netns");
  if (etc) {
    while (dirent* e = ::readdir(etc))
      CHECK(std::string(e->d_name).rfind(prefix, 0) != 0);
    ::closedir(etc);
  }
}

}  // namespace meshbox::test
