// Telemetry's seam: what a finished request or TCP connection was, handed to the observers
// (metrics, access log, tap) on its worker's thread. A record only borrows: every view points
// into the connection or its snapshot and is valid during the call only; an observer that
// keeps anything copies it. Observers never block: they record into per-worker storage or
// queue bytes for a writer.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "plane/data/local_reply.h"
#include "plane/snapshot.h"

namespace meshbox::trace {
struct SpanContext;
}

namespace meshbox::data {

/// Response flags of one request or connection: a set of ResponseFlag, printed as Envoy's
/// short names joined by commas ("-" when none).
class ResponseFlags {
 public:
  void add(ResponseFlag f) {
    if (f != ResponseFlag::None) bits_ |= 1u << static_cast<unsigned>(f);
  }
  bool has(ResponseFlag f) const { return bits_ & (1u << static_cast<unsigned>(f)); }
  bool empty() const { return bits_ == 0; }
  void clear() { bits_ = 0; }
  uint32_t bits() const { return bits_; }
  /// "UF,URX" or "-".
  std::string to_string() const;

 private:
  uint32_t bits_ = 0;
};

/// One side of a call: its workload, namespace, labels and principal. Empty = unknown.
struct PeerView {
  std::string_view workload, ns, app, version, principal;
};

/// One HTTP request, as it ended (a response sent, a local reply, or a reset).
struct RequestRecord {
  const ListenerSpec* listener = nullptr;  // never null
  uint64_t start_unix_us = 0;              // wall clock: the request head arrived
  uint64_t duration_us = 0;                // start → the response's last byte was written
  /// start → the response head went out (time to first byte); 0 = none was sent.
  uint64_t response_start_us = 0;
  std::string_view method, path, authority, protocol;  // protocol: "HTTP/1.1", "HTTP/1.0"
  std::string_view request_id, user_agent, forwarded_for;
  int status = 0;  // 0 = no response was sent (reset, client gone)
  ResponseFlags flags;
  uint64_t request_body_bytes = 0, response_body_bytes = 0;
  std::string_view route_name;           // "" = no route
  const ClusterSpec* cluster = nullptr;  // null = no cluster chosen
  std::string_view upstream_host;        // "ip:port" of the last try's endpoint; "" = none
  std::string_view downstream_remote;    // "ip:port" of the client
  /// Istio's sides: the source is the caller, the destination the callee. For a listener
  /// that reports as the source, `source` is its own workload and `destination` the
  /// endpoint's; as the destination, the reverse (source from mTLS and peer metadata).
  PeerView source, destination;
  bool mtls = false;  // the downstream connection (destination) or the upstream one (source)
  uint32_t retries = 0;
  /// The request's span on a traced listener (ListenerSpec::tracing), sampled or not;
  /// null when the listener does not trace.
  const trace::SpanContext* trace = nullptr;
};

/// One TCP proxy connection of a tcp listener, as it closed (a CONNECT or Upgrade tunnel is
/// not one: its HTTP request is recorded; nor is a captured connection to a service's
/// virtual IP, which has no listener of its own).
struct ConnectionRecord {
  const ListenerSpec* listener = nullptr;
  uint64_t start_unix_us = 0, duration_us = 0;
  uint64_t received_bytes = 0;  // from the client
  uint64_t sent_bytes = 0;      // to the client
  ResponseFlags flags;
  const ClusterSpec* cluster = nullptr;
  std::string upstream_host, downstream_remote;
  PeerView source, destination;
  bool mtls = false;
};

/// Something that wants every finished request or connection of one worker. Called on the
/// worker's thread; must not block.
class TelemetryObserver {
 public:
  virtual ~TelemetryObserver() = default;
  virtual void on_request(const RequestRecord& r) = 0;
  /// A TCP proxy connection was routed and its upstream is being connected (bytes 0).
  virtual void on_connection_opened(const ConnectionRecord&) {}
  /// It closed.
  virtual void on_connection(const ConnectionRecord&) {}
  /// The worker stops (its connections are closed): release what holds its loop (timers),
  /// after writing out what is buffered. Records may still come, rarely.
  virtual void on_stop() {}
};

/// A worker's observers. Loop thread only (observers are added before the worker starts).
class Telemetry {
 public:
  void add(TelemetryObserver* o) { observers_.push_back(o); }
  bool empty() const { return observers_.empty(); }
  void request(const RequestRecord& r) {
    for (TelemetryObserver* o : observers_)
      o->on_request(r);
  }
  void connection_opened(const ConnectionRecord& r) {
    for (TelemetryObserver* o : observers_)
      o->on_connection_opened(r);
  }
  void connection(const ConnectionRecord& r) {
    for (TelemetryObserver* o : observers_)
      o->on_connection(r);
  }
  void stop() {
    for (TelemetryObserver* o : observers_)
      o->on_stop();
  }

 private:
  std::vector<TelemetryObserver*> observers_;
};

/// The x-meshbox-peer header (Istio's metadata exchange, x-envoy-peer-metadata): an outbound
/// sidecar or gateway tells the inbound sidecar who is calling, for its source_* labels.
/// "WORKLOAD;NAMESPACE;APP;VERSION", each field with '%' and ';' percent-encoded.
inline constexpr std::string_view kPeerHeader = "x-meshbox-peer";
std::string encode_peer(const PeerMetadata& m);
/// The fields of a header value, decoded into `out` (false: malformed; `out` is then empty).
bool decode_peer(std::string_view value, PeerMetadata& out);

/// Microseconds since the Unix epoch (CLOCK_REALTIME).
uint64_t unix_now_us();

}  // namespace meshbox::data
