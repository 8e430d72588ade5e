// RatingsService: Bookinfo's ratings service (v1). GET /ratings/<id> answers
// {"id":<id>,"ratings":{"Reviewer1":5,"Reviewer2":4}}; POST /ratings/<id> with a JSON object
// of reviewer → stars replaces the ratings of that product in memory, as the sample's v1 does.
// GET /health. It calls nobody. Loop thread only.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "examples/bookinfo/common/service.h"

namespace meshbox::bookinfo {

class RatingsService : public Service {
 public:
  void handle(Request& req, Reply reply) override;

 private:
  using Ratings = std::vector<std::pair<std::string, int64_t>>;  // reviewer → stars, in order
  std::string ratings_json(int64_t id) const;

  std::map<int64_t, Ratings> posted_;  // ratings POSTed per product id
};

}  // namespace meshbox::bookinfo
