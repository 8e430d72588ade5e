// Server: the httpbin listener, its connections and the process-wide counters. One per
// process, on the main Loop. Loop thread only.
//
// Connections are owned here, keyed by their serial number; a closing connection hands
// itself back through release(), which moves it to the loop's deferred-delete list so it
// can close from inside any of its own callbacks.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>

#include "core/base/non_copyable.h"
#include "core/base/result.h"
#include "core/loop/address.h"
#include "core/loop/loop.h"
#include "core/loop/tcp_listener.h"

namespace meshbox::httpbin {

class Connection;

class Server : NonCopyable {
 public:
  Server(loop::Loop& loop, std::string name);
  /// Closes the listener and every connection (see shutdown()).
  ~Server();

  /// Binds and starts accepting. Returns the bound address (the real port for port 0).
  Result<loop::Address> listen(const loop::Address& addr);
  /// Stops accepting and closes every connection at once, dropping unsent output.
  /// Idempotent; the loop may then be closed once deferred deletions ran.
  void shutdown();

  loop::Loop& loop() { return loop_; }
  const std::string& name() const { return name_; }

  void count_request() { ++requests_total_; }
  uint64_t connections_total() const { return connections_total_; }
  uint64_t connections_active() const { return conns_.size(); }
  uint64_t requests_total() const { return requests_total_; }

  /// Connection use: `id` has closed its socket; destroy it after the current callback.
  void release(uint64_t id);

 private:
  void on_accept(loop::TcpConnPtr conn);

  loop::Loop& loop_;
  std::string name_;
  std::unique_ptr<loop::TcpListener> listener_;
  std::unordered_map<uint64_t, std::unique_ptr<Connection>> conns_;
  uint64_t connections_total_ = 0;  // also the serial number of the newest connection
  uint64_t requests_total_ = 0;
  bool shut_down_ = false;
};

}  // namespace meshbox::httpbin
