// LoadBalancer: which endpoint of one cluster serves a request — Istio's DestinationRule
// loadBalancer (ROUND_ROBIN, RANDOM, LEAST_REQUEST, consistentHash), as Envoy implements it.
// A worker builds one per cluster per snapshot from the ClusterSpec and owns it (through its
// ClusterState). Loop thread only: pick() advances round-robin state. request_hash() and
// hash_bytes() are pure functions, callable from any thread.
//
// pick() allocates nothing and is O(1) (equal weights) or O(log n) while most endpoints are
// usable; it falls back to one O(n) scan only when its first few choices were all unusable.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "core/base/random.h"
#include "core/http/header_map.h"
#include "plane/snapshot.h"

namespace meshbox::data {

/// Endpoint choice for one cluster on one worker, built once per cluster per snapshot from
/// its spec: weighted round robin, weighted random, least request (power of two choices,
/// weights honoured as Envoy does: load / weight), or a ring hash when spec.hash.kind != None.
class LoadBalancer {
 public:
  static constexpr size_t npos = SIZE_MAX;
  /// The most entries a ring is built for (spec.hash.ring_size above it is lowered to it). A
  /// ring holds between ring_size and 2 × ring_size (+ one per endpoint) entries of 12 bytes:
  /// at most ~12 MiB per cluster per worker.
  static constexpr uint64_t kMaxRingSize = uint64_t{1} << 19;
  /// spec.hash.ring_size 0 means Istio's default minimum ring size.
  static constexpr uint64_t kDefaultRingSize = 1024;

  explicit LoadBalancer(const ClusterSpec& spec);

  /// An index into spec.endpoints, or npos if no endpoint is usable. `hash`: the request's
  /// hash for a ring-hash cluster (null: pick by the cluster's lb_policy, or at random on the
  /// ring). `usable(i)`: false for an endpoint that must not be picked now (ejected by outlier
  /// detection, or already tried by this request's earlier attempts); when the first choice
  /// is unusable the next is tried (ring: walk on along the ring; others: a bounded number of
  /// further choices, then a scan), so it stays O(1)/O(log n) while most endpoints are usable.
  /// `load(i)`: requests in flight on endpoint i (least request).
  template <typename Usable, typename Load>
  size_t pick(Random& random, const uint64_t* hash, Usable&& usable, Load&& load);

  /// How many endpoints the balancer chooses from (spec.endpoints.size()).
  size_t size() const { return weights_.size(); }
  /// True if this is a ring-hash balancer (spec.hash.kind != None).
  bool is_ring_hash() const { return mode_ == Mode::Ring; }
  /// Entries on the ring (0 unless is_ring_hash()).
  size_t ring_entries() const { return ring_hashes_.size(); }

 private:
  enum class Mode { RoundRobin, Random, LeastRequest, Ring };
  // First choices tried before falling back to a scan of every endpoint.
  static constexpr size_t kMaxTries = 8;
  // Ring entries walked past an unusable endpoint before falling back to rendezvous hashing.
  static constexpr size_t kMaxRingWalk = 64;

  // Weighted round robin is earliest deadline first (Envoy's EdfScheduler) in exact integer
  // arithmetic: endpoint i's k-th turn is due at virtual time k / weight_i; `next` is the k of
  // its next turn. Ties go to the lower index. Kept as a heap, earliest due on top.
  struct Turn {
    uint64_t next;
    uint32_t weight;
    uint32_t index;
  };
  // True if `a` is due after `b` (std heap comparator: the top is the one due first).
  static bool due_after(const Turn& a, const Turn& b) {
    __extension__ using U128 = unsigned __int128;
    U128 ta = static_cast<U128>(a.next) * b.weight, tb = static_cast<U128>(b.next) * a.weight;
    return ta != tb ? ta > tb : a.index > b.index;
  }
  // load_a / weight_a < load_b / weight_b, exactly.
  bool less_loaded(uint64_t load_a, size_t a, uint64_t load_b, size_t b) const {
    __extension__ using U128 = unsigned __int128;
    if (uniform_) return load_a < load_b;
    return static_cast<U128>(load_a) * weights_[b] < static_cast<U128>(load_b) * weights_[a];
  }

