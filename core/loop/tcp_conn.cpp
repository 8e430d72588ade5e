#include "core/loop/tcp_conn.h"

#include <linux/netfilter_ipv4.h>
#include <linux/netfilter_ipv6/ip6_tables.h>

#include "core/base/assert.h"

namespace meshbox::loop {

TcpConn::TcpConn(Loop& loop) : loop_(loop) {
  uv_tcp_init(loop.uv(), &tcp_);
  tcp_.data = this;
}

TcpConnPtr TcpConn::create(Loop& loop) {
  return TcpConnPtr(new TcpConn(loop));
}

TcpConnPtr TcpConn::accept(Loop& loop, uv_stream_t* server) {
  TcpConnPtr c(new TcpConn(loop));
  if (uv_accept(server, reinterpret_cast<uv_stream_t*>(&c->tcp_)) != 0) return nullptr;
  c->set_nodelay(true);
  return c;
}

void TcpConn::close() {
  if (closed_) return;
  closed_ = true;
  cb_ = nullptr;
  // Write and connect requests still pending complete with UV_ECANCELED before the close
  // callback; they find closed_ set and touch nothing but this object, freed last.
  uv_close(reinterpret_cast<uv_handle_t*>(&tcp_), &TcpConn::on_close);
}

void TcpConn::on_close(uv_handle_t* h) {
  auto* self = static_cast<TcpConn*>(h->data);
  // A deferred error report still refers to this object: it frees it instead.
  if (self->deferred_error_) {
    self->close_done_ = true;
  } else {
    delete self;
  }
}

void TcpConn::close_reset() {
  if (closed_) return;
  if (shutdown_started_ || connecting_) return close();  // uv_tcp_close_reset refuses these
  closed_ = true;
  cb_ = nullptr;
  if (uv_tcp_close_reset(&tcp_, &TcpConn::on_close) != 0) {
    closed_ = false;
    close();
  }
}

Status TcpConn::connect(const Address& to) {
  connecting_ = true;
  connect_req_.data = this;
  int rc = uv_tcp_connect(&connect_req_, &tcp_, to.sa(), &TcpConn::on_connect);
  if (rc != 0) {
    connecting_ = false;
    return make_error(Code::Unavailable, std::string("connect: ") + uv_strerror(rc));
  }
  return Status::ok();
}

void TcpConn::on_connect(uv_connect_t* req, int status) {
  auto* self = static_cast<TcpConn*>(req->data);
  self->connecting_ = false;
  if (self->closed_) return;
  if (status != 0) return self->fail(status);
  self->set_nodelay(true);
  if (!self->pending_.empty()) self->flush();
  if (self->cb_ && !self->closed_) self->cb_->on_connected();
  // A shutdown or flush notification asked for while connecting can proceed now.
  if (!self->closed_) self->maybe_finish_flush();
}

void TcpConn::read_start() {
  if (reading_ || closed_) return;
  reading_ = true;
  uv_read_start(reinterpret_cast<uv_stream_t*>(&tcp_), &TcpConn::on_alloc, &TcpConn::on_read);
}

void TcpConn::read_stop() {
  if (!reading_ || closed_) return;
  reading_ = false;
  uv_read_stop(reinterpret_cast<uv_stream_t*>(&tcp_));
}

void TcpConn::on_alloc(uv_handle_t* h, size_t, uv_buf_t* buf) {
  auto* self = static_cast<TcpConn*>(h->data);
  buf->base = self->loop_.read_buffer();
  buf->len = Loop::kReadBufferSize;
}

void TcpConn::on_read(uv_stream_t* s, ssize_t nread, const uv_buf_t* buf) {
  auto* self = static_cast<TcpConn*>(s->data);
  if (self->closed_ || !self->cb_) return;
  if (nread > 0) {
    self->cb_->on_data(buf->base, static_cast<size_t>(nread));
  } else if (nread == UV_EOF) {
    self->read_stop();
    self->cb_->on_eof();
  } else if (nread < 0) {
    self->fail(static_cast<int>(nread));
  }
}

void TcpConn::write(const char* data, size_t len) {
  iovec part{const_cast<char*>(data), len};
  writev(&part, 1);
}

void TcpConn::write(Buffer&& data) {
  iovec parts[16];
  while (!data.empty()) {
    size_t n = data.peek(parts, 16);
    writev(parts, n);
    size_t bytes = 0;
    for (size_t i = 0; i < n; ++i)
      bytes += parts[i].iov_len;
    data.drain(bytes);
  }
}

void TcpConn::writev(const iovec* parts, size_t count) {
  if (closed_) return;
  size_t skip = 0;  // bytes already written by the fast path
  if (pending_.empty() && !connecting_) {
    // uv_buf_t is layout-compatible with iovec on Unix (libuv documents it).
    int n = uv_try_write(reinterpret_cast<uv_stream_t*>(&tcp_),
                         reinterpret_cast<const uv_buf_t*>(parts), static_cast<unsigned>(count));
    if (n > 0) skip = static_cast<size_t>(n);
    // Other errors surface through uv_write below, asynchronously.
  }
  for (size_t i = 0; i < count; ++i) {
    size_t len = parts[i].iov_len;
    if (skip >= len) {
      skip -= len;
      continue;
    }
    pending_.append(static_cast<const char*>(parts[i].iov_base) + skip, len - skip);
    skip = 0;
  }
  if (!pending_.empty()) {
    if (pending_.size() >= high_watermark_) above_high_ = true;
    flush();
  }
}

void TcpConn::flush() {
  if (in_flight_ > 0 || connecting_ || closed_ || pending_.empty()) return;
  iovec parts[16];
  size_t n = pending_.peek(parts, 16);
  size_t bytes = 0;
  for (size_t i = 0; i < n; ++i)
    bytes += parts[i].iov_len;
  write_req_.data = this;
  int rc = uv_write(&write_req_, reinterpret_cast<uv_stream_t*>(&tcp_),
                    reinterpret_cast<const uv_buf_t*>(parts), static_cast<unsigned>(n),
                    &TcpConn::on_write);
  if (rc != 0) {
    // The stream is unusable. Report it from the loop, never from inside the caller's
    // write(): the caller may be in the middle of using this connection.
    in_flight_ = 0;
    pending_.clear();
    deferred_error_ = true;
    loop_.run_soon([this, rc] {
      deferred_error_ = false;
      if (close_done_) {
        delete this;
      } else {
        fail(rc);
      }
    });
    return;
  }
  in_flight_ = bytes;
}

void TcpConn::on_write(uv_write_t* req, int status) {
  auto* self = static_cast<TcpConn*>(req->data);
  size_t done = self->in_flight_;
  self->in_flight_ = 0;
  if (self->closed_) return;
  if (status != 0) return self->fail(status);
  self->pending_.drain(done);
  if (!self->pending_.empty()) self->flush();
  if (self->above_high_ && self->pending_.size() <= self->low_watermark_) {
    self->above_high_ = false;
    if (self->cb_) self->cb_->on_drained();
    if (self->closed_) return;
  }
  self->maybe_finish_flush();
}

void TcpConn::shutdown() {
  shutdown_wanted_ = true;
  maybe_finish_flush();
}

void TcpConn::notify_when_flushed() {
  flush_notify_ = true;
  maybe_finish_flush();
}

void TcpConn::maybe_finish_flush() {
  if (closed_ || !pending_.empty() || in_flight_ > 0 || connecting_) return;
  if (shutdown_wanted_ && !shutdown_started_) {
    shutdown_started_ = true;
    shutdown_req_.data = this;
    if (uv_shutdown(&shutdown_req_, reinterpret_cast<uv_stream_t*>(&tcp_), &TcpConn::on_shutdown) !=
        0) {
      shutdown_started_ = false;
      if (cb_) cb_->on_flushed();
    }
    return;
  }
  if (flush_notify_ && !shutdown_wanted_) {
    flush_notify_ = false;
    if (cb_) cb_->on_flushed();
  }
}

void TcpConn::on_shutdown(uv_shutdown_t* req, int) {
  auto* self = static_cast<TcpConn*>(req->data);
  if (self->closed_) return;
  if (self->cb_) self->cb_->on_flushed();
}

void TcpConn::fail(int err) {
  if (closed_) return;
  read_stop();
  if (cb_) cb_->on_error(err);
}

void TcpConn::set_nodelay(bool on) {
  uv_tcp_nodelay(&tcp_, on ? 1 : 0);
}

Address TcpConn::peer() const {
  sockaddr_storage ss{};
  int len = sizeof ss;
  uv_tcp_getpeername(&tcp_, reinterpret_cast<sockaddr*>(&ss), &len);
  return Address::from_sockaddr(reinterpret_cast<sockaddr*>(&ss));
}

Address TcpConn::local() const {
  sockaddr_storage ss{};
  int len = sizeof ss;
  uv_tcp_getsockname(&tcp_, reinterpret_cast<sockaddr*>(&ss), &len);
  return Address::from_sockaddr(reinterpret_cast<sockaddr*>(&ss));
}

Address TcpConn::original_dst() const {
  uv_os_fd_t fd;
  if (uv_fileno(reinterpret_cast<const uv_handle_t*>(&tcp_), &fd) != 0) return {};
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  // Without NAT the kernel answers ENOENT; a v6 socket may carry v4-mapped traffic.
  if (::getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, &ss, &len) == 0 ||
      (len = sizeof ss, ::getsockopt(fd, SOL_IPV6, IP6T_SO_ORIGINAL_DST, &ss, &len) == 0))
    return Address::from_sockaddr(reinterpret_cast<sockaddr*>(&ss));
  return {};
}

}  // namespace meshbox::loop
