#include "plane/data/router.h"

#include <cctype>

namespace meshbox::data {

namespace {

bool iequal(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(a[i])) != b[i]) return false;
  return true;
}

// Host without its port: "example.com:8080" → "example.com", "[::1]:80" → "[::1]".
std::string_view strip_port(std::string_view host) {
  if (!host.empty() && host.front() == '[') {
    size_t close = host.find(']');
    return close == std::string_view::npos ? host : host.substr(0, close + 1);
  }
  size_t colon = host.rfind(':');
  return colon == std::string_view::npos ? host : host.substr(0, colon);
}

// Looks up one query parameter (no percent-decoding, as Envoy's exact matcher).
bool find_query_param(std::string_view query, std::string_view name, std::string_view* value) {
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    size_t eq = pair.find('=');
    std::string_view key = pair.substr(0, eq);
    if (key == name) {
      *value = eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1);
      return true;
    }
  }
  return false;
}

}  // namespace

RouteInput RouteInput::from(const http::RequestHead& head, uint32_t listener_port) {
  RouteInput in;
  in.method = head.method;
  in.scheme = "http";
  in.listener_port = listener_port;
  in.headers = &head.headers;
  std::string_view target = head.target;
  std::string_view authority;
  if (!target.empty() && target.front() != '/') {
    // absolute-form: scheme://authority/path?query
    size_t scheme_end = target.find("://");
    if (scheme_end != std::string_view::npos) {
      std::string_view rest = target.substr(scheme_end + 3);
      size_t slash = rest.find_first_of("/?");
      authority = rest.substr(0, slash);
      target = slash == std::string_view::npos ? std::string_view("/") : rest.substr(slash);
    }
  }
  size_t q = target.find('?');
  in.path = target.substr(0, q);
  if (in.path.empty()) in.path = "/";
  if (q != std::string_view::npos) in.query = target.substr(q + 1);
  const std::string* host = head.headers.get("host");
  in.host = host ? std::string_view(*host) : authority;
  return in;
}

const std::string* RouteInput::header(const std::string& name) const {
  for (const Seen& s : seen_) {
    if (!s.name) break;
    if (s.name == &name || *s.name == name) return s.value;
  }
  const std::string* value = headers ? headers->get(name) : nullptr;
  seen_[next_seen_++ % 4] = {&name, value};
  return value;
}

const std::string* RouteInput::header_slot(const VirtualHostSpec& vhost, size_t slot) const {
  if (!(slot_known_ & (1u << slot))) {
    slot_value_[slot] = headers ? headers->get(vhost.header_names[slot]) : nullptr;
    slot_known_ |= 1u << slot;
  }
  return slot_value_[slot];
}

const VirtualHostSpec* find_virtual_host(const RouteTableSpec& table, std::string_view host) {
  if (table.strict_port) {
    const VirtualHostSpec* any = nullptr;
    for (const auto& vh : table.virtual_hosts) {
      for (const auto& d : vh.domains) {
        if (d == "*") {
          if (!any) any = &vh;
        } else if (iequal(host, d)) {
          return &vh;
        }
      }
    }
    return any;
  }
  std::string_view with_port = host;
  host = strip_port(host);
  const VirtualHostSpec* best = nullptr;
  // 5 exact with the port ("reviews:9080"), 4 exact, 3 suffix wildcard, 2 prefix wildcard,
  // 1 "*".
  int best_rank = 0;
  size_t best_length = 0;  // longer wildcards are more specific
  for (const auto& vh : table.virtual_hosts) {
    for (const auto& d : vh.domains) {
      int rank = 0;
      if (d == "*") {
        rank = 1;
      } else if (d.size() > 1 && d[0] == '*') {
        std::string_view suffix = std::string_view(d).substr(1);  // ".example.com" or "-x.com"
        if (host.size() > suffix.size() && iequal(host.substr(host.size() - suffix.size()), suffix))
          rank = 3;
      } else if (d.size() > 1 && d.back() == '*') {
        std::string_view prefix = std::string_view(d).substr(0, d.size() - 1);
        if (host.size() > prefix.size() && iequal(host.substr(0, prefix.size()), prefix)) rank = 2;
      } else if (iequal(host, d)) {
        rank = 4;
      } else if (with_port.size() != host.size() && iequal(with_port, d)) {
        rank = 5;
      }
      if (rank > best_rank || (rank == best_rank && rank > 0 && d.size() > best_length)) {
        best = &vh;
        best_rank = rank;
        best_length = d.size();
      }
    }
    if (best_rank == 5) break;
  }
  return best;
}

