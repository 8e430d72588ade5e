// Cipher suite names as Istio's ServerTLSSettings.cipher_suites gives them (OpenSSL names,
// "ECDHE-RSA-AES128-GCM-SHA256"; TLS 1.3 ones by their IANA names), checked against what
// BoringSSL knows and what meshbox allows: forward-secret AEAD suites only. Pure functions;
// any thread.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace meshbox::tls {

/// Why `name` cannot be used, or nullopt. Allowed: the TLS 1.2 suites with ECDHE key exchange
/// and AES-GCM or ChaCha20-Poly1305, and the three TLS 1.3 suites (always on in BoringSSL,
/// so naming them changes nothing).
std::optional<std::string> cipher_suite_error(std::string_view name);

/// True for a TLS 1.3 suite name ("TLS_AES_128_GCM_SHA256").
bool is_tls13_cipher_suite(std::string_view name);

/// The TLS 1.2 names of `names` joined with ':' (a cipher list in OpenSSL syntax), TLS 1.3
/// names left out; "" when none is left.
std::string tls12_cipher_list(std::span<const std::string> names);

}  // namespace meshbox::tls
