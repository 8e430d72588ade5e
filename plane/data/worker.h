// Worker: one proxy thread. Owns a loop (LoopThread), its listeners (SO_REUSEPORT: every
// worker binds and accepts for itself), the connections they accept, and per-endpoint
// upstream pools. It serves the latest snapshot of a SnapshotPublisher: notify() makes it
// apply the newest one between events — listeners opened and closed, clusters rebuilt with
// their surviving pools — and acknowledge the version. Requests in flight keep the snapshot
// and the cluster they started with. Nothing on the request path takes a lock or blocks.
//
// start(), notify(), drain() and join() are for the control thread (notify() and drain() are
// Thread-safe); every other method is Loop thread only.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/base/linked_list.h"
#include "core/base/random.h"
#include "core/dns/dns.h"
#include "core/loop/loop_thread.h"
#include "core/loop/tcp_listener.h"
#include "core/loop/timer.h"
#include "plane/data/conn_pool.h"
#include "plane/data/host_cache.h"
#include "plane/data/load_balancer.h"
#include "plane/data/shared_cluster.h"
#include "plane/data/telemetry.h"
#include "plane/snapshot.h"

namespace meshbox::data {

/// A downstream connection of any kind, tracked by its worker for drain and shutdown.
class ActiveConnection : public LinkedNode, public loop::Deferred {
 public:
  /// Stop taking new requests; close as soon as nothing is in flight.
  virtual void drain() = 0;
  /// Close now, whatever is in flight.
  virtual void abort() = 0;
};

/// A request waiting for a connection because its cluster is at its connection limit
/// (Envoy's pending request). At most max_pending_requests wait, across all workers.
class ConnWaiter : public LinkedNode {
 public:
  /// A connection may be had now: try again (and wait again, or fail, if not).
  virtual void on_connection_slot() = 0;
};

/// Per-worker state of one cluster of one snapshot: its endpoints' pools, the balancer, the
/// requests waiting for a connection, and the cluster's process-wide SharedCluster. Shared (on
/// the worker's thread only) by the worker and the streams using it, so a stream keeps its
/// cluster while a new snapshot replaces it.
class ClusterState {
 public:
  static constexpr size_t npos = LoadBalancer::npos;

  ClusterState(const ClusterSpec& spec, std::vector<std::shared_ptr<ConnPool>> pools,
               SharedClusterPtr shared);
  ~ClusterState();

  /// The endpoint for a request (an index into spec().endpoints), by the cluster's policy:
  /// `hash` for a ring-hash cluster (null: any). Ejected endpoints are skipped, and so are the
  /// ones in `tried` (a retry prefers another endpoint) unless nothing else is left. npos
  /// when the cluster has no endpoint that can be used.
  size_t pick(Random& random, const uint64_t* hash, const std::vector<size_t>& tried);
  /// An original_dst cluster's endpoint for `to`, made on first use (a pool of its own);
  /// npos when kMaxDynamicEndpoints are in use and none of them is idle.
  size_t endpoint_for(loop::Loop& loop, const loop::Address& to);
  static constexpr size_t kMaxDynamicEndpoints = 512;
  size_t endpoint_count() const { return pools_.size(); }
  ConnPool& pool(size_t endpoint) { return *pools_[endpoint]; }
  EndpointHealth* health(size_t endpoint) { return health_[endpoint]; }
  SharedCluster& shared() { return *shared_; }
  const ClusterSpec& spec() const { return spec_; }

  /// Queues `w` for a connection; false (nothing queued) when max_pending_requests wait
  /// already: the request fails fast (UO).
  bool wait(ConnWaiter* w);
  /// Takes `w` out of the queue if it is in it.
  void cancel_wait(ConnWaiter* w);
  /// A connection of this cluster closed, here or on another worker: the waiting requests
  /// try again.
  void on_slot_freed();
  /// Closes this worker's idle connections of the cluster (a request waits for a slot).
  void shed_idle();
  bool has_waiters() const { return !waiters_.empty(); }

