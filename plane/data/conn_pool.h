// Upstream HTTP/1.1 connections and their per-worker, per-endpoint keep-alive pool.
// Loop thread only (the owning worker's).
//
// UpstreamConn states (one list per state in the pool):
//   Connecting → Busy (a client owns the exchange) → Idle (in the pool, reading only to notice
//   a close) → Busy … ; any failure → Closed (unlinked, deleted at the end of the iteration).
// A connection is reused only when the last exchange ended cleanly on both sides (whole
// request written, whole response read, keep-alive on both).
#pragma once

#include <memory>
#include <string>

#include "core/base/linked_list.h"
#include "core/http/parser.h"
#include "core/loop/tcp_conn.h"
#include "core/loop/timer.h"
#include "plane/data/shared_cluster.h"
#include "plane/snapshot.h"

namespace meshbox::data {

class ConnPool;

/// What a pool takes from its cluster. A pool belongs to one cluster (Envoy's per-cluster,
/// per-host pools: the cluster's connection limit counts its connections) and survives
/// snapshot changes that keep the cluster, the endpoint and these settings.
struct PoolSettings {
  uint64_t connect_timeout_ms = 5'000;
  uint64_t idle_timeout_ms = 60'000;
  uint32_t max_idle = 1'024;
  uint32_t max_connections = CircuitBreakerSpec::kUnlimited;  // the cluster's, all workers
  uint32_t max_requests_per_connection = 0;                   // 0 = unlimited
  tls::TlsContextConstPtr tls;  // destination_rule tls simple/mutual (ClusterSpec::tls)
  std::string tls_sni;
  static PoolSettings of(const ClusterSpec& c) {
    return {c.connect_timeout_ms,
            c.idle_timeout_ms,
            c.max_idle_per_endpoint,
            c.limits.max_connections,
            c.limits.max_requests_per_connection,
            c.tls,
            c.tls_sni};
  }
  bool operator==(const PoolSettings&) const = default;
};

/// Writes `head` (may be empty), a piece of body (chunk-framed if `chunked`) and, if `last`,
/// the end of a chunked body — in one system call.
void send(loop::TcpConn& conn, std::string_view head, const char* data, size_t len, bool chunked,
          bool last);

/// Why an upstream exchange failed.
enum class UpstreamFailure {
  ConnectFailed,  // refused, unreachable, or connect timeout
  Reset,          // closed or reset before the response was complete
  ProtocolError,  // the response did not parse
};

/// The user of an upstream connection: one proxied request at a time.
class UpstreamClient {
 public:
  virtual ~UpstreamClient() = default;
  virtual void on_upstream_head(http::ResponseHead& head) = 0;
  virtual void on_upstream_body(const char* data, size_t len) = 0;
  /// The response ended. The client must release() the connection.
  virtual void on_upstream_complete() = 0;
  /// The connection failed; `got_response_bytes` says if any response byte arrived.
  /// The client must release() the connection (it will not be reused).
  virtual void on_upstream_failure(UpstreamFailure why, bool got_response_bytes) = 0;
  /// 101 / CONNECT 2xx: the connection is now a tunnel; `early` are bytes that followed the head.
  virtual void on_upstream_upgrade(const char* early, size_t len) = 0;
  /// Request bytes queued for the upstream fell below the low watermark.
  virtual void on_upstream_drained() = 0;
  /// Everything from one read of the upstream socket has been delivered: a good moment to
  /// write out what the callbacks above gathered (one system call instead of several).
  virtual void on_upstream_read_done() {}
};

class UpstreamConn : public LinkedNode,
                     public loop::Deferred,
                     loop::TcpConnCallbacks,
                     http::ParserCallbacks {
 public:
  UpstreamConn(ConnPool& pool, loop::TcpConnPtr conn);
  ~UpstreamConn() override;

  loop::TcpConn& tcp() { return *conn_; }
  /// Hands the socket over (for a tunnel); the UpstreamConn is then released as unusable.
  loop::TcpConnPtr take_tcp() { return std::move(conn_); }
  /// Prepares for the next response (after the client wrote a request head).
  void expect_response_to(std::string_view method) { parser_.expect_response_to(method); }
  /// True if this connection served a request before (a stale keep-alive may fail at once).
  bool reused() const { return requests_ > 1; }
  bool connected() const { return connected_; }

 private:
  friend class ConnPool;
  enum class State { Connecting, Busy, Idle, Closed };

  // TcpConnCallbacks
  void on_data(const char* data, size_t len) override;
  void on_eof() override;
  void on_error(int uv_error) override;
  void on_connected() override;
  void on_drained() override;
  // ParserCallbacks
  void on_response_head(http::ResponseHead& head) override;
  void on_body(const char* data, size_t len) override;
  void on_message_complete() override;

  void fail(UpstreamFailure why);

  ConnPool& pool_;
  loop::TcpConnPtr conn_;
  http::Parser parser_;
  loop::Timer timer_;  // connect timeout while Connecting; idle timeout while Idle
  UpstreamClient* client_ = nullptr;
  State state_ = State::Connecting;
  uint64_t requests_ = 0;
  bool connected_ = false;
  bool got_bytes_ = false;      // any response byte of the current exchange
  bool informational_ = false;  // the last head was a 1xx
  bool response_done_ = false;
  bool reusable_ = false;
  const tls::TlsContext* identity_ = nullptr;  // mesh mTLS: the client identity it was made with
};

/// All upstream connections of one worker to one endpoint.
class ConnPool {
 public:
  /// `shared` counts the connections of the pool's cluster across workers. `netns`: the
  /// network namespace connections are made in (ClusterSpec::netns; "" = meshbox's own).
  /// `load`: this worker's cell of the endpoint in `shared`, where the pool adds its busy and
  /// idle counts for the admin API (null: not counted).
  ConnPool(loop::Loop& loop, loop::Address endpoint, const PoolSettings& settings,
           SharedClusterPtr shared, std::string netns = {}, std::string peer_identity = {},
           EndpointLoad* load = nullptr);
  ~ConnPool();

