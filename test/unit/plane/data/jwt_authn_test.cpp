#include "plane/data/jwt_authn.h"

#include <openssl/bn.h>
#include <openssl/digest.h>
#include <openssl/ec.h>
#include <openssl/ec_key.h>
#include <openssl/ecdsa.h>
#include <openssl/nid.h>

#include <doctest/doctest.h>
#include <fmt/format.h>

namespace meshbox::data {
namespace {

using tls::JwtStatus;

constexpr int64_t kNow = 1'800'000'000;

std::string padded(const BIGNUM* bn) {
  std::string out(32, '\0');
  BN_bn2bin_padded(reinterpret_cast<uint8_t*>(out.data()), 32, bn);
  return out;
}

/// An EC P-256 key that signs ES256 tokens, and its JWKS.
struct Signer {
  bssl::UniquePtr<EC_KEY> key{EC_KEY_new_by_curve_name(NID_X9_62_prime256v1)};
  Signer() { REQUIRE(EC_KEY_generate_key(key.get())); }

  tls::JwksConstPtr jwks() const {
    bssl::UniquePtr<BIGNUM> x(BN_new()), y(BN_new());
    EC_POINT_get_affine_coordinates_GFp(
        EC_KEY_get0_group(key.get()), EC_KEY_get0_public_key(key.get()), x.get(), y.get(), nullptr);
    auto set = tls::Jwks::parse(fmt::format(
        R"({{"keys":[{{"kty":"EC","crv":"P-256","x":"{}","y":"{}"}}]}})",
        tls::base64url_encode(padded(x.get())), tls::base64url_encode(padded(y.get()))));
    REQUIRE(set.has_value());
    return *set;
  }