namespace {

// The conditions after the path, out of line: most blocks of a big table fail on their path
// (or have no more conditions), and the inline part below stays small enough to cost no
// call at all then.
[[gnu::noinline]] bool matches_rest(const RouteMatchSpec& m, const RouteInput& in) {
  if (m.method && !m.method->matches(in.method)) return false;
  if (m.authority && !m.authority->matches(in.host)) return false;
  if (m.scheme && !m.scheme->matches(in.scheme)) return false;
  for (const auto& h : m.headers) {
    // A repeated header is matched on its first value.
    const std::string* value = in.header(h.name);
    bool ok = value && h.match.matches(*value);
    if (ok == h.invert) return false;
  }
  for (const auto& q : m.query_params) {
    std::string_view value;
    if (!find_query_param(in.query, q.name, &value) || !q.match.matches(value)) return false;
  }
  return true;
}

inline bool matches_block(const RouteMatchSpec& m, const RouteInput& in) {
  if (m.port && m.port != in.listener_port) return false;
  if (m.path && !m.path->matches(in.path)) return false;
  return matches_rest(m, in);
}

}  // namespace

bool matches(const RouteMatchSpec& m, const RouteInput& in) {
  return matches_block(m, in);
}

namespace {

/// False when `p` proves its block cannot match `in` (see MatchPrefilter).
inline bool may_match(const MatchPrefilter& p, const VirtualHostSpec& vhost, const RouteInput& in) {
  if (p.path_kind) {
    size_t n = in.path.size();
    if (p.path_kind == 1 ? n != p.path_len : n < p.path_len) return false;
    if (tail_bytes(in.path, p.path_len) != p.path_tail) return false;
  }
  if (p.header_kind) {
    const std::string* v = in.header_slot(vhost, p.header_slot);
    if (!v || v->size() != p.header_len || tail_bytes(*v, p.header_len) != p.header_tail)
      return false;
  }
  return true;
}

}  // namespace

RouteHit find_route(const VirtualHostSpec& vhost, const RouteInput& in) {
  if (!vhost.prefilter.empty()) {
    for (const MatchPrefilter& p : vhost.prefilter) {
      if (!may_match(p, vhost, in)) continue;
      const RouteSpec& r = vhost.routes[p.route];
      if (p.block == MatchPrefilter::kNoBlock) return {&r, nullptr};
      const RouteMatchSpec& m = r.matches[p.block];
      if (matches_block(m, in)) return {&r, &m};
    }
    return {};
  }
  for (const auto& r : vhost.routes) {
    if (r.matches.empty()) return {&r, nullptr};
    for (const auto& m : r.matches)
      if (matches_block(m, in)) return {&r, &m};
  }
  return {};
}

const WeightedCluster* pick_cluster(const RouteSpec& route, Random& random) {
  if (route.clusters.empty()) return nullptr;
  if (route.clusters.size() == 1) return &route.clusters[0];
  uint64_t total = 0;
  for (const auto& c : route.clusters)
    total += c.weight;
  if (total == 0) return &route.clusters[0];
  uint64_t r = random.below(total);
  for (const auto& c : route.clusters) {
    if (r < c.weight) return &c;
    r -= c.weight;
  }
  return &route.clusters.back();
}

bool rewrite_path(const RewriteSpec& rewrite, const RouteMatchSpec* match, std::string_view path,
                  std::string& out) {
  if (rewrite.uri_regex) {
    std::string p(path);
    if (!rewrite.uri_regex->apply(p)) return false;
    out = std::move(p);
    return true;
  }
  if (rewrite.uri.empty()) return false;
  // Envoy's prefix_rewrite, which is what Istio compiles rewrite.uri to: the matched prefix
  // is swapped; an exact or regex match "matched" the whole path; a block without a uri
  // condition is Istio's prefix "/".
  size_t matched = 1;
  if (match && match->path) {
    matched = match->path->kind() == StringMatcher::Kind::Prefix ? match->path->value().size()
                                                                 : path.size();
  }
  if (matched > path.size()) return false;  // cannot happen for a path the block matched
  if (matched == 1 && !path.starts_with('/')) return false;  // "*" (OPTIONS): no "/" to swap
  out.assign(rewrite.uri);
  out.append(path.substr(matched));
  return true;
}

void apply_header_ops(const HeaderOpsSpec& ops, http::HeaderMap& headers) {
  for (const auto& name : ops.remove)
    headers.remove(name);
  for (const auto& h : ops.set)
    headers.set(h.name, h.value);
  for (const auto& h : ops.add)
    headers.add(h.name, h.value);
}

bool roll(uint32_t per_million, Random& random) {
  if (per_million == 0) return false;
  if (per_million >= 1'000'000) return true;
  return random.below(1'000'000) < per_million;
}

}  // namespace meshbox::data
