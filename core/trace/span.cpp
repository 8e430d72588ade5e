#include "core/trace/span.h"

#include <algorithm>

namespace meshbox::trace {
namespace {

void write_endpoint(json::Writer& w, std::string_view key, const Endpoint& e) {
  if (e.empty()) return;
  w.key(key).begin_object();
  if (!e.service_name.empty()) w.field("serviceName", e.service_name);
  if (!e.ip.empty()) w.field(e.ip.find(':') != std::string::npos ? "ipv6" : "ipv4", e.ip);
  if (e.port != 0) w.field("port", e.port);
  w.end_object();
}

}  // namespace

void write_zipkin(json::Writer& w, const Span& span) {
  w.begin_object();
  w.field("traceId", trace_id_hex(span.trace_id));
  w.field("id", span_id_hex(span.id));
  if (span.parent_id != 0) w.field("parentId", span_id_hex(span.parent_id));
  if (!span.name.empty()) w.field("name", span.name);
  w.field("kind", span.kind == SpanKind::Server ? "SERVER" : "CLIENT");
  w.field("timestamp", span.timestamp_us);
  w.field("duration", std::max<uint64_t>(span.duration_us, 1));
  write_endpoint(w, "localEndpoint", span.local);
  write_endpoint(w, "remoteEndpoint", span.remote);
  if (!span.tags.empty()) {
    w.key("tags").begin_object();
    for (const auto& [k, v] : span.tags)
      w.field(k, v);
    w.end_object();
  }
  if (span.shared) w.field("shared", true);
  if (span.debug) w.field("debug", true);
  w.end_object();
}

void append_zipkin(std::string& out, const Span& span) {
  json::Writer w;
  write_zipkin(w, span);
  out += w.str();
}

std::string encode_zipkin(const std::vector<Span>& spans) {
  json::Writer w;
  w.begin_array();
  for (const Span& s : spans)
    write_zipkin(w, s);
  w.end_array();
  return w.take();
}

}  // namespace meshbox::trace
