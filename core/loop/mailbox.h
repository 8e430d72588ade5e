// Mailbox: the one way to run code on another loop's thread. post() is Thread-safe; the
// posted functions run on the mailbox's loop thread, in order. After Envoy's
// DispatcherImpl::post: post() pushes under a mutex and wakes the loop with uv_async_send only
// when the list was empty; uv_async_send coalesces, so the callback swaps the whole list out
// and runs every item outside the lock.
//
// Lifetime: the Mailbox is created and destroyed on its loop thread; nobody may post() after
// destruction begins (owners join the posting threads first, or stop them posting).
#pragma once

#include <functional>
#include <mutex>
#include <vector>

#include "core/base/non_copyable.h"
#include "core/loop/loop.h"

namespace meshbox::loop {

class Mailbox : NonCopyable {
 public:
  using Task = std::function<void()>;

  explicit Mailbox(Loop& loop);
  ~Mailbox();

  /// Thread-safe. Runs `task` on the mailbox's loop thread.
  void post(Task task);

  /// Loop thread only. Stops the mailbox from keeping its loop alive: the loop's run() returns
  /// once every other handle is closed. Posting still works until destruction.
  void unref() { uv_unref(reinterpret_cast<uv_handle_t*>(async_)); }

 private:
  static void on_wakeup(uv_async_t* async);
  void drain();

  uv_async_t* async_;
  std::mutex mu_;
  std::vector<Task> tasks_;  // guarded by mu_
};

}  // namespace meshbox::loop
