#include "plane/control/http_server.h"

#include <sys/uio.h>

#include <cstdio>

#include "core/base/assert.h"
#include "core/base/json.h"
#include "core/base/log.h"
#include "core/http/parser.h"
#include "core/http/serializer.h"
#include "core/loop/tcp_conn.h"
#include "core/loop/timer.h"

namespace meshbox::control {

namespace {

// Pipelined bytes held while a request is being answered; past this, reading stops until the
// answer is out (the client waits in its socket buffer, not in our memory).
constexpr size_t kMaxHeldBytes = 64 * 1024;
// How long a closing connection keeps reading (and discarding) after its last response, so
// that a client still sending (a body we refused with 413) gets the response, not a reset.
constexpr uint64_t kLingerMs = 5'000;

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool is_token_char(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  switch (c) {
    case '!':
    case '#':
    case '$':
    case '%':
    case '&':
    case '\'':
    case '*':
    case '+':
    case '-':
    case '.':
    case '^':
    case '_':
    case '`':
    case '|':
    case '~':
      return true;
    default:
      return false;
  }
}

/// A value that cannot end its line early: no CR, LF or NUL.
bool value_ok(std::string_view value) {
  return value.find_first_of(std::string_view("\r\n\0", 3)) == std::string_view::npos;
}

/// A header a handler may add: a token name, a clean value, and not one of the headers the
/// server writes itself.
bool extra_header_ok(std::string_view name, std::string_view value) {
  if (name.empty() || !value_ok(value)) return false;
  for (char c : name)
    if (!is_token_char(c)) return false;
  return !http::iequals(name, "content-length") && !http::iequals(name, "transfer-encoding") &&
         !http::iequals(name, "connection") && !http::iequals(name, "content-type") &&
         !http::iequals(name, "cache-control");
}

/// Splits a request-target into its raw path and query. Origin-form ("/p?q") is what clients
/// send; absolute-form ("http://host/p?q") must be accepted too (RFC 9112 §3.2.2), and "*" is
/// OPTIONS' asterisk-form. False for anything else.
bool split_target(std::string_view target, std::string_view* path, std::string_view* query) {
  if (target.empty()) return false;
  if (target.front() != '/' && target != "*") {
    size_t scheme_end = target.find("://");
    if (scheme_end == std::string_view::npos) return false;
    std::string_view scheme = target.substr(0, scheme_end);
    if (!http::iequals(scheme, "http") && !http::iequals(scheme, "https")) return false;
    target.remove_prefix(scheme_end + 3);
    size_t slash = target.find_first_of("/?");
    target = slash == std::string_view::npos ? std::string_view("/") : target.substr(slash);
    if (target.front() == '?') {
      *path = "/";
      *query = target.substr(1);
      return true;
    }
  }
  size_t q = target.find('?');
  *path = target.substr(0, q);
  *query = q == std::string_view::npos ? std::string_view() : target.substr(q + 1);
  return true;
}

}  // namespace

std::optional<std::string> percent_decode(std::string_view in, bool plus_is_space) {
  std::string out;
  out.reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (c == '%') {
      if (i + 2 >= in.size()) return std::nullopt;
      int hi = hex_value(in[i + 1]), lo = hex_value(in[i + 2]);
      if (hi < 0 || lo < 0) return std::nullopt;
      out.push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else if (c == '+' && plus_is_space) {
      out.push_back(' ');
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::optional<std::string> HttpRequest::param(std::string_view name) const {
  std::string_view rest = query;
  while (!rest.empty()) {
    size_t amp = rest.find('&');
    std::string_view pair = rest.substr(0, amp);
    rest = amp == std::string_view::npos ? std::string_view() : rest.substr(amp + 1);
    if (pair.empty()) continue;  // "a=1&&b=2"
    size_t eq = pair.find('=');
    std::string_view raw_name = pair.substr(0, eq);
    std::string_view raw_value =
        eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1);
    // A malformed escape is taken literally: a lenient reading of a hand-typed query beats
    // refusing it.
    auto key = percent_decode(raw_name, true);
    if ((key ? *key : std::string(raw_name)) != name) continue;
    auto value = percent_decode(raw_value, true);
    return value ? std::move(*value) : std::string(raw_value);
  }
  return std::nullopt;
}

// ---- one connection --------------------------------------------------------------------------

/// One accepted connection: parses requests one at a time, hands each to the handler once its
/// body is in, writes the answer, then goes on with the next. Owned by the server's list; freed
/// through HttpServer::retire().
class HttpServer::Connection : public LinkedNode,
                               public loop::Deferred,
                               loop::TcpConnCallbacks,
                               http::ParserCallbacks {
 public:
  Connection(HttpServer& server, loop::TcpConnPtr conn);
  ~Connection() override = default;

  /// Closes the socket now (pending output dropped) and retires this connection.
  void close();

  // A streaming response (ResponseStream): a chunk of its body, and its end.
  void stream_write(std::string_view chunk);
  void stream_end();
  size_t stream_pending() const { return conn_ ? conn_->pending() : 0; }

 private:
  /// What the connection's one timer measures.
  enum class Wait {
    None,
    Idle,     // keep-alive, between requests (→ close)
    Head,     // a request head is arriving (→ 408)
    Body,     // a request body stalled (→ 408)
    Handler,  // the handler has the request: no timeout here, the handler owns that
    Flush,    // closing: the last response is being written (→ close)
    Linger,   // closing: FIN sent, discarding what the client still sends (→ close)
    Stream,   // a streaming response is going out: no timeout, it ends or the client goes
  };

  /// The state a Respond shares: the connection (null once it is gone) and whether the
  /// request was answered. Its destructor answers 500 when the handler dropped the request.
  struct Exchange {
    std::shared_ptr<Connection*> conn;
    bool responded = false;

    ~Exchange() {
      if (responded || !*conn) return;
      MB_WARN("admin", "a handler dropped a request without responding");
      respond({500, "text/plain", "the request was dropped without a response\n", {}});
    }
    void respond(HttpResponse&& response) {
      if (responded) {
        MB_WARN("admin", "a handler responded twice to one request; the second is ignored");
        return;
      }
      responded = true;
      if (Connection* c = *conn) c->on_response(std::move(response));
    }
  };

  // Socket.
  void on_data(const char* data, size_t len) override;
  void on_eof() override;
  void on_error(int uv_error) override;
  void on_flushed() override;
  // Parser.
  void on_request_head(http::RequestHead& head) override;
  void on_body(const char* data, size_t len) override;
  void on_message_complete() override {}

  void process(const char* data, size_t len);
  void hold(const char* data, size_t len);
  void dispatch();
  void on_response(HttpResponse&& response);
  void continue_reading();
  void write_response(HttpResponse&& response);
  void error_reply(int status, std::string body);
  void close_after_flush();
  void on_timeout();
  void arm(Wait what, uint64_t ms) {
    wait_ = what;
    timer_.start(ms);
  }

  HttpServer* server_;  // null once closed
  loop::TcpConnPtr conn_;
  http::Parser parser_;
  loop::Timer timer_;
  Wait wait_ = Wait::None;
  // Handle for everything that may outlive this object (responds, queued tasks): it points
  // here until close(), then to null.
  std::shared_ptr<Connection*> handle_;
  std::string peer_;
  HttpRequest request_;
  std::string held_;  // bytes after the request being answered; parsed once it is answered
  int version_minor_ = 1;
  bool head_request_ = false;  // the request being answered is a HEAD: no body in the answer
  bool close_after_ = false;   // the answer being prepared is the connection's last
  bool paused_ = false;        // the parser paused after a request; new bytes go to held_
  bool awaiting_ = false;      // the handler has the request and has not answered yet
  bool processing_ = false;    // inside process(): it carries on after a synchronous answer
  bool eof_ = false;           // the client sent FIN
  bool closing_ = false;       // no more requests: the last bytes are going out
  bool closed_ = false;
  bool chunked_ = false;                    // the streaming response is chunked (HTTP/1.1)
  std::shared_ptr<ResponseStream> stream_;  // the streaming response going out, if any
};

HttpServer::Connection::Connection(HttpServer& server, loop::TcpConnPtr conn)
    : server_(&server),
      conn_(std::move(conn)),
      parser_(http::Parser::Kind::Request, *this,
              http::ParserLimits{.max_head_bytes = server.options_.max_head_bytes,
                                 .max_headers = 100,
                                 .max_body_bytes = server.options_.max_body_bytes}),
      timer_(server.loop_, [this] { on_timeout(); }),
      handle_(std::make_shared<Connection*>(this)),
      peer_(conn_->peer().to_string()) {
  conn_->set_callbacks(this);
  conn_->read_start();
  arm(Wait::Idle, server.options_.idle_timeout_ms);
}

void HttpServer::Connection::close() {
  if (closed_) return;
  closed_ = closing_ = true;
  *handle_ = nullptr;
  timer_.stop();
  conn_.reset();
  HttpServer* server = server_;
  server_ = nullptr;
  server->retire(this);
  // Last: the stream's close callback may do anything (stop a session, close the server).
  if (auto stream = std::move(stream_)) stream->detach();
}

void HttpServer::Connection::stream_write(std::string_view chunk) {
  if (chunk.empty() || closed_) return;
  if (!chunked_) return conn_->write(chunk);
  char size[20];
  int n = std::snprintf(size, sizeof size, "%zx\r\n", chunk.size());
  iovec parts[3] = {{size, static_cast<size_t>(n)},
                    {const_cast<char*>(chunk.data()), chunk.size()},
                    {const_cast<char*>("\r\n"), 2}};
  conn_->writev(parts, 3);
}

void HttpServer::Connection::stream_end() {
  if (closed_ || !stream_) return;
  stream_->conn_ = nullptr;
  stream_.reset();
  if (chunked_) conn_->write("0\r\n\r\n");
  close_after_flush();
}

void HttpServer::Connection::on_data(const char* data, size_t len) {
  // Lingering, or streaming a response (the connection's last): what the client still sends
  // is discarded.
  if (closing_ || stream_) return;
  if (paused_) return hold(data, len);
  process(data, len);
}

void HttpServer::Connection::hold(const char* data, size_t len) {
  held_.append(data, len);
  if (held_.size() > kMaxHeldBytes) conn_->read_stop();
}

void HttpServer::Connection::process(const char* data, size_t len) {
  processing_ = true;
  while (len > 0 && !closing_) {
    if (!parser_.in_message() && wait_ != Wait::Head)
      arm(Wait::Head, server_->options_.header_timeout_ms);
    auto r = parser_.feed(data, len);
    if (closing_) break;
    if (r.state == http::Parser::State::Ok) {
      // A body arriving resets its stall timer; a head keeps its deadline (slow-loris).
      if (parser_.in_message() && !parser_.in_head())
        arm(Wait::Body, server_->options_.body_timeout_ms);
      break;
    }
    if (r.state == http::Parser::State::Error) {
      http::ParseError e = parser_.error();
      MB_DEBUG("admin", "bad request from {}: {}", peer_, parser_.error_reason());
      error_reply(http::error_status(e), std::string(parser_.error_reason()) + "\n");
      break;
    }
    if (r.state == http::Parser::State::Stopped) break;  // on_request_head answered already
    // Paused or Upgrade: a whole request is in.
    data += r.consumed;
    len -= r.consumed;
    if (r.state == http::Parser::State::Upgrade) {
      // Upgrades are not offered: answer the request as it is and close, since llhttp treats
      // whatever follows as the other protocol.
      close_after_ = true;
      len = 0;
    }
    paused_ = true;
    dispatch();
    if (awaiting_ || closing_ || stream_) {
      if (!closing_ && !stream_) hold(data, len);
      break;
    }
    // Answered at once: go on with the next request in this buffer.
    paused_ = false;
    parser_.resume();
  }
  processing_ = false;
}

void HttpServer::Connection::on_request_head(http::RequestHead& head) {
  request_ = HttpRequest{};
  version_minor_ = head.version_minor;
  head_request_ = head.method == "HEAD";
  close_after_ = !head.keep_alive;

  auto refuse = [&](int status, std::string body) {
    parser_.stop();
    error_reply(status, std::move(body));
  };
  if (head.method == "CONNECT") return refuse(405, "CONNECT is not supported\n");
  std::string_view raw_path, query;
  if (!split_target(head.target, &raw_path, &query))
    return refuse(400, "malformed request target\n");
  auto path = percent_decode(raw_path, false);
  if (!path || path->find('\0') != std::string::npos)
    return refuse(400, "malformed request target\n");

  if (const std::string* expect = head.headers.get("expect")) {
    if (!http::iequals(*expect, "100-continue")) return refuse(417, "unsupported expectation\n");
    // curl asks before sending a large body; the limits were checked with the head, so the
    // body is welcome.
    if (head.framing != http::Framing::None && head.version_minor == 1)
      conn_->write("HTTP/1.1 100 Continue\r\n\r\n");
  }

  request_.method = std::move(head.method);
  request_.path = std::move(*path);
  request_.query.assign(query);
  request_.headers = std::move(head.headers);
  request_.peer = peer_;
  // Content-Length is within max_body_bytes here (the parser checked it).
  if (head.framing == http::Framing::ContentLength) request_.body.reserve(head.content_length);
  if (head.framing != http::Framing::None) arm(Wait::Body, server_->options_.body_timeout_ms);
}

void HttpServer::Connection::on_body(const char* data, size_t len) {
  request_.body.append(data, len);
}

void HttpServer::Connection::dispatch() {
  awaiting_ = true;
  wait_ = Wait::Handler;
  timer_.stop();
  auto exchange = std::make_shared<Exchange>();
  exchange->conn = handle_;
  // By the time the handler returns, it has answered, kept `respond` for later, or dropped it
  // (then ~Exchange answers 500).
  server_->handler_(request_,
                    [exchange](HttpResponse response) { exchange->respond(std::move(response)); });
}

void HttpServer::Connection::on_response(HttpResponse&& response) {
  if (!awaiting_ || closing_) return;
  awaiting_ = false;
  write_response(std::move(response));
  if (closing_ || processing_) return;  // process() goes on with the rest of its buffer
  // Answered later, from outside this connection's callbacks: read on at the next loop
  // iteration, not inside the caller, which the next request's handler would re-enter
  // (core-principles rule 4).
  server_->loop_.run_soon([handle = handle_] {
    if (Connection* c = *handle) c->continue_reading();
  });
}

void HttpServer::Connection::continue_reading() {
  if (closing_ || awaiting_ || !paused_ || stream_) return;
  paused_ = false;
  parser_.resume();
  std::string bytes;
  bytes.swap(held_);
  process(bytes.data(), bytes.size());
  if (closing_ || paused_) return;
  if (eof_) {
    // The client half-closed after its last request, which has been answered.
    return close_after_flush();
  }
  conn_->read_start();
}

void HttpServer::Connection::write_response(HttpResponse&& response) {
  int status = response.status;
  std::shared_ptr<ResponseStream> stream = std::move(response.stream);
  if (stream) {
    response.body.clear();
    close_after_ = true;  // a streamed body is the connection's last
  }
  if (status < 200 || status > 599) {
    // A 1xx as the final answer would leave the client waiting for another response.
    MB_WARN("admin", "handler answered status {}; sending 500 instead", status);
    status = 500;
  }
  bool bodiless = status == 204 || status == 304;
  std::string head;
  head.reserve(256);
  head.append("HTTP/1.1 ");
  head.append(std::to_string(status));
  head.push_back(' ');
  head.append(http::reason_phrase(status));
  head.append("\r\n");
  if (!bodiless) {
    if (!response.content_type.empty() && value_ok(response.content_type)) {
      head.append("Content-Type: ");
      head.append(response.content_type);
      head.append("\r\n");
    }
    if (!stream) {
      head.append("Content-Length: ");
      head.append(std::to_string(response.body.size()));
      head.append("\r\n");
    } else if (version_minor_ >= 1) {
      head.append("Transfer-Encoding: chunked\r\n");
    }
  }
  head.append("Cache-Control: no-store\r\n");
  for (const auto& [name, value] : response.headers) {
    if (!extra_header_ok(name, value)) {
      MB_WARN("admin", "handler header \"{}\" dropped: reserved or malformed", name);
      continue;
    }
    head.append(name);
    head.append(": ");
    head.append(value);
    head.append("\r\n");
  }
  if (close_after_) {
    head.append("Connection: close\r\n");
  } else if (version_minor_ == 0) {
    head.append("Connection: keep-alive\r\n");
  }
  head.append("\r\n");

  iovec parts[2] = {{head.data(), head.size()}, {response.body.data(), response.body.size()}};
  bool with_body = !bodiless && !head_request_ && !response.body.empty();
  conn_->writev(parts, with_body ? 2 : 1);
  if (stream && !bodiless && !head_request_) {
    // The body follows as the handler writes it; reading goes on, discarding, so that the
    // client's close is seen (on_eof ends the stream).
    chunked_ = version_minor_ >= 1;
    stream_ = stream;
    stream->conn_ = this;
    wait_ = Wait::Stream;
    timer_.stop();
    std::string held;
    held.swap(stream->held_);
    stream_write(held);
    if (stream->ended_) stream_end();
    return;
  }
  if (stream) {
    // Nothing to stream (a HEAD, a 204): the stream is closed for the handler, at the next
    // iteration (it may be inside its own respond()).
    server_->loop_.run_soon([stream] { stream->detach(); });
  }
  head_request_ = false;
  if (close_after_) return close_after_flush();
  arm(Wait::Idle, server_->options_.idle_timeout_ms);
}

void HttpServer::Connection::error_reply(int status, std::string body) {
  close_after_ = true;
  write_response(HttpResponse{status, "text/plain", std::move(body), {}});
}

void HttpServer::Connection::close_after_flush() {
  if (closing_) return;
  closing_ = true;
  // Bounded: a client that never reads its response is closed anyway.
  arm(Wait::Flush, server_->options_.idle_timeout_ms);
  // FIN once the response is out (on_flushed follows); reading goes on, discarding, until
  // the client closes too, so its unread bytes never turn our close into a reset.
  conn_->shutdown();
}

void HttpServer::Connection::on_flushed() {
  if (closed_ || wait_ != Wait::Flush) return;
  if (eof_) return close();
  arm(Wait::Linger, kLingerMs);
  conn_->read_start();
}

void HttpServer::Connection::on_eof() {
  eof_ = true;
  if (stream_) return close();  // the client of a streaming response went away
  if (closing_) {
    if (wait_ == Wait::Linger) close();  // the client is done too
    return;
  }
  // Half-close after a whole request is allowed: answer it (and any complete request held
  // behind it), then close.
  if (awaiting_ || paused_) return;
  // Idle, or a request cut short: nothing to answer.
  close();
}

void HttpServer::Connection::on_error(int) {
  close();
}

void HttpServer::Connection::on_timeout() {
  switch (wait_) {
    case Wait::Head:
      parser_.stop();
      return error_reply(408, "request header timeout\n");
    case Wait::Body:
      parser_.stop();
      return error_reply(408, "request body timeout\n");
    case Wait::None:
    case Wait::Handler:
    case Wait::Stream:
      return;
    case Wait::Idle:
    case Wait::Flush:
    case Wait::Linger:
      return close();
  }
}

// ---- streaming responses -------------------------------------------------------------------

ResponseStream::~ResponseStream() {
  // The connection holds a reference while it streams, so it is gone by now.
  MB_ASSERT(conn_ == nullptr);
}

bool ResponseStream::write(std::string_view chunk) {
  if (!open()) return false;
  if (!conn_) {
    if (held_.size() + chunk.size() > kMaxPendingBytes) {
      ++dropped_;
      return true;
    }
    held_.append(chunk);
    return true;
  }
  if (conn_->stream_pending() + chunk.size() > kMaxPendingBytes) {
    ++dropped_;
    return true;
  }
  conn_->stream_write(chunk);
  return true;
}

void ResponseStream::end() {
  if (!open()) return;
  ended_ = true;
  if (conn_) conn_->stream_end();
}

void ResponseStream::detach() {
  conn_ = nullptr;
  if (ended_ || closed_) return;
  closed_ = true;
  if (auto fn = std::move(on_close_)) fn();
}

// ---- the server -----------------------------------------------------------------------------

HttpServer::HttpServer(loop::Loop& loop, Handler handler, HttpServerOptions options)
    : loop_(loop), handler_(std::move(handler)), options_(options) {}

Result<std::unique_ptr<HttpServer>> HttpServer::listen(loop::Loop& loop,
                                                       const loop::Address& address,
                                                       Handler handler, HttpServerOptions options) {
  MB_ASSERT(loop.is_this_thread());
  if (!handler) return make_error(Code::InvalidArgument, "HttpServer::listen: no handler");
  auto fd = loop::bind_exclusive(address);
  if (!fd) return fd.error();
  std::unique_ptr<HttpServer> server(new HttpServer(loop, std::move(handler), options));
  HttpServer* raw = server.get();
  auto listener = loop::TcpListener::open(
      loop, *fd, [raw](loop::TcpConnPtr c) { raw->on_accept(std::move(c)); });
  if (!listener)
    return make_error(listener.error().code(),
                      address.to_string() + ": " + listener.error().message());
  server->listener_ = std::move(*listener);
  server->address_ = server->listener_->address();
  return server;
}

HttpServer::~HttpServer() {
  close();
}

void HttpServer::close() {
  if (listener_) {
    listener_->close();
    listener_.reset();
  }
  connections_.for_each([](Connection* c) { c->close(); });
}

void HttpServer::on_accept(loop::TcpConnPtr conn) {
  connections_.push_back(new Connection(*this, std::move(conn)));
}

void HttpServer::retire(Connection* conn) {
  conn->unlink();
  // Possibly inside one of its own callbacks: it goes once they have returned.
  loop_.defer_delete(std::unique_ptr<loop::Deferred>(conn));
}

HttpResponse json_response(int status, std::string body) {
  HttpResponse r;
  r.status = status;
  r.body = std::move(body);
  r.body.push_back('\n');
  return r;
}

HttpResponse error_response(int status, std::string_view message) {
  json::Writer w;
  w.begin_object().field("error", message).end_object();
  return json_response(status, w.take());
}

}  // namespace meshbox::control
