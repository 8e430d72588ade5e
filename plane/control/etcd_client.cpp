#include "plane/control/etcd_client.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fmt/format.h>

#include "core/base/log.h"
#include "core/http/parser.h"
#include "core/loop/tcp_conn.h"
#include "core/loop/timer.h"

namespace meshbox::control::etcd {

namespace {

constexpr const char* kLog = "etcd";
// A reply or one watch message larger than this is refused (etcd's own gRPC limit is 2 MiB
// per request; a watch batch or a range of the whole registry can be larger).
constexpr size_t kMaxMessageBytes = 64 * 1024 * 1024;

constexpr char kB64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

std::string b64_encode(std::string_view in) {
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    uint32_t v =
        (uint32_t(uint8_t(in[i])) << 16) | (uint32_t(uint8_t(in[i + 1])) << 8) | uint8_t(in[i + 2]);
    out += kB64[v >> 18];
    out += kB64[(v >> 12) & 63];
    out += kB64[(v >> 6) & 63];
    out += kB64[v & 63];
  }
  if (i < in.size()) {
    uint32_t v = uint32_t(uint8_t(in[i])) << 16;
    if (i + 1 < in.size()) v |= uint32_t(uint8_t(in[i + 1])) << 8;
    out += kB64[v >> 18];
    out += kB64[(v >> 12) & 63];
    out += i + 1 < in.size() ? kB64[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

bool b64_decode(std::string_view in, std::string& out) {
  out.clear();
  uint32_t acc = 0;
  int bits = 0;
  size_t pad = 0;
  for (char c : in) {
    int v;
    if (c >= 'A' && c <= 'Z') {
      v = c - 'A';
    } else if (c >= 'a' && c <= 'z') {
      v = c - 'a' + 26;
    } else if (c >= '0' && c <= '9') {
      v = c - '0' + 52;
    } else if (c == '+' || c == '-') {
      v = 62;
    } else if (c == '/' || c == '_') {
      v = 63;
    } else if (c == '=') {
      ++pad;
      continue;
    } else {
      return false;
    }
    if (pad) return false;  // data after padding
    acc = (acc << 6) | uint32_t(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += char((acc >> bits) & 0xff);
    }
  }
  return pad <= 2;
}

/// An int64 field: the gateway writes them as strings; numbers are accepted too. Absent = 0.
bool get_i64(const json::Value& obj, std::string_view name, int64_t& out) {
  out = 0;
  const json::Value* v = obj.get(name);
  if (!v) return true;
  if (v->is_number()) {
    if (!v->is_integer) return false;
    out = v->integer;
    return true;
  }
  if (!v->is_string() || v->string.empty()) return false;
  int64_t n = 0;
  bool neg = false;
  std::string_view s = v->string;
  if (s.front() == '-') {
    neg = true;
    s.remove_prefix(1);
  }
  if (s.empty() || s.size() > 19) return false;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    if (n > (INT64_MAX - (c - '0')) / 10) return false;
    n = n * 10 + (c - '0');
  }
  out = neg ? -n : n;
  return true;
}

bool get_bytes(const json::Value& obj, std::string_view name, std::string& out) {
  out.clear();
  const json::Value* v = obj.get(name);
  if (!v) return true;
  return v->is_string() && b64_decode(v->string, out);
}

Status bad_reply(std::string_view what) {
  return make_error(Code::Io, fmt::format("etcd: unexpected reply: {}", what));
}

bool parse_kv(const json::Value& v, KeyValue& kv) {
  return v.is_object() && get_bytes(v, "key", kv.key) && get_bytes(v, "value", kv.value) &&
         get_i64(v, "create_revision", kv.create_revision) &&
         get_i64(v, "mod_revision", kv.mod_revision) && get_i64(v, "version", kv.version) &&
         get_i64(v, "lease", kv.lease);
}

/// header.revision of a reply (or of a watch/keepalive result).
bool header_revision(const json::Value& v, int64_t& rev) {
  const json::Value* h = v.get("header");
  if (!h) {
    rev = 0;
    return true;
  }
  return h->is_object() && get_i64(*h, "revision", rev);
}

/// An error object of the gateway ({"error": "...", "message": "...", "code": N}, or the
/// streaming form {"error": {"grpc_code": N, "message": "..."}}) → Status; gRPC codes become
/// ours.
Status etcd_error(const json::Value& v, int http_status) {
  std::string message;
  int64_t grpc = -1;
  const json::Value* e = v.get("error");
  const json::Value* src = e && e->is_object() ? e : &v;
  if (const json::Value* m = src->get("message"); m && m->is_string()) message = m->string;
  if (message.empty() && e && e->is_string()) message = e->string;
  if (const json::Value* c = src->get("code"); c && c->as_int()) grpc = *c->as_int();
  if (const json::Value* c = src->get("grpc_code"); c && c->as_int()) grpc = *c->as_int();
  if (message.empty()) message = fmt::format("HTTP status {}", http_status);
  Code code = Code::Io;
  if (grpc == 3 || grpc == 11) code = Code::InvalidArgument;  // INVALID_ARGUMENT, OUT_OF_RANGE
  if (grpc == 5) code = Code::NotFound;
  if (grpc == 14 || grpc == 4) code = Code::Unavailable;  // UNAVAILABLE, DEADLINE_EXCEEDED
  return make_error(code, "etcd: " + message);
}

/// A socket with TCP keepalive tuned so that a vanished peer is noticed in about 11 s.
int keepalive_socket(int family) {
  int fd = ::socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  int on = 1, idle = 5, intvl = 2, cnt = 3;
  unsigned user_timeout_ms = 11'000;
  ::setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on);
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof intvl);
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof cnt);
  ::setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout_ms, sizeof user_timeout_ms);
  return fd;
}

