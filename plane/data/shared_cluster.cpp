#include "plane/data/shared_cluster.h"

#include <time.h>

#include <algorithm>

#include "core/base/log.h"

namespace meshbox::data {

uint64_t shared_now_ms() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000 + static_cast<uint64_t>(ts.tv_nsec) / 1'000'000;
}

bool SharedCluster::try_add(std::atomic<uint32_t>& counter, uint32_t max) {
  uint32_t now = counter.load(std::memory_order_relaxed);
  do {
    if (now >= max) return false;
  } while (!counter.compare_exchange_weak(now, now + 1, std::memory_order_relaxed));
  return true;
}

void SharedCluster::close_connection() {
  connections_.fetch_sub(1, std::memory_order_relaxed);
  // A request waiting for a connection (on this worker or another) may now open one.
  if (pending_.load(std::memory_order_relaxed) > 0)
    owner_.wake_all(name_, SharedClusters::Event::SlotFreed);
}

void SharedCluster::shed_idle_everywhere() {
  owner_.wake_all(name_, SharedClusters::Event::ShedIdle);
}

bool SharedCluster::try_start_retry(uint32_t max) {
  uint32_t budget = std::max<uint32_t>(3, requests_.load(std::memory_order_relaxed) / 5);
  return try_add(retries_, std::min(max, budget));
}

EndpointHealth* SharedCluster::endpoint(const std::string& address) {
  std::lock_guard lock(mu_);
  auto& slot = endpoints_[address];
  if (!slot) slot = std::make_unique<EndpointHealth>(owner_.worker_count());
  return slot.get();
}

void SharedCluster::report(EndpointHealth* ep, Outcome outcome, int status, const OutlierSpec& spec,
                           size_t endpoints) {
  if (!spec.enabled() || !ep) return;
  if (outcome == Outcome::Success) {
    // Writes only when there is something to reset: the common case touches no shared line.
    if (ep->consecutive_5xx.load(std::memory_order_relaxed))
      ep->consecutive_5xx.store(0, std::memory_order_relaxed);
    if (ep->consecutive_gateway.load(std::memory_order_relaxed))
      ep->consecutive_gateway.store(0, std::memory_order_relaxed);
    return;
  }
  bool gateway =
      outcome == Outcome::LocalFailure || status == 502 || status == 503 || status == 504;
  uint32_t c5 = ep->consecutive_5xx.fetch_add(1, std::memory_order_relaxed) + 1;
  uint32_t cg = gateway ? ep->consecutive_gateway.fetch_add(1, std::memory_order_relaxed) + 1 : 0;
  if (!gateway) ep->consecutive_gateway.store(0, std::memory_order_relaxed);
  if ((spec.consecutive_5xx && c5 >= spec.consecutive_5xx) ||
      (spec.consecutive_gateway_errors && cg >= spec.consecutive_gateway_errors))
    eject(ep, spec, endpoints);
}