  size_t weighted_draw(Random& random) const {
    if (uniform_) return random.below(weights_.size());
    uint64_t x = random.below(total_weight_);
    return std::upper_bound(prefix_.begin(), prefix_.end(), x) - prefix_.begin();
  }
  void start_round_robin(Random& random);
  // Takes the endpoint due first off the schedule, gives it its next turn, returns it.
  size_t take_turn();
  // The index of the ring entry owning `hash`: the first entry at or after it, wrapping.
  size_t ring_entry(uint64_t hash) const;
  // Rendezvous score of endpoint i for `hash` (higher wins), weighted; see .cpp.
  double rendezvous_score(uint64_t hash, size_t i) const;

  template <typename Usable>
  size_t pick_round_robin(Usable& usable);
  template <typename Usable>
  size_t pick_random(Random& random, Usable& usable);
  template <typename Usable, typename Load>
  size_t pick_least_request(Random& random, Usable& usable, Load& load);
  template <typename Usable>
  size_t pick_ring(uint64_t hash, Usable& usable);

  Mode mode_ = Mode::RoundRobin;
  std::vector<uint32_t> weights_;  // ≥ 1 each
  bool uniform_ = true;            // every weight equal: plain counters and draws
  uint64_t total_weight_ = 0;
  std::vector<uint64_t> prefix_;  // prefix_[i] = weights_[0] + … + weights_[i]
  // Round robin. Workers start at a random point of the schedule (Envoy does too), so they
  // do not all send their first requests to endpoint 0.
  bool started_ = false;
  size_t cursor_ = 0;      // uniform: the next endpoint
  std::vector<Turn> edf_;  // weighted: the schedule, a heap
  // Ring hash: entry hashes sorted, and the endpoint owning each.
  std::vector<uint64_t> ring_hashes_;
  std::vector<uint32_t> ring_owners_;
  std::vector<uint64_t> endpoint_keys_;  // hash_bytes(address), for the rendezvous fallback
};

/// Envoy's priority levels over one cluster: a LoadBalancer per distinct
/// EndpointSpec::priority, lowest first. A request goes to a level drawn by the levels' loads,
/// which follow their health with Envoy's overprovisioning factor of 1.4: a level with at
/// least 72 % of its endpoints usable takes every request it can; below that it keeps
/// 1.4 × its usable fraction and the rest spills to the next levels, in order (normalised
/// when all levels together fall short of 100 %). When the drawn level has no usable
/// endpoint for this request, the other levels are tried, lowest first.
/// Built only for clusters with more than one level (one level is a plain LoadBalancer).
/// Loop thread only; pick() allocates nothing and costs one draw more than a LoadBalancer's.
class PriorityBalancer {
 public:
  static constexpr size_t npos = LoadBalancer::npos;
  static constexpr uint32_t kOverprovisioning = 140;  // percent (Envoy's default 1.4)

  explicit PriorityBalancer(const ClusterSpec& spec);

  size_t levels() const { return levels_.size(); }
  /// The level of spec.endpoints[endpoint].
  uint32_t level_of(size_t endpoint) const { return level_of_[endpoint]; }
  /// The number of endpoints in `level`.
  size_t level_size(size_t level) const { return levels_[level].endpoints.size(); }
  /// Sets the levels' loads from their usable endpoints (`healthy[l]` for level l, one per
  /// level). At construction every endpoint counts as usable.
  void set_healthy(const uint32_t* healthy);
  /// The percentage of requests `level` takes now (the loads sum to 100).
  uint32_t load(size_t level) const {
    return cumulative_[level] - (level ? cumulative_[level - 1] : 0);
  }

