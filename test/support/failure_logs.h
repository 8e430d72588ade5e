// Logs shown when a test fails. Each process a test starts registers its log file for its
// lifetime (ScopedFailureLog); on the first failed assertion of a test case the doctest
// listener in test/integration/main.cpp prints the tail of every registered log. Passing
// tests stay quiet, and MESSAGE lines are not buried under logs. Thread-safe.
#pragma once

#include <string>
#include <vector>

namespace meshbox::test {

class ScopedFailureLog {
 public:
  ScopedFailureLog(std::string title, std::string path);
  ~ScopedFailureLog();
  ScopedFailureLog(const ScopedFailureLog&) = delete;
  ScopedFailureLog& operator=(const ScopedFailureLog&) = delete;

 private:
  int id_;
};

/// "--- title ---\n<tail of the file>\n" for every registered log, oldest first.
std::string registered_failure_logs(size_t max_bytes_each = 12000);

}  // namespace meshbox::test
