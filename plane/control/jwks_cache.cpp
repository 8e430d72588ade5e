#include "plane/control/jwks_cache.h"

#include <sys/stat.h>

#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "core/base/log.h"
#include "core/http/parser.h"
#include "core/loop/tcp_conn.h"
#include "core/tls/certificate.h"
#include "core/tls/tls_transport.h"
#include "plane/control/upstream_tls.h"

namespace meshbox::control {

namespace {

constexpr const char* kLog = "jwks";

/// An http(s) URI, split.
struct Url {
  bool https = false;
  std::string host;  // without brackets
  uint16_t port = 0;
  std::string target;  // path and query, "/" at least
};

Result<Url> parse_url(std::string_view uri) {
  Url u;
  if (uri.starts_with("https://")) {
    u.https = true;
    uri.remove_prefix(8);
  } else if (uri.starts_with("http://")) {
    uri.remove_prefix(7);
  } else {
    return make_error(Code::InvalidArgument, "not an http:// or https:// URL");
  }
  size_t slash = uri.find_first_of("/?#");
  std::string_view authority = uri.substr(0, slash);
  std::string_view rest = slash == std::string_view::npos ? "/" : uri.substr(slash);
  rest = rest.substr(0, rest.find('#'));
  u.target = rest.empty() || rest.front() != '/' ? "/" + std::string(rest) : std::string(rest);
  if (size_t at = authority.rfind('@'); at != std::string_view::npos)
    authority.remove_prefix(at + 1);
  std::string_view port;
  if (authority.starts_with("[")) {
    size_t close = authority.find(']');
    if (close == std::string_view::npos) return make_error(Code::InvalidArgument, "bad host");
    u.host = std::string(authority.substr(1, close - 1));
    if (close + 1 < authority.size() && authority[close + 1] == ':')
      port = authority.substr(close + 2);
  } else {
    size_t colon = authority.rfind(':');
    u.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) port = authority.substr(colon + 1);
  }
  if (u.host.empty()) return make_error(Code::InvalidArgument, "no host");
  u.port = u.https ? 443 : 80;
  if (!port.empty()) {
    unsigned p = 0;
    for (char c : port) {
      if (c < '0' || c > '9' || (p = p * 10 + static_cast<unsigned>(c - '0')) > 65535)
        return make_error(Code::InvalidArgument, "bad port");
    }
    if (p == 0) return make_error(Code::InvalidArgument, "bad port");
    u.port = static_cast<uint16_t>(p);
  }
  return u;
}

std::string file_signature(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return "missing";
  return fmt::format("{} {}.{} {}", st.st_size, st.st_mtim.tv_sec, st.st_mtim.tv_nsec, st.st_ino);
}

Result<std::string> read_small_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return make_error(Code::Io, "cannot open " + path);
  std::string text;
  char buf[16384];
  while (in.read(buf, sizeof buf) || in.gcount() > 0) {
    text.append(buf, static_cast<size_t>(in.gcount()));
    if (text.size() > JwksCache::kMaxDocumentBytes)
      return make_error(Code::InvalidArgument, path + ": larger than 1 MiB");
  }
  return text;
}

}  // namespace

struct JwksCache::Entry {
  explicit Entry(JwksCache& cache)
      : timer(cache.loop_, [this, &cache] { cache.start_fetch(*this); }) {}
  std::string uri;
  std::string path;  // file://: the file
  Url url;           // http(s)
  uint64_t timeout_ms = 5'000;
  tls::JwksConstPtr jwks;
  std::string error;
  std::string file_sig;
  std::unique_ptr<Fetch> fetch;
  loop::Timer timer;  // the next fetch (refresh or retry)
  uint64_t retry_ms = kFirstRetryMs;
  bool used = true;
};