 private:
  ClusterSpec spec_;
  std::vector<std::shared_ptr<ConnPool>> pools_;
  std::vector<EndpointHealth*> health_;  // per endpoint; owned by shared_ (null: dynamic)
  std::map<std::string, size_t, std::less<>> dynamic_;  // original_dst: address → endpoint
  SharedClusterPtr shared_;
  LoadBalancer lb_;
  // Locality failover (endpoints on more than one priority level): the levels, and their
  // usable counts as of the last check, redone only when the cluster ejected an endpoint
  // (ejections_total moved) or an ejection ran out. Null for a one-level cluster, whose
  // requests use lb_ alone as before.
  size_t pick_prioritized(Random& random, const uint64_t* hash, const std::vector<size_t>& tried);
  void refresh_levels(uint64_t now);
  std::unique_ptr<PriorityBalancer> priorities_;
  std::vector<uint32_t> level_healthy_;
  uint64_t levels_seen_ejections_ = UINT64_MAX;
  uint64_t levels_valid_until_ = 0;
  bool levels_panic_ = false;
  LinkedList<ConnWaiter> waiters_;
};
using ClusterStatePtr = std::shared_ptr<ClusterState>;

class Worker {
 public:
  /// Called on the worker thread after each snapshot it applied (or failed to apply part of:
  /// a listener that could not be opened).
  using OnApplied = std::function<void(int worker_id, uint64_t version, const Status& status)>;

  /// `shared` is every worker's: the clusters' circuit breakers and outlier detection.
  /// `dns`: where the passthrough cluster looks host names up.
  Worker(int id, const SnapshotPublisher& source, SharedClusters& shared, OnApplied on_applied,
         dns::ResolverOptions dns = {});
  ~Worker();

  /// Control thread, before start(): run on `cpu` only, and have the listeners ask for the
  /// connections the kernel handles there (SO_INCOMING_CPU). A sidecar hop from this worker
  /// to a listener of this process then stays on this worker: no cross-thread wakeup.
  void pin_to_cpu(int cpu) { cpu_ = cpu; }
  /// Control thread. Starts the thread, which applies the publisher's latest snapshot.
  void start();
  /// Thread-safe. The publisher has a newer snapshot: apply it (coalesced).
  void notify();
  /// Thread-safe. Stops accepting, finishes in-flight requests and closes connections as they
  /// go idle; after `deadline_ms` closes whatever is left. The thread then ends.
  void drain(uint64_t deadline_ms);
  /// Control thread. Waits for the thread; returns the loop's close status.
  Status join();

  // Loop thread only.
  int id() const { return id_; }
  loop::Loop& loop() { return thread_.loop(); }
  Random& random() { return random_; }
  /// The snapshot new requests use.
  const SnapshotConstPtr& snapshot() const { return snapshot_; }
  /// The current snapshot's cluster `name`; null if it has none.
  ClusterStatePtr cluster(std::string_view name) const;
  /// A scratch string for serializing heads; valid until the next call.
  std::string& scratch() {
    scratch_.clear();
    return scratch_;
  }
  bool draining() const { return draining_; }
  /// This worker's DNS cache (the passthrough cluster's).
  HostCache& hosts();
  /// Where finished requests and connections are reported (metrics, access log, tap).
  /// Observers are added before start().
  Telemetry& telemetry() { return telemetry_; }
  /// Tracks a connection created outside on_accept (a tunnel taking over an HTTP connection).
  void track(ActiveConnection* conn);
  /// Stops tracking `conn` and destroys it once the current callback returns.
  void remove(ActiveConnection* conn);

 private:
  struct Listener {
    std::string name;
    loop::Address address;
    std::string netns;  // ListenerSpec::netns: with the address, what identifies the socket
    std::unique_ptr<loop::TcpListener> socket;
  };

  void apply_latest();
  void on_cluster_event(const std::string& name, SharedClusters::Event event);
  Status apply_listeners(const Snapshot& snap);
  void apply_clusters(const Snapshot& snap);
  void on_accept(Listener* listener, loop::TcpConnPtr conn);
  void begin_drain(uint64_t deadline_ms);
  void maybe_finish_drain();
  void shutdown();

  int id_;
  int cpu_ = -1;  // pin_to_cpu; -1 = not pinned
  Telemetry telemetry_;
  const SnapshotPublisher& source_;
  SharedClusters& shared_;
  OnApplied on_applied_;
  loop::LoopThread thread_;
  Random random_;
  std::string scratch_;
  SnapshotConstPtr snapshot_;
  std::vector<std::unique_ptr<Listener>> listeners_;
  std::map<std::string, ClusterStatePtr, std::less<>> clusters_;
  // Pools by endpoint and settings, reused across snapshots. A pool the new snapshot no longer
  // uses is dropped here; streams still using it keep it alive through their ClusterState.
  std::map<std::string, std::shared_ptr<ConnPool>> pools_;
  LinkedList<ActiveConnection> connections_;
  std::unique_ptr<loop::Timer> drain_timer_;
  dns::ResolverOptions dns_options_;
  std::unique_ptr<HostCache> hosts_;  // made on first use

  bool draining_ = false;
  bool stopped_ = false;
};

}  // namespace meshbox::data
