// Hot reload under load: clients send requests back to back over keep-alive connections
// while a changed route, policy or log setting is applied every second. No request may fail
// and no connection may be closed or reset: a config change must never cost traffic (Envoy
// drains listeners on such changes; meshbox swaps snapshots between requests).
#include <doctest/doctest.h>

#include <atomic>
#include <fstream>
#include <mutex>
#include <set>
#include <thread>

#include "test/support/deadline.h"
#include "test/support/http_response.h"
#include "test/support/mesh.h"
#include "test/support/meshbox.h"

namespace meshbox::test {
namespace {

using namespace std::chrono_literals;

#ifdef __SANITIZE_ADDRESS__
constexpr int kSeconds = 15;  // the same run, shorter: ASan makes each request ~5x dearer
#else
constexpr int kSeconds = 30;
#endif
constexpr int kClients = 4;

void write(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::trunc) << text;
}

std::string base_config(uint16_t port, const std::string& b1, const std::string& b2) {
  auto host = [](const std::string& a) { return a.substr(0, a.rfind(':')); };
  auto prt = [](const std::string& a) { return a.substr(a.rfind(':') + 1); };
  return "[[service]]\nname = \"httpbin\"\nport = 8000\n\n"
         "[[workload]]\nname = \"v1\"\nservice = \"httpbin\"\naddress = \"" +
         host(b1) + "\"\nport = " + prt(b1) +
         "\nlabels = { version = \"v1\" }\n\n"
         "[[workload]]\nname = \"v2\"\nservice = \"httpbin\"\naddress = \"" +
         host(b2) + "\"\nport = " + prt(b2) +
         "\nlabels = { version = \"v2\" }\n\n"
         "[[destination_rule]]\nname = \"httpbin\"\nhost = \"httpbin\"\n"
         "subsets = [{ name = \"v1\", labels = { version = \"v1\" } }, "
         "{ name = \"v2\", labels = { version = \"v2\" } }]\n\n"
         "[[gateway]]\nname = \"edge\"\nservers = [{ port = " +
         std::to_string(port) +
         ", bind = \"127.0.0.1\", protocol = \"http\", hosts = [\"*\"] }]\n\n"
         "[[virtual_service]]\nname = \"httpbin\"\nhosts = [\"*\"]\ngateways = [\"edge\"]\n"
         "http = [{ route = [{ destination = { host = \"httpbin\", subset = \"v1\" } }] }]\n";
}

// The changes applied in turn: routes (weights, a timeout), a policy (the load balancer),
// and a log setting (the mesh's access log encoding).
std::string change(int i) {
  switch (i % 4) {
    case 0:
      return "[[virtual_service]]\nname = \"httpbin\"\nhosts = [\"*\"]\ngateways = [\"edge\"]\n"
             "http = [{ timeout = \"5s\", route = [\n"
             "  { destination = { host = \"httpbin\", subset = \"v1\" }, weight = 30 },\n"
             "  { destination = { host = \"httpbin\", subset = \"v2\" }, weight = 70 }] }]\n";
    case 1:
      return "[[destination_rule]]\nname = \"httpbin\"\nhost = \"httpbin\"\n"
             "traffic_policy = { load_balancer = \"least_request\" }\n"
             "subsets = [{ name = \"v1\", labels = { version = \"v1\" } }, "
             "{ name = \"v2\", labels = { version = \"v2\" } }]\n";
    case 2:
      return "[[virtual_service]]\nname = \"httpbin\"\nhosts = [\"*\"]\ngateways = [\"edge\"]\n"
             "http = [{ timeout = \"7s\", route = [\n"
             "  { destination = { host = \"httpbin\", subset = \"v2\" } }] }]\n";
    default:
      return std::string("[mesh]\naccess_log_encoding = \"") + (i % 8 == 3 ? "json" : "text") +
             "\"\n";
  }
}

TEST_CASE("run: hot reload under load loses no request and closes no connection") {
  TempDir dir;
  Httpbin b1(dir, "b1"), b2(dir, "b2");
  uint16_t port = free_port();
  write(dir.file("mesh.toml"), base_config(port, b1.address(), b2.address()));
  Mesh mesh(dir, {.paths = {dir.file("mesh.toml")}, .log_level = "info"});
  std::string gw = "127.0.0.1:" + std::to_string(port);

  std::atomic<bool> stop{false};
  std::atomic<uint64_t> ok{0}, failed{0}, closed{0};
  std::mutex mu;
  std::set<std::string> backends;
  std::vector<std::string> failures;
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&] {
      HttpClient conn = HttpClient::connect(gw, Deadline(5s));
      std::set<std::string> seen;
      while (!stop.load(std::memory_order_relaxed)) {
        if (!conn.valid()) break;
        if (!conn.send("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n", Deadline(5s))) {
          closed++;
          std::lock_guard lock(mu);
          failures.push_back("send failed: " + conn.conn().last_error());
          conn = HttpClient::connect(gw, Deadline(5s));
          continue;
        }
        HttpResponse r = conn.read_response(Deadline(10s));
        if (!r.complete || r.status != 200) {
          failed++;
          std::lock_guard lock(mu);
          failures.push_back(r.summary());
          conn = HttpClient::connect(gw, Deadline(5s));
          continue;
        }
        ok++;
        if (const std::string* b = r.header("x-backend-name")) seen.insert(*b);
        if (const std::string* cn = r.header("connection"); cn && *cn == "close") {
          closed++;
          conn = HttpClient::connect(gw, Deadline(5s));
        }
      }
      std::lock_guard lock(mu);
      backends.insert(seen.begin(), seen.end());
    });
  }

  int applied = 0;
  Deadline end{std::chrono::seconds(kSeconds)};
  auto next = std::chrono::steady_clock::now();
  for (int i = 0; !end.expired(); ++i) {
    next += 1s;
    write(dir.file("change.toml"), change(i));
    auto r = mesh.cli({"apply", "-f", dir.file("change.toml"), "--wait"});
    INFO(r.err);
    CHECK(r.status->ok());
    ++applied;
    std::this_thread::sleep_until(next);  // one change a second, as the scenario says
  }
  stop = true;
  for (auto& t : clients)
    t.join();

  MESSAGE("hot reload: " << applied << " changes in " << kSeconds << " s, " << ok.load()
                         << " requests ok, " << failed.load() << " failed, " << closed.load()
                         << " connections closed");
  for (size_t i = 0; i < failures.size() && i < 5; ++i)
    MESSAGE("failure: " << failures[i]);
  CHECK(failed.load() == 0);
  CHECK(closed.load() == 0);
  CHECK(ok.load() > static_cast<uint64_t>(kSeconds) * 100);
  CHECK(applied >= kSeconds - 1);
  CHECK(backends == std::set<std::string>{"b1", "b2"});
}

}  // namespace
}  // namespace meshbox::test
