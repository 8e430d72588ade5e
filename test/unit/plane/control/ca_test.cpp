// Tests for plane/control/ca.h: meshbox's own root (made once, kept 0600 in a 0700 dir,
// loaded again, one root when several open at once), workload certificates (SPIFFE URI SAN,
// validity, chain, renewal at half-life), refused SPIFFE IDs and TTLs, and the operator's CA
// files (an intermediate with Istio's four files, a bare root, and every way they can be
// wrong). Real files in temp dirs.
#include "plane/control/ca.h"

#include <sys/stat.h>

#include <doctest/doctest.h>

#include <chrono>
#include <fstream>
#include <thread>

#include "core/tls/certificate_builder.h"
#include "test/support/files.h"

namespace meshbox::control {
namespace {

using meshbox::test::read_file;
using meshbox::test::TempDir;
using namespace std::chrono_literals;

unsigned mode_of(const std::string& path) {
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  return st.st_mode & 0777;
}

bool exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

void write(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::trunc) << text;
}

// A key file as an operator keeps it: 0600 (else the CA warns).
void write_key(const std::string& path, const tls::PrivateKey& key) {
  write(path, std::string(key.to_pem().reveal()));
  ::chmod(path.c_str(), 0600);
}

int64_t seconds(tls::Time t) {
  return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}

std::unique_ptr<CertificateAuthority> open_ok(const std::string& dir, const CaOptions& o = {}) {
  auto ca = CertificateAuthority::open(dir, o);
  REQUIRE_MESSAGE(ca, ca.error().message());
  return std::move(*ca);
}

std::string open_error(const std::string& dir) {
  auto ca = CertificateAuthority::open(dir);
  REQUIRE_FALSE(ca);
  return ca.error().message();
}

// An operator's PKI, made with core/tls: a root, and an intermediate signed by it.
struct OperatorPki {
  tls::PrivateKey root_key = *tls::PrivateKey::generate_p256();
  tls::PrivateKey inter_key = *tls::PrivateKey::generate_p256();
  tls::Certificate root{nullptr}, inter{nullptr};

  explicit OperatorPki(tls::Time inter_not_after = std::chrono::system_clock::now() + 24h * 365) {
    auto now = std::chrono::system_clock::now();
    tls::CertificateSpec r;
    r.organization = "Example Corp";
    r.common_name = "Example Root CA";
    r.not_before = now - 1h;
    r.not_after = now + 24h * 3650;
    r.is_ca = true;
    auto rc = tls::sign_certificate(r, root_key, nullptr, root_key);
    REQUIRE(rc);
    root = *rc;
    tls::CertificateSpec i = r;
    i.common_name = "Example Mesh Intermediate";
    i.not_after = inter_not_after;
    i.path_length = 0;
    auto ic = tls::sign_certificate(i, inter_key, &root, root_key);
    REQUIRE(ic);
    inter = *ic;
  }
  /// Istio's plugged-in layout in DIR/cacerts; cert-chain.pem repeats the CA cert and root.
  std::string install(const TempDir& dir) const {
    std::string d = dir.file("cacerts");
    ::mkdir(d.c_str(), 0700);
    write(d + "/ca-cert.pem", inter.to_pem());
    write_key(d + "/ca-key.pem", inter_key);
    write(d + "/root-cert.pem", root.to_pem());
    write(d + "/cert-chain.pem", inter.to_pem() + root.to_pem());
    return d;
  }
};

TEST_CASE("ca: the first open makes a P-256 root, kept private; the next loads it") {
  TempDir dir;
  std::string state = dir.file("state");
  auto ca = open_ok(state);
  CHECK(ca->source() == CertificateAuthority::Source::Created);
  const tls::Certificate& root = ca->root();
  CHECK(root.is_ca());
  CHECK(root.self_signed());
  CHECK(root.subject() == "CN=meshbox root CA,O=meshbox");
  CHECK(ca->signer() == root);
  // Ten years (from an hour ago).
  auto life = root.not_after() - std::chrono::system_clock::now();
  CHECK(life > 24h * 3649);
  CHECK(life < 24h * 3651);

  CHECK(mode_of(state) == 0700);
  CHECK(mode_of(state + "/ca") == 0700);
  CHECK(mode_of(state + "/ca/root-key.pem") == 0600);
  auto key = tls::PrivateKey::from_pem(*read_file(state + "/ca/root-key.pem"));
  REQUIRE(key);
  CHECK(key->describe() == "ECDSA P-256");
  CHECK(root.matches(*key));
  CHECK(read_file(state + "/ca/root-cert.pem") == ca->root_pem());

  auto again = open_ok(state);
  CHECK(again->source() == CertificateAuthority::Source::Loaded);
  CHECK(again->root() == root);
  CHECK(again->root_pem() == ca->root_pem());
  // describe(): the fingerprint, never the key.
  std::string line = again->describe();
  CHECK(line.find(root.sha256_fingerprint()) != std::string::npos);
  CHECK(line.find("PRIVATE") == std::string::npos);
}

TEST_CASE("ca: opens racing on a fresh state dir agree on one root") {
  TempDir dir;
  std::string state = dir.file("state");
  constexpr int kThreads = 6;
  std::vector<std::string> roots(kThreads);
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      auto ca = CertificateAuthority::open(state);
      if (ca) roots[i] = (*ca)->root_pem();
    });
  }
  for (auto& t : threads)
    t.join();
  for (const auto& r : roots)
    CHECK(r == roots[0]);
  CHECK_FALSE(roots[0].empty());
}

