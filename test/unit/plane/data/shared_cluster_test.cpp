// Tests for plane/data/shared_cluster.h's status(), what GET /clusters shows: the circuit
// breakers' counters, each endpoint's connections summed over the workers' cells (also while
// the workers write them from their own threads), and the outlier state after an ejection.
#include "plane/data/shared_cluster.h"

#include <doctest/doctest.h>

#include <atomic>
#include <thread>
#include <vector>

namespace meshbox::data {
namespace {

// `n` workers that ignore wakeups.
void add_workers(SharedClusters& all, int n) {
  for (int i = 0; i < n; ++i)
    all.add_worker([](const std::string&, SharedClusters::Event) {});
}

const EndpointStatus* find(const ClusterStatus& s, const std::string& address) {
  for (const auto& e : s.endpoints)
    if (e.address == address) return &e;
  return nullptr;
}

}  // namespace

TEST_CASE("shared cluster status: counters, per-worker connection cells, ejection") {
  SharedClusters all;
  add_workers(all, 2);
  SharedClusterPtr c = all.get("outbound|80||web");
  EndpointHealth* a = c->endpoint("10.0.0.1:80");
  EndpointHealth* b = c->endpoint("10.0.0.2:80");
  REQUIRE(a->workers == 2);
  CHECK(a->load_of(0) != a->load_of(1));
  CHECK(a->load_of(7) == a->load_of(1));  // an id past the count: the last cell

  a->load_of(0)->busy.store(2);
  a->load_of(1)->busy.store(1);
  a->load_of(1)->idle.store(4);
  REQUIRE(c->try_start_request(10));
  REQUIRE(c->try_add_pending(10));
  REQUIRE(c->try_open_connection(10));
  REQUIRE(c->try_open_connection(10));

  OutlierSpec spec;
  spec.consecutive_5xx = 3;
  spec.base_ejection_time_ms = 30'000;
  spec.max_ejection_percent = 50;
  c->report(b, SharedCluster::Outcome::Status5xx, 500, spec, 2);
  c->report(b, SharedCluster::Outcome::Status5xx, 500, spec, 2);
  {
    ClusterStatus s = c->status();
    CHECK(s.name == "outbound|80||web");
    CHECK(s.active_requests == 1);
    CHECK(s.pending_requests == 1);
    CHECK(s.active_connections == 2);
    CHECK(s.ejections_total == 0);
    REQUIRE(s.endpoints.size() == 2);
    const EndpointStatus* ea = find(s, "10.0.0.1:80");
    REQUIRE(ea);
    CHECK(ea->active_requests == 3);
    CHECK(ea->idle_connections == 4);
    CHECK(ea->active_connections == 7);
    CHECK_FALSE(ea->ejected);
    CHECK(ea->last_ejection_ms_ago == -1);
    const EndpointStatus* eb = find(s, "10.0.0.2:80");
    REQUIRE(eb);
    CHECK(eb->consecutive_5xx == 2);
    CHECK(eb->consecutive_gateway_errors == 0);
    CHECK_FALSE(eb->ejected);
  }
  c->report(b, SharedCluster::Outcome::Status5xx, 500, spec, 2);
  {
    ClusterStatus s = c->status();
    CHECK(s.ejections_total == 1);
    const EndpointStatus* eb = find(s, "10.0.0.2:80");
    REQUIRE(eb);
    CHECK(eb->ejected);
    CHECK(eb->ejections == 1);
    CHECK(eb->ejection_left_ms > 29'000);
    CHECK(eb->ejection_left_ms <= 30'000);
    CHECK(eb->last_ejection_ms_ago >= 0);
    CHECK(eb->last_ejection_ms_ago < 1'000);
    CHECK(eb->consecutive_5xx == 0);  // reset by the ejection
  }
  std::vector<ClusterStatus> every = all.status();
  REQUIRE(every.size() == 1);
  CHECK(every[0].name == "outbound|80||web");
}

TEST_CASE("shared cluster status: sums while workers write their own cells") {
  SharedClusters all;
  add_workers(all, 2);
  SharedClusterPtr c = all.get("x");
  EndpointHealth* ep = c->endpoint("10.0.0.1:80");
  // Each worker thread moves connections busy → idle → closed in its own cell (one writer
  // per cell, as ConnPool does), ending where it began; the reader never sees more than both
  // workers' peaks (busy and idle are read apart: 2 per worker), and the end state is exact.
  constexpr int kRounds = 20'000;
  std::atomic<bool> go{false};
  auto add = [](std::atomic<uint32_t>& cell, int delta) {
    cell.store(cell.load(std::memory_order_relaxed) + static_cast<uint32_t>(delta),
               std::memory_order_relaxed);
  };
  std::vector<std::thread> workers;
  for (size_t w = 0; w < 2; ++w) {
    workers.emplace_back([&, w] {
      EndpointLoad* cell = ep->load_of(w);
      while (!go.load()) {
      }
      for (int i = 0; i < kRounds; ++i) {
        add(cell->busy, 1);
        add(cell->busy, -1);
        add(cell->idle, 1);
        add(cell->idle, -1);
      }
    });
  }
  go.store(true);
  uint32_t max_seen = 0;
  for (int i = 0; i < 2'000; ++i) {
    ClusterStatus s = c->status();
    REQUIRE(s.endpoints.size() == 1);
    max_seen = std::max(max_seen, s.endpoints[0].active_connections);
  }
  for (auto& t : workers)
    t.join();
  CHECK(max_seen <= 4);
  ClusterStatus s = c->status();
  CHECK(s.endpoints[0].active_connections == 0);
  CHECK(s.endpoints[0].active_requests == 0);
  CHECK(s.endpoints[0].idle_connections == 0);
}

}  // namespace meshbox::data
