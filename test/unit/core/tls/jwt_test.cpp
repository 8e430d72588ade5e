#include "core/tls/jwt.h"

#include <openssl/bn.h>
#include <openssl/digest.h>
#include <openssl/ec.h>
#include <openssl/ec_key.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/nid.h>
#include <openssl/rsa.h>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include <string>

namespace meshbox::tls {
namespace {

constexpr int64_t kNow = 1'800'000'000;

std::string bn_bytes(const BIGNUM* bn, size_t width = 0) {
  size_t n = width ? width : BN_num_bytes(bn);
  std::string out(n, '\0');
  BN_bn2bin_padded(reinterpret_cast<uint8_t*>(out.data()), n, bn);
  return out;
}

/// A signing key for tests, RSA 2048 or EC (P-256, P-384), with its JWK.
struct TestKey {
  bssl::UniquePtr<EVP_PKEY> pkey;
  bool rsa = false;
  size_t coord = 0;

  static TestKey rsa2048() {
    TestKey k;
    k.rsa = true;
    bssl::UniquePtr<RSA> rsa(RSA_new());
    bssl::UniquePtr<BIGNUM> e(BN_new());
    BN_set_word(e.get(), RSA_F4);
    REQUIRE(RSA_generate_key_ex(rsa.get(), 2048, e.get(), nullptr));
    k.pkey.reset(EVP_PKEY_new());
    EVP_PKEY_set1_RSA(k.pkey.get(), rsa.get());
    return k;
  }
  static TestKey ec(int nid, size_t coord) {
    TestKey k;
    k.coord = coord;
    bssl::UniquePtr<EC_KEY> ec(EC_KEY_new_by_curve_name(nid));
    REQUIRE(EC_KEY_generate_key(ec.get()));
    k.pkey.reset(EVP_PKEY_new());
    EVP_PKEY_set1_EC_KEY(k.pkey.get(), ec.get());
    return k;
  }

  std::string jwk(std::string_view kid = "", std::string_view alg = "") const {
    std::string extra;
    if (!kid.empty()) extra += fmt::format(R"(,"kid":"{}")", kid);
    if (!alg.empty()) extra += fmt::format(R"(,"alg":"{}")", alg);
    if (rsa) {
      const RSA* r = EVP_PKEY_get0_RSA(pkey.get());
      return fmt::format(R"({{"kty":"RSA","n":"{}","e":"{}"{}}})",
                         base64url_encode(bn_bytes(RSA_get0_n(r))),
                         base64url_encode(bn_bytes(RSA_get0_e(r))), extra);
    }
    const EC_KEY* e = EVP_PKEY_get0_EC_KEY(pkey.get());
    bssl::UniquePtr<BIGNUM> x(BN_new()), y(BN_new());
    EC_POINT_get_affine_coordinates_GFp(EC_KEY_get0_group(e), EC_KEY_get0_public_key(e), x.get(),
                                        y.get(), nullptr);
    return fmt::format(R"({{"kty":"EC","crv":"{}","x":"{}","y":"{}"{}}})",
                       coord == 32 ? "P-256" : "P-384", base64url_encode(bn_bytes(x.get(), coord)),
                       base64url_encode(bn_bytes(y.get(), coord)), extra);
  }

  std::string sign(std::string_view alg, std::string_view signed_part) const {
    const EVP_MD* md = alg.ends_with("256")   ? EVP_sha256()
                       : alg.ends_with("384") ? EVP_sha384()
                                              : EVP_sha512();
    if (rsa) {
      bssl::ScopedEVP_MD_CTX ctx;
      REQUIRE(EVP_DigestSignInit(ctx.get(), nullptr, md, nullptr, pkey.get()));
      size_t len = 0;
      const auto* in = reinterpret_cast<const uint8_t*>(signed_part.data());
      REQUIRE(EVP_DigestSign(ctx.get(), nullptr, &len, in, signed_part.size()));
      std::string sig(len, '\0');
      REQUIRE(EVP_DigestSign(ctx.get(), reinterpret_cast<uint8_t*>(sig.data()), &len, in,
                             signed_part.size()));
      sig.resize(len);
      return sig;
    }
    uint8_t digest[EVP_MAX_MD_SIZE];
    unsigned dlen = 0;
    EVP_Digest(signed_part.data(), signed_part.size(), digest, &dlen, md, nullptr);
    bssl::UniquePtr<ECDSA_SIG> sig(ECDSA_do_sign(digest, dlen, EVP_PKEY_get0_EC_KEY(pkey.get())));
    REQUIRE(sig);
    const BIGNUM *r, *s;
    ECDSA_SIG_get0(sig.get(), &r, &s);
    return bn_bytes(r, coord) + bn_bytes(s, coord);
  }

