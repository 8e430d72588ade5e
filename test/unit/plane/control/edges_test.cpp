// collect_edges(): Istio's request metrics, recorded in two worker shards by both reporters,
// become one edge per workload pair, counted once (the source's report preferred), with
// errors, mTLS and cumulative duration buckets; edges_json() writes them.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "core/base/json.h"
#include "core/stats/registry.h"
#include "plane/control/edges.h"

namespace meshbox::control {
namespace {

// A subset of Istio's labels, in another order than Istio's: columns are found by name.
const std::vector<std::string> kLabels = {"reporter",
                                          "source_workload",
                                          "source_workload_namespace",
                                          "source_app",
                                          "source_version",
                                          "source_principal",
                                          "destination_workload",
                                          "destination_workload_namespace",
                                          "destination_app",
                                          "destination_version",
                                          "destination_principal",
                                          "destination_service",
                                          "response_code",
                                          "connection_security_policy"};
const std::vector<double> kBounds = {1, 10, 100};

struct Call {
  std::string reporter, src, src_version, dst, dst_version, code = "200";
  std::string src_principal = "unknown", dst_principal = "unknown", security = "unknown";
  std::string service = "svc.default.svc.cluster.local";
};

struct Fixture {
  stats::Registry reg{2};
  stats::Family& requests = reg.counter("istio_requests_total", "h", kLabels);
  stats::Family& duration =
      reg.histogram("istio_request_duration_milliseconds", "h", kLabels, kBounds);

  void record(size_t shard, const Call& c, double ms, uint64_t n = 1) {
    std::string_view v[] = {c.reporter,      c.src,     "default", c.src,     c.src_version,
                            c.src_principal, c.dst,     "default", c.dst,     c.dst_version,
                            c.dst_principal, c.service, c.code,    c.security};
    stats::LabelKey key(v);
    requests.shard(shard).counter(key).inc(n);
    for (uint64_t i = 0; i < n; ++i)
      duration.shard(shard).histogram(key).record(ms);
  }
};

TEST_CASE("edges: one per workload pair, summed over codes and workers, source preferred") {
  Fixture f;
  Call gw{.reporter = "source",
          .src = "gw",
          .src_version = "unknown",
          .dst = "web-v1",
          .dst_version = "v1"};
  f.record(0, gw, 0.5, 3);
  f.record(1, gw, 5, 2);
  Call gw503 = gw;
  gw503.code = "503";
  f.record(1, gw503, 50);
  // The destination saw the same calls: not counted again, but it tells us they were mTLS.
  Call in = gw;
  in.reporter = "destination";
  in.security = "mutual_tls";
  f.record(0, in, 0.2, 6);
  // Only the destination reported this one (a caller without a sidecar).
  Call outside{.reporter = "destination",
               .src = "unknown",
               .src_version = "unknown",
               .dst = "web-v2",
               .dst_version = "v2",
               .code = "500",
               .security = "none"};
  f.record(1, outside, 200, 4);

  std::vector<Edge> edges = collect_edges(&f.requests, &f.duration);
  REQUIRE(edges.size() == 2);
  const Edge& a = edges[0];
  CHECK(a.source_workload == "gw");
  CHECK(a.destination_workload == "web-v1");
  CHECK(a.destination_version == "v1");
  CHECK(a.destination_app == "web-v1");
  CHECK(a.destination_service == "svc.default.svc.cluster.local");
  CHECK(a.reporter == "source");
  CHECK(a.requests == 6);
  CHECK(a.errors == 1);
  CHECK(a.mtls);
  CHECK(a.duration_buckets == std::vector<uint64_t>{3, 5, 6, 6});
  CHECK(a.duration_sum_ms == doctest::Approx(3 * 0.5 + 2 * 5 + 50));
  const Edge& b = edges[1];
  CHECK(b.source_workload == "unknown");
  CHECK(b.destination_workload == "web-v2");
  CHECK(b.reporter == "destination");
  CHECK(b.requests == 4);
  CHECK(b.errors == 4);
  CHECK_FALSE(b.mtls);
  CHECK(b.duration_buckets == std::vector<uint64_t>{0, 0, 0, 4});
}

TEST_CASE("edges: a source that knows both principals called over mTLS") {
  Fixture f;
  Call c{.reporter = "source",
         .src = "a",
         .src_version = "v1",
         .dst = "b",
         .dst_version = "v1",
         .src_principal = "spiffe://cluster.local/ns/default/sa/a",
         .dst_principal = "spiffe://cluster.local/ns/default/sa/b"};
  f.record(0, c, 1);
  Call plain{
      .reporter = "source", .src = "a", .src_version = "v1", .dst = "c", .dst_version = "v1"};
  f.record(0, plain, 1);
  std::vector<Edge> edges = collect_edges(&f.requests, &f.duration);
  REQUIRE(edges.size() == 2);
  CHECK(edges[0].destination_workload == "b");
  CHECK(edges[0].mtls);
  CHECK(edges[1].destination_workload == "c");
  CHECK_FALSE(edges[1].mtls);
}

TEST_CASE("edges: no families, no edges; the JSON carries bounds, timestamp and buckets") {
  CHECK(collect_edges(nullptr, nullptr).empty());
  Fixture f;
  CHECK(collect_edges(&f.requests, &f.duration).empty());
  Call c{.reporter = "source", .src = "a", .src_version = "v1", .dst = "b", .dst_version = "v2"};
  f.record(0, c, 20, 2);
  std::vector<Edge> only_counts = collect_edges(&f.requests, nullptr);
  REQUIRE(only_counts.size() == 1);
  CHECK(only_counts[0].duration_buckets.empty());

  auto doc = json::parse(edges_json(collect_edges(&f.requests, &f.duration), kBounds, 1234));
  REQUIRE(doc);
  CHECK(doc->get("timestamp_ms")->number == 1234);
  REQUIRE(doc->get("bounds")->array.size() == 3);
  CHECK(doc->get("bounds")->array[2].number == 100);
  const json::Value& e = doc->get("edges")->array.at(0);
  CHECK(e.get("source_workload")->as_string() == "a");
  CHECK(e.get("destination_version")->as_string() == "v2");
  CHECK(e.get("requests")->number == 2);
  CHECK(e.get("mtls")->boolean == false);
  REQUIRE(e.get("duration_buckets")->array.size() == 4);
  CHECK(e.get("duration_buckets")->array[2].number == 2);
}

}  // namespace
}  // namespace meshbox::control