void SharedCluster::eject(EndpointHealth* ep, const OutlierSpec& spec, size_t endpoints) {
  constexpr uint64_t kMaxEjectionMs = 300'000;  // Envoy's max_ejection_time default
  std::lock_guard lock(mu_);
  uint64_t now = shared_now_ms();
  if (ep->ejected(now)) return;  // another worker ejected it meanwhile
  size_t ejected = 0;
  for (const auto& [addr, e] : endpoints_)
    if (e->ejected(now)) ++ejected;
  // Never more than max_ejection_percent of the endpoints, but one can always go.
  if (ejected > 0 && (ejected + 1) * 100 > spec.max_ejection_percent * endpoints) return;
  // An ejection count decays by one per interval spent un-ejected (Envoy decrements it at
  // each interval sweep that finds the endpoint healthy).
  if (ep->ejections > 0 && ep->last_ejection_end > 0 && spec.interval_ms > 0) {
    uint64_t healthy_for = now > ep->last_ejection_end ? now - ep->last_ejection_end : 0;
    uint64_t decay = healthy_for / spec.interval_ms;
    ep->ejections = decay >= ep->ejections ? 0 : ep->ejections - static_cast<uint32_t>(decay);
  }
  ++ep->ejections;
  uint64_t span = std::min(spec.base_ejection_time_ms * ep->ejections,
                           std::max(kMaxEjectionMs, spec.base_ejection_time_ms));
  ep->last_ejection_end = now + span;
  ep->ejected_until_ms.store(now + span, std::memory_order_relaxed);
  ep->ejected_at_ms.store(now, std::memory_order_relaxed);
  ep->consecutive_5xx.store(0, std::memory_order_relaxed);
  ep->consecutive_gateway.store(0, std::memory_order_relaxed);
  ejections_total_.fetch_add(1, std::memory_order_relaxed);
  std::string addr;
  for (const auto& [a, e] : endpoints_)
    if (e.get() == ep) addr = a;
  MB_INFO("outlier", "cluster {}: endpoint {} ejected for {} ms (ejection {})", name_, addr, span,
          ep->ejections);
}

ClusterStatus SharedCluster::status() const {
  constexpr auto kRelaxed = std::memory_order_relaxed;
  ClusterStatus out;
  out.name = name_;
  out.active_requests = requests_.load(kRelaxed);
  out.pending_requests = pending_.load(kRelaxed);
  out.active_connections = connections_.load(kRelaxed);
  out.active_retries = retries_.load(kRelaxed);
  out.overflows = overflows_.load(kRelaxed);
  out.ejections_total = ejections_total_.load(kRelaxed);
  uint64_t now = shared_now_ms();
  std::lock_guard lock(mu_);
  out.endpoints.reserve(endpoints_.size());
  for (const auto& [address, ep] : endpoints_) {
    EndpointStatus& s = out.endpoints.emplace_back();
    s.address = address;
    // Each cell is one worker's; a pool's counts move together, so a sum read while a
    // worker writes is off by at most that worker's last change.
    for (size_t w = 0; w < ep->workers; ++w) {
      uint32_t busy = ep->load[w].busy.load(kRelaxed), idle = ep->load[w].idle.load(kRelaxed);
      s.active_requests += busy;
      s.idle_connections += idle;
      s.active_connections += busy + idle;
    }
    uint64_t until = ep->ejected_until_ms.load(kRelaxed);
    uint64_t at = ep->ejected_at_ms.load(kRelaxed);
    s.ejected = now < until;
    s.ejection_left_ms = s.ejected ? until - now : 0;
    s.last_ejection_ms_ago = at ? static_cast<int64_t>(now > at ? now - at : 0) : -1;
    s.ejections = ep->ejections;
    s.consecutive_5xx = ep->consecutive_5xx.load(kRelaxed);
    s.consecutive_gateway_errors = ep->consecutive_gateway.load(kRelaxed);
  }
  return out;
}

SharedClusterPtr SharedClusters::get(const std::string& name) {
  std::lock_guard lock(mu_);
  auto& slot = clusters_[name];
  if (!slot) slot = std::make_shared<SharedCluster>(*this, name);
  return slot;
}

void SharedClusters::sweep() {
  std::lock_guard lock(mu_);
  std::erase_if(clusters_, [](const auto& entry) { return entry.second.use_count() == 1; });
}

std::vector<ClusterStatus> SharedClusters::status() const {
  std::vector<SharedClusterPtr> clusters;
  {
    std::lock_guard lock(mu_);
    for (const auto& [name, c] : clusters_)
      clusters.push_back(c);
  }
  std::vector<ClusterStatus> out;
  out.reserve(clusters.size());
  for (const auto& c : clusters)
    out.push_back(c->status());
  return out;
}

void SharedClusters::wake_all(const std::string& cluster, Event event) const {
  for (const auto& wake : wakes_)
    wake(cluster, event);
}

}  // namespace meshbox::data
