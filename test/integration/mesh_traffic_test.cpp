// Traffic policies end to end, through a real `meshbox run` gateway to meshbox-httpbin
// backends: retries (connect failure, 5xx, per-try timeout), the circuit breaker (Istio's
// circuit-breaking task: one connection, one pending request, 20 concurrent clients), outlier
// detection, max requests per connection, consistent hashing (header, cookie; keys stay put
// when an endpoint goes), mirroring and CORS. Backends say who answered (x-backend-name) and
// how many requests and connections they saw (/stats).
#include <doctest/doctest.h>

#include <atomic>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "test/support/deadline.h"
#include "test/support/fake_upstream.h"
#include "test/support/http_response.h"
#include "test/support/mesh.h"
#include "test/support/meshbox.h"

namespace meshbox::test {
namespace {

constexpr auto kTimeout = 10s;

std::string host_of(const std::string& a) {
  return a.substr(0, a.rfind(':'));
}
std::string port_of(const std::string& a) {
  return a.substr(a.rfind(':') + 1);
}

// Service "web" (port 8000) with one workload per address (version vN for the N-th), a gateway
// on 127.0.0.1:`port` for every host, a destination rule with `traffic_policy` (TOML inline
// table, "" for none) and subsets v1…vN, and one virtual service whose HTTP routes are
// `routes`.
std::string traffic_config(uint16_t port, const std::vector<std::string>& addresses,
                           const std::string& traffic_policy, const std::string& routes) {
  std::string c = "[[service]]\nname = \"web\"\nport = 8000\n\n";
  std::string subsets;
  for (size_t i = 0; i < addresses.size(); ++i) {
    std::string v = "v" + std::to_string(i + 1);
    c += "[[workload]]\nname = \"web-" + v + "\"\nservice = \"web\"\naddress = \"" +
         host_of(addresses[i]) + "\"\nport = " + port_of(addresses[i]) +
         "\nlabels = { version = \"" + v + "\" }\n\n";
    subsets += (i ? ", " : "") + std::string("{ name = \"") + v + "\", labels = { version = \"" +
               v + "\" } }";
  }
  c += "[[destination_rule]]\nname = \"web\"\nhost = \"web\"\nsubsets = [" + subsets + "]\n";
  if (!traffic_policy.empty()) c += "traffic_policy = " + traffic_policy + "\n";
  c += "\n[[gateway]]\nname = \"edge\"\nservers = [{ port = " + std::to_string(port) +
       ", bind = \"127.0.0.1\", protocol = \"http\", hosts = [\"*\"] }]\n\n"
       "[[virtual_service]]\nname = \"web\"\nhosts = [\"*\"]\ngateways = [\"edge\"]\n\n" +
       routes;
  return c;
}

struct Fixture {
  /// `backends` meshbox-httpbin instances named b1…bN, then `dead` addresses nothing
  /// listens on, all endpoints of "web".
  Fixture(int backends, int dead, const std::string& traffic_policy, const std::string& routes,
          const std::vector<std::string>& extra = {})
      : port(free_port()) {
    for (int i = 0; i < backends; ++i)
      httpbins.push_back(std::make_unique<Httpbin>(dir, "b" + std::to_string(i + 1)));
    for (const auto& b : httpbins)
      addresses.push_back(b->address());
    for (int i = 0; i < dead; ++i)
      addresses.push_back("127.0.0.1:" + std::to_string(free_port()));
    addresses.insert(addresses.end(), extra.begin(), extra.end());
    write(traffic_policy, routes);
    mesh.emplace(dir, MeshOptions{.paths = {dir.file("mesh.toml")}});
  }
  void write(const std::string& traffic_policy, const std::string& routes) {
    std::ofstream(dir.file("mesh.toml")) << traffic_config(port, addresses, traffic_policy, routes);
  }
  std::string gw() const { return "127.0.0.1:" + std::to_string(port); }

