#include "plane/data/access_log.h"

#include <fmt/format.h>
#include <time.h>

#include <algorithm>
#include <cstring>

#include "core/base/json.h"
#include "core/base/log.h"

namespace meshbox::data {

using config::LogOp;
using config::LogToken;

/// What a line is made of; `http` is null for a TCP connection.
struct AccessLogFormatter::Entry {
  const ListenerSpec* listener;
  const RequestRecord* http;
  uint64_t start_unix_us, duration_us;
  const ResponseFlags& flags;
  uint64_t bytes_received, bytes_sent;
  const ClusterSpec* cluster;
  std::string_view upstream_host, downstream_remote;
  const PeerView& source;
  const PeerView& destination;
  bool mtls;
  std::string_view local_address = {};  // the listener's, as text (set by format_entry)
};

namespace {

// An operator's value: unknown ("-" in text, null in JSON), a number, or text. `plain`: text
// meshbox wrote itself (addresses, flags, the protocol…), which JSON takes as it is.
struct Value {
  enum Kind { Absent, Number, Text };
  Kind kind = Absent;
  uint64_t n = 0;
  std::string_view s;
  bool plain = false;
};

Value text(std::string_view s) {
  return s.empty() ? Value{} : Value{Value::Text, 0, s};
}
Value plain_text(std::string_view s) {
  return s.empty() ? Value{} : Value{Value::Text, 0, s, true};
}
Value number(uint64_t n) {
  return Value{Value::Number, n, {}};
}

bool is_numeric(LogOp op) {
  switch (op) {
    case LogOp::ResponseCode:
    case LogOp::BytesReceived:
    case LogOp::BytesSent:
    case LogOp::Duration:
    case LogOp::ResponseDuration:
      return true;
    default:
      return false;
  }
}

// The request's path in origin form: an app behind HTTP_PROXY sends its outbound sidecar
// "GET http://reviews:9080/reviews/0", which the record keeps as it came.
std::string_view origin_path(std::string_view target) {
  if (target.empty() || target.front() == '/') return target;
  size_t scheme = target.find("://");
  if (scheme == std::string_view::npos) return target;  // "*", or not absolute-form
  size_t slash = target.find_first_of("/?", scheme + 3);
  return slash == std::string_view::npos ? std::string_view("/") : target.substr(slash);
}

Value request_header(const RequestRecord* r, config::LogHeader header) {
  if (!r) return {};
  switch (header) {
    case config::LogHeader::Method:
      return text(r->method);
    case config::LogHeader::Path:
      return text(origin_path(r->path));
    case config::LogHeader::Authority:
      return text(r->authority);
    case config::LogHeader::UserAgent:
      return text(r->user_agent);
    case config::LogHeader::RequestId:
      return text(r->request_id);
    case config::LogHeader::ForwardedFor:
      return text(r->forwarded_for);
    case config::LogHeader::None:
      break;
  }
  return {};  // not recorded (docs/observability.md lists the headers a record keeps)
}

std::string_view without_port(std::string_view addr) {
  if (!addr.empty() && addr.front() == '[') {
    size_t end = addr.find(']');
    return end == std::string_view::npos ? addr : addr.substr(1, end - 1);
  }
  size_t colon = addr.rfind(':');
  return colon == std::string_view::npos ? addr : addr.substr(0, colon);
}

Value reporter_value(ListenerSpec::Reporter reporter) {
  if (reporter == ListenerSpec::Reporter::Source) return plain_text("source");
  if (reporter == ListenerSpec::Reporter::Destination) return plain_text("destination");
  return {};  // a plain proxy
}

// `scratch` holds computed text; the Value may point into it until the next call.
Value eval(const LogToken& t, const AccessLogFormatter::Entry& e, std::string& scratch) {
  const RequestRecord* r = e.http;
  const ListenerSpec::Reporter reporter = e.listener->reporter;
  switch (t.op) {
    case LogOp::Literal:
      return text(t.text);
    case LogOp::StartTime:
      return {};  // formatted by the caller
    case LogOp::Req: {
      Value v = request_header(r, t.header);
      if (v.kind == Value::Absent) v = request_header(r, t.alt_header);
      return v;
    }
    case LogOp::Resp:
    case LogOp::ResponseCodeDetails:
    case LogOp::ConnectionTerminationDetails:
    case LogOp::UpstreamTransportFailureReason:
    case LogOp::UpstreamLocalAddress:
    case LogOp::RequestedServerName:
      return {};
    case LogOp::ResponseCode:
      return r ? number(static_cast<uint64_t>(r->status)) : Value{};
    case LogOp::ResponseFlags:
      if (e.flags.empty()) return plain_text("-");
      scratch = e.flags.to_string();
      return plain_text(scratch);
    case LogOp::BytesReceived:
      return number(e.bytes_received);
    case LogOp::BytesSent:
      return number(e.bytes_sent);
    case LogOp::Duration:
      return number(e.duration_us / 1000);
    case LogOp::ResponseDuration:
      return r && r->response_start_us ? number(r->response_start_us / 1000) : Value{};
    case LogOp::UpstreamHost:
      return plain_text(e.upstream_host);
    case LogOp::UpstreamCluster:
      return e.cluster ? text(e.cluster->name) : Value{};
    case LogOp::DownstreamLocalAddress:
      return plain_text(e.local_address);
    case LogOp::DownstreamRemoteAddress:
      return plain_text(e.downstream_remote);
    case LogOp::DownstreamRemoteAddressWithoutPort:
      return plain_text(without_port(e.downstream_remote));
    case LogOp::DownstreamPeerUriSan:
      return reporter == ListenerSpec::Reporter::Destination && e.mtls ? text(e.source.principal)
                                                                       : Value{};
    case LogOp::UpstreamPeerUriSan:
      return reporter == ListenerSpec::Reporter::Source && e.mtls ? text(e.destination.principal)
                                                                  : Value{};
    case LogOp::RouteName:
      return r ? text(r->route_name) : Value{};
    case LogOp::Protocol:
      return r ? plain_text(r->protocol) : Value{};
    case LogOp::SourceWorkload:
      return text(e.source.workload);
    case LogOp::SourceNamespace:
      return text(e.source.ns);
    case LogOp::SourcePrincipal:
      return text(e.source.principal);
    case LogOp::SourceApp:
      return text(e.source.app);
    case LogOp::SourceVersion:
      return text(e.source.version);
    case LogOp::DestinationWorkload:
      return text(e.destination.workload);
    case LogOp::DestinationNamespace:
      return text(e.destination.ns);
    case LogOp::DestinationPrincipal:
      return text(e.destination.principal);
    case LogOp::DestinationApp:
      return text(e.destination.app);
    case LogOp::DestinationVersion:
      return text(e.destination.version);
    case LogOp::DestinationService:
      return e.cluster ? text(e.cluster->service_host) : Value{};
    case LogOp::Reporter:
      return reporter_value(reporter);
  }
  return {};
}

// Text lines hold no control characters, whatever a client sent: each becomes \xHH, so a
// header cannot forge a line (or a terminal escape).
void append_text(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  size_t run = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c != 0x7f) continue;
    out.append(s.substr(run, i - run));
    out += "\\x";
    out += kHex[c >> 4];
    out += kHex[c & 15];
    run = i + 1;
  }
  out.append(s.substr(run));
}

