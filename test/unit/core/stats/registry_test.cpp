// Registry: the Prometheus text of every family and callback — names, HELP/TYPE, order,
// escaping — checked by hand and by the real `promtool check metrics`.
#include "core/stats/registry.h"

#include <doctest/doctest.h>

#include <fstream>
#include <string>

#include "core/stats/prometheus.h"
#include "test/support/files.h"
#include "test/support/process.h"
#include "test/unit/core/stats/text.h"

namespace meshbox::stats {
namespace {

using namespace std::chrono_literals;

std::string scrape(const Registry& r) {
  std::string out;
  r.write_prometheus(out);
  return out;
}

TEST_CASE("label values and help are escaped; bytes that are not UTF-8 become U+FFFD") {
  std::string s;
  prometheus::append_label_value(s, "a\\b\"c\nd");
  CHECK(s == R"(a\\b\"c\nd)");
  s.clear();
  prometheus::append_help(s, "say \"hi\"\\\n");
  CHECK(s == R"(say "hi"\\\n)");
  s.clear();
  prometheus::append_label_value(s, "é€😀");  // valid 2, 3 and 4 byte sequences stay
  CHECK(s == "é€😀");
  s.clear();
  prometheus::append_label_value(s, std::string_view("a\xff"
                                                     "b\xc3",
                                                     4));
  CHECK(s ==
        "a\xEF\xBF\xBD"
        "b\xEF\xBF\xBD");
  s.clear();
  prometheus::append_label_value(s, "\xed\xa0\x80\xc0\xaf");  // a surrogate; an overlong '/'
  CHECK(s == "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
}

TEST_CASE("names: Prometheus's character sets; label names may not start with __") {
  CHECK(prometheus::valid_metric_name("istio_requests_total"));
  CHECK(prometheus::valid_metric_name("a:b_1"));
  CHECK_FALSE(prometheus::valid_metric_name("1a"));
  CHECK_FALSE(prometheus::valid_metric_name("a-b"));
  CHECK_FALSE(prometheus::valid_metric_name(""));
  CHECK(prometheus::valid_label_name("source_workload"));
  CHECK_FALSE(prometheus::valid_label_name("a:b"));
  CHECK_FALSE(prometheus::valid_label_name("__name__"));
}

TEST_CASE("values: shortest round trip, and NaN and infinities as Prometheus spells them") {
  std::string s;
  for (double v : {0.0, 1.5, 1e21, -3.0, 0.1}) {
    prometheus::append_value(s, v);
    s += ' ';
  }
  prometheus::append_value(s, std::numeric_limits<double>::quiet_NaN());
  s += ' ';
  prometheus::append_value(s, std::numeric_limits<double>::infinity());
  s += ' ';
  prometheus::append_value(s, -std::numeric_limits<double>::infinity());
  CHECK(s == "0 1.5 1e+21 -3 0.1 NaN +Inf -Inf");
}

TEST_CASE("the whole text: families by name, series by label values, callbacks at scrape") {
  Registry r(2);
  Family& req = r.counter("b_requests_total", "Requests.", {"code", "path"});
  int pool = 7;
  r.gauge_callback("c_pool_active", "Pool use.", [&] { return pool; });
  r.callback("a_worker_load", "Per worker.", Type::Gauge, {"worker"}, [](Samples& s) {
    s.add({"1"}, 0.25);
    s.add({"0"}, 2);
  });
  std::string_view k1[] = {"200", "/b"}, k2[] = {"200", "/a"}, k3[] = {"503", "say \"x\"\n"};
  req.shard(1).counter(LabelKey(k1)).inc(3);
  req.shard(0).counter(LabelKey(k2)).inc();
  req.shard(0).counter(LabelKey(k3)).inc(2);
  pool = 9;  // callbacks run at scrape time
  CHECK(scrape(r) ==
        "# HELP a_worker_load Per worker.\n"
        "# TYPE a_worker_load gauge\n"
        "a_worker_load{worker=\"0\"} 2\n"
        "a_worker_load{worker=\"1\"} 0.25\n"
        "# HELP b_requests_total Requests.\n"
        "# TYPE b_requests_total counter\n"
        "b_requests_total{code=\"200\",path=\"/a\"} 1\n"
        "b_requests_total{code=\"200\",path=\"/b\"} 3\n"
        "b_requests_total{code=\"503\",path=\"say \\\"x\\\"\\n\"} 2\n"
        "# HELP c_pool_active Pool use.\n"
        "# TYPE c_pool_active gauge\n"
        "c_pool_active 9\n"
        "# HELP meshbox_stats_series Series each labelled metric holds, summed over threads "
        "(overflow included).\n"
        "# TYPE meshbox_stats_series gauge\n"
        "meshbox_stats_series{metric=\"b_requests_total\"} 3\n");
  CHECK(r.find("b_requests_total") == &req);
  CHECK(r.find("c_pool_active") == nullptr);  // a callback, not a family
}

// `promtool check metrics` on `text`: its output and exit code.
std::string promtool(meshbox::test::TempDir& dir, const std::string& text) {
  std::string path = dir.file("metrics.txt");
  std::ofstream(path) << text;
  return meshbox::test::shell(dir, "promtool check metrics < '" + path + "'; echo \"exit=$?\"",
                              meshbox::test::Deadline(30s));
}

TEST_CASE("promtool check metrics accepts the text of Istio-like metrics with hostile values") {
  meshbox::test::TempDir dir;
  // The harness can fail: promtool must be installed (./dev installs `prometheus`) and must
  // reject a bad text.
  std::string bad = promtool(dir, "# TYPE x counter\n# TYPE x counter\nx 1\n");
  REQUIRE_MESSAGE(bad.find("not found") == std::string::npos, "promtool missing: " << bad);
  REQUIRE_MESSAGE(bad.find("exit=0") == std::string::npos, bad);

  Registry r(2);
  const std::vector<std::string> labels = {"reporter", "source_workload", "destination_service",
                                           "response_code", "response_flags"};
  Family& requests = r.counter("istio_requests_total", "Requests.", labels);
  Family& duration = r.histogram("istio_request_duration_milliseconds", "Duration.", labels);
  Family& bytes = r.histogram("istio_request_bytes", "Request size.", labels);
  r.counter("meshbox_config_pushes_total", "Config pushes.").shard(0).counter().inc();
  r.gauge("meshbox_connections", "Open connections.").shard(1).gauge().add(3);
  r.histogram("meshbox_config_push_duration_seconds", "Push latency.")
      .shard(0)
      .histogram()
      .record(2);
  r.gauge_callback("meshbox_cert_expiry_seconds", "Until the cert expires.", [] { return 3.5e6; });
  r.callback("meshbox_worker_load", "Per worker.", Type::Gauge, {"worker"}, [](Samples& s) {
    s.add({"0"}, 1);
    s.add({"1"}, std::numeric_limits<double>::quiet_NaN());
  });
  const std::string hostile[] = {
      "plain", "q\"uote", "back\\slash", "new\nline", "", std::string("bad\xff\xfe utf8"), "é😀"};
  int n = 0;
  for (const std::string& host : hostile) {
    for (size_t shard = 0; shard < 2; ++shard) {
      std::string_view k[] = {"destination", "productpage-v1", host, "200", "-"};
      LabelKey key(k);
      requests.shard(shard).counter(key).inc();
      duration.shard(shard).histogram(key).record(++n * 3.7);
      bytes.shard(shard).histogram(key).record(n * 1000);
    }
  }
  std::string text = scrape(r);
  std::string out = promtool(dir, text);
  // Parse errors exit 1; lint problems exit 3 and are listed. The one expected is Istio's own
  // name (fixed by Istio's dashboards): its duration is in milliseconds, not base units.
  CHECK_MESSAGE(out ==
                    "istio_request_duration_milliseconds use base unit \"seconds\" instead of "
                    "\"milliseconds\"\nexit=3\n",
                out << "\n--- text ---\n"
                    << text);
  // Without it, the text is clean.
  std::string no_ms = text;
  for (size_t at; (at = no_ms.find("_milliseconds")) != std::string::npos;) {
    no_ms.replace(at, 13, "_seconds");
  }
  CHECK(promtool(dir, no_ms) == "exit=0\n");
}

}  // namespace
}  // namespace meshbox::stats