// One GET in flight: DNS (unless the host is an IP), connect (TLS for https), request,
// response up to kMaxDocumentBytes, all under one timeout. Calls JwksCache::on_fetched once,
// from a timer or a TcpConn or DNS callback, never from inside a parser callback.
class JwksCache::Fetch final : public loop::Deferred,
                               public loop::TcpConnCallbacks,
                               public http::ParserCallbacks {
 public:
  Fetch(JwksCache& cache, Entry& entry)
      : cache_(cache), entry_(entry), timer_(cache.loop_, [this] { fail("timed out"); }) {}

  void start() {
    timer_.start(entry_.timeout_ms);
    const Url& u = entry_.url;
    std::string literal = u.host.find(':') != std::string::npos ? "[" + u.host + "]" : u.host;
    if (auto addr = loop::Address::parse(fmt::format("{}:{}", literal, u.port))) {
      return connect(*addr);
    }
    dns_ = cache_.resolver_.resolve(u.host, [this](dns::Resolution r) {
      dns_.reset();
      if (!r.status.is_ok()) return fail("DNS: " + r.status.message());
      for (const auto& ip : r.addresses) {
        std::string literal = ip.find(':') != std::string::npos ? "[" + ip + "]" : ip;
        if (auto addr = loop::Address::parse(fmt::format("{}:{}", literal, entry_.url.port)))
          return connect(*addr);
      }
      fail("DNS: no address for " + entry_.url.host);
    });
  }

 private:
  void connect(const loop::Address& to) {
    conn_ = loop::TcpConn::create(cache_.loop_);
    conn_->set_callbacks(this);
    if (entry_.url.https) {
      auto ctx = cache_.client_context(entry_.url.host);
      if (!ctx) return fail(ctx.error().message());
      tls::TlsClientOptions opts;
      opts.server_name = entry_.url.host;
      conn_->set_transport(tls::TlsTransport::client(*ctx, opts));
    }
    Status s = conn_->connect(to);
    if (!s.is_ok()) return fail("connect: " + s.message());
  }

  void on_connected() override {
    const Url& u = entry_.url;
    bool default_port = u.port == (u.https ? 443 : 80);
    std::string host = u.host.find(':') != std::string::npos ? "[" + u.host + "]" : u.host;
    if (!default_port) host += fmt::format(":{}", u.port);
    parser_ = std::make_unique<http::Parser>(http::Parser::Kind::Response, *this);
    conn_->read_start();
    conn_->write(fmt::format(
        "GET {} HTTP/1.1\r\nHost: {}\r\nAccept: application/json\r\nUser-Agent: meshbox-jwks/1\r\n"
        "Connection: close\r\n\r\n",
        u.target, host));
  }

  void on_data(const char* data, size_t len) override {
    if (!parser_) return;
    size_t off = 0;
    while (off < len) {
      auto r = parser_->feed(data + off, len - off);
      if (done_ || too_big_) break;
      if (r.state == http::Parser::State::Paused && status_ < 200) {
        off += r.consumed;  // an interim response: the real one follows
        parser_->resume();
        continue;
      }
      if (r.state == http::Parser::State::Error)
        return fail(fmt::format("bad HTTP response: {}", parser_->error_reason()));
      if (r.state != http::Parser::State::Ok && r.state != http::Parser::State::Paused)
        return fail("unexpected HTTP response");
      break;
    }
    if (too_big_) return fail("the document is larger than 1 MiB");
    if (done_) finish();
  }

  void on_response_head(http::ResponseHead& head) override { status_ = head.status; }
  void on_body(const char* data, size_t len) override {
    if (status_ < 200) return;
    if (body_.size() + len > kMaxDocumentBytes) {
      too_big_ = true;
      parser_->stop();
      return;
    }
    body_.append(data, len);
  }
  void on_message_complete() override {
    if (status_ < 200) return;
    done_ = true;
    parser_->stop();
  }

  void on_eof() override {
    if (parser_ && parser_->finish() && done_) return finish();
    if (parser_ && !parser_->in_message() && status_ >= 200) return finish();
    fail("the connection closed before the whole response");
  }
  void on_error(int err) override {
    std::string why = loop::uv_error(err);
    if (conn_ && conn_->transport() && !conn_->transport()->error_detail().empty())
      why = conn_->transport()->error_detail();
    fail(why);
  }

  void finish() {
    if (status_ != 200) return fail(fmt::format("HTTP status {}", status_));
    end(std::move(body_));
  }
  void fail(std::string why) { end(make_error(Code::Unavailable, std::move(why))); }
  void end(Result<std::string> r) {
    timer_.stop();
    dns_.reset();
    conn_.reset();  // no TcpConn callback after this
    // on_fetched destroys this Fetch: nothing may touch `this` afterwards. The parser is
    // dropped there too, never from inside its own callback (end() runs from feed()'s caller).
    cache_.on_fetched(entry_, std::move(r));
  }

  JwksCache& cache_;
  Entry& entry_;
  loop::Timer timer_;
  dns::DnsQueryPtr dns_;
  loop::TcpConnPtr conn_;
  std::unique_ptr<http::Parser> parser_;
  int status_ = 0;
  std::string body_;
  bool done_ = false;
  bool too_big_ = false;
};

JwksCache::JwksCache(loop::Loop& loop, dns::ResolverOptions dns, std::function<void()> on_change)
    : loop_(loop),
      resolver_(loop, std::move(dns)),
      on_change_(std::move(on_change)),
      file_timer_(loop, [this] { check_files(); }),
      notify_timer_(loop, [this] { on_change_(); }) {}

JwksCache::~JwksCache() = default;

