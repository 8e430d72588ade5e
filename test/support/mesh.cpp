#include "test/support/mesh.h"

#include "test/support/json.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace meshbox::test {

namespace {

using namespace std::chrono_literals;
constexpr auto kStartupTimeout = 15s;

std::string join_args(const std::vector<std::string>& argv) {
  std::string s;
  for (const auto& a : argv)
    s += (s.empty() ? "" : " ") + a;
  return s;
}

}  // namespace

uint16_t free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0)
    throw std::runtime_error("free_port: cannot bind 127.0.0.1:0");
  ::close(fd);
  return ntohs(a.sin_port);
}

Mesh::Mesh(TempDir& dir, MeshOptions opts) : dir_(dir), opts_(std::move(opts)) {
  static int serial = 0;
  std::string id = std::to_string(++serial);
  if (opts_.state_dir.empty()) opts_.state_dir = dir.file("state");
  std::string ready = dir.file("mesh" + id + ".ready");
  log_path_ = dir.file("mesh" + id + ".log");
  SpawnOptions spawn;
  spawn.argv = {meshbox_bin(), "run"};
  spawn.argv.insert(spawn.argv.end(), opts_.paths.begin(), opts_.paths.end());
  std::vector<std::string> flags = {
      "--state-dir",  opts_.state_dir, "--admin",   "127.0.0.1:0",
      "--ready-file", ready,           "--workers", std::to_string(opts_.workers),
      "--log-level",  opts_.log_level};
  spawn.argv.insert(spawn.argv.end(), flags.begin(), flags.end());
  spawn.argv.insert(spawn.argv.end(), opts_.flags.begin(), opts_.flags.end());
  spawn.stdout_path = spawn.stderr_path = log_path_;
  command_ = join_args(spawn.argv);
  failure_log_.emplace(command_, log_path_);
  proc_ = Process(spawn);
  // The ready file appears (renamed into place) once every worker serves the first config.
  Deadline deadline(kStartupTimeout);
  std::optional<std::string> text;
  while (!deadline.expired()) {
    text = read_file(ready);
    if (text && !text->empty()) break;
    if (proc_.exited())
      throw std::runtime_error("meshbox run exited before it was ready: " + command_ +
                               "\n--- log ---\n" + read_file_tail(log_path_));
    std::this_thread::sleep_for(5ms);  // a file has no event to wait on: poll
  }
  if (!text || text->empty())
    throw std::runtime_error("meshbox run did not become ready: " + command_ + "\n--- log ---\n" +
                             read_file_tail(log_path_));
  std::istringstream in(*text);
  std::string word;
  while (in >> word) {
    if (word == "admin") {
      in >> admin_;
    } else if (word == "listener") {
      std::string name, addr;
      in >> name >> addr;
      listeners_[name] = addr;
    }
  }
}

std::string Mesh::listener(const std::string& name) const {
  auto it = listeners_.find(name);
  if (it == listeners_.end())
    throw std::runtime_error("no listener " + name + " in the ready file");
  return it->second;
}

std::string Mesh::log(size_t max_bytes) const {
  return "--- mesh: " + command_ + " ---\n" + read_file_tail(log_path_, max_bytes);
}

RunResult Mesh::cli(std::vector<std::string> args, Deadline deadline) {
  args.push_back("--state-dir");
  args.push_back(opts_.state_dir);
  return run_meshbox(args, dir_, deadline);
}

std::string gateway_config(uint16_t gateway_port, const std::string& backend) {
  std::string host = backend.substr(0, backend.rfind(':'));
  std::string port = backend.substr(backend.rfind(':') + 1);
  return "[[service]]\n"
         "name = \"httpbin\"\n"
         "port = 8000\n"
         "\n"
         "[[workload]]\n"
         "service = \"httpbin\"\n"
         "address = \"" +
         host +
         "\"\n"
         "port = " +
         port +
         "\n"
         "\n"
         "[[gateway]]\n"
         "name = \"edge\"\n"
         "servers = [{ port = " +
         std::to_string(gateway_port) +
         ", bind = \"127.0.0.1\", protocol = \"http\", hosts = [\"*\"] }]\n"
         "\n"
         "[[virtual_service]]\n"
         "name = \"httpbin\"\n"
         "hosts = [\"*\"]\n"
         "gateways = [\"edge\"]\n"
         "http = [{ route = [{ destination = { host = \"httpbin\" } }] }]\n";
}

std::string web_v1_config(uint16_t gateway_port) {
  return "[[service]]\nname = \"web\"\nport = 8000\n\n"
         "[[workload]]\nname = \"web-v1\"\nservice = \"web\"\nservice_account = \"web-sa\"\n"
         "labels = { version = \"v1\" }\ncommand = [\"" +
         httpbin_bin() +
         "\", \"--listen\", \"127.0.0.1:${PORT}\", \"--name\", \"web\"]\n"
         "health = { http = \"/\", interval = \"100ms\" }\n\n"
         "[[gateway]]\nname = \"edge\"\nservers = [{ port = " +
         std::to_string(gateway_port) +
         ", bind = \"127.0.0.1\", protocol = \"http\", hosts = [\"*\"] }]\n\n"
         "[[virtual_service]]\nname = \"web\"\nhosts = [\"web\"]\ngateways = [\"edge\"]\n"
         "http = [{ route = [{ destination = { host = \"web\" } }] }]\n";
}

std::string Mesh::listener_address(const std::string& name, Deadline deadline) {
  do {
    RunResult r = cli({"get", "routes", "-o", "json"});
    if (std::optional<Json> j = parse_json(r.out)) {
      for (const Json& route : j->array) {
        const Json* l = route.get("listener");
        const Json* a = route.get("address");
        if (l && a && l->string == name) return a->string;
      }
    }
    poll_pause(20ms);
  } while (!deadline.expired());
  return "";
}

}  // namespace meshbox::test
