// Span: one finished span, as a proxy hop records it, and its Zipkin v2 JSON encoding
// (https://zipkin.io/zipkin-api/#/default/post_spans: a JSON array of span objects; ids in
// lower-case hex; timestamp and duration in integer microseconds; tags a string map), which
// Zipkin, Jaeger and the OpenTelemetry collector's zipkin receiver accept. Plain value types
// and pure functions; thread-agnostic.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/base/json.h"
#include "core/trace/trace_context.h"

namespace meshbox::trace {

enum class SpanKind : uint8_t { Server, Client };

/// A Zipkin endpoint. Empty fields are left out of the JSON; an endpoint with none at all is
/// left out whole.
struct Endpoint {
  std::string service_name;
  std::string ip;  // IPv4 or IPv6 text ("10.0.0.1", "::1"); written as ipv4 or ipv6
  uint16_t port = 0;

  bool empty() const { return service_name.empty() && ip.empty() && port == 0; }
};

struct Span {
  TraceId trace_id;
  uint64_t id = 0;
  uint64_t parent_id = 0;  // 0: a root span (no parentId)
  std::string name;        // Zipkin lower-cases it; Envoy uses "<host>:<port>/*" style names
  SpanKind kind = SpanKind::Server;
  uint64_t timestamp_us = 0;  // start, microseconds since the Unix epoch
  uint64_t duration_us = 0;   // written as at least 1 (Zipkin drops a zero duration)
  Endpoint local;
  Endpoint remote;
  std::vector<std::pair<std::string, std::string>> tags;  // in order; keys should be unique
  bool shared = false;  // a server span sharing its client's id (SpanContext::shared)
  bool debug = false;

  /// A span for `ctx`: its trace, span and parent ids, shared and debug flags.
  static Span from_context(const SpanContext& ctx) {
    Span s;
    s.trace_id = ctx.trace_id;
    s.id = ctx.span_id;
    s.parent_id = ctx.parent_id;
    s.shared = ctx.shared;
    s.debug = ctx.debug;
    return s;
  }
  void tag(std::string key, std::string value) {
    tags.emplace_back(std::move(key), std::move(value));
  }
};

/// Writes one span object into `w` (inside an array or as the next value).
void write_zipkin(json::Writer& w, const Span& span);
/// Appends one span object, already encoded, to `out` (for the reporter's buffer).
void append_zipkin(std::string& out, const Span& span);
/// A whole request body: the JSON array of `spans`.
std::string encode_zipkin(const std::vector<Span>& spans);

}  // namespace meshbox::trace
