// HttpConnection: one downstream HTTP/1.1 connection and the request on it (the connection
// manager). Requests are served one at a time: the parser pauses after each request, so
// pipelined requests are answered in order. Each request goes to an upstream connection from
// the worker's pool; bodies stream both ways with backpressure and are never held whole.
// Loop thread only; owned by its Worker's connection list.
//
// Proxy rules (RFC 9110 §7.6, RFC 9112): hop-by-hop headers and every header named in
// Connection are removed both ways; X-Forwarded-For and X-Forwarded-Proto are appended (a
// gateway that terminates TLS sets X-Forwarded-Proto: https instead, after it picked the
// server by the ClientHello's SNI);
// x-request-id is added when absent; Host is kept unless the route rewrites the authority.
// The route's rewrite (path, authority) and header operations change the request sent
// upstream, its response header operations the response sent back. A route's fault may abort
// the request (a local reply, flag FI) or delay it (flag DI) before it goes upstream.
// Failures become local replies (local_reply.h); a response that fails after its head was
// sent ends with a reset, so a truncated response never looks complete.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "core/base/buffer.h"
#include "core/http/parser.h"
#include "core/loop/tcp_conn.h"
#include "core/loop/timer.h"
#include "core/trace/trace_context.h"
#include "plane/data/authz.h"
#include "plane/data/conn_pool.h"
#include "plane/data/jwt_authn.h"
#include "plane/data/local_reply.h"
#include "plane/data/worker.h"

