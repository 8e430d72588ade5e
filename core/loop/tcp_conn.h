// TcpConn: one TCP connection on a Loop: reads into the loop's shared buffer, writes through
// uv_try_write first and keeps only what the socket did not take, with high/low watermarks
// for backpressure. Loop thread only.
//
// Ownership: TcpConn is heap-allocated and held through TcpConnPtr; dropping the pointer
// closes the socket (pending writes are discarded) and the memory goes when libuv's close
// callback runs. After close no callback is delivered, so an owner may drop its TcpConnPtr
// from inside any callback.
//
// A Transport (TLS: core/tls/tls_transport.h) may sit between the socket and the callbacks:
// set_transport() turns it on and nothing else changes for the user — on_data carries
// plaintext, write() takes plaintext, watermarks count the encrypted bytes queued, shutdown()
// sends close_notify before the FIN, and on_connected waits for the handshake.
#pragma once

#include <memory>

#include "core/base/buffer.h"
#include "core/base/non_copyable.h"
#include "core/loop/address.h"
#include "core/loop/loop.h"
#include "core/loop/transport.h"

namespace meshbox::loop {

class TcpConnCallbacks {
 public:
  virtual ~TcpConnCallbacks() = default;
  /// Bytes read. They live in the loop's read buffer: copy what must outlive the call.
  virtual void on_data(const char* data, size_t len) = 0;
  /// The peer finished sending (FIN). Writing may continue.
  virtual void on_eof() = 0;
  /// The connection failed (reset, write error, connect error, a transport's
  /// kErrTransport*: see TcpConn::transport()->error_detail()): drop it.
  virtual void on_error(int uv_error) = 0;
  /// connect() finished successfully (errors go to on_error); with a transport set before
  /// the connect finished, once its handshake has finished too.
  virtual void on_connected() {}
  /// Pending output fell back below the low watermark after crossing the high one.
  virtual void on_drained() {}
  /// A shutdown (or close_after_flush) finished flushing.
  virtual void on_flushed() {}
};

class TcpConn;
struct TcpConnCloser {
  void operator()(TcpConn* c) const;
};
using TcpConnPtr = std::unique_ptr<TcpConn, TcpConnCloser>;

class TcpConn final : NonCopyable, TransportIo {
 public:
  static constexpr size_t kDefaultHighWatermark = 256 * 1024;
  static constexpr size_t kDefaultLowWatermark = 64 * 1024;

  /// A new unconnected socket.
  static TcpConnPtr create(Loop& loop);
  /// Accepts the next connection of `server`; null if accept failed.
  static TcpConnPtr accept(Loop& loop, uv_stream_t* server);

  void set_callbacks(TcpConnCallbacks* cb) { cb_ = cb; }
  /// Starts an asynchronous connect; the result arrives in on_connected or on_error.
  Status connect(const Address& to);
  /// Before connect(): use `fd`, an unconnected TCP socket made elsewhere (one made in another
  /// network namespace: core/loop/netns.h), instead of a socket of connect()'s own. Takes
  /// ownership of `fd`, also on failure.
  Status adopt(int fd);
  bool connecting() const { return connecting_; }

  /// Puts `t` between the socket and the callbacks. Client side: before connect() finishes
  /// (on_connected then follows the handshake), or later (no on_connected). Server side:
  /// any time before the first byte is read as plain text, or with `already_read`: bytes
  /// the user read as plain text before (a peeked ClientHello), handed to the transport
  /// first. The handshake runs whether or not the user reads. Never calls back from inside.
  void set_transport(TransportPtr t, std::string_view already_read = {});
  /// The transport, or null (plain TCP).
  Transport* transport() const { return transport_.get(); }

  void read_start();
  void read_stop();
  bool reading() const { return reading_; }

  /// Queues bytes for sending; sends at once when the socket takes them.
  void write(const char* data, size_t len);
  void write(std::string_view s) { write(s.data(), s.size()); }
  /// Sends every byte of `data` (then empty).
  void write(Buffer&& data);
  /// Gathers several pieces into one system call where possible.
  void writev(const iovec* parts, size_t count);

