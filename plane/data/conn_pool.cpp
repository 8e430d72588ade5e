#include "plane/data/conn_pool.h"

#include "core/base/log.h"
#include "core/http/serializer.h"
#include "core/loop/netns.h"
#include "core/tls/tls_transport.h"

namespace meshbox::data {

void send(loop::TcpConn& conn, std::string_view head, const char* data, size_t len, bool chunked,
          bool last) {
  iovec parts[5];
  size_t n = 0;
  char size_line[24];
  if (!head.empty()) parts[n++] = {const_cast<char*>(head.data()), head.size()};
  if (len > 0) {
    if (chunked) {
      int w = snprintf(size_line, sizeof size_line, "%zx\r\n", len);
      parts[n++] = {size_line, static_cast<size_t>(w)};
    }
    parts[n++] = {const_cast<char*>(data), len};
    if (chunked) parts[n++] = {const_cast<char*>("\r\n"), 2};
  }
  if (last && chunked)
    parts[n++] = {const_cast<char*>(http::kLastChunk.data()), http::kLastChunk.size()};
  if (n > 0) conn.writev(parts, n);
}

UpstreamConn::UpstreamConn(ConnPool& pool, loop::TcpConnPtr conn)
    : pool_(pool),
      conn_(std::move(conn)),
      parser_(http::Parser::Kind::Response, *this),
      timer_(pool.loop(), [this] {
        if (state_ == State::Idle) return pool_.destroy(this);
        if (!connected_) fail(UpstreamFailure::ConnectFailed);
      }) {
  conn_->set_callbacks(this);
}

UpstreamConn::~UpstreamConn() = default;

void UpstreamConn::on_connected() {
  if (identity_ && !pool_.peer_ok(conn_->transport())) return fail(UpstreamFailure::ConnectFailed);
  connected_ = true;
  timer_.stop();
  conn_->read_start();
}

void UpstreamConn::on_data(const char* data, size_t len) {
  if (state_ == State::Idle) {
    // An idle keep-alive connection has nothing to say; bytes here mean it is unusable.
    return pool_.destroy(this);
  }
  if (!client_) return;
  got_bytes_ = true;
  while (true) {
    auto r = parser_.feed(data, len);
    if (!client_) return;
    switch (r.state) {
      case http::Parser::State::Ok:
        return client_->on_upstream_read_done();
      case http::Parser::State::Paused:
        data += r.consumed;
        len -= r.consumed;
        if (informational_) {
          informational_ = false;
          parser_.resume();
          if (len == 0) return;
          continue;
        }
        // Bytes after a complete response: the upstream is confused; never reuse it.
        reusable_ = len == 0;
        response_done_ = true;
        return client_->on_upstream_complete();
      case http::Parser::State::Upgrade:
        reusable_ = false;
        return client_->on_upstream_upgrade(data + r.consumed, len - r.consumed);
      case http::Parser::State::Error:
      case http::Parser::State::Stopped:
        MB_LOG_EVERY(1, Debug, "upstream", "bad response from {}: {}", pool_.endpoint().to_string(),
                     parser_.error_reason());
        return fail(UpstreamFailure::ProtocolError);
    }
  }
}

void UpstreamConn::on_eof() {
  if (state_ == State::Idle || !client_) return pool_.destroy(this);
  // A response delimited by the close ends here; anything else was cut short.
  if (parser_.in_message() && parser_.finish()) {
    reusable_ = false;
    response_done_ = true;
    return client_->on_upstream_complete();
  }
  fail(UpstreamFailure::Reset);
}

void UpstreamConn::on_error(int err) {
  if (state_ == State::Idle || !client_) return pool_.destroy(this);
  // A TLS 1.3 server refusing the client's certificate says so after the client's handshake
  // finished: still a connect failure (UF), not a reset.
  bool handshake = err == loop::kErrTransportHandshake;
  if ((!connected_ || handshake) && conn_ && conn_->transport())
    MB_LOG_EVERY(10, Warn, "upstream", "{}{}{}: {}: {}", pool_.endpoint().to_string(),
                 pool_.settings().tls_sni.empty() ? "" : " SNI ", pool_.settings().tls_sni,
                 loop::uv_error(err), conn_->transport()->error_detail());
  fail(connected_ && !handshake ? UpstreamFailure::Reset : UpstreamFailure::ConnectFailed);
}

void UpstreamConn::on_drained() {
  if (client_) client_->on_upstream_drained();
}

void UpstreamConn::on_response_head(http::ResponseHead& head) {
  informational_ = head.status < 200 && head.status != 101;
  if (client_) client_->on_upstream_head(head);
}

void UpstreamConn::on_body(const char* data, size_t len) {
  if (client_) client_->on_upstream_body(data, len);
}

void UpstreamConn::on_message_complete() {}

void UpstreamConn::fail(UpstreamFailure why) {
  timer_.stop();
  reusable_ = false;
  if (client_) client_->on_upstream_failure(why, got_bytes_);
}

ConnPool::ConnPool(loop::Loop& loop, loop::Address endpoint, const PoolSettings& settings,
                   SharedClusterPtr shared, std::string netns, std::string peer_identity,
                   EndpointLoad* load)
    : loop_(loop),
      endpoint_(endpoint),
      settings_(settings),
      shared_(std::move(shared)),
      netns_(std::move(netns)),
      peer_identity_(std::move(peer_identity)),
      load_(load) {}

ConnPool::~ConnPool() {
  close_idle();
  busy_.for_each([this](UpstreamConn* c) { destroy(c); });
}

namespace {

/// `got` is one of the comma-separated IDs of `want`, or `want` is "*" and `got` any ID.
bool identity_matches(std::string_view want, std::string_view got) {
  if (got.empty()) return false;
  if (want == "*") return true;
  while (!want.empty()) {
    size_t comma = want.find(',');
    if (want.substr(0, comma) == got) return true;
    if (comma == std::string_view::npos) break;
    want.remove_prefix(comma + 1);
  }
  return false;
}

}  // namespace

std::unique_ptr<loop::Transport> ConnPool::client_transport(
    const tls::TlsContextConstPtr& caller) const {
  if (settings_.tls) {
    // A session goes back only to the address and name it came from.
    return tls::TlsTransport::client(
        settings_.tls, {.server_name = settings_.tls_sni,
                        .session_key = endpoint_.to_string() + "|" + settings_.tls_sni});
  }
  if (peer_identity_.empty() || !caller) return nullptr;
  return tls::TlsTransport::client(caller,
                                   {.server_name = {}, .session_key = endpoint_.to_string()});
}

bool ConnPool::peer_ok(loop::Transport* transport) const {
  if (settings_.tls) return true;  // the context verified the name or SANs
  // Mesh mTLS: the chain reached the mesh root; now the workload must be the one meant.
  auto* t = tls::TlsTransport::of(transport);
  if (t && identity_matches(peer_identity_, t->peer_spiffe_id())) return true;
  MB_LOG_EVERY(10, Warn, "upstream", "{}: the peer is {}, not {}: connection refused",
               endpoint_.to_string(), t && !t->peer_spiffe_id().empty() ? t->peer_spiffe_id() : "?",
               peer_identity_);
  return false;
}

UpstreamConn* ConnPool::acquire(UpstreamClient* client, const tls::TlsContextConstPtr& identity) {
  // The context connections are made with: an idle one is reused only by callers that
  // would make the same (mesh: per calling identity).
  const tls::TlsContext* id = settings_.tls            ? settings_.tls.get()
                              : peer_identity_.empty() ? nullptr
                                                       : identity.get();
  UpstreamConn* c = idle_.back();
  if (c && c->identity_ != id) {
    // Another identity's connection last: the newest of ours, if any (rare: a pool serves
    // one calling identity unless several sidecars call the same endpoint).
    c = nullptr;
    idle_.for_each([&](UpstreamConn* x) {
      if (x->identity_ == id) c = x;
    });
  }
  if (c) {
    --idle_count_;
    c->timer_.stop();
  } else {
    if (!shared_->try_open_connection(settings_.max_connections)) return nullptr;
    c = new UpstreamConn(*this, loop::TcpConn::create(loop_));
    Status s = Status::ok();
    if (!netns_.empty()) {
      // A captured workload's app, on its namespace's loopback: the socket is made there.
      auto fd = loop::tcp_socket_in_netns(netns_, endpoint_.family());
      s = fd ? c->conn_->adopt(*fd) : fd.error();
      if (!s.is_ok()) MB_LOG_EVERY(1, Warn, "pool", "{}", s.message());
    }
    if (s.is_ok() && id) {
      c->identity_ = id;
      c->conn_->set_transport(client_transport(identity));
    }
    if (s.is_ok()) s = c->conn_->connect(endpoint_);
    // An immediate failure is reported from the loop, never from inside acquire().
    c->timer_.start(s.is_ok() ? settings_.connect_timeout_ms : 0);
  }
  busy_.push_back(c);
  ++busy_count_;
  c->state_ = UpstreamConn::State::Busy;
  c->client_ = client;
  c->requests_++;
  c->got_bytes_ = c->informational_ = c->response_done_ = c->reusable_ = false;
  publish_load();
  return c;
}

void ConnPool::release(UpstreamConn* c, bool reusable) {
  c->client_ = nullptr;
  bool worn_out = settings_.max_requests_per_connection > 0 &&
                  c->requests_ >= settings_.max_requests_per_connection;
  if (!reusable || !c->reusable_ || !c->conn_ || !c->connected_ || worn_out ||
      idle_count_ >= settings_.max_idle) {
    return destroy(c);
  }
  --busy_count_;
  c->parser_.resume();
  c->conn_->read_start();  // backpressure may have paused it; idle reads notice a close
  c->state_ = UpstreamConn::State::Idle;
  idle_.push_back(c);
  ++idle_count_;
  c->timer_.start(settings_.idle_timeout_ms);
  publish_load();
}

void ConnPool::close_idle() {
  idle_.for_each([this](UpstreamConn* c) { destroy(c); });
}

void ConnPool::destroy(UpstreamConn* c) {
  if (c->state_ == UpstreamConn::State::Idle)
    --idle_count_;
  else if (c->state_ != UpstreamConn::State::Closed)
    --busy_count_;
  if (c->state_ != UpstreamConn::State::Closed) shared_->close_connection();
  c->unlink();
  c->state_ = UpstreamConn::State::Closed;
  c->client_ = nullptr;
  c->conn_.reset();
  c->timer_.stop();
  loop_.defer_delete(std::unique_ptr<loop::Deferred>(c));
  publish_load();
}

void ConnPool::publish_load() {
  if (!load_) return;
  // Only this worker writes the cell: a load and a store, no atomic read-modify-write.
  // Unsigned arithmetic wraps, so a negative change adds up right.
  auto add = [](std::atomic<uint32_t>& cell, size_t now, size_t& published) {
    if (now == published) return;
    uint32_t v = cell.load(std::memory_order_relaxed);
    cell.store(v + static_cast<uint32_t>(now) - static_cast<uint32_t>(published),
               std::memory_order_relaxed);
    published = now;
  };
  add(load_->busy, busy_count_, published_busy_);
  add(load_->idle, idle_count_, published_idle_);
}

}  // namespace meshbox::data
