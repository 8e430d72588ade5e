#include "test/support/meshbox.h"

#include <unistd.h>

#include "test/support/http_response.h"
#include "test/support/json.h"

#include <poll.h>
#include <sys/resource.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

extern char** environ;

namespace meshbox::test {

namespace {

constexpr auto kStartupTimeout = 10s;

std::string env_or_throw(const char* name) {
  const char* v = ::getenv(name);
  if (!v || !*v)
    throw std::runtime_error(std::string(name) + " is not set: run the tests with `meson test`");
  return v;
}

// The inherited environment with `extra` NAME=VALUE entries added or replacing.
std::vector<std::string> environment_with(const std::vector<std::string>& extra) {
  std::vector<std::string> env;
  auto name_of = [](std::string_view kv) { return kv.substr(0, kv.find('=')); };
  for (char** e = environ; *e; ++e) {
    std::string_view kv(*e);
    bool replaced = false;
    for (const auto& x : extra)
      replaced |= name_of(x) == name_of(kv);
    if (!replaced) env.emplace_back(kv);
  }
  env.insert(env.end(), extra.begin(), extra.end());
  return env;
}

std::string join(const std::vector<std::string>& argv) {
  std::string s;
  for (const auto& a : argv)
    s += (s.empty() ? "" : " ") + a;
  return s;
}

}  // namespace

std::string meshbox_bin() {
  return env_or_throw("MESHBOX_BIN");
}
std::string httpbin_bin() {
  return env_or_throw("HTTPBIN_BIN");
}

std::string source_dir() {
  namespace fs = std::filesystem;
  if (const char* s = std::getenv("MESHBOX_SOURCE_DIR"); s && *s) return s;
  fs::path file = __FILE__;  // test/support/meshbox.cpp
  if (file.is_relative()) file = fs::path(meshbox_bin()).parent_path().parent_path() / file;
  return fs::weakly_canonical(file).parent_path().parent_path().parent_path().string();
}

std::optional<std::string> wait_for_ready_file(const std::string& path, Process& proc,
                                               Deadline deadline) {
  for (;;) {
    if (auto text = read_file(path); text && !text->empty() && text->back() == '\n') {
      std::string first = text->substr(0, text->find('\n'));
      return first;
    }
    if (proc.exited() || deadline.expired()) return std::nullopt;
    poll_pause();
  }
}

int64_t proc_status_kib(pid_t pid, const std::string& field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.starts_with(field + ":")) {
      std::istringstream s(line.substr(field.size() + 1));
      int64_t kib = -1;
      s >> kib;
      return kib;
    }
  }
  return -1;
}

uint64_t raise_fd_limit(uint64_t want) {
  rlimit rl{};
  ::getrlimit(RLIMIT_NOFILE, &rl);
  if (rl.rlim_cur < want) {
    rl.rlim_cur = rl.rlim_max == RLIM_INFINITY ? want : std::min<rlim_t>(want, rl.rlim_max);
    ::setrlimit(RLIMIT_NOFILE, &rl);
    ::getrlimit(RLIMIT_NOFILE, &rl);
  }
  return rl.rlim_cur;
}

RunResult run_meshbox(const std::vector<std::string>& args, TempDir& dir, Deadline deadline) {
  static int serial = 0;
  std::string base = dir.file("run" + std::to_string(++serial));
  SpawnOptions opts;
  opts.argv = {meshbox_bin()};
  opts.argv.insert(opts.argv.end(), args.begin(), args.end());
  opts.stdout_path = base + ".out";
  opts.stderr_path = base + ".err";
  Process proc(opts);
  RunResult r;
  r.status = proc.wait(deadline);
  r.out = read_file(opts.stdout_path).value_or("");
  r.err = read_file(opts.stderr_path).value_or("");
  return r;
}

Httpbin::Httpbin(TempDir& dir, const std::string& name, const std::string& listen) {
  std::string ready = dir.file("httpbin-" + name + ".ready");
  log_path_ = dir.file("httpbin-" + name + ".log");
  SpawnOptions opts;
  ::unlink(ready.c_str());  // a restart must not read the last run's file
  opts.argv = {httpbin_bin(), "--listen", listen, "--name", name, "--ready-file", ready};
  opts.stdout_path = opts.stderr_path = log_path_;
  failure_log_.emplace("meshbox-httpbin " + name + " (" + log_path_ + ")", log_path_);
  proc_ = Process(opts);
  auto addr = wait_for_ready_file(ready, proc_, Deadline(kStartupTimeout));
  if (!addr) {
    throw std::runtime_error("meshbox-httpbin did not become ready: " + join(opts.argv) +
                             "\n--- log ---\n" + read_file_tail(log_path_));
  }
  address_ = *addr;
}

HttpbinStats Httpbin::stats() const {
  HttpbinStats st;
  HttpResponse r = exchange(
      address_, "GET /stats HTTP/1.1\r\nHost: httpbin\r\nConnection: close\r\n\r\n", Deadline(10s));
  auto j = parse_json(r.body);
  if (!r.complete || r.status != 200 || !j) return st;
  auto field = [&](const char* name) {
    const Json* v = j->get(name);
    return v && v->type == Json::Type::Number ? static_cast<int64_t>(v->number) : -1;
  };
  st.connections_total = field("connections_total");
  st.connections_active = field("connections_active");
  st.requests_total = field("requests_total");
  return st;
}

std::string Httpbin::log() const {
  return "--- httpbin log ---\n" + read_file_tail(log_path_);
}

Proxy::Proxy(TempDir& dir, const ProxyOptions& opts) {
  static int serial = 0;
  std::string id = std::to_string(++serial);
  std::string ready = dir.file("proxy" + id + ".ready");
  log_path_ = dir.file("proxy" + id + ".log");
  std::string to;
  for (const auto& t : opts.to)
    to += (to.empty() ? "" : ",") + t;
  SpawnOptions spawn;
  spawn.argv = {meshbox_bin(),  "proxy",
                "--listen",     "127.0.0.1:0",
                "--to",         to,
                "--ready-file", ready,
                "--workers",    std::to_string(opts.workers),
                "--log-level",  opts.log_level};
  if (opts.tcp) spawn.argv.push_back("--tcp");
  spawn.argv.insert(spawn.argv.end(), opts.flags.begin(), opts.flags.end());
  spawn.stdout_path = spawn.stderr_path = log_path_;
  if (!opts.env.empty()) spawn.env = environment_with(opts.env);
  command_ = join(spawn.argv);
  failure_log_.emplace(command_, log_path_);
  proc_ = Process(spawn);
  auto addr = wait_for_ready_file(ready, proc_, Deadline(kStartupTimeout));
  if (!addr) {
    throw std::runtime_error("meshbox proxy did not become ready: " + command_ + "\n--- log ---\n" +
                             read_file_tail(log_path_));
  }
  address_ = *addr;
}

std::string Proxy::log(size_t max_bytes) const {
  return "--- proxy: " + command_ + " ---\n" + read_file_tail(log_path_, max_bytes);
}

namespace {
ProxyOptions pointed_at(ProxyOptions opts, const std::string& upstream) {
  opts.to.insert(opts.to.begin(), upstream);
  return opts;
}
}  // namespace

ProxyFixture::ProxyFixture(ProxyOptions opts, const std::string& backend_name)
    : backend(dir, backend_name), proxy(dir, pointed_at(std::move(opts), backend.address())) {}

}  // namespace meshbox::test