  TempDir dir;
  uint16_t port;
  std::vector<std::unique_ptr<Httpbin>> httpbins;
  std::vector<std::string> addresses;
  std::optional<Mesh> mesh;
};

HttpResponse get(const std::string& gw, const std::string& target,
                 const std::vector<std::string>& headers = {},
                 Deadline deadline = Deadline(kTimeout), std::string_view method = "GET") {
  std::string req = std::string(method) + " " + target +
                    " HTTP/1.1\r\nHost: web.example.com\r\nConnection: close\r\n";
  for (const auto& h : headers)
    req += h + "\r\n";
  return exchange(gw, req + "\r\n", deadline, method);
}

std::string backend(const HttpResponse& r) {
  const std::string* b = r.header("x-backend-name");
  return b ? *b : "";
}

int64_t requests_seen(const Httpbin& b) {
  return b.stats().requests_total - 1;  // the /stats request itself counts
}

}  // namespace

TEST_CASE("traffic: retries replay a request after a connect failure, a 5xx, a per-try timeout") {
  // Endpoints: b1 (up) and one address nothing listens on; round robin, so half the first
  // tries are refused.
  std::string policy = "{ load_balancer = \"round_robin\" }";
  SUBCASE("connect failures are retried on another endpoint: no request fails") {
    Fixture f(1, 1, policy,
              "[[virtual_service.http]]\nroute = [{ destination = { host = \"web\" } }]\n"
              "retries = { attempts = 3, retry_on = \"connect-failure\" }\n");
    for (int i = 0; i < 60; ++i) {
      HttpResponse r = get(f.gw(), "/");
      REQUIRE_MESSAGE(r.status == 200, r.summary());
      CHECK(backend(r) == "b1");
    }
  }
  SUBCASE("without retries the same endpoints fail some requests (503 UF)") {
    Fixture f(1, 1, policy,
              "[[virtual_service.http]]\nroute = [{ destination = { host = \"web\" } }]\n"
              "retries = { attempts = 0 }\n");
    int failed = 0;
    for (int i = 0; i < 20; ++i)
      if (get(f.gw(), "/").status == 503) ++failed;
    CHECK(failed >= 5);  // round robin per worker: about half
  }
  SUBCASE("a 5xx is retried attempts times, then passed on; a 404 is not retried") {
    Fixture f(1, 0, "",
              "[[virtual_service.http]]\nroute = [{ destination = { host = \"web\" } }]\n"
              "retries = { attempts = 2, retry_on = \"5xx\" }\n");
    int64_t before = requests_seen(*f.httpbins[0]);
    HttpResponse r = get(f.gw(), "/status/500");
    CHECK(r.status == 500);
    CHECK(requests_seen(*f.httpbins[0]) - before == 3 + 1);  // 3 tries (+ the stats request)
    before = requests_seen(*f.httpbins[0]);
    CHECK(get(f.gw(), "/status/404").status == 404);
    CHECK(requests_seen(*f.httpbins[0]) - before == 1 + 1);
    // A request with a body is replayed whole.
    std::string body(20000, 'x');
    HttpResponse echo = exchange(f.gw(),
                                 "POST /echo HTTP/1.1\r\nHost: web\r\nConnection: close\r\n"
                                 "Content-Length: 20000\r\n\r\n" +
                                     body,
                                 Deadline(kTimeout), "POST");
    CHECK(echo.status == 200);
    CHECK(echo.body == body);
  }
  SUBCASE("gateway-error retries a 503 but not a 500; Istio's default retries a 503 twice") {
    Fixture f(1, 0, "",
              "[[virtual_service.http]]\nmatch = [{ uri = { prefix = \"/gw\" } }]\n"
              "rewrite = { uri = \"/\" }\n"
              "route = [{ destination = { host = \"web\" } }]\n"
              "retries = { attempts = 1, retry_on = \"gateway-error\" }\n\n"
              "[[virtual_service.http]]\nroute = [{ destination = { host = \"web\" } }]\n");
    const Httpbin& b = *f.httpbins[0];
    int64_t before = requests_seen(b);
    CHECK(get(f.gw(), "/gwstatus/503").status == 503);
    CHECK(requests_seen(b) - before == 2 + 1);
    before = requests_seen(b);
    CHECK(get(f.gw(), "/gwstatus/500").status == 500);
    CHECK(requests_seen(b) - before == 1 + 1);
    before = requests_seen(b);
    CHECK(get(f.gw(), "/status/503").status == 503);  // no retries block: Istio's default
    CHECK(requests_seen(b) - before == 3 + 1);
  }
  SUBCASE("a per-try timeout ends a slow try and retries it; the route timeout ends it all") {
    Fixture f(1, 0, "",
              "[[virtual_service.http]]\nroute = [{ destination = { host = \"web\" } }]\n"
              "timeout = \"2s\"\n"
              "retries = { attempts = 2, per_try_timeout = \"150ms\", retry_on = \"5xx\" }\n");
    auto start = std::chrono::steady_clock::now();
    HttpResponse r = get(f.gw(), "/delay/1000");
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                  std::chrono::steady_clock::now() - start)
                  .count();
    CHECK(r.status == 504);
    CHECK(ms >= 3 * 150 - 10);
    CHECK(ms < 1500);  // three 150 ms tries and two short backoffs, not the 2 s route timeout
  }
}