Result<loop::TcpConnPtr> open_conn(loop::Loop& loop, const loop::Address& to,
                                   loop::TcpConnCallbacks* cb) {
  auto conn = loop::TcpConn::create(loop);
  conn->set_callbacks(cb);
  int fd = keepalive_socket(to.family());
  if (fd < 0) return make_error(Code::Io, "socket() failed");
  MB_TRY(conn->adopt(fd));
  MB_TRY(conn->connect(to));
  return conn;
}

std::string http_request(const loop::Address& to, std::string_view path, std::string_view body) {
  return fmt::format(
      "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n"
      "Content-Length: {}\r\n\r\n{}",
      path, to.to_string(), body.size(), body);
}

// Idle keep-alive connections read nothing; a stale one is found when it is reused.
class IdleCallbacks final : public loop::TcpConnCallbacks {
 public:
  void on_data(const char*, size_t) override {}
  void on_eof() override {}
  void on_error(int) override {}
};
IdleCallbacks idle_callbacks;

const char* compare_target(Compare::Target t) {
  switch (t) {
    case Compare::Target::Version:
      return "VERSION";
    case Compare::Target::Create:
      return "CREATE";
    case Compare::Target::Mod:
      return "MOD";
    case Compare::Target::Value:
      return "VALUE";
    case Compare::Target::Lease:
      return "LEASE";
  }
  return "MOD";
}

const char* compare_result(Compare::Result r) {
  switch (r) {
    case Compare::Result::Equal:
      return "EQUAL";
    case Compare::Result::Greater:
      return "GREATER";
    case Compare::Result::Less:
      return "LESS";
    case Compare::Result::NotEqual:
      return "NOT_EQUAL";
  }
  return "EQUAL";
}

void write_op(json::Writer& w, const Op& op) {
  w.begin_object();
  if (op.type == Op::Type::Put) {
    w.key("request_put").begin_object();
    w.field("key", b64_encode(op.key)).field("value", b64_encode(op.value));
    if (op.lease) w.field("lease", std::to_string(op.lease));
    w.end_object();
  } else {
    w.key("request_delete_range").begin_object();
    w.field("key", b64_encode(op.key));
    if (!op.range_end.empty()) w.field("range_end", b64_encode(op.range_end));
    w.end_object();
  }
  w.end_object();
}

}  // namespace

// A parked keep-alive connection.
class Client::Conn {
 public:
  loop::TcpConnPtr tcp;
};