  std::string token(const std::string& payload) const {
    std::string part =
        tls::base64url_encode(R"({"alg":"ES256"})") + "." + tls::base64url_encode(payload);
    uint8_t digest[32];
    unsigned len = 0;
    EVP_Digest(part.data(), part.size(), digest, &len, EVP_sha256(), nullptr);
    bssl::UniquePtr<ECDSA_SIG> sig(ECDSA_do_sign(digest, len, key.get()));
    const BIGNUM *r, *s;
    ECDSA_SIG_get0(sig.get(), &r, &s);
    return part + "." + tls::base64url_encode(padded(r) + padded(s));
  }
};

const Signer& signer() {
  static const Signer s;
  return s;
}

std::string claims(const std::string& iss, const std::string& extra = "") {
  return fmt::format(R"({{"iss":"{}","sub":"bob","exp":{}{}}})", iss, kNow + 600, extra);
}

JwtProviderSpec provider(const std::string& issuer) {
  JwtProviderSpec p;
  p.issuer = issuer;
  p.jwks = signer().jwks();
  return p;
}

http::RequestHead request(const std::string& target,
                          std::vector<std::pair<std::string, std::string>> headers = {}) {
  http::RequestHead h;
  h.method = "GET";
  h.target = target;
  h.headers.add("host", "app.example");
  for (const auto& [n, v] : headers)
    h.headers.add(n, v);
  return h;
}

}  // namespace

TEST_CASE("jwt_authn: no policy, no token: the request goes on unauthenticated") {
  RequestAuth auth;
  auth.present = true;  // left over from an earlier request
  auto head = request("/");
  CHECK(authenticate_request({}, head, kNow, auth) == JwtStatus::Ok);
  CHECK_FALSE(auth.present);
  RequestAuthnSpec spec{{provider("iss")}};
  head = request("/", {{"authorization", "Basic dXNlcjpwdw=="}});
  CHECK(authenticate_request(spec, head, kNow, auth) == JwtStatus::Ok);
  CHECK_FALSE(auth.present);
  CHECK(head.headers.has("authorization"));  // not ours: kept
}

TEST_CASE("jwt_authn: default places; the token is removed unless forwarded; claims") {
  RequestAuthnSpec spec{{provider("iss")}};
  std::string t = signer().token(claims(
      "iss", R"(,"aud":["a","b"],"azp":"web","scope":"x y","n":3,"ok":true,"nested":{"k":"v"})"));
  RequestAuth auth;
  auto head = request("/p", {{"authorization", "Bearer " + t}});
  REQUIRE(authenticate_request(spec, head, kNow, auth) == JwtStatus::Ok);
  CHECK(auth.present);
  CHECK(auth.principal == "iss/bob");
  CHECK(auth.audiences == std::vector<std::string>{"a", "b"});
  CHECK(auth.presenter == "web");
  CHECK(auth.claim("aud") == std::vector<std::string>{"a", "b"});
  CHECK(auth.claim("scope") == std::vector<std::string>{"x y"});
  CHECK(auth.claim("n") == std::vector<std::string>{"3"});
  CHECK(auth.claim("ok") == std::vector<std::string>{"true"});
  CHECK(auth.claim("nested").empty());
  std::string_view path[] = {"nested", "k"};
  CHECK(auth.claim_path(path) == std::vector<std::string>{"v"});
  CHECK(auth.claim("absent").empty());
  CHECK_FALSE(head.headers.has("authorization"));

  head = request("/p?a=1&access_token=" + t + "&b=2");
  REQUIRE(authenticate_request(spec, head, kNow, auth) == JwtStatus::Ok);
  CHECK(head.target == "/p?a=1&b=2");
  head = request("/p?access_token=" + t);
  REQUIRE(authenticate_request(spec, head, kNow, auth) == JwtStatus::Ok);
  CHECK(head.target == "/p");

  spec.providers[0].forward_original_token = true;
  head = request("/p?access_token=" + t, {{"authorization", "Bearer " + t}});
  REQUIRE(authenticate_request(spec, head, kNow, auth) == JwtStatus::Ok);
  CHECK(head.headers.has("authorization"));
  CHECK(head.target == "/p?access_token=" + t);
}

TEST_CASE("jwt_authn: custom header, param and cookie; payload header; sanitizing") {
  JwtProviderSpec p = provider("iss");
  p.from_headers = {{"x-token", "Token "}};
  p.from_params = {"jwt"};
  p.from_cookies = {"session"};
  p.output_payload_to_header = "x-payload";
  RequestAuthnSpec spec{{p}};
  std::string pl = claims("iss");
  std::string t = signer().token(pl);
  RequestAuth auth;

  // The default places are not looked at once places are configured.
  auto head =
      request("/?access_token=junk", {{"authorization", "Bearer junk"}, {"x-payload", "forged"}});
  CHECK(authenticate_request(spec, head, kNow, auth) == JwtStatus::Ok);
  CHECK_FALSE(auth.present);
  CHECK_FALSE(head.headers.has("x-payload"));  // a client never sets it

  head = request("/", {{"x-token", "Token " + t}});
  REQUIRE(authenticate_request(spec, head, kNow, auth) == JwtStatus::Ok);
  CHECK(auth.present);
  REQUIRE(head.headers.get("x-payload"));
  CHECK(*head.headers.get("x-payload") == tls::base64url_encode(pl));
  CHECK_FALSE(head.headers.has("x-token"));
  // Without the prefix the header is not a token place.
  head = request("/", {{"x-token", t}});
  CHECK(authenticate_request(spec, head, kNow, auth) == JwtStatus::Ok);
  CHECK_FALSE(auth.present);

  head = request("/x?jwt=" + t);
  REQUIRE(authenticate_request(spec, head, kNow, auth) == JwtStatus::Ok);
  CHECK(auth.present);
  CHECK(head.target == "/x");

  head = request("/", {{"cookie", "a=1; session=\"" + t + "\"; b=2"}});
  REQUIRE(authenticate_request(spec, head, kNow, auth) == JwtStatus::Ok);
  CHECK(auth.present);
  CHECK(head.headers.has("cookie"));  // Envoy leaves cookies alone
}

TEST_CASE("jwt_authn: every token must be good; issuer per place; keys pending") {
  JwtProviderSpec a = provider("issuer-a");
  JwtProviderSpec b = provider("issuer-b");
  b.from_headers = {{"x-b", ""}};
  b.audiences = {"svc"};
  JwtProviderSpec c = provider("issuer-c");
  c.jwks = nullptr;  // not fetched yet
  RequestAuthnSpec spec{{a, b, c}};
  RequestAuth auth;
  std::string ta = signer().token(claims("issuer-a"));
  std::string tb = signer().token(claims("issuer-b", R"(,"aud":"svc")"));

  auto head = request("/", {{"authorization", "Bearer " + ta}, {"x-b", tb}});
  CHECK(authenticate_request(spec, head, kNow, auth) == JwtStatus::Ok);
  // issuer-b's token in the default place: issuer-b does not look there.
  head = request("/", {{"authorization", "Bearer " + tb}});
  CHECK(authenticate_request(spec, head, kNow, auth) == JwtStatus::UnknownIssuer);
  // One good and one bad: refused.
  head = request("/", {{"authorization", "Bearer " + ta}, {"x-b", "garbage"}});
  CHECK(authenticate_request(spec, head, kNow, auth) == JwtStatus::BadFormat);
  CHECK_FALSE(auth.present);
  // Wrong audience for issuer-b.
  head = request("/", {{"x-b", signer().token(claims("issuer-b", R"(,"aud":"other")"))}});
  CHECK(authenticate_request(spec, head, kNow, auth) == JwtStatus::AudienceNotAllowed);
  // issuer-c has no keys yet.
  head = request("/", {{"authorization", "Bearer " + signer().token(claims("issuer-c"))}});
  CHECK(authenticate_request(spec, head, kNow, auth) == JwtStatus::JwksFetchFailed);
  // Expired, by more than the skew.
  head = request(
      "/", {{"authorization", "Bearer " + signer().token(fmt::format(
                                              R"({{"iss":"issuer-a","exp":{}}})", kNow - 61))}});
  CHECK(authenticate_request(spec, head, kNow, auth) == JwtStatus::Expired);
  // Too many tokens: refused before verifying any.
  std::vector<std::pair<std::string, std::string>> many;
  for (int i = 0; i < 9; ++i)
    many.emplace_back("authorization", "Bearer " + ta);
  head = request("/", many);
  CHECK(authenticate_request(spec, head, kNow, auth) == JwtStatus::MultipleTokens);
}

TEST_CASE("jwt_authn: Envoy's www-authenticate") {
  auto head = request(std::string("/p?q=1") + std::string(300, 'x'));
  std::string v = www_authenticate(head, JwtStatus::Expired);
  CHECK(v.starts_with("Bearer realm=\"http://app.example/p?q=1xxx"));
  CHECK(v.ends_with("\", error=\"invalid_token\""));
  CHECK(v.size() ==
        std::string("Bearer realm=\"http://app.example\", error=\"invalid_token\"").size() + 256);
  CHECK(www_authenticate(request("/"), JwtStatus::Missing) ==
        "Bearer realm=\"http://app.example/\"");
  CHECK(www_authenticate(request("/"), JwtStatus::Missing, "https") ==
        "Bearer realm=\"https://app.example/\"");
}

}  // namespace meshbox::data
