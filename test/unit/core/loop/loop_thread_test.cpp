// Tests for core/loop/loop_thread.h (a thread running its own Loop) and for the Loop itself
// (defer_delete, close), which LoopThread is built on.
#include "core/loop/loop_thread.h"

#include <doctest/doctest.h>
#include <pthread.h>

#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "core/loop/loop.h"
#include "core/loop/timer.h"

namespace meshbox::loop {
namespace {

constexpr auto kDeadline = std::chrono::seconds(20);

// Runs `task` on `lt`'s loop and waits (with a deadline) for it to finish.
template <typename F>
bool run_on(LoopThread& lt, F task) {
  auto done = std::make_shared<std::promise<void>>();
  auto fut = done->get_future();
  lt.post([task, done]() mutable {
    task();
    done->set_value();
  });
  return fut.wait_for(kDeadline) == std::future_status::ready;
}

class Tracked : public Deferred {
 public:
  Tracked(std::vector<std::string>& log, std::string name, Loop* loop = nullptr,
          std::unique_ptr<Deferred> then = nullptr)
      : log_(log), name_(std::move(name)), loop_(loop), then_(std::move(then)) {}
  ~Tracked() override {
    log_.push_back(name_);
    // Destructors may defer more objects.
    if (loop_ && then_) loop_->defer_delete(std::move(then_));
  }