// One unary call: an HTTP exchange on a parked or new connection, retried on the next
// endpoint while no connection can be made. Owned by Client::calls_; destroyed through
// defer_delete once finished, since it finishes inside its own TcpConn callbacks.
class Client::Call final : public loop::Deferred,
                           public loop::TcpConnCallbacks,
                           public http::ParserCallbacks {
 public:
  Call(Client& client, std::string path, std::string body,
       std::function<void(Result<json::Value>)> done)
      : client_(client),
        path_(std::move(path)),
        body_(std::move(body)),
        done_(std::move(done)),
        timer_(client.loop_, [this] { on_timeout(); }) {}

  void start(size_t endpoint, std::unique_ptr<Conn> idle) {
    endpoint_ = endpoint;
    reset_exchange();
    timer_.start(client_.options_.request_timeout_ms);
    const loop::Address& to = client_.options_.endpoints[endpoint_];
    if (idle) {
      reused_ = true;
      tcp_ = std::move(idle->tcp);
      tcp_->set_callbacks(this);
      connected_ = true;
      return on_connected();
    }
    reused_ = false;
    auto conn = open_conn(client_.loop_, to, this);
    if (!conn) return connect_failed(conn.error().message());
    tcp_ = std::move(*conn);
  }

  std::function<void(Result<json::Value>)>& done() { return done_; }
  std::list<CallPtr>::iterator self;
  size_t tried = 0;  // endpoints that could not be reached

 private:
  void reset_exchange() {
    tcp_.reset();
    parser_ = std::make_unique<http::Parser>(http::Parser::Kind::Response, *this);
    status_ = 0;
    keep_alive_ = true;
    reply_.clear();
    complete_ = too_big_ = got_bytes_ = connected_ = false;
  }

  void on_connected() override {
    connected_ = true;
    tcp_->read_start();
    tcp_->write(http_request(client_.options_.endpoints[endpoint_], path_, body_));
  }

  void on_data(const char* data, size_t len) override {
    got_bytes_ = true;
    size_t off = 0;
    while (off < len && !complete_) {
      auto r = parser_->feed(data + off, len - off);
      off += r.consumed;
      if (too_big_) return fail(bad_reply("the reply is too large"), false);
      if (r.state == http::Parser::State::Error)
        return fail(
            make_error(Code::Io, fmt::format("etcd: bad HTTP reply: {}", parser_->error_reason())),
            false);
      if (r.state == http::Parser::State::Paused && !complete_) {
        parser_->resume();  // an interim 1xx response: the real one follows
        continue;
      }
      if (r.state != http::Parser::State::Ok && r.state != http::Parser::State::Paused)
        return fail(bad_reply("not HTTP"), false);
      if (r.state == http::Parser::State::Ok) break;
    }
    if (!complete_) return;
    // Bytes after the reply: nothing may come unasked on a keep-alive connection.
    bool reusable = keep_alive_ && off == len;
    Result<json::Value> reply = decode();
    client_.finish(*this, std::move(reply), reusable);  // destroys this later: return
  }

  Result<json::Value> decode() {
    auto doc = json::parse(reply_);
    if (status_ != 200) {
      if (doc && doc->is_object()) return etcd_error(*doc, status_);
      return make_error(Code::Io, fmt::format("etcd: HTTP status {}", status_));
    }
    if (!doc) return bad_reply("not JSON: " + doc.error().message());
    if (!doc->is_object()) return bad_reply("not a JSON object");
    if (doc->get("error")) return etcd_error(*doc, status_);
    return std::move(*doc);
  }

  void on_response_head(http::ResponseHead& head) override {
    status_ = head.status;
    keep_alive_ = head.keep_alive;
  }
  void on_body(const char* data, size_t len) override {
    if (status_ < 200) return;
    if (reply_.size() + len > kMaxMessageBytes) {
      too_big_ = true;
      parser_->stop();
      return;
    }
    reply_.append(data, len);
  }
  void on_message_complete() override {
    if (status_ < 200) return;
    complete_ = true;
  }

  void on_eof() override {
    if (!complete_ && parser_->finish() && complete_) {
      Result<json::Value> reply = decode();
      return client_.finish(*this, std::move(reply), false);
    }
    lost("etcd closed the connection");
  }
  void on_error(int err) override {
    if (!connected_) return connect_failed(loop::uv_error(err));
    lost(loop::uv_error(err));
  }

  // The connection broke after the request went out.
  void lost(std::string why) {
    if (reused_ && !got_bytes_) {
      // A parked connection the server had closed meanwhile: try once more on a new one.
      tcp_.reset();
      return start(endpoint_, nullptr);
    }
    fail(make_error(
             Code::Unavailable,
             fmt::format("etcd {}: {}", client_.options_.endpoints[endpoint_].to_string(), why)),
         true);
  }

  void connect_failed(std::string why) {
    size_t n = client_.options_.endpoints.size();
    MB_DEBUG(kLog, "{}: {}", client_.options_.endpoints[endpoint_].to_string(), why);
    client_.current_ = (endpoint_ + 1) % n;
    if (++tried < n) {
      tcp_.reset();
      return client_.start_attempt(*this);
    }
    fail(make_error(Code::Unavailable,
                    fmt::format("etcd: no endpoint answered (last: {}: {})",
                                client_.options_.endpoints[endpoint_].to_string(), why)),
         false);
  }

  void on_timeout() {
    if (!connected_) return connect_failed("connect timed out");
    fail(
        make_error(Code::Unavailable, fmt::format("etcd {}: no reply within {} ms",
                                                  client_.options_.endpoints[endpoint_].to_string(),
                                                  client_.options_.request_timeout_ms)),
        true);
  }

  void fail(Status s, bool move_on) {
    if (move_on) client_.current_ = (endpoint_ + 1) % client_.options_.endpoints.size();
    client_.finish(*this, std::move(s), false);
  }

 public:
  loop::TcpConnPtr take_conn() {
    timer_.stop();
    return std::move(tcp_);
  }
  size_t endpoint() const { return endpoint_; }

 private:
  Client& client_;
  std::string path_, body_;
  std::function<void(Result<json::Value>)> done_;
  loop::Timer timer_;
  size_t endpoint_ = 0;
  loop::TcpConnPtr tcp_;
  std::unique_ptr<http::Parser> parser_;
  int status_ = 0;
  std::string reply_;
  bool keep_alive_ = true;
  bool complete_ = false;
  bool too_big_ = false;
  bool got_bytes_ = false;
  bool connected_ = false;
  bool reused_ = false;
};

