#include "plane/data/authz.h"

#include <algorithm>
#include <span>

#include <fmt/format.h>

namespace meshbox::data {

namespace {

using Action = AuthzPolicySpec::Action;

/// The request's values that need work to get (parsed IPs, the Host without its port, header
/// values joined), computed once per evaluation and only if a policy asks.
class Facts {
 public:
  Facts(const AuthzRequest& r, const std::vector<uint32_t>& ports) : r_(r), ports_(ports) {
    if (ports_.empty() && r.destination_port) {
      own_port_[0] = r.destination_port;
      has_own_port_ = true;
    }
  }

  const AuthzRequest& request() const { return r_; }
  std::span<const uint32_t> destination_ports() const {
    if (has_own_port_) return {own_port_, 1};
    return ports_;
  }
  const std::optional<CidrBlock>& source_ip() { return ip(source_, r_.source_ip); }
  const std::optional<CidrBlock>& remote_ip() { return ip(remote_, r_.remote_ip); }
  const std::optional<CidrBlock>& destination_ip() { return ip(destination_, r_.destination_ip); }
  std::string_view source_namespace() {
    if (!ns_done_) {
      ns_ = principal_namespace(r_.source_principal);
      ns_done_ = true;
    }
    return ns_;
  }
  /// The Host, and the Host without its port when it has one.
  std::span<const std::string_view> hosts() {
    if (hosts_n_ == SIZE_MAX) {
      hosts_n_ = 0;
      std::string_view h = r_.host;
      if (!h.empty()) {
        hosts_[hosts_n_++] = h;
        size_t colon = h.rfind(':');
        if (colon != std::string_view::npos && h.find(']', colon) == std::string_view::npos)
          hosts_[hosts_n_++] = h.substr(0, colon);
      }
    }
    return {hosts_, hosts_n_};
  }
  bool jwt() const { return r_.auth && r_.auth->present; }

 private:
  struct LazyIp {
    bool done = false;
    std::optional<CidrBlock> value;
  };
  static const std::optional<CidrBlock>& ip(LazyIp& slot, std::string_view text) {
    if (!slot.done) {
      slot.done = true;
      if (!text.empty()) slot.value = CidrBlock::parse(text);
    }
    return slot.value;
  }

