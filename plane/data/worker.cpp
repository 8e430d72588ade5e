#include "plane/data/worker.h"

#include <fmt/format.h>

#include "core/base/log.h"
#include "plane/data/http_connection.h"
#include "plane/data/tunnel.h"

namespace meshbox::data {

ClusterState::ClusterState(const ClusterSpec& spec, std::vector<std::shared_ptr<ConnPool>> pools)
    : spec_(spec), pools_(std::move(pools)) {}

ConnPool* ClusterState::pick(Random& random) {
  size_t n = pools_.size();
  if (n == 0) return nullptr;
  switch (spec_.lb_policy) {
    case LbPolicy::Random:
      return pools_[random.below(n)].get();
    case LbPolicy::LeastRequest: {
      // Power of two choices (Envoy's default for LEAST_REQUEST).
      ConnPool* a = pools_[random.below(n)].get();
      ConnPool* b = pools_[random.below(n)].get();
      return b->active_count() < a->active_count() ? b : a;
    }
    case LbPolicy::RoundRobin:
      break;
  }
  if (next_ >= n) next_ = 0;
  return pools_[next_++].get();
}

Worker::Worker(int id, const SnapshotPublisher& source, OnApplied on_applied)
    : id_(id),
      source_(source),
      on_applied_(std::move(on_applied)),
      thread_("mb-worker-" + std::to_string(id)) {}

Worker::~Worker() {
  (void)join();
}

void Worker::start() {
  thread_.start();
  notify();
}

void Worker::notify() {
  thread_.post([this] { apply_latest(); });
}

void Worker::apply_latest() {
  if (draining_) return;
  SnapshotConstPtr next = source_.latest();
  if (!next || next == snapshot_) return;  // coalesced wakeups: already applied
  Status status = apply_listeners(*next);
  apply_clusters(*next);
  snapshot_ = std::move(next);
  on_applied_(id_, snapshot_->version, status);
}

Status Worker::apply_listeners(const Snapshot& snap) {
  // A listener is its bound address: one whose address stays keeps its socket (and the
  // connections it accepted), whatever else changed; new connections see the new spec.
  std::vector<std::unique_ptr<Listener>> next;
  Status status;
  for (const auto& spec : snap.listeners) {
    std::unique_ptr<Listener> l;
    for (auto& old : listeners_)
      if (old && old->address == spec.address) l = std::move(old);
    if (!l) {
      auto fd = loop::bind_reuseport(spec.address);
      if (!fd) {
        status = Status(fd.error().code(), "listener " + spec.name + ": " + fd.error().message());
        continue;
      }
      l = std::make_unique<Listener>();
      l->address = spec.address;
      Listener* raw = l.get();
      auto socket = loop::TcpListener::open(
          loop(), *fd, [this, raw](loop::TcpConnPtr conn) { on_accept(raw, std::move(conn)); });
      if (!socket) {
        status = Status(socket.error().code(),
                        "listener " + spec.name + ": " + socket.error().message());
        continue;
      }
      l->socket = std::move(*socket);
    }
    l->name = spec.name;
    next.push_back(std::move(l));
  }
  listeners_ = std::move(next);  // the ones left behind close here
  return status;
}

void Worker::apply_clusters(const Snapshot& snap) {
  std::map<std::string, ClusterStatePtr, std::less<>> clusters;
  std::map<std::string, std::shared_ptr<ConnPool>> pools;
  for (const auto& spec : snap.clusters) {
    PoolSettings settings = PoolSettings::of(spec);
    std::vector<std::shared_ptr<ConnPool>> endpoint_pools;
    for (const auto& ep : spec.endpoints) {
      std::string key =
          fmt::format("{}|{}|{}|{}", ep.address.to_string(), settings.connect_timeout_ms,
                      settings.idle_timeout_ms, settings.max_idle);
      auto& pool = pools[key];
      if (!pool) {
        auto old = pools_.find(key);
        pool = old != pools_.end() ? old->second
                                   : std::make_shared<ConnPool>(loop(), ep.address, settings);
      }
      endpoint_pools.push_back(pool);
    }
    // Keep the balancer position of an unchanged cluster.
    auto old = clusters_.find(spec.name);
    if (old != clusters_.end() && old->second->spec() == spec) {
      clusters.emplace(spec.name, old->second);
    } else {
      clusters.emplace(spec.name, std::make_shared<ClusterState>(spec, std::move(endpoint_pools)));
    }
  }
  // Pools no cluster uses any more lose their idle connections now; busy ones finish first.
  for (auto& [key, pool] : pools_)
    if (!pools.count(key)) pool->close_idle();
  clusters_ = std::move(clusters);
  pools_ = std::move(pools);
}

ClusterStatePtr Worker::cluster(std::string_view name) const {
  auto it = clusters_.find(name);
  return it == clusters_.end() ? nullptr : it->second;
}

void Worker::on_accept(Listener* listener, loop::TcpConnPtr conn) {
  if (draining_ || !snapshot_) return;  // dropping the pointer closes it
  const ListenerSpec* spec = nullptr;
  for (const auto& l : snapshot_->listeners)
    if (l.name == listener->name) spec = &l;
  if (!spec) return;
  ActiveConnection* c;
  if (spec->protocol == ListenerSpec::Protocol::Tcp) {
    ClusterStatePtr cluster = this->cluster(spec->cluster);
    c = cluster ? Tunnel::proxy(*this, *spec, *cluster, std::move(conn)) : nullptr;
  } else {
    c = new HttpConnection(*this, snapshot_, *spec, std::move(conn));
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
  for (auto& [key, pool] : pools_)
    pool->close_idle();
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
  pools_.clear();
  // shutdown() may run inside the drain timer's own callback: destroy it afterwards.
  loop().run_soon([this] { drain_timer_.reset(); });
  thread_.release();
}

Status Worker::join() {
  return thread_.join();
}

}  // namespace meshbox::data