Client::Client(loop::Loop& loop, Options options)
    : loop_(loop), options_(std::move(options)), idle_(options_.endpoints.size()) {}

Client::~Client() {
  *alive_ = false;
}

void Client::soon(std::function<void()> fn) {
  loop_.run_soon([alive = std::weak_ptr<bool>(alive_), fn = std::move(fn)] {
    if (auto a = alive.lock(); a && *a) fn();
  });
}

void Client::call(std::string path, std::string body,
                  std::function<void(Result<json::Value>)> done) {
  if (options_.endpoints.empty()) {
    return soon([done = std::move(done)] {
      done(make_error(Code::InvalidArgument, "etcd: no endpoints"));
    });
  }
  calls_.push_back(
      std::make_unique<Call>(*this, std::move(path), std::move(body), std::move(done)));
  Call* c = calls_.back().get();
  c->self = std::prev(calls_.end());
  // Never inside the caller's call: a failure would call back into it.
  soon([this, c] { start_attempt(*c); });
}

void Client::start_attempt(Call& c) {
  size_t ep = current_ % options_.endpoints.size();
  c.start(ep, take_idle(ep));
}

void Client::finish(Call& c, Result<json::Value> r, bool reusable) {
  loop::TcpConnPtr tcp = c.take_conn();
  if (reusable && tcp) {
    auto conn = std::make_unique<Conn>();
    conn->tcp = std::move(tcp);
    park(c.endpoint(), std::move(conn));
  }
  auto done = std::move(c.done());
  CallPtr self = std::move(*c.self);
  calls_.erase(c.self);
  loop_.defer_delete(std::move(self));
  done(std::move(r));  // may destroy the Client: nothing after this
}

void Client::park(size_t endpoint, std::unique_ptr<Conn> conn) {
  auto& idle = idle_[endpoint];
  if (idle.size() >= options_.max_idle_per_endpoint) return;
  conn->tcp->read_stop();
  conn->tcp->set_callbacks(&idle_callbacks);
  idle.push_back(std::move(conn));
}

std::unique_ptr<Client::Conn> Client::take_idle(size_t endpoint) {
  auto& idle = idle_[endpoint];
  if (idle.empty()) return nullptr;
  auto conn = std::move(idle.back());
  idle.pop_back();
  return conn;
}

