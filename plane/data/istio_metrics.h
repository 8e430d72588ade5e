// Istio's standard metrics, recorded from the telemetry seam (telemetry.h): the names, the
// labels in Istio's order and Envoy's default histogram buckets that Istio's Grafana
// dashboards and PromQL queries expect (reference: docs/observability.md, "Metrics").
//
//   istio_requests_total                 counter    one per HTTP request, at its end
//   istio_request_duration_milliseconds  histogram  request head → last response byte out
//   istio_request_bytes                  histogram  request body bytes
//   istio_response_bytes                 histogram  response body bytes
//   istio_tcp_connections_opened_total   counter    a tcp listener's connection routed
//   istio_tcp_connections_closed_total   counter    … closed
//   istio_tcp_received_bytes_total       counter    bytes from the client (at close)
//   istio_tcp_sent_bytes_total           counter    bytes to the client (at close)
//
// IstioMetrics creates the families in a registry (control thread, before the workers
// start); each worker then records through its own MetricsObserver, into its own shard: no
// lock, no atomic read-modify-write (core/stats/shard.h).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <unordered_map>

#include "core/stats/registry.h"
#include "plane/data/telemetry.h"

namespace meshbox::data {

class IstioMetrics {
 public:
  /// Creates the families in `registry` (whose shard i is worker i's).
  explicit IstioMetrics(stats::Registry& registry);

  stats::Family& requests;
  stats::Family& duration;
  stats::Family& request_bytes;
  stats::Family& response_bytes;
  stats::Family& tcp_opened;
  stats::Family& tcp_closed;
  stats::Family& tcp_received;
  stats::Family& tcp_sent;
  // meshbox's own: requests each worker served (label `worker`), for its load.
  stats::Family& worker_requests;
};

/// One worker's recorder. Loop thread of worker `shard` only.
class MetricsObserver : public TelemetryObserver {
 public:
  MetricsObserver(IstioMetrics& metrics, size_t shard);

  void on_request(const RequestRecord& r) override;
  void on_connection_opened(const ConnectionRecord& r) override;
  void on_connection(const ConnectionRecord& r) override;

 private:
  const std::string& flags_text(const ResponseFlags& flags);

  // The request's other three series, found once per label set: the four families share
  // their labels, so one lookup (istio_requests_total's) finds them all.
  struct HttpSeries {
    stats::Histogram duration, request_bytes, response_bytes;
  };

  // The last label sets recorded, with their series, by what the 25 labels are made of (the
  // reporter, the peers' identities, the cluster's service, the code, the flags, mTLS: 13
  // strings and 4 numbers): a request with the same as one of them (most do: a connection's
  // requests differ in little but their code) skips making the labels, hashing them and the
  // four lookups. The values decide, never a pointer.
  struct Scalars {
    ListenerSpec::Reporter reporter = ListenerSpec::Reporter::None;
    int status = -1;  // never a record's: an unused entry matches nothing
    uint32_t flags = 0;
    bool mtls = false;
    bool operator==(const Scalars&) const = default;
  };
  struct Recent {
    stats::LabelCopy inputs;  // the 13 strings
    Scalars scalars;
    stats::Counter requests;
    HttpSeries* series = nullptr;
  };
  std::array<Recent, 4> recent_;
  size_t next_recent_ = 0;

  IstioMetrics& m_;
  size_t shard_;
  stats::Counter worker_requests_;
  std::unordered_map<uint32_t, std::string> flag_texts_;  // by ResponseFlags::bits()
  // By istio_requests_total's series (its cell). Bounded: at most the family's cap of label
  // sets per shard, plus its overflow series.
  std::unordered_map<const stats::Cell*, HttpSeries> http_series_;
};

}  // namespace meshbox::data