tls::JwksConstPtr JwksCache::get(const std::string& uri, uint64_t timeout_ms, std::string& error) {
  auto it = entries_.find(uri);
  if (it == entries_.end()) {
    auto e = std::make_unique<Entry>(*this);
    Entry* raw = e.get();
    e->uri = uri;
    e->timeout_ms = std::max<uint64_t>(timeout_ms, 1);
    it = entries_.emplace(uri, std::move(e)).first;
    if (uri.starts_with("file://")) {
      raw->path = uri.substr(7);
      read_file(*raw);
      if (!file_timer_.active()) file_timer_.start(kFileCheckMs, kFileCheckMs);
    } else if (auto url = parse_url(uri)) {
      raw->url = *url;
      // On the next loop iteration: never call back into the compile that asked.
      raw->timer.start(0);
    } else {
      raw->error = url.error().message();
    }
  }
  Entry& e = *it->second;
  e.used = true;
  e.timeout_ms = std::max<uint64_t>(timeout_ms, 1);
  if (!e.path.empty() && file_signature(e.path) != e.file_sig) read_file(e);
  error = e.jwks ? std::string() : e.error;
  return e.jwks;
}

void JwksCache::begin() {
  for (auto& [uri, e] : entries_)
    e->used = false;
}

void JwksCache::sweep() {
  std::erase_if(entries_, [](const auto& kv) { return !kv.second->used; });
}

void JwksCache::read_file(Entry& e) {
  e.file_sig = file_signature(e.path);
  auto text = read_small_file(e.path);
  if (!text) {
    e.jwks = nullptr;
    e.error = text.error().message();
    MB_WARN(kLog, "{}: {}", e.uri, e.error);
    return;
  }
  if (e.jwks && e.jwks->text() == *text) return;
  auto parsed = tls::Jwks::parse(*text);
  if (!parsed) {
    e.jwks = nullptr;
    e.error = "not a JWKS: " + parsed.error().message();
    MB_WARN(kLog, "{}: {}", e.uri, e.error);
    return;
  }
  e.jwks = *parsed;
  e.error.clear();
  MB_INFO(kLog, "{}: {} key(s) read", e.uri, e.jwks->size());
}

void JwksCache::check_files() {
  bool changed = false;
  bool any = false;
  for (auto& [uri, e] : entries_) {
    if (e->path.empty()) continue;
    any = true;
    if (file_signature(e->path) != e->file_sig) changed = true;
  }
  if (!any) file_timer_.stop();
  // The recompile's get() reads the changed files.
  if (changed) notify();
}

void JwksCache::start_fetch(Entry& e) {
  if (e.fetch) return;
  MB_DEBUG(kLog, "fetching {}", e.uri);
  e.fetch = std::make_unique<Fetch>(*this, e);
  e.fetch->start();
}

void JwksCache::on_fetched(Entry& e, Result<std::string> body) {
  // Destroyed on the next iteration: this runs inside the fetch's own callbacks.
  loop_.defer_delete(std::move(e.fetch));
  Result<tls::JwksConstPtr> parsed =
      body ? tls::Jwks::parse(*body) : Result<tls::JwksConstPtr>(body.error());
  if (!parsed) {
    e.error = body ? "not a JWKS: " + parsed.error().message() : parsed.error().message();
    MB_WARN(kLog, "{}: fetch failed ({}); retry in {} ms{}", e.uri, e.error, e.retry_ms,
            e.jwks ? ", keeping the keys fetched before" : "");
    e.timer.start(e.retry_ms);
    e.retry_ms = std::min(e.retry_ms * 2, kMaxRetryMs);
    if (!e.jwks) notify();  // the error text is in the snapshot (admin API)
    return;
  }
  e.retry_ms = kFirstRetryMs;
  e.timer.start(kRefreshMs);
  e.error.clear();
  if (e.jwks && e.jwks->text() == (*parsed)->text()) return;
  e.jwks = *parsed;
  MB_INFO(kLog, "{}: {} key(s) fetched", e.uri, e.jwks->size());
  notify();
}

Result<tls::TlsContextConstPtr> JwksCache::client_context(const std::string& host) {
  auto it = contexts_.find(host);
  if (it != contexts_.end()) return it->second;
  auto pem = read_small_file(kSystemCaBundle);
  if (!pem) return pem.error();
  auto roots = tls::Certificate::all_from_pem(*pem);
  if (!roots)
    return make_error(Code::InvalidArgument,
                      std::string(kSystemCaBundle) + ": " + roots.error().message());
  tls::TlsContextSpec spec;
  spec.role = tls::TlsContextSpec::Role::Client;
  spec.trusted_roots = std::move(*roots);
  spec.server_name = host;
  spec.verify_server_name = true;
  spec.session_resumption = false;
  auto ctx = tls::TlsContext::create(spec);
  if (!ctx) return ctx.error();
  contexts_[host] = *ctx;
  return *ctx;
}

}  // namespace meshbox::control
