// Tests for core/base/random.h: xoshiro256** and uuid4.
#include "core/base/random.h"

#include <doctest/doctest.h>

#include <set>
#include <string>

namespace meshbox {
namespace {

TEST_CASE("random: a seed gives a fixed sequence (xoshiro256** seeded by splitmix64)") {
  Random r(42);
  // Known answers from a reference implementation of splitmix64 + xoshiro256**.
  CHECK(r.next() == 0x15780b2e0c2ec716ULL);
  CHECK(r.next() == 0x6104d9866d113a7eULL);
  CHECK(r.next() == 0xae17533239e499a1ULL);
}

TEST_CASE("random: same seed, same numbers; different seeds, different numbers") {
  Random a(7), b(7), c(8);
  bool differs = false;
  for (int i = 0; i < 100; ++i) {
    uint64_t x = a.next();
    CHECK(x == b.next());
    if (x != c.next()) differs = true;
  }
  CHECK(differs);
}

TEST_CASE("random: default construction seeds from the system") {
  Random a, b;
  // Two independent 64-bit seeds agreeing on four outputs would be astronomically unlikely.
  bool differs = false;
  for (int i = 0; i < 4; ++i)
    if (a.next() != b.next()) differs = true;
  CHECK(differs);
}

TEST_CASE("random: below() stays in range and is roughly uniform") {
  Random r(2024);
  CHECK(r.below(0) == 0);
  for (int i = 0; i < 100; ++i)
    CHECK(r.below(1) == 0);
  constexpr int kBuckets = 10;
  constexpr int kSamples = 100000;
  int counts[kBuckets] = {};
  for (int i = 0; i < kSamples; ++i) {
    uint64_t v = r.below(kBuckets);
    REQUIRE(v < kBuckets);
    ++counts[v];
  }
  for (int c : counts) {
    CHECK(c > kSamples / kBuckets * 95 / 100);
    CHECK(c < kSamples / kBuckets * 105 / 100);
  }
  // Every bit position varies.
  uint64_t ones = 0, zeros = 0;
  for (int i = 0; i < 64; ++i) {
    uint64_t v = r.next();
    ones |= v;
    zeros |= ~v;
  }
  CHECK(ones == ~0ULL);
  CHECK(zeros == ~0ULL);
}

bool is_hex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

TEST_CASE("random: uuid4 is a version 4, variant 1 UUID in text form") {
  Random r(99);
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {
    std::string u = r.uuid4();
    CAPTURE(u);
    REQUIRE(u.size() == 36);
    for (size_t j = 0; j < u.size(); ++j) {
      if (j == 8 || j == 13 || j == 18 || j == 23) {
        CHECK(u[j] == '-');
      } else {
        CHECK(is_hex(u[j]));
      }
    }
    CHECK(u[14] == '4');
    CHECK((u[19] == '8' || u[19] == '9' || u[19] == 'a' || u[19] == 'b'));
    seen.insert(u);
  }
  CHECK(seen.size() == 1000);
}

TEST_CASE("random: uuid4 uses every random nibble") {
  // Apart from the fixed version nibble and the two variant bits, each position takes many
  // values over a few hundred UUIDs (a stuck nibble would show up here).
  Random r(5);
  std::set<char> values[36];
  for (int i = 0; i < 500; ++i) {
    std::string u = r.uuid4();
    for (size_t j = 0; j < 36; ++j)
      values[j].insert(u[j]);
  }
  for (size_t j = 0; j < 36; ++j) {
    CAPTURE(j);
    if (j == 8 || j == 13 || j == 18 || j == 23 || j == 14) {
      CHECK(values[j].size() == 1);
    } else if (j == 19) {
      CHECK(values[j].size() == 4);
    } else {
      CHECK(values[j].size() == 16);
    }
  }
}

}  // namespace
}  // namespace meshbox
