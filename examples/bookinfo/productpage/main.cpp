// meshbox-productpage: Bookinfo's front end on meshbox's core libraries (README.md).
#include "examples/bookinfo/common/service.h"
#include "examples/bookinfo/productpage/productpage_service.h"

int main(int argc, char** argv) {
  using namespace meshbox::bookinfo;
  const AppSpec spec{
      .program = "meshbox-productpage",
      .summary =
          "Bookinfo's front end: GET /productpage (details + reviews as one HTML page),\n"
          "GET /, POST /login, GET /logout, GET /api/v1/products[/<id>[/reviews|/ratings]],\n"
          "GET /health, GET /static/bookinfo.css.",
      .default_name = "productpage",
      .upstreams = {"details", "reviews", "ratings"},
  };
  return service_main(argc, argv, spec,
                      [](meshbox::loop::Loop& loop, HttpClient& client, const Options& opts) {
                        return std::make_unique<ProductPageService>(loop, client, opts);
                      });
}