 private:
  std::vector<std::string>& log_;
  std::string name_;
  Loop* loop_;
  std::unique_ptr<Deferred> then_;
};

TEST_CASE("loop: defer_delete destroys at the next iteration, not inline") {
  std::vector<std::string> log;
  Loop loop;
  CHECK(loop.is_this_thread());
  loop.defer_delete(std::make_unique<Tracked>(log, "a"));
  loop.defer_delete(std::make_unique<Tracked>(log, "b"));
  CHECK(log.empty());
  CHECK(uv_loop_alive(loop.uv()) != 0);  // the idle handle waits to run
  uv_run(loop.uv(), UV_RUN_NOWAIT);
  CHECK(log == std::vector<std::string>{"a", "b"});
  // Nothing pending: the loop has nothing keeping it alive.
  CHECK(uv_loop_alive(loop.uv()) == 0);
  // And the mechanism re-arms.
  loop.defer_delete(std::make_unique<Tracked>(log, "c"));
  uv_run(loop.uv(), UV_RUN_NOWAIT);
  CHECK(log.back() == "c");
  CHECK(loop.close().is_ok());
}

TEST_CASE("loop: objects deferred by a destructor go in the same pass") {
  std::vector<std::string> log;
  Loop loop;
  auto inner = std::make_unique<Tracked>(log, "inner");
  loop.defer_delete(std::make_unique<Tracked>(log, "outer", &loop, std::move(inner)));
  uv_run(loop.uv(), UV_RUN_NOWAIT);
  CHECK(log == std::vector<std::string>{"outer", "inner"});
  CHECK(uv_loop_alive(loop.uv()) == 0);
  CHECK(loop.close().is_ok());
}

TEST_CASE("loop: defer_delete from a callback outlives the callback") {
  std::vector<std::string> log;
  Loop loop;
  {
    bool fired = false;
    Timer t(loop, [&] {
      loop.defer_delete(std::make_unique<Tracked>(log, "x"));
      CHECK(log.empty());
      fired = true;
    });
    t.start(0);
    // Timers run before idle handles in one iteration: the object goes in the same
    // uv_run() call, once the timer callback has returned.
    while (!fired)
      uv_run(loop.uv(), UV_RUN_ONCE);
    CHECK(log == std::vector<std::string>{"x"});
  }
  CHECK(loop.close().is_ok());
}

TEST_CASE("loop: close() destroys objects still waiting") {
  std::vector<std::string> log;
  {
    Loop loop;
    loop.defer_delete(std::make_unique<Tracked>(log, "late"));
    CHECK(loop.close().is_ok());
    CHECK(log == std::vector<std::string>{"late"});
  }
  // A loop never closed explicitly closes itself when destroyed.
  {
    Loop loop;
    loop.defer_delete(std::make_unique<Tracked>(log, "dtor"));
  }
  CHECK(log.back() == "dtor");
}

TEST_CASE("loop: now_ms() is the loop's cached clock") {
  Loop loop;
  uint64_t t0 = loop.now_ms();
  uv_update_time(loop.uv());
  CHECK(loop.now_ms() >= t0);
  CHECK(loop.read_buffer() != nullptr);
  CHECK(loop.close().is_ok());
}

TEST_CASE("loop_thread: tasks run on the worker thread, in order") {
  LoopThread lt("mb-test-worker");
  lt.start();
  std::thread::id worker;
  bool on_loop = false;
  REQUIRE(run_on(lt, [&] {
    worker = std::this_thread::get_id();
    on_loop = lt.loop().is_this_thread();
  }));
  CHECK(worker != std::this_thread::get_id());
  CHECK(on_loop);

  // Many posts from this thread arrive in order.
  std::vector<int> seen;
  for (int i = 0; i < 1000; ++i)
    lt.post([&seen, i] { seen.push_back(i); });
  REQUIRE(run_on(lt, [] {}));
  REQUIRE(seen.size() == 1000);
  for (int i = 0; i < 1000; ++i)
    CHECK(seen[i] == i);

  lt.release();
  CHECK(lt.join().is_ok());
}

TEST_CASE("loop_thread: the thread carries its name (truncated to 15 bytes)") {
  LoopThread lt("meshbox-worker-number-7");
  lt.start();
  std::string name;
  REQUIRE(run_on(lt, [&] {
    char buf[32] = {0};
    pthread_getname_np(pthread_self(), buf, sizeof buf);
    name = buf;
  }));
  CHECK(name == "meshbox-worker-");
  lt.release();
  CHECK(lt.join().is_ok());
}

TEST_CASE("loop_thread: posts from several threads") {
  LoopThread lt("mb-test-multi");
  lt.start();
  constexpr int kThreads = 3, kPosts = 5000;
  int total = 0;  // loop thread only
  std::vector<std::thread> posters;
  for (int t = 0; t < kThreads; ++t)
    posters.emplace_back([&] {
      for (int i = 0; i < kPosts; ++i)
        lt.post([&total] { ++total; });
    });
  for (auto& t : posters)
    t.join();
  int seen = 0;
  REQUIRE(run_on(lt, [&] { seen = total; }));
  CHECK(seen == kThreads * kPosts);
  lt.release();
  CHECK(lt.join().is_ok());
}

TEST_CASE("loop_thread: the loop keeps running while handles are open after release()") {
  LoopThread lt("mb-test-timer");
  lt.start();
  std::atomic<int> fired{0};
  std::unique_ptr<Timer> timer;
  REQUIRE(run_on(lt, [&] {
    timer = std::make_unique<Timer>(lt.loop(), [&] {
      // The third tick closes the timer (from a task: a Timer must not be destroyed inside
      // its own callback); the loop then has nothing left and ends.
      if (++fired == 3) {
        timer->stop();
        lt.post([&] { timer.reset(); });
      }
    });
    timer->start(1, 1);
  }));
  lt.release();
  CHECK(lt.join().is_ok());
  CHECK(fired.load() == 3);
  CHECK(timer == nullptr);
}

TEST_CASE("loop_thread: join() reports a handle left open") {
  LoopThread lt("mb-test-leak");
  lt.start();
  Timer* leaked = nullptr;
  // An idle timer does not keep the loop alive, but it is still an open handle.
  REQUIRE(run_on(lt, [&] { leaked = new Timer(lt.loop(), [] {}); }));
  lt.release();
  Status s = lt.join();
  CHECK_FALSE(s.is_ok());
  CHECK(s.message().find("timer") != std::string::npos);
  // Clean up so the test itself leaks nothing: the thread is gone, so this thread may use the
  // loop now.
  delete leaked;
  uv_run(lt.loop().uv(), UV_RUN_NOWAIT);
  CHECK(uv_loop_close(lt.loop().uv()) == 0);
}

TEST_CASE("loop_thread: the destructor releases and joins") {
  std::atomic<bool> ran{false};
  {
    LoopThread lt("mb-test-dtor");
    lt.start();
    REQUIRE(run_on(lt, [&] { ran = true; }));
  }
  CHECK(ran.load());
  // A thread that never started is fine too.
  { LoopThread idle("mb-test-idle"); }
}

}  // namespace
}  // namespace meshbox::loop