void append_number(std::string& out, uint64_t n) {
  fmt::format_int digits(n);
  out.append(digits.data(), digits.size());
}

std::string_view truncated(std::string_view s, size_t max_len) {
  return max_len && s.size() > max_len ? s.substr(0, max_len) : s;
}

// The digits of `frac` (nanoseconds) to `digits` places.
void append_fraction(std::string& out, uint64_t nanos, int digits) {
  char buf[9];
  for (int i = 8; i >= 0; --i) {
    buf[i] = static_cast<char>('0' + nanos % 10);
    nanos /= 10;
  }
  out.append(buf, static_cast<size_t>(digits));
}

}  // namespace

char* AccessLogFormatter::write_default_time(char* p, uint64_t unix_us) {
  // RFC 3339, milliseconds, UTC; the date and time of a second are computed once.
  auto sec = static_cast<int64_t>(unix_us / 1'000'000);
  if (sec != cached_second_) {
    time_t tt = static_cast<time_t>(sec);
    tm parts;
    ::gmtime_r(&tt, &parts);
    cached_length_ = ::strftime(cached_prefix_, sizeof cached_prefix_, "%Y-%m-%dT%H:%M:%S", &parts);
    cached_second_ = sec;
  }
  std::memcpy(p, cached_prefix_, cached_length_);
  p += cached_length_;
  auto ms = static_cast<unsigned>(unix_us % 1'000'000 / 1000);
  p[0] = '.';
  p[1] = static_cast<char>('0' + ms / 100);
  p[2] = static_cast<char>('0' + ms / 10 % 10);
  p[3] = static_cast<char>('0' + ms % 10);
  p[4] = 'Z';
  return p + 5;
}

