#include "plane/config/decode.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>
#include <type_traits>

#include <fmt/format.h>

#include "plane/config/suggest.h"

// toml++ is used header-only, and only in this file. Debian's libtomlplusplus.so is built
// with exceptions and exports only toml::ex::parse; meshbox builds with TOML_EXCEPTIONS=0
// (no exceptions in meshbox code), which needs toml::noex::parse. meson passes
// TOML_HEADER_ONLY=1 for this library (plane/config/meson.build).
//
// toml++'s internal assertions are turned off, in every build. toml++ 3.3.0 asserts before
// it checks some input (parse_key(): "[\n" aborts a debug build), and with NDEBUG it turns
// the same assertions into __builtin_assume() under clang: undefined behaviour on bad input.
// With TOML_ASSERT a no-op and NDEBUG hidden while the header is read, every such site
// behaves as a GCC release build does: the parser's own check reports the error
// (robustness_test.cpp feeds it garbage under ASan+UBSan).
#pragma push_macro("NDEBUG")
#undef NDEBUG
#define TOML_ASSERT(expr) static_cast<void>(0)
#include <toml++/toml.h>
#pragma pop_macro("NDEBUG")

namespace meshbox::config {

namespace {

using toml::array;
using toml::node;
using toml::table;

// A config file larger than this is refused rather than parsed: a mesh config is a few
// kilobytes, and a huge file is more likely a mistake (the wrong path) than a config.
constexpr uintmax_t kMaxFileBytes = 16u << 20;

Pos pos_of(const toml::source_region& r) {
  return {r.begin.line, r.begin.column};
}
Pos pos_of(const node& n) {
  return pos_of(n.source());
}

// path + "." + key. A key too long to be meant (garbage input) is cut short, so that no
// finding carries a megabyte of it.
std::string join(const std::string& path, std::string_view key) {
  constexpr size_t kMaxKey = 200;
  std::string k(key.substr(0, kMaxKey));
  if (key.size() > kMaxKey) {
    while (!k.empty() && (static_cast<unsigned char>(k.back()) & 0x80))
      k.pop_back();
    k += "…";
  }
  return path.empty() ? k : path + "." + k;
}
std::string index(const std::string& path, size_t i) {
  return fmt::format("{}[{}]", path, i);
}

std::string_view type_name(const node& n) {
  switch (n.type()) {
    case toml::node_type::string:
      return "a string";
    case toml::node_type::integer:
      return "an integer";
    case toml::node_type::floating_point:
      return "a float";
    case toml::node_type::boolean:
      return "a boolean";
    case toml::node_type::table:
      return "a table";
    case toml::node_type::array:
      return "an array";
    case toml::node_type::date:
      return "a date";
    case toml::node_type::time:
      return "a time";
    case toml::node_type::date_time:
      return "a date-time";
    case toml::node_type::none:
      break;
  }
  return "nothing";
}

std::string quote(std::string_view s) {
  return quote_for_message(s);
}

// The findings of one resource (or of the file, or of [mesh]) and where its fields are.
class Scope {
 public:
  Scope(const std::string& file, std::string_view kind, Source* source,
        std::vector<ConfigError>& errors)
      : file_(file), kind_(kind), source_(source), errors_(errors) {}

  /// The name findings carry. A name too long to be valid (it is reported) is cut short.
  void set_name(std::string display_name) {
    if (display_name.size() > 300) {
      std::string q = quote(display_name);  // "…", cut short
      display_name = q.substr(1, q.size() - 2);
    }
    name_ = std::move(display_name);
  }

  void error(Pos pos, const std::string& field, std::string message) {
    if (source_) source_->rejected.insert(field);
    errors_.push_back(ConfigError{Severity::Error, file_, pos.line, pos.column, std::string(kind_),
                                  name_, field, std::move(message)});
  }
  void wrong_type(const node& n, const std::string& path, std::string_view expected) {
    std::string got(type_name(n));
    if (const auto* s = n.as_string()) got += " " + quote(s->get());
    error(pos_of(n), path, fmt::format("expected {}, got {}", expected, got));
  }
  void record(const std::string& path, const node& n) {
    if (source_) source_->fields[path] = pos_of(n);
  }

 private:
  const std::string& file_;
  std::string_view kind_;
  std::string name_;
  Source* source_;
  std::vector<ConfigError>& errors_;
};

// Reads the keys of one TOML table. Every key a decoder asks for, present or not, is a known
// key; finish() reports the others as unknown, with a suggestion. So a decoder must ask for
// every key its table may have, whatever the values of the others.
class Fields {
 public:
  Fields(Scope& s, const table& t, std::string path) : s_(s), t_(t), path_(std::move(path)) {}

  Scope& scope() { return s_; }
  const std::string& path() const { return path_; }
  std::string path(std::string_view key) const { return join(path_, key); }
  Pos pos() const { return pos_of(t_); }
  const table& toml() const { return t_; }

  /// The value under `key` or nullptr. Records its position under its path.
  const node* get(std::string_view key) {
    known_.emplace_back(key);
    const node* n = t_.get(key);
    if (n) s_.record(path(key), *n);
    return n;
  }
  /// Like get(), and reports a missing required field.
  const node* require(std::string_view key) {
    const node* n = get(key);
    if (!n) s_.error(pos(), path(key), "required field is missing");
    return n;
  }

  /// Decodes `key` with `parse` into `out`, if present and valid. True if `out` was set.
  template <typename T, typename P>
  bool read(std::string_view key, T& out, const P& parse) {
    const node* n = get(key);
    return n && assign(*n, key, out, parse);
  }
  template <typename T, typename P>
  bool read_required(std::string_view key, T& out, const P& parse) {
    const node* n = require(key);
    return n && assign(*n, key, out, parse);
  }

  /// Reports the keys nobody asked for.
  void finish() {
    for (auto&& [key, value] : t_) {
      std::string_view k = key.str();
      if (std::find(known_.begin(), known_.end(), k) != known_.end()) continue;
      std::string message = "unknown key " + quote(k);
      std::string suggestion = did_you_mean(k, known_);
      if (!suggestion.empty()) {
        message += suggestion;
      } else if (known_.size() <= 16) {
        std::string list;
        for (const auto& name : known_)
          list += (list.empty() ? "" : ", ") + name;
        message += " (expected one of: " + list + ")";
      }
      s_.error(pos_of(key.source()), path(k), std::move(message));
    }
  }

 private:
  template <typename T, typename P>
  bool assign(const node& n, std::string_view key, T& out, const P& parse) {
    auto v = parse(s_, n, path(key));
    if (!v) return false;
    out = std::move(*v);
    return true;
  }

