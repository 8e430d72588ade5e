// TcpConn: a raw TCP socket for tests, the client side and the fake upstream side alike.
// Non-blocking underneath; every call that waits takes a Deadline and waits in poll(2).
// Sockets are close-on-exec so spawned children never inherit them. Owned by one thread;
// movable, not copyable.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "test/support/deadline.h"

namespace meshbox::test {

/// Splits "HOST:PORT" (IPv4 only: tests talk to 127.0.0.1).
bool split_host_port(std::string_view addr, std::string* host, uint16_t* port);

/// How a read ended.
enum class RecvStatus {
  Data,     // at least one byte arrived
  Eof,      // orderly close (FIN)
  Reset,    // ECONNRESET and friends: the peer aborted
  Timeout,  // the deadline passed first
  Error,    // anything else (see errno text in TcpConn::last_error())
};
std::string to_string(RecvStatus s);

class TcpConn {
 public:
  TcpConn() = default;
  /// Takes ownership of a connected socket (made non-blocking here).
  explicit TcpConn(int fd);
  ~TcpConn();
  TcpConn(TcpConn&& other) noexcept;
  TcpConn& operator=(TcpConn&& other) noexcept;
  TcpConn(const TcpConn&) = delete;
  TcpConn& operator=(const TcpConn&) = delete;

  /// Connects to "HOST:PORT". On failure returns an invalid TcpConn; *err gets the errno
  /// (ECONNREFUSED, ETIMEDOUT when the deadline passed…).
  static TcpConn connect(std::string_view addr, Deadline deadline, int* err = nullptr);

  /// Starts a connect and returns at once (for many connections in one poll loop): the
  /// socket turns writable when the connect ends; finish_connect() says how it ended.
  static TcpConn connect_async(std::string_view addr, int* err = nullptr);
  /// 0 when connected, else the errno of the failed connect (SO_ERROR).
  int finish_connect();

  bool valid() const { return fd_ >= 0; }
  int fd() const { return fd_; }
  const std::string& last_error() const { return last_error_; }

  /// Sends everything; false on error (peer gone) or when the deadline passes.
  bool send_all(std::string_view data, Deadline deadline);
  /// Appends up to `max` bytes that arrive before the deadline.
  RecvStatus recv_some(std::string& out, Deadline deadline, size_t max = 64 * 1024);
  /// Reads until `buf` contains `delim`; false on close, error or deadline.
  bool read_until(std::string& buf, std::string_view delim, Deadline deadline);
  /// Reads until `buf` holds at least n bytes.
  bool read_at_least(std::string& buf, size_t n, Deadline deadline);
  /// Reads (appending to `out`, at most `limit` bytes kept) until the peer closes; returns
  /// Eof or Reset if it did, Timeout/Error otherwise.
  RecvStatus read_to_close(std::string& out, Deadline deadline, size_t limit = 64 << 20);

  /// shutdown(SHUT_WR): the peer sees EOF; reading still works.
  void shutdown_write();
  void close();
  /// Closes with SO_LINGER 0: the peer gets a RST, not a FIN.
  void reset();

 private:
  int fd_ = -1;
  std::string last_error_;
};

/// A listening socket on 127.0.0.1, port 0 (no SO_REUSEPORT). Returns the fd, -1 on error;
/// *port gets the bound port. `listen` false: bound only, so connects are refused while the
/// port stays taken (an upstream address that is guaranteed dead).
int listen_loopback(uint16_t* port, bool listen = true);

}  // namespace meshbox::test
