// serve(): runs proxy workers for a snapshot on the calling (control) thread until SIGTERM or
// SIGINT, then drains them. Binds every listener once per worker with SO_REUSEPORT before
// starting, so address errors are reported up front; writes the ready file once every worker
// is accepting.
#pragma once

#include <cstdint>
#include <string>

#include "plane/snapshot.h"

namespace meshbox::cli {

struct ServeOptions {
  int workers = 1;
  std::string ready_file;  // written once every worker accepts: one bound address a line
  uint64_t drain_timeout_ms = 10'000;
};

/// Returns the process exit code.
int serve(SnapshotConstPtr snapshot, const ServeOptions& options);

/// Writes `content` to `path` atomically (temporary file + rename).
bool write_file_atomic(const std::string& path, const std::string& content);

}  // namespace meshbox::cli
