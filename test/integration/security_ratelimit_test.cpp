// Local rate limits (Envoy's local_ratelimit token bucket) on a real `meshbox run` with two
// workers: a gateway's limit holds for the whole process (accuracy within ±10 % of the
// setting under a load far above it), a route's limit leaves the other routes alone, a
// workload's limit applies at its inbound sidecar, and a push that keeps the limit keeps the
// bucket (no refill) while a changed limit starts a full one. The 429 carries Envoy's body
// and the x-ratelimit-* headers.
#include <doctest/doctest.h>

#include <chrono>
#include <fstream>
#include <thread>

#include "test/support/deadline.h"
#include "test/support/http_response.h"
#include "test/support/load.h"
#include "test/support/mesh.h"
#include "test/support/meshbox.h"

namespace meshbox::test {
namespace {

constexpr auto kTimeout = 10s;

HttpResponse get(const std::string& addr, const std::string& path, const std::string& host) {
  return get_with_host(addr, path, host, Deadline(kTimeout));
}

void apply(Mesh& mesh, TempDir& dir, const std::string& name, const std::string& toml) {
  std::ofstream(dir.file(name)) << toml;
  RunResult r = mesh.cli({"apply", "-f", dir.file(name)});
  REQUIRE_MESSAGE((r.status && r.status->ok()), r.out << r.err);
}

// Statuses of `n` requests in a row: "200 200 429".
std::string statuses(const std::string& addr, const std::string& path, const std::string& host,
                     int n) {
  std::string out;
  for (int i = 0; i < n; ++i)
    out += (i ? " " : "") + std::to_string(get(addr, path, host).status);
  return out;
}

}  // namespace

TEST_CASE("rate limit: gateway, route and workload buckets; accuracy under load; pushes") {
  TempDir dir;
  uint16_t gw_port = free_port();
  std::string gw = "127.0.0.1:" + std::to_string(gw_port);
  // The gateway: 20 tokens, 20 more every 200 ms (100 requests/s). Hosts: "limited" routes
  // under the gateway's limit; "paths" has a per-route limit of 2 on /status only; "web" goes to
  // a workload with its own limit of 3 (one-hour fills: spent is spent).
  std::ofstream(dir.file("mesh.toml"))
      << "[[service]]\nname = \"web\"\nport = 8000\n\n"
      << "[[workload]]\nname = \"web\"\nservice = \"web\"\ncommand = [\"" << httpbin_bin()
      << "\", \"--listen\", \"127.0.0.1:${PORT}\", \"--name\", \"web\"]\n"
      << "local_rate_limit = { max_tokens = 3, fill_interval = \"1h\" }\n"
      << "health = { http = \"/\", interval = \"100ms\" }\n\n"
      << "[[service]]\nname = \"echo\"\nport = 8000\n\n"
      << "[[workload]]\nname = \"echo\"\nservice = \"echo\"\ninject = false\ncommand = [\""
      << httpbin_bin() << "\", \"--listen\", \"127.0.0.1:${PORT}\", \"--name\", \"echo\"]\n\n"
      << "[[gateway]]\nname = \"edge\"\nservers = [{ port = " << gw_port
      << ", bind = \"127.0.0.1\", protocol = \"http\", hosts = [\"limited\"] }]\n"
      << "local_rate_limit = { max_tokens = 20, tokens_per_fill = 20, fill_interval = \"200ms\" "
         "}\n\n"
      << "[[gateway]]\nname = \"open\"\nservers = [{ port = " << gw_port
      << ", bind = \"127.0.0.1\", protocol = \"http\", hosts = [\"*\"] }]\n\n"
      << "[[virtual_service]]\nname = \"limited\"\nhosts = [\"limited\"]\ngateways = [\"edge\"]\n"
      << "http = [{ route = [{ destination = { host = \"echo\" } }] }]\n\n"
      << "[[virtual_service]]\nname = \"paths\"\nhosts = [\"paths\"]\ngateways = [\"open\"]\n"
      << "http = [\n"
      << "  { match = [{ uri = { prefix = \"/status\" } }], route = [{ destination = { host = "
         "\"echo\" } }], local_rate_limit = { max_tokens = 2, fill_interval = \"1h\" } },\n"
      << "  { route = [{ destination = { host = \"echo\" } }] },\n"
      << "]\n\n"
      << "[[virtual_service]]\nname = \"web\"\nhosts = [\"web\"]\ngateways = [\"open\"]\n"
      << "http = [{ route = [{ destination = { host = \"web\" } }] }]\n";
  Mesh mesh(dir, MeshOptions{.paths = {dir.file("mesh.toml")}});
  REQUIRE(eventually([&] { return get(gw, "/", "paths").status == 200; }, kTimeout));

  {
    INFO("a route's limit: /status gets two, other paths are not limited");
    // The readiness probe above went to "/", not /status.
    CHECK(statuses(gw, "/status/200", "paths", 3) == "200 200 429");
    CHECK(statuses(gw, "/headers", "paths", 5) == "200 200 200 200 200");
    HttpResponse r = get(gw, "/status/201", "paths");
    CHECK(r.status == 429);
    CHECK(r.body == "local_rate_limited\n");
    REQUIRE(r.header("x-ratelimit-limit"));
    CHECK(*r.header("x-ratelimit-limit") == "2");
    REQUIRE(r.header("x-ratelimit-remaining"));
    CHECK(*r.header("x-ratelimit-remaining") == "0");
    REQUIRE(r.header("x-ratelimit-reset"));
    int reset = std::stoi(*r.header("x-ratelimit-reset"));
    CHECK(reset > 3500);  // about an hour
    CHECK(reset <= 3600);

    // A push that leaves the limit as it is keeps the bucket: still empty.
    apply(mesh, dir, "extra.toml",
          "[[virtual_service]]\nname = \"extra\"\nhosts = [\"extra\"]\ngateways = [\"open\"]\n"
          "http = [{ route = [{ destination = { host = \"echo\" } }] }]\n");
    CHECK(eventually([&] { return get(gw, "/", "extra").status == 200; }, kTimeout));
    CHECK(get(gw, "/status/200", "paths").status == 429);
  }

  {
    INFO("a workload's limit, at its inbound sidecar (gateway → sidecar → app)");
    // The health check goes to the app itself, so only these requests reach the sidecar
    // (before the check passes the gateway has no endpoint: 503 from the gateway).
    REQUIRE(eventually([&] { return get(gw, "/", "web").status == 200; }, kTimeout));
    // One of the three tokens went to the request that saw 200 just above.
    CHECK(statuses(gw, "/", "web", 3) == "200 200 429");
  }

  {
    INFO("the gateway's limit holds for the process: allowed rate within 10 % of 100/s");
    LoadLoop load(LoadOptions{
        .address = gw, .clients = 6, .request = "GET / HTTP/1.1\r\nHost: limited\r\n\r\n"});
    // Phase 0 spends the initial 20 tokens; the next phase sees the steady rate.
    REQUIRE(load.wait_for(0, 200, Deadline(kTimeout)));
    REQUIRE(load.set_phase(1, Deadline(kTimeout)));
    auto start = std::chrono::steady_clock::now();
    // A measurement window: the rate is what is counted in it, whatever happens inside.
    std::this_thread::sleep_for(3s);
    REQUIRE(load.set_phase(2, Deadline(kTimeout)));
    double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    LoadCounts c = load.counts(1);
    load.stop();
    double rate = static_cast<double>(c.ok) / seconds;
    MESSAGE("allowed " << c.ok << " of " << c.total() << " in " << seconds << " s: " << rate
                       << "/s (limit 100/s)");
    CHECK(c.failed > 10 * c.ok);  // the load was far above the limit
    CHECK(rate >= 90.0);
    CHECK(rate <= 110.0);
    // Other hosts on the same listener are not under the gateway "edge"'s limit.
    CHECK(get(gw, "/", "paths").status == 200);
  }

  {
    INFO("a changed limit starts a full bucket");
    std::string vs =
        "[[virtual_service]]\nname = \"paths\"\nhosts = [\"paths\"]\ngateways = [\"open\"]\n"
        "http = [{ match = [{ uri = { prefix = \"/status\" } }], route = [{ destination = { host "
        "= \"echo\" } }], local_rate_limit = { max_tokens = 4, fill_interval = \"1h\" } }]\n";
    apply(mesh, dir, "paths.toml", vs);
    CHECK(eventually([&] { return get(gw, "/status/200", "paths").status == 200; }, kTimeout));
    // The probe that saw 200 took one of the four.
    CHECK(statuses(gw, "/status/200", "paths", 4) == "200 200 200 429");
  }
}

}  // namespace meshbox::test
