#include "core/loop/process.h"

#include <sys/wait.h>

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>

#include <fmt/core.h>

namespace meshbox::loop {

std::string ProcessExit::describe() const {
  if (signal != 0) {
    const char* name = ::strsignal(signal);
    return fmt::format("signal {} ({})", signal, name ? name : "unknown");
  }
  return fmt::format("exit status {}", code);
}

Process::Process(Loop& loop, ProcessCallbacks* callbacks, bool own_group)
    : loop_(loop),
      callbacks_(callbacks),
      own_group_(own_group),
      handle_(new uv_process_t),
      out_(new uv_pipe_t),
      err_(new uv_pipe_t) {
  handle_->data = nullptr;  // set once the child runs
  uv_pipe_init(loop.uv(), out_, 0);
  uv_pipe_init(loop.uv(), err_, 0);
  out_->data = this;
  err_->data = this;
}

Result<std::unique_ptr<Process>> Process::spawn(Loop& loop, const ProcessOptions& options,
                                                ProcessCallbacks* callbacks) {
  if (options.args.empty() || options.args[0].empty())
    return make_error(Code::InvalidArgument, "spawn: no program");
  std::unique_ptr<Process> p(new Process(loop, callbacks, options.own_group));

  std::vector<char*> args;
  for (const auto& a : options.args)
    args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  std::vector<char*> env;
  for (const auto& e : options.env)
    env.push_back(const_cast<char*>(e.c_str()));
  env.push_back(nullptr);

  uv_stdio_container_t stdio[3];
  stdio[0].flags = UV_IGNORE;  // libuv opens /dev/null for it
  stdio[1].flags = static_cast<uv_stdio_flags>(UV_CREATE_PIPE | UV_WRITABLE_PIPE);
  stdio[1].data.stream = reinterpret_cast<uv_stream_t*>(p->out_);
  stdio[2].flags = static_cast<uv_stdio_flags>(UV_CREATE_PIPE | UV_WRITABLE_PIPE);
  stdio[2].data.stream = reinterpret_cast<uv_stream_t*>(p->err_);

  uv_process_options_t uo{};
  uo.exit_cb = &Process::on_exit;
  uo.file = args[0];
  uo.args = args.data();
  uo.env = env.data();
  uo.cwd = options.cwd.empty() ? nullptr : options.cwd.c_str();
  uo.flags = options.own_group ? UV_PROCESS_DETACHED : 0;
  uo.stdio_count = 3;
  uo.stdio = stdio;

  int rc = uv_spawn(loop.uv(), p->handle_, &uo);
  if (rc != 0) {
    // libuv has reaped a child that could not exec; only our handles are left to close.
    p->exited_ = true;
    return make_error(Code::Unavailable,
                      fmt::format("cannot run {}: {}", options.args[0], uv_strerror(rc)));
  }
  p->pid_ = p->handle_->pid;
  p->handle_->data = p.get();
  uv_read_start(reinterpret_cast<uv_stream_t*>(p->out_), &Process::on_alloc, &Process::on_read);
  uv_read_start(reinterpret_cast<uv_stream_t*>(p->err_), &Process::on_alloc, &Process::on_read);
  return p;
}

Process::~Process() {
  if (destroyed_) *destroyed_ = true;
  if (!exited_ && pid_ > 0) {
    // Still running: kill it (and its group) and reap it here, since the handle closes now
    // and libuv will not wait for it any more. A SIGKILLed process is reaped within
    // microseconds; a child libuv already reaped in this iteration gives ECHILD at once.
    if (own_group_) ::kill(-pid_, SIGKILL);
    ::kill(pid_, SIGKILL);
    int status = 0;
    while (::waitpid(pid_, &status, 0) == -1 && errno == EINTR) {
    }
  }
  close_and_free(handle_);
  close_pipe(out_);
  close_pipe(err_);
}

Status Process::signal(int signum) {
  if (exited_ || pid_ <= 0) return make_error(Code::Unavailable, "the process has exited");
  // Right after the fork the child may not have called setsid() yet: then there is no such
  // group, and the signal goes to the child itself.
  if (own_group_ && ::kill(-pid_, signum) == 0) return Status::ok();
  if (::kill(pid_, signum) != 0)
    return make_error(Code::Unavailable, fmt::format("kill {}: {}", pid_, std::strerror(errno)));
  return Status::ok();
}

void Process::close_pipe(uv_pipe_t*& pipe) {
  if (!pipe) return;
  close_and_free(pipe);
  pipe = nullptr;
}

void Process::on_exit(uv_process_t* handle, int64_t exit_status, int term_signal) {
  auto* self = static_cast<Process*>(handle->data);
  if (!self) return;
  self->exited_ = true;
  // What the child left running in its group goes with it. The group id cannot belong to
  // anyone else while a member of the group is alive; ESRCH when none is.
  if (self->own_group_) ::kill(-self->pid_, SIGKILL);
  // Everything the child wrote before it exited is in the pipes now: hand it out before the
  // exit, so an owner that drops the Process on exit loses no last words.
  bool destroyed = false;
  self->destroyed_ = &destroyed;
  self->drain(self->out_, Stream::Stdout, destroyed);
  if (destroyed) return;
  self->drain(self->err_, Stream::Stderr, destroyed);
  if (destroyed) return;
  self->destroyed_ = nullptr;
  ProcessExit e;
  e.code = exit_status;
  e.signal = term_signal;
  self->callbacks_->on_exit(e);  // may destroy self: nothing after this line
}

void Process::drain(uv_pipe_t*& pipe, Stream which, const bool& destroyed) {
  uv_os_fd_t fd = -1;
  if (!pipe || uv_fileno(reinterpret_cast<uv_handle_t*>(pipe), &fd) != 0) return;
  // Bounded: the group was just killed, but a process that left it may still be writing.
  size_t budget = 4 * Loop::kReadBufferSize;
  while (budget > 0) {
    ssize_t n = ::read(fd, loop_.read_buffer(), Loop::kReadBufferSize);  // non-blocking (libuv)
    if (n < 0 && errno == EINTR) continue;
    if (n > 0) {
      budget -= std::min(budget, static_cast<size_t>(n));
      callbacks_->on_output(which, std::string_view(loop_.read_buffer(), static_cast<size_t>(n)));
      if (destroyed) return;
      continue;
    }
    if (n == 0) {
      close_pipe(pipe);
      callbacks_->on_output_end(which);
    }
    return;  // end of file, or EAGAIN: what is left comes through libuv
  }
}

void Process::on_alloc(uv_handle_t* handle, size_t, uv_buf_t* buf) {
  auto* self = static_cast<Process*>(handle->data);
  buf->base = self->loop_.read_buffer();
  buf->len = Loop::kReadBufferSize;
}

void Process::on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) {
  auto* self = static_cast<Process*>(stream->data);
  if (!self || nread == 0) return;
  bool is_out = stream == reinterpret_cast<uv_stream_t*>(self->out_);
  Stream which = is_out ? Stream::Stdout : Stream::Stderr;
  if (nread > 0) {
    // May destroy self.
    self->callbacks_->on_output(which, std::string_view(buf->base, static_cast<size_t>(nread)));
    return;
  }
  // End of file, or a read error: either way nothing more comes.
  self->close_pipe(is_out ? self->out_ : self->err_);
  self->callbacks_->on_output_end(which);  // may destroy self
}

}  // namespace meshbox::loop