void AccessLogFormatter::append_start_time(const LogToken& t, uint64_t unix_us, std::string& out) {
  auto sec = static_cast<int64_t>(unix_us / 1'000'000);
  uint64_t micros = unix_us % 1'000'000;
  if (t.text.empty()) {
    char buf[kMaxDefaultTime];
    out.append(buf, static_cast<size_t>(write_default_time(buf, unix_us) - buf));
    return;
  }
  // START_TIME(FORMAT): strftime in UTC, plus Envoy's %s (epoch seconds) and %f / %Nf
  // (fractional seconds, N digits, 9 by default).
  std::string& f = scratch_;
  f.clear();
  const std::string& in = t.text;
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '%' || i + 1 >= in.size()) {
      f += in[i];
      continue;
    }
    char next = in[i + 1];
    if (next == 's') {
      f += std::to_string(sec);
      ++i;
    } else if (next == 'f') {
      append_fraction(f, micros * 1000, 9);
      ++i;
    } else if (next >= '1' && next <= '9' && i + 2 < in.size() && in[i + 2] == 'f') {
      append_fraction(f, micros * 1000, next - '0');
      i += 2;
    } else {
      f += '%';
      f += next;  // "%%" stays "%%" for strftime
      ++i;
    }
  }
  time_t tt = static_cast<time_t>(sec);
  tm parts;
  ::gmtime_r(&tt, &parts);
  char buf[512];
  size_t n = f.empty() ? 0 : ::strftime(buf, sizeof buf, f.c_str(), &parts);
  out.append(buf, n);
}

std::string_view AccessLogFormatter::local_text(const loop::Address& address) {
  // The gateway's and the sidecar's listeners take turns on one worker: a few are kept.
  for (LocalText& l : local_texts_)
    if (!l.text.empty() && l.address == address) return l.text;
  LocalText& l = local_texts_[next_local_++ % local_texts_.size()];
  l.address = address;
  l.text = address.to_string();
  return l.text;
}

void AccessLogFormatter::format_entry(const config::AccessLogSpec& spec, Entry& e,
                                      std::string& out) {
  e.local_address = local_text(e.listener->address);
  if (spec.encoding == config::LogEncoding::Json) {
    if (spec.default_json)
      format_default_json(e, out);
    else
      format_json(spec, e, out);
    return;
  }
  append_template(spec.line, e, true, out);
}

void AccessLogFormatter::append_template(const config::LogTemplate& tpl, const Entry& e,
                                         bool text_line, std::string& out) {
  for (const LogToken& t : tpl) {
    if (t.op == LogOp::Literal) {
      out += t.text;
      continue;
    }
    if (t.op == LogOp::StartTime) {
      size_t at = out.size();
      append_start_time(t, e.start_unix_us, out);
      if (at == out.size()) out += '-';
      continue;
    }
    Value v = eval(t, e, value_);
    if (v.kind == Value::Absent)
      out += '-';
    else if (v.kind == Value::Number)
      append_number(out, v.n);
    else if (text_line)
      append_text(out, truncated(v.s, t.max_len));
    else
      out.append(truncated(v.s, t.max_len));  // escaped with the whole member
  }
}

