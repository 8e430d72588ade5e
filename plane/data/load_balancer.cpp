#include "plane/data/load_balancer.h"

#include <charconv>
#include <cmath>
#include <cstring>
#include <string>
#include <utility>

namespace meshbox::data {

namespace {

__extension__ using U128 = unsigned __int128;

// Odd 64-bit constants: 2^64 / φ, and the two multipliers of splitmix64's finalizer.
constexpr uint64_t kGolden = 0x9e3779b97f4a7c15ULL;
constexpr uint64_t kMixA = 0xbf58476d1ce4e5b9ULL;
constexpr uint64_t kMixB = 0x94d049bb133111ebULL;

// Multiply to 128 bits and fold the halves together: the low half carries each input bit
// upwards, the high half brings every bit down, so each output bit depends on every input
// bit (the "multiply-fold" mix of the mum/wyhash family). Nearly a bijection for a fixed
// odd multiplier.
inline uint64_t fold_mul(uint64_t a, uint64_t b) {
  U128 p = static_cast<U128>(a) * b;
  return static_cast<uint64_t>(p) ^ static_cast<uint64_t>(p >> 64);
}

// A final avalanche of shifts and multiplies (splitmix64's), so that low output bits are as
// good as high ones.
inline uint64_t finalize(uint64_t z) {
  z = (z ^ (z >> 30)) * kMixA;
  z = (z ^ (z >> 27)) * kMixB;
  return z ^ (z >> 31);
}

// Little-endian, whatever the host, so a hash is the same on every machine.
inline uint64_t read_le(const unsigned char* p, size_t n) {
  uint64_t w = 0;
  for (size_t i = 0; i < n; ++i)
    w |= static_cast<uint64_t>(p[i]) << (8 * i);
  return w;
}

inline bool is_ows(char c) {
  return c == ' ' || c == '\t';
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_ows(s.front()))
    s.remove_prefix(1);
  while (!s.empty() && is_ows(s.back()))
    s.remove_suffix(1);
  return s;
}

// The value of cookie `name` in one Cookie header value (`a=1; b="2"`), or nullopt.
std::optional<std::string_view> find_cookie(std::string_view header, std::string_view name) {
  while (!header.empty()) {
    size_t semi = header.find(';');
    std::string_view pair = header.substr(0, semi);
    header = semi == std::string_view::npos ? std::string_view() : header.substr(semi + 1);
    size_t eq = pair.find('=');
    if (eq == std::string_view::npos) continue;  // not a cookie pair
    if (trim(pair.substr(0, eq)) != name) continue;
    std::string_view value = trim(pair.substr(eq + 1));  // may itself hold '='
    if (value.size() >= 2 && value.front() == '"' && value.back() == '"')
      value = value.substr(1, value.size() - 2);
    return value;
  }
  return std::nullopt;
}

// The raw value of the first query parameter `name` ("" for `name` alone), or nullopt.
std::optional<std::string_view> find_query_param(std::string_view query, std::string_view name) {
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view param = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    size_t eq = param.find('=');
    if (param.substr(0, eq) != name) continue;
    return eq == std::string_view::npos ? std::string_view() : param.substr(eq + 1);
  }
  return std::nullopt;
}

}  // namespace

uint64_t hash_bytes(std::string_view bytes) {
  // Chained multiply-fold over 8-byte words, then the length, then an avalanche. Written for
  // short keys (header values, cookies, "ADDRESS_INDEX" ring entries): one 128-bit multiply
  // per 8 bytes.
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  size_t n = bytes.size();
  uint64_t h = kGolden;
  for (; n >= 8; n -= 8, p += 8)
    h = fold_mul(h ^ read_le(p, 8), kMixA);
  if (n > 0) h = fold_mul(h ^ read_le(p, n), kMixA);
  // The length tells "ab" from "ab\0" (both pad to the same word).
  h = fold_mul(h ^ (static_cast<uint64_t>(bytes.size()) * kGolden), kMixB);
  return finalize(h);
}

std::optional<uint64_t> request_hash(const HashPolicySpec& policy, const http::HeaderMap& headers,
                                     std::string_view query, std::string_view client_ip) {
  switch (policy.kind) {
    case HashPolicySpec::Kind::None:
      return std::nullopt;
    case HashPolicySpec::Kind::Header: {
      const std::string* value = headers.get(policy.name);
      if (!value) return std::nullopt;
      return hash_bytes(*value);
    }
    case HashPolicySpec::Kind::Cookie:
      // Several Cookie headers are one list (RFC 6265 §5.4 sends one; HTTP/2 splits it).
      for (const http::HeaderEntry& e : headers) {
        if (!http::iequals(e.name, "cookie")) continue;
        std::optional<std::string_view> value = find_cookie(e.value, policy.name);
        if (!value) continue;
        if (value->empty()) return std::nullopt;
        return hash_bytes(*value);
      }
      return std::nullopt;
    case HashPolicySpec::Kind::QueryParam: {
      std::optional<std::string_view> value = find_query_param(query, policy.name);
      if (!value) return std::nullopt;
      return hash_bytes(*value);
    }
    case HashPolicySpec::Kind::SourceIp:
      if (client_ip.empty()) return std::nullopt;
      return hash_bytes(client_ip);
  }
  return std::nullopt;
}

