// Signal: runs a function on the loop thread when the process receives a signal
// (uv_signal). Loop thread only.
#pragma once

#include <functional>

#include "core/base/non_copyable.h"
#include "core/loop/loop.h"

namespace meshbox::loop {

class Signal : NonCopyable {
 public:
  Signal(Loop& loop, int signum, std::function<void()> on_signal);
  ~Signal();
  /// Keeps the handle from holding the loop open.
  void unref() { uv_unref(reinterpret_cast<uv_handle_t*>(handle_)); }

 private:
  uv_signal_t* handle_;
  std::function<void()> on_signal_;
};

}  // namespace meshbox::loop
