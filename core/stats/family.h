// Family: one metric name with its help, type, label names and (histograms) bucket bounds,
// and one Shard per recording thread. Created by a Registry (registry.h) before the threads
// that record start, and destroyed after they stop; never moves.
//
// Recording: a thread takes its own shard, family.shard(worker_id), and bumps series there
// (shard.h says why that needs no lock). Reading: merge() on the control thread sums every
// shard's series with the same label values.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/base/non_copyable.h"
#include "core/stats/metric.h"
#include "core/stats/shard.h"

namespace meshbox::stats {

class Family : NonCopyable {
 public:
  /// `label_names` are fixed for the family's life; `bounds` (ascending) only for histograms;
  /// `max_series` caps the label sets each shard holds (shard.h: overflow).
  Family(std::string name, std::string help, Type type, std::vector<std::string> label_names,
         std::vector<double> bounds, size_t shards, size_t max_series);

  const std::string& name() const { return name_; }
  const std::string& help() const { return help_; }
  Type type() const { return type_; }
  const std::vector<std::string>& label_names() const { return label_names_; }
  std::span<const double> bounds() const { return bounds_; }
  size_t shards() const { return shards_.size(); }

  /// Thread-safe to call; the returned shard is then used only by the thread that owns
  /// index `i` (i < shards()).
  Shard& shard(size_t i) { return *shards_[i]; }

  /// One label set summed over the shards. `labels` point into the shards (valid while the
  /// family lives). counts: counter/gauge → one value (a gauge's is two's complement);
  /// histogram → per-bucket counts, not cumulative, +Inf last.
  struct Merged {
    std::vector<std::string_view> labels;
    std::vector<uint64_t> counts;
    double sum = 0;  // histograms
  };
  /// Control thread (any one reader at a time is enough; readers never block writers).
  /// Sorted by label values; a label-less family always yields its one series.
  std::vector<Merged> merge() const;
  /// Series held in all shards (overflow series included).
  size_t series_count() const;

 private:
  const std::string name_;
  const std::string help_;
  const Type type_;
  const std::vector<std::string> label_names_;
  const std::vector<double> bounds_;
  std::vector<std::unique_ptr<Shard>> shards_;
};

}  // namespace meshbox::stats
