#include "plane/data/tunnel.h"

#include "core/base/log.h"

namespace meshbox::data {

Tunnel::Tunnel(Worker& worker, loop::TcpConnPtr down, loop::TcpConnPtr up, uint64_t idle_timeout_ms)
    : worker_(worker),
      timer_(worker.loop(), [this] { close(); }),
      idle_timeout_ms_(idle_timeout_ms) {
  down_.tunnel = up_.tunnel = this;
  down_.peer = &up_;
  up_.peer = &down_;
  down_.conn = std::move(down);
  up_.conn = std::move(up);
  down_.conn->set_callbacks(&down_);
  up_.conn->set_callbacks(&up_);
}

Tunnel* Tunnel::proxy(Worker& worker, const ListenerSpec& listener, ClusterState& cluster,
                      loop::TcpConnPtr down) {
  ConnPool* pool = cluster.pick(worker.random());
  if (!pool) return nullptr;
  const loop::Address* to = &pool->endpoint();
  auto* t = new Tunnel(worker, std::move(down), loop::TcpConn::create(worker.loop()),
                       listener.tcp_idle_timeout_ms);
  Status s = t->up_.conn->connect(*to);
  // The client may talk first: its bytes wait in the upstream's output buffer until the
  // connection is up, bounded by the watermark like any other write.
  t->down_.conn->read_start();
  t->timer_.start(s.is_ok() ? cluster.spec().connect_timeout_ms : 0);
  return t;
}

void Tunnel::splice(Worker& worker, loop::TcpConnPtr down, loop::TcpConnPtr up, Buffer to_up,
                    Buffer to_down, uint64_t idle_timeout_ms) {
  auto* t = new Tunnel(worker, std::move(down), std::move(up), idle_timeout_ms);
  worker.track(t);
  t->up_.conn->write(std::move(to_up));
  t->down_.conn->write(std::move(to_down));
  t->down_.conn->read_start();
  t->up_.conn->read_start();
  t->touch();
}

void Tunnel::close() {
  if (closed_) return;
  closed_ = true;
  timer_.stop();
  down_.conn.reset();
  up_.conn.reset();
  worker_.remove(this);
}

void Tunnel::Side::on_connected() {
  // Only the upstream side connects.
  tunnel->touch();
  conn->read_start();
}

void Tunnel::Side::on_data(const char* data, size_t len) {
  tunnel->touch();
  peer->conn->write(data, len);
  if (peer->conn->above_high_watermark()) conn->read_stop();
}

void Tunnel::Side::on_drained() {
  // Our output drained: the peer may read again.
  if (!peer->eof && peer->conn) peer->conn->read_start();
}

void Tunnel::Side::on_eof() {
  eof = true;
  peer->conn->shutdown();  // FIN after everything already queued
}

void Tunnel::Side::on_flushed() {
  // This side's output is flushed and its FIN sent: the peer's direction is finished.
  peer->finished = true;
  if (finished && peer->finished) tunnel->close();
}

void Tunnel::Side::on_error(int err) {
  MB_DEBUG("tunnel", "tunnel closed: {}", uv_strerror(err));
  // Pass the failure on as a reset rather than a clean end.
  if (peer->conn) peer->conn->close_reset();
  tunnel->close();
}

}  // namespace meshbox::data