  std::string token(std::string_view alg, std::string_view payload,
                    std::string_view kid = "") const {
    std::string header = kid.empty() ? fmt::format(R"({{"alg":"{}","typ":"JWT"}})", alg)
                                     : fmt::format(R"({{"alg":"{}","kid":"{}"}})", alg, kid);
    std::string signed_part = base64url_encode(header) + "." + base64url_encode(payload);
    return signed_part + "." + base64url_encode(sign(alg, signed_part));
  }
};

const TestKey& rsa_key() {
  static const TestKey k = TestKey::rsa2048();
  return k;
}
const TestKey& ec_key() {
  static const TestKey k = TestKey::ec(NID_X9_62_prime256v1, 32);
  return k;
}

JwksConstPtr jwks(const std::string& keys) {
  auto j = Jwks::parse(R"({"keys":[)" + keys + "]}");
  REQUIRE_MESSAGE(j.has_value(), (j ? "" : j.error().message()));
  return *j;
}

/// Parses, checks time, then verifies: the order Envoy checks in.
JwtStatus check(const std::string& token, const Jwks& set, int64_t now = kNow) {
  Jwt jwt;
  JwtStatus s = Jwt::parse(token, jwt);
  if (s != JwtStatus::Ok) return s;
  s = jwt.check_time(now);
  if (s != JwtStatus::Ok) return s;
  return set.verify(jwt);
}

const std::string kPayload = fmt::format(
    R"({{"iss":"issuer-1","sub":"alice","aud":["app","other"],"azp":"web","exp":{},"groups":["a","b"],"n":42}})",
    kNow + 3600);

}  // namespace

TEST_CASE("base64url round-trips and is strict") {
  for (std::string s : {"", "f", "fo", "foo", "foob", "fooba", "foobar", "\xff\xfe\x00"}) {
    std::string back;
    REQUIRE(base64url_decode(base64url_encode(s), back));
    CHECK(back == s);
  }
  CHECK(base64url_encode("\xfb\xff") == "-_8");
  std::string out;
  CHECK_FALSE(base64url_decode("Zm9v=", out));  // padding
  CHECK_FALSE(base64url_decode("Zm+v", out));   // standard alphabet
  CHECK_FALSE(base64url_decode("Z", out));      // impossible length
  CHECK_FALSE(base64url_decode("Zm9=", out));
  CHECK_FALSE(base64url_decode("Zh", out));  // non-zero leftover bits
  CHECK(base64url_decode("Zg", out));
}

TEST_CASE("a valid RS256 token verifies; its claims are read") {
  auto set = jwks(rsa_key().jwk("k1"));
  std::string token = rsa_key().token("RS256", kPayload, "k1");
  CHECK(check(token, *set) == JwtStatus::Ok);
  Jwt jwt;
  REQUIRE(Jwt::parse(token, jwt) == JwtStatus::Ok);
  CHECK(jwt.iss == "issuer-1");
  CHECK(jwt.sub == "alice");
  CHECK(jwt.azp == "web");
  CHECK(jwt.audiences == std::vector<std::string>{"app", "other"});
  CHECK(jwt.exp == kNow + 3600);
  CHECK(jwt.kid == "k1");
  CHECK(jwt.audience_allowed({"other"}));
  CHECK(jwt.audience_allowed({}));
  CHECK_FALSE(jwt.audience_allowed({"nope"}));
  CHECK(jwt.payload_base64url == base64url_encode(kPayload));
  // RS384 and RS512 with the same key.
  CHECK(check(rsa_key().token("RS384", kPayload), *set) == JwtStatus::Ok);
  CHECK(check(rsa_key().token("RS512", kPayload), *set) == JwtStatus::Ok);
}

TEST_CASE("a valid ES256 and ES384 token verifies (raw r||s signatures)") {
  auto set = jwks(ec_key().jwk());
  CHECK(check(ec_key().token("ES256", kPayload), *set) == JwtStatus::Ok);
  TestKey p384 = TestKey::ec(NID_secp384r1, 48);
  auto set384 = jwks(p384.jwk("", "ES384"));
  CHECK(check(p384.token("ES384", kPayload), *set384) == JwtStatus::Ok);
  // A P-256 key never verifies ES384, nor the other way round.
  CHECK(check(p384.token("ES384", kPayload), *set) == JwtStatus::KidAlgMismatch);
  // A DER signature (what `openssl dgst -sign` gives) is not a JWS one.
  std::string t = ec_key().token("ES256", kPayload);
  std::string bad = t.substr(0, t.rfind('.') + 1) + base64url_encode(std::string(70, '\x30'));
  CHECK(check(bad, *set) == JwtStatus::VerificationFails);
}

TEST_CASE("time: exp and nbf with 60 s of skew") {
  auto set = jwks(rsa_key().jwk());
  auto with = [&](std::string claims) {
    return rsa_key().token("RS256", R"({"iss":"i",)" + claims + "}");
  };
  CHECK(check(with(fmt::format(R"("exp":{})", kNow - 61)), *set) == JwtStatus::Expired);
  CHECK(check(with(fmt::format(R"("exp":{})", kNow - 59)), *set) == JwtStatus::Ok);
  CHECK(check(with(fmt::format(R"("nbf":{})", kNow + 61)), *set) == JwtStatus::NotYetValid);
  CHECK(check(with(fmt::format(R"("nbf":{})", kNow + 59)), *set) == JwtStatus::Ok);
  CHECK(check(with(R"("exp":"soon")"), *set) == JwtStatus::ExpNotInteger);
  CHECK(check(with(R"("exp":1.5)"), *set) == JwtStatus::ExpNotInteger);
  CHECK(check(with(R"("nbf":-1)"), *set) == JwtStatus::NbfNotInteger);
  CHECK(check(with(R"("aud":7)"), *set) == JwtStatus::AudNotString);
  CHECK(check(with(R"("aud":["a",7])"), *set) == JwtStatus::AudNotString);
  CHECK(check(with(R"("sub":7)"), *set) == JwtStatus::SubNotString);
  CHECK(check(rsa_key().token("RS256", R"({"iss":7})"), *set) == JwtStatus::IssNotString);
  CHECK(std::string(jwt_status_text(JwtStatus::Expired)) == "Jwt is expired");
  CHECK(std::string(jwt_status_text(JwtStatus::NotYetValid)) == "Jwt not yet valid");
}

TEST_CASE("a bad signature, another key, or a kid that matches nothing fails") {
  auto set = jwks(rsa_key().jwk("k1"));
  std::string token = rsa_key().token("RS256", kPayload, "k1");
  // One payload character changed: the signature no longer covers it.
  std::string tampered = token;
  size_t dot = tampered.find('.');
  tampered[dot + 2] = tampered[dot + 2] == 'A' ? 'B' : 'A';
  Jwt jwt;
  if (Jwt::parse(tampered, jwt) == JwtStatus::Ok)
    CHECK(set->verify(jwt) == JwtStatus::VerificationFails);
  // Signed by another key with the same kid.
  TestKey other = TestKey::rsa2048();
  CHECK(check(other.token("RS256", kPayload, "k1"), *set) == JwtStatus::VerificationFails);
  CHECK(std::string(jwt_status_text(JwtStatus::VerificationFails)) == "Jwt verification fails");
  // kid mismatch: the set has k1 only.
  CHECK(check(rsa_key().token("RS256", kPayload, "k2"), *set) == JwtStatus::KidAlgMismatch);
  // No kid in the token: every key of the right type is tried.
  auto two = jwks(other.jwk("x") + "," + rsa_key().jwk("y"));
  CHECK(check(rsa_key().token("RS256", kPayload), *two) == JwtStatus::Ok);
  // The key's alg must be the token's.
  auto rs384_only = jwks(rsa_key().jwk("", "RS384"));
  CHECK(check(rsa_key().token("RS256", kPayload), *rs384_only) == JwtStatus::KidAlgMismatch);
  // An EC token against an RSA-only set.
  CHECK(check(ec_key().token("ES256", kPayload), *set) == JwtStatus::KidAlgMismatch);
}

TEST_CASE("alg none, HS256 and unknown algs are refused") {
  auto set = jwks(rsa_key().jwk());
  std::string payload = base64url_encode(kPayload);
  std::string none = base64url_encode(R"({"alg":"none"})") + "." + payload + ".";
  CHECK(check(none, *set) == JwtStatus::AlgNotSupported);
  std::string none_sig = base64url_encode(R"({"alg":"none"})") + "." + payload + ".AAAA";
  CHECK(check(none_sig, *set) == JwtStatus::AlgNotSupported);
  std::string hs = base64url_encode(R"({"alg":"HS256"})") + "." + payload + ".AAAA";
  CHECK(check(hs, *set) == JwtStatus::AlgNotSupported);
  std::string no_alg = base64url_encode(R"({"typ":"JWT"})") + "." + payload + ".AAAA";
  CHECK(check(no_alg, *set) == JwtStatus::HeaderBadAlg);
  std::string num_kid = base64url_encode(R"({"alg":"RS256","kid":1})") + "." + payload + ".AAAA";
  CHECK(check(num_kid, *set) == JwtStatus::HeaderBadKid);
  // An HMAC ("oct") key is never used, so a set of only that is no set.
  CHECK_FALSE(Jwks::parse(R"({"keys":[{"kty":"oct","k":"c2VjcmV0"}]})").has_value());
}

TEST_CASE("malformed tokens: parts, base64url, JSON, size") {
  auto set = jwks(rsa_key().jwk());
  std::string h = base64url_encode(R"({"alg":"RS256"})");
  std::string p = base64url_encode(kPayload);
  CHECK(check("", *set) == JwtStatus::BadFormat);
  CHECK(check("abc", *set) == JwtStatus::BadFormat);
  CHECK(check("a.b", *set) == JwtStatus::BadFormat);
  CHECK(check(h + "." + p + ".AAAA.AAAA", *set) == JwtStatus::BadFormat);
  CHECK(check("!!." + p + ".AAAA", *set) == JwtStatus::HeaderBadBase64);
  CHECK(check(h + "=." + p + ".AAAA", *set) == JwtStatus::HeaderBadBase64);
  CHECK(check(base64url_encode("{\"alg\":") + "." + p + ".AAAA", *set) == JwtStatus::HeaderBadJson);
  CHECK(check(base64url_encode("[1]") + "." + p + ".AAAA", *set) == JwtStatus::HeaderBadJson);
  CHECK(check(h + ".%%%.AAAA", *set) == JwtStatus::PayloadBadBase64);
  CHECK(check(h + "." + base64url_encode("not json") + ".AAAA", *set) == JwtStatus::PayloadBadJson);
  CHECK(check(h + "." + base64url_encode("\"str\"") + ".AAAA", *set) == JwtStatus::PayloadBadJson);
  CHECK(check(h + "." + p + ".A+AA", *set) == JwtStatus::SignatureBadBase64);
  CHECK(check(h + "." + p + ".", *set) == JwtStatus::SignatureBadBase64);
  // Deep nesting is refused by the JSON parser, not a crash.
  CHECK(check(h + "." + base64url_encode(std::string(10'000, '[')) + ".AAAA", *set) ==
        JwtStatus::PayloadBadJson);
  // A huge token is refused before any decoding.
  std::string big =
      rsa_key().token("RS256", R"({"iss":"i","pad":")" + std::string(kMaxJwtBytes, 'x') + R"("})");
  CHECK(check(big, *set) == JwtStatus::BadFormat);
  // Garbage never crashes.
  for (std::string junk : {"..", "...", ".a.b", "a..b", "\x01\x02.\x03.\x04", "eyJ.eyJ.eyJ"})
    CHECK(check(junk, *set) != JwtStatus::Ok);
}

TEST_CASE("JWKS parsing") {
  CHECK_FALSE(Jwks::parse("").has_value());
  CHECK_FALSE(Jwks::parse("[]").has_value());
  CHECK_FALSE(Jwks::parse("{}").has_value());
  CHECK_FALSE(Jwks::parse(R"({"keys":{}})").has_value());
  CHECK_FALSE(Jwks::parse(R"({"keys":[]})").has_value());
  // Bad keys are skipped; the good one stays.
  std::string text =
      R"({"keys":[{"kty":"RSA","n":"!!","e":"AQAB"},{"kty":"EC","crv":"P-256","x":"AAAA","y":"AAAA"},)" +
      ec_key().jwk("good") + "]}";
  auto set = Jwks::parse(text);
  REQUIRE(set.has_value());
  CHECK((*set)->size() == 1);
  CHECK((*set)->text() == text);
  CHECK(check(ec_key().token("ES256", kPayload, "good"), **set) == JwtStatus::Ok);
}

}  // namespace meshbox::tls
