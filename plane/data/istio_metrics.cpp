#include "plane/data/istio_metrics.h"

#include <array>
#include <charconv>
#include <string_view>

namespace meshbox::data {

namespace {

// Istio's label order ([PX] client_request_total.yaml.tmpl), HTTP metrics.
const std::vector<std::string> kHttpLabels = {
    "reporter",
    "source_workload",
    "source_canonical_service",
    "source_canonical_revision",
    "source_workload_namespace",
    "source_principal",
    "source_app",
    "source_version",
    "source_cluster",
    "destination_workload",
    "destination_workload_namespace",
    "destination_principal",
    "destination_app",
    "destination_version",
    "destination_service",
    "destination_canonical_service",
    "destination_canonical_revision",
    "destination_service_name",
    "destination_service_namespace",
    "destination_cluster",
    "request_protocol",
    "response_code",
    "grpc_response_status",
    "response_flags",
    "connection_security_policy",
};

// TCP metrics: the same without response_code and grpc_response_status.
std::vector<std::string> tcp_labels() {
  std::vector<std::string> out;
  for (const auto& l : kHttpLabels)
    if (l != "response_code" && l != "grpc_response_status") out.push_back(l);
  return out;
}

constexpr std::string_view kUnknown = "unknown";
// meshbox has one cluster per mesh; Istio's default cluster id.
constexpr std::string_view kCluster = "Kubernetes";

std::string_view or_unknown(std::string_view v) {
  return v.empty() ? kUnknown : v;
}

/// The label values both kinds share, filled in Istio's order; `code` and `grpc` are skipped
/// for TCP (has_code false).
struct Labels {
  std::array<std::string_view, 25> v;
  size_t n = 0;
  void add(std::string_view s) { v[n++] = s; }
};

void fill(Labels& l, const ListenerSpec& listener, const PeerView& src, const PeerView& dst,
          const ClusterSpec* cluster, std::string_view authority, std::string_view protocol,
          std::string_view code, bool has_code, std::string_view flags, bool mtls) {
  bool destination = listener.reporter == ListenerSpec::Reporter::Destination;
  l.add(destination ? "destination" : "source");
  l.add(or_unknown(src.workload));
  l.add(!src.app.empty() ? src.app : or_unknown(src.workload));
  l.add(!src.version.empty() ? src.version : std::string_view("latest"));
  l.add(or_unknown(src.ns));
  l.add(or_unknown(src.principal));
  l.add(or_unknown(src.app));
  l.add(or_unknown(src.version));
  l.add(src.workload.empty() ? kUnknown : kCluster);
  l.add(or_unknown(dst.workload));
  l.add(or_unknown(dst.ns));
  l.add(or_unknown(dst.principal));
  l.add(or_unknown(dst.app));
  l.add(or_unknown(dst.version));
  // destination_service: the cluster's service, else the Host the client asked for.
  std::string_view host = authority.substr(
      0, authority.rfind(':') == std::string_view::npos ? authority.size() : authority.rfind(':'));
  std::string_view service =
      cluster && !cluster->service_host.empty() ? cluster->service_host : host;
  l.add(or_unknown(service));
  l.add(!dst.app.empty() ? dst.app : or_unknown(dst.workload));
  l.add(!dst.version.empty() ? dst.version : std::string_view("latest"));
  l.add(or_unknown(cluster && !cluster->service_name.empty() ? cluster->service_name : service));
  l.add(or_unknown(cluster ? std::string_view(cluster->service_ns) : std::string_view()));
  l.add(dst.workload.empty() ? kUnknown : kCluster);
  l.add(protocol);
  if (has_code) {
    l.add(code);
    l.add("");
  }
  l.add(flags);
  // Known to the destination only: what the connection it received was.
  l.add(!destination ? kUnknown : mtls ? std::string_view("mutual_tls") : std::string_view("none"));
}

}  // namespace

IstioMetrics::IstioMetrics(stats::Registry& registry)
    : requests(registry.counter("istio_requests_total",
                                "Requests handled by a proxy (Istio's standard metric).",
                                kHttpLabels)),
      duration(registry.histogram("istio_request_duration_milliseconds",
                                  "Request duration in milliseconds, head to last byte.",
                                  kHttpLabels)),
      request_bytes(
          registry.histogram("istio_request_bytes", "Request body size in bytes.", kHttpLabels)),
      response_bytes(
          registry.histogram("istio_response_bytes", "Response body size in bytes.", kHttpLabels)),
      tcp_opened(registry.counter("istio_tcp_connections_opened_total",
                                  "TCP connections opened by a tcp listener.", tcp_labels())),
      tcp_closed(registry.counter("istio_tcp_connections_closed_total",
                                  "TCP connections of a tcp listener closed.", tcp_labels())),
      tcp_received(registry.counter("istio_tcp_received_bytes_total",
                                    "Bytes received from TCP clients (counted at close).",
                                    tcp_labels())),
      tcp_sent(registry.counter("istio_tcp_sent_bytes_total",
                                "Bytes sent to TCP clients (counted at close).", tcp_labels())),
      worker_requests(registry.counter("meshbox_worker_requests_total",
                                       "HTTP requests each proxy worker served.", {"worker"})) {}

MetricsObserver::MetricsObserver(IstioMetrics& metrics, size_t shard) : m_(metrics), shard_(shard) {
  std::string id = std::to_string(shard);
  std::string_view v[] = {id};
  worker_requests_ = m_.worker_requests.shard(shard_).counter(stats::LabelKey(v));
}

const std::string& MetricsObserver::flags_text(const ResponseFlags& flags) {
  auto [it, inserted] = flag_texts_.try_emplace(flags.bits());
  if (inserted) it->second = flags.to_string();
  return it->second;
}

void MetricsObserver::on_request(const RequestRecord& r) {
  worker_requests_.inc();
  if (!r.listener->metrics) return;
  // Everything fill() reads, as values: the same inputs make the same labels.
  const ClusterSpec* cluster = r.cluster;
  const bool own_service = cluster && !cluster->service_host.empty();
  const std::string_view inputs[13] = {
      r.source.workload,
      r.source.app,
      r.source.version,
      r.source.ns,
      r.source.principal,
      r.destination.workload,
      r.destination.ns,
      r.destination.principal,
      r.destination.app,
      r.destination.version,
      own_service ? std::string_view(cluster->service_host) : r.authority,
      cluster ? std::string_view(cluster->service_name) : std::string_view(),
      cluster ? std::string_view(cluster->service_ns) : std::string_view(),
  };
  const Scalars scalars{r.listener->reporter, r.status, r.flags.bits(), r.mtls};
  Recent* hit = nullptr;
  for (Recent& c : recent_) {
    if (c.scalars == scalars && c.inputs.equals(inputs)) {
      hit = &c;
      break;
    }
  }
  if (!hit) {
    char code[8];
    auto [end, ec] = std::to_chars(code, code + sizeof code, r.status);
    std::string_view code_text(code, ec == std::errc() ? static_cast<size_t>(end - code) : 0);
    Labels l;
    fill(l, *r.listener, r.source, r.destination, r.cluster, r.authority, "http", code_text, true,
         flags_text(r.flags), r.mtls);
    std::span<const std::string_view> values(l.v.data(), l.n);
    stats::LabelKey key(values);
    stats::Counter requests = m_.requests.shard(shard_).counter(key);
    auto [it, inserted] = http_series_.try_emplace(requests.cell());
    HttpSeries& series = it->second;
    if (inserted) {
      series.duration = m_.duration.shard(shard_).histogram(key);
      series.request_bytes = m_.request_bytes.shard(shard_).histogram(key);
      series.response_bytes = m_.response_bytes.shard(shard_).histogram(key);
    }
    hit = &recent_[next_recent_++ % recent_.size()];
    hit->inputs.assign(inputs);
    hit->scalars = scalars;
    hit->requests = requests;
    hit->series = &series;  // std::unordered_map: its elements never move
  }
  hit->requests.inc();
  HttpSeries& s = *hit->series;
  s.duration.record(static_cast<double>(r.duration_us) / 1000.0);
  s.request_bytes.record(static_cast<double>(r.request_body_bytes));
  s.response_bytes.record(static_cast<double>(r.response_body_bytes));
}

void MetricsObserver::on_connection_opened(const ConnectionRecord& r) {
  if (!r.listener->metrics) return;
  Labels l;
  fill(l, *r.listener, r.source, r.destination, r.cluster, {}, "tcp", {}, false,
       flags_text(r.flags), r.mtls);
  stats::LabelKey key(std::span<const std::string_view>(l.v.data(), l.n));
  m_.tcp_opened.shard(shard_).counter(key).inc();
}

void MetricsObserver::on_connection(const ConnectionRecord& r) {
  if (!r.listener->metrics) return;
  Labels l;
  fill(l, *r.listener, r.source, r.destination, r.cluster, {}, "tcp", {}, false,
       flags_text(r.flags), r.mtls);
  stats::LabelKey key(std::span<const std::string_view>(l.v.data(), l.n));
  m_.tcp_closed.shard(shard_).counter(key).inc();
  m_.tcp_received.shard(shard_).counter(key).inc(r.received_bytes);
  m_.tcp_sent.shard(shard_).counter(key).inc(r.sent_bytes);
}

}  // namespace meshbox::data