LoadBalancer::LoadBalancer(const ClusterSpec& spec) {
  const size_t n = spec.endpoints.size();
  weights_.reserve(n);
  prefix_.reserve(n);
  for (const EndpointSpec& ep : spec.endpoints) {
    uint32_t w = std::max<uint32_t>(ep.weight, 1);
    uniform_ = uniform_ && (weights_.empty() || w == weights_.front());
    weights_.push_back(w);
    total_weight_ += w;
    prefix_.push_back(total_weight_);
  }
  if (spec.hash.kind != HashPolicySpec::Kind::None) {
    mode_ = Mode::Ring;
  } else {
    switch (spec.lb_policy) {
      case LbPolicy::RoundRobin:
        mode_ = Mode::RoundRobin;
        break;
      case LbPolicy::Random:
        mode_ = Mode::Random;
        break;
      case LbPolicy::LeastRequest:
        mode_ = Mode::LeastRequest;
        break;
    }
  }
  if (n == 0) return;

  if (mode_ == Mode::RoundRobin && !uniform_) {
    edf_.reserve(n);
    for (size_t i = 0; i < n; ++i)
      edf_.push_back(Turn{1, weights_[i], static_cast<uint32_t>(i)});
    std::make_heap(edf_.begin(), edf_.end(), due_after);
  }
  if (mode_ != Mode::Ring) return;

  // The ring (Envoy's ring_hash): endpoint i gets count_i entries, hashed from
  // "ADDRESS_INDEX" for INDEX in [0, count_i), and the entries are sorted. A key belongs to
  // the first entry at or after its hash. count_i = weight_i × 2^k (rounded up, at least 1)
  // with the smallest k giving ring_size entries in total: the scale is a power of two, so
  // removing or adding an endpoint seldom changes it, and then the other endpoints keep
  // exactly their entries, and their keys. (Envoy's scale follows the total weight exactly,
  // so every change also moves some keys between the endpoints that stay.)
  uint64_t target = spec.hash.ring_size ? spec.hash.ring_size : kDefaultRingSize;
  target = std::min(target, kMaxRingSize);
  int up = 0, down = 0;
  if (total_weight_ >= target) {
    while ((target << (down + 1)) <= total_weight_)
      ++down;
  } else {
    while ((total_weight_ << up) < target)
      ++up;
  }
  auto count = [&](uint32_t w) -> uint64_t {
    if (up > 0) return static_cast<uint64_t>(w) << up;
    return std::max<uint64_t>(1, (w + (uint64_t{1} << down) - 1) >> down);
  };
  uint64_t entries = 0;
  for (uint32_t w : weights_)
    entries += count(w);

  endpoint_keys_.reserve(n);
  std::vector<std::pair<uint64_t, uint32_t>> ring;
  ring.reserve(entries);
  std::string key;
  for (size_t i = 0; i < n; ++i) {
    key = spec.endpoints[i].address.to_string();
    endpoint_keys_.push_back(hash_bytes(key));
    key += '_';
    const size_t base = key.size();
    for (uint64_t j = 0, c = count(weights_[i]); j < c; ++j) {
      char digits[24];
      auto [end, ec] = std::to_chars(digits, digits + sizeof digits, j);
      (void)ec;  // 24 digits always fit a uint64_t
      key.resize(base);
      key.append(digits, end);
      ring.emplace_back(hash_bytes(key), static_cast<uint32_t>(i));
    }
  }
  // Ties (two entries with one hash) go by endpoint address, not by position in the spec,
  // so that every ordering of the same endpoints builds the same ring.
  std::sort(ring.begin(), ring.end(), [&](const auto& a, const auto& b) {
    if (a.first != b.first) return a.first < b.first;
    return endpoint_keys_[a.second] < endpoint_keys_[b.second];
  });
  ring_hashes_.reserve(ring.size());
  ring_owners_.reserve(ring.size());
  for (const auto& [h, owner] : ring) {
    ring_hashes_.push_back(h);
    ring_owners_.push_back(owner);
  }
}

namespace {

// The spec of one priority level: the cluster's policy over the endpoints of that level.
ClusterSpec level_spec(const ClusterSpec& spec, uint32_t priority) {
  ClusterSpec level;
  level.lb_policy = spec.lb_policy;
  level.hash = spec.hash;
  for (const EndpointSpec& ep : spec.endpoints)
    if (ep.priority == priority) level.endpoints.push_back(ep);
  return level;
}

}  // namespace

