// The mesh's call graph from Istio's metrics: GET /stats/edges, read by `meshbox top` and the
// dashboard (/ui). One edge per (source workload+version, destination workload+version,
// destination service), summed over response codes, flags and workers from the merged
// istio_requests_total and istio_request_duration_milliseconds families.
//
// Each call is counted once: the source's report (gateways and outbound sidecars) is used
// when there is one; a pair only its destination reported (a caller without a sidecar) falls
// back to that. Counters only grow: clients take rates and quantiles from the difference of
// two snapshots (core/stats/quantile.h). Control thread only (it merges the shards).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "core/stats/family.h"

namespace meshbox::control {

struct Edge {
  std::string source_workload, source_namespace, source_app, source_version;
  std::string destination_workload, destination_namespace, destination_app, destination_version;
  std::string destination_service;
  std::string reporter;  // "source" or "destination": whose counts these are
  uint64_t requests = 0;
  uint64_t errors = 0;  // 5xx responses
  /// Mutual TLS: the destination reported connection_security_policy="mutual_tls", or the
  /// source knew both principals (it only does over mTLS).
  bool mtls = false;
  double duration_sum_ms = 0;
  std::vector<uint64_t> duration_buckets;  // cumulative, one per bound and +Inf last
};

/// The edges of the families (either may be null: no edges, or no durations), sorted by
/// source then destination. A label the family lacks reads as "unknown".
std::vector<Edge> collect_edges(const stats::Family* requests, const stats::Family* duration);

/// {"timestamp_ms": …, "bounds": [0.5, 1, …], "edges": [{…}]}: `bounds` are the duration
/// histogram's finite upper bounds (milliseconds); each edge has the fields of Edge.
std::string edges_json(const std::vector<Edge>& edges, std::span<const double> bounds,
                       int64_t timestamp_ms);

}  // namespace meshbox::control
