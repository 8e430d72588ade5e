#include "plane/data/http_connection.h"

#include <chrono>

#include "core/base/log.h"
#include "core/http/serializer.h"
#include "core/tls/sniff.h"
#include "core/tls/tls_transport.h"
#include "plane/data/load_balancer.h"
#include "plane/data/router.h"
#include "plane/data/shadow.h"
#include "plane/data/sni.h"
#include "plane/data/telemetry.h"
#include "plane/data/tunnel.h"

namespace meshbox::data {

namespace {

constexpr size_t kMaxHeldBytes = 64 * 1024;         // pipelined bytes buffered before reading stops
constexpr uint64_t kPassthroughConnectMs = 10'000;  // Istio's default connect_timeout

bool is_hop_by_hop(std::string_view name) {
  using http::iequals;
  // Dispatch on the length first: most headers match no length here.
  switch (name.size()) {
    case 2:
      return iequals(name, "te");
    case 7:
      return iequals(name, "trailer") || iequals(name, "upgrade");
    case 10:
      return iequals(name, "connection") || iequals(name, "keep-alive");
    case 16:
      return iequals(name, "proxy-connection");
    case 17:
      return iequals(name, "transfer-encoding");
    case 18:
      return iequals(name, "proxy-authenticate");
    case 19:
      return iequals(name, "proxy-authorization");
    default:
      return false;
  }
}

/// RFC 9110 §9.2.2.
bool is_idempotent(std::string_view method) {
  return method == "GET" || method == "HEAD" || method == "OPTIONS" || method == "TRACE" ||
         method == "PUT" || method == "DELETE";
}

/// Removes hop-by-hop headers and every header the Connection header names (RFC 9110 §7.6.1).
void strip_hop_by_hop(http::HeaderMap& headers) {
  std::vector<std::string> named;
  bool any = false;
  for (const auto& h : headers) {
    if (!is_hop_by_hop(h.name)) continue;
    any = true;
    if (!http::iequals(h.name, "connection")) continue;
    std::string_view list = h.value;
    while (!list.empty()) {
      size_t comma = list.find(',');
      std::string_view item = list.substr(0, comma);
      while (!item.empty() && (item.front() == ' ' || item.front() == '\t'))
        item.remove_prefix(1);
      while (!item.empty() && (item.back() == ' ' || item.back() == '\t'))
        item.remove_suffix(1);
      if (!item.empty()) named.emplace_back(item);
      if (comma == std::string_view::npos) break;
      list.remove_prefix(comma + 1);
    }
  }
  if (!any) return;  // the common case: nothing to remove, nothing to move
  headers.remove_if([&](const http::HeaderEntry& e) {
    if (is_hop_by_hop(e.name)) return true;
    for (const auto& n : named)
      if (http::iequals(e.name, n)) return true;
    return false;
  });
}

void append_to_list(http::HeaderMap& headers, std::string_view name, std::string_view value) {
  if (http::HeaderEntry* e = headers.find(name)) {
    e->value.append(", ");
    e->value.append(value);
    return;
  }
  headers.add(name, value);
}

}  // namespace

HttpConnection::HttpConnection(Worker& worker, SnapshotConstPtr snapshot,
                               const ListenerSpec& listener, loop::TcpConnPtr conn)
    : worker_(worker),
      snapshot_(std::move(snapshot)),
      listener_(listener),
      down_(std::move(conn)),
      parser_(http::Parser::Kind::Request, *this, listener.http.limits),
      timer_(worker.loop(), [this] { on_timeout(); }),
      delay_timer_(worker.loop(), [this] { on_delay_done(); }),
      retry_timer_(worker.loop(), [this] {
        start_try();
        flush_upstream_head();
      }) {
  waiter_.owner = this;
  host_waiter_.owner = this;
  client_ip_ = down_->peer().ip();
  down_->set_callbacks(this);
  down_->read_start();
  // A TLS gateway's client has as long for its ClientHello as a TLS inspector gives it.
  arm(Wait::Idle, listener_.tls_servers.empty() ? listener_.http.idle_timeout_ms
                                                : listener_.tls_inspect_timeout_ms);
}

HttpConnection::~HttpConnection() = default;

void HttpConnection::arm(Wait what, uint64_t ms) {
  wait_ = what;
  timer_.start(ms);
}

// ---- downstream bytes -------------------------------------------------------------------

void HttpConnection::on_data(const char* data, size_t len) {
  if (closing_) return;
  if (!tls_decided_ && !listener_.tls_servers.empty()) return on_client_hello(data, len);
  if (!tls_decided_ && listener_.mesh_server) {
    // Mesh mTLS on an inbound sidecar: a ClientHello turns TLS on (the bytes read so far go
    // to it first); plain text is served when permissive, refused when strict.
    held_.append(data, len);
    std::string first = held_.to_string();
    tls::Sniffed kind = tls::sniff_tls(first);
    if (kind == tls::Sniffed::NeedMore) return;
    tls_decided_ = true;
    held_.clear();
    if (kind == tls::Sniffed::Tls) {
      down_->set_transport(tls::TlsTransport::server(listener_.mesh_server), first);
      return;
    }
    if (listener_.mesh_tls == ListenerSpec::MeshTls::Strict) {
      MB_LOG_EVERY(10, Debug, "http", "listener {}: plain text from {} refused (mTLS strict)",
                   listener_.name, client_ip_);
      down_->close_reset();
      return close();
    }
    return process(first.data(), first.size());
  }
  if (!sniffed_ && listener_.capture_outbound) {
    // A captured app's connection to somewhere that is not a tcp service: HTTP methods are
    // upper-case tokens; anything else is another protocol, passed through or refused.
    sniffed_ = true;
    if (len > 0 && !(data[0] >= 'A' && data[0] <= 'Z')) {
      pass_through_tcp(data, len);
      return;
    }
  }
  if (parser_paused_ || upgrade_pending_) {
    // A request is being answered: keep what follows for later, within a bound.
    held_.append(data, len);
    if (held_.size() > kMaxHeldBytes) down_->read_stop();
    return;
  }
  process(data, len);
}

void HttpConnection::on_client_hello(const char* data, size_t len) {
  held_.append(data, len);
  std::string hello_bytes = held_.to_string();
  SniResult hello = parse_sni(hello_bytes);
  if (hello.kind == SniResult::Kind::NeedMore) return;  // parse_sni bounds what is held
  if (hello.kind == SniResult::Kind::NotTls || hello.kind == SniResult::Kind::Error) {
    MB_LOG_EVERY(10, Debug, "http", "listener {}: {} from {}: connection reset", listener_.name,
                 hello.error, client_ip_);
    down_->close_reset();
    return close();
  }
  tls_decided_ = true;
  held_.clear();
  std::optional<std::string_view> sni;
  if (hello.kind == SniResult::Kind::Sni) sni = hello.name;
  // Istio's filter chain per server: the most specific SNI match, else the first server.
  tls_server_ = &listener_.tls_servers.front();
  int best = -1;
  for (const TlsServerSpec& s : listener_.tls_servers) {
    for (const std::string& pattern : s.sni_hosts) {
      int rank = sni_match_rank(pattern, sni);
      if (rank > best) {
        best = rank;
        tls_server_ = &s;
      }
    }
  }
  MB_TRACE("http", "listener {}: SNI {} → {}", listener_.name, sni ? *sni : "(none)",
           tls_server_->name);
  down_->set_transport(tls::TlsTransport::server(tls_server_->context), hello_bytes);
  // The handshake and the first request head within the header timeout.
  arm(Wait::Idle, listener_.http.header_timeout_ms);
}

void HttpConnection::process(const char* data, size_t len) {
  while (len > 0 && !closing_) {
    if (!in_stream_ && !parser_.in_message()) arm(Wait::Head, listener_.http.header_timeout_ms);
    auto r = parser_.feed(data, len);
    if (closed_) return;
    switch (r.state) {
      case http::Parser::State::Ok:
        flush_upstream_head();
        if (wait_ == Wait::RequestBody) arm(Wait::RequestBody, listener_.http.idle_timeout_ms);
        return;
      case http::Parser::State::Paused:
        data += r.consumed;
        len -= r.consumed;
        if (in_stream_) {
          // The response is still coming: hold the next request until it is out.
          parser_paused_ = true;
          held_.append(data, len);
          if (held_.size() > kMaxHeldBytes) down_->read_stop();
          return;
        }
        parser_.resume();
        continue;
      case http::Parser::State::Upgrade:
        flush_upstream_head();
        upgrade_pending_ = true;
        held_.append(data + r.consumed, len - r.consumed);
        return;
      case http::Parser::State::Error:
        return on_parse_error();
      case http::Parser::State::Stopped:
        return;
    }
  }
}

void HttpConnection::process_held() {
  if (held_.empty() || closing_) return;
  std::string bytes = held_.to_string();
  held_.clear();
  process(bytes.data(), bytes.size());
}

void HttpConnection::on_parse_error() {
  http::ParseError e = parser_.error();
  MB_LOG_EVERY(5, Debug, "http", "bad request from {}: {}", client_ip_, parser_.error_reason());
  if (in_stream_ && response_started_) return close_with_reset();
  if (up_) release_upstream(false);
  std::string body = std::string(parser_.error_reason()) + "\n";
  local_reply(http::error_status(e), body, ResponseFlag::DownstreamProtocolError, true);
}

void HttpConnection::on_eof() {
  if (closing_) return;
  if (!in_stream_ && !parser_.in_message()) return close();
  if (in_stream_ && request_done_) {
    // Half-close after a complete request is allowed: answer, then close.
    close_after_ = true;
    return;
  }
  // The request was cut short.
  if (response_started_) return close_with_reset();
  close();
}

void HttpConnection::on_error(int) {
  if (tls_server_ && !down_->transport()->error_detail().empty()) {
    MB_LOG_EVERY(10, Debug, "http", "listener {}: TLS with {} failed: {}", listener_.name,
                 client_ip_, down_->transport()->error_detail());
  }
  close();
}

void HttpConnection::on_drained() {
  if (up_ && !closing_) up_->tcp().read_start();
}

void HttpConnection::on_flushed() {
  if (closing_) close();
}

// ---- the request --------------------------------------------------------------------------

void HttpConnection::on_request_head(http::RequestHead& head) {
  in_stream_ = true;
  {
    StreamLog& log = log_;
    log.open = true;
    log.start_ns = uv_hrtime();
    log.head_ns = 0;
    log.start_unix_us = unix_now_us();
    log.status = 0;
    log.flags.clear();
    log.request_bytes = log.response_bytes = 0;
    log.path = head.target;
    const http::HeaderMap& h = head.headers;
    // Assigned in place: the strings keep their capacity from one request to the next.
    const auto keep = [&h](std::string& to, std::string_view name) {
      const std::string* v = h.get(name);
      if (v)
        to.assign(*v);
      else
        to.clear();
    };
    keep(log.authority, "host");
    keep(log.request_id, "x-request-id");
    keep(log.user_agent, "user-agent");
    keep(log.forwarded_for, "x-forwarded-for");
    log.peer = {};
    log.traced = false;
    // Who calls (metadata exchange): an inbound sidecar takes it; nobody passes it on.
    if (const std::string* peer = h.get(kPeerHeader)) {
      if (listener_.reporter == ListenerSpec::Reporter::Destination) decode_peer(*peer, log.peer);
      head.headers.remove(kPeerHeader);
    }
  }
  request_done_ = response_started_ = downstream_chunked_ = upstream_keep_alive_ = false;
  retried_ = delaying_ = abort_after_delay_ = false;
  tried_.clear();
  endpoint_ = SIZE_MAX;
  retries_done_ = 0;
  deadline_ms_ = 0;
  head_to_down_.clear();
  method_ = head.method;
  version_minor_ = head.version_minor;
  request_has_body_ = head.framing != http::Framing::None;
  upstream_chunked_ = head.framing == http::Framing::Chunked;
  close_after_ = !head.keep_alive || worker_.draining();
  arm(Wait::RequestBody, listener_.http.idle_timeout_ms);
  to_origin_form(head);
  if (!authenticate(head)) return;
  if (!authorize(head)) return;
  if (!route(head)) return;
  replayable_ = route_->retry.attempts > 0;

  if (head.method == "CONNECT") {
    connect_tunnel_ = true;
    return start_connect_tunnel();
  }
  if (head.upgrade) close_after_ = true;  // unless the upstream switches protocols

  // The route's fault, before anything goes upstream (Envoy's fault filter runs before its
  // router). Delay and abort are drawn independently; with both, the abort answers once the
  // delay is over.
  const FaultSpec& fault = route_->fault;
  bool delay = fault.delay_ms > 0 && roll(fault.delay_per_million, worker_.random());
  if (fault.abort_status > 0 && roll(fault.abort_per_million, worker_.random())) {
    if (delay) {
      abort_after_delay_ = true;
      return start_delay();
    }
    LocalReply lr = fault_abort_reply(static_cast<int>(fault.abort_status));
    return reply_when_complete(lr.status, std::string(lr.body), ResponseFlag::FaultInjected);
  }

  http::HeaderMap& h = head.headers;
  if (const std::string* expect = h.get("expect")) {
    if (!http::iequals(*expect, "100-continue")) {
      parser_.stop();
      return local_reply(417, "unsupported expectation\n", ResponseFlag::DownstreamProtocolError,
                         true);
    }
    // The proxy answers the expectation itself (as Envoy does by default) and sends the
    // upstream a plain request: the body follows right away.
    h.remove("expect");
    if (request_has_body_ && version_minor_ == 1) down_->write("HTTP/1.1 100 Continue\r\n\r\n");
  }

  std::string upgrade;
  if (head.upgrade)
    if (const std::string* u = h.get("upgrade")) upgrade = *u;
  strip_hop_by_hop(h);
  set_client_cert_header(h);
  append_to_list(h, "x-forwarded-for", client_ip_);
  // One value, not a list (as Envoy): the edge that terminated TLS says https; otherwise
  // what an earlier hop said stands (a gateway's https reaches the app through its sidecar),
  // else http.
  if (tls_server_)
    h.set("x-forwarded-proto", "https");
  else if (!h.has("x-forwarded-proto"))
    h.add("x-forwarded-proto", "http");
  if (!h.has("x-request-id")) {
    char id[36];
    worker_.random().uuid4(id);
    h.add("x-request-id", std::string_view(id, sizeof id));
    log_.request_id.assign(id, sizeof id);
  }
  if (const TracingSpec* tracing = listener_.tracing.get()) {
    // This hop's span: a child of the caller's (or the root of a new trace); the upstream
    // gets it as its parent, sampled or not (trace_context.h).
    log_.trace = trace::propagate(h, worker_.random(), tracing->sampling_percent,
                                  cluster_->spec().proxy_trace_context);
    log_.traced = true;
  } else if (listener_.reporter == ListenerSpec::Reporter::Destination) {
    // A caller that traces (a hot reload may have turned tracing off here first) sent its
    // context in the proxy header: the app gets the standard headers.
    trace::restore_standard(h);
  }
  if (listener_.reporter == ListenerSpec::Reporter::Source && cluster_->spec().send_peer_metadata &&
      !listener_.self.workload.empty())
    h.add(kPeerHeader, encode_peer(listener_.self));
  rewrite_request(head);
  if (!h.has("host")) {
    // HTTP/1.0 without Host: name the cluster's host (outbound|PORT|SUBSET|HOST).
    std::string_view name = cluster_->spec().name;
    h.add("host", name.substr(name.rfind('|') + 1));
  }
  if (upstream_chunked_) h.add("transfer-encoding", "chunked");
  if (!upgrade.empty()) {
    h.add("connection", "upgrade");
    h.add("upgrade", upgrade);
  }
  head.version_minor = 1;  // the upstream always gets HTTP/1.1 with keep-alive

  upstream_head_.clear();
  http::append_request_head(head, upstream_head_);
  if (!route_->mirror.cluster.empty() && upgrade.empty() &&
      roll(route_->mirror.per_million, worker_.random()))
    start_shadow(head);
  if (delay) return start_delay();
  start_try();
}

void HttpConnection::start_shadow(http::RequestHead& head) {
  ClusterStatePtr mirror = worker_.cluster(route_->mirror.cluster);
  if (!mirror) return;
  // A mirror that is not this process's sidecars gets the standard trace headers.
  std::optional<http::HeaderMap> as_sent;
  if (log_.traced && cluster_->spec().proxy_trace_context && !mirror->spec().proxy_trace_context) {
    as_sent = head.headers;
    trace::restore_standard(head.headers);
  }
  http::HeaderEntry* host = head.headers.find("host");
  std::string& out = worker_.scratch();
  if (host) {
    // Envoy's shadow host: "-shadow" after the host name, before any port.
    std::string original = host->value;
    size_t colon = original.rfind(':');
    bool has_port = colon != std::string::npos && original.find(']', colon) == std::string::npos;
    host->value = has_port ? original.substr(0, colon) + "-shadow" + original.substr(colon)
                           : original + "-shadow";
    http::append_request_head(head, out);
    host->value = std::move(original);
  }
  if (as_sent) head.headers = std::move(*as_sent);
  if (!host) return;
  shadow_ = Shadow::start(worker_, std::move(mirror), method_, out, upstream_chunked_,
                          response_timeout_ms_, listener_.mesh_client);
  MB_LOG_EVERY(5, Debug, "http", "{} mirrored to {}: {}", method_, route_->mirror.cluster,
               shadow_ ? "sent" : "no endpoint or at a limit; dropped");
}

void HttpConnection::to_origin_form(http::RequestHead& head) {
  // RFC 9112 §3.2.2: a request to a proxy may name its target whole
  // ("GET http://reviews:9080/reviews/0" — what an app with HTTP_PROXY set sends its
  // sidecar). The target's authority replaces Host, and the origin gets origin-form.
  std::string_view t = head.target;
  if (t.empty() || t.front() == '/' || head.method == "CONNECT") return;
  size_t scheme_end = t.find("://");
  if (scheme_end == std::string_view::npos) return;  // "*" (OPTIONS), or not absolute-form
  std::string_view rest = t.substr(scheme_end + 3);
  size_t slash = rest.find_first_of("/?");
  std::string_view authority = rest.substr(0, slash);
  // userinfo is not part of the host (RFC 9110 §4.2.4 deprecates it; never forward it).
  if (size_t at = authority.rfind('@'); at != std::string_view::npos)
    authority.remove_prefix(at + 1);
  if (!authority.empty()) head.headers.set("host", authority);
  target_ = slash == std::string_view::npos ? std::string("/") : std::string(rest.substr(slash));
  if (target_.front() == '?') target_.insert(0, "/");
  head.target.swap(target_);
}

void HttpConnection::rewrite_request(http::RequestHead& head) {
  const RouteSpec& r = *route_;
  if (!r.rewrite.uri.empty() || r.rewrite.uri_regex) {
    RouteInput in = RouteInput::from(head, listener_.address.port());
    if (rewrite_path(r.rewrite, match_, in.path, target_)) {
      if (!in.query.empty()) target_.append("?").append(in.query);
      head.target.swap(target_);  // target_ keeps the old storage for the next request
    }
  }
  // Envoy's order: the route's operations, then the destination's (which may override them).
  http::HeaderMap& h = head.headers;
  apply_header_ops(r.request_headers, h);
  if (destination_) apply_header_ops(destination_->request_headers, h);
  if (!r.rewrite.authority.empty()) {
    h.set("host", r.rewrite.authority);
  } else if (destination_ && !destination_->authority.empty()) {
    h.set("host", destination_->authority);
  }
}

void HttpConnection::start_delay() {
  log_.flags.add(ResponseFlag::DelayInjected);
  // Reading stops so that a body does not pile up here; what this read already holds is kept
  // in replay_. timer_ is left as it is: the request's timeouts still run.
  delaying_ = true;
  awaiting_ = true;
  down_->read_stop();
  delay_timer_.start(route_->fault.delay_ms);
  MB_LOG_EVERY(5, Debug, "http", "{} {}: delayed {} ms ({})", method_, client_ip_,
               route_->fault.delay_ms, flag_name(ResponseFlag::DelayInjected));
}

void HttpConnection::on_delay_done() {
  if (!delaying_ || closing_) return;
  delaying_ = false;
  if (abort_after_delay_) {
    awaiting_ = false;
    replay_.clear();
    LocalReply lr = fault_abort_reply(static_cast<int>(route_->fault.abort_status));
    if (request_done_)
      return local_reply(lr.status, lr.body, ResponseFlag::FaultInjected, close_after_);
    reply_when_complete(lr.status, std::string(lr.body), ResponseFlag::FaultInjected);
    return resume_reading();
  }
  start_try();
  flush_upstream_head();
  resume_reading();
}

void HttpConnection::resume_reading() {
  if (!closing_ && held_.size() <= kMaxHeldBytes) down_->read_start();
}

void HttpConnection::start_try() {
  awaiting_ = true;  // until a connection is had
  auto give_up = [this](ResponseFlag flag) {
    awaiting_ = replayable_ = false;
    replay_.clear();
    // The rest of the request is not wanted; once it is complete (a replay, a retry, or after
    // a fault delay) the parser must go on with the next one.
    if (!request_done_) parser_.stop();
    fail_stream({flag, ErrorSource::Upstream, false, ""});
  };
  bool passthrough = cluster_->spec().original_dst;
  size_t i;
  if (passthrough) {
    if (!resolve_passthrough()) return;
    i = cluster_->endpoint_for(worker_.loop(), *passthrough_);
    if (i == ClusterState::npos) return give_up(ResponseFlag::Overflow);
  } else {
    i = cluster_->pick(worker_.random(), has_hash_ ? &hash_ : nullptr, tried_);
    if (i == ClusterState::npos) return give_up(ResponseFlag::NoHealthyUpstream);
  }
  UpstreamConn* up = cluster_->pool(i).acquire(this, listener_.mesh_client);
  if (!up && !passthrough) {
    // At the connection limit. A kept-alive connection of another endpoint will do.
    for (size_t k = 0; k < cluster_->spec().endpoints.size() && !up; ++k) {
      if (cluster_->pool(k).idle_count() == 0) continue;
      i = k;
      up = cluster_->pool(k).acquire(this, listener_.mesh_client);
    }
  }
  if (!up) {
    // Wait for a connection (bounded by max_pending_requests), or fail fast.
    if (cluster_->wait(&waiter_)) return;
    cluster_->shared().count_overflow();
    return give_up(ResponseFlag::Overflow);
  }
  awaiting_ = false;
  pool_ = &cluster_->pool(i);
  up_ = up;
  endpoint_ = i;
  tried_.push_back(i);
  up_->expect_response_to(method_);
  // The head goes out with the first piece of body, or at the end of this read; what
  // arrived while no connection was had goes with it.
  up_head_pending_ = true;
  if (!replay_.empty()) {
    iovec pieces[16];
    size_t n = replay_.peek(pieces, 16);
    size_t skip = 0;
    while (n > 0) {
      for (size_t k = 0; k < n; ++k) {
        send(up_->tcp(), take_upstream_head(), static_cast<const char*>(pieces[k].iov_base),
             pieces[k].iov_len, upstream_chunked_, false);
        skip += pieces[k].iov_len;
      }
      if (skip >= replay_.size()) break;
      // More pieces than one peek returns: the rest, from a copy (rare: > 16 pieces).
      std::string rest = replay_.to_string().substr(skip);
      send(up_->tcp(), {}, rest.data(), rest.size(), upstream_chunked_, false);
      break;
    }
    if (!replayable_ || replay_.size() > RetrySpec::kMaxReplayBody) {
      replayable_ = false;
      replay_.clear();
    }
  }
  if (request_done_) {
    send(up_->tcp(), take_upstream_head(), nullptr, 0, upstream_chunked_, true);
    if (!response_started_) arm_response_timer();
  }
}

bool HttpConnection::pass_through_tcp(const char* data, size_t len) {
  loop::Address to = down_->original_dst();
  if (!listener_.tcp_passthrough || to.family() == 0 || to == down_->local()) {
    MB_LOG_EVERY(10, Debug, "http", "listener {}: non-HTTP connection to {} reset ({})",
                 listener_.name, to.family() ? to.to_string() : "?",
                 listener_.tcp_passthrough ? "no original destination"
                                           : "outbound_traffic_policy is registry_only");
    down_->close_reset();
    close();
    return false;
  }
  Buffer first;
  first.append(data, len);
  timer_.stop();
  closing_ = closed_ = true;
  Tunnel::to_address(worker_, std::move(down_), to, std::move(first), kPassthroughConnectMs,
                     listener_.tcp_idle_timeout_ms);
  worker_.remove(this);
  return true;
}

bool HttpConnection::passthrough_target(std::string_view authority) {
  // An iptables redirect brought the connection: its original destination is the answer.
  loop::Address original = down_->original_dst();
  if (original.family() != 0 && !(original == down_->local())) {
    passthrough_ = original;
    return true;
  }
  // Else the Host (CONNECT: the target): host, host:port, [v6], [v6]:port.
  std::string_view host = authority, port_text;
  if (!host.empty() && host.front() == '[') {
    size_t close = host.find(']');
    if (close != std::string_view::npos) {
      port_text = host.substr(close + 1);
      host = host.substr(1, close - 1);
      if (!port_text.empty() && port_text.front() != ':') host = {};
      if (!port_text.empty()) port_text.remove_prefix(1);
    } else {
      host = {};
    }
  } else if (size_t colon = host.rfind(':'); colon != std::string_view::npos) {
    port_text = host.substr(colon + 1);
    host = host.substr(0, colon);
  }
  uint32_t port = port_text.empty() ? 80 : 0;
  for (char c : port_text)
    port =
        (c >= '0' && c <= '9' && port < 65536) ? port * 10 + static_cast<uint32_t>(c - '0') : 65536;
  if (host.empty() || port == 0 || port > 65535) {
    reply_when_complete(400, "bad host: cannot tell where to pass this request through\n",
                        ResponseFlag::DownstreamProtocolError);
    return false;
  }
  if (auto ip = dns::parse_ip(host, static_cast<uint16_t>(port))) {
    passthrough_ = *ip;
    return true;
  }
  passthrough_host_.assign(host);
  for (char& c : passthrough_host_)
    c = http::ascii_lower(c);
  passthrough_port_ = static_cast<uint16_t>(port);
  return true;
}

bool HttpConnection::resolve_passthrough() {
  auto give_up = [this](std::string_view body, ResponseFlag flag) {
    awaiting_ = replayable_ = false;
    replay_.clear();
    if (!request_done_) parser_.stop();
    local_reply(flag == ResponseFlag::DnsResolutionFailure ? 503 : 502, body, flag,
                close_after_ || !request_done_);
    return false;
  };
  if (!passthrough_) {
    auto answer = worker_.hosts().lookup(passthrough_host_, passthrough_port_, &host_waiter_);
    if (!answer) return false;  // on_host_resolved tries again
    if (!answer->has_value()) {
      MB_LOG_EVERY(5, Debug, "http", "passthrough: {}", answer->error().message());
      return give_up(
          local_reply_for({ResponseFlag::DnsResolutionFailure, ErrorSource::Upstream, false, ""})
              .body,
          ResponseFlag::DnsResolutionFailure);
    }
    passthrough_ = **answer;
  }
  // A request for this very listener would come back here, again and again.
  if (*passthrough_ == down_->local())
    return give_up("passthrough loop: the request's destination is this proxy's own listener\n",
                   ResponseFlag::NoRouteFound);
  return true;
}

void HttpConnection::on_host_resolved() {
  if (closing_) return;
  if (connect_tunnel_) return start_connect_tunnel();
  start_try();
}

void HttpConnection::on_connection_slot() {
  if (closing_) return;
  start_try();
  flush_upstream_head();
}

void HttpConnection::arm_response_timer() {
  if (deadline_ms_ == 0) deadline_ms_ = worker_.loop().now_ms() + response_timeout_ms_;
  arm(Wait::Response, try_timeout_ms());
}

uint64_t HttpConnection::try_timeout_ms() {
  uint64_t now = worker_.loop().now_ms();
  uint64_t left = deadline_ms_ > now ? deadline_ms_ - now : 0;
  uint64_t per_try = route_ ? route_->retry.per_try_timeout_ms : 0;
  return up_ && per_try > 0 && per_try < left ? per_try : left;
}

bool HttpConnection::may_retry(TryFailure why, int status) {
  if (!route_ || !cluster_ || response_started_ || !replayable_) return false;
  const RetrySpec& r = route_->retry;
  if (retries_done_ >= r.attempts) return false;
  bool wanted = false;
  switch (why) {
    case TryFailure::ConnectFailure:
      wanted = r.on & (RetrySpec::k5xx | RetrySpec::kGatewayError | RetrySpec::kConnectFailure |
                       RetrySpec::kReset);
      break;
    case TryFailure::Reset:
    case TryFailure::Timeout:
      wanted = r.on & (RetrySpec::k5xx | RetrySpec::kGatewayError | RetrySpec::kReset);
      break;
    case TryFailure::Status: {
      uint32_t code = static_cast<uint32_t>(status);
      bool gateway = status == 502 || status == 503 || status == 504;
      wanted =
          ((r.on & RetrySpec::k5xx) && status >= 500) ||
          ((r.on & RetrySpec::kGatewayError) && gateway) ||
          ((r.on & RetrySpec::kRetriable4xx) && status == 409) ||
          ((r.on & RetrySpec::kStatusCodes) &&
           std::find(r.status_codes.begin(), r.status_codes.end(), code) != r.status_codes.end());
      break;
    }
  }
  if (!wanted) return false;
  if (!retry_slot_) {
    // The retry budget: a cluster in trouble is not sent a storm of retries on top.
    if (!cluster_->shared().try_start_retry(cluster_->spec().limits.max_retries)) {
      MB_LOG_EVERY(1, Debug, "http", "{}: retry budget exhausted; not retried",
                   cluster_->spec().name);
      return false;
    }
    retry_slot_ = true;
  }
  ++retries_done_;
  return true;
}

void HttpConnection::schedule_retry() {
  // Envoy's backoff: a random wait below 25 ms × (2^n − 1), at most 250 ms, for the n-th retry.
  uint64_t cap = std::min<uint64_t>(250, 25 * ((uint64_t{1} << std::min(retries_done_, 4u)) - 1));
  awaiting_ = true;
  retry_timer_.start(worker_.random().below(cap) + 1);
  // The route's timeout goes on running meanwhile.
  if (request_done_) arm_response_timer();
}

void HttpConnection::report_outcome(SharedCluster::Outcome outcome, int status) {
  if (!cluster_ || endpoint_ == SIZE_MAX) return;
  const ClusterSpec& c = cluster_->spec();
  if (!c.outlier.enabled() || !cluster_->health(endpoint_)) return;
  cluster_->shared().report(cluster_->health(endpoint_), outcome, status, c.outlier,
                            c.endpoints.size());
}

void HttpConnection::end_stream_state() {
  host_waiter_.unlink();
  if (cluster_) {
    cluster_->cancel_wait(&waiter_);
    if (request_slot_) cluster_->shared().end_request();
    if (retry_slot_) cluster_->shared().end_retry();
  }
  request_slot_ = retry_slot_ = awaiting_ = discard_response_ = false;
  retry_timer_.stop();
  replay_.clear();
  if (shadow_) {
    shadow_->detach(false);
    shadow_ = nullptr;
  }
}

std::string_view HttpConnection::take_upstream_head() {
  if (!up_head_pending_) return {};
  up_head_pending_ = false;
  return upstream_head_;
}

void HttpConnection::flush_upstream_head() {
  if (up_ && up_head_pending_) send(up_->tcp(), take_upstream_head(), nullptr, 0, false, false);
}

void HttpConnection::on_body(const char* data, size_t len) {
  log_.request_bytes += len;
  if (shadow_) shadow_->body(data, len);
  if (awaiting_ || (replayable_ && up_)) {
    replay_.append(data, len);
    if (replay_.size() > RetrySpec::kMaxReplayBody) {
      if (awaiting_) {
        down_->read_stop();  // until a connection takes what is here
      } else {
        replayable_ = false;  // too big to send again: this try is the last
        replay_.clear();
      }
    }
  }
  if (!up_ || awaiting_) return;  // no connection yet, or the stream failed
  send(up_->tcp(), take_upstream_head(), data, len, upstream_chunked_, false);
  if (up_->tcp().above_high_watermark()) down_->read_stop();
}

void HttpConnection::on_message_complete() {
  request_done_ = true;
  if (connect_tunnel_) return;
  if (shadow_) {
    shadow_->detach(true);
    shadow_ = nullptr;
  }
  if (up_) send(up_->tcp(), take_upstream_head(), nullptr, 0, upstream_chunked_, true);
  if (pending_reply_) {
    PendingReply p = std::move(*pending_reply_);
    pending_reply_.reset();
    return local_reply(p.status, p.body, p.flag, close_after_, p.extra_headers);
  }
  if (!response_started_ && (up_ || (awaiting_ && !delaying_))) arm_response_timer();
}

void HttpConnection::on_upstream_drained() {
  if (!closing_ && !parser_paused_ && held_.size() <= kMaxHeldBytes) down_->read_start();
}

bool HttpConnection::route(http::RequestHead& head) {
  // Before the old snapshot may go: these point into it.
  end_stream_state();
  route_ = nullptr;
  match_ = nullptr;
  destination_ = nullptr;
  stream_snapshot_ = worker_.snapshot();
  cluster_.reset();
  pending_reply_.reset();
  const RouteTableSpec* table = stream_snapshot_->find_route_table(
      tls_server_ ? tls_server_->route_table : listener_.route_table);
  RouteInput in = RouteInput::from(head, listener_.address.port());
  if (tls_server_) in.scheme = "https";
  const VirtualHostSpec* vhost = table ? find_virtual_host(*table, in.host) : nullptr;
  RouteHit hit = vhost ? find_route(*vhost, in) : RouteHit{};
  const RouteSpec* r = hit.route;
  if (!r) {
    LocalReply lr =
        local_reply_for({ResponseFlag::NoRouteFound, ErrorSource::Downstream, false, ""});
    reply_when_complete(lr.status, std::string(lr.body), ResponseFlag::NoRouteFound);
    return false;
  }
  // Local rate limits (Envoy's local_ratelimit filter, after jwt_authn and rbac): the
  // workload's, then the gateway's, then the route's; the first empty bucket answers.
  for (const RateLimitSpec* rl : {&listener_.rate_limit, &vhost->rate_limit, &r->rate_limit})
    if (rl->enabled() && !take_token(*rl)) return false;
  cors_origin_.clear();
  set_cookie_.clear();
  has_hash_ = false;
  if (r->cors.enabled && !cors(*r, head)) return false;
  switch (r->action) {
    case RouteSpec::Action::DirectResponse:
      reply_when_complete(static_cast<int>(r->direct_response.status), r->direct_response.body,
                          ResponseFlag::None);
      return false;
    case RouteSpec::Action::Redirect: {
      const RedirectSpec& rd = r->redirect;
      std::string location = rd.scheme.empty() ? std::string(in.scheme) : rd.scheme;
      location += "://";
      std::string_view authority = rd.authority.empty() ? in.host : rd.authority;
      if (rd.port) {
        size_t colon = authority.rfind(':');
        if (colon != std::string_view::npos && authority.find(']', colon) == std::string_view::npos)
          authority = authority.substr(0, colon);
        location.append(authority);
        location += ":" + std::to_string(rd.port);
      } else {
        location.append(authority);
      }
      if (rd.uri.empty()) {
        location.append(in.path);
        if (!in.query.empty()) location.append("?").append(in.query);
      } else {
        location.append(rd.uri);
      }
      reply_when_complete(static_cast<int>(rd.code), "", ResponseFlag::None,
                          "location: " + location + "\r\n");
      return false;
    }
    case RouteSpec::Action::Forward:
      break;
  }
  const WeightedCluster* wc = pick_cluster(*r, worker_.random());
  if (wc) cluster_ = worker_.cluster(wc->cluster);
  if (!cluster_) {
    LocalReply lr =
        local_reply_for({ResponseFlag::NoClusterFound, ErrorSource::Internal, false, ""});
    reply_when_complete(lr.status, std::string(lr.body), ResponseFlag::NoClusterFound);
    return false;
  }
  const ClusterSpec& spec = cluster_->spec();
  if (!cluster_->shared().try_start_request(spec.limits.max_requests)) {
    cluster_->shared().count_overflow();
    LocalReply lr = local_reply_for({ResponseFlag::Overflow, ErrorSource::Upstream, false, ""});
    reply_when_complete(lr.status, std::string(lr.body), ResponseFlag::Overflow);
    return false;
  }
  request_slot_ = true;
  passthrough_.reset();
  if (spec.original_dst &&
      !passthrough_target(head.method == "CONNECT" ? std::string_view(head.target) : in.host))
    return false;
  if (spec.hash.kind != HashPolicySpec::Kind::None) {
    if (auto h = request_hash(spec.hash, head.headers, in.query, client_ip_)) {
      hash_ = *h;
      has_hash_ = true;
    } else if (spec.hash.kind == HashPolicySpec::Kind::Cookie) {
      // No cookie yet: make one, route by it, and give it to the client (Envoy's generated
      // cookie), so its next requests reach the same endpoint.
      char id[36];
      worker_.random().uuid4(id);
      std::string value(id, sizeof id);
      hash_ = hash_bytes(value);
      has_hash_ = true;
      set_cookie_ = spec.hash.name + "=" + value;
      if (!spec.hash.cookie_path.empty()) set_cookie_ += "; Path=" + spec.hash.cookie_path;
      if (spec.hash.cookie_ttl_ms > 0)
        set_cookie_ += "; Max-Age=" + std::to_string(spec.hash.cookie_ttl_ms / 1000);
      set_cookie_ += "; HttpOnly";
    }
  }
  response_timeout_ms_ = r->timeout_ms ? r->timeout_ms : spec.response_timeout_ms;
  route_ = r;
  match_ = hit.match;
  destination_ = wc;
  return true;
}

bool HttpConnection::take_token(const RateLimitSpec& rl) {
  TokenBucket::Take t = rl.bucket->take(TokenBucket::now_ms());
  if (t.allowed) return true;
  // Envoy's local rate limit reply, with its x-ratelimit-* headers (draft 03): the limit, what
  // is left, and the seconds until the next fill.
  reply_when_complete(429, "local_rate_limited\n", ResponseFlag::RateLimited,
                      fmt::format("x-ratelimit-limit: {}\r\nx-ratelimit-remaining: {}\r\n"
                                  "x-ratelimit-reset: {}\r\n",
                                  rl.bucket->max_tokens(), t.remaining, (t.reset_ms + 999) / 1000));
  return false;
}

void HttpConnection::learn_peer() {
  peer_learned_ = true;
  local_ip_ = down_->local().ip();  // a syscall: once per connection
  tls::TlsTransport* tls = tls::TlsTransport::of(down_->transport());
  if (!tls) return;
  std::string_view id = tls->peer_spiffe_id();
  if (!id.starts_with("spiffe://")) return;
  peer_principal_ = id.substr(9);
  peer_spiffe_ = id;
  // Envoy's XFCC as Istio's inbound sidecars set it: who received the request, the peer
  // certificate's hash, its subject (workload certificates have none) and its URI SAN.
  if (listener_.mesh_server && !listener_.spiffe_id.empty())
    xfcc_ = fmt::format("By={};Hash={};Subject=\"\";URI={}", listener_.spiffe_id,
                        tls->peer_certificate_sha256(), id);
}

void HttpConnection::set_client_cert_header(http::HeaderMap& h) {
  h.remove("x-forwarded-client-cert");
  if (!listener_.mesh_server) return;  // only an inbound sidecar sets one
  if (!peer_learned_) learn_peer();
  if (!xfcc_.empty()) h.add("x-forwarded-client-cert", xfcc_);
}

bool HttpConnection::authenticate(http::RequestHead& head) {
  // The worker's current snapshot, as authorize(): keys fetched (or rules changed) after
  // this connection was accepted apply to its next request.
  const SnapshotConstPtr& current = worker_.snapshot();
  if (current != jwt_snapshot_) {
    jwt_snapshot_ = current;
    jwt_ = &listener_.jwt;
    if (current && current != snapshot_) {
      for (const ListenerSpec& l : current->listeners) {
        if (l.name == listener_.name) {
          jwt_ = &l.jwt;
          break;
        }
      }
    }
  }
  if (jwt_->empty()) {
    request_auth_ = RequestAuth{};
    return true;
  }
  auto now = std::chrono::duration_cast<std::chrono::seconds>(
                 std::chrono::system_clock::now().time_since_epoch())
                 .count();
  tls::JwtStatus s = authenticate_request(*jwt_, head, now, request_auth_);
  if (s == tls::JwtStatus::Ok) return true;
  std::string_view why = tls::jwt_status_text(s);
  MB_LOG_EVERY(10, Debug, "jwt", "listener {}: {} from {} refused: {}", listener_.name, head.method,
               client_ip_, why);
  // Envoy's jwt_authn answer: 401 (403 for an audience not allowed) with the reason as the
  // body and a www-authenticate challenge; no response flag (the response code details say
  // jwt_authn_access_denied{...}).
  route_ = nullptr;
  match_ = nullptr;
  destination_ = nullptr;
  pending_reply_.reset();
  std::string_view scheme = tls::TlsTransport::of(down_->transport()) ? "https" : "http";
  int status = s == tls::JwtStatus::AudienceNotAllowed ? 403 : 401;
  reply_when_complete(status, std::string(why), ResponseFlag::None,
                      "www-authenticate: " + www_authenticate(head, s, scheme) + "\r\n");
  return false;
}

bool HttpConnection::authorize(const http::RequestHead& head) {
  // The policies of the worker's current snapshot: a policy applied (or removed) reaches
  // kept-alive connections too. The listener is looked up by name once per snapshot.
  const SnapshotConstPtr& current = worker_.snapshot();
  if (current != authz_snapshot_) {
    authz_snapshot_ = current;
    authz_ = &listener_.authz;
    if (current && current != snapshot_) {
      for (const ListenerSpec& l : current->listeners) {
        if (l.name == listener_.name) {
          authz_ = &l.authz;
          break;
        }
      }
    }
  }
  if (authz_->empty()) return true;
  if (!peer_learned_) learn_peer();
  AuthzRequest r;
  r.source_principal = peer_principal_;
  r.source_ip = client_ip_;
  r.remote_ip = client_ip_;
  if (const std::string* xff = head.headers.get("x-forwarded-for")) {
    std::string_view first = std::string_view(*xff).substr(0, xff->find(','));
    while (!first.empty() && (first.front() == ' ' || first.front() == '\t'))
      first.remove_prefix(1);
    while (!first.empty() && (first.back() == ' ' || first.back() == '\t'))
      first.remove_suffix(1);
    if (!first.empty()) r.remote_ip = first;
  }
  r.destination_ip = local_ip_;
  r.destination_port = listener_.address.port();
  if (const std::string* host = head.headers.get("host")) r.host = *host;
  r.method = head.method;
  std::string path;
  if (head.method != "CONNECT") {
    std::string_view target = head.target;
    path = normalize_path(target.substr(0, target.find('?')));
    r.path = path;
  }
  if (tls::TlsTransport* tls = tls::TlsTransport::of(down_->transport()))
    r.sni = tls->server_name();
  r.headers = &head.headers;
  r.auth = &request_auth_;
  AuthzDecision d = evaluate(*authz_, r);
  AuthzCounters& counters = authz_counters();
  if (d.audited > 0) {
    counters.audited.fetch_add(d.audited, std::memory_order_relaxed);
    MB_LOG_EVERY(10, Info, "authz", "listener {}: {} {} from {} ({}) matched AUDIT policy {}/{}",
                 listener_.name, head.method, r.path, client_ip_,
                 peer_principal_.empty() ? "no peer identity" : peer_principal_, d.audit_policy->ns,
                 d.audit_policy->name);
  }
  if (d.allowed) {
    counters.allowed.fetch_add(1, std::memory_order_relaxed);
    return true;
  }
  counters.denied.fetch_add(1, std::memory_order_relaxed);
  MB_LOG_EVERY(10, Debug, "authz", "listener {}: {} {} from {} ({}) denied: {}", listener_.name,
               head.method, r.path, client_ip_,
               peer_principal_.empty() ? "no peer identity" : peer_principal_, denial_details(d));
  // Envoy's RBAC filter answer: 403 with this exact body; it sets no response flag (the
  // access log's response code details say rbac_access_denied_matched_policy[...]).
  route_ = nullptr;
  match_ = nullptr;
  destination_ = nullptr;
  pending_reply_.reset();
  reply_when_complete(403, "RBAC: access denied", ResponseFlag::None);
  return false;
}

bool HttpConnection::cors(const RouteSpec& r, const http::RequestHead& head) {
  const std::string* origin = head.headers.get("origin");
  if (!origin) return true;
  const CorsSpec& c = r.cors;
  bool allowed = std::any_of(c.allow_origins.begin(), c.allow_origins.end(),
                             [&](const StringMatcher& m) { return m.matches(*origin); });
  if (!allowed) return true;  // no CORS headers: the browser refuses the response
  bool preflight = head.method == "OPTIONS" && head.headers.has("access-control-request-method");
  if (!preflight) {
    cors_origin_ = *origin;
    return true;
  }
  // A preflight from an allowed origin is answered here (Envoy's CORS filter).
  std::string h = "access-control-allow-origin: " + *origin + "\r\n";
  if (!c.allow_methods.empty()) h += "access-control-allow-methods: " + c.allow_methods + "\r\n";
  if (!c.allow_headers.empty()) h += "access-control-allow-headers: " + c.allow_headers + "\r\n";
  if (!c.max_age.empty()) h += "access-control-max-age: " + c.max_age + "\r\n";
  if (c.allow_credentials) h += "access-control-allow-credentials: true\r\n";
  reply_when_complete(200, "", ResponseFlag::None, std::move(h));
  return false;
}

void HttpConnection::reply_when_complete(int status, std::string body, ResponseFlag flag,
                                         std::string extra_headers) {
  if (request_has_body_) {
    // Answer now and close: reading a body nobody wants could take long.
    parser_.stop();
    return local_reply(status, body, flag, true, extra_headers);
  }
  pending_reply_ = PendingReply{status, std::move(body), std::move(extra_headers), flag};
}

// ---- the response ---------------------------------------------------------------------------

void HttpConnection::on_upstream_head(http::ResponseHead& head) {
  if (discard_response_) return;
  if (head.status < 200 && head.status != 101) {
    // 1xx: 100 was answered by the proxy itself; pass others (103…) to HTTP/1.1 clients.
    if (head.status != 100 && version_minor_ == 1) {
      strip_hop_by_hop(head.headers);
      http::append_response_head(head, head_to_down_);
    }
    return;
  }
  if (head.status != 101) {
    report_outcome(
        head.status >= 500 ? SharedCluster::Outcome::Status5xx : SharedCluster::Outcome::Success,
        head.status);
    if (may_retry(TryFailure::Status, head.status)) {
      discard_response_ = true;  // read it out, then try again
      return;
    }
  }
  response_started_ = true;
  log_.status = head.status;
  log_.head_ns = uv_hrtime();
  upstream_keep_alive_ = head.keep_alive;
  http::HeaderMap& h = head.headers;
  std::string upgrade;
  if (head.status == 101)
    if (const std::string* u = h.get("upgrade")) upgrade = *u;
  strip_hop_by_hop(h);
  if (route_) {
    apply_header_ops(route_->response_headers, h);
    if (destination_) apply_header_ops(destination_->response_headers, h);
  }
  if (!cors_origin_.empty()) {
    const CorsSpec& c = route_->cors;
    h.set("access-control-allow-origin", cors_origin_);
    if (c.allow_credentials) h.set("access-control-allow-credentials", "true");
    if (!c.expose_headers.empty()) h.set("access-control-expose-headers", c.expose_headers);
  }
  if (!set_cookie_.empty()) h.add("set-cookie", set_cookie_);
  switch (head.framing) {
    case http::Framing::Chunked:
    case http::Framing::UntilClose:
      if (version_minor_ == 1) {
        downstream_chunked_ = true;
        h.add("transfer-encoding", "chunked");
      } else {
        close_after_ = true;  // an HTTP/1.0 client reads until the close
      }
      break;
    default:
      break;
  }
  if (!request_done_) close_after_ = true;  // answered early: the rest of the body is unread
  if (worker_.draining()) close_after_ = true;
  if (head.status == 101) {
    h.add("connection", "upgrade");
    if (!upgrade.empty()) h.add("upgrade", upgrade);
  } else if (close_after_) {
    h.add("connection", "close");
  } else if (version_minor_ == 0) {
    h.add("connection", "keep-alive");
  }
  head.version_minor = 1;
  // Written with the first piece of body, or at the end of this read.
  http::append_response_head(head, head_to_down_);
  arm(Wait::ResponseBody, cluster_->spec().idle_timeout_ms);
}

void HttpConnection::on_upstream_body(const char* data, size_t len) {
  if (discard_response_) return;
  log_.response_bytes += len;
  send(*down_, head_to_down_, data, len, downstream_chunked_, false);
  head_to_down_.clear();
  if (down_->above_high_watermark() && up_) up_->tcp().read_stop();
  if (wait_ == Wait::ResponseBody) timer_.start(cluster_->spec().idle_timeout_ms);
}

void HttpConnection::on_upstream_read_done() {
  if (head_to_down_.empty()) return;
  send(*down_, head_to_down_, nullptr, 0, false, false);
  head_to_down_.clear();
}

void HttpConnection::on_upstream_complete() {
  if (discard_response_) {
    discard_response_ = false;
    release_upstream(false);
    return schedule_retry();
  }
  send(*down_, head_to_down_, nullptr, 0, downstream_chunked_, true);
  head_to_down_.clear();
  release_upstream(upstream_keep_alive_ && request_done_);
  finish_stream();
}

void HttpConnection::on_upstream_failure(UpstreamFailure why, bool got_response_bytes) {
  bool was_reused = up_ && up_->reused();
  release_upstream(false);
  if (discard_response_) {
    discard_response_ = false;  // the retry was decided at its head already
    return schedule_retry();
  }
  // A kept-alive connection the upstream closed meanwhile fails at once, before any byte of
  // the response: replay the request once on a new connection when nothing was lost (no
  // body) and replaying cannot repeat a side effect (an idempotent method, as nginx does).
  if (why == UpstreamFailure::Reset && was_reused && !got_response_bytes && !retried_ &&
      !request_has_body_ && request_done_ && is_idempotent(method_)) {
    retried_ = true;
    start_try();
    return flush_upstream_head();
  }
  head_to_down_.clear();
  if (response_started_) {
    log_.flags.add(ResponseFlag::UpstreamConnectionTermination);
    return close_with_reset();
  }
  report_outcome(SharedCluster::Outcome::LocalFailure, 0);
  if (why != UpstreamFailure::ProtocolError &&
      may_retry(
          why == UpstreamFailure::ConnectFailed ? TryFailure::ConnectFailure : TryFailure::Reset,
          0))
    return schedule_retry();
  switch (why) {
    case UpstreamFailure::ConnectFailed:
      return fail_stream({ResponseFlag::UpstreamConnectFailure, ErrorSource::Upstream, true, ""});
    case UpstreamFailure::Reset:
      return fail_stream(
          {ResponseFlag::UpstreamConnectionTermination, ErrorSource::Upstream, true, ""});
    case UpstreamFailure::ProtocolError:
      return fail_stream({ResponseFlag::UpstreamProtocolError, ErrorSource::Upstream, false, ""});
  }
}

void HttpConnection::on_upstream_upgrade(const char* early, size_t len) {
  if (!upgrade_pending_ || !up_) {
    // The upstream switched protocols without being asked: nothing sane can follow.
    release_upstream(false);
    return close_with_reset();
  }
  on_upstream_read_done();  // the 101 head
  record_stream();
  loop::TcpConnPtr up = up_->take_tcp();
  release_upstream(false);
  end_stream_state();
  Buffer to_down;
  to_down.append(early, len);
  timer_.stop();
  closing_ = closed_ = true;
  Tunnel::splice(worker_, std::move(down_), std::move(up), std::move(held_), std::move(to_down),
                 listener_.tcp_idle_timeout_ms);
  worker_.remove(this);
}

void HttpConnection::release_upstream(bool reusable) {
  if (!up_) return;
  UpstreamConn* up = up_;
  up_ = nullptr;
  pool_->release(up, reusable);
  // A request here waiting for a connection takes the one just released; with none here but
  // some on other workers, idle connections here would hold slots they need.
  if (cluster_ && cluster_->has_waiters()) {
    cluster_->on_slot_freed();
  } else if (cluster_ && cluster_->shared().pending() > 0) {
    cluster_->shed_idle();
  }
}

void HttpConnection::finish_stream() {
  in_stream_ = false;
  record_stream();
  end_stream_state();
  if (close_after_ || !request_done_ || upgrade_pending_) return close_after_flush();
  arm(Wait::Idle, listener_.http.idle_timeout_ms);
  if (parser_paused_) {
    parser_paused_ = false;
    parser_.resume();
    process_held();
  }
  if (!closing_ && !parser_paused_ && !delaying_) down_->read_start();
}

// ---- CONNECT ----------------------------------------------------------------------------------

void HttpConnection::start_connect_tunnel() {
  // CONNECT is terminated here: the proxy opens a TCP connection to the route's upstream and,
  // once it is up, answers 200 and splices the two sockets (Envoy's connect_config).
  const loop::Address* to = nullptr;
  if (cluster_->spec().original_dst) {
    if (!resolve_passthrough()) return;
    to = &*passthrough_;
  } else if (size_t i = cluster_->pick(worker_.random(), has_hash_ ? &hash_ : nullptr, {});
             i != ClusterState::npos) {
    to = &cluster_->pool(i).endpoint();
  }
  if (!to) {
    parser_.stop();
    return fail_stream({ResponseFlag::NoHealthyUpstream, ErrorSource::Upstream, false, ""});
  }
  connect_ = std::make_unique<ConnectWaiter>();
  connect_->owner = this;
  connect_->conn = loop::TcpConn::create(worker_.loop());
  connect_->conn->set_callbacks(connect_.get());
  if (!connect_->conn->connect(*to).is_ok()) {
    connect_.reset();
    return fail_stream({ResponseFlag::UpstreamConnectFailure, ErrorSource::Upstream, true, ""});
  }
  arm(Wait::Response, cluster_->spec().connect_timeout_ms);
}

void HttpConnection::on_connect_result(bool ok) {
  if (!ok) {
    connect_.reset();
    upgrade_pending_ = false;
    close_after_ = true;
    return fail_stream({ResponseFlag::UpstreamConnectFailure, ErrorSource::Upstream, true, ""});
  }
  down_->write("HTTP/1.1 200 Connection Established\r\n\r\n");
  log_.status = 200;
  log_.head_ns = uv_hrtime();
  record_stream();
  loop::TcpConnPtr up = std::move(connect_->conn);
  connect_.reset();
  end_stream_state();
  timer_.stop();
  closing_ = closed_ = true;
  Tunnel::splice(worker_, std::move(down_), std::move(up), std::move(held_), Buffer(),
                 listener_.tcp_idle_timeout_ms);
  worker_.remove(this);
}

// ---- errors, timeouts and closing -------------------------------------------------------------

void HttpConnection::fail_stream(const ProxyError& error) {
  LocalReply r = local_reply_for(error);
  MB_LOG_EVERY(5, Debug, "http", "{} {}: {} ({})", method_, client_ip_, r.status,
               flag_name(error.flag));
  local_reply(r.status, r.body, error.flag, close_after_ || !request_done_);
}

void HttpConnection::local_reply(int status, std::string_view body, ResponseFlag flag, bool close,
                                 std::string_view extra_headers) {
  if (closing_) return;
  std::string& out = worker_.scratch();
  append_local_reply(status, body, close || worker_.draining(), out, extra_headers);
  down_->write(out);
  if (!log_.open && !in_stream_) {
    // A reply before any request began (a malformed head, a header timeout): a stream of
    // its own for telemetry, as Envoy logs such requests.
    log_ = StreamLog{};
    log_.open = true;
    log_.start_ns = uv_hrtime();
    log_.start_unix_us = unix_now_us();
  }
  log_.status = status;
  log_.head_ns = uv_hrtime();
  log_.flags.add(flag);
  log_.response_bytes += body.size();
  if (close || worker_.draining()) {
    close_after_ = true;
    in_stream_ = false;
    record_stream();
    return close_after_flush();
  }
  response_started_ = true;
  finish_stream();
}

void HttpConnection::on_timeout() {
  switch (wait_) {
    case Wait::Idle:
      return close();
    case Wait::Head:
      parser_.stop();
      return local_reply(408, "request header timeout\n", ResponseFlag::StreamIdleTimeout, true);
    case Wait::RequestBody:
      if (response_started_) return close_with_reset();
      release_upstream(false);
      if (connect_) return close();
      return local_reply(408, "request body timeout\n", ResponseFlag::StreamIdleTimeout, true);
    case Wait::Response: {
      if (connect_) {
        release_upstream(false);
        connect_.reset();
        return fail_stream({ResponseFlag::UpstreamConnectFailure, ErrorSource::Upstream, true, ""});
      }
      // A try's own timeout (per_try_timeout) may be retried; the route's may not.
      bool discarding = discard_response_;
      discard_response_ = false;
      if (up_ && !discarding) report_outcome(SharedCluster::Outcome::LocalFailure, 0);
      release_upstream(false);
      bool in_time = deadline_ms_ > 0 && worker_.loop().now_ms() < deadline_ms_;
      if (in_time && (discarding || may_retry(TryFailure::Timeout, 0))) return schedule_retry();
      end_stream_state();
      return fail_stream({ResponseFlag::UpstreamRequestTimeout, ErrorSource::Upstream, false, ""});
    }
    case Wait::ResponseBody:
      log_.flags.add(ResponseFlag::StreamIdleTimeout);
      release_upstream(false);
      return close_with_reset();
    case Wait::Flush:
      return close();
  }
}

void HttpConnection::drain() {
  if (!in_stream_ && !parser_.in_message()) return close();
  close_after_ = true;  // the current response says so and ends the connection
}

void HttpConnection::close_after_flush() {
  if (closing_) return;
  closing_ = true;
  delaying_ = false;
  delay_timer_.stop();
  down_->read_stop();
  release_upstream(false);
  end_stream_state();
  // Bounded: a client that never reads gets the connection closed anyway.
  arm(Wait::Flush, listener_.http.idle_timeout_ms);
  down_->notify_when_flushed();
}

void HttpConnection::close_with_reset() {
  if (closed_) return;
  if (down_) down_->close_reset();
  close();
}

void HttpConnection::close() {
  if (closed_) return;
  if (log_.open) {
    if (log_.flags.empty() && (log_.status == 0 || response_started_))
      log_.flags.add(ResponseFlag::DownstreamConnectionTermination);
    record_stream();
  }
  closed_ = closing_ = true;
  timer_.stop();
  delaying_ = false;
  delay_timer_.stop();
  release_upstream(false);
  end_stream_state();
  connect_.reset();
  down_.reset();
  worker_.remove(this);
}

// ---- telemetry --------------------------------------------------------------------------------

void HttpConnection::record_stream() {
  if (!log_.open) return;
  log_.open = false;
  Telemetry& t = worker_.telemetry();
  if (t.empty()) return;
  uint64_t now = uv_hrtime();
  RequestRecord r;
  r.listener = &listener_;
  r.start_unix_us = log_.start_unix_us;
  r.duration_us = (now - log_.start_ns) / 1000;
  r.response_start_us = log_.head_ns ? (log_.head_ns - log_.start_ns) / 1000 : 0;
  r.method = method_;
  r.path = log_.path;
  r.authority = log_.authority;
  r.protocol = version_minor_ == 0 ? "HTTP/1.0" : "HTTP/1.1";
  r.request_id = log_.request_id;
  r.user_agent = log_.user_agent;
  r.forwarded_for = log_.forwarded_for;
  r.status = log_.status;
  r.flags = log_.flags;
  r.request_body_bytes = log_.request_bytes;
  r.response_body_bytes = log_.response_bytes;
  r.retries = retries_done_;
  if (log_.traced) r.trace = &log_.trace;
  if (route_) r.route_name = route_->name;
  const EndpointSpec* ep = nullptr;
  if (cluster_) {
    r.cluster = &cluster_->spec();
    if (endpoint_ < r.cluster->endpoints.size()) ep = &r.cluster->endpoints[endpoint_];
    const loop::Address* host = nullptr;
    if (ep)
      host = &ep->address;
    else if (r.cluster->original_dst && passthrough_)
      host = &*passthrough_;
    if (host) {
      // Formatted once per address, not per request (a keep-alive connection's requests
      // mostly go to the same endpoint).
      if (upstream_text_.empty() || !(upstream_address_ == *host)) {
        upstream_address_ = *host;
        upstream_text_ = host->to_string();
      }
      r.upstream_host = upstream_text_;
    }
  }
  r.downstream_remote = client_ip_;
  auto view = [](const PeerMetadata& m) {
    return PeerView{m.workload, m.ns, m.app, m.version, m.principal};
  };
  if (listener_.reporter == ListenerSpec::Reporter::Destination) {
    r.destination = view(listener_.self);
    r.source = view(log_.peer);
    if (!peer_learned_) learn_peer();
    r.mtls = !peer_principal_.empty();
    if (r.mtls) {
      // TD/ns/NS/sa/SA: the principal and the namespace come from the certificate.
      r.source.principal = peer_spiffe_;
      std::string_view id = peer_principal_;
      if (size_t at = id.find("/ns/"); at != std::string_view::npos) {
        id.remove_prefix(at + 4);
        r.source.ns = id.substr(0, id.find('/'));
      }
    }
  } else {
    r.source = view(listener_.self);
    if (ep) {
      r.destination = view(ep->workload);
      r.mtls = !ep->peer_identity.empty() || r.cluster->tls != nullptr;
    }
  }
  t.request(r);
}

}  // namespace meshbox::data
