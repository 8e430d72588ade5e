// Runtime: this process's proxy workers and the listener ports they share. It is the
// control plane's SnapshotSink: publish() reserves the ports of new listeners (one bound,
// not listening, SO_REUSEPORT socket per address keeps the port and resolves port 0; the
// workers then bind their own sockets to it), numbers the snapshot and wakes every worker,
// which applies the latest one and acknowledges its version. The runtime tracks the lowest
// version applied everywhere and how long each push took to reach the last worker.
// Loop thread only (the control loop), except what the workers post back through the mailbox.
#pragma once

#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/loop/loop.h"
#include "core/loop/mailbox.h"
#include "plane/control/control_plane.h"
#include "plane/data/access_log.h"
#include "plane/data/istio_metrics.h"
#include "plane/data/tap.h"
#include "plane/data/tracing.h"
#include "plane/data/worker.h"

namespace meshbox::cli {

class Runtime : public control::SnapshotSink {
 public:
  /// `on_failure` runs on the control loop if a worker cannot apply a snapshot (a listener
  /// that will not bind).
  /// `dns`: where the workers look up the hosts of passthrough requests.
  Runtime(loop::Loop& control, int workers, std::function<void(const Status&)> on_failure,
          dns::ResolverOptions dns = {});
  ~Runtime() override;

  Result<SnapshotConstPtr> publish(std::shared_ptr<Snapshot> snapshot) override;
  SnapshotConstPtr current() const override { return current_; }
  uint64_t applied_version() const override { return applied_min_; }
  void when_applied(uint64_t version, std::function<void()> done) override;
  std::vector<double> push_latencies_ms() const override;
  std::vector<ClusterStatus> cluster_status() const override { return shared_clusters_.status(); }
  /// Shard i is worker i's; the last one the control thread's.
  stats::Registry* metrics() override { return &registry_; }
  TapSource* tap() override { return &tap_hub_; }

  /// Before the first publish: pin each worker to a CPU of the process's set (the default,
  /// when there are no more workers than CPUs) or not (Worker::pin_to_cpu).
  void set_cpu_pinning(bool on);
  /// Stops accepting; in-flight requests get up to `deadline_ms`. The control loop ends once
  /// the workers are done (the mailbox stops holding it open).
  void drain(uint64_t deadline_ms);
  /// After the control loop ended: waits for the worker threads.
  void join();
  /// "NAME ADDRESS" per listener of the current snapshot (for ready files).
  std::string listener_lines() const;

 private:
  struct Reservation {
    int fd = -1;
    loop::Address address;  // the concrete one
  };
  void on_applied(int worker, uint64_t version, const Status& status);

  loop::Loop& control_;
  loop::Mailbox mailbox_;
  std::function<void(const Status&)> on_failure_;
  SnapshotPublisher publisher_;
  data::SharedClusters shared_clusters_;  // before workers_: they hold references to it
  // One per worker, before workers_: a worker reports to its logger until it ends.
  std::vector<std::unique_ptr<data::AccessLogger>> access_loggers_;
  // Metrics: before workers_, whose threads record into them until they end.
  stats::Registry registry_;
  data::IstioMetrics istio_metrics_;
  stats::Histogram push_ms_;  // publish → last worker's ack, s (the control thread's shard)
  stats::Counter pushes_;
  std::vector<std::unique_ptr<data::MetricsObserver>> metrics_observers_;
  // Tracing: one per worker (its Zipkin reporter), before workers_ like the others.
  std::vector<std::unique_ptr<data::TracingObserver>> tracing_observers_;
  // `meshbox tap`: the sessions (control loop) and one observer per worker, before workers_.
  data::TapHub tap_hub_;
  std::vector<std::unique_ptr<data::TapObserver>> tap_observers_;
  std::vector<std::unique_ptr<data::Worker>> workers_;
  std::vector<uint64_t> applied_;  // per worker
  uint64_t applied_min_ = 0;
  uint64_t next_version_ = 1;
  SnapshotConstPtr current_;
  std::map<std::string, Reservation> reservations_;  // by the address as configured
  std::multimap<uint64_t, std::function<void()>> waiters_;
  std::map<uint64_t, std::chrono::steady_clock::time_point> published_at_;
  std::deque<double> latencies_ms_;
  bool started_ = false;
};

}  // namespace meshbox::cli
