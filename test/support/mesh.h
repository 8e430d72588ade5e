// Starting `meshbox run` under test: a config in a TempDir, its own state dir, the admin API
// on 127.0.0.1:0, and the ready file read back ("admin ADDR", "listener NAME ADDR"). The CLI
// (apply/get/delete) runs against it with the same state dir. Gateway ports are real
// ports picked free by the test (free_port()), since a gateway's port is part of its config.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "test/support/failure_logs.h"
#include "test/support/files.h"
#include "test/support/meshbox.h"
#include "test/support/process.h"

namespace meshbox::test {

/// A port nothing listens on right now (bound on 127.0.0.1:0, then released).
uint16_t free_port();

struct MeshOptions {
  std::vector<std::string> paths = {};  // config files or directories
  std::string state_dir = {};           // default: DIR/state
  int workers = 2;
  std::vector<std::string> flags = {};
  std::string log_level = "debug";
};

class Mesh {
 public:
  Mesh(TempDir& dir, MeshOptions opts);
  /// The admin API address, "127.0.0.1:PORT".
  const std::string& admin() const { return admin_; }
  /// A listener's bound address by name ("127.0.0.1_8080"); fails the test if absent.
  std::string listener(const std::string& name) const;
  /// The address of listener `name` as `meshbox get routes -o json` shows it (sidecar
  /// listeners, which appear once their workload runs), polled for until `deadline`; "" if
  /// it never showed.
  std::string listener_address(const std::string& name, Deadline deadline = Deadline(10s));
  const std::map<std::string, std::string>& listeners() const { return listeners_; }
  const std::string& state_dir() const { return opts_.state_dir; }
  Process& process() { return proc_; }
  std::string log(size_t max_bytes = 16384) const;
  /// `meshbox ARGS --state-dir STATE` to completion.
  RunResult cli(std::vector<std::string> args, Deadline deadline = Deadline(kCliTimeout));

  static constexpr std::chrono::milliseconds kCliTimeout{30'000};

 private:
  TempDir& dir_;
  MeshOptions opts_;
  std::string log_path_;
  std::string command_;
  std::optional<ScopedFailureLog> failure_log_;
  Process proc_;
  std::string admin_;
  std::map<std::string, std::string> listeners_;
};

/// A config with one gateway on 127.0.0.1:`gateway_port` routing every request to the
/// service "httpbin" (port 8000) whose one workload is `backend` ("127.0.0.1:PORT").
std::string gateway_config(uint16_t gateway_port, const std::string& backend);

/// A config with one gateway "edge" on 127.0.0.1:`gateway_port` sending host "web" to the
/// service "web" (port 8000), whose workload "web-v1" (labels version = v1, service account
/// web-sa) is meshbox-httpbin behind a sidecar, in service once its health check passes (so
/// no request meets an app that is still starting).
std::string web_v1_config(uint16_t gateway_port);

}  // namespace meshbox::test