TEST_CASE("ca: a workload certificate carries the SPIFFE ID and lives ttl") {
  TempDir dir;
  auto ca = open_ok(dir.file("state"));
  auto now = std::chrono::system_clock::now();
  std::string id = workload_spiffe_id("cluster.local", "default", "bookinfo-reviews");
  CHECK(id == "spiffe://cluster.local/ns/default/sa/bookinfo-reviews");
  auto cert = ca->issue(id, 24h, now);
  REQUIRE_MESSAGE(cert, cert.error().message());
  CHECK(cert->spiffe_id == id);
  CHECK(cert->leaf.spiffe_id() == id);
  CHECK_FALSE(cert->leaf.is_ca());
  CHECK(cert->leaf.matches(cert->key));
  CHECK(cert->key.describe() == "ECDSA P-256");
  CHECK(seconds(cert->leaf.not_after()) == seconds(now + 24h));
  CHECK(seconds(cert->leaf.not_before()) == seconds(now - 60s));
  CHECK(cert->intermediates.empty());
  CHECK(cert->chain_pem() == cert->cert_pem());
  CHECK(cert->key_pem().reveal().starts_with("-----BEGIN PRIVATE KEY-----"));
  CHECK(tls::verify_chain(cert->leaf, cert->intermediates, std::span(&ca->root(), 1)).is_ok());

  // Renewal at half-life: 12 h after notBefore for a 24 h certificate.
  tls::Time renew = renewal_time(cert->leaf.not_before(), cert->leaf.not_after());
  CHECK(seconds(renew) == seconds(cert->leaf.not_before()) + (24 * 3600 + 60) / 2);
  CHECK(renewal_time(now, now) == now);

  // Each issue: a new key and serial.
  auto second = ca->issue(id, 1h);
  REQUIRE(second);
  CHECK(second->leaf.serial_hex() != cert->leaf.serial_hex());
  CHECK(EVP_PKEY_cmp(second->key.native(), cert->key.native()) != 1);
}

TEST_CASE("ca: bad SPIFFE IDs and TTLs are refused with the reason") {
  TempDir dir;
  auto ca = open_ok(dir.file("state"));
  struct Case {
    std::string id;
    std::chrono::seconds ttl;
    const char* why;
  };
  const Case cases[] = {
      {"reviews", 24h, "does not start with \"spiffe://\""},
      {"spiffe://cluster.local", 24h, "needs a path"},
      {"spiffe://Cluster.local/ns/a/sa/b", 24h, "uppercase"},
      {"spiffe://cluster.local:443/ns/a/sa/b", 24h, "port"},
      {"spiffe://cluster.local/ns/a/sa/b?x", 24h, "query"},
      {"spiffe://cluster.local/ns//sa/b", 24h, "empty segment"},
      {"spiffe://cluster.local/ns/a/sa/b", 30s, "at least 1m"},
      {"spiffe://cluster.local/ns/a/sa/b", 24h * 91, "at most 2160h"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.id);
    auto cert = ca->issue(c.id, c.ttl);
    REQUIRE_FALSE(cert);
    CHECK(cert.error().code() == Code::InvalidArgument);
    CHECK_MESSAGE(cert.error().message().find(c.why) != std::string::npos, cert.error().message());
    CHECK(check_issue_request(c.id, c.ttl).message() == cert.error().message());
  }
  CHECK(check_issue_request("spiffe://td/x", 24h).is_ok());
}

TEST_CASE("ca: the operator's intermediate signs, and the chain includes it") {
  TempDir dir;
  OperatorPki pki;
  pki.install(dir);
  auto ca = open_ok(dir.path());
  CHECK(ca->source() == CertificateAuthority::Source::Operator);
  CHECK(ca->root() == pki.root);
  CHECK(ca->signer() == pki.inter);
  CHECK(ca->root_pem() == pki.root.to_pem());
  CHECK_FALSE(exists(dir.file("ca")));  // meshbox's own root is not made
  CHECK(ca->describe().find("Example Mesh Intermediate") != std::string::npos);

  auto cert = ca->issue("spiffe://example.org/ns/edge/sa/gateway", 1h);
  REQUIRE_MESSAGE(cert, cert.error().message());
  CHECK(cert->leaf.issued_by(pki.inter));
  REQUIRE(cert->intermediates.size() == 1);
  CHECK(cert->intermediates[0] == pki.inter);
  CHECK(cert->chain_pem() == cert->cert_pem() + pki.inter.to_pem());
  CHECK(tls::verify_chain(cert->leaf, cert->intermediates, std::span(&pki.root, 1)).is_ok());
  // Without the intermediate a peer could not verify it: the chain matters.
  CHECK_FALSE(tls::verify_chain(cert->leaf, {}, std::span(&pki.root, 1)).is_ok());
}

