// The recording side of core/stats: what a worker holds to bump one series.
//
// Counter, Gauge and Histogram are handles (a pointer or two) to cells in a Shard (shard.h),
// the per-worker store of a Family (family.h). A handle is used only by the thread that owns
// its shard: each cell has one writer, so an update is a relaxed load and a relaxed store,
// with no lock and no read-modify-write; the control thread reads the same cells with relaxed
// loads when it merges the shards for a scrape (Registry::write_prometheus).
//
// LabelKey is a label set as the caller has it (string_views, in the family's label-name
// order) plus its hash, computed once so that one request's counter and histograms, which
// share their labels, hash them once.
#pragma once

#include <array>
#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace meshbox::stats {

enum class Type { Counter, Gauge, Histogram };

/// Envoy's default histogram bounds (HistogramSettingsImpl::defaultBuckets), which every
/// Istio histogram uses: durations in ms and sizes in bytes alike. +Inf is implied.
inline constexpr std::array<double, 19> kDefaultBuckets = {
    0.5,  1,    5,     10,    25,    50,     100,    250,     500,    1000,
    2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000};

/// A cell: one writer thread (the shard's owner), any reader. Doubles and signed gauges are
/// stored as their bit patterns, so every cell has the same type.
using Cell = std::atomic<uint64_t>;

/// The hash of a label set, built one value at a time, so a caller can hash the values that
/// are fixed for a listener or route once and finish with the per-request ones (copying the
/// hasher). Not for anything an attacker could exploit: a bad spread costs probe length only.
class LabelHash {
 public:
  explicit LabelHash(size_t values) : h_(0x84222325cbf29ce4ULL ^ values) {}
  LabelHash& add(std::string_view v) {
    // Each value hashes on its own (the CPU overlaps them); the fold keeps their order, so
    // {"a", ""} and {"", "a"} differ.
    h_ = (h_ ^ bytes(v)) * 0x9e3779b97f4a7c15ULL;
    h_ ^= h_ >> 29;
    return *this;
  }
  uint64_t value() const { return h_; }

 private:
  static uint64_t mix(uint64_t a, uint64_t k) {
    a *= k;
    return a ^ (a >> 31);
  }
  static uint64_t bytes(std::string_view v) {
    const char* p = v.data();
    size_t n = v.size();
    uint64_t a = 0x2545f4914f6cdd1dULL ^ n, b = 0x9e3779b97f4a7c15ULL;
    for (; n >= 16; p += 16, n -= 16) {
      uint64_t x, y;
      std::memcpy(&x, p, 8);
      std::memcpy(&y, p + 8, 8);
      a = mix(a ^ x, 0xbf58476d1ce4e5b9ULL);
      b = mix(b ^ y, 0x94d049bb133111ebULL);
    }
    // The last 1..15 bytes, in fixed-size reads (a memcpy of a variable length is a call).
    if (n > 8) {
      uint64_t x, y;
      std::memcpy(&x, p, 8);
      std::memcpy(&y, p + n - 8, 8);
      a = mix(a ^ x, 0xbf58476d1ce4e5b9ULL);
      b = mix(b ^ y, 0x94d049bb133111ebULL);
    } else if (n >= 4) {
      uint32_t x, y;
      std::memcpy(&x, p, 4);
      std::memcpy(&y, p + n - 4, 4);
      b = mix(b ^ (uint64_t{x} << 32 | y), 0x94d049bb133111ebULL);
    } else if (n > 0) {
      uint64_t x = uint64_t{static_cast<unsigned char>(p[0])} << 16 |
                   uint64_t{static_cast<unsigned char>(p[n / 2])} << 8 |
                   static_cast<unsigned char>(p[n - 1]);
      b = mix(b ^ x, 0x94d049bb133111ebULL);
    }
    return mix(a ^ (b << 1), 0xd6e8feb86659fd93ULL);
  }

  uint64_t h_;
};

