// Tracing: turns each sampled request of a traced listener (ListenerSpec::tracing) into a
// Zipkin span and hands it to the worker's reporter (core/trace/reporter.h), which batches
// spans to the collector without ever blocking: a full buffer or a collector that is down
// drops spans and counts them. Envoy's spans per hop: a gateway or an outbound sidecar makes
// a CLIENT span, an inbound sidecar a SERVER span, each a child of the caller's.
//
// One TracingObserver per worker, a TelemetryObserver on the worker's thread (Loop thread
// only); stats() may be read from any thread (atomics), for as long as the observer lives.
#pragma once

#include <memory>

#include "core/loop/loop.h"
#include "core/trace/reporter.h"
#include "plane/data/telemetry.h"

namespace meshbox::data {

/// The span of one request: its ids from `r.trace`, Envoy's name "<service host>:<port>/*"
/// and tags (http.method, http.url, http.status_code, response_flags, upstream_cluster,
/// istio.canonical_service, guid:x-request-id, error for 5xx or no response, …).
trace::Span make_span(const RequestRecord& r);

class TracingObserver : public TelemetryObserver {
 public:
  /// `loop`: the worker's; the reporter is made on the first sampled span.
  explicit TracingObserver(loop::Loop& loop) : loop_(loop) {}
  ~TracingObserver() override;

  void on_request(const RequestRecord& r) override;
  /// The worker stops: the reporter is released (what it still holds is dropped).
  void on_stop() override;

  /// Thread-safe: the counters of this worker's reporter, over its whole life.
  const trace::ReporterStats& stats() const { return stats_; }

 private:
  loop::Loop& loop_;
  trace::ReporterStats stats_;
  std::unique_ptr<trace::Reporter> reporter_;
  TracingSpec settings_;  // the reporter's collector
  bool stopped_ = false;
};

}  // namespace meshbox::data
