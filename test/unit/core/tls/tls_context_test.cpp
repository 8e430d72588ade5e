// Tests for core/tls/tls_context.h: what a spec must say (a key matching its certificate,
// roots wherever a peer is verified, valid SNI names, SPIFFE IDs and ALPN ids) and SNI lookup.
#include <doctest/doctest.h>

#include <string>

#include "test/unit/core/tls/tls_fixture.h"

namespace meshbox::tls::test {
namespace {

std::string error_of(const TlsContextSpec& spec) {
  auto ctx = TlsContext::create(spec);
  return ctx ? std::string() : ctx.error().message();
}

TEST_CASE("tls_context: a spec is checked, and the error says what is wrong") {
  TestCa ca;
  TlsContextSpec server = mesh_server_spec(ca);
  CHECK(error_of(server).empty());
  TlsContextSpec client = mesh_client_spec(ca);
  CHECK(error_of(client).empty());

  SUBCASE("a server needs a certificate") {
    server.identities.clear();
    CHECK(error_of(server) == "a TLS server needs a certificate");
  }
  SUBCASE("the key must be the certificate's") {
    server.identities[0].key = new_key();
    CHECK(error_of(server).find("the private key does not match it") != std::string::npos);
  }
  SUBCASE("verification needs roots") {
    server.trusted_roots.clear();
    CHECK(error_of(server) == "a TLS server that asks for client certificates needs trusted roots");
    client.trusted_roots.clear();
    CHECK(error_of(client) == "a TLS client needs trusted roots to verify its server");
  }
  SUBCASE("peer SPIFFE IDs must parse, and need a verified peer") {
    client.peer_spiffe_ids = {"spiffe://Cluster.local/x"};
    CHECK(error_of(client).starts_with("peer SPIFFE ID: "));
    server.client_certs = ClientCertMode::None;
    server.peer_spiffe_ids = {kClientId};
    CHECK(error_of(server).find("need client certificates") != std::string::npos);
  }
  SUBCASE("SNI names") {
    server.identities[0].server_names = {"bad name"};
    CHECK(error_of(server).find("is not a DNS name or *.suffix") != std::string::npos);
    server.identities[0].server_names = {"a.test", "A.test"};
    CHECK(error_of(server) == "server name \"A.test\" is given twice");
    client.verify_server_name = true;
    CHECK(error_of(client) == "verify_server_name needs a server name");
  }
  SUBCASE("versions, ALPN, ciphers") {
    server.min_version = TlsVersion::Tls13;
    server.max_version = TlsVersion::Tls12;
    CHECK(error_of(server) == "TLS min version is above the max version");
    client.alpn = {""};
    CHECK(error_of(client) == "ALPN protocol ids are 1 to 255 bytes");
    TlsContextSpec c2 = mesh_client_spec(ca);
    c2.cipher_list = "NOT-A-CIPHER";
    CHECK(error_of(c2).starts_with("TLS cipher list \"NOT-A-CIPHER\""));
  }
  SUBCASE("a client shows at most one certificate") {
    client.identities.push_back(ca.issue(kClientId));
    CHECK(error_of(client) == "a TLS client shows at most one certificate");
  }
}

TEST_CASE("tls_context: identity_from_pem reads a chain and its key, and checks they match") {
  TestCa ca;
  TlsIdentity leaf = ca.issue(kServerId);
  std::string chain = leaf.chain[0].to_pem() + ca.cert.to_pem();
  auto id = identity_from_pem(chain, leaf.key.to_pem().reveal(), {"api.test"});
  REQUIRE_MESSAGE(id, id.error().message());
  CHECK(id->chain.size() == 2);
  CHECK(id->chain[0] == leaf.chain[0]);
  CHECK(id->server_names == std::vector<std::string>{"api.test"});
  auto wrong = identity_from_pem(chain, new_key().to_pem().reveal());
  REQUIRE_FALSE(wrong);
  CHECK(wrong.error().message().starts_with("the private key does not match the certificate"));
  auto garbage = identity_from_pem("nope", leaf.key.to_pem().reveal());
  REQUIRE_FALSE(garbage);
  CHECK(garbage.error().message().starts_with("certificate chain: "));
  auto no_key = identity_from_pem(chain, "nope");
  REQUIRE_FALSE(no_key);
  CHECK(no_key.error().message().starts_with("private key: "));
}

TEST_CASE("tls_context: identity_for picks exact, then one-label wildcard, then the first") {
  TestCa ca;
  TlsContextSpec spec;
  spec.identities = {ca.issue("spiffe://t/0"), ca.issue("spiffe://t/1"), ca.issue("spiffe://t/2")};
  spec.identities[1].server_names = {"api.example.com", "*.api.example.com"};
  spec.identities[2].server_names = {"*.example.com"};
  auto ctx = make_context(spec);
  CHECK(ctx->identity_for("api.example.com") == 1);
  CHECK(ctx->identity_for("v1.api.example.com") == 1);
  CHECK(ctx->identity_for("www.example.com") == 2);
  CHECK(ctx->identity_for("example.com") == 0);
  CHECK(ctx->identity_for("x.y.example.com") == 0);
  CHECK(ctx->identity_for("") == 0);
  CHECK(ctx->identity_for(".example.com") == 0);
  CHECK(to_string(TlsVersion::Tls13) == "TLSv1.3");
}

}  // namespace
}  // namespace meshbox::tls::test
