// Certificate: one X.509 certificate (BoringSSL X509) and what meshbox reads from it — the
// SPIFFE URI SAN, the validity, whether it is a CA, its fingerprint — plus PEM in and out
// and verification of a chain against roots. Building and signing: certificate_builder.h.
// Immutable after construction; copies share the X509 (reference counted) and may be read
// from any thread.
#pragma once

#include <openssl/x509.h>

#include <chrono>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/base/result.h"

namespace meshbox::tls {

class PrivateKey;

using Time = std::chrono::system_clock::time_point;

class Certificate {
 public:
  /// Takes ownership of `x509` (not null).
  explicit Certificate(bssl::UniquePtr<X509> x509) : x509_(std::move(x509)) {}
  /// The first certificate in `pem`; an error if there is none.
  static Result<Certificate> from_pem(std::string_view pem);
  /// Every certificate in `pem`, in order; an error if there is none or one does not parse.
  static Result<std::vector<Certificate>> all_from_pem(std::string_view pem);

  Certificate(const Certificate& other);
  Certificate& operator=(const Certificate& other);
  Certificate(Certificate&&) noexcept = default;
  Certificate& operator=(Certificate&&) noexcept = default;

  std::string to_pem() const;
  X509* native() const { return x509_.get(); }

  /// The URI SANs, in order.
  std::vector<std::string> uri_sans() const;
  /// The SPIFFE ID: the URI SAN when there is exactly one and it is a valid SPIFFE ID
  /// (X.509-SVID: one URI SAN); nullopt otherwise.
  std::optional<std::string> spiffe_id() const;
  Time not_before() const;
  Time not_after() const;
  /// basicConstraints CA:TRUE and, when keyUsage is present, keyCertSign.
  bool is_ca() const;
  /// Subject equals issuer and the signature verifies with the certificate's own key.
  bool self_signed() const;
  /// True if `issuer`'s subject and key identifier match this certificate's issuer and its
  /// key verifies this certificate's signature.
  bool issued_by(const Certificate& issuer) const;
  /// True if `key` is the private half of this certificate's public key.
  bool matches(const PrivateKey& key) const;
  /// RFC 2253 form: "CN=meshbox root CA,O=meshbox".
  std::string subject() const;
  /// SHA-256 of the DER, "AB:CD:…" as `openssl x509 -fingerprint -sha256` prints it.
  std::string sha256_fingerprint() const;
  /// The serial number in lowercase hex.
  std::string serial_hex() const;

  bool operator==(const Certificate& other) const;

 private:
  bssl::UniquePtr<X509> x509_;
};

/// Concatenated PEM of `certs`, in order.
std::string to_pem(std::span<const Certificate> certs);

/// Verifies that `leaf` chains to one of `roots` through `intermediates` (any order), each
/// certificate valid at `at` (default: now) and every issuer a CA. The error names the
/// certificate that failed and BoringSSL's reason ("certificate has expired").
Status verify_chain(const Certificate& leaf, std::span<const Certificate> intermediates,
                    std::span<const Certificate> roots, std::optional<Time> at = std::nullopt);

}  // namespace meshbox::tls