  Scope& s_;
  const table& t_;
  std::string path_;
  std::vector<std::string> known_;
};

// ---------------------------------------------------------------------------------------
// Value parsers: (Scope&, const node&, path) → std::optional<T>, reporting what is wrong.

std::optional<std::string> p_string(Scope& s, const node& n, const std::string& path) {
  const auto* v = n.as_string();
  if (!v) {
    s.wrong_type(n, path, "a string");
    return std::nullopt;
  }
  if (v->get().find('\0') != std::string::npos) {
    s.error(pos_of(n), path, "must not contain NUL characters");
    return std::nullopt;
  }
  return v->get();
}

std::optional<bool> p_bool(Scope& s, const node& n, const std::string& path) {
  const auto* v = n.as_boolean();
  if (!v) {
    s.wrong_type(n, path, "true or false");
    return std::nullopt;
  }
  return v->get();
}

// An integer in [lo, hi], as T.
template <typename T>
auto p_int(int64_t lo, int64_t hi, std::string_view what = "an integer") {
  return [=](Scope& s, const node& n, const std::string& path) -> std::optional<T> {
    const auto* v = n.as_integer();
    if (!v) {
      s.wrong_type(n, path, fmt::format("{} from {} to {}", what, lo, hi));
      return std::nullopt;
    }
    int64_t x = v->get();
    if (x < lo || x > hi) {
      s.error(pos_of(n), path, fmt::format("expected {} from {} to {}, got {}", what, lo, hi, x));
      return std::nullopt;
    }
    return static_cast<T>(x);
  };
}

constexpr int64_t kU32Max = 4294967295;
const auto p_u32 = p_int<uint32_t>(0, kU32Max);
const auto p_count = p_int<uint32_t>(1, kU32Max);
const auto p_port = p_int<uint32_t>(1, 65535, "a port number");
const auto p_percent_int = p_int<uint32_t>(0, 100, "a percentage");

// Istio's PortSelector: `port = 9080` or `port = { number = 9080 }`.
std::optional<uint32_t> p_port_selector(Scope& s, const node& n, const std::string& path) {
  if (const auto* t = n.as_table()) {
    Fields f(s, *t, path);
    uint32_t port = 0;
    bool ok = f.read_required("number", port, p_port);
    f.finish();
    return ok ? std::optional<uint32_t>(port) : std::nullopt;
  }
  if (!n.is_integer()) {
    s.wrong_type(n, path, "a port number (or { number = N })");
    return std::nullopt;
  }
  return p_port(s, n, path);
}

// A percentage: a number from 0 to 100 (fractions allowed), or Istio's `{ value = N }`.
std::optional<double> p_percentage(Scope& s, const node& n, const std::string& path) {
  const node* v = &n;
  std::string vpath = path;
  if (const auto* t = n.as_table()) {
    Fields f(s, *t, path);
    v = f.require("value");
    f.finish();
    if (!v) return std::nullopt;
    vpath = path + ".value";
  }
  double d = 0;
  if (const auto* i = v->as_integer()) {
    d = static_cast<double>(i->get());
  } else if (const auto* fl = v->as_floating_point()) {
    d = fl->get();
  } else {
    s.wrong_type(*v, vpath, "a percentage (a number from 0 to 100)");
    return std::nullopt;
  }
  if (!std::isfinite(d) || d < 0 || d > 100) {
    s.error(pos_of(*v), vpath, fmt::format("expected a percentage from 0 to 100, got {}", d));
    return std::nullopt;
  }
  return d;
}

std::optional<Duration> p_duration(Scope& s, const node& n, const std::string& path) {
  const auto* v = n.as_string();
  if (!v) {
    s.wrong_type(n, path, "a duration such as \"5s\", \"100ms\", \"1m\" or \"1h\"");
    return std::nullopt;
  }
  std::string why;
  auto d = parse_duration(v->get(), &why);
  if (!d) s.error(pos_of(n), path, fmt::format("bad duration {}: {}", quote(v->get()), why));
  return d;
}

template <typename E>
auto p_enum() {
  return [](Scope& s, const node& n, const std::string& path) -> std::optional<E> {
    auto names = enum_names(E{});
    std::vector<std::string> list;
    for (const auto& e : names)
      list.emplace_back(e.name);
    std::string expected;
    for (size_t i = 0; i < list.size(); ++i)
      expected += (i == 0 ? "" : i + 1 == list.size() ? " or " : ", ") + quote(list[i]);
    const auto* v = n.as_string();
    if (!v) {
      s.wrong_type(n, path, "one of " + expected);
      return std::nullopt;
    }
    std::string lower = v->get();
    for (char& c : lower)
      c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    for (const auto& e : names)
      if (e.name == lower) return e.value;
    s.error(pos_of(n), path,
            fmt::format("expected one of {}, got {}{}", expected, quote(v->get()),
                        did_you_mean(lower, list)));
    return std::nullopt;
  };
}

// An array whose elements `elem` parses; elements that fail are left out (and reported).
template <typename P>
auto p_array(P elem, std::string_view expected) {
  using T = typename std::invoke_result_t<P, Scope&, const node&, const std::string&>::value_type;
  return [elem, expected](Scope& s, const node& n,
                          const std::string& path) -> std::optional<std::vector<T>> {
    const auto* a = n.as_array();
    if (!a) {
      std::string hint;
      if (const auto* str = n.as_string()) hint = fmt::format(" (write [{}])", quote(str->get()));
      s.wrong_type(n, path, std::string(expected) + hint);
      return std::nullopt;
    }
    std::vector<T> out;
    for (size_t i = 0; i < a->size(); ++i) {
      const node& e = *a->get(i);
      std::string p = index(path, i);
      s.record(p, e);
      if (auto v = elem(s, e, p)) out.push_back(std::move(*v));
    }
    return out;
  };
}

const auto p_strings = p_array(p_string, "an array of strings");

// A table decoded by `decode(Fields&)`; unknown keys reported.
template <typename F>
auto p_table(F decode, std::string_view expected = "a table") {
  using T = std::invoke_result_t<F, Fields&>;
  return [decode, expected](Scope& s, const node& n, const std::string& path) -> std::optional<T> {
    const auto* t = n.as_table();
    if (!t) {
      s.wrong_type(n, path, expected);
      return std::nullopt;
    }
    Fields f(s, *t, path);
    T v = decode(f);
    f.finish();
    return v;
  };
}

// A table with free-form keys, each value parsed by `value`: labels, env, header maps.
template <typename P>
auto p_map(P value, std::string_view expected) {
  using T = typename std::invoke_result_t<P, Scope&, const node&, const std::string&>::value_type;
  return [value, expected](Scope& s, const node& n,
                           const std::string& path) -> std::optional<std::map<std::string, T>> {
    const auto* t = n.as_table();
    if (!t) {
      s.wrong_type(n, path, expected);
      return std::nullopt;
    }
    std::map<std::string, T> out;
    for (auto&& [key, v] : *t) {
      std::string p = join(path, key.str());
      s.record(p, v);
      if (auto x = value(s, v, p)) out.emplace(std::string(key.str()), std::move(*x));
    }
    return out;
  };
}

const auto p_string_map = p_map(p_string, "a table of strings (key = \"value\")");

// ---------------------------------------------------------------------------------------
// Names

bool is_alnum_lower(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

// DNS-1123: a label (at most 63 of [a-z0-9-], alphanumeric at both ends) or, with dots, a
// subdomain (labels joined by '.', at most 253), as Kubernetes and Istio require of names.
bool is_dns1123(std::string_view s, bool allow_dots) {
  if (s.empty() || s.size() > (allow_dots ? 253u : 63u)) return false;
  if (!is_alnum_lower(s.front()) || !is_alnum_lower(s.back())) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (is_alnum_lower(c) || c == '-') continue;
    if (c == '.' && allow_dots && s[i - 1] != '.' && s[i - 1] != '-' && i + 1 < s.size() &&
        is_alnum_lower(s[i + 1]))
      continue;
    return false;
  }
  return true;
}

auto p_name(bool allow_dots) {
  return [allow_dots](Scope& s, const node& n,
                      const std::string& path) -> std::optional<std::string> {
    auto v = p_string(s, n, path);
    if (!v) return std::nullopt;
    if (!is_dns1123(*v, allow_dots)) {
      s.error(pos_of(n), path,
              fmt::format("expected a name of lower-case letters, digits and '-'{}, starting and "
                          "ending with a letter or digit, at most {} characters; got {}",
                          allow_dots ? " (and '.')" : "", allow_dots ? 253 : 63, quote(*v)));
      return std::nullopt;
    }
    return v;
  };
}

const auto p_label_name = p_name(false);
const auto p_subdomain_name = p_name(true);

// ---------------------------------------------------------------------------------------
// Shared pieces

std::optional<StringMatch> string_match(Scope& s, const node& n, const std::string& path,
                                        bool allow_present) {
  const auto* t = n.as_table();
  if (!t) {
    s.wrong_type(n, path,
                 "a string match such as { exact = \"…\" }, { prefix = \"…\" } or "
                 "{ regex = \"…\" }");
    return std::nullopt;
  }
  Fields f(s, *t, path);
  std::vector<StringMatch> found;
  for (auto [key, kind] : {std::pair{"exact", StringMatch::Kind::Exact},
                           std::pair{"prefix", StringMatch::Kind::Prefix},
                           std::pair{"regex", StringMatch::Kind::Regex}}) {
    std::string value;
    if (f.read(key, value, p_string)) found.push_back({kind, value});
  }
  bool present = false;
  const node* pn = allow_present ? f.get("present") : nullptr;
  if (pn) {
    if (auto v = p_bool(s, *pn, f.path("present"))) {
      if (!*v) {
        s.error(pos_of(*pn), f.path("present"),
                "present = false matches nothing; to require that a header is absent, list it "
                "under without_headers");
      }
      present = *v;
    }
  }
  f.finish();
  size_t total = found.size() + (present ? 1 : 0);
  if (total > 1) {
    s.error(pos_of(n), path,
            "set only one of exact, prefix, regex" + std::string(allow_present ? ", present" : ""));
    return std::nullopt;
  }
  if (present || (t->empty() && allow_present)) return StringMatch{StringMatch::Kind::Present, ""};
  if (found.empty()) {
    // Either the table was empty or every key in it was bad (and is reported).
    if (t->empty()) s.error(pos_of(n), path, "expected one of exact, prefix or regex");
    return std::nullopt;
  }
  return found.front();
}

std::optional<StringMatch> p_string_match(Scope& s, const node& n, const std::string& path) {
  return string_match(s, n, path, false);
}
std::optional<StringMatch> p_header_match(Scope& s, const node& n, const std::string& path) {
  return string_match(s, n, path, true);
}

const auto p_header_matches =
    p_map(p_header_match, "a table of header name = { exact | prefix | regex = \"…\" }");
const auto p_string_matches =
    p_map(p_string_match, "a table of name = { exact | prefix | regex = \"…\" }");

Port decode_port(Fields& f) {
  Port p;
  f.read_required("number", p.number, p_port);
  f.read("protocol", p.protocol, p_enum<Protocol>());
  f.read("name", p.name, p_string);
  f.read("target_port", p.target_port, p_port);
  if (p.name.empty()) p.name = std::string(to_string(p.protocol));
  return p;
}
const auto p_ports = p_array(p_table(decode_port), "an array of ports ({ number = N, … })");

WorkloadSelector decode_selector(Fields& f) {
  WorkloadSelector w;
  f.read("match_labels", w.match_labels, p_string_map);
  return w;
}
const auto p_selector = p_table(decode_selector, "a table: { match_labels = { … } }");

LocalRateLimit decode_local_rate_limit(Fields& f) {
  LocalRateLimit l;
  f.read_required("max_tokens", l.max_tokens,
                  p_int<uint32_t>(1, 1'000'000'000, "a number of tokens"));
  f.read("tokens_per_fill", l.tokens_per_fill,
         p_int<uint32_t>(1, 1'000'000'000, "a number of tokens"));
  f.read("fill_interval", l.fill_interval, p_duration);
  return l;
}
const auto p_local_rate_limit =
    p_table(decode_local_rate_limit,
            "a table: { max_tokens = N, tokens_per_fill = N, fill_interval = \"1s\" }");

LocalityLbSetting decode_locality(Fields& f) {
  LocalityLbSetting l;
  f.read("enabled", l.enabled, p_bool);
  f.read("distribute", l.distribute,
         p_array(p_table([](Fields& g) {
                   LocalityLbSetting::Distribute d;
                   g.read_required("from", d.from, p_string);
                   g.read_required("to", d.to,
                                   p_map(p_percent_int, "a table of locality = weight"));
                   return d;
                 }),
                 "an array of { from, to }"));
  f.read("failover", l.failover,
         p_array(p_table([](Fields& g) {
                   LocalityLbSetting::Failover x;
                   g.read_required("from", x.from, p_string);
                   g.read_required("to", x.to, p_string);
                   return x;
                 }),
                 "an array of { from, to }"));
  f.read("failover_priority", l.failover_priority, p_strings);
  return l;
}

// ---------------------------------------------------------------------------------------
// virtual_service

Destination decode_destination(Fields& f) {
  Destination d;
  f.read_required("host", d.host, p_string);
  f.read("subset", d.subset, p_string);
  f.read("port", d.port, p_port_selector);
  return d;
}
const auto p_destination = p_table(decode_destination, "a destination: { host = \"…\", … }");

HeaderOperations decode_header_operations(Fields& f) {
  HeaderOperations h;
  f.read("set", h.set, p_string_map);
  f.read("add", h.add, p_string_map);
  f.read("remove", h.remove, p_strings);
  return h;
}

HeaderRules decode_header_rules(Fields& f) {
  HeaderRules h;
  auto ops = p_table(decode_header_operations, "a table: { set, add, remove }");
  f.read("request", h.request, ops);
  f.read("response", h.response, ops);
  return h;
}
const auto p_header_rules = p_table(decode_header_rules, "a table: { request, response }");

const auto p_weight = p_int<int64_t>(0, 100, "a weight (percent)");

RouteDestination decode_http_route_destination(Fields& f) {
  RouteDestination r;
  f.read_required("destination", r.destination, p_destination);
  f.read("weight", r.weight, p_weight);
  f.read("headers", r.headers, p_header_rules);
  return r;
}

RouteDestination decode_l4_route_destination(Fields& f) {
  RouteDestination r;
  f.read_required("destination", r.destination, p_destination);
  f.read("weight", r.weight, p_weight);
  return r;
}

HttpMatch decode_http_match(Fields& f) {
  HttpMatch m;
  f.read("name", m.name, p_string);
  f.read("uri", m.uri, p_string_match);
  f.read("scheme", m.scheme, p_string_match);
  f.read("method", m.method, p_string_match);
  f.read("authority", m.authority, p_string_match);
  f.read("headers", m.headers, p_header_matches);
  f.read("without_headers", m.without_headers, p_header_matches);
  f.read("query_params", m.query_params, p_string_matches);
  f.read("ignore_uri_case", m.ignore_uri_case, p_bool);
  f.read("port", m.port, p_port);
  f.read("source_labels", m.source_labels, p_string_map);
  f.read("source_namespace", m.source_namespace, p_string);
  f.read("gateways", m.gateways, p_strings);
  return m;
}

HttpRedirect decode_redirect(Fields& f) {
  HttpRedirect r;
  f.read("uri", r.uri, p_string);
  f.read("authority", r.authority, p_string);
  f.read("scheme", r.scheme, p_string);
  f.read("port", r.port, p_port);
  f.read("derive_port", r.derive_port, p_enum<HttpRedirect::DerivePort>());
  f.read("redirect_code", r.redirect_code, p_int<uint32_t>(300, 399, "a 3xx status code"));
  return r;
}

std::optional<std::string> p_body(Scope& s, const node& n, const std::string& path) {
  // `body = "…"`, or Istio's `body = { string = "…" }`.
  if (const auto* t = n.as_table()) {
    Fields f(s, *t, path);
    std::string body;
    bool ok = f.read_required("string", body, p_string);
    f.finish();
    return ok ? std::optional<std::string>(body) : std::nullopt;
  }
  if (!n.is_string()) {
    s.wrong_type(n, path, "a string (or { string = \"…\" })");
    return std::nullopt;
  }
  return p_string(s, n, path);
}

DirectResponse decode_direct_response(Fields& f) {
  DirectResponse d;
  f.read_required("status", d.status, p_int<uint32_t>(200, 599, "an HTTP status"));
  f.read("body", d.body, p_body);
  return d;
}

HttpRewrite decode_rewrite(Fields& f) {
  HttpRewrite r;
  f.read("uri", r.uri, p_string);
  f.read("authority", r.authority, p_string);
  f.read("uri_regex_rewrite", r.uri_regex_rewrite, p_table([](Fields& g) {
           HttpRewrite::RegexRewrite x;
           g.read_required("match", x.match, p_string);
           g.read_required("rewrite", x.rewrite, p_string);
           return x;
         }));
  return r;
}

HttpRetry decode_retry(Fields& f) {
  HttpRetry r;
  f.read("attempts", r.attempts, p_int<uint32_t>(0, 1000, "a number of attempts"));
  f.read("per_try_timeout", r.per_try_timeout, p_duration);
  f.read("retry_on", r.retry_on, p_string);
  f.read("retry_remote_localities", r.retry_remote_localities, p_bool);
  return r;
}

HttpFault decode_fault(Fields& f) {
  HttpFault x;
  f.read("delay", x.delay, p_table([](Fields& g) {
           HttpFault::Delay d;
           g.read_required("fixed_delay", d.fixed_delay, p_duration);
           g.read("percentage", d.percentage, p_percentage);
           return d;
         }));
  f.read("abort", x.abort, p_table([](Fields& g) {
           HttpFault::Abort a;
           g.read("http_status", a.http_status, p_int<uint32_t>(200, 599, "an HTTP status"));
           g.read("grpc_status", a.grpc_status, p_string);
           g.read("percentage", a.percentage, p_percentage);
           return a;
         }));
  return x;
}

CorsPolicy decode_cors(Fields& f) {
  CorsPolicy c;
  f.read("allow_origins", c.allow_origins,
         p_array(p_string_match, "an array of string matches ({ exact = \"…\" }, …)"));
  f.read("allow_methods", c.allow_methods, p_strings);
  f.read("allow_headers", c.allow_headers, p_strings);
  f.read("expose_headers", c.expose_headers, p_strings);
  f.read("max_age", c.max_age, p_duration);
  f.read("allow_credentials", c.allow_credentials, p_bool);
  return c;
}

HttpRoute decode_http_route(Fields& f) {
  HttpRoute r;
  f.read("name", r.name, p_string);
  f.read("match", r.match,
         p_array(p_table(decode_http_match), "an array of match tables ({ uri = … }, …)"));
  f.read("route", r.route,
         p_array(p_table(decode_http_route_destination),
                 "an array of { destination = { host = \"…\" }, weight = N }"));
  f.read("redirect", r.redirect, p_table(decode_redirect));
  f.read("direct_response", r.direct_response, p_table(decode_direct_response));
  f.read("rewrite", r.rewrite, p_table(decode_rewrite));
  f.read("timeout", r.timeout, p_duration);
  f.read("retries", r.retries, p_table(decode_retry));
  f.read("fault", r.fault, p_table(decode_fault));
  f.read("mirror", r.mirror, p_destination);
  f.read("mirror_percentage", r.mirror_percentage, p_percentage);
  f.read("cors_policy", r.cors_policy, p_table(decode_cors));
  f.read("headers", r.headers, p_header_rules);
  f.read("local_rate_limit", r.local_rate_limit, p_local_rate_limit);
  return r;
}

L4Match decode_l4_match(Fields& f, bool tls) {
  L4Match m;
  if (tls) f.read_required("sni_hosts", m.sni_hosts, p_strings);
  f.read("destination_subnets", m.destination_subnets, p_strings);
  f.read("port", m.port, p_port);
  f.read("source_labels", m.source_labels, p_string_map);
  f.read("source_namespace", m.source_namespace, p_string);
  f.read("gateways", m.gateways, p_strings);
  return m;
}

L4Route decode_l4_route(Fields& f, bool tls) {
  L4Route r;
  f.read("match", r.match,
         p_array(p_table([tls](Fields& g) { return decode_l4_match(g, tls); }),
                 "an array of match tables"));
  f.read("route", r.route,
         p_array(p_table(decode_l4_route_destination),
                 "an array of { destination = { host = \"…\" }, weight = N }"));
  return r;
}

void decode_virtual_service(Fields& f, VirtualService& vs) {
  f.read_required("hosts", vs.hosts, p_strings);
  f.read("gateways", vs.gateways, p_strings);
  f.read("export_to", vs.export_to, p_strings);
  f.read("http", vs.http,
         p_array(p_table(decode_http_route), "an array of HTTP routes ([[virtual_service.http]])"));
  f.read("tcp", vs.tcp,
         p_array(p_table([](Fields& g) { return decode_l4_route(g, false); }),
                 "an array of TCP routes ([[virtual_service.tcp]])"));
  f.read("tls", vs.tls,
         p_array(p_table([](Fields& g) { return decode_l4_route(g, true); }),
                 "an array of TLS routes ([[virtual_service.tls]])"));
}

// ---------------------------------------------------------------------------------------
// destination_rule

ConsistentHash decode_consistent_hash(Fields& f) {
  ConsistentHash c;
  int kinds = 0;
  if (f.read("http_header_name", c.http_header_name, p_string)) {
    c.kind = ConsistentHash::Kind::HttpHeaderName;
    ++kinds;
  }
  if (f.read("http_cookie", c.http_cookie, p_table([](Fields& g) {
               ConsistentHash::Cookie k;
               g.read_required("name", k.name, p_string);
               g.read("path", k.path, p_string);
               g.read("ttl", k.ttl, p_duration);
               return k;
             }))) {
    c.kind = ConsistentHash::Kind::HttpCookie;
    ++kinds;
  }
  bool source_ip = false;
  if (f.read("use_source_ip", source_ip, p_bool) && source_ip) {
    c.kind = ConsistentHash::Kind::UseSourceIp;
    ++kinds;
  }
  if (f.read("http_query_parameter_name", c.http_query_parameter_name, p_string)) {
    c.kind = ConsistentHash::Kind::HttpQueryParameterName;
    ++kinds;
  }
  f.read("minimum_ring_size", c.minimum_ring_size, p_int<uint64_t>(1, 8'388'608, "a ring size"));
  if (kinds != 1) {
    f.scope().error(f.pos(), f.path(),
                    fmt::format("expected exactly one of http_header_name, http_cookie, "
                                "use_source_ip = true, http_query_parameter_name; got {}",
                                kinds));
  }
  return c;
}

std::optional<LoadBalancer> p_load_balancer(Scope& s, const node& n, const std::string& path) {
  // `load_balancer = "round_robin"` is shorthand for `{ simple = "round_robin" }`.
  if (n.is_string()) {
    auto simple = p_enum<LbPolicy>()(s, n, path);
    if (!simple) return std::nullopt;
    return LoadBalancer{*simple, std::nullopt, std::nullopt};
  }
  return p_table(
      [](Fields& f) {
        LoadBalancer lb;
        f.read("simple", lb.simple, p_enum<LbPolicy>());
        f.read("consistent_hash", lb.consistent_hash, p_table(decode_consistent_hash));
        f.read("locality_lb_setting", lb.locality_lb_setting, p_table(decode_locality));
        return lb;
      },
      "a load balancer: \"round_robin\" or a table { simple | consistent_hash = … }")(s, n, path);
}

ConnectionPool decode_connection_pool(Fields& f) {
  ConnectionPool c;
  f.read("tcp", c.tcp, p_table([](Fields& g) {
           ConnectionPool::Tcp t;
           g.read("max_connections", t.max_connections, p_count);
           g.read("connect_timeout", t.connect_timeout, p_duration);
           g.read("max_connection_duration", t.max_connection_duration, p_duration);
           g.read("idle_timeout", t.idle_timeout, p_duration);
           g.read("tcp_keepalive", t.tcp_keepalive, p_table([](Fields& k) {
                    ConnectionPool::TcpKeepalive x;
                    k.read("probes", x.probes, p_count);
                    k.read("time", x.time, p_duration);
                    k.read("interval", x.interval, p_duration);
                    return x;
                  }));
           return t;
         }));
  f.read("http", c.http, p_table([](Fields& g) {
           ConnectionPool::Http h;
           g.read("http1_max_pending_requests", h.http1_max_pending_requests, p_count);
           g.read("http2_max_requests", h.http2_max_requests, p_count);
           g.read("max_requests_per_connection", h.max_requests_per_connection, p_u32);
           g.read("max_retries", h.max_retries, p_u32);
           g.read("idle_timeout", h.idle_timeout, p_duration);
           return h;
         }));
  return c;
}

OutlierDetection decode_outlier_detection(Fields& f) {
  OutlierDetection o;
  f.read("consecutive_5xx_errors", o.consecutive_5xx_errors, p_u32);
  f.read("consecutive_gateway_errors", o.consecutive_gateway_errors, p_u32);
  f.read("interval", o.interval, p_duration);
  f.read("base_ejection_time", o.base_ejection_time, p_duration);
  f.read("max_ejection_percent", o.max_ejection_percent, p_percent_int);
  f.read("min_health_percent", o.min_health_percent, p_percent_int);
  return o;
}

ClientTls decode_client_tls(Fields& f) {
  ClientTls t;
  f.read("mode", t.mode, p_enum<ClientTls::Mode>());
  f.read("client_certificate", t.client_certificate, p_string);
  f.read("private_key", t.private_key, p_string);
  f.read("ca_certificates", t.ca_certificates, p_string);
  f.read("subject_alt_names", t.subject_alt_names, p_strings);
  f.read("sni", t.sni, p_string);
  f.read("insecure_skip_verify", t.insecure_skip_verify, p_bool);
  return t;
}

TrafficPolicy decode_traffic_policy(Fields& f) {
  TrafficPolicy p;
  f.read("load_balancer", p.load_balancer, p_load_balancer);
  f.read("connection_pool", p.connection_pool, p_table(decode_connection_pool));
  f.read("outlier_detection", p.outlier_detection, p_table(decode_outlier_detection));
  f.read("tls", p.tls, p_table(decode_client_tls));
  f.read("port_level_settings", p.port_level_settings,
         p_array(p_table([](Fields& g) {
                   PortTrafficPolicy x;
                   g.read_required("port", x.port, p_port_selector);
                   g.read("load_balancer", x.load_balancer, p_load_balancer);
                   g.read("connection_pool", x.connection_pool, p_table(decode_connection_pool));
                   g.read("outlier_detection", x.outlier_detection,
                          p_table(decode_outlier_detection));
                   g.read("tls", x.tls, p_table(decode_client_tls));
                   return x;
                 }),
                 "an array of { port = N, … }"));
  return p;
}

void decode_destination_rule(Fields& f, DestinationRule& dr) {
  f.read_required("host", dr.host, p_string);
  f.read("traffic_policy", dr.traffic_policy, p_table(decode_traffic_policy));
  f.read("subsets", dr.subsets,
         p_array(p_table([](Fields& g) {
                   Subset s;
                   g.read_required("name", s.name, p_label_name);
                   g.read("labels", s.labels, p_string_map);
                   g.read("traffic_policy", s.traffic_policy, p_table(decode_traffic_policy));
                   return s;
                 }),
                 "an array of subsets ({ name = \"v1\", labels = { … } })"));
  f.read("export_to", dr.export_to, p_strings);
}

// ---------------------------------------------------------------------------------------
// gateway

ServerTls decode_server_tls(Fields& f) {
  ServerTls t;
  f.read("https_redirect", t.https_redirect, p_bool);
  f.read("mode", t.mode, p_enum<ServerTls::Mode>());
  f.read("server_certificate", t.server_certificate, p_string);
  f.read("private_key", t.private_key, p_string);
  f.read("ca_certificates", t.ca_certificates, p_string);
  f.read("subject_alt_names", t.subject_alt_names, p_strings);
  f.read("min_protocol_version", t.min_protocol_version, p_enum<ServerTls::Version>());
  f.read("max_protocol_version", t.max_protocol_version, p_enum<ServerTls::Version>());
  f.read("cipher_suites", t.cipher_suites, p_strings);
  return t;
}

Server decode_server(Fields& f) {
  Server s;
  // `port = 8080, protocol = "http"` (DESIGN.md) or Istio's
  // `port = { number = 8080, name = "http", protocol = "http" }`.
  const node* port = f.require("port");
  const node* protocol = f.get("protocol");
  if (port && port->is_table()) {
    if (auto p = p_table(decode_port)(f.scope(), *port, f.path("port"))) s.port = *p;
    if (protocol) {
      f.scope().error(pos_of(*protocol), f.path("protocol"),
                      "the protocol goes inside the port table when port is a table");
    }
  } else if (port) {
    if (auto n = p_port(f.scope(), *port, f.path("port"))) s.port.number = *n;
    if (protocol) {
      if (auto p = p_enum<Protocol>()(f.scope(), *protocol, f.path("protocol")))
        s.port.protocol = *p;
    }
    s.port.name = std::string(to_string(s.port.protocol));
  }
  f.read("name", s.name, p_string);
  f.read("bind", s.bind, p_string);
  f.read_required("hosts", s.hosts, p_strings);
  f.read("tls", s.tls, p_table(decode_server_tls));
  return s;
}

void decode_gateway(Fields& f, Gateway& g) {
  f.read("selector", g.selector, p_string_map);
  f.read_required(
      "servers", g.servers,
      p_array(p_table(decode_server),
              "an array of servers ({ port = 8080, protocol = \"http\", hosts = […] })"));
  f.read("local_rate_limit", g.local_rate_limit, p_local_rate_limit);
  f.read("access_log", g.access_log, p_bool);
}

// ---------------------------------------------------------------------------------------
// service_entry, service, workload

WorkloadEntry decode_workload_entry(Fields& f) {
  WorkloadEntry e;
  f.read_required("address", e.address, p_string);
  f.read("ports", e.ports, p_map(p_port, "a table of port name = number"));
  f.read("labels", e.labels, p_string_map);
  f.read("network", e.network, p_string);
  f.read("locality", e.locality, p_string);
  f.read("weight", e.weight, p_count);
  f.read("service_account", e.service_account, p_string);
  return e;
}

void decode_service_entry(Fields& f, ServiceEntry& se) {
  f.read_required("hosts", se.hosts, p_strings);
  f.read("addresses", se.addresses, p_strings);
  f.read("ports", se.ports, p_ports);
  f.read("location", se.location, p_enum<Location>());
  f.read("resolution", se.resolution, p_enum<Resolution>());
  f.read("endpoints", se.endpoints,
         p_array(p_table(decode_workload_entry), "an array of endpoints ({ address = \"…\" })"));
  f.read("subject_alt_names", se.subject_alt_names, p_strings);
  f.read("export_to", se.export_to, p_strings);
}

void decode_service(Fields& f, Service& svc) {
  // `port = 9080` (+ `protocol`) is shorthand for `ports = [{ number = 9080, … }]`.
  const node* port = f.get("port");
  const node* protocol = f.get("protocol");
  const node* ports = f.get("ports");
  if (port && ports) {
    f.scope().error(pos_of(*port), f.path("port"),
                    "set either port (one port) or ports (a list), not both");
  }
  if (port) {
    Port p;
    if (auto n = p_port(f.scope(), *port, f.path("port"))) {
      p.number = *n;
      if (protocol) {
        if (auto pr = p_enum<Protocol>()(f.scope(), *protocol, f.path("protocol")))
          p.protocol = *pr;
      }
      p.name = std::string(to_string(p.protocol));
      if (!ports) svc.ports.push_back(p);
    }
  } else if (protocol) {
    f.scope().error(pos_of(*protocol), f.path("protocol"),
                    "protocol goes with port; with ports, set it on each port");
  }
  if (ports) {
    if (auto v = p_ports(f.scope(), *ports, f.path("ports"))) svc.ports = std::move(*v);
  }
  if (!port && !ports) f.scope().error(f.pos(), f.path("port"), "required field is missing");
  f.read("labels", svc.labels, p_string_map);
}

HealthCheck decode_health(Fields& f) {
  HealthCheck h;
  f.read("http", h.http, p_string);
  f.read("tcp", h.tcp, p_bool);
  f.read("interval", h.interval, p_duration);
  f.read("timeout", h.timeout, p_duration);
  f.read("healthy_threshold", h.healthy_threshold, p_count);
  f.read("unhealthy_threshold", h.unhealthy_threshold, p_count);
  return h;
}

// A bound, not a tuning knob: each replica is a process and a port of this host.
constexpr int64_t kMaxReplicas = 1000;

void decode_workload(Fields& f, Workload& w) {
  f.read_required("service", w.service, p_label_name);
  f.read("labels", w.labels, p_string_map);
  f.read("service_account", w.service_account, p_string);
  f.read("command", w.command, p_strings);
  f.read("replicas", w.replicas,
         p_int<uint32_t>(0, kMaxReplicas, "a number of replicas (processes of `command`)"));
  f.read("inject", w.inject, p_bool);
  f.read("capture", w.capture, p_enum<Capture>());
  f.read("env", w.env, p_string_map);
  f.read("working_dir", w.working_dir, p_string);
  f.read("address", w.address, p_string);
  // 0 (the default) asks meshbox to choose the port.
  f.read("port", w.port, p_int<uint32_t>(0, 65535, "a port number (0: chosen by meshbox)"));
  f.read("locality", w.locality, p_string);
  f.read("weight", w.weight, p_count);
  f.read("nodes", w.nodes, p_strings);
  f.read("health", w.health, p_table(decode_health));
  f.read("local_rate_limit", w.local_rate_limit, p_local_rate_limit);
  f.read("access_log", w.access_log, p_bool);
  if (!w.service.empty() && !w.labels.count("app")) w.labels["app"] = w.service;
}

// ---------------------------------------------------------------------------------------
// security

std::optional<MtlsMode> p_mtls(Scope& s, const node& n, const std::string& path) {
  return p_table(
      [](Fields& f) {
        MtlsMode m = MtlsMode::Unset;
        f.read("mode", m, p_enum<MtlsMode>());
        return m;
      },
      "a table: { mode = \"strict\" }")(s, n, path);
}

void decode_peer_authentication(Fields& f, PeerAuthentication& pa) {
  f.read("selector", pa.selector, p_selector);
  f.read("mtls", pa.mtls, p_mtls);
  // TOML keys are strings: port_level_mtls = { 8080 = { mode = "disable" } } has key "8080".
  const node* plm = f.get("port_level_mtls");
  if (!plm) return;
  auto modes =
      p_map(p_mtls, "a table of port = { mode = … }")(f.scope(), *plm, f.path("port_level_mtls"));
  if (!modes) return;
  for (auto& [key, mode] : *modes) {
    std::string path = join(f.path("port_level_mtls"), key);
    uint32_t port = 0;
    auto [end, ec] = std::from_chars(key.data(), key.data() + key.size(), port);
    if (ec != std::errc() || end != key.data() + key.size() || port < 1 || port > 65535) {
      const node* at = plm->as_table()->get(key);
      f.scope().error(
          at ? pos_of(*at) : f.pos(), path,
          fmt::format("expected a port number from 1 to 65535 as the key, got {}", quote(key)));
      continue;
    }
    pa.port_level_mtls[port] = mode;
  }
}

// Istio writes ports in authorization rules as strings; integers are accepted too.
std::optional<std::string> p_port_string(Scope& s, const node& n, const std::string& path) {
  if (n.is_integer()) {
    auto p = p_port(s, n, path);
    return p ? std::optional<std::string>(std::to_string(*p)) : std::nullopt;
  }
  return p_string(s, n, path);
}

AuthzSource decode_authz_source(Fields& f) {
  AuthzSource x;
  f.read("principals", x.principals, p_strings);
  f.read("not_principals", x.not_principals, p_strings);
  f.read("request_principals", x.request_principals, p_strings);
  f.read("not_request_principals", x.not_request_principals, p_strings);
  f.read("namespaces", x.namespaces, p_strings);
  f.read("not_namespaces", x.not_namespaces, p_strings);
  f.read("ip_blocks", x.ip_blocks, p_strings);
  f.read("not_ip_blocks", x.not_ip_blocks, p_strings);
  f.read("remote_ip_blocks", x.remote_ip_blocks, p_strings);
  f.read("not_remote_ip_blocks", x.not_remote_ip_blocks, p_strings);
  return x;
}

AuthzOperation decode_authz_operation(Fields& f) {
  AuthzOperation x;
  auto ports = p_array(p_port_string, "an array of ports");
  f.read("hosts", x.hosts, p_strings);
  f.read("not_hosts", x.not_hosts, p_strings);
  f.read("ports", x.ports, ports);
  f.read("not_ports", x.not_ports, ports);
  f.read("methods", x.methods, p_strings);
  f.read("not_methods", x.not_methods, p_strings);
  f.read("paths", x.paths, p_strings);
  f.read("not_paths", x.not_paths, p_strings);
  return x;
}

AuthzRule decode_authz_rule(Fields& f) {
  AuthzRule r;
  // Istio nests one level: from = [{ source = { … } }], to = [{ operation = { … } }].
  f.read("from", r.from,
         p_array(p_table([](Fields& g) {
                   AuthzSource s;
                   g.read_required("source", s, p_table(decode_authz_source));
                   return s;
                 }),
                 "an array of { source = { … } }"));
  f.read("to", r.to,
         p_array(p_table([](Fields& g) {
                   AuthzOperation o;
                   g.read_required("operation", o, p_table(decode_authz_operation));
                   return o;
                 }),
                 "an array of { operation = { … } }"));
  f.read("when", r.when,
         p_array(p_table([](Fields& g) {
                   AuthzCondition c;
                   g.read_required("key", c.key, p_string);
                   g.read("values", c.values, p_strings);
                   g.read("not_values", c.not_values, p_strings);
                   return c;
                 }),
                 "an array of { key = \"…\", values = […] }"));
  return r;
}

void decode_authorization_policy(Fields& f, AuthorizationPolicy& ap) {
  f.read("selector", ap.selector, p_selector);
  f.read("action", ap.action, p_enum<AuthzAction>());
  f.read("rules", ap.rules, p_array(p_table(decode_authz_rule), "an array of rules"));
}

JwtRule decode_jwt_rule(Fields& f) {
  JwtRule j;
  f.read_required("issuer", j.issuer, p_string);
  f.read("audiences", j.audiences, p_strings);
  f.read("jwks_uri", j.jwks_uri, p_string);
  f.read("jwks", j.jwks, p_string);
  f.read("from_headers", j.from_headers,
         p_array(p_table([](Fields& g) {
                   JwtRule::FromHeader h;
                   g.read_required("name", h.name, p_string);
                   g.read("prefix", h.prefix, p_string);
                   return h;
                 }),
                 "an array of { name = \"…\", prefix = \"…\" }"));
  f.read("from_params", j.from_params, p_strings);
  f.read("from_cookies", j.from_cookies, p_strings);
  f.read("output_payload_to_header", j.output_payload_to_header, p_string);
  f.read("forward_original_token", j.forward_original_token, p_bool);
  f.read("timeout", j.timeout, p_duration);
  return j;
}

void decode_request_authentication(Fields& f, RequestAuthentication& ra) {
  f.read("selector", ra.selector, p_selector);
  f.read("jwt_rules", ra.jwt_rules, p_array(p_table(decode_jwt_rule), "an array of JWT rules"));
}

// ---------------------------------------------------------------------------------------
// mesh

std::optional<OutboundTrafficPolicy> p_outbound(Scope& s, const node& n, const std::string& path) {
  // "registry_only", or Istio's { mode = "REGISTRY_ONLY" }.
  if (n.is_table()) {
    return p_table(
        [](Fields& f) {
          OutboundTrafficPolicy o = OutboundTrafficPolicy::AllowAny;
          f.read_required("mode", o, p_enum<OutboundTrafficPolicy>());
          return o;
        },
        "")(s, n, path);
  }
  return p_enum<OutboundTrafficPolicy>()(s, n, path);
}

// An IPv4 range "A.B.C.D/N" with room for at least one /30 (N <= 30).
std::optional<std::string> p_capture_cidr(Scope& s, const node& n, const std::string& path) {
  auto v = p_string(s, n, path);
  if (!v) return std::nullopt;
  auto slash = v->find('/');
  in_addr addr{};
  int prefix = -1;
  if (slash != std::string::npos) {
    std::string bits = v->substr(slash + 1);
    if (!bits.empty() && bits.size() <= 2 &&
        std::all_of(bits.begin(), bits.end(), [](char c) { return c >= '0' && c <= '9'; }))
      prefix = std::stoi(bits);
  }
  if (slash == std::string::npos || prefix < 0 || prefix > 30 ||
      ::inet_pton(AF_INET, v->substr(0, slash).c_str(), &addr) != 1) {
    s.error(pos_of(n), path,
            fmt::format("expected an IPv4 range with room for a /30, like \"10.250.0.0/16\", "
                        "got \"{}\"",
                        *v));
    return std::nullopt;
  }
  return v;
}

// A Zipkin collector: "IP:PORT", "localhost:PORT", "[IPv6]:PORT", or the same after
// "http://" with an optional path. Host names other than localhost are refused: the
// collector's address is fixed when the config is compiled, and nothing resolves names there.
std::optional<std::string> p_collector_address(Scope& s, const node& n, const std::string& path) {
  auto v = p_string(s, n, path);
  if (!v) return std::nullopt;
  std::string_view rest = *v;
  if (rest.starts_with("http://")) rest.remove_prefix(7);
  std::string_view authority = rest.substr(0, rest.find('/'));
  std::string host, port;
  if (authority.starts_with('[')) {
    size_t close = authority.find(']');
    if (close != std::string_view::npos && authority.substr(close + 1).starts_with(':')) {
      host = authority.substr(1, close - 1);
      port = authority.substr(close + 2);
    }
  } else if (size_t colon = authority.rfind(':'); colon != std::string_view::npos) {
    host = authority.substr(0, colon);
    port = authority.substr(colon + 1);
  }
  unsigned number = 0;
  auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), number);
  bool port_ok = !port.empty() && ec == std::errc() && end == port.data() + port.size() &&
                 number >= 1 && number <= 65535;
  in6_addr addr{};
  bool host_ok = host == "localhost" || ::inet_pton(AF_INET, host.c_str(), &addr) == 1 ||
                 ::inet_pton(AF_INET6, host.c_str(), &addr) == 1;
  if (!port_ok || !host_ok) {
    s.error(pos_of(n), path,
            fmt::format("expected a collector address \"IP:PORT\" or \"http://IP:PORT/PATH\" "
                        "(an IP address or localhost: host names are not resolved), got \"{}\"",
                        *v));
    return std::nullopt;
  }
  return v;
}

// Istio's tracing settings (meshConfig.defaultConfig.tracing):
// `tracing = { sampling = 10.0, zipkin = { address = "127.0.0.1:9411" } }`.
void decode_tracing(Fields& f, Mesh& m) {
  const node* n = f.get("tracing");
  if (!n) return;
  const std::string path = f.path("tracing");
  const table* t = n->as_table();
  if (!t) {
    f.scope().wrong_type(*n, path, "a table: { sampling = PERCENT, zipkin = { address = \"…\" } }");
    return;
  }
  Fields g(f.scope(), *t, path);
  g.read("sampling", m.tracing_sampling, p_percentage);
  g.read("enabled", m.enable_tracing, p_bool);
  if (const node* z = g.get("zipkin")) {
    if (const table* zt = z->as_table()) {
      Fields h(f.scope(), *zt, g.path("zipkin"));
      h.read_required("address", m.zipkin_address, p_collector_address);
      h.finish();
    } else {
      f.scope().wrong_type(*z, g.path("zipkin"), "a table: { address = \"IP:PORT\" }");
    }
  }
  g.finish();
}

void decode_mesh(Fields& f, Mesh& m) {
  f.read("name", m.name, p_string);
  f.read("trust_domain", m.trust_domain, p_string);
  f.read("trust_domain_aliases", m.trust_domain_aliases, p_strings);
  f.read("domain_suffix", m.domain_suffix, p_subdomain_name);
  f.read("root_namespace", m.root_namespace, p_label_name);
  f.read("outbound_traffic_policy", m.outbound_traffic_policy, p_outbound);
  f.read("connect_timeout", m.connect_timeout, p_duration);
  f.read("capture_cidr", m.capture_cidr, p_capture_cidr);
  f.read("enable_auto_mtls", m.enable_auto_mtls, p_bool);
  f.read("enable_metrics", m.enable_metrics, p_bool);
  f.read("access_log_file", m.access_log_file, p_string);
  f.read("access_log_encoding", m.access_log_encoding, p_enum<AccessLogEncoding>());
  f.read("access_log_format", m.access_log_format, p_string);
  f.read("enable_tracing", m.enable_tracing, p_bool);
  f.read("tracing_sampling", m.tracing_sampling, p_percentage);
  f.read("zipkin_address", m.zipkin_address, p_collector_address);
  decode_tracing(f, m);
  f.read("locality_lb_setting", m.locality_lb_setting, p_table(decode_locality));
}

// ---------------------------------------------------------------------------------------
// Canonical text of a resource (Source::toml, Source::json)

// toml++'s TOML flags without literal ('…'), multi-line and raw-tab strings: toml++ 3.3 writes
// a string holding ''' as a multi-line literal string that ends early, and a key holding a
// newline and a space as a multi-line key, which TOML forbids. Basic strings ("…" with
// escapes) hold anything. The rest of the defaults stay: indentation, Unicode as is,
// hex/octal/binary integers as written.
constexpr toml::format_flags kTomlFlags =
    toml::toml_formatter::default_flags &
    ~(toml::format_flags::allow_literal_strings | toml::format_flags::allow_multi_line_strings |
      toml::format_flags::allow_real_tabs_in_strings);

// A key toml++ 3.3 cannot print: its bare-key test skips tabs, newlines and single quotes, so
// "a\tb" or "it's" is printed without quotes, which is not TOML. Finds the first one in `n`
// (depth first), with its path.
const toml::key* find_unprintable_key(const node& n, const std::string& path, std::string* at) {
  if (const table* t = n.as_table()) {
    for (auto&& [key, v] : *t) {
      std::string p = join(path, key.str());
      if (key.str().find_first_of("\t\n'") != std::string_view::npos) {
        *at = std::move(p);
        return &key;
      }
      if (const toml::key* k = find_unprintable_key(v, p, at)) return k;
    }
  } else if (const array* a = n.as_array()) {
    for (size_t i = 0; i < a->size(); ++i)
      if (const toml::key* k = find_unprintable_key(*a->get(i), index(path, i), at)) return k;
  }
  return nullptr;
}

// Fills `source.toml` with the resource as a document of its own: `{ kind = [ table ] }`,
// printed as [[kind]], or `{ mesh = table }`, printed as [mesh]. The table is copied without
// its inline flag, so a resource written as `service = [{ … }]` prints with a header like the
// others. The text is read back and printed again: a resource whose text does not come back
// as itself (a toml++ formatting limit) is an error, so that no later stage (the config
// store) keeps text that means something else.
void set_resource_toml(Scope& s, std::string_view kind, const table& t, bool array_of_tables,
                       Source& source) {
  table copy = t;
  copy.is_inline(false);
  table root;
  if (array_of_tables) {
    root.insert(kind, array{std::move(copy)});
  } else {
    root.insert(kind, std::move(copy));
  }
  auto print = [](const table& doc) {
    std::ostringstream out;
    out << toml::toml_formatter(doc, kTomlFlags) << '\n';
    return std::move(out).str();
  };
  source.toml = print(root);

  toml::parse_result again = toml::parse(source.toml);
  if (again && print(again.table()) == source.toml) return;
  std::string path;
  if (const toml::key* k = find_unprintable_key(t, "", &path)) {
    s.error(pos_of(k->source()), path,
            fmt::format("key {} holds a tab, a newline or a single quote: meshbox cannot write "
                        "such a key back as TOML (toml++ prints it without quotes); rename it",
                        quote(k->str())));
  } else {
    s.error(pos_of(t), "",
            "this resource cannot be written back as TOML: toml++ prints it as something else");
  }
}

// The table as one compact JSON object. Without indentation flags toml++ still breaks the line
// before every member and element; those newlines are the only raw ones in its output (JSON
// strings have theirs escaped: multi-line strings are not a JSON thing), so dropping every
// '\n' leaves compact JSON. Dates and times become strings, inf and nan the strings
// "Infinity", "-Infinity" and "NaN".
std::string resource_json(const table& t) {
  std::ostringstream out;
  out << toml::json_formatter(
      t, toml::format_flags::quote_dates_and_times | toml::format_flags::quote_infinities_and_nans |
             toml::format_flags::allow_unicode_strings | toml::format_flags::terse_key_value_pairs);
  std::string text = std::move(out).str();
  std::erase(text, '\n');
  return text;
}

// Resources nest a few levels (virtual_service.http[0].match[0].headers.NAME is 7 deep). A
// table nested deeper is garbage, and toml++ prints, copies and parses it recursively: past
// this depth no canonical text is made, so that a document of dotted keys 5000 deep cannot
// exhaust the stack. 64 is also what json::parse accepts, so Source::json always parses.
constexpr size_t kMaxCanonicalDepth = 64;

// Whether `n` nests more than `limit` tables and arrays (itself included). Stops counting
// there, so it recurses at most `limit` + 1 deep whatever the input.
bool deeper_than(const node& n, size_t limit) {
  const table* t = n.as_table();
  const array* a = n.as_array();
  if (!t && !a) return false;
  if (limit == 0) return true;
  if (t) {
    for (auto&& [key, v] : *t)
      if (deeper_than(v, limit - 1)) return true;
  } else {
    for (const node& e : *a)
      if (deeper_than(e, limit - 1)) return true;
  }
  return false;
}

// The first integer INT64_MIN in `n`, with its path. toml++ 3.3's printer estimates the width
// of an array by negating its negative integers, which for this one value is undefined
// behaviour (UBSan stops there). No meshbox field takes it, so such a resource is refused.
// (The same estimate takes log10 of floats and casts it to size_t, which is undefined for a
// float below 0.1 too, but only clang's float-cast-overflow check sees that; GCC's UBSan
// does not, and x86 gives a large width: the array is printed on several lines.)
const node* find_int64_min(const node& n, const std::string& path, std::string* at) {
  if (const auto* v = n.as_integer()) {
    if (v->get() != std::numeric_limits<int64_t>::min()) return nullptr;
    *at = path;
    return &n;
  }
  if (const table* t = n.as_table()) {
    for (auto&& [key, v] : *t)
      if (const node* found = find_int64_min(v, join(path, key.str()), at)) return found;
  } else if (const array* a = n.as_array()) {
    for (size_t i = 0; i < a->size(); ++i)
      if (const node* found = find_int64_min(*a->get(i), index(path, i), at)) return found;
  }
  return nullptr;
}

// Source::toml and Source::json of a resource whose table is `t`.
void set_canonical(Scope& s, std::string_view kind, const table& t, bool array_of_tables,
                   Source& source) {
  if (deeper_than(t, kMaxCanonicalDepth)) {
    s.error(pos_of(t), "",
            fmt::format("tables and arrays nested more than {} deep: meshbox does not keep such "
                        "a resource",
                        kMaxCanonicalDepth));
    return;
  }
  std::string path;
  if (const node* n = find_int64_min(t, "", &path)) {
    s.error(pos_of(*n), path,
            "-9223372036854775808 is out of range: meshbox cannot write it back as TOML (toml++ "
            "3.3 cannot print it)");
    return;
  }
  set_resource_toml(s, kind, t, array_of_tables, source);
  source.json = resource_json(t);
}

// ---------------------------------------------------------------------------------------
// The document

// Names a resource before its fields are decoded, so that every finding carries it. A
// workload without `name` is named after its service and `version` label.
std::string peek_name(const table& t, std::string_view kind) {
  if (const auto* n = t.get_as<std::string>("name")) return n->get();
  if (kind != "workload") return "";
  const auto* svc = t.get_as<std::string>("service");
  if (!svc) return "";
  std::string name = svc->get();
  if (const auto* labels = t.get_as<table>("labels"))
    if (const auto* v = labels->get_as<std::string>("version")) name += "-" + v->get();
  return name;
}

class DocumentDecoder {
 public:
  DocumentDecoder(const std::string& file, Config& config, std::vector<ConfigError>& errors)
      : file_(file), config_(config), errors_(errors) {}

  void decode(const table& root) {
    std::vector<std::string> kinds;
    for (const auto& k : kKinds)
      kinds.emplace_back(k.key);
    kinds.emplace_back("mesh");
    Scope file_scope(file_, "", nullptr, errors_);
    for (auto&& [key, value] : root) {
      std::string_view k = key.str();
      if (k == "mesh") {
        decode_mesh_table(value);
        continue;
      }
      auto it = std::find_if(std::begin(kKinds), std::end(kKinds),
                             [&](const Kind& x) { return x.key == k; });
      if (it == std::end(kKinds)) {
        file_scope.error(
            pos_of(key.source()), "",
            fmt::format("unknown resource kind {}{}", quote(k), did_you_mean(k, kinds)));
        continue;
      }
      (this->*(it->decode))(value);
    }
  }

 private:
  struct Kind {
    std::string_view key;
    void (DocumentDecoder::*decode)(const node&);
  };

  template <typename R, typename F>
  void decode_kind(const node& n, std::string_view kind, std::vector<R>& out, F body) {
    const array* a = n.as_array();
    if (!a) {
      Scope s(file_, kind, nullptr, errors_);
      s.wrong_type(n, "",
                   fmt::format("an array of tables: write [[{}]] for each one (or {} = [{{ … }}])",
                               kind, kind));
      return;
    }
    for (size_t i = 0; i < a->size(); ++i) {
      const node& e = *a->get(i);
      const table* t = e.as_table();
      if (!t) {
        Scope s(file_, kind, nullptr, errors_);
        s.wrong_type(e, "", "a table");
        continue;
      }
      R r;
      r.source.file = file_;
      r.source.pos = pos_of(*t);
      Scope s(file_, kind, &r.source, errors_);
      std::string ns;
      if (const auto* v = t->get_as<std::string>("namespace")) ns = v->get();
      std::string name = peek_name(*t, kind);
      s.set_name(ns.empty() || ns == "default" ? name : ns + "/" + name);
      Fields f(s, *t, "");
      if constexpr (std::is_same_v<R, Workload>) {
        if (t->contains("name")) {
          f.read("name", r.name, p_subdomain_name);
        } else {
          f.get("name");
          r.name = name;
          r.name_derived = true;
        }
      } else {
        f.read_required("name", r.name,
                        std::is_same_v<R, Service> ? p_label_name : p_subdomain_name);
      }
      f.read("namespace", r.ns, p_label_name);
      body(f, r);
      f.finish();
      set_canonical(s, kind, *t, true, r.source);
      out.push_back(std::move(r));
    }
  }

  void services(const node& n) { decode_kind(n, "service", config_.services, decode_service); }
  void workloads(const node& n) { decode_kind(n, "workload", config_.workloads, decode_workload); }
  void virtual_services(const node& n) {
    decode_kind(n, "virtual_service", config_.virtual_services, decode_virtual_service);
  }
  void destination_rules(const node& n) {
    decode_kind(n, "destination_rule", config_.destination_rules, decode_destination_rule);
  }
  void gateways(const node& n) { decode_kind(n, "gateway", config_.gateways, decode_gateway); }
  void service_entries(const node& n) {
    decode_kind(n, "service_entry", config_.service_entries, decode_service_entry);
  }
  void peer_authentications(const node& n) {
    decode_kind(n, "peer_authentication", config_.peer_authentications, decode_peer_authentication);
  }
  void authorization_policies(const node& n) {
    decode_kind(n, "authorization_policy", config_.authorization_policies,
                decode_authorization_policy);
  }
  void request_authentications(const node& n) {
    decode_kind(n, "request_authentication", config_.request_authentications,
                decode_request_authentication);
  }

  void decode_mesh_table(const node& n) {
    Mesh& m = config_.mesh;
    const table* t = n.as_table();
    if (!t) {
      Scope s(file_, "mesh", nullptr, errors_);
      s.wrong_type(n, "", "a table: write [mesh]");
      return;
    }
    if (m.defined) {
      Scope s(file_, "mesh", nullptr, errors_);
      s.error(pos_of(*t), "",
              fmt::format("mesh settings are defined twice; the first [mesh] is at {}:{}:{}",
                          m.source.file, m.source.pos.line, m.source.pos.column));
      return;
    }
    m.defined = true;
    m.source.file = file_;
    m.source.pos = pos_of(*t);
    Scope s(file_, "mesh", &m.source, errors_);
    Fields f(s, *t, "");
    decode_mesh(f, m);
    f.finish();
    set_canonical(s, "mesh", *t, false, m.source);
  }

  static constexpr Kind kKinds[] = {
      {"service", &DocumentDecoder::services},
      {"workload", &DocumentDecoder::workloads},
      {"virtual_service", &DocumentDecoder::virtual_services},
      {"destination_rule", &DocumentDecoder::destination_rules},
      {"gateway", &DocumentDecoder::gateways},
      {"service_entry", &DocumentDecoder::service_entries},
      {"peer_authentication", &DocumentDecoder::peer_authentications},
      {"authorization_policy", &DocumentDecoder::authorization_policies},
      {"request_authentication", &DocumentDecoder::request_authentications},
  };

  const std::string& file_;
  Config& config_;
  std::vector<ConfigError>& errors_;
};

void file_error(std::vector<ConfigError>& errors, const std::string& file, std::string message) {
  errors.push_back(ConfigError{Severity::Error, file, 0, 0, "", "", "", std::move(message)});
}

void decode_file(const std::filesystem::path& path, Config& config,
                 std::vector<ConfigError>& errors) {
  std::string name = path.string();
  std::error_code ec;
  uintmax_t size = std::filesystem::file_size(path, ec);
  if (!ec && size > kMaxFileBytes) {
    file_error(errors, name,
               fmt::format("file is {} bytes; a config file may be at most {} bytes", size,
                           kMaxFileBytes));
    return;
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    file_error(errors, name, fmt::format("cannot read: {}", std::strerror(errno)));
    return;
  }
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) {
    file_error(errors, name, "cannot read: I/O error");
    return;
  }
  decode_document(text.str(), name, config, errors);
}

}  // namespace

std::optional<Duration> parse_duration(std::string_view text, std::string* error) {
  auto fail = [&](std::string why) -> std::optional<Duration> {
    if (error) *error = std::move(why);
    return std::nullopt;
  };
  constexpr uint64_t kMaxMs = 10ull * 365 * 24 * 3600 * 1000;  // 10 years
  if (text.empty()) return fail("expected a number and a unit, such as \"5s\"");
  if (text.front() == '-') return fail("a duration cannot be negative");
  uint64_t total = 0;  // milliseconds
  size_t i = 0;
  while (i < text.size()) {
    // NUMBER: digits, optionally '.' and more digits (at least one digit overall).
    uint64_t whole = 0, frac = 0, frac_scale = 1;
    size_t digits = 0;
    while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
      if (whole > kMaxMs) return fail("too large: at most 10 years");
      whole = whole * 10 + static_cast<uint64_t>(text[i] - '0');
      ++i;
      ++digits;
    }
    if (i < text.size() && text[i] == '.') {
      ++i;
      while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
        if (frac_scale < 1'000'000'000) {  // digits past nanoseconds cannot matter
          frac = frac * 10 + static_cast<uint64_t>(text[i] - '0');
          frac_scale *= 10;
        } else if (text[i] != '0') {
          return fail("finer than a millisecond: meshbox durations have millisecond precision");
        }
        ++i;
        ++digits;
      }
    }
    if (digits == 0) {
      return fail("expected a number and a unit (ms, s, m or h), such as \"5s\" or \"100ms\"");
    }
    size_t unit_start = i;
    while (i < text.size() && !(text[i] >= '0' && text[i] <= '9') && text[i] != '.')
      ++i;
    std::string_view unit = text.substr(unit_start, i - unit_start);
    uint64_t unit_ms = 0;
    if (unit == "ms") {
      unit_ms = 1;
    } else if (unit == "s") {
      unit_ms = 1000;
    } else if (unit == "m") {
      unit_ms = 60'000;
    } else if (unit == "h") {
      unit_ms = 3'600'000;
    } else if (unit.empty()) {
      return fail("a duration needs a unit (ms, s, m or h), such as \"" +
                  std::string(text.substr(0, i)) + "s\"");
    } else if (unit == "us" || unit == "µs" || unit == "ns") {
      return fail("meshbox durations have millisecond precision: use ms, s, m or h");
    } else {
      return fail("unknown unit \"" + std::string(unit) + "\": use ms, s, m or h");
    }
    if (whole > kMaxMs / unit_ms) return fail("too large: at most 10 years");
    uint64_t frac_units = frac * unit_ms;  // in units of 1/frac_scale ms; no overflow: < 1e9*3.6e6
    if (frac_units % frac_scale != 0) {
      return fail("finer than a millisecond: meshbox durations have millisecond precision");
    }
    total += whole * unit_ms + frac_units / frac_scale;
    if (total > kMaxMs) return fail("too large: at most 10 years");
  }
  return Duration(static_cast<Duration::rep>(total));
}

