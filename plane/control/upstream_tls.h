// UpstreamTlsCache: the client TLS contexts of destination_rule tls (Istio's TLS origination,
// modes simple and mutual), made from the files the rule names and kept while the settings
// and the files stay the same, so that a recompile gives the same context (and an unchanged
// snapshot compares equal). The control plane polls files_changed() and recompiles when a
// certificate, key or CA file was replaced: the next snapshot carries new contexts.
// Loop thread only (the control loop: it reads files).
#pragma once

#include <map>
#include <string>
#include <vector>

#include "core/base/result.h"
#include "core/tls/tls_context.h"
#include "plane/config/resources.h"

namespace meshbox::control {

/// The CA bundle a destination rule without ca_certificates trusts (Debian's, as curl's).
inline constexpr const char* kSystemCaBundle = "/etc/ssl/certs/ca-certificates.crt";

class UpstreamTlsCache {
 public:
  /// The client context for `tls` (mode simple or mutual) to a server named `sni` (what the
  /// certificate must match when `tls` has no subject_alt_names): TLS 1.2+, the server's
  /// chain verified against ca_certificates (else kSystemCaBundle) unless
  /// insecure_skip_verify, mutual: the client_certificate and private_key. Errors name the
  /// file and what is wrong with it (never key bytes).
  Result<tls::TlsContextConstPtr> get(const config::ClientTls& tls, const std::string& sni);
  /// Some file a context was made from changed (size, modification time, or it appeared or
  /// went) since the context was made.
  bool files_changed() const;
  /// Starts a compile: entries not asked for by get() until the next sweep() are dropped then.
  void begin();
  void sweep();
  size_t size() const { return entries_.size(); }

 private:
  struct Entry {
    std::vector<std::string> files;
    std::string signature;  // of `files` when the entry was made
    Result<tls::TlsContextConstPtr> context = tls::TlsContextConstPtr();
    bool used = true;
  };
  static std::string signature(const std::vector<std::string>& files);
  static Result<tls::TlsContextConstPtr> build(const config::ClientTls& tls,
                                               const std::string& sni);

  std::map<std::string, Entry> entries_;  // by settings
};

}  // namespace meshbox::control
