// Parser: HTTP/1.x request or response parsing on llhttp, streaming. Heads are delivered
// whole (after the size limits), bodies piece by piece as they arrive, de-chunked. Pure
// bytes-in/callbacks-out: no loop, no socket, so it is unit-tested and fuzzed on its own.
// Single-owner, not thread-safe.
//
// The parser stops after every complete message (feed() returns Paused): the caller answers
// it and calls resume() before feeding the rest. That is what keeps pipelined requests in
// order. After a CONNECT or an accepted Upgrade the rest of the bytes are not HTTP: feed()
// returns Upgrade and the caller tunnels them.
//
// Stricter than llhttp alone, per RFC 9112: obs-fold, whitespace before the colon, empty
// header names, control characters in values, a CR or LF outside a CRLF pair, anything but
// CRLF after chunk data, several Host headers or none (HTTP/1.1 requests) are errors too.
#pragma once

#include <llhttp.h>

#include <cstddef>
#include <cstdint>

#include "core/http/message.h"

namespace meshbox::http {

struct ParserLimits {
  size_t max_head_bytes = 60 * 1024;  // start line + headers (+ empty lines before) → 431
  size_t max_headers = 100;           // header count → 431
  uint64_t max_body_bytes = 0;        // 0: unlimited → 413 when exceeded
};

/// Why parsing failed, and the status a server answers with.
enum class ParseError {
  None,
  BadMessage,           // 400 (502 for an upstream response)
  HeadTooLarge,         // 431
  BodyTooLarge,         // 413
  VersionNotSupported,  // 505
};
int error_status(ParseError e);

class ParserCallbacks {
 public:
  virtual ~ParserCallbacks() = default;
  /// A complete request head (request parser). The head is the parser's own: valid until the
  /// next message begins; the callee may change it or move from it. Reusing one head keeps
  /// its storage, so steady traffic does not allocate per request.
  virtual void on_request_head(RequestHead&) {}
  /// A complete response head (response parser); 1xx heads arrive here too. Same lifetime.
  virtual void on_response_head(ResponseHead&) {}
  /// A piece of body; chunked framing already removed.
  virtual void on_body(const char* data, size_t len) = 0;
  /// The message ended; the parser is paused until resume().
  virtual void on_message_complete() = 0;
};

class Parser {
 public:
  enum class Kind { Request, Response };
  enum class State {
    Ok,       // everything consumed; feed more
    Paused,   // a message completed; `consumed` bytes were used; resume() then feed the rest
    Upgrade,  // the connection turned into a tunnel: bytes after `consumed` are not HTTP
    Error,    // see error() / error_reason()
    Stopped,  // a callback called stop(): the caller is done with this connection
  };
  struct FeedResult {
    State state;
    size_t consumed;
  };

  Parser(Kind kind, ParserCallbacks& cb, ParserLimits limits = {});
  Parser(const Parser&) = delete;
  Parser& operator=(const Parser&) = delete;

  FeedResult feed(const char* data, size_t len);
  /// The peer closed: ends an until-close body. Returns false if a message was cut short.
  bool finish();
  void resume();
  /// From inside a callback: stop parsing; feed() returns Stopped.
  void stop() { stopped_ = true; }

  /// Response parser: the next response answers a HEAD request (no body whatever it says),
  /// or a CONNECT (a 2xx turns into a tunnel).
  void expect_response_to(std::string_view method);

  /// True between the first byte of a message and its end.
  bool in_message() const { return in_message_; }
  /// True while the head is still arriving.
  bool in_head() const { return in_message_ && !head_done_; }
  ParseError error() const { return error_; }
  const char* error_reason() const { return reason_; }

 private:
  static int on_message_begin(llhttp_t*);
  static int on_url(llhttp_t*, const char*, size_t);
  static int on_status(llhttp_t*, const char*, size_t);
  static int on_method(llhttp_t*, const char*, size_t);
  static int on_header_field(llhttp_t*, const char*, size_t);
  static int on_header_value(llhttp_t*, const char*, size_t);
  static int on_header_value_complete(llhttp_t*);
  static int on_headers_complete(llhttp_t*);
  static int on_body_cb(llhttp_t*, const char*, size_t);
  static int on_message_complete_cb(llhttp_t*);

  int fail(ParseError e, const char* reason);
  bool count_head(size_t n);
  int finish_head();
  bool check_gap(const char* to);
  int enter_span(const char* at, size_t n, bool* crossed_line);

  llhttp_t parser_;
  llhttp_settings_t settings_;
  Kind kind_;
  ParserCallbacks& cb_;
  ParserLimits limits_;
  RequestHead req_;
  ResponseHead resp_;
  HeaderMap* headers_;
  // Line-ending check: llhttp (8.1, built without LLHTTP_STRICT_MODE) accepts a bare LF at the
  // end of the start line and of the header block, and skips the two bytes after chunk data
  // unread. Every byte llhttp consumes outside a span (method, target, names, values, body) is
  // checked here, in step with the parser: CR and LF only as a CRLF pair. Those bytes also
  // count against max_head_bytes while a head is arriving.
  const char* scan_pos_ = nullptr;  // bytes of the current buffer before this are checked
  bool prev_cr_ = false;            // the last checked byte was a CR awaiting its LF
  bool gap_lf_ = false;             // a LF was checked since the last span ended
  int crlf_expected_ = 0;           // bytes of the CRLF that must follow chunk data still due
  size_t head_bytes_ = 0;
  size_t field_len_ = 0;  // bytes in the current header (or trailer) name
  uint64_t body_bytes_ = 0;
  bool in_message_ = false;
  bool head_done_ = false;
  bool head_pending_ = false;      // the head is parsed; feed() delivers it
  bool complete_pending_ = false;  // the message ended; feed() or finish() delivers it
  bool value_done_ = true;         // the current entry's value is complete
  bool head_request_ = false;
  bool connect_request_ = false;
  bool stopped_ = false;
  ParseError error_ = ParseError::None;
  const char* reason_ = "";
};

}  // namespace meshbox::http