/// Label values in the family's label-name order, and their hash. Borrows the values: they
/// must outlive the key (the shard copies them only when it creates a new series).
class LabelKey {
 public:
  LabelKey() = default;  // no labels
  explicit LabelKey(std::span<const std::string_view> values)
      : values_(values), hash_(hash_of(values)) {}
  /// With the hash already computed (a LabelHash over exactly these values, in order).
  LabelKey(std::span<const std::string_view> values, const LabelHash& hash)
      : values_(values), hash_(hash.value()) {}

  std::span<const std::string_view> values() const { return values_; }
  uint64_t hash() const { return hash_; }

  static uint64_t hash_of(std::span<const std::string_view> values) {
    LabelHash h(values.size());
    for (std::string_view v : values) {
      h.add(v);
    }
    return h.value();
  }

 private:
  std::span<const std::string_view> values_;
  uint64_t hash_ = LabelHash(0).value();
};

/// One label set's values, copied back to back (one allocation): a shard's series keep their
/// labels so, and a recorder may keep the last sets it used, since telling whether a request
/// has the same values again is cheaper than hashing them.
class LabelCopy {
 public:
  void assign(std::span<const std::string_view> values);
  bool equals(std::span<const std::string_view> values) const;
  size_t size() const { return ends_.size(); }
  std::string_view value(size_t k) const {
    uint32_t begin = k == 0 ? 0 : ends_[k - 1];
    return std::string_view(flat_).substr(begin, ends_[k] - begin);
  }

 private:
  std::string flat_;
  std::vector<uint32_t> ends_;  // value k is flat_[ends_[k-1], ends_[k])
};

/// A monotonic counter. Owner thread only.
class Counter {
 public:
  Counter() = default;  // a no-op handle
  explicit Counter(Cell* cell) : cell_(cell) {}
  void inc(uint64_t n = 1) const {
    if (cell_) cell_->store(cell_->load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  uint64_t value() const { return cell_ ? cell_->load(std::memory_order_relaxed) : 0; }
  /// The series' cell (null: a no-op handle). Identifies the series for as long as its shard
  /// lives, e.g. as the key of a cache of related series.
  const Cell* cell() const { return cell_; }

 private:
  Cell* cell_ = nullptr;
};

/// A gauge: this shard's share of the value; the scrape shows the sum over shards (so each
/// worker adds and subtracts its own part, e.g. its open connections). Owner thread only.
class Gauge {
 public:
  Gauge() = default;  // a no-op handle
  explicit Gauge(Cell* cell) : cell_(cell) {}
  void set(int64_t v) const {
    if (cell_) cell_->store(static_cast<uint64_t>(v), std::memory_order_relaxed);
  }
  void add(int64_t n) const { set(value() + n); }
  void sub(int64_t n) const { set(value() - n); }
  int64_t value() const {
    return cell_ ? static_cast<int64_t>(cell_->load(std::memory_order_relaxed)) : 0;
  }

 private:
  Cell* cell_ = nullptr;
};

/// A histogram with fixed bounds. Cells: one per bound plus +Inf (counts per bucket, not
/// cumulative: the scrape accumulates), then the sum. A value equal to a bound falls in
/// that bound's bucket (`le` is inclusive). Owner thread only.
class Histogram {
 public:
  Histogram() = default;  // a no-op handle
  Histogram(std::span<const double> bounds, Cell* cells) : bounds_(bounds), cells_(cells) {}

  void record(double v) const {
    if (!cells_ || v != v) return;  // a NaN would poison the sum for good: not recorded
    // Bounds ascend and are few (20): a linear scan beats a binary search's branches.
    size_t i = 0;
    while (i < bounds_.size() && v > bounds_[i])
      ++i;
    Cell& bucket = cells_[i];
    bucket.store(bucket.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    Cell& sum = cells_[bounds_.size() + 1];
    double s = std::bit_cast<double>(sum.load(std::memory_order_relaxed)) + v;
    sum.store(std::bit_cast<uint64_t>(s), std::memory_order_relaxed);
  }

  /// Number of cells a histogram with `bounds` needs.
  static size_t cells_for(size_t bounds) { return bounds + 2; }

 private:
  std::span<const double> bounds_;
  Cell* cells_ = nullptr;
};

}  // namespace meshbox::stats
