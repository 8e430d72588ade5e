#include "plane/control/locality.h"

#include <algorithm>
#include <map>
#include <utility>

namespace meshbox::control {

namespace {

constexpr std::string_view kRegionLabel = "topology.kubernetes.io/region";
constexpr std::string_view kZoneLabel = "topology.kubernetes.io/zone";
constexpr std::string_view kSubzoneLabel = "topology.istio.io/subzone";

// An endpoint's share of its locality's weight is weight × kShareScale / (the locality's total
// endpoint weight), so that a locality of many endpoints still splits its share finely.
constexpr uint64_t kShareScale = 1000;

// The value of a topology label derived from a locality; nullopt for other keys.
std::optional<std::string_view> topology_label(std::string_view key, std::string_view locality) {
  Locality l = split_locality(locality);
  if (key == kRegionLabel) return l.region;
  if (key == kZoneLabel) return l.zone;
  if (key == kSubzoneLabel) return l.subzone;
  return std::nullopt;
}

// Patterns with fewer wildcards (and more parts) claim endpoints first.
int specificity(std::string_view pattern) {
  Locality l = split_locality(pattern);
  int s = 0;
  for (std::string_view part : {l.region, l.zone, l.subzone})
    s += !part.empty() && part != "*";
  return s;
}

std::vector<LocalityChoice> distribute(std::string_view node,
                                       const std::vector<config::LocalityLbSetting::Distribute>& d,
                                       const std::vector<LocalityInput>& endpoints) {
  std::vector<LocalityChoice> out(endpoints.size());
  for (size_t i = 0; i < endpoints.size(); ++i)
    out[i].weight = endpoints[i].weight;
  auto rule = std::find_if(d.begin(), d.end(),
                           [&](const auto& r) { return locality_matches(node, r.from); });
  if (rule == d.end()) return out;  // no rule for this node: weights as they are
  std::vector<std::pair<std::string_view, uint32_t>> targets(rule->to.begin(), rule->to.end());
  std::stable_sort(targets.begin(), targets.end(), [](const auto& a, const auto& b) {
    return specificity(a.first) > specificity(b.first);
  });
  // Each endpoint belongs to the first target that matches its locality (or to none).
  std::vector<size_t> owner(endpoints.size(), targets.size());
  std::vector<uint64_t> total(targets.size(), 0);
  for (size_t i = 0; i < endpoints.size(); ++i) {
    for (size_t t = 0; t < targets.size(); ++t) {
      if (!locality_matches(endpoints[i].locality, targets[t].first)) continue;
      owner[i] = t;
      total[t] += std::max<uint32_t>(endpoints[i].weight, 1);
      break;
    }
  }
  for (size_t i = 0; i < endpoints.size(); ++i) {
    size_t t = owner[i];
    if (t == targets.size() || targets[t].second == 0) {
      out[i].weight = 0;
      continue;
    }
    uint64_t w = std::max<uint32_t>(endpoints[i].weight, 1);
    uint64_t share = (targets[t].second * w * kShareScale + total[t] - 1) / total[t];
    out[i].weight = static_cast<uint32_t>(std::clamp<uint64_t>(share, 1, UINT32_MAX));
  }
  return out;
}

uint32_t locality_priority(const Locality& node, const Locality& ep,
                           const std::vector<config::LocalityLbSetting::Failover>& failover) {
  if (node.region == ep.region) {
    if (node.zone != ep.zone) return 2;
    return node.subzone == ep.subzone ? 0 : 1;
  }
  for (const auto& f : failover) {
    if (f.from != node.region) continue;
    return ep.region == f.to ? 3 : 4;
  }
  return 3;
}

uint32_t label_priority(std::string_view node, const std::vector<std::string>& keys,
                        const LocalityInput& ep) {
  uint32_t matched = 0;
  for (const std::string& entry : keys) {
    std::string_view key = entry, want;
    if (size_t eq = entry.find('='); eq != std::string::npos) {
      key = std::string_view(entry).substr(0, eq);
      want = std::string_view(entry).substr(eq + 1);
    } else if (auto v = topology_label(key, node)) {
      want = *v;
    } else {
      break;  // the node has no such label: nothing can match it
    }
    std::optional<std::string_view> have;
    if (ep.labels) {
      if (auto it = ep.labels->find(std::string(key)); it != ep.labels->end()) have = it->second;
    }
    if (!have) have = topology_label(key, ep.locality);
    if (!have || *have != want || want.empty()) break;
    ++matched;
  }
  return static_cast<uint32_t>(keys.size()) - matched;
}

// Renumbers priorities 0, 1, 2… in their order.
template <typename Get>
void compact(size_t n, Get get) {
  std::map<uint32_t, uint32_t> rank;
  for (size_t i = 0; i < n; ++i)
    rank.emplace(get(i), 0);
  uint32_t next = 0;
  for (auto& [p, r] : rank)
    r = next++;
  for (size_t i = 0; i < n; ++i)
    get(i) = rank[get(i)];
}

}  // namespace

Locality split_locality(std::string_view locality) {
  Locality l;
  size_t a = locality.find('/');
  l.region = locality.substr(0, a);
  if (a == std::string_view::npos) return l;
  std::string_view rest = locality.substr(a + 1);
  size_t b = rest.find('/');
  l.zone = rest.substr(0, b);
  if (b != std::string_view::npos) l.subzone = rest.substr(b + 1);
  return l;
}

bool valid_locality(std::string_view locality) {
  if (locality.empty() || locality.front() == '/' || locality.back() == '/') return false;
  if (std::count(locality.begin(), locality.end(), '/') > 2) return false;
  return locality.find("//") == std::string_view::npos;
}

bool locality_matches(std::string_view locality, std::string_view pattern) {
  Locality have = split_locality(locality), want = split_locality(pattern);
  auto part = [](std::string_view h, std::string_view w, bool optional) {
    return w == "*" || (optional && w.empty()) || h == w;
  };
  return part(have.region, want.region, false) && part(have.zone, want.zone, true) &&
         part(have.subzone, want.subzone, true);
}

std::optional<config::LocalityLbSetting> effective_locality_setting(
    const std::optional<config::LocalityLbSetting>& mesh, const config::LocalityLbSetting* rule) {
  if (rule) {
    if (rule->enabled && !*rule->enabled) return std::nullopt;
    return *rule;
  }
  if (mesh && mesh->enabled && !*mesh->enabled) return std::nullopt;
  return mesh ? *mesh : config::LocalityLbSetting{};
}

std::vector<LocalityChoice> apply_locality_lb(std::string_view node,
                                              const config::LocalityLbSetting& setting,
                                              bool failover,
                                              const std::vector<LocalityInput>& endpoints) {
  if (!setting.distribute.empty()) return distribute(node, setting.distribute, endpoints);
  std::vector<LocalityChoice> out(endpoints.size());
  for (size_t i = 0; i < endpoints.size(); ++i)
    out[i].weight = endpoints[i].weight;
  if (!failover) return out;
  Locality self = split_locality(node);
  for (size_t i = 0; i < endpoints.size(); ++i) {
    out[i].priority =
        setting.failover_priority.empty()
            ? locality_priority(self, split_locality(endpoints[i].locality), setting.failover)
            : label_priority(node, setting.failover_priority, endpoints[i]);
  }
  compact(out.size(), [&](size_t i) -> uint32_t& { return out[i].priority; });
  return out;
}

void compact_priorities(std::vector<EndpointSpec>& endpoints) {
  compact(endpoints.size(), [&](size_t i) -> uint32_t& { return endpoints[i].priority; });
}

}  // namespace meshbox::control
