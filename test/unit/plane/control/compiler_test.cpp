// Tests for plane/control/compiler.h: config (decoded and validated from inline TOML) plus
// hand-made registry endpoints → Snapshot. Clusters per service port and subset, health and
// panic mode, service entries, gateway listeners and their route tables (matches, weights,
// redirects, direct responses, header operations, rewrites, faults, merging, binding), TCP
// servers, traffic policies, and determinism. No sockets, no network: the only name resolved is
// "localhost".
#include "plane/control/compiler.h"
#include "test/unit/plane/control/compiler_test_util.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <string>
#include <vector>

#include "core/loop/address.h"
#include "core/tls/certificate_builder.h"
#include "plane/config/error.h"
#include "plane/config/load.h"
#include "plane/control/ca.h"
#include "test/support/files.h"

namespace meshbox::control {
namespace {

using testutil::load;

constexpr const char* kReviews = "reviews.default.svc.cluster.local";
constexpr const char* kProductpage = "productpage.default.svc.cluster.local";

Endpoint endpoint(std::string host, std::string address, uint32_t port = 0,
                  config::Labels labels = {}, bool healthy = true) {
  Endpoint ep;
  ep.host = std::move(host);
  ep.ns = "default";
  ep.address = std::move(address);
  ep.port = port;
  ep.labels = std::move(labels);
  ep.healthy = healthy;
  ep.source = "api";
  return ep;
}

// Lists as one string, one item a line, so that a failed CHECK shows both sides.
std::string lines(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& i : items)
    out += i + "\n";
  return out;
}

std::string cluster_names(const Snapshot& s) {
  std::vector<std::string> out;
  for (const auto& c : s.clusters)
    out.push_back(c.name);
  return lines(out);
}

std::string addresses(const ClusterSpec& c) {
  std::vector<std::string> out;
  for (const auto& e : c.endpoints)
    out.push_back(e.address.to_string());
  return lines(out);
}

const ClusterSpec& cluster(const Snapshot& s, std::string_view name) {
  const ClusterSpec* c = s.find_cluster(name);
  INFO("cluster " << name);
  REQUIRE(c != nullptr);
  return *c;
}

const RouteTableSpec& table(const Snapshot& s, std::string_view name) {
  const RouteTableSpec* t = s.find_route_table(name);
  INFO("route table " << name);
  REQUIRE(t != nullptr);
  return *t;
}

bool has_warning(const Compiled& c, std::string_view part) {
  return std::any_of(c.warnings.begin(), c.warnings.end(),
                     [&](const std::string& w) { return w.find(part) != std::string::npos; });
}

std::string all_warnings(const Compiled& c) {
  std::string out;
  for (const auto& w : c.warnings)
    out += w + "\n";
  return out;
}

// ---------------------------------------------------------------------------------------
// Clusters

constexpr const char* kReviewsConfig = R"(
[[service]]
name = "reviews"
ports = [{ number = 9080, name = "http" }, { number = 9090, name = "metrics" }]

[[destination_rule]]
name = "reviews"
host = "reviews"
subsets = [
  { name = "v1", labels = { version = "v1" } },
  { name = "v2", labels = { version = "v2" } },
]
)";

TEST_CASE("compiler: a cluster per service port, and per destination-rule subset") {
  config::Config c = load(kReviewsConfig);
  std::vector<Endpoint> eps = {
      endpoint(kReviews, "10.0.0.2", 0, {{"app", "reviews"}, {"version", "v1"}}),
      endpoint(kReviews, "10.0.0.10", 7000, {{"app", "reviews"}, {"version", "v1"}}),
      endpoint(kReviews, "10.0.0.1", 0, {{"app", "reviews"}, {"version", "v2"}}),
      endpoint("ratings.default.svc.cluster.local", "10.0.0.3", 9080),  // another host
  };
  Compiled out = compile(c, eps);
  REQUIRE(out.snapshot);
  const Snapshot& s = *out.snapshot;
  CHECK(s.version == 0);
  // Sorted by name, byte by byte: "|v1|" before "||".
  CHECK(cluster_names(s) == lines({
                                "outbound|9080|v1|reviews.default.svc.cluster.local",
                                "outbound|9080|v2|reviews.default.svc.cluster.local",
                                "outbound|9080||reviews.default.svc.cluster.local",
                                "outbound|9090|v1|reviews.default.svc.cluster.local",
                                "outbound|9090|v2|reviews.default.svc.cluster.local",
                                "outbound|9090||reviews.default.svc.cluster.local",
                            }));
  // Port 0: the service port; sorted by address as numbers (10.0.0.2 before 10.0.0.10).
  CHECK(addresses(cluster(s, "outbound|9080||reviews.default.svc.cluster.local")) ==
        lines({"10.0.0.1:9080", "10.0.0.2:9080", "10.0.0.10:7000"}));
  CHECK(addresses(cluster(s, "outbound|9090||reviews.default.svc.cluster.local")) ==
        lines({"10.0.0.1:9090", "10.0.0.2:9090", "10.0.0.10:7000"}));
  // A subset keeps the endpoints whose labels contain its labels.
  CHECK(addresses(cluster(s, "outbound|9080|v1|reviews.default.svc.cluster.local")) ==
        lines({"10.0.0.2:9080", "10.0.0.10:7000"}));
  CHECK(addresses(cluster(s, "outbound|9080|v2|reviews.default.svc.cluster.local")) ==
        lines({"10.0.0.1:9080"}));
  // No gateway: no listener.
  CHECK(s.listeners.empty());
  CHECK(s.route_tables.empty());
  CHECK(out.warnings.empty());
}

TEST_CASE("compiler: endpoint weight and locality are carried over") {
  config::Config c = load(kReviewsConfig);
  Endpoint a = endpoint(kReviews, "10.0.0.1", 9080);
  a.weight = 3;
  a.locality = "eu-west/zone-a";
  Endpoint b = endpoint(kReviews, "10.0.0.2", 9080);
  b.weight = 0;  // 0 would starve it: counted as 1
  Compiled out = compile(c, {a, b});
  const auto& eps =
      cluster(*out.snapshot, "outbound|9080||reviews.default.svc.cluster.local").endpoints;
  REQUIRE(eps.size() == 2);
  CHECK(eps[0].weight == 3);
  CHECK(eps[0].locality == "eu-west/zone-a");
  CHECK(eps[1].weight == 1);
}

TEST_CASE("compiler: only healthy endpoints, unless none is (panic mode)") {
  config::Config c = load(kReviewsConfig);
  std::vector<Endpoint> eps = {
      endpoint(kReviews, "10.0.0.1", 9080, {{"version", "v1"}}, true),
      endpoint(kReviews, "10.0.0.2", 9080, {{"version", "v1"}}, false),
      endpoint(kReviews, "10.0.0.3", 9080, {{"version", "v2"}}, false),
      endpoint(kReviews, "10.0.0.4", 9080, {{"version", "v2"}}, false),
  };
  Compiled out = compile(c, eps);
  const Snapshot& s = *out.snapshot;
  CHECK(addresses(cluster(s, "outbound|9080||reviews.default.svc.cluster.local")) ==
        lines({"10.0.0.1:9080"}));
  CHECK(addresses(cluster(s, "outbound|9080|v1|reviews.default.svc.cluster.local")) ==
        lines({"10.0.0.1:9080"}));
  // Every endpoint of v2 is unhealthy: keep them all rather than fail every request.
  CHECK(addresses(cluster(s, "outbound|9080|v2|reviews.default.svc.cluster.local")) ==
        lines({"10.0.0.3:9080", "10.0.0.4:9080"}));
  INFO(all_warnings(out));
  CHECK(has_warning(out,
                    "cluster outbound|9080|v2|reviews.default.svc.cluster.local: all 2 "
                    "endpoints are unhealthy"));
  CHECK_FALSE(has_warning(out, "outbound|9080|v1|"));
  // The failing ones are listed apart for the admin API (GET /clusters), in panic mode too.
  auto unhealthy = [&](std::string_view name) {
    ClusterSpec copy = cluster(s, name);
    copy.endpoints = copy.unhealthy_endpoints;
    return addresses(copy);
  };
  CHECK(unhealthy("outbound|9080||reviews.default.svc.cluster.local") ==
        lines({"10.0.0.2:9080", "10.0.0.3:9080", "10.0.0.4:9080"}));
  CHECK(unhealthy("outbound|9080|v1|reviews.default.svc.cluster.local") ==
        lines({"10.0.0.2:9080"}));
  CHECK(unhealthy("outbound|9080|v2|reviews.default.svc.cluster.local") ==
        lines({"10.0.0.3:9080", "10.0.0.4:9080"}));
  // No endpoint at all is not panic mode, and no warning: endpoints may be registered later.
  Compiled empty = compile(c, {});
  CHECK(cluster(*empty.snapshot, "outbound|9080||reviews.default.svc.cluster.local")
            .endpoints.empty());
  CHECK(empty.warnings.empty());
}

