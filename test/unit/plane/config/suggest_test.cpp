// "Did you mean" (plane/config/suggest.h).
#include "plane/config/suggest.h"

#include <doctest/doctest.h>

#include <vector>

namespace meshbox::config {
namespace {

TEST_CASE("suggest: edit distance counts a swap as one edit") {
  CHECK(edit_distance("", "") == 0);
  CHECK(edit_distance("abc", "") == 3);
  CHECK(edit_distance("weight", "weight") == 0);
  CHECK(edit_distance("weigth", "weight") == 1);
  CHECK(edit_distance("kitten", "sitting") == 3);
  CHECK(edit_distance("subset", "subsets") == 1);
}

TEST_CASE("suggest: camelCase to snake_case") {
  CHECK(snake_case("perTryTimeout") == "per_try_timeout");
  CHECK(snake_case("consecutive5xxErrors") == "consecutive_5xx_errors");
  CHECK(snake_case("http1MaxPendingRequests") == "http_1_max_pending_requests");
  CHECK(snake_case("already_snake") == "already_snake");
}

TEST_CASE("suggest: the closest known name, when close enough") {
  std::vector<std::string> keys = {"weight",
                                   "destination",
                                   "headers",
                                   "per_try_timeout",
                                   "consecutive_5xx_errors",
                                   "http1_max_pending_requests"};
  CHECK(closest_match("weigth", keys) == "weight");
  CHECK(closest_match("Weight", keys) == "weight");
  CHECK(closest_match("destinaton", keys) == "destination");
  CHECK(closest_match("perTryTimeout", keys) == "per_try_timeout");
  CHECK(closest_match("consecutive5xxErrors", keys) == "consecutive_5xx_errors");
  CHECK(closest_match("http1MaxPendingRequests", keys) == "http1_max_pending_requests");
  CHECK(closest_match("colour", keys) == "");
  CHECK(closest_match("", keys) == "");
  CHECK(closest_match(std::string(100000, 'x'), keys) == "");
  CHECK(did_you_mean("headrs", keys) == "; did you mean 'headers'?");
  CHECK(did_you_mean("zzz", keys) == "");
  // Short names need to be very close.
  std::vector<std::string> short_keys = {"uri", "port"};
  CHECK(closest_match("url", short_keys) == "uri");
  CHECK(closest_match("urls", short_keys) == "");
}

}  // namespace
}  // namespace meshbox::config
