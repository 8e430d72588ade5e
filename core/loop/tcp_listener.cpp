#include "core/loop/tcp_listener.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/base/log.h"

namespace meshbox::loop {

Result<int> bind_reuseport(const Address& addr, int backlog, int incoming_cpu) {
  int fd = ::socket(addr.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return make_error(Code::Io, std::string("socket: ") + std::strerror(errno));
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  // Best effort (Linux ≥ 6.2 picks such a socket in the group; older kernels ignore it).
  if (incoming_cpu >= 0)
    ::setsockopt(fd, SOL_SOCKET, SO_INCOMING_CPU, &incoming_cpu, sizeof incoming_cpu);
  if (::bind(fd, addr.sa(), addr.len()) != 0 || ::listen(fd, backlog) != 0) {
    int err = errno;
    ::close(fd);
    return make_error(Code::Io, "cannot listen on " + addr.to_string() + ": " + std::strerror(err));
  }
  return fd;
}

Result<std::vector<int>> bind_listeners(const Address& requested, int count, int backlog) {
  // Probe with a plain socket (no SO_REUSEPORT): it fails if anyone holds the port.
  Address addr = requested;
  int probe = ::socket(addr.family(), SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (probe < 0) return make_error(Code::Io, std::string("socket: ") + std::strerror(errno));
  int one = 1;
  ::setsockopt(probe, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (::bind(probe, addr.sa(), addr.len()) != 0) {
    int err = errno;
    ::close(probe);
    return make_error(Code::Io, "cannot listen on " + addr.to_string() + ": " + std::strerror(err));
  }
  if (addr.port() == 0) {
    auto bound = bound_address(probe);
    if (!bound) {
      ::close(probe);
      return bound.error();
    }
    addr = *bound;
  }
  ::close(probe);
  std::vector<int> fds;
  for (int i = 0; i < count; ++i) {
    auto fd = bind_reuseport(addr, backlog);
    if (!fd) {
      for (int f : fds)
        ::close(f);
      return fd.error();
    }
    fds.push_back(*fd);
  }
  return fds;
}

Result<int> bind_exclusive(const Address& addr, int backlog) {
  int fd = ::socket(addr.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return make_error(Code::Io, std::string("socket: ") + std::strerror(errno));
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (::bind(fd, addr.sa(), addr.len()) != 0 || ::listen(fd, backlog) != 0) {
    int err = errno;
    ::close(fd);
    // libuv's wording ("address already in use"), which reads well after the address.
    return make_error(Code::Io, addr.to_string() + ": " + uv_strerror(uv_translate_sys_error(err)));
  }
  return fd;
}

Result<Address> bound_address(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0)
    return make_error(Code::Io, std::string("getsockname: ") + std::strerror(errno));
  return Address::from_sockaddr(reinterpret_cast<sockaddr*>(&ss));
}

Result<std::unique_ptr<TcpListener>> TcpListener::open(Loop& loop, int fd, OnAccept on_accept) {
  std::unique_ptr<TcpListener> l(new TcpListener(loop, std::move(on_accept)));
  auto addr = bound_address(fd);
  if (!addr) {
    ::close(fd);
    return addr.error();
  }
  l->address_ = *addr;
  l->handle_ = new uv_tcp_t;
  uv_tcp_init(loop.uv(), l->handle_);
  l->handle_->data = l.get();
  int rc = uv_tcp_open(l->handle_, fd);
  if (rc == 0) rc = uv_listen(reinterpret_cast<uv_stream_t*>(l->handle_), 1024, &on_connection);
  if (rc != 0) {
    uv_os_fd_t open_fd;
    if (uv_fileno(reinterpret_cast<uv_handle_t*>(l->handle_), &open_fd) != 0) ::close(fd);
    l->close();
    return make_error(Code::Io, std::string("listen: ") + uv_strerror(rc));
  }
  return l;
}

TcpListener::~TcpListener() {
  close();
}

void TcpListener::close() {
  if (!handle_) return;
  close_and_free(handle_);
  handle_ = nullptr;
}

void TcpListener::on_connection(uv_stream_t* server, int status) {
  auto* self = static_cast<TcpListener*>(server->data);
  if (!self) return;
  if (status != 0) {
    // EMFILE and friends: keep listening; the kernel queue holds the client meanwhile.
    MB_LOG_EVERY(1, Warn, "listener", "accept failed on {}: {}", self->address_.to_string(),
                 uv_strerror(status));
    return;
  }
  TcpConnPtr conn = TcpConn::accept(self->loop_, server);
  if (conn) self->on_accept_(std::move(conn));
}

}  // namespace meshbox::loop