TEST_CASE("compiler: service-entry clusters, with named and target ports") {
  config::Config c = load(R"(
[[service_entry]]
name = "db"
hosts = ["db.internal.example.com", "db2.internal.example.com"]
ports = [
  { number = 5432, name = "pg", protocol = "tcp", target_port = 5433 },
  { number = 9187, name = "metrics", protocol = "http" },
]
location = "mesh_internal"
resolution = "static"
endpoints = [
  { address = "10.1.0.10", labels = { role = "primary" } },
  { address = "10.1.0.11", ports = { pg = 6432 }, labels = { role = "replica" } },
]

[[destination_rule]]
name = "db"
host = "db.internal.example.com"
subsets = [{ name = "primary", labels = { role = "primary" } }]

[[service_entry]]
name = "local"
hosts = ["local.example.com"]
ports = [{ number = 80, name = "http" }]
resolution = "dns"
endpoints = [{ address = "localhost" }]
)");
  // As the registry makes them: one per static endpoint and entry host.
  std::vector<Endpoint> eps;
  for (const char* host : {"db.internal.example.com", "db2.internal.example.com"}) {
    eps.push_back(endpoint(host, "10.1.0.10", 0, {{"role", "primary"}}));
    Endpoint replica = endpoint(host, "10.1.0.11", 0, {{"role", "replica"}});
    replica.named_ports = {{"pg", 6432}};
    eps.push_back(replica);
  }
  // resolution = "dns": the registry resolves names; one it has not resolved yet is skipped.
  Endpoint unresolved = endpoint("local.example.com", "localhost");
  unresolved.resolution = config::Resolution::Dns;
  eps.push_back(unresolved);
  Endpoint resolved = endpoint("local.example.com", "127.0.0.1");
  resolved.resolution = config::Resolution::Dns;
  resolved.hostname = "localhost";
  eps.push_back(resolved);
  Compiled out = compile(c, eps);
  const Snapshot& s = *out.snapshot;
  CHECK(cluster_names(s) == lines({
                                "outbound|5432|primary|db.internal.example.com",
                                "outbound|5432||db.internal.example.com",
                                "outbound|5432||db2.internal.example.com",
                                "outbound|80||local.example.com",
                                "outbound|9187|primary|db.internal.example.com",
                                "outbound|9187||db.internal.example.com",
                                "outbound|9187||db2.internal.example.com",
                            }));
  // Named port first, then target_port, then the port number.
  CHECK(addresses(cluster(s, "outbound|5432||db.internal.example.com")) ==
        lines({"10.1.0.10:5433", "10.1.0.11:6432"}));
  CHECK(addresses(cluster(s, "outbound|9187||db2.internal.example.com")) ==
        lines({"10.1.0.10:9187", "10.1.0.11:9187"}));
  CHECK(addresses(cluster(s, "outbound|5432|primary|db.internal.example.com")) ==
        lines({"10.1.0.10:5433"}));
  // The compiler never resolves a name (it would block): only the registry's IP is used.
  const ClusterSpec& local = cluster(s, "outbound|80||local.example.com");
  REQUIRE(local.endpoints.size() == 1);
  CHECK(local.endpoints[0].address.to_string() == "127.0.0.1:80");
  CHECK(std::find(out.warnings.begin(), out.warnings.end(),
                  "endpoint localhost:80 of local.example.com (api): the name is not resolved yet; "
                  "dropped") != out.warnings.end());
}

TEST_CASE("compiler: a service wins over a service entry with the same host") {
  config::Config c = load(R"(
[[service]]
name = "reviews"
port = 9080

[[service_entry]]
name = "shadow"
hosts = ["reviews.default.svc.cluster.local"]
ports = [{ number = 9080, name = "http" }, { number = 81, name = "other" }]
resolution = "static"
endpoints = [{ address = "10.9.9.9" }]
)");
  Compiled out = compile(c, {endpoint(kReviews, "10.0.0.1", 9080)});
  // The entry's port 81 gives no cluster: the host is the service's.
  CHECK(cluster_names(*out.snapshot) ==
        lines({"outbound|9080||reviews.default.svc.cluster.local"}));
}