namespace {

// A JSON line being written into room of its own (std::string would check its capacity for
// every piece, and zero whatever it is resized to). need() before each piece makes room for
// that piece's bound; it rarely has to grow. The cursor lives here, not in the formatter: a
// store through a char* may alias any member, which would make every piece reload them.
class JsonLine {
 public:
  JsonLine(std::unique_ptr<char[]>& buffer, size_t& room) : buffer_(buffer), room_(room) {
    if (!buffer_) {
      room_ = 4096;
      buffer_ = std::make_unique_for_overwrite<char[]>(room_);
    }
    begin_ = p_ = buffer_.get();
    end_ = begin_ + room_;
  }
  void need(size_t n) {
    if (static_cast<size_t>(end_ - p_) < n) grow(n);
  }
  void put(std::string_view s) {
    std::memcpy(p_, s.data(), s.size());
    p_ += s.size();
  }
  void put(char c) { *p_++ = c; }
  char*& cursor() { return p_; }
  /// A member's value: null, a number (quoted unless `numeric`), or text: as it is when it is
  /// plain (and not cut), else escaped.
  void value(const Value& v, bool numeric, size_t max_len) {
    if (v.kind == Value::Absent) {
      need(4);
      put("null");
      return;
    }
    if (v.kind == Value::Number) {
      fmt::format_int digits(v.n);
      need(digits.size() + 2);
      if (!numeric) put('"');
      put(std::string_view(digits.data(), digits.size()));
      if (!numeric) put('"');
      return;
    }
    std::string_view s = truncated(v.s, max_len);
    // A cut may fall inside a UTF-8 sequence: only an uncut plain value skips the scan.
    if (v.plain && s.size() == v.s.size()) {
      need(s.size() + 2);
      put('"');
      put(s);
      put('"');
      return;
    }
    // Copied while it is checked; escaped from the start if it holds anything to escape.
    need(json::max_string_size(s.size()));
    char* start = p_;
    *p_++ = '"';
    size_t plain = json::copy_plain(p_, s);
    if (plain == s.size()) {
      p_ += plain;
      *p_++ = '"';
    } else {
      p_ = json::write_string(start, s);
    }
  }
  std::string_view text() const { return {begin_, static_cast<size_t>(p_ - begin_)}; }

 private:
  void grow(size_t n) {
    size_t used = static_cast<size_t>(p_ - begin_);
    room_ = std::max(2 * room_, used + n);
    auto bigger = std::make_unique_for_overwrite<char[]>(room_);
    std::memcpy(bigger.get(), begin_, used);
    buffer_ = std::move(bigger);
    begin_ = buffer_.get();
    p_ = begin_ + used;
    end_ = begin_ + room_;
  }

  std::unique_ptr<char[]>& buffer_;
  size_t& room_;
  char* begin_;
  char* p_;
  char* end_;
};

}  // namespace

void AccessLogFormatter::format_json(const config::AccessLogSpec& spec, const Entry& e,
                                     std::string& out) {
  const size_t n = spec.fields.size();
  // The members' openings were escaped once, in the spec (json_keys).
  const bool keyed = spec.json_keys.size() == n && n > 0;
  JsonLine line(line_, line_room_);
  if (!keyed) {
    line.need(1);
    line.put('{');
  }
  for (size_t i = 0; i < n; ++i) {
    const auto& [name, tpl] = spec.fields[i];
    if (keyed) {
      line.need(spec.json_keys[i].size());
      line.put(spec.json_keys[i]);
    } else {
      line.need(json::max_string_size(name.size()) + 2);
      if (i > 0) line.put(',');
      line.cursor() = json::write_string(line.cursor(), name);
      line.put(':');
    }
    if (tpl.size() == 1 && tpl[0].op == LogOp::StartTime && tpl[0].text.empty()) {
      line.need(kMaxDefaultTime + 2);
      line.put('"');  // the default START_TIME is plain ASCII
      line.cursor() = write_default_time(line.cursor(), e.start_unix_us);
      line.put('"');
    } else if (tpl.size() == 1 && tpl[0].op != LogOp::Literal && tpl[0].op != LogOp::StartTime) {
      // One operator alone: its value, typed.
      line.value(eval(tpl[0], e, value_), is_numeric(tpl[0].op), tpl[0].max_len);
    } else {
      joined_.clear();
      append_template(tpl, e, false, joined_);
      line.value(Value{Value::Text, 0, joined_}, false, 0);  // a string, even if empty
    }
  }
  line.need(2);
  line.put("}\n");
  out.append(line.text());
}

// The default JSON line (config::kDefaultJsonFields, marked AccessLogSpec::default_json):
// the same members format_json writes for it, with the names as literals (copied inline) and
// each value read straight from the record instead of through a format. Tests hold the two to
// the same bytes.
const AccessLogFormatter::IdentityMembers* AccessLogFormatter::find_identity(
    std::span<const std::string_view> values) const {
  for (const IdentityMembers& m : identity_members_)
    if (m.values.equals(values)) return &m;
  return nullptr;
}

void AccessLogFormatter::keep_identity(std::span<const std::string_view> values,
                                       std::string_view before, std::string_view after) {
  IdentityMembers& m = identity_members_[next_identity_++ % identity_members_.size()];
  m.values.assign(values);
  m.json.assign(before);
  m.json.append(after);
  m.split = before.size();
}

