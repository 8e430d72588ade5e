#include "core/tls/jwt.h"

#include <openssl/bn.h>
#include <openssl/digest.h>
#include <openssl/ec.h>
#include <openssl/ec_key.h>
#include <openssl/ecdsa.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/nid.h>
#include <openssl/rsa.h>

#include <cmath>

namespace meshbox::tls {

namespace {

constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

int decode_char(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '-') return 62;
  if (c == '_') return 63;
  return -1;
}

/// What an alg needs: its digest, and the key type (RSA, or EC on one curve).
struct AlgInfo {
  const EVP_MD* md = nullptr;
  bool rsa = false;
  int curve_nid = 0;  // EC
  size_t coord_bytes = 0;
};

bool alg_info(std::string_view alg, AlgInfo& out) {
  if (alg == "RS256")
    out = {EVP_sha256(), true, 0, 0};
  else if (alg == "RS384")
    out = {EVP_sha384(), true, 0, 0};
  else if (alg == "RS512")
    out = {EVP_sha512(), true, 0, 0};
  else if (alg == "ES256")
    out = {EVP_sha256(), false, NID_X9_62_prime256v1, 32};
  else if (alg == "ES384")
    out = {EVP_sha384(), false, NID_secp384r1, 48};
  else
    return false;
  return true;
}

/// An integer claim (iat, nbf, exp): absent is 0; a non-negative whole number; else false.
bool integer_claim(const json::Value& payload, std::string_view name, int64_t& out) {
  const json::Value* v = payload.get(name);
  if (v == nullptr) return true;
  if (!v->is_number()) return false;
  if (v->is_integer) {
    if (v->integer < 0) return false;
    out = v->integer;
    return true;
  }
  double d = v->number;
  if (!(d >= 0) || d >= 9.2e18 || std::floor(d) != d) return false;
  out = static_cast<int64_t>(d);
  return true;
}

/// A string claim: absent is ""; a string; else false.
bool string_claim(const json::Value& payload, std::string_view name, std::string& out) {
  const json::Value* v = payload.get(name);
  if (v == nullptr) return true;
  if (!v->is_string()) return false;
  out = v->string;
  return true;
}

bssl::UniquePtr<BIGNUM> bignum(std::string_view base64url) {
  std::string bytes;
  if (base64url.empty() || !base64url_decode(base64url, bytes)) return nullptr;
  return bssl::UniquePtr<BIGNUM>(
      BN_bin2bn(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), nullptr));
}

const std::string* string_member(const json::Value& v, std::string_view name) {
  const json::Value* m = v.get(name);
  return m != nullptr && m->is_string() ? &m->string : nullptr;
}

bool verify_rsa(EVP_PKEY* key, const EVP_MD* md, const Jwt& jwt) {
  bssl::ScopedEVP_MD_CTX ctx;
  if (!EVP_DigestVerifyInit(ctx.get(), nullptr, md, nullptr, key)) return false;
  return EVP_DigestVerify(ctx.get(), reinterpret_cast<const uint8_t*>(jwt.signature.data()),
                          jwt.signature.size(),
                          reinterpret_cast<const uint8_t*>(jwt.signed_part.data()),
                          jwt.signed_part.size()) == 1;
}

bool verify_ec(EVP_PKEY* key, const AlgInfo& info, const Jwt& jwt) {
  // JWS carries ECDSA signatures as r||s, each the curve's size (RFC 7518 §3.4), not DER.
  if (jwt.signature.size() != 2 * info.coord_bytes) return false;
  const EC_KEY* ec = EVP_PKEY_get0_EC_KEY(key);
  if (ec == nullptr) return false;
  uint8_t digest[EVP_MAX_MD_SIZE];
  unsigned digest_len = 0;
  if (!EVP_Digest(jwt.signed_part.data(), jwt.signed_part.size(), digest, &digest_len, info.md,
                  nullptr))
    return false;
  bssl::UniquePtr<ECDSA_SIG> sig(ECDSA_SIG_new());
  if (!sig) return false;
  const auto* raw = reinterpret_cast<const uint8_t*>(jwt.signature.data());
  BIGNUM* r = BN_bin2bn(raw, info.coord_bytes, nullptr);
  BIGNUM* s = BN_bin2bn(raw + info.coord_bytes, info.coord_bytes, nullptr);
  if (r == nullptr || s == nullptr || !ECDSA_SIG_set0(sig.get(), r, s)) {
    BN_free(r);
    BN_free(s);
    return false;
  }
  return ECDSA_do_verify(digest, digest_len, sig.get(), ec) == 1;
}

}  // namespace

