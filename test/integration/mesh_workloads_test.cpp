// `meshbox run` running workloads as processes (docs/mesh.md, "Workloads as processes"):
// meshbox-httpbin as the workload command behind a gateway. Traffic reaches the replicas once
// they pass their health check; a replica killed with SIGKILL leaves the endpoints and comes
// back on the same port after its back-off; output appears prefixed on meshbox's stderr and in
// STATE_DIR/logs; a workload changed by `meshbox apply` restarts only when its process would
// differ; one removed by `meshbox delete` is stopped; SIGTERM to meshbox stops every child
// before it exits 0; a command that fails at once is restarted with back-off; SIGKILL to
// meshbox takes its children along (PR_SET_PDEATHSIG). Every wait polls with a deadline.
#include <doctest/doctest.h>
#include <signal.h>

#include <fstream>
#include <map>
#include <set>
#include <thread>

#include "test/support/curl.h"
#include "test/support/deadline.h"
#include "test/support/http_response.h"
#include "test/support/json.h"
#include "test/support/mesh.h"
#include "test/support/meshbox.h"

namespace meshbox::test {
namespace {

using namespace std::chrono_literals;
constexpr auto kTimeout = 10s;

void write(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::trunc) << text;
}

// GET / through the gateway: the status and the replica that answered (x-backend-name).
std::pair<int, std::string> get(const std::string& gw) {
  HttpResponse r = exchange(gw, "GET / HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n",
                            Deadline(kTimeout));
  const std::string* b = r.header("x-backend-name");
  return {r.complete ? r.status : 0, b ? *b : ""};
}

struct Instance {
  std::string state, last_exit;
  int pid = 0;
  int port = 0;
  int restarts = 0;
  bool ready = false;
};

// GET /workloads, by instance name.
std::map<std::string, Instance> workloads(const Mesh& mesh) {
  std::map<std::string, Instance> out;
  auto r = curl_http({"http://" + mesh.admin() + "/workloads"}, Deadline(kTimeout));
  auto j = parse_json(r.body);
  if (r.status != 200 || !j) return out;
  for (const auto& w : j->array) {
    Instance i;
    auto str = [&](const char* k) { return w.get(k) ? w.get(k)->string : std::string(); };
    auto num = [&](const char* k) { return w.get(k) ? static_cast<int>(w.get(k)->number) : 0; };
    i.state = str("state");
    i.last_exit = str("last_exit");
    i.pid = num("pid");
    i.port = num("port");
    i.restarts = num("restarts");
    i.ready = w.get("ready") && w.get("ready")->boolean;
    out[str("instance")] = i;
  }
  return out;
}

// Whether an endpoint on 127.0.0.1:PORT is listed.
bool endpoint_listed(const Mesh& mesh, int port) {
  auto r = curl_http({"http://" + mesh.admin() + "/endpoints"}, Deadline(kTimeout));
  auto j = parse_json(r.body);
  if (!j) return false;
  for (const auto& e : j->array)
    if (e.get("port") && static_cast<int>(e.get("port")->number) == port) return true;
  return false;
}

std::string workload_toml(const std::string& name, const std::string& service, int replicas,
                          const std::string& extra = "") {
  return "[[workload]]\nname = \"" + name + "\"\nservice = \"" + service +
         "\"\nreplicas = " + std::to_string(replicas) + "\ncommand = [\"" + httpbin_bin() +
         "\", \"--listen\", \"127.0.0.1:${PORT}\", \"--name\", \"" + name +
         "-${PORT}\"]\nhealth = { http = \"/status/200\", interval = \"1s\" }\n" + extra + "\n";
}

std::string mesh_toml(uint16_t gw_port) {
  return "[[service]]\nname = \"httpbin\"\nport = 8000\n\n"
         "[[service]]\nname = \"solo\"\nport = 8001\n\n" +
         workload_toml("w", "httpbin", 2) + workload_toml("solo", "solo", 1) +
         "[[gateway]]\nname = \"edge\"\nservers = [{ port = " + std::to_string(gw_port) +
         ", bind = \"127.0.0.1\", protocol = \"http\", hosts = [\"*\"] }]\n\n"
         "[[virtual_service]]\nname = \"httpbin\"\nhosts = [\"*\"]\ngateways = [\"edge\"]\n"
         "http = [{ route = [{ destination = { host = \"httpbin\" } }] }]\n";
}

TEST_CASE("workloads: replicas serve, restart after SIGKILL, log, reload, delete, stop") {
  TempDir dir;
  uint16_t port = free_port();
  write(dir.file("mesh.toml"), mesh_toml(port));
  Mesh mesh(dir, {.paths = {dir.file("mesh.toml")}});
  std::string gw = "127.0.0.1:" + std::to_string(port);

  // Both replicas run, pass their check, and answer.
  std::map<std::string, Instance> ws;
  REQUIRE_MESSAGE(eventually([&] {
                    ws = workloads(mesh);
                    return ws.size() == 3 && ws["w-0"].ready && ws["w-1"].ready && ws["solo"].ready;
                  }),
                  mesh.log());
  CHECK(ws["w-0"].state == "running");
  CHECK(ws["w-0"].port != ws["w-1"].port);
  CHECK(ws["w-0"].restarts == 0);
  std::string name0 = "w-" + std::to_string(ws["w-0"].port);
  std::string name1 = "w-" + std::to_string(ws["w-1"].port);
  std::set<std::string> seen;
  CHECK(eventually([&] {
    auto [status, backend] = get(gw);
    if (status == 200) seen.insert(backend);
    return seen.size() == 2;
  }));
  CHECK(seen == std::set<std::string>{name0, name1});

  // Output: prefixed on meshbox's stderr, and in STATE_DIR/logs/INSTANCE.log.
  std::string listening = "listening on 127.0.0.1:" + std::to_string(ws["w-0"].port);
  CHECK(eventually([&] {
    std::string log = mesh.log(1 << 20);
    return log.find("[w-0] ") != std::string::npos && log.find(listening) != std::string::npos;
  }));
  CHECK(read_file(mesh.state_dir() + "/logs/w-0.log").value_or("").find(listening) !=
        std::string::npos);
  CHECK(read_file(mesh.state_dir() + "/logs/w-1.log").has_value());

  // `meshbox get workloads` shows the same.
  auto table = mesh.cli({"get", "workloads"});
  REQUIRE(table.status);
  CHECK(table.status->ok());
  CHECK(table.out.find("INSTANCE") != std::string::npos);
  CHECK(table.out.find(std::to_string(ws["w-1"].pid)) != std::string::npos);

  // SIGKILL to w-0: its endpoint leaves, traffic goes to w-1 (or 503 while the snapshot
  // catches up); it restarts after 1 s on the same port and serves again.
  int old_pid = ws["w-0"].pid;
  int port0 = ws["w-0"].port;
  REQUIRE(::kill(old_pid, SIGKILL) == 0);
  CHECK(eventually([&] { return !endpoint_listed(mesh, port0); }, 5s));
  // Until it is back (at least the 1 s back-off): answered by w-1, or 503.
  int answered = 0;
  for (int i = 0; i < 5; ++i) {
    auto [status, backend] = get(gw);
    if (endpoint_listed(mesh, port0)) break;  // back already: it may have answered this one
    ++answered;
    CHECK((status == 503 || (status == 200 && backend == name1)));
  }
  CHECK(answered > 0);
  REQUIRE_MESSAGE(eventually([&] {
                    ws = workloads(mesh);
                    return ws["w-0"].restarts == 1 && ws["w-0"].ready;
                  }),
                  mesh.log());
  CHECK(ws["w-0"].pid != old_pid);
  CHECK(ws["w-0"].port == port0);
  CHECK(ws["w-0"].last_exit.find("signal 9") != std::string::npos);
  CHECK(mesh.log(1 << 20).find("w-0: pid " + std::to_string(old_pid) + " exited with signal 9") !=
        std::string::npos);
  seen.clear();
  CHECK(eventually([&] {
    auto [status, backend] = get(gw);
    if (status == 200) seen.insert(backend);
    return seen.count(name0) > 0;
  }));

  // apply: new labels keep solo's process; a new env restarts it on the same port.
  int solo_pid = ws["solo"].pid;
  write(dir.file("solo.toml"), workload_toml("solo", "solo", 1, "labels = { version = \"v2\" }"));
  auto applied = mesh.cli({"apply", "-f", dir.file("solo.toml"), "--wait"});
  REQUIRE(applied.status);
  CHECK(applied.status->ok());
  CHECK(workloads(mesh)["solo"].pid == solo_pid);
  write(dir.file("solo.toml"), workload_toml("solo", "solo", 1, "env = { MODE = \"fast\" }"));
  applied = mesh.cli({"apply", "-f", dir.file("solo.toml"), "--wait"});
  REQUIRE(applied.status);
  CHECK(applied.status->ok());
  CHECK(eventually([&] {
    ws = workloads(mesh);
    return ws["solo"].state == "running" && ws["solo"].pid != solo_pid;
  }));
  CHECK_FALSE(process_alive(solo_pid));
  // w was not touched by any of it.
  CHECK(ws["w-1"].restarts == 0);

  // delete: stopped and gone.
  solo_pid = ws["solo"].pid;
  auto deleted = mesh.cli({"delete", "workload", "solo", "--wait"});
  REQUIRE(deleted.status);
  CHECK_MESSAGE(deleted.status->ok(), deleted.err);
  CHECK(eventually([&] { return !process_alive(solo_pid) && !workloads(mesh).count("solo"); }));

  // SIGTERM: the children stop first, then meshbox exits 0.
  ws = workloads(mesh);
  std::vector<int> pids = {ws["w-0"].pid, ws["w-1"].pid};
  REQUIRE(mesh.process().signal(SIGTERM));
  auto exit = mesh.process().wait(Deadline(15s));
  REQUIRE_MESSAGE(exit.has_value(), mesh.log());
  CHECK_MESSAGE(exit->ok(), exit->describe());
  for (int pid : pids)
    CHECK_FALSE(process_alive(pid));
  std::string log = mesh.log(1 << 20);
  auto stopping = log.find("stopping the workload processes");
  auto draining = log.find("draining");
  CHECK(stopping != std::string::npos);
  CHECK(draining != std::string::npos);
  CHECK(stopping < draining);
}

TEST_CASE("workloads: a failing command backs off; children die with a SIGKILLed meshbox") {
  TempDir dir;
  write(dir.file("mesh.toml"),
        "[[service]]\nname = \"crash\"\nport = 8000\n\n"
        "[[workload]]\nname = \"crash\"\nservice = \"crash\"\n"
        "command = [\"/bin/sh\", \"-c\", \"echo failing at once; exit 1\"]\n\n"
        "[[service]]\nname = \"httpbin\"\nport = 8001\n\n" +
            workload_toml("keep", "httpbin", 1));
  Mesh mesh(dir, {.paths = {dir.file("mesh.toml")}});
  auto start = Deadline::Clock::now();

  // Started, failed, restarted after 1 s, then 2 s: not a busy loop.
  std::map<std::string, Instance> ws;
  REQUIRE_MESSAGE(eventually([&] {
                    ws = workloads(mesh);
                    return ws["crash"].restarts >= 2 && ws["keep"].ready;
                  }),
                  mesh.log());
  CHECK(ws["crash"].last_exit == "exit status 1");
  // Restarts at ~1 s and ~3 s (then ~7 s): no more than that in the time it took.
  int64_t elapsed = ms_since(start);
  ws = workloads(mesh);
  int expected_max = elapsed < 3'000 ? 2 : elapsed < 7'000 ? 3 : 4;
  CHECK_MESSAGE(ws["crash"].restarts <= expected_max, "after ", elapsed, " ms");
  std::string log = read_file(mesh.state_dir() + "/logs/crash.log").value_or("");
  CHECK(log.find("failing at once\nfailing at once\n") != std::string::npos);
  CHECK(mesh.log(1 << 20).find("[crash] failing at once") != std::string::npos);

  // meshbox dies without a chance to stop them: PR_SET_PDEATHSIG does.
  int pid = ws["keep"].pid;
  REQUIRE(process_alive(pid));
  mesh.process().kill_and_wait();
  CHECK(eventually([&] { return !process_alive(pid); }, 5s));
}

}  // namespace
}  // namespace meshbox::test
