// Tests for plane/data/load_balancer.h: weighted round robin (smooth, exact), weighted random,
// least request (P2C), the ring hash (1/N keys move when an endpoint goes), skipping
// unusable endpoints, request_hash for every key kind, hash_bytes, and pick() allocating
// nothing. Every random draw comes from a seeded Random, so no test can flake.
#include "plane/data/load_balancer.h"

#include <doctest/doctest.h>

#include <cstdlib>
#include <map>
#include <new>
#include <set>
#include <string>
#include <vector>

// Counts this thread's calls to operator new, to show that pick() allocates nothing. Not
// under AddressSanitizer, which owns operator new and delete itself (the check then runs in
// the plain build only).
#if defined(__SANITIZE_ADDRESS__)
#define MB_COUNT_ALLOCATIONS 0
#else
#define MB_COUNT_ALLOCATIONS 1
namespace {
thread_local size_t g_allocations = 0;
}  // namespace

// The replacement operator new pairs with the replacement deletes (malloc/free); GCC's
// -Wmismatched-new-delete cannot see that once inlined std::allocator calls land here.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
void* operator new(size_t size) {
  ++g_allocations;
  if (void* p = std::malloc(size ? size : 1)) return p;
  std::abort();  // the test binary has no use for bad_alloc
}
void operator delete(void* p) noexcept {
  std::free(p);
}
void operator delete(void* p, size_t) noexcept {
  std::free(p);
}
#endif