std::string_view jwt_status_text(JwtStatus s) {
  switch (s) {
    case JwtStatus::Ok:
      return "OK";
    case JwtStatus::Missing:
      return "Jwt is missing";
    case JwtStatus::NotYetValid:
      return "Jwt not yet valid";
    case JwtStatus::Expired:
      return "Jwt is expired";
    case JwtStatus::BadFormat:
      return "Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections";
    case JwtStatus::HeaderBadBase64:
      return "Jwt header is an invalid Base64url encoded";
    case JwtStatus::HeaderBadJson:
      return "Jwt header is an invalid JSON";
    case JwtStatus::HeaderBadAlg:
      return "Jwt header [alg] field is required and must be a string";
    case JwtStatus::AlgNotSupported:
      return "Jwt header [alg] is not supported";
    case JwtStatus::HeaderBadKid:
      return "Jwt header [kid] field is not a string";
    case JwtStatus::PayloadBadBase64:
      return "Jwt payload is an invalid Base64url encoded";
    case JwtStatus::PayloadBadJson:
      return "Jwt payload is an invalid JSON";
    case JwtStatus::IssNotString:
      return "Jwt payload [iss] field is not a string";
    case JwtStatus::SubNotString:
      return "Jwt payload [sub] field is not a string";
    case JwtStatus::IatNotInteger:
      return "Jwt payload [iat] field is not an integer";
    case JwtStatus::NbfNotInteger:
      return "Jwt payload [nbf] field is not an integer";
    case JwtStatus::ExpNotInteger:
      return "Jwt payload [exp] field is not an integer";
    case JwtStatus::AudNotString:
      return "Jwt payload [aud] field is not a string or string list";
    case JwtStatus::SignatureBadBase64:
      return "Jwt signature is an invalid Base64url encoded";
    case JwtStatus::UnknownIssuer:
      return "Jwt issuer is not configured";
    case JwtStatus::AudienceNotAllowed:
      return "Audiences in Jwt are not allowed";
    case JwtStatus::VerificationFails:
      return "Jwt verification fails";
    case JwtStatus::KidAlgMismatch:
      return "Jwks doesn't have key to match kid or alg from Jwt";
    case JwtStatus::JwksFetchFailed:
      return "Jwks remote fetch is failed";
    case JwtStatus::NoValidKeys:
      return "Jwks doesn't have any valid public key";
    case JwtStatus::MultipleTokens:
      return "Found multiple Jwt tokens";
  }
  return "Jwt verification fails";
}

std::string base64url_encode(std::string_view bytes) {
  std::string out;
  out.reserve((bytes.size() * 4 + 2) / 3);
  size_t i = 0;
  auto b = [&](size_t k) { return static_cast<uint8_t>(bytes[k]); };
  for (; i + 3 <= bytes.size(); i += 3) {
    uint32_t v = (b(i) << 16) | (b(i + 1) << 8) | b(i + 2);
    out += kAlphabet[v >> 18];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += kAlphabet[v & 63];
  }
  if (bytes.size() - i == 1) {
    uint32_t v = b(i) << 16;
    out += kAlphabet[v >> 18];
    out += kAlphabet[(v >> 12) & 63];
  } else if (bytes.size() - i == 2) {
    uint32_t v = (b(i) << 16) | (b(i + 1) << 8);
    out += kAlphabet[v >> 18];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
  }
  return out;
}

bool base64url_decode(std::string_view text, std::string& out) {
  out.clear();
  if (text.size() % 4 == 1) return false;
  out.reserve(text.size() * 3 / 4);
  uint32_t acc = 0;
  int bits = 0;
  for (char c : text) {
    int d = decode_char(c);
    if (d < 0) return false;
    acc = (acc << 6) | static_cast<uint32_t>(d);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xff);
    }
  }
  // The bits left over must be zero: one text per byte string (no malleable tokens).
  return (acc & ((1u << bits) - 1)) == 0;
}

