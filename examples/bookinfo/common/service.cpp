#include "examples/bookinfo/common/service.h"

#include <unistd.h>

#include <csignal>
#include <cstdio>

#include "core/base/file.h"
#include "core/base/log.h"
#include "core/loop/signal.h"

namespace meshbox::bookinfo {

namespace {

int run(const Options& opts, const AppSpec& spec, const ServiceFactory& make) {
  std::string program(spec.program);
  loop::Loop loop;
  int rc = 0;
  {
    HttpClient client(loop, opts.proxy);
    std::unique_ptr<Service> service = make(loop, client, opts);
    HttpServer server(
        loop, [&service](Request& req, Reply reply) { service->handle(req, std::move(reply)); });
    auto bound = server.listen(opts.listen);
    if (!bound) {
      std::fprintf(stderr, "%s: %s\n", program.c_str(), bound.error().message().c_str());
      return 1;
    }
    if (!opts.ready_file.empty()) {
      Status s = write_file_atomic(opts.ready_file, bound->to_string() + "\n");
      if (!s.is_ok()) {
        std::fprintf(stderr, "%s: %s\n", program.c_str(), s.message().c_str());
        return 1;
      }
    }
    MB_INFO("bookinfo", "{} listening on {}", opts.name, bound->to_string());
    for (const auto& [svc, up] : opts.upstreams)
      MB_INFO("bookinfo", "{} at {}{}", svc, up.authority(),
              opts.proxy.applies_to(up.host) ? " through the proxy " + opts.proxy.url() : "");

    auto on_signal = [&] {
      MB_INFO("bookinfo", "signal received: shutting down");
      server.shutdown();
      client.cancel_all();
      loop.stop();
    };
    loop::Signal sigterm(loop, SIGTERM, on_signal);
    loop::Signal sigint(loop, SIGINT, on_signal);
    loop.run();
    server.shutdown();
    client.cancel_all();
  }  // signal handlers, server, service and client release their handles here
  Status closed = loop.close();
  if (!closed.is_ok()) {
    std::fprintf(stderr, "%s: %s\n", program.c_str(), closed.message().c_str());
    rc = 1;
  }
  return rc;
}

}  // namespace

int service_main(int argc, char** argv, const AppSpec& spec, const ServiceFactory& make) {
  std::string program(spec.program);
  auto opts = parse_options(argc, argv, spec, process_env);
  if (!opts) {
    std::string text = usage(spec);
    std::fprintf(stderr, "%s: %s\n\n%s", program.c_str(), opts.error().message().c_str(),
                 text.c_str());
    return 2;
  }
  if (opts->help) {
    std::string text = usage(spec);
    std::fwrite(text.data(), 1, text.size(), stdout);
    return 0;
  }
  // Each reviews instance is told apart by its name, like a pod: reviews-v2-<pid>.
  if (spec.takes_version && !opts->name_given)
    opts->name = fmt::format("{}-{}-{}", spec.default_name, opts->version, ::getpid());
  // A peer that resets while we write must not kill the process.
  std::signal(SIGPIPE, SIG_IGN);
  log::set_level(opts->log_level);
  return run(*opts, spec, make);
}

}  // namespace meshbox::bookinfo
