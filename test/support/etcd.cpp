#include "test/support/etcd.h"

#include <signal.h>
#include <unistd.h>

#include <stdexcept>

#include "test/support/curl.h"
#include "test/support/mesh.h"

namespace meshbox::test {

namespace {

std::string etcd_path() {
  return ::access("/usr/bin/etcd", X_OK) == 0 ? "/usr/bin/etcd" : "/usr/local/bin/etcd";
}

}  // namespace

bool etcd_installed() {
  return ::access("/usr/bin/etcd", X_OK) == 0 || ::access("/usr/local/bin/etcd", X_OK) == 0;
}

Etcd::Etcd(TempDir& dir, std::string name, std::string host)
    : dir_(dir),
      name_(std::move(name)),
      host_(std::move(host)),
      data_dir_(dir.file(name_ + ".data")),
      log_path_(dir.file(name_ + ".log")),
      client_port_(free_port()),
      peer_port_(free_port()) {
  while (peer_port_ == client_port_)
    peer_port_ = free_port();
}

Etcd::~Etcd() {
  if (proc_.running()) proc_.kill_and_wait();
}

std::string Etcd::endpoint() const {
  return host_ + ":" + std::to_string(client_port_);
}

void Etcd::start(Deadline deadline) {
  std::string client = "http://" + endpoint();
  std::string peer = "http://127.0.0.1:" + std::to_string(peer_port_);
  SpawnOptions spawn;
  spawn.argv = {etcd_path(),
                "--name",
                name_,
                "--data-dir",
                data_dir_,
                "--listen-client-urls",
                client,
                "--advertise-client-urls",
                client,
                "--listen-peer-urls",
                peer,
                "--initial-advertise-peer-urls",
                peer,
                "--initial-cluster",
                name_ + "=" + peer,
                "--initial-cluster-state",
                "new",
                "--log-level",
                "warn"};
  spawn.stdout_path = log_path_;
  spawn.stderr_path = log_path_;
  proc_ = Process(spawn);
  while (!deadline.expired()) {
    if (proc_.exited()) throw std::runtime_error("etcd exited at start:\n" + log_tail());
    auto r = curl_http({"-m", "1", client + "/health"}, deadline.min(2s));
    if (r.status == 200 && r.body.find("\"true\"") != std::string::npos) return;
    poll_pause(50ms);
  }
  throw std::runtime_error("etcd did not become healthy:\n" + log_tail());
}

void Etcd::stop() {
  if (!proc_.running()) return;
  proc_.signal(SIGTERM);
  if (!proc_.wait(Deadline(5s))) proc_.kill_and_wait();
}

void Etcd::kill() {
  if (proc_.running()) proc_.kill_and_wait();
}

std::string Etcd::post(const std::string& path, const std::string& json) {
  auto r = curl_http({"-m", "5", "-X", "POST", "-H", "Content-Type: application/json",
                      "--data-binary", json, "http://" + endpoint() + path},
                     Deadline(10s));
  if (r.status != 200)
    throw std::runtime_error("etcd " + path + ": " + r.run.summary() + " " + r.body);
  return r.body;
}

void Etcd::compact(int64_t revision) {
  post("/v3/kv/compaction",
       R"({"revision":")" + std::to_string(revision) + R"(","physical":true})");
}

}  // namespace meshbox::test