// ---- Jwt ------------------------------------------------------------------------------------

JwtStatus Jwt::parse(std::string_view token, Jwt& out) {
  if (token.size() > kMaxJwtBytes) return JwtStatus::BadFormat;
  size_t dot1 = token.find('.');
  if (dot1 == std::string_view::npos) return JwtStatus::BadFormat;
  size_t dot2 = token.find('.', dot1 + 1);
  if (dot2 == std::string_view::npos || token.find('.', dot2 + 1) != std::string_view::npos)
    return JwtStatus::BadFormat;
  std::string_view header64 = token.substr(0, dot1);
  std::string_view payload64 = token.substr(dot1 + 1, dot2 - dot1 - 1);
  std::string_view signature64 = token.substr(dot2 + 1);

  std::string text;
  if (header64.empty() || !base64url_decode(header64, text)) return JwtStatus::HeaderBadBase64;
  auto header = json::parse(text);
  if (!header || !header->is_object()) return JwtStatus::HeaderBadJson;
  out.header = std::move(*header);
  const json::Value* alg = out.header.get("alg");
  if (alg == nullptr || !alg->is_string()) return JwtStatus::HeaderBadAlg;
  AlgInfo info;
  if (!alg_info(alg->string, info)) return JwtStatus::AlgNotSupported;
  out.alg = alg->string;
  if (const json::Value* kid = out.header.get("kid")) {
    if (!kid->is_string()) return JwtStatus::HeaderBadKid;
    out.kid = kid->string;
  }

  if (payload64.empty() || !base64url_decode(payload64, text)) return JwtStatus::PayloadBadBase64;
  auto payload = json::parse(text);
  if (!payload || !payload->is_object()) return JwtStatus::PayloadBadJson;
  out.payload = std::move(*payload);
  out.payload_base64url = std::string(payload64);
  const json::Value& p = out.payload;
  if (!string_claim(p, "iss", out.iss)) return JwtStatus::IssNotString;
  if (!string_claim(p, "sub", out.sub)) return JwtStatus::SubNotString;
  if (!integer_claim(p, "iat", out.iat)) return JwtStatus::IatNotInteger;
  if (!integer_claim(p, "nbf", out.nbf)) return JwtStatus::NbfNotInteger;
  if (!integer_claim(p, "exp", out.exp)) return JwtStatus::ExpNotInteger;
  if (const json::Value* aud = p.get("aud")) {
    if (aud->is_string()) {
      out.audiences.push_back(aud->string);
    } else if (aud->is_array()) {
      for (const json::Value& a : aud->array) {
        if (!a.is_string()) return JwtStatus::AudNotString;
        out.audiences.push_back(a.string);
      }
    } else {
      return JwtStatus::AudNotString;
    }
  }
  if (const std::string* azp = string_member(p, "azp")) out.azp = *azp;

  if (signature64.empty() || !base64url_decode(signature64, out.signature))
    return JwtStatus::SignatureBadBase64;
  out.signed_part = std::string(token.substr(0, dot2));
  return JwtStatus::Ok;
}

JwtStatus Jwt::check_time(int64_t now, int64_t skew) const {
  if (nbf != 0 && now + skew < nbf) return JwtStatus::NotYetValid;
  if (exp != 0 && now > exp + skew) return JwtStatus::Expired;
  return JwtStatus::Ok;
}

bool Jwt::audience_allowed(const std::vector<std::string>& allowed) const {
  if (allowed.empty()) return true;
  for (const auto& a : audiences)
    for (const auto& want : allowed)
      if (a == want) return true;
  return false;
}

// ---- Jwks -----------------------------------------------------------------------------------

Jwks::~Jwks() = default;

