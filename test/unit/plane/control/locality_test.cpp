// Tests for plane/control/locality.h: the locality of a node and patterns, which setting is in
// force (mesh vs destination rule), failover priorities (by locality, with failover entries,
// by failover_priority labels), distribute weights, and the compiler applying them to a
// cluster relative to CompileOptions::locality.
#include "plane/control/locality.h"

#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "plane/control/compiler.h"
#include "test/unit/plane/control/compiler_test_util.h"

namespace meshbox::control {
namespace {

std::vector<uint32_t> priorities(const std::vector<LocalityChoice>& out) {
  std::vector<uint32_t> p;
  for (const auto& c : out)
    p.push_back(c.priority);
  return p;
}

std::vector<uint32_t> weights(const std::vector<LocalityChoice>& out) {
  std::vector<uint32_t> w;
  for (const auto& c : out)
    w.push_back(c.weight);
  return w;
}

std::vector<LocalityInput> inputs(const std::vector<const char*>& localities) {
  std::vector<LocalityInput> in;
  for (const char* l : localities)
    in.push_back({l, nullptr, 1});
  return in;
}

TEST_CASE("locality: split, validity and pattern matching") {
  Locality l = split_locality("us/east-1a/rack7");
  CHECK(l.region == "us");
  CHECK(l.zone == "east-1a");
  CHECK(l.subzone == "rack7");
  CHECK(split_locality("eu").zone.empty());
  CHECK(valid_locality("eu"));
  CHECK(valid_locality("eu/a/b"));
  CHECK_FALSE(valid_locality(""));
  CHECK_FALSE(valid_locality("eu//b"));
  CHECK_FALSE(valid_locality("eu/a/b/c"));
  CHECK_FALSE(valid_locality("/a"));
  CHECK(locality_matches("us/a/r1", "us/*"));
  CHECK(locality_matches("us/a/r1", "us"));  // a missing zone matches any
  CHECK(locality_matches("us/a/r1", "*"));
  CHECK(locality_matches("us/a/r1", "us/a/r1"));
  CHECK_FALSE(locality_matches("us/a/r1", "us/b"));
  CHECK_FALSE(locality_matches("eu/a", "us/*"));
  CHECK_FALSE(locality_matches("us/a/r1", "us/a/r2"));
}

TEST_CASE("locality: the destination rule's setting replaces the mesh's; enabled = false is off") {
  config::LocalityLbSetting off;
  off.enabled = false;
  config::LocalityLbSetting rule;
  rule.failover.push_back({"us", "eu"});
  // No mesh setting: Istio's default, enabled.
  REQUIRE(effective_locality_setting(std::nullopt, nullptr));
  CHECK(effective_locality_setting(std::nullopt, nullptr)->failover.empty());
  CHECK_FALSE(effective_locality_setting(off, nullptr));
  // A rule's setting beats a mesh that turned it off, and the reverse.
  REQUIRE(effective_locality_setting(off, &rule));
  CHECK(effective_locality_setting(off, &rule)->failover.size() == 1);
  CHECK_FALSE(effective_locality_setting(rule, &off));
}

TEST_CASE("locality: failover priorities by region, zone and subzone, renumbered without gaps") {
  config::LocalityLbSetting s;
  auto in = inputs({"us/a/r1", "us/a/r2", "us/b/r1", "eu/a/r1", "", "us/a/r1"});
  CHECK(priorities(apply_locality_lb("us/a/r1", s, true, in)) ==
        std::vector<uint32_t>{0, 1, 2, 3, 3, 0});
  // Without outlier detection there is no failover: one level.
  CHECK(priorities(apply_locality_lb("us/a/r1", s, false, in)) ==
        std::vector<uint32_t>{0, 0, 0, 0, 0, 0});
  // Gaps close up: no other subzone in the zone → other zones are level 1.
  auto in2 = inputs({"us/a", "us/b", "eu/a"});
  CHECK(priorities(apply_locality_lb("us/a", s, true, in2)) == std::vector<uint32_t>{0, 1, 2});
  CHECK(weights(apply_locality_lb("us/a", s, true, in2)) == std::vector<uint32_t>{1, 1, 1});
}

TEST_CASE("locality: failover entries rank their `to` region before the other regions") {
  config::LocalityLbSetting s;
  s.failover.push_back({"us", "ap"});
  s.failover.push_back({"eu", "us"});  // not this node's region: no effect
  auto in = inputs({"eu/a", "ap/a", "us/b", "us/a", "sa/a"});
  CHECK(priorities(apply_locality_lb("us/a", s, true, in)) == std::vector<uint32_t>{3, 2, 1, 0, 3});
}

TEST_CASE("locality: failover_priority by labels, the node's own being its topology") {
  config::LocalityLbSetting s;
  s.failover_priority = {"topology.kubernetes.io/region", "tier=gold"};
  config::Labels gold = {{"tier", "gold"}}, silver = {{"tier", "silver"}};
  // Region matches and gold: 0; region matches only: 1; nothing: 2. An endpoint's region
  // label defaults to its locality's; an explicit label wins.
  config::Labels eu_gold = {{"tier", "gold"}, {"topology.kubernetes.io/region", "eu"}};
  std::vector<LocalityInput> in = {
      {"us/a", &gold, 1}, {"us/b", &silver, 1}, {"eu/a", &gold, 1}, {"us/a", &eu_gold, 1}};
  CHECK(priorities(apply_locality_lb("us/a", s, true, in)) == std::vector<uint32_t>{0, 1, 2, 2});
}

TEST_CASE("locality: distribute splits each locality's weight among its endpoints") {
  config::LocalityLbSetting s;
  s.distribute.push_back({"eu/*", {{"eu/a", 100}}});  // another node's rule: skipped
  s.distribute.push_back({"us/*", {{"us/a", 80}, {"us/*", 20}}});
  // us/a: 80 over two endpoints (weights 1 and 3); us/b: 20 (the wildcard, after the exact
  // pattern); eu: none, dropped.
  std::vector<LocalityInput> in = {
      {"us/a", nullptr, 1}, {"us/a", nullptr, 3}, {"us/b", nullptr, 1}, {"eu/a", nullptr, 1}};
  auto out = apply_locality_lb("us/a/r1", s, true, in);
  CHECK(weights(out) == std::vector<uint32_t>{20'000, 60'000, 20'000, 0});
  CHECK(priorities(out) == std::vector<uint32_t>{0, 0, 0, 0});  // distribute: no failover
  // A node no rule is `from`: weights unchanged.
  CHECK(weights(apply_locality_lb("ap/x", s, true, in)) == std::vector<uint32_t>{1, 3, 1, 1});
}

constexpr const char* kConfig = R"(
[[service]]
name = "reviews"
port = 9080

[[destination_rule]]
name = "reviews"
host = "reviews"
traffic_policy = { outlier_detection = { consecutive_5xx_errors = 1 } }
subsets = [
  { name = "plain", labels = { version = "v1" }, traffic_policy = { load_balancer = { simple = "round_robin", locality_lb_setting = { enabled = false } } } },
]
)";

Endpoint at(const std::string& address, const std::string& locality) {
  Endpoint ep;
  ep.host = "reviews.default.svc.cluster.local";
  ep.ns = "default";
  ep.address = address;
  ep.port = 9080;
  ep.locality = locality;
  ep.labels = {{"version", "v1"}};
  return ep;
}

std::vector<uint32_t> endpoint_priorities(const Snapshot& s, std::string_view name) {
  const ClusterSpec* c = s.find_cluster(name);
  REQUIRE(c);
  std::vector<uint32_t> p;
  for (const auto& ep : c->endpoints)
    p.push_back(ep.priority);
  return p;
}

TEST_CASE("compiler: locality failover priorities relative to the node, per cluster setting") {
  config::Config c = testutil::load(kConfig);
  std::vector<Endpoint> eps = {at("10.0.0.1", "eu/b"), at("10.0.0.2", "us/a"),
                               at("10.0.0.3", "us/b")};
  eps[2].healthy = false;  // its level (same region) is gone: levels renumber
  CompileOptions opts;
  opts.locality = "us/a";
  Compiled out = compile(c, eps, opts);
  const char* kAll = "outbound|9080||reviews.default.svc.cluster.local";
  // Sorted by address: eu/b (other region), us/a (the node's zone).
  CHECK(endpoint_priorities(*out.snapshot, kAll) == std::vector<uint32_t>{1, 0});
  // The subset turns locality load balancing off.
  CHECK(
      endpoint_priorities(*out.snapshot, "outbound|9080|plain|reviews.default.svc.cluster.local") ==
      std::vector<uint32_t>{0, 0});
  // No node locality: no priorities at all.
  Compiled none = compile(c, eps);
  CHECK(endpoint_priorities(*none.snapshot, kAll) == std::vector<uint32_t>{0, 0});
  // [mesh] locality_lb_setting = { enabled = false } turns it off where rules say nothing.
  config::Config off = testutil::load(std::string(kConfig) +
                                      "\n[mesh]\nlocality_lb_setting = { enabled = false }\n");
  CHECK(endpoint_priorities(*compile(off, eps, opts).snapshot, kAll) ==
        std::vector<uint32_t>{0, 0});
}

}  // namespace
}  // namespace meshbox::control
