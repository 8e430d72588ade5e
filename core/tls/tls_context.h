// TlsContext: one TLS configuration — a server's certificates chosen by SNI, or a client's
// certificate, the roots a peer must chain to, the SPIFFE IDs it may carry, versions, ALPN —
// built once from a TlsContextSpec into a BoringSSL SSL_CTX and never changed after (a
// rotation builds a new one). Connections take it through TlsTransport (tls_transport.h).
//
// Immutable after publish: shared between workers as TlsContextConstPtr. The one mutable part
// is a client's session cache (resumption), which locks inside; BoringSSL's own state (the
// server's session-ticket keys, rotated every 48 hours) is thread-safe too. Build it on the
// control thread; like any snapshot object, let it die there.
//
// Fixed choices: no renegotiation (BoringSSL clients refuse it, servers never offer it); TLS
// 1.2 ciphers are ECDHE with AES-GCM or ChaCha20-Poly1305 only (forward secret AEADs, the
// TLS 1.2 part of Mozilla's "intermediate" list); TLS 1.3 uses BoringSSL's fixed suites
// (AES-128/256-GCM, ChaCha20-Poly1305); key exchange groups are BoringSSL's defaults
// (X25519, P-256, P-384).
#pragma once

#include <openssl/ssl.h>

#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/base/non_copyable.h"
#include "core/base/result.h"
#include "core/tls/certificate.h"
#include "core/tls/private_key.h"

namespace meshbox::tls {

enum class TlsVersion { Tls12, Tls13 };
/// "TLSv1.2", "TLSv1.3".
std::string_view to_string(TlsVersion v);

/// What a server asks of its clients.
enum class ClientCertMode {
  None,     // no certificate requested
  Request,  // asked for; verified against the roots if sent, the handshake goes on without
  Require,  // asked for and required (mutual TLS)
};

/// A certificate chain and its key. The key is a PrivateKey: it never reaches a log line.
struct TlsIdentity {
  std::vector<Certificate> chain;  // leaf first, then intermediates (not the root)
  PrivateKey key;
  /// Server only: the SNI names this identity answers, exact ("api.example.com") or one
  /// wildcard label ("*.example.com" matches "a.example.com", not "a.b.example.com" nor
  /// "example.com"). Case-insensitive.
  std::vector<std::string> server_names;
};

/// An identity from PEM, as a gateway's certificate files hold it: the chain (leaf first)
/// and its key; the error says which part is wrong (never the key's bytes). Reading the files
/// is the caller's (control thread: no file I/O on a worker).
Result<TlsIdentity> identity_from_pem(std::string_view chain_pem, std::string_view key_pem,
                                      std::vector<std::string> server_names = {});

struct TlsContextSpec {
  enum class Role { Server, Client };
  Role role = Role::Server;

  /// Server: at least one. An exact SNI match wins over a wildcard; without a match (or
  /// without SNI) the first identity answers. Client: none, or the one certificate it
  /// shows when the server asks.
  std::vector<TlsIdentity> identities;

  /// The roots a peer's chain must reach (its intermediates come from the peer). Required
  /// for a client (there is no unverified mode) and for a server that asks for certificates.
  std::vector<Certificate> trusted_roots;
  /// Server only.
  ClientCertMode client_certs = ClientCertMode::None;
  /// The peer's SPIFFE ID (its one URI SAN) must be one of these; empty: any, once the
  /// chain verifies. Checked on every full handshake; a resumed session was checked when
  /// it was made (the session cache is per context, so under the same list).
  std::vector<std::string> peer_spiffe_ids;

  TlsVersion min_version = TlsVersion::Tls12;  // the mesh uses Tls13
  TlsVersion max_version = TlsVersion::Tls13;
  /// ALPN protocol ids ("h2", "http/1.1"). Server: its preference order; a client offering
  /// none of them gets no ALPN (not an alert). Client: what it offers.
  std::vector<std::string> alpn;

  /// Client: the SNI to send ("" = none; per connection: TlsClientOptions).
  std::string server_name;
  /// Client: also check the server certificate's DNS SANs against the SNI (gateways
  /// originating TLS to the outside; the mesh checks SPIFFE IDs instead).
  bool verify_server_name = false;
  /// Client: the server certificate must carry one of these subject alternative names: a DNS
  /// name (the certificate's "*.example.com" covers "a.example.com") or a URI, compared
  /// exactly (Istio's destination_rule subject_alt_names). Empty: no SAN check here.
  /// Server asking for client certificates: the same of the client's certificate (Istio's
  /// gateway server subject_alt_names).
  std::vector<std::string> peer_subject_alt_names;
  /// Client: false skips every check of the server's certificate (Istio's
  /// insecure_skip_verify): the connection is encrypted but the server unauthenticated.
  /// trusted_roots, verify_server_name and the SAN list are then ignored.
  bool verify_peer = true;

  /// Client: cache sessions and offer them again (TLS 1.3 tickets). Server: issue tickets.
  bool session_resumption = true;
  /// Client: the most sessions kept (one per key).
  size_t session_cache_size = 1024;
  /// TLS 1.2 cipher list in OpenSSL syntax; "" = the modern list above.
  std::string cipher_list;
};

class TlsContext;
using TlsContextConstPtr = std::shared_ptr<const TlsContext>;

class TlsContext : NonCopyable {
 public:
  /// Checks the spec (each key matches its leaf, roots where verification needs them, the
  /// ALPN ids, the SPIFFE IDs) and builds the SSL_CTX. The error says what is wrong.
  static Result<TlsContextConstPtr> create(const TlsContextSpec& spec);
  ~TlsContext();

  bool is_server() const { return server_; }
  SSL_CTX* native() const { return ctx_.get(); }
  const std::string& server_name() const { return server_name_; }
  bool verify_server_name() const { return verify_server_name_; }
  bool session_resumption() const { return resumption_; }

  /// Server: the identity for `sni` (lowercase expected; "" = none sent).
  size_t identity_for(std::string_view sni) const;
  /// Whether `id` is acceptable as the peer's SPIFFE ID.
  bool peer_id_allowed(std::string_view id) const;
  const std::vector<std::string>& peer_spiffe_ids() const { return peer_ids_; }
  /// Whether `cert` carries one of TlsContextSpec::peer_subject_alt_names (true when the
  /// list is empty).
  bool peer_san_allowed(X509* cert) const;

  // Client session cache (thread-safe; used by TlsTransport).
  bssl::UniquePtr<SSL_SESSION> find_session(const std::string& key) const;
  void store_session(const std::string& key, bssl::UniquePtr<SSL_SESSION> session) const;
  size_t cached_sessions_for_test() const;

  /// Server: puts identity `i` on `ssl` (from the certificate callback).
  bool use_identity(SSL* ssl, size_t i) const;

 private:
  struct Identity;
  class SessionCache;
  TlsContext();
  Status build(const TlsContextSpec& spec);

  bool server_ = true;
  bssl::UniquePtr<SSL_CTX> ctx_;
  std::vector<Identity> identities_;
  std::unordered_map<std::string, size_t> exact_names_;     // "api.example.com" → identity
  std::unordered_map<std::string, size_t> wildcard_names_;  // "example.com" (from "*.") → identity
  std::vector<std::string> peer_ids_;
  // Lower-case DNS names and URIs.
  std::vector<std::string> peer_sans_;
  std::string alpn_wire_;  // server: its ALPN ids in wire format, in preference order
  std::string server_name_;
  bool verify_server_name_ = false;
  bool resumption_ = true;
  std::unique_ptr<SessionCache> sessions_;  // client with resumption only
};

}  // namespace meshbox::tls
