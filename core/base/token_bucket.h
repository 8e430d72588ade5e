// TokenBucket: Envoy's local rate limit bucket, shared by every thread of the process. It
// starts full with max_tokens; every fill_interval it gains tokens_per_fill (never above
// max_tokens); each take() spends one token, or fails when none is left.
//
// Thread-safe and lock-free: the tokens and the number of fills already counted live in one
// 64-bit atomic, updated with compare-and-swap, so N workers spending from one bucket see
// one limit (the limit holds for the process as a whole). Time is passed in, on a clock every
// thread shares (CLOCK_MONOTONIC milliseconds): fills are counted in whole intervals since
// the bucket was made, so the refill needs no timer.
#pragma once

#include <atomic>
#include <cstdint>

#include "core/base/non_copyable.h"

namespace meshbox {

class TokenBucket : NonCopyable {
 public:
  /// max_tokens and tokens_per_fill at least 1, fill_interval_ms at least 1 (config
  /// validation asks for 50 ms, as Envoy does).
  TokenBucket(uint32_t max_tokens, uint32_t tokens_per_fill, uint64_t fill_interval_ms,
              uint64_t now_ms);

  struct Take {
    bool allowed = false;
    uint32_t remaining = 0;  // tokens left after this take
    uint64_t reset_ms = 0;   // until the next fill
  };
  Take take(uint64_t now_ms);

  /// CLOCK_MONOTONIC in milliseconds: the clock every thread shares.
  static uint64_t now_ms();

  uint32_t max_tokens() const { return max_tokens_; }
  uint32_t tokens_per_fill() const { return tokens_per_fill_; }
  uint64_t fill_interval_ms() const { return fill_interval_ms_; }

 private:
  const uint32_t max_tokens_;
  const uint32_t tokens_per_fill_;
  const uint64_t fill_interval_ms_;
  const uint64_t start_ms_;
  // High 32 bits: the fill count (intervals since start_ms_, modulo 2^32) last applied; low
  // 32 bits: the tokens.
  std::atomic<uint64_t> state_;
};

}  // namespace meshbox