  const AuthzRequest& r_;
  const std::vector<uint32_t>& ports_;
  uint32_t own_port_[1] = {0};
  bool has_own_port_ = false;
  LazyIp source_, remote_, destination_;
  std::string_view ns_;
  bool ns_done_ = false;
  std::string_view hosts_[2];
  size_t hosts_n_ = SIZE_MAX;
};

/// Any of `items` matches any of `matchers`.
bool any_match(const std::vector<AuthzMatch>& matchers, std::span<const std::string_view> items) {
  for (const auto& m : matchers)
    for (std::string_view s : items)
      if (m.matches(s)) return true;
  return false;
}

/// Istio's field: the values (if given) must match, the not_values (if given) must not.
bool field(const std::vector<AuthzMatch>& values, const std::vector<AuthzMatch>& not_values,
           std::span<const std::string_view> items) {
  if (!values.empty() && !any_match(values, items)) return false;
  if (!not_values.empty() && any_match(not_values, items)) return false;
  return true;
}

/// The same for one value that may be absent ("" = absent).
bool field(const std::vector<AuthzMatch>& values, const std::vector<AuthzMatch>& not_values,
           std::string_view value) {
  if (values.empty() && not_values.empty()) return true;
  std::string_view one[] = {value};
  return field(values, not_values, std::span<const std::string_view>(one, value.empty() ? 0 : 1));
}

bool in_blocks(const std::vector<CidrBlock>& blocks, const std::optional<CidrBlock>& ip) {
  if (!ip) return false;
  return std::any_of(blocks.begin(), blocks.end(),
                     [&](const CidrBlock& b) { return b.contains(*ip); });
}

bool ip_field(const std::vector<CidrBlock>& blocks, const std::vector<CidrBlock>& not_blocks,
              const std::optional<CidrBlock>& ip) {
  if (!blocks.empty() && !in_blocks(blocks, ip)) return false;
  if (!not_blocks.empty() && in_blocks(not_blocks, ip)) return false;
  return true;
}

bool any_port(const std::vector<uint32_t>& list, std::span<const uint32_t> ports) {
  for (uint32_t p : ports)
    if (std::find(list.begin(), list.end(), p) != list.end()) return true;
  return false;
}

bool port_field(const std::vector<uint32_t>& list, const std::vector<uint32_t>& not_list,
                std::span<const uint32_t> ports) {
  if (!list.empty() && !any_port(list, ports)) return false;
  if (!not_list.empty() && any_port(not_list, ports)) return false;
  return true;
}

bool source_matches(const AuthzSourceSpec& s, Facts& f) {
  const AuthzRequest& r = f.request();
  if (!field(s.principals, s.not_principals, r.source_principal)) return false;
  if (!field(s.namespaces, s.not_namespaces, f.source_namespace())) return false;
  if (!s.request_principals.empty() || !s.not_request_principals.empty()) {
    std::string_view rp = f.jwt() ? std::string_view(r.auth->principal) : std::string_view();
    if (!field(s.request_principals, s.not_request_principals, rp)) return false;
  }
  if ((!s.ip_blocks.empty() || !s.not_ip_blocks.empty()) &&
      !ip_field(s.ip_blocks, s.not_ip_blocks, f.source_ip()))
    return false;
  if ((!s.remote_ip_blocks.empty() || !s.not_remote_ip_blocks.empty()) &&
      !ip_field(s.remote_ip_blocks, s.not_remote_ip_blocks, f.remote_ip()))
    return false;
  return true;
}

bool operation_matches(const AuthzOperationSpec& o, Facts& f) {
  const AuthzRequest& r = f.request();
  if ((!o.hosts.empty() || !o.not_hosts.empty()) && !field(o.hosts, o.not_hosts, f.hosts()))
    return false;
  if (!port_field(o.ports, o.not_ports, f.destination_ports())) return false;
  if (!field(o.methods, o.not_methods, r.method)) return false;
  if (!field(o.paths, o.not_paths, r.path)) return false;
  return true;
}

/// Every value of the request header `name`, joined with "," as Envoy does (in `storage` when
/// the header is repeated); nullopt when the request has none.
std::optional<std::string_view> header_value(const http::HeaderMap* headers, std::string_view name,
                                             std::string& storage) {
  if (!headers) return std::nullopt;
  std::optional<std::string_view> out;
  for (const auto& h : *headers) {
    if (!http::iequals(h.name, name)) continue;
    if (!out) {
      out = h.value;
      continue;
    }
    if (storage.empty()) storage.assign(*out);
    storage.push_back(',');
    storage.append(h.value);
    out = storage;
  }
  return out;
}

bool condition_matches(const AuthzConditionSpec& c, Action action, Facts& f) {
  using Key = AuthzConditionSpec::Key;
  const AuthzRequest& r = f.request();
  auto list = [&](const std::vector<std::string>& values) {
    std::vector<std::string_view> items(values.begin(), values.end());
    return field(c.values, c.not_values, items);
  };
  switch (c.key) {
    case Key::Header: {
      // A header that is there but empty is still there: "*" matches it.
      std::string storage;
      std::optional<std::string_view> v = header_value(r.headers, c.header, storage);
      std::string_view one[] = {v.value_or(std::string_view())};
      return field(c.values, c.not_values, std::span<const std::string_view>(one, v ? 1 : 0));
    }
    case Key::SourceIp:
      return ip_field(c.ips, c.not_ips, f.source_ip());
    case Key::RemoteIp:
      return ip_field(c.ips, c.not_ips, f.remote_ip());
    case Key::DestinationIp:
      return ip_field(c.ips, c.not_ips, f.destination_ip());
    case Key::SourceNamespace:
      return field(c.values, c.not_values, f.source_namespace());
    case Key::SourcePrincipal:
      return field(c.values, c.not_values, r.source_principal);
    case Key::RequestPrincipal:
      return field(c.values, c.not_values,
                   f.jwt() ? std::string_view(r.auth->principal) : std::string_view());
    case Key::Presenter:
      return field(c.values, c.not_values,
                   f.jwt() ? std::string_view(r.auth->presenter) : std::string_view());
    case Key::Audiences:
      return list(f.jwt() ? r.auth->audiences : std::vector<std::string>());
    case Key::Claim: {
      if (!f.jwt()) return list({});
      std::vector<std::string_view> path(c.claim.begin(), c.claim.end());
      return list(r.auth->claim_path(path));
    }
    case Key::DestinationPort:
      return port_field(c.ports, c.not_ports, f.destination_ports());
    case Key::Sni:
      return field(c.values, c.not_values, r.sni);
    case Key::Unsupported:
      // Fail closed: a rule meshbox cannot evaluate never allows, and always denies.
      return action == Action::Deny;
  }
  return false;
}

bool rule_matches_in(const AuthzRuleSpec& rule, Action action, Facts& f) {
  if (!rule.from.empty() && std::none_of(rule.from.begin(), rule.from.end(),
                                         [&](const auto& s) { return source_matches(s, f); }))
    return false;
  if (!rule.to.empty() && std::none_of(rule.to.begin(), rule.to.end(),
                                       [&](const auto& o) { return operation_matches(o, f); }))
    return false;
  return std::all_of(rule.when.begin(), rule.when.end(),
                     [&](const auto& c) { return condition_matches(c, action, f); });
}

/// The index of the first rule of `p` that matches, or SIZE_MAX.
size_t matching_rule(const AuthzPolicySpec& p, Facts& f) {
  for (size_t i = 0; i < p.rules.size(); ++i)
    if (rule_matches_in(p.rules[i], p.action, f)) return i;
  return SIZE_MAX;
}

}  // namespace

std::string normalize_path(std::string_view path) {
  if (path.find('%') == std::string_view::npos && path.find("/.") == std::string_view::npos &&
      !path.starts_with("."))
    return std::string(path);
  // Decode %XX of unreserved characters (RFC 3986 §2.3); others stay encoded.
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::string in;
  in.reserve(path.size());
  for (size_t i = 0; i < path.size(); ++i) {
    if (path[i] == '%' && i + 2 < path.size() && hex(path[i + 1]) >= 0 && hex(path[i + 2]) >= 0) {
      char c = static_cast<char>(hex(path[i + 1]) * 16 + hex(path[i + 2]));
      bool unreserved = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                        (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' || c == '~';
      if (unreserved) {
        in.push_back(c);
        i += 2;
        continue;
      }
    }
    in.push_back(path[i]);
  }
  // Remove dot segments (RFC 3986 §5.2.4).
  std::string out;
  std::string_view rest = in;
  auto drop_last_segment = [&out] {
    size_t slash = out.rfind('/');
    out.erase(slash == std::string::npos ? 0 : slash);
  };
  while (!rest.empty()) {
    if (rest.starts_with("../")) {
      rest.remove_prefix(3);
    } else if (rest.starts_with("./")) {
      rest.remove_prefix(2);
    } else if (rest.starts_with("/./")) {
      rest.remove_prefix(2);
    } else if (rest == "/.") {
      rest = "/";
    } else if (rest.starts_with("/../")) {
      rest.remove_prefix(3);
      drop_last_segment();
    } else if (rest == "/..") {
      rest = "/";
      drop_last_segment();
    } else if (rest == "." || rest == "..") {
      rest = {};
    } else {
      size_t next = rest.find('/', 1);
      out.append(rest.substr(0, next));
      rest.remove_prefix(next == std::string_view::npos ? rest.size() : next);
    }
  }
  return out;
}

std::string_view principal_namespace(std::string_view principal) {
  // "TRUST_DOMAIN/ns/NAMESPACE/sa/ACCOUNT"
  size_t at = principal.find("/ns/");
  if (at == std::string_view::npos) return {};
  std::string_view rest = principal.substr(at + 4);
  return rest.substr(0, rest.find('/'));
}

bool rule_matches(const AuthzRuleSpec& rule, AuthzPolicySpec::Action action,
                  const AuthzRequest& request, const std::vector<uint32_t>& destination_ports) {
  Facts f(request, destination_ports);
  return rule_matches_in(rule, action, f);
}

AuthzDecision evaluate(const AuthzSpec& spec, const AuthzRequest& request) {
  AuthzDecision d;
  if (spec.policies.empty()) return d;
  Facts f(request, spec.destination_ports);
  bool any_allow = false, allow_matched = false;
  for (const AuthzPolicySpec& p : spec.policies) {
    switch (p.action) {
      case Action::Deny:
        if (d.deny_policy) break;
        if (size_t i = matching_rule(p, f); i != SIZE_MAX) {
          d.allowed = false;
          d.deny_policy = &p;
          d.deny_rule = i;
        }
        break;
      case Action::Allow:
        any_allow = true;
        if (!allow_matched && !d.deny_policy) allow_matched = matching_rule(p, f) != SIZE_MAX;
        break;
      case Action::Audit:
        if (matching_rule(p, f) != SIZE_MAX) {
          if (d.audited++ == 0) d.audit_policy = &p;
        }
        break;
    }
  }
  if (d.deny_policy) return d;
  if (any_allow && !allow_matched) d.allowed = false;
  return d;
}

std::string denial_details(const AuthzDecision& d) {
  if (!d.deny_policy) return "rbac_access_denied_matched_policy[none]";
  return fmt::format("rbac_access_denied_matched_policy[ns[{}]-policy[{}]-rule[{}]]",
                     d.deny_policy->ns, d.deny_policy->name, d.deny_rule);
}

}  // namespace meshbox::data
