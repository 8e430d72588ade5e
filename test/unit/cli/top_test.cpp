// meshbox top's numbers: two /stats/edges snapshots → rate, success, p50/p99, busiest first.
#include <doctest/doctest.h>

#include <string>

#include "cli/top.h"

namespace meshbox::cli {
namespace {

std::string edge(const std::string& dst, const std::string& version, int requests, int errors,
                 const std::string& buckets, bool mtls = true) {
  return R"({"source_workload":"productpage-v1","source_namespace":"default",)"
         R"("source_app":"productpage","source_version":"v1","destination_workload":")" +
         dst +
         R"(","destination_namespace":"default","destination_app":"reviews",)"
         R"("destination_version":")" +
         version +
         R"(","destination_service":"reviews.default.svc.cluster.local",)"
         R"("reporter":"source","requests":)" +
         std::to_string(requests) + R"(,"errors":)" + std::to_string(errors) + R"(,"mtls":)" +
         (mtls ? "true" : "false") + R"(,"duration_sum_ms":1,"duration_buckets":)" + buckets + "}";
}

EdgesSnapshot snap(int64_t ts, const std::string& edges) {
  auto s = parse_edges(R"({"timestamp_ms":)" + std::to_string(ts) +
                       R"(,"bounds":[1,10,100],"edges":[)" + edges + "]}");
  REQUIRE(s);
  return *s;
}

TEST_CASE("top: rates, success and quantiles over the interval, busiest first") {
  EdgesSnapshot a = snap(1000, edge("reviews-v1", "v1", 10, 0, "[10,10,10,10]") + "," +
                                   edge("reviews-v2", "v2", 5, 0, "[0,5,5,5]"));
  EdgesSnapshot b = snap(3000, edge("reviews-v1", "v1", 14, 0, "[14,14,14,14]") + "," +
                                   edge("reviews-v2", "v2", 25, 2, "[0,5,25,25]") + "," +
                                   edge("reviews-v3", "v3", 2, 0, "[0,2,2,2]", false));
  auto rows = top_rows(a, b);
  REQUIRE(rows.size() == 3);
  CHECK(rows[0].destination == "reviews-v2 (v2)");
  CHECK(rows[0].source == "productpage-v1 (v1)");
  CHECK(rows[0].rps == doctest::Approx(10));       // 20 requests in 2 s
  CHECK(rows[0].success == doctest::Approx(0.9));  // 2 of 20 failed
  CHECK(rows[0].p50 == doctest::Approx(10 + 90 * 0.5));
  CHECK(rows[0].p99 == doctest::Approx(10 + 90 * 0.99));
  CHECK(rows[1].destination == "reviews-v1 (v1)");
  CHECK(rows[1].rps == doctest::Approx(2));
  CHECK(rows[1].p99 == doctest::Approx(0.99));
  CHECK(rows[2].destination == "reviews-v3 (v3)");  // new since a: counted from zero
  CHECK(rows[2].rps == doctest::Approx(1));
  CHECK_FALSE(rows[2].mtls);

  std::string text = format_top(rows);
  CHECK(text.starts_with("SOURCE"));
  CHECK(text.find("reviews-v2 (v2)") < text.find("reviews-v1 (v1)"));
  CHECK(text.find("90.00%") != std::string::npos);
}

TEST_CASE("top: an idle pair has no success or latency; a restart counts from zero") {
  EdgesSnapshot a = snap(0, edge("reviews-v1", "v1", 50, 0, "[50,50,50,50]"));
  EdgesSnapshot idle = snap(1000, edge("reviews-v1", "v1", 50, 0, "[50,50,50,50]"));
  auto rows = top_rows(a, idle);
  REQUIRE(rows.size() == 1);
  CHECK(rows[0].rps == 0);
  CHECK(rows[0].success < 0);
  CHECK(rows[0].p99 < 0);
  CHECK(format_top(rows).find("   -   ") != std::string::npos);

  EdgesSnapshot restarted = snap(2000, edge("reviews-v1", "v1", 3, 3, "[3,3,3,3]"));
  rows = top_rows(idle, restarted);
  REQUIRE(rows.size() == 1);
  CHECK(rows[0].rps == doctest::Approx(3));
  CHECK(rows[0].success == doctest::Approx(0));
}

TEST_CASE("top: what is not a /stats/edges answer is an error") {
  CHECK_FALSE(parse_edges("nope"));
  CHECK_FALSE(parse_edges("{}"));
  CHECK_FALSE(parse_edges(R"({"timestamp_ms":1,"bounds":{},"edges":[]})"));
  auto empty = parse_edges(R"({"timestamp_ms":1,"bounds":[],"edges":[]})");
  REQUIRE(empty);
  CHECK(top_rows(*empty, *empty).empty());
  CHECK(format_top({}) == "SOURCE   DESTINATION   SERVICE   RPS   SUCCESS   P50   P99   MTLS\n");
}

}  // namespace
}  // namespace meshbox::cli
