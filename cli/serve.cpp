#include "cli/serve.h"

#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <memory>
#include <vector>

#include "core/base/log.h"
#include "core/loop/loop.h"
#include "core/loop/mailbox.h"
#include "core/loop/signal.h"
#include "core/loop/tcp_listener.h"
#include "plane/data/worker.h"

namespace meshbox::cli {

bool write_file_atomic(const std::string& path, const std::string& content) {
  std::string tmp = path + ".tmp";
  FILE* f = std::fopen(tmp.c_str(), "w");
  if (!f) return false;
  bool ok = std::fwrite(content.data(), 1, content.size(), f) == content.size();
  ok = (std::fclose(f) == 0) && ok;
  return ok && std::rename(tmp.c_str(), path.c_str()) == 0;
}

int serve(SnapshotConstPtr snapshot, const ServeOptions& options) {
  // A peer that resets while we write must give EPIPE, not kill the process.
  std::signal(SIGPIPE, SIG_IGN);

  // Bind every listener once per worker, up front, so address errors end the process before
  // anything starts.
  const int n = options.workers;
  std::vector<std::vector<int>> fds(n);
  std::string ready;
  for (const auto& spec : snapshot->listeners) {
    auto bound = loop::bind_listeners(spec.address, n);
    if (!bound) {
      MB_ERROR("meshbox", "listener {}: {}", spec.name, bound.error().message());
      for (auto& v : fds)
        for (int f : v)
          ::close(f);
      return 1;
    }
    for (int w = 0; w < n; ++w)
      fds[w].push_back((*bound)[w]);
    loop::Address addr = *loop::bound_address(bound->front());
    ready += addr.to_string() + "\n";
    MB_INFO("meshbox", "listener {} ({}) on {} → cluster {}", spec.name,
            spec.protocol == ListenerSpec::Protocol::Tcp ? "tcp" : "http", addr.to_string(),
            spec.cluster);
  }

  loop::Loop control;
  loop::Mailbox mailbox(control);
  std::vector<std::unique_ptr<data::Worker>> workers;
  int listening = 0, exit_code = 0;
  bool draining = false;
  std::unique_ptr<loop::Signal> sigterm, sigint;

  auto drain_all = [&](uint64_t deadline_ms) {
    if (!draining) MB_INFO("meshbox", "draining (up to {} ms)", deadline_ms);
    draining = true;
    for (auto& w : workers)
      w->drain(deadline_ms);
    // The control loop ends once nothing but the mailbox is left.
    sigterm.reset();
    sigint.reset();
    mailbox.unref();
  };
  auto on_signal = [&] { drain_all(options.drain_timeout_ms); };
  sigterm = std::make_unique<loop::Signal>(control, SIGTERM, on_signal);
  sigint = std::make_unique<loop::Signal>(control, SIGINT, on_signal);

  for (int w = 0; w < n; ++w) {
    workers.push_back(std::make_unique<data::Worker>(w, snapshot));
    workers.back()->start(std::move(fds[w]), [&](Status s) {
      // On the worker thread: report to the control loop.
      mailbox.post([&, s] {
        if (!s.is_ok()) {
          MB_ERROR("meshbox", "worker failed to listen: {}", s.message());
          exit_code = 1;
          return drain_all(0);
        }
        if (++listening == n && !draining) {
          if (!options.ready_file.empty() && !write_file_atomic(options.ready_file, ready)) {
            MB_ERROR("meshbox", "cannot write ready file {}", options.ready_file);
            exit_code = 1;
            return drain_all(0);
          }
          MB_INFO("meshbox", "ready: {} worker(s)", n);
        }
      });
    });
  }

  control.run();
  for (auto& w : workers) {
    Status s = w->join();
    if (!s.is_ok()) MB_WARN("meshbox", "worker {}: {}", w->id(), s.message());
  }
  workers.clear();
  MB_INFO("meshbox", "stopped");
  return exit_code;
}

}  // namespace meshbox::cli
