// Registry: every metric family of a process, and the Prometheus text of all of them.
//
// Owned by the control plane; outlives every thread that records. Control thread only:
// creating families and callbacks, and write_prometheus(). A family is created before the
// threads that record into it learn of it (at startup, or passed to them through a mailbox),
// and is never removed. Recording threads touch only their own Shard (family.h, shard.h).
//
// Three kinds of metric:
//   - counter/gauge/histogram families with label names fixed at creation, recorded per shard
//     (a label-less family is a plain process-wide metric: each thread caches its handle);
//   - callbacks: counters or gauges computed on the control thread at scrape time (pool use,
//     certificate expiry, per-worker load), from state the control thread can read.
#pragma once

#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/base/non_copyable.h"
#include "core/stats/family.h"
#include "core/stats/metric.h"

namespace meshbox::stats {

/// Series per family per shard before new label sets go to the overflow series (shard.h).
inline constexpr size_t kDefaultMaxSeries = 10'000;

/// What a callback reports at scrape time: one value per label set.
class Samples {
 public:
  /// `values` in the callback's label-name order (a wrong count is a bug: dropped).
  void add(std::span<const std::string_view> values, double value);
  void add(std::initializer_list<std::string_view> values, double value) {
    add(std::span<const std::string_view>(values.begin(), values.size()), value);
  }
  void add(double value) { add(std::span<const std::string_view>{}, value); }

 private:
  friend class Registry;
  explicit Samples(size_t labels) : labels_(labels) {}
  struct Sample {
    std::vector<std::string> labels;
    double value;
  };
  size_t labels_;
  std::vector<Sample> samples_;
};

class Registry : NonCopyable {
 public:
  /// `shards`: how many recording threads (each family gets one shard per thread).
  explicit Registry(size_t shards, size_t max_series = kDefaultMaxSeries);
  ~Registry();

  // Names must be valid Prometheus names and unique in the registry (fatal otherwise: a
  // programming error found at startup). Counters are named as given, `_total` included.
  Family& counter(std::string name, std::string help, std::vector<std::string> label_names = {});
  Family& gauge(std::string name, std::string help, std::vector<std::string> label_names = {});
  Family& histogram(std::string name, std::string help, std::vector<std::string> label_names = {},
                    std::span<const double> bounds = kDefaultBuckets);

  using Collect = std::function<void(Samples&)>;
  /// A counter or gauge computed on the control thread at every scrape.
  void callback(std::string name, std::string help, Type type, std::vector<std::string> label_names,
                Collect collect);
  /// A label-less gauge computed at every scrape.
  void gauge_callback(std::string name, std::string help, std::function<double()> value);

  /// The family called `name`, or nullptr.
  Family* find(std::string_view name);
  size_t shards() const { return shards_; }

  /// Appends the text exposition format 0.0.4 of every metric: families sorted by name,
  /// series by label values; then `meshbox_stats_series{metric}`, the series each labelled
  /// family holds (a family near shards × max_series is overflowing).
  void write_prometheus(std::string& out) const;

 private:
  struct Entry {
    Type type = Type::Counter;
    std::unique_ptr<Family> family;  // or:
    std::string help;                // a callback's
    std::vector<std::string> label_names;
    Collect collect;
  };
  void check_new(const std::string& name, const std::vector<std::string>& label_names,
                 Type type) const;
  Family& add_family(std::string name, std::string help, Type type,
                     std::vector<std::string> label_names, std::vector<double> bounds);

  const size_t shards_;
  const size_t max_series_;
  std::map<std::string, Entry, std::less<>> entries_;
};

}  // namespace meshbox::stats
