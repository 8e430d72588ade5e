#include "core/tls/certificate_builder.h"

#include <openssl/asn1.h>
#include <openssl/bn.h>
#include <openssl/digest.h>
#include <openssl/sha.h>
#include <openssl/x509v3.h>

#include <fmt/format.h>

#include "core/tls/ssl_error.h"

namespace meshbox::tls {

namespace {

constexpr size_t kMaxNameLength = 64;  // ub-common-name, ub-organization-name

Status fail(std::string_view what) {
  return ssl_error(Code::Internal, fmt::format("cannot build the certificate: {}", what));
}

// RFC 5280 §5.2 caps a serial at 20 octets and wants it positive; 159 random bits are both,
// and unguessable (the CA/Browser Forum asks for at least 64).
Status set_random_serial(X509* x) {
  bssl::UniquePtr<BIGNUM> bn(BN_new());
  if (!bn || !BN_rand(bn.get(), 159, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY)) return fail("serial");
  if (BN_is_zero(bn.get()) && !BN_one(bn.get())) return fail("serial");
  if (!BN_to_ASN1_INTEGER(bn.get(), X509_get_serialNumber(x))) return fail("serial");
  return Status::ok();
}

Status set_time(X509* x, Time t, bool before) {
  bssl::UniquePtr<ASN1_TIME> at(ASN1_TIME_set(nullptr, std::chrono::system_clock::to_time_t(t)));
  if (!at) return fail("validity");
  int ok = before ? X509_set1_notBefore(x, at.get()) : X509_set1_notAfter(x, at.get());
  return ok ? Status::ok() : fail("validity");
}

Status add_name_entry(X509_NAME* name, const char* field, const std::string& value) {
  if (value.empty()) return Status::ok();
  if (value.size() > kMaxNameLength)
    return make_error(Code::InvalidArgument,
                      fmt::format("the subject's {} has {} characters; at most {}", field,
                                  value.size(), kMaxNameLength));
  if (!X509_NAME_add_entry_by_txt(name, field, MBSTRING_UTF8,
                                  reinterpret_cast<const uint8_t*>(value.data()),
                                  static_cast<int>(value.size()), -1, 0))
    return fail("subject");
  return Status::ok();
}

// RFC 5280 §4.2.1.2 method (1): SHA-1 of the subjectPublicKey BIT STRING.
bssl::UniquePtr<ASN1_OCTET_STRING> key_id(X509* x) {
  const ASN1_BIT_STRING* bits = X509_get0_pubkey_bitstr(x);
  if (!bits) return nullptr;
  uint8_t md[SHA_DIGEST_LENGTH];
  SHA1(ASN1_STRING_get0_data(bits), static_cast<size_t>(ASN1_STRING_length(bits)), md);
  bssl::UniquePtr<ASN1_OCTET_STRING> id(ASN1_OCTET_STRING_new());
  if (!id || !ASN1_OCTET_STRING_set(id.get(), md, sizeof md)) return nullptr;
  return id;
}

Status add_basic_constraints(X509* x, const CertificateSpec& spec) {
  bssl::UniquePtr<BASIC_CONSTRAINTS> bc(BASIC_CONSTRAINTS_new());
  if (!bc) return fail("basicConstraints");
  bc->ca = spec.is_ca ? 0xff : 0;  // ASN1_BOOLEAN: 0xff is TRUE
  if (spec.is_ca && spec.path_length) {
    bc->pathlen = ASN1_INTEGER_new();
    if (!bc->pathlen || !ASN1_INTEGER_set(bc->pathlen, *spec.path_length))
      return fail("basicConstraints");
  }
  if (!X509_add1_ext_i2d(x, NID_basic_constraints, bc.get(), /*crit=*/1, X509V3_ADD_DEFAULT))
    return fail("basicConstraints");
  return Status::ok();
}

Status add_key_usage(X509* x, const CertificateSpec& spec) {
  bssl::UniquePtr<ASN1_BIT_STRING> ku(ASN1_BIT_STRING_new());
  if (!ku) return fail("keyUsage");
  // Bit numbers from RFC 5280 §4.2.1.3.
  constexpr int kDigitalSignature = 0, kKeyCertSign = 5, kCrlSign = 6;
  bool ok = spec.is_ca ? ASN1_BIT_STRING_set_bit(ku.get(), kKeyCertSign, 1) &&
                             ASN1_BIT_STRING_set_bit(ku.get(), kCrlSign, 1)
                       : ASN1_BIT_STRING_set_bit(ku.get(), kDigitalSignature, 1);
  if (!ok || !X509_add1_ext_i2d(x, NID_key_usage, ku.get(), 1, X509V3_ADD_DEFAULT))
    return fail("keyUsage");
  if (spec.is_ca) return Status::ok();
  bssl::UniquePtr<EXTENDED_KEY_USAGE> eku(sk_ASN1_OBJECT_new_null());
  if (!eku || !sk_ASN1_OBJECT_push(eku.get(), OBJ_nid2obj(NID_server_auth)) ||
      !sk_ASN1_OBJECT_push(eku.get(), OBJ_nid2obj(NID_client_auth)) ||
      !X509_add1_ext_i2d(x, NID_ext_key_usage, eku.get(), 0, X509V3_ADD_DEFAULT))
    return fail("extKeyUsage");
  return Status::ok();
}

Status add_general_name(GENERAL_NAMES* names, int type, const std::string& value) {
  bssl::UniquePtr<GENERAL_NAME> gn(GENERAL_NAME_new());
  bssl::UniquePtr<ASN1_IA5STRING> s(ASN1_IA5STRING_new());
  if (!gn || !s || !ASN1_STRING_set(s.get(), value.data(), static_cast<int>(value.size())))
    return fail("subjectAltName");
  GENERAL_NAME_set0_value(gn.get(), type, s.release());
  if (!sk_GENERAL_NAME_push(names, gn.get())) return fail("subjectAltName");
  gn.release();  // owned by `names`
  return Status::ok();
}

Status add_subject_alt_names(X509* x, const CertificateSpec& spec) {
  if (spec.uri_sans.empty() && spec.dns_sans.empty()) return Status::ok();
  for (const auto& v : spec.uri_sans)
    for (char c : v)
      if (static_cast<unsigned char>(c) < 0x21 || static_cast<unsigned char>(c) > 0x7e)
        return make_error(Code::InvalidArgument, "a URI SAN holds printable ASCII only");
  bssl::UniquePtr<GENERAL_NAMES> names(sk_GENERAL_NAME_new_null());
  if (!names) return fail("subjectAltName");
  for (const auto& uri : spec.uri_sans)
    MB_TRY(add_general_name(names.get(), GEN_URI, uri));
  for (const auto& dns : spec.dns_sans)
    MB_TRY(add_general_name(names.get(), GEN_DNS, dns));
  // Critical when the subject is empty (RFC 5280 §4.2.1.6).
  bool critical = spec.organization.empty() && spec.common_name.empty();
  if (!X509_add1_ext_i2d(x, NID_subject_alt_name, names.get(), critical, X509V3_ADD_DEFAULT))
    return fail("subjectAltName");
  return Status::ok();
}

Status add_key_ids(X509* x, X509* issuer) {
  bssl::UniquePtr<ASN1_OCTET_STRING> ski = key_id(x);
  if (!ski || !X509_add1_ext_i2d(x, NID_subject_key_identifier, ski.get(), 0, X509V3_ADD_DEFAULT))
    return fail("subjectKeyIdentifier");
  // The issuer's own subject key id when it has one (an operator's CA may have used another
  // method than SHA-1); computed from its key otherwise. Self-signed: our own.
  bssl::UniquePtr<ASN1_OCTET_STRING> issuer_id;
  if (!issuer) {
    issuer_id.reset(ASN1_OCTET_STRING_dup(ski.get()));
  } else if (const ASN1_OCTET_STRING* id = X509_get0_subject_key_id(issuer)) {
    issuer_id.reset(ASN1_OCTET_STRING_dup(id));
  } else {
    issuer_id = key_id(issuer);
  }
  bssl::UniquePtr<AUTHORITY_KEYID> akid(AUTHORITY_KEYID_new());
  if (!issuer_id || !akid) return fail("authorityKeyIdentifier");
  akid->keyid = issuer_id.release();
  if (!X509_add1_ext_i2d(x, NID_authority_key_identifier, akid.get(), 0, X509V3_ADD_DEFAULT))
    return fail("authorityKeyIdentifier");
  return Status::ok();
}

}  // namespace

Result<Certificate> sign_certificate(const CertificateSpec& spec, const PrivateKey& subject_key,
                                     const Certificate* issuer, const PrivateKey& issuer_key) {
  clear_ssl_errors();
  if (!subject_key.native() || !issuer_key.native())
    return make_error(Code::InvalidArgument, "no key to certify or to sign with");
  if (spec.not_after <= spec.not_before)
    return make_error(Code::InvalidArgument, "the certificate would expire before it starts");
  if (issuer && !issuer->matches(issuer_key))
    return make_error(Code::InvalidArgument, "the signing key does not match the issuer");
  if (!issuer && EVP_PKEY_cmp(subject_key.native(), issuer_key.native()) != 1) {
    clear_ssl_errors();
    return make_error(Code::InvalidArgument, "a self-signed certificate is signed by its own key");
  }
  bssl::UniquePtr<X509> x(X509_new());
  if (!x || !X509_set_version(x.get(), X509_VERSION_3)) return fail("version");
  MB_TRY(set_random_serial(x.get()));
  X509_NAME* subject = X509_get_subject_name(x.get());
  MB_TRY(add_name_entry(subject, "O", spec.organization));
  MB_TRY(add_name_entry(subject, "CN", spec.common_name));
  if (!X509_set_issuer_name(x.get(), issuer ? X509_get_subject_name(issuer->native()) : subject))
    return fail("issuer");
  MB_TRY(set_time(x.get(), spec.not_before, true));
  MB_TRY(set_time(x.get(), spec.not_after, false));
  if (!X509_set_pubkey(x.get(), subject_key.native())) return fail("public key");
  MB_TRY(add_basic_constraints(x.get(), spec));
  MB_TRY(add_key_usage(x.get(), spec));
  MB_TRY(add_subject_alt_names(x.get(), spec));
  MB_TRY(add_key_ids(x.get(), issuer ? issuer->native() : nullptr));
  if (!X509_sign(x.get(), issuer_key.native(), EVP_sha256()))
    return ssl_error(Code::Internal, "cannot sign the certificate");
  return Certificate(std::move(x));
}

}  // namespace meshbox::tls
