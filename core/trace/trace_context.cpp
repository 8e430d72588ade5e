#include "core/trace/trace_context.h"

#include <array>
#include <cstring>
#include <vector>

namespace meshbox::trace {
namespace {

constexpr char kHexDigits[] = "0123456789abcdef";

// Hex digit values by byte: 0–15, or -1. kHexLower accepts lower case only (W3C), kHexAny
// either case (B3, as Envoy reads it).
struct HexTable {
  int8_t v[256];
};
constexpr HexTable make_hex_table(bool upper) {
  HexTable t{};
  for (int c = 0; c < 256; ++c) {
    t.v[c] = -1;
    if (c >= '0' && c <= '9') t.v[c] = static_cast<int8_t>(c - '0');
    if (c >= 'a' && c <= 'f') t.v[c] = static_cast<int8_t>(c - 'a' + 10);
    if (upper && c >= 'A' && c <= 'F') t.v[c] = static_cast<int8_t>(c - 'A' + 10);
  }
  return t;
}
constexpr HexTable kHexLower = make_hex_table(false);
constexpr HexTable kHexAny = make_hex_table(true);

int hex_value(char c, bool lower_only) {
  return (lower_only ? kHexLower : kHexAny).v[static_cast<unsigned char>(c)];
}

// Exactly 16 hex digits into `out` (zero allowed here; callers decide).
bool parse_u64(std::string_view hex, bool lower_only, uint64_t& out) {
  if (hex.size() != 16) return false;
  const int8_t* table = (lower_only ? kHexLower : kHexAny).v;
  uint64_t n = 0;
  int bad = 0;
  for (char c : hex) {
    int v = table[static_cast<unsigned char>(c)];
    bad |= v;  // any -1 sets the sign bit
    n = (n << 4) | static_cast<uint64_t>(v & 0xf);
  }
  if (bad < 0) return false;
  out = n;
  return true;
}

bool parse_trace_id(std::string_view hex, bool lower_only, TraceId& out) {
  TraceId id;
  if (hex.size() == 32) {
    if (!parse_u64(hex.substr(0, 16), lower_only, id.high)) return false;
    if (!parse_u64(hex.substr(16), lower_only, id.low)) return false;
  } else if (!parse_u64(hex, lower_only, id.low)) {
    return false;
  }
  if (id.empty()) return false;
  out = id;
  return true;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
    s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t'))
    s.remove_suffix(1);
  return s;
}

// x-b3-sampled: 1/0, and the legacy true/false.
Sampled parse_b3_sampled(std::string_view v) {
  v = trim(v);
  if (v == "1" || http::iequals(v, "true")) return Sampled::Yes;
  if (v == "0" || http::iequals(v, "false")) return Sampled::No;
  return Sampled::Undecided;
}

// The tracestate list cut to kMaxTracestate characters by dropping whole list members: first
// those longer than 128 characters (the spec's advice), then from the end. Shorter lists pass
// through unchanged.
std::string cut_tracestate(std::string_view list) {
  list = trim(list);
  if (list.size() <= kMaxTracestate) return std::string(list);
  std::vector<std::string_view> members;
  size_t total = 0;
  while (!list.empty()) {
    size_t comma = list.find(',');
    std::string_view m = trim(list.substr(0, comma));
    list = comma == std::string_view::npos ? std::string_view() : list.substr(comma + 1);
    if (m.empty()) continue;
    members.push_back(m);
    total += m.size() + (members.size() > 1 ? 1 : 0);
  }
  bool drop_long = total > kMaxTracestate;
  std::string out;
  for (std::string_view m : members) {
    if (drop_long && m.size() > 128) continue;
    if (out.size() + m.size() + (out.empty() ? 0 : 1) > kMaxTracestate) break;
    if (!out.empty()) out.push_back(',');
    out.append(m);
  }
  return out;
}

uint64_t nonzero(Random& rng) {
  uint64_t n = rng.next();
  while (n == 0)
    n = rng.next();
  return n;
}

bool is_trace_header(std::string_view name) {
  switch (name.size()) {
    case 2:
      return http::iequals(name, "b3");
    case 10:
      return http::iequals(name, "tracestate") || http::iequals(name, "x-b3-flags");
    case 11:
      return http::iequals(name, "traceparent") || http::iequals(name, "x-b3-spanid");
    case 12:
      return http::iequals(name, "x-b3-traceid") || http::iequals(name, "x-b3-sampled");
    case 15:
      return http::iequals(name, kProxyHeader);
    case 17:
      return http::iequals(name, "x-b3-parentspanid");
    default:
      return false;
  }
}

}  // namespace

bool parse_hex_id(std::string_view hex, TraceId& out) {
  return parse_trace_id(hex, false, out);
}

bool parse_hex_span(std::string_view hex, uint64_t& out) {
  uint64_t n = 0;
  if (!parse_u64(hex, false, n) || n == 0) return false;
  out = n;
  return true;
}

bool parse_traceparent(std::string_view v, W3cParent& out) {
  v = trim(v);
  // version "-" trace-id "-" parent-id "-" flags: 2 + 1 + 32 + 1 + 16 + 1 + 2 = 55.
  if (v.size() < 55) return false;
  int v0 = hex_value(v[0], true), v1 = hex_value(v[1], true);
  if (v0 < 0 || v1 < 0) return false;
  int version = v0 * 16 + v1;
  if (version == 0xff) return false;
  if (version == 0 && v.size() != 55) return false;
  // A later version may append fields, after a '-'.
  if (v.size() > 55 && v[55] != '-') return false;
  if (v[2] != '-' || v[35] != '-' || v[52] != '-') return false;
  W3cParent p;
  if (!parse_u64(v.substr(3, 16), true, p.trace_id.high)) return false;
  if (!parse_u64(v.substr(19, 16), true, p.trace_id.low)) return false;
  if (p.trace_id.empty()) return false;
  if (!parse_u64(v.substr(36, 16), true, p.span_id) || p.span_id == 0) return false;
  int f0 = hex_value(v[53], true), f1 = hex_value(v[54], true);
  if (f0 < 0 || f1 < 0) return false;
  p.flags = static_cast<uint8_t>(f0 * 16 + f1);
  out = p;
  return true;
}

bool parse_b3_single(std::string_view v, B3Context& out) {
  v = trim(v);
  std::array<std::string_view, 4> parts;
  size_t n = 0;
  while (true) {
    if (n == parts.size()) return false;
    size_t dash = v.find('-');
    parts[n++] = v.substr(0, dash);
    if (dash == std::string_view::npos) break;
    v.remove_prefix(dash + 1);
  }
  B3Context c;
  auto state = [&c](std::string_view s) {
    if (s == "1") {
      c.sampled = Sampled::Yes;
    } else if (s == "0") {
      c.sampled = Sampled::No;
    } else if (s == "d") {
      c.sampled = Sampled::Yes;
      c.debug = true;
    } else {
      return false;
    }
    return true;
  };
  if (n == 1) {  // a bare sampling decision
    if (!state(parts[0])) return false;
    out = c;
    return true;
  }
  if (!parse_hex_id(parts[0], c.trace_id)) return false;
  if (!parse_hex_span(parts[1], c.span_id)) return false;
  if (n >= 3 && !state(parts[2])) return false;
  if (n == 4 && !parse_hex_span(parts[3], c.parent_span_id)) return false;
  out = c;
  return true;
}

namespace {

// Where a request's trace headers are: the first entry of each name, by index, from one pass
// over the headers. propagate() reads the context from them and then rewrites the same
// entries, without looking for them again.
struct TraceHeaders {
  static constexpr size_t kNone = SIZE_MAX;
  size_t b3 = kNone;
  size_t traceparent = kNone;
  size_t tracestate = kNone;
  size_t b3_trace = kNone;
  size_t b3_span = kNone;
  size_t b3_parent = kNone;
  size_t b3_sampled = kNone;
  size_t b3_flags = kNone;
  size_t proxy = kNone;  // kProxyHeader
  int traceparents = 0;  // a repeated traceparent is invalid
  int tracestates = 0;   // several tracestate headers are one list
  size_t count = 0;      // trace headers, repeats included
};

TraceHeaders find_trace_headers(const http::HeaderMap& headers) {
  TraceHeaders at;
  size_t i = 0;
  for (const http::HeaderEntry& h : headers) {
    size_t index = i++;
    std::string_view name = h.name;
    if (name.empty()) continue;
    // Most names are ruled out by their first bytes: x-forwarded-*, x-request-id…
    char c = http::ascii_lower(name[0]);
    if (c == 'x' ? name.size() != kProxyHeader.size() &&
                       (name.size() < 10 || name[3] != '3' || http::ascii_lower(name[2]) != 'b')
                 : c != 'b' && c != 't')
      continue;
    auto first = [&at, index](size_t& slot) {
      if (slot == TraceHeaders::kNone) slot = index;
      ++at.count;
    };
    switch (name.size()) {
      case 2:
        if (http::iequals(name, "b3")) first(at.b3);
        break;
      case 10:
        if (http::iequals(name, "tracestate")) {
          first(at.tracestate);
          ++at.tracestates;
        } else if (http::iequals(name, "x-b3-flags")) {
          first(at.b3_flags);
        }
        break;
      case 11:
        if (http::iequals(name, "traceparent")) {
          first(at.traceparent);
          ++at.traceparents;
        } else if (http::iequals(name, "x-b3-spanid")) {
          first(at.b3_span);
        }
        break;
      case 12:
        if (http::iequals(name, "x-b3-traceid"))
          first(at.b3_trace);
        else if (http::iequals(name, "x-b3-sampled"))
          first(at.b3_sampled);
        break;
      case 15:
        if (http::iequals(name, kProxyHeader)) first(at.proxy);
        break;
      case 17:
        if (http::iequals(name, "x-b3-parentspanid")) first(at.b3_parent);
        break;
      default:
        break;
    }
  }
  return at;
}

// kProxyHeader's value: the formats digit, '-', then the context as a b3 single value.
bool parse_proxy_context(std::string_view v, IncomingContext& in) {
  if (v.size() < 3 || v[1] != '-') return false;
  int formats = hex_value(v[0], true);
  if (formats < 1 || formats > (kFormatW3c | kFormatB3Multi | kFormatB3Single)) return false;
  B3Context c;
  if (!parse_b3_single(v.substr(2), c) || c.trace_id.empty()) return false;
  in.formats = static_cast<uint8_t>(formats);
  in.trace_id = c.trace_id;
  in.span_id = c.span_id;
  in.parent_span_id = c.parent_span_id;
  in.sampled = c.sampled;
  in.debug = c.debug;
  return true;
}

// Every tracestate header as one list (RFC 9110 §5.3), cut to kMaxTracestate.
std::string read_tracestate(const http::HeaderMap& headers) {
  std::string list;
  for (const http::HeaderEntry& h : headers) {
    if (!http::iequals(h.name, "tracestate")) continue;
    if (!list.empty()) list.push_back(',');
    list.append(h.value);
  }
  return cut_tracestate(list);
}

IncomingContext read_context(const http::HeaderMap& headers, const TraceHeaders& at) {
  const http::HeaderEntry* entries = headers.begin();
  auto value = [entries](size_t i) {
    return i == TraceHeaders::kNone ? nullptr : &entries[i].value;
  };
  const std::string* b3 = value(at.b3);
  const std::string* traceparent = value(at.traceparent);
  const std::string* b3_trace = value(at.b3_trace);
  const std::string* b3_span = value(at.b3_span);
  const std::string* b3_parent = value(at.b3_parent);
  const std::string* b3_sampled = value(at.b3_sampled);
  const std::string* b3_flags = value(at.b3_flags);
  const int traceparents = at.traceparents;
  const int tracestates = at.tracestates;

  // The previous meshbox proxy's context, whole: it stands for every other header.
  if (at.proxy != TraceHeaders::kNone) {
    IncomingContext in;
    if (parse_proxy_context(entries[at.proxy].value, in)) {
      if ((in.formats & kFormatW3c) && tracestates > 0) in.tracestate = read_tracestate(headers);
      return in;
    }
  }

  IncomingContext in;
  bool decided = false;
  // Sources in priority order. The context comes from the first with one; the sampling
  // decision from the first with one among those without a context and the context's own.
  auto take = [&in, &decided](const B3Context& c, uint8_t format) {
    in.formats |= format;
    bool has_context = !c.trace_id.empty();
    if (has_context && !in.has_context()) {
      in.trace_id = c.trace_id;
      in.span_id = c.span_id;
      in.parent_span_id = c.parent_span_id;
    } else if (has_context) {
      return;  // another trace's decision is not ours
    }
    if (!decided && c.sampled != Sampled::Undecided) {
      in.sampled = c.sampled;
      in.debug = c.debug;
      decided = true;
    }
  };

  if (b3) {
    B3Context c;
    if (parse_b3_single(*b3, c)) take(c, kFormatB3Single);
  }
  if (b3_trace || b3_span || b3_sampled || b3_flags) {
    B3Context c;
    bool valid = true;
    if (b3_trace || b3_span) {
      valid = b3_trace && b3_span && parse_hex_id(trim(*b3_trace), c.trace_id) &&
              parse_hex_span(trim(*b3_span), c.span_id);
      // A malformed parent id is only information lost: the context stands.
      if (valid && b3_parent) {
        if (!parse_hex_span(trim(*b3_parent), c.parent_span_id)) c.parent_span_id = 0;
      }
    }
    if (b3_sampled) c.sampled = parse_b3_sampled(*b3_sampled);
    if (b3_flags && trim(*b3_flags) == "1") {
      c.sampled = Sampled::Yes;
      c.debug = true;
    }
    if (valid && (!c.trace_id.empty() || c.sampled != Sampled::Undecided)) take(c, kFormatB3Multi);
  }
  if (traceparent && traceparents == 1) {
    W3cParent p;
    if (parse_traceparent(*traceparent, p)) {
      B3Context c;
      c.trace_id = p.trace_id;
      c.span_id = p.span_id;
      c.sampled = (p.flags & 1) ? Sampled::Yes : Sampled::No;
      bool had_context = in.has_context();
      take(c, kFormatW3c);
      // tracestate belongs to the traceparent; kept only when the context is the same trace.
      if (tracestates > 0 && (!had_context || in.trace_id == p.trace_id))
        in.tracestate = read_tracestate(headers);
    }
  }
  return in;
}

}  // namespace

IncomingContext extract(const http::HeaderMap& headers) {
  return read_context(headers, find_trace_headers(headers));
}

bool decide_sampling(Sampled incoming, bool debug, double percent, Random& rng) {
  if (debug) return true;
  if (incoming != Sampled::Undecided) return incoming == Sampled::Yes;
  if (!(percent > 0)) return false;  // NaN too
  if (percent >= 100) return true;
  // 53 random bits → [0, 1).
  double u = static_cast<double>(rng.next() >> 11) * 0x1.0p-53;
  return u * 100.0 < percent;
}

SpanContext child_of(const IncomingContext& in, Random& rng, double sample_percent) {
  SpanContext s;
  if (in.formats) s.formats = in.formats;
  if (in.has_context()) {
    s.trace_id = in.trace_id;
    s.parent_id = in.span_id;
    s.tracestate = in.tracestate;
  } else {
    s.trace_id.high = nonzero(rng);
    s.trace_id.low = rng.next();
  }
  s.span_id = nonzero(rng);
  s.debug = in.debug;
  s.sampled = decide_sampling(in.sampled, in.debug, sample_percent, rng);
  return s;
}

SpanContext join(const IncomingContext& in, Random& rng, double sample_percent) {
  if (!in.has_context()) return child_of(in, rng, sample_percent);
  SpanContext s;
  s.formats = in.formats;
  s.trace_id = in.trace_id;
  s.span_id = in.span_id;
  s.parent_id = in.parent_span_id;
  s.tracestate = in.tracestate;
  s.shared = true;
  s.debug = in.debug;
  s.sampled = decide_sampling(in.sampled, in.debug, sample_percent, rng);
  return s;
}

void format_span_id(uint64_t n, char out[16]) {
  // A byte at a time: its two digits from a table (ids are written several times a hop).
  static constexpr auto kByteHex = [] {
    std::array<char, 512> t{};
    for (size_t b = 0; b < 256; ++b) {
      t[2 * b] = kHexDigits[b >> 4];
      t[2 * b + 1] = kHexDigits[b & 15];
    }
    return t;
  }();
  for (int i = 7; i >= 0; --i) {
    std::memcpy(out + 2 * i, &kByteHex[2 * (n & 0xff)], 2);
    n >>= 8;
  }
}

std::string span_id_hex(uint64_t n) {
  std::string s(16, '0');
  format_span_id(n, s.data());
  return s;
}

namespace {

// Hex of a trace id into `out` (32 bytes of room); returns its length, 16 or 32.
size_t write_trace_id(const TraceId& id, bool wide, char* out) {
  if (id.high == 0 && !wide) {
    format_span_id(id.low, out);
    return 16;
  }
  format_span_id(id.high, out);
  format_span_id(id.low, out + 16);
  return 32;
}

// The values inject() writes, built on the stack: the request path allocates nothing here
// beyond what the HeaderMap's reused strings need.
constexpr size_t kTraceparentSize = 55;
void write_traceparent(const SpanContext& span, char out[kTraceparentSize]) {
  out[0] = '0';
  out[1] = '0';
  out[2] = '-';
  write_trace_id(span.trace_id, true, out + 3);
  out[35] = '-';
  format_span_id(span.span_id, out + 36);
  out[52] = '-';
  out[53] = '0';
  out[54] = span.sampled ? '1' : '0';
}

constexpr size_t kMaxB3Single = 32 + 1 + 16 + 2 + 1 + 16;
size_t write_b3_single(const SpanContext& span, char out[kMaxB3Single]) {
  size_t n = write_trace_id(span.trace_id, false, out);
  out[n++] = '-';
  format_span_id(span.span_id, out + n);
  n += 16;
  out[n++] = '-';
  out[n++] = span.debug ? 'd' : span.sampled ? '1' : '0';
  if (span.parent_id != 0) {
    out[n++] = '-';
    format_span_id(span.parent_id, out + n);
    n += 16;
  }
  return n;
}

}  // namespace

std::string trace_id_hex(const TraceId& id, bool wide) {
  char buf[32];
  return std::string(buf, write_trace_id(id, wide, buf));
}

std::string format_traceparent(const SpanContext& span) {
  char buf[kTraceparentSize];
  write_traceparent(span, buf);
  return std::string(buf, sizeof buf);
}

std::string format_b3_single(const SpanContext& span) {
  char buf[kMaxB3Single];
  return std::string(buf, write_b3_single(span, buf));
}

namespace {

// Writes `span` into `headers` for the next hop; `at` is where their trace headers are. The
// first header of each name written here takes its new value in place (no entries moved, no
// names copied: most hops rewrite the headers they received), any other trace header goes,
// and what is still missing is appended.
void write_context(const SpanContext& span, http::HeaderMap& headers, const TraceHeaders& at,
                   bool to_proxy) {
  struct Out {
    std::string_view name;
    std::string_view value;
    size_t at;  // the entry to rewrite, or kNone
  };
  std::array<Out, 7> out;
  size_t n = 0;
  char traceparent[kTraceparentSize], trace_id[32], span_id[16], parent_id[16], b3[kMaxB3Single];
  char proxy[2 + kMaxB3Single];
  if (to_proxy) {
    proxy[0] = kHexDigits[span.formats & 0xf];
    proxy[1] = '-';
    out[n++] = {kProxyHeader, std::string_view(proxy, 2 + write_b3_single(span, proxy + 2)),
                at.proxy};
    if ((span.formats & kFormatW3c) && !span.tracestate.empty())
      out[n++] = {"tracestate", span.tracestate, at.tracestate};
  } else if (span.formats & kFormatW3c) {
    write_traceparent(span, traceparent);
    out[n++] = {"traceparent", std::string_view(traceparent, kTraceparentSize), at.traceparent};
    if (!span.tracestate.empty()) out[n++] = {"tracestate", span.tracestate, at.tracestate};
  }
  if (!to_proxy && (span.formats & kFormatB3Multi)) {
    // The ids' hex is in traceparent already when it was written (a 128-bit trace id).
    std::string_view trace_hex, span_hex;
    if ((span.formats & kFormatW3c) && span.trace_id.high != 0) {
      trace_hex = std::string_view(traceparent + 3, 32);
      span_hex = std::string_view(traceparent + 36, 16);
    } else {
      trace_hex = std::string_view(trace_id, write_trace_id(span.trace_id, false, trace_id));
      format_span_id(span.span_id, span_id);
      span_hex = std::string_view(span_id, 16);
    }
    out[n++] = {"x-b3-traceid", trace_hex, at.b3_trace};
    out[n++] = {"x-b3-spanid", span_hex, at.b3_span};
    if (span.parent_id != 0) {
      format_span_id(span.parent_id, parent_id);
      out[n++] = {"x-b3-parentspanid", std::string_view(parent_id, 16), at.b3_parent};
    }
    // Debug implies sampled: the spec says to send the flag instead of x-b3-sampled.
    if (span.debug)
      out[n++] = {"x-b3-flags", "1", at.b3_flags};
    else
      out[n++] = {"x-b3-sampled", span.sampled ? "1" : "0", at.b3_sampled};
  }
  if (!to_proxy && (span.formats & kFormatB3Single))
    out[n++] = {"b3", std::string_view(b3, write_b3_single(span, b3)), at.b3};

  http::HeaderEntry* entries = headers.begin();
  std::array<const http::HeaderEntry*, 7> kept{};
  size_t kept_n = 0;
  for (size_t i = 0; i < n; ++i) {
    if (out[i].at == TraceHeaders::kNone) continue;
    http::HeaderEntry& e = entries[out[i].at];
    if (e.name != out[i].name) e.name.assign(out[i].name);  // written in lower case
    e.value.assign(out[i].value);
    kept[kept_n++] = &e;
  }
  if (at.count > kept_n) {
    // Repeats, and formats the next hop does not get (remove_if sees each entry before it
    // moves it, so the addresses hold).
    headers.remove_if([&kept, kept_n](const http::HeaderEntry& h) {
      if (!is_trace_header(h.name)) return false;
      for (size_t i = 0; i < kept_n; ++i)
        if (kept[i] == &h) return false;
      return true;
    });
  }
  for (size_t i = 0; i < n; ++i)
    if (out[i].at == TraceHeaders::kNone) headers.add(out[i].name, out[i].value);
}

}  // namespace

void inject(const SpanContext& span, http::HeaderMap& headers, bool to_proxy) {
  write_context(span, headers, find_trace_headers(headers), to_proxy);
}

bool restore_standard(http::HeaderMap& headers) {
  TraceHeaders at = find_trace_headers(headers);
  if (at.proxy == TraceHeaders::kNone) return false;
  IncomingContext in = read_context(headers, at);
  if (!in.has_context()) {
    // Malformed: ignored, as any malformed trace header is; the standard ones stand.
    headers.remove(kProxyHeader);
    return true;
  }
  SpanContext caller;
  caller.trace_id = in.trace_id;
  caller.span_id = in.span_id;
  caller.parent_id = in.parent_span_id;
  caller.sampled = in.debug || in.sampled == Sampled::Yes;
  caller.debug = in.debug;
  caller.formats = in.formats;
  caller.tracestate = std::move(in.tracestate);
  write_context(caller, headers, at, false);
  return true;
}

SpanContext propagate(http::HeaderMap& headers, Random& rng, double sample_percent, bool to_proxy) {
  TraceHeaders at = find_trace_headers(headers);
  SpanContext span = child_of(read_context(headers, at), rng, sample_percent);
  write_context(span, headers, at, to_proxy);
  return span;
}

}  // namespace meshbox::trace