TEST_CASE("traffic: circuit breaker: one connection, one pending, 20 clients (Istio's task)") {
  // Istio's circuit-breaking task, on meshbox-httpbin: /delay/300 keeps the one connection
  // busy, one request may wait for it, every other fails fast with 503 (UO).
  Fixture f(1, 0,
            "{ connection_pool = { tcp = { max_connections = 1 }, http = { "
            "http1_max_pending_requests = 1, max_requests_per_connection = 1 } } }",
            "[[virtual_service.http]]\nroute = [{ destination = { host = \"web\" } }]\n"
            "retries = { attempts = 0 }\n");
  std::atomic<int> ok{0}, overflow{0}, other{0};
  std::atomic<int64_t> slowest_overflow_ms{0};
  std::vector<std::thread> clients;
  for (int i = 0; i < 20; ++i) {
    clients.emplace_back([&] {
      auto start = std::chrono::steady_clock::now();
      HttpResponse r = get(f.gw(), "/delay/300");
      int64_t ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                       std::chrono::steady_clock::now() - start)
                       .count();
      if (r.status == 200) {
        ++ok;
      } else if (r.status == 503 && r.body.find("limit") != std::string::npos) {
        ++overflow;
        int64_t prev = slowest_overflow_ms.load();
        while (ms > prev && !slowest_overflow_ms.compare_exchange_weak(prev, ms)) {
        }
      } else {
        ++other;
      }
    });
  }
  for (auto& t : clients)
    t.join();
  INFO("ok " << ok << " overflow " << overflow << " other " << other);
  CHECK(other == 0);
  CHECK(ok >= 1);
  CHECK(ok <= 6);                    // one at a time through one connection, plus the pending ones
  CHECK(overflow >= 14);             // most fail fast…
  CHECK(slowest_overflow_ms < 290);  // …without waiting for the busy connection
  // The backend never saw two connections at once: max_connections held across workers.
  HttpbinStats s = f.httpbins[0]->stats();
  CHECK(s.connections_active == 1);  // only the /stats connection is left open
  CHECK(s.requests_total - 1 == ok);
}

TEST_CASE("traffic: outlier detection ejects an endpoint that keeps failing") {
  // b1 answers; the second endpoint refuses connections. Two failures in a row eject it for
  // 30 s; with no retries, only the requests before the ejection fail.
  Fixture f(1, 1,
            "{ load_balancer = \"round_robin\", outlier_detection = { consecutive_5xx_errors = 2, "
            "interval = \"1s\", base_ejection_time = \"30s\", max_ejection_percent = 100 } }",
            "[[virtual_service.http]]\nroute = [{ destination = { host = \"web\" } }]\n"
            "retries = { attempts = 0 }\n");
  int failed = 0;
  std::vector<int> statuses;
  for (int i = 0; i < 60; ++i) {
    int s = get(f.gw(), "/").status;
    statuses.push_back(s);
    if (s != 200) ++failed;
  }
  CHECK(failed >= 2);
  CHECK(failed <= 4);  // two per ejection, counted across both workers
  for (size_t i = 20; i < statuses.size(); ++i)
    CHECK_MESSAGE(statuses[i] == 200, "request " << i);
  CHECK(f.mesh->log().find("ejected") != std::string::npos);
}

TEST_CASE("traffic: min_health_percent: with too few endpoints left, ejections are ignored") {
  // The same two endpoints, and min_health_percent = 100: once the dead one is ejected only
  // 50 % are healthy, below the threshold, so it keeps its share of the traffic (Envoy's
  // panic mode) and about half the requests fail instead of two.
  Fixture f(1, 1,
            "{ load_balancer = \"round_robin\", outlier_detection = { consecutive_5xx_errors = 2, "
            "interval = \"1s\", base_ejection_time = \"30s\", max_ejection_percent = 100, "
            "min_health_percent = 100 } }",
            "[[virtual_service.http]]\nroute = [{ destination = { host = \"web\" } }]\n"
            "retries = { attempts = 0 }\n");
  int failed = 0;
  for (int i = 0; i < 60; ++i)
    failed += get(f.gw(), "/").status == 200 ? 0 : 1;
  CHECK(failed >= 20);
  CHECK(failed <= 40);
  CHECK(f.mesh->log().find("ejected") != std::string::npos);  // ejected, and ignored
}

