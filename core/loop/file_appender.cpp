#include "core/loop/file_appender.h"

#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

namespace meshbox::loop {

// Fields are grouped by who touches them. The loop thread owns everything while no job is in
// flight; while one is, the job alone touches the "job" fields (libuv orders the handover:
// uv_queue_work before on_work, on_work before on_after_work).
struct FileAppender::State {
  uv_work_t req;
  uv_loop_t* loop = nullptr;
  // Loop thread.
  FileAppender* owner = nullptr;  // null once the appender is gone (orphaned)
  std::string pending;            // appended, not yet handed to a job
  bool in_flight = false;
  uint64_t last_check_ms = 0;
  uint64_t written_total = 0;
  int last_error = 0;
  // Job: set up by the loop thread before queueing, results read after.
  std::string path;
  bool own_fd = true;  // false: stdout/stderr, never opened, reopened or closed here
  int fd = -1;
  bool regular = true;  // a regular file (else a pipe, tty, socket…: PIPE_BUF pieces)
  bool check_reopen = false;
  std::string writing;
  int job_error = 0;
  uint64_t job_written = 0;
  uint64_t job_dropped = 0;

  void queue() {
    std::swap(pending, writing);
    in_flight = true;
    uv_queue_work(loop, &req, &FileAppender::on_work, &FileAppender::on_after_work);
  }
  void close_fd() {
    // Not on a request path: the appender is gone, and this is one close of a regular file.
    if (own_fd && fd >= 0) ::close(fd);
    fd = -1;
  }
};

namespace {

uint64_t count_lines(std::string_view s) {
  return static_cast<uint64_t>(std::count(s.begin(), s.end(), '\n'));
}

// Writes all of `data` to `fd` (a blocking job on the threadpool). EAGAIN (a non-blocking
// stdout) waits for the descriptor up to a few seconds; then, or on any other error, the rest
// is given up. Returns 0 or a negative errno; `written` counts what went out.
int write_all(int fd, std::string_view data, uint64_t& written) {
  int waits = 0;
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n >= 0) {
      written += static_cast<uint64_t>(n);
      data.remove_prefix(static_cast<size_t>(n));
      continue;
    }
    if (errno == EINTR) continue;
    if ((errno == EAGAIN || errno == EWOULDBLOCK) && waits++ < 5) {
      pollfd p{fd, POLLOUT, 0};
      ::poll(&p, 1, 1000);
      continue;
    }
    return -errno;
  }
  return 0;
}

}  // namespace

FileAppender::FileAppender(Loop& loop, std::string path, Options options)
    : loop_(loop), path_(std::move(path)), options_(options), state_(new State) {
  state_->req.data = state_;
  state_->loop = loop_.uv();
  state_->owner = this;
  state_->path = path_;
  if (path_ == "/dev/stdout" || path_ == "/dev/stderr") {
    state_->own_fd = false;
    state_->fd = path_ == "/dev/stdout" ? STDOUT_FILENO : STDERR_FILENO;
    struct stat st;
    state_->regular = ::fstat(state_->fd, &st) == 0 && S_ISREG(st.st_mode);
  }
}

FileAppender::~FileAppender() {
  timer_.reset();
  State* st = state_;
  st->owner = nullptr;
  if (st->in_flight) return;  // on_after_work finishes the rest and frees it
  if (!st->pending.empty()) {
    st->queue();
    return;
  }
  st->close_fd();
  delete st;
}

bool FileAppender::append(std::string_view lines) {
  std::string& p = state_->pending;
  if (p.size() + lines.size() > options_.max_buffer) {
    dropped_ += count_lines(lines);
    return false;
  }
  bool was_empty = p.empty();
  p.append(lines);
  if (state_->in_flight) return true;  // its completion takes the rest
  if (p.size() >= options_.write_at) {
    start_write();
  } else if (was_empty) {
    if (!timer_) timer_ = std::make_unique<Timer>(loop_, [this] { flush(); });
    timer_->start(options_.flush_delay_ms);
  }
  return true;
}

void FileAppender::flush() {
  if (!state_->in_flight && !state_->pending.empty()) start_write();
}

void FileAppender::start_write() {
  if (timer_) timer_->stop();
  State* st = state_;
  uint64_t now = loop_.now_ms();
  st->check_reopen = now - st->last_check_ms >= options_.reopen_check_ms;
  if (st->check_reopen) st->last_check_ms = now;
  st->queue();
}

void FileAppender::on_work(uv_work_t* req) {
  auto* st = static_cast<State*>(req->data);
  st->job_error = 0;
  st->job_written = 0;
  st->job_dropped = 0;
  if (st->own_fd) {
    if (st->fd >= 0 && st->check_reopen) {
      // Rotated (moved or deleted, and perhaps a new file made in its place): reopen by path.
      struct stat by_path, by_fd;
      if (::stat(st->path.c_str(), &by_path) != 0 || ::fstat(st->fd, &by_fd) != 0 ||
          by_path.st_ino != by_fd.st_ino || by_path.st_dev != by_fd.st_dev)
        st->close_fd();
    }
    if (st->fd < 0) {
      st->fd = ::open(st->path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
      if (st->fd < 0) {
        st->job_error = -errno;
        st->job_dropped = count_lines(st->writing);
        return;
      }
      struct stat s;
      st->regular = ::fstat(st->fd, &s) == 0 && S_ISREG(s.st_mode);
    }
  }
  std::string_view data = st->writing;
  int err = 0;
  if (st->regular) {
    // One write: O_APPEND places it whole after every other appender's.
    err = write_all(st->fd, data, st->job_written);
  } else {
    // A pipe keeps writes of up to PIPE_BUF bytes whole: cut at line ends within that (a
    // longer line goes alone, and may interleave).
    while (!data.empty() && err == 0) {
      size_t n = data.size();
      if (n > PIPE_BUF) {
        size_t cut = data.rfind('\n', PIPE_BUF - 1);
        n = cut == std::string_view::npos ? data.find('\n') : cut + 1;
        if (n == std::string_view::npos) n = data.size();
      }
      err = write_all(st->fd, data.substr(0, n), st->job_written);
      data.remove_prefix(n);
    }
  }
  if (err != 0) {
    st->job_error = err;
    st->job_dropped =
        count_lines(std::string_view(st->writing)
                        .substr(std::min<uint64_t>(st->job_written, st->writing.size())));
  }
}

void FileAppender::on_after_work(uv_work_t* req, int) {
  auto* st = static_cast<State*>(req->data);
  st->in_flight = false;
  st->writing.clear();
  st->written_total += st->job_written;
  if (st->job_error != 0 || st->job_written > 0) st->last_error = st->job_error;
  FileAppender* self = st->owner;
  if (!self) {
    if (!st->pending.empty()) {
      st->queue();
      return;
    }
    st->close_fd();
    delete st;
    return;
  }
  self->dropped_ += st->job_dropped;
  if (st->pending.size() >= self->options_.write_at) {
    self->start_write();
  } else if (!st->pending.empty()) {
    if (!self->timer_)
      self->timer_ = std::make_unique<Timer>(self->loop_, [self] { self->flush(); });
    if (!self->timer_->active()) self->timer_->start(self->options_.flush_delay_ms);
  }
}

uint64_t FileAppender::written_bytes() const {
  return state_->written_total;
}

int FileAppender::last_error() const {
  return state_->last_error;
}

bool FileAppender::idle() const {
  return !state_->in_flight && state_->pending.empty();
}

}  // namespace meshbox::loop