PriorityBalancer::PriorityBalancer(const ClusterSpec& spec) {
  std::vector<uint32_t> priorities;
  for (const EndpointSpec& ep : spec.endpoints)
    priorities.push_back(ep.priority);
  std::sort(priorities.begin(), priorities.end());
  priorities.erase(std::unique(priorities.begin(), priorities.end()), priorities.end());
  if (priorities.empty()) priorities.push_back(0);
  levels_.reserve(priorities.size());
  for (uint32_t p : priorities)
    levels_.push_back(Level{LoadBalancer(level_spec(spec, p)), {}});
  level_of_.reserve(spec.endpoints.size());
  for (size_t i = 0; i < spec.endpoints.size(); ++i) {
    auto l = static_cast<uint32_t>(
        std::lower_bound(priorities.begin(), priorities.end(), spec.endpoints[i].priority) -
        priorities.begin());
    level_of_.push_back(l);
    levels_[l].endpoints.push_back(static_cast<uint32_t>(i));
  }
  cumulative_.assign(levels_.size(), 100);
  std::vector<uint32_t> all;
  for (const Level& lv : levels_)
    all.push_back(static_cast<uint32_t>(lv.endpoints.size()));
  set_healthy(all.data());
}

void PriorityBalancer::set_healthy(const uint32_t* healthy) {
  // Envoy's priority load: health(l) = min(100, 1.4 × 100 × healthy / total); the levels
  // take their health in order until 100 % is given out, each scaled up by 100 / (the sum
  // of the healths) when that sum is below 100. Rounding leftovers go to the first level
  // with any health.
  const size_t n = levels_.size();
  uint32_t health[8], total = 0;  // levels beyond 8 count as one (Istio makes at most 5)
  const size_t m = std::min<size_t>(n, 8);
  for (size_t l = 0; l < m; ++l) {
    size_t size = levels_[l].endpoints.size();
    health[l] = size ? static_cast<uint32_t>(
                           std::min<uint64_t>(100, uint64_t{kOverprovisioning} * healthy[l] / size))
                     : 0;
    total += health[l];
  }
  if (total == 0) {  // nothing usable anywhere: the lowest level first, as if all were fine
    cumulative_.assign(n, 100);
    return;
  }
  uint32_t normalized = std::min<uint32_t>(100, total), given = 0;
  uint32_t load[8];
  for (size_t l = 0; l < m; ++l) {
    load[l] = std::min<uint32_t>(100 - given, health[l] * 100 / normalized);
    given += load[l];
  }
  for (size_t l = 0; l < m && given < 100; ++l) {
    if (health[l] == 0) continue;
    load[l] += 100 - given;
    given = 100;
  }
  uint32_t sum = 0;
  for (size_t l = 0; l < n; ++l) {
    sum += l < m ? load[l] : 0;
    cumulative_[l] = sum;
  }
}

void LoadBalancer::start_round_robin(Random& random) {
  // Start at virtual time r / total weight, r random: endpoint i has had the turns due by
  // then, floor(r × weight_i / total). The rotation that follows is the same one, shifted.
  started_ = true;
  uint64_t r = random.below(total_weight_);
  if (uniform_) {
    cursor_ = r % weights_.size();
    return;
  }
  for (Turn& t : edf_)
    t.next = static_cast<uint64_t>(static_cast<U128>(r) * t.weight / total_weight_) + 1;
  std::make_heap(edf_.begin(), edf_.end(), due_after);
}

size_t LoadBalancer::take_turn() {
  if (uniform_) {
    size_t i = cursor_;
    if (++cursor_ == weights_.size()) cursor_ = 0;
    return i;
  }
  std::pop_heap(edf_.begin(), edf_.end(), due_after);
  Turn& t = edf_.back();
  ++t.next;
  size_t i = t.index;
  std::push_heap(edf_.begin(), edf_.end(), due_after);
  return i;
}

size_t LoadBalancer::ring_entry(uint64_t hash) const {
  auto it = std::lower_bound(ring_hashes_.begin(), ring_hashes_.end(), hash);
  return it == ring_hashes_.end() ? 0 : static_cast<size_t>(it - ring_hashes_.begin());
}

double LoadBalancer::rendezvous_score(uint64_t hash, size_t i) const {
  // Weighted rendezvous hashing: u uniform in (0, 1) from the key and the endpoint;
  // -weight / ln(u) is highest for endpoint i with probability weight_i / total.
  uint64_t x = finalize(hash ^ endpoint_keys_[i]);
  double u = (static_cast<double>(x >> 11) + 0.5) * 0x1p-53;
  return -static_cast<double>(weights_[i]) / std::log(u);
}

}  // namespace meshbox::data
