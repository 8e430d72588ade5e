// Tests for plane/control/compiler.h, gateway tcp and tls servers: virtual services' tcp
// routes (first applicable wins, weighted destinations, match by port and gateway) and tls
// routes (SNI hosts narrowed to the servers' hosts, passthrough listeners with the TLS
// inspector, duplicate SNI hosts, servers that would terminate TLS), with their warnings.
#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <string>
#include <vector>

#include "core/tls/certificate_builder.h"
#include "plane/config/error.h"
#include "plane/config/load.h"
#include "plane/control/compiler.h"
#include "test/unit/plane/control/compiler_test_util.h"

namespace meshbox::control {
namespace {

using testutil::listener;
using testutil::load;

Endpoint endpoint(std::string host, std::string address, config::Labels labels = {}) {
  Endpoint ep;
  ep.host = std::move(host);
  ep.ns = "default";
  ep.address = std::move(address);
  ep.labels = std::move(labels);
  ep.healthy = true;
  ep.source = "api";
  return ep;
}

std::string all_warnings(const Compiled& c) {
  std::string out;
  for (const auto& w : c.warnings)
    out += w + "\n";
  return out;
}

bool has_warning(const Compiled& c, std::string_view part) {
  return std::any_of(c.warnings.begin(), c.warnings.end(),
                     [&](const std::string& w) { return w.find(part) != std::string::npos; });
}

// A route as one line: "NAME [sni,...] -> cluster weight, ...".
std::string text(const L4RouteSpec& r) {
  std::string out = r.name + " [";
  for (size_t i = 0; i < r.sni_hosts.size(); ++i)
    out += (i ? "," : "") + r.sni_hosts[i];
  out += "] ->";
  for (const auto& c : r.clusters)
    out += " " + c.cluster + " " + std::to_string(c.weight);
  return out;
}

std::string routes(const ListenerSpec& l) {
  std::string out;
  for (const auto& r : l.l4_routes)
    out += text(r) + "\n";
  return out;
}

constexpr const char* kServices = R"(
[[service]]
name = "db"
port = 5432
protocol = "tcp"

[[destination_rule]]
name = "db"
host = "db"
subsets = [{ name = "primary", labels = { role = "primary" } }, { name = "replica", labels = { role = "replica" } }]

[[service]]
name = "a"
port = 8443
protocol = "tls"

[[service]]
name = "b"
port = 8443
protocol = "tls"

[[service]]
name = "c"
port = 8443
protocol = "tls"
)";

std::vector<Endpoint> endpoints() {
  return {endpoint("db.default.svc.cluster.local", "10.0.0.1", {{"role", "primary"}}),
          endpoint("db.default.svc.cluster.local", "10.0.0.2", {{"role", "replica"}}),
          endpoint("a.default.svc.cluster.local", "10.0.1.1"),
          endpoint("b.default.svc.cluster.local", "10.0.1.2"),
          endpoint("c.default.svc.cluster.local", "10.0.1.3")};
}

TEST_CASE("compiler l4: a tcp route's weighted destinations; 0 % ones are left out") {
  config::Config c = load(std::string(kServices) + R"(
[[gateway]]
name = "tcp-gw"
servers = [{ port = 15432, protocol = "tcp", hosts = ["*"] }]

[[virtual_service]]
name = "db"
hosts = ["*"]
gateways = ["tcp-gw"]

  [[virtual_service.tcp]]
  route = [
    { destination = { host = "db", subset = "primary" }, weight = 80 },
    { destination = { host = "db", subset = "replica" }, weight = 20 },
    { destination = { host = "db" }, weight = 0 },
  ]
)");
  Compiled out = compile(c, endpoints());
  INFO(all_warnings(out));
  const ListenerSpec& l = listener(*out.snapshot, "0.0.0.0_15432");
  CHECK(l.protocol == ListenerSpec::Protocol::Tcp);
  CHECK(!l.tls_inspector);
  CHECK(routes(l) ==
        "default/db/tcp[0] [] -> outbound|5432|primary|db.default.svc.cluster.local 80 "
        "outbound|5432|replica|db.default.svc.cluster.local 20\n");
  CHECK(l.cluster.empty());
  CHECK(!has_warning(out, "weighted"));
}

TEST_CASE("compiler l4: the first tcp route whose match applies wins, across virtual services") {
  config::Config c = load(std::string(kServices) + R"(
[[gateway]]
name = "tcp-gw"
servers = [{ port = 15432, protocol = "tcp", hosts = ["*"] }, { port = 15433, protocol = "tcp", hosts = ["*"] }]

[[gateway]]
name = "other"
servers = [{ port = 15434, protocol = "tcp", hosts = ["*"] }]

[[virtual_service]]
name = "first"
hosts = ["*"]
gateways = ["tcp-gw", "other"]

  [[virtual_service.tcp]]
  match = [{ port = 15433 }]
  route = [{ destination = { host = "db", subset = "replica" } }]

  [[virtual_service.tcp]]
  match = [{ gateways = ["other"] }]
  route = [{ destination = { host = "a" } }]

  [[virtual_service.tcp]]
  match = [{ port = 15432, destination_subnets = ["10.0.0.0/8"] }]
  route = [{ destination = { host = "db", subset = "primary" } }]

[[virtual_service]]
name = "second"
hosts = ["*"]
gateways = ["tcp-gw"]

  [[virtual_service.tcp]]
  route = [{ destination = { host = "b" } }]
)");
  Compiled out = compile(c, endpoints());
  INFO(all_warnings(out));
  const Snapshot& s = *out.snapshot;
  CHECK(routes(listener(s, "0.0.0.0_15432")) ==
        "default/first/tcp[2] [] -> outbound|5432|primary|db.default.svc.cluster.local 100\n");
  CHECK(routes(listener(s, "0.0.0.0_15433")) ==
        "default/first/tcp[0] [] -> outbound|5432|replica|db.default.svc.cluster.local 100\n");
  CHECK(routes(listener(s, "0.0.0.0_15434")) ==
        "default/first/tcp[1] [] -> outbound|8443||a.default.svc.cluster.local 100\n");
  // The second virtual service matches too, but comes later: said, not used.
  CHECK(has_warning(out,
                    "virtual_service default/second: tcp[0] is not used on listener "
                    "0.0.0.0_15432: default/first/tcp[2] comes first"));
  CHECK(has_warning(out, "tcp[2].match[0].destination_subnets: not applied at gateways"));
}

constexpr const char* kPassthrough = R"(
[[gateway]]
name = "tls-gw"
servers = [{ port = 8443, protocol = "tls", hosts = ["*.example.com"], tls = { mode = "passthrough" } }]

[[virtual_service]]
name = "a"
hosts = ["a.example.com"]
gateways = ["tls-gw"]

