// ClusterStatus: what a cluster is doing right now — its circuit breakers' counters, its
// endpoints' upstream connections summed over every worker, and their outlier-detection
// state — as the admin API shows it (GET /clusters). Envoy's /clusters, as plain values:
// the data plane fills them in (SharedClusters::status(), plane/data/shared_cluster.h) when
// the control thread asks (SnapshotSink::cluster_status()); nobody holds on to them.
// Plain values; any thread.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace meshbox {

struct EndpointStatus {
  std::string address;  // "IP:PORT", as in EndpointSpec
  // Upstream connections of every worker's pools. HTTP/1.1 carries one request per
  // connection, so the busy ones are the requests in flight to the endpoint.
  uint32_t active_requests = 0;     // connections connecting or carrying a request
  uint32_t active_connections = 0;  // open or connecting: busy + idle
  uint32_t idle_connections = 0;    // open, waiting in a keep-alive pool
  // Outlier detection (OutlierSpec): ejected now, for how much longer, when the last
  // ejection began (-1: never ejected), the ejection count that sets the next ejection's
  // length (it decays by one per interval un-ejected) and the errors in a row so far.
  bool ejected = false;
  uint64_t ejection_left_ms = 0;
  int64_t last_ejection_ms_ago = -1;
  uint32_t ejections = 0;
  uint32_t consecutive_5xx = 0;
  uint32_t consecutive_gateway_errors = 0;
};

struct ClusterStatus {
  std::string name;
  // Circuit breakers (CircuitBreakerSpec), process-wide: what counts against each limit now.
  uint32_t active_requests = 0;
  uint32_t pending_requests = 0;  // waiting for a connection (at max_connections)
  uint32_t active_connections = 0;
  uint32_t active_retries = 0;
  uint64_t overflows = 0;                 // requests failed fast at a limit (503 UO) since start
  uint64_t ejections_total = 0;           // outlier ejections since start
  std::vector<EndpointStatus> endpoints;  // every endpoint the workers have used, by address
};

}  // namespace meshbox