  /// An idle connection if there is one, else a new one (connecting) — unless the cluster is
  /// at its connection limit: then null, and the caller waits or fails fast (UO). Connect
  /// errors arrive through the client's on_upstream_failure. The request counts as issued.
  ///
  /// A mesh endpoint (EndpointSpec::peer_identity): connections are mTLS with `identity`
  /// (the calling listener's mesh_client; null: plain text) and the server must prove the
  /// peer identity (else a connect failure); an idle connection is reused only by the
  /// identity it was made with.
  UpstreamConn* acquire(UpstreamClient* client, const tls::TlsContextConstPtr& identity = {});
  /// The client is done with `conn`. `reusable`: the exchange ended cleanly on both sides.
  void release(UpstreamConn* conn, bool reusable);
  /// Closes every idle connection (drain).
  void close_idle();

  size_t idle_count() const { return idle_count_; }
  /// Connections connecting or busy (least-request balancing).
  size_t active_count() const { return busy_count_; }
  const loop::Address& endpoint() const { return endpoint_; }
  const std::string& peer_identity() const { return peer_identity_; }
  /// Whether connections are TLS: to a mesh endpoint (peer_identity) when the caller has a
  /// mesh identity, or with the cluster's destination_rule context.
  bool uses_tls(const tls::TlsContextConstPtr& caller) const {
    return settings_.tls || (!peer_identity_.empty() && caller);
  }
  /// The TLS client transport for a new connection of a caller with mesh identity `caller`
  /// (the listener's mesh_client); null: plain text. Also used by TCP tunnels.
  std::unique_ptr<loop::Transport> client_transport(const tls::TlsContextConstPtr& caller) const;
  /// After the handshake of a connection made with client_transport(): whether the server is
  /// the one meant (a mesh endpoint's SPIFFE ID; the context checked the rest). Logs why not.
  bool peer_ok(loop::Transport* transport) const;
  loop::Loop& loop() { return loop_; }
  const PoolSettings& settings() const { return settings_; }
  SharedCluster& shared() { return *shared_; }

 private:
  friend class UpstreamConn;
  void destroy(UpstreamConn* conn);
  /// Adds the change of busy_count_ and idle_count_ since the last call to load_.
  void publish_load();

  loop::Loop& loop_;
  loop::Address endpoint_;
  PoolSettings settings_;
  SharedClusterPtr shared_;
  std::string netns_;
  std::string peer_identity_;
  LinkedList<UpstreamConn> idle_;  // most recently used at the back (LIFO keeps them warm)
  LinkedList<UpstreamConn> busy_;  // connecting or busy
  size_t idle_count_ = 0;
  size_t busy_count_ = 0;
  EndpointLoad* load_;  // owned by shared_; may be null
  size_t published_idle_ = 0, published_busy_ = 0;
};

}  // namespace meshbox::data
