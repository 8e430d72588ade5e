// Tunnel: bytes both ways between two TCP connections, with backpressure (a side stops
// reading while the other's output is above its high watermark) and half-close (a FIN from
// one side is passed on after its bytes; the tunnel ends when both directions are done).
// Used by TCP listeners (the L4 proxy, Envoy's tcp_proxy) and by HTTP connections after an
// Upgrade (101) or a CONNECT. Loop thread only; owned by its Worker's connection list.
//
// On a TCP listener a tunnel first picks its route (ListenerSpec::l4_routes): at once, or,
// with the listener's tls_inspector, once the client's ClientHello is whole (plane/data/sni.h).
// The ClientHello is read, never answered: it is held (at most kMaxClientHelloBytes and one
// read), then sent upstream ahead of whatever follows, so TLS runs end to end (passthrough).
// The route's cluster is drawn by weight for each connection, then resolved in the worker's
// current snapshot.
//
// Mesh mTLS: the upstream side is TLS when the endpoint takes mesh mTLS (with the listener's
// mesh_client identity) or its cluster has destination_rule tls (ConnPool::client_transport).
// An inbound sidecar listener with mesh_server first sniffs the client's first bytes: a
// ClientHello turns TLS on (terminated here; the app gets plain text), plain text is passed
// through under PERMISSIVE and reset under STRICT. A client that sends nothing for
// tls_inspect_timeout_ms is taken as plain text under PERMISSIVE (a server-first protocol,
// whose client waits for the server to speak) and reset under STRICT.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/base/buffer.h"
#include "core/base/random.h"
#include "core/loop/tcp_conn.h"
#include "core/loop/timer.h"
#include "plane/data/worker.h"

namespace meshbox::data {

class Tunnel : public ActiveConnection {
 public:
  /// A TCP listener's new connection: routes it (now, or after its ClientHello) and connects
  /// upstream. `snapshot` is the worker's at accept time; the tunnel keeps it only until the
  /// route is chosen. Null if the connection cannot be routed now (no route, cluster or
  /// endpoint): `down` is then closed. The caller tracks the tunnel.
  static Tunnel* accept(Worker& worker, SnapshotConstPtr snapshot, const ListenerSpec& listener,
                        loop::TcpConnPtr down);
  /// A tunnel from `down` to cluster `cluster` (a captured connection to a service's virtual
  /// IP); null, `down` closed, when it cannot be routed now. The caller tracks the tunnel.
  static Tunnel* to_cluster(Worker& worker, loop::TcpConnPtr down, const std::string& cluster,
                            uint64_t idle_timeout_ms,
                            const tls::TlsContextConstPtr& mesh_client = {});
  /// A tunnel from `down` to the address `to`, no cluster (a captured connection passed
  /// through to its original destination); `first` are bytes already read from `down`. The
  /// worker tracks the new tunnel.
  static void to_address(Worker& worker, loop::TcpConnPtr down, const loop::Address& to,
                         Buffer first, uint64_t connect_timeout_ms, uint64_t idle_timeout_ms);
  /// Takes over two connected sockets (after an HTTP upgrade). `to_up`/`to_down` are bytes
  /// already read that belong to the other side. The worker tracks the new tunnel.
  static void splice(Worker& worker, loop::TcpConnPtr down, loop::TcpConnPtr up, Buffer to_up,
                     Buffer to_down, uint64_t idle_timeout_ms);

  /// A tunnel has no request boundary: it ends with the drain deadline. One still waiting for
  /// its ClientHello has nothing in flight and closes now.
  void drain() override;
  void abort() override { close(); }

 private:
  struct Side : loop::TcpConnCallbacks {
    Tunnel* tunnel = nullptr;
    Side* peer = nullptr;
    loop::TcpConnPtr conn;
    bool eof = false;       // this side sent FIN
    bool finished = false;  // FIN passed on to the peer and flushed
    void on_data(const char* data, size_t len) override;
    void on_eof() override;
    void on_error(int err) override;
    void on_connected() override;
    void on_drained() override;
    void on_flushed() override;
  };

  Tunnel(Worker& worker, loop::TcpConnPtr down, uint64_t idle_timeout_ms);
  static Tunnel* accept_unrecorded(Worker& worker, SnapshotConstPtr snapshot,
                                   const ListenerSpec& listener, loop::TcpConnPtr down);
  void set_up(loop::TcpConnPtr up);
  /// Picks an endpoint of `cluster` and starts connecting to it (the connect timeout
  /// armed); false (and `why`) when there is none or the cluster is at max_connections.
  bool connect(const std::string& cluster, const tls::TlsContextConstPtr& mesh_client,
               std::string& why);
  /// Mesh mTLS on an inbound listener: the client's first bytes (in hello_) say TLS or not.
  void on_sniff_data(const char* data, size_t len);
  /// Sniffing is over: TLS (terminate it) or plain text; route and connect upstream.
  void start_inbound(bool tls);
  /// The endpoint's first outcome (connected, or not) for outlier detection; only the first
  /// call counts, so an error after the connect succeeded is not a connect failure.
  void report(SharedCluster::Outcome outcome);
  /// Bytes from the client while the ClientHello is incomplete.
  void on_hello_data(const char* data, size_t len);
  /// Refuses a connection still being inspected: logged, then reset.
  void reject(std::string_view why);
  void on_timeout();
  /// Restarts the idle timeout; not while the upstream connects (TLS handshake included), so
  /// that bytes the client sends meanwhile do not replace the connect timeout.
  void touch() {
    if (!up_.conn || (!up_.conn->connecting() && !check_peer_)) timer_.start(idle_timeout_ms_);
  }
  void close();
  /// Telemetry: the connection as it is now (tel_listener_ is set).
  ConnectionRecord record() const;

  Worker& worker_;
  Side down_, up_;
  loop::Timer timer_;  // ClientHello timeout, then connect timeout, then idle timeout
  uint64_t idle_timeout_ms_;
  // While the ClientHello is read (tls_inspector): the snapshot holding the listener, and
  // every byte the client sent.
  SnapshotConstPtr snapshot_;
  const ListenerSpec* listener_ = nullptr;
  std::string hello_;
  bool inspecting_ = false;
  bool sniffing_ = false;    // mesh mTLS inbound: waiting for the first bytes
  bool check_peer_ = false;  // the upstream is TLS and not yet connected: check its peer
  bool closed_ = false;
  bool reported_ = false;
  ClusterStatePtr cluster_;  // the upstream's, while it holds one of its connections
  size_t endpoint_ = 0;
  // Telemetry of a tcp listener's connection: the listener (its snapshot kept for the
  // connection's life), when it opened, the bytes each way. Null listener: not recorded.
  SnapshotConstPtr tel_snapshot_;
  const ListenerSpec* tel_listener_ = nullptr;
  uint64_t tel_start_ns_ = 0, tel_start_unix_us_ = 0;
  uint64_t received_ = 0, sent_ = 0;
  bool tel_opened_ = false;
};

/// The route for a connection whose ClientHello named `sni` (nullopt: no name; also for TCP
/// listeners, whose routes have no sni_hosts): the most specific match (sni_match_rank; an
/// empty sni_hosts ranks as "*"), the first among equals. Null if none matches.
const L4RouteSpec* select_l4_route(const std::vector<L4RouteSpec>& routes,
                                   std::optional<std::string_view> sni);

/// One of `route`'s clusters, drawn by weight (`route.clusters` is not empty).
const std::string& pick_l4_cluster(const L4RouteSpec& route, Random& random);

}  // namespace meshbox::data
