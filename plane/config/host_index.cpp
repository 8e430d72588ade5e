#include "plane/config/host_index.h"

#include <algorithm>
#include <cctype>

namespace meshbox::config {

namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

}  // namespace

HostIndex::HostIndex(const Config& config) : suffix_(lower(config.mesh.domain_suffix)) {
  for (const auto& s : config.services) {
    if (s.name.empty()) continue;
    services_.emplace(fqdn(s), &s);  // the first of duplicates wins; duplicates are errors
  }
  for (const auto& se : config.service_entries)
    for (const auto& h : se.hosts)
      if (!h.empty()) entry_hosts_.emplace_back(resolve(h, se.ns), &se);
}

std::string HostIndex::fqdn(const Service& service) const {
  return lower(service.name) + "." + lower(service.ns) + ".svc." + suffix_;
}

std::string HostIndex::resolve(std::string_view host, std::string_view ns) const {
  std::string h = lower(host);
  if (h.empty() || h.find('*') != std::string::npos) return h;
  size_t dots = static_cast<size_t>(std::count(h.begin(), h.end(), '.'));
  if (dots == 0) return h + "." + lower(ns) + ".svc." + suffix_;
  std::string expanded;
  if (dots == 1) expanded = h + ".svc." + suffix_;
  if (dots == 2 && ends_with(h, ".svc")) expanded = h + "." + suffix_;
  if (!expanded.empty() && services_.count(expanded)) return expanded;
  return h;
}

bool HostIndex::wildcard_match(std::string_view pattern, std::string_view host) {
  if (pattern == "*") return true;
  if (pattern.size() >= 2 && pattern[0] == '*' && pattern[1] == '.') {
    std::string_view suffix = pattern.substr(1);  // ".example.com"
    return host.size() > suffix.size() && ends_with(host, suffix);
  }
  return pattern == host;
}

HostTarget HostIndex::find(std::string_view host, std::string_view ns) const {
  HostTarget t;
  t.fqdn = resolve(host, ns);
  if (auto it = services_.find(t.fqdn); it != services_.end()) {
    t.service = it->second;
    return t;
  }
  for (const auto& [h, se] : entry_hosts_) {
    if (h == t.fqdn) {
      t.entry = se;
      return t;
    }
  }
  for (const auto& [h, se] : entry_hosts_) {
    if (wildcard_match(h, t.fqdn)) {
      t.entry = se;
      return t;
    }
  }
  return t;
}

bool HostIndex::matches_any(std::string_view host, std::string_view ns) const {
  std::string h = resolve(host, ns);
  if (h.find('*') == std::string::npos) return static_cast<bool>(find(host, ns));
  for (const auto& [name, service] : services_)
    if (wildcard_match(h, name)) return true;
  for (const auto& [name, se] : entry_hosts_)
    if (wildcard_match(h, name) || wildcard_match(name, h) || name == h) return true;
  return false;
}

std::vector<std::string> HostIndex::all_hosts() const {
  std::vector<std::string> out;
  for (const auto& [name, service] : services_)
    out.push_back(name);
  for (const auto& [name, se] : entry_hosts_)
    out.push_back(name);
  return out;
}

}  // namespace meshbox::config
