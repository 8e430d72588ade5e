// Locality load balancing, compiled: Istio's localityLbSetting turned into what Envoy's load
// balancer reads — a priority level per endpoint (failover: the lowest level with usable
// endpoints takes the traffic) or locality weights folded into endpoint weights (distribute).
// Relative to the locality of the node that runs the proxies (`meshbox run --locality`).
//
// Pure functions, used by the compiler (plane/control/compiler.cpp); no state, any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "plane/config/resources.h"
#include "plane/snapshot.h"

namespace meshbox::control {

/// "region/zone/subzone" in parts; missing parts are "".
struct Locality {
  std::string_view region, zone, subzone;
};
Locality split_locality(std::string_view locality);

/// True if `locality` is "REGION", "REGION/ZONE" or "REGION/ZONE/SUBZONE" with non-empty
/// parts (the --locality flag).
bool valid_locality(std::string_view locality);

/// Istio's LocalityMatch: `pattern` ("region/zone/subzone", each part a name or "*"; a
/// missing zone or subzone matches any) matches `locality`.
bool locality_matches(std::string_view locality, std::string_view pattern);

/// The setting in force for a cluster (Istio's getLocalityLbSetting): the destination rule's
/// own (`rule`, its effective load_balancer's) if it has one, else the mesh's; off (nullopt)
/// when the one in force says enabled = false. No mesh setting means Istio's default,
/// enabled with nothing else set.
std::optional<config::LocalityLbSetting> effective_locality_setting(
    const std::optional<config::LocalityLbSetting>& mesh, const config::LocalityLbSetting* rule);

/// One endpoint, as the locality rules see it.
struct LocalityInput {
  std::string_view locality;               // "region/zone/subzone"
  const config::Labels* labels = nullptr;  // for failover_priority; null = none
  uint32_t weight = 1;
};

/// What the rules make of one endpoint.
struct LocalityChoice {
  uint32_t priority = 0;
  uint32_t weight = 1;  // 0: drop the endpoint (distribute sends its locality nothing)
};

/// Applies `setting` as seen from a proxy at `node` (non-empty) to `endpoints`:
///   - distribute (whatever `failover`): for the first entry whose `from` matches `node`,
///     every endpoint of a `to` locality shares that locality's weight, in proportion to its
///     own weight; endpoints of no `to` locality (or of one with weight 0) are dropped. The
///     most specific `to` pattern claims an endpoint first (fewest wildcards, then name).
///   - otherwise, only when `failover` (the cluster has outlier detection): priorities.
///     failover_priority: N label entries ("key" = the node's value, "key=value" = that
///     value); an endpoint matching the first k of them in order gets priority N - k. The
///     node's labels are its topology labels only (topology.kubernetes.io/region, …/zone,
///     topology.istio.io/subzone, from `node`), and an endpoint's topology labels default
///     to its locality's. Else by locality: 0 same region/zone/subzone, 1 same region/zone,
///     2 same region, 3 other regions — with `failover` entries, the `to` region of the
///     first entry `from` the node's region stays 3 and the other regions become 4.
/// Priorities are then renumbered 0, 1, 2… without gaps. Same order as `endpoints`.
std::vector<LocalityChoice> apply_locality_lb(std::string_view node,
                                              const config::LocalityLbSetting& setting,
                                              bool failover,
                                              const std::vector<LocalityInput>& endpoints);

/// Renumbers the endpoints' priorities 0, 1, 2… without gaps, keeping their order (a level
/// that lost all its endpoints to health checks leaves no hole).
void compact_priorities(std::vector<EndpointSpec>& endpoints);

}  // namespace meshbox::control
