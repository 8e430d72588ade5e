// Tests for plane/data/authz.h and plane/authz_spec.h: Istio's AuthorizationPolicy semantics
// on hand-made specs — DENY before ALLOW, ALLOW without rules, AUDIT, empty rules, ORs and
// ANDs, not_ fields, each source, operation and condition field, `*` values, CIDR blocks.
#include "plane/data/authz.h"

#include <doctest/doctest.h>

#include <string>
#include <vector>

namespace meshbox::data {
namespace {

using Action = AuthzPolicySpec::Action;
using Key = AuthzConditionSpec::Key;

std::vector<AuthzMatch> m(std::initializer_list<std::string_view> values, bool icase = false) {
  std::vector<AuthzMatch> out;
  for (auto v : values)
    out.push_back(AuthzMatch::parse(v, icase));
  return out;
}

std::vector<CidrBlock> cidrs(std::initializer_list<std::string_view> values) {
  std::vector<CidrBlock> out;
  for (auto v : values) {
    auto b = CidrBlock::parse(v);
    REQUIRE_MESSAGE(b.has_value(), v);
    out.push_back(*b);
  }
  return out;
}

AuthzPolicySpec policy(Action action, std::vector<AuthzRuleSpec> rules, std::string name = "p") {
  AuthzPolicySpec p;
  p.ns = "default";
  p.name = std::move(name);
  p.action = action;
  p.rules = std::move(rules);
  return p;
}

AuthzRuleSpec from(AuthzSourceSpec s) {
  AuthzRuleSpec r;
  r.from.push_back(std::move(s));
  return r;
}

AuthzRuleSpec to(AuthzOperationSpec o) {
  AuthzRuleSpec r;
  r.to.push_back(std::move(o));
  return r;
}

AuthzRuleSpec when(AuthzConditionSpec c) {
  AuthzRuleSpec r;
  r.when.push_back(std::move(c));
  return r;
}

/// A request from sleep (mTLS) at 10.0.0.5 for GET example.com/api/v1?x=1.
struct Req {
  http::HeaderMap headers;
  RequestAuth auth;
  AuthzRequest r;
  Req() {
    r.source_principal = "cluster.local/ns/default/sa/sleep";
    r.source_ip = "10.0.0.5";
    r.remote_ip = "10.0.0.5";
    r.destination_ip = "127.0.0.1";
    r.host = "Example.COM:8000";
    r.method = "GET";
    r.path = "/api/v1";
    r.headers = &headers;
    r.auth = &auth;
  }
};

bool allowed(const AuthzSpec& spec, const AuthzRequest& r) {
  return evaluate(spec, r).allowed;
}

AuthzSpec with(std::vector<AuthzPolicySpec> policies, std::vector<uint32_t> ports = {8000, 9080}) {
  AuthzSpec s;
  s.policies = std::move(policies);
  s.destination_ports = std::move(ports);
  return s;
}

}  // namespace

TEST_CASE("authz: Istio's string values: exact, prefix, suffix, presence; hosts ignore case") {
  CHECK(AuthzMatch::parse("a").matches("a"));
  CHECK_FALSE(AuthzMatch::parse("a").matches("ab"));
  CHECK(AuthzMatch::parse("/api/*").matches("/api/v1"));
  CHECK(AuthzMatch::parse("/api/*").matches("/api/"));
  CHECK_FALSE(AuthzMatch::parse("/api/*").matches("/apx"));
  CHECK(AuthzMatch::parse("*.png").matches("/x/y.png"));
  CHECK_FALSE(AuthzMatch::parse("*.png").matches("/x/y.jpg"));
  CHECK(AuthzMatch::parse("*").matches(""));
  CHECK_FALSE(AuthzMatch::parse("*").matches("x", false));
  CHECK(AuthzMatch::parse("Example.com", true).matches("EXAMPLE.COM"));
  CHECK_FALSE(AuthzMatch::parse("Example.com").matches("example.com"));
}

TEST_CASE("authz: CIDR blocks: IPv4, IPv6, mapped addresses, bad input") {
  auto b = CidrBlock::parse("10.1.0.0/16");
  REQUIRE(b);
  CHECK(b->contains(*CidrBlock::parse("10.1.200.3")));
  CHECK_FALSE(b->contains(*CidrBlock::parse("10.2.0.1")));
  CHECK(b->contains(*CidrBlock::parse("::ffff:10.1.2.3")));  // an IPv4-mapped peer address
  CHECK(*CidrBlock::parse("10.1.2.3/16") == *b);             // host bits do not count
  CHECK(CidrBlock::parse("0.0.0.0/0")->contains(*CidrBlock::parse("192.0.2.1")));
  CHECK_FALSE(CidrBlock::parse("0.0.0.0/0")->contains(*CidrBlock::parse("::1")));
  CHECK(CidrBlock::parse("10.0.0.7")->contains(*CidrBlock::parse("10.0.0.7")));
  CHECK_FALSE(CidrBlock::parse("10.0.0.7")->contains(*CidrBlock::parse("10.0.0.6")));
  CHECK(CidrBlock::parse("2001:db8::/32")->contains(*CidrBlock::parse("2001:db8:1::5")));
  CHECK_FALSE(CidrBlock::parse("2001:db8::/32")->contains(*CidrBlock::parse("2001:db9::5")));
  CHECK(CidrBlock::parse("10.0.0.0/12")->contains(*CidrBlock::parse("10.15.255.255")));
  CHECK_FALSE(CidrBlock::parse("10.0.0.0/12")->contains(*CidrBlock::parse("10.16.0.0")));
  for (std::string_view bad : {"", "10.0.0.0/33", "10.0.0.0/", "10.0.0/8", "x", "::1/129",
                               "10.0.0.0/8/8", "10.0.0.0/-1", "10.0.0.0/1a"})
    CHECK_MESSAGE(!CidrBlock::parse(bad), bad);
}

TEST_CASE("authz: no policy allows; ALLOW without rules denies; an empty rule matches all") {
  Req q;
  CHECK(allowed(AuthzSpec{}, q.r));
  CHECK_FALSE(allowed(with({policy(Action::Allow, {})}), q.r));
  CHECK(allowed(with({policy(Action::Allow, {AuthzRuleSpec{}})}), q.r));
  CHECK_FALSE(allowed(with({policy(Action::Deny, {AuthzRuleSpec{}})}), q.r));
  CHECK(allowed(with({policy(Action::Deny, {})}), q.r));  // a DENY without rules: nothing
  // Any ALLOW that matches is enough.
  CHECK(allowed(with({policy(Action::Allow, {}), policy(Action::Allow, {AuthzRuleSpec{}})}), q.r));
}

TEST_CASE("authz: DENY beats ALLOW; AUDIT never decides but is reported") {
  Req q;
  AuthzSourceSpec sleep;
  sleep.principals = m({"cluster.local/ns/default/sa/sleep"});
  AuthzOperationSpec admin;
  admin.paths = m({"/admin*"});
  AuthzSpec spec = with({policy(Action::Allow, {from(sleep)}, "allow-sleep"),
                         policy(Action::Deny, {to(admin)}, "no-admin"),
                         policy(Action::Audit, {from(sleep)}, "audit-sleep")});
  AuthzDecision d = evaluate(spec, q.r);
  CHECK(d.allowed);
  CHECK(d.audited == 1);
  REQUIRE(d.audit_policy);
  CHECK(d.audit_policy->name == "audit-sleep");

  q.r.path = "/admin/users";
  d = evaluate(spec, q.r);
  CHECK_FALSE(d.allowed);
  REQUIRE(d.deny_policy);
  CHECK(d.deny_policy->name == "no-admin");
  CHECK(denial_details(d) ==
        "rbac_access_denied_matched_policy[ns[default]-policy[no-admin]-rule[0]]");
  CHECK(d.audited == 1);  // audited whatever the verdict

  q.r.path = "/";
  q.r.source_principal = "cluster.local/ns/default/sa/other";
  d = evaluate(spec, q.r);
  CHECK_FALSE(d.allowed);
  CHECK(d.deny_policy == nullptr);
  CHECK(denial_details(d) == "rbac_access_denied_matched_policy[none]");
  CHECK(d.audited == 0);
  // AUDIT alone allows everything.
  CHECK(allowed(with({policy(Action::Audit, {AuthzRuleSpec{}})}), q.r));
}

TEST_CASE("authz: principals and namespaces; plain text has neither") {
  Req q;
  auto spec_of = [](AuthzSourceSpec s) { return with({policy(Action::Allow, {from(s)})}); };
  AuthzSourceSpec s;
  s.principals = m({"cluster.local/ns/default/sa/sleep"});
  CHECK(allowed(spec_of(s), q.r));
  s.principals = m({"cluster.local/ns/default/sa/other", "*/sa/sleep"});  // ORed, suffix
  CHECK(allowed(spec_of(s), q.r));
  s.principals = m({"cluster.local/ns/prod/*"});
  CHECK_FALSE(allowed(spec_of(s), q.r));
  s.principals = m({"*"});  // any authenticated peer
  CHECK(allowed(spec_of(s), q.r));
  AuthzRequest plain = q.r;
  plain.source_principal = "";
  CHECK_FALSE(allowed(spec_of(s), plain));

  AuthzSourceSpec n;
  n.namespaces = m({"default"});
  CHECK(allowed(spec_of(n), q.r));
  CHECK_FALSE(allowed(spec_of(n), plain));
  n.namespaces = m({"prod", "dev*"});
  CHECK_FALSE(allowed(spec_of(n), q.r));
  // not_: matches when no value does, so plain text matches not_principals = ["*"].
  AuthzSourceSpec not_any;
  not_any.not_principals = m({"*"});
  CHECK(allowed(with({policy(Action::Deny, {from(not_any)})}), q.r));
  CHECK_FALSE(allowed(with({policy(Action::Deny, {from(not_any)})}), plain));
  AuthzSourceSpec not_ns;
  not_ns.not_namespaces = m({"default"});
  CHECK_FALSE(allowed(spec_of(not_ns), q.r));
  CHECK(principal_namespace("cluster.local/ns/shop/sa/web") == "shop");
  CHECK(principal_namespace("cluster.local/sa/web").empty());
  CHECK(principal_namespace("").empty());
}

TEST_CASE("authz: fields inside a source are ANDed, sources ORed") {
  Req q;
  AuthzSourceSpec both;
  both.principals = m({"*/sa/sleep"});
  both.ip_blocks = cidrs({"192.168.0.0/16"});
  AuthzSpec spec = with({policy(Action::Allow, {from(both)})});
  CHECK_FALSE(allowed(spec, q.r));  // the principal matches, the IP does not
  AuthzSourceSpec ip;
  ip.ip_blocks = cidrs({"10.0.0.0/8"});
  spec.policies[0].rules[0].from.push_back(ip);
  CHECK(allowed(spec, q.r));  // the second source matches
  // Rule parts are ANDed: from AND to.
  AuthzOperationSpec post;
  post.methods = m({"POST"});
  spec.policies[0].rules[0].to.push_back(post);
  CHECK_FALSE(allowed(spec, q.r));
  q.r.method = "POST";
  CHECK(allowed(spec, q.r));
}

TEST_CASE("authz: ip_blocks are the peer's, remote_ip_blocks the original client's") {
  Req q;
  q.r.remote_ip = "203.0.113.9";  // the first x-forwarded-for entry
  AuthzSourceSpec peer;
  peer.ip_blocks = cidrs({"10.0.0.0/8"});
  CHECK(allowed(with({policy(Action::Allow, {from(peer)})}), q.r));
  AuthzSourceSpec remote;
  remote.remote_ip_blocks = cidrs({"10.0.0.0/8"});
  CHECK_FALSE(allowed(with({policy(Action::Allow, {from(remote)})}), q.r));
  remote.remote_ip_blocks = cidrs({"203.0.113.0/24"});
  CHECK(allowed(with({policy(Action::Allow, {from(remote)})}), q.r));
  AuthzSourceSpec not_peer;
  not_peer.not_ip_blocks = cidrs({"10.0.0.5"});
  CHECK_FALSE(allowed(with({policy(Action::Allow, {from(not_peer)})}), q.r));
  // An address that does not parse is in no block.
  q.r.source_ip = "";
  CHECK_FALSE(allowed(with({policy(Action::Allow, {from(peer)})}), q.r));
}

TEST_CASE("authz: hosts (with and without the port), ports, methods, paths") {
  Req q;
  auto spec_of = [](AuthzOperationSpec o) { return with({policy(Action::Allow, {to(o)})}); };
  AuthzOperationSpec h;
  h.hosts = m({"example.com"}, true);
  CHECK(allowed(spec_of(h), q.r));  // "Example.COM:8000" without its port
  h.hosts = m({"example.com:8000"}, true);
  CHECK(allowed(spec_of(h), q.r));
  h.hosts = m({"*.example.com"}, true);
  CHECK_FALSE(allowed(spec_of(h), q.r));
  h.hosts = m({"example.*"}, true);
  CHECK(allowed(spec_of(h), q.r));
  AuthzOperationSpec nh;
  nh.not_hosts = m({"example.com"}, true);
  CHECK_FALSE(allowed(spec_of(nh), q.r));
  AuthzRequest no_host = q.r;
  no_host.host = "";
  CHECK_FALSE(allowed(spec_of(h), no_host));
  CHECK(allowed(spec_of(nh), no_host));

  AuthzOperationSpec p;
  p.ports = {9080};  // the service port; the workload's own is 8000: either counts
  CHECK(allowed(spec_of(p), q.r));
  p.ports = {9999};
  CHECK_FALSE(allowed(spec_of(p), q.r));
  AuthzOperationSpec np;
  np.not_ports = {8000};
  CHECK_FALSE(allowed(spec_of(np), q.r));
  // Without destination ports in the spec, the request's own.
  AuthzSpec own = with({policy(Action::Allow, {to(p)})}, {});
  q.r.destination_port = 9999;
  CHECK(allowed(own, q.r));

  AuthzOperationSpec meth;
  meth.methods = m({"GET", "HEAD"});
  CHECK(allowed(spec_of(meth), q.r));
  meth.methods = m({"get"});  // methods are case-sensitive
  CHECK_FALSE(allowed(spec_of(meth), q.r));
  AuthzOperationSpec nm;
  nm.not_methods = m({"DELETE"});
  CHECK(allowed(spec_of(nm), q.r));

  AuthzOperationSpec path;
  path.paths = m({"/api/v1"});
  CHECK(allowed(spec_of(path), q.r));
  path.paths = m({"/api/*"});
  CHECK(allowed(spec_of(path), q.r));
  path.paths = m({"*/v1"});
  CHECK(allowed(spec_of(path), q.r));
  path.paths = m({"/api"});
  CHECK_FALSE(allowed(spec_of(path), q.r));
  AuthzOperationSpec np2;
  np2.paths = m({"/api/*"});
  np2.not_paths = m({"/api/v1"});
  CHECK_FALSE(allowed(spec_of(np2), q.r));
}

TEST_CASE("authz: when: headers, IPs, namespace, principal, destination, SNI") {
  Req q;
  auto spec_of = [](AuthzConditionSpec c) { return with({policy(Action::Allow, {when(c)})}); };
  AuthzConditionSpec h;
  h.key = Key::Header;
  h.header = "x-user";
  h.values = m({"jason"});
  CHECK_FALSE(allowed(spec_of(h), q.r));
  q.headers.add("X-User", "jason");
  CHECK(allowed(spec_of(h), q.r));
  q.headers.add("x-user", "bob");  // values of a repeated header are joined with ","
  CHECK_FALSE(allowed(spec_of(h), q.r));
  h.values = m({"jason,bob"});
  CHECK(allowed(spec_of(h), q.r));
  AuthzConditionSpec absent;
  absent.key = Key::Header;
  absent.header = "x-token";
  absent.not_values = m({"secret"});
  CHECK(allowed(spec_of(absent), q.r));  // no header: not_values holds
  absent.values = m({"*"});
  CHECK_FALSE(allowed(spec_of(absent), q.r));  // ... but "*" needs the header
  q.headers.add("x-token", "");
  CHECK(allowed(spec_of(absent), q.r));  // present, even empty

  AuthzConditionSpec ip;
  ip.key = Key::SourceIp;
  ip.ips = cidrs({"10.0.0.0/24"});
  CHECK(allowed(spec_of(ip), q.r));
  ip.key = Key::RemoteIp;
  q.r.remote_ip = "198.51.100.1";
  CHECK_FALSE(allowed(spec_of(ip), q.r));
  ip.key = Key::DestinationIp;
  ip.ips = cidrs({"127.0.0.0/8"});
  CHECK(allowed(spec_of(ip), q.r));
  ip.not_ips = cidrs({"127.0.0.1"});
  CHECK_FALSE(allowed(spec_of(ip), q.r));

  AuthzConditionSpec ns;
  ns.key = Key::SourceNamespace;
  ns.values = m({"default"});
  CHECK(allowed(spec_of(ns), q.r));
  ns.key = Key::SourcePrincipal;
  ns.values = m({"cluster.local/ns/default/sa/sleep"});
  CHECK(allowed(spec_of(ns), q.r));

  AuthzConditionSpec port;
  port.key = Key::DestinationPort;
  port.ports = {9080};
  CHECK(allowed(spec_of(port), q.r));
  port.not_ports = {8000};
  CHECK_FALSE(allowed(spec_of(port), q.r));

  AuthzConditionSpec sni;
  sni.key = Key::Sni;
  sni.values = m({"*.example.com"});
  CHECK_FALSE(allowed(spec_of(sni), q.r));
  q.r.sni = "api.example.com";
  CHECK(allowed(spec_of(sni), q.r));

  // Every condition of a rule must hold.
  AuthzRuleSpec both = when(ns);
  both.when.push_back(sni);
  CHECK(allowed(with({policy(Action::Allow, {both})}), q.r));
  q.r.sni = "";
  CHECK_FALSE(allowed(with({policy(Action::Allow, {both})}), q.r));
}

TEST_CASE("authz: request principals, audiences, presenter and claims from the JWT") {
  Req q;
  auto spec_of = [](AuthzConditionSpec c) { return with({policy(Action::Allow, {when(c)})}); };
  AuthzSourceSpec rp;
  rp.request_principals = m({"https://issuer.example/*"});
  AuthzSpec by_rp = with({policy(Action::Allow, {from(rp)})});
  CHECK_FALSE(allowed(by_rp, q.r));  // no token
  q.auth.present = true;
  q.auth.principal = "https://issuer.example/alice";
  q.auth.audiences = {"shop", "web"};
  q.auth.presenter = "cli";
  auto claims = json::parse(R"({"groups":["admin","dev"],"org":{"team":"core"},"n":42})");
  REQUIRE(claims.has_value());
  q.auth.claims = std::move(*claims);
  CHECK(allowed(by_rp, q.r));
  AuthzSourceSpec any_token;
  any_token.request_principals = m({"*"});
  CHECK(allowed(with({policy(Action::Allow, {from(any_token)})}), q.r));

  AuthzConditionSpec c;
  c.key = Key::RequestPrincipal;
  c.values = m({"https://issuer.example/alice"});
  CHECK(allowed(spec_of(c), q.r));
  c = {};
  c.key = Key::Audiences;
  c.values = m({"web"});
  CHECK(allowed(spec_of(c), q.r));
  c.values = m({"api"});
  CHECK_FALSE(allowed(spec_of(c), q.r));
  c = {};
  c.key = Key::Presenter;
  c.values = m({"cli"});
  CHECK(allowed(spec_of(c), q.r));
  c = {};
  c.key = Key::Claim;
  c.claim = {"groups"};
  c.values = m({"admin"});
  CHECK(allowed(spec_of(c), q.r));
  c.values = m({"ops"});
  CHECK_FALSE(allowed(spec_of(c), q.r));
  c.claim = {"org", "team"};
  c.values = m({"core"});
  CHECK(allowed(spec_of(c), q.r));
  c.claim = {"n"};
  c.values = m({"42"});
  CHECK(allowed(spec_of(c), q.r));
  c.claim = {"missing"};
  c.values = {};
  c.not_values = m({"x"});
  CHECK(allowed(spec_of(c), q.r));
  q.auth.present = false;  // a request without a (valid) token has no claims at all
  c.claim = {"groups"};
  c.values = m({"admin"});
  c.not_values = {};
  CHECK_FALSE(allowed(spec_of(c), q.r));
}

TEST_CASE("authz: paths are normalized before they are matched (Envoy's normalize_path)") {
  CHECK(normalize_path("/api/v1") == "/api/v1");
  CHECK(normalize_path("/") == "/");
  CHECK(normalize_path("") == "");
  CHECK(normalize_path("/public/../admin") == "/admin");
  CHECK(normalize_path("/a/./b/../../admin/x") == "/admin/x");
  CHECK(normalize_path("/../admin") == "/admin");
  CHECK(normalize_path("/admin/.") == "/admin/");
  CHECK(normalize_path("/admin/..") == "/");
  CHECK(normalize_path("/%61dmin") == "/admin");         // unreserved: decoded
  CHECK(normalize_path("/x/%2e%2E/admin") == "/admin");  // encoded dots too
  CHECK(normalize_path("/a%2Fb") == "/a%2Fb");           // reserved: kept
  CHECK(normalize_path("/a%2") == "/a%2");               // malformed: kept
  CHECK(normalize_path("/a%zz/.") == "/a%zz/");
  CHECK(normalize_path("/.hidden/..x") == "/.hidden/..x");  // dots inside names stay
  // A DENY on /admin* holds whatever the spelling.
  AuthzOperationSpec admin;
  admin.paths = m({"/admin*"});
  AuthzSpec spec = with({policy(Action::Deny, {to(admin)})});
  for (std::string_view p : {"/admin", "/public/../admin", "/%61dmin/x", "/./admin"}) {
    Req q;
    std::string normalized = normalize_path(p);
    q.r.path = normalized;
    CHECK_MESSAGE(!allowed(spec, q.r), p);
  }
}

TEST_CASE("authz: a condition meshbox cannot evaluate fails closed") {
  Req q;
  AuthzRuleSpec r = when(AuthzConditionSpec{});  // Key::Unsupported
  CHECK_FALSE(allowed(with({policy(Action::Allow, {r})}), q.r));
  CHECK_FALSE(allowed(with({policy(Action::Deny, {r})}), q.r));
  CHECK(evaluate(with({policy(Action::Audit, {r})}), q.r).audited == 0);
}

}  // namespace meshbox::data
