#include "core/base/token_bucket.h"

#include <time.h>

#include <algorithm>

namespace meshbox {

TokenBucket::TokenBucket(uint32_t max_tokens, uint32_t tokens_per_fill, uint64_t fill_interval_ms,
                         uint64_t now_ms)
    : max_tokens_(std::max<uint32_t>(max_tokens, 1)),
      tokens_per_fill_(std::max<uint32_t>(tokens_per_fill, 1)),
      fill_interval_ms_(std::max<uint64_t>(fill_interval_ms, 1)),
      start_ms_(now_ms),
      state_(max_tokens_) {}

uint64_t TokenBucket::now_ms() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000 + static_cast<uint64_t>(ts.tv_nsec) / 1'000'000;
}

TokenBucket::Take TokenBucket::take(uint64_t now_ms) {
  // Another thread's clock read may trail the one that made the bucket by a little.
  uint64_t since = now_ms > start_ms_ ? now_ms - start_ms_ : 0;
  auto fills_now = static_cast<uint32_t>(since / fill_interval_ms_);
  Take t;
  t.reset_ms = fill_interval_ms_ - since % fill_interval_ms_;
  uint64_t s = state_.load(std::memory_order_relaxed);
  for (;;) {
    auto fills = static_cast<uint32_t>(s >> 32);
    uint64_t tokens = s & 0xffff'ffffu;
    // Modulo 2^32: right across a wrap. A thread whose `now` is older than the last
    // update's sees a huge difference; it adds nothing instead.
    uint32_t missed = fills_now - fills;
    uint32_t base = fills;
    if (missed > 0 && missed < (1u << 31)) {
      tokens = std::min<uint64_t>(max_tokens_, tokens + uint64_t{missed} * tokens_per_fill_);
      base = fills_now;
    }
    t.allowed = tokens > 0;
    if (t.allowed) --tokens;
    t.remaining = static_cast<uint32_t>(tokens);
    uint64_t next = (uint64_t{base} << 32) | tokens;
    if (next == s) return t;  // empty and nothing to refill: no write
    if (state_.compare_exchange_weak(s, next, std::memory_order_relaxed)) return t;
  }
}

}  // namespace meshbox
