#include "examples/httpbin/connection.h"

#include <fmt/core.h>

#include <algorithm>
#include <cstring>

#include "core/base/log.h"
#include "core/http/header_map.h"
#include "core/http/serializer.h"
#include "examples/httpbin/json.h"
#include "examples/httpbin/server.h"

namespace meshbox::httpbin {

namespace {

constexpr size_t kWriteChunk = 16 * 1024;     // /bytes produces this much per write
constexpr uint64_t kFlushTimeoutMs = 30'000;  // Closing: give up on a peer that never reads
constexpr uint64_t kLingerMs = 2'000;         // Lingering: wait this long for the peer's FIN
constexpr uint64_t kFnvOffset = 14695981039346656037ull;
constexpr uint64_t kFnvPrime = 1099511628211ull;
constexpr uint64_t kAbortDeclaredLength = 1'000'000;
constexpr size_t kAbortSentBytes = 1000;

// The /bytes body: byte i is kAlphabet[i % 64]. kPattern holds one write's worth from any
// phase of the period, so every write is a slice of it and nothing is allocated.
constexpr std::string_view kAlphabet =
    "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ+/";
constexpr auto kPattern = [] {
  std::array<char, kWriteChunk + kAlphabet.size()> a{};
  for (size_t i = 0; i < a.size(); ++i)
    a[i] = kAlphabet[i % kAlphabet.size()];
  return a;
}();

const char* pattern_at(uint64_t offset) {
  return kPattern.data() + offset % kAlphabet.size();
}

// True if any header called `name` lists `token` (several Connection headers may appear).
bool header_has_token(const http::HeaderMap& headers, std::string_view name,
                      std::string_view token) {
  for (const auto& h : headers)
    if (http::iequals(h.name, name) && http::has_token(h.value, token)) return true;
  return false;
}

}  // namespace

Connection::Connection(Server& server, loop::TcpConnPtr tcp, uint64_t id)
    : server_(server),
      tcp_(std::move(tcp)),
      id_(id),
      parser_(std::make_unique<http::Parser>(http::Parser::Kind::Request, *this)) {}

Connection::~Connection() = default;

void Connection::start() {
  tcp_->set_callbacks(this);
  tcp_->read_start();
}

void Connection::close() {
  close_socket(false);
}

void Connection::close_socket(bool reset) {
  if (closed_) return;
  closed_ = true;
  if (in_parse_) parser_->stop();
  if (ws_) ws_->parser.stop();
  if (timer_) timer_->stop();
  if (reset) tcp_->close_reset();
  tcp_.reset();
  server_.release(id_);  // `this` lives on until the loop's deferred deletion
}

loop::Timer& Connection::timer() {
  if (!timer_) timer_ = std::make_unique<loop::Timer>(server_.loop(), [this] { on_timer(); });
  return *timer_;
}

// ---- Input -------------------------------------------------------------------------------

void Connection::on_data(const char* data, size_t len) {
  if (closed_) return;
  switch (state_) {
    case State::Lingering:
    case State::Closing:
      return;  // the exchange is over; late bytes are dropped
    case State::WebSocket:
      ws_input(data, len);
      break;
    case State::Parsing:
      if (!paused_ && held_empty()) {
        size_t used = parse(data, len);
        if (closed_) return;
        data += used;
        len -= used;
        if (state_ == State::WebSocket) {
          // Bytes right after the upgrade request already belong to the WebSocket stream.
          ws_input(data, len);
          len = 0;
        }
      }
      if (len > 0 && (state_ == State::Parsing || state_ == State::Responding))
        held_.append(data, len);
      break;
    case State::Responding:
      held_.append(data, len);
      break;
  }
  try_continue();
}

size_t Connection::parse(const char* data, size_t len) {
  size_t off = 0;
  in_parse_ = true;
  while (off < len && !closed_ && state_ == State::Parsing && !paused_) {
    http::Parser::FeedResult r = parser_->feed(data + off, len - off);
    off += r.consumed;
    if (closed_) break;
    switch (r.state) {
      case http::Parser::State::Ok:
      case http::Parser::State::Stopped:
        break;
      case http::Parser::State::Upgrade:
        if (state_ == State::WebSocket) break;
        // An Upgrade we did not accept: the connection stays HTTP/1.1, but llhttp stays in
        // its upgraded state (Parser::resume() cannot clear it), so rebuild the parser.
        parser_reset_ = true;
        [[fallthrough]];
      case http::Parser::State::Paused:
        // A request is complete. If its response is done too, go on with the next one,
        // unless the output is above the watermark: on_drained() resumes then.
        paused_ = true;
        if (state_ == State::Parsing && !tcp_->above_high_watermark()) resume_parser();
        break;
      case http::Parser::State::Error:
        on_parse_error();
        break;
    }
  }
  in_parse_ = false;
  return off;
}

void Connection::process_held() {
  while (!closed_ && state_ == State::Parsing && !paused_ && !held_empty()) {
    held_off_ += parse(held_.data() + held_off_, held_.size() - held_off_);
    if (!closed_ && state_ == State::WebSocket) {
      // A pipelined upgrade: the rest of held_ is WebSocket data.
      std::string rest = held_.substr(held_off_);
      held_off_ = held_.size();
      ws_input(rest.data(), rest.size());
    }
  }
  if (held_empty() && !held_.empty()) {
    std::string().swap(held_);  // give the memory back: most connections never pipeline
    held_off_ = 0;
  }
}

void Connection::resume_parser() {
  paused_ = false;
  if (parser_reset_) {
    parser_reset_ = false;
    parser_ = std::make_unique<http::Parser>(http::Parser::Kind::Request, *this);
  } else {
    parser_->resume();
  }
}

// Picks up input again after something that blocked it went away: a response finished, the
// output drained, or the peer's FIN arrived.
void Connection::try_continue() {
  if (closed_ || in_parse_) return;
  if (state_ == State::Parsing) {
    if (paused_ && !tcp_->above_high_watermark()) resume_parser();
    if (!paused_) process_held();
    if (closed_) return;
    if (state_ == State::Parsing && !paused_ && held_empty() && peer_eof_) {
      finish_input();
      return;
    }
  }
  update_reading();
}

void Connection::update_reading() {
  if (closed_) return;
  bool want = false;
  switch (state_) {
    case State::Parsing:
      want = !paused_ && held_empty() && !peer_eof_ && !tcp_->above_high_watermark();
      break;
    case State::WebSocket:
      want = !peer_eof_ && !tcp_->above_high_watermark();
      break;
    case State::Lingering:
      want = !peer_eof_;
      break;
    case State::Responding:
    case State::Closing:
      break;
  }
  if (want)
    tcp_->read_start();
  else
    tcp_->read_stop();
}

// The peer sent FIN and every request it sent has been answered or is partial.
void Connection::finish_input() {
  if (parser_->in_message()) {
    // Cut short mid-request: nobody is left to read an answer.
    MB_DEBUG("httpbin", "connection {}: peer closed mid-request", id_);
    close();
    return;
  }
  start_close();
}

void Connection::on_eof() {
  if (closed_) return;
  peer_eof_ = true;
  switch (state_) {
    case State::Lingering:
      close();
      return;
    case State::Closing:
      return;  // on_flushed() closes
    case State::WebSocket:
      start_close();
      return;
    case State::Responding:
      return;  // answer the request; try_continue() then sees the EOF
    case State::Parsing:
      try_continue();
      return;
  }
}

void Connection::on_error(int uv_error) {
  MB_DEBUG("httpbin", "connection {}: {}", id_, loop::uv_error(uv_error));
  close();
}

void Connection::on_drained() {
  if (closed_) return;
  if (state_ == State::Responding && route_.endpoint == Endpoint::Bytes) produce();
  try_continue();
}

void Connection::on_flushed() {
  if (closed_ || state_ != State::Closing) return;
  if (aborting_) {
    close_socket(true);
    return;
  }
  if (peer_eof_) {
    close();
    return;
  }
  // Our FIN is out. Closing now would make the kernel answer any request bytes still in
  // flight with a RST, which can destroy the response before the client reads it: read and
  // discard until the peer closes too, for a bounded time.
  state_ = State::Lingering;
  timer().start(kLingerMs);
  update_reading();
}

void Connection::on_timer() {
  if (closed_) return;
  switch (state_) {
    case State::Responding:
      if (route_.endpoint == Endpoint::Delay) {
        send_response(200, "text/plain; charset=utf-8",
                      fmt::format("delayed {} ms\n", route_.number));
        response_done();
      }
      return;
    case State::Closing:
    case State::Lingering:
      close();
      return;
    case State::Parsing:
    case State::WebSocket:
      return;
  }
}

void Connection::on_parse_error() {
  MB_DEBUG("httpbin", "connection {}: bad request: {}", id_, parser_->error_reason());
  if (response_started_) {
    // Mid-way through an echoed body: the response cannot be taken back.
    close();
    return;
  }
  keep_alive_ = false;
  head_only_ = false;
  state_ = State::Responding;
  http::ParseError err = parser_->error();
  send_response(http::error_status(err), "text/plain; charset=utf-8",
                fmt::format("bad request: {}\n", parser_->error_reason()));
  start_close();
}

// ---- Requests ------------------------------------------------------------------------------

void Connection::on_request_head(http::RequestHead& head) {
  if (closed_ || state_ != State::Parsing) return;
  server_.count_request();
  route_ = match_route(head.method, head.target);
  keep_alive_ = head.keep_alive;
  http10_ = head.version_minor == 0;
  head_only_ = head.method == "HEAD";
  response_started_ = false;
  chunked_response_ = false;
  ws_status_ = 0;
  body_bytes_ = 0;
  fnv_ = kFnvOffset;
  remaining_ = produced_ = 0;
  response_body_.clear();
  MB_TRACE("httpbin", "connection {}: {} {}", id_, head.method, head.target);

  bool has_body = head.framing == http::Framing::Chunked ||
                  (head.framing == http::Framing::ContentLength && head.content_length > 0);
  const std::string* expect = head.headers.get("expect");
  if (has_body && !http10_ && expect && http::iequals(*expect, "100-continue"))
    send("HTTP/1.1 100 Continue\r\n\r\n");

  switch (route_.endpoint) {
    case Endpoint::Echo:
      start_echo(head);
      break;
    case Endpoint::Headers:
      build_headers_json(head);
      break;
    case Endpoint::WebSocket:
      check_ws_handshake(head);
      break;
    default:
      break;
  }
}

void Connection::on_body(const char* data, size_t len) {
  if (closed_ || state_ != State::Parsing) return;
  switch (route_.endpoint) {
    case Endpoint::Echo:
      if (chunked_response_)
        send_chunk(data, len);
      else
        send(std::string_view(data, len));
      break;
    case Endpoint::Upload: {
      body_bytes_ += len;
      uint64_t h = fnv_;
      for (size_t i = 0; i < len; ++i) {
        h ^= static_cast<uint8_t>(data[i]);
        h *= kFnvPrime;
      }
      fnv_ = h;
      break;
    }
    default:
      break;  // read and discarded
  }
}

void Connection::on_message_complete() {
  if (closed_ || state_ != State::Parsing) return;
  state_ = State::Responding;
  respond();
}

void Connection::respond() {
  constexpr std::string_view kText = "text/plain; charset=utf-8";
  constexpr std::string_view kJson = "application/json";
  switch (route_.endpoint) {
    case Endpoint::Hello:
      send_response(200, kText, fmt::format("hello from {}\n", server_.name()));
      break;
    case Endpoint::Bytes:
      start_bytes();
      return;  // produce() finishes it
    case Endpoint::Echo:
      if (chunked_response_) send(http::kLastChunk);
      break;
    case Endpoint::Upload:
      send_response(200, kJson,
                    fmt::format("{{\"bytes\":{},\"fnv1a\":\"{:016x}\"}}\n", body_bytes_, fnv_));
      break;
    case Endpoint::Status:
      send_status_endpoint();
      break;
    case Endpoint::Delay:
      timer().start(route_.number);
      return;  // on_timer() answers
    case Endpoint::Headers:
      send_response(200, kJson, response_body_);
      break;
    case Endpoint::Stats:
      send_response(200, kJson,
                    fmt::format("{{\"connections_total\":{},\"connections_active\":{},"
                                "\"requests_total\":{}}}\n",
                                server_.connections_total(), server_.connections_active(),
                                server_.requests_total()));
      break;
    case Endpoint::AbortMidBody: {
      // Promise a long body, send a little, then reset: the client sees a truncated body
      // and a connection reset.
      keep_alive_ = false;
      http::ResponseHead head = base_head(200);
      send_head(head, "application/octet-stream", http::Framing::ContentLength,
                kAbortDeclaredLength);
      if (!head_only_) send(std::string_view(pattern_at(0), kAbortSentBytes));
      start_abort();
      return;
    }
    case Endpoint::CloseBeforeResponse:
      keep_alive_ = false;
      start_close();
      return;
    case Endpoint::WebSocket:
      if (ws_status_ == 101) {
        accept_websocket();
        return;
      }
      if (ws_status_ == 426) {
        http::ResponseHead head = base_head(426);
        head.headers.add("upgrade", "websocket");
        head.headers.add("sec-websocket-version", "13");
        send_head(head, kText, http::Framing::ContentLength, response_body_.size());
        if (!head_only_) send(response_body_);
      } else {
        send_response(400, kText, response_body_);
      }
      break;
    case Endpoint::NotFound:
      send_response(404, kText, "not found\n");
      break;
    case Endpoint::BadRequest:
      send_response(400, kText, fmt::format("bad request: {}\n", route_.error));
      break;
  }
  response_done();
}

void Connection::response_done() {
  if (closed_) return;
  std::string().swap(response_body_);
  response_started_ = false;
  if (!keep_alive_) {
    start_close();
    return;
  }
  state_ = State::Parsing;
  // Inside parse() the loop there resumes the parser; from a timer or on_drained(), here.
  if (!in_parse_) try_continue();
}

void Connection::start_echo(const http::RequestHead& head) {
  http::Framing framing = http::Framing::ContentLength;
  if (head.framing == http::Framing::Chunked) {
    if (http10_) {
      // No chunked responses for HTTP/1.0: delimit the echo by closing.
      framing = http::Framing::UntilClose;
      keep_alive_ = false;
    } else {
      framing = http::Framing::Chunked;
      chunked_response_ = true;
    }
  }
  const std::string* type = head.headers.get("content-type");
  http::ResponseHead out = base_head(200);
  send_head(out, type ? std::string_view(*type) : "application/octet-stream", framing,
            head.content_length);
}

void Connection::build_headers_json(const http::RequestHead& head) {
  std::string& out = response_body_;
  out.append("{\"method\":");
  append_json_string(out, head.method);
  out.append(",\"target\":");
  append_json_string(out, head.target);
  out.append(http10_ ? ",\"version\":\"1.0\"" : ",\"version\":\"1.1\"");
  out.append(",\"headers\":[");
  bool first = true;
  for (const auto& h : head.headers) {
    if (!first) out.push_back(',');
    first = false;
    out.push_back('[');
    append_json_string(out, h.name);
    out.push_back(',');
    append_json_string(out, h.value);
    out.push_back(']');
  }
  out.append("]}\n");
}

void Connection::check_ws_handshake(const http::RequestHead& head) {
  const std::string* key = head.headers.get("sec-websocket-key");
  const std::string* version = head.headers.get("sec-websocket-version");
  if (!head.upgrade || !header_has_token(head.headers, "upgrade", "websocket") ||
      !header_has_token(head.headers, "connection", "upgrade")) {
    ws_status_ = 426;
    response_body_ = "/ws needs Upgrade: websocket and Connection: Upgrade\n";
  } else if (http10_) {
    ws_status_ = 400;
    response_body_ = "a WebSocket handshake needs HTTP/1.1\n";
  } else if (version && *version != "13") {
    ws_status_ = 426;
    response_body_ = "only Sec-WebSocket-Version 13 is supported\n";
  } else if (!key || !ws_key_valid(*key)) {
    ws_status_ = 400;
    response_body_ = "Sec-WebSocket-Key must be the base64 of 16 bytes\n";
  } else {
    ws_status_ = 101;
    response_body_ = ws_accept_key(*key);
  }
}

void Connection::accept_websocket() {
  http::ResponseHead head = base_head(101);
  head.headers.add("upgrade", "websocket");
  head.headers.add("connection", "Upgrade");
  head.headers.add("sec-websocket-accept", response_body_);
  std::string out;
  http::append_response_head(head, out);
  send(out);
  std::string().swap(response_body_);
  state_ = State::WebSocket;
  ws_ = std::make_unique<WsSession>(*this);
  MB_DEBUG("httpbin", "connection {}: websocket", id_);
}

void Connection::start_bytes() {
  remaining_ = route_.number;
  produced_ = 0;
  bool chunked = route_.chunked && !http10_;
  http::ResponseHead head = base_head(200);
  send_head(head, "application/octet-stream",
            chunked ? http::Framing::Chunked : http::Framing::ContentLength, remaining_);
  chunked_response_ = chunked;
  if (head_only_) remaining_ = 0;
  produce();
}

// Writes /bytes while the socket keeps up; on_drained() calls again once it has drained.
void Connection::produce() {
  while (remaining_ > 0 && !closed_ && !tcp_->above_high_watermark()) {
    size_t n = static_cast<size_t>(std::min<uint64_t>(remaining_, kWriteChunk));
    const char* piece = pattern_at(produced_);
    if (chunked_response_)
      send_chunk(piece, n);
    else
      send(std::string_view(piece, n));
    remaining_ -= n;
    produced_ += n;
  }
  if (closed_ || remaining_ > 0) return;
  if (chunked_response_ && !head_only_) send(http::kLastChunk);
  response_done();
}

void Connection::send_status_endpoint() {
  int status = static_cast<int>(route_.number);
  if (status == 204 || status == 304) {
    // No body and no Content-Length (RFC 9110 §8.6, §15.4.5).
    http::ResponseHead head = base_head(status);
    send_head(head, {}, http::Framing::None, 0);
    return;
  }
  if (status == 205) {
    send_response(status, {}, {});
    return;
  }
  send_response(status, "text/plain; charset=utf-8",
                fmt::format("{} {}\n", status, http::reason_phrase(status)));
}

// ---- Output --------------------------------------------------------------------------------

http::ResponseHead Connection::base_head(int status) const {
  http::ResponseHead head;
  head.status = status;
  head.version_minor = 1;
  head.headers.add("x-backend-name", server_.name());
  head.headers.add("x-backend-conn", fmt::format("{}", id_));
  return head;
}

void Connection::send_head(http::ResponseHead& head, std::string_view content_type,
                           http::Framing framing, uint64_t length) {
  if (!content_type.empty()) head.headers.add("content-type", content_type);
  if (framing == http::Framing::ContentLength)
    head.headers.add("content-length", fmt::format("{}", length));
  else if (framing == http::Framing::Chunked)
    head.headers.add("transfer-encoding", "chunked");
  if (!keep_alive_)
    head.headers.add("connection", "close");
  else if (http10_)
    head.headers.add("connection", "keep-alive");
  std::string out;
  out.reserve(256);
  http::append_response_head(head, out);
  send(out);
  response_started_ = true;
}

void Connection::send_response(int status, std::string_view content_type, std::string_view body) {
  http::ResponseHead head = base_head(status);
  send_head(head, content_type, http::Framing::ContentLength, body.size());
  if (!head_only_ && !body.empty()) send(body);
}

void Connection::send(std::string_view bytes) {
  if (closed_ || bytes.empty()) return;
  tcp_->write(bytes);
}

void Connection::send_chunk(const char* data, size_t len) {
  if (closed_ || len == 0) return;
  std::string size_line;  // a few bytes: stays in the small-string buffer
  http::append_chunk_header(len, size_line);
  iovec parts[3] = {{size_line.data(), size_line.size()},
                    {const_cast<char*>(data), len},
                    {const_cast<char*>(http::kCrlf.data()), http::kCrlf.size()}};
  tcp_->writev(parts, 3);
}

// Graceful close: flush what is queued, send FIN (on_flushed follows), then linger.
void Connection::start_close() {
  if (closed_ || state_ == State::Closing || state_ == State::Lingering) return;
  state_ = State::Closing;
  if (in_parse_) parser_->stop();
  if (ws_) ws_->parser.stop();
  tcp_->read_stop();
  timer().start(kFlushTimeoutMs);
  tcp_->shutdown();  // may call on_flushed() at once
}

// Abortive close: flush what is queued (on_flushed follows), then reset the connection.
void Connection::start_abort() {
  if (closed_ || state_ == State::Closing || state_ == State::Lingering) return;
  state_ = State::Closing;
  aborting_ = true;
  if (in_parse_) parser_->stop();
  tcp_->read_stop();
  timer().start(kFlushTimeoutMs);
  tcp_->notify_when_flushed();  // may call on_flushed() at once
}

// ---- WebSocket -------------------------------------------------------------------------------

void Connection::ws_input(const char* data, size_t len) {
  if (len == 0 || !ws_ || closed_ || state_ != State::WebSocket) return;
  if (!ws_->parser.feed(data, len) && !closed_ && state_ == State::WebSocket)
    ws_fail(ws_->parser.error_reason());
}

void Connection::ws_fail(const char* reason) {
  MB_DEBUG("httpbin", "connection {}: websocket protocol error: {}", id_, reason);
  char code[2] = {static_cast<char>(kWsCloseProtocolError >> 8),
                  static_cast<char>(kWsCloseProtocolError & 0xff)};
  send_ws_frame(WsOpcode::Close, std::string_view(code, 2));
  start_close();
}

void Connection::send_ws_frame(WsOpcode opcode, std::string_view payload) {
  std::string frame;
  append_ws_frame_header(frame, opcode, true, payload.size());
  frame.append(payload);
  send(frame);
}

void Connection::on_frame_begin(WsOpcode opcode, bool fin, uint64_t length) {
  if (closed_ || state_ != State::WebSocket) {
    ws_->parser.stop();
    return;
  }
  ws_->in_control = is_control(opcode);
  if (ws_->in_control) {
    ws_->control_op = opcode;
    ws_->control_len = 0;
    return;
  }
  // Echo the frame as it comes: same opcode, FIN bit and length, payload streamed unmasked.
  std::string header;
  append_ws_frame_header(header, opcode, fin, length);
  send(header);
}

void Connection::on_frame_payload(const char* data, size_t len) {
  if (closed_) return;
  if (!ws_->in_control) {
    send(std::string_view(data, len));
    return;
  }
  // The parser caps control payloads at 125 bytes; min() keeps the copy in bounds anyway.
  size_t n = std::min(len, ws_->control.size() - ws_->control_len);
  std::memcpy(ws_->control.data() + ws_->control_len, data, n);
  ws_->control_len += n;
}

void Connection::on_frame_end() {
  if (closed_ || !ws_->in_control) return;
  std::string_view payload(ws_->control.data(), ws_->control_len);
  switch (ws_->control_op) {
    case WsOpcode::Ping:
      send_ws_frame(WsOpcode::Pong, payload);
      break;
    case WsOpcode::Close:
      if (payload.size() == 1) {
        ws_fail("close frame with a 1-byte payload");
        return;
      }
      // Answer with the peer's status code (RFC 6455 §5.5.1), then close the TCP side.
      send_ws_frame(WsOpcode::Close, payload.substr(0, 2));
      start_close();
      break;
    default:
      break;  // pong: nothing to do
  }
}

}  // namespace meshbox::httpbin
