#include "core/http/parser.h"

#include <cstring>

namespace meshbox::http {

namespace {
Parser* self_of(llhttp_t* p) {
  return static_cast<Parser*>(p->data);
}

// Field values may hold VCHAR, obs-text, SP and HTAB (RFC 9110 §5.5); any other control
// character (NUL, CR, LF, DEL…) makes the message invalid.
bool has_ctl_slow(const char* p, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    auto c = static_cast<unsigned char>(p[i]);
    if ((c < 0x20 && c != '\t') || c == 0x7f) return true;
  }
  return false;
}

// Eight bytes at a time (SWAR): a word with no byte below 0x20 and no 0x7f is clean. Any hit
// (a tab included) is settled byte by byte. Every header value of every message passes here.
bool has_ctl(const char* p, size_t n) {
  constexpr uint64_t kOnes = 0x0101010101010101ULL, kHigh = 0x8080808080808080ULL;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t x;
    std::memcpy(&x, p + i, 8);
    uint64_t below_space = (x - kOnes * 0x20) & ~x & kHigh;
    uint64_t del = x ^ (kOnes * 0x7f);
    uint64_t is_del = (del - kOnes) & ~del & kHigh;
    if ((below_space | is_del) && has_ctl_slow(p + i, 8)) return true;
  }
  return has_ctl_slow(p + i, n - i);
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
  if (stopped_) return {State::Stopped, 0};
  // Still paused by the previous call: nothing is parsed before resume(). (llhttp would
  // report its old error position, which points into the previous buffer.)
  switch (llhttp_get_errno(&parser_)) {
    case HPE_PAUSED:
      return {State::Paused, 0};
    case HPE_PAUSED_UPGRADE:
      return {State::Upgrade, 0};
    default:
      break;
  }
  const char* const end = data + len;
  const char* p = data;
  scan_pos_ = data;
  for (;;) {
    llhttp_errno_t err = llhttp_execute(&parser_, p, static_cast<size_t>(end - p));
    const char* stop = end;
    if (err != HPE_OK) {
      const char* pos = llhttp_get_error_pos(&parser_);
      stop = pos && pos >= p && pos <= end ? pos : p;
    }
    bool parsed = err == HPE_OK || err == HPE_PAUSED || err == HPE_PAUSED_UPGRADE;
    if (parsed && error_ == ParseError::None && !check_gap(stop))
      return {State::Error, static_cast<size_t>(scan_pos_ - data)};
    const auto consumed = static_cast<size_t>(stop - data);
    switch (err) {
      case HPE_OK:
        return {State::Ok, len};
      case HPE_PAUSED:
        if (head_pending_) {
          // on_headers_complete paused so that the line endings of the whole head are
          // checked before anyone sees it; deliver it and go on with the same buffer.
          head_pending_ = false;
          if (kind_ == Kind::Request) {
            cb_.on_request_head(req_);
          } else {
            cb_.on_response_head(resp_);
          }
          if (stopped_) return {State::Stopped, consumed};
          llhttp_resume(&parser_);
          p = stop;
          continue;
        }
        if (complete_pending_) {
          complete_pending_ = false;
          cb_.on_message_complete();
        }
        if (stopped_) return {State::Stopped, consumed};
        return {State::Paused, consumed};
      case HPE_PAUSED_UPGRADE:
        if (complete_pending_) {
          complete_pending_ = false;
          cb_.on_message_complete();
        }
        if (stopped_) return {State::Stopped, consumed};
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
}

bool Parser::finish() {
  if (error_ != ParseError::None) return false;
  if (!in_message_) return true;
  llhttp_errno_t err = llhttp_finish(&parser_);
  if (complete_pending_) {
    complete_pending_ = false;
    cb_.on_message_complete();
  }
  if ((err != HPE_OK && err != HPE_PAUSED) || in_message_) {
    error_ = ParseError::BadMessage;
    reason_ = "connection closed before the message was complete";
    return false;
  }
  return true;
}

void Parser::resume() {
  llhttp_resume(&parser_);
}

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

bool Parser::check_gap(const char* to) {
  for (const char* q = scan_pos_; q < to; ++q) {
    char c = *q;
    if (crlf_expected_ > 0) {
      if (c != (crlf_expected_ == 2 ? '\r' : '\n')) {
        scan_pos_ = q;
        fail(ParseError::BadMessage, "chunk data not followed by CRLF");
        return false;
      }
      --crlf_expected_;
    }
    // CR only right before LF, LF only right after CR.
    if (prev_cr_ != (c == '\n')) {
      scan_pos_ = q;
      fail(ParseError::BadMessage, prev_cr_ ? "CR not followed by LF" : "LF not preceded by CR");
      return false;
    }
    if (c == '\n') gap_lf_ = true;
    prev_cr_ = c == '\r';
  }
  if (to <= scan_pos_) return true;
  // Whitespace, separators and empty lines before the message count against the head limit
  // too: llhttp skips them without a callback, so they are otherwise unbounded.
  bool in_head = !in_message_ || !head_done_;
  size_t n = static_cast<size_t>(to - scan_pos_);
  scan_pos_ = to;
  if (in_head && !count_head(n)) {
    fail(ParseError::HeadTooLarge, "header block too large");
    return false;
  }
  return true;
}

int Parser::enter_span(const char* at, size_t n, bool* crossed_line) {
  if (!check_gap(at)) return HPE_USER;
  if (crossed_line) *crossed_line = gap_lf_;
  if (n > 0) {
    if (prev_cr_) return fail(ParseError::BadMessage, "CR not followed by LF");
    if (crlf_expected_ > 0) return fail(ParseError::BadMessage, "chunk data not followed by CRLF");
    gap_lf_ = false;
    scan_pos_ = at + n;
  }
  return 0;
}

int Parser::on_message_begin(llhttp_t* p) {
  Parser* self = self_of(p);
  self->in_message_ = true;
  self->head_done_ = false;
  self->head_pending_ = false;
  self->complete_pending_ = false;
  self->body_bytes_ = 0;
  self->field_len_ = 0;
  self->value_done_ = true;
  if (self->kind_ == Kind::Request) {
    self->req_.reset();
    self->headers_ = &self->req_.headers;
  } else {
    self->resp_.reset();
    self->headers_ = &self->resp_.headers;
  }
  return 0;
}

int Parser::on_url(llhttp_t* p, const char* at, size_t n) {
  Parser* self = self_of(p);
  if (int rc = self->enter_span(at, n, nullptr)) return rc;
  if (!self->count_head(n)) return self->fail(ParseError::HeadTooLarge, "request line too long");
  self->req_.target.append(at, n);
  return 0;
}

int Parser::on_method(llhttp_t* p, const char* at, size_t n) {
  Parser* self = self_of(p);
  if (int rc = self->enter_span(at, n, nullptr)) return rc;
  if (!self->count_head(n)) return self->fail(ParseError::HeadTooLarge, "request line too long");
  self->req_.method.append(at, n);
  return 0;
}

int Parser::on_status(llhttp_t* p, const char* at, size_t n) {
  Parser* self = self_of(p);
  if (int rc = self->enter_span(at, n, nullptr)) return rc;
  if (!self->count_head(n)) return self->fail(ParseError::HeadTooLarge, "status line too long");
  self->resp_.reason.append(at, n);
  return 0;
}

int Parser::on_header_field(llhttp_t* p, const char* at, size_t n) {
  Parser* self = self_of(p);
  if (int rc = self->enter_span(at, n, nullptr)) return rc;
  if (!self->count_head(n)) return self->fail(ParseError::HeadTooLarge, "header block too large");
  if (std::memchr(at, ' ', n) || std::memchr(at, '\t', n))
    return self->fail(ParseError::BadMessage, "whitespace in a header name");
  bool new_field = self->value_done_;
  self->value_done_ = false;
  if (new_field) self->field_len_ = 0;
  self->field_len_ += n;
  if (self->head_done_) return 0;  // trailer fields are checked and dropped
  HeaderMap& headers = *self->headers_;
  if (new_field) {
    if (headers.size() >= self->limits_.max_headers)
      return self->fail(ParseError::HeadTooLarge, "too many headers");
    headers.append_entry();
  }
  headers.back().name.append(at, n);
  return 0;
}

int Parser::on_header_value(llhttp_t* p, const char* at, size_t n) {
  Parser* self = self_of(p);
  bool crossed_line = false;
  if (int rc = self->enter_span(at, n, &crossed_line)) return rc;
  if (!self->count_head(n)) return self->fail(ParseError::HeadTooLarge, "header block too large");
  // A value never continues on a new line: if a line break came since the name (or since the
  // previous piece of this value), the line began with whitespace, which is obs-fold
  // (RFC 9112 §5.2: reject).
  if (n > 0 && crossed_line)
    return self->fail(ParseError::BadMessage, "obsolete line folding in a header");
  if (self->value_done_ || self->field_len_ == 0)
    return self->fail(ParseError::BadMessage, "empty header name");
  if (has_ctl(at, n)) return self->fail(ParseError::BadMessage, "control character in a header");
  if (self->head_done_) return 0;
  self->headers_->back().value.append(at, n);
  return 0;
}

int Parser::on_header_value_complete(llhttp_t* p) {
  Parser* self = self_of(p);
  self->value_done_ = true;
  if (self->field_len_ == 0) return self->fail(ParseError::BadMessage, "empty header name");
  if (self->head_done_ || self->headers_->empty()) return 0;
  std::string& v = self->headers_->back().value;
  while (!v.empty() && (v.back() == ' ' || v.back() == '\t'))
    v.pop_back();
  return 0;
}

int Parser::on_headers_complete(llhttp_t* p) {
  Parser* self = self_of(p);
  if (int rc = self->finish_head()) return rc;
  // Pause so that feed() learns where the head ends, checks its last line endings and only
  // then hands it over (finish_head() has already told llhttp how the body is framed).
  self->head_pending_ = true;
  return HPE_PAUSED;
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
    return 0;
  }
  ResponseHead& r = resp_;
  r.status = parser_.status_code;
  r.version_minor = parser_.http_minor;
  bool no_body = head_request_ || r.status < 200 || r.status == 204 || r.status == 304;
  bool tunnel = connect_request_ && r.status >= 200 && r.status < 300;
  if (no_body || tunnel) {
    r.framing = Framing::None;
    // What returning 1 (no body) or 2 (upgrade) from on_headers_complete would tell llhttp;
    // set before llhttp_should_keep_alive, which reads F_SKIPBODY.
    parser_.flags |= F_SKIPBODY;
    if (tunnel) parser_.upgrade = 1;
  } else {
    r.framing = chunked ? Framing::Chunked : has_cl ? Framing::ContentLength : Framing::UntilClose;
  }
  r.content_length = has_cl ? cl : 0;
  r.keep_alive = llhttp_should_keep_alive(&parser_) && r.framing != Framing::UntilClose;
  if (r.status >= 200) head_request_ = connect_request_ = false;
  return 0;
}

int Parser::on_body_cb(llhttp_t* p, const char* at, size_t n) {
  Parser* self = self_of(p);
  if (int rc = self->enter_span(at, n, nullptr)) return rc;
  self->body_bytes_ += n;
  if (self->limits_.max_body_bytes && self->body_bytes_ > self->limits_.max_body_bytes)
    return self->fail(ParseError::BodyTooLarge, "body too large");
  self->cb_.on_body(at, n);
  // The chunk's data is all here: llhttp skips the next two bytes unread, so check that
  // they are CRLF.
  if ((p->flags & F_CHUNKED) && p->content_length == 0) self->crlf_expected_ = 2;
  return self->stopped_ ? HPE_PAUSED : 0;
}

int Parser::on_message_complete_cb(llhttp_t* p) {
  Parser* self = self_of(p);
  self->in_message_ = false;
  // The next head's budget starts here, so that empty lines before it count (see check_gap).
  self->head_bytes_ = 0;
  // feed() (or finish()) calls on_message_complete once the line endings up to here are
  // checked.
  self->complete_pending_ = true;
  // An upgrade pauses by itself (HPE_PAUSED_UPGRADE) right after this callback.
  if (p->upgrade) return 0;
  return HPE_PAUSED;
}

}  // namespace meshbox::http
