// Tests for the route choice of plane/data/tunnel.h: which L4 route a connection takes (by
// its ClientHello's SNI, most specific first) and which of the route's clusters, by weight.
// The tunnel itself is tested end to end (test/integration/mesh_l4_test.cpp).
#include "plane/data/tunnel.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/base/random.h"

namespace meshbox::data {
namespace {

L4RouteSpec route(std::string name, std::vector<std::string> sni) {
  L4RouteSpec r;
  r.name = std::move(name);
  r.sni_hosts = std::move(sni);
  r.clusters = {{"c-" + r.name, 100}};
  return r;
}

std::string chosen(const std::vector<L4RouteSpec>& routes, std::optional<std::string_view> sni) {
  const L4RouteSpec* r = select_l4_route(routes, sni);
  return r ? r->name : "none";
}

TEST_CASE("tunnel: the most specific SNI route wins, whatever the order") {
  std::vector<L4RouteSpec> routes = {
      route("any", {"*"}),
      route("wild", {"*.example.com"}),
      route("deeper", {"*.api.example.com"}),
      route("exact", {"other.org", "shop.example.com"}),
  };
  CHECK(chosen(routes, "shop.example.com") == "exact");
  CHECK(chosen(routes, "SHOP.Example.com") == "exact");
  CHECK(chosen(routes, "other.org") == "exact");
  CHECK(chosen(routes, "v1.api.example.com") == "deeper");
  CHECK(chosen(routes, "a.example.com") == "wild");
  CHECK(chosen(routes, "example.com") == "any");
  CHECK(chosen(routes, std::nullopt) == "any");  // a ClientHello without SNI

  std::vector<L4RouteSpec> no_catch_all(routes.begin() + 1, routes.end());
  CHECK(chosen(no_catch_all, "example.com") == "none");
  CHECK(chosen(no_catch_all, std::nullopt) == "none");
  std::reverse(no_catch_all.begin(), no_catch_all.end());
  CHECK(chosen(no_catch_all, "a.example.com") == "wild");
  CHECK(chosen(no_catch_all, "v1.api.example.com") == "deeper");
}

TEST_CASE("tunnel: a route without sni_hosts takes every connection; the first among equals") {
  std::vector<L4RouteSpec> routes = {route("first", {}), route("second", {})};
  CHECK(chosen(routes, std::nullopt) == "first");
  CHECK(chosen(routes, "a.example.com") == "first");
  CHECK(chosen({}, std::nullopt) == "none");
}

TEST_CASE("tunnel: clusters are drawn by weight") {
  L4RouteSpec r;
  r.clusters = {{"a", 80}, {"b", 20}, {"never", 0}};
  Random random(7);
  std::map<std::string, int> seen;
  constexpr int kDraws = 100'000;
  for (int i = 0; i < kDraws; ++i)
    ++seen[pick_l4_cluster(r, random)];
  CHECK(seen.count("never") == 0);
  // 80 % ± 1 point: with 100,000 draws the standard deviation is 0.13 points.
  CHECK(seen["a"] > kDraws * 79 / 100);
  CHECK(seen["a"] < kDraws * 81 / 100);
  CHECK(seen["a"] + seen["b"] == kDraws);

  L4RouteSpec one;
  one.clusters = {{"only", 100}};
  CHECK(pick_l4_cluster(one, random) == "only");
  L4RouteSpec zero;
  zero.clusters = {{"z1", 0}, {"z2", 0}};
  CHECK(pick_l4_cluster(zero, random) == "z1");
}

}  // namespace
}  // namespace meshbox::data
