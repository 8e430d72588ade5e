#include "core/tls/cipher_suites.h"

#include <openssl/err.h>
#include <openssl/nid.h>
#include <openssl/ssl.h>

#include <algorithm>

namespace meshbox::tls {

namespace {

constexpr std::string_view kTls13Suites[] = {"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384",
                                             "TLS_CHACHA20_POLY1305_SHA256"};

}  // namespace

bool is_tls13_cipher_suite(std::string_view name) {
  return std::find(std::begin(kTls13Suites), std::end(kTls13Suites), name) !=
         std::end(kTls13Suites);
}

std::optional<std::string> cipher_suite_error(std::string_view name) {
  if (is_tls13_cipher_suite(name)) return std::nullopt;
  std::string n(name);
  // OpenSSL's list syntax would take "ALL", "!aNULL", "A:B" or "[A|B]": one name only here.
  bool plain = !n.empty() && std::all_of(n.begin(), n.end(), [](unsigned char c) {
    return (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
  });
  if (!plain) return "\"" + n + "\" is not a cipher suite name (one name per entry)";
  bssl::UniquePtr<SSL_CTX> ctx(SSL_CTX_new(TLS_method()));
  if (!ctx) return "out of memory";
  bool known = SSL_CTX_set_strict_cipher_list(ctx.get(), n.c_str()) == 1;
  ERR_clear_error();
  STACK_OF(SSL_CIPHER)* list = known ? SSL_CTX_get_ciphers(ctx.get()) : nullptr;
  if (!list || sk_SSL_CIPHER_num(list) != 1) return n + " is not a cipher suite BoringSSL knows";
  const SSL_CIPHER* c = sk_SSL_CIPHER_value(list, 0);
  int kx = SSL_CIPHER_get_kx_nid(c);
  int cipher = SSL_CIPHER_get_cipher_nid(c);
  bool modern =
      kx == NID_kx_ecdhe && SSL_CIPHER_is_aead(c) &&
      (cipher == NID_aes_128_gcm || cipher == NID_aes_256_gcm || cipher == NID_chacha20_poly1305);
  if (!modern)
    return n +
           " is not allowed: meshbox takes ECDHE with AES-GCM or CHACHA20-POLY1305 (TLS 1.2) "
           "and the TLS 1.3 suites";
  return std::nullopt;
}

std::string tls12_cipher_list(std::span<const std::string> names) {
  std::string out;
  for (const std::string& n : names) {
    if (is_tls13_cipher_suite(n)) continue;
    if (!out.empty()) out += ':';
    out += n;
  }
  return out;
}

}  // namespace meshbox::tls
