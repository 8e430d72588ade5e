// TcpListener: a listening socket on one Loop. Each worker binds its own socket to the same
// address with SO_REUSEPORT, so the kernel spreads connections over the workers and no
// accept lock exists (libuv 1.44 has no UV_TCP_REUSEPORT, so the socket is made here and
// handed to uv_tcp_open). Loop thread only, except bind_reuseport(), which any thread may call.
#pragma once

#include <functional>
#include <vector>

#include "core/base/non_copyable.h"
#include "core/base/result.h"
#include "core/loop/address.h"
#include "core/loop/tcp_conn.h"

namespace meshbox::loop {

/// Creates a non-blocking TCP socket with SO_REUSEADDR and SO_REUSEPORT bound to `addr` and
/// listening. Returns the fd. Port 0 picks a free port: read it back with bound_address().
/// `incoming_cpu` >= 0: the socket asks for the connections whose SYN the kernel handles on
/// that CPU (SO_INCOMING_CPU): a thread pinned there that connects to its own process's
/// listener over loopback then accepts the connection itself (no cross-thread wakeups).
Result<int> bind_reuseport(const Address& addr, int backlog = 1024, int incoming_cpu = -1);
/// `count` listening sockets sharing `addr` with SO_REUSEPORT, one per worker. Fails with
/// "address in use" when anything already listens there, even another process that set
/// SO_REUSEPORT too (which the kernel would otherwise let share the port silently). Port 0
/// is resolved once, so all the sockets share one port.
Result<std::vector<int>> bind_listeners(const Address& addr, int count, int backlog = 1024);
Result<Address> bound_address(int fd);
/// A listening socket that nobody else may share (no SO_REUSEPORT), for ports that must have
/// one owner, like the admin API: a second meshbox must fail, not split the traffic.
/// SO_REUSEADDR is still set so a restart can bind while old connections sit in TIME_WAIT
/// (on Linux it never lets two sockets listen on one port). Returns the non-blocking fd.
/// Errors name the address: "127.0.0.1:15000: address already in use".
Result<int> bind_exclusive(const Address& addr, int backlog = 128);

class TcpListener : NonCopyable {
 public:
  using OnAccept = std::function<void(TcpConnPtr)>;

  /// Takes ownership of `fd` (from bind_reuseport) and starts accepting on `loop`.
  static Result<std::unique_ptr<TcpListener>> open(Loop& loop, int fd, OnAccept on_accept);
  ~TcpListener();

  /// Stops accepting and closes the socket; connections already accepted are not touched.
  void close();
  const Address& address() const { return address_; }

 private:
  TcpListener(Loop& loop, OnAccept on_accept) : loop_(loop), on_accept_(std::move(on_accept)) {}
  static void on_connection(uv_stream_t* server, int status);

  Loop& loop_;
  OnAccept on_accept_;
  uv_tcp_t* handle_ = nullptr;
  Address address_;
};

}  // namespace meshbox::loop
