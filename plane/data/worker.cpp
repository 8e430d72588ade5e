#include "plane/data/worker.h"

#include <fmt/format.h>

#include <algorithm>

#include "core/base/log.h"
#include "core/loop/netns.h"
#include "plane/data/http_connection.h"
#include "plane/data/tunnel.h"

namespace meshbox::data {

namespace {

// True if the cluster's endpoints are on more than one priority level (locality failover).
bool has_levels(const ClusterSpec& spec) {
  for (const auto& ep : spec.endpoints)
    if (ep.priority != spec.endpoints.front().priority) return true;
  return false;
}

// The balancer of a cluster whose levels have their own: it never picks.
const ClusterSpec& no_endpoints() {
  static const ClusterSpec empty;
  return empty;
}

}  // namespace

ClusterState::ClusterState(const ClusterSpec& spec, std::vector<std::shared_ptr<ConnPool>> pools,
                           SharedClusterPtr shared)
    : spec_(spec),
      pools_(std::move(pools)),
      shared_(std::move(shared)),
      lb_(has_levels(spec_) ? no_endpoints() : spec_) {
  health_.reserve(spec_.endpoints.size());
  for (const auto& ep : spec_.endpoints)
    health_.push_back(shared_->endpoint(ep.address.to_string()));
  if (has_levels(spec_)) {
    priorities_ = std::make_unique<PriorityBalancer>(spec_);
    level_healthy_.resize(priorities_->levels());
  }
}

ClusterState::~ClusterState() {
  waiters_.for_each([this](ConnWaiter* w) { cancel_wait(w); });
}

size_t ClusterState::pick(Random& random, const uint64_t* hash, const std::vector<size_t>& tried) {
  if (pools_.empty()) return npos;
  if (priorities_) return pick_prioritized(random, hash, tried);
  // The clock is read only for clusters with outlier detection.
  uint64_t now = spec_.outlier.enabled() ? shared_now_ms() : 0;
  if (now && spec_.outlier.min_health_percent > 0) {
    // Panic: too few endpoints left un-ejected, so the ejections are ignored (Envoy's
    // healthy_panic_threshold, Istio's min_health_percent).
    size_t healthy = 0;
    for (auto* h : health_)
      healthy += !h || !h->ejected(now);
    if (healthy * 100 < spec_.outlier.min_health_percent * health_.size()) now = 0;
  }
  auto load = [this](size_t i) { return pools_[i]->active_count(); };
  auto not_ejected = [&](size_t i) { return !now || !health_[i]->ejected(now); };
  if (!tried.empty()) {
    // A retry: another endpoint than the ones tried, if there is one (Istio's default
    // previous_hosts predicate).
    size_t i = lb_.pick(
        random, hash,
        [&](size_t e) {
          return not_ejected(e) && std::find(tried.begin(), tried.end(), e) == tried.end();
        },
        load);
    if (i != npos) return i;
  }
  return lb_.pick(random, hash, not_ejected, load);
}

size_t ClusterState::pick_prioritized(Random& random, const uint64_t* hash,
                                      const std::vector<size_t>& tried) {
  uint64_t now = spec_.outlier.enabled() ? shared_now_ms() : 0;
  if (now) refresh_levels(now);
  if (levels_panic_) now = 0;
  auto load = [this](size_t i) { return pools_[i]->active_count(); };
  auto not_ejected = [&](size_t i) { return !now || !health_[i]->ejected(now); };
  if (!tried.empty()) {
    size_t i = priorities_->pick(
        random, hash,
        [&](size_t e) {
          return not_ejected(e) && std::find(tried.begin(), tried.end(), e) == tried.end();
        },
        load);
    if (i != npos) return i;
  }
  return priorities_->pick(random, hash, not_ejected, load);
}

void ClusterState::refresh_levels(uint64_t now) {
  uint64_t ejections = shared_->ejections_total();
  if (ejections == levels_seen_ejections_ && now < levels_valid_until_) return;
  levels_seen_ejections_ = ejections;
  levels_valid_until_ = UINT64_MAX;
  std::fill(level_healthy_.begin(), level_healthy_.end(), 0);
  size_t healthy = 0;
  const size_t n = spec_.endpoints.size();
  for (size_t i = 0; i < n; ++i) {
    uint64_t until = health_[i]->ejected_until_ms.load(std::memory_order_relaxed);
    if (now < until) {
      levels_valid_until_ = std::min(levels_valid_until_, until);
    } else {
      ++level_healthy_[priorities_->level_of(i)];
      ++healthy;
    }
  }
  // Panic (min_health_percent) over the whole cluster: ejections are ignored, every level
  // counts as whole.
  levels_panic_ =
      spec_.outlier.min_health_percent > 0 && healthy * 100 < spec_.outlier.min_health_percent * n;
  if (levels_panic_) {
    for (size_t l = 0; l < level_healthy_.size(); ++l)
      level_healthy_[l] = static_cast<uint32_t>(priorities_->level_size(l));
  }
  priorities_->set_healthy(level_healthy_.data());
}

size_t ClusterState::endpoint_for(loop::Loop& loop, const loop::Address& to) {
  std::string key = to.to_string();
  if (auto it = dynamic_.find(key); it != dynamic_.end()) return it->second;
  size_t slot = npos;
  if (pools_.size() >= kMaxDynamicEndpoints) {
    // Full: take over the endpoint of a destination nobody uses now.
    for (auto it = dynamic_.begin(); it != dynamic_.end(); ++it) {
      const ConnPool& p = *pools_[it->second];
      if (p.active_count() == 0 && p.idle_count() == 0) {
        slot = it->second;
        dynamic_.erase(it);
        break;
      }
    }
    if (slot == npos) return npos;
  }
  auto pool = std::make_shared<ConnPool>(loop, to, PoolSettings::of(spec_), shared_);
  if (slot == npos) {
    slot = pools_.size();
    pools_.push_back(std::move(pool));
    health_.push_back(nullptr);  // no outlier detection for destinations seen in passing
  } else {
    pools_[slot] = std::move(pool);
  }
  dynamic_.emplace(std::move(key), slot);
  return slot;
}

bool ClusterState::wait(ConnWaiter* w) {
  if (!shared_->try_add_pending(spec_.limits.max_pending_requests)) return false;
  waiters_.push_back(w);
  // Workers may sit on idle connections of this cluster: have them let go.
  shared_->shed_idle_everywhere();
  return true;
}

void ClusterState::cancel_wait(ConnWaiter* w) {
  if (!w->linked()) return;
  w->unlink();
  shared_->remove_pending();
}

void ClusterState::on_slot_freed() {
  // Each waiter tries once; one that has to wait again goes to the back, and stops the round.
  size_t n = waiters_.size();
  for (size_t i = 0; i < n && !waiters_.empty(); ++i) {
    ConnWaiter* w = waiters_.front();
    cancel_wait(w);
    w->on_connection_slot();
    if (w->linked()) break;
  }
}

void ClusterState::shed_idle() {
  for (auto& p : pools_)
    p->close_idle();
}

Worker::Worker(int id, const SnapshotPublisher& source, SharedClusters& shared,
               OnApplied on_applied, dns::ResolverOptions dns)
    : id_(id),
      source_(source),
      shared_(shared),
      on_applied_(std::move(on_applied)),
      thread_("mb-worker-" + std::to_string(id)),
      dns_options_(std::move(dns)) {
  // Other workers wake this one from their threads, even while it ends.
  shared_.add_worker([this](const std::string& cluster, SharedClusters::Event event) {
    thread_.try_post([this, cluster, event] { on_cluster_event(cluster, event); });
  });
}

Worker::~Worker() {
  (void)join();
}

void Worker::start() {
  thread_.start();
  if (cpu_ >= 0) {
    thread_.post([this] {
      if (Status s = loop::pin_current_thread(cpu_); !s.is_ok()) {
        MB_WARN("worker", "worker {}: {}", id_, s.message());
        cpu_ = -1;
      }
    });
  }
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
      if (old && old->address == spec.address && old->netns == spec.netns) l = std::move(old);
    if (!l) {
      auto fd = loop::bind_reuseport_in_netns(spec.netns, spec.address, 1024, cpu_);
      if (!fd) {
        status = Status(fd.error().code(), "listener " + spec.name + ": " + fd.error().message());
        continue;
      }
      l = std::make_unique<Listener>();
      l->address = spec.address;
      l->netns = spec.netns;
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
    SharedClusterPtr shared = shared_.get(spec.name);
    std::vector<std::shared_ptr<ConnPool>> endpoint_pools;
    for (const auto& ep : spec.endpoints) {
      std::string key = fmt::format(
          "{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}", spec.name, ep.address.to_string(),
          settings.connect_timeout_ms, settings.idle_timeout_ms, settings.max_idle,
          settings.max_connections, settings.max_requests_per_connection, spec.netns,
          ep.peer_identity, static_cast<const void*>(settings.tls.get()), settings.tls_sni);
      auto& pool = pools[key];
      if (!pool) {
        auto old = pools_.find(key);
        // This worker's cell of the endpoint's connection counts (GET /clusters).
        EndpointLoad* load =
            shared->endpoint(ep.address.to_string())->load_of(static_cast<size_t>(id_));
        pool = old != pools_.end()
                   ? old->second
                   : std::make_shared<ConnPool>(loop(), ep.address, settings, shared, spec.netns,
                                                ep.peer_identity, load);
      }
      endpoint_pools.push_back(pool);
    }
    // Keep the balancer position of an unchanged cluster.
    auto old = clusters_.find(spec.name);
    if (old != clusters_.end() && old->second->spec() == spec) {
      clusters.emplace(spec.name, old->second);
    } else {
      clusters.emplace(spec.name, std::make_shared<ClusterState>(spec, std::move(endpoint_pools),
                                                                 std::move(shared)));
    }
  }
  // Pools no cluster uses any more lose their idle connections now; busy ones finish first.
  for (auto& [key, pool] : pools_)
    if (!pools.count(key)) pool->close_idle();
  clusters_ = std::move(clusters);
  pools_ = std::move(pools);
  shared_.sweep();
}

void Worker::on_cluster_event(const std::string& name, SharedClusters::Event event) {
  ClusterStatePtr c = cluster(name);
  if (!c) return;
  if (event == SharedClusters::Event::SlotFreed) return c->on_slot_freed();
  c->shed_idle();
}

HostCache& Worker::hosts() {
  if (!hosts_) hosts_ = std::make_unique<HostCache>(loop(), dns_options_);
  return *hosts_;
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
  ActiveConnection* c = nullptr;
  const OriginalDstRoute* to_service = nullptr;
  if (spec->capture_outbound && !spec->original_dst_routes.empty()) {
    loop::Address original = conn->original_dst();
    for (const auto& r : spec->original_dst_routes)
      if (r.address == original) to_service = &r;
  }
  if (to_service) {
    c = Tunnel::to_cluster(*this, std::move(conn), to_service->cluster, spec->tcp_idle_timeout_ms,
                           spec->mesh_client);
  } else if (spec->protocol == ListenerSpec::Protocol::Tcp) {
    c = Tunnel::accept(*this, snapshot_, *spec, std::move(conn));
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
  hosts_.reset();     // its lookups in flight hold sockets and timers on this loop
  telemetry_.stop();  // access logs write out what they hold
  // shutdown() may run inside the drain timer's own callback: destroy it afterwards.
  loop().run_soon([this] { drain_timer_.reset(); });
  thread_.release();
}

Status Worker::join() {
  return thread_.join();
}

}  // namespace meshbox::data
