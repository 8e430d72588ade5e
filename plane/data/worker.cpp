#include "plane/data/worker.h"

#include <unistd.h>

#include "core/base/log.h"
#include "plane/data/http_connection.h"
#include "plane/data/tunnel.h"

namespace meshbox::data {

ClusterState::ClusterState(loop::Loop& loop, const ClusterSpec& spec) : spec_(spec) {
  for (const auto& ep : spec.endpoints)
    pools_.push_back(std::make_unique<ConnPool>(loop, ep, spec));
}

ConnPool* ClusterState::pick() {
  if (pools_.empty()) return nullptr;
  if (next_ >= pools_.size()) next_ = 0;
  return pools_[next_++].get();
}

const loop::Address* ClusterState::pick_address() {
  ConnPool* p = pick();
  return p ? &p->endpoint() : nullptr;
}

void ClusterState::close_idle() {
  for (auto& p : pools_)
    p->close_idle();
}

Worker::Worker(int id, SnapshotConstPtr snapshot)
    : id_(id), snapshot_(std::move(snapshot)), thread_("mb-worker-" + std::to_string(id)) {}

Worker::~Worker() {
  (void)join();
}

void Worker::start(std::vector<int> fds, std::function<void(Status)> on_listening) {
  thread_.start();
  thread_.post(
      [this, fds = std::move(fds), done = std::move(on_listening)] { open_listeners(fds, done); });
}

void Worker::open_listeners(const std::vector<int>& fds, const std::function<void(Status)>& done) {
  const Snapshot& snap = *snapshot_;
  for (const auto& c : snap.clusters)
    clusters_.push_back(std::make_unique<ClusterState>(loop(), c));
  for (size_t i = 0; i < fds.size() && i < snap.listeners.size(); ++i) {
    size_t cluster_index = 0;
    for (size_t c = 0; c < snap.clusters.size(); ++c)
      if (snap.clusters[c].name == snap.listeners[i].cluster) cluster_index = c;
    listener_cluster_.push_back(cluster_index);
    auto l = loop::TcpListener::open(
        loop(), fds[i], [this, i](loop::TcpConnPtr conn) { on_accept(i, std::move(conn)); });
    if (!l) {
      for (size_t j = i + 1; j < fds.size(); ++j)
        ::close(fds[j]);
      done(l.error());
      return;
    }
    listeners_.push_back(std::move(*l));
  }
  done(Status::ok());
}

void Worker::on_accept(size_t index, loop::TcpConnPtr conn) {
  if (draining_) return;  // dropping the pointer closes it
  const ListenerSpec& spec = snapshot_->listeners[index];
  ClusterState& cluster = *clusters_[listener_cluster_[index]];
  ActiveConnection* c;
  if (spec.protocol == ListenerSpec::Protocol::Tcp) {
    c = Tunnel::proxy(*this, spec, cluster, std::move(conn));
  } else {
    c = new HttpConnection(*this, snapshot_, spec, cluster, std::move(conn));
  }
  if (c) connections_.push_back(c);
}

void Worker::remove(ActiveConnection* conn) {
  conn->unlink();
  loop().defer_delete(std::unique_ptr<loop::Deferred>(conn));
  if (draining_) maybe_finish_drain();
}

void Worker::track(ActiveConnection* conn) {
  connections_.push_back(conn);
}

void Worker::drain(uint64_t deadline_ms) {
  thread_.post([this, deadline_ms] { begin_drain(deadline_ms); });
}

void Worker::begin_drain(uint64_t deadline_ms) {
  if (draining_) return;
  draining_ = true;
  // The deadline first: closing idle connections below may finish the drain at once.
  drain_timer_ = std::make_unique<loop::Timer>(loop(), [this] {
    size_t left = connections_.size();
    if (left)
      MB_WARN("worker", "worker {}: drain deadline reached, closing {} connection(s)", id_, left);
    shutdown();
  });
  drain_timer_->start(deadline_ms);
  listeners_.clear();
  for (auto& c : clusters_)
    c->close_idle();
  connections_.for_each([](ActiveConnection* c) { c->drain(); });
  maybe_finish_drain();
}

void Worker::maybe_finish_drain() {
  if (connections_.empty()) shutdown();
}

void Worker::shutdown() {
  if (stopped_) return;
  stopped_ = true;
  connections_.for_each([](ActiveConnection* c) { c->abort(); });
  clusters_.clear();
  // shutdown() may run inside the drain timer's own callback: destroy it afterwards.
  loop().run_soon([this] { drain_timer_.reset(); });
  thread_.release();
}

Status Worker::join() {
  return thread_.join();
}

}  // namespace meshbox::data