TEST_CASE("compiler: load balancer, connect and idle timeouts from the rule and the mesh") {
  config::Config c = load(R"(
[mesh]
connect_timeout = "3s"

[[service]]
name = "reviews"
port = 9080

[[service]]
name = "ratings"
port = 9080

[[service]]
name = "details"
port = 9080

[[destination_rule]]
name = "reviews"
host = "reviews"
[destination_rule.traffic_policy]
load_balancer = "least_request"
connection_pool = { tcp = { connect_timeout = "250ms" }, http = { idle_timeout = "30s" } }
[[destination_rule.subsets]]
name = "v1"
labels = { version = "v1" }
traffic_policy = { load_balancer = "random" }
[[destination_rule.subsets]]
name = "v2"
labels = { version = "v2" }
traffic_policy = { connection_pool = { tcp = { connect_timeout = "1s" } } }

[[destination_rule]]
name = "ratings"
host = "ratings"
traffic_policy = { load_balancer = { consistent_hash = { http_header_name = "x-user" } } }
)");
  Compiled out = compile(c, {});
  const Snapshot& s = *out.snapshot;
  const ClusterSpec& base = cluster(s, "outbound|9080||reviews.default.svc.cluster.local");
  CHECK(base.lb_policy == LbPolicy::LeastRequest);
  CHECK(base.connect_timeout_ms == 250);
  CHECK(base.idle_timeout_ms == 30'000);
  // A subset's policy replaces the rule's field by field.
  const ClusterSpec& v1 = cluster(s, "outbound|9080|v1|reviews.default.svc.cluster.local");
  CHECK(v1.lb_policy == LbPolicy::Random);
  CHECK(v1.connect_timeout_ms == 250);
  const ClusterSpec& v2 = cluster(s, "outbound|9080|v2|reviews.default.svc.cluster.local");
  CHECK(v2.lb_policy == LbPolicy::LeastRequest);
  CHECK(v2.connect_timeout_ms == 1000);
  CHECK(v2.idle_timeout_ms == 60'000);  // the subset's connection_pool has no http part
  // consistent_hash: least request until the data plane hashes.
  const ClusterSpec& ratings = cluster(s, "outbound|9080||ratings.default.svc.cluster.local");
  CHECK(ratings.lb_policy == LbPolicy::LeastRequest);
  CHECK(ratings.connect_timeout_ms == 3000);
  // No rule: Istio's default balancer (least request), and the mesh's connect timeout.
  const ClusterSpec& details = cluster(s, "outbound|9080||details.default.svc.cluster.local");
  CHECK(details.lb_policy == LbPolicy::LeastRequest);
  CHECK(details.connect_timeout_ms == 3000);
  CHECK(details.idle_timeout_ms == ClusterSpec{}.idle_timeout_ms);
  CHECK(details.response_timeout_ms == ClusterSpec{}.response_timeout_ms);
  CHECK(details.max_idle_per_endpoint == ClusterSpec{}.max_idle_per_endpoint);

  // The mesh default when [mesh] does not set it: 10s.
  Compiled plain = compile(load("[[service]]\nname = \"a\"\nport = 80\n"), {});
  CHECK(cluster(*plain.snapshot, "outbound|80||a.default.svc.cluster.local").connect_timeout_ms ==
        10'000);
}

TEST_CASE("compiler: the rule in the host's namespace beats one elsewhere; exact beats wildcard") {
  config::Config c = load(R"(
[[service]]
name = "reviews"
namespace = "shop"
port = 9080

[[service_entry]]
name = "ext"
hosts = ["api.example.com"]
ports = [{ number = 443, name = "tls", protocol = "tls" }]
resolution = "dns"

[[destination_rule]]
name = "from-default"
host = "reviews.shop"
traffic_policy = { load_balancer = "random" }

[[destination_rule]]
name = "own"
namespace = "shop"
host = "reviews"
traffic_policy = { load_balancer = "least_request" }

[[destination_rule]]
name = "own-again"
namespace = "shop"
host = "reviews.shop.svc.cluster.local"
traffic_policy = { load_balancer = "random" }

[[destination_rule]]
name = "wild"
host = "*.example.com"
traffic_policy = { load_balancer = "random" }

[[destination_rule]]
name = "exact"
namespace = "other"
host = "api.example.com"
traffic_policy = { load_balancer = "least_request" }
)");
  Compiled out = compile(c, {});
  CHECK(cluster(*out.snapshot, "outbound|9080||reviews.shop.svc.cluster.local").lb_policy ==
        LbPolicy::LeastRequest);
  CHECK(cluster(*out.snapshot, "outbound|443||api.example.com").lb_policy ==
        LbPolicy::LeastRequest);
  // Two exact rules in one namespace: the first applies (Istio would merge them).
  INFO(all_warnings(out));
  CHECK(out.warnings == std::vector<std::string>{
                            "destination_rule shop/own-again: ignored for host "
                            "reviews.shop.svc.cluster.local: destination_rule shop/own applies"});
}

// ---------------------------------------------------------------------------------------
// Gateways and routes

constexpr const char* kBookinfo = R"(
[[service]]
name = "productpage"
port = 9080

[[service]]
name = "reviews"
port = 9080

[[gateway]]
name = "bookinfo-gateway"
selector = { istio = "ingressgateway" }
servers = [{ port = { number = 8080, name = "http", protocol = "HTTP" }, hosts = ["*"] }]

[[virtual_service]]
name = "bookinfo"
hosts = ["*"]
gateways = ["bookinfo-gateway"]

  [[virtual_service.http]]
  match = [
    { uri = { exact = "/productpage" } },
    { uri = { prefix = "/static" } },
    { uri = { exact = "/login" } },
    { uri = { exact = "/logout" } },
    { uri = { prefix = "/api/v1/products" } },
  ]
  route = [{ destination = { host = "productpage", port = 9080 } }]

[[virtual_service]]
name = "reviews"
hosts = ["reviews"]

  [[virtual_service.http]]
  route = [{ destination = { host = "reviews" } }]
)";

TEST_CASE("compiler: Bookinfo's gateway: a listener, its route table, the productpage route") {
  config::Config c = load(kBookinfo);
  Compiled out = compile(c, {endpoint(kProductpage, "127.0.0.1", 9081)});
  INFO(all_warnings(out));
  CHECK(out.warnings.empty());
  const Snapshot& s = *out.snapshot;

  REQUIRE(s.listeners.size() == 1);
  const ListenerSpec& l = s.listeners[0];
  CHECK(l.name == "0.0.0.0_8080");
  CHECK(l.address.to_string() == "0.0.0.0:8080");
  CHECK(l.protocol == ListenerSpec::Protocol::Http);
  CHECK(l.route_table == "http.8080");
  CHECK(l.cluster.empty());

  REQUIRE(s.route_tables.size() == 1);
  const RouteTableSpec& t = table(s, "http.8080");
  // Only the virtual service bound to the gateway: "reviews" is the mesh's.
  REQUIRE(t.virtual_hosts.size() == 1);
  const VirtualHostSpec& vh = t.virtual_hosts[0];
  CHECK(vh.name == "*:8080");
  CHECK(vh.domains == std::vector<std::string>{"*"});
  REQUIRE(vh.routes.size() == 1);
  const RouteSpec& r = vh.routes[0];
  CHECK(r.name == "default/bookinfo/http[0]");
  CHECK(r.action == RouteSpec::Action::Forward);
  REQUIRE(r.matches.size() == 5);
  REQUIRE(r.matches[0].path);
  CHECK(r.matches[0].path->kind() == StringMatcher::Kind::Exact);
  CHECK(r.matches[0].path->value() == "/productpage");
  CHECK(r.matches[0].path->matches("/productpage"));
  CHECK_FALSE(r.matches[0].path->matches("/productpage2"));
  CHECK(r.matches[1].path->kind() == StringMatcher::Kind::Prefix);
  CHECK(r.matches[1].path->value() == "/static");
  CHECK(r.matches[4].path->value() == "/api/v1/products");
  CHECK_FALSE(r.matches[0].method);
  CHECK(r.matches[0].headers.empty());
  CHECK(r.matches[0].port == 0);
  REQUIRE(r.clusters.size() == 1);
  CHECK(r.clusters[0].cluster == "outbound|9080||productpage.default.svc.cluster.local");
  CHECK(r.clusters[0].weight == 100);
  CHECK(r.timeout_ms == 0);
  CHECK(s.find_cluster(r.clusters[0].cluster) != nullptr);
}

TEST_CASE("compiler: a destination without endpoints is warned about") {
  config::Config c = load(kBookinfo);
  Compiled out = compile(c, {});
  INFO(all_warnings(out));
  CHECK(out.warnings ==
        std::vector<std::string>{"virtual_service default/bookinfo: destination productpage has no "
                                 "endpoint (cluster outbound|9080||productpage.default.svc.cluster."
                                 "local)"});
}

constexpr const char* kRouting = R"(
[[service]]
name = "reviews"
port = 9080

[[service]]
name = "web"
ports = [{ number = 80, name = "http" }, { number = 8000, name = "admin" }]

[[destination_rule]]
name = "reviews"
host = "reviews"
subsets = [
  { name = "v1", labels = { version = "v1" } },
  { name = "v3", labels = { version = "v3" } },
]

[[gateway]]
name = "edge"
servers = [{ port = 8080, protocol = "http", hosts = ["shop.example.com", "*.api.example.com"] }]

[[virtual_service]]
name = "shop"
hosts = ["Shop.Example.com"]
gateways = ["edge"]

  [[virtual_service.http]]
  name = "split"
  match = [{ uri = { prefix = "/reviews" } }]
  route = [
    { destination = { host = "reviews", subset = "v1" }, weight = 90 },
    { destination = { host = "reviews", subset = "v3" }, weight = 10 },
  ]
  timeout = "2.5s"

  [[virtual_service.http]]
  match = [{ headers = { x-exact = { exact = "a" }, X-Prefix = { prefix = "b" }, x-regex = { regex = "c+d" }, x-present = {} }, without_headers = { x-block = { present = true }, x-not = { exact = "no" } }, query_params = { debug = { exact = "1" } }, method = { exact = "GET" }, authority = { prefix = "shop" }, scheme = { exact = "http" }, port = 8080 }]
  route = [{ destination = { host = "web", port = 80 } }]

  [[virtual_service.http]]
  match = [{ uri = { exact = "/healthz" } }]
  direct_response = { status = 204, body = "ok\n" }

  [[virtual_service.http]]
  match = [{ uri = { prefix = "/old" } }]
  redirect = { uri = "/new", authority = "new.example.com", scheme = "https", port = 8443, redirect_code = 308 }

  [[virtual_service.http]]
  match = [{ uri = { prefix = "/Case" }, ignore_uri_case = true }]
  route = [{ destination = { host = "web", port = 8000 } }]

  [[virtual_service.http]]
  match = [{ uri = { prefix = "/moved" } }]
  redirect = { authority = "moved.example.com", derive_port = "from_protocol_default" }

[[virtual_service]]
name = "api"
hosts = ["*"]
gateways = ["edge"]

  [[virtual_service.http]]
  route = [{ destination = { host = "web", port = 80 } }]
)";

TEST_CASE("compiler: weighted subsets, timeouts, and virtual hosts from server hosts") {
  config::Config c = load(kRouting);
  Compiled out = compile(c, {});
  const RouteTableSpec& t = table(*out.snapshot, "http.8080");
  // "shop" (lower-cased) first; then "api"'s "*" meets each server host: the server's host
  // is the more specific, so "*" answers only for what the server accepts.
  REQUIRE(t.virtual_hosts.size() == 2);
  CHECK(t.virtual_hosts[0].name == "shop.example.com:8080");
  CHECK(t.virtual_hosts[0].domains == std::vector<std::string>{"shop.example.com"});
  CHECK(t.virtual_hosts[1].name == "*.api.example.com:8080");
  CHECK(t.virtual_hosts[1].domains == std::vector<std::string>{"*.api.example.com"});
  // Routes of several virtual services for one host are appended in config order.
  const auto& routes = t.virtual_hosts[0].routes;
  REQUIRE(routes.size() == 7);
  CHECK(routes[6].name == "default/api/http[0]");
  CHECK(t.virtual_hosts[1].routes.size() == 1);

  const RouteSpec& split = routes[0];
  CHECK(split.name == "split");
  CHECK(split.timeout_ms == 2500);
  REQUIRE(split.clusters.size() == 2);
  CHECK(split.clusters[0].cluster == "outbound|9080|v1|reviews.default.svc.cluster.local");
  CHECK(split.clusters[0].weight == 90);
  CHECK(split.clusters[1].cluster == "outbound|9080|v3|reviews.default.svc.cluster.local");
  CHECK(split.clusters[1].weight == 10);
  CHECK(routes[1].clusters.at(0).cluster == "outbound|80||web.default.svc.cluster.local");
  CHECK(routes[4].clusters.at(0).cluster == "outbound|8000||web.default.svc.cluster.local");
}

TEST_CASE("compiler: header, query, method, authority, scheme and port matches") {
  config::Config c = load(kRouting);
  Compiled out = compile(c, {});
  const RouteSpec& r = table(*out.snapshot, "http.8080").virtual_hosts.at(0).routes.at(1);
  CHECK(r.name == "default/shop/http[1]");
  REQUIRE(r.matches.size() == 1);
  const RouteMatchSpec& m = r.matches[0];
  CHECK_FALSE(m.path);
  REQUIRE(m.method);
  CHECK(m.method->kind() == StringMatcher::Kind::Exact);
  CHECK(m.method->value() == "GET");
  REQUIRE(m.authority);
  CHECK(m.authority->kind() == StringMatcher::Kind::Prefix);
  REQUIRE(m.scheme);
  CHECK(m.scheme->value() == "http");
  CHECK(m.port == 8080);

  auto find = [&](std::string_view name) -> const HeaderMatcher& {
    auto it = std::find_if(m.headers.begin(), m.headers.end(),
                           [&](const HeaderMatcher& h) { return h.name == name; });
    INFO("header " << name);
    REQUIRE(it != m.headers.end());
    return *it;
  };
  REQUIRE(m.headers.size() == 6);
  CHECK(find("x-exact").match.kind() == StringMatcher::Kind::Exact);
  CHECK(find("x-exact").match.value() == "a");
  CHECK_FALSE(find("x-exact").invert);
  CHECK(find("x-prefix").match.kind() == StringMatcher::Kind::Prefix);  // name lower-cased
  CHECK(find("x-regex").match.kind() == StringMatcher::Kind::Regex);
  CHECK(find("x-regex").match.matches("ccd"));
  CHECK_FALSE(find("x-regex").match.matches("ccdx"));  // the whole value
  CHECK(find("x-present").match.kind() == StringMatcher::Kind::Present);
  CHECK_FALSE(find("x-present").invert);
  CHECK(find("x-block").match.kind() == StringMatcher::Kind::Present);
  CHECK(find("x-block").invert);
  CHECK(find("x-not").match.value() == "no");
  CHECK(find("x-not").invert);

  REQUIRE(m.query_params.size() == 1);
  CHECK(m.query_params[0].name == "debug");
  CHECK(m.query_params[0].match.value() == "1");

  // ignore_uri_case makes the path matcher case-insensitive.
  const RouteSpec& ci = table(*out.snapshot, "http.8080").virtual_hosts.at(0).routes.at(4);
  REQUIRE(ci.matches.at(0).path);
  CHECK(ci.matches[0].path->ignore_case());
  CHECK(ci.matches[0].path->matches("/case/x"));
  CHECK(ci.matches[0].path->matches("/CASE"));
}

TEST_CASE("compiler: direct responses and redirects") {
  config::Config c = load(kRouting);
  Compiled out = compile(c, {});
  const auto& routes = table(*out.snapshot, "http.8080").virtual_hosts.at(0).routes;

  const RouteSpec& direct = routes.at(2);
  CHECK(direct.action == RouteSpec::Action::DirectResponse);
  CHECK(direct.direct_response.status == 204);
  CHECK(direct.direct_response.body == "ok\n");
  CHECK(direct.clusters.empty());

  const RouteSpec& redirect = routes.at(3);
  CHECK(redirect.action == RouteSpec::Action::Redirect);
  CHECK(redirect.redirect.uri == "/new");
  CHECK(redirect.redirect.authority == "new.example.com");
  CHECK(redirect.redirect.scheme == "https");
  CHECK(redirect.redirect.port == 8443);
  CHECK(redirect.redirect.code == 308);
  CHECK(redirect.clusters.empty());

  const RouteSpec& moved = routes.at(5);
  CHECK(moved.action == RouteSpec::Action::Redirect);
  CHECK(moved.redirect.uri.empty());
  CHECK(moved.redirect.authority == "moved.example.com");
  CHECK(moved.redirect.code == 301);
  CHECK(moved.redirect.port == 80);  // from_protocol_default, plain HTTP
}

TEST_CASE("compiler: two gateways on one port share a listener; unbound services stay out") {
  config::Config c = load(R"(
[[service]]
name = "a"
port = 80

[[service]]
name = "b"
port = 80

[[service]]
name = "c"
port = 80

[[gateway]]
name = "gw-a"
servers = [{ port = 8080, hosts = ["a.example.com"] }]

[[gateway]]
name = "gw-b"
namespace = "edge"
servers = [{ port = 8080, hosts = ["b.example.com"] }, { port = 9090, hosts = ["*"] }]

[[virtual_service]]
name = "a"
hosts = ["a.example.com"]
gateways = ["gw-a"]
http = [{ route = [{ destination = { host = "a" } }] }]

[[virtual_service]]
name = "b"
hosts = ["b.example.com"]
gateways = ["edge/gw-b"]
http = [{ route = [{ destination = { host = "b" } }] }]

[[virtual_service]]
name = "c"
hosts = ["c.example.com", "a.example.com"]
gateways = ["mesh"]
http = [{ route = [{ destination = { host = "c" } }] }]
)");
  Compiled out = compile(c, {});
  const Snapshot& s = *out.snapshot;
  REQUIRE(s.listeners.size() == 2);
  CHECK(s.listeners[0].name == "0.0.0.0_8080");
  CHECK(s.listeners[0].route_table == "http.8080");
  CHECK(s.listeners[1].name == "0.0.0.0_9090");
  CHECK(s.listeners[1].route_table == "http.9090");
  REQUIRE(s.route_tables.size() == 2);
  CHECK(s.route_tables[0].name == "http.8080");
  CHECK(s.route_tables[1].name == "http.9090");

  const RouteTableSpec& t = s.route_tables[0];
  REQUIRE(t.virtual_hosts.size() == 2);
  CHECK(t.virtual_hosts[0].name == "a.example.com:8080");
  CHECK(t.virtual_hosts[0].routes.at(0).clusters.at(0).cluster ==
        "outbound|80||a.default.svc.cluster.local");
  CHECK(t.virtual_hosts[1].name == "b.example.com:8080");
  CHECK(t.virtual_hosts[1].routes.at(0).clusters.at(0).cluster ==
        "outbound|80||b.default.svc.cluster.local");
  // Both virtual hosts have only their own virtual service's route: "c" is the mesh's.
  CHECK(t.virtual_hosts[0].routes.size() == 1);

  // Port 9090 accepts any host, but only "b" is bound to gw-b; "a" is not.
  const RouteTableSpec& t9090 = s.route_tables[1];
  REQUIRE(t9090.virtual_hosts.size() == 1);
  CHECK(t9090.virtual_hosts[0].name == "b.example.com:9090");
}

TEST_CASE("compiler: a listener with no virtual host keeps its empty table") {
  config::Config c = load(R"(
[[gateway]]
name = "lonely"
servers = [{ port = 8080, hosts = ["*"] }]
)");
  Compiled out = compile(c, {});
  REQUIRE(out.snapshot->listeners.size() == 1);
  const RouteTableSpec& t = table(*out.snapshot, out.snapshot->listeners[0].route_table);
  CHECK(t.virtual_hosts.empty());
}

TEST_CASE("compiler: two bind addresses on one port get listeners and tables of their own") {
  config::Config c = load(R"(
[[service]]
name = "a"
port = 80

[[gateway]]
name = "inside"
servers = [{ port = 8080, bind = "127.0.0.1", hosts = ["*"] }]

[[gateway]]
name = "outside"
servers = [{ port = 8080, hosts = ["*"] }, { port = 7070, bind = "127.0.0.2", hosts = ["*"] }]

[[virtual_service]]
name = "a"
hosts = ["*"]
gateways = ["inside"]
http = [{ route = [{ destination = { host = "a" } }] }]
)");
  CompileOptions bind_opts;  // (not designated: CompileOptions keeps growing)
  bind_opts.default_bind = "127.0.0.3";
  Compiled out = compile(c, {}, bind_opts);
  const Snapshot& s = *out.snapshot;
  // Ordered by port, then bind.
  REQUIRE(s.listeners.size() == 3);
  CHECK(s.listeners[0].name == "127.0.0.2_7070");
  CHECK(s.listeners[0].route_table == "http.7070");
  CHECK(s.listeners[1].name == "127.0.0.1_8080");
  CHECK(s.listeners[1].address.to_string() == "127.0.0.1:8080");
  CHECK(s.listeners[1].route_table == "http.127.0.0.1_8080");
  CHECK(s.listeners[2].name == "127.0.0.3_8080");  // the default bind
  CHECK(s.listeners[2].route_table == "http.127.0.0.3_8080");
  CHECK(table(s, "http.127.0.0.1_8080").virtual_hosts.size() == 1);
  CHECK(table(s, "http.127.0.0.3_8080").virtual_hosts.empty());
}

TEST_CASE("compiler: match-level gateways override the virtual service's") {
  config::Config c = load(R"(
[[service]]
name = "a"
port = 80

[[gateway]]
name = "public"
servers = [{ port = 8080, hosts = ["*"] }]

[[gateway]]
name = "private"
servers = [{ port = 9090, hosts = ["*"] }]

[[virtual_service]]
name = "a"
hosts = ["*"]
gateways = ["public", "private"]

  [[virtual_service.http]]
  name = "admin"
  match = [{ uri = { prefix = "/admin" }, gateways = ["private"] }]
  route = [{ destination = { host = "a" } }]

  [[virtual_service.http]]
  name = "mixed"
  match = [{ uri = { prefix = "/x" }, gateways = ["private"] }, { uri = { prefix = "/y" } }]
  route = [{ destination = { host = "a" } }]

  [[virtual_service.http]]
  name = "rest"
  route = [{ destination = { host = "a" } }]
)");
  Compiled out = compile(c, {});
  const auto& pub = table(*out.snapshot, "http.8080").virtual_hosts.at(0).routes;
  REQUIRE(pub.size() == 2);
  CHECK(pub[0].name == "mixed");
  REQUIRE(pub[0].matches.size() == 1);  // only the block that applies here
  CHECK(pub[0].matches[0].path->value() == "/y");
  CHECK(pub[1].name == "rest");
  const auto& priv = table(*out.snapshot, "http.9090").virtual_hosts.at(0).routes;
  REQUIRE(priv.size() == 3);
  CHECK(priv[0].name == "admin");
  CHECK(priv[1].matches.size() == 2);
}

TEST_CASE("compiler: server hosts with a namespace admit only that namespace's services") {
  config::Config c = load(R"(
[[service]]
name = "a"
port = 80

[[service]]
name = "a"
namespace = "shop"
port = 80

[[gateway]]
name = "gw"
servers = [{ port = 8080, hosts = ["shop/*", "./own.example.com"] }]

[[virtual_service]]
name = "outsider"
hosts = ["outsider.example.com", "own.example.com"]
gateways = ["gw"]
http = [{ route = [{ destination = { host = "a" } }] }]

[[virtual_service]]
name = "insider"
namespace = "shop"
hosts = ["insider.example.com"]
gateways = ["default/gw"]
http = [{ route = [{ destination = { host = "a" } }] }]
)");
  Compiled out = compile(c, {});
  const RouteTableSpec& t = table(*out.snapshot, "http.8080");
  REQUIRE(t.virtual_hosts.size() == 2);
  CHECK(t.virtual_hosts[0].name == "own.example.com:8080");
  CHECK(t.virtual_hosts[0].routes.at(0).clusters.at(0).cluster ==
        "outbound|80||a.default.svc.cluster.local");
  CHECK(t.virtual_hosts[1].name == "insider.example.com:8080");
  CHECK(t.virtual_hosts[1].routes.at(0).clusters.at(0).cluster ==
        "outbound|80||a.shop.svc.cluster.local");
}

// A server context for gateway TLS tests: a self-signed P-256 certificate.
tls::TlsContextConstPtr test_server_context() {
  auto key = tls::PrivateKey::generate_p256();
  REQUIRE(key);
  tls::CertificateSpec cs;
  cs.common_name = "shop.example.com";
  cs.dns_sans = {"shop.example.com"};
  cs.not_before = std::chrono::system_clock::now() - std::chrono::minutes(1);
  cs.not_after = cs.not_before + std::chrono::hours(24);
  auto cert = tls::sign_certificate(cs, *key, nullptr, *key);
  REQUIRE(cert);
  tls::TlsContextSpec spec;
  spec.identities.push_back(tls::TlsIdentity{{*cert}, *key, {}});
  auto ctx = tls::TlsContext::create(spec);
  REQUIRE(ctx);
  return *ctx;
}

TEST_CASE(
    "compiler: https servers terminate TLS (a context per server); https_redirect redirects") {
  config::Config c = load(R"(
[[service]]
name = "a"
port = 80

[[gateway]]
name = "gw"
[[gateway.servers]]
port = { number = 8443, name = "https", protocol = "HTTPS" }
hosts = ["*"]
tls = { mode = "simple", server_certificate = "/etc/certs/shop.pem", private_key = "/etc/certs/shop-key.pem" }
[[gateway.servers]]
port = 8080
protocol = "http"
hosts = ["shop.example.com"]
tls = { https_redirect = true }

[[virtual_service]]
name = "a"
hosts = ["shop.example.com"]
gateways = ["gw"]
http = [{ route = [{ destination = { host = "a" } }] }]
)");
  // Without certificates (no server_tls), the https server is skipped.
  Compiled none = compile(c, {});
  CHECK(none.snapshot->listeners.size() == 1);
  CHECK(has_warning(none,
                    "gateway default/gw: servers[0]: no TLS certificates here; server skipped"));
  // A failing one: skipped, with the reason.
  CompileOptions failing;
  failing.server_tls = [](const config::ServerTls&, bool) -> Result<tls::TlsContextConstPtr> {
    return make_error(Code::NotFound, "server_certificate /etc/certs/shop.pem: No such file");
  };
  Compiled broken = compile(c, {}, failing);
  CHECK(broken.snapshot->listeners.size() == 1);
  CHECK(has_warning(broken,
                    "gateway default/gw: servers[0]: server_certificate "
                    "/etc/certs/shop.pem: No such file; server skipped"));

  tls::TlsContextConstPtr ctx = test_server_context();
  std::vector<std::string> asked;
  CompileOptions opts;
  opts.server_tls = [&](const config::ServerTls& t, bool https) -> Result<tls::TlsContextConstPtr> {
    asked.push_back(t.server_certificate + (https ? " https" : ""));
    return ctx;
  };
  Compiled out = compile(c, {}, opts);
  CHECK(asked == std::vector<std::string>{"/etc/certs/shop.pem https"});
  const Snapshot& s = *out.snapshot;
  REQUIRE(s.listeners.size() == 2);
  CHECK(s.listeners[1].name == "0.0.0.0_8443");
  CHECK(s.listeners[1].protocol == ListenerSpec::Protocol::Http);
  INFO(all_warnings(out));
  CHECK(!has_warning(out, "plain HTTP"));
  REQUIRE(s.listeners[1].tls_servers.size() == 1);
  const TlsServerSpec& ts = s.listeners[1].tls_servers[0];
  CHECK(ts.name == "default/gw/servers[0]");
  CHECK(ts.sni_hosts == std::vector<std::string>{"*"});
  CHECK(ts.context == ctx);
  CHECK(ts.route_table == "https.8443.default/gw.servers[0]");
  CHECK(s.listeners[0].tls_servers.empty());
  const auto& tls_routes = table(s, ts.route_table).virtual_hosts.at(0).routes;
  REQUIRE(tls_routes.size() == 1);
  CHECK(tls_routes[0].action == RouteSpec::Action::Forward);

  const auto& redirect = table(s, "http.8080").virtual_hosts.at(0).routes;
  REQUIRE(redirect.size() == 1);
  CHECK(redirect[0].action == RouteSpec::Action::Redirect);
  CHECK(redirect[0].redirect.scheme == "https");
  CHECK(redirect[0].redirect.code == 301);
}

TEST_CASE("compiler: tcp servers become TCP listeners with the first applicable tcp route") {
  config::Config c = load(R"(
[[service]]
name = "db"
port = 5432
protocol = "tcp"

[[gateway]]
name = "tcp-gw"
servers = [{ port = 15432, protocol = "tcp", hosts = ["*"] }, { port = 15433, protocol = "tcp", hosts = ["*"] }]

[[virtual_service]]
name = "db"
hosts = ["*"]
gateways = ["tcp-gw"]

  [[virtual_service.tcp]]
  match = [{ port = 15432 }]
  route = [{ destination = { host = "db" } }]
)");
  Compiled out = compile(c, {endpoint("db.default.svc.cluster.local", "10.0.0.5")});
  const Snapshot& s = *out.snapshot;
  // 15433 has no route (the only one matches port 15432): skipped, with a warning.
  REQUIRE(s.listeners.size() == 1);
  const ListenerSpec& l = s.listeners[0];
  CHECK(l.name == "0.0.0.0_15432");
  CHECK(l.protocol == ListenerSpec::Protocol::Tcp);
  CHECK(!l.tls_inspector);
  REQUIRE(l.l4_routes.size() == 1);
  CHECK(l.l4_routes[0].name == "default/db/tcp[0]");
  CHECK(l.l4_routes[0].sni_hosts.empty());
  REQUIRE(l.l4_routes[0].clusters.size() == 1);
  CHECK(l.l4_routes[0].clusters[0].cluster == "outbound|5432||db.default.svc.cluster.local");
  CHECK(l.l4_routes[0].clusters[0].weight == 100);
  CHECK(l.route_table.empty());
  CHECK(s.route_tables.empty());
  INFO(all_warnings(out));
  CHECK(has_warning(out, "listener 0.0.0.0_15433: no virtual service has a tcp route"));
  CHECK(addresses(cluster(s, l.l4_routes[0].clusters[0].cluster)) == lines({"10.0.0.5:5432"}));
}

// ---------------------------------------------------------------------------------------
// Header operations, rewrites and faults

constexpr const char* kRouteOptions = R"(
[[service]]
name = "web"
port = 80

[[destination_rule]]
name = "web"
host = "web"
subsets = [{ name = "v1", labels = { version = "v1" } }, { name = "v2", labels = { version = "v2" } }]

[[gateway]]
name = "edge"
servers = [{ port = 8080, hosts = ["*"] }]

[[virtual_service]]
name = "web"
hosts = ["*"]
gateways = ["edge"]

  [[virtual_service.http]]
  name = "ops"
  match = [{ uri = { prefix = "/api/v1" } }]
  headers = { request = { set = { X-B = "2", x-a = "1" }, add = { x-via = "meshbox" }, remove = ["X-Debug", "x-debug"] }, response = { set = { x-served = "yes" }, remove = ["server"] } }
  rewrite = { uri = "/", authority = "api.internal" }
  fault = { delay = { fixed_delay = "250ms", percentage = 12.5 }, abort = { http_status = 503, percentage = { value = 0.0001 } } }
  route = [
    { destination = { host = "web", subset = "v1" }, weight = 70, headers = { request = { add = { x-dest = "v1" } }, response = { add = { x-dest = "v1" } } } },
    { destination = { host = "web", subset = "v2" }, weight = 30, headers = { request = { set = { host = "v2.internal" } } } },
  ]

  [[virtual_service.http]]
  name = "regex"
  match = [{ uri = { prefix = "/regex" } }]
  rewrite = { uri_regex_rewrite = { match = "^/regex/(.*)$", rewrite = "/\\1" } }
  headers = { request = { set = { host = "from-headers" } } }
  route = [{ destination = { host = "web" } }]

  [[virtual_service.http]]
  name = "never"
  match = [{ uri = { prefix = "/never" } }]
  fault = { delay = { fixed_delay = "1s" }, abort = { http_status = 500, percentage = 0 } }
  route = [{ destination = { host = "web" } }]

  [[virtual_service.http]]
  name = "always"
  match = [{ uri = { prefix = "/always" } }]
  fault = { abort = { http_status = 418, percentage = 100 } }
  route = [{ destination = { host = "web" } }]

  [[virtual_service.http]]
  name = "plain"
  route = [{ destination = { host = "web" } }]
)";

