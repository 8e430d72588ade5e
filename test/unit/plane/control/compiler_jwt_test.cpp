// Tests for plane/control/compiler.h, request_authentication: which rules each inbound
// sidecar and gateway listener gets (namespace, selector, the mesh root namespace), the
// inline key sets (parsed once, equal snapshots for equal text), and jwks_uri through the
// control plane's callback.
#include <doctest/doctest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "plane/config/error.h"
#include "plane/config/load.h"
#include "plane/control/compiler.h"
#include "test/unit/plane/control/compiler_test_util.h"

namespace meshbox::control {
namespace {

using testutil::listener;
using testutil::load;

Endpoint instance(std::string name, std::string ns, uint32_t app_port, uint32_t in,
                  config::Labels labels) {
  Endpoint ep;
  ep.host = "web." + ns + ".svc.cluster.local";
  ep.ns = std::move(ns);
  ep.address = "127.0.0.1";
  ep.port = app_port;
  ep.labels = std::move(labels);
  ep.healthy = true;
  ep.source = "api";
  ep.instance = std::move(name);
  ep.sidecar_inbound_port = in;
  ep.sidecar_outbound_port = in + 1;
  return ep;
}

std::vector<std::string> issuers(const ListenerSpec& l) {
  std::vector<std::string> out;
  for (const auto& p : l.jwt.providers)
    out.push_back(p.issuer);
  return out;
}

// A P-256 public key (any point on the curve will do for parsing).
constexpr const char* kJwks =
    R"({"keys":[{"kty":"EC","crv":"P-256","x":"MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4","y":"4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM","kid":"k"}]})";

std::string config_text(uint16_t gw_port) {
  return std::string(R"(
[mesh]
root_namespace = "istio-system"

[[service]]
name = "web"
port = 8000

[[service]]
name = "web"
namespace = "other"
port = 8000

[[gateway]]
name = "edge"
selector = { app = "edge" }
servers = [{ port = )") +
         std::to_string(gw_port) + R"(, bind = "127.0.0.1", protocol = "http", hosts = ["*"] }]

[[request_authentication]]
name = "ns-wide"
jwt_rules = [{ issuer = "ns", jwks = ')" +
         kJwks + R"(' }]

[[request_authentication]]
name = "web-only"
selector = { match_labels = { app = "web" } }
jwt_rules = [{ issuer = "web", jwks_uri = "https://keys.example/jwks", from_headers = [{ name = "X-Token", prefix = "T " }], output_payload_to_header = "X-Payload" }]

[[request_authentication]]
name = "edge-only"
selector = { match_labels = { app = "edge" } }
jwt_rules = [{ issuer = "edge", jwks = ')" +
         kJwks + R"(' }]

[[request_authentication]]
name = "mesh-wide"
namespace = "istio-system"
jwt_rules = [{ issuer = "mesh", jwks_uri = "file:///nonexistent/jwks.json", timeout = "2s" }]

[[request_authentication]]
name = "elsewhere"
namespace = "other"
jwt_rules = [{ issuer = "other", jwks = ')" +
         kJwks + R"(' }]
)";
}

}  // namespace

TEST_CASE("compiler: request_authentication per workload and gateway, keys") {
  config::Config c = load(config_text(18080));
  std::vector<Endpoint> eps = {
      instance("web-1", "default", 20001, 21001, {{"app", "web"}}),
      instance("api-1", "default", 20002, 21003, {{"app", "api"}}),
      instance("web-o", "other", 20003, 21005, {{"app", "web"}}),
  };
  std::vector<std::pair<std::string, uint64_t>> asked;
  CompileOptions opts;
  auto jwks = tls::Jwks::parse(kJwks);
  REQUIRE(jwks.has_value());
  opts.jwks_uri = [&](const std::string& uri, uint64_t timeout_ms,
                      std::string& error) -> tls::JwksConstPtr {
    asked.emplace_back(uri, timeout_ms);
    if (uri.starts_with("https://")) return *jwks;
    error = "No such file or directory";
    return nullptr;
  };
  Compiled out = compile(c, eps, opts);
  const Snapshot& s = *out.snapshot;

  // The workload: its namespace's, its selector's and the mesh-wide rule; not another
  // namespace's, not the gateway's.
  const ListenerSpec& web = listener(s, "sidecar_web-1_inbound");
  CHECK(issuers(web) == std::vector<std::string>{"ns", "web", "mesh"});
  const JwtProviderSpec& p = web.jwt.providers[1];
  REQUIRE(p.from_headers.size() == 1);
  CHECK(p.from_headers[0].name == "x-token");
  CHECK(p.from_headers[0].prefix == "T ");
  CHECK(p.output_payload_to_header == "x-payload");
  CHECK(p.jwks == *jwks);
  CHECK(web.jwt.providers[0].jwks);  // inline
  CHECK_FALSE(web.jwt.providers[2].jwks);
  CHECK(web.jwt.providers[2].jwks_error ==
        "file:///nonexistent/jwks.json: No such file or directory");
  CHECK(std::any_of(out.warnings.begin(), out.warnings.end(), [](const std::string& w) {
    return w.find("request_authentication istio-system/mesh-wide: jwt_rules[0]: no keys") !=
           std::string::npos;
  }));
  CHECK(std::find(asked.begin(), asked.end(),
                  std::pair<std::string, uint64_t>("file:///nonexistent/jwks.json", 2000)) !=
        asked.end());
  CHECK(std::find(asked.begin(), asked.end(),
                  std::pair<std::string, uint64_t>("https://keys.example/jwks", 5000)) !=
        asked.end());

  CHECK(issuers(listener(s, "sidecar_api-1_inbound")) == std::vector<std::string>{"ns", "mesh"});
  CHECK(issuers(listener(s, "sidecar_web-o_inbound")) == std::vector<std::string>{"mesh", "other"});
  // Outbound listeners never authenticate.
  CHECK(listener(s, "sidecar_web-1_outbound").jwt.empty());
  // The gateway: its selector's and the mesh-wide one; not its namespace's selector-less one
  // (meshbox's gateways share the apps' namespace).
  CHECK(issuers(listener(s, "127.0.0.1_18080")) == std::vector<std::string>{"edge", "mesh"});

  // Compiled again: equal (the inline sets are new objects with the same text).
  Compiled again = compile(c, eps, opts);
  CHECK(again.snapshot->same_content(s));
  CHECK(again.snapshot->listeners == s.listeners);
}

TEST_CASE("compiler: request_authentication without a jwks_uri callback") {
  Compiled out = compile(load(config_text(18081)),
                         {instance("web-1", "default", 20001, 21001, {{"app", "web"}})});
  const ListenerSpec& web = listener(*out.snapshot, "sidecar_web-1_inbound");
  REQUIRE(web.jwt.providers.size() == 3);
  CHECK(web.jwt.providers[0].jwks);
  CHECK_FALSE(web.jwt.providers[1].jwks);
  CHECK(web.jwt.providers[1].jwks_error.find("not fetched here") != std::string::npos);
}

}  // namespace meshbox::control
