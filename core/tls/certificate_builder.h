// Building and signing X.509 v3 certificates: a CA's self-signed root, and the certificates
// it issues (intermediates, workload leaves). The serial is 159 random bits from BoringSSL's
// CSPRNG; the signature is ECDSA or RSA with SHA-256, as the issuer's key dictates. Every
// certificate gets basicConstraints (critical), keyUsage (critical) and a subject key id;
// issued ones an authority key id naming the issuer's. Pure functions; thread-agnostic.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "core/base/result.h"
#include "core/tls/certificate.h"
#include "core/tls/private_key.h"

namespace meshbox::tls {

struct CertificateSpec {
  /// Subject: O=organization, CN=common_name; either may be "" (left out). At most 64
  /// characters each (X.520's upper bound).
  std::string organization;
  std::string common_name;
  Time not_before;
  Time not_after;
  /// A CA: CA:TRUE, keyCertSign + cRLSign. Otherwise a leaf: CA:FALSE, digitalSignature,
  /// extKeyUsage serverAuth + clientAuth (one certificate for both ends of mTLS).
  bool is_ca = false;
  std::optional<int> path_length;     // CAs only: intermediates allowed below this one
  std::vector<std::string> uri_sans;  // "spiffe://cluster.local/ns/default/sa/reviews"
  std::vector<std::string> dns_sans;
};

/// Signs a certificate for `subject_key`'s public half. `issuer` null: self-signed, and
/// `issuer_key` must be `subject_key`; else `issuer_key` is the issuer's private key.
Result<Certificate> sign_certificate(const CertificateSpec& spec, const PrivateKey& subject_key,
                                     const Certificate* issuer, const PrivateKey& issuer_key);

}  // namespace meshbox::tls
