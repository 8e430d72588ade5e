// Tests for plane/control/gateway_tls.h: gateway server contexts built from certificate files,
// kept while the files stay the same, rebuilt when one changes (the poll notices it), and
// kept through a broken replacement (a key of another certificate, an expired certificate,
// garbage); the file checks of `meshbox validate`.
#include "plane/control/gateway_tls.h"

#include <doctest/doctest.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>

#include "core/loop/loop.h"
#include "core/tls/certificate_builder.h"
#include "plane/config/load.h"
#include "test/support/files.h"
#include "test/support/test_loop.h"

namespace meshbox::control {
namespace {

using namespace std::chrono_literals;
using meshbox::test::TempDir;

// A self-signed leaf for `cn`, valid from `from` for `days`, as cert.pem + key.pem under
// `prefix` (written to temporary names, then renamed, as an operator's tools would).
void write_pair(const std::string& prefix, const std::string& cn, int days = 2,
                std::chrono::hours from = -1h) {
  auto key = tls::PrivateKey::generate_p256();
  REQUIRE(key);
  tls::CertificateSpec cs;
  cs.common_name = cn;
  cs.dns_sans = {cn};
  cs.not_before = std::chrono::system_clock::now() + from;
  cs.not_after = cs.not_before + std::chrono::hours(24 * days);
  auto cert = tls::sign_certificate(cs, *key, nullptr, *key);
  REQUIRE(cert);
  std::ofstream(prefix + "key.pem.tmp") << key->to_pem().reveal();
  std::ofstream(prefix + "cert.pem.tmp") << cert->to_pem();
  REQUIRE(std::rename((prefix + "key.pem.tmp").c_str(), (prefix + "key.pem").c_str()) == 0);
  REQUIRE(std::rename((prefix + "cert.pem.tmp").c_str(), (prefix + "cert.pem").c_str()) == 0);
}

config::ServerTls simple(const TempDir& dir) {
  config::ServerTls t;
  t.mode = config::ServerTls::Mode::Simple;
  t.server_certificate = dir.file("cert.pem");
  t.private_key = dir.file("key.pem");
  return t;
}

std::string subject_of(const tls::TlsContextConstPtr& ctx) {
  X509* x = SSL_CTX_get0_certificate(ctx->native());
  REQUIRE(x != nullptr);
  X509_up_ref(x);
  return tls::Certificate(bssl::UniquePtr<X509>(x)).subject();
}

}  // namespace

TEST_CASE("gateway tls: contexts are kept while the files stay, rebuilt when they change") {
  TempDir dir;
  write_pair(dir.path() + "/", "a.example");
  loop::Loop loop;
  {
    int changes = 0;
    GatewayTls certs(
        loop, [&] { ++changes; }, 20);
    config::ServerTls t = simple(dir);

    certs.begin_compile();
    auto first = certs.context(t, true);
    REQUIRE_MESSAGE(first, first.error().message());
    certs.end_compile();
    CHECK(subject_of(*first) == "CN=a.example");
    // The same settings, unchanged files: the same context (an equal snapshot).
    certs.begin_compile();
    auto again = certs.context(t, true);
    certs.end_compile();
    REQUIRE(again);
    CHECK(*again == *first);
    CHECK_FALSE(run_until(
        loop, [&] { return changes > 0; }, 100ms));

    // A new pair on disk: the poll calls back; the next compile builds a new context.
    write_pair(dir.path() + "/", "a2.example");
    CHECK(run_until(
        loop, [&] { return changes > 0; }, 5s));
    certs.begin_compile();
    auto renewed = certs.context(t, true);
    certs.end_compile();
    REQUIRE(renewed);
    CHECK(*renewed != *first);
    CHECK(subject_of(*renewed) == "CN=a2.example");

    // Broken replacements keep the last good context.
    auto keeps = [&](const char* what) {
      INFO(what);
      certs.begin_compile();
      auto r = certs.context(t, true);
      certs.end_compile();
      REQUIRE(r);
      CHECK(*r == *renewed);
    };
    write_pair(dir.path() + "/other-", "other.example");
    REQUIRE(std::rename(dir.file("other-key.pem").c_str(), dir.file("key.pem").c_str()) == 0);
    keeps("a key of another certificate");
    std::ofstream(dir.file("cert.pem")) << "garbage\n";
    keeps("not PEM");
    write_pair(dir.path() + "/", "old.example", 1, -72h);
    keeps("expired");
    REQUIRE(std::remove(dir.file("cert.pem").c_str()) == 0);
    keeps("missing");

    // A server whose files never loaded has no context: the error names the file.
    config::ServerTls none = t;
    none.server_certificate = dir.file("nope.pem");
    certs.begin_compile();
    auto missing = certs.context(none, true);
    certs.end_compile();
    REQUIRE(!missing);
    CHECK(missing.error().message() ==
          "server_certificate " + dir.file("nope.pem") + ": No such file or directory");
  }
  CHECK(loop.close().is_ok());
}

TEST_CASE("gateway tls: server_tls_spec reads mutual settings; bad files are named") {
  TempDir dir;
  write_pair(dir.path() + "/", "gw.example");
  write_pair(dir.path() + "/ca-", "clients");
  config::ServerTls t = simple(dir);
  t.mode = config::ServerTls::Mode::Mutual;
  t.ca_certificates = dir.file("ca-cert.pem");
  t.subject_alt_names = {"client.example"};
  t.min_protocol_version = config::ServerTls::Version::V1_3;
  t.cipher_suites = {"TLS_AES_128_GCM_SHA256", "ECDHE-ECDSA-AES128-GCM-SHA256"};
  auto spec = server_tls_spec(t, true);
  REQUIRE_MESSAGE(spec, spec.error().message());
  CHECK(spec->client_certs == tls::ClientCertMode::Require);
  CHECK(spec->trusted_roots.size() == 1);
  CHECK(spec->peer_subject_alt_names == std::vector<std::string>{"client.example"});
  CHECK(spec->min_version == tls::TlsVersion::Tls13);
  CHECK(spec->max_version == tls::TlsVersion::Tls13);
  CHECK(spec->cipher_list == "ECDHE-ECDSA-AES128-GCM-SHA256");
  CHECK(spec->alpn == std::vector<std::string>{"http/1.1"});
  CHECK(tls::TlsContext::create(*spec));

  t.mode = config::ServerTls::Mode::OptionalMutual;
  CHECK(server_tls_spec(t, false)->client_certs == tls::ClientCertMode::Request);
  CHECK(server_tls_spec(t, false)->alpn.empty());
  t.ca_certificates = dir.file("key.pem");  // not a certificate
  auto bad = server_tls_spec(t, true);
  REQUIRE(!bad);
  CHECK(bad.error().message().starts_with("ca_certificates " + dir.file("key.pem") + ": "));
  // The key's bytes never appear in a message, even when the key file is given as the
  // certificate.
  t = simple(dir);
  t.server_certificate = dir.file("key.pem");
  bad = server_tls_spec(t, true);
  REQUIRE(!bad);
  std::string key = meshbox::test::read_file(dir.file("key.pem")).value_or("");
  CHECK(bad.error().message().find(key.substr(key.find('\n') + 1, 20)) == std::string::npos);
}

}  // namespace meshbox::control
