// Service and service_main(): what the four Bookinfo programs have in common around their
// request handling. main() hands its argv and AppSpec to service_main(), which parses the
// options, then runs one Loop with an HttpServer, an HttpClient and the program's Service
// until SIGTERM or SIGINT, like meshbox-httpbin: ready file, logging, clean shutdown.
#pragma once

#include <functional>
#include <memory>

#include "core/loop/loop.h"
#include "examples/bookinfo/common/http_client.h"
#include "examples/bookinfo/common/http_server.h"
#include "examples/bookinfo/common/options.h"

namespace meshbox::bookinfo {

/// One program's request handling. Created and destroyed on the loop thread, which every
/// call runs on. Upstream calls go through the HttpClient it was built with; the client
/// drops them (without calling back) at shutdown, before the service is destroyed.
class Service {
 public:
  virtual ~Service() = default;
  /// Answers `req` through `reply`, now or later. May move from `req`.
  virtual void handle(Request& req, Reply reply) = 0;
};

using ServiceFactory =
    std::function<std::unique_ptr<Service>(loop::Loop&, HttpClient&, const Options&)>;

/// The whole of main(): parses argv and the environment (exit 2 and the usage on a bad flag,
/// 0 after --help), listens, writes the ready file, serves until SIGTERM/SIGINT, then closes
/// every connection, every call and the loop. Exit 1 if it cannot listen or write the ready
/// file, or if the loop does not close clean.
int service_main(int argc, char** argv, const AppSpec& spec, const ServiceFactory& make);

}  // namespace meshbox::bookinfo
