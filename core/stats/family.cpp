#include "core/stats/family.h"

#include <algorithm>
#include <bit>
#include <map>

namespace meshbox::stats {

Family::Family(std::string name, std::string help, Type type, std::vector<std::string> label_names,
               std::vector<double> bounds, size_t shards, size_t max_series)
    : name_(std::move(name)),
      help_(std::move(help)),
      type_(type),
      label_names_(std::move(label_names)),
      bounds_(type == Type::Histogram ? std::move(bounds) : std::vector<double>{}) {
  shards_.reserve(shards);
  Shard::Layout layout{type_, label_names_.size(), bounds_, max_series};
  for (size_t i = 0; i < shards; ++i)
    shards_.push_back(std::make_unique<Shard>(layout));
}

std::vector<Family::Merged> Family::merge() const {
  const size_t counts = type_ == Type::Histogram ? bounds_.size() + 1 : 1;
  std::map<std::vector<std::string_view>, Merged> by_labels;
  for (const std::unique_ptr<Shard>& shard : shards_) {
    const size_t n = shard->size();  // acquire: series below n are complete
    for (size_t i = 0; i < n; ++i) {
      std::vector<std::string_view> key;
      shard->labels(i, key);
      auto [it, fresh] = by_labels.try_emplace(std::move(key));
      Merged& m = it->second;
      if (fresh) {
        m.labels = it->first;
        m.counts.assign(counts, 0);
      }
      const Cell* cells = shard->cells(i);
      for (size_t c = 0; c < counts; ++c)
        m.counts[c] += cells[c].load(std::memory_order_relaxed);
      if (type_ == Type::Histogram) {
        m.sum += std::bit_cast<double>(cells[counts].load(std::memory_order_relaxed));
      }
    }
  }
  if (label_names_.empty() && by_labels.empty()) {
    by_labels[{}].counts.assign(counts, 0);
  }
  std::vector<Merged> out;
  out.reserve(by_labels.size());
  for (auto& [labels, m] : by_labels)
    out.push_back(std::move(m));
  return out;
}

size_t Family::series_count() const {
  size_t n = 0;
  for (const std::unique_ptr<Shard>& shard : shards_)
    n += shard->size();
  return n;
}

}  // namespace meshbox::stats
