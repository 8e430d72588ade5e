// Request and response heads as the HTTP/1 parser delivers them and the serializer writes
// them. Bodies never live here: they stream through the parser's on_body callback.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "core/http/header_map.h"

namespace meshbox::http {

/// How a message body is delimited on the wire (RFC 9112 §6).
enum class Framing {
  None,           // no body (GET without Content-Length, 204, 304, HEAD responses…)
  ContentLength,  // exactly content_length bytes
  Chunked,        // Transfer-Encoding: chunked
  UntilClose,     // response read until the connection closes
};

struct RequestHead {
  std::string method;
  std::string target;  // request-target as sent: origin-form, absolute-form or authority-form
  int version_minor = 1;
  HeaderMap headers;
  Framing framing = Framing::None;
  uint64_t content_length = 0;
  bool keep_alive = true;  // after this exchange, per the request's version and Connection
  bool upgrade = false;    // Upgrade request or CONNECT: the connection may become a tunnel

  /// Back to a fresh head, keeping the strings' and headers' storage for reuse.
  void reset() {
    method.clear();
    target.clear();
    headers.clear();
    version_minor = 1;
    framing = Framing::None;
    content_length = 0;
    keep_alive = true;
    upgrade = false;
  }
};

struct ResponseHead {
  int status = 200;
  std::string reason;
  int version_minor = 1;
  HeaderMap headers;
  Framing framing = Framing::None;
  uint64_t content_length = 0;
  bool keep_alive = true;

  /// Back to a fresh head, keeping the strings' and headers' storage for reuse.
  void reset() {
    status = 200;
    reason.clear();
    version_minor = 1;
    headers.clear();
    framing = Framing::None;
    content_length = 0;
    keep_alive = true;
  }
};

}  // namespace meshbox::http
