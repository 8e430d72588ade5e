// Tests for plane/control/compiler.h: destination_rule tls (simple/mutual contexts from the
// upstream_tls callback with their SNI; istio_mutual peer identities; a context that cannot be
// made drops the endpoints) and mesh mTLS for tcp services (the inbound tcp listener
// terminates it, endpoints take it, tls services stay passthrough, gateway tcp listeners carry
// the gateway's identity). No sockets.
#include <doctest/doctest.h>

#include <chrono>
#include <map>
#include <string>
#include <vector>

#include "plane/config/error.h"
#include "plane/config/load.h"
#include "plane/control/ca.h"
#include "plane/control/compiler.h"
#include "test/support/files.h"
#include "test/unit/plane/control/compiler_test_util.h"

namespace meshbox::control {
namespace {

using testutil::load;

Endpoint endpoint(std::string host, uint32_t port) {
  Endpoint ep;
  ep.host = std::move(host);
  ep.ns = "default";
  ep.address = "127.0.0.1";
  ep.port = port;
  ep.healthy = true;
  ep.source = "api";
  return ep;
}

Endpoint instance(std::string host, std::string name, uint32_t app_port, uint32_t in,
                  uint32_t out) {
  Endpoint ep = endpoint(std::move(host), app_port);
  ep.instance = std::move(name);
  ep.sidecar_inbound_port = in;
  ep.sidecar_outbound_port = out;
  return ep;
}

const ClusterSpec* cluster(const Snapshot& s, std::string_view name) {
  for (const auto& c : s.clusters)
    if (c.name == name) return &c;
  return nullptr;
}

const ListenerSpec* listener(const Snapshot& s, std::string_view name) {
  for (const auto& l : s.listeners)
    if (l.name == name) return &l;
  return nullptr;
}

// Mesh identities from a real CA, as the control plane makes them.
struct Identities {
  test::TempDir dir;
  std::unique_ptr<CertificateAuthority> ca;
  std::map<std::string, MeshIdentity> made;
  Identities() {
    auto opened = CertificateAuthority::open(dir.path());
    REQUIRE(opened);
    ca = std::move(*opened);
  }
  const MeshIdentity* get(const std::string& id) {
    auto it = made.find(id);
    if (it != made.end()) return &it->second;
    auto issued = ca->issue(id, std::chrono::hours(1));
    REQUIRE(issued);
    tls::TlsContextSpec spec;
    spec.identities.push_back(tls::TlsIdentity{{issued->leaf}, issued->key, {}});
    spec.trusted_roots = {ca->root()};
    spec.client_certs = tls::ClientCertMode::Require;
    auto server = tls::TlsContext::create(spec);
    spec.role = tls::TlsContextSpec::Role::Client;
    spec.client_certs = tls::ClientCertMode::None;
    auto client = tls::TlsContext::create(spec);
    REQUIRE(server);
    REQUIRE(client);
    return &(made[id] = MeshIdentity{*server, *client});
  }
};

}  // namespace

TEST_CASE("compiler: destination_rule tls simple, mutual and istio_mutual") {
  Identities ids;
  // A stand-in context for every simple/mutual request; the callback records what it was asked.
  tls::TlsContextSpec client_spec;
  client_spec.role = tls::TlsContextSpec::Role::Client;
  client_spec.verify_peer = false;
  auto ctx = tls::TlsContext::create(client_spec);
  REQUIRE(ctx);
  std::vector<std::string> asked;
  CompileOptions opts;
  opts.identity = [&](const std::string& id) { return ids.get(id); };
  opts.upstream_tls = [&](const config::ClientTls& t,
                          const std::string& sni) -> Result<tls::TlsContextConstPtr> {
    asked.push_back(sni);
    if (t.ca_certificates == "/missing.pem")
      return make_error(Code::NotFound, "ca_certificates /missing.pem: cannot read it");
    return *ctx;
  };
  auto entry = [](const std::string& host, const std::string& tls) {
    return "[[service_entry]]\nname = \"" + host + "\"\nhosts = [\"" + host +
           "\"]\nports = [{ number = 443, name = \"https\", protocol = \"http\" }]\n"
           "resolution = \"static\"\nendpoints = [{ address = \"127.0.0.1\" }]\n"
           "[[destination_rule]]\nname = \"" +
           host + "\"\nhost = \"" + host + "\"\ntraffic_policy = { tls = " + tls + " }\n";
  };
  std::string toml =
      entry("a.example.com", "{ mode = \"simple\" }") +
      entry("b.example.com", "{ mode = \"simple\", sni = \"B.Example.org\" }") +
      entry("c.example.com",
            "{ mode = \"mutual\", client_certificate = \"/c.pem\", private_key = \"/c.key\" }") +
      entry("d.example.com", "{ mode = \"simple\", ca_certificates = \"/missing.pem\" }") +
      entry("e.example.com", "{ mode = \"istio_mutual\" }") +
      entry("f.example.com",
            "{ mode = \"istio_mutual\", subject_alt_names = [\"spiffe://cluster.local/ns/x/sa/y\", "
            "\"spiffe://cluster.local/ns/x/sa/z\"] }");
  std::vector<Endpoint> eps;
  for (const char* h : {"a", "b", "c", "d", "e", "f"}) {
    eps.push_back(endpoint(std::string(h) + ".example.com", 443));
    eps.back().source = "service_entry";
  }
  Compiled out = compile(load(toml), eps, opts);
  const Snapshot& s = *out.snapshot;
  const ClusterSpec* a = cluster(s, "outbound|443||a.example.com");
  const ClusterSpec* b = cluster(s, "outbound|443||b.example.com");
  const ClusterSpec* c = cluster(s, "outbound|443||c.example.com");
  const ClusterSpec* d = cluster(s, "outbound|443||d.example.com");
  const ClusterSpec* e = cluster(s, "outbound|443||e.example.com");
  const ClusterSpec* f = cluster(s, "outbound|443||f.example.com");
  REQUIRE((a && b && c && d && e && f));
  CHECK(a->tls == *ctx);
  CHECK(a->tls_sni == "a.example.com");  // the destination host
  CHECK(b->tls_sni == "b.example.org");  // the rule's sni, lower case
  CHECK(c->tls == *ctx);
  CHECK(a->endpoints.size() == 1);
  CHECK(a->endpoints[0].peer_identity.empty());
  // A context that cannot be made: no endpoint (never plain text), and a warning naming why.
  CHECK(d->endpoints.empty());
  CHECK(!d->tls);
  std::string warnings;
  for (const auto& w : out.warnings)
    warnings += w + "\n";
  CHECK(warnings.find("cluster outbound|443||d.example.com: destination_rule tls: "
                      "ca_certificates /missing.pem: cannot read it") != std::string::npos);
  // istio_mutual: the caller's mesh identity; any mesh identity, or one of the SANs.
  CHECK(!e->tls);
  REQUIRE(e->endpoints.size() == 1);
  CHECK(e->endpoints[0].peer_identity == "*");
  REQUIRE(f->endpoints.size() == 1);
  CHECK(f->endpoints[0].peer_identity ==
        "spiffe://cluster.local/ns/x/sa/y,spiffe://cluster.local/ns/x/sa/z");
  // Without the callback (a bare compile), TLS origination fails closed too.
  Compiled bare = compile(load(toml), eps, {});
  CHECK(cluster(*bare.snapshot, "outbound|443||a.example.com")->endpoints.empty());
}

TEST_CASE("compiler: mesh mTLS for tcp services; tls services pass through") {
  Identities ids;
  CompileOptions opts;
  opts.identity = [&](const std::string& id) { return ids.get(id); };
  std::string toml = R"(
[[service]]
name = "db"
port = 5432
protocol = "tcp"
[[service]]
name = "secure"
port = 8443
protocol = "tls"
[[gateway]]
name = "edge"
servers = [{ port = 9999, bind = "127.0.0.1", protocol = "tcp", hosts = ["*"] }]
[[virtual_service]]
name = "db"
hosts = ["*"]
gateways = ["edge"]
tcp = [{ route = [{ destination = { host = "db" } }] }]
[[peer_authentication]]
name = "default"
namespace = "default"
mtls = { mode = "strict" }
)";
  std::vector<Endpoint> eps = {
      instance("db.default.svc.cluster.local", "db", 20001, 21001, 22001),
      instance("secure.default.svc.cluster.local", "secure", 20002, 21002, 22002),
  };
  Compiled out = compile(load(toml), eps, opts);
  const Snapshot& s = *out.snapshot;
  const ListenerSpec* db_in = listener(s, "sidecar_db_inbound");
  REQUIRE(db_in);
  CHECK(db_in->protocol == ListenerSpec::Protocol::Tcp);
  CHECK(db_in->mesh_tls == ListenerSpec::MeshTls::Strict);
  CHECK(db_in->mesh_server);
  const ClusterSpec* db = cluster(s, "outbound|5432||db.default.svc.cluster.local");
  REQUIRE(db);
  REQUIRE(db->endpoints.size() == 1);
  CHECK(db->endpoints[0].peer_identity == "spiffe://cluster.local/ns/default/sa/default");
  // The gateway's tcp listener calls with the gateway's identity.
  const ListenerSpec* gw = listener(s, "127.0.0.1_9999");
  REQUIRE(gw);
  CHECK(gw->mesh_client);
  // A tls service: the app's own TLS passes through; no mesh mTLS on either side.
  const ListenerSpec* secure_in = listener(s, "sidecar_secure_inbound");
  REQUIRE(secure_in);
  CHECK(!secure_in->mesh_server);
  const ClusterSpec* secure = cluster(s, "outbound|8443||secure.default.svc.cluster.local");
  REQUIRE(secure);
  REQUIRE(secure->endpoints.size() == 1);
  CHECK(secure->endpoints[0].peer_identity.empty());
}

}  // namespace meshbox::control
