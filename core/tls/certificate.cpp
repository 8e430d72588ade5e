#include "core/tls/certificate.h"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/digest.h>
#include <openssl/err.h>
#include <openssl/mem.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <cctype>

#include <fmt/format.h>

#include "core/tls/private_key.h"
#include "core/tls/spiffe.h"
#include "core/tls/ssl_error.h"

namespace meshbox::tls {

namespace {

// Keys and certificate bundles are a few KiB; more is not PEM meant for meshbox.
constexpr size_t kMaxPemBytes = 1 << 20;

std::string bio_string(BIO* bio) {
  const uint8_t* data = nullptr;
  size_t len = 0;
  BIO_mem_contents(bio, &data, &len);
  return std::string(reinterpret_cast<const char*>(data), len);
}

// ASN1_TIME → a time point. BoringSSL here has no ASN1_TIME_to_posix; the difference from
// the epoch gives the same.
Time to_time(const ASN1_TIME* t) {
  bssl::UniquePtr<ASN1_TIME> epoch(ASN1_TIME_set(nullptr, 0));
  int days = 0, seconds = 0;
  if (!t || !epoch || !ASN1_TIME_diff(&days, &seconds, epoch.get(), t)) {
    clear_ssl_errors();
    return Time{};
  }
  return Time{} + std::chrono::seconds(int64_t{days} * 86'400 + seconds);
}

// The certificates of a verification's untrusted set: a stack that does not own them.
struct X509Stack {
  X509Stack() : stack(sk_X509_new_null()) {}
  ~X509Stack() { sk_X509_free(stack); }
  X509Stack(const X509Stack&) = delete;
  X509Stack& operator=(const X509Stack&) = delete;
  STACK_OF(X509) * stack;
};

}  // namespace

Result<Certificate> Certificate::from_pem(std::string_view pem) {
  auto all = all_from_pem(pem);
  if (!all) return all.error();
  return std::move(all->front());
}

Result<std::vector<Certificate>> Certificate::all_from_pem(std::string_view pem) {
  clear_ssl_errors();
  if (pem.size() > kMaxPemBytes) return make_error(Code::InvalidArgument, "more than 1 MiB of PEM");
  bssl::UniquePtr<BIO> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) return ssl_error(Code::Internal, "cannot read certificates");
  std::vector<Certificate> out;
  while (X509* x = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr))
    out.emplace_back(bssl::UniquePtr<X509>(x));
  // The loop ends at the end of the text (no further BEGIN line) or at a bad certificate.
  uint32_t err = ERR_peek_last_error();
  if (ERR_GET_LIB(err) == ERR_LIB_PEM && ERR_GET_REASON(err) == PEM_R_NO_START_LINE) {
    clear_ssl_errors();
    if (out.empty())
      return make_error(Code::InvalidArgument, "no PEM certificate (\"BEGIN CERTIFICATE\") found");
    return out;
  }
  return ssl_error(Code::InvalidArgument,
                   fmt::format("certificate {} does not parse", out.size() + 1));
}

Certificate::Certificate(const Certificate& other) {
  *this = other;
}

Certificate& Certificate::operator=(const Certificate& other) {
  if (this != &other) {
    if (other.x509_) X509_up_ref(other.x509_.get());
    x509_.reset(other.x509_.get());
  }
  return *this;
}

std::string Certificate::to_pem() const {
  bssl::UniquePtr<BIO> bio(BIO_new(BIO_s_mem()));
  if (!bio || !PEM_write_bio_X509(bio.get(), x509_.get())) {
    clear_ssl_errors();
    return "";
  }
  return bio_string(bio.get());
}

std::vector<std::string> Certificate::uri_sans() const {
  std::vector<std::string> out;
  bssl::UniquePtr<GENERAL_NAMES> names(static_cast<GENERAL_NAMES*>(
      X509_get_ext_d2i(x509_.get(), NID_subject_alt_name, nullptr, nullptr)));
  if (!names) {
    clear_ssl_errors();
    return out;
  }
  for (size_t i = 0; i < sk_GENERAL_NAME_num(names.get()); ++i) {
    const GENERAL_NAME* gn = sk_GENERAL_NAME_value(names.get(), i);
    if (gn->type != GEN_URI) continue;
    const ASN1_IA5STRING* uri = gn->d.uniformResourceIdentifier;
    out.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(uri)),
                     static_cast<size_t>(ASN1_STRING_length(uri)));
  }
  return out;
}

std::optional<std::string> Certificate::spiffe_id() const {
  auto uris = uri_sans();
  if (uris.size() != 1 || !parse_spiffe_id(uris[0])) return std::nullopt;
  return uris[0];
}

