// Starting the programs under test: the real `meshbox` binary (MESHBOX_BIN) and the
// meshbox-httpbin backend (HTTPBIN_BIN), both on port 0 with a ready file in a TempDir.
// Each object owns its Process, so the child is killed when the test ends, pass or fail.
// Output goes to a log file in the TempDir, registered with ScopedFailureLog so that a failing
// test prints it.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "test/support/deadline.h"
#include "test/support/failure_logs.h"
#include "test/support/files.h"
#include "test/support/process.h"

namespace meshbox::test {

/// $MESHBOX_BIN / $HTTPBIN_BIN (set by meson); fails the test if unset.
std::string meshbox_bin();
std::string httpbin_bin();
/// The source tree: $MESHBOX_SOURCE_DIR, else found from this file's path, which meson gives
/// relative to the build directory (MESHBOX_BIN is BUILD/cli/meshbox).
std::string source_dir();

/// Waits until `path` holds "HOST:PORT\n" and returns HOST:PORT; nullopt if `proc` exits
/// first or the deadline passes. Polls every few milliseconds: a file has no event to wait on.
std::optional<std::string> wait_for_ready_file(const std::string& path, Process& proc,
                                               Deadline deadline);

/// A field of /proc/PID/status in KiB ("VmHWM", "VmRSS"); -1 if unreadable.
int64_t proc_status_kib(pid_t pid, const std::string& field);

/// Raises RLIMIT_NOFILE's soft limit to min(want, hard); returns the new soft limit.
/// Children spawned afterwards inherit it.
uint64_t raise_fd_limit(uint64_t want);

/// Runs `meshbox ARGS` to completion (stdout/stderr captured) within the deadline.
struct RunResult {
  std::optional<ExitStatus> status;  // nullopt: killed at the deadline
  std::string out, err;
};
RunResult run_meshbox(const std::vector<std::string>& args, TempDir& dir, Deadline deadline);

/// meshbox-httpbin's GET /stats. Each /stats request is itself a connection and a request,
/// and is counted before the answer is written. -1: the request failed.
struct HttpbinStats {
  int64_t connections_total = -1;
  int64_t connections_active = -1;
  int64_t requests_total = -1;
};

/// meshbox-httpbin on 127.0.0.1:0.
class Httpbin {
 public:
  /// `listen`: "127.0.0.1:0", or a fixed address to restart a backend where it was.
  explicit Httpbin(TempDir& dir, const std::string& name = "httpbin",
                   const std::string& listen = "127.0.0.1:0");
  const std::string& address() const { return address_; }
  /// GET /stats straight from the backend, on a connection of its own.
  HttpbinStats stats() const;
  Process& process() { return proc_; }
  std::string log() const;

 private:
  std::string log_path_;
  std::optional<ScopedFailureLog> failure_log_;
  Process proc_;
  std::string address_;
};

struct ProxyOptions {
  std::vector<std::string> to = {};     // upstream addresses
  std::vector<std::string> flags = {};  // more flags, e.g. {"--response-timeout", "300ms"}
  int workers = 2;
  bool tcp = false;
  std::string log_level = "debug";
  /// NAME=VALUE entries added to the inherited environment (replacing a variable of the
  /// same name), e.g. a smaller ASan quarantine for the memory bound tests.
  std::vector<std::string> env = {};
};

/// `meshbox proxy --listen 127.0.0.1:0 --ready-file … --to …`, started and ready.
class Proxy {
 public:
  Proxy(TempDir& dir, const ProxyOptions& opts);
  const std::string& address() const { return address_; }
  Process& process() { return proc_; }
  pid_t pid() const { return proc_.pid(); }
  /// The proxy's log (stderr+stdout), last `max_bytes`.
  std::string log(size_t max_bytes = 16384) const;
  /// Peak resident memory so far (VmHWM), KiB.
  int64_t vm_hwm_kib() const { return proc_status_kib(proc_.pid(), "VmHWM"); }
  std::string command_line() const { return command_; }

 private:
  std::string log_path_;
  std::string command_;
  std::optional<ScopedFailureLog> failure_log_;
  Process proc_;
  std::string address_;
};

/// The usual setup: a TempDir, one meshbox-httpbin, and a proxy in front of it.
struct ProxyFixture {
  explicit ProxyFixture(ProxyOptions opts = {}, const std::string& backend_name = "b1");
  std::string url(const std::string& path) const { return "http://" + proxy.address() + path; }

  TempDir dir;
  Httpbin backend;
  Proxy proxy;
};

}  // namespace meshbox::test