const RouteSpec& route_named(const Snapshot& s, std::string_view name) {
  for (const auto& vh : table(s, "http.8080").virtual_hosts)
    for (const auto& r : vh.routes)
      if (r.name == name) return r;
  INFO("route " << name);
  FAIL("no such route");
  static RouteSpec none;
  return none;
}

std::string ops_text(const HeaderOpsSpec& ops) {
  std::vector<std::string> out;
  for (const auto& n : ops.remove)
    out.push_back("remove " + n);
  for (const auto& h : ops.set)
    out.push_back("set " + h.name + ": " + h.value);
  for (const auto& h : ops.add)
    out.push_back("add " + h.name + ": " + h.value);
  return lines(out);
}

TEST_CASE("compiler: header operations of routes and destinations, lower case and sorted") {
  config::Config c = load(kRouteOptions);
  Compiled out = compile(c, {});
  INFO(all_warnings(out));
  CHECK_FALSE(has_warning(out, "ignored"));  // (no endpoints: only those are warned about)
  CHECK_FALSE(has_warning(out, "skipped"));
  const RouteSpec& r = route_named(*out.snapshot, "ops");
  CHECK(ops_text(r.request_headers) ==
        lines({"remove x-debug", "set x-a: 1", "set x-b: 2", "add x-via: meshbox"}));
  CHECK(ops_text(r.response_headers) == lines({"remove server", "set x-served: yes"}));
  REQUIRE(r.clusters.size() == 2);
  CHECK(r.clusters[0].cluster == "outbound|80|v1|web.default.svc.cluster.local");
  CHECK(r.clusters[0].weight == 70);
  CHECK(ops_text(r.clusters[0].request_headers) == lines({"add x-dest: v1"}));
  CHECK(ops_text(r.clusters[0].response_headers) == lines({"add x-dest: v1"}));
  CHECK(r.clusters[0].authority.empty());
  // A Host set by a destination's headers is an authority rewrite, not a header operation.
  CHECK(r.clusters[1].request_headers.empty());
  CHECK(r.clusters[1].authority == "v2.internal");
  CHECK(route_named(*out.snapshot, "plain").request_headers.empty());
  CHECK(route_named(*out.snapshot, "plain").clusters.at(0).response_headers.empty());
}

