// HttpServer: the HTTP/1.1 server side of the Bookinfo services: accepts connections, parses
// requests (bodies up to 64 KiB, kept whole), hands each to the service's handler and writes
// the response the handler gives back, possibly later (productpage answers once its upstream
// calls are done). Keep-alive, pipelined requests answered in order, HEAD. Loop thread only.
//
// Ownership: the server owns its connections; a closing connection hands itself back through
// release() and is destroyed by the loop's deferred deletion. A Reply may outlive its
// connection: sending on it then does nothing.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>

#include "core/base/non_copyable.h"
#include "core/base/result.h"
#include "core/http/header_map.h"
#include "core/loop/address.h"
#include "core/loop/loop.h"
#include "core/loop/tcp_listener.h"

namespace meshbox::bookinfo {

struct Request {
  std::string method;
  std::string target;  // as received
  std::string path;    // the target without its query
  std::string query;   // after '?', not decoded
  http::HeaderMap headers;
  std::string body;
};

struct Response {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  http::HeaderMap headers;  // extra headers (Location, Set-Cookie…); framing is added on send
  std::string body;

  static Response json(int status, std::string body);
  static Response html(int status, std::string body);
  static Response text(int status, std::string body);
};

class ServerConnection;

/// The handle a handler answers through. Copyable; the first send() wins, later ones and
/// sends after the connection closed are ignored.
class Reply {
 public:
  /// Connection use.
  struct Target {
    ServerConnection* conn;  // null once the connection is gone
  };
  Reply(std::shared_ptr<Target> target, uint64_t serial)
      : target_(std::move(target)), serial_(serial) {}

  void send(Response response) const;
  /// False once the client is gone: an answer would be thrown away.
  bool client_connected() const { return target_->conn != nullptr; }

 private:
  std::shared_ptr<Target> target_;
  uint64_t serial_;  // which request of the connection this answers
};

class HttpServer : NonCopyable {
 public:
  /// Called once per request, on the loop thread. The handler may move from the request.
  using Handler = std::function<void(Request&, Reply)>;

  HttpServer(loop::Loop& loop, Handler handler);
  ~HttpServer();

  /// Binds (no SO_REUSEPORT: two services must not share a port by accident) and starts
  /// accepting. Returns the bound address (the real port for port 0).
  Result<loop::Address> listen(const loop::Address& addr);
  /// Stops accepting and closes every connection now. Idempotent.
  void shutdown();

  loop::Loop& loop() { return loop_; }
  const Handler& handler() const { return handler_; }

  /// Connection use: `id` has closed; destroy it after the current callback.
  void release(uint64_t id);

 private:
  void on_accept(loop::TcpConnPtr conn);

  loop::Loop& loop_;
  Handler handler_;
  std::unique_ptr<loop::TcpListener> listener_;
  std::unordered_map<uint64_t, std::unique_ptr<ServerConnection>> conns_;
  uint64_t next_id_ = 0;
  bool shut_down_ = false;
};

}  // namespace meshbox::bookinfo
