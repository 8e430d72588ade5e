// Deadline: a point on the steady clock that every blocking test helper takes, so no
// integration test can hang: each wait ends at its deadline, never after a fixed sleep.
// A plain value type.
#pragma once

#include <poll.h>

#include <algorithm>
#include <chrono>
#include <cstdint>

namespace meshbox::test {

using namespace std::chrono_literals;

class Deadline {
 public:
  using Clock = std::chrono::steady_clock;

  explicit Deadline(Clock::duration from_now) : at_(Clock::now() + from_now) {}

  bool expired() const { return Clock::now() >= at_; }
  /// Milliseconds left, rounded up, for poll(2): 0 once expired, at most a minute per call.
  int poll_ms() const {
    auto left = std::chrono::ceil<std::chrono::milliseconds>(at_ - Clock::now()).count();
    return static_cast<int>(std::clamp<int64_t>(left, 0, 60'000));
  }
  /// The earlier of this deadline and `other` from now.
  Deadline min(Clock::duration other) const {
    Deadline d(other);
    if (at_ < d.at_) d.at_ = at_;
    return d;
  }

 private:
  Clock::time_point at_;
};

/// The pause between two checks of a condition in a loop bounded by a Deadline (a file
/// appearing, a counter changing: things with no event to wait on). Never a substitute for
/// waiting on the condition itself.
inline void poll_pause(std::chrono::milliseconds d = 5ms) {
  ::poll(nullptr, 0, static_cast<int>(d.count()));
}

/// Checks `pred` every `every` until it holds or `within` passes; its last answer.
template <typename F>
bool eventually(F pred, std::chrono::milliseconds within = 10s,
                std::chrono::milliseconds every = 20ms) {
  Deadline d(within);
  while (!d.expired()) {
    if (pred()) return true;
    poll_pause(every);
  }
  return pred();
}

/// Milliseconds since `start` (for MESSAGE lines and bounds on how long something took).
inline int64_t ms_since(Deadline::Clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Deadline::Clock::now() - start)
      .count();
}

}  // namespace meshbox::test