namespace meshbox::data {
namespace {

EndpointSpec endpoint(const std::string& address, uint32_t weight = 1) {
  EndpointSpec ep;
  ep.address = loop::Address::parse(address).value();
  ep.weight = weight;
  return ep;
}

ClusterSpec cluster(LbPolicy policy, const std::vector<uint32_t>& weights) {
  ClusterSpec spec;
  spec.name = "outbound|80||test";
  spec.lb_policy = policy;
  for (size_t i = 0; i < weights.size(); ++i)
    spec.endpoints.push_back(endpoint("10.0.0." + std::to_string(i + 1) + ":8080", weights[i]));
  return spec;
}

ClusterSpec ring_cluster(const std::vector<std::string>& addresses, uint32_t ring_size = 1024) {
  ClusterSpec spec;
  spec.name = "outbound|80||ring";
  spec.hash.kind = HashPolicySpec::Kind::Header;
  spec.hash.name = "x-user";
  spec.hash.ring_size = ring_size;
  for (const std::string& a : addresses)
    spec.endpoints.push_back(endpoint(a));
  return spec;
}

auto all_usable = [](size_t) { return true; };
auto no_load = [](size_t) { return 0; };

// One pick with every endpoint usable and idle.
size_t pick(LoadBalancer& lb, Random& random, const uint64_t* hash = nullptr) {
  return lb.pick(random, hash, all_usable, no_load);
}

// The endpoint address each key reaches on `spec`'s ring.
std::vector<std::string> ring_map(const ClusterSpec& spec, const std::vector<uint64_t>& keys) {
  LoadBalancer lb(spec);
  Random random(1);
  std::vector<std::string> out;
  for (uint64_t k : keys) {
    size_t i = pick(lb, random, &k);
    REQUIRE(i < spec.endpoints.size());
    out.push_back(spec.endpoints[i].address.to_string());
  }
  return out;
}

std::vector<uint64_t> user_keys(int n) {
  std::vector<uint64_t> keys;
  for (int i = 0; i < n; ++i)
    keys.push_back(hash_bytes("user-" + std::to_string(i)));
  return keys;
}

std::vector<std::string> five_addresses() {
  return {"10.1.0.1:9080", "10.1.0.2:9080", "10.1.0.3:9080", "10.1.0.4:9080", "10.1.0.5:9080"};
}

// ---------------------------------------------------------------------------------------
// Round robin

TEST_CASE("load balancer: round robin with equal weights never picks one endpoint twice in a row") {
  for (uint64_t seed : {1, 2, 3, 4, 5}) {
    LoadBalancer lb(cluster(LbPolicy::RoundRobin, {1, 1, 1}));
    Random random(seed);
    std::vector<int> counts(3);
    size_t last = LoadBalancer::npos;
    for (int i = 0; i < 300; ++i) {
      size_t e = pick(lb, random);
      REQUIRE(e < 3);
      CHECK(e != last);
      last = e;
      ++counts[e];
    }
    CHECK(counts == std::vector<int>{100, 100, 100});
  }
}

TEST_CASE("load balancer: weighted round robin is exact and smooth (3:1, 5:3:2)") {
  for (uint64_t seed : {1, 2, 3, 4, 5, 6, 7, 8}) {
    LoadBalancer lb(cluster(LbPolicy::RoundRobin, {3, 1}));
    Random random(seed);
    std::vector<int> counts(2);
    size_t last = LoadBalancer::npos;
    int run = 0, longest_heavy_run = 0;
    for (int i = 0; i < 4000; ++i) {
      size_t e = pick(lb, random);
      REQUIRE(e < 2);
      ++counts[e];
      run = e == last ? run + 1 : 1;
      last = e;
      if (e == 0) longest_heavy_run = std::max(longest_heavy_run, run);
      if (e == 1) CHECK(run == 1);  // the light one never twice in a row
    }
    CHECK(counts == std::vector<int>{3000, 1000});
    CHECK(longest_heavy_run <= 3);
  }
  LoadBalancer lb(cluster(LbPolicy::RoundRobin, {5, 3, 2}));
  Random random(9);
  std::vector<int> counts(3);
  for (int i = 0; i < 1000; ++i)
    ++counts[pick(lb, random)];
  CHECK(counts == std::vector<int>{500, 300, 200});
}

TEST_CASE("load balancer: workers start round robin at different endpoints") {
  std::set<size_t> first;
  for (uint64_t seed = 1; seed <= 32; ++seed) {
    LoadBalancer lb(cluster(LbPolicy::RoundRobin, {1, 1, 1, 1}));
    Random random(seed);
    first.insert(pick(lb, random));
  }
  CHECK(first.size() == 4);
}

TEST_CASE("load balancer: round robin skips unusable endpoints, and npos when none is usable") {
  for (std::vector<uint32_t> weights : {std::vector<uint32_t>{1, 1, 1}, {2, 1, 1}}) {
    LoadBalancer lb(cluster(LbPolicy::RoundRobin, weights));
    Random random(3);
    auto not_first = [](size_t i) { return i != 0; };
    std::vector<int> counts(3);
    for (int i = 0; i < 400; ++i) {
      size_t e = lb.pick(random, nullptr, not_first, no_load);
      REQUIRE(e < 3);
      ++counts[e];
    }
    CHECK(counts[0] == 0);
    CHECK(counts[1] == 200);
    CHECK(counts[2] == 200);
    CHECK(lb.pick(
              random, nullptr, [](size_t) { return false; }, no_load) == LoadBalancer::npos);
    // Only the last endpoint usable: found after the first choices, by the scan.
    for (int i = 0; i < 10; ++i)
      CHECK(lb.pick(
                random, nullptr, [](size_t e) { return e == 2; }, no_load) == 2);
  }
  // Many endpoints, one usable: the weighted scan finds it.
  std::vector<uint32_t> weights(50, 1);
  weights[0] = 2;
  LoadBalancer lb(cluster(LbPolicy::RoundRobin, weights));
  Random random(4);
  CHECK(lb.pick(
            random, nullptr, [](size_t e) { return e == 37; }, no_load) == 37);
}

TEST_CASE("load balancer: an endpoint back in service takes its share, not a burst") {
  LoadBalancer lb(cluster(LbPolicy::RoundRobin, {2, 1, 1}));
  Random random(5);
  for (int i = 0; i < 1000; ++i)
    CHECK(lb.pick(
              random, nullptr, [](size_t e) { return e != 0; }, no_load) != 0);
  std::vector<int> counts(3);
  for (int i = 0; i < 8; ++i)
    ++counts[pick(lb, random)];
  CHECK(counts == std::vector<int>{4, 2, 2});
}

TEST_CASE("load balancer: an empty cluster picks npos") {
  Random random(1);
  for (LbPolicy policy : {LbPolicy::RoundRobin, LbPolicy::Random, LbPolicy::LeastRequest}) {
    LoadBalancer lb(cluster(policy, {}));
    CHECK(pick(lb, random) == LoadBalancer::npos);
  }
  LoadBalancer ring(ring_cluster({}));
  uint64_t h = 42;
  CHECK(pick(ring, random, &h) == LoadBalancer::npos);
  CHECK(ring.ring_entries() == 0);
}

// ---------------------------------------------------------------------------------------
// Random

TEST_CASE("load balancer: random follows the weights") {
  LoadBalancer lb(cluster(LbPolicy::Random, {1, 2, 7}));
  Random random(11);
  std::vector<int> counts(3);
  const int n = 100'000;
  for (int i = 0; i < n; ++i)
    ++counts[pick(lb, random)];
  // Expected 10k / 20k / 70k; a standard deviation is under 150.
  CHECK(counts[0] > 9'000);
  CHECK(counts[0] < 11'000);
  CHECK(counts[1] > 19'000);
  CHECK(counts[1] < 21'000);
  CHECK(counts[2] > 69'000);
  CHECK(counts[2] < 71'000);
}

TEST_CASE("load balancer: random skips unusable endpoints and keeps the weights among the rest") {
  std::vector<uint32_t> weights(20, 1);
  weights[18] = 3;
  LoadBalancer lb(cluster(LbPolicy::Random, weights));
  Random random(12);
  // Two usable of 20: most first choices miss, so most picks come from the scan.
  auto usable = [](size_t e) { return e == 5 || e == 18; };
  std::vector<int> counts(20);
  for (int i = 0; i < 40'000; ++i) {
    size_t e = lb.pick(random, nullptr, usable, no_load);
    REQUIRE(e < 20);
    ++counts[e];
  }
  CHECK(counts[5] + counts[18] == 40'000);
  CHECK(counts[5] > 9'000);  // expected 10k (1 : 3)
  CHECK(counts[5] < 11'000);
  CHECK(lb.pick(
            random, nullptr, [](size_t) { return false; }, no_load) == LoadBalancer::npos);
}

// ---------------------------------------------------------------------------------------
// Least request

TEST_CASE("load balancer: least request prefers the less loaded endpoint") {
  Random random(21);
  {
    // Two endpoints: both are always the two choices, so the idle one always wins.
    LoadBalancer lb(cluster(LbPolicy::LeastRequest, {1, 1}));
    for (int i = 0; i < 1000; ++i)
      CHECK(lb.pick(random, nullptr, all_usable, [](size_t e) { return e == 0 ? 10 : 0; }) == 1);
  }
  {
    // Three: the idle one wins whenever it is one of the two choices (2 times in 3).
    LoadBalancer lb(cluster(LbPolicy::LeastRequest, {1, 1, 1}));
    std::vector<int> counts(3);
    for (int i = 0; i < 30'000; ++i)
      ++counts[lb.pick(random, nullptr, all_usable, [](size_t e) { return e == 1 ? 0 : 5; })];
    CHECK(counts[1] > 19'000);
    CHECK(counts[1] < 21'000);
  }
  {
    // Weights: load / weight decides. 4 / 1 > 9 / 3, so the heavier endpoint wins.
    LoadBalancer lb(cluster(LbPolicy::LeastRequest, {1, 3}));
    for (int i = 0; i < 1000; ++i)
      CHECK(lb.pick(random, nullptr, all_usable, [](size_t e) { return e == 0 ? 4 : 9; }) == 1);
    // 2 / 1 < 9 / 3: the lighter one.
    for (int i = 0; i < 1000; ++i)
      CHECK(lb.pick(random, nullptr, all_usable, [](size_t e) { return e == 0 ? 2 : 9; }) == 0);
  }
}

TEST_CASE("load balancer: least request draws by weight when idle, and skips unusable ones") {
  Random random(22);
  LoadBalancer lb(cluster(LbPolicy::LeastRequest, {1, 3}));
  std::vector<int> counts(2);
  for (int i = 0; i < 40'000; ++i)
    ++counts[pick(lb, random)];
  // Idle, the tie goes to the first draw, which is by weight: 10k / 30k expected.
  CHECK(counts[0] > 9'000);
  CHECK(counts[0] < 11'000);

  std::vector<uint32_t> weights(30, 1);
  LoadBalancer many(cluster(LbPolicy::LeastRequest, weights));
  // 29 and 7 usable; 29 less loaded. Only the scan can find them reliably.
  auto usable = [](size_t e) { return e == 7 || e == 29; };
  auto load = [](size_t e) { return e == 29 ? 1 : 8; };
  int least = 0;
  for (int i = 0; i < 200; ++i) {
    size_t e = many.pick(random, nullptr, usable, load);
    REQUIRE((e == 7 || e == 29));
    if (e == 29) ++least;
  }
  CHECK(least > 100);  // the scan always takes 29; lucky first choices may compare both
  CHECK(many.pick(
            random, nullptr, [](size_t) { return false; }, load) == LoadBalancer::npos);
}

// ---------------------------------------------------------------------------------------
// Ring hash

TEST_CASE("load balancer: ring size honours ring_size, its default and its cap") {
  LoadBalancer lb(ring_cluster(five_addresses()));
  CHECK(lb.is_ring_hash());
  CHECK(lb.ring_entries() >= 1024);
  CHECK(lb.ring_entries() < 2 * 1024 + 5);
  LoadBalancer by_default(ring_cluster(five_addresses(), 0));
  CHECK(by_default.ring_entries() == lb.ring_entries());
  LoadBalancer small(ring_cluster(five_addresses(), 10));
  CHECK(small.ring_entries() >= 10);
  CHECK(small.ring_entries() < 2 * 10 + 5);
  LoadBalancer huge(ring_cluster(five_addresses(), 1u << 30));
  CHECK(huge.ring_entries() >= LoadBalancer::kMaxRingSize);
  CHECK(huge.ring_entries() < 2 * LoadBalancer::kMaxRingSize + 5);
}

TEST_CASE("load balancer: ring spreads keys evenly and by weight") {
  std::vector<uint64_t> keys = user_keys(10'000);
  std::map<std::string, int> counts;
  for (const std::string& a : ring_map(ring_cluster(five_addresses()), keys))
    ++counts[a];
  REQUIRE(counts.size() == 5);
  for (const auto& entry : counts) {
    INFO(entry.first);
    CHECK(entry.second > 1'400);  // 2,000 expected
    CHECK(entry.second < 2'600);
  }

  ClusterSpec weighted = ring_cluster({"10.2.0.1:80", "10.2.0.2:80"});
  weighted.endpoints[0].weight = 3;
  counts.clear();
  for (const std::string& a : ring_map(weighted, keys))
    ++counts[a];
  CHECK(counts["10.2.0.1:80"] > 6'800);  // 7,500 expected
  CHECK(counts["10.2.0.1:80"] < 8'200);
}

TEST_CASE("load balancer: removing one of five endpoints moves only its keys (about 1/5)") {
  std::vector<uint64_t> keys = user_keys(10'000);
  std::vector<std::string> addresses = five_addresses();
  std::vector<std::string> before = ring_map(ring_cluster(addresses), keys);

  std::vector<std::string> fewer = addresses;
  fewer.erase(fewer.begin() + 2);
  std::vector<std::string> after = ring_map(ring_cluster(fewer), keys);

  int moved = 0, moved_from_survivors = 0;
  for (size_t k = 0; k < keys.size(); ++k) {
    if (before[k] == after[k]) continue;
    ++moved;
    if (before[k] != addresses[2]) ++moved_from_survivors;
  }
  double share = moved / static_cast<double>(keys.size());
  CHECK(share > 0.15);
  CHECK(share < 0.25);
  // The ring's scale stayed, so the survivors kept exactly their entries and their keys.
  CHECK(moved_from_survivors == 0);

  // Adding it back restores every key; so does any order of the same endpoints.
  CHECK(ring_map(ring_cluster(addresses), keys) == before);
  std::vector<std::string> reversed(addresses.rbegin(), addresses.rend());
  CHECK(ring_map(ring_cluster(reversed), keys) == before);
}

TEST_CASE("load balancer: adding a sixth endpoint moves about 1/6 of the keys, all to it") {
  std::vector<uint64_t> keys = user_keys(10'000);
  std::vector<std::string> addresses = five_addresses();
  std::vector<std::string> before = ring_map(ring_cluster(addresses), keys);
  addresses.push_back("10.1.0.6:9080");
  std::vector<std::string> after = ring_map(ring_cluster(addresses), keys);
  int moved = 0, moved_elsewhere = 0;
  for (size_t k = 0; k < keys.size(); ++k) {
    if (before[k] == after[k]) continue;
    ++moved;
    if (after[k] != "10.1.0.6:9080") ++moved_elsewhere;
  }
  CHECK(moved > 1'100);  // 1,667 expected
  CHECK(moved < 2'200);
  CHECK(moved_elsewhere == 0);
}

TEST_CASE("load balancer: the ring walks past an unusable endpoint as if it were removed") {
  std::vector<uint64_t> keys = user_keys(2'000);
  std::vector<std::string> addresses = five_addresses();
  std::vector<std::string> fewer = addresses;
  fewer.erase(fewer.begin() + 2);
  std::vector<std::string> without = ring_map(ring_cluster(fewer), keys);

  ClusterSpec spec = ring_cluster(addresses);
  LoadBalancer lb(spec);
  Random random(31);
  auto not_third = [](size_t e) { return e != 2; };
  for (size_t k = 0; k < keys.size(); ++k) {
    size_t e = lb.pick(random, &keys[k], not_third, no_load);
    REQUIRE(e < 5);
    CHECK(spec.endpoints[e].address.to_string() == without[k]);
  }
  // Only one usable: every key reaches it (by the walk or the rendezvous fallback).
  for (uint64_t k : keys)
    CHECK(lb.pick(
              random, &k, [](size_t e) { return e == 4; }, no_load) == 4);
  uint64_t k = keys[0];
  CHECK(lb.pick(
            random, &k, [](size_t) { return false; }, no_load) == LoadBalancer::npos);
}

TEST_CASE("load balancer: the rendezvous fallback is a function of the key and the usable set") {
  // 100 endpoints, 2 usable: walks of 64 entries often miss both, so the fallback decides.
  std::vector<std::string> addresses;
  for (int i = 0; i < 100; ++i)
    addresses.push_back("10.3.0." + std::to_string(i + 1) + ":80");
  LoadBalancer a(ring_cluster(addresses)), b(ring_cluster(addresses));
  Random ra(1), rb(2);
  auto usable = [](size_t e) { return e == 10 || e == 90; };
  std::vector<int> counts(100);
  for (uint64_t k : user_keys(2'000)) {
    size_t e = a.pick(ra, &k, usable, no_load);
    REQUIRE((e == 10 || e == 90));
    CHECK(b.pick(rb, &k, usable, no_load) == e);
    ++counts[e];
  }
  CHECK(counts[10] > 700);  // 1,000 expected
  CHECK(counts[90] > 700);
}

TEST_CASE("load balancer: a ring without a request hash picks at random") {
  LoadBalancer lb(ring_cluster(five_addresses()));
  Random random(41);
  std::vector<int> counts(5);
  for (int i = 0; i < 10'000; ++i)
    ++counts[pick(lb, random)];
  for (int c : counts) {
    CHECK(c > 1'400);
    CHECK(c < 2'600);
  }
}

// ---------------------------------------------------------------------------------------
// request_hash

HashPolicySpec policy(HashPolicySpec::Kind kind, std::string name) {
  HashPolicySpec p;
  p.kind = kind;
  p.name = std::move(name);
  return p;
}

std::optional<uint64_t> cookie_hash(const std::vector<std::string>& cookie_headers,
                                    const std::string& name) {
  http::HeaderMap headers;
  headers.add("Host", "example.com");
  for (const std::string& v : cookie_headers)
    headers.add("Cookie", v);
  return request_hash(policy(HashPolicySpec::Kind::Cookie, name), headers, "", "");
}

TEST_CASE("request_hash: header, case-insensitive name, first value; absent → nullopt") {
  http::HeaderMap headers;
  headers.add("X-User", "alice");
  headers.add("x-user", "bob");
  auto p = policy(HashPolicySpec::Kind::Header, "x-user");
  CHECK(request_hash(p, headers, "", "1.2.3.4") == hash_bytes("alice"));
  CHECK(request_hash(policy(HashPolicySpec::Kind::Header, "x-other"), headers, "", "") ==
        std::nullopt);
  http::HeaderMap empty_value;
  empty_value.add("x-user", "");
  CHECK(request_hash(p, empty_value, "", "") == hash_bytes(""));
  CHECK(request_hash(policy(HashPolicySpec::Kind::None, ""), headers, "", "1.2.3.4") ==
        std::nullopt);
}

TEST_CASE("request_hash: cookies") {
  CHECK(cookie_hash({"a=1; b=2"}, "b") == hash_bytes("2"));
  CHECK(cookie_hash({"a=1;b=2"}, "a") == hash_bytes("1"));
  CHECK(cookie_hash({"  a = 1 ;\tb=2 "}, "a") == hash_bytes("1"));  // spaces and tabs
  CHECK(cookie_hash({"a=1; b=2 "}, "b") == hash_bytes("2"));
  CHECK(cookie_hash({"s=tok=en==; x=1"}, "s") == hash_bytes("tok=en=="));  // '=' in a value
  CHECK(cookie_hash({"s=\"quoted\""}, "s") == hash_bytes("quoted"));
  CHECK(cookie_hash({"bb=1; b=2"}, "b") == hash_bytes("2"));   // no prefix match
  CHECK(cookie_hash({"B=1; b=2"}, "b") == hash_bytes("2"));    // names are case-sensitive
  CHECK(cookie_hash({"flag; b=2"}, "b") == hash_bytes("2"));   // a pair without '='
  CHECK(cookie_hash({"b=1; b=2"}, "b") == hash_bytes("1"));    // first occurrence
  CHECK(cookie_hash({"a=1", "b=2"}, "b") == hash_bytes("2"));  // several Cookie headers
  CHECK(cookie_hash({"b=1", "b=2"}, "b") == hash_bytes("1"));
  CHECK(cookie_hash({"", "b=3"}, "b") == hash_bytes("3"));
  // Absent: no Cookie header, an empty one, no such cookie, an empty value.
  CHECK(cookie_hash({}, "b") == std::nullopt);
  CHECK(cookie_hash({""}, "b") == std::nullopt);
  CHECK(cookie_hash({";;  ; "}, "b") == std::nullopt);
  CHECK(cookie_hash({"a=1; c=3"}, "b") == std::nullopt);
  CHECK(cookie_hash({"b=; a=1"}, "b") == std::nullopt);
  CHECK(cookie_hash({"b"}, "b") == std::nullopt);
  // The header name is matched without regard to case.
  http::HeaderMap headers;
  headers.add("COOKIE", "b=7");
  CHECK(request_hash(policy(HashPolicySpec::Kind::Cookie, "b"), headers, "", "") ==
        hash_bytes("7"));
}

TEST_CASE("request_hash: query parameters, first occurrence, raw value") {
  http::HeaderMap headers;
  auto p = policy(HashPolicySpec::Kind::QueryParam, "user");
  auto q = [&](std::string_view query) { return request_hash(p, headers, query, ""); };
  CHECK(q("user=alice") == hash_bytes("alice"));
  CHECK(q("a=1&user=bob&c=3") == hash_bytes("bob"));
  CHECK(q("user=a%20b") == hash_bytes("a%20b"));  // not decoded
  CHECK(q("user=x=y") == hash_bytes("x=y"));
  CHECK(q("user=1&user=2") == hash_bytes("1"));
  CHECK(q("user") == hash_bytes(""));
  CHECK(q("user=") == hash_bytes(""));
  CHECK(q("") == std::nullopt);
  CHECK(q("users=1&auser=2&User=3") == std::nullopt);
}

TEST_CASE("request_hash: source IP") {
  http::HeaderMap headers;
  auto p = policy(HashPolicySpec::Kind::SourceIp, "");
  CHECK(request_hash(p, headers, "", "10.0.0.7") == hash_bytes("10.0.0.7"));
  CHECK(request_hash(p, headers, "", "10.0.0.7") != request_hash(p, headers, "", "10.0.0.8"));
  CHECK(request_hash(p, headers, "", "") == std::nullopt);
}

// ---------------------------------------------------------------------------------------
// hash_bytes

TEST_CASE("hash_bytes: fixed answers (rings must map keys the same way after an upgrade)") {
  CHECK(hash_bytes("") == hash_bytes(std::string_view()));
  CHECK(hash_bytes("") != hash_bytes(std::string_view("\0", 1)));
  CHECK(hash_bytes("ab") != hash_bytes(std::string_view("ab\0", 3)));
  // Pinned values: changing them re-maps every ring-hash key when a mesh is upgraded.
  CHECK(hash_bytes("") == 0x7c967b1be02a0fb0ULL);
  CHECK(hash_bytes("alice") == 0x0c8aa1afe97635cdULL);
  CHECK(hash_bytes("10.0.0.1:8080_0") == 0xc837c6e8c50231b2ULL);
}

TEST_CASE("hash_bytes: no collisions among 200k short keys; one flipped bit flips half") {
  std::set<uint64_t> seen;
  for (int i = 0; i < 200'000; ++i)
    seen.insert(hash_bytes("k" + std::to_string(i)));
  CHECK(seen.size() == 200'000);

  Random random(51);
  uint64_t flipped = 0, trials = 0;
  std::vector<uint64_t> per_bit(64);
  for (size_t len = 1; len <= 40; ++len) {
    for (int sample = 0; sample < 20; ++sample) {
      std::string s(len, '\0');
      for (char& c : s)
        c = static_cast<char>(random.next());
      uint64_t h = hash_bytes(s);
      for (size_t bit = 0; bit < len * 8; ++bit) {
        std::string t = s;
        t[bit / 8] = static_cast<char>(t[bit / 8] ^ (1 << (bit % 8)));
        uint64_t d = h ^ hash_bytes(t);
        flipped += static_cast<uint64_t>(__builtin_popcountll(d));
        for (int o = 0; o < 64; ++o)
          per_bit[o] += (d >> o) & 1;
        ++trials;
      }
    }
  }
  double mean = static_cast<double>(flipped) / static_cast<double>(trials);
  CHECK(mean > 31.5);
  CHECK(mean < 32.5);
  for (int o = 0; o < 64; ++o) {
    double p = static_cast<double>(per_bit[o]) / static_cast<double>(trials);
    INFO("output bit " << o);
    CHECK(p > 0.47);
    CHECK(p < 0.53);
  }
}

// ---------------------------------------------------------------------------------------

// ---------------------------------------------------------------------------------------
// Priority levels (locality failover)

// A round-robin cluster whose endpoint i has priority priorities[i].
ClusterSpec leveled(const std::vector<uint32_t>& priorities,
                    LbPolicy policy = LbPolicy::RoundRobin) {
  ClusterSpec spec = cluster(policy, std::vector<uint32_t>(priorities.size(), 1));
  for (size_t i = 0; i < priorities.size(); ++i)
    spec.endpoints[i].priority = priorities[i];
  return spec;
}

TEST_CASE("priority balancer: levels by priority value, lowest first, gaps allowed") {
  PriorityBalancer pb(leveled({2, 0, 2, 7}));
  REQUIRE(pb.levels() == 3);
  CHECK(pb.level_of(0) == 1);
  CHECK(pb.level_of(1) == 0);
  CHECK(pb.level_of(2) == 1);
  CHECK(pb.level_of(3) == 2);
  CHECK(pb.level_size(1) == 2);
  CHECK(pb.load(0) == 100);
  CHECK(pb.load(1) == 0);
  CHECK(pb.load(2) == 0);
}

TEST_CASE("priority balancer: every request to level 0 while it is whole") {
  PriorityBalancer pb(leveled({0, 1, 0, 1}));
  Random random(3);
  std::map<size_t, int> seen;
  for (int i = 0; i < 100; ++i)
    ++seen[pb.pick(random, nullptr, all_usable, no_load)];
  CHECK(seen == std::map<size_t, int>{{0, 50}, {2, 50}});
}

TEST_CASE("priority balancer: overprovisioning 1.4 — loads follow health, spill in order") {
  // Level 0: 4 endpoints, level 1: 2, level 2: 1.
  PriorityBalancer pb(leveled({0, 0, 0, 0, 1, 1, 2}));
  auto loads = [&](std::vector<uint32_t> healthy) {
    pb.set_healthy(healthy.data());
    return std::vector<uint32_t>{pb.load(0), pb.load(1), pb.load(2)};
  };
  CHECK(loads({3, 2, 1}) == std::vector<uint32_t>{100, 0, 0});  // 3/4 × 1.4 ≥ 100 %
  CHECK(loads({2, 2, 1}) == std::vector<uint32_t>{70, 30, 0});  // 2/4 × 1.4 = 70 %
  CHECK(loads({1, 1, 1}) == std::vector<uint32_t>{35, 65, 0});  // 1/2 × 1.4 = 70 %
  CHECK(loads({0, 2, 1}) == std::vector<uint32_t>{0, 100, 0});
  CHECK(loads({0, 0, 1}) == std::vector<uint32_t>{0, 0, 100});
  // Sum of health below 100: normalised (35 + 0 + 0 → all of it to level 0).
  CHECK(loads({1, 0, 0}) == std::vector<uint32_t>{100, 0, 0});
  // 35 + 70 → 35 / 100 and 65.
  CHECK(loads({1, 1, 0}) == std::vector<uint32_t>{35, 65, 0});
  // Nothing usable at all: level 0 first, as if whole.
  CHECK(loads({0, 0, 0}) == std::vector<uint32_t>{100, 0, 0});
}

TEST_CASE("priority balancer: draws a level by load, and falls through unusable levels") {
  PriorityBalancer pb(leveled({0, 0, 0, 0, 1, 1}));
  std::vector<uint32_t> healthy = {2, 2};  // 70 % / 30 %
  pb.set_healthy(healthy.data());
  auto usable = [](size_t e) { return e != 0 && e != 1; };
  Random random(17);
  int level0 = 0, level1 = 0;
  for (int i = 0; i < 10'000; ++i) {
    size_t e = pb.pick(random, nullptr, usable, no_load);
    REQUIRE(usable(e));
    (e < 4 ? level0 : level1)++;
  }
  CHECK(level0 > 6'700);
  CHECK(level0 < 7'300);
  // Level 0 wholly unusable for this request (a retry's tried endpoints): level 1.
  auto only_level1 = [](size_t e) { return e >= 4; };
  auto only_2 = [](size_t e) { return e == 2; };
  auto none = [](size_t) { return false; };
  for (int i = 0; i < 50; ++i)
    CHECK(pb.pick(random, nullptr, only_level1, no_load) >= 4);
  // Level 1 drawn but unusable: back to level 0.
  for (int i = 0; i < 50; ++i)
    CHECK(pb.pick(random, nullptr, only_2, no_load) == 2);
  CHECK(pb.pick(random, nullptr, none, no_load) == PriorityBalancer::npos);
}

TEST_CASE("priority balancer: ring hash per level; a key keeps its level and endpoint") {
  ClusterSpec spec = ring_cluster(five_addresses());
  for (size_t i = 0; i < 5; ++i)
    spec.endpoints[i].priority = i < 3 ? 0 : 1;
  PriorityBalancer pb(spec);
  Random random(5);
  std::vector<uint64_t> keys = user_keys(200);
  for (uint64_t k : keys) {
    size_t a = pb.pick(random, &k, all_usable, no_load);
    CHECK(a < 3);
    CHECK(pb.pick(random, &k, all_usable, no_load) == a);
  }
}

#if MB_COUNT_ALLOCATIONS
TEST_CASE("priority balancer: pick allocates nothing") {
  PriorityBalancer pb(leveled({0, 0, 1, 2}, LbPolicy::LeastRequest));
  std::vector<uint32_t> healthy = {1, 1, 1};
  pb.set_healthy(healthy.data());
  Random random(8);
  auto not_0 = [](size_t e) { return e != 0; };
  size_t before = g_allocations, picked = 0;
  for (int i = 0; i < 300; ++i)
    picked += pb.pick(random, nullptr, not_0, no_load) != PriorityBalancer::npos;
  CHECK(g_allocations == before);
  CHECK(picked == 300);
}

TEST_CASE("load balancer: pick allocates nothing") {
  std::vector<LoadBalancer> lbs;
  lbs.emplace_back(cluster(LbPolicy::RoundRobin, {1, 1, 1}));
  lbs.emplace_back(cluster(LbPolicy::RoundRobin, {3, 1, 2}));
  lbs.emplace_back(cluster(LbPolicy::Random, {1, 1, 1}));
  lbs.emplace_back(cluster(LbPolicy::Random, {1, 5, 1}));
  lbs.emplace_back(cluster(LbPolicy::LeastRequest, {1, 1, 1}));
  lbs.emplace_back(cluster(LbPolicy::LeastRequest, {2, 1, 1}));
  lbs.emplace_back(ring_cluster(five_addresses()));
  Random random(61);
  auto odd = [](size_t e) { return e % 2 == 1; };
  auto load = [](size_t e) { return e * 3; };
  size_t before = g_allocations;
  size_t picked = 0;
  for (LoadBalancer& lb : lbs) {
    for (uint64_t k = 0; k < 100; ++k) {
      picked += lb.pick(random, &k, all_usable, load) != LoadBalancer::npos;
      picked += lb.pick(random, nullptr, odd, load) != LoadBalancer::npos;
      picked += lb.pick(
                    random, &k, [](size_t) { return false; }, load) == LoadBalancer::npos;
    }
  }
  CHECK(g_allocations == before);
  CHECK(picked == lbs.size() * 300);
}
#endif

}  // namespace
}  // namespace meshbox::data
