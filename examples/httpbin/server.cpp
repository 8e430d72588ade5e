#include "examples/httpbin/server.h"

#include "core/base/log.h"
#include "examples/httpbin/connection.h"

namespace meshbox::httpbin {

Server::Server(loop::Loop& loop, std::string name) : loop_(loop), name_(std::move(name)) {}

Server::~Server() {
  shutdown();
}

Result<loop::Address> Server::listen(const loop::Address& addr) {
  // bind_reuseport sets SO_REUSEPORT: a second process bound to the same fixed port shares
  // the traffic instead of failing with EADDRINUSE (core/loop has no exclusive bind).
  auto fd = loop::bind_reuseport(addr);
  if (!fd) return fd.error();
  auto listener =
      loop::TcpListener::open(loop_, *fd, [this](loop::TcpConnPtr c) { on_accept(std::move(c)); });
  if (!listener) return listener.error();
  listener_ = std::move(*listener);
  return listener_->address();
}

void Server::on_accept(loop::TcpConnPtr tcp) {
  if (shut_down_) return;  // dropping the pointer closes the socket
  uint64_t id = ++connections_total_;
  auto conn = std::make_unique<Connection>(*this, std::move(tcp), id);
  Connection* raw = conn.get();
  conns_.emplace(id, std::move(conn));
  MB_DEBUG("httpbin", "connection {} accepted ({} active)", id, conns_.size());
  raw->start();
}

void Server::release(uint64_t id) {
  auto it = conns_.find(id);
  if (it == conns_.end()) return;
  std::unique_ptr<Connection> conn = std::move(it->second);
  conns_.erase(it);
  MB_DEBUG("httpbin", "connection {} closed ({} active)", id, conns_.size());
  loop_.defer_delete(std::move(conn));
}

void Server::shutdown() {
  shut_down_ = true;
  if (listener_) listener_->close();
  listener_.reset();
  // close() calls release(), which erases the entry.
  while (!conns_.empty())
    conns_.begin()->second->close();
}

}  // namespace meshbox::httpbin
