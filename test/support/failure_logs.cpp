#include "test/support/failure_logs.h"

#include <map>
#include <mutex>
#include <utility>

#include "test/support/files.h"

namespace meshbox::test {

namespace {

struct Registry {
  std::mutex mu;
  int next_id = 0;
  std::map<int, std::pair<std::string, std::string>> logs;  // id → (title, path)
};

// Construct-on-first-use: no static initialization order to worry about.
Registry& registry() {
  static Registry* r = new Registry;
  return *r;
}

}  // namespace

ScopedFailureLog::ScopedFailureLog(std::string title, std::string path) {
  Registry& r = registry();
  std::lock_guard lock(r.mu);
  id_ = r.next_id++;
  r.logs.emplace(id_, std::make_pair(std::move(title), std::move(path)));
}

ScopedFailureLog::~ScopedFailureLog() {
  Registry& r = registry();
  std::lock_guard lock(r.mu);
  r.logs.erase(id_);
}

std::string registered_failure_logs(size_t max_bytes_each) {
  Registry& r = registry();
  std::lock_guard lock(r.mu);
  std::string out;
  for (const auto& [id, log] : r.logs)
    out += "--- " + log.first + " ---\n" + read_file_tail(log.second, max_bytes_each) + "\n";
  return out;
}

}  // namespace meshbox::test
