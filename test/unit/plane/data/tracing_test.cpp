// Tests for plane/data/tracing.h: the span a proxy hop makes of a finished request — kind by
// reporter, Envoy's "<service host>:<port>/*" name (an inbound sidecar's from the port it was
// called on, else its service port), the request's URL whether its target was origin- or
// absolute-form, and the tags (x-request-id, status, flags, cluster, error for 5xx).
#include "plane/data/tracing.h"

#include <doctest/doctest.h>

#include <memory>

#include "core/trace/trace_context.h"

namespace meshbox::data {
namespace {

std::string tag(const trace::Span& s, const std::string& key) {
  for (const auto& [k, v] : s.tags)
    if (k == key) return v;
  return "<none>";
}

struct Fixture {
  ListenerSpec listener;
  ClusterSpec cluster;
  trace::SpanContext ctx;
  RequestRecord r;

  Fixture(ListenerSpec::Reporter reporter, std::string cluster_name) {
    auto spec = std::make_shared<TracingSpec>();
    spec->service_name = "reviews.default";
    spec->service_port = 9080;
    listener.tracing = TracingSpecPtr(spec);
    listener.reporter = reporter;
    listener.address = *loop::Address::parse("127.0.0.1:15006");
    cluster.name = std::move(cluster_name);
    cluster.service_host = "reviews.default.svc.cluster.local";
    ctx.trace_id = {1, 2};
    ctx.span_id = 3;
    ctx.parent_id = 4;
    ctx.sampled = true;
    r.listener = &listener;
    r.cluster = &cluster;
    r.trace = &ctx;
    r.method = "GET";
    r.request_id = "req-1";
    r.status = 200;
    r.start_unix_us = 1'000'000;
    r.duration_us = 250;
  }
};

TEST_CASE("an outbound hop is a client span named after the service and port it called") {
  Fixture f(ListenerSpec::Reporter::Source, "outbound|9080|v2|reviews.default.svc.cluster.local");
  f.r.path = "http://reviews:9080/reviews/0";  // through HTTP_PROXY: absolute form
  f.r.authority = "reviews:9080";
  f.r.upstream_host = "127.0.0.1:41000";
  f.r.source = {"productpage-v1", "default", "productpage", "v1", ""};
  trace::Span s = make_span(f.r);
  CHECK(s.kind == trace::SpanKind::Client);
  CHECK(s.name == "reviews.default.svc.cluster.local:9080/*");
  CHECK(s.trace_id == trace::TraceId{1, 2});
  CHECK(s.id == 3);
  CHECK(s.parent_id == 4);
  CHECK(s.timestamp_us == 1'000'000);
  CHECK(s.duration_us == 250);
  CHECK(s.local.service_name == "reviews.default");
  CHECK(s.remote.ip == "127.0.0.1");
  CHECK(s.remote.port == 41000);
  CHECK(tag(s, "http.url") == "http://reviews:9080/reviews/0");
  CHECK(tag(s, "guid:x-request-id") == "req-1");
  CHECK(tag(s, "http.status_code") == "200");
  CHECK(tag(s, "response_flags") == "-");
  CHECK(tag(s, "node_id") == "productpage-v1");
  CHECK(tag(s, "istio.canonical_service") == "productpage");
  CHECK(tag(s, "upstream_cluster") == "outbound|9080|v2|reviews.default.svc.cluster.local");
  CHECK(tag(s, "error") == "<none>");
}

TEST_CASE("an inbound hop is a server span; its port is the one called, else the service's") {
  Fixture f(ListenerSpec::Reporter::Destination, "inbound|41000||reviews-v2");
  f.r.path = "/reviews/0";
  f.r.authority = "reviews:9080";
  f.r.downstream_remote = "10.0.0.7";
  f.r.destination = {"reviews-v2", "default", "reviews", "v2", ""};
  trace::Span s = make_span(f.r);
  CHECK(s.kind == trace::SpanKind::Server);
  CHECK(s.name == "reviews.default.svc.cluster.local:9080/*");  // not the app's 41000
  CHECK(s.remote.ip == "10.0.0.7");
  CHECK(tag(s, "http.url") == "http://reviews:9080/reviews/0");
  CHECK(tag(s, "node_id") == "reviews-v2");

  f.r.authority = "bookinfo.example";  // no port: the service's
  CHECK(make_span(f.r).name == "reviews.default.svc.cluster.local:9080/*");
  f.r.authority = "reviews:9443";
  CHECK(make_span(f.r).name == "reviews.default.svc.cluster.local:9443/*");
}

TEST_CASE("a 5xx or a request without a response is an error; flags are Envoy's") {
  Fixture f(ListenerSpec::Reporter::Source, "outbound|9080||reviews.default.svc.cluster.local");
  f.r.status = 503;
  f.r.flags.add(ResponseFlag::UpstreamConnectFailure);
  trace::Span s = make_span(f.r);
  CHECK(tag(s, "error") == "true");
  CHECK(tag(s, "response_flags") == "UF");
  f.r.status = 0;
  CHECK(tag(make_span(f.r), "error") == "true");
  f.r.status = 404;
  CHECK(tag(make_span(f.r), "error") == "<none>");
  // No cluster (no route): the authority names the span.
  f.r.cluster = nullptr;
  f.r.authority = "nowhere:8080";
  CHECK(make_span(f.r).name == "nowhere:8080/*");
}

}  // namespace
}  // namespace meshbox::data