TEST_CASE("compiler: rewrites: uri, authority (beating a Host header op), regex") {
  config::Config c = load(kRouteOptions);
  Compiled out = compile(c, {});
  const RouteSpec& r = route_named(*out.snapshot, "ops");
  CHECK(r.rewrite.uri == "/");
  CHECK_FALSE(r.rewrite.uri_regex);
  CHECK(r.rewrite.authority == "api.internal");

  const RouteSpec& re = route_named(*out.snapshot, "regex");
  CHECK(re.rewrite.uri.empty());
  REQUIRE(re.rewrite.uri_regex);
  CHECK(re.rewrite.uri_regex->pattern() == "^/regex/(.*)$");
  CHECK(re.rewrite.uri_regex->substitution() == "/\\1");
  std::string path = "/regex/a/b";
  CHECK(re.rewrite.uri_regex->apply(path));
  CHECK(path == "/a/b");
  path = "/other";
  CHECK_FALSE(re.rewrite.uri_regex->apply(path));
  CHECK(path == "/other");
  // Without rewrite.authority, a Host set by the route's headers is the authority.
  CHECK(re.rewrite.authority == "from-headers");
  CHECK(re.request_headers.empty());
  CHECK(route_named(*out.snapshot, "plain").rewrite == RewriteSpec{});
}

