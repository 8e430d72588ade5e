// Route: which httpbin endpoint a request-target names, with its numeric argument. Pure
// function of the method and target, so the routing table can be tested without a socket.
#pragma once

#include <cstdint>
#include <string_view>

namespace meshbox::httpbin {

enum class Endpoint {
  Hello,                // GET /
  Bytes,                // GET /bytes/N[?chunked=1]
  Echo,                 // POST|PUT /echo
  Upload,               // POST|PUT /upload
  Status,               // GET /status/CODE
  Delay,                // GET /delay/MS
  Headers,              // ANY /headers
  Stats,                // GET /stats
  AbortMidBody,         // GET /abort-mid-body
  CloseBeforeResponse,  // GET /close-before-response
  WebSocket,            // GET /ws (the handshake headers are checked by the connection)
  NotFound,             // anything else
  BadRequest,           // a known endpoint with a malformed argument
};

struct Route {
  Endpoint endpoint = Endpoint::NotFound;
  uint64_t number = 0;     // N of /bytes/N, CODE of /status/CODE, MS of /delay/MS
  bool chunked = false;    // /bytes/N?chunked=1
  std::string_view error;  // BadRequest: why (a static string)
};

inline constexpr uint64_t kMaxDelayMs = 10 * 60 * 1000;

/// GET endpoints also answer HEAD (same head, no body). A method an endpoint does not take
/// is NotFound, like an unknown path. An absolute-form target (http://host/path) is routed
/// by its path.
Route match_route(std::string_view method, std::string_view target);

}  // namespace meshbox::httpbin
