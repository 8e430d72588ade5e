// Process: a child started with posix_spawn, owned by the test. The destructor kills it
// (SIGKILL) and reaps it if it is still running, so no test leaves a process behind even
// when an assertion throws. Waits take a Deadline and sleep in poll(2) on a pidfd, never a
// fixed time. Owned by one thread; movable, not copyable.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "test/support/deadline.h"

namespace meshbox::test {

/// How a child ended.
struct ExitStatus {
  bool exited = false;  // true: `code` is valid; false: killed by `signal`
  int code = -1;
  int signal = 0;

  bool ok() const { return exited && code == 0; }
  std::string describe() const;
};

struct SpawnOptions {
  std::vector<std::string> argv;  // argv[0] is looked up in PATH if it has no '/'
  /// Where stdout/stderr go: a file path (truncated, then appended to, so both may name
  /// the same file), or a pipe read through the *_fd() accessors when pipe_* is set.
  /// Neither: /dev/null.
  std::string stdout_path, stderr_path;
  bool pipe_stdin = false, pipe_stdout = false, pipe_stderr = false;
  /// Environment: inherited when empty, else exactly these NAME=VALUE entries.
  std::vector<std::string> env;
};

class Process {
 public:
  Process() = default;
  /// Starts the child. Throws std::runtime_error if posix_spawn fails.
  explicit Process(const SpawnOptions& opts);
  ~Process();
  Process(Process&& other) noexcept;
  Process& operator=(Process&& other) noexcept;
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  pid_t pid() const { return pid_; }
  /// True until the child has been reaped by wait()/kill_and_wait().
  bool running() const { return pid_ > 0 && !status_; }
  /// Sends `sig` to a running child; false if it is already reaped.
  bool signal(int sig);
  /// Waits for the child to exit until `deadline`; nullopt if it is still running then.
  std::optional<ExitStatus> wait(Deadline deadline);
  /// True if the child has exited (reaps it without blocking).
  bool exited() { return wait(Deadline(Deadline::Clock::duration::zero())).has_value(); }
  /// SIGKILL and reap; returns the status (killed, or whatever it exited with before).
  ExitStatus kill_and_wait();

  /// Pipe ends for the parent (-1 if not piped). close_stdin() sends EOF to the child.
  int stdin_fd() const { return stdin_fd_; }
  int stdout_fd() const { return stdout_fd_; }
  int stderr_fd() const { return stderr_fd_; }
  void close_stdin();

 private:
  void reset();
  bool try_reap();

  pid_t pid_ = -1;
  int pidfd_ = -1;
  int stdin_fd_ = -1, stdout_fd_ = -1, stderr_fd_ = -1;
  std::optional<ExitStatus> status_;
};

/// Process `pid` exists and is not a zombie (from /proc/PID/stat).
bool process_alive(int pid);

class TempDir;
/// `sh -c SCRIPT` to completion (killed at the deadline): its stdout and stderr together,
/// through a file in `dir`. For the real CLI tools tests drive (openssl, testssl.sh).
std::string shell(TempDir& dir, const std::string& script, Deadline deadline);

}  // namespace meshbox::test
