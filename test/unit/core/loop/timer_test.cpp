// Tests for core/loop/timer.h: one-shot and repeating uv timers.
#include "core/loop/timer.h"

#include <doctest/doctest.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/loop/loop.h"
#include "test/support/test_loop.h"

namespace meshbox::loop {
namespace {

// Runs the loop until a fresh timer of `ms` has fired: every timer due before it has fired too.
void run_past(Loop& loop, uint64_t ms) {
  bool done = false;
  Timer marker(loop, [&] { done = true; });
  marker.start(ms);
  REQUIRE(run_until(loop, [&] { return done; }));
}

TEST_CASE("timer: a one-shot timer fires once") {
  Loop loop;
  {
    int fired = 0;
    Timer t(loop, [&] { ++fired; });
    CHECK_FALSE(t.active());
    t.start(1);
    CHECK(t.active());
    CHECK(fired == 0);  // never inline
    CHECK(run_until(loop, [&] { return fired > 0; }));
    CHECK_FALSE(t.active());
    run_past(loop, 20);
    CHECK(fired == 1);
  }
  CHECK(loop.close().is_ok());
}

TEST_CASE("timer: a zero timeout fires on the next iteration") {
  Loop loop;
  {
    int fired = 0;
    Timer t(loop, [&] { ++fired; });
    t.start(0);
    CHECK(fired == 0);
    uv_run(loop.uv(), UV_RUN_NOWAIT);
    CHECK(fired == 1);
  }
  CHECK(loop.close().is_ok());
}

TEST_CASE("timer: does not fire before its timeout") {
  Loop loop;
  {
    uint64_t started = 0, fired_at = 0;
    Timer t(loop, [&] {
      uv_update_time(loop.uv());
      fired_at = loop.now_ms();
    });
    uv_update_time(loop.uv());
    started = loop.now_ms();
    t.start(30);
    CHECK(run_until(loop, [&] { return fired_at != 0; }));
    CHECK(fired_at - started >= 30);
  }
  CHECK(loop.close().is_ok());
}

TEST_CASE("timer: a repeating timer fires until stopped") {
  Loop loop;
  {
    int fired = 0;
    Timer t(loop, [&] { ++fired; });
    t.start(1, 1);
    CHECK(run_until(loop, [&] { return fired >= 5; }));
    CHECK(t.active());
    t.stop();
    CHECK_FALSE(t.active());
    int at_stop = fired;
    run_past(loop, 20);
    CHECK(fired == at_stop);
  }
  CHECK(loop.close().is_ok());
}

TEST_CASE("timer: a stopped or destroyed timer never fires") {
  Loop loop;
  {
    int fired = 0;
    Timer stopped(loop, [&] { ++fired; });
    stopped.start(1);
    stopped.stop();
    auto dropped = std::make_unique<Timer>(loop, [&] { ++fired; });
    dropped->start(1);
    dropped.reset();
    run_past(loop, 20);
    CHECK(fired == 0);
  }
  CHECK(loop.close().is_ok());
}

TEST_CASE("timer: start() re-arms with the new timeout") {
  Loop loop;
  {
    int fired = 0;
    Timer t(loop, [&] { ++fired; });
    t.start(60 * 60 * 1000);  // an hour: would time the test out
    t.start(1);
    CHECK(run_until(loop, [&] { return fired == 1; }));
    CHECK_FALSE(t.active());
    // Restart after firing.
    t.start(1);
    CHECK(run_until(loop, [&] { return fired == 2; }));
  }
  CHECK(loop.close().is_ok());
}

TEST_CASE("timer: timers due together fire in start order") {
  Loop loop;
  {
    std::vector<int> order;
    std::vector<std::unique_ptr<Timer>> timers;
    for (int i = 0; i < 5; ++i) {
      timers.push_back(std::make_unique<Timer>(loop, [&order, i] { order.push_back(i); }));
      timers.back()->start(2);
    }
    CHECK(run_until(loop, [&] { return order.size() == 5; }));
    CHECK(order == std::vector<int>{0, 1, 2, 3, 4});
  }
  CHECK(loop.close().is_ok());
}

TEST_CASE("timer: a callback may stop and restart its own timer") {
  Loop loop;
  {
    int fired = 0;
    std::unique_ptr<Timer> t;
    t = std::make_unique<Timer>(loop, [&] {
      ++fired;
      t->stop();
      if (fired < 3) t->start(1);
    });
    t->start(1);
    CHECK(run_until(loop, [&] { return fired == 3; }));
    run_past(loop, 20);
    CHECK(fired == 3);
  }
  CHECK(loop.close().is_ok());
}

TEST_CASE("timer: Loop::close() names a timer left open") {
  Loop loop;
  auto t = std::make_unique<Timer>(loop, [] {});
  Status s = loop.close();
  CHECK_FALSE(s.is_ok());
  CHECK(s.code() == Code::Internal);
  CHECK(s.message().find("timer") != std::string::npos);
  // Release it and finish the close by hand so the test leaks nothing.
  t.reset();
  uv_run(loop.uv(), UV_RUN_NOWAIT);
  CHECK(uv_loop_close(loop.uv()) == 0);
}

}  // namespace
}  // namespace meshbox::loop
