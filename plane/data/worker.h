// Worker: one proxy thread. Owns a loop (LoopThread), its listeners (SO_REUSEPORT: every
// worker accepts for itself), the connections they accept, and per-endpoint upstream pools.
// Nothing on the request path takes a lock or blocks.
//
// start(), drain() and join() are for the control thread (drain() is Thread-safe); every other
// method is Loop thread only.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/base/linked_list.h"
#include "core/base/random.h"
#include "core/loop/loop_thread.h"
#include "core/loop/tcp_listener.h"
#include "core/loop/timer.h"
#include "plane/data/conn_pool.h"
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

/// Per-worker state of one cluster: its pools (one per endpoint) and the balancer position.
class ClusterState {
 public:
  ClusterState(loop::Loop& loop, const ClusterSpec& spec);
  /// Next endpoint's pool (round robin); null when the cluster has no endpoint.
  ConnPool* pick();
  /// Next endpoint's address (for tunnels, which do not pool); null when none.
  const loop::Address* pick_address();
  const ClusterSpec& spec() const { return spec_; }
  void close_idle();

 private:
  ClusterSpec spec_;
  std::vector<std::unique_ptr<ConnPool>> pools_;
  size_t next_ = 0;
};

class Worker {
 public:
  Worker(int id, SnapshotConstPtr snapshot);
  ~Worker();

  /// Control thread. Starts the thread; it opens one listener per fd (fds[i] serves
  /// snapshot->listeners[i]) and then calls `on_listening` on the worker thread.
  void start(std::vector<int> fds, std::function<void(Status)> on_listening);
  /// Thread-safe. Stops accepting, finishes in-flight requests and closes connections as they
  /// go idle; after `deadline_ms` closes whatever is left. The thread then ends.
  void drain(uint64_t deadline_ms);
  /// Control thread. Waits for the thread; returns the loop's close status.
  Status join();

  // Loop thread only.
  int id() const { return id_; }
  loop::Loop& loop() { return thread_.loop(); }
  Random& random() { return random_; }
  /// A scratch string for serializing heads; valid until the next call.
  std::string& scratch() {
    scratch_.clear();
    return scratch_;
  }
  bool draining() const { return draining_; }
  /// Tracks a connection created outside on_accept (a tunnel taking over an HTTP connection).
  void track(ActiveConnection* conn);
  /// Stops tracking `conn` and destroys it once the current callback returns.
  void remove(ActiveConnection* conn);
  ClusterState& cluster(size_t index) { return *clusters_[index]; }

 private:
  void open_listeners(const std::vector<int>& fds, const std::function<void(Status)>& done);
  void on_accept(size_t listener_index, loop::TcpConnPtr conn);
  void begin_drain(uint64_t deadline_ms);
  void maybe_finish_drain();
  void shutdown();

  int id_;
  SnapshotConstPtr snapshot_;
  loop::LoopThread thread_;
  Random random_;
  std::string scratch_;
  std::vector<std::unique_ptr<loop::TcpListener>> listeners_;
  std::vector<size_t> listener_cluster_;  // cluster index per listener
  std::vector<std::unique_ptr<ClusterState>> clusters_;
  LinkedList<ActiveConnection> connections_;
  std::unique_ptr<loop::Timer> drain_timer_;
  bool draining_ = false;
  bool stopped_ = false;
};

}  // namespace meshbox::data