  [[virtual_service.tls]]
  match = [{ sni_hosts = ["a.example.com"] }]
  route = [{ destination = { host = "a" } }]

[[virtual_service]]
name = "rest"
hosts = ["*.example.com", "other.org"]
gateways = ["tls-gw"]

  [[virtual_service.tls]]
  match = [{ sni_hosts = ["b.example.com", "A.example.com"] }, { sni_hosts = ["other.org"] }]
  route = [{ destination = { host = "b" }, weight = 70 }, { destination = { host = "c" }, weight = 30 }]

  [[virtual_service.tls]]
  match = [{ sni_hosts = ["*.example.com"], port = 8443 }]
  route = [{ destination = { host = "c" } }]

  [[virtual_service.tls]]
  match = [{ sni_hosts = ["x.example.com"], port = 9443 }]
  route = [{ destination = { host = "a" } }]
)";

TEST_CASE("compiler l4: tls passthrough: SNI routes, narrowed to the server's hosts") {
  config::Config c = load(std::string(kServices) + kPassthrough);
  Compiled out = compile(c, endpoints());
  INFO(all_warnings(out));
  const ListenerSpec& l = listener(*out.snapshot, "0.0.0.0_8443");
  CHECK(l.protocol == ListenerSpec::Protocol::Tcp);
  CHECK(l.tls_inspector);
  CHECK(l.tls_inspect_timeout_ms == 10'000);
  CHECK(routes(l) ==
        "default/a/tls[0] [a.example.com] -> outbound|8443||a.default.svc.cluster.local 100\n"
        "default/rest/tls[0] [b.example.com] -> outbound|8443||b.default.svc.cluster.local 70 "
        "outbound|8443||c.default.svc.cluster.local 30\n"
        "default/rest/tls[1] [*.example.com] -> outbound|8443||c.default.svc.cluster.local 100\n");
  // a.example.com is virtual service a's (Istio skips a duplicate SNI host); other.org is
  // not a host of the server; tls[2] is for another port.
  CHECK(has_warning(out,
                    "default/rest/tls[0]: SNI host a.example.com on listener 0.0.0.0_8443 "
                    "is already routed by default/a/tls[0]; ignored here"));
  CHECK(has_warning(out,
                    "virtual_service default/rest: tls[0].match[1]: SNI host other.org is "
                    "not among the hosts of listener 0.0.0.0_8443; ignored"));
  CHECK(!has_warning(out, "x.example.com"));
}

TEST_CASE(
    "compiler l4: a tls server without a mode passes through (Istio's default); so does "
    "https in passthrough mode") {
  config::Config c = load(std::string(kServices) + R"(
[[gateway]]
name = "gw"
servers = [
  { port = 8443, protocol = "tls", hosts = ["*"], tls = {} },
  { port = 9443, protocol = "https", hosts = ["*"], tls = { mode = "passthrough" } },
]

[[virtual_service]]
name = "a"
hosts = ["a.example.com"]
gateways = ["gw"]

  [[virtual_service.tls]]
  match = [{ sni_hosts = ["a.example.com"] }]
  route = [{ destination = { host = "a" } }]
)");
  Compiled out = compile(c, endpoints());
  INFO(all_warnings(out));
  for (const char* name : {"0.0.0.0_8443", "0.0.0.0_9443"}) {
    const ListenerSpec& l = listener(*out.snapshot, name);
    CHECK(l.protocol == ListenerSpec::Protocol::Tcp);
    CHECK(l.tls_inspector);
    CHECK(routes(l) ==
          "default/a/tls[0] [a.example.com] -> outbound|8443||a.default.svc.cluster.local 100\n");
  }
  CHECK(!has_warning(out, "plain HTTP"));
  CHECK(out.snapshot->route_tables.empty());
}

TEST_CASE(
    "compiler l4: a tls server that terminates TLS forwards by its tcp route, under its own "
    "hosts") {
  config::Config c = load(std::string(kServices) + R"(
[[gateway]]
name = "gw"
servers = [
  { port = 8443, protocol = "tls", hosts = ["db.example.com"], tls = { mode = "simple", server_certificate = "/etc/c.pem", private_key = "/etc/k.pem" } },
  { port = 8443, protocol = "tls", hosts = ["a.example.com"], tls = { mode = "passthrough" } },
]

[[virtual_service]]
name = "db"
hosts = ["db.example.com"]
gateways = ["gw"]

  [[virtual_service.tls]]
  match = [{ sni_hosts = ["db.example.com"] }]
  route = [{ destination = { host = "b" } }]

  [[virtual_service.tcp]]
  route = [{ destination = { host = "db", subset = "primary" } }]

[[virtual_service]]
name = "a"
hosts = ["a.example.com"]
gateways = ["gw"]

  [[virtual_service.tls]]
  match = [{ sni_hosts = ["a.example.com"] }]
  route = [{ destination = { host = "a" } }]
)");
  // Without certificates the terminating server is left out.
  Compiled none = compile(c, endpoints());
  CHECK(has_warning(none,
                    "gateway default/gw: servers[0]: no TLS certificates here; server "
                    "skipped"));
  CHECK(routes(listener(*none.snapshot, "0.0.0.0_8443")) ==
        "default/a/tls[0] [a.example.com] -> outbound|8443||a.default.svc.cluster.local 100\n");

  auto key = tls::PrivateKey::generate_p256();
  REQUIRE(key);
  tls::CertificateSpec cs;
  cs.common_name = "db.example.com";
  cs.not_before = std::chrono::system_clock::now() - std::chrono::minutes(1);
  cs.not_after = cs.not_before + std::chrono::hours(24);
  auto cert = tls::sign_certificate(cs, *key, nullptr, *key);
  REQUIRE(cert);
  tls::TlsContextSpec spec;
  spec.identities.push_back(tls::TlsIdentity{{*cert}, *key, {}});
  auto ctx = tls::TlsContext::create(spec);
  REQUIRE(ctx);
  CompileOptions opts;
  bool https = true;
  opts.server_tls = [&](const config::ServerTls&, bool h) -> Result<tls::TlsContextConstPtr> {
    https = h;
    return *ctx;
  };
  Compiled out = compile(c, endpoints(), opts);
  INFO(all_warnings(out));
  CHECK(!https);  // no ALPN http/1.1 for a tls server
  const ListenerSpec& l = listener(*out.snapshot, "0.0.0.0_8443");
  CHECK(l.tls_inspector);
  // The tls route of "db" is for passthrough servers only: its server terminates, so its tcp
  // route serves, under the server's hosts.
  CHECK(routes(l) ==
        "default/a/tls[0] [a.example.com] -> outbound|8443||a.default.svc.cluster.local 100\n"
        "default/db/tcp[0] [db.example.com] -> "
        "outbound|5432|primary|db.default.svc.cluster.local 100\n");
  REQUIRE(l.l4_routes.size() == 2);
  CHECK(l.l4_routes[0].terminate == nullptr);
  CHECK(l.l4_routes[1].terminate == *ctx);
  CHECK(l.tls_servers.empty());
}

TEST_CASE("compiler l4: listeners without a route are skipped, and routes of the wrong kind said") {
  config::Config c = load(std::string(kServices) + R"(
[[gateway]]
name = "gw"
servers = [
  { port = 8443, protocol = "tls", hosts = ["*"], tls = { mode = "passthrough" } },
  { port = 15432, protocol = "tcp", hosts = ["*"] },
]

[[virtual_service]]
name = "tcp-only"
hosts = ["db.example.com"]
gateways = ["gw"]

  [[virtual_service.tcp]]
  match = [{ port = 8443 }]
  route = [{ destination = { host = "db" } }]

[[virtual_service]]
name = "tls-only"
hosts = ["a.example.com"]
gateways = ["gw"]

  [[virtual_service.tls]]
  match = [{ sni_hosts = ["a.example.com"], port = 15432 }]
  route = [{ destination = { host = "a" } }]
)");
  Compiled out = compile(c, endpoints());
  INFO(all_warnings(out));
  CHECK(out.snapshot->listeners.empty());
  CHECK(has_warning(out,
                    "listener 0.0.0.0_8443: no virtual service has a tls route for gateway "
                    "default/gw on port 8443; listener skipped"));
  CHECK(has_warning(out, "listener 0.0.0.0_15432: no virtual service has a tcp route"));
  CHECK(has_warning(out,
                    "virtual_service default/tcp-only: tcp routes do not apply on tls "
                    "passthrough listener 0.0.0.0_8443"));
  CHECK(has_warning(out,
                    "virtual_service default/tls-only: tls routes apply on tls servers "
                    "only; ignored on tcp listener 0.0.0.0_15432"));
}

TEST_CASE("compiler l4: the same input gives an equal snapshot; a weight or SNI change does not") {
  std::string base = std::string(kServices) + kPassthrough;
  Compiled one = compile(load(base), endpoints());
  Compiled two = compile(load(base), endpoints());
  CHECK(one.snapshot->same_content(*two.snapshot));
  CHECK(one.warnings == two.warnings);

  std::string weights = base;
  weights.replace(weights.find("weight = 70"), 11, "weight = 60");
  weights.replace(weights.find("weight = 30"), 11, "weight = 40");
  CHECK(!one.snapshot->same_content(*compile(load(weights), endpoints()).snapshot));

  std::string sni = base;
  sni.replace(sni.find("\"b.example.com\", "), 17, "\"d.example.com\", ");
  CHECK(!one.snapshot->same_content(*compile(load(sni), endpoints()).snapshot));
}

}  // namespace
}  // namespace meshbox::control
