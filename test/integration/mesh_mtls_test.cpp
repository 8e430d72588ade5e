// Automatic mTLS between sidecars, end to end through a real `meshbox run`: a gateway sends
// to a workload with a sidecar; the gateway's connection to the sidecar is TLS 1.3 with the
// gateway's mesh identity, and the sidecar shows its own SPIFFE ID (checked with the real
// `openssl s_client`, holding a certificate from `meshbox ca issue` for the same CA). With the
// default PERMISSIVE the sidecar also takes plain text; after a STRICT peer_authentication is
// applied it refuses plain text and clients without a mesh certificate, while the gateway's
// mTLS traffic goes on.
#include <doctest/doctest.h>

#include <fstream>

#include "test/support/curl.h"
#include "test/support/deadline.h"
#include "test/support/http_response.h"
#include "test/support/mesh.h"
#include "test/support/meshbox.h"

namespace meshbox::test {
namespace {

constexpr auto kTimeout = 10s;

HttpResponse plain_get(const std::string& addr) {
  return exchange(addr, "GET / HTTP/1.1\r\nHost: web\r\nConnection: close\r\n\r\n",
                  Deadline(kTimeout));
}

std::string shell(TempDir& dir, const std::string& script) {
  return test::shell(dir, script, Deadline(kTimeout));
}

}  // namespace

TEST_CASE("mtls: sidecars speak mTLS with SPIFFE identities; permissive, then strict") {
  TempDir dir;
  uint16_t gw_port = free_port();
  std::string gw = "127.0.0.1:" + std::to_string(gw_port);
  std::ofstream(dir.file("mesh.toml"))
      << "[[service]]\nname = \"web\"\nport = 8000\n\n"
      << "[[workload]]\nname = \"web\"\nservice = \"web\"\ncommand = [\"" << httpbin_bin()
      << "\", \"--listen\", \"127.0.0.1:${PORT}\", \"--name\", \"web\"]\n\n"
      << "[[gateway]]\nname = \"edge\"\nservers = [{ port = " << gw_port
      << ", bind = \"127.0.0.1\", protocol = \"http\", hosts = [\"*\"] }]\n\n"
      << "[[virtual_service]]\nname = \"web\"\nhosts = [\"*\"]\ngateways = [\"edge\"]\n"
      << "http = [{ route = [{ destination = { host = \"web\" } }] }]\n";
  Mesh mesh(dir, MeshOptions{.paths = {dir.file("mesh.toml")}});
  CHECK(eventually([&] { return plain_get(gw).status == 200; }, kTimeout));
  std::string inbound = mesh.listener_address("sidecar_web_inbound");
  REQUIRE(!inbound.empty());

  // A client certificate from the mesh's CA (the same state dir), as an outside mesh client.
  RunResult issued =
      mesh.cli({"ca", "issue", "--spiffe", "spiffe://cluster.local/ns/default/sa/probe", "--out",
                dir.file("probe"), "--state-dir", mesh.state_dir()});
  REQUIRE_MESSAGE((issued.status && issued.status->ok()), issued.out << issued.err);
  std::string tls_args = " -connect " + inbound + " -CAfile " + dir.file("probe/root.pem");
  std::string with_cert =
      tls_args + " -cert " + dir.file("probe/cert.pem") + " -key " + dir.file("probe/key.pem");
  auto tls_get = [&](const std::string& args) {
    return shell(dir,
                 "printf 'GET / HTTP/1.1\\r\\nHost: web\\r\\nConnection: close\\r\\n\\r\\n' | "
                 "openssl s_client -quiet -ign_eof -verify_return_error" +
                     args);
  };

  // PERMISSIVE (the default): TLS with a mesh certificate, and plain text, both served.
  std::string out = tls_get(with_cert);
  INFO("s_client: " << out);
  CHECK(out.find("HTTP/1.1 200") != std::string::npos);
  CHECK(out.find("hello from web") != std::string::npos);
  CHECK(plain_get(inbound).status == 200);
  // The sidecar's certificate: the workload's SPIFFE ID, issued by the mesh root; TLS 1.3.
  std::string cert = shell(dir, "openssl s_client -brief" + with_cert +
                                    " </dev/null 2>&1; openssl s_client" + with_cert +
                                    " </dev/null 2>/dev/null | openssl x509 -noout -ext "
                                    "subjectAltName");
  INFO("server certificate: " << cert);
  CHECK(cert.find("URI:spiffe://cluster.local/ns/default/sa/default") != std::string::npos);
  CHECK(cert.find("TLSv1.3") != std::string::npos);
  CHECK(cert.find("Verification: OK") != std::string::npos);

  // STRICT: plain text refused; mTLS still served, the gateway's included.
  std::ofstream(dir.file("strict.toml"))
      << "[[peer_authentication]]\nname = \"default\"\nnamespace = \"default\"\n"
      << "mtls = { mode = \"strict\" }\n";
  RunResult applied = mesh.cli({"apply", "-f", dir.file("strict.toml")});
  REQUIRE_MESSAGE((applied.status && applied.status->ok()), applied.out << applied.err);
  CHECK(eventually([&] { return plain_get(inbound).status == 0; }, kTimeout));
  HttpResponse refused = plain_get(inbound);
  CHECK(refused.status == 0);  // reset: no HTTP answer at all
  for (int i = 0; i < 20; ++i) {
    HttpResponse r = plain_get(gw);
    INFO("through the gateway, request " << i << ": " << r.summary());
    CHECK(r.status == 200);
  }
  out = tls_get(with_cert);
  CHECK(out.find("hello from web") != std::string::npos);
  // Without a client certificate the handshake fails: nothing is served.
  out = tls_get(tls_args);
  CHECK(out.find("HTTP/1.1 200") == std::string::npos);
}

}  // namespace meshbox::test