Time Certificate::not_before() const {
  return to_time(X509_get0_notBefore(x509_.get()));
}

Time Certificate::not_after() const {
  return to_time(X509_get0_notAfter(x509_.get()));
}

bool Certificate::is_ca() const {
  // 1: basicConstraints CA:TRUE (and keyCertSign if keyUsage is there). 3, 4, 5 are the
  // legacy answers (v1 self-signed, Netscape cert types) that a CA of ours must not rely on.
  bool ca = X509_check_ca(x509_.get()) == 1;
  clear_ssl_errors();
  return ca;
}

bool Certificate::self_signed() const {
  return issued_by(*this);
}

bool Certificate::issued_by(const Certificate& issuer) const {
  if (X509_check_issued(issuer.x509_.get(), x509_.get()) != X509_V_OK) {
    clear_ssl_errors();
    return false;
  }
  bssl::UniquePtr<EVP_PKEY> key(X509_get_pubkey(issuer.x509_.get()));
  bool ok = key && X509_verify(x509_.get(), key.get()) == 1;
  clear_ssl_errors();
  return ok;
}

bool Certificate::matches(const PrivateKey& key) const {
  bool ok = key.native() && X509_check_private_key(x509_.get(), key.native()) == 1;
  clear_ssl_errors();
  return ok;
}

std::string Certificate::subject() const {
  bssl::UniquePtr<BIO> bio(BIO_new(BIO_s_mem()));
  if (!bio ||
      X509_NAME_print_ex(bio.get(), X509_get_subject_name(x509_.get()), 0, XN_FLAG_RFC2253) < 0) {
    clear_ssl_errors();
    return "";
  }
  return bio_string(bio.get());
}

std::string Certificate::sha256_fingerprint() const {
  uint8_t md[EVP_MAX_MD_SIZE];
  unsigned len = 0;
  if (!X509_digest(x509_.get(), EVP_sha256(), md, &len)) {
    clear_ssl_errors();
    return "";
  }
  std::string out;
  for (unsigned i = 0; i < len; ++i)
    out += fmt::format("{}{:02X}", i ? ":" : "", md[i]);
  return out;
}

std::string Certificate::serial_hex() const {
  bssl::UniquePtr<BIGNUM> bn(ASN1_INTEGER_to_BN(X509_get_serialNumber(x509_.get()), nullptr));
  char* hex = bn ? BN_bn2hex(bn.get()) : nullptr;
  if (!hex) {
    clear_ssl_errors();
    return "";
  }
  std::string out(hex);
  OPENSSL_free(hex);
  for (char& c : out)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool Certificate::operator==(const Certificate& other) const {
  return X509_cmp(x509_.get(), other.x509_.get()) == 0;
}

std::string to_pem(std::span<const Certificate> certs) {
  std::string out;
  for (const auto& c : certs)
    out += c.to_pem();
  return out;
}

Status verify_chain(const Certificate& leaf, std::span<const Certificate> intermediates,
                    std::span<const Certificate> roots, std::optional<Time> at) {
  clear_ssl_errors();
  if (roots.empty()) return make_error(Code::InvalidArgument, "no root certificate to trust");
  bssl::UniquePtr<X509_STORE> store(X509_STORE_new());
  bssl::UniquePtr<X509_STORE_CTX> ctx(X509_STORE_CTX_new());
  X509Stack untrusted;
  if (!store || !ctx || !untrusted.stack) return ssl_error(Code::Internal, "verify");
  for (const auto& r : roots)
    if (!X509_STORE_add_cert(store.get(), r.native()))
      return ssl_error(Code::Internal, "cannot add a root to the trust store");
  for (const auto& c : intermediates)
    if (!sk_X509_push(untrusted.stack, c.native())) return ssl_error(Code::Internal, "verify");
  if (!X509_STORE_CTX_init(ctx.get(), store.get(), leaf.native(), untrusted.stack))
    return ssl_error(Code::Internal, "verify");
  if (at) {
    X509_VERIFY_PARAM_set_time(X509_STORE_CTX_get0_param(ctx.get()),
                               std::chrono::system_clock::to_time_t(*at));
  }
  if (X509_verify_cert(ctx.get()) == 1) return Status::ok();
  int err = X509_STORE_CTX_get_error(ctx.get());
  X509* bad = X509_STORE_CTX_get_current_cert(ctx.get());
  std::string who = "the certificate";
  if (bad) {
    X509_up_ref(bad);
    who = "\"" + Certificate(bssl::UniquePtr<X509>(bad)).subject() + "\"";
  }
  clear_ssl_errors();
  return make_error(Code::InvalidArgument,
                    fmt::format("{}: {}", who, X509_verify_cert_error_string(err)));
}

}  // namespace meshbox::tls
