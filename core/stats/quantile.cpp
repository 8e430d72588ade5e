#include "core/stats/quantile.h"

#include <cmath>
#include <limits>

namespace meshbox::stats {

double histogram_quantile(double q, std::span<const double> bounds,
                          std::span<const uint64_t> cumulative) {
  constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
  if (!(q >= 0 && q <= 1) || cumulative.size() != bounds.size() + 1 || bounds.empty()) return kNaN;
  uint64_t total = cumulative.back();
  if (total == 0) return kNaN;
  double rank = q * static_cast<double>(total);
  size_t b = 0;
  while (b < cumulative.size() - 1 && static_cast<double>(cumulative[b]) < rank)
    ++b;
  if (b == bounds.size()) return bounds.back();  // the +Inf bucket
  if (b == 0 && bounds[0] <= 0) return bounds[0];
  double start = b == 0 ? 0 : bounds[b - 1];
  double end = bounds[b];
  uint64_t below = b == 0 ? 0 : cumulative[b - 1];
  double count = static_cast<double>(cumulative[b] - below);
  if (count <= 0) return end;
  return start + (end - start) * ((rank - static_cast<double>(below)) / count);
}

std::vector<uint64_t> bucket_delta(std::span<const uint64_t> before,
                                   std::span<const uint64_t> now) {
  std::vector<uint64_t> out(now.begin(), now.end());
  if (before.size() != now.size()) return out;
  for (size_t i = 0; i < now.size(); ++i)
    if (now[i] < before[i]) return std::vector<uint64_t>(now.begin(), now.end());
  for (size_t i = 0; i < now.size(); ++i)
    out[i] = now[i] - before[i];
  return out;
}

}  // namespace meshbox::stats
