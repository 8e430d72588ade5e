// meshbox-httpbin: a single-threaded HTTP/1.1 test backend on meshbox's core libraries. It is
// the backend `./dev demo` puts behind the proxy and the one the integration tests drive.
// See README.md for the endpoints.
#include <csignal>
#include <cstdio>
#include <memory>
#include <string>

#include "core/base/file.h"
#include "core/base/log.h"
#include "core/loop/loop.h"
#include "core/loop/signal.h"
#include "examples/httpbin/options.h"
#include "examples/httpbin/server.h"

namespace meshbox::httpbin {
namespace {

int run(const Options& opts) {
  loop::Loop loop;
  {
    Server server(loop, opts.name);
    auto bound = server.listen(opts.listen);
    if (!bound) {
      std::fprintf(stderr, "meshbox-httpbin: %s\n", bound.error().message().c_str());
      return 1;
    }
    if (!opts.ready_file.empty()) {
      Status s = write_file_atomic(opts.ready_file, bound->to_string() + "\n");
      if (!s.is_ok()) {
        std::fprintf(stderr, "meshbox-httpbin: %s\n", s.message().c_str());
        return 1;
      }
    }
    MB_INFO("httpbin", "{} listening on {}", opts.name, bound->to_string());

    auto on_signal = [&] {
      MB_INFO("httpbin", "signal received: shutting down");
      server.shutdown();
      loop.stop();
    };
    loop::Signal sigterm(loop, SIGTERM, on_signal);
    loop::Signal sigint(loop, SIGINT, on_signal);
    loop.run();
    server.shutdown();
  }  // the signal handlers and the server release their handles here
  Status closed = loop.close();
  if (!closed.is_ok()) {
    std::fprintf(stderr, "meshbox-httpbin: %s\n", closed.message().c_str());
    return 1;
  }
  return 0;
}

}  // namespace
}  // namespace meshbox::httpbin

int main(int argc, char** argv) {
  using namespace meshbox;
  auto opts = httpbin::parse_options(argc, argv);
  if (!opts) {
    std::fprintf(stderr, "meshbox-httpbin: %s\n\n%.*s", opts.error().message().c_str(),
                 static_cast<int>(httpbin::usage().size()), httpbin::usage().data());
    return 2;
  }
  if (opts->help) {
    std::fwrite(httpbin::usage().data(), 1, httpbin::usage().size(), stdout);
    return 0;
  }
  // A peer that resets while we write must not kill the process.
  std::signal(SIGPIPE, SIG_IGN);
  log::set_level(opts->log_level);
  return httpbin::run(*opts);
}
