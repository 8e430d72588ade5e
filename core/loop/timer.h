// Timer: a one-shot or repeating timer. Loop thread only. Destroying the Timer stops it; the
// handle itself is released by the loop later (core/loop handle rule).
//
// Re-arming is cheap: proxies restart their timeouts on nearly every read, so start() only
// records the new deadline when the libuv timer is already due no later than it; the libuv
// timer then fires early, notices the deadline moved, and re-arms itself for the rest. stop()
// likewise only clears the deadline. This keeps libuv's timer heap out of the request path.
#pragma once

#include <functional>

#include "core/base/non_copyable.h"
#include "core/loop/loop.h"

namespace meshbox::loop {

class Timer : NonCopyable {
 public:
  Timer(Loop& loop, std::function<void()> on_fire);
  ~Timer();

  /// (Re)arms the timer: fires after `timeout_ms`, then every `repeat_ms` if non-zero.
  void start(uint64_t timeout_ms, uint64_t repeat_ms = 0);
  /// Stops the timer for real, so it no longer keeps the loop alive.
  void stop();
  bool active() const { return deadline_ != 0; }

 private:
  static void on_uv_timer(uv_timer_t* t);

  uv_timer_t* handle_;
  std::function<void()> on_fire_;
  uint64_t deadline_ = 0;  // loop time at which to fire; 0 = stopped
  uint64_t armed_ = 0;     // loop time the libuv timer is set for; 0 = not armed
  uint64_t repeat_ms_ = 0;
};

}  // namespace meshbox::loop
