#include "test/support/tcp_conn.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <utility>

namespace meshbox::test {

namespace {

bool wait_fd(int fd, short events, Deadline deadline) {
  for (;;) {
    pollfd p{fd, events, 0};
    int n = ::poll(&p, 1, deadline.poll_ms());
    if (n > 0) return true;
    if (n < 0 && errno == EINTR) continue;
    if (n == 0 && !deadline.expired()) continue;  // poll_ms() caps one call at a minute
    return false;
  }
}

bool is_reset(int e) {
  return e == ECONNRESET || e == EPIPE || e == ECONNABORTED;
}

}  // namespace

bool split_host_port(std::string_view addr, std::string* host, uint16_t* port) {
  size_t colon = addr.rfind(':');
  if (colon == std::string_view::npos) return false;
  *host = std::string(addr.substr(0, colon));
  std::string_view p = addr.substr(colon + 1);
  unsigned v = 0;
  auto [end, ec] = std::from_chars(p.data(), p.data() + p.size(), v);
  if (ec != std::errc() || end != p.data() + p.size() || v > 65535) return false;
  *port = static_cast<uint16_t>(v);
  return true;
}

std::string to_string(RecvStatus s) {
  switch (s) {
    case RecvStatus::Data:
      return "data";
    case RecvStatus::Eof:
      return "eof";
    case RecvStatus::Reset:
      return "reset";
    case RecvStatus::Timeout:
      return "timeout";
    case RecvStatus::Error:
      return "error";
  }
  return "?";
}

TcpConn::TcpConn(int fd) : fd_(fd) {
  if (fd_ >= 0) ::fcntl(fd_, F_SETFL, ::fcntl(fd_, F_GETFL) | O_NONBLOCK);
}

TcpConn::~TcpConn() {
  close();
}

TcpConn::TcpConn(TcpConn&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)), last_error_(std::move(other.last_error_)) {}

TcpConn& TcpConn::operator=(TcpConn&& other) noexcept {
  if (this != &other) {
    close();
    fd_ = std::exchange(other.fd_, -1);
    last_error_ = std::move(other.last_error_);
  }
  return *this;
}

TcpConn TcpConn::connect_async(std::string_view addr, int* err) {
  auto fail = [&](int e, int fd) {
    if (err) *err = e;
    if (fd >= 0) ::close(fd);
    return TcpConn();
  };
  std::string host;
  uint16_t port = 0;
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  if (!split_host_port(addr, &host, &port) || ::inet_pton(AF_INET, host.c_str(), &sa.sin_addr) != 1)
    return fail(EINVAL, -1);
  sa.sin_port = htons(port);
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return fail(errno, -1);
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 && errno != EINPROGRESS)
    return fail(errno, fd);
  if (err) *err = 0;
  return TcpConn(fd);
}

int TcpConn::finish_connect() {
  int so = 0;
  socklen_t len = sizeof so;
  if (::getsockopt(fd_, SOL_SOCKET, SO_ERROR, &so, &len) != 0) return errno;
  return so;
}

TcpConn TcpConn::connect(std::string_view addr, Deadline deadline, int* err) {
  TcpConn c = connect_async(addr, err);
  if (!c.valid()) return c;
  int e = wait_fd(c.fd_, POLLOUT, deadline) ? c.finish_connect() : ETIMEDOUT;
  if (err) *err = e;
  if (e != 0) c.close();
  return c;
}

bool TcpConn::send_all(std::string_view data, Deadline deadline) {
  while (!data.empty()) {
    ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
    if (n > 0) {
      data.remove_prefix(static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (!wait_fd(fd_, POLLOUT, deadline)) {
        last_error_ = "send: deadline passed";
        return false;
      }
      continue;
    }
    last_error_ = std::string("send: ") + std::strerror(errno);
    return false;
  }
  return true;
}

RecvStatus TcpConn::recv_some(std::string& out, Deadline deadline, size_t max) {
  char buf[64 * 1024];
  for (;;) {
    ssize_t n = ::recv(fd_, buf, std::min(max, sizeof buf), 0);
    if (n > 0) {
      out.append(buf, static_cast<size_t>(n));
      return RecvStatus::Data;
    }
    if (n == 0) return RecvStatus::Eof;
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      if (!wait_fd(fd_, POLLIN, deadline)) return RecvStatus::Timeout;
      continue;
    }
    last_error_ = std::string("recv: ") + std::strerror(errno);
    return is_reset(errno) ? RecvStatus::Reset : RecvStatus::Error;
  }
}

bool TcpConn::read_until(std::string& buf, std::string_view delim, Deadline deadline) {
  size_t from = 0;
  for (;;) {
    if (buf.find(delim, from) != std::string::npos) return true;
    from = buf.size() >= delim.size() ? buf.size() - delim.size() + 1 : 0;
    if (recv_some(buf, deadline) != RecvStatus::Data) return false;
  }
}

bool TcpConn::read_at_least(std::string& buf, size_t n, Deadline deadline) {
  while (buf.size() < n) {
    if (recv_some(buf, deadline, n - buf.size()) != RecvStatus::Data) return false;
  }
  return true;
}

RecvStatus TcpConn::read_to_close(std::string& out, Deadline deadline, size_t limit) {
  for (;;) {
    std::string chunk;
    RecvStatus s = recv_some(chunk, deadline);
    if (s != RecvStatus::Data) return s;
    if (out.size() < limit) out.append(chunk, 0, std::min(chunk.size(), limit - out.size()));
  }
}

void TcpConn::shutdown_write() {
  if (fd_ >= 0) ::shutdown(fd_, SHUT_WR);
}

void TcpConn::close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

void TcpConn::reset() {
  if (fd_ < 0) return;
  linger lg{1, 0};
  ::setsockopt(fd_, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  close();
}

int listen_loopback(uint16_t* port, bool listen) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  sa.sin_port = 0;
  socklen_t len = sizeof sa;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 ||
      (listen && ::listen(fd, 1024) != 0) ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len) != 0) {
    ::close(fd);
    return -1;
  }
  *port = ntohs(sa.sin_port);
  return fd;
}

}  // namespace meshbox::test
