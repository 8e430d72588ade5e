#include "core/tls/private_key.h"

#include <openssl/bio.h>
#include <openssl/ec.h>
#include <openssl/ec_key.h>
#include <openssl/nid.h>
#include <openssl/pem.h>

#include <fmt/format.h>

#include "core/tls/ssl_error.h"

namespace meshbox::tls {

namespace {

// Keys and certificate bundles are a few KiB; more is not PEM meant for meshbox.
constexpr size_t kMaxPemBytes = 1 << 20;
// PEM's passphrase callback: there is no passphrase, so an encrypted key fails to decrypt
// instead of prompting on a terminal.
int no_passphrase(char*, int, int, void*) {
  return 0;
}
}  // namespace

Result<PrivateKey> PrivateKey::generate_p256() {
  bssl::UniquePtr<EC_KEY> ec(EC_KEY_new_by_curve_name(NID_X9_62_prime256v1));
  if (!ec || !EC_KEY_generate_key(ec.get()))
    return ssl_error(Code::Internal, "cannot generate an ECDSA P-256 key");
  bssl::UniquePtr<EVP_PKEY> key(EVP_PKEY_new());
  if (!key || !EVP_PKEY_assign_EC_KEY(key.get(), ec.get()))
    return ssl_error(Code::Internal, "cannot generate an ECDSA P-256 key");
  ec.release();  // owned by `key` now
  return PrivateKey(std::move(key));
}

Result<PrivateKey> PrivateKey::from_pem(std::string_view pem) {
  clear_ssl_errors();
  if (pem.size() > kMaxPemBytes) return make_error(Code::InvalidArgument, "more than 1 MiB of PEM");
  bssl::UniquePtr<BIO> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) return ssl_error(Code::Internal, "cannot read a private key");
  bssl::UniquePtr<EVP_PKEY> key(
      PEM_read_bio_PrivateKey(bio.get(), nullptr, no_passphrase, nullptr));
  if (!key) {
    if (pem.find("ENCRYPTED") != std::string_view::npos) {
      clear_ssl_errors();
      return make_error(Code::InvalidArgument,
                        "the private key is encrypted; meshbox reads unencrypted keys only "
                        "(keep the file mode 0600)");
    }
    return ssl_error(Code::InvalidArgument, "not a PEM private key");
  }
  return PrivateKey(std::move(key));
}

PrivateKey::PrivateKey(const PrivateKey& other) : key_(nullptr) {
  *this = other;
}

PrivateKey& PrivateKey::operator=(const PrivateKey& other) {
  if (this != &other) {
    if (other.key_) EVP_PKEY_up_ref(other.key_.get());
    key_.reset(other.key_.get());
  }
  return *this;
}

SecretString PrivateKey::to_pem() const {
  bssl::UniquePtr<BIO> bio(BIO_new(BIO_s_mem()));
  if (!bio || !key_ ||
      !PEM_write_bio_PKCS8PrivateKey(bio.get(), key_.get(), nullptr, nullptr, 0, nullptr,
                                     nullptr)) {
    clear_ssl_errors();
    return SecretString();
  }
  const uint8_t* data = nullptr;
  size_t len = 0;
  BIO_mem_contents(bio.get(), &data, &len);
  // BoringSSL zeroes the BIO's buffer when it frees it (OPENSSL_free cleanses).
  return SecretString(std::string(reinterpret_cast<const char*>(data), len));
}

std::string PrivateKey::describe() const {
  if (!key_) return "no key";
  switch (EVP_PKEY_id(key_.get())) {
    case EVP_PKEY_EC: {
      const EC_KEY* ec = EVP_PKEY_get0_EC_KEY(key_.get());
      int nid = ec ? EC_GROUP_get_curve_name(EC_KEY_get0_group(ec)) : NID_undef;
      if (nid == NID_X9_62_prime256v1) return "ECDSA P-256";
      if (nid == NID_secp384r1) return "ECDSA P-384";
      if (nid == NID_secp521r1) return "ECDSA P-521";
      return "ECDSA";
    }
    case EVP_PKEY_RSA:
      return fmt::format("RSA {}", EVP_PKEY_bits(key_.get()));
    case EVP_PKEY_ED25519:
      return "Ed25519";
    default:
      return "an unknown key type";
  }
}

}  // namespace meshbox::tls