  /// Bytes written but not yet taken by the socket (encoded, with a transport; plus what
  /// waits for the handshake).
  size_t pending() const { return pending_.size() + (transport_ ? transport_->held() : 0); }
  bool above_high_watermark() const { return pending() >= high_watermark_; }
  void set_watermarks(size_t high, size_t low) {
    high_watermark_ = high;
    low_watermark_ = low;
  }

  /// Half-close: send FIN once every pending byte is written (a transport's close_notify
  /// first); on_flushed follows.
  void shutdown();
  /// Calls on_flushed once every pending byte is written (no FIN).
  void notify_when_flushed();

  void set_nodelay(bool on);
  Address peer() const;
  Address local() const;
  /// Where the client meant to connect before an iptables REDIRECT/DNAT sent it here
  /// (SO_ORIGINAL_DST, IPv4 and IPv6); empty (family 0) when the connection was not
  /// redirected or the kernel does not know.
  Address original_dst() const;
  Loop& loop() { return loop_; }

  /// Closes now; pending output is dropped. Prefer dropping the TcpConnPtr.
  void close();
  /// Closes with a TCP RST so the peer sees an error, not a clean end (an aborted response).
  void close_reset();

 private:
  explicit TcpConn(Loop& loop);
  static void on_alloc(uv_handle_t* h, size_t suggested, uv_buf_t* buf);
  static void on_read(uv_stream_t* s, ssize_t nread, const uv_buf_t* buf);
  static void on_write(uv_write_t* req, int status);
  static void on_connect(uv_connect_t* req, int status);
  static void on_shutdown(uv_shutdown_t* req, int status);
  static void on_close(uv_handle_t* h);
  void flush();
  void maybe_finish_flush();
  void fail(int err);
  void write_raw(const iovec* parts, size_t count);
  // Transport plumbing.
  void send_to_peer(const char* data, size_t len) override;
  bool wants_data() const override;
  bool deliver(const char* data, size_t len) override;
  bool on_transport_ready() override;
  void on_transport_eof() override;
  void pump(const char* data, size_t len);
  void sync_socket_reading();
  void pump_soon();
  void fail_soon(int err);
  // Ends a task run_soon() ran for this object: frees it if libuv closed it meanwhile.
  // Returns false when the object must not be used any more (closed or freed).
  bool end_deferred();

  Loop& loop_;
  uv_tcp_t tcp_;
  uv_write_t write_req_;
  uv_connect_t connect_req_;
  uv_shutdown_t shutdown_req_;
  TcpConnCallbacks* cb_ = nullptr;
  Buffer pending_;
  size_t in_flight_ = 0;  // bytes of pending_ handed to uv_write
  size_t high_watermark_ = kDefaultHighWatermark;
  size_t low_watermark_ = kDefaultLowWatermark;
  bool connecting_ = false;
  bool reading_ = false;
  bool above_high_ = false;
  bool shutdown_wanted_ = false;
  bool shutdown_started_ = false;
  bool flush_notify_ = false;
  bool closed_ = false;
  int deferred_ = 0;         // tasks queued on the loop (run_soon) that refer to this object
  bool close_done_ = false;  // libuv closed the handle while such a task was queued
  // With a transport (the plain path uses none of these).
  TransportPtr transport_;
  bool established_ = false;        // accepted, or connect() succeeded
  bool socket_reading_ = false;     // uv_read_start is in effect (reading_ is the user's wish)
  bool connected_pending_ = false;  // on_connected waits for the handshake
  bool socket_eof_ = false;
  bool eof_delivered_ = false;
  bool failed_ = false;
  bool close_notify_sent_ = false;
  bool pump_queued_ = false;
};

inline void TcpConnCloser::operator()(TcpConn* c) const {
  c->close();
}

}  // namespace meshbox::loop