TEST_CASE("traffic: max_requests_per_connection closes an upstream connection after N requests") {
  Fixture f(1, 0, "{ connection_pool = { http = { max_requests_per_connection = 2 } } }",
            "[[virtual_service.http]]\nroute = [{ destination = { host = \"web\" } }]\n");
  std::set<std::string> conns;
  for (int i = 0; i < 12; ++i) {
    HttpResponse r = get(f.gw(), "/");
    REQUIRE(r.status == 200);
    conns.insert(*r.header("x-backend-conn"));
  }
  // 12 requests, at most 2 per connection; two workers may each leave one half used.
  CHECK(conns.size() >= 6);
}

TEST_CASE("traffic: consistent hash keeps a key on one endpoint, and on it when another goes") {
  std::string ring = "{ load_balancer = { consistent_hash = { http_header_name = \"x-user\" } } }";
  Fixture f(3, 0, ring,
            "[[virtual_service.http]]\nroute = [{ destination = { host = \"web\" } }]\n");
  std::map<std::string, std::string> owner;  // key → backend
  for (int k = 0; k < 40; ++k) {
    std::string key = "user-" + std::to_string(k);
    std::string first;
    for (int i = 0; i < 3; ++i) {
      HttpResponse r = get(f.gw(), "/", {"x-user: " + key});
      REQUIRE(r.status == 200);
      if (i == 0) first = backend(r);
      CHECK_MESSAGE(backend(r) == first, key);
    }
    owner[key] = first;
  }
  std::set<std::string> used;
  for (const auto& [k, b] : owner)
    used.insert(b);
  CHECK(used.size() == 3);

  // Drop b3 from the service: its keys move, every other key stays where it was.
  RunResult deleted = f.mesh->cli({"delete", "workload", "web-v3", "--wait"});
  REQUIRE(deleted.status);
  REQUIRE_MESSAGE(deleted.status->ok(), deleted.err);
  int moved = 0;
  for (const auto& [key, was] : owner) {
    std::string now = backend(get(f.gw(), "/", {"x-user: " + key}));
    CHECK(now != "b3");
    if (was != "b3") {
      CHECK_MESSAGE(now == was, key);
    } else {
      ++moved;
    }
  }
  CHECK(moved > 0);
}

TEST_CASE("traffic: a hash cookie is set when absent, and keeps the client on one endpoint") {
  Fixture f(3, 0,
            "{ load_balancer = { consistent_hash = { http_cookie = { name = \"mb-session\", "
            "path = \"/\", ttl = \"60s\" } } } }",
            "[[virtual_service.http]]\nroute = [{ destination = { host = \"web\" } }]\n");
  std::set<std::string> first_backends;
  for (int c = 0; c < 12; ++c) {
    HttpResponse r = get(f.gw(), "/");
    REQUIRE(r.status == 200);
    const std::string* cookie = r.header("set-cookie");
    REQUIRE(cookie);
    CHECK(cookie->find("Path=/") != std::string::npos);
    CHECK(cookie->find("Max-Age=60") != std::string::npos);
    std::string pair = cookie->substr(0, cookie->find(';'));
    first_backends.insert(backend(r));
    for (int i = 0; i < 4; ++i) {
      HttpResponse again = get(f.gw(), "/", {"Cookie: a=1; " + pair});
      CHECK(again.header("set-cookie") == nullptr);
      CHECK_MESSAGE(backend(again) == backend(r), pair);
    }
  }
  CHECK(first_backends.size() >= 2);
}

