// Etcd: a real etcd (Debian's etcd-server, /usr/bin/etcd) for one test, on 127.0.0.1 with
// free client and peer ports and a data dir of its own (never the system one). start() waits
// until /health answers; stop() ends it; start() again brings it back on the same ports and
// data dir (a restart). The destructor kills it. Single-threaded use.
#pragma once

#include <cstdint>
#include <string>

#include "test/support/deadline.h"
#include "test/support/files.h"
#include "test/support/process.h"

namespace meshbox::test {

/// Whether /usr/bin/etcd (or /usr/local/bin/etcd) exists: tests skip with a message without it.
bool etcd_installed();

class Etcd {
 public:
  /// Picks the ports and the data dir (under `dir`, named after `name`); starts nothing.
  /// `host`: the IP its client URL listens on (another address than 127.0.0.1 lets network
  /// namespaces reach it, e.g. a bridge's).
  Etcd(TempDir& dir, std::string name = "etcd", std::string host = "127.0.0.1");
  ~Etcd();
  Etcd(const Etcd&) = delete;
  Etcd& operator=(const Etcd&) = delete;

  /// Starts etcd and waits (until `deadline`) for GET /health to say true. Throws
  /// std::runtime_error with the log's tail when it does not come up.
  void start(Deadline deadline = Deadline(std::chrono::seconds(20)));
  /// SIGTERM, then SIGKILL if it has not exited within 5 s. The data dir stays.
  void stop();
  /// SIGKILL at once (a crash). The data dir stays.
  void kill();
  bool running() { return proc_.running() && !proc_.exited(); }

  /// "HOST:PORT" of the client URL (the v3 gateway).
  std::string endpoint() const;
  uint16_t client_port() const { return client_port_; }
  const std::string& data_dir() const { return data_dir_; }
  std::string log_tail() const { return read_file_tail(log_path_); }

  /// POST `json` to the gateway at `path` (e.g. "/v3/kv/compaction"); the reply body, or
  /// throws std::runtime_error on a curl failure or a non-200 status.
  std::string post(const std::string& path, const std::string& json);
  /// Compacts the history up to `revision` (physical: waits until it is done).
  void compact(int64_t revision);

 private:
  TempDir& dir_;
  std::string name_;
  std::string host_;
  std::string data_dir_;
  std::string log_path_;
  uint16_t client_port_ = 0;
  uint16_t peer_port_ = 0;
  Process proc_;
};

}  // namespace meshbox::test
