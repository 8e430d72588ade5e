// meshbox-reviews: Bookinfo's reviews service, v1, v2 or v3, on meshbox's core libraries
// (README.md).
#include "examples/bookinfo/common/service.h"
#include "examples/bookinfo/reviews/reviews_service.h"

int main(int argc, char** argv) {
  using namespace meshbox::bookinfo;
  const AppSpec spec{
      .program = "meshbox-reviews",
      .summary =
          "Bookinfo's reviews service: GET /reviews/<id>, GET /health. v2 and v3 call\n"
          "ratings for the stars.",
      .default_name = "reviews",
      .upstreams = {"ratings"},
      .takes_version = true,
  };
  return service_main(argc, argv, spec, [](auto&, HttpClient& client, const Options& opts) {
    return std::make_unique<ReviewsService>(client, opts);
  });
}
