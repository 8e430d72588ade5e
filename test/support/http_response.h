// HTTP/1.1 responses as a test client sees them. ResponseParser is an incremental, strict
// response parser written for the tests alone: an oracle independent of core/http, so a bug
// shared by the proxy and its parser cannot hide (it rejects bare LF, for instance).
// HttpClient pairs it with a TcpConn and keeps bytes that arrive after a response (the next
// pipelined response, or tunnel data after a 101/CONNECT). Single-threaded value types.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "test/support/deadline.h"
#include "test/support/tcp_conn.h"

namespace meshbox::test {

struct HttpResponse {
  enum class Framing { None, ContentLength, Chunked, UntilClose };

  int status = 0;
  std::string reason;
  int version_minor = 1;
  std::vector<std::pair<std::string, std::string>> headers;  // in arrival order
  Framing framing = Framing::None;
  uint64_t content_length = 0;
  std::string body;            // de-chunked; empty when the caller streams it to a sink
  uint64_t body_bytes = 0;     // de-chunked body bytes received
  bool head_complete = false;  // the status line and headers arrived
  bool complete = false;       // … and the whole body, by its framing
  std::string error;           // why it is not complete

  /// The first header called `name` (case-insensitive), or null.
  const std::string* header(std::string_view name) const;
  size_t count(std::string_view name) const;
  /// A one-line summary for failure messages: "HTTP/1.1 200 OK, 12 body bytes, complete".
  std::string summary() const;
};

bool iequals(std::string_view a, std::string_view b);

/// Incremental parser for one response.
class ResponseParser {
 public:
  /// `method` is the request's: HEAD responses have no body, a CONNECT 2xx is a tunnel.
  explicit ResponseParser(std::string_view method = "GET") : method_(method) {}

  /// Body bytes go to `sink` instead of HttpResponse::body when set.
  void set_body_sink(std::function<void(std::string_view)> sink) { sink_ = std::move(sink); }

  /// Feeds bytes; returns how many were used. Stops at the end of the response: the rest
  /// belongs to whatever follows it.
  size_t feed(std::string_view data);
  /// The peer closed: ends an until-close body; anything else unfinished is an error.
  void on_eof();
  /// The response is complete or failed.
  bool done() const { return state_ == State::Done || state_ == State::Failed; }
  HttpResponse& response() { return resp_; }

 private:
  enum class State {
    Head,
    Body,
    UntilClose,
    ChunkSize,
    ChunkData,
    ChunkCrlf,
    Trailers,
    Done,
    Failed
  };

  void parse_head();
  void fail(std::string why);
  void deliver(std::string_view data);
  // Moves bytes of `in` into line_ up to and including the first '\n'; true once a whole
  // line is there.
  bool take_line(std::string_view in, size_t* used);

  std::string method_;
  State state_ = State::Head;
  HttpResponse resp_;
  std::string head_;
  std::string line_;
  uint64_t remaining_ = 0;
  std::function<void(std::string_view)> sink_;
};

/// A client connection that reads responses.
class HttpClient {
 public:
  HttpClient() = default;
  explicit HttpClient(TcpConn conn) : conn_(std::move(conn)) {}
  /// Connects to "HOST:PORT"; check valid().
  static HttpClient connect(std::string_view addr, Deadline deadline, int* err = nullptr) {
    return HttpClient(TcpConn::connect(addr, deadline, err));
  }

  bool valid() const { return conn_.valid(); }
  TcpConn& conn() { return conn_; }
  bool send(std::string_view data, Deadline deadline) { return conn_.send_all(data, deadline); }

  struct ReadOptions {
    std::string_view method = "GET";
    std::function<void(std::string_view)> body_sink;  // stream the body instead of keeping it
  };
  /// Reads one response (a 1xx counts as one). Check head_complete/complete/error.
  HttpResponse read_response(Deadline deadline, ReadOptions opts);
  HttpResponse read_response(Deadline deadline) { return read_response(deadline, ReadOptions{}); }

  /// Bytes received after the last response (tunnel data, the next response…).
  std::string& pending() { return pending_; }
  /// Waits for the peer to close. True on EOF or reset before the deadline; bytes that
  /// arrive meanwhile are appended to pending().
  bool wait_closed(Deadline deadline, RecvStatus* how = nullptr);

 private:
  TcpConn conn_;
  std::string pending_;
};

/// Connects to `addr`, sends `request` and reads one response (error set if it could not).
HttpResponse exchange(std::string_view addr, std::string_view request, Deadline deadline,
                      std::string_view method = "GET");

/// `GET path` with Host `host` on one connection (Connection: close).
HttpResponse get_with_host(std::string_view addr, std::string_view path, std::string_view host,
                           Deadline deadline);

/// 64-bit FNV-1a, the hash meshbox-httpbin /upload reports.
class Fnv1a {
 public:
  void update(std::string_view data);
  uint64_t value() const { return h_; }
  std::string hex() const;

 private:
  uint64_t h_ = 14695981039346656037ull;
};

/// meshbox-httpbin /bytes/N content: byte i is kBytesAlphabet[i % 64].
inline constexpr std::string_view kBytesAlphabet =
    "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ+/";
/// True if `data` is the /bytes content starting at byte `offset` of the body.
bool matches_bytes_pattern(std::string_view data, uint64_t offset);

}  // namespace meshbox::test
