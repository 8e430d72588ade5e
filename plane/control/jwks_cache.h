// JwksCache: the key sets of request_authentication jwks_uri rules, as istiod resolves them
// for its sidecars. file:///PATH is read on the control loop and read again when the file
// changes (checked every second); http:// and https:// are fetched asynchronously on the
// control loop (a one-shot HTTP/1.1 GET over TcpConn; https verified against the system CA
// bundle and the URI's host name), kept, refreshed every 20 minutes (Istio's default) and
// retried with backoff (1 s doubling to 5 min) after a failure, keeping the last good set.
// A fetch never blocks the loop. Whenever a set changes, `on_change` runs (the control plane
// recompiles). Loop thread only (the control loop).
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>

#include "core/base/non_copyable.h"
#include "core/dns/dns.h"
#include "core/loop/loop.h"
#include "core/loop/timer.h"
#include "core/tls/jwt.h"
#include "core/tls/tls_context.h"

namespace meshbox::control {

class JwksCache : NonCopyable {
 public:
  static constexpr uint64_t kRefreshMs = 20 * 60 * 1000;  // Istio's jwksResolver refresh
  static constexpr uint64_t kFirstRetryMs = 1'000;
  static constexpr uint64_t kMaxRetryMs = 5 * 60 * 1000;
  static constexpr uint64_t kFileCheckMs = 1'000;
  static constexpr size_t kMaxDocumentBytes = 1024 * 1024;

  JwksCache(loop::Loop& loop, dns::ResolverOptions dns, std::function<void()> on_change);
  ~JwksCache();

  /// The set for `uri` now, or null with the reason in `error` ("" = the first fetch is
  /// still running). The first call for a URI starts its fetch (a file is read at once).
  /// `timeout_ms`: of each fetch (connect to the end of the body).
  tls::JwksConstPtr get(const std::string& uri, uint64_t timeout_ms, std::string& error);
  /// Around a compile: URIs not asked for by get() between begin() and sweep() are dropped
  /// (their fetches cancelled).
  void begin();
  void sweep();

 private:
  struct Entry;
  class Fetch;
  void start_fetch(Entry& e);
  void on_fetched(Entry& e, Result<std::string> body);
  void read_file(Entry& e);
  void check_files();
  /// Runs on_change on a later iteration (coalesced): never inside a fetch's or a timer's own
  /// callback, where the recompile's sweep() could destroy the entry still in use.
  void notify() { notify_timer_.start(0); }
  Result<tls::TlsContextConstPtr> client_context(const std::string& host);

  loop::Loop& loop_;
  dns::Resolver resolver_;
  std::function<void()> on_change_;
  std::map<std::string, std::unique_ptr<Entry>> entries_;  // by URI
  loop::Timer file_timer_;
  loop::Timer notify_timer_;
  std::map<std::string, tls::TlsContextConstPtr> contexts_;  // https: by host
};

}  // namespace meshbox::control
