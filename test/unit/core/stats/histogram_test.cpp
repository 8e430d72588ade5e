// Histograms: Envoy's default bounds, `le` inclusive, cumulative buckets, sum and count as
// the Prometheus text shows them.
#include <doctest/doctest.h>

#include <limits>
#include <string>

#include "core/stats/registry.h"
#include "test/unit/core/stats/text.h"

namespace meshbox::stats {
namespace {

TEST_CASE("a value equal to a bound is counted in that bound's bucket; buckets are cumulative") {
  Registry r(1);
  Family& f = r.histogram("h_ms", "help", {"k"});
  std::string_view v[] = {"x"};
  Histogram h = f.shard(0).histogram(LabelKey(v));
  h.record(0.5);      // le="0.5" (inclusive)
  h.record(0.5001);   // le="1"
  h.record(1);        // le="1"
  h.record(3600000);  // the last finite bound
  h.record(3600001);  // +Inf only
  h.record(0);        // the first bucket
  std::string out;
  r.write_prometheus(out);
  test::Text t(out);
  CHECK(t.value(R"(h_ms_bucket{k="x",le="0.5"})") == "2");
  CHECK(t.value(R"(h_ms_bucket{k="x",le="1"})") == "4");
  CHECK(t.value(R"(h_ms_bucket{k="x",le="5"})") == "4");
  CHECK(t.value(R"(h_ms_bucket{k="x",le="1800000"})") == "4");
  CHECK(t.value(R"(h_ms_bucket{k="x",le="3600000"})") == "5");
  CHECK(t.value(R"(h_ms_bucket{k="x",le="+Inf"})") == "6");
  CHECK(t.value(R"(h_ms_count{k="x"})") == "6");
  CHECK(t.value(R"(h_ms_sum{k="x"})") == "7200003.0001");
  CHECK(out.find("# TYPE h_ms histogram\n") != std::string::npos);
}

TEST_CASE("the default bounds are Envoy's, printed like %.32g, in order, then +Inf") {
  Registry r(1);
  r.histogram("d", "help");
  std::string out;
  r.write_prometheus(out);
  const char* expected =
      "# HELP d help\n# TYPE d histogram\n"
      "d_bucket{le=\"0.5\"} 0\nd_bucket{le=\"1\"} 0\nd_bucket{le=\"5\"} 0\n"
      "d_bucket{le=\"10\"} 0\nd_bucket{le=\"25\"} 0\nd_bucket{le=\"50\"} 0\n"
      "d_bucket{le=\"100\"} 0\nd_bucket{le=\"250\"} 0\nd_bucket{le=\"500\"} 0\n"
      "d_bucket{le=\"1000\"} 0\nd_bucket{le=\"2500\"} 0\nd_bucket{le=\"5000\"} 0\n"
      "d_bucket{le=\"10000\"} 0\nd_bucket{le=\"30000\"} 0\nd_bucket{le=\"60000\"} 0\n"
      "d_bucket{le=\"300000\"} 0\nd_bucket{le=\"600000\"} 0\nd_bucket{le=\"1800000\"} 0\n"
      "d_bucket{le=\"3600000\"} 0\nd_bucket{le=\"+Inf\"} 0\nd_sum 0\nd_count 0\n";
  CHECK(out == expected);
}

TEST_CASE("custom bounds; every bucket boundary and the values between them") {
  Registry r(1);
  const double bounds[] = {0.1, 2, 3};
  Family& f = r.histogram("c", "help", {}, bounds);
  Histogram h = f.shard(0).histogram();
  for (double v : {0.1, 0.1, 2.0, 2.5, 3.0, 3.5, -1.0}) {
    h.record(v);
  }
  h.record(std::numeric_limits<double>::quiet_NaN());  // ignored
  std::string out;
  r.write_prometheus(out);
  test::Text t(out);
  CHECK(t.value(R"(c_bucket{le="0.10000000000000000555111512312578"})") == "3");  // -1, 0.1 ×2
  CHECK(t.value(R"(c_bucket{le="2"})") == "4");
  CHECK(t.value(R"(c_bucket{le="3"})") == "6");
  CHECK(t.value(R"(c_bucket{le="+Inf"})") == "7");
  CHECK(t.value("c_count") == "7");
  CHECK(t.value("c_sum") == "10.2");
}

TEST_CASE("shards are summed per label set: bucket by bucket, sum and count") {
  Registry r(3);
  Family& f = r.histogram("m", "help", {"k"});
  std::string_view a[] = {"a"}, b[] = {"b"};
  f.shard(0).histogram(LabelKey(a)).record(7);
  f.shard(1).histogram(LabelKey(a)).record(70);
  f.shard(2).histogram(LabelKey(a)).record(7);
  f.shard(2).histogram(LabelKey(b)).record(1);
  std::string out;
  r.write_prometheus(out);
  test::Text t(out);
  CHECK(t.value(R"(m_bucket{k="a",le="5"})") == "0");
  CHECK(t.value(R"(m_bucket{k="a",le="10"})") == "2");
  CHECK(t.value(R"(m_bucket{k="a",le="100"})") == "3");
  CHECK(t.value(R"(m_count{k="a"})") == "3");
  CHECK(t.value(R"(m_sum{k="a"})") == "84");
  CHECK(t.value(R"(m_bucket{k="b",le="1"})") == "1");
  CHECK(t.value(R"(m_sum{k="b"})") == "1");
  // Label sets sorted: every "a" line before the first "b" line.
  CHECK(out.find(R"(m_count{k="a"})") < out.find(R"(m_bucket{k="b")"));
}

}  // namespace
}  // namespace meshbox::stats
