// FakeUpstream: a scripted TCP server on 127.0.0.1, port 0, for upstream misbehaviour that a
// real backend will not produce on demand (truncated bodies, resets, odd headers). Each
// accepted connection runs the script on its own thread. The destructor stops accepting,
// shuts down live connections (so scripts blocked in a read return at once) and joins
// every thread. Scripts must bound their own waits with a Deadline.
//
//   FakeUpstream up([](TcpConn& c, int) {
//     std::string req;
//     if (!read_request_head(c, req, Deadline(5s))) return;
//     c.send_all("HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n" + kilobyte, Deadline(5s));
//   });  // returning closes the connection
//
// Constructed and destroyed on the test thread; scripts run on their own threads.
#pragma once

#include <atomic>
#include <functional>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "test/support/deadline.h"
#include "test/support/tcp_conn.h"

namespace meshbox::test {

class FakeUpstream {
 public:
  /// (connection, 1-based serial number of the connection)
  using Script = std::function<void(TcpConn&, int)>;

  explicit FakeUpstream(Script script);
  ~FakeUpstream();
  FakeUpstream(const FakeUpstream&) = delete;
  FakeUpstream& operator=(const FakeUpstream&) = delete;

  /// "127.0.0.1:PORT"
  const std::string& address() const { return address_; }
  /// Connections accepted so far.
  int connections() const { return accepted_.load(); }

 private:
  void accept_loop();

  Script script_;
  int listen_fd_ = -1;
  int stop_fd_ = -1;  // eventfd: wakes the accept loop
  std::string address_;
  std::atomic<int> accepted_{0};
  std::thread acceptor_;
  std::mutex mu_;       // guards live_ and workers_
  std::set<int> live_;  // fds of connections whose script is running
  std::vector<std::thread> workers_;
};

/// Reads a request head (through the empty line) into `buf`; bytes after it stay in `buf`
/// after the head. Returns false on close or deadline.
bool read_request_head(TcpConn& conn, std::string& buf, Deadline deadline);

}  // namespace meshbox::test
