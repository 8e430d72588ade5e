#include "test/support/fake_upstream.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <stdexcept>

namespace meshbox::test {

FakeUpstream::FakeUpstream(Script script) : script_(std::move(script)) {
  uint16_t port = 0;
  listen_fd_ = listen_loopback(&port);
  stop_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (listen_fd_ < 0 || stop_fd_ < 0) {
    if (listen_fd_ >= 0) ::close(listen_fd_);
    if (stop_fd_ >= 0) ::close(stop_fd_);
    throw std::runtime_error("FakeUpstream: cannot listen on 127.0.0.1");
  }
  address_ = "127.0.0.1:" + std::to_string(port);
  acceptor_ = std::thread([this] { accept_loop(); });
}

FakeUpstream::~FakeUpstream() {
  uint64_t one = 1;
  [[maybe_unused]] ssize_t n = ::write(stop_fd_, &one, sizeof one);
  acceptor_.join();
  {
    std::lock_guard lock(mu_);
    for (int fd : live_)
      ::shutdown(fd, SHUT_RDWR);
  }
  // No new workers can appear now: the acceptor is gone.
  for (auto& t : workers_)
    t.join();
  ::close(listen_fd_);
  ::close(stop_fd_);
}

void FakeUpstream::accept_loop() {
  for (;;) {
    pollfd p[2] = {{listen_fd_, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
    if (::poll(p, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (p[1].revents) return;
    int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    int serial = ++accepted_;
    std::lock_guard lock(mu_);
    live_.insert(fd);
    workers_.emplace_back([this, fd, serial] {
      TcpConn conn(fd);
      script_(conn, serial);
      std::lock_guard l(mu_);
      live_.erase(fd);
      conn.close();  // under the lock: the destructor never shuts down a reused fd number
    });
  }
}

bool read_request_head(TcpConn& conn, std::string& buf, Deadline deadline) {
  return conn.read_until(buf, "\r\n\r\n", deadline);
}

}  // namespace meshbox::test
