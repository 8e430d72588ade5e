#include "core/trace/reporter.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>

#include "core/base/log.h"

namespace meshbox::trace {

std::string CollectorUrl::authority() const {
  std::string h = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  if (port != 80) h += fmt::format(":{}", port);
  return h;
}

Result<CollectorUrl> parse_collector_url(std::string_view url) {
  constexpr std::string_view kScheme = "http://";
  auto bad = [url](std::string_view why) {
    return make_error(Code::InvalidArgument, fmt::format("collector URL '{}': {}", url, why));
  };
  if (url.size() < kScheme.size() || !http::iequals(url.substr(0, kScheme.size()), kScheme))
    return bad("expected http://host:port/path");
  std::string_view rest = url.substr(kScheme.size());
  size_t slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  CollectorUrl u;
  if (slash != std::string_view::npos && rest.substr(slash) != "/")
    u.path = std::string(rest.substr(slash));
  std::string_view port;
  if (authority.starts_with('[')) {
    size_t close = authority.find(']');
    if (close == std::string_view::npos) return bad("unbalanced [ in the host");
    u.host = std::string(authority.substr(1, close - 1));
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after[0] != ':') return bad("expected :port after ]");
      port = after.substr(1);
      if (port.empty()) return bad("empty port");
    }
  } else {
    size_t colon = authority.rfind(':');
    u.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) {
      port = authority.substr(colon + 1);
      if (port.empty()) return bad("empty port");
    }
  }
  if (u.host.empty()) return bad("no host");
  if (!port.empty()) {
    unsigned n = 0;
    auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), n);
    if (ec != std::errc() || end != port.data() + port.size() || n == 0 || n > 65535)
      return bad("the port must be 1-65535");
    u.port = static_cast<uint16_t>(n);
  }
  return u;
}

namespace {

ReporterOptions normalized(ReporterOptions o) {
  if (o.host.empty()) o.host = o.collector.to_string();
  o.batch_spans = std::max<size_t>(o.batch_spans, 1);
  return o;
}

}  // namespace

Reporter::Reporter(loop::Loop& loop, ReporterOptions options, ReporterStats* stats)
    : loop_(loop),
      options_(normalized(std::move(options))),
      stats_(stats ? *stats : own_stats_),
      flush_timer_(loop, [this] { flush(); }),
      timeout_timer_(loop,
                     [this] {
                       MB_DEBUG("trace", "zipkin: request to {} timed out",
                                options_.collector.to_string());
                       finish(false);
                     }),
      backoff_timer_(loop, [this] { arm(); }),
      backoff_ms_(options_.min_backoff_ms) {}

void Reporter::reconfigure(ReporterOptions options) {
  bool moved = !(options.collector == options_.collector);
  options_ = normalized(std::move(options));
  backoff_ms_ = options_.min_backoff_ms;
  if (moved && in_flight_) {
    redial_ = true;
  } else if (moved) {
    drop_connection();
  }
}

Reporter::~Reporter() {
  conn_.reset();  // no callback after this
}

