// Tests for plane/control/registry.h: endpoints from a decoded config (workloads, service
// entries), API registration, change coalescing, and active health checks against real
// backends on 127.0.0.1 port 0 (HTTP answering 200 then 503, a backend killed and restarted on
// the same port, TCP checks, a backend that never answers, a registry destroyed mid-probe).
// No sleeps: the loop runs until a condition holds, with a deadline. Every test ends with
// the loop closed clean.
#include "plane/control/registry.h"

#include <doctest/doctest.h>

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/loop/address.h"
#include "core/loop/loop.h"
#include "core/loop/tcp_conn.h"
#include "core/loop/tcp_listener.h"
#include "plane/config/error.h"
#include "plane/config/load.h"
#include "test/support/test_loop.h"

namespace meshbox::control {
namespace {

using namespace std::chrono_literals;
using loop::run_until;

constexpr const char* kHost = "api.default.svc.cluster.local";

loop::Address loopback(uint16_t port = 0) {
  auto a = loop::Address::parse("127.0.0.1:" + std::to_string(port));
  REQUIRE(a.has_value());
  return *a;
}

std::string http_response(int status) {
  return "HTTP/1.1 " + std::to_string(status) +
         " X\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";
}

// A health-check target on 127.0.0.1: answers every request with `response` (or never, if
// `silent`) and counts what it saw. stop() closes the listener and every connection, so
// the next connect is refused; start(port) listens again on the same port.
class Backend {
 public:
  explicit Backend(loop::Loop& loop) : loop_(loop) { start(0); }

  void start(uint16_t port) {
    auto fd = loop::bind_reuseport(loopback(port));
    REQUIRE(fd.has_value());
    auto l = loop::TcpListener::open(loop_, *fd, [this](loop::TcpConnPtr c) {
      conns_.push_back(std::make_unique<Conn>(*this, std::move(c)));
    });
    REQUIRE(l.has_value());
    listener_ = std::move(*l);
    port_ = listener_->address().port();
  }
  void stop() {
    listener_.reset();
    conns_.clear();
    open = 0;
  }
  uint16_t port() const { return port_; }

  std::string response = http_response(200);
  bool silent = false;
  int accepted = 0;
  int open = 0;  // connections not yet closed by the peer
  int max_open = 0;
  int requests = 0;
  std::map<int, int> answered;  // status → count (parsed from `response`)
  std::string last_request;

 private:
  class Conn : public loop::TcpConnCallbacks {
   public:
    Conn(Backend& b, loop::TcpConnPtr c) : b_(b), conn_(std::move(c)) {
      conn_->set_callbacks(this);
      conn_->read_start();
      ++b_.accepted;
      b_.max_open = std::max(b_.max_open, ++b_.open);
    }
    ~Conn() override { end(); }
    void on_data(const char* data, size_t len) override {
      buf_.append(data, len);
      if (done_ || buf_.find("\r\n\r\n") == std::string::npos) return;
      done_ = true;
      ++b_.requests;
      b_.last_request = buf_;
      if (b_.silent) return;
      ++b_.answered[std::stoi(b_.response.substr(9, 3))];
      conn_->write(b_.response);
      conn_->shutdown();
    }
    // The prober closes after the head (or after connecting, for TCP checks).
    void on_eof() override { end(); }
    void on_error(int) override { end(); }

   private:
    void end() {
      if (!conn_) return;
      --b_.open;
      conn_.reset();  // allowed inside a TcpConn callback
    }
    Backend& b_;
    loop::TcpConnPtr conn_;
    std::string buf_;
    bool done_ = false;
  };

