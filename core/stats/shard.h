// Shard: one thread's store of one Family's series (the family's label sets and their cells).
//
// Owned by its Family; written by one thread, the shard's owner (a worker, or the control
// thread for its own shard), read by the control thread when it merges the shards for a scrape.
// Neither side locks:
//   - A series, once published, never moves: series live in fixed-size chunks reached through
//     a directory sized at construction for the family's cap, so the directory never grows.
//   - The owner fills a new series (labels, zeroed cells) and then publishes it with a
//     release store of the count; the reader acquire-loads the count and reads only that many.
//     Labels are immutable after publication.
//   - Cells have one writer (relaxed load + store) and are read with relaxed loads.
//   - The label-set → series index (open addressing) is the owner's alone.
// A new label set past the cap (max_series label sets in this shard) is recorded into the
// shard's overflow series, whose every label value is "overflow": totals stay right and memory
// stays bounded (shards × max_series series per family, whatever values a client sends).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/base/non_copyable.h"
#include "core/stats/metric.h"

namespace meshbox::stats {

/// The label value of the overflow series.
inline constexpr std::string_view kOverflowLabel = "overflow";

class Shard : NonCopyable {
 public:
  struct Layout {
    Type type = Type::Counter;
    size_t labels = 0;               // label names in the family
    std::span<const double> bounds;  // histograms; must outlive the shard
    size_t max_series = 0;           // label sets this shard may hold (the cap)
  };
  explicit Shard(const Layout& layout);
  ~Shard();

  // Owner thread only. The handle stays valid for the shard's life; a caller may keep it
  // (e.g. a label-less counter fetched once). `key` has one value per label name.
  Counter counter(const LabelKey& key = {}) { return Counter(find_or_create(key)); }
  Gauge gauge(const LabelKey& key = {}) { return Gauge(find_or_create(key)); }
  Histogram histogram(const LabelKey& key = {}) {
    return Histogram(layout_.bounds, find_or_create(key));
  }

  // Any thread: the published series. Call size() first (acquire) and read below it.
  size_t size() const { return published_.load(std::memory_order_acquire); }
  /// Series i's label values (pointing into the shard: valid for the shard's life).
  void labels(size_t i, std::vector<std::string_view>& out) const;
  const Cell* cells(size_t i) const { return chunk_cells(i); }
  size_t cells_per_series() const { return cells_per_series_; }

 private:
  static constexpr size_t kChunk = 32;
  struct Series {
    LabelCopy labels;
    uint64_t hash = 0;
  };
  struct Chunk {
    explicit Chunk(size_t cells) : cells(cells) {}
    Series series[kChunk];
    std::vector<Cell> cells;  // kChunk × cells_per_series_, zeroed
  };

  Cell* find_or_create(const LabelKey& key);
  Cell* overflow();
  size_t append(std::span<const std::string_view> values, uint64_t hash);
  void index_insert(uint64_t hash, size_t series);
  bool matches(const Series& s, const LabelKey& key) const;

  const Series& series(size_t i) const { return chunks_[i / kChunk]->series[i % kChunk]; }
  Cell* chunk_cells(size_t i) const {
    return chunks_[i / kChunk]->cells.data() + (i % kChunk) * cells_per_series_;
  }

  const Layout layout_;
  const size_t cells_per_series_;
  // Sized once for max_series + 1 (the overflow series); entries filled by the owner
  // before the series in them are published.
  std::vector<std::unique_ptr<Chunk>> chunks_;
  std::atomic<size_t> published_{0};
  // Owner only.
  size_t size_ = 0;
  std::vector<uint32_t> index_;  // series + 1; 0 = empty; power-of-two size
  size_t overflow_ = SIZE_MAX;
};

}  // namespace meshbox::stats
