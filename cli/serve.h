// serve(): runs proxy workers for a fixed snapshot (`meshbox proxy`) on the calling (control)
// thread until SIGTERM or SIGINT, then drains them. Listener addresses are reserved before
// anything starts, so address errors are reported up front; the ready file is written once
// every worker has applied the snapshot and accepts.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "plane/snapshot.h"

namespace meshbox::cli {

struct ServeOptions {
  int workers = 1;
  std::string ready_file;  // written once every worker accepts: one bound address a line
  uint64_t drain_timeout_ms = 10'000;
};

/// Returns the process exit code.
int serve(std::shared_ptr<Snapshot> snapshot, const ServeOptions& options);

}  // namespace meshbox::cli
