// Gateway TLS termination, control side: the TLS contexts of the gateway servers that
// terminate TLS (Istio's ServerTLSSettings SIMPLE, MUTUAL, OPTIONAL_MUTUAL), made from their
// certificate files and kept while the files stay the same, so that an unchanged config
// compiles to an equal snapshot.
//
// The compiler asks for each server's context (CompileOptions::server_tls) between
// begin_compile() and end_compile(); contexts no compile asked for are dropped. A poll (a
// stat() of each file every poll_ms: size, mtime, ctime, inode; nothing is read) notices a
// file that changed and calls `on_change`, and the compile that follows builds a new context;
// the workers take it with that snapshot, and connections made before keep theirs. A broken
// new file (unreadable, a key that does not match, an expired certificate) keeps the old
// context and is logged once, naming the file, never a key's bytes.
//
// Loop thread only (the control loop): files are read here, never on a worker.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/base/non_copyable.h"
#include "core/base/result.h"
#include "core/loop/loop.h"
#include "core/loop/timer.h"
#include "core/tls/tls_context.h"
#include "plane/config/error.h"
#include "plane/config/resources.h"

namespace meshbox::control {

/// The context settings of a gateway server's tls: certificate chain and key from their
/// files, client verification from ca_certificates and subject_alt_names, TLS 1.2+ (or
/// min/max_protocol_version), cipher_suites, ALPN http/1.1 for an https server. Reads the
/// files (blocking). The error names the file and what is wrong with it, never key material.
Result<tls::TlsContextSpec> server_tls_spec(const config::ServerTls& t, bool https);

/// `meshbox validate`: the certificate files of every gateway server that terminates TLS,
/// read and checked as the control plane will (missing, unreadable, not PEM, a key that does
/// not match its certificate, an expired certificate): one error per server, at the position
/// of the field naming the file at fault (server_certificate for a mismatch).
std::vector<config::ConfigError> check_gateway_tls_files(const config::Config& c);

class GatewayTls : NonCopyable {
 public:
  GatewayTls(loop::Loop& loop, std::function<void()> on_change, uint64_t poll_ms = 2'000);
  ~GatewayTls();

  void begin_compile();
  /// The context for `t` (CompileOptions::server_tls).
  Result<tls::TlsContextConstPtr> context(const config::ServerTls& t, bool https);
  void end_compile();
  /// Stops the poll.
  void stop();

 private:
  struct Entry {
    std::vector<std::string> files;
    std::string stamps;               // of the files when last read (built or failed)
    tls::TlsContextConstPtr context;  // the newest that built; null if none ever did
    std::string error;                // the last build's failure ("" when it built)
    bool used = false;
  };
  static std::string stamps_of(const std::vector<std::string>& files);
  void poll();

  loop::Loop& loop_;
  std::function<void()> on_change_;
  uint64_t poll_ms_;
  std::map<std::string, Entry> entries_;  // by the settings (file names included)
  std::unique_ptr<loop::Timer> timer_;
};

}  // namespace meshbox::control
