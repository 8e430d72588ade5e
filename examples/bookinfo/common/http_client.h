// HttpClient: the small asynchronous HTTP/1.1 client the Bookinfo services call each other
// with. One request per connection, like Istio's productpage ("to test load distribution"):
// connect, send the request with `Connection: close`, read one response, close. Each call has
// one deadline covering connect, send and the whole response. Loop thread only.
//
// Where a call goes:
//  - through the proxy when ProxyConfig applies to the host: the request line carries the
//    absolute URL (`GET http://details:9080/details/0 HTTP/1.1`) and the bytes go to the
//    proxy's address; the name is the proxy's to resolve;
//  - otherwise straight to the host, which must then be an IP literal or "localhost". Names
//    are never resolved here: getaddrinfo would block the loop, and a Bookinfo service is
//    meant to run behind its sidecar or be wired to IPs (the tests do).
//
// Ownership: the client owns its calls in flight. A call's callback runs exactly once, on
// the loop thread and never from inside send(), unless cancel_all() dropped the call first
// (shutdown): then it never runs.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>

#include "core/base/non_copyable.h"
#include "core/base/result.h"
#include "core/http/header_map.h"
#include "core/loop/loop.h"
#include "examples/bookinfo/common/proxy_config.h"
#include "examples/bookinfo/common/upstream.h"

namespace meshbox::bookinfo {

struct ClientRequest {
  std::string method = "GET";
  Upstream upstream;
  std::string path = "/";   // origin-form: "/details/0"
  http::HeaderMap headers;  // besides Host, Connection and Content-Length, which are set here
  std::string body;
  uint64_t timeout_ms = 3000;
};

struct ClientResponse {
  int status = 0;
  http::HeaderMap headers;
  std::string body;
};

class HttpClient : NonCopyable {
 public:
  using Callback = std::function<void(Result<ClientResponse>)>;
  /// Larger response bodies fail the call.
  static constexpr uint64_t kMaxBodyBytes = 4 << 20;

  HttpClient(loop::Loop& loop, ProxyConfig proxy);
  /// Cancels every call in flight (their callbacks never run).
  ~HttpClient();

  /// Starts a call. Errors (refused, reset, timed out, a host that cannot be reached without
  /// a proxy, a malformed response) arrive in `cb` as Code::Unavailable with a message that
  /// names the upstream.
  void send(ClientRequest request, Callback cb);

  /// Drops every call in flight without calling back (shutdown).
  void cancel_all();
  size_t in_flight() const { return calls_.size(); }

  loop::Loop& loop() { return loop_; }
  const ProxyConfig& proxy() const { return proxy_; }

  /// Call use: call `id` has finished; destroy it after the current callback.
  void release(uint64_t id);

 private:
  class Call;

  loop::Loop& loop_;
  ProxyConfig proxy_;
  std::unordered_map<uint64_t, std::unique_ptr<Call>> calls_;
  uint64_t next_id_ = 0;
};

}  // namespace meshbox::bookinfo
