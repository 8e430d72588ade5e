// Local replies: the one place a proxy failure becomes a status code, a short plain body and
// an Envoy response flag (UF, UT, UC…). Every component reports a ProxyError; nothing else
// writes error responses. Pure functions.
#pragma once

#include <string>
#include <string_view>

namespace meshbox::data {

/// Envoy's response flags (the subset meshbox can raise so far).
enum class ResponseFlag {
  None,
  DownstreamProtocolError,          // DPE: the client sent a malformed request
  UpstreamConnectFailure,           // UF
  UpstreamConnectionTermination,    // UC: the upstream closed or reset before a response
  UpstreamRequestTimeout,           // UT
  UpstreamProtocolError,            // UPE: the upstream's response did not parse
  NoHealthyUpstream,                // UH: the cluster has no endpoint
  StreamIdleTimeout,                // SI
  DownstreamConnectionTermination,  // DC
  Overflow,                         // UO
  NoRouteFound,                     // NR
  NoClusterFound,                   // NC: the route names a cluster the snapshot lacks
  DelayInjected,                    // DI: a route's fault delayed the request
  FaultInjected,                    // FI: a route's fault aborted the request
  DnsResolutionFailure,             // DF: a passthrough host did not resolve
  RateLimited,                      // RL: a local rate limit's bucket was empty
};

enum class ErrorSource { Downstream, Upstream, Internal };

/// One proxy failure (Pingora's error shape).
struct ProxyError {
  ResponseFlag flag = ResponseFlag::None;
  ErrorSource source = ErrorSource::Internal;
  bool retryable = false;
  std::string_view detail;  // static text
};

std::string_view flag_name(ResponseFlag flag);

struct LocalReply {
  int status;
  std::string_view body;  // ends with a newline
};
LocalReply local_reply_for(const ProxyError& error);
/// A route's fault abort (flag FI): the configured status and Envoy's fault filter body.
LocalReply fault_abort_reply(int status);

/// Appends a complete response: status line, Content-Type, Content-Length, Connection, and
/// `extra_headers` (preformatted "name: value\r\n" lines, e.g. a redirect's location).
void append_local_reply(int status, std::string_view body, bool close, std::string& out,
                        std::string_view extra_headers = {});

}  // namespace meshbox::data
