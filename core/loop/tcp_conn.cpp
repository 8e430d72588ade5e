#include "core/loop/tcp_conn.h"

#include <linux/netfilter_ipv4.h>
#include <linux/netfilter_ipv6/ip6_tables.h>
#include <unistd.h>

#include "core/base/assert.h"

namespace meshbox::loop {

// loop.h's uv_error() names these without including transport.h.
static_assert(kErrTransportHandshake == -30001 && kErrTransportProtocol == -30002);

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
  c->established_ = true;
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
  // A deferred task still refers to this object: the last one frees it instead.
  if (self->deferred_ > 0) {
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

Status TcpConn::adopt(int fd) {
  int rc = uv_tcp_open(&tcp_, fd);
  if (rc != 0) {
    ::close(fd);
    return make_error(Code::Io, std::string("uv_tcp_open: ") + uv_strerror(rc));
  }
  return Status::ok();
}

void TcpConn::on_connect(uv_connect_t* req, int status) {
  auto* self = static_cast<TcpConn*>(req->data);
  self->connecting_ = false;
  if (self->closed_) return;
  if (status != 0) return self->fail(status);
  self->set_nodelay(true);
  self->established_ = true;
  if (self->transport_) {
    // on_connected waits for the handshake (on_transport_ready).
    self->connected_pending_ = true;
    if (int err = self->transport_->start(); err != 0) return self->fail(err);
    if (!self->pending_.empty()) self->flush();
    self->sync_socket_reading();
    return;
  }
  if (!self->pending_.empty()) self->flush();
  if (self->cb_ && !self->closed_) self->cb_->on_connected();
  // A shutdown or flush notification asked for while connecting can proceed now.
  if (!self->closed_) self->maybe_finish_flush();
}

void TcpConn::read_start() {
  if (reading_ || closed_) return;
  reading_ = true;
  if (transport_) {
    // Bytes kept while the user was not reading go first, from the loop (never from
    // inside the caller); the socket is read again once they are consumed.
    if (transport_->has_input()) pump_soon();
    return sync_socket_reading();
  }
  uv_read_start(reinterpret_cast<uv_stream_t*>(&tcp_), &TcpConn::on_alloc, &TcpConn::on_read);
}

void TcpConn::read_stop() {
  if (!reading_ || closed_) return;
  reading_ = false;
  if (transport_) return sync_socket_reading();
  uv_read_stop(reinterpret_cast<uv_stream_t*>(&tcp_));
}

void TcpConn::on_alloc(uv_handle_t* h, size_t, uv_buf_t* buf) {
  auto* self = static_cast<TcpConn*>(h->data);
  buf->base = self->loop_.read_buffer();
  buf->len = Loop::kReadBufferSize;
}

void TcpConn::on_read(uv_stream_t* s, ssize_t nread, const uv_buf_t* buf) {
  auto* self = static_cast<TcpConn*>(s->data);
  if (self->closed_) return;
  // A transport takes its bytes even before the user sets callbacks: the handshake needs them.
  if (self->transport_) {
    if (nread > 0) return self->pump(buf->base, static_cast<size_t>(nread));
    if (nread == UV_EOF) {
      self->socket_eof_ = true;
      self->sync_socket_reading();
      if (int err = self->transport_->on_socket_eof(); err != 0) return self->fail(err);
      return self->on_transport_eof();
    }
    if (nread < 0) self->fail(static_cast<int>(nread));
    return;
  }
  if (!self->cb_) return;
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
  if (!transport_) return write_raw(parts, count);
  if (failed_) return;
  // Encoded records reach write_raw through send_to_peer.
  if (int err = transport_->write(parts, count); err != 0) {
    failed_ = true;  // one report, however many writes follow
    sync_socket_reading();
    return fail_soon(err);
  }
  if (pending() >= high_watermark_) above_high_ = true;
}

void TcpConn::write_raw(const iovec* parts, size_t count) {
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
    fail_soon(rc);
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
  if (self->above_high_ && self->pending() <= self->low_watermark_) {
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
  // With a transport, the handshake and the bytes it held come first; then close_notify,
  // then the FIN once close_notify has left.
  if (transport_ && !transport_->ready()) return;
  if (shutdown_wanted_ && transport_ && !close_notify_sent_ && !failed_) {
    close_notify_sent_ = true;
    transport_->shutdown();
    if (closed_ || !pending_.empty() || in_flight_ > 0) return;  // on_write comes back here
  }
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
  failed_ = true;
  read_stop();
  sync_socket_reading();
  if (cb_) cb_->on_error(err);
}

void TcpConn::fail_soon(int err) {
  // Reported from the loop, never from inside the caller's write(): the caller may be in
  // the middle of using this connection.
  ++deferred_;
  loop_.run_soon([this, err] {
    if (end_deferred()) fail(err);
  });
}

bool TcpConn::end_deferred() {
  --deferred_;
  if (close_done_) {
    if (deferred_ == 0) delete this;
    return false;
  }
  return !closed_;
}

// --- Transport ---------------------------------------------------------------------------

void TcpConn::set_transport(TransportPtr t, std::string_view already_read) {
  MB_ASSERT(!transport_ && t);
  if (closed_) return;
  // The plain path may be reading already (a listener peeking at the first bytes): from now
  // on sync_socket_reading() decides when the socket is read.
  if (reading_) uv_read_stop(reinterpret_cast<uv_stream_t*>(&tcp_));
  transport_ = std::move(t);
  transport_->attach(this);
  if (!already_read.empty()) {
    transport_->add_input(already_read.data(), already_read.size());
    pump_soon();
  }
  if (established_) {
    if (int err = transport_->start(); err != 0) return fail_soon(err);
  }
  sync_socket_reading();
}

void TcpConn::sync_socket_reading() {
  if (!transport_) return;
  // The handshake reads whether or not the user does; kept input is consumed before more
  // is read, so a user that stops reading stops the socket too (backpressure).
  bool want = !closed_ && established_ && !socket_eof_ && !eof_delivered_ && !failed_ &&
              (reading_ || !transport_->ready()) && !transport_->has_input();
  if (want == socket_reading_) return;
  socket_reading_ = want;
  auto* s = reinterpret_cast<uv_stream_t*>(&tcp_);
  if (want) {
    uv_read_start(s, &TcpConn::on_alloc, &TcpConn::on_read);
  } else {
    uv_read_stop(s);
  }
}

void TcpConn::pump(const char* data, size_t len) {
  int err = transport_->on_read(data, len);
  if (closed_) return;
  if (err != 0) return fail(err);
  sync_socket_reading();
  maybe_finish_flush();
}

void TcpConn::pump_soon() {
  if (pump_queued_) return;
  pump_queued_ = true;
  ++deferred_;
  loop_.run_soon([this] {
    pump_queued_ = false;
    if (end_deferred() && !failed_) pump(nullptr, 0);
  });
}

void TcpConn::send_to_peer(const char* data, size_t len) {
  iovec part{const_cast<char*>(data), len};
  write_raw(&part, 1);
}

bool TcpConn::wants_data() const {
  return !closed_ && reading_ && cb_ != nullptr;
}

bool TcpConn::deliver(const char* data, size_t len) {
  if (!wants_data()) return false;
  cb_->on_data(data, len);
  return wants_data();
}

bool TcpConn::on_transport_ready() {
  if (connected_pending_) {
    connected_pending_ = false;
    if (cb_) cb_->on_connected();
    if (closed_) return false;
  }
  // What waited for the handshake may have crossed the high watermark and gone out at once.
  if (above_high_ && pending() <= low_watermark_) {
    above_high_ = false;
    if (cb_) cb_->on_drained();
    if (closed_) return false;
  }
  maybe_finish_flush();
  return !closed_;
}

void TcpConn::on_transport_eof() {
  if (eof_delivered_ || closed_) return;
  eof_delivered_ = true;
  sync_socket_reading();
  if (cb_) cb_->on_eof();
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