namespace meshbox::data {

class HttpConnection : public ActiveConnection,
                       loop::TcpConnCallbacks,
                       http::ParserCallbacks,
                       UpstreamClient {
 public:
  /// `snapshot` is the worker's at accept time; it holds `listener` for the connection's life.
  HttpConnection(Worker& worker, SnapshotConstPtr snapshot, const ListenerSpec& listener,
                 loop::TcpConnPtr conn);
  ~HttpConnection() override;

  void drain() override;
  void abort() override { close(); }

 private:
  /// What the connection's one timer is measuring.
  enum class Wait {
    Idle,          // keep-alive, between requests
    Head,          // a request head is arriving (→ 408)
    RequestBody,   // the client's body stalled (→ 408 or reset)
    Response,      // request sent, no response head yet (→ 504)
    ResponseBody,  // the upstream's body stalled (→ reset)
    Flush,         // closing: the last bytes are being written
  };

  // Downstream socket.
  void on_data(const char* data, size_t len) override;
  void on_eof() override;
  void on_error(int uv_error) override;
  void on_drained() override;
  void on_flushed() override;
  // Request parser.
  void on_request_head(http::RequestHead& head) override;
  void on_body(const char* data, size_t len) override;
  void on_message_complete() override;
  // Upstream.
  void on_upstream_head(http::ResponseHead& head) override;
  void on_upstream_body(const char* data, size_t len) override;
  void on_upstream_complete() override;
  void on_upstream_failure(UpstreamFailure why, bool got_response_bytes) override;
  void on_upstream_upgrade(const char* early, size_t len) override;
  void on_upstream_drained() override;
  void on_upstream_read_done() override;

  void process(const char* data, size_t len);
  /// Gateway TLS termination: reads the ClientHello, picks the server by its SNI and
  /// starts TLS with that server's context.
  void on_client_hello(const char* data, size_t len);
  bool pass_through_tcp(const char* data, size_t len);
  void process_held();
  void on_parse_error();
  void on_timeout();
  void arm(Wait what, uint64_t ms);
  void flush_upstream_head();
  std::string_view take_upstream_head();
  bool authenticate(http::RequestHead& head);
  /// The listener's authorization policies (Istio's AuthorizationPolicy), as the worker's
  /// current snapshot has them; a denied request gets 403 "RBAC: access denied" and false.
  bool authorize(const http::RequestHead& head);
  /// x-forwarded-client-cert: set from the mesh mTLS peer on an inbound sidecar, removed
  /// everywhere else (a client's own is never trusted).
  void set_client_cert_header(http::HeaderMap& h);
  /// Learns the TLS peer's identity and the local address, once per connection.
  void learn_peer();
  bool route(http::RequestHead& head);
  void to_origin_form(http::RequestHead& head);
  void rewrite_request(http::RequestHead& head);
  void start_delay();
  void on_delay_done();
  // Tries, retries and the circuit breaker.
  enum class TryFailure { ConnectFailure, Reset, Timeout, Status };
  void start_try();
  void on_connection_slot();
  bool may_retry(TryFailure why, int status);
  void schedule_retry();
  void report_outcome(SharedCluster::Outcome outcome, int status);
  uint64_t try_timeout_ms();
  void arm_response_timer();
  void end_stream_state();
  bool cors(const RouteSpec& r, const http::RequestHead& head);
  /// A token from a local rate limit's bucket; none left: 429 and false.
  bool take_token(const RateLimitSpec& rl);
  void start_shadow(http::RequestHead& head);
  void resume_reading();
  void reply_when_complete(int status, std::string body, ResponseFlag flag,
                           std::string extra_headers = {});
  void start_connect_tunnel();
  bool passthrough_target(std::string_view authority);
  bool resolve_passthrough();
  void finish_stream();
  void release_upstream(bool reusable);
  void local_reply(int status, std::string_view body, ResponseFlag flag, bool close,
                   std::string_view extra_headers = {});
  void fail_stream(const ProxyError& error);
  void close_after_flush();
  void close_with_reset();
  void close();
  /// Telemetry: the request ended (once per request): hand its record to the worker's
  /// observers.
  void record_stream();

  Worker& worker_;
  SnapshotConstPtr snapshot_;  // the accept-time snapshot: holds listener_
  const ListenerSpec& listener_;
  loop::TcpConnPtr down_;
  http::Parser parser_;
  loop::Timer timer_;
  Wait wait_ = Wait::Idle;
  Buffer held_;  // bytes read past the current request (pipelining, upgrade)
  std::string client_ip_;

  // The request in flight (one at a time). It keeps the snapshot and the cluster it was
  // routed with until it ends, whatever the worker applies meanwhile.
  SnapshotConstPtr stream_snapshot_;
  ClusterStatePtr cluster_;
  // The request's route, the match block that held and the destination picked; they point
  // into stream_snapshot_. Null when the request has no Forward route.
  const RouteSpec* route_ = nullptr;
  const RouteMatchSpec* match_ = nullptr;
  const WeightedCluster* destination_ = nullptr;
  // What the request's JWT says (request_authentication); filled by authenticate().
  RequestAuth request_auth_;
  // The request_authentication of the worker's current snapshot (looked up once per snapshot).
  SnapshotConstPtr jwt_snapshot_;
  const RequestAuthnSpec* jwt_ = nullptr;
  // Authorization: the spec of the snapshot last looked at (kept with it), and the TLS
  // peer's identity ("" = none), learned at the first request.
  SnapshotConstPtr authz_snapshot_;
  const AuthzSpec* authz_ = nullptr;
  std::string peer_principal_;  // the SPIFFE ID without "spiffe://"
  std::string peer_spiffe_;     // with it
  std::string xfcc_;            // the x-forwarded-client-cert an inbound sidecar sets
  std::string local_ip_;        // the connection's local address (destination.ip)
  bool peer_learned_ = false;
  uint64_t response_timeout_ms_ = 0;
  // A fault delay: its own timer, so that timer_ keeps measuring the request's timeouts
  // meanwhile. The client is not read while delayed; the body bytes already read and parsed
  // (at most a read plus held_, so bounded) wait in replay_.
  loop::Timer delay_timer_;
  bool delaying_ = false;
  // Tries. While no upstream connection is had (a fault delay, a wait for a connection slot,
  // a retry's backoff) `awaiting_` is set and the body is kept in replay_; reading stops
  // once it holds kMaxReplayBody. With retries on, replay_ keeps the whole body sent so far
  // as long as it fits (replayable_), so a try can be sent again.
  struct Waiter : ConnWaiter {
    HttpConnection* owner = nullptr;
    void on_connection_slot() override { owner->on_connection_slot(); }
  };
  Waiter waiter_;
  // The passthrough cluster's destination: the address, or the host still to look up.
  std::optional<loop::Address> passthrough_;
  std::string passthrough_host_;
  uint16_t passthrough_port_ = 0;
  struct HostWaiter : HostCache::Waiter {
    HttpConnection* owner = nullptr;
    void on_host_resolved(const HostCache::Answer&) override { owner->on_host_resolved(); }
  };
  HostWaiter host_waiter_;
  void on_host_resolved();
  loop::Timer retry_timer_;
  Buffer replay_;
  std::vector<size_t> tried_;   // endpoints of this request's tries (cluster_ indices)
  size_t endpoint_ = SIZE_MAX;  // the current try's
  // The last upstream host recorded (telemetry), and as text: formatted once per address.
  loop::Address upstream_address_;
  std::string upstream_text_;
  uint32_t retries_done_ = 0;
  uint64_t deadline_ms_ = 0;  // loop time the route timeout ends; 0 = not started
  uint64_t hash_ = 0;         // the request's hash, for a ring-hash cluster
  bool has_hash_ = false;
  bool awaiting_ = false;
  bool replayable_ = false;
  bool discard_response_ = false;   // a retried try's response: read and dropped
  bool request_slot_ = false;       // holds one of the cluster's max_requests
  bool retry_slot_ = false;         // holds one of the cluster's retries
  std::string set_cookie_;          // a hash cookie to give the client ("" = none)
  std::string cors_origin_;         // the allowed Origin of a CORS request ("" = none)
  class Shadow* shadow_ = nullptr;  // the request's mirror, while its body streams
  bool abort_after_delay_ = false;  // the fault's abort fired too: it answers once delayed
  std::string target_;              // a rewritten request target (keeps its storage)
  // A local answer (no route, direct response, redirect) to a request whose body is still
  // arriving: sent once the request is complete, so the connection can stay open.
  struct PendingReply {
    int status = 0;
    std::string body, extra_headers;
    ResponseFlag flag = ResponseFlag::None;
  };
  std::optional<PendingReply> pending_reply_;
  ConnPool* pool_ = nullptr;
  UpstreamConn* up_ = nullptr;
  std::string method_;
  std::string upstream_head_;  // kept so a request without a body can be replayed once
  std::string head_to_down_;   // response head not written yet (goes out with the body)
  int version_minor_ = 1;
  bool in_stream_ = false;
  bool parser_paused_ = false;    // a complete request waits for its response
  bool upgrade_pending_ = false;  // Upgrade/CONNECT: the bytes after the head are a tunnel
  bool request_done_ = false;
  bool request_has_body_ = false;
  bool upstream_chunked_ = false;  // we chunk the request body to the upstream
  bool response_started_ = false;
  bool downstream_chunked_ = false;  // we chunk the response body to the client
  bool upstream_keep_alive_ = false;
  bool retried_ = false;
  bool up_head_pending_ = false;  // upstream_head_ not written yet (goes out with the body)
  bool connect_tunnel_ = false;
  bool close_after_ = false;  // close once the current response is out
  bool closing_ = false;
  bool closed_ = false;
  bool sniffed_ = false;      // a capture listener's first bytes were looked at
  bool tls_decided_ = false;  // mesh mTLS: TLS or plain text, from the first bytes
  // Gateway TLS: the server the ClientHello chose (points into snapshot_); null before.
  const TlsServerSpec* tls_server_ = nullptr;
  // CONNECT: the upstream socket while it connects.
  struct ConnectWaiter : loop::TcpConnCallbacks {
    HttpConnection* owner;
    loop::TcpConnPtr conn;
    void on_data(const char*, size_t) override {}
    void on_eof() override { owner->on_connect_result(false); }
    void on_error(int) override { owner->on_connect_result(false); }
    void on_connected() override { owner->on_connect_result(true); }
  };
  void on_connect_result(bool ok);
  std::unique_ptr<ConnectWaiter> connect_;
  // Telemetry of the request in flight (telemetry.h); `open` until it is recorded.
  struct StreamLog {
    bool open = false;
    uint64_t start_ns = 0, head_ns = 0;  // uv_hrtime: the request head, the response head
    uint64_t start_unix_us = 0;
    int status = 0;
    ResponseFlags flags;
    uint64_t request_bytes = 0, response_bytes = 0;
    std::string path, authority, request_id, user_agent, forwarded_for;
    PeerMetadata peer;  // an inbound sidecar's caller, from x-meshbox-peer
    // Tracing (listener_.tracing): this hop's span, whose context went upstream.
    bool traced = false;
    trace::SpanContext trace;
  };
  StreamLog log_;
};

}  // namespace meshbox::data
