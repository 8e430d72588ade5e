// run_until: drives a Loop in a unit test until a predicate holds or a deadline passes (libuv's
// own tests do the same; no sleeps). Header-only, for test/unit.
#pragma once

#include <chrono>
#include <functional>

#include "core/loop/loop.h"

namespace meshbox::loop {

/// Runs `loop` until `done()` holds or `timeout` passes; a 5 ms guard timer keeps UV_RUN_ONCE
/// from blocking on an idle loop. Returns whether `done()` held.
inline bool run_until(Loop& loop, const std::function<bool()>& done,
                      std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
  auto* guard = new uv_timer_t;
  uv_timer_init(loop.uv(), guard);
  uv_timer_start(
      guard, [](uv_timer_t*) {}, 5, 5);
  auto deadline = std::chrono::steady_clock::now() + timeout;
  bool ok = true;
  while (!done()) {
    if (std::chrono::steady_clock::now() >= deadline) {
      ok = false;
      break;
    }
    uv_run(loop.uv(), UV_RUN_ONCE);
  }
  close_and_free(guard);
  return ok;
}

}  // namespace meshbox::loop
