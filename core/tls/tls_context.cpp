#include "core/tls/tls_context.h"

#include <openssl/bytestring.h>
#include <openssl/pool.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <cctype>
#include <mutex>

#include "core/base/assert.h"
#include "core/tls/spiffe.h"
#include "core/tls/ssl_error.h"
#include "core/tls/tls_transport.h"

namespace meshbox::tls {

namespace {

// TLS 1.2 only (1.3 suites are fixed in BoringSSL): ECDHE + AEAD, ECDSA before RSA,
// AES-128 first (as fast as AES-256 with AES-NI and enough), ChaCha20 for CPUs without it.
constexpr const char* kModernCiphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

uint16_t protocol_version(TlsVersion v) {
  return v == TlsVersion::Tls13 ? TLS1_3_VERSION : TLS1_2_VERSION;
}

std::string lowercase(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

// A DNS name as SNI carries it: labels of letters, digits, '-' and '_'; "*." allowed first.
bool valid_server_name(std::string_view name) {
  if (name.starts_with("*.")) name.remove_prefix(2);
  if (name.empty() || name.size() > 253 || name.front() == '.' || name.back() == '.') return false;
  return std::all_of(name.begin(), name.end(), [](unsigned char c) {
    return std::isalnum(c) || c == '-' || c == '.' || c == '_';
  });
}

bssl::UniquePtr<CRYPTO_BUFFER> to_buffer(const Certificate& cert) {
  uint8_t* der = nullptr;
  int len = i2d_X509(cert.native(), &der);
  if (len <= 0) return nullptr;
  bssl::UniquePtr<CRYPTO_BUFFER> buf(CRYPTO_BUFFER_new(der, static_cast<size_t>(len), nullptr));
  OPENSSL_free(der);
  return buf;
}

}  // namespace

Result<TlsIdentity> identity_from_pem(std::string_view chain_pem, std::string_view key_pem,
                                      std::vector<std::string> server_names) {
  auto chain = Certificate::all_from_pem(chain_pem);
  if (!chain)
    return make_error(Code::InvalidArgument, "certificate chain: " + chain.error().message());
  auto key = PrivateKey::from_pem(key_pem);
  if (!key) return make_error(Code::InvalidArgument, "private key: " + key.error().message());
  if (!chain->front().matches(*key))
    return make_error(Code::InvalidArgument,
                      "the private key does not match the certificate " + chain->front().subject());
  return TlsIdentity{std::move(*chain), std::move(*key), std::move(server_names)};
}

std::string_view to_string(TlsVersion v) {
  return v == TlsVersion::Tls13 ? "TLSv1.3" : "TLSv1.2";
}

// One identity, ready for SSL_set_chain_and_key: the chain as DER buffers, shared (reference
// counted) with every connection that uses it, so choosing it costs no parsing.
struct TlsContext::Identity {
  std::vector<bssl::UniquePtr<CRYPTO_BUFFER>> chain;
  std::vector<CRYPTO_BUFFER*> raw;  // chain's pointers, as BoringSSL takes them
  PrivateKey key;
};

// A client's sessions, one per key (the newest wins). A mutex, not per-worker maps: a
// session made on one worker resumes on another, and the lock is taken once per new
// upstream connection (and per ticket received), next to a handshake's cost.
class TlsContext::SessionCache {
 public:
  explicit SessionCache(size_t capacity) : capacity_(std::max<size_t>(capacity, 1)) {}

  bssl::UniquePtr<SSL_SESSION> find(const std::string& key) const {
    std::lock_guard lock(mu_);
    auto it = map_.find(key);
    if (it == map_.end()) return nullptr;
    SSL_SESSION_up_ref(it->second.get());
    return bssl::UniquePtr<SSL_SESSION>(it->second.get());
  }
  void store(const std::string& key, bssl::UniquePtr<SSL_SESSION> s) {
    bssl::UniquePtr<SSL_SESSION> old;  // freed outside the lock
    std::lock_guard lock(mu_);
    auto it = map_.find(key);
    if (it != map_.end()) {
      old = std::exchange(it->second, std::move(s));
      return;
    }
    if (map_.size() >= capacity_) {
      // Any entry: the cache is a convenience, and the evicted upstream just does a full
      // handshake next time.
      old = std::move(map_.begin()->second);
      map_.erase(map_.begin());
    }
    map_.emplace(key, std::move(s));
  }
  size_t size() const {
    std::lock_guard lock(mu_);
    return map_.size();
  }

