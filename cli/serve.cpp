#include "cli/serve.h"

#include <csignal>
#include <cstdio>
#include <memory>

#include "cli/runtime.h"
#include "core/base/file.h"
#include "core/base/log.h"
#include "core/loop/loop.h"
#include "core/loop/signal.h"

namespace meshbox::cli {

int serve(std::shared_ptr<Snapshot> snapshot, const ServeOptions& options) {
  // A peer that resets while we write must give EPIPE, not kill the process.
  std::signal(SIGPIPE, SIG_IGN);

  loop::Loop control;
  int exit_code = 0;
  bool draining = false;
  std::unique_ptr<loop::Signal> sigterm, sigint;
  std::unique_ptr<Runtime> runtime;

  auto drain_all = [&](uint64_t deadline_ms) {
    if (draining) return;
    draining = true;
    MB_INFO("meshbox", "draining (up to {} ms)", deadline_ms);
    runtime->drain(deadline_ms);
    // The control loop ends once nothing but the runtime's mailbox is left.
    sigterm.reset();
    sigint.reset();
  };
  runtime = std::make_unique<Runtime>(control, options.workers, [&](const Status&) {
    exit_code = 1;
    drain_all(0);
  });

  auto published = runtime->publish(std::move(snapshot));
  if (!published) {
    MB_ERROR("meshbox", "{}", published.error().message());
    runtime->drain(0);
    control.run();
    runtime->join();
    return 1;
  }
  const Snapshot& snap = **published;
  std::string ready;
  for (const auto& l : snap.listeners) {
    ready += l.address.to_string() + "\n";
    MB_INFO("meshbox", "listener {} ({}) on {}", l.name,
            l.protocol == ListenerSpec::Protocol::Tcp ? "tcp" : "http", l.address.to_string());
  }
  runtime->when_applied(snap.version, [&, ready] {
    if (draining) return;
    if (!options.ready_file.empty() && !write_file_atomic(options.ready_file, ready).is_ok()) {
      MB_ERROR("meshbox", "cannot write ready file {}", options.ready_file);
      exit_code = 1;
      return drain_all(0);
    }
    MB_INFO("meshbox", "ready: {} worker(s)", options.workers);
  });

  auto on_signal = [&] { drain_all(options.drain_timeout_ms); };
  sigterm = std::make_unique<loop::Signal>(control, SIGTERM, on_signal);
  sigint = std::make_unique<loop::Signal>(control, SIGINT, on_signal);

  control.run();
  runtime->join();
  runtime.reset();
  MB_INFO("meshbox", "stopped");
  return exit_code;
}

}  // namespace meshbox::cli
