// meshbox-details: Bookinfo's details service on meshbox's core libraries (README.md).
#include "examples/bookinfo/common/service.h"
#include "examples/bookinfo/details/details_service.h"

int main(int argc, char** argv) {
  using namespace meshbox::bookinfo;
  const AppSpec spec{
      .program = "meshbox-details",
      .summary = "Bookinfo's details service: GET /details/<id>, GET /health.",
      .default_name = "details",
  };
  return service_main(argc, argv, spec, [](auto&, auto&, const Options&) {
    return std::make_unique<DetailsService>();
  });
}
