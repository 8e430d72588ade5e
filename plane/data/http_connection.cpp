#include "plane/data/http_connection.h"

#include "core/base/log.h"
#include "core/http/serializer.h"
#include "plane/data/router.h"
#include "plane/data/tunnel.h"

namespace meshbox::data {

namespace {

constexpr size_t kMaxHeldBytes = 64 * 1024;  // pipelined bytes buffered before reading stops

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

/// Writes `head` (may be empty), a piece of body (chunk-framed if `chunked`) and, if `last`,
/// the end of a chunked body — in one system call.
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

}  // namespace

HttpConnection::HttpConnection(Worker& worker, SnapshotConstPtr snapshot,
                               const ListenerSpec& listener, loop::TcpConnPtr conn)
    : worker_(worker),
      snapshot_(std::move(snapshot)),
      listener_(listener),
      down_(std::move(conn)),
      parser_(http::Parser::Kind::Request, *this, listener.http.limits),
      timer_(worker.loop(), [this] { on_timeout(); }),
      delay_timer_(worker.loop(), [this] { on_delay_done(); }) {
  client_ip_ = down_->peer().ip();
  down_->set_callbacks(this);
  down_->read_start();
  arm(Wait::Idle, listener_.http.idle_timeout_ms);
}

HttpConnection::~HttpConnection() = default;

void HttpConnection::arm(Wait what, uint64_t ms) {
  wait_ = what;
  timer_.start(ms);
}

// ---- downstream bytes -------------------------------------------------------------------

void HttpConnection::on_data(const char* data, size_t len) {
  if (closing_) return;
  if (parser_paused_ || upgrade_pending_) {
    // A request is being answered: keep what follows for later, within a bound.
    held_.append(data, len);
    if (held_.size() > kMaxHeldBytes) down_->read_stop();
    return;
  }
  process(data, len);
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
  request_done_ = response_started_ = downstream_chunked_ = upstream_keep_alive_ = false;
  retried_ = delaying_ = abort_after_delay_ = false;
  delayed_body_.clear();
  head_to_down_.clear();
  method_ = head.method;
  version_minor_ = head.version_minor;
  request_has_body_ = head.framing != http::Framing::None;
  upstream_chunked_ = head.framing == http::Framing::Chunked;
  close_after_ = !head.keep_alive || worker_.draining();
  arm(Wait::RequestBody, listener_.http.idle_timeout_ms);
  if (!route(head)) return;

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
  append_to_list(h, "x-forwarded-for", client_ip_);
  append_to_list(h, "x-forwarded-proto", "http");
  if (!h.has("x-request-id")) {
    char id[36];
    worker_.random().uuid4(id);
    h.add("x-request-id", std::string_view(id, sizeof id));
  }
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
  if (delay) return start_delay();
  send_upstream_head();
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
  // Reading stops so that a body does not pile up here; what this read already holds is kept
  // in delayed_body_. timer_ is left as it is: the request's timeouts still run.
  delaying_ = true;
  down_->read_stop();
  delay_timer_.start(route_->fault.delay_ms);
  MB_LOG_EVERY(5, Debug, "http", "{} {}: delayed {} ms ({})", method_, client_ip_,
               route_->fault.delay_ms, flag_name(ResponseFlag::DelayInjected));
}

void HttpConnection::on_delay_done() {
  if (!delaying_ || closing_) return;
  delaying_ = false;
  if (abort_after_delay_) {
    delayed_body_.clear();
    LocalReply lr = fault_abort_reply(static_cast<int>(route_->fault.abort_status));
    if (request_done_)
      return local_reply(lr.status, lr.body, ResponseFlag::FaultInjected, close_after_);
    reply_when_complete(lr.status, std::string(lr.body), ResponseFlag::FaultInjected);
    return resume_reading();
  }
  send_upstream_head();
  if (!up_) return;  // no endpoint: answered already
  // What arrived while delayed goes first, with the head; then as on_body and
  // on_message_complete would have done.
  while (!delayed_body_.empty()) {
    iovec piece;
    delayed_body_.peek(&piece, 1);
    send(up_->tcp(), take_upstream_head(), static_cast<const char*>(piece.iov_base), piece.iov_len,
         upstream_chunked_, false);
    delayed_body_.drain(piece.iov_len);
  }
  if (request_done_) {
    send(up_->tcp(), take_upstream_head(), nullptr, 0, upstream_chunked_, true);
    if (!response_started_) arm(Wait::Response, response_timeout_ms_);
  } else {
    flush_upstream_head();
  }
  resume_reading();
}

void HttpConnection::resume_reading() {
  if (!closing_ && held_.size() <= kMaxHeldBytes) down_->read_start();
}

void HttpConnection::send_upstream_head() {
  pool_ = cluster_->pick(worker_.random());
  if (!pool_) {
    // The rest of the request is not wanted; once it is complete (a replay, or after a fault
    // delay) the parser must go on with the next one.
    if (!request_done_) parser_.stop();
    return fail_stream({ResponseFlag::NoHealthyUpstream, ErrorSource::Upstream, false, ""});
  }
  up_ = pool_->acquire(this);
  up_->expect_response_to(method_);
  // The head goes out with the first piece of body, or at the end of this read.
  up_head_pending_ = true;
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
  if (delaying_) return delayed_body_.append(data, len);
  if (!up_) return;  // the stream already failed; the rest of the body is discarded
  send(up_->tcp(), take_upstream_head(), data, len, upstream_chunked_, false);
  if (up_->tcp().above_high_watermark()) down_->read_stop();
}

void HttpConnection::on_message_complete() {
  request_done_ = true;
  if (connect_tunnel_) return;
  if (up_) send(up_->tcp(), take_upstream_head(), nullptr, 0, upstream_chunked_, true);
  if (pending_reply_) {
    PendingReply p = std::move(*pending_reply_);
    pending_reply_.reset();
    return local_reply(p.status, p.body, p.flag, close_after_, p.extra_headers);
  }
  if (!response_started_ && up_) arm(Wait::Response, response_timeout_ms_);
}

void HttpConnection::on_upstream_drained() {
  if (!closing_ && !parser_paused_ && held_.size() <= kMaxHeldBytes) down_->read_start();
}

bool HttpConnection::route(http::RequestHead& head) {
  // Before the old snapshot may go: these point into it.
  route_ = nullptr;
  match_ = nullptr;
  destination_ = nullptr;
  stream_snapshot_ = worker_.snapshot();
  cluster_.reset();
  pending_reply_.reset();
  const RouteTableSpec* table = stream_snapshot_->find_route_table(listener_.route_table);
  RouteInput in = RouteInput::from(head, listener_.address.port());
  const VirtualHostSpec* vhost = table ? find_virtual_host(*table, in.host) : nullptr;
  RouteHit hit = vhost ? find_route(*vhost, in) : RouteHit{};
  const RouteSpec* r = hit.route;
  if (!r) {
    LocalReply lr =
        local_reply_for({ResponseFlag::NoRouteFound, ErrorSource::Downstream, false, ""});
    reply_when_complete(lr.status, std::string(lr.body), ResponseFlag::NoRouteFound);
    return false;
  }
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
  response_timeout_ms_ = r->timeout_ms ? r->timeout_ms : cluster_->spec().response_timeout_ms;
  route_ = r;
  match_ = hit.match;
  destination_ = wc;
  return true;
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
  if (head.status < 200 && head.status != 101) {
    // 1xx: 100 was answered by the proxy itself; pass others (103…) to HTTP/1.1 clients.
    if (head.status != 100 && version_minor_ == 1) {
      strip_hop_by_hop(head.headers);
      http::append_response_head(head, head_to_down_);
    }
    return;
  }
  response_started_ = true;
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
  send(*down_, head_to_down_, nullptr, 0, downstream_chunked_, true);
  head_to_down_.clear();
  release_upstream(upstream_keep_alive_ && request_done_);
  finish_stream();
}

void HttpConnection::on_upstream_failure(UpstreamFailure why, bool got_response_bytes) {
  bool was_reused = up_ && up_->reused();
  release_upstream(false);
  // A kept-alive connection the upstream closed meanwhile fails at once, before any byte of
  // the response: replay the request once on a new connection when nothing was lost (no
  // body) and replaying cannot repeat a side effect (an idempotent method, as nginx does).
  if (why == UpstreamFailure::Reset && was_reused && !got_response_bytes && !retried_ &&
      !request_has_body_ && request_done_ && is_idempotent(method_)) {
    retried_ = true;
    send_upstream_head();
    return flush_upstream_head();
  }
  head_to_down_.clear();
  if (response_started_) return close_with_reset();
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
  loop::TcpConnPtr up = up_->take_tcp();
  release_upstream(false);
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
}

void HttpConnection::finish_stream() {
  in_stream_ = false;
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
  ConnPool* pool = cluster_->pick(worker_.random());
  const loop::Address* to = pool ? &pool->endpoint() : nullptr;
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
  loop::TcpConnPtr up = std::move(connect_->conn);
  connect_.reset();
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

void HttpConnection::local_reply(int status, std::string_view body, ResponseFlag, bool close,
                                 std::string_view extra_headers) {
  if (closing_) return;
  std::string& out = worker_.scratch();
  append_local_reply(status, body, close || worker_.draining(), out, extra_headers);
  down_->write(out);
  if (close || worker_.draining()) {
    close_after_ = true;
    in_stream_ = false;
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
    case Wait::Response:
      release_upstream(false);
      if (connect_) {
        connect_.reset();
        return fail_stream({ResponseFlag::UpstreamConnectFailure, ErrorSource::Upstream, true, ""});
      }
      return fail_stream({ResponseFlag::UpstreamRequestTimeout, ErrorSource::Upstream, false, ""});
    case Wait::ResponseBody:
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
  closed_ = closing_ = true;
  timer_.stop();
  delaying_ = false;
  delay_timer_.stop();
  release_upstream(false);
  connect_.reset();
  down_.reset();
  worker_.remove(this);
}

}  // namespace meshbox::data
