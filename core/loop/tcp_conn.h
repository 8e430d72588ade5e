// TcpConn: one TCP connection on a Loop: reads into the loop's shared buffer, writes through
// uv_try_write first and keeps only what the socket did not take, with high/low watermarks
// for backpressure. Loop thread only.
//
// Ownership: TcpConn is heap-allocated and held through TcpConnPtr; dropping the pointer
// closes the socket (pending writes are discarded) and the memory goes when libuv's close
// callback runs. After close no callback is delivered, so an owner may drop its TcpConnPtr
// from inside any callback.
#pragma once

#include <memory>

#include "core/base/buffer.h"
#include "core/base/non_copyable.h"
#include "core/loop/address.h"
#include "core/loop/loop.h"

namespace meshbox::loop {

class TcpConnCallbacks {
 public:
  virtual ~TcpConnCallbacks() = default;
  /// Bytes read. They live in the loop's read buffer: copy what must outlive the call.
  virtual void on_data(const char* data, size_t len) = 0;
  /// The peer finished sending (FIN). Writing may continue.
  virtual void on_eof() = 0;
  /// The connection failed (reset, write error, connect error): drop it.
  virtual void on_error(int uv_error) = 0;
  /// connect() finished successfully (errors go to on_error).
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

class TcpConn : NonCopyable {
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
  bool connecting() const { return connecting_; }

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

  size_t pending() const { return pending_.size(); }
  bool above_high_watermark() const { return pending_.size() >= high_watermark_; }
  void set_watermarks(size_t high, size_t low) {
    high_watermark_ = high;
    low_watermark_ = low;
  }

  /// Half-close: send FIN once every pending byte is written; on_flushed follows.
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
  bool deferred_error_ = false;  // an error report is queued on the loop (run_soon)
  bool close_done_ = false;      // libuv closed the handle while that report was queued
};

inline void TcpConnCloser::operator()(TcpConn* c) const {
  c->close();
}

}  // namespace meshbox::loop
