// Logging with fmt: one line per event to stderr, `<time> <level> [<component>] <message>`.
// The level is process-wide and may change at run time (Thread-safe: an atomic).
// MB_LOG_EVERY(...) is the rate-limited form for the data plane: counters carry the signal,
// logs carry samples (h2o's error reporter).
#pragma once

#include <atomic>
#include <cstdint>
#include <optional>
#include <string_view>

#include <fmt/core.h>

namespace meshbox::log {

enum class Level : int { Trace = 0, Debug, Info, Warn, Error, Off };

std::optional<Level> parse_level(std::string_view name);
std::string_view level_name(Level level);

void set_level(Level level);
Level level();
inline bool enabled(Level l) {
  extern std::atomic<int> g_level;
  return static_cast<int>(l) >= g_level.load(std::memory_order_relaxed);
}

/// Writes one formatted line; prefer the macros, which skip formatting when disabled.
void write(Level level, std::string_view component, std::string_view message);

/// True at most `per_second` times a second per call site `state` (approximate, lock-free).
bool allow(std::atomic<int64_t>& state, int per_second);

}  // namespace meshbox::log

#define MB_LOG(lvl, component, ...)                                                           \
  do {                                                                                        \
    if (::meshbox::log::enabled(::meshbox::log::Level::lvl))                                  \
      ::meshbox::log::write(::meshbox::log::Level::lvl, component, fmt::format(__VA_ARGS__)); \
  } while (0)

#define MB_TRACE(component, ...) MB_LOG(Trace, component, __VA_ARGS__)
#define MB_DEBUG(component, ...) MB_LOG(Debug, component, __VA_ARGS__)
#define MB_INFO(component, ...) MB_LOG(Info, component, __VA_ARGS__)
#define MB_WARN(component, ...) MB_LOG(Warn, component, __VA_ARGS__)
#define MB_ERROR(component, ...) MB_LOG(Error, component, __VA_ARGS__)

/// Rate-limited: at most `per_sec` lines a second from this call site.
#define MB_LOG_EVERY(per_sec, lvl, component, ...)                                            \
  do {                                                                                        \
    static std::atomic<int64_t> mb_log_state_{0};                                             \
    if (::meshbox::log::enabled(::meshbox::log::Level::lvl) &&                                \
        ::meshbox::log::allow(mb_log_state_, per_sec))                                        \
      ::meshbox::log::write(::meshbox::log::Level::lvl, component, fmt::format(__VA_ARGS__)); \
  } while (0)