  /// As LoadBalancer::pick, over the levels: an index into spec.endpoints, or npos. A
  /// ring-hash cluster draws its level from the hash too, so a key keeps its level.
  template <typename Usable, typename Load>
  size_t pick(Random& random, const uint64_t* hash, Usable&& usable, Load&& load);

 private:
  struct Level {
    LoadBalancer lb;
    std::vector<uint32_t> endpoints;  // indexes into spec.endpoints
  };
  // Picks in one level; an index into spec.endpoints, or npos.
  template <typename Usable, typename Load>
  size_t pick_in(size_t level, Random& random, const uint64_t* hash, Usable& usable, Load& load) {
    Level& lv = levels_[level];
    size_t i = lv.lb.pick(
        random, hash, [&](size_t e) { return usable(lv.endpoints[e]); },
        [&](size_t e) { return load(lv.endpoints[e]); });
    return i == npos ? npos : lv.endpoints[i];
  }

  std::vector<Level> levels_;
  std::vector<uint32_t> level_of_;    // per endpoint of the spec
  std::vector<uint32_t> cumulative_;  // per level: the loads of the levels up to it, in %
};

template <typename Usable, typename Load>
size_t PriorityBalancer::pick(Random& random, const uint64_t* hash, Usable&& usable, Load&& load) {
  const size_t n = levels_.size();
  size_t first = 0;
  if (cumulative_[0] < 100) {
    uint64_t r = hash ? *hash % 100 : random.below(100);
    while (first + 1 < n && r >= cumulative_[first])
      ++first;
  }
  // The drawn level, then the others lowest first; one call site, so it inlines.
  for (size_t t = 0; t < n; ++t) {
    size_t level = t == 0 ? first : t <= first ? t - 1 : t;
    size_t i = pick_in(level, random, hash, usable, load);
    if (i != npos) return i;
  }
  return npos;
}

/// The request's hash under `policy`, or nullopt when its key is absent (no such header,
/// cookie or query parameter; an empty cookie counts as absent, as in Envoy, so the request
/// is given a new one). Header: the first value of header policy.name (case-insensitive).
/// Cookie: parsed from every Cookie header of `headers` (`a=1; b=2`), first occurrence,
/// surrounding double quotes removed. QueryParam: `query` is the part after '?'; the first
/// occurrence's raw value ("" for `?name` or `?name=`). SourceIp: `client_ip`, the downstream
/// peer's IP. None: nullopt.
std::optional<uint64_t> request_hash(const HashPolicySpec& policy, const http::HeaderMap& headers,
                                     std::string_view query, std::string_view client_ip);

/// A 64-bit hash of bytes, well mixed (every input bit flips about half the output bits).
/// Stable across processes, workers and releases: the ring maps keys through it, so a
/// change would move every key after an upgrade. Not for hash tables facing attackers.
uint64_t hash_bytes(std::string_view bytes);

// ---------------------------------------------------------------------------------------
// Implementation of pick(): a template so that the per-request callbacks inline.

template <typename Usable, typename Load>
size_t LoadBalancer::pick(Random& random, const uint64_t* hash, Usable&& usable, Load&& load) {
  if (weights_.empty()) return npos;
  switch (mode_) {
    case Mode::Ring:
      return pick_ring(hash ? *hash : random.next(), usable);
    case Mode::Random:
      return pick_random(random, usable);
    case Mode::LeastRequest:
      return pick_least_request(random, usable, load);
    case Mode::RoundRobin:
      break;
  }
  if (!started_) start_round_robin(random);
  return pick_round_robin(usable);
}

template <typename Usable>
size_t LoadBalancer::pick_round_robin(Usable& usable) {
  // An unusable endpoint loses its turn, as if picked: back in service, it rejoins the
  // rotation where it stands instead of catching up in a burst. Equal weights: the turns
  // go round in order, so n of them see every endpoint.
  const size_t n = weights_.size();
  const size_t tries = uniform_ ? n : std::min(n, kMaxTries);
  for (size_t t = 0; t < tries; ++t) {
    size_t i = take_turn();
    if (usable(i)) return i;
  }
  if (uniform_) return npos;
  // The usable endpoint due first, found by a scan; it takes its turn.
  size_t best = npos;
  for (size_t h = 0; h < edf_.size(); ++h)
    if (usable(edf_[h].index) && (best == npos || due_after(edf_[best], edf_[h]))) best = h;
  if (best == npos) return npos;
  size_t i = edf_[best].index;
  ++edf_[best].next;
  std::make_heap(edf_.begin(), edf_.end(), due_after);
  return i;
}

template <typename Usable>
size_t LoadBalancer::pick_random(Random& random, Usable& usable) {
  for (size_t t = 0; t < kMaxTries; ++t) {
    size_t i = weighted_draw(random);
    if (usable(i)) return i;
  }
  // Weighted draw among the usable ones, in one pass (weighted reservoir sampling).
  size_t chosen = npos;
  uint64_t seen = 0;
  for (size_t i = 0; i < weights_.size(); ++i) {
    if (!usable(i)) continue;
    seen += weights_[i];
    if (random.below(seen) < weights_[i]) chosen = i;
  }
  return chosen;
}

template <typename Usable, typename Load>
size_t LoadBalancer::pick_least_request(Random& random, Usable& usable, Load& load) {
  const size_t n = weights_.size();
  // Power of two choices: two distinct usable endpoints drawn by weight; the one with fewer
  // requests in flight per unit of weight wins (Envoy's LEAST_REQUEST).
  size_t a = npos;
  for (size_t t = 0; t < kMaxTries && a == npos; ++t) {
    size_t i = weighted_draw(random);
    if (usable(i)) a = i;
  }
  if (a != npos) {
    if (n == 1) return a;
    size_t b = npos;
    for (size_t t = 0; t < kMaxTries && b == npos; ++t) {
      size_t i = weighted_draw(random);
      if (i != a && usable(i)) b = i;
    }
    if (b == npos) {  // the draws kept hitting `a` (a heavy endpoint): any other one
      size_t i = a + 1 + random.below(n - 1);
      if (i >= n) i -= n;
      if (!usable(i)) return a;
      b = i;
    }
    uint64_t load_a = static_cast<uint64_t>(load(a)), load_b = static_cast<uint64_t>(load(b));
    return less_loaded(load_b, b, load_a, a) ? b : a;
  }
  // The least loaded usable endpoint, by a scan from a random start (ties spread out).
  size_t best = npos;
  uint64_t best_load = 0;
  size_t start = random.below(n);
  for (size_t t = 0; t < n; ++t) {
    size_t i = start + t < n ? start + t : start + t - n;
    if (!usable(i)) continue;
    uint64_t l = static_cast<uint64_t>(load(i));
    if (best == npos || less_loaded(l, i, best_load, best)) best = i, best_load = l;
  }
  return best;
}

template <typename Usable>
size_t LoadBalancer::pick_ring(uint64_t hash, Usable& usable) {
  // Walk on from the key's entry to the first entry of a usable endpoint (Envoy walks the
  // same way for a retry that must avoid a host).
  const size_t entries = ring_hashes_.size();
  const size_t walk = std::min(entries, kMaxRingWalk);
  size_t e = ring_entry(hash);
  uint32_t unusable = UINT32_MAX;  // the last endpoint found unusable: skip its entries quietly
  for (size_t t = 0; t < walk; ++t) {
    uint32_t owner = ring_owners_[e];
    if (owner != unusable) {
      if (usable(owner)) return owner;
      unusable = owner;
    }
    if (++e == entries) e = 0;
  }
  // Most of the ring is unusable: weighted rendezvous hashing over the usable endpoints,
  // still a function of the key alone, so every worker agrees.
  size_t best = npos;
  double best_score = 0;
  for (size_t i = 0; i < weights_.size(); ++i) {
    if (!usable(i)) continue;
    double s = rendezvous_score(hash, i);
    if (best == npos || s > best_score) best = i, best_score = s;
  }
  return best;
}

}  // namespace meshbox::data
