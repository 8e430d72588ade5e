// TokenBucket: Envoy's fill rule on a clock the test drives, and one limit for many threads.
#include "core/base/token_bucket.h"

#include <doctest/doctest.h>

#include <atomic>
#include <thread>
#include <vector>

namespace meshbox {
namespace {

TEST_CASE("a bucket starts full, refills per interval, and never holds more than max_tokens") {
  TokenBucket b(3, 2, 100, 1'000);
  CHECK(b.take(1'000).remaining == 2);
  CHECK(b.take(1'010).remaining == 1);
  CHECK(b.take(1'020).remaining == 0);
  TokenBucket::Take empty = b.take(1'030);
  CHECK_FALSE(empty.allowed);
  CHECK(empty.reset_ms == 70);  // the next fill is at 1'100
  // One interval later: tokens_per_fill (2) more.
  CHECK(b.take(1'100).allowed);
  CHECK(b.take(1'150).allowed);
  CHECK_FALSE(b.take(1'199).allowed);
  // Ten intervals idle: full (3), not 20.
  CHECK(b.take(2'200).remaining == 2);
  CHECK(b.take(2'200).remaining == 1);
  CHECK(b.take(2'200).remaining == 0);
  CHECK_FALSE(b.take(2'200).allowed);
}

TEST_CASE("a thread whose clock read is older than the last update adds nothing") {
  TokenBucket b(1, 1, 100, 0);
  CHECK(b.take(250).allowed);        // fill count 2 applied
  CHECK_FALSE(b.take(150).allowed);  // an older read: no refill, no wrap-around gift
  CHECK(b.take(300).allowed);        // the next real fill
  TokenBucket early(1, 1, 100, 1'000);
  CHECK(early.take(990).allowed);  // before the bucket's own start: counted as its start
}

TEST_CASE("threads spending from one bucket get exactly its tokens") {
  // No fill during the test (a one-hour interval): 8 threads race for 10'000 tokens.
  TokenBucket b(10'000, 1, 3'600'000, TokenBucket::now_ms());
  std::atomic<int> allowed{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 5'000; ++i)
        if (b.take(TokenBucket::now_ms()).allowed) allowed.fetch_add(1);
    });
  for (auto& t : threads)
    t.join();
  CHECK(allowed.load() == 10'000);
}

}  // namespace
}  // namespace meshbox
