#include "examples/bookinfo/common/http_server.h"

#include <fmt/core.h>

#include "core/base/log.h"
#include "core/http/message.h"
#include "core/http/parser.h"
#include "core/http/serializer.h"
#include "core/loop/tcp_conn.h"
#include "core/loop/timer.h"
#include "examples/bookinfo/common/text.h"

namespace meshbox::bookinfo {

namespace {

constexpr uint64_t kMaxRequestBody = 64 * 1024;
constexpr size_t kMaxHeldInput = 256 * 1024;  // pipelined input held while a request waits
constexpr uint64_t kLingerMs = 2'000;         // after FIN: wait this long for the peer's
constexpr uint64_t kFlushTimeoutMs = 30'000;  // give up on a peer that never reads

}  // namespace

Response Response::json(int status, std::string body) {
  Response r;
  r.status = status;
  r.content_type = "application/json";
  r.body = std::move(body);
  return r;
}

Response Response::html(int status, std::string body) {
  Response r;
  r.status = status;
  r.content_type = "text/html; charset=utf-8";
  r.body = std::move(body);
  return r;
}

Response Response::text(int status, std::string body) {
  Response r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

// One accepted connection: requests are parsed from in_, one at a time; while the handler
// works on one (Waiting), later bytes wait in in_.
class ServerConnection : public loop::Deferred,
                         public loop::TcpConnCallbacks,
                         public http::ParserCallbacks,
                         NonCopyable {
 public:
  ServerConnection(HttpServer& server, loop::TcpConnPtr tcp, uint64_t id)
      : server_(server),
        tcp_(std::move(tcp)),
        id_(id),
        target_(std::make_shared<Reply::Target>(Reply::Target{this})),
        parser_(http::Parser::Kind::Request, *this,
                http::ParserLimits{.max_body_bytes = kMaxRequestBody}),
        timer_(server.loop(), [this] { close(); }) {}

  ~ServerConnection() override { target_->conn = nullptr; }

  void start() {
    tcp_->set_callbacks(this);
    tcp_->read_start();
  }

  /// Closes the socket now; the server destroys this object after the current callback.
  void close() {
    if (closed_) return;
    closed_ = true;
    target_->conn = nullptr;
    if (processing_) parser_.stop();
    timer_.stop();
    tcp_.reset();
    server_.release(id_);
  }

  void respond(uint64_t serial, Response&& r) {
    if (closed_ || state_ != State::Waiting || serial != serial_) return;
    bool no_body = r.status == 204 || r.status == 304;
    http::ResponseHead head;
    head.status = r.status;
    if (!no_body && !r.content_type.empty()) head.headers.add("content-type", r.content_type);
    for (const auto& h : r.headers)
      head.headers.add(h.name, h.value);
    if (!no_body) head.headers.add("content-length", std::to_string(r.body.size()));
    if (!keep_alive_ || peer_eof_) head.headers.add("connection", "close");
    std::string out;
    out.reserve(256 + r.body.size());
    http::append_response_head(head, out);
    if (!head_only_ && !no_body) out.append(r.body);
    tcp_->write(out);
    MB_DEBUG("server", "{} {} -> {}", req_.method, req_.target, r.status);
    if (!keep_alive_ || peer_eof_) {
      start_close();
      return;
    }
    state_ = State::Reading;
    process();
  }

  // loop::TcpConnCallbacks
  void on_data(const char* data, size_t len) override {
    if (closed_ || state_ == State::Closing || state_ == State::Lingering) return;
    in_.append(data, len);
    process();
  }
  void on_eof() override {
    peer_eof_ = true;
    switch (state_) {
      case State::Reading:
        close();  // nothing to answer (a request cut short is dropped)
        return;
      case State::Waiting:
        return;  // answer, then close
      case State::Closing:
        return;  // on_flushed closes
      case State::Lingering:
        close();
        return;
    }
  }
  void on_error(int) override { close(); }
  void on_flushed() override {
    if (closed_) return;
    if (peer_eof_) {
      close();
      return;
    }
    // FIN sent: read and drop what the peer still sends until it closes, so a late request
    // does not turn into a reset that destroys the response in its receive buffer.
    state_ = State::Lingering;
    timer_.start(kLingerMs);
    tcp_->read_start();
  }

  // http::ParserCallbacks
  void on_request_head(http::RequestHead& head) override {
    req_.method = std::move(head.method);
    req_.target = std::move(head.target);
    std::string_view path, query;
    split_target(req_.target, &path, &query);
    req_.path = std::string(path);
    req_.query = std::string(query);
    req_.headers = std::move(head.headers);
    req_.body.clear();
    keep_alive_ = head.keep_alive;
    head_only_ = req_.method == "HEAD";
    bool has_body = head.framing == http::Framing::Chunked ||
                    (head.framing == http::Framing::ContentLength && head.content_length > 0);
    const std::string* expect = req_.headers.get("expect");
    if (has_body && head.version_minor == 1 && expect && http::iequals(*expect, "100-continue"))
      tcp_->write("HTTP/1.1 100 Continue\r\n\r\n");
  }
  void on_body(const char* data, size_t len) override { req_.body.append(data, len); }
  void on_message_complete() override { state_ = State::Waiting; }

 private:
  enum class State {
    Reading,    // parsing the next request
    Waiting,    // a request is complete; its handler has not answered yet
    Closing,    // the last response is queued: flush it, then FIN
    Lingering,  // FIN sent: drop input until the peer closes or the timer fires
  };

  // Parses what in_ holds while no request waits for its answer. Re-entered from respond()
  // when a handler answers at once: the flag turns that into another turn of this loop.
  void process() {
    if (processing_ || closed_) return;
    processing_ = true;
    while (!closed_ && state_ == State::Reading && in_off_ < in_.size()) {
      http::Parser::FeedResult r = parser_.feed(in_.data() + in_off_, in_.size() - in_off_);
      in_off_ += r.consumed;
      if (closed_) break;
      if (r.state == http::Parser::State::Paused) {
        parser_.resume();
        dispatch();
      } else if (r.state == http::Parser::State::Upgrade) {
        // No protocol switch is offered: answer the request, then close (the parser stays in
        // its upgraded state, so nothing after it can be parsed).
        keep_alive_ = false;
        in_off_ = in_.size();
        dispatch();
      } else if (r.state == http::Parser::State::Error) {
        send_error(http::error_status(parser_.error()), parser_.error_reason());
        break;
      } else if (r.state == http::Parser::State::Stopped) {
        break;
      }
    }
    if (in_off_ >= in_.size()) {
      in_.clear();
      in_off_ = 0;
    }
    processing_ = false;
    if (closed_) return;
    if (state_ == State::Reading && peer_eof_) {
      close();
      return;
    }
    // Keep reading while waiting for a handler, to notice a client that goes away, unless
    // it has already sent a lot ahead.
    if (state_ == State::Reading || in_.size() - in_off_ < kMaxHeldInput)
      tcp_->read_start();
    else
      tcp_->read_stop();
  }

  void dispatch() {
    ++serial_;
    MB_TRACE("server", "connection {}: {} {}", id_, req_.method, req_.target);
    Reply reply(target_, serial_);
    server_.handler()(req_, reply);
  }

  void send_error(int status, std::string_view why) {
    MB_DEBUG("server", "connection {}: bad request: {}", id_, why);
    keep_alive_ = false;
    head_only_ = false;
    state_ = State::Waiting;
    respond(serial_, Response::text(status, fmt::format("bad request: {}\n", why)));
  }

  void start_close() {
    if (closed_) return;
    state_ = State::Closing;
    if (processing_) parser_.stop();
    tcp_->read_stop();
    timer_.start(kFlushTimeoutMs);
    tcp_->shutdown();  // on_flushed follows, maybe at once
  }

  HttpServer& server_;
  loop::TcpConnPtr tcp_;
  const uint64_t id_;
  std::shared_ptr<Reply::Target> target_;
  http::Parser parser_;
  loop::Timer timer_;  // flush and linger deadlines
  State state_ = State::Reading;
  std::string in_;
  size_t in_off_ = 0;
  Request req_;
  uint64_t serial_ = 0;
  bool keep_alive_ = true;
  bool head_only_ = false;
  bool peer_eof_ = false;
  bool processing_ = false;
  bool closed_ = false;
};

void Reply::send(Response response) const {
  if (target_->conn) target_->conn->respond(serial_, std::move(response));
}

HttpServer::HttpServer(loop::Loop& loop, Handler handler)
    : loop_(loop), handler_(std::move(handler)) {}

HttpServer::~HttpServer() {
  shutdown();
}

Result<loop::Address> HttpServer::listen(const loop::Address& addr) {
  auto fd = loop::bind_exclusive(addr);
  if (!fd) return fd.error();
  auto listener =
      loop::TcpListener::open(loop_, *fd, [this](loop::TcpConnPtr c) { on_accept(std::move(c)); });
  if (!listener) return listener.error();
  listener_ = std::move(*listener);
  return listener_->address();
}

void HttpServer::on_accept(loop::TcpConnPtr tcp) {
  if (shut_down_) return;
  uint64_t id = ++next_id_;
  auto conn = std::make_unique<ServerConnection>(*this, std::move(tcp), id);
  ServerConnection* raw = conn.get();
  conns_.emplace(id, std::move(conn));
  raw->start();
}

void HttpServer::release(uint64_t id) {
  auto it = conns_.find(id);
  if (it == conns_.end()) return;
  std::unique_ptr<ServerConnection> conn = std::move(it->second);
  conns_.erase(it);
  loop_.defer_delete(std::move(conn));
}

void HttpServer::shutdown() {
  shut_down_ = true;
  if (listener_) listener_->close();
  listener_.reset();
  while (!conns_.empty())
    conns_.begin()->second->close();
}

}  // namespace meshbox::bookinfo
