#include "plane/data/tap.h"

namespace meshbox::data {

namespace {

bool is_service(const TapFilter& f, const ClusterSpec* c) {
  return c && (c->service_name == f.service || c->service_host == f.service);
}

}  // namespace

bool tap_matches(const TapFilter& f, const RequestRecord& r) {
  const ListenerSpec& l = *r.listener;
  bool to = l.reporter == ListenerSpec::Reporter::Destination && is_service(f, r.cluster);
  // From: an outbound sidecar (not a gateway) of one of the service's workloads, whose `app`
  // label names its service, as Istio's conventions have it.
  bool from = l.reporter == ListenerSpec::Reporter::Source && l.name.starts_with("sidecar_") &&
              !l.self.app.empty() && l.self.app == f.service;
  if (!to && !from) return false;
  if (!f.method.empty() && r.method != f.method) return false;
  return f.path_prefix.empty() || r.path.starts_with(f.path_prefix);
}

TapEvent tap_event(const RequestRecord& r, int worker) {
  TapEvent e;
  e.start_unix_us = r.start_unix_us;
  e.duration_us = r.duration_us;
  e.worker = worker;
  e.reporter =
      r.listener->reporter == ListenerSpec::Reporter::Destination ? "destination" : "source";
  e.method = r.method;
  e.authority = r.authority;
  e.path = r.path;
  e.protocol = r.protocol;
  e.request_id = r.request_id;
  e.status = r.status;
  e.flags = r.flags.to_string();
  e.request_bytes = r.request_body_bytes;
  e.response_bytes = r.response_body_bytes;
  e.route = r.route_name;
  e.upstream_host = r.upstream_host;
  e.source_workload = r.source.workload;
  e.source_namespace = r.source.ns;
  e.source_principal = r.source.principal;
  e.destination_workload = r.destination.workload;
  e.destination_namespace = r.destination.ns;
  e.destination_principal = r.destination.principal;
  if (r.cluster && !r.cluster->service_host.empty()) {
    e.destination_service = r.cluster->service_host;
  } else {
    std::string_view host = r.authority;
    if (size_t colon = host.rfind(':'); colon != std::string_view::npos)
      host = host.substr(0, colon);
    e.destination_service = host;
  }
  e.mtls = r.mtls;
  return e;
}

// ---- the hub (control loop) ------------------------------------------------------------------

TapHub::TapHub(Post post) : post_(std::move(post)) {
  filters_.store(std::make_shared<const TapFilters>(), std::memory_order_release);
}

uint64_t TapHub::start(TapFilter filter, Sink sink) {
  uint64_t id = next_id_++;
  sessions_.emplace(id, Session{std::move(filter), std::move(sink)});
  publish();
  return id;
}

void TapHub::stop(uint64_t session) {
  // The sink being called (on_event) runs from a copy, so erasing it here is safe.
  if (sessions_.erase(session) > 0) publish();
}

void TapHub::publish() {
  auto next = std::make_shared<TapFilters>();
  for (const auto& [id, s] : sessions_)
    next->sessions.emplace_back(id, s.filter);
  filters_.store(std::move(next), std::memory_order_release);
  generation_.fetch_add(1, std::memory_order_acq_rel);
  active_.store(static_cast<uint32_t>(sessions_.size()), std::memory_order_relaxed);
}

void TapHub::deliver(TapEvent event, std::vector<uint64_t> ids) {
  post_([this, event = std::move(event), ids = std::move(ids)] { on_event(event, ids); });
}

void TapHub::on_event(const TapEvent& event, const std::vector<uint64_t>& ids) {
  for (uint64_t id : ids) {
    auto it = sessions_.find(id);
    if (it == sessions_.end()) continue;  // closed since the worker matched it
    Sink sink = it->second.sink;
    sink(event);
  }
}

// ---- a worker's observer ---------------------------------------------------------------------

void TapObserver::on_request(const RequestRecord& r) {
  if (!hub_.active()) return;
  // The first look, or the sessions changed since the last one.
  if (uint64_t g = hub_.generation(); g != generation_ || !filters_) {
    filters_ = hub_.filters();
    generation_ = g;
  }
  std::vector<uint64_t> ids;
  for (const auto& [id, filter] : filters_->sessions)
    if (tap_matches(filter, r)) ids.push_back(id);
  if (ids.empty()) return;
  uint64_t second = (r.start_unix_us + r.duration_us) / 1'000'000;
  if (second != second_) {
    second_ = second;
    sent_ = 0;
  }
  if (sent_ >= TapHub::kMaxEventsPerSecond) return hub_.count_dropped();
  ++sent_;
  hub_.deliver(tap_event(r, worker_), std::move(ids));
}

}  // namespace meshbox::data
