// Process: a child process on a Loop (uv_spawn), its stdout and stderr read through pipes
// without ever blocking the loop, its exit reported by libuv's SIGCHLD handling. stdin is
// /dev/null. Loop thread only.
//
// Process groups: with `own_group` (the default) the child calls setsid() before exec, so it
// leads a new session and process group of its own. signal() then reaches the whole group
// (whatever the child started too), a terminal's Ctrl-C reaches the parent only (which stops
// its children in its own order), and when the child exits, what it left running in its
// group is killed (SIGKILL), as a container's processes end with it.
//
// Output and exit: when the child exits, what it wrote and what the pipes still hold is
// handed out first, then on_exit; a pipe that something else in the child's group still held
// stays open until it reaches end-of-file (or the Process goes).
//
// Lifetime: the callbacks may destroy the Process (from any callback); that closes the
// pipes. Destroying a Process whose child still runs sends SIGKILL to it
// (its group) and reaps it at once, blocking until the kernel has, so no zombie is ever left:
// stop a child gracefully with signal() and wait for on_exit first.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/base/non_copyable.h"
#include "core/base/result.h"
#include "core/loop/loop.h"

namespace meshbox::loop {

struct ProcessOptions {
  /// argv; args[0] is looked up in the PATH of `env` if it has no '/'. Must not be empty.
  std::vector<std::string> args;
  /// The child's whole environment, NAME=VALUE entries (nothing is inherited).
  std::vector<std::string> env;
  /// Working directory; empty = the parent's.
  std::string cwd;
  /// setsid() in the child: see the process-group notes above.
  bool own_group = true;
};

/// How a child ended: `signal` != 0 if a signal killed it, else `code` is its exit status.
struct ProcessExit {
  int64_t code = 0;
  int signal = 0;
  /// "exit status 1", "signal 9 (Killed)".
  std::string describe() const;
};

class Process;

class ProcessCallbacks {
 public:
  enum class Stream { Stdout = 1, Stderr = 2 };
  virtual ~ProcessCallbacks() = default;
  /// Bytes the child wrote (any split: lines are the caller's business). They live in the
  /// loop's read buffer: copy what must outlive the call.
  virtual void on_output(Stream stream, std::string_view data) = 0;
  /// A stream reached end-of-file (or failed): nothing more comes from it.
  virtual void on_output_end(Stream) {}
  /// The child exited and has been reaped. Output may still follow until on_output_end.
  virtual void on_exit(const ProcessExit& exit) = 0;
};

class Process : NonCopyable {
 public:
  using Stream = ProcessCallbacks::Stream;

  /// Starts the child. Fails (nothing left running) if the program cannot be executed, the
  /// working directory is missing, or the system refuses a process or pipe.
  static Result<std::unique_ptr<Process>> spawn(Loop& loop, const ProcessOptions& options,
                                                ProcessCallbacks* callbacks);
  ~Process();

  int pid() const { return pid_; }
  /// True until the exit has been seen (on_exit).
  bool running() const { return !exited_; }
  /// True while stdout or stderr may still deliver output.
  bool output_open() const { return out_ != nullptr || err_ != nullptr; }
  /// Sends `signum` to the child (to its process group with own_group). Fails once it has
  /// exited.
  Status signal(int signum);

 private:
  Process(Loop& loop, ProcessCallbacks* callbacks, bool own_group);
  static void on_exit(uv_process_t* handle, int64_t exit_status, int term_signal);
  static void on_alloc(uv_handle_t* handle, size_t suggested, uv_buf_t* buf);
  static void on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf);
  void close_pipe(uv_pipe_t*& pipe);
  /// Reads what `pipe` holds now, without waiting.
  void drain(uv_pipe_t*& pipe, Stream which, const bool& destroyed);

  Loop& loop_;
  ProcessCallbacks* callbacks_;
  bool own_group_;
  uv_process_t* handle_;
  uv_pipe_t* out_;
  uv_pipe_t* err_;
  int pid_ = 0;
  bool exited_ = false;
  bool* destroyed_ = nullptr;  // set while on_exit hands out the last output
};

using ProcessPtr = std::unique_ptr<Process>;

}  // namespace meshbox::loop
