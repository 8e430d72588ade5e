#include "core/base/log.h"

#include <unistd.h>

#include <chrono>
#include <ctime>

namespace meshbox::log {

std::atomic<int> g_level{static_cast<int>(Level::Info)};

namespace {
constexpr std::string_view kNames[] = {"trace", "debug", "info", "warn", "error", "off"};
}

std::optional<Level> parse_level(std::string_view name) {
  for (int i = 0; i < 6; ++i)
    if (kNames[i] == name) return static_cast<Level>(i);
  if (name == "warning") return Level::Warn;
  return std::nullopt;
}

std::string_view level_name(Level level) {
  return kNames[static_cast<int>(level)];
}

void set_level(Level level) {
  g_level.store(static_cast<int>(level), std::memory_order_relaxed);
}
Level level() {
  return static_cast<Level>(g_level.load(std::memory_order_relaxed));
}

void write(Level lvl, std::string_view component, std::string_view message) {
  using namespace std::chrono;
  auto now = system_clock::now();
  std::time_t secs = system_clock::to_time_t(now);
  auto ms = duration_cast<milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
  // One write(2) per line so lines from several threads never interleave.
  std::string line =
      fmt::format("{}.{:03}Z {} [{}] {}\n", stamp, ms, level_name(lvl), component, message);
  ssize_t ignored = ::write(STDERR_FILENO, line.data(), line.size());
  (void)ignored;
}

bool allow(std::atomic<int64_t>& state, int per_second) {
  // state packs (second << 20) | count-in-that-second.
  int64_t now_s = std::chrono::duration_cast<std::chrono::seconds>(
                      std::chrono::steady_clock::now().time_since_epoch())
                      .count();
  int64_t cur = state.load(std::memory_order_relaxed);
  for (;;) {
    int64_t sec = cur >> 20, count = cur & 0xfffff;
    int64_t next = sec == now_s ? cur + 1 : (now_s << 20) | 1;
    if (sec == now_s && count >= per_second) return false;
    if (state.compare_exchange_weak(cur, next, std::memory_order_relaxed)) return true;
  }
}

}  // namespace meshbox::log