void Reporter::report(const Span& span) {
  if (buffered_ >= options_.max_buffered_spans || buffer_.size() >= options_.max_buffered_bytes) {
    stats_.spans_dropped.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  if (buffered_ > 0) buffer_.push_back(',');
  append_zipkin(buffer_, span);
  ++buffered_;
  arm();
}

void Reporter::flush() {
  flush_timer_.stop();
  if (buffered_ == 0 || in_flight_ || backoff_timer_.active()) return;
  send_batch();
}

// Decides what the buffer waits for: a full batch goes at the next loop iteration (when
// nothing is in flight and no backoff runs), never inside report(), which runs on the request
// path; otherwise the flush timer runs from the first span of a batch.
void Reporter::arm() {
  if (buffered_ == 0 || in_flight_ || backoff_timer_.active()) return;
  if (buffered_ >= options_.batch_spans) return flush_timer_.start(0);
  if (!flush_timer_.active()) flush_timer_.start(options_.flush_interval_ms);
}

void Reporter::send_batch() {
  body_.clear();
  body_.reserve(buffer_.size() + 2);
  body_.push_back('[');
  body_ += buffer_;
  body_.push_back(']');
  batch_size_ = buffered_;
  buffer_.clear();
  buffered_ = 0;
  in_flight_ = true;
  resent_ = false;
  timeout_timer_.start(options_.timeout_ms);
  head_.clear();
  fmt::format_to(std::back_inserter(head_),
                 "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n"
                 "Content-Length: {}\r\nUser-Agent: meshbox\r\n\r\n",
                 options_.path, options_.host, body_.size());
  send_request();
}

void Reporter::send_request() {
  status_ = 0;
  complete_ = false;
  response_bytes_ = false;
  keep_alive_ = true;
  if (conn_ && connected_) {
    reused_ = true;
    return write_request();
  }
  reused_ = false;
  drop_connection();
  conn_ = loop::TcpConn::create(loop_);
  conn_->set_callbacks(this);
  Status s = conn_->connect(options_.collector);
  if (!s.is_ok()) {
    MB_DEBUG("trace", "zipkin: connect to {}: {}", options_.collector.to_string(), s.message());
    // Not from inside report(): the timeout fires at once and fails the batch there, like
    // the asynchronous failures.
    timeout_timer_.start(0);
  }
}

void Reporter::on_connected() {
  connected_ = true;
  conn_->set_nodelay(true);
  parser_ = std::make_unique<http::Parser>(http::Parser::Kind::Response,
                                           static_cast<http::ParserCallbacks&>(*this));
  conn_->read_start();
  if (in_flight_) write_request();
}

void Reporter::write_request() {
  iovec parts[2] = {{head_.data(), head_.size()}, {body_.data(), body_.size()}};
  conn_->writev(parts, 2);
}

void Reporter::on_response_head(http::ResponseHead& head) {
  if (head.status < 200) return;  // interim; the final response follows
  status_ = head.status;
  keep_alive_ = head.keep_alive;
}

void Reporter::on_message_complete() {
  if (status_ == 0) return;  // the end of an interim response
  complete_ = true;          // the parser pauses here: feed() returns Paused
}

void Reporter::on_data(const char* data, size_t len) {
  if (!in_flight_ || !parser_) {
    drop_connection();  // nothing was asked: a confused peer
    return;
  }
  response_bytes_ = true;
  size_t off = 0;
  while (off < len) {
    auto r = parser_->feed(data + off, len - off);
    off += r.consumed;
    if (complete_) break;
    if (r.state == http::Parser::State::Paused) {  // an interim response ended
      parser_->resume();
      continue;
    }
    if (r.state != http::Parser::State::Ok) {
      MB_DEBUG("trace", "zipkin: bad response from {}: {}", options_.collector.to_string(),
               parser_->error_reason());
      keep_alive_ = false;
      return finish(false);
    }
    break;
  }
  if (!complete_) return;
  // Anything after the response, or a response that closes, ends the connection.
  if (off < len) keep_alive_ = false;
  finish(status_ >= 200 && status_ < 300);
}

void Reporter::on_eof() {
  if (in_flight_ && parser_ && parser_->finish() && complete_)
    return finish(status_ >= 200 && status_ < 300);  // a body read until close
  connection_failed();
}

void Reporter::on_error(int uv_error) {
  MB_DEBUG("trace", "zipkin: {}: {}", options_.collector.to_string(), loop::uv_error(uv_error));
  connection_failed();
}

void Reporter::connection_failed() {
  if (!in_flight_) return drop_connection();  // an idle keep-alive connection closed
  if (reused_ && !response_bytes_ && !resent_) {
    resent_ = true;
    connected_ = false;
    return send_request();  // the collector closed it while idle: once more on a new one
  }
  keep_alive_ = false;
  finish(false);
}

void Reporter::finish(bool ok) {
  if (!in_flight_) return;
  in_flight_ = false;
  timeout_timer_.stop();
  if (ok) {
    stats_.spans_reported.fetch_add(batch_size_, std::memory_order_relaxed);
    stats_.batches_sent.fetch_add(1, std::memory_order_relaxed);
    backoff_ms_ = options_.min_backoff_ms;
    if (parser_) parser_->resume();
  } else {
    MB_LOG_EVERY(1, Warn, "trace", "zipkin: a batch of {} spans to {} failed ({})", batch_size_,
                 options_.collector.to_string(),
                 status_ != 0 ? fmt::format("HTTP {}", status_) : std::string("no response"));
    stats_.spans_failed.fetch_add(batch_size_, std::memory_order_relaxed);
    stats_.batches_failed.fetch_add(1, std::memory_order_relaxed);
    keep_alive_ = keep_alive_ && complete_;
    backoff_timer_.start(backoff_ms_);
    backoff_ms_ = std::min(backoff_ms_ * 2, std::max(options_.max_backoff_ms, uint64_t{1}));
  }
  if (!keep_alive_ || redial_) drop_connection();
  redial_ = false;
  batch_size_ = 0;
  body_.clear();
  arm();
}

void Reporter::drop_connection() {
  conn_.reset();
  // The parser may be inside feed() (on_data → finish): it goes on the next iteration.
  if (parser_) {
    struct Holder : loop::Deferred {
      std::unique_ptr<http::Parser> parser;
    };
    auto h = std::make_unique<Holder>();
    h->parser = std::move(parser_);
    loop_.defer_delete(std::move(h));
  }
  connected_ = false;
}

}  // namespace meshbox::trace