void Client::range(std::string key, std::string range_end,
                   std::function<void(Result<RangeResult>)> done) {
  json::Writer w;
  w.begin_object().field("key", b64_encode(key));
  if (!range_end.empty()) w.field("range_end", b64_encode(range_end));
  w.end_object();
  call("/v3/kv/range", w.take(), [done = std::move(done)](Result<json::Value> r) {
    if (!r) return done(r.error());
    RangeResult out;
    if (!header_revision(*r, out.revision)) return done(bad_reply("header"));
    if (const json::Value* kvs = r->get("kvs")) {
      if (!kvs->is_array()) return done(bad_reply("kvs"));
      for (const auto& v : kvs->array) {
        KeyValue kv;
        if (!parse_kv(v, kv)) return done(bad_reply("a key-value"));
        out.kvs.push_back(std::move(kv));
      }
    }
    done(std::move(out));
  });
}

void Client::put(std::string key, std::string value, int64_t lease,
                 std::function<void(Result<int64_t>)> done) {
  json::Writer w;
  w.begin_object().field("key", b64_encode(key)).field("value", b64_encode(value));
  if (lease) w.field("lease", std::to_string(lease));
  w.end_object();
  call("/v3/kv/put", w.take(), [done = std::move(done)](Result<json::Value> r) {
    if (!r) return done(r.error());
    int64_t rev = 0;
    if (!header_revision(*r, rev)) return done(bad_reply("header"));
    done(rev);
  });
}

void Client::txn(std::vector<Compare> compares, std::vector<Op> success, std::vector<Op> failure,
                 std::function<void(Result<TxnResult>)> done) {
  json::Writer w;
  w.begin_object().key("compare").begin_array();
  for (const auto& c : compares) {
    w.begin_object().field("key", b64_encode(c.key));
    if (!c.range_end.empty()) w.field("range_end", b64_encode(c.range_end));
    w.field("target", compare_target(c.target)).field("result", compare_result(c.result));
    switch (c.target) {
      case Compare::Target::Version:
        w.field("version", std::to_string(c.number));
        break;
      case Compare::Target::Create:
        w.field("create_revision", std::to_string(c.number));
        break;
      case Compare::Target::Mod:
        w.field("mod_revision", std::to_string(c.number));
        break;
      case Compare::Target::Lease:
        w.field("lease", std::to_string(c.number));
        break;
      case Compare::Target::Value:
        w.field("value", b64_encode(c.value));
        break;
    }
    w.end_object();
  }
  w.end_array().key("success").begin_array();
  for (const auto& op : success)
    write_op(w, op);
  w.end_array().key("failure").begin_array();
  for (const auto& op : failure)
    write_op(w, op);
  w.end_array().end_object();
  call("/v3/kv/txn", w.take(), [done = std::move(done)](Result<json::Value> r) {
    if (!r) return done(r.error());
    TxnResult out;
    if (!header_revision(*r, out.revision)) return done(bad_reply("header"));
    if (const json::Value* s = r->get("succeeded")) {
      if (!s->as_bool()) return done(bad_reply("succeeded"));
      out.succeeded = *s->as_bool();
    }
    done(out);
  });
}

void Client::delete_range(std::string key, std::string range_end,
                          std::function<void(Result<int64_t>)> done) {
  json::Writer w;
  w.begin_object().field("key", b64_encode(key));
  if (!range_end.empty()) w.field("range_end", b64_encode(range_end));
  w.end_object();
  call("/v3/kv/deleterange", w.take(), [done = std::move(done)](Result<json::Value> r) {
    if (!r) return done(r.error());
    int64_t deleted = 0;
    if (!get_i64(*r, "deleted", deleted)) return done(bad_reply("deleted"));
    done(deleted);
  });
}

void Client::lease_grant(int64_t ttl_s, std::function<void(Result<Lease>)> done) {
  json::Writer w;
  w.begin_object().field("TTL", std::to_string(ttl_s)).end_object();
  call("/v3/lease/grant", w.take(), [done = std::move(done)](Result<json::Value> r) {
    if (!r) return done(r.error());
    Lease l;
    if (!get_i64(*r, "ID", l.id) || !get_i64(*r, "TTL", l.ttl) || l.id == 0)
      return done(bad_reply("no lease ID"));
    done(l);
  });
}