 private:
  size_t capacity_;
  mutable std::mutex mu_;
  std::unordered_map<std::string, bssl::UniquePtr<SSL_SESSION>> map_;  // guarded by mu_
};

TlsContext::TlsContext() = default;
TlsContext::~TlsContext() = default;

Result<TlsContextConstPtr> TlsContext::create(const TlsContextSpec& spec) {
  std::shared_ptr<TlsContext> ctx(new TlsContext());
  if (Status s = ctx->build(spec); !s) return s;
  return TlsContextConstPtr(std::move(ctx));
}

size_t TlsContext::identity_for(std::string_view sni) const {
  if (sni.empty()) return 0;
  if (auto it = exact_names_.find(std::string(sni)); it != exact_names_.end()) return it->second;
  auto dot = sni.find('.');
  if (dot != std::string_view::npos && dot > 0) {
    auto it = wildcard_names_.find(std::string(sni.substr(dot + 1)));
    if (it != wildcard_names_.end()) return it->second;
  }
  return 0;
}

bool TlsContext::peer_san_allowed(X509* cert) const {
  if (peer_sans_.empty()) return true;
  bssl::UniquePtr<GENERAL_NAMES> names(
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr)));
  if (!names) return false;
  auto wanted = [&](std::string_view v) {
    return std::find(peer_sans_.begin(), peer_sans_.end(), v) != peer_sans_.end();
  };
  for (size_t i = 0; i < sk_GENERAL_NAME_num(names.get()); ++i) {
    const GENERAL_NAME* gn = sk_GENERAL_NAME_value(names.get(), i);
    if (gn->type != GEN_DNS && gn->type != GEN_URI) continue;
    const ASN1_IA5STRING* s = gn->type == GEN_DNS ? gn->d.dNSName : gn->d.uniformResourceIdentifier;
    std::string_view v(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                       static_cast<size_t>(ASN1_STRING_length(s)));
    if (gn->type == GEN_URI) {
      if (wanted(v)) return true;
      continue;
    }
    std::string dns = lowercase(v);
    if (wanted(dns)) return true;
    // A wildcard certificate name covers one label: "*.example.com" → "a.example.com".
    if (dns.starts_with("*.")) {
      std::string_view suffix = std::string_view(dns).substr(1);  // ".example.com"
      for (const std::string& w : peer_sans_) {
        size_t dot = w.find('.');
        if (dot != std::string::npos && dot > 0 && std::string_view(w).substr(dot) == suffix)
          return true;
      }
    }
  }
  return false;
}

bool TlsContext::peer_id_allowed(std::string_view id) const {
  if (peer_ids_.empty()) return true;
  return std::find(peer_ids_.begin(), peer_ids_.end(), id) != peer_ids_.end();
}

bssl::UniquePtr<SSL_SESSION> TlsContext::find_session(const std::string& key) const {
  if (!sessions_ || key.empty()) return nullptr;
  auto s = sessions_->find(key);
  if (s && !SSL_SESSION_is_resumable(s.get())) return nullptr;
  return s;
}

void TlsContext::store_session(const std::string& key, bssl::UniquePtr<SSL_SESSION> s) const {
  if (sessions_ && !key.empty()) sessions_->store(key, std::move(s));
}

size_t TlsContext::cached_sessions_for_test() const {
  return sessions_ ? sessions_->size() : 0;
}

