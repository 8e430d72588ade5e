// SharedCluster: the state of one cluster that every worker shares — Envoy's circuit breakers
// (its resource manager) and outlier detector. Everything else about a cluster is per worker
// (ClusterState: pools, balancer); these two must see the traffic of all workers, since a
// limit of one connection or five errors in a row means one connection and five errors for
// the whole process.
//
// Thread-safe. The counters are atomics (one atomic add per request on the hot path); the
// outlier detector takes its mutex only when an endpoint crosses a threshold. Kept by cluster
// name in SharedClusters across snapshots, so a push that keeps a cluster keeps its counters
// and its ejections.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "plane/cluster_status.h"
#include "plane/snapshot.h"

namespace meshbox::data {

/// Milliseconds on a clock every thread shares (CLOCK_MONOTONIC): ejection deadlines are
/// compared by all workers, whose loop clocks differ.
uint64_t shared_now_ms();

/// One worker's upstream connections to one endpoint (its pools' counts), for the admin API.
/// Written by that worker only, with a relaxed load and store (no read-modify-write: the
/// request path never waits for another core), summed on the control thread. A cache line
/// each, so two workers never write the same line.
struct alignas(64) EndpointLoad {
  std::atomic<uint32_t> busy{0};  // connecting or carrying a request
  std::atomic<uint32_t> idle{0};  // open, in the keep-alive pool
};

/// One endpoint's outlier-detection state, shared by the workers, and each worker's
/// connections to it. Its address is stable while its SharedCluster lives.
struct EndpointHealth {
  explicit EndpointHealth(size_t workers = 1)
      : workers(workers ? workers : 1), load(std::make_unique<EndpointLoad[]>(this->workers)) {}

  std::atomic<uint32_t> consecutive_5xx{0};
  std::atomic<uint32_t> consecutive_gateway{0};
  std::atomic<uint64_t> ejected_until_ms{0};  // 0 = never ejected
  std::atomic<uint64_t> ejected_at_ms{0};     // when the last ejection began; 0 = never
  const size_t workers;
  const std::unique_ptr<EndpointLoad[]> load;  // one per worker, by Worker::id()
  // Under SharedCluster's mutex:
  uint32_t ejections = 0;          // times ejected, decayed by one per interval un-ejected
  uint64_t last_ejection_end = 0;  // when the last ejection ended

  bool ejected(uint64_t now_ms) const {
    return now_ms < ejected_until_ms.load(std::memory_order_relaxed);
  }
  /// Worker `worker`'s cell (the last one for an id past the count; never happens).
  EndpointLoad* load_of(size_t worker) { return &load[worker < workers ? worker : workers - 1]; }
};

class SharedClusters;

class SharedCluster {
 public:
  enum class Outcome {
    Success,       // a response below 500
    Status5xx,     // a 5xx from the upstream (gateway error if 502, 503 or 504)
    LocalFailure,  // connect failure, reset, timeout: a gateway error (Envoy counts a 503)
  };

  SharedCluster(SharedClusters& owner, std::string name) : owner_(owner), name_(std::move(name)) {}

  // ---- circuit breakers: false at the limit (the caller fails fast, or waits if pending).
  bool try_open_connection(uint32_t max) { return try_add(connections_, max); }
  void close_connection();
  bool try_add_pending(uint32_t max) { return try_add(pending_, max); }
  void remove_pending() { pending_.fetch_sub(1, std::memory_order_relaxed); }
  bool try_start_request(uint32_t max) { return try_add(requests_, max); }
  void end_request() { requests_.fetch_sub(1, std::memory_order_relaxed); }
  /// A retry may start if fewer than `max` are in flight and the retry budget allows: at most
  /// 20 % of the requests in flight, and always at least 3 (Envoy's retry budget defaults).
  bool try_start_retry(uint32_t max);
  void end_retry() { retries_.fetch_sub(1, std::memory_order_relaxed); }

  uint32_t connections() const { return connections_.load(std::memory_order_relaxed); }
  uint32_t pending() const { return pending_.load(std::memory_order_relaxed); }
  uint32_t requests() const { return requests_.load(std::memory_order_relaxed); }
  uint64_t overflows() const { return overflows_.load(std::memory_order_relaxed); }
  void count_overflow() { overflows_.fetch_add(1, std::memory_order_relaxed); }

  /// Asks every worker to close its idle connections of this cluster (a request waits for
  /// a connection slot that one of them may be holding).
  void shed_idle_everywhere();

  // ---- outlier detection
  /// The state of the endpoint at `address` ("IP:PORT"), created on first use.
  EndpointHealth* endpoint(const std::string& address);
  /// Records one exchange with `ep` and ejects it when it crossed a threshold of `spec`.
  /// `endpoints` is the cluster's endpoint count (for max_ejection_percent).
  void report(EndpointHealth* ep, Outcome outcome, int status, const OutlierSpec& spec,
              size_t endpoints);
  uint64_t ejections_total() const { return ejections_total_.load(std::memory_order_relaxed); }

  const std::string& name() const { return name_; }

  /// Any thread: the counters and every endpoint's state now (GET /clusters). Takes the
  /// outlier mutex, which the request path takes only to eject.
  ClusterStatus status() const;

 private:
  static bool try_add(std::atomic<uint32_t>& counter, uint32_t max);
  void eject(EndpointHealth* ep, const OutlierSpec& spec, size_t endpoints);

  SharedClusters& owner_;
  std::string name_;
  std::atomic<uint32_t> connections_{0}, pending_{0}, requests_{0}, retries_{0};
  std::atomic<uint64_t> overflows_{0}, ejections_total_{0};
  mutable std::mutex mu_;
  std::map<std::string, std::unique_ptr<EndpointHealth>, std::less<>> endpoints_;
};
using SharedClusterPtr = std::shared_ptr<SharedCluster>;

/// Every cluster's SharedCluster by name, and the workers to wake when a connection slot
/// frees up for requests pending on another worker. Thread-safe; get() takes a mutex, so call
/// it when a snapshot is applied, never per request.
class SharedClusters {
 public:
  /// What a worker is told about one of its clusters.
  enum class Event {
    SlotFreed,  // a connection closed: requests waiting for one may try again
    ShedIdle,   // a request waits for a connection: close the idle ones (their slots)
  };
  /// Posts an event to one worker's loop.
  using Wake = std::function<void(const std::string& cluster, Event event)>;

  /// Before the workers start.
  void add_worker(Wake wake) { wakes_.push_back(std::move(wake)); }
  /// The cluster's shared state, created on first use.
  SharedClusterPtr get(const std::string& name);
  /// Drops the clusters nobody holds any more (after a snapshot was applied).
  void sweep();
  /// Tells every worker.
  void wake_all(const std::string& cluster, Event event) const;
  /// The number of workers (add_worker calls): each has an EndpointLoad cell per endpoint.
  size_t worker_count() const { return wakes_.size(); }
  /// Any thread: every live cluster's status, by name (the control thread's GET /clusters;
  /// takes the mutex that get() and sweep() take when a snapshot is applied).
  std::vector<ClusterStatus> status() const;

 private:
  mutable std::mutex mu_;
  std::map<std::string, SharedClusterPtr, std::less<>> clusters_;
  std::vector<Wake> wakes_;  // fixed once the workers run
};

}  // namespace meshbox::data
