// Timer: a one-shot or repeating uv_timer. Loop thread only. Destroying the Timer stops it;
// the handle itself is released by the loop later (core/loop handle rule).
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
  void stop();
  bool active() const { return uv_is_active(reinterpret_cast<const uv_handle_t*>(handle_)); }

 private:
  uv_timer_t* handle_;
  std::function<void()> on_fire_;
};

}  // namespace meshbox::loop
