#include "plane/data/tracing.h"

#include <fmt/format.h>

namespace meshbox::data {

namespace {

// The port of a cluster named "inbound|PORT||INSTANCE" or "outbound|PORT|SUBSET|HOST".
std::string_view cluster_port(std::string_view name) {
  size_t a = name.find('|');
  if (a == std::string_view::npos) return {};
  size_t b = name.find('|', a + 1);
  return name.substr(a + 1, b == std::string_view::npos ? std::string_view::npos : b - a - 1);
}

// "ip:port" → the parts of a Zipkin endpoint ("[v6]:port" too).
void set_address(trace::Endpoint& e, std::string_view host_port) {
  size_t colon = host_port.rfind(':');
  if (colon == std::string_view::npos) return;
  std::string_view ip = host_port.substr(0, colon);
  if (ip.starts_with('[') && ip.ends_with(']')) ip = ip.substr(1, ip.size() - 2);
  unsigned port = 0;
  for (char c : host_port.substr(colon + 1)) {
    if (c < '0' || c > '9' || port > 65535) return;
    port = port * 10 + static_cast<unsigned>(c - '0');
  }
  if (port > 65535) return;
  e.ip = std::string(ip);
  e.port = static_cast<uint16_t>(port);
}

}  // namespace

trace::Span make_span(const RequestRecord& r) {
  trace::Span s = trace::Span::from_context(*r.trace);
  const ListenerSpec& l = *r.listener;
  bool server = l.reporter == ListenerSpec::Reporter::Destination;
  s.kind = server ? trace::SpanKind::Server : trace::SpanKind::Client;
  s.timestamp_us = r.start_unix_us;
  s.duration_us = r.duration_us;
  // Envoy's operation name: the service and port the request went to, else its authority.
  // An inbound cluster names the app's own port: a server span takes the port it was
  // called on, from the authority ("reviews:9080"), else its service's port.
  std::string_view port = r.cluster ? cluster_port(r.cluster->name) : std::string_view();
  std::string service_port;
  if (server) {
    size_t colon = r.authority.rfind(':');
    std::string_view p = colon == std::string_view::npos ? "" : r.authority.substr(colon + 1);
    if (!p.empty() && p.find_first_not_of("0123456789") == std::string_view::npos) {
      port = p;
    } else {
      service_port =
          std::to_string(l.tracing && l.tracing->service_port ? l.tracing->service_port : 80);
      port = service_port;
    }
  }
  if (r.cluster && !r.cluster->service_host.empty() && !port.empty())
    s.name = fmt::format("{}:{}/*", r.cluster->service_host, port);
  else
    s.name = fmt::format("{}/*", r.authority);
  if (l.tracing) s.local.service_name = l.tracing->service_name;
  s.local.ip = l.address.ip();
  // The other side: the upstream a client span called, the caller of a server span.
  if (server)
    s.remote.ip = std::string(r.downstream_remote);  // the client's IP
  else
    set_address(s.remote, r.upstream_host);
  const PeerView& self = server ? r.destination : r.source;
  s.tags.reserve(16);
  s.tag("component", "proxy");
  if (!self.workload.empty()) s.tag("node_id", std::string(self.workload));
  if (!self.app.empty()) s.tag("istio.canonical_service", std::string(self.app));
  if (!self.version.empty()) s.tag("istio.canonical_revision", std::string(self.version));
  if (!self.ns.empty()) s.tag("istio.namespace", std::string(self.ns));
  s.tag("guid:x-request-id", std::string(r.request_id));
  s.tag("http.method", std::string(r.method));
  // An absolute-form target (an app calling through HTTP_PROXY) is the URL already.
  if (r.path.starts_with("http://") || r.path.starts_with("https://"))
    s.tag("http.url", std::string(r.path));
  else
    s.tag("http.url", fmt::format("http://{}{}", r.authority, r.path));
  s.tag("http.protocol", std::string(r.protocol));
  if (!r.user_agent.empty()) s.tag("user_agent", std::string(r.user_agent));
  s.tag("http.status_code", std::to_string(r.status));
  s.tag("response_flags", r.flags.to_string());
  if (r.cluster) s.tag("upstream_cluster", r.cluster->name);
  if (!r.upstream_host.empty()) s.tag("upstream_address", std::string(r.upstream_host));
  if (!r.route_name.empty()) s.tag("route_name", std::string(r.route_name));
  if (r.status >= 500 || r.status == 0) s.tag("error", "true");
  return s;
}

TracingObserver::~TracingObserver() = default;

void TracingObserver::on_request(const RequestRecord& r) {
  if (!r.trace || !r.trace->sampled || !r.listener->tracing || stopped_) return;
  const TracingSpec& spec = *r.listener->tracing;
  bool same = reporter_ && spec.collector == settings_.collector &&
              spec.collector_host == settings_.collector_host &&
              spec.collector_path == settings_.collector_path;
  if (!same) {
    // The first span, or a config push moved the collector.
    trace::ReporterOptions options;
    options.collector = spec.collector;
    options.host = spec.collector_host;
    options.path = spec.collector_path;
    if (reporter_)
      reporter_->reconfigure(std::move(options));
    else
      reporter_ = std::make_unique<trace::Reporter>(loop_, std::move(options), &stats_);
    settings_ = spec;
  }
  reporter_->report(make_span(r));
}

void TracingObserver::on_stop() {
  stopped_ = true;
  reporter_.reset();  // its timers and connection belong to the worker's loop
}

}  // namespace meshbox::data
