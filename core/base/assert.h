// Invariant macros (after Envoy's macro table):
//   MB_ASSERT(c)  debug builds only: a programming error we want to catch in tests.
//   MB_CHECK(c)   all builds, fatal: the process cannot continue (OOM, broken environment).
//   MB_BUG(msg)   fatal in debug; logged in release. For "cannot happen" paths that must not
//                 take a production proxy down.
// Never assert on anything the network can send.
#pragma once

#include <cstdio>
#include <cstdlib>

namespace meshbox::detail {
[[noreturn]] inline void assert_fail(const char* kind, const char* expr, const char* file,
                                     int line) {
  std::fprintf(stderr, "meshbox: %s failed: %s at %s:%d\n", kind, expr, file, line);
  std::abort();
}
}  // namespace meshbox::detail

#define MB_CHECK(c) \
  ((c) ? (void)0 : ::meshbox::detail::assert_fail("check", #c, __FILE__, __LINE__))

#ifdef NDEBUG
#define MB_ASSERT(c) ((void)0)
#define MB_BUG(msg) (std::fprintf(stderr, "meshbox: bug: %s at %s:%d\n", msg, __FILE__, __LINE__))
#else
#define MB_ASSERT(c) \
  ((c) ? (void)0 : ::meshbox::detail::assert_fail("assert", #c, __FILE__, __LINE__))
#define MB_BUG(msg) ::meshbox::detail::assert_fail("bug", msg, __FILE__, __LINE__)
#endif
