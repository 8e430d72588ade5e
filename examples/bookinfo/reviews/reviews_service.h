// ReviewsService: Bookinfo's reviews service, one program for the three versions.
// GET /reviews/<id> answers the two reviews as JSON, with "podname" set to this instance's
// --name so a caller can tell which instance answered. v1 leaves out ratings; v2 and v3 fetch
// GET /ratings/<id> from ratings (timeouts 10 s and 2.5 s, as in the sample) and add each
// reviewer's stars, black for v2, red for v3, or {"error": "Ratings service is currently
// unavailable"} when ratings fails. The trace headers and end-user of the request are
// forwarded to ratings. GET /health. Loop thread only.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "examples/bookinfo/common/http_client.h"
#include "examples/bookinfo/common/options.h"
#include "examples/bookinfo/common/service.h"

namespace meshbox::bookinfo {

class ReviewsService : public Service {
 public:
  ReviewsService(HttpClient& client, const Options& opts);
  void handle(Request& req, Reply reply) override;

 private:
  struct Stars {
    std::optional<int64_t> reviewer1, reviewer2;  // nullopt: that rating is unavailable
  };
  void reply_with_ratings(const Request& req, int64_t id, Reply reply);
  std::string reviews_json(int64_t id, const Stars* stars) const;

  HttpClient& client_;
  const std::string version_;
  const std::string name_;
  const std::string cluster_name_;
  const Upstream ratings_;
  const std::string color_;  // "black" (v2) or "red" (v3)
  const uint64_t ratings_timeout_ms_;
};

}  // namespace meshbox::bookinfo