TEST_CASE("compiler: faults in parts per million; an unset or 0 % fault compiles to nothing") {
  config::Config c = load(kRouteOptions);
  Compiled out = compile(c, {});
  const FaultSpec& f = route_named(*out.snapshot, "ops").fault;
  CHECK(f.delay_ms == 250);
  CHECK(f.delay_per_million == 125'000);
  CHECK(f.abort_status == 503);
  CHECK(f.abort_per_million == 1);  // 0.0001 %
  CHECK(route_named(*out.snapshot, "never").fault == FaultSpec{});
  const FaultSpec& always = route_named(*out.snapshot, "always").fault;
  CHECK(always.delay_ms == 0);
  CHECK(always.abort_status == 418);
  CHECK(always.abort_per_million == 1'000'000);
  CHECK(route_named(*out.snapshot, "plain").fault == FaultSpec{});
}

TEST_CASE("compiler: header operations the proxy cannot honour are dropped with a warning") {
  config::Config c = load(R"(
[[service]]
name = "web"
port = 80

[[gateway]]
name = "edge"
servers = [{ port = 8080, hosts = ["*"] }]

[[virtual_service]]
name = "web"
hosts = ["*"]
gateways = ["edge"]

  [[virtual_service.http]]
  name = "bad"
  headers = { request = { set = { "bad name" = "x", content-length = "5", x-crlf = "a\r\nx-evil: 1", x-empty = "", x-ok = "fine" }, remove = ["Host", "Transfer-Encoding", ":path"] }, response = { add = { host = "h", connection = "close" } } }
  fault = { abort = { grpc_status = "UNAVAILABLE", percentage = 100 } }
  route = [{ destination = { host = "web" } }]

  [[virtual_service.http]]
  name = "teapot"
  match = [{ uri = { exact = "/teapot" } }]
  direct_response = { status = 418 }
  headers = { response = { set = { x-tea = "1" } } }
)");
  Compiled out = compile(c, {});
  INFO(all_warnings(out));
  const RouteSpec& r = route_named(*out.snapshot, "bad");
  CHECK(ops_text(r.request_headers) == lines({"set x-ok: fine"}));
  CHECK(r.response_headers.empty());
  CHECK(r.rewrite.authority.empty());
  CHECK(r.fault == FaultSpec{});
  const std::string where = "virtual_service default/web: http[0].headers.";
  CHECK(has_warning(out, where + "request.set: \"bad name\" is not a header name; ignored"));
  CHECK(has_warning(out, where + "request.set: header content-length is managed by the proxy"));
  CHECK(has_warning(out, where + "request.set: header x-crlf: the value has control characters"));
  CHECK(has_warning(out, where + "request.set: header x-empty: an empty value adds nothing"));
  CHECK(has_warning(out, where + "request.remove: header Host: the Host header cannot be removed"));
  CHECK(has_warning(out, where + "request.remove: header Transfer-Encoding is managed"));
  CHECK(has_warning(out, where + "request.remove: \":path\" is not a header name"));
  CHECK(has_warning(out, where + "response.add: header host: a response has no Host header"));
  CHECK(has_warning(out, where + "response.add: header connection is managed"));
  CHECK(has_warning(out, "http[0].fault.abort: grpc_status aborts need HTTP/2"));
  CHECK(has_warning(out,
                    "http[1]: headers, rewrite and fault apply to routes with destinations "
                    "only for now; ignored on a direct_response"));
}

TEST_CASE("compiler: a regex rewrite RE2 rejects skips its route") {
  config::Config c = load(R"(
[[service]]
name = "web"
port = 80

[[gateway]]
name = "edge"
servers = [{ port = 8080, hosts = ["*"] }]

[[virtual_service]]
name = "web"
hosts = ["*"]
gateways = ["edge"]

  [[virtual_service.http]]
  match = [{ uri = { prefix = "/r" } }]
  rewrite = { uri_regex_rewrite = { match = "^/r/(.*)$", rewrite = "/\\1" } }
  route = [{ destination = { host = "web" } }]

  [[virtual_service.http]]
  route = [{ destination = { host = "web" } }]
)");
  // Validation rejects a substitution naming a group the pattern lacks; a config built in
  // code can still have one, and the compiler must not serve it.
  c.virtual_services[0].http[0].rewrite->uri_regex_rewrite->rewrite = "/\\2";
  Compiled out = compile(c, {});
  INFO(all_warnings(out));
  CHECK(has_warning(out,
                    "virtual_service default/web: http[0].rewrite.uri_regex_rewrite: bad "
                    "substitution"));
  CHECK(has_warning(out, "route skipped"));
  const auto& routes = table(*out.snapshot, "http.8080").virtual_hosts.at(0).routes;
  REQUIRE(routes.size() == 1);
  CHECK(routes[0].name == "default/web/http[1]");
}

TEST_CASE("compiler: a change of a header operation, rewrite or fault gives another snapshot") {
  config::Config c = load(kRouteOptions);
  Compiled a = compile(c, {});
  CHECK(a.snapshot->same_content(*compile(c, {}).snapshot));
  auto differs = [&](auto change) {
    config::Config x = c;
    change(x.virtual_services[0].http[0]);
    return !a.snapshot->same_content(*compile(x, {}).snapshot);
  };
  CHECK(differs([](config::HttpRoute& r) { r.headers.request.add["x-via"] = "other"; }));
  CHECK(differs([](config::HttpRoute& r) { r.headers.response.remove.push_back("x-more"); }));
  CHECK(differs([](config::HttpRoute& r) { r.route[0].headers.response.set["x-d"] = "1"; }));
  CHECK(differs([](config::HttpRoute& r) { r.rewrite->uri = "/v2"; }));
  CHECK(differs([](config::HttpRoute& r) { r.rewrite->authority = "other.internal"; }));
  CHECK(differs([](config::HttpRoute& r) { r.fault->delay->percentage = 12.6; }));
  CHECK(differs([](config::HttpRoute& r) { r.fault->abort->http_status = 500; }));
  config::Config x = c;
  x.virtual_services[0].http[1].rewrite->uri_regex_rewrite->rewrite = "/x/\\1";
  CHECK_FALSE(a.snapshot->same_content(*compile(x, {}).snapshot));
}

// ---------------------------------------------------------------------------------------
// Determinism

TEST_CASE("compiler: the same input gives the same snapshot; a change gives another") {
  config::Config c = load(kRouting);
  std::vector<Endpoint> eps = {
      endpoint(kReviews, "10.0.0.3", 9080, {{"version", "v3"}}),
      endpoint(kReviews, "10.0.0.1", 9080, {{"version", "v1"}}),
      endpoint(kReviews, "10.0.0.2", 9080, {{"version", "v1"}}),
      endpoint("web.default.svc.cluster.local", "10.0.1.1"),
  };
  Compiled a = compile(c, eps);
  Compiled b = compile(c, eps);
  CHECK(a.snapshot->same_content(*b.snapshot));
  CHECK(a.warnings == b.warnings);
  // The registry's order does not matter.
  std::reverse(eps.begin(), eps.end());
  CHECK(a.snapshot->same_content(*compile(c, eps).snapshot));

  // A weight.
  config::Config changed = c;
  changed.virtual_services[0].http[0].route[0].weight = 80;
  changed.virtual_services[0].http[0].route[1].weight = 20;
  CHECK_FALSE(a.snapshot->same_content(*compile(changed, eps).snapshot));
  // An endpoint's health (eps[1] is reviews v1 10.0.0.2 now; v1 keeps 10.0.0.1).
  eps[1].healthy = false;
  CHECK_FALSE(a.snapshot->same_content(*compile(c, eps).snapshot));
}

}  // namespace
// ---------------------------------------------------------------------------------------
// Retries, mirrors, CORS; connection pools, outlier detection, hashing, port-level settings