Result<JwksConstPtr> Jwks::parse(std::string_view text) {
  auto doc = json::parse(text);
  if (!doc) return make_error(Code::InvalidArgument, "not JSON: " + doc.error().message());
  if (!doc->is_object()) return make_error(Code::InvalidArgument, "not a JSON object");
  const json::Value* keys = doc->get("keys");
  if (keys == nullptr) return make_error(Code::InvalidArgument, "no \"keys\" member");
  if (!keys->is_array()) return make_error(Code::InvalidArgument, "\"keys\" is not an array");
  std::shared_ptr<Jwks> set(new Jwks());
  set->text_ = std::string(text);
  for (const json::Value& k : keys->array) {
    const std::string* kty = string_member(k, "kty");
    if (kty == nullptr) continue;
    Key key;
    if (const std::string* kid = string_member(k, "kid")) key.kid = *kid;
    if (const std::string* alg = string_member(k, "alg")) key.alg = *alg;
    if (*kty == "RSA") {
      if (!key.alg.empty() && !key.alg.starts_with("RS")) continue;
      const std::string* n64 = string_member(k, "n");
      const std::string* e64 = string_member(k, "e");
      if (n64 == nullptr || e64 == nullptr) continue;
      bssl::UniquePtr<BIGNUM> n = bignum(*n64), e = bignum(*e64);
      bssl::UniquePtr<RSA> rsa(RSA_new());
      if (!n || !e || !rsa || BN_is_zero(n.get()) || BN_is_zero(e.get())) continue;
      if (!RSA_set0_key(rsa.get(), n.get(), e.get(), nullptr)) continue;
      n.release();
      e.release();
      bssl::UniquePtr<EVP_PKEY> pkey(EVP_PKEY_new());
      if (!pkey || !EVP_PKEY_set1_RSA(pkey.get(), rsa.get())) continue;
      key.rsa = true;
      key.pkey = std::move(pkey);
    } else if (*kty == "EC") {
      if (!key.alg.empty() && !key.alg.starts_with("ES")) continue;
      const std::string* crv = string_member(k, "crv");
      if (crv == nullptr) continue;
      if (*crv == "P-256")
        key.curve_nid = NID_X9_62_prime256v1;
      else if (*crv == "P-384")
        key.curve_nid = NID_secp384r1;
      else
        continue;
      const std::string* x64 = string_member(k, "x");
      const std::string* y64 = string_member(k, "y");
      if (x64 == nullptr || y64 == nullptr) continue;
      bssl::UniquePtr<BIGNUM> x = bignum(*x64), y = bignum(*y64);
      bssl::UniquePtr<EC_KEY> ec(EC_KEY_new_by_curve_name(key.curve_nid));
      // Checks that the point is on the curve.
      if (!x || !y || !ec || !EC_KEY_set_public_key_affine_coordinates(ec.get(), x.get(), y.get()))
        continue;
      bssl::UniquePtr<EVP_PKEY> pkey(EVP_PKEY_new());
      if (!pkey || !EVP_PKEY_set1_EC_KEY(pkey.get(), ec.get())) continue;
      key.pkey = std::move(pkey);
    } else {
      continue;  // oct (HMAC), OKP, …: not accepted
    }
    set->keys_.push_back(std::move(key));
  }
  ERR_clear_error();  // keys skipped above may have left errors
  if (set->keys_.empty())
    return make_error(Code::InvalidArgument, "no usable key (RSA, or EC on P-256 or P-384)");
  return JwksConstPtr(std::move(set));
}

JwtStatus Jwks::verify(const Jwt& jwt) const {
  AlgInfo info;
  if (!alg_info(jwt.alg, info)) return JwtStatus::AlgNotSupported;
  bool fit = false;
  for (const Key& key : keys_) {
    if (!jwt.kid.empty() && !key.kid.empty() && key.kid != jwt.kid) continue;
    if (!key.alg.empty() && key.alg != jwt.alg) continue;
    if (key.rsa != info.rsa || (!key.rsa && key.curve_nid != info.curve_nid)) continue;
    fit = true;
    bool ok =
        key.rsa ? verify_rsa(key.pkey.get(), info.md, jwt) : verify_ec(key.pkey.get(), info, jwt);
    if (ok) return JwtStatus::Ok;
  }
  // A failed verification leaves errors on this thread's queue, where a later TLS call on the
  // same (worker) thread would find them.
  ERR_clear_error();
  return fit ? JwtStatus::VerificationFails : JwtStatus::KidAlgMismatch;
}

}  // namespace meshbox::tls
