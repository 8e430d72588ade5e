#include "examples/bookinfo/common/proxy_config.h"

#include "core/http/header_map.h"
#include "examples/bookinfo/common/upstream.h"

namespace meshbox::bookinfo {

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
    s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t'))
    s.remove_suffix(1);
  return s;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    c = http::ascii_lower(c);
  return out;
}

// A no_proxy entry without its port: "host:80" → "host", "[::1]:80" → "::1"; a bare IPv6
// literal ("::1", two or more colons) is kept whole.
std::string_view strip_port(std::string_view e) {
  if (!e.empty() && e.front() == '[') {
    size_t close = e.find(']');
    return close == std::string_view::npos ? e : e.substr(1, close - 1);
  }
  size_t colon = e.find(':');
  if (colon != std::string_view::npos && e.find(':', colon + 1) == std::string_view::npos)
    return e.substr(0, colon);
  return e;
}

}  // namespace

Result<ProxyConfig> ProxyConfig::parse(std::string_view http_proxy, std::string_view no_proxy) {
  ProxyConfig cfg;
  http_proxy = trim(http_proxy);
  if (!http_proxy.empty()) {
    std::string_view rest = http_proxy;
    if (size_t scheme = rest.find("://"); scheme != std::string_view::npos) {
      if (lower(rest.substr(0, scheme)) != "http")
        return make_error(Code::InvalidArgument, "http_proxy '" + std::string(http_proxy) +
                                                     "': only http:// proxies are supported");
      rest = rest.substr(scheme + 3);
    }
    if (size_t slash = rest.find('/'); slash != std::string_view::npos) {
      if (rest.substr(slash) != "/")
        return make_error(Code::InvalidArgument,
                          "http_proxy '" + std::string(http_proxy) + "': a path is not allowed");
      rest = rest.substr(0, slash);
    }
    if (rest.find('@') != std::string_view::npos)
      return make_error(Code::InvalidArgument, "http_proxy '" + std::string(http_proxy) +
                                                   "': credentials are not supported");
    std::string host_port(rest);
    // No port: http's default, 80 (as Go and Python do).
    bool bracketed = !rest.empty() && rest.front() == '[';
    size_t colon = rest.rfind(':');
    bool has_port =
        bracketed ? rest.find("]:") != std::string_view::npos : colon != std::string_view::npos;
    if (!has_port) host_port += ":80";
    auto up = parse_upstream(host_port);
    if (!up)
      return make_error(Code::InvalidArgument,
                        "http_proxy '" + std::string(http_proxy) + "': " + up.error().message());
    // "localhost" is 127.0.0.1, as for direct calls: a sidecar listens on IPv4 loopback.
    auto addr = loop::Address::parse(
        up->host == "localhost" ? "127.0.0.1:" + std::to_string(up->port) : host_port);
    if (!addr)
      return make_error(Code::InvalidArgument,
                        "http_proxy '" + std::string(http_proxy) + "': " + addr.error().message());
    cfg.enabled_ = true;
    cfg.address_ = *addr;
    cfg.url_ = std::string(http_proxy);
  }
  while (!no_proxy.empty()) {
    size_t comma = no_proxy.find(',');
    std::string_view entry = trim(no_proxy.substr(0, comma));
    no_proxy = comma == std::string_view::npos ? std::string_view() : no_proxy.substr(comma + 1);
    if (entry == "*") {
      cfg.bypass_all_ = true;
      continue;
    }
    entry = strip_port(entry);
    if (entry.starts_with("*.")) entry.remove_prefix(2);
    while (entry.starts_with("."))
      entry.remove_prefix(1);
    if (!entry.empty()) cfg.no_proxy_.push_back(lower(entry));
  }
  return cfg;
}

bool ProxyConfig::applies_to(std::string_view host) const {
  if (!enabled_ || bypass_all_) return false;
  std::string h = lower(host);
  for (const auto& e : no_proxy_) {
    if (h == e) return false;
    if (h.size() > e.size() && h.ends_with(e) && h[h.size() - e.size() - 1] == '.') return false;
  }
  return true;
}

}  // namespace meshbox::bookinfo