constexpr const char* kPolicies = R"(
[[service]]
name = "web"
ports = [{ number = 80 }, { number = 9090, name = "admin" }]

[[destination_rule]]
name = "web"
host = "web"
  [destination_rule.traffic_policy]
  connection_pool = { tcp = { max_connections = 7 }, http = { http1_max_pending_requests = 3, http2_max_requests = 50, max_retries = 4, max_requests_per_connection = 9 } }
  outlier_detection = { consecutive_gateway_errors = 2, interval = "2s", base_ejection_time = "10s", max_ejection_percent = 40 }
  load_balancer = { consistent_hash = { http_cookie = { name = "s", path = "/", ttl = "30s" }, minimum_ring_size = 2048 } }
  port_level_settings = [{ port = { number = 9090 }, load_balancer = "random", connection_pool = { tcp = { max_connections = 1 } } }]
  [[destination_rule.subsets]]
  name = "v2"
  labels = { version = "v2" }
  traffic_policy = { outlier_detection = { consecutive_5xx_errors = 0, consecutive_gateway_errors = 1 }, load_balancer = { consistent_hash = { http_header_name = "X-User" } } }

[[gateway]]
name = "edge"
servers = [{ port = 8080, hosts = ["*"] }]

[[virtual_service]]
name = "web"
hosts = ["*"]
gateways = ["edge"]

  [[virtual_service.http]]
  name = "explicit"
  match = [{ uri = { prefix = "/x" } }]
  retries = { attempts = 4, per_try_timeout = "250ms", retry_on = "5xx, reset,retriable-4xx,409,gateway-error , connect-failure,refused-stream" }
  mirror = { host = "web", subset = "v2", port = { number = 80 } }
  mirror_percentage = 12.5
  cors_policy = { allow_origins = [{ exact = "https://a" }, { prefix = "https://b." }], allow_methods = ["GET", "PUT"], allow_headers = ["x-a"], expose_headers = ["x-b", "x-c"], max_age = "1m", allow_credentials = true }
  route = [{ destination = { host = "web", port = { number = 80 } } }]

  [[virtual_service.http]]
  name = "off"
  match = [{ uri = { prefix = "/off" } }]
  retries = { attempts = 0 }
  route = [{ destination = { host = "web", port = { number = 80 } } }]

  [[virtual_service.http]]
  name = "default"
  route = [{ destination = { host = "web", port = { number = 80 } } }]
)";

