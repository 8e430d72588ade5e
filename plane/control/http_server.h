// HttpServer: the small HTTP/1.1 server behind the admin API (127.0.0.1:15000). It owns its
// listening socket and every connection accepted on it; whoever starts the control plane owns
// the server. Loop thread only: it lives on the control loop, and handlers run there.
//
// Not on the data path, so it is written for clarity: each request is read whole (body
// included, up to a limit) before its handler runs, and each response is one buffer with a
// Content-Length, or a stream the handler writes as it goes (ResponseStream: chunked, the
// connection's last response; GET /tap). Requests on a connection are answered one at a
// time, in order (pipelined ones wait, unparsed). Keep-alive follows RFC 9112 §9.3: HTTP/1.1
// by default, HTTP/1.0 only with "Connection: keep-alive"; "Connection: close" is honoured
// both ways.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/base/linked_list.h"
#include "core/base/non_copyable.h"
#include "core/base/result.h"
#include "core/http/header_map.h"
#include "core/loop/address.h"
#include "core/loop/loop.h"
#include "core/loop/tcp_listener.h"

namespace meshbox::control {

struct HttpRequest {
  std::string method;       // "GET"
  std::string path;         // percent-decoded, without the query: "/config/virtual_service/x"
  std::string query;        // raw, after '?' (empty if none)
  http::HeaderMap headers;  // get() is case-insensitive: headers.get("authorization")
  std::string body;         // de-chunked
  std::string peer;         // "127.0.0.1:54321"

  /// A query parameter, percent-decoded ('+' = space); nullopt if absent. The first one
  /// wins when a name repeats; "?flag" and "?flag=" both give "".
  std::optional<std::string> param(std::string_view name) const;
};

class ResponseStream;

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  /// Extra headers. Framing is the server's: Content-Length, Transfer-Encoding and
  /// Connection given here are dropped, and so is any header whose name or value would
  /// break the head (CR, LF, ':' in a name).
  std::vector<std::pair<std::string, std::string>> headers;
  /// A streaming response: when set, `body` is ignored; the head goes out with
  /// Transfer-Encoding: chunked (HTTP/1.0: no framing) and Connection: close, and the body is
  /// whatever the handler writes to the stream until it ends it (ResponseStream).
  std::shared_ptr<ResponseStream> stream = {};
};

/// A JSON response: `body` (a JSON text) and a newline.
HttpResponse json_response(int status, std::string body);
/// A JSON error response: {"error": MESSAGE}.
HttpResponse error_response(int status, std::string_view message);

/// Sends the response to the request it was made for. Call it exactly once, on the loop
/// thread, now or later. It is safe to call after the connection (or the whole server) is
/// gone: it then does nothing. A Respond destroyed without being called answers 500, so a
/// forgotten error path never leaves a client hanging.
using Respond = std::function<void(HttpResponse)>;
/// Handles one request. The request is the connection's and is valid only during the call:
/// move out of it (the body, say) whatever a later response needs.
using Handler = std::function<void(HttpRequest&, Respond)>;

/// Limits and timeouts; the defaults are the admin API's. Tests shorten the timeouts.
struct HttpServerOptions {
  uint64_t max_body_bytes = 16 << 20;   // → 413
  size_t max_head_bytes = 64 << 10;     // start line + headers → 431
  uint64_t header_timeout_ms = 10'000;  // from the first byte of a request to its head → 408
  uint64_t body_timeout_ms = 60'000;    // between two reads of a request body → 408
  uint64_t idle_timeout_ms = 60'000;    // keep-alive, between requests → close
};

class HttpServer : NonCopyable {
 public:
  /// Binds `address` (its port alone: no SO_REUSEPORT, see loop::bind_exclusive) and starts
  /// accepting. Fails with e.g. "127.0.0.1:15000: address already in use".
  static Result<std::unique_ptr<HttpServer>> listen(loop::Loop& loop, const loop::Address& address,
                                                    Handler handler,
                                                    HttpServerOptions options = {});
  /// close().
  ~HttpServer();

  /// The bound address (port 0 resolved).
  const loop::Address& address() const { return address_; }
  /// Stops accepting and closes every connection; responses still pending are dropped.
  /// Safe from inside a handler; idempotent.
  void close();

  /// Connections open right now.
  size_t connections_for_test() const { return connections_.size(); }

 private:
  class Connection;
  friend class ResponseStream;

  HttpServer(loop::Loop& loop, Handler handler, HttpServerOptions options);
  void on_accept(loop::TcpConnPtr conn);
  /// Unlinks `conn` and destroys it at the next loop iteration (it may be in a callback).
  void retire(Connection* conn);

  loop::Loop& loop_;
  Handler handler_;
  HttpServerOptions options_;
  std::unique_ptr<loop::TcpListener> listener_;
  loop::Address address_;
  LinkedList<Connection> connections_;  // owned: each is freed through retire()
};

/// The body of a streaming response (HttpResponse::stream): the handler makes one, answers
/// with it and keeps it to write chunks as they come. Writes before the head is out are held;
/// the connection closes once end() has been written. Loop thread only.
class ResponseStream : NonCopyable {
 public:
  /// Bytes queued for a client that does not read, past which write() drops chunks.
  static constexpr size_t kMaxPendingBytes = 1 << 20;

  ResponseStream() = default;
  ~ResponseStream();
  /// Sends `chunk` (empty: nothing). False once the stream is closed or ended: stop writing.
  /// A chunk that finds kMaxPendingBytes unsent is dropped (and counted), not queued.
  bool write(std::string_view chunk);
  /// Ends the body; the connection closes once it is out. Idempotent.
  void end();
  /// `fn` runs once if the stream closes before end(): the client went away, or the server
  /// closed. Not after end().
  void on_close(std::function<void()> fn) { on_close_ = std::move(fn); }
  /// Neither ended nor closed.
  bool open() const { return !ended_ && !closed_; }
  uint64_t dropped_chunks() const { return dropped_; }

 private:
  friend class HttpServer;
  friend class HttpServer::Connection;
  /// The connection is gone: runs on_close (once, unless ended).
  void detach();

  HttpServer::Connection* conn_ = nullptr;  // null before the head is out and after close
  std::string held_;                        // written before the head went out
  std::function<void()> on_close_;
  uint64_t dropped_ = 0;
  bool ended_ = false;
  bool closed_ = false;
};

/// Percent-decodes `in` ('+' = space when `plus_is_space`); nullopt on a bad escape.
std::optional<std::string> percent_decode(std::string_view in, bool plus_is_space);

}  // namespace meshbox::control
