// Shards: label sets interned per thread, the series cap, and merging while threads record.
#include "core/stats/shard.h"

#include <doctest/doctest.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "core/stats/registry.h"
#include "test/unit/core/stats/text.h"

namespace meshbox::stats {
namespace {

std::string scrape(const Registry& r) {
  std::string out;
  r.write_prometheus(out);
  return out;
}

TEST_CASE("a label set is one series per shard however it is spelled by the caller") {
  Registry r(2);
  Family& f = r.counter("req_total", "help", {"a", "b"});
  std::string a1 = "x", b1 = "";
  std::string_view k1[] = {a1, b1};
  std::string_view k1_again[] = {"x", ""};  // equal values, other storage
  std::string_view k2[] = {"", "x"};        // the same bytes in other labels
  f.shard(0).counter(LabelKey(k1)).inc();
  f.shard(0).counter(LabelKey(k1_again)).inc(2);
  f.shard(0).counter(LabelKey(k2)).inc(10);
  f.shard(1).counter(LabelKey(k1)).inc(100);
  CHECK(f.shard(0).size() == 2);
  CHECK(f.shard(1).size() == 1);
  test::Text t(scrape(r));
  CHECK(t.value(R"(req_total{a="x",b=""})") == "103");
  CHECK(t.value(R"(req_total{a="",b="x"})") == "10");
}

TEST_CASE("a hash built from a saved prefix equals the whole key's; it finds the same series") {
  // Values of 0..40 bytes: every tail length the hash and the compare read in pieces.
  std::string long_value(40, 'x');
  for (size_t n = 0; n <= long_value.size(); ++n) {
    std::string_view v[] = {"fixed", std::string_view(long_value).substr(0, n)};
    LabelHash prefix(2);
    prefix.add("fixed");
    LabelHash full = prefix;
    full.add(v[1]);
    CHECK(full.value() == LabelKey::hash_of(v));
  }
  Registry r(1);
  Family& f = r.counter("pre_total", "help", {"a", "b"});
  std::string_view k[] = {"fixed", "200"};
  LabelHash h(2);
  h.add("fixed").add("200");
  f.shard(0).counter(LabelKey(k, h)).inc();
  f.shard(0).counter(LabelKey(k)).inc();
  // Values that differ in one byte at any position, or only in where they split, are others.
  std::string_view other[][2] = {{"fixee", "200"}, {"fixed", "201"}, {"fixed2", "00"}};
  for (auto& o : other)
    f.shard(0).counter(LabelKey(o)).inc(10);
  CHECK(f.shard(0).size() == 4);
  test::Text t(scrape(r));
  CHECK(t.value(R"(pre_total{a="fixed",b="200"})") == "2");
  CHECK(t.value(R"(pre_total{a="fixed2",b="00"})") == "10");
}

TEST_CASE("thousands of label sets in one shard: each found again after the index grows") {
  Registry r(1);
  Family& f = r.counter("many_total", "help", {"v"});
  Shard& s = f.shard(0);
  std::vector<std::string> values;
  for (int i = 0; i < 5000; ++i)
    values.push_back(std::to_string(i));
  for (int round = 1; round <= 2; ++round) {
    for (int i = 0; i < 5000; ++i) {
      std::string_view v[] = {values[i]};
      s.counter(LabelKey(v)).inc(i);
    }
  }
  CHECK(s.size() == 5000);
  test::Text t(scrape(r));
  CHECK(t.value(R"(many_total{v="0"})") == "0");
  CHECK(t.value(R"(many_total{v="4999"})") == "9998");
  CHECK(t.value(R"(many_total{v="1234"})") == "2468");
  CHECK(t.value(R"(meshbox_stats_series{metric="many_total"})") == "5000");
}

TEST_CASE("past the cap, new label sets go to one overflow series; known ones keep theirs") {
  Registry r(2, /*max_series=*/3);
  Family& f = r.counter("capped_total", "help", {"path", "code"});
  Shard& s = f.shard(0);
  std::vector<std::string> paths;
  for (int i = 0; i < 10; ++i)
    paths.push_back("/p" + std::to_string(i));
  for (int i = 0; i < 10; ++i) {
    std::string_view k[] = {paths[i], "200"};
    s.counter(LabelKey(k)).inc();
  }
  std::string_view first[] = {"/p0", "200"};
  s.counter(LabelKey(first)).inc(5);  // still its own series
  CHECK(s.size() == 4);               // 3 + overflow, whatever more arrives
  // The other shard has its own cap: it still takes new label sets.
  std::string_view other[] = {"/other", "503"};
  f.shard(1).counter(LabelKey(other)).inc();
  test::Text t(scrape(r));
  CHECK(t.value(R"(capped_total{path="/p0",code="200"})") == "6");
  CHECK(t.value(R"(capped_total{path="/p2",code="200"})") == "1");
  CHECK(t.value(R"(capped_total{path="/p3",code="200"})") == "missing");
  CHECK(t.value(R"(capped_total{path="overflow",code="overflow"})") == "7");
  CHECK(t.value(R"(capped_total{path="/other",code="503"})") == "1");
  CHECK(t.value(R"(meshbox_stats_series{metric="capped_total"})") == "5");
}

TEST_CASE("a label-less metric shows 0 before anything records; gauges sum their shards") {
  Registry r(3);
  r.counter("pushes_total", "help");
  Family& g = r.gauge("connections", "help");
  Family& lg = r.gauge("pending", "help", {"cluster"});
  {
    test::Text t(scrape(r));
    CHECK(t.value("pushes_total") == "0");
    CHECK(t.value("connections") == "0");
    CHECK(t.value(R"(meshbox_stats_series{metric="pending"})") == "0");
    CHECK(t.size() == 3);  // and no series for the labelled gauge yet
  }
  Gauge g0 = g.shard(0).gauge(), g2 = g.shard(2).gauge();
  g0.add(5);
  g2.add(3);
  g2.sub(4);  // this shard's share may go below zero; the sum is what counts
  std::string_view c[] = {"reviews"};
  lg.shard(1).gauge(LabelKey(c)).set(-2);
  test::Text t(scrape(r));
  CHECK(t.value("connections") == "4");
  CHECK(t.value(R"(pending{cluster="reviews"})") == "-2");
  CHECK(g2.value() == -1);
}

TEST_CASE("threads record into their own shards while another thread scrapes") {
  constexpr int kWriters = 3;
  constexpr int kIterations = 4000;
  Registry r(kWriters, /*max_series=*/200);
  Family& requests = r.counter("t_requests_total", "help", {"worker", "code"});
  Family& duration = r.histogram("t_duration_ms", "help", {"worker", "code"});
  std::atomic<bool> stop{false};
  std::atomic<int> scrapes{0}, regressions{0};
  std::thread scraper([&] {
    uint64_t last = 0;
    while (!stop.load()) {
      std::string out;
      r.write_prometheus(out);
      test::Text t(out);
      // A cumulative total seen by one reader never goes down.
      std::string count = t.value(R"(t_duration_ms_count{worker="0",code="200"})");
      uint64_t now = count == "missing" ? 0 : std::stoull(count);
      if (now < last) regressions++;
      last = now;
      scrapes++;
    }
  });
  while (scrapes.load() < 1)
    std::this_thread::yield();  // the scraper is running
  std::vector<std::thread> writers;
  for (int w = 0; w < kWriters; ++w) {
    writers.emplace_back([&, w] {
      std::string worker = std::to_string(w);
      Shard& rs = requests.shard(w);
      Shard& ds = duration.shard(w);
      for (int i = 0; i < kIterations; ++i) {
        // A new label set every few requests (series appear while the scraper reads),
        // the rest on code 200.
        std::string code = i % 4 == 0 ? std::to_string(1000 + i / 4) : "200";
        std::string_view k[] = {worker, code};
        LabelKey key(k);
        rs.counter(key).inc();
        ds.histogram(key).record(i % 100);
      }
    });
  }
  for (std::thread& t : writers)
    t.join();
  const int before = scrapes.load();
  while (scrapes.load() < before + 2)
    std::this_thread::yield();  // one full scrape after
  stop = true;
  scraper.join();
  CHECK(regressions.load() == 0);
  test::Text t(scrape(r));
  uint64_t total = 0;
  for (int w = 0; w < kWriters; ++w) {
    std::string worker = std::to_string(w);
    std::string ok = t.value("t_requests_total{worker=\"" + worker + "\",code=\"200\"}");
    CHECK(ok == std::to_string(kIterations * 3 / 4));
    CHECK(t.value("t_duration_ms_count{worker=\"" + worker + "\",code=\"200\"}") == ok);
    total += std::stoull(ok);
  }
  // 1000 new codes per worker; 199 fit under the cap beside "200": the rest overflowed.
  CHECK(t.value(R"(t_requests_total{worker="overflow",code="overflow"})") ==
        std::to_string(kWriters * (kIterations / 4 - 199)));
  CHECK(total == kWriters * kIterations * 3 / 4);
  CHECK(t.value(R"(meshbox_stats_series{metric="t_requests_total"})") ==
        std::to_string(kWriters * 201));
}

}  // namespace
}  // namespace meshbox::stats