void Client::lease_keepalive(int64_t id, std::function<void(Result<int64_t>)> done) {
  json::Writer w;
  w.begin_object().field("ID", std::to_string(id)).end_object();
  // A stream on the gateway: one request in, {"result": {...}} out, then the stream ends.
  call("/v3/lease/keepalive", w.take(), [done = std::move(done)](Result<json::Value> r) {
    if (!r) return done(r.error());
    const json::Value* res = r->get("result");
    if (!res || !res->is_object()) return done(bad_reply("no result"));
    int64_t ttl = 0;
    if (!get_i64(*res, "TTL", ttl)) return done(bad_reply("TTL"));
    done(ttl);
  });
}

void Client::lease_revoke(int64_t id, std::function<void(Status)> done) {
  json::Writer w;
  w.begin_object().field("ID", std::to_string(id)).end_object();
  call("/v3/lease/revoke", w.take(),
       [done = std::move(done)](Result<json::Value> r) { done(r ? Status::ok() : r.error()); });
}

void Client::compact(int64_t revision, std::function<void(Status)> done) {
  json::Writer w;
  w.begin_object().field("revision", std::to_string(revision)).field("physical", true).end_object();
  call("/v3/kv/compaction", w.take(),
       [done = std::move(done)](Result<json::Value> r) { done(r ? Status::ok() : r.error()); });
}

std::string Client::prefix_end(std::string_view prefix) {
  std::string end(prefix);
  while (!end.empty()) {
    auto& last = reinterpret_cast<unsigned char&>(end.back());
    if (last < 0xff) {
      ++last;
      return end;
    }
    end.pop_back();
  }
  return std::string(1, '\0');
}

// ---- Watch ----

// One watch: its own connection, the create request sent as the whole request body, then the
// reply body read as a stream of JSON objects ({"result": WatchResponse}), one per message,
// split across chunks however the gateway likes.
class Watch::Stream final : public loop::TcpConnCallbacks, public http::ParserCallbacks {
 public:
  Stream(loop::Loop& loop, const Options& options, size_t first_endpoint, std::string body,
         std::function<void(std::vector<Event>, int64_t)> on_events,
         std::function<void(WatchError)> on_error)
      : loop_(loop),
        endpoints_(options.endpoints),
        timeout_ms_(options.request_timeout_ms),
        endpoint_(first_endpoint),
        body_(std::move(body)),
        on_events_(std::move(on_events)),
        on_error_(std::move(on_error)),
        timer_(loop, [this] { on_timeout(); }),
        last_activity_ms_(loop.now_ms()) {}

  ~Stream() override { *alive_ = false; }

  void start() {
    if (endpoints_.empty())
      return fail_soon(make_error(Code::InvalidArgument, "etcd: no endpoints"));
    connect();
  }

  uint64_t last_activity_ms() const { return last_activity_ms_; }
  int64_t revision() const { return revision_; }

 private:
  void connect() {
    parser_ = std::make_unique<http::Parser>(http::Parser::Kind::Response, *this);
    connected_ = false;
    timer_.start(timeout_ms_);
    auto conn = open_conn(loop_, endpoints_[endpoint_], this);
    if (!conn) {
      // Not from inside Client::watch(): the caller has no Watch yet.
      std::string why = conn.error().message();
      return loop_.run_soon([this, alive = std::weak_ptr<bool>(alive_), why] {
        if (auto a = alive.lock(); a && *a) connect_failed(why);
      });
    }
    tcp_ = std::move(*conn);
  }

  void connect_failed(const std::string& why) {
    tcp_.reset();
    if (++tried_ < endpoints_.size()) {
      endpoint_ = (endpoint_ + 1) % endpoints_.size();
      return connect();
    }
    end(WatchError{
        make_error(Code::Unavailable, "etcd watch: no endpoint answered (last: " + why + ")"), 0});
  }

  void on_connected() override {
    connected_ = true;
    last_activity_ms_ = loop_.now_ms();
    tcp_->read_start();
    tcp_->write(http_request(endpoints_[endpoint_], "/v3/watch", body_));
  }

  void on_timeout() {
    if (!connected_) return connect_failed("connect timed out");
    end(WatchError{make_error(Code::Unavailable, "etcd watch: no reply head in time"), 0});
  }

  void on_response_head(http::ResponseHead& head) override {
    status_ = head.status;
    if (status_ >= 200) timer_.stop();
  }
  void on_body(const char* data, size_t len) override {
    if (status_ < 200) return;
    pending_.append(data, len);
  }
  void on_message_complete() override {
    if (status_ < 200) return;
    complete_ = true;
  }

