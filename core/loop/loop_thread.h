// LoopThread: a thread that runs its own Loop, reachable through its Mailbox. The control
// thread owns LoopThreads (one per worker). post() is Thread-safe; everything else is for the
// owning thread. The loop runs until release() has been posted and every handle on it is
// closed; then the thread closes the loop and ends.
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/base/non_copyable.h"
#include "core/loop/loop.h"
#include "core/loop/mailbox.h"

namespace meshbox::loop {

/// Pins the calling thread to `cpu`. An error if the CPU is not in the process's set.
Status pin_current_thread(int cpu);
/// The CPUs this process may run on (sched_getaffinity), ascending.
std::vector<int> allowed_cpus();

class LoopThread : NonCopyable {
 public:
  explicit LoopThread(std::string name);
  ~LoopThread();  // joins

  Loop& loop() { return *loop_; }
  void start();
  /// Thread-safe. Runs `task` on this thread's loop. Only until join() returns: the mailbox
  /// goes with the thread.
  void post(Mailbox::Task task) { mailbox_->post(std::move(task)); }
  /// Thread-safe, at any time until destruction: posts `task` if the loop still runs, else
  /// drops it and returns false. For threads that cannot know whether this one has ended
  /// (workers waking each other).
  bool try_post(Mailbox::Task task);
  /// Thread-safe. Lets the loop end once its own handles are closed (owners close them).
  void release();
  /// Waits for the thread to end. Returns the loop's close status (an error names leaks).
  Status join();

 private:
  std::string name_;
  std::unique_ptr<Loop> loop_;
  std::mutex post_mu_;  // guards mailbox_ going away, for try_post()
  std::unique_ptr<Mailbox> mailbox_;
  std::thread thread_;
  Status close_status_;
};

}  // namespace meshbox::loop
