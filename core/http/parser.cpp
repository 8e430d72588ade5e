#include "core/http/parser.h"

#include <cstring>

namespace meshbox::http {

namespace {
constexpr size_t kPerHeaderOverhead = 4;  // ": " and CRLF, counted against the head limit

Parser* self_of(llhttp_t* p) { return static_cast<Parser*>(p->data); }

// Field values may hold VCHAR, obs-text, SP and HTAB (RFC 9110 §5.5); any other control
// character (NUL, CR, LF, DEL…) makes the message invalid.
bool has_ctl(const char* p, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    auto c = static_cast<unsigned char>(p[i]);
    if ((c < 0x20 && c != '\t') || c == 0x7f) return true;
  }
  return false;
}
}  // namespace

int error_status(ParseError e) {
  switch (e) {
    case ParseError::HeadTooLarge:
      return 431;
    case ParseError::BodyTooLarge:
      return 413;
    case ParseError::VersionNotSupported:
      return 505;
    default:
      return 400;
  }
}

Parser::Parser(Kind kind, ParserCallbacks& cb, ParserLimits limits)
    : kind_(kind), cb_(cb), limits_(limits), headers_(&req_.headers) {
  llhttp_settings_init(&settings_);
  settings_.on_message_begin = &on_message_begin;
  settings_.on_url = &on_url;
  settings_.on_status = &on_status;
  settings_.on_method = &on_method;
  settings_.on_header_field = &on_header_field;
  settings_.on_header_value = &on_header_value;
  settings_.on_header_value_complete = &on_header_value_complete;
  settings_.on_headers_complete = &on_headers_complete;
  settings_.on_body = &on_body_cb;
  settings_.on_message_complete = &on_message_complete_cb;
  llhttp_init(&parser_, kind == Kind::Request ? HTTP_REQUEST : HTTP_RESPONSE, &settings_);
  parser_.data = this;
}

Parser::FeedResult Parser::feed(const char* data, size_t len) {
  if (error_ != ParseError::None) return {State::Error, 0};
  chunk_begin_ = data;
  llhttp_errno_t err = llhttp_execute(&parser_, data, len);
  size_t consumed = len;
  if (err != HPE_OK) {
    const char* pos = llhttp_get_error_pos(&parser_);
    consumed = pos && pos >= data && pos <= data + len ? static_cast<size_t>(pos - data) : 0;
  }
  if (consumed > 0) last_byte_ = data[consumed - 1];
  chunk_begin_ = nullptr;
  if (stopped_) return {State::Stopped, consumed};
  switch (err) {
    case HPE_OK:
      return {State::Ok, len};
    case HPE_PAUSED:
      return {State::Paused, consumed};
    case HPE_PAUSED_UPGRADE:
      return {State::Upgrade, consumed};
    default:
      if (error_ == ParseError::None) {
        error_ = ParseError::BadMessage;
        reason_ = llhttp_get_error_reason(&parser_);
        if (!reason_) reason_ = llhttp_errno_name(err);
      }
      return {State::Error, consumed};
  }
}

bool Parser::finish() {
  if (error_ != ParseError::None) return false;
  if (!in_message_) return true;
  llhttp_errno_t err = llhttp_finish(&parser_);
  if (err != HPE_OK && err != HPE_PAUSED) {
    error_ = ParseError::BadMessage;
    reason_ = "connection closed before the message was complete";
    return false;
  }
  return !in_message_;
}

void Parser::resume() { llhttp_resume(&parser_); }

void Parser::expect_response_to(std::string_view method) {
  head_request_ = method == "HEAD";
  connect_request_ = method == "CONNECT";
}

int Parser::fail(ParseError e, const char* reason) {
  error_ = e;
  reason_ = reason;
  return HPE_USER;
}

bool Parser::count_head(size_t n) {
  head_bytes_ += n;
  return head_bytes_ <= limits_.max_head_bytes;
}

char Parser::byte_before(const char* p) const {
  return (chunk_begin_ && p > chunk_begin_) ? p[-1] : last_byte_;
}

int Parser::on_message_begin(llhttp_t* p) {
  Parser* self = self_of(p);
  self->in_message_ = true;
  self->head_done_ = false;
  self->head_bytes_ = 0;
  self->body_bytes_ = 0;
  self->in_value_ = false;
  self->value_done_ = true;
  if (self->kind_ == Kind::Request) {
    self->req_ = RequestHead{};
    self->headers_ = &self->req_.headers;
  } else {
    self->resp_ = ResponseHead{};
    self->headers_ = &self->resp_.headers;
  }
  return 0;
}

int Parser::on_url(llhttp_t* p, const char* at, size_t n) {
  Parser* self = self_of(p);
  if (!self->count_head(n)) return self->fail(ParseError::HeadTooLarge, "request line too long");
  self->req_.target.append(at, n);
  return 0;
}

int Parser::on_method(llhttp_t* p, const char* at, size_t n) {
  Parser* self = self_of(p);
  if (!self->count_head(n)) return self->fail(ParseError::HeadTooLarge, "request line too long");
  self->req_.method.append(at, n);
  return 0;
}

int Parser::on_status(llhttp_t* p, const char* at, size_t n) {
  Parser* self = self_of(p);
  if (!self->count_head(n)) return self->fail(ParseError::HeadTooLarge, "status line too long");
  self->resp_.reason.append(at, n);
  return 0;
}

