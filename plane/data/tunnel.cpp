#include "plane/data/tunnel.h"

#include <algorithm>

#include <fmt/format.h>

#include "core/base/log.h"
#include "core/tls/sniff.h"
#include "core/tls/tls_transport.h"
#include "plane/data/sni.h"
#include "plane/data/telemetry.h"

namespace meshbox::data {

namespace {}  // namespace

const L4RouteSpec* select_l4_route(const std::vector<L4RouteSpec>& routes,
                                   std::optional<std::string_view> sni) {
  const L4RouteSpec* best = nullptr;
  int best_rank = -1;
  for (const auto& r : routes) {
    int rank = r.sni_hosts.empty() ? 0 : -1;
    for (const auto& pattern : r.sni_hosts)
      rank = std::max(rank, sni_match_rank(pattern, sni));
    if (rank > best_rank) {
      best = &r;
      best_rank = rank;
    }
  }
  return best;
}

const std::string& pick_l4_cluster(const L4RouteSpec& route, Random& random) {
  uint64_t total = 0;
  for (const auto& c : route.clusters)
    total += c.weight;
  uint64_t draw = random.below(total);
  for (const auto& c : route.clusters) {
    if (draw < c.weight) return c.cluster;
    draw -= c.weight;
  }
  return route.clusters.front().cluster;  // every weight 0
}

Tunnel::Tunnel(Worker& worker, loop::TcpConnPtr down, uint64_t idle_timeout_ms)
    : worker_(worker),
      timer_(worker.loop(), [this] { on_timeout(); }),
      idle_timeout_ms_(idle_timeout_ms) {
  down_.tunnel = up_.tunnel = this;
  down_.peer = &up_;
  up_.peer = &down_;
  down_.conn = std::move(down);
  down_.conn->set_callbacks(&down_);
}

void Tunnel::set_up(loop::TcpConnPtr up) {
  up_.conn = std::move(up);
  up_.conn->set_callbacks(&up_);
}

Tunnel* Tunnel::accept(Worker& worker, SnapshotConstPtr snapshot, const ListenerSpec& listener,
                       loop::TcpConnPtr down) {
  Tunnel* t = accept_unrecorded(worker, snapshot, listener, std::move(down));
  if (t && !worker.telemetry().empty()) {
    t->tel_snapshot_ = std::move(snapshot);
    t->tel_listener_ = &listener;
    t->tel_start_ns_ = uv_hrtime();
    t->tel_start_unix_us_ = unix_now_us();
    if (t->cluster_) {
      t->tel_opened_ = true;
      worker.telemetry().connection_opened(t->record());
    }
  }
  return t;
}

Tunnel* Tunnel::accept_unrecorded(Worker& worker, SnapshotConstPtr snapshot,
                                  const ListenerSpec& listener, loop::TcpConnPtr down) {
  if (listener.mesh_server && listener.mesh_tls != ListenerSpec::MeshTls::Disable) {
    auto* t = new Tunnel(worker, std::move(down), listener.tcp_idle_timeout_ms);
    t->snapshot_ = std::move(snapshot);
    t->listener_ = &listener;
    t->sniffing_ = true;
    t->timer_.start(listener.tls_inspect_timeout_ms);
    t->down_.conn->read_start();
    return t;
  }
  if (listener.tls_inspector) {
    auto* t = new Tunnel(worker, std::move(down), listener.tcp_idle_timeout_ms);
    t->snapshot_ = std::move(snapshot);
    t->listener_ = &listener;
    t->inspecting_ = true;
    t->timer_.start(listener.tls_inspect_timeout_ms);
    t->down_.conn->read_start();
    return t;
  }
  const std::string* cluster = &listener.cluster;
  if (!listener.l4_routes.empty()) {
    const L4RouteSpec* route = select_l4_route(listener.l4_routes, std::nullopt);
    if (!route || route->clusters.empty()) return nullptr;
    cluster = &pick_l4_cluster(*route, worker.random());
  }
  return to_cluster(worker, std::move(down), *cluster, listener.tcp_idle_timeout_ms,
                    listener.mesh_client);
}

Tunnel* Tunnel::to_cluster(Worker& worker, loop::TcpConnPtr down, const std::string& cluster,
                           uint64_t idle_timeout_ms, const tls::TlsContextConstPtr& mesh_client) {
  auto* t = new Tunnel(worker, std::move(down), idle_timeout_ms);
  std::string why;
  if (!t->connect(cluster, mesh_client, why)) {
    MB_LOG_EVERY(10, Debug, "tunnel", "connection closed: {}", why);
    t->closed_ = true;  // never tracked by the worker: just go
    t->down_.conn.reset();
    delete t;
    return nullptr;
  }
  // The client may talk first: its bytes wait in the upstream's output buffer until the
  // connection is up, bounded by the watermark like any other write.
  t->down_.conn->read_start();
  return t;
}

bool Tunnel::connect(const std::string& cluster_name, const tls::TlsContextConstPtr& mesh_client,
                     std::string& why) {
  ClusterStatePtr cluster = worker_.cluster(cluster_name);
  if (!cluster) {
    why = fmt::format("no cluster {}", cluster_name);
    return false;
  }
  // TODO(l4): a consistent-hash cluster could hash the client's address (Envoy's tcp_proxy
  // does for use_source_ip); for now a TCP connection goes where the ring puts "no hash".
  size_t endpoint = cluster->pick(worker_.random(), nullptr, {});
  if (endpoint == ClusterState::npos) {
    why = fmt::format("cluster {} has no usable endpoint", cluster_name);
    return false;
  }
  // The cluster's max_connections holds for TCP as for HTTP (Istio's tcp.maxConnections):
  // at the limit the connection is refused at once (Envoy's upstream_cx_overflow, UO).
  const ClusterSpec& spec = cluster->spec();
  if (!cluster->shared().try_open_connection(spec.limits.max_connections)) {
    cluster->shared().count_overflow();
    why = fmt::format("cluster {}: max_connections {} reached (UO)", cluster_name,
                      spec.limits.max_connections);
    return false;
  }
  cluster_ = std::move(cluster);
  endpoint_ = endpoint;
  set_up(loop::TcpConn::create(worker_.loop()));
  ConnPool& pool = cluster_->pool(endpoint);
  if (auto transport = pool.client_transport(mesh_client)) {
    // Bytes the client sends meanwhile wait in the transport until the handshake is done.
    up_.conn->set_transport(std::move(transport));
    check_peer_ = true;
  }
  Status s = up_.conn->connect(pool.endpoint());
  timer_.start(s.is_ok() ? spec.connect_timeout_ms : 0);
  if (tel_listener_ && !tel_opened_) {
    tel_opened_ = true;
    worker_.telemetry().connection_opened(record());
  }
  return true;
}

void Tunnel::report(SharedCluster::Outcome outcome) {
  if (!cluster_ || reported_) return;
  reported_ = true;
  const ClusterSpec& spec = cluster_->spec();
  cluster_->shared().report(cluster_->health(endpoint_), outcome, 0, spec.outlier,
                            spec.endpoints.size());
}

void Tunnel::to_address(Worker& worker, loop::TcpConnPtr down, const loop::Address& to,
                        Buffer first, uint64_t connect_timeout_ms, uint64_t idle_timeout_ms) {
  auto* t = new Tunnel(worker, std::move(down), idle_timeout_ms);
  worker.track(t);
  t->set_up(loop::TcpConn::create(worker.loop()));
  Status s = t->up_.conn->connect(to);
  t->up_.conn->write(std::move(first));  // held until the connection is up
  t->down_.conn->read_start();
  t->timer_.start(s.is_ok() ? connect_timeout_ms : 0);
}

void Tunnel::splice(Worker& worker, loop::TcpConnPtr down, loop::TcpConnPtr up, Buffer to_up,
                    Buffer to_down, uint64_t idle_timeout_ms) {
  auto* t = new Tunnel(worker, std::move(down), idle_timeout_ms);
  t->set_up(std::move(up));
  worker.track(t);
  t->up_.conn->write(std::move(to_up));
  t->down_.conn->write(std::move(to_down));
  t->down_.conn->read_start();
  t->up_.conn->read_start();
  t->touch();
}

void Tunnel::on_hello_data(const char* data, size_t len) {
  hello_.append(data, len);
  SniResult hello = parse_sni(hello_);
  switch (hello.kind) {
    case SniResult::Kind::NeedMore:
      return;
    case SniResult::Kind::NotTls:
    case SniResult::Kind::Error:
      reject(hello.error);
      return;
    case SniResult::Kind::Sni:
    case SniResult::Kind::NoSni:
      break;
  }
  std::optional<std::string_view> sni;
  if (hello.kind == SniResult::Kind::Sni) sni = hello.name;
  const L4RouteSpec* route = select_l4_route(listener_->l4_routes, sni);
  if (!route || route->clusters.empty()) {
    // Envoy: no filter chain matches the server name; the connection is reset.
    reject(sni ? fmt::format("no route for SNI {}", *sni)
               : "no route for a ClientHello without SNI");
    return;
  }
  std::string why;
  if (!connect(pick_l4_cluster(*route, worker_.random()), listener_->mesh_client, why)) {
    reject(why);
    return;
  }
  MB_TRACE("tunnel", "listener {}: SNI {} → route {}", listener_->name, sni ? *sni : "(none)",
           route->name);
  inspecting_ = false;
  listener_ = nullptr;
  tls::TlsContextConstPtr terminate = route->terminate;
  snapshot_.reset();  // the route is chosen: new snapshots may retire this one
  if (terminate) {
    // A gateway server that terminates TLS: the handshake is ours, the plain stream goes on.
    down_.conn->set_transport(tls::TlsTransport::server(std::move(terminate)), hello_);
  } else {
    // The ClientHello goes first, held in the upstream's output until the connection is up.
    up_.conn->write(hello_);
  }
  std::string().swap(hello_);
}

void Tunnel::on_sniff_data(const char* data, size_t len) {
  hello_.append(data, len);
  switch (tls::sniff_tls(hello_)) {
    case tls::Sniffed::NeedMore:
      return;
    case tls::Sniffed::Tls:
      return start_inbound(true);
    case tls::Sniffed::Plain:
      if (listener_->mesh_tls == ListenerSpec::MeshTls::Strict)
        return reject("plain text refused (mTLS strict)");
      return start_inbound(false);
  }
}

void Tunnel::start_inbound(bool tls) {
  sniffing_ = false;
  timer_.stop();
  std::string first;
  first.swap(hello_);
  const std::string* cluster = &listener_->cluster;
  if (!listener_->l4_routes.empty()) {
    const L4RouteSpec* route = select_l4_route(listener_->l4_routes, std::nullopt);
    if (!route || route->clusters.empty()) return reject("no route");
    cluster = &pick_l4_cluster(*route, worker_.random());
  }
  if (tls) {
    // The ClientHello (and whatever followed it) goes to the TLS server first; the app gets
    // the plain text from here on.
    down_.conn->set_transport(tls::TlsTransport::server(listener_->mesh_server), first);
    first.clear();
  }
  std::string why;
  if (!connect(*cluster, {}, why)) return reject(why);
  if (!first.empty()) up_.conn->write(first);  // plain text: what was sniffed goes first
  listener_ = nullptr;
  snapshot_.reset();
}

void Tunnel::reject(std::string_view why) {
  MB_LOG_EVERY(10, Debug, "tunnel", "listener {}: {}: connection from {} reset",
               listener_ ? listener_->name : "?", why, down_.conn->peer().to_string());
  // TODO(stats): count rejections per listener and reason once workers have a stats shard.
  down_.conn->close_reset();
  close();
}

void Tunnel::on_timeout() {
  if (sniffing_) {
    // Nothing from the client: a server-first protocol (its client waits for a banner).
    if (listener_->mesh_tls == ListenerSpec::MeshTls::Strict)
      return reject(fmt::format("no ClientHello after {} ms (mTLS strict)",
                                listener_->tls_inspect_timeout_ms));
    return start_inbound(false);
  }
  if (inspecting_) {
    reject(fmt::format("no whole ClientHello after {} ms", listener_->tls_inspect_timeout_ms));
  } else {
    if (up_.conn && up_.conn->connecting()) report(SharedCluster::Outcome::LocalFailure);
    close();  // connect or idle timeout
  }
}

void Tunnel::drain() {
  if (inspecting_ || sniffing_) close();
}

void Tunnel::close() {
  if (closed_) return;
  if (tel_opened_) worker_.telemetry().connection(record());
  closed_ = true;
  timer_.stop();
  down_.conn.reset();
  bool had_upstream = up_.conn != nullptr;
  up_.conn.reset();
  snapshot_.reset();
  if (cluster_ && had_upstream) cluster_->shared().close_connection();
  cluster_.reset();
  worker_.remove(this);
}

void Tunnel::Side::on_connected() {
  // Only the upstream side connects.
  if (tunnel->check_peer_ &&
      !tunnel->cluster_->pool(tunnel->endpoint_).peer_ok(conn->transport())) {
    tunnel->report(SharedCluster::Outcome::LocalFailure);
    if (peer->conn) peer->conn->close_reset();
    tunnel->close();
    return;
  }
  tunnel->check_peer_ = false;
  tunnel->report(SharedCluster::Outcome::Success);
  tunnel->touch();
  conn->read_start();
}

void Tunnel::Side::on_data(const char* data, size_t len) {
  if (tunnel->sniffing_) {
    tunnel->on_sniff_data(data, len);  // only the client is read while sniffing
    return;
  }
  if (tunnel->inspecting_) {
    tunnel->on_hello_data(data, len);  // only the client is read while inspecting
    return;
  }
  tunnel->touch();
  (this == &tunnel->down_ ? tunnel->received_ : tunnel->sent_) += len;
  peer->conn->write(data, len);
  if (peer->conn->above_high_watermark()) conn->read_stop();
}

void Tunnel::Side::on_drained() {
  // Our output drained: the peer may read again.
  if (!peer->eof && peer->conn) peer->conn->read_start();
}

void Tunnel::Side::on_eof() {
  eof = true;
  if (tunnel->inspecting_ || tunnel->sniffing_) {
    // The client gave up before its ClientHello was whole: nothing to route.
    tunnel->close();
    return;
  }
  peer->conn->shutdown();  // FIN after everything already queued
}

void Tunnel::Side::on_flushed() {
  // This side's output is flushed and its FIN sent: the peer's direction is finished.
  peer->finished = true;
  if (finished && peer->finished) tunnel->close();
}

void Tunnel::Side::on_error(int err) {
  loop::Transport* t = conn ? conn->transport() : nullptr;
  if (t && !t->error_detail().empty() && this == &tunnel->up_) {
    MB_LOG_EVERY(
        10, Warn, "tunnel", "upstream {}: {}",
        tunnel->cluster_ ? tunnel->cluster_->pool(tunnel->endpoint_).endpoint().to_string() : "?",
        t->error_detail());
  } else {
    MB_DEBUG("tunnel", "tunnel closed: {}{}{}", uv_strerror(err), t ? ": " : "",
             t ? t->error_detail() : "");
  }
  // A connect that failed (the upstream never connected) counts against the endpoint.
  if (this == &tunnel->up_) tunnel->report(SharedCluster::Outcome::LocalFailure);
  // Pass the failure on as a reset rather than a clean end.
  if (peer->conn) peer->conn->close_reset();
  tunnel->close();
}

ConnectionRecord Tunnel::record() const {
  ConnectionRecord r;
  r.listener = tel_listener_;
  r.start_unix_us = tel_start_unix_us_;
  r.duration_us = (uv_hrtime() - tel_start_ns_) / 1000;
  r.received_bytes = received_;
  r.sent_bytes = sent_;
  auto view = [](const PeerMetadata& m) {
    return PeerView{m.workload, m.ns, m.app, m.version, m.principal};
  };
  const EndpointSpec* ep = nullptr;
  if (cluster_) {
    r.cluster = &cluster_->spec();
    if (endpoint_ < r.cluster->endpoints.size()) {
      ep = &r.cluster->endpoints[endpoint_];
      r.upstream_host = ep->address.to_string();
    }
  }
  if (down_.conn) r.downstream_remote = down_.conn->peer().ip();
  if (tel_listener_->reporter == ListenerSpec::Reporter::Destination) {
    r.destination = view(tel_listener_->self);
    if (const tls::TlsTransport* tls =
            down_.conn ? tls::TlsTransport::of(down_.conn->transport()) : nullptr) {
      r.mtls = true;
      r.source.principal = tls->peer_spiffe_id();
      std::string_view id = r.source.principal;
      if (size_t at = id.find("/ns/"); at != std::string_view::npos) {
        id.remove_prefix(at + 4);
        r.source.ns = id.substr(0, id.find('/'));
      }
    }
  } else {
    r.source = view(tel_listener_->self);
    if (ep) {
      r.destination = view(ep->workload);
      r.mtls = !ep->peer_identity.empty() || r.cluster->tls != nullptr;
    }
  }
  return r;
}

}  // namespace meshbox::data
