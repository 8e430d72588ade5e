// Tests for core/tls/{private_key,certificate,certificate_builder}.h: P-256 keys and their
// PEM, self-signed CAs, leaves with a SPIFFE URI SAN, intermediates, chain verification
// (good, wrong root, missing intermediate, expired, signed by a non-CA), PEM bundles, and an
// RSA issuer as an operator's CA may have.
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include <doctest/doctest.h>

#include <chrono>
#include <set>
#include <string>

#include "core/tls/certificate.h"
#include "core/tls/certificate_builder.h"
#include "core/tls/private_key.h"

namespace meshbox::tls {
namespace {

using namespace std::chrono_literals;

PrivateKey new_key() {
  auto k = PrivateKey::generate_p256();
  REQUIRE(k);
  return *k;
}

CertificateSpec ca_spec(std::string cn, Time now = std::chrono::system_clock::now()) {
  CertificateSpec s;
  s.organization = "meshbox-test";
  s.common_name = std::move(cn);
  s.not_before = now - 1h;
  s.not_after = now + 24h * 365;
  s.is_ca = true;
  return s;
}

CertificateSpec leaf_spec(std::string uri, Time now = std::chrono::system_clock::now()) {
  CertificateSpec s;
  s.organization = "meshbox-test";
  s.not_before = now - 1min;
  s.not_after = now + 24h;
  s.uri_sans = {std::move(uri)};
  return s;
}

struct Root {
  PrivateKey key = new_key();
  Certificate cert{nullptr};
};

Root make_root(const std::string& cn = "test root") {
  Root r;
  auto c = sign_certificate(ca_spec(cn), r.key, nullptr, r.key);
  REQUIRE_MESSAGE(c, c.error().message());
  r.cert = *c;
  return r;
}

int64_t seconds(Time t) {
  return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}

TEST_CASE("tls: a P-256 key survives PEM and is described without secrets") {
  PrivateKey key = new_key();
  CHECK(key.describe() == "ECDSA P-256");
  SecretString pem = key.to_pem();
  CHECK(pem.reveal().starts_with("-----BEGIN PRIVATE KEY-----\n"));
  auto back = PrivateKey::from_pem(pem.reveal());
  REQUIRE(back);
  CHECK(EVP_PKEY_cmp(key.native(), back->native()) == 1);
  // Two keys differ.
  CHECK(EVP_PKEY_cmp(key.native(), new_key().native()) != 1);
}

TEST_CASE("tls: bad key PEM is refused with BoringSSL's reason") {
  auto none = PrivateKey::from_pem("not a key");
  REQUIRE_FALSE(none);
  CHECK(none.error().code() == Code::InvalidArgument);
  CHECK(none.error().message().find("NO_START_LINE") != std::string::npos);

  // An encrypted key: there is nobody to ask for the passphrase.
  PrivateKey key = new_key();
  bssl::UniquePtr<BIO> bio(BIO_new(BIO_s_mem()));
  char pass[] = "secret";
  REQUIRE(PEM_write_bio_PKCS8PrivateKey(bio.get(), key.native(), EVP_aes_128_cbc(), pass,
                                        sizeof pass - 1, nullptr, nullptr));
  const uint8_t* data = nullptr;
  size_t len = 0;
  BIO_mem_contents(bio.get(), &data, &len);
  auto enc = PrivateKey::from_pem(std::string(reinterpret_cast<const char*>(data), len));
  REQUIRE_FALSE(enc);
  CHECK(enc.error().message().find("encrypted") != std::string::npos);
}

TEST_CASE("tls: a self-signed root is a CA with the requested subject and validity") {
  auto now = std::chrono::system_clock::now();
  PrivateKey key = new_key();
  CertificateSpec spec = ca_spec("test root", now);
  auto root = sign_certificate(spec, key, nullptr, key);
  REQUIRE_MESSAGE(root, root.error().message());
  CHECK(root->is_ca());
  CHECK(root->self_signed());
  CHECK(root->matches(key));
  CHECK_FALSE(root->matches(new_key()));
  CHECK(root->subject() == "CN=test root,O=meshbox-test");
  CHECK(seconds(root->not_before()) == seconds(spec.not_before));
  CHECK(seconds(root->not_after()) == seconds(spec.not_after));
  CHECK(root->uri_sans().empty());
  CHECK_FALSE(root->spiffe_id());
  CHECK(root->sha256_fingerprint().size() == 32 * 3 - 1);
  CHECK(verify_chain(*root, {}, std::span(&*root, 1)).is_ok());
  // PEM round trip: the same certificate.
  auto back = Certificate::from_pem(root->to_pem());
  REQUIRE(back);
  CHECK(*back == *root);
  CHECK(back->sha256_fingerprint() == root->sha256_fingerprint());
}

TEST_CASE("tls: a leaf carries the SPIFFE URI SAN and verifies against its root only") {
  Root root = make_root();
  PrivateKey key = new_key();
  auto leaf = sign_certificate(leaf_spec("spiffe://cluster.local/ns/default/sa/reviews"), key,
                               &root.cert, root.key);
  REQUIRE_MESSAGE(leaf, leaf.error().message());
  CHECK_FALSE(leaf->is_ca());
  CHECK_FALSE(leaf->self_signed());
  CHECK(leaf->issued_by(root.cert));
  CHECK(leaf->matches(key));
  CHECK(leaf->uri_sans() ==
        std::vector<std::string>{"spiffe://cluster.local/ns/default/sa/reviews"});
  CHECK(leaf->spiffe_id() == "spiffe://cluster.local/ns/default/sa/reviews");
  CHECK(verify_chain(*leaf, {}, std::span(&root.cert, 1)).is_ok());

  Root other = make_root("other root");
  Status wrong = verify_chain(*leaf, {}, std::span(&other.cert, 1));
  CHECK_FALSE(wrong.is_ok());
  CHECK_MESSAGE(wrong.message().find("issuer") != std::string::npos, wrong.message());

  // After notAfter: expired.
  Status late =
      verify_chain(*leaf, {}, std::span(&root.cert, 1), std::chrono::system_clock::now() + 48h);
  CHECK_FALSE(late.is_ok());
  CHECK_MESSAGE(late.message().find("expired") != std::string::npos, late.message());
  // Before notBefore: not yet valid.
  Status early =
      verify_chain(*leaf, {}, std::span(&root.cert, 1), std::chrono::system_clock::now() - 2h);
  CHECK_FALSE(early.is_ok());
  CHECK_MESSAGE(early.message().find("not yet valid") != std::string::npos, early.message());
}

TEST_CASE("tls: serials are random, positive and at most 20 octets") {
  Root root = make_root();
  std::set<std::string> serials;
  for (int i = 0; i < 20; ++i) {
    auto leaf = sign_certificate(leaf_spec("spiffe://td/x"), new_key(), &root.cert, root.key);
    REQUIRE(leaf);
    std::string hex = leaf->serial_hex();
    CHECK(hex.size() <= 40);
    CHECK(hex.size() >= 30);  // 159 random bits: fewer than 120 has odds of 2^-39
    CHECK(hex[0] != '-');
    serials.insert(hex);
  }
  CHECK(serials.size() == 20);
}

TEST_CASE("tls: root → intermediate → leaf needs the intermediate to verify") {
  Root root = make_root();
  PrivateKey inter_key = new_key();
  CertificateSpec ispec = ca_spec("test intermediate");
  ispec.path_length = 0;
  auto inter = sign_certificate(ispec, inter_key, &root.cert, root.key);
  REQUIRE(inter);
  CHECK(inter->is_ca());
  CHECK_FALSE(inter->self_signed());
  CHECK(inter->issued_by(root.cert));
  auto leaf = sign_certificate(leaf_spec("spiffe://td/ns/a/sa/b"), new_key(), &*inter, inter_key);
  REQUIRE(leaf);
  CHECK(leaf->issued_by(*inter));
  CHECK_FALSE(leaf->issued_by(root.cert));
  CHECK(verify_chain(*leaf, std::span(&*inter, 1), std::span(&root.cert, 1)).is_ok());
  Status missing = verify_chain(*leaf, {}, std::span(&root.cert, 1));
  CHECK_FALSE(missing.is_ok());
  CHECK_MESSAGE(missing.message().find("local issuer") != std::string::npos, missing.message());

  // A second CA level under a pathlen:0 intermediate is refused.
  PrivateKey sub_key = new_key();
  auto sub = sign_certificate(ca_spec("too deep"), sub_key, &*inter, inter_key);
  REQUIRE(sub);
  auto deep_leaf = sign_certificate(leaf_spec("spiffe://td/x"), new_key(), &*sub, sub_key);
  REQUIRE(deep_leaf);
  std::vector<Certificate> chain = {*sub, *inter};
  CHECK_FALSE(verify_chain(*deep_leaf, chain, std::span(&root.cert, 1)).is_ok());
}

TEST_CASE("tls: a certificate signed by a leaf does not verify") {
  Root root = make_root();
  PrivateKey leaf_key = new_key();
  auto leaf = sign_certificate(leaf_spec("spiffe://td/a"), leaf_key, &root.cert, root.key);
  REQUIRE(leaf);
  auto forged = sign_certificate(leaf_spec("spiffe://td/b"), new_key(), &*leaf, leaf_key);
  REQUIRE(forged);
  Status s = verify_chain(*forged, std::span(&*leaf, 1), std::span(&root.cert, 1));
  CHECK_FALSE(s.is_ok());
}

TEST_CASE("tls: signing refuses mismatched keys and backwards validity") {
  Root root = make_root();
  auto wrong = sign_certificate(leaf_spec("spiffe://td/a"), new_key(), &root.cert, new_key());
  REQUIRE_FALSE(wrong);
  CHECK(wrong.error().message().find("does not match") != std::string::npos);
  auto self = sign_certificate(ca_spec("x"), new_key(), nullptr, new_key());
  REQUIRE_FALSE(self);
  CertificateSpec back = leaf_spec("spiffe://td/a");
  back.not_after = back.not_before - 1s;
  CHECK_FALSE(sign_certificate(back, new_key(), &root.cert, root.key));
  CertificateSpec long_name = ca_spec(std::string(65, 'x'));
  CHECK_FALSE(sign_certificate(long_name, root.key, nullptr, root.key));
}

TEST_CASE("tls: spiffe_id() wants exactly one URI SAN, and a valid one") {
  Root root = make_root();
  CertificateSpec two = leaf_spec("spiffe://td/a");
  two.uri_sans.push_back("spiffe://td/b");
  auto c2 = sign_certificate(two, new_key(), &root.cert, root.key);
  REQUIRE(c2);
  CHECK(c2->uri_sans().size() == 2);
  CHECK_FALSE(c2->spiffe_id());
  auto http = sign_certificate(leaf_spec("https://example.com/x"), new_key(), &root.cert, root.key);
  REQUIRE(http);
  CHECK_FALSE(http->spiffe_id());
}

TEST_CASE("tls: PEM bundles parse in order; garbage does not") {
  Root a = make_root("a"), b = make_root("b");
  auto both = Certificate::all_from_pem(a.cert.to_pem() + "\n" + b.cert.to_pem());
  REQUIRE(both);
  REQUIRE(both->size() == 2);
  CHECK((*both)[0] == a.cert);
  CHECK((*both)[1] == b.cert);
  CHECK(to_pem(*both) == a.cert.to_pem() + b.cert.to_pem());
  // A key block in the same file is skipped.
  auto mixed = Certificate::all_from_pem(std::string(a.key.to_pem().reveal()) + a.cert.to_pem());
  REQUIRE(mixed);
  CHECK(mixed->size() == 1);

  auto empty = Certificate::all_from_pem("");
  REQUIRE_FALSE(empty);
  CHECK(empty.error().message().find("no PEM certificate") != std::string::npos);
  std::string broken = a.cert.to_pem();
  broken[40] = broken[40] == 'A' ? 'B' : 'A';  // corrupt the DER inside
  broken.insert(broken.size() / 2, "!!");
  CHECK_FALSE(Certificate::all_from_pem(broken));
}

TEST_CASE("tls: an RSA issuer (an operator's CA) signs P-256 leaves") {
  bssl::UniquePtr<RSA> rsa(RSA_new());
  bssl::UniquePtr<BIGNUM> e(BN_new());
  REQUIRE(BN_set_word(e.get(), RSA_F4));
  REQUIRE(RSA_generate_key_ex(rsa.get(), 2048, e.get(), nullptr));
  bssl::UniquePtr<BIO> bio(BIO_new(BIO_s_mem()));
  REQUIRE(PEM_write_bio_RSAPrivateKey(bio.get(), rsa.get(), nullptr, nullptr, 0, nullptr, nullptr));
  const uint8_t* data = nullptr;
  size_t len = 0;
  BIO_mem_contents(bio.get(), &data, &len);
  std::string pem(reinterpret_cast<const char*>(data), len);
  CHECK(pem.starts_with("-----BEGIN RSA PRIVATE KEY-----"));
  auto key = PrivateKey::from_pem(pem);
  REQUIRE(key);
  CHECK(key->describe() == "RSA 2048");
  auto root = sign_certificate(ca_spec("rsa root"), *key, nullptr, *key);
  REQUIRE(root);
  auto leaf = sign_certificate(leaf_spec("spiffe://td/a"), new_key(), &*root, *key);
  REQUIRE(leaf);
  CHECK(verify_chain(*leaf, {}, std::span(&*root, 1)).is_ok());
}

}  // namespace
}  // namespace meshbox::tls
