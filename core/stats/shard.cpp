#include "core/stats/shard.h"

#include <cstring>

#include "core/base/assert.h"

namespace meshbox::stats {

namespace {

// Equal bytes, for the short strings labels are: fixed-size (overlapping) reads instead of a
// memcmp call per value.
bool same(const char* a, const char* b, size_t n) {
  const auto load8 = [](const char* p) {
    uint64_t x;
    std::memcpy(&x, p, 8);
    return x;
  };
  const auto load4 = [](const char* p) {
    uint32_t x;
    std::memcpy(&x, p, 4);
    return x;
  };
  if (n >= 8) {
    for (; n > 8; a += 8, b += 8, n -= 8) {
      if (load8(a) != load8(b)) return false;
    }
    return load8(a + n - 8) == load8(b + n - 8);
  }
  if (n >= 4) return load4(a) == load4(b) && load4(a + n - 4) == load4(b + n - 4);
  for (size_t i = 0; i < n; ++i) {
    if (a[i] != b[i]) return false;
  }
  return true;
}

size_t cells_for(const Shard::Layout& l) {
  return l.type == Type::Histogram ? Histogram::cells_for(l.bounds.size()) : 1;
}

}  // namespace

void LabelCopy::assign(std::span<const std::string_view> values) {
  size_t total = 0;
  for (std::string_view v : values)
    total += v.size();
  flat_.clear();
  ends_.clear();
  flat_.reserve(total);
  ends_.reserve(values.size());
  for (std::string_view v : values) {
    flat_ += v;
    ends_.push_back(static_cast<uint32_t>(flat_.size()));
  }
}

bool LabelCopy::equals(std::span<const std::string_view> values) const {
  if (values.size() != ends_.size()) return false;
  const char* flat = flat_.data();
  uint32_t begin = 0;
  for (size_t i = 0; i < values.size(); ++i) {
    const uint32_t end = ends_[i];
    if (end - begin != values[i].size() || !same(flat + begin, values[i].data(), end - begin)) {
      return false;
    }
    begin = end;
  }
  return true;
}

Shard::Shard(const Layout& layout)
    : layout_(layout),
      cells_per_series_(cells_for(layout)),
      // A label-less family holds one series; others up to the cap, plus the overflow one.
      chunks_(((layout.labels == 0 ? 1 : layout.max_series + 1) + kChunk - 1) / kChunk),
      index_(16, 0) {}

Shard::~Shard() = default;

bool Shard::matches(const Series& s, const LabelKey& key) const {
  return s.hash == key.hash() && s.labels.equals(key.values());
}

Cell* Shard::find_or_create(const LabelKey& key) {
  if (key.values().size() != layout_.labels) {
    // A caller's bug (the label set does not fit the family): record it somewhere harmless.
    MB_BUG("stats: label values do not match the family's label names");
    return overflow();
  }
  const size_t mask = index_.size() - 1;
  for (size_t slot = key.hash() & mask;; slot = (slot + 1) & mask) {
    uint32_t entry = index_[slot];
    if (entry == 0) break;
    if (matches(series(entry - 1), key)) return chunk_cells(entry - 1);
  }
  // A new label set: past the cap it is counted into the overflow series.
  const size_t labelled = size_ - (overflow_ == SIZE_MAX ? 0 : 1);
  if (layout_.labels != 0 && labelled >= layout_.max_series) return overflow();
  size_t i = append(key.values(), key.hash());
  index_insert(key.hash(), i);
  return chunk_cells(i);
}

Cell* Shard::overflow() {
  if (overflow_ == SIZE_MAX) {
    if (size_ >= chunks_.size() * kChunk) return nullptr;  // label-less family: cannot happen
    std::vector<std::string_view> values(layout_.labels, kOverflowLabel);
    overflow_ = append(values, LabelKey::hash_of(values));
    // Not indexed: a caller whose values really are all "overflow" creates its own series,
    // and the scrape merges the two.
  }
  return chunk_cells(overflow_);
}

void Shard::labels(size_t i, std::vector<std::string_view>& out) const {
  const LabelCopy& l = series(i).labels;
  out.clear();
  for (size_t k = 0; k < l.size(); ++k)
    out.push_back(l.value(k));
}

size_t Shard::append(std::span<const std::string_view> values, uint64_t hash) {
  const size_t i = size_;
  MB_ASSERT(i < chunks_.size() * kChunk);
  std::unique_ptr<Chunk>& chunk = chunks_[i / kChunk];
  if (!chunk) chunk = std::make_unique<Chunk>(kChunk * cells_per_series_);
  Series& s = chunk->series[i % kChunk];
  s.labels.assign(values);
  s.hash = hash;
  size_ = i + 1;
  published_.store(size_, std::memory_order_release);
  return i;
}

void Shard::index_insert(uint64_t hash, size_t series) {
  // Keep the load at or under one half: probes stay short.
  if ((size_ + 1) * 2 > index_.size()) {
    std::vector<uint32_t> old(index_.size() * 2, 0);
    old.swap(index_);
    const size_t mask = index_.size() - 1;
    for (uint32_t entry : old) {
      if (entry == 0) continue;
      size_t slot = this->series(entry - 1).hash & mask;
      while (index_[slot] != 0)
        slot = (slot + 1) & mask;
      index_[slot] = entry;
    }
  }
  const size_t mask = index_.size() - 1;
  size_t slot = hash & mask;
  while (index_[slot] != 0)
    slot = (slot + 1) & mask;
  index_[slot] = static_cast<uint32_t>(series + 1);
}

}  // namespace meshbox::stats