bool TlsContext::use_identity(SSL* ssl, size_t i) const {
  const Identity& id = identities_[i];
  return SSL_set_chain_and_key(ssl, id.raw.data(), id.raw.size(), id.key.native(), nullptr) == 1;
}

Status TlsContext::build(const TlsContextSpec& spec) {
  using Role = TlsContextSpec::Role;
  server_ = spec.role == Role::Server;
  server_name_ = lowercase(spec.server_name);
  verify_server_name_ = spec.verify_server_name;
  resumption_ = spec.session_resumption;

  // --- Check the spec.
  if (server_ && spec.identities.empty())
    return make_error(Code::InvalidArgument, "a TLS server needs a certificate");
  if (!server_ && spec.identities.size() > 1)
    return make_error(Code::InvalidArgument, "a TLS client shows at most one certificate");
  bool verifies = server_ ? spec.client_certs != ClientCertMode::None : spec.verify_peer;
  if (verifies && spec.trusted_roots.empty())
    return make_error(Code::InvalidArgument,
                      server_ ? "a TLS server that asks for client certificates needs trusted roots"
                              : "a TLS client needs trusted roots to verify its server");
  if (!verifies && !spec.peer_spiffe_ids.empty())
    return make_error(
        Code::InvalidArgument,
        "peer SPIFFE IDs need client certificates (client_certs = request or require)");
  if (spec.min_version > spec.max_version)
    return make_error(Code::InvalidArgument, "TLS min version is above the max version");
  for (const auto& id : spec.peer_spiffe_ids) {
    auto parsed = parse_spiffe_id(id);
    if (!parsed)
      return make_error(Code::InvalidArgument, "peer SPIFFE ID: " + parsed.error().message());
  }
  peer_ids_ = spec.peer_spiffe_ids;
  if (server_ && !verifies && !spec.peer_subject_alt_names.empty())
    return make_error(Code::InvalidArgument,
                      "peer subject alt names need client certificates (client_certs = request "
                      "or require)");
  for (const std::string& san : spec.peer_subject_alt_names) {
    if (san.empty()) return make_error(Code::InvalidArgument, "an empty subject alt name");
    // URIs are compared as they are, DNS names without regard to case.
    peer_sans_.push_back(san.find(':') != std::string::npos ? san : lowercase(san));
  }
  if (!server_name_.empty() && !valid_server_name(server_name_))
    return make_error(Code::InvalidArgument,
                      "TLS server name \"" + server_name_ + "\" is not a DNS name");
  if (!verifies) verify_server_name_ = false;  // insecure: nothing is checked
  if (verify_server_name_ && server_name_.empty())
    return make_error(Code::InvalidArgument, "verify_server_name needs a server name");

  for (size_t i = 0; i < spec.identities.size(); ++i) {
    const TlsIdentity& in = spec.identities[i];
    std::string which = "certificate " + std::to_string(i + 1);
    if (in.chain.empty()) return make_error(Code::InvalidArgument, which + ": no certificate");
    if (!in.chain[0].matches(in.key))
      return make_error(Code::InvalidArgument, which + " (" + in.chain[0].subject() +
                                                   "): the private key does not match it");
    Identity id{{}, {}, in.key};
    for (const Certificate& c : in.chain) {
      auto buf = to_buffer(c);
      if (!buf) return ssl_error(Code::Internal, which + ": DER encoding");
      id.raw.push_back(buf.get());
      id.chain.push_back(std::move(buf));
    }
    identities_.push_back(std::move(id));
    if (!server_ && !in.server_names.empty())
      return make_error(Code::InvalidArgument, which + ": server_names are for servers");
    for (const std::string& raw : in.server_names) {
      std::string name = lowercase(raw);
      if (!valid_server_name(name))
        return make_error(Code::InvalidArgument,
                          which + ": \"" + raw + "\" is not a DNS name or *.suffix");
      auto& table = name.starts_with("*.") ? wildcard_names_ : exact_names_;
      std::string key = name.starts_with("*.") ? name.substr(2) : name;
      if (!table.emplace(key, i).second)
        return make_error(Code::InvalidArgument, "server name \"" + raw + "\" is given twice");
    }
  }
  for (const std::string& p : spec.alpn)
    if (p.empty() || p.size() > 255)
      return make_error(Code::InvalidArgument, "ALPN protocol ids are 1 to 255 bytes");

  // --- Build the SSL_CTX.
  ctx_.reset(SSL_CTX_new(TLS_method()));
  MB_CHECK(ctx_ != nullptr);  // allocation only
  SSL_CTX* ctx = ctx_.get();
  SSL_CTX_set_min_proto_version(ctx, protocol_version(spec.min_version));
  SSL_CTX_set_max_proto_version(ctx, protocol_version(spec.max_version));
  const std::string& ciphers =
      spec.cipher_list.empty() ? std::string(kModernCiphers) : spec.cipher_list;
  if (!SSL_CTX_set_strict_cipher_list(ctx, ciphers.c_str()))
    return ssl_error(Code::InvalidArgument, "TLS cipher list \"" + ciphers + "\"");

  if (!identities_.empty()) {
    const Identity& first = identities_[0];
    if (!SSL_CTX_set_chain_and_key(ctx, first.raw.data(), first.raw.size(), first.key.native(),
                                   nullptr))
      return ssl_error(Code::InvalidArgument, "certificate 1");
  }
  if (server_ && identities_.size() > 1) {
    // After the ClientHello is parsed (SNI known), before the certificate is sent.
    SSL_CTX_set_cert_cb(
        ctx,
        [](SSL* ssl, void* arg) -> int {
          auto* self = static_cast<const TlsContext*>(arg);
          const char* sni = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
          size_t i = self->identity_for(sni ? lowercase(sni) : std::string());
          return i == 0 || self->use_identity(ssl, i) ? 1 : 0;
        },
        this);
  }

  if (verifies) {
    X509_STORE* store = SSL_CTX_get_cert_store(ctx);
    for (const Certificate& root : spec.trusted_roots)
      if (!X509_STORE_add_cert(store, root.native()))
        return ssl_error(Code::InvalidArgument, "trusted root " + root.subject());
    int mode = SSL_VERIFY_PEER;
    if (server_ && spec.client_certs == ClientCertMode::Require)
      mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
    SSL_CTX_set_verify(ctx, mode, nullptr);
    // BoringSSL's chain verification (purpose: sslserver for a client, sslclient for a
    // server; the name check when the client asked for one), then the SPIFFE ID.
    SSL_CTX_set_cert_verify_callback(
        ctx,
        [](X509_STORE_CTX* store_ctx, void* arg) -> int {
          auto* self = static_cast<const TlsContext*>(arg);
          if (X509_verify_cert(store_ctx) != 1) return 0;
          X509* leaf = X509_STORE_CTX_get0_cert(store_ctx);
          if (!self->peer_san_allowed(leaf)) {
            auto* ssl = static_cast<SSL*>(
                X509_STORE_CTX_get_ex_data(store_ctx, SSL_get_ex_data_X509_STORE_CTX_idx()));
            if (TlsTransport* t = TlsTransport::from(ssl)) {
              std::string want;
              for (const auto& n : self->peer_sans_)
                want += (want.empty() ? "" : ", ") + n;
              t->note_verify_failure(std::string(self->server_ ? "the client" : "the server") +
                                     " certificate has none of the subject alt names "
                                     "expected (" +
                                     want + ")");
            }
            X509_STORE_CTX_set_error(store_ctx, X509_V_ERR_APPLICATION_VERIFICATION);
            return 0;
          }
          if (self->peer_ids_.empty()) return 1;
          X509_up_ref(leaf);
          Certificate cert{bssl::UniquePtr<X509>(leaf)};
          auto id = cert.spiffe_id();
          if (id && self->peer_id_allowed(*id)) return 1;
          auto* ssl = static_cast<SSL*>(
              X509_STORE_CTX_get_ex_data(store_ctx, SSL_get_ex_data_X509_STORE_CTX_idx()));
          if (TlsTransport* t = TlsTransport::from(ssl)) {
            std::string want;
            for (const auto& p : self->peer_ids_)
              want += (want.empty() ? "" : ", ") + p;
            t->note_verify_failure("peer SPIFFE ID " + (id ? *id : std::string("(none)")) +
                                   " is not the one expected (" + want + ")");
          }
          X509_STORE_CTX_set_error(store_ctx, X509_V_ERR_APPLICATION_VERIFICATION);
          return 0;
        },
        this);
  } else {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
  }

  if (!spec.alpn.empty()) {
    std::string wire;
    for (const std::string& p : spec.alpn) {
      wire.push_back(static_cast<char>(p.size()));
      wire += p;
    }
    if (server_) {
      // Kept in the context: the callback picks the server's first protocol the client offers.
      alpn_wire_ = std::move(wire);
      SSL_CTX_set_alpn_select_cb(
          ctx,
          [](SSL*, const uint8_t** out, uint8_t* out_len, const uint8_t* in, unsigned in_len,
             void* arg) -> int {
            auto* self = static_cast<const TlsContext*>(arg);
            const auto* ours = reinterpret_cast<const uint8_t*>(self->alpn_wire_.data());
            size_t ours_len = self->alpn_wire_.size();
            for (size_t i = 0; i < ours_len; i += 1 + ours[i]) {
              for (unsigned j = 0; j < in_len; j += 1u + in[j]) {
                if (j + 1u + in[j] > in_len) break;  // malformed list: stop there
                if (in[j] == ours[i] && std::equal(in + j + 1, in + j + 1 + in[j], ours + i + 1)) {
                  *out = in + j + 1;
                  *out_len = in[j];
                  return SSL_TLSEXT_ERR_OK;
                }
              }
            }
            return SSL_TLSEXT_ERR_NOACK;
          },
          this);
    } else if (SSL_CTX_set_alpn_protos(ctx, reinterpret_cast<const uint8_t*>(wire.data()),
                                       wire.size()) != 0) {
      return ssl_error(Code::InvalidArgument, "ALPN list");
    }
  }

  if (server_) {
    // Resumption by tickets only (stateless: no locked server-side cache); BoringSSL makes
    // the ticket key and rotates it every 48 hours. The session id context binds a ticket
    // to this verification setup.
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    if (!resumption_) {
      SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
      SSL_CTX_set_num_tickets(ctx, 0);
    }
    SHA256_CTX sha;
    SHA256_Init(&sha);
    uint8_t mode = static_cast<uint8_t>(spec.client_certs);
    SHA256_Update(&sha, &mode, 1);
    for (const Certificate& root : spec.trusted_roots) {
      std::string fp = root.sha256_fingerprint();
      SHA256_Update(&sha, fp.data(), fp.size());
    }
    for (const std::string& id : peer_ids_)
      SHA256_Update(&sha, id.data(), id.size() + 1);
    for (const std::string& san : peer_sans_)  // a ticket never skips a stricter SAN check
      SHA256_Update(&sha, san.data(), san.size() + 1);
    uint8_t sid_ctx[SHA256_DIGEST_LENGTH];
    SHA256_Final(sid_ctx, &sha);
    SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof sid_ctx);
  } else if (resumption_) {
    sessions_ = std::make_unique<SessionCache>(spec.session_cache_size);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL);
    SSL_CTX_sess_set_new_cb(ctx, [](SSL* ssl, SSL_SESSION* session) -> int {
      TlsTransport* t = TlsTransport::from(ssl);
      if (!t || t->session_key().empty()) return 0;
      auto* self = static_cast<const TlsContext*>(SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl)));
      self->store_session(t->session_key(), bssl::UniquePtr<SSL_SESSION>(session));
      return 1;  // we took the reference
    });
  } else {
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
  }
  SSL_CTX_set_app_data(ctx, this);
  return Status::ok();
}

}  // namespace meshbox::tls
