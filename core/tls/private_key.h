// PrivateKey: an asymmetric key pair (BoringSSL EVP_PKEY) — made here as ECDSA P-256, or read
// from PEM (EC or RSA, as an operator's CA key may be). The key never leaves as a plain
// string: to_pem() returns a SecretString (core/tls/secret.h).
// Immutable after construction; copies share the key (reference counted), so a copy may be
// used from another thread (BoringSSL signs with a shared key safely).
#pragma once

#include <openssl/evp.h>

#include <string>
#include <string_view>

#include "core/base/result.h"
#include "core/tls/secret.h"

namespace meshbox::tls {

class PrivateKey {
 public:
  /// A fresh ECDSA P-256 key from BoringSSL's CSPRNG.
  static Result<PrivateKey> generate_p256();
  /// The first private key in `pem`: PKCS#8 ("PRIVATE KEY"), "EC PRIVATE KEY" or
  /// "RSA PRIVATE KEY". Encrypted keys are refused (there is no one to ask for a passphrase).
  static Result<PrivateKey> from_pem(std::string_view pem);

  PrivateKey(const PrivateKey& other);
  PrivateKey& operator=(const PrivateKey& other);
  PrivateKey(PrivateKey&&) noexcept = default;
  PrivateKey& operator=(PrivateKey&&) noexcept = default;

  /// Unencrypted PKCS#8 PEM ("-----BEGIN PRIVATE KEY-----"), what OpenSSL and Envoy read.
  SecretString to_pem() const;
  /// "ECDSA P-256", "RSA 2048": for messages; says nothing secret.
  std::string describe() const;
  EVP_PKEY* native() const { return key_.get(); }

 private:
  explicit PrivateKey(bssl::UniquePtr<EVP_PKEY> key) : key_(std::move(key)) {}
  bssl::UniquePtr<EVP_PKEY> key_;
};

}  // namespace meshbox::tls
