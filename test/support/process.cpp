#include "test/support/process.h"

#include "test/support/files.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <utility>

extern char** environ;

namespace meshbox::test {

namespace {

ExitStatus decode(int st) {
  ExitStatus s;
  if (WIFEXITED(st)) {
    s.exited = true;
    s.code = WEXITSTATUS(st);
  } else if (WIFSIGNALED(st)) {
    s.signal = WTERMSIG(st);
  }
  return s;
}

void close_fd(int& fd) {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

// Builds posix_spawn file actions; throws on failure so the caller's RAII cleans up.
struct FileActions {
  posix_spawn_file_actions_t fa;
  FileActions() { posix_spawn_file_actions_init(&fa); }
  ~FileActions() { posix_spawn_file_actions_destroy(&fa); }
  void dup_to(int fd, int target) { posix_spawn_file_actions_adddup2(&fa, fd, target); }
  void open_to(int target, const std::string& path, int flags) {
    posix_spawn_file_actions_addopen(&fa, target, path.c_str(), flags, 0644);
  }
};

}  // namespace

std::string ExitStatus::describe() const {
  if (exited) return "exited with code " + std::to_string(code);
  return std::string("killed by signal ") + std::to_string(signal) + " (" + strsignal(signal) + ")";
}

Process::Process(const SpawnOptions& opts) {
  if (opts.argv.empty()) throw std::runtime_error("Process: empty argv");
  // Pipes are O_CLOEXEC: only the dup2'ed copies reach the child, so other children never
  // hold a stray write end open (which would keep a reader from seeing EOF).
  int in[2] = {-1, -1}, out[2] = {-1, -1}, err[2] = {-1, -1};
  auto cleanup = [&] {
    for (int* p : {in, out, err}) {
      close_fd(p[0]);
      close_fd(p[1]);
    }
  };
  if ((opts.pipe_stdin && ::pipe2(in, O_CLOEXEC) != 0) ||
      (opts.pipe_stdout && ::pipe2(out, O_CLOEXEC) != 0) ||
      (opts.pipe_stderr && ::pipe2(err, O_CLOEXEC) != 0)) {
    cleanup();
    throw std::runtime_error(std::string("pipe2: ") + std::strerror(errno));
  }
  FileActions fa;
  if (opts.pipe_stdin) {
    fa.dup_to(in[0], 0);
  } else {
    fa.open_to(0, "/dev/null", O_RDONLY);
  }
  auto route = [&](int target, bool piped, int* p, const std::string& path) {
    if (piped) {
      fa.dup_to(p[1], target);
    } else {
      fa.open_to(target, path.empty() ? "/dev/null" : path,
                 O_WRONLY | O_CREAT | O_TRUNC | O_APPEND);
    }
  };
  route(1, opts.pipe_stdout, out, opts.stdout_path);
  route(2, opts.pipe_stderr, err, opts.stderr_path);

  std::vector<char*> argv;
  for (const auto& a : opts.argv)
    argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  std::vector<char*> envp;
  for (const auto& e : opts.env)
    envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);

  pid_t pid = -1;
  int rc = ::posix_spawnp(&pid, argv[0], &fa.fa, nullptr, argv.data(),
                          opts.env.empty() ? environ : envp.data());
  if (rc != 0) {
    cleanup();
    throw std::runtime_error("posix_spawn " + opts.argv[0] + ": " + std::strerror(rc));
  }
  pid_ = pid;
  pidfd_ = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));  // -1: fall back to polling
  stdin_fd_ = std::exchange(in[1], -1);
  stdout_fd_ = std::exchange(out[0], -1);
  stderr_fd_ = std::exchange(err[0], -1);
  cleanup();  // the child's ends
}

Process::~Process() {
  reset();
}

Process::Process(Process&& other) noexcept {
  *this = std::move(other);
}

Process& Process::operator=(Process&& other) noexcept {
  if (this != &other) {
    reset();
    pid_ = std::exchange(other.pid_, -1);
    pidfd_ = std::exchange(other.pidfd_, -1);
    stdin_fd_ = std::exchange(other.stdin_fd_, -1);
    stdout_fd_ = std::exchange(other.stdout_fd_, -1);
    stderr_fd_ = std::exchange(other.stderr_fd_, -1);
    status_ = std::exchange(other.status_, std::nullopt);
  }
  return *this;
}

void Process::reset() {
  if (running()) kill_and_wait();
  close_fd(pidfd_);
  close_fd(stdin_fd_);
  close_fd(stdout_fd_);
  close_fd(stderr_fd_);
  pid_ = -1;
  status_.reset();
}

bool Process::signal(int sig) {
  return running() && ::kill(pid_, sig) == 0;
}

bool Process::try_reap() {
  int st = 0;
  pid_t r = ::waitpid(pid_, &st, WNOHANG);
  if (r == pid_) {
    status_ = decode(st);
    return true;
  }
  return false;
}

std::optional<ExitStatus> Process::wait(Deadline deadline) {
  if (pid_ <= 0) return std::nullopt;
  while (!status_) {
    if (try_reap()) break;
    if (deadline.expired()) return std::nullopt;
    if (pidfd_ >= 0) {
      pollfd p{pidfd_, POLLIN, 0};
      ::poll(&p, 1, deadline.poll_ms());
    } else {
      ::poll(nullptr, 0, std::min(deadline.poll_ms(), 5));  // no pidfd: re-check every 5ms
    }
  }
  return status_;
}

ExitStatus Process::kill_and_wait() {
  if (!running()) return status_.value_or(ExitStatus{});
  ::kill(pid_, SIGKILL);
  int st = 0;
  while (::waitpid(pid_, &st, 0) < 0 && errno == EINTR) {
  }
  status_ = decode(st);
  return *status_;
}

void Process::close_stdin() {
  close_fd(stdin_fd_);
}

bool process_alive(int pid) {
  if (pid <= 0) return false;
  auto stat = read_file("/proc/" + std::to_string(pid) + "/stat");
  if (!stat) return false;
  size_t paren = stat->rfind(')');
  return paren != std::string::npos && paren + 2 < stat->size() && (*stat)[paren + 2] != 'Z';
}

std::string shell(TempDir& dir, const std::string& script, Deadline deadline) {
  static std::atomic<int> n{0};
  std::string out = dir.file("shell" + std::to_string(n++) + ".out");
  SpawnOptions opts;
  opts.argv = {"sh", "-c", script};
  opts.stdout_path = opts.stderr_path = out;
  Process p(opts);
  if (!p.wait(deadline)) p.kill_and_wait();
  return read_file(out).value_or("");
}

}  // namespace meshbox::test
