// meshbox-ratings: Bookinfo's ratings service on meshbox's core libraries (README.md).
#include "examples/bookinfo/common/service.h"
#include "examples/bookinfo/ratings/ratings_service.h"

int main(int argc, char** argv) {
  using namespace meshbox::bookinfo;
  const AppSpec spec{
      .program = "meshbox-ratings",
      .summary = "Bookinfo's ratings service: GET and POST /ratings/<id>, GET /health.",
      .default_name = "ratings",
  };
  return service_main(argc, argv, spec, [](auto&, auto&, const Options&) {
    return std::make_unique<RatingsService>();
  });
}
