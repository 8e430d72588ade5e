#include "plane/control/tap_api.h"

#include <charconv>
#include <memory>

#include <fmt/chrono.h>
#include <fmt/format.h>

#include "core/base/json.h"

namespace meshbox::control {

namespace {

/// "2026-11-26T14:40:01.123456Z"
std::string rfc3339(uint64_t unix_us) {
  std::time_t secs = static_cast<std::time_t>(unix_us / 1'000'000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  return fmt::format("{:%Y-%m-%dT%H:%M:%S}.{:06}Z", tm, unix_us % 1'000'000);
}

}  // namespace

std::string tap_event_json(const TapEvent& e) {
  json::Writer w;
  w.begin_object()
      .field("time", rfc3339(e.start_unix_us))
      .field("reporter", e.reporter)
      .field("method", e.method)
      .field("authority", e.authority)
      .field("path", e.path)
      .field("protocol", e.protocol)
      .field("status", e.status)
      .field("flags", e.flags)
      .field("duration_ms", static_cast<double>(e.duration_us) / 1000.0)
      .field("request_bytes", e.request_bytes)
      .field("response_bytes", e.response_bytes)
      .field("request_id", e.request_id)
      .field("route", e.route)
      .field("upstream_host", e.upstream_host)
      .field("mtls", e.mtls)
      .field("worker", e.worker);
  w.key("source")
      .begin_object()
      .field("workload", e.source_workload)
      .field("namespace", e.source_namespace)
      .field("principal", e.source_principal)
      .end_object();
  w.key("destination")
      .begin_object()
      .field("workload", e.destination_workload)
      .field("namespace", e.destination_namespace)
      .field("principal", e.destination_principal)
      .field("service", e.destination_service)
      .end_object();
  w.end_object();
  return w.take();
}

void serve_tap(TapSource* tap, HttpRequest& req, Respond respond) {
  if (!tap) return respond(error_response(503, "tap needs the proxy workers of `meshbox run`"));
  TapFilter filter;
  filter.service = req.param("service").value_or("");
  if (filter.service.empty()) return respond(error_response(400, "service= is required"));
  filter.path_prefix = req.param("path").value_or("");
  if (!filter.path_prefix.empty() && filter.path_prefix.front() != '/')
    return respond(error_response(400, "path= must start with '/'"));
  filter.method = req.param("method").value_or("");
  uint64_t max = 0;  // 0 = until the client goes
  if (auto m = req.param("max")) {
    auto [end, ec] = std::from_chars(m->data(), m->data() + m->size(), max);
    if (ec != std::errc() || end != m->data() + m->size())
      return respond(error_response(400, "max= must be a whole number"));
  }

  auto stream = std::make_shared<ResponseStream>();
  auto sent = std::make_shared<uint64_t>(0);
  auto id = std::make_shared<uint64_t>(0);
  // The session holds the stream (through its sink) until it stops; the stream's close
  // callback stops the session. No cycle: the stream does not hold the session.
  *id = tap->start(std::move(filter), [tap, stream, sent, id, max](const TapEvent& e) {
    if (!stream->write(tap_event_json(e) + "\n")) return tap->stop(*id);
    if (max > 0 && ++*sent >= max) {
      stream->end();
      tap->stop(*id);
    }
  });
  stream->on_close([tap, session = *id] { tap->stop(session); });
  HttpResponse r;
  r.content_type = "application/x-ndjson";
  r.stream = std::move(stream);
  respond(std::move(r));
}

HttpResponse tap_sessions(const TapSource* tap) {
  json::Writer w;
  w.begin_object()
      .field("active", tap ? tap->sessions() : 0)
      .field("dropped", tap ? tap->dropped() : 0)
      .end_object();
  return json_response(200, w.take());
}

}  // namespace meshbox::control
