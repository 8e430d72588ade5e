// Load for release tests: N client threads send requests back to back over keep-alive
// connections to one address while the test changes the mesh, and every response is
// counted. A request counts as ok only if a complete 2xx response arrived; anything else
// (a connect failure, a reset, a timeout, a 5xx…) counts as failed, and its connection is
// replaced. Ok responses are counted by backend (the x-backend-name header).
//
// Phases answer "what served the requests sent after X?": the test calls set_phase() once X
// is done, and each request counts in the phase that was current when it was sent.
// set_phase() also waits until every request of the earlier phases has been answered, so
// their counts are final and a change started afterwards cannot touch them.
//
// Thread-safe: every method may be called from the test's thread while the clients run.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "test/support/deadline.h"

namespace meshbox::test {

struct LoadOptions {
  std::string address;  // "127.0.0.1:PORT"
  int clients = 4;      // threads, one keep-alive connection each
  std::string request = "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n";
};

/// What answered the requests of one phase (or of all of them).
struct LoadCounts {
  uint64_t ok = 0;
  uint64_t failed = 0;
  std::map<std::string, uint64_t> backends;  // ok responses by x-backend-name ("" if absent)

  uint64_t total() const { return ok + failed; }
  uint64_t of(const std::string& backend) const;
  /// Percent of the ok responses that came from `backend`; 0 if there were none.
  double percent(const std::string& backend) const;
  /// "1234 ok, 0 failed, web-v1 1100, web-v2 134".
  std::string summary() const;
};

class LoadLoop {
 public:
  /// Starts the clients at once, in phase 0.
  explicit LoadLoop(LoadOptions opts);
  /// stop().
  ~LoadLoop();
  LoadLoop(const LoadLoop&) = delete;
  LoadLoop& operator=(const LoadLoop&) = delete;

  /// Requests sent from now on count in `phase` (higher than the current one). Returns once
  /// every client has finished a request of `phase`, and so every request sent before; false
  /// if that did not happen by the deadline.
  bool set_phase(int phase, Deadline deadline);
  /// Waits until `phase` has at least `n` responses (ok or failed); false at the deadline.
  bool wait_for(int phase, uint64_t n, Deadline deadline);
  /// Stops sending and joins the clients (requests in flight finish first). Idempotent.
  void stop();

  LoadCounts counts(int phase) const;
  LoadCounts total() const;
  /// Connections replaced: after a failure, or when the server said `Connection: close`.
  uint64_t reconnects() const;
  /// The first few failures, described.
  std::vector<std::string> failures() const;
  /// Every phase's counts, one line each, for MESSAGE.
  std::string summary() const;

 private:
  void client(size_t index);
  void record(size_t client, int phase, bool ok, const std::string& backend, std::string failure);

  LoadOptions opts_;
  std::atomic<int> phase_{0};
  std::atomic<bool> stop_{false};
  mutable std::mutex mu_;
  std::condition_variable changed_;
  std::map<int, LoadCounts> phases_;   // guarded by mu_
  std::vector<std::string> failures_;  // guarded by mu_
  uint64_t reconnects_ = 0;            // guarded by mu_
  std::vector<int> finished_;          // guarded by mu_: each client's last request's phase
  std::vector<std::thread> threads_;
};

}  // namespace meshbox::test
