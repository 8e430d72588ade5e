// Tests for core/base/log.h: level names, the level switch, the line format and the
// rate limiter behind MB_LOG_EVERY.
#include "core/base/log.h"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

namespace meshbox::log {
namespace {

// Restores the process-wide level when a test ends.
class LevelGuard {
 public:
  LevelGuard() : saved_(level()) {}
  ~LevelGuard() { set_level(saved_); }

 private:
  Level saved_;
};

// Sends stderr into a pipe until take() (log lines are short; the pipe never fills).
class StderrCapture {
 public:
  StderrCapture() {
    REQUIRE(::pipe(fds_) == 0);
    saved_ = ::dup(STDERR_FILENO);
    REQUIRE(saved_ >= 0);
    REQUIRE(::dup2(fds_[1], STDERR_FILENO) == STDERR_FILENO);
    ::close(fds_[1]);
  }
  ~StderrCapture() {
    if (saved_ >= 0) take();
  }
  std::string take() {
    ::dup2(saved_, STDERR_FILENO);
    ::close(saved_);
    saved_ = -1;
    std::string out;
    char buf[4096];
    for (;;) {
      ssize_t n = ::read(fds_[0], buf, sizeof buf);
      if (n <= 0) break;
      out.append(buf, static_cast<size_t>(n));
    }
    ::close(fds_[0]);
    return out;
  }

 private:
  int fds_[2] = {-1, -1};
  int saved_ = -1;
};

int64_t steady_seconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

size_t count_lines(const std::string& s) {
  size_t n = 0;
  for (char c : s)
    n += c == '\n';
  return n;
}

TEST_CASE("log: level names parse and print") {
  CHECK(parse_level("trace") == Level::Trace);
  CHECK(parse_level("debug") == Level::Debug);
  CHECK(parse_level("info") == Level::Info);
  CHECK(parse_level("warn") == Level::Warn);
  CHECK(parse_level("warning") == Level::Warn);
  CHECK(parse_level("error") == Level::Error);
  CHECK(parse_level("off") == Level::Off);
  CHECK_FALSE(parse_level("").has_value());
  CHECK_FALSE(parse_level("verbose").has_value());
  CHECK_FALSE(parse_level("info ").has_value());
  for (Level l : {Level::Trace, Level::Debug, Level::Info, Level::Warn, Level::Error, Level::Off})
    CHECK(parse_level(level_name(l)) == l);
  CHECK(level_name(Level::Warn) == "warn");
}

TEST_CASE("log: enabled() follows set_level()") {
  LevelGuard guard;
  set_level(Level::Warn);
  CHECK(level() == Level::Warn);
  CHECK_FALSE(enabled(Level::Debug));
  CHECK_FALSE(enabled(Level::Info));
  CHECK(enabled(Level::Warn));
  CHECK(enabled(Level::Error));
  set_level(Level::Off);
  CHECK_FALSE(enabled(Level::Error));
  set_level(Level::Trace);
  CHECK(enabled(Level::Trace));
}

TEST_CASE("log: a line is '<UTC time> <level> [<component>] <message>'") {
  StderrCapture cap;
  write(Level::Warn, "listener", "accept failed: too many open files");
  std::string out = cap.take();
  CAPTURE(out);
  // "2024-05-01T12:34:56.789Z " is 25 bytes; '#' stands for a digit.
  const std::string stamp = "####-##-##T##:##:##.###Z ";
  REQUIRE(out.size() > stamp.size());
  for (size_t i = 0; i < stamp.size(); ++i) {
    CAPTURE(i);
    if (stamp[i] == '#') {
      CHECK((out[i] >= '0' && out[i] <= '9'));
    } else {
      CHECK(out[i] == stamp[i]);
    }
  }
  CHECK(out.substr(stamp.size()) == "warn [listener] accept failed: too many open files\n");
}

TEST_CASE("log: the macros skip formatting when the level is off") {
  LevelGuard guard;
  int evaluated = 0;
  auto arg = [&] {
    ++evaluated;
    return 42;
  };
  StderrCapture cap;
  set_level(Level::Error);
  MB_INFO("test", "value {}", arg());
  MB_DEBUG("test", "value {}", arg());
  MB_WARN("test", "value {}", arg());
  CHECK(evaluated == 0);
  MB_ERROR("test", "value {}", arg());
  CHECK(evaluated == 1);
  std::string out = cap.take();
  CHECK(count_lines(out) == 1);
  CHECK(out.find("error [test] value 42\n") != std::string::npos);
}

TEST_CASE("log: allow() admits per_second calls within one second") {
  // Retry if the clock ticks over a second boundary mid-test (the limiter resets then).
  bool checked = false;
  for (int attempt = 0; attempt < 5 && !checked; ++attempt) {
    std::atomic<int64_t> state{0};
    int64_t before = steady_seconds();
    std::vector<bool> got;
    for (int i = 0; i < 10; ++i)
      got.push_back(allow(state, 3));
    if (steady_seconds() != before) continue;
    checked = true;
    CHECK(got ==
          std::vector<bool>{true, true, true, false, false, false, false, false, false, false});
  }
  CHECK(checked);
}

TEST_CASE("log: allow() starts again in a new second") {
  int64_t now = steady_seconds();
  // Exhausted during the previous second.
  std::atomic<int64_t> state{((now - 1) << 20) | 5};
  CHECK(allow(state, 5));
  // Exhausted during this second (unless the clock just ticked, which allows again).
  std::atomic<int64_t> full{(now << 20) | 5};
  bool allowed = allow(full, 5);
  CHECK((allowed == false || steady_seconds() != now));
}

TEST_CASE("log: allow() is shared safely by several threads") {
  constexpr int kThreads = 4, kCalls = 20000, kPerSecond = 1000;
  std::atomic<int64_t> state{0};
  std::atomic<int> admitted{0};
  int64_t before = steady_seconds();
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < kCalls; ++i)
        if (allow(state, kPerSecond)) admitted.fetch_add(1, std::memory_order_relaxed);
    });
  for (auto& t : threads)
    t.join();
  int64_t seconds = steady_seconds() - before + 1;
  CHECK(admitted.load() >= kPerSecond);
  CHECK(admitted.load() <= kPerSecond * seconds);
}

TEST_CASE("log: MB_LOG_EVERY writes at most per_sec lines a second") {
  LevelGuard guard;
  set_level(Level::Info);
  bool checked = false;
  for (int attempt = 0; attempt < 5 && !checked; ++attempt) {
    int64_t before = steady_seconds();
    StderrCapture cap;
    for (int i = 0; i < 50; ++i)
      MB_LOG_EVERY(2, Warn, "flood", "event {}", i);
    std::string out = cap.take();
    if (steady_seconds() != before) continue;
    checked = true;
    // The call site's state persists across attempts, so a retry in the same second as an
    // earlier attempt may print nothing: only the upper bound holds in general.
    CHECK(count_lines(out) <= 2);
    if (attempt == 0) {
      CHECK(count_lines(out) == 2);
      CHECK(out.find("[flood] event 0\n") != std::string::npos);
      CHECK(out.find("[flood] event 1\n") != std::string::npos);
    }
  }
  CHECK(checked);
}

}  // namespace
}  // namespace meshbox::log
