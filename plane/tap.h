// Tap: the live requests of one service, as `meshbox tap` streams them (GET /tap on the admin
// API, after `linkerd viz tap`). The admin API starts a session with a filter; the data plane
// (plane/data/tap.h) copies every finished request that matches into a TapEvent and hands it
// to the session on the control loop. Sessions cost the proxy nothing while none is open,
// and a session that falls behind loses events rather than slow a request.
//
// TapFilter and TapEvent are plain values (any thread); TapSource is Loop thread only (the
// control loop).
#pragma once

#include <cstdint>
#include <functional>
#include <string>

namespace meshbox {

/// What a session wants: the requests to and from `service`'s workloads — those its inbound
/// sidecars served (reporter "destination") and those its outbound sidecars sent (reporter
/// "source") — narrowed by path prefix and method.
struct TapFilter {
  std::string service;      // a service's short name ("reviews") or host; never empty
  std::string path_prefix;  // "" = any; else the path (query included) starts with it
  std::string method;       // "" = any; else exactly ("GET")
};

/// One request as a tap shows it: a compact copy of the proxy's RequestRecord.
struct TapEvent {
  uint64_t start_unix_us = 0;  // the request head arrived
  uint64_t duration_us = 0;    // → the response's last byte
  int worker = 0;
  std::string reporter;  // "source" (an outbound sidecar) or "destination" (inbound)
  std::string method, authority, path, protocol, request_id;
  int status = 0;     // 0 = no response was sent
  std::string flags;  // Envoy's response flags, "-" when none
  uint64_t request_bytes = 0, response_bytes = 0;
  std::string route, upstream_host;
  // Istio's sides of the call: the caller and the callee (service: the destination's host).
  std::string source_workload, source_namespace, source_principal;
  std::string destination_workload, destination_namespace, destination_principal;
  std::string destination_service;
  bool mtls = false;
};

/// Where tap sessions are opened: the process's workers (cli/runtime.h), through
/// control::SnapshotSink::tap(). Loop thread only (the control loop).
class TapSource {
 public:
  using Sink = std::function<void(const TapEvent&)>;
  virtual ~TapSource() = default;
  /// Opens a session: `sink` gets every matching request, on the control loop, until stop().
  /// Returns the session's id (never 0).
  virtual uint64_t start(TapFilter filter, Sink sink) = 0;
  /// Closes a session (unknown ids are ignored); safe from inside its sink.
  virtual void stop(uint64_t session) = 0;
  /// Sessions open now.
  virtual size_t sessions() const = 0;
  /// Matching requests never delivered: over a worker's rate limit (kMaxEventsPerSecond).
  virtual uint64_t dropped() const = 0;
};

}  // namespace meshbox