  void on_data(const char* data, size_t len) override {
    last_activity_ms_ = loop_.now_ms();
    size_t off = 0;
    while (off < len && !complete_) {
      auto r = parser_->feed(data + off, len - off);
      off += r.consumed;
      if (r.state == http::Parser::State::Error) {
        return end(WatchError{make_error(Code::Io, fmt::format("etcd watch: bad HTTP reply: {}",
                                                               parser_->error_reason())),
                              0});
      }
      if (r.state == http::Parser::State::Paused && !complete_) {
        parser_->resume();
        continue;
      }
      if (r.state != http::Parser::State::Ok && r.state != http::Parser::State::Paused)
        return end(WatchError{make_error(Code::Io, "etcd watch: not HTTP"), 0});
      if (r.state == http::Parser::State::Ok) break;
    }
    if (status_ != 0 && status_ != 200) {
      if (!complete_ && pending_.size() < 64 * 1024) return;  // the error body
      auto doc = json::parse(pending_);
      Status s = doc && doc->is_object()
                     ? etcd_error(*doc, status_)
                     : make_error(Code::Io, fmt::format("etcd watch: HTTP status {}", status_));
      return end(WatchError{std::move(s), 0});
    }
    if (!dispatch()) return;  // ended, maybe destroyed
    if (complete_) {
      end(WatchError{make_error(Code::Unavailable, "etcd watch: the stream ended"), 0});
    }
  }

  void on_eof() override {
    end(WatchError{make_error(Code::Unavailable, "etcd watch: the connection closed"), 0});
  }
  void on_error(int err) override {
    if (!connected_) return connect_failed(loop::uv_error(err));
    end(WatchError{
        make_error(Code::Unavailable, fmt::format("etcd watch: {}", loop::uv_error(err))), 0});
  }

  // Splits complete JSON objects off pending_ and delivers them. False once the watch ended
  // (this may be destroyed).
  bool dispatch() {
    size_t start = 0;
    while (true) {
      // Skip whitespace between messages.
      while (scan_ < pending_.size() && depth_ == 0 &&
             (pending_[scan_] == ' ' || pending_[scan_] == '\n' || pending_[scan_] == '\r' ||
              pending_[scan_] == '\t')) {
        start = ++scan_;
      }
      if (scan_ >= pending_.size()) break;
      if (depth_ == 0 && pending_[scan_] != '{') {
        end(WatchError{bad_reply("a watch message is not a JSON object"), 0});
        return false;
      }
      bool whole = false;
      for (; scan_ < pending_.size(); ++scan_) {
        char c = pending_[scan_];
        if (in_string_) {
          if (escape_) {
            escape_ = false;
          } else if (c == '\\') {
            escape_ = true;
          } else if (c == '"') {
            in_string_ = false;
          }
        } else if (c == '"') {
          in_string_ = true;
        } else if (c == '{' || c == '[') {
          ++depth_;
        } else if (c == '}' || c == ']') {
          if (--depth_ == 0) {
            ++scan_;
            whole = true;
            break;
          }
        }
      }
      if (!whole) break;
      auto alive = alive_;
      bool ok = deliver(std::string_view(pending_).substr(start, scan_ - start));
      if (!*alive || !ok) return false;
      start = scan_;
    }
    if (start > 0) {
      pending_.erase(0, start);
      scan_ -= start;
    }
    if (pending_.size() > kMaxMessageBytes) {
      end(WatchError{bad_reply("a watch message is too large"), 0});
      return false;
    }
    return true;
  }