TEST_CASE("traffic: mirror sends a copy with a -shadow host and never waits for it") {
  // v1 (b1) serves; v2 is a fake that records each copy's head and never answers: a mirror
  // that hangs must not slow the requests it copies.
  std::mutex mu;
  std::vector<std::string> heads;
  FakeUpstream silent([&](TcpConn& c, int) {
    std::string buf;
    while (read_request_head(c, buf, Deadline(5s))) {
      std::lock_guard lock(mu);
      heads.push_back(buf);
      buf.clear();
    }
  });
  Fixture f(1, 0, "",
            "[[virtual_service.http]]\n"
            "route = [{ destination = { host = \"web\", subset = \"v1\" } }]\n"
            "mirror = { host = \"web\", subset = \"v2\" }\n",
            {silent.address()});
  for (int i = 0; i < 10; ++i) {
    auto start = std::chrono::steady_clock::now();
    HttpResponse r = get(f.gw(), "/");
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                  std::chrono::steady_clock::now() - start)
                  .count();
    REQUIRE(r.status == 200);
    CHECK(backend(r) == "b1");
    CHECK(ms < 1000);
  }
  Deadline d(kTimeout);
  auto copies = [&] {
    std::lock_guard lock(mu);
    return heads.size();
  };
  while (!d.expired() && copies() < 10) {
  }
  REQUIRE(copies() == 10);
  {
    std::lock_guard lock(mu);
    for (const auto& h : heads) {
      CHECK(h.rfind("GET / HTTP/1.1\r\n", 0) == 0);
      std::string lower = h;
      for (char& ch : lower)
        ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      CHECK_MESSAGE(lower.find("\r\nhost: web.example.com-shadow\r\n") != std::string::npos, h);
    }
  }
  // mirror_percentage 0: no copies.
  std::ofstream(f.dir.file("none.toml"))
      << traffic_config(f.port, f.addresses, "",
                        "[[virtual_service.http]]\n"
                        "route = [{ destination = { host = \"web\", subset = \"v1\" } }]\n"
                        "mirror = { host = \"web\", subset = \"v2\" }\nmirror_percentage = 0.0\n");
  RunResult applied = f.mesh->cli({"apply", "-f", f.dir.file("none.toml"), "--wait"});
  REQUIRE(applied.status);
  REQUIRE_MESSAGE(applied.status->ok(), applied.err);
  for (int i = 0; i < 10; ++i)
    CHECK(get(f.gw(), "/").status == 200);
  CHECK(copies() == 10);
}

TEST_CASE("traffic: CORS preflight answered by the proxy; allowed origins get CORS headers") {
  Fixture f(1, 0, "",
            "[[virtual_service.http]]\nroute = [{ destination = { host = \"web\" } }]\n"
            "cors_policy = { allow_origins = [{ exact = \"https://app.example.com\" }, "
            "{ regex = \"https://.*\\\\.trusted\\\\.org\" }], allow_methods = [\"GET\", "
            "\"POST\"], allow_headers = [\"x-token\"], expose_headers = [\"x-backend-name\"], "
            "max_age = \"24h\", allow_credentials = true }\n");
  HttpResponse pre = get(f.gw(), "/anything",
                         {"Origin: https://app.example.com", "Access-Control-Request-Method: POST"},
                         Deadline(kTimeout), "OPTIONS");
  CHECK(pre.status == 200);
  CHECK(pre.header("x-backend-name") == nullptr);  // answered by the proxy
  REQUIRE(pre.header("access-control-allow-origin"));
  CHECK(*pre.header("access-control-allow-origin") == "https://app.example.com");
  CHECK(*pre.header("access-control-allow-methods") == "GET,POST");
  CHECK(*pre.header("access-control-allow-headers") == "x-token");
  CHECK(*pre.header("access-control-max-age") == "86400");
  CHECK(*pre.header("access-control-allow-credentials") == "true");

  HttpResponse simple = get(f.gw(), "/", {"Origin: https://x.trusted.org"});
  CHECK(simple.status == 200);
  CHECK(backend(simple) == "b1");
  REQUIRE(simple.header("access-control-allow-origin"));
  CHECK(*simple.header("access-control-allow-origin") == "https://x.trusted.org");
  CHECK(*simple.header("access-control-expose-headers") == "x-backend-name");

  // An origin that is not allowed: no CORS headers, and its preflight goes to the backend.
  HttpResponse other = get(f.gw(), "/", {"Origin: https://evil.example"});
  CHECK(other.status == 200);
  CHECK(other.header("access-control-allow-origin") == nullptr);
  HttpResponse other_pre =
      get(f.gw(), "/", {"Origin: https://evil.example", "Access-Control-Request-Method: GET"},
          Deadline(kTimeout), "OPTIONS");
  CHECK(backend(other_pre) == "b1");
  CHECK(other_pre.header("access-control-allow-origin") == nullptr);
}

}  // namespace meshbox::test
