// Tests for core/loop/mailbox.h: cross-thread posting onto a loop.
#include "core/loop/mailbox.h"

#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <thread>
#include <utility>
#include <vector>

#include "core/loop/loop.h"
#include "test/support/test_loop.h"

namespace meshbox::loop {
namespace {

TEST_CASE("mailbox: a post from the loop thread runs later, on the loop") {
  Loop loop;
  {
    Mailbox mb(loop);
    int ran = 0;
    mb.post([&] { ++ran; });
    CHECK(ran == 0);  // never inline
    CHECK(run_until(loop, [&] { return ran == 1; }));
    uv_run(loop.uv(), UV_RUN_NOWAIT);
    CHECK(ran == 1);  // exactly once
  }
  CHECK(loop.close().is_ok());
}

TEST_CASE("mailbox: posts from many threads all arrive once, in per-thread order") {
  constexpr int kThreads = 4;
  constexpr int kPosts = 10000;
  Loop loop;
  {
    Mailbox mb(loop);
    std::thread::id loop_thread = std::this_thread::get_id();
    // Touched only on the loop thread.
    std::vector<int> next(kThreads, 0);
    int delivered = 0, out_of_order = 0, wrong_thread = 0;

    std::atomic<bool> go{false};
    std::vector<std::thread> posters;
    for (int t = 0; t < kThreads; ++t) {
      posters.emplace_back([&, t] {
        while (!go.load())
          std::this_thread::yield();
        for (int i = 0; i < kPosts; ++i) {
          mb.post([&, t, i] {
            if (std::this_thread::get_id() != loop_thread) ++wrong_thread;
            if (next[t] != i) ++out_of_order;
            next[t] = i + 1;
            ++delivered;
          });
        }
      });
    }
    go = true;
    CHECK(run_until(loop, [&] { return delivered == kThreads * kPosts; }));
    for (auto& t : posters)
      t.join();
    // Nothing extra shows up later.
    uv_run(loop.uv(), UV_RUN_NOWAIT);
    CHECK(delivered == kThreads * kPosts);
    CHECK(out_of_order == 0);
    CHECK(wrong_thread == 0);
    for (int t = 0; t < kThreads; ++t)
      CHECK(next[t] == kPosts);
  }
  CHECK(loop.close().is_ok());
}

TEST_CASE("mailbox: a task may post more tasks") {
  Loop loop;
  {
    Mailbox mb(loop);
    std::vector<int> order;
    std::function<void(int)> chain = [&](int i) {
      order.push_back(i);
      if (i < 99) mb.post([&chain, i] { chain(i + 1); });
    };
    mb.post([&] { chain(0); });
    // A task posted from inside a task runs in a later drain, after the rest of the current
    // batch: the second top-level task runs before chain(1).
    mb.post([&] { order.push_back(-1); });
    CHECK(run_until(loop, [&] { return order.size() == 101; }));
    REQUIRE(order.size() == 101);
    CHECK(order[0] == 0);
    CHECK(order[1] == -1);
    for (int i = 1; i < 100; ++i)
      CHECK(order[i + 1] == i);
  }
  CHECK(loop.close().is_ok());
}

TEST_CASE("mailbox: posts from another thread wake a loop blocked in uv_run") {
  Loop loop;
  {
    Mailbox mb(loop);
    std::atomic<int> ran{0};
    std::thread poster([&] { mb.post([&] { ran = 1; }); });
    // No guard timer here: only the async wakeup can end this UV_RUN_ONCE. The mailbox is
    // the only active handle, so uv_run blocks until the post arrives.
    uv_run(loop.uv(), UV_RUN_ONCE);
    poster.join();
    CHECK(ran.load() == 1);
  }
  CHECK(loop.close().is_ok());
}

TEST_CASE("mailbox: undelivered tasks are dropped, not run, when the mailbox goes") {
  Loop loop;
  auto token = std::make_shared<int>(0);
  int ran = 0;
  {
    Mailbox mb(loop);
    mb.post([token, &ran] { ++ran; });
    CHECK(token.use_count() == 2);
  }
  CHECK(token.use_count() == 1);  // the task (and its captures) were destroyed
  CHECK(loop.close().is_ok());
  CHECK(ran == 0);
}

TEST_CASE("mailbox: unref() stops the mailbox from keeping the loop alive") {
  Loop loop;
  {
    Mailbox mb(loop);
    CHECK(uv_loop_alive(loop.uv()) != 0);
    mb.unref();
    CHECK(uv_loop_alive(loop.uv()) == 0);
    // Posting still works after unref.
    int ran = 0;
    mb.post([&] { ran = 1; });
    CHECK(run_until(loop, [&] { return ran == 1; }));
    // And run() returns by itself.
    loop.run();
  }
  CHECK(loop.close().is_ok());
}

}  // namespace
}  // namespace meshbox::loop