  // One watch message. False when the watch ended (or the callback destroyed it).
  bool deliver(std::string_view text) {
    auto doc = json::parse(text);
    if (!doc || !doc->is_object()) {
      end(WatchError{bad_reply("a watch message is not JSON"), 0});
      return false;
    }
    if (doc->get("error")) {
      end(WatchError{etcd_error(*doc, 200), 0});
      return false;
    }
    const json::Value* res = doc->get("result");
    if (!res || !res->is_object()) {
      end(WatchError{bad_reply("a watch message without result"), 0});
      return false;
    }
    int64_t rev = 0, compact = 0;
    if (!header_revision(*res, rev) || !get_i64(*res, "compact_revision", compact)) {
      end(WatchError{bad_reply("watch header"), 0});
      return false;
    }
    if (compact > 0) {
      end(WatchError{
          make_error(Code::Conflict, fmt::format("etcd: revision compacted (now {})", compact)),
          compact});
      return false;
    }
    if (const json::Value* c = res->get("canceled"); c && c->as_bool().value_or(false)) {
      std::string why;
      if (const json::Value* r = res->get("cancel_reason"); r && r->is_string()) why = r->string;
      end(WatchError{make_error(Code::Io, "etcd: watch canceled" + (why.empty() ? "" : ": " + why)),
                     0});
      return false;
    }
    if (const json::Value* c = res->get("created"); c && c->as_bool().value_or(false)) {
      // The creation's revision is the store's now, not how far events were delivered.
      return true;
    }
    std::vector<Event> events;
    if (const json::Value* evs = res->get("events")) {
      if (!evs->is_array()) {
        end(WatchError{bad_reply("events"), 0});
        return false;
      }
      for (const auto& ev : evs->array) {
        Event e;
        const json::Value* kv = ev.get("kv");
        const json::Value* type = ev.get("type");
        if (!kv || !parse_kv(*kv, e.kv) || (type && !type->is_string())) {
          end(WatchError{bad_reply("a watch event"), 0});
          return false;
        }
        if (type && type->string == "DELETE") {
          e.type = Event::Type::Delete;
        } else if (type && type->string != "PUT") {
          end(WatchError{bad_reply("event type " + type->string), 0});
          return false;
        }
        events.push_back(std::move(e));
      }
    }
    if (rev > revision_) revision_ = rev;
    on_events_(std::move(events), rev);
    return true;
  }

  void fail_soon(Status s) {
    loop_.run_soon([this, alive = std::weak_ptr<bool>(alive_), s = std::move(s)]() mutable {
      if (auto a = alive.lock(); a && *a) end(WatchError{std::move(s), 0});
    });
  }

  void end(WatchError e) {
    if (ended_) return;
    ended_ = true;
    timer_.stop();
    tcp_.reset();  // no TcpConn callback after this
    MB_DEBUG(kLog, "watch ended: {}", e.status.message());
    auto cb = std::move(on_error_);
    cb(std::move(e));  // may destroy this
  }

  loop::Loop& loop_;
  std::vector<loop::Address> endpoints_;
  uint64_t timeout_ms_;
  size_t endpoint_;
  size_t tried_ = 0;
  std::string body_;
  std::function<void(std::vector<Event>, int64_t)> on_events_;
  std::function<void(WatchError)> on_error_;
  loop::Timer timer_;
  loop::TcpConnPtr tcp_;
  std::unique_ptr<http::Parser> parser_;
  int status_ = 0;
  bool connected_ = false;
  bool complete_ = false;
  bool ended_ = false;
  std::string pending_;  // reply body not yet delivered
  size_t scan_ = 0;      // pending_ before this is scanned
  int depth_ = 0;
  bool in_string_ = false;
  bool escape_ = false;
  uint64_t last_activity_ms_;
  int64_t revision_ = 0;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

Watch::Watch(std::unique_ptr<Stream> s) : stream_(std::move(s)) {}
Watch::~Watch() = default;
uint64_t Watch::last_activity_ms() const {
  return stream_->last_activity_ms();
}
int64_t Watch::revision() const {
  return stream_->revision();
}

std::unique_ptr<Watch> Client::watch(std::string key, std::string range_end, int64_t start_revision,
                                     std::function<void(std::vector<Event>, int64_t)> on_events,
                                     std::function<void(WatchError)> on_error) {
  json::Writer w;
  w.begin_object().key("create_request").begin_object().field("key", b64_encode(key));
  if (!range_end.empty()) w.field("range_end", b64_encode(range_end));
  if (start_revision > 0) w.field("start_revision", std::to_string(start_revision));
  w.field("progress_notify", true).end_object().end_object();
  size_t first = options_.endpoints.empty() ? 0 : current_ % options_.endpoints.size();
  auto stream = std::make_unique<Watch::Stream>(loop_, options_, first, w.take(),
                                                std::move(on_events), std::move(on_error));
  stream->start();
  return std::unique_ptr<Watch>(new Watch(std::move(stream)));
}

}  // namespace meshbox::control::etcd