TEST_CASE("ca: an operator's cacerts_dir option, and a bare operator root") {
  TempDir dir;
  OperatorPki pki;
  std::string d = dir.file("elsewhere");
  ::mkdir(d.c_str(), 0700);
  write(d + "/ca-cert.pem", pki.root.to_pem());
  write_key(d + "/ca-key.pem", pki.root_key);
  CaOptions o;
  o.cacerts_dir = d;
  auto ca = open_ok(dir.file("state"), o);
  CHECK(ca->source() == CertificateAuthority::Source::Operator);
  CHECK(ca->root() == pki.root);
  auto cert = ca->issue("spiffe://td/x", 1h);
  REQUIRE(cert);
  CHECK(cert->intermediates.empty());
  CHECK(tls::verify_chain(cert->leaf, {}, std::span(&pki.root, 1)).is_ok());
}

TEST_CASE("ca: certificates never outlive the operator's intermediate") {
  TempDir dir;
  auto inter_end = std::chrono::system_clock::now() + 2h;
  OperatorPki pki(inter_end);
  pki.install(dir);
  auto ca = open_ok(dir.path());
  auto cert = ca->issue("spiffe://td/x", 24h);
  REQUIRE(cert);
  CHECK(seconds(cert->leaf.not_after()) == seconds(inter_end));
}

TEST_CASE("ca: the operator's files, wrong in every way, give a clear error") {
  TempDir dir;
  OperatorPki pki;
  std::string d = pki.install(dir);

  SUBCASE("a key of another certificate") {
    write_key(d + "/ca-key.pem", pki.root_key);
    CHECK(open_error(dir.path()).find("ca-key.pem does not match") != std::string::npos);
  }
  SUBCASE("a key that is not a key") {
    write(d + "/ca-key.pem", "hello\n");
    std::string e = open_error(dir.path());
    CHECK(e.find("ca-key.pem") != std::string::npos);
    CHECK(e.find("not a PEM private key") != std::string::npos);
  }
  SUBCASE("no certificate") {
    ::unlink((d + "/ca-cert.pem").c_str());
    CHECK(open_error(dir.path()).find("ca-cert.pem") != std::string::npos);
  }
  SUBCASE("a leaf where the CA certificate belongs") {
    tls::PrivateKey k = *tls::PrivateKey::generate_p256();
    tls::CertificateSpec s;
    s.not_before = std::chrono::system_clock::now() - 1h;
    s.not_after = s.not_before + 48h;
    s.uri_sans = {"spiffe://td/x"};
    auto leaf = tls::sign_certificate(s, k, &pki.root, pki.root_key);
    REQUIRE(leaf);
    write(d + "/ca-cert.pem", leaf->to_pem());
    write_key(d + "/ca-key.pem", k);
    CHECK(open_error(dir.path()).find("is not a CA certificate") != std::string::npos);
  }
  SUBCASE("an intermediate without its root") {
    ::unlink((d + "/root-cert.pem").c_str());
    CHECK(open_error(dir.path()).find("put the root it chains to") != std::string::npos);
  }
  SUBCASE("another root") {
    OperatorPki other;
    write(d + "/root-cert.pem", other.root.to_pem());
    ::unlink((d + "/cert-chain.pem").c_str());
    std::string e = open_error(dir.path());
    CHECK(e.find("does not chain to") != std::string::npos);
  }
  SUBCASE("an expired intermediate") {
    tls::CertificateSpec s;
    s.organization = "Example Corp";
    s.common_name = "Old Intermediate";
    s.not_before = std::chrono::system_clock::now() - 48h;
    s.not_after = std::chrono::system_clock::now() - 24h;
    s.is_ca = true;
    auto old = tls::sign_certificate(s, pki.inter_key, &pki.root, pki.root_key);
    REQUIRE(old);
    write(d + "/ca-cert.pem", old->to_pem());
    CHECK(open_error(dir.path()).find("expired") != std::string::npos);
  }
}

TEST_CASE("ca: meshbox's own root files, damaged") {
  TempDir dir;
  std::string state = dir.file("state");
  auto first = open_ok(state);
  std::string root_pem = first->root_pem();

  SUBCASE("the key is gone") {
    ::unlink((state + "/ca/root-key.pem").c_str());
    CHECK(open_error(state).find("has no root-key.pem") != std::string::npos);
  }
  SUBCASE("the key belongs to another root") {
    write(state + "/ca/root-key.pem",
          std::string(tls::PrivateKey::generate_p256()->to_pem().reveal()));
    CHECK(open_error(state).find("does not match") != std::string::npos);
  }
  SUBCASE("a key without a certificate (a crash while making the root) is replaced") {
    ::unlink((state + "/ca/root-cert.pem").c_str());
    auto again = open_ok(state);
    CHECK(again->source() == CertificateAuthority::Source::Created);
    CHECK(again->root_pem() != root_pem);
    CHECK(mode_of(state + "/ca/root-key.pem") == 0600);
  }
}

}  // namespace
}  // namespace meshbox::control
