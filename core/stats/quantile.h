// histogram_quantile(): a quantile from histogram buckets, computed as Prometheus'
// histogram_quantile() does (promql/quantile.go): find the bucket holding the rank, then
// interpolate linearly inside it. Used by `meshbox top` on the difference of two
// /stats/edges snapshots (the dashboard's JS does the same sums). Pure functions.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace meshbox::stats {

/// The `q` quantile (0 ≤ q ≤ 1) of a histogram. `bounds` are the finite upper bounds,
/// ascending; `cumulative` the cumulative counts per bucket, +Inf last (bounds.size() + 1
/// entries). NaN when there are no observations, the counts do not match the bounds, or q is
/// outside [0, 1]. Like Prometheus: a rank in the +Inf bucket gives the highest finite bound;
/// the first bucket's lower bound is 0 (if its upper bound is positive).
double histogram_quantile(double q, std::span<const double> bounds,
                          std::span<const uint64_t> cumulative);

/// `now - before`, bucket by bucket (counters only grow; a reset — any bucket smaller than
/// before, or a different size — gives `now` itself, as Prometheus' rate() treats a reset).
std::vector<uint64_t> bucket_delta(std::span<const uint64_t> before, std::span<const uint64_t> now);

}  // namespace meshbox::stats