void decode_document(std::string_view text, const std::string& file, Config& config,
                     std::vector<ConfigError>& errors) {
  config.files.push_back(file);
  toml::parse_result result = toml::parse(text, std::string_view(file));
  if (!result) {
    const toml::parse_error& e = result.error();
    Pos p = pos_of(e.source());
    errors.push_back(ConfigError{Severity::Error, file, p.line, p.column, "", "", "",
                                 "TOML syntax error: " + std::string(e.description())});
    return;
  }
  DocumentDecoder(file, config, errors).decode(result.table());
}

Decoded decode_string(std::string_view text, const std::string& file) {
  Decoded d;
  decode_document(text, file, d.config, d.errors);
  return d;
}

Decoded decode_path(const std::string& path) {
  Decoded d;
  decode_path_into(path, d.config, d.errors);
  return d;
}

Result<std::vector<std::string>> list_config_files(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::file_status st = fs::status(path, ec);
  if (!fs::exists(st)) {
    if (ec && ec != std::errc::no_such_file_or_directory && ec != std::errc::not_a_directory)
      return Status(Code::Io, "cannot read: " + ec.message());
    return Status(Code::NotFound, "no such file or directory");
  }
  if (!fs::is_directory(st)) return std::vector<std::string>{path};
  std::vector<std::string> files;
  fs::directory_iterator it(path, ec), end;
  for (; !ec && it != end; it.increment(ec)) {
    const fs::path& p = it->path();
    std::string name = p.filename().string();
    if (name.empty() || name[0] == '.' || p.extension() != ".toml") continue;
    std::error_code type_ec;
    if (!fs::is_regular_file(it->status(type_ec))) continue;  // follows symlinks
    files.push_back(p.string());
  }
  if (ec) return Status(Code::Io, "cannot read directory: " + ec.message());
  // Names differ only after the shared "PATH/" prefix: string order is name order.
  std::sort(files.begin(), files.end());
  return files;
}

void decode_path_into(const std::string& path, Config& config, std::vector<ConfigError>& errors) {
  auto files = list_config_files(path);
  if (!files) return file_error(errors, path, files.error().message());
  if (files->empty()) return file_error(errors, path, std::string(kNoTomlFiles));
  for (const auto& f : *files)
    decode_file(f, config, errors);
}

}  // namespace meshbox::config