void AccessLogFormatter::format_default_json(const Entry& e, std::string& out) {
  const RequestRecord* r = e.http;
  JsonLine line(line_, line_room_);
  auto name = [&line](std::string_view opening) {
    line.need(opening.size());
    line.put(opening);
  };
  auto req = [r](std::string_view RequestRecord::*field) { return r ? text(r->*field) : Value{}; };
  name(R"({"start_time":")");
  line.need(kMaxDefaultTime + 1);
  line.cursor() = write_default_time(line.cursor(), e.start_unix_us);
  line.put('"');
  name(R"(,"route_name":)");
  line.value(req(&RequestRecord::route_name), false, 0);
  name(R"(,"method":)");
  line.value(req(&RequestRecord::method), false, 0);
  name(R"(,"path":)");
  line.value(r ? text(origin_path(r->path)) : Value{}, false, 0);
  name(R"(,"protocol":)");
  line.value(r ? plain_text(r->protocol) : Value{}, false, 0);
  name(R"(,"response_code":)");
  line.value(r ? number(static_cast<uint64_t>(r->status)) : Value{}, true, 0);
  name(R"(,"response_flags":)");
  if (e.flags.empty()) {
    line.value(plain_text("-"), false, 0);
  } else {
    value_ = e.flags.to_string();
    line.value(plain_text(value_), false, 0);
  }
  name(R"(,"bytes_received":)");
  line.value(number(e.bytes_received), true, 0);
  name(R"(,"bytes_sent":)");
  line.value(number(e.bytes_sent), true, 0);
  name(R"(,"duration":)");
  line.value(number(e.duration_us / 1000), true, 0);
  name(R"(,"x_forwarded_for":)");
  line.value(req(&RequestRecord::forwarded_for), false, 0);
  name(R"(,"user_agent":)");
  line.value(req(&RequestRecord::user_agent), false, 0);
  name(R"(,"request_id":)");
  line.value(req(&RequestRecord::request_id), false, 0);
  name(R"(,"authority":)");
  line.value(req(&RequestRecord::authority), false, 0);
  name(R"(,"upstream_host":)");
  line.value(plain_text(e.upstream_host), false, 0);
  // The cluster, the listener's address, the reporter and the peers' identities (half the
  // line) depend on the listener, the cluster and the caller only, so a connection's requests
  // repeat them: written once, then copied while their values stay the same. The client's
  // address, between them, is not part of it (a gateway has many clients).
  const Value reporter = reporter_value(e.listener->reporter);
  const std::string_view identity[10] = {
      e.cluster ? std::string_view(e.cluster->name) : std::string_view(),
      e.local_address,
      reporter.s,
      e.source.workload,
      e.source.ns,
      e.source.principal,
      e.destination.workload,
      e.destination.ns,
      e.destination.principal,
      e.cluster ? std::string_view(e.cluster->service_host) : std::string_view(),
  };
  auto remote = [&] {
    name(R"(,"downstream_remote_address":)");
    line.value(plain_text(e.downstream_remote), false, 0);
  };
  if (const IdentityMembers* kept = find_identity(identity)) {
    name(std::string_view(kept->json).substr(0, kept->split));
    remote();
    name(std::string_view(kept->json).substr(kept->split));
  } else {
    const size_t from = line.text().size();
    name(R"(,"upstream_cluster":)");
    line.value(e.cluster ? text(e.cluster->name) : Value{}, false, 0);
    name(R"(,"downstream_local_address":)");
    line.value(plain_text(e.local_address), false, 0);
    const size_t remote_from = line.text().size();
    remote();
    const size_t remote_to = line.text().size();
    name(R"(,"reporter":)");
    line.value(reporter, false, 0);
    auto peer = [&](const PeerView& p, std::string_view workload, std::string_view ns,
                    std::string_view principal) {
      name(workload);
      line.value(text(p.workload), false, 0);
      name(ns);
      line.value(text(p.ns), false, 0);
      name(principal);
      line.value(text(p.principal), false, 0);
    };
    peer(e.source, R"(,"source_workload":)", R"(,"source_namespace":)", R"(,"source_principal":)");
    peer(e.destination, R"(,"destination_workload":)", R"(,"destination_namespace":)",
         R"(,"destination_principal":)");
    name(R"(,"destination_service":)");
    line.value(e.cluster ? text(e.cluster->service_host) : Value{}, false, 0);
    keep_identity(identity, line.text().substr(from, remote_from - from),
                  line.text().substr(remote_to));
  }
  name(R"(,"upstream_service_time":)");
  line.value(r && r->response_start_us ? number(r->response_start_us / 1000) : Value{}, true, 0);
  name("}\n");
  out.append(line.text());
}