  loop::Loop& loop_;
  std::unique_ptr<loop::TcpListener> listener_;
  std::vector<std::unique_ptr<Conn>> conns_;
  uint16_t port_ = 0;
};

config::HealthCheck http_check(std::chrono::milliseconds interval,
                               std::chrono::milliseconds timeout, uint32_t healthy,
                               uint32_t unhealthy) {
  config::HealthCheck h;
  h.http = "/health";
  h.interval = interval;
  h.timeout = timeout;
  h.healthy_threshold = healthy;
  h.unhealthy_threshold = unhealthy;
  return h;
}

Endpoint endpoint(uint32_t port, std::optional<config::HealthCheck> check = std::nullopt,
                  std::string address = "127.0.0.1") {
  Endpoint ep;
  ep.host = kHost;
  ep.ns = "default";
  ep.address = std::move(address);
  ep.port = port;
  ep.labels = {{"app", "api"}};
  ep.health_check = std::move(check);
  return ep;
}

// What the registry's OnChange saw: the health of the first endpoint, and a caller-chosen
// count (the backend's answers) at that moment.
struct Changes {
  struct Seen {
    bool healthy;
    int count;
  };
  std::vector<Seen> seen;
  size_t calls() const { return seen.size(); }
};

config::Config load(std::string_view toml) {
  config::Loaded l = config::load_string(toml);
  std::string findings;
  for (const auto& f : l.findings)
    findings += config::format(f) + "\n";
  INFO(findings);
  REQUIRE(l.ok());
  return std::move(l.config);
}

// ---------------------------------------------------------------------------------------

TEST_CASE("registry: Endpoint::key and port_for") {
  Endpoint ep = endpoint(8080);
  CHECK(ep.key() == "api.default.svc.cluster.local 127.0.0.1:8080");

  config::Port http{.number = 80, .name = "http", .protocol = config::Protocol::Http};
  config::Port pg{
      .number = 5432, .name = "pg", .protocol = config::Protocol::Tcp, .target_port = 5433};
  CHECK(ep.port_for(http) == 8080);  // the endpoint's own port
  ep.port = 0;
  CHECK(ep.port_for(http) == 80);  // the service port
  CHECK(ep.port_for(pg) == 5433);  // its target port
  ep.named_ports = {{"pg", 6432}};
  CHECK(ep.port_for(pg) == 6432);  // by port name, before anything else
  CHECK(ep.port_for(http) == 80);
}

TEST_CASE("registry: endpoints_from_config: workloads") {
  config::Config c = load(R"(
[mesh]
domain_suffix = "mesh.local"

[[service]]
name = "reviews"
port = 9080

[[service]]
name = "cart"
namespace = "shop"
port = 80

[[workload]]
name = "reviews-v1"
service = "reviews"
labels = { version = "v1" }
port = 9001
locality = "eu/zone-a"
health = { http = "/health", interval = "2s" }

[[workload]]
name = "reviews-v2"
service = "reviews"
labels = { app = "reviews-custom", version = "v2" }
address = "127.0.0.2"
port = 9002
weight = 5

[[workload]]
name = "reviews-v3"
service = "reviews"
command = ["true"]

[[workload]]
name = "cart"
namespace = "shop"
service = "cart"
port = 9100
health = { tcp = true }
)");
  std::vector<Endpoint> eps = endpoints_from_config(c);
  // reviews-v3 has port 0: meshbox picks its port when it starts it (not yet here).
  REQUIRE(eps.size() == 3);
  // Sorted by key: cart.shop… < reviews.default…
  CHECK(eps[0].key() == "cart.shop.svc.mesh.local 127.0.0.1:9100");
  CHECK(eps[0].ns == "shop");
  CHECK(eps[0].source == "workload/shop/cart");
  REQUIRE(eps[0].health_check.has_value());
  CHECK(eps[0].health_check->tcp);

  const Endpoint& v1 = eps[1];
  CHECK(v1.host == "reviews.default.svc.mesh.local");
  CHECK(v1.ns == "default");
  CHECK(v1.address == "127.0.0.1");
  CHECK(v1.port == 9001);
  CHECK(v1.named_ports.empty());
  CHECK(v1.labels == config::Labels{{"app", "reviews"}, {"version", "v1"}});  // app added
  CHECK(v1.locality == "eu/zone-a");
  CHECK(v1.weight == 1);  // 0 → 1
  CHECK(v1.source == "workload/default/reviews-v1");
  REQUIRE(v1.health_check.has_value());
  CHECK(v1.health_check->http == "/health");
  CHECK(v1.health_check->interval == std::chrono::seconds(2));
  CHECK(v1.healthy);

  const Endpoint& v2 = eps[2];
  CHECK(v2.key() == "reviews.default.svc.mesh.local 127.0.0.2:9002");
  CHECK(v2.labels.at("app") == "reviews-custom");  // written app is kept
  CHECK(v2.weight == 5);
  CHECK_FALSE(v2.health_check.has_value());
}

TEST_CASE("registry: endpoints_from_config: service entries") {
  config::Config c = load(R"(
[[service_entry]]
name = "db"
namespace = "data"
hosts = ["db.example.com", "db-ro.example.com"]
addresses = ["10.1.0.0/16"]
ports = [{ number = 5432, name = "pg", protocol = "tcp", target_port = 5433 }]
location = "mesh_internal"
resolution = "static"
endpoints = [
  { address = "10.1.0.10", labels = { role = "primary" }, locality = "eu/a", weight = 3 },
  { address = "10.1.0.11", ports = { pg = 6432 } },
]

[[service_entry]]
name = "httpbin"
hosts = ["httpbin.org"]
ports = [{ number = 80, name = "http", protocol = "http" }]
resolution = "dns"

[[service_entry]]
name = "passthrough"
hosts = ["example.net"]
ports = [{ number = 443, name = "tls", protocol = "tls" }]
)");
  std::vector<Endpoint> eps = endpoints_from_config(c);
  // db: 2 hosts × 2 endpoints; httpbin: one per host; passthrough (resolution none): none.
  REQUIRE(eps.size() == 5);
  std::vector<std::string> keys;
  for (const auto& ep : eps)
    keys.push_back(ep.key());
  CHECK(keys == std::vector<std::string>{
                    "db-ro.example.com 10.1.0.10:0",
                    "db-ro.example.com 10.1.0.11:0",
                    "db.example.com 10.1.0.10:0",
                    "db.example.com 10.1.0.11:0",
                    "httpbin.org httpbin.org:0",
                });
  const Endpoint& primary = eps[2];
  CHECK(primary.ns == "data");
  CHECK(primary.source == "service_entry/data/db");
  CHECK(primary.labels == config::Labels{{"role", "primary"}});
  CHECK(primary.locality == "eu/a");
  CHECK(primary.weight == 3);
  CHECK(primary.named_ports.empty());
  CHECK_FALSE(primary.health_check.has_value());
  const Endpoint& replica = eps[3];
  CHECK(replica.weight == 1);
  CHECK(replica.named_ports == std::map<std::string, uint32_t>{{"pg", 6432}});
  const config::Port& pg = c.service_entries[0].ports[0];
  CHECK(primary.port_for(pg) == 5433);
  CHECK(replica.port_for(pg) == 6432);

  const Endpoint& dns = eps[4];
  CHECK(dns.host == "httpbin.org");
  CHECK(dns.address == "httpbin.org");  // resolved later by the compiler
  CHECK(dns.port == 0);
  CHECK(dns.source == "service_entry/default/httpbin");
  CHECK(dns.port_for(c.service_entries[1].ports[0]) == 80);
}

TEST_CASE("registry: register and deregister") {
  loop::Loop loop;
  {
    int changes = 0;
    Registry r(loop, [&] { ++changes; });

    SUBCASE("rejects what cannot be an endpoint") {
      Endpoint e = endpoint(8080);
      e.address = "backend.example.com";
      Status s = r.register_endpoint(e);
      CHECK(s.code() == Code::InvalidArgument);
      CHECK(s.message().find("not an IP") != std::string::npos);
      CHECK(r.register_endpoint(endpoint(0)).code() == Code::InvalidArgument);
      CHECK(r.register_endpoint(endpoint(70000)).code() == Code::InvalidArgument);
      Endpoint no_host = endpoint(8080);
      no_host.host.clear();
      CHECK(r.register_endpoint(no_host).code() == Code::InvalidArgument);
      config::HealthCheck both = http_check(1s, 1s, 1, 1);
      both.tcp = true;
      CHECK(r.register_endpoint(endpoint(8080, both)).code() == Code::InvalidArgument);
      config::HealthCheck zero = http_check(0ms, 1s, 1, 1);
      CHECK(r.register_endpoint(endpoint(8080, zero)).code() == Code::InvalidArgument);
      CHECK(r.endpoints().empty());
    }

    SUBCASE("register, replace, deregister") {
      Endpoint a = endpoint(8081, std::nullopt, "::1");
      a.source = "whatever";  // forced to "api"
      a.weight = 0;
      REQUIRE(r.register_endpoint(a).is_ok());
      REQUIRE(r.register_endpoint(endpoint(8080)).is_ok());
      REQUIRE(r.endpoints().size() == 2);
      CHECK(r.endpoints()[0].key() == "api.default.svc.cluster.local 127.0.0.1:8080");
      CHECK(r.endpoints()[1].key() == "api.default.svc.cluster.local ::1:8081");
      CHECK(r.endpoints()[1].source == "api");
      CHECK(r.endpoints()[1].weight == 1);

      Endpoint again = endpoint(8080);
      again.labels["version"] = "v2";
      REQUIRE(r.register_endpoint(again).is_ok());
      REQUIRE(r.endpoints().size() == 2);
      CHECK(r.endpoints()[0].labels.at("version") == "v2");

      CHECK(r.deregister_endpoint(kHost, "::1", 8081));
      CHECK_FALSE(r.deregister_endpoint(kHost, "::1", 8081));
      CHECK_FALSE(r.deregister_endpoint("other", "127.0.0.1", 8080));
      REQUIRE(r.endpoints().size() == 1);
      CHECK(r.endpoints()[0].port == 8080);
      CHECK(run_until(
          loop, [&] { return changes == 1; }, 5s));
    }

    SUBCASE("a config endpoint with the same key wins; config and API coexist") {
      Endpoint cfg = endpoint(8080);
      cfg.source = "workload/default/api";
      cfg.labels["from"] = "config";
      r.set_config_endpoints({cfg, endpoint(9090)});
      Endpoint api = endpoint(8080);
      api.labels["from"] = "api";
      REQUIRE(r.register_endpoint(api).is_ok());
      REQUIRE(r.register_endpoint(endpoint(7070)).is_ok());
      REQUIRE(r.endpoints().size() == 3);
      CHECK(r.endpoints()[1].port == 8080);
      CHECK(r.endpoints()[1].labels.at("from") == "config");
      // The config endpoint goes: the API one it shadowed shows.
      r.set_config_endpoints({endpoint(9090)});
      REQUIRE(r.endpoints().size() == 3);
      CHECK(r.endpoints()[1].labels.at("from") == "api");
      CHECK(r.endpoints()[1].source == "api");
      // API endpoints survive config replacement; config ones are replaced whole.
      r.set_config_endpoints({});
      REQUIRE(r.endpoints().size() == 2);
      CHECK(r.endpoints()[0].port == 7070);
      CHECK(r.endpoints()[1].port == 8080);
    }
  }
  CHECK(loop.close().is_ok());
}

TEST_CASE("registry: changes are coalesced and never reported re-entrantly") {
  loop::Loop loop;
  {
    int changes = 0;
    auto r = std::make_unique<Registry>(loop, [&] { ++changes; });

    SUBCASE("several changes in one call stack: one OnChange, after the calls returned") {
      REQUIRE(r->register_endpoint(endpoint(8080)).is_ok());
      REQUIRE(r->register_endpoint(endpoint(8081)).is_ok());
      r->set_config_endpoints({endpoint(9090)});
      CHECK(r->deregister_endpoint(kHost, "127.0.0.1", 8081));
      CHECK(changes == 0);  // not from inside the calls
      CHECK(run_until(
          loop, [&] { return changes == 1; }, 5s));
      // Nothing more comes.
      CHECK_FALSE(run_until(
          loop, [&] { return changes > 1; }, 50ms));

      // Setting the same endpoints again is no change.
      r->set_config_endpoints({endpoint(9090)});
      REQUIRE(r->register_endpoint(endpoint(8080)).is_ok());
      CHECK_FALSE(run_until(
          loop, [&] { return changes > 1; }, 50ms));

      // A later change is reported again.
      r->set_config_endpoints({});
      CHECK(run_until(
          loop, [&] { return changes == 2; }, 5s));
    }

    SUBCASE("OnChange may destroy the registry") {
      r = std::make_unique<Registry>(loop, [&] {
        ++changes;
        r.reset();
      });
      REQUIRE(r->register_endpoint(endpoint(8080)).is_ok());
      CHECK(run_until(
          loop, [&] { return r == nullptr; }, 5s));
      CHECK(changes == 1);
    }

    SUBCASE("a registry destroyed before its OnChange fires never calls it") {
      REQUIRE(r->register_endpoint(endpoint(8080)).is_ok());
      r.reset();
      CHECK_FALSE(run_until(
          loop, [&] { return changes > 0; }, 50ms));
    }
  }
  CHECK(loop.close().is_ok());
}

TEST_CASE("registry: HTTP check: 503s take the endpoint out, 200s bring it back") {
  loop::Loop loop;
  {
    Backend backend(loop);
    Changes changes;
    Registry r(loop, [&] {
      changes.seen.push_back({r.endpoints().at(0).healthy, backend.answered[503]});
    });
    REQUIRE(r.register_endpoint(endpoint(backend.port(), http_check(20ms, 1s, 2, 3))).is_ok());
    CHECK(run_until(
        loop, [&] { return changes.calls() == 1; }, 5s));  // the registration
    changes.seen.clear();

    // Probes start at once and pass: healthy, and no OnChange for passes.
    CHECK(run_until(
        loop, [&] { return backend.answered[200] >= 3; }, 10s));
    CHECK(r.endpoints()[0].healthy);
    CHECK(changes.calls() == 0);
    CHECK(backend.last_request ==
          "GET /health HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(backend.port()) +
              "\r\nUser-Agent: meshbox-health-check/1\r\nConnection: close\r\n\r\n");

    // Out after exactly 3 failures in a row.
    backend.response = http_response(503);
    CHECK(run_until(
        loop, [&] { return !changes.seen.empty(); }, 10s));
    REQUIRE(changes.calls() == 1);
    CHECK_FALSE(changes.seen[0].healthy);
    CHECK(changes.seen[0].count == 3);
    CHECK_FALSE(r.endpoints()[0].healthy);
    // More failures: no more OnChange (only transitions report).
    CHECK(run_until(
        loop, [&] { return backend.answered[503] >= 6; }, 10s));
    CHECK(changes.calls() == 1);

    // Back after exactly 2 passes in a row.
    int passes_before = backend.answered[200];
    backend.response = http_response(200);
    CHECK(run_until(
        loop, [&] { return changes.calls() == 2; }, 10s));
    CHECK(changes.seen[1].healthy);
    CHECK(backend.answered[200] - passes_before == 2);
    CHECK(r.endpoints()[0].healthy);
    CHECK(backend.max_open == 1);  // never more than one probe in flight
  }
  CHECK(loop.close().is_ok());
}

TEST_CASE("registry: HTTP check: which answers pass") {
  loop::Loop loop;
  {
    Backend backend(loop);
    int changes = 0;
    Registry r(loop, [&] { ++changes; });
    // unhealthy_threshold 1: a single failure shows.
    REQUIRE(r.register_endpoint(endpoint(backend.port(), http_check(10ms, 1s, 1, 1))).is_ok());
    CHECK(run_until(
        loop, [&] { return changes == 1; }, 5s));

    auto passes = [&](const std::string& response) {
      backend.response = response;
      int before = backend.requests;
      // Two probes answered with this response; the second starts after the first ended.
      REQUIRE(run_until(
          loop, [&] { return backend.requests >= before + 2; }, 10s));
      bool healthy = r.endpoints()[0].healthy;
      if (!healthy) {  // back to healthy for the next case
        backend.response = http_response(200);
        REQUIRE(run_until(
            loop, [&] { return r.endpoints()[0].healthy; }, 10s));
      }
      return healthy;
    };
    CHECK(passes(http_response(200)));
    CHECK(passes(http_response(204)));
    CHECK(passes(http_response(302)));
    CHECK(passes("HTTP/1.1 100 Continue\r\n\r\n" + http_response(200)));
    CHECK_FALSE(passes(http_response(404)));
    CHECK_FALSE(passes(http_response(500)));
    CHECK_FALSE(passes("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok"));
    CHECK_FALSE(passes("HTTP/1.1 999 Nope\r\n\r\n"));
  }
  CHECK(loop.close().is_ok());
}

TEST_CASE("registry: a killed backend goes out and comes back when restarted") {
  loop::Loop loop;
  {
    Backend backend(loop);
    uint16_t port = backend.port();
    int changes = 0;
    Registry r(loop, [&] { ++changes; });

    SUBCASE("HTTP check") {
      REQUIRE(r.register_endpoint(endpoint(port, http_check(20ms, 1s, 1, 2))).is_ok());
    }
    SUBCASE("TCP check") {
      config::HealthCheck tcp;
      tcp.tcp = true;
      tcp.interval = 20ms;
      tcp.timeout = 1s;
      tcp.unhealthy_threshold = 2;
      REQUIRE(r.register_endpoint(endpoint(port, tcp)).is_ok());
    }
    CHECK(run_until(
        loop, [&] { return changes == 1 && backend.accepted >= 2; }, 10s));
    CHECK(r.endpoints()[0].healthy);

    backend.stop();  // connection refused from now on
    CHECK(run_until(
        loop, [&] { return changes == 2; }, 10s));
    CHECK_FALSE(r.endpoints()[0].healthy);

    backend.start(port);
    CHECK(backend.port() == port);
    int accepted = backend.accepted;
    CHECK(run_until(
        loop, [&] { return changes == 3; }, 10s));
    CHECK(r.endpoints()[0].healthy);
    CHECK(backend.accepted == accepted + 1);  // healthy_threshold 1
  }
  CHECK(loop.close().is_ok());
}

TEST_CASE("registry: a backend that never answers times out, one probe at a time") {
  loop::Loop loop;
  {
    Backend backend(loop);
    backend.silent = true;
    Changes changes;
    Registry r(loop, [&] { changes.seen.push_back({r.endpoints().at(0).healthy, 0}); });
    // Timeout 30 ms, a probe every 100 ms: the backend sees each connection end (the prober
    // closes it at the timeout) well before the next one starts.
    REQUIRE(r.register_endpoint(endpoint(backend.port(), http_check(100ms, 30ms, 1, 2))).is_ok());
    auto start = std::chrono::steady_clock::now();
    CHECK(run_until(
        loop, [&] { return !r.endpoints()[0].healthy; }, 10s));
    // Two probes, the second timed out (a little slack: libuv's clock counts whole ms).
    CHECK(std::chrono::steady_clock::now() - start >= 125ms);
    CHECK(backend.requests == 2);
    CHECK(backend.max_open == 1);
    CHECK(run_until(
        loop, [&] { return backend.open == 0; }, 5s));  // the prober closed it

    // Answering again brings the endpoint back.
    backend.silent = false;
    CHECK(run_until(
        loop, [&] { return r.endpoints()[0].healthy; }, 10s));
    CHECK(run_until(
        loop, [&] { return changes.calls() == 3; }, 5s));  // register, out, back
  }
  CHECK(loop.close().is_ok());
}

TEST_CASE("registry: health survives set_config_endpoints while key and check are unchanged") {
  loop::Loop loop;
  {
    Backend backend(loop);
    backend.response = http_response(503);
    int changes = 0;
    Registry r(loop, [&] { ++changes; });
    config::HealthCheck check = http_check(20ms, 1s, 1, 1);
    Endpoint ep = endpoint(backend.port(), check);
    ep.source = "workload/default/api";
    r.set_config_endpoints({ep});
    CHECK(run_until(
        loop, [&] { return !r.endpoints()[0].healthy; }, 10s));

    // Another endpoint appears and labels change: the first stays unhealthy.
    Endpoint relabelled = ep;
    relabelled.labels["version"] = "v2";
    r.set_config_endpoints({relabelled, endpoint(1, std::nullopt, "127.0.0.3")});
    REQUIRE(r.endpoints().size() == 2);
    const Endpoint* probed = &r.endpoints()[0];
    if (probed->port != backend.port()) probed = &r.endpoints()[1];
    CHECK_FALSE(probed->healthy);
    CHECK(probed->labels.at("version") == "v2");

    // A changed health check is a new prober: it starts healthy.
    Endpoint rechecked = relabelled;
    rechecked.health_check->interval = 25ms;
    r.set_config_endpoints({rechecked});
    REQUIRE(r.endpoints().size() == 1);
    CHECK(r.endpoints()[0].healthy);
    CHECK(run_until(
        loop, [&] { return !r.endpoints()[0].healthy; }, 10s));

    // A DNS name is never probed (and stays healthy).
    r.set_config_endpoints({endpoint(backend.port(), check, "localhost")});
    int accepted = backend.accepted;
    CHECK(r.endpoints()[0].healthy);
    // (+1: a connect of the prober just destroyed may still be in the backlog.)
    CHECK_FALSE(run_until(
        loop, [&] { return backend.accepted > accepted + 1; }, 100ms));
    CHECK(r.endpoints()[0].healthy);
  }
  CHECK(loop.close().is_ok());
}

TEST_CASE("registry: destroying the registry mid-probe is clean") {
  loop::Loop loop;
  {
    Backend backend(loop);
    backend.silent = true;
    int changes = 0;
    auto r = std::make_unique<Registry>(loop, [&] { ++changes; });
    config::HealthCheck check = http_check(20ms, 10s, 1, 1);

    SUBCASE("waiting for the response head") {
      REQUIRE(r->register_endpoint(endpoint(backend.port(), check)).is_ok());
      CHECK(run_until(
          loop, [&] { return backend.requests == 1; }, 10s));
    }
    SUBCASE("connecting") {
      REQUIRE(r->register_endpoint(endpoint(backend.port(), check)).is_ok());
      // One non-blocking pass: the first probe's timer fires and its connect starts.
      uv_run(loop.uv(), UV_RUN_NOWAIT);
    }
    SUBCASE("to an address that refuses") {
      backend.stop();
      REQUIRE(r->register_endpoint(endpoint(backend.port(), check)).is_ok());
      uv_run(loop.uv(), UV_RUN_NOWAIT);
    }
    SUBCASE("before the first probe") {
      REQUIRE(r->register_endpoint(endpoint(backend.port(), check)).is_ok());
    }
    int before = changes;
    r.reset();
    // The backend sees the connection closed (if one was made), and nothing calls back.
    CHECK(run_until(
        loop, [&] { return backend.open == 0; }, 5s));
    CHECK_FALSE(run_until(
        loop, [&] { return changes > before; }, 50ms));
  }
  CHECK(loop.close().is_ok());
}

}  // namespace
}  // namespace meshbox::control
