// Tests for plane/control/compiler.h, authorization policies: which policies land on which
// listener (the workload's namespace and labels, the root namespace, a gateway's namespace and
// selector), the destination ports, and how values compile (CIDRs, `*` matches, ports,
// condition keys; what cannot be evaluated fails closed, with a warning).
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

Endpoint instance(std::string host, std::string ns, std::string name, uint32_t app_port,
                  uint32_t in, uint32_t out, config::Labels labels) {
  Endpoint ep;
  ep.host = std::move(host);
  ep.ns = std::move(ns);
  ep.address = "127.0.0.1";
  ep.port = app_port;
  ep.labels = std::move(labels);
  ep.source = "api";
  ep.instance = std::move(name);
  ep.sidecar_inbound_port = in;
  ep.sidecar_outbound_port = out;
  return ep;
}

// The policies of a listener as "NS/NAME" lines.
std::string policies(const ListenerSpec& l) {
  std::string out;
  for (const auto& p : l.authz.policies)
    out += p.ns + "/" + p.name + "\n";
  return out;
}

constexpr std::string_view kConfig = R"(
[[service]]
name = "web"
ports = [{ number = 9080, name = "http", protocol = "http" }]

[[service]]
name = "api"
namespace = "prod"
port = 8000

[[gateway]]
name = "ingress"
selector = { istio = "ingressgateway" }
servers = [{ port = 18080, bind = "127.0.0.1", protocol = "http", hosts = ["*"] }]

[[authorization_policy]]
name = "mesh-wide"
namespace = "istio-system"
action = "deny"
rules = [{ from = [{ source = { ip_blocks = ["192.0.2.0/24", "198.51.100.7"] } }] }]

[[authorization_policy]]
name = "root-gateways"
namespace = "istio-system"
selector = { match_labels = { istio = "ingressgateway" } }
action = "audit"
rules = [{}]

[[authorization_policy]]
name = "default-ns"
namespace = "default"
rules = [{ to = [{ operation = { paths = ["/exact", "/prefix/*", "*.png", "*"], hosts = ["Web"], ports = ["9080"] } }] }]

[[authorization_policy]]
name = "web-only"
namespace = "default"
selector = { match_labels = { app = "web" } }
action = "allow"
rules = [{ from = [{ source = { principals = ["spiffe://cluster.local/ns/default/sa/sleep", "*/sa/probe"], namespaces = ["default"] } }], when = [{ key = "request.headers[X-User]", values = ["jason"] }, { key = "request.auth.claims[org][team]", values = ["core"] }, { key = "destination.port", values = ["9080"] }, { key = "remote.ip", not_values = ["10.0.0.0/8"] }] }]

[[authorization_policy]]
name = "deny-all-here"
namespace = "default"
selector = { match_labels = { app = "other" } }

[[authorization_policy]]
name = "prod-only"
namespace = "prod"
action = "deny"
rules = [{ when = [{ key = "experimental.envoy.filters.network.mysql_proxy[db.table]", values = ["x"] }] }]
)";

}  // namespace

