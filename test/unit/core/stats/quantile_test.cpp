// histogram_quantile(): the numbers Prometheus' histogram_quantile() gives for the same
// buckets (promql/quantile.go), and bucket_delta() across a counter reset.
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "core/stats/quantile.h"

namespace meshbox::stats {
namespace {

const std::vector<double> kBounds = {1, 5, 10, 50};

TEST_CASE("quantiles interpolate inside the bucket that holds the rank") {
  // 10 in (0,1], 10 in (1,5], 80 in (5,10], none above.
  std::vector<uint64_t> cum = {10, 20, 100, 100, 100};
  CHECK(histogram_quantile(0.05, kBounds, cum) == doctest::Approx(0.5));
  CHECK(histogram_quantile(0.10, kBounds, cum) == doctest::Approx(1.0));
  CHECK(histogram_quantile(0.15, kBounds, cum) == doctest::Approx(3.0));
  CHECK(histogram_quantile(0.50, kBounds, cum) == doctest::Approx(5 + 5 * (30.0 / 80)));
  CHECK(histogram_quantile(0.99, kBounds, cum) == doctest::Approx(5 + 5 * (79.0 / 80)));
  CHECK(histogram_quantile(1.0, kBounds, cum) == doctest::Approx(10));
  CHECK(histogram_quantile(0.0, kBounds, cum) == doctest::Approx(0));
}

TEST_CASE("a rank in the +Inf bucket gives the highest finite bound") {
  std::vector<uint64_t> cum = {0, 0, 0, 1, 10};
  CHECK(histogram_quantile(0.99, kBounds, cum) == 50);
  CHECK(histogram_quantile(0.05, kBounds, cum) == doctest::Approx(10 + 40 * 0.5));
}

TEST_CASE("no observations, mismatched buckets or a bad q give NaN") {
  CHECK(std::isnan(histogram_quantile(0.5, kBounds, std::vector<uint64_t>{0, 0, 0, 0, 0})));
  CHECK(std::isnan(histogram_quantile(0.5, kBounds, std::vector<uint64_t>{1, 2})));
  CHECK(std::isnan(histogram_quantile(1.5, kBounds, std::vector<uint64_t>{1, 1, 1, 1, 1})));
  CHECK(std::isnan(histogram_quantile(-0.1, kBounds, std::vector<uint64_t>{1, 1, 1, 1, 1})));
  CHECK(std::isnan(histogram_quantile(NAN, kBounds, std::vector<uint64_t>{1, 1, 1, 1, 1})));
}

TEST_CASE("bucket_delta subtracts two snapshots; a reset starts over") {
  std::vector<uint64_t> a = {1, 2, 3}, b = {2, 5, 9};
  CHECK(bucket_delta(a, b) == std::vector<uint64_t>{1, 3, 6});
  CHECK(bucket_delta(b, a) == a);                        // counters went down: reset
  CHECK(bucket_delta(std::vector<uint64_t>{}, b) == b);  // first snapshot
  std::vector<uint64_t> d = bucket_delta(a, b);
  CHECK(histogram_quantile(0.4, std::vector<double>{1, 2}, d) == doctest::Approx(1 + 1.4 / 2));
}

}  // namespace
}  // namespace meshbox::stats
