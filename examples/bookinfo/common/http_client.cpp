#include "examples/bookinfo/common/http_client.h"

#include <arpa/inet.h>
#include <fmt/core.h>

#include <cstring>

#include "core/base/log.h"
#include "core/http/message.h"
#include "core/http/parser.h"
#include "core/http/serializer.h"
#include "core/loop/tcp_conn.h"
#include "core/loop/timer.h"

namespace meshbox::bookinfo {

namespace {

// The address to connect to for `host` without a proxy: an IP literal or localhost only.
Result<loop::Address> direct_address(const Upstream& up) {
  std::string host = up.host == "localhost" ? "127.0.0.1" : up.host;
  in6_addr scratch;
  bool numeric = inet_pton(AF_INET, host.c_str(), &scratch) == 1 ||
                 inet_pton(AF_INET6, host.c_str(), &scratch) == 1;
  if (!numeric)
    return make_error(Code::Unavailable,
                      fmt::format("'{}' is not an IP address or localhost and no HTTP proxy "
                                  "(http_proxy) applies to it: names are resolved only by a proxy",
                                  up.host));
  // A numeric host: Address::parse does not reach getaddrinfo.
  std::string text = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  return loop::Address::parse(fmt::format("{}:{}", text, up.port));
}

}  // namespace

// One call: a connection, a parser and a deadline. Owned by HttpClient::calls_.
class HttpClient::Call : public loop::Deferred,
                         public loop::TcpConnCallbacks,
                         public http::ParserCallbacks,
                         NonCopyable {
 public:
  Call(HttpClient& client, uint64_t id, ClientRequest req, Callback cb)
      : client_(client),
        id_(id),
        req_(std::move(req)),
        cb_(std::move(cb)),
        parser_(http::Parser::Kind::Response, *this,
                http::ParserLimits{.max_body_bytes = kMaxBodyBytes}),
        timer_(client.loop(), [this] { on_timeout(); }) {}

  void start() {
    via_proxy_ = client_.proxy().applies_to(req_.upstream.host);
    loop::Address to;
    if (via_proxy_) {
      to = client_.proxy().address();
    } else {
      auto direct = direct_address(req_.upstream);
      if (!direct) {
        fail_soon(direct.error());
        return;
      }
      to = *direct;
    }
    std::string authority = req_.upstream.authority();
    http::RequestHead head;
    head.method = req_.method;
    head.target = via_proxy_ ? "http://" + authority + req_.path : req_.path;
    head.headers.add("host", authority);
    for (const auto& h : req_.headers)
      head.headers.add(h.name, h.value);
    if (!req_.body.empty() || req_.method == "POST" || req_.method == "PUT")
      head.headers.add("content-length", std::to_string(req_.body.size()));
    head.headers.add("connection", "close");
    std::string bytes;
    http::append_request_head(head, bytes);
    bytes.append(req_.body);
    parser_.expect_response_to(req_.method);

    MB_TRACE("client", "{} {} via {}", head.method, head.target,
             via_proxy_ ? client_.proxy().url() : to.to_string());
    timer_.start(req_.timeout_ms);
    tcp_ = loop::TcpConn::create(client_.loop());
    tcp_->set_callbacks(this);
    Status s = tcp_->connect(to);
    if (!s.is_ok()) {
      fail_soon(s);
      return;
    }
    tcp_->write(bytes);  // queued until the connection is up
  }

  /// Drops the call without calling back.
  void cancel() {
    done_ = true;
    timer_.stop();
    tcp_.reset();
  }

  // loop::TcpConnCallbacks
  void on_connected() override { tcp_->read_start(); }
  void on_data(const char* data, size_t len) override {
    while (len > 0 && !done_) {
      http::Parser::FeedResult r = parser_.feed(data, len);
      data += r.consumed;
      len -= r.consumed;
      if (done_) return;
      switch (r.state) {
        case http::Parser::State::Ok:
          return;
        case http::Parser::State::Paused:
          if (complete_) {
            finish(std::move(response_));
            return;
          }
          parser_.resume();  // a 1xx: the real response follows
          break;
        case http::Parser::State::Upgrade:
        case http::Parser::State::Stopped:
          fail("unexpected protocol switch");
          return;
        case http::Parser::State::Error:
          fail(std::string("bad response: ") + parser_.error_reason());
          return;
      }
    }
  }
  void on_eof() override {
    if (done_) return;
    parser_.finish();  // ends a body delimited by the close
    if (complete_) {
      finish(std::move(response_));
      return;
    }
    fail(got_head_ || parser_.in_message() ? "connection closed before the response was complete"
                                           : "connection closed without a response");
  }
  void on_error(int uv_error) override {
    if (done_) return;
    fail(loop::uv_error(uv_error));
  }

  // http::ParserCallbacks
  void on_response_head(http::ResponseHead& head) override {
    if (head.status < 200) return;  // 100 Continue and the like: skipped
    got_head_ = true;
    response_.status = head.status;
    response_.headers = std::move(head.headers);
  }
  void on_body(const char* data, size_t len) override { response_.body.append(data, len); }
  void on_message_complete() override {
    if (got_head_) complete_ = true;
  }

 private:
  // An error found inside send() is reported from the call's own timer, so the callback never
  // runs inside send() and a cancelled call cannot fire.
  void fail_soon(Status error) {
    early_error_ = std::move(error);
    timer_.start(0);
  }

  void on_timeout() {
    if (done_) return;
    if (!early_error_.is_ok()) {
      fail(early_error_.message());
      return;
    }
    fail(fmt::format("timed out after {} ms", req_.timeout_ms));
  }

  void fail(const std::string& why) {
    finish(make_error(Code::Unavailable,
                      fmt::format("{} {}{}{}: {}", req_.method, req_.upstream.authority(),
                                  req_.path, via_proxy_ ? " (through the proxy)" : "", why)));
  }

  void finish(Result<ClientResponse> result) {
    if (done_) return;
    done_ = true;
    timer_.stop();
    tcp_.reset();
    Callback cb = std::move(cb_);
    uint64_t id = id_;
    HttpClient& client = client_;
    client.release(id);  // `this` lives until the loop's deferred deletion
    cb(std::move(result));
  }

  HttpClient& client_;
  const uint64_t id_;
  ClientRequest req_;
  Callback cb_;
  http::Parser parser_;
  loop::Timer timer_;
  loop::TcpConnPtr tcp_;
  ClientResponse response_;
  Status early_error_;
  bool via_proxy_ = false;
  bool got_head_ = false;
  bool complete_ = false;
  bool done_ = false;
};

HttpClient::HttpClient(loop::Loop& loop, ProxyConfig proxy)
    : loop_(loop), proxy_(std::move(proxy)) {}

HttpClient::~HttpClient() {
  cancel_all();
}

void HttpClient::send(ClientRequest request, Callback cb) {
  uint64_t id = ++next_id_;
  auto call = std::make_unique<Call>(*this, id, std::move(request), std::move(cb));
  Call* raw = call.get();
  calls_.emplace(id, std::move(call));
  raw->start();
}

void HttpClient::release(uint64_t id) {
  auto it = calls_.find(id);
  if (it == calls_.end()) return;
  std::unique_ptr<Call> call = std::move(it->second);
  calls_.erase(it);
  loop_.defer_delete(std::move(call));
}

void HttpClient::cancel_all() {
  auto calls = std::move(calls_);
  calls_.clear();
  for (auto& [id, call] : calls)
    call->cancel();
  // Destroyed here: their timers and sockets close now, and the loop releases the handles.
}

}  // namespace meshbox::bookinfo