TEST_CASE("compiler: retries (Istio's default too), mirror and cors_policy of a route") {
  Compiled out = compile(load(kPolicies), {});
  const RouteSpec& x = route_named(*out.snapshot, "explicit");
  CHECK(x.retry.attempts == 4);
  CHECK(x.retry.per_try_timeout_ms == 250);
  CHECK(x.retry.on ==
        (RetrySpec::k5xx | RetrySpec::kReset | RetrySpec::kRetriable4xx | RetrySpec::kGatewayError |
         RetrySpec::kConnectFailure | RetrySpec::kStatusCodes));
  CHECK(x.retry.status_codes == std::vector<uint32_t>{409});
  CHECK(x.mirror.cluster == "outbound|80|v2|web.default.svc.cluster.local");
  CHECK(x.mirror.per_million == 125'000);
  CHECK(x.cors.enabled);
  REQUIRE(x.cors.allow_origins.size() == 2);
  CHECK(x.cors.allow_origins[1].matches("https://b.example"));
  CHECK_FALSE(x.cors.allow_origins[0].matches("https://ab"));
  CHECK(x.cors.allow_methods == "GET,PUT");
  CHECK(x.cors.expose_headers == "x-b,x-c");
  CHECK(x.cors.max_age == "60");
  CHECK(x.cors.allow_credentials);

  CHECK(route_named(*out.snapshot, "off").retry.attempts == 0);
  const RetrySpec& d = route_named(*out.snapshot, "default").retry;
  CHECK(d.attempts == 2);  // Istio's default policy
  CHECK(d.on == (RetrySpec::kConnectFailure | RetrySpec::kStatusCodes));
  CHECK(d.status_codes == std::vector<uint32_t>{503});
  CHECK(route_named(*out.snapshot, "default").mirror.cluster.empty());
  CHECK_FALSE(route_named(*out.snapshot, "default").cors.enabled);
}

TEST_CASE("compiler: connection pool limits, outlier detection, hashing, port-level settings") {
  Compiled out = compile(load(kPolicies), {});
  const ClusterSpec& c80 = cluster(*out.snapshot, "outbound|80||web.default.svc.cluster.local");
  CHECK(c80.limits.max_connections == 7);
  CHECK(c80.limits.max_pending_requests == 3);
  CHECK(c80.limits.max_requests == 50);
  CHECK(c80.limits.max_retries == 4);
  CHECK(c80.limits.max_requests_per_connection == 9);
  CHECK(c80.outlier.consecutive_5xx == 5);  // Istio's default once outlier_detection is set
  CHECK(c80.outlier.consecutive_gateway_errors == 2);
  CHECK(c80.outlier.interval_ms == 2000);
  CHECK(c80.outlier.base_ejection_time_ms == 10'000);
  CHECK(c80.outlier.max_ejection_percent == 40);
  CHECK(c80.hash.kind == HashPolicySpec::Kind::Cookie);
  CHECK(c80.hash.name == "s");
  CHECK(c80.hash.cookie_path == "/");
  CHECK(c80.hash.cookie_ttl_ms == 30'000);
  CHECK(c80.hash.ring_size == 2048);

  // Port 9090's own settings replace the rule's load_balancer and connection_pool.
  const ClusterSpec& c9090 = cluster(*out.snapshot, "outbound|9090||web.default.svc.cluster.local");
  CHECK(c9090.lb_policy == LbPolicy::Random);
  CHECK(c9090.hash.kind == HashPolicySpec::Kind::None);
  CHECK(c9090.limits.max_connections == 1);
  CHECK(c9090.limits.max_pending_requests == CircuitBreakerSpec::kUnlimited);
  CHECK(c9090.outlier.consecutive_gateway_errors == 2);  // not replaced: the rule's

  // The subset's policy is laid over the rule's (and the rule's port-level settings).
  const ClusterSpec& v2 = cluster(*out.snapshot, "outbound|80|v2|web.default.svc.cluster.local");
  CHECK(v2.outlier.consecutive_5xx == 0);
  CHECK(v2.outlier.consecutive_gateway_errors == 1);
  CHECK(v2.hash.kind == HashPolicySpec::Kind::Header);
  CHECK(v2.hash.name == "x-user");
  CHECK(v2.limits.max_connections == 7);

  // No policy at all: unlimited, no ejection, no hashing.
  Compiled plain = compile(load(kRouteOptions), {});
  const ClusterSpec& p = cluster(*plain.snapshot, "outbound|80||web.default.svc.cluster.local");
  CHECK(p.limits == CircuitBreakerSpec{});
  CHECK_FALSE(p.outlier.enabled());
  CHECK(p.hash.kind == HashPolicySpec::Kind::None);
}

// ---------------------------------------------------------------------------------------
// Sidecars

constexpr const char* kMesh = R"(
[mesh]
outbound_traffic_policy = "registry_only"

[[service]]
name = "reviews"
port = 9080

[[service]]
name = "ratings"
port = 9080

[[destination_rule]]
name = "reviews"
host = "reviews"
subsets = [{ name = "v1", labels = { version = "v1" } }, { name = "v2", labels = { version = "v2" } }]

[[virtual_service]]
name = "reviews"
hosts = ["reviews"]

  [[virtual_service.http]]
  match = [{ headers = { end-user = { exact = "jason" } } }]
  route = [{ destination = { host = "reviews", subset = "v2" } }]

  [[virtual_service.http]]
  match = [{ source_labels = { app = "productpage" } }]
  route = [{ destination = { host = "reviews", subset = "v1" } }]
)";

Endpoint instance(std::string host, std::string name, uint32_t app_port, uint32_t in, uint32_t out,
                  config::Labels labels) {
  Endpoint ep = endpoint(std::move(host), "127.0.0.1", app_port, std::move(labels));
  ep.instance = std::move(name);
  ep.sidecar_inbound_port = in;
  ep.sidecar_outbound_port = out;
  return ep;
}

const ListenerSpec* listener_named(const Snapshot& s, std::string_view name) {
  for (const auto& l : s.listeners)
    if (l.name == name) return &l;
  return nullptr;
}

TEST_CASE("compiler: sidecars: inbound in front of the app, outbound routes by mesh rules") {
  std::vector<Endpoint> eps = {
      instance(kReviews, "reviews-v1", 20001, 21001, 22001,
               {{"app", "reviews"}, {"version", "v1"}}),
      instance(kReviews, "reviews-v2", 20002, 21002, 22002,
               {{"app", "reviews"}, {"version", "v2"}}),
      instance("ratings.default.svc.cluster.local", "ratings", 20003, 21003, 22003,
               {{"app", "ratings"}}),
  };
  Compiled out = compile(load(kMesh), eps);
  const Snapshot& s = *out.snapshot;
  INFO(all_warnings(out));

  // The service's clusters reach each instance through its inbound listener.
  CHECK(addresses(cluster(s, std::string("outbound|9080||") + kReviews)) ==
        "127.0.0.1:21001\n127.0.0.1:21002\n");
  const ListenerSpec* in = listener_named(s, "sidecar_reviews-v1_inbound");
  REQUIRE(in);
  CHECK(in->address.to_string() == "127.0.0.1:21001");
  CHECK(addresses(cluster(s, "inbound|20001||reviews-v1")) == "127.0.0.1:20001\n");

  // Outbound: per instance; "reviews:9080" routes by the virtual service, as the client
  // matches it (source_labels).
  const ListenerSpec* rout = listener_named(s, "sidecar_ratings_outbound");
  REQUIRE(rout);
  CHECK(rout->address.to_string() == "127.0.0.1:22003");
  const RouteTableSpec& t = table(s, rout->route_table);
  auto vhost = [&](std::string_view host) -> const VirtualHostSpec& {
    for (const auto& vh : t.virtual_hosts)
      for (const auto& d : vh.domains)
        if (d == host) return vh;
    FAIL("no virtual host for " << host);
    static VirtualHostSpec none;
    return none;
  };
  const VirtualHostSpec& reviews = vhost("reviews:9080");
  CHECK(&vhost("reviews.default.svc.cluster.local:9080") == &reviews);
  REQUIRE(reviews.routes.size() == 1);  // ratings is not productpage: the second rule is out
  CHECK(reviews.routes[0].clusters.at(0).cluster == std::string("outbound|9080|v2|") + kReviews);
  // A service without a virtual service: its default route, with Istio's default retries.
  const VirtualHostSpec& ratings = vhost("ratings:9080");
  REQUIRE(ratings.routes.size() == 1);
  CHECK(ratings.routes[0].clusters.at(0).cluster ==
        "outbound|9080||ratings.default.svc.cluster.local");
  CHECK(ratings.routes[0].retry.attempts == 2);
  // Any other host: registry_only's 502.
  const VirtualHostSpec& other = vhost("*");
  REQUIRE(other.routes.size() == 1);
  CHECK(other.routes[0].action == RouteSpec::Action::DirectResponse);
  CHECK(other.routes[0].direct_response.status == 502);
  CHECK(other.routes[0].direct_response.body.find("registry_only") != std::string::npos);

  // productpage-labelled clients get the source_labels rule too.
  eps.push_back(
      instance(kProductpage, "productpage", 20004, 21004, 22004, {{"app", "productpage"}}));
  config::Config c = load(kMesh);
  config::Service pp;
  pp.name = "productpage";
  pp.ports.push_back({9080, "http", config::Protocol::Http, 0});
  c.services.push_back(pp);
  Compiled with_pp = compile(c, eps);
  const ListenerSpec* pout = listener_named(*with_pp.snapshot, "sidecar_productpage_outbound");
  REQUIRE(pout);
  const RouteTableSpec& pt = table(*with_pp.snapshot, pout->route_table);
  size_t routes = 0;
  for (const auto& vh : pt.virtual_hosts)
    if (std::find(vh.domains.begin(), vh.domains.end(), "reviews:9080") != vh.domains.end())
      routes = vh.routes.size();
  CHECK(routes == 2);
}

}  // namespace meshbox::control

namespace meshbox::control {

TEST_CASE("compiler: mesh mTLS: peer_authentication precedence and auto mTLS endpoints") {
  // Contexts from a real CA; the compiler only hands them to listeners.
  test::TempDir dir;
  auto ca = CertificateAuthority::open(dir.path());
  REQUIRE(ca);
  std::map<std::string, MeshIdentity> made;
  CompileOptions opts;
  opts.identity = [&](const std::string& id) -> const MeshIdentity* {
    auto it = made.find(id);
    if (it != made.end()) return &it->second;
    auto issued = (*ca)->issue(id, std::chrono::hours(1));
    REQUIRE(issued);
    tls::TlsContextSpec spec;
    spec.identities.push_back(tls::TlsIdentity{{issued->leaf}, issued->key, {}});
    spec.trusted_roots = {(*ca)->root()};
    spec.client_certs = tls::ClientCertMode::Require;
    auto server = tls::TlsContext::create(spec);
    spec.role = tls::TlsContextSpec::Role::Client;
    spec.client_certs = tls::ClientCertMode::None;
    auto client = tls::TlsContext::create(spec);
    REQUIRE(server);
    REQUIRE(client);
    return &(made[id] = MeshIdentity{*server, *client});
  };
  std::vector<Endpoint> eps = {
      instance(kReviews, "reviews-v1", 20001, 21001, 22001, {{"app", "reviews"}}),
      instance("ratings.default.svc.cluster.local", "ratings", 20003, 21003, 22003,
               {{"app", "ratings"}}),
      instance("details.default.svc.cluster.local", "details", 20004, 21004, 22004,
               {{"app", "details"}}),
  };
  eps[1].service_account = "bookinfo-ratings";
  auto mode_of = [](const Snapshot& s, const std::string& inst) {
    const ListenerSpec* l = listener_named(s, "sidecar_" + inst + "_inbound");
    REQUIRE(l);
    return l->mesh_tls;
  };
  constexpr const char* kServices = R"(
[[service]]
name = "reviews"
port = 9080
[[service]]
name = "ratings"
port = 9080
[[service]]
name = "details"
port = 9080
)";
  using M = ListenerSpec::MeshTls;
  {
    // No policy: PERMISSIVE everywhere; every endpoint behind a sidecar takes mTLS and must
    // show its workload's identity; every outbound sidecar has a client identity.
    Compiled out = compile(load(kServices), eps, opts);
    const Snapshot& s = *out.snapshot;
    CHECK(mode_of(s, "reviews-v1") == M::Permissive);
    CHECK(listener_named(s, "sidecar_reviews-v1_inbound")->mesh_server);
    CHECK(listener_named(s, "sidecar_reviews-v1_outbound")->mesh_client);
    const ClusterSpec& ratings = cluster(s, "outbound|9080||ratings.default.svc.cluster.local");
    REQUIRE(ratings.endpoints.size() == 1);
    CHECK(ratings.endpoints[0].peer_identity ==
          "spiffe://cluster.local/ns/default/sa/bookinfo-ratings");
  }
  {
    // Mesh-wide STRICT, the default namespace DISABLE, ratings' own policy STRICT with port
    // 20003 PERMISSIVE: the workload's beats the namespace's beats the mesh's.
    Compiled out = compile(load(std::string(kServices) + R"(
[[peer_authentication]]
name = "mesh"
namespace = "istio-system"
mtls = { mode = "strict" }
[[peer_authentication]]
name = "ns"
namespace = "default"
mtls = { mode = "disable" }
[[peer_authentication]]
name = "ratings"
namespace = "default"
selector = { match_labels = { app = "ratings" } }
mtls = { mode = "strict" }
port_level_mtls = { 20003 = { mode = "permissive" } }
[[peer_authentication]]
name = "details"
namespace = "default"
selector = { match_labels = { app = "details" } }
mtls = { mode = "strict" }
[[destination_rule]]
name = "details-plain"
host = "details"
traffic_policy = { tls = { mode = "disable" } }
)"),
                           eps, opts);
    const Snapshot& s = *out.snapshot;
    CHECK(mode_of(s, "reviews-v1") == M::Disable);
    CHECK_FALSE(listener_named(s, "sidecar_reviews-v1_inbound")->mesh_server);
    CHECK(mode_of(s, "ratings") == M::Permissive);
    CHECK(mode_of(s, "details") == M::Strict);
    // reviews takes no mTLS: its endpoint is plain; details' destination rule disables it.
    CHECK(cluster(s, "outbound|9080||" + std::string(kReviews)).endpoints[0].peer_identity == "");
    CHECK(
        cluster(s, "outbound|9080||details.default.svc.cluster.local").endpoints[0].peer_identity ==
        "");
    CHECK(
        cluster(s, "outbound|9080||ratings.default.svc.cluster.local").endpoints[0].peer_identity !=
        "");
  }
  // Without an identity provider (no CA): no mTLS anywhere.
  Compiled out = compile(load(kServices), eps);
  CHECK(mode_of(*out.snapshot, "ratings") == M::Disable);
  CHECK(cluster(*out.snapshot, "outbound|9080||ratings.default.svc.cluster.local")
            .endpoints[0]
            .peer_identity == "");
}

}  // namespace meshbox::control