void AccessLogFormatter::format(const config::AccessLogSpec& spec, const RequestRecord& r,
                                std::string& out) {
  Entry e{r.listener,
          &r,
          r.start_unix_us,
          r.duration_us,
          r.flags,
          r.request_body_bytes,
          r.response_body_bytes,
          r.cluster,
          r.upstream_host,
          r.downstream_remote,
          r.source,
          r.destination,
          r.mtls};
  format_entry(spec, e, out);
}

void AccessLogFormatter::format(const config::AccessLogSpec& spec, const ConnectionRecord& r,
                                std::string& out) {
  Entry e{r.listener,       nullptr,       r.start_unix_us, r.duration_us,   r.flags,
          r.received_bytes, r.sent_bytes,  r.cluster,       r.upstream_host, r.downstream_remote,
          r.source,         r.destination, r.mtls};
  format_entry(spec, e, out);
}

// ---- AccessLogger ---------------------------------------------------------------------------

namespace {
// A destination unused this long, with nothing left to write, is closed (a hot reload moved
// the log elsewhere, or turned it off).
constexpr uint64_t kSinkIdleMs = 10'000;
}  // namespace

AccessLogger::AccessLogger(loop::Loop& loop, const SnapshotConstPtr* current,
                           loop::FileAppender::Options options)
    : loop_(loop), current_(current), options_(options) {}

AccessLogger::~AccessLogger() = default;

const config::AccessLogSpec* AccessLogger::spec_for(const ListenerSpec* listener) {
  const Snapshot* snap = current_ ? current_->get() : nullptr;
  if (!snap) return listener->access_log.get();
  if (snap != cached_snapshot_) {
    specs_.clear();
    cached_snapshot_ = snap;
  }
  auto [it, inserted] = specs_.try_emplace(listener, listener->access_log.get());
  if (inserted) {
    // A listener the current snapshot no longer has keeps its own spec.
    for (const ListenerSpec& l : snap->listeners) {
      if (l.name == listener->name) {
        it->second = l.access_log.get();
        break;
      }
    }
  }
  return it->second;
}

void AccessLogger::on_request(const RequestRecord& r) {
  const config::AccessLogSpec* spec = spec_for(r.listener);
  if (!spec) return;
  line_.clear();
  formatter_.format(*spec, r, line_);
  write(spec->path);
}

void AccessLogger::on_connection(const ConnectionRecord& r) {
  const config::AccessLogSpec* spec = spec_for(r.listener);
  if (!spec) return;
  line_.clear();
  formatter_.format(*spec, r, line_);
  write(spec->path);
}

void AccessLogger::write(const std::string& path) {
  ++lines_;
  if (stopped_) {
    // After the worker's stop (a connection aborted during shutdown): written at once by an
    // appender that lives only for it.
    loop::FileAppender once(loop_, path, options_);
    if (!once.append(line_)) ++dropped_closed_;
    return;
  }
  loop::FileAppender& out = sink(path);
  if (!out.append(line_)) {
    uint64_t d = dropped();
    if (d > dropped_reported_) {
      MB_LOG_EVERY(1, Warn, "access_log",
                   "access log {}: buffer full (the disk is slower than the traffic); {} "
                   "line(s) dropped so far on this worker",
                   path, d);
      dropped_reported_ = d;
    }
  }
}

loop::FileAppender& AccessLogger::sink(const std::string& path) {
  uint64_t now = loop_.now_ms();
  for (Sink& s : sinks_) {
    if (s.appender->path() == path) {
      s.last_used_ms = now;
      return *s.appender;
    }
  }
  // A new destination: close the ones nobody has used for a while.
  std::erase_if(sinks_, [&](Sink& s) {
    if (now - s.last_used_ms < kSinkIdleMs || !s.appender->idle()) return false;
    dropped_closed_ += s.appender->dropped_lines();
    return true;
  });
  sinks_.push_back({std::make_unique<loop::FileAppender>(loop_, path, options_), now});
  return *sinks_.back().appender;
}

void AccessLogger::on_stop() {
  stopped_ = true;
  for (Sink& s : sinks_)
    dropped_closed_ += s.appender->dropped_lines();
  sinks_.clear();  // each writes out what it holds, then closes
}

uint64_t AccessLogger::dropped() const {
  uint64_t n = dropped_closed_;
  for (const Sink& s : sinks_)
    n += s.appender->dropped_lines();
  return n;
}

}  // namespace meshbox::data