int Parser::on_header_field(llhttp_t* p, const char* at, size_t n) {
  Parser* self = self_of(p);
  if (!self->count_head(n + (self->value_done_ ? kPerHeaderOverhead : 0)))
    return self->fail(ParseError::HeadTooLarge, "header block too large");
  if (std::memchr(at, ' ', n) || std::memchr(at, '\t', n))
    return self->fail(ParseError::BadMessage, "whitespace in a header name");
  if (self->head_done_) return 0;  // trailer fields are checked and dropped
  auto& entries = self->headers_->entries();
  if (self->value_done_) {
    if (entries.size() >= self->limits_.max_headers)
      return self->fail(ParseError::HeadTooLarge, "too many headers");
    entries.emplace_back();
    self->value_done_ = false;
  }
  self->in_value_ = false;
  entries.back().name.append(at, n);
  return 0;
}

int Parser::on_header_value(llhttp_t* p, const char* at, size_t n) {
  Parser* self = self_of(p);
  if (!self->count_head(n)) return self->fail(ParseError::HeadTooLarge, "header block too large");
  // A value never starts right after a line break: if this one does, the line began with
  // whitespace, which is obs-fold (RFC 9112 §5.2: reject).
  if (n > 0 && self->byte_before(at) == '\n')
    return self->fail(ParseError::BadMessage, "obsolete line folding in a header");
  if (has_ctl(at, n)) return self->fail(ParseError::BadMessage, "control character in a header");
  if (self->head_done_) return 0;
  self->in_value_ = true;
  self->headers_->entries().back().value.append(at, n);
  return 0;
}

int Parser::on_header_value_complete(llhttp_t* p) {
  Parser* self = self_of(p);
  self->value_done_ = true;
  if (self->head_done_ || self->headers_->entries().empty()) return 0;
  std::string& v = self->headers_->entries().back().value;
  while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.pop_back();
  return 0;
}

int Parser::on_headers_complete(llhttp_t* p) {
  Parser* self = self_of(p);
  int rc = self->finish_head();
  if (self->stopped_ && rc == 0) return HPE_PAUSED;
  return rc;
}

int Parser::finish_head() {
  head_done_ = true;
  uint64_t cl = parser_.content_length;
  bool chunked = parser_.flags & F_CHUNKED;
  bool has_cl = parser_.flags & F_CONTENT_LENGTH;
  if (parser_.http_major != 1 || parser_.http_minor > 1) {
    if (parser_.http_major == 0) return fail(ParseError::BadMessage, "HTTP/0.9 is not supported");
    return fail(ParseError::VersionNotSupported, "HTTP version not supported");
  }
  if (kind_ == Kind::Request) {
    RequestHead& r = req_;
    r.version_minor = parser_.http_minor;
    size_t hosts = r.headers.count("host");
    if (hosts > 1) return fail(ParseError::BadMessage, "more than one Host header");
    if (hosts == 0 && r.version_minor == 1)
      return fail(ParseError::BadMessage, "HTTP/1.1 request without a Host header");
    r.framing = chunked ? Framing::Chunked : has_cl ? Framing::ContentLength : Framing::None;
    r.content_length = has_cl ? cl : 0;
    if (limits_.max_body_bytes && has_cl && cl > limits_.max_body_bytes)
      return fail(ParseError::BodyTooLarge, "request body too large");
    r.keep_alive = llhttp_should_keep_alive(&parser_);
    r.upgrade = parser_.upgrade;
    cb_.on_request_head(std::move(req_));
    return 0;
  }
  ResponseHead& r = resp_;
  r.status = parser_.status_code;
  r.version_minor = parser_.http_minor;
  bool no_body = head_request_ || r.status < 200 || r.status == 204 || r.status == 304;
  bool tunnel = connect_request_ && r.status >= 200 && r.status < 300;
  if (no_body || tunnel) {
    r.framing = Framing::None;
  } else {
    r.framing = chunked  ? Framing::Chunked
                : has_cl ? Framing::ContentLength
                         : Framing::UntilClose;
  }
  r.content_length = has_cl ? cl : 0;
  r.keep_alive = llhttp_should_keep_alive(&parser_) && r.framing != Framing::UntilClose;
  if (r.status >= 200) head_request_ = connect_request_ = false;
  cb_.on_response_head(std::move(resp_));
  if (tunnel) return 2;  // llhttp: no body, and the connection is upgraded
  return no_body ? 1 : 0;
}

int Parser::on_body_cb(llhttp_t* p, const char* at, size_t n) {
  Parser* self = self_of(p);
  self->body_bytes_ += n;
  if (self->limits_.max_body_bytes && self->body_bytes_ > self->limits_.max_body_bytes)
    return self->fail(ParseError::BodyTooLarge, "request body too large");
  self->cb_.on_body(at, n);
  return self->stopped_ ? HPE_PAUSED : 0;
}

int Parser::on_message_complete_cb(llhttp_t* p) {
  Parser* self = self_of(p);
  self->in_message_ = false;
  self->cb_.on_message_complete();
  // An upgrade pauses by itself (HPE_PAUSED_UPGRADE) right after this callback.
  if (p->upgrade) return 0;
  return HPE_PAUSED;
}

}  // namespace meshbox::http