TEST_CASE("compiler: authorization policies by namespace, selector and root namespace") {
  std::vector<Endpoint> eps = {
      instance("web.default.svc.cluster.local", "default", "web", 20001, 21001, 22001,
               {{"app", "web"}}),
      instance("api.prod.svc.cluster.local", "prod", "api", 20002, 21002, 22002, {{"app", "api"}}),
  };
  Compiled out = compile(load(kConfig), eps);
  const Snapshot& s = *out.snapshot;

  // web: the mesh-wide policy, its namespace's, and the one selecting its labels; not the
  // gateway's, not the one for app=other, not prod's.
  const ListenerSpec& web = listener(s, "sidecar_web_inbound");
  CHECK(policies(web) == "istio-system/mesh-wide\ndefault/default-ns\ndefault/web-only\n");
  // ports: the workload's own port and its service's.
  CHECK(web.authz.destination_ports == std::vector<uint32_t>{9080, 20001});
  CHECK(web.spiffe_id == "spiffe://cluster.local/ns/default/sa/default");
  // prod's workload: the mesh-wide policy and its own namespace's.
  CHECK(policies(listener(s, "sidecar_api_inbound")) == "istio-system/mesh-wide\nprod/prod-only\n");
  // The gateway (namespace default, selector istio=ingressgateway): root policies that select
  // it or select nothing; not default's namespace-wide one (that is for the apps there).
  const ListenerSpec& gw = listener(s, "127.0.0.1_18080");
  CHECK(policies(gw) == "istio-system/mesh-wide\nistio-system/root-gateways\n");
  CHECK(gw.authz.destination_ports == std::vector<uint32_t>{18080});
  // Outbound listeners are not authorized.
  CHECK(listener(s, "sidecar_web_outbound").authz.empty());

  // How the values compiled.
  const AuthzPolicySpec& deny = web.authz.policies[0];
  CHECK(deny.action == AuthzPolicySpec::Action::Deny);
  REQUIRE(deny.rules.size() == 1);
  REQUIRE(deny.rules[0].from.size() == 1);
  const auto& blocks = deny.rules[0].from[0].ip_blocks;
  REQUIRE(blocks.size() == 2);
  CHECK(blocks[0] == *CidrBlock::parse("192.0.2.0/24"));
  CHECK(blocks[1].prefix_len == 32);

  const AuthzOperationSpec& op = web.authz.policies[1].rules.at(0).to.at(0);
  REQUIRE(op.paths.size() == 4);
  CHECK(op.paths[0].kind == AuthzMatch::Kind::Exact);
  CHECK(op.paths[1].kind == AuthzMatch::Kind::Prefix);
  CHECK(op.paths[1].value == "/prefix/");
  CHECK(op.paths[2].kind == AuthzMatch::Kind::Suffix);
  CHECK(op.paths[2].value == ".png");
  CHECK(op.paths[3].kind == AuthzMatch::Kind::Presence);
  REQUIRE(op.hosts.size() == 1);
  CHECK(op.hosts[0].ignore_case);
  CHECK(op.hosts[0].value == "web");
  CHECK(op.ports == std::vector<uint32_t>{9080});

  const AuthzRuleSpec& rule = web.authz.policies[2].rules.at(0);
  REQUIRE(rule.from.size() == 1);
  REQUIRE(rule.from[0].principals.size() == 2);
  CHECK(rule.from[0].principals[0].value == "cluster.local/ns/default/sa/sleep");  // no spiffe://
  CHECK(rule.from[0].principals[1].kind == AuthzMatch::Kind::Suffix);
  REQUIRE(rule.when.size() == 4);
  using Key = AuthzConditionSpec::Key;
  CHECK(rule.when[0].key == Key::Header);
  CHECK(rule.when[0].header == "x-user");
  CHECK(rule.when[1].key == Key::Claim);
  CHECK(rule.when[1].claim == std::vector<std::string>{"org", "team"});
  CHECK(rule.when[2].key == Key::DestinationPort);
  CHECK(rule.when[2].ports == std::vector<uint32_t>{9080});
  CHECK(rule.when[3].key == Key::RemoteIp);
  CHECK(rule.when[3].not_ips.size() == 1);

  // An ALLOW policy without rules stays without rules (it denies everything it selects).
  std::vector<Endpoint> with_other = eps;
  with_other.push_back(instance("web.default.svc.cluster.local", "default", "other", 20003, 21003,
                                22003, {{"app", "other"}}));
  Compiled out2 = compile(load(kConfig), with_other);
  const ListenerSpec& other = listener(*out2.snapshot, "sidecar_other_inbound");
  CHECK(policies(other) == "istio-system/mesh-wide\ndefault/default-ns\ndefault/deny-all-here\n");
  CHECK(other.authz.policies[2].rules.empty());

  // A key meshbox does not evaluate: an Unsupported condition (fails closed) and a warning.
  const AuthzPolicySpec& prod = listener(s, "sidecar_api_inbound").authz.policies[1];
  CHECK(prod.rules.at(0).when.at(0).key == Key::Unsupported);
  bool warned = std::any_of(out.warnings.begin(), out.warnings.end(), [](const std::string& w) {
    return w.find("prod/prod-only") != std::string::npos &&
           w.find("not evaluated") != std::string::npos;
  });
  CHECK(warned);
}

TEST_CASE("compiler: no authorization policy, none on listeners; a change, a new snapshot") {
  constexpr std::string_view kPlain = R"(
[[service]]
name = "web"
port = 9080
)";
  std::vector<Endpoint> eps = {instance("web.default.svc.cluster.local", "default", "web", 20001,
                                        21001, 22001, {{"app", "web"}})};
  Compiled a = compile(load(kPlain), eps);
  CHECK(listener(*a.snapshot, "sidecar_web_inbound").authz.empty());
  std::string with_policy = std::string(kPlain) +
                            "[[authorization_policy]]\nname = \"x\"\n"
                            "rules = [{ to = [{ operation = { methods = [\"GET\"] } }] }]\n";
  Compiled b = compile(load(with_policy), eps);
  CHECK_FALSE(a.snapshot->same_content(*b.snapshot));
  Compiled c = compile(load(with_policy), eps);
  CHECK(b.snapshot->same_content(*c.snapshot));
}

}  // namespace meshbox::control

namespace meshbox::control {

TEST_CASE("compiler: a policy that selects a tcp workload is warned about (not enforced)") {
  constexpr std::string_view kTcp = R"(
[[service]]
name = "db"
ports = [{ number = 5432, name = "tcp", protocol = "tcp" }]

[[authorization_policy]]
name = "db-callers"
rules = [{ from = [{ source = { namespaces = ["default"] } }] }]
)";
  std::vector<Endpoint> eps = {instance("db.default.svc.cluster.local", "default", "db", 20001,
                                        21001, 22001, {{"app", "db"}})};
  Compiled out = compile(load(kTcp), eps);
  const ListenerSpec& db = listener(*out.snapshot, "sidecar_db_inbound");
  CHECK(db.protocol == ListenerSpec::Protocol::Tcp);
  CHECK(db.authz.empty());
  bool warned = std::any_of(out.warnings.begin(), out.warnings.end(), [](const std::string& w) {
    return w.find("default/db-callers: not enforced yet for db") != std::string::npos;
  });
  CHECK(warned);
}

}  // namespace meshbox::control
