// Tests for plane/control/supervisor.h: the pure policy (back-off, line splitting, ${PORT},
// instance names, the child's environment, what counts as a change), then real child
// processes (/bin/sh) on a Loop: output to log files, restarts with back-off, stop with
// SIGTERM then SIGKILL, reconciliation on config changes, ports picked once, the process
// group killed with its leader, nothing left running or unreaped. And the registry side:
// a process's endpoint with a health check waits for its first passed check. Back-off and
// grace periods are shortened to tens of milliseconds; every wait is run_until with a
// deadline. Every test ends with the loop closed clean.
#include "plane/control/supervisor.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <doctest/doctest.h>

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "core/loop/loop.h"
#include "core/loop/tcp_listener.h"
#include "plane/config/error.h"
#include "plane/config/host_index.h"
#include "plane/config/load.h"
#include "plane/control/registry.h"
#include "test/support/files.h"
#include "test/support/test_loop.h"

namespace meshbox::control {
namespace {

using namespace std::chrono_literals;
using loop::run_until;
using test::TempDir;

config::Workload workload(const std::string& name, std::vector<std::string> command,
                          uint32_t replicas = 1) {
  config::Workload w;
  w.name = name;
  w.service = "api";
  w.command = std::move(command);
  w.replicas = replicas;
  return w;
}

config::Workload shell(const std::string& name, const std::string& script, uint32_t replicas = 1) {
  return workload(name, {"/bin/sh", "-c", script}, replicas);
}

/// True while a process with this pid runs (a zombie waiting for its parent, or for init, is
/// dead already).
bool alive(int pid) {
  if (pid <= 0) return false;
  auto stat = test::read_file("/proc/" + std::to_string(pid) + "/stat");
  if (!stat) return false;
  size_t paren = stat->rfind(')');
  return paren != std::string::npos && paren + 2 < stat->size() && (*stat)[paren + 2] != 'Z';
}

std::string read_all(const std::string& path) {
  return test::read_file(path).value_or("");
}

struct Fixture {
  explicit Fixture(SupervisorOptions opts = {}) {
    opts.log_dir = dir.path() + "/logs";
    opts.echo_fd = -1;
    opts.environment = {"PATH=/usr/bin:/bin", "KEEP=1"};
    opts.backoff = {.initial_ms = 40, .max_ms = 320, .reset_after_ms = 2'000};
    if (opts.stop_grace_ms == 5'000) opts.stop_grace_ms = 200;
    sup = std::make_unique<Supervisor>(loop, opts, [this] { ++changes; });
  }
  ~Fixture() {
    sup.reset();
    CHECK(loop.close().is_ok());
  }
  const InstanceStatus* find(const std::string& instance) {
    statuses = sup->status();
    for (const auto& s : statuses)
      if (s.instance == instance) return &s;
    return nullptr;
  }
  bool stop_all() {
    bool done = false;
    sup->stop_all([&] { done = true; });
    return run_until(
        loop, [&] { return done; }, 10s);
  }

  TempDir dir;
  loop::Loop loop;
  std::unique_ptr<Supervisor> sup;
  int changes = 0;
  std::vector<InstanceStatus> statuses;
};

// ---------------------------------------------------------------------------------------
// Policy

TEST_CASE("supervisor: back-off doubles from 1 s to 30 s and starts over after a 10 s run") {
  Backoff b;
  std::vector<uint64_t> seen;
  for (int i = 0; i < 7; ++i)
    seen.push_back(b.next(100));
  CHECK(seen == std::vector<uint64_t>{1000, 2000, 4000, 8000, 16000, 30000, 30000});
  CHECK(b.next(9'999) == 30000);
  CHECK(b.next(10'000) == 1000);  // it ran long enough: a fresh start
  CHECK(b.next(0) == 2000);
  b.reset();
  CHECK(b.next(0) == 1000);
}

TEST_CASE("supervisor: lines are joined across reads, cut when endless, flushed at the end") {
  LineSplitter s;
  std::vector<std::string> lines;
  auto on = [&](std::string_view l) { lines.emplace_back(l); };
  s.feed("one\ntw", on);
  CHECK(lines == std::vector<std::string>{"one"});
  s.feed("o\r\nthr", on);
  s.feed("ee", on);
  CHECK(lines == std::vector<std::string>{"one", "two"});
  s.feed("\n\n", on);
  CHECK(lines == std::vector<std::string>{"one", "two", "three", ""});
  s.feed("tail", on);
  s.finish(on);
  CHECK(lines.back() == "tail");
  s.finish(on);  // nothing left
  CHECK(lines.size() == 5);

  lines.clear();
  std::string big(LineSplitter::kMaxLine * 2 + 10, 'x');
  s.feed(big.substr(0, 100), on);
  s.feed(big.substr(100) + "\nnext\n", on);
  REQUIRE(lines.size() == 4);
  CHECK(lines[0].size() == LineSplitter::kMaxLine);
  CHECK(lines[1].size() == LineSplitter::kMaxLine);
  CHECK(lines[2] == "xxxxxxxxxx");
  CHECK(lines[3] == "next");
}

TEST_CASE("supervisor: ${PORT}, instance names, argv and environment") {
  CHECK(expand_port("127.0.0.1:${PORT}", 8080) == "127.0.0.1:8080");
  CHECK(expand_port("${PORT}${PORT}-$PORT-${PORT", 1) == "11-$PORT-${PORT");
  CHECK(expand_port("", 1).empty());

  config::Workload w = workload("web", {"srv", "--listen", ":${PORT}"});
  CHECK(instance_names(w) == std::vector<std::string>{"web"});
  w.replicas = 3;
  CHECK(instance_names(w) == std::vector<std::string>{"web-0", "web-1", "web-2"});
  w.replicas = 0;
  CHECK(instance_names(w).empty());
  CHECK(instance_names(workload("static", {})).empty());

  CHECK(instance_args(w, 9000) == std::vector<std::string>{"srv", "--listen", ":9000"});

  w.env = {{"UPSTREAM", "http://127.0.0.1:${PORT}/"}, {"HOME", "/srv"}};
  auto env = instance_env({"PATH=/bin", "HOME=/root", "PORT=1", "EMPTY="}, w, "web-1", 9000);
  CHECK(env == std::vector<std::string>{"PATH=/bin", "HOME=/srv", "PORT=9000",
                                        "EMPTY=", "UPSTREAM=http://127.0.0.1:9000/",
                                        "MESHBOX_WORKLOAD=web-1", "MESHBOX_SERVICE=api"});
  // With a sidecar: the app's proxy is its outbound listener, loopback excepted.
  auto injected = instance_env({"http_proxy=http://corp:3128"}, w, "web-1", 9000, 15001);
  CHECK(injected == std::vector<std::string>{
                        "http_proxy=http://127.0.0.1:15001", "HOME=/srv",
                        "UPSTREAM=http://127.0.0.1:9000/", "PORT=9000", "MESHBOX_WORKLOAD=web-1",
                        "MESHBOX_SERVICE=api", "HTTP_PROXY=http://127.0.0.1:15001",
                        "NO_PROXY=localhost,127.0.0.1,::1", "no_proxy=localhost,127.0.0.1,::1"});
}

TEST_CASE("supervisor: what the process sees restarts it; endpoint-only fields do not") {
  config::Workload a = workload("web", {"srv"});
  config::Workload b = a;
  b.labels["version"] = "v2";
  b.weight = 5;
  b.locality = "eu/a";
  b.replicas = 3;
  b.health = config::HealthCheck{};
  CHECK(same_process(a, b));
  for (auto change : std::vector<std::function<void(config::Workload&)>>{
           [](config::Workload& w) { w.command.push_back("-v"); },
           [](config::Workload& w) { w.env["X"] = "1"; },
           [](config::Workload& w) { w.working_dir = "/tmp"; },
           [](config::Workload& w) { w.port = 9000; },
           [](config::Workload& w) { w.address = "127.0.0.2"; },
           [](config::Workload& w) { w.service = "other"; },
           [](config::Workload& w) { w.inject = false; },
       }) {
    config::Workload c = a;
    change(c);
    CHECK_FALSE(same_process(a, c));
  }
}

// The findings of a config, one formatted line each ("" when clean).
std::string findings_of(std::string_view toml, config::Config* out = nullptr) {
  config::Loaded l = config::load_string(toml);
  std::string text;
  for (const auto& f : l.findings)
    text += config::format(f) + "\n";
  if (out) *out = std::move(l.config);
  return text;
}

TEST_CASE("supervisor: replicas in the config: decoded, checked") {
  const std::string svc = "[[service]]\nname = \"api\"\nport = 80\n\n";
  config::Config c;
  CHECK(findings_of(svc + "[[workload]]\nname = \"web\"\nservice = \"api\"\ncommand = [\"srv\"]\n"
                          "replicas = 3\n\n"
                          "[[workload]]\nname = \"one\"\nservice = \"api\"\ncommand = [\"srv\"]\n",
                    &c) == "");
  REQUIRE(c.workloads.size() == 2);
  CHECK(c.workloads[0].replicas == 3);
  CHECK(c.workloads[1].replicas == 1);  // the default

  // Out of range, or the wrong type.
  CHECK(findings_of(svc + "[[workload]]\nservice = \"api\"\ncommand = [\"srv\"]\n"
                          "replicas = 1001\n")
            .find("replicas: expected a number of replicas") != std::string::npos);
  CHECK(findings_of(svc + "[[workload]]\nservice = \"api\"\ncommand = [\"srv\"]\n"
                          "replicas = \"2\"\n")
            .find("replicas") != std::string::npos);
  // No command: nothing to replicate.
  CHECK(findings_of(svc + "[[workload]]\nservice = \"api\"\nport = 9000\nreplicas = 2\n")
            .find("replicas needs a command") != std::string::npos);
  // A fixed port cannot be shared by replicas.
  CHECK(findings_of(svc + "[[workload]]\nservice = \"api\"\ncommand = [\"srv\"]\n"
                          "port = 9000\nreplicas = 2\n")
            .find("leave port unset") != std::string::npos);
  // web with 2 replicas runs web-0 and web-1: a workload named web-1 would clash.
  std::string clash = findings_of(
      svc +
      "[[workload]]\nname = \"web\"\nservice = \"api\"\ncommand = [\"srv\"]\nreplicas = 2\n\n"
      "[[workload]]\nname = \"web-1\"\nservice = \"api\"\ncommand = [\"srv\"]\n");
  CHECK(clash.find("its process \"web-1\" has the name of a process of workload \"web\"") !=
        std::string::npos);
  // 0 replicas: valid, runs nothing.
  CHECK(findings_of(svc + "[[workload]]\nservice = \"api\"\ncommand = [\"srv\"]\nreplicas = 0\n") ==
        "");
}

// ---------------------------------------------------------------------------------------
// Processes

TEST_CASE("supervisor: runs the command with its port and environment; output goes to the log") {
  Fixture f;
  // meshbox expands ${PORT} in the argument; $PORT is the shell's, from the environment.
  f.sup->set_workloads({shell("web",
                              "echo \"port=$PORT arg=${PORT} name=$MESHBOX_WORKLOAD "
                              "svc=$MESHBOX_SERVICE keep=$KEEP\"; printf 'no newline'; "
                              "echo oops >&2; exec sleep 30")});
  const InstanceStatus* s = f.find("web");
  REQUIRE(s != nullptr);
  CHECK(s->state == InstanceState::Running);
  CHECK(s->port > 0);
  CHECK(s->pid > 0);
  uint32_t port = s->port;
  int pid = s->pid;
  REQUIRE(f.sup->running().size() == 1);
  CHECK(f.sup->running()[0].port == port);
  CHECK(f.sup->running()[0].workload->name == "web");

  std::string log = f.dir.path() + "/logs/web.log";
  CHECK(run_until(
      f.loop, [&] { return read_all(log).find("oops\n") != std::string::npos; }, 10s));
  std::string text = read_all(log);
  CHECK(text.find(fmt::format("port={0} arg={0} name=web svc=api keep=1", port)) !=
        std::string::npos);
  CHECK(text.find("no newline") == std::string::npos);  // a partial line waits…

  REQUIRE(f.stop_all());
  CHECK_FALSE(alive(pid));
  CHECK(read_all(log).find("no newline\n") != std::string::npos);  // …until the end
  s = f.find("web");
  REQUIRE(s != nullptr);
  CHECK(s->state == InstanceState::Stopped);
  CHECK(s->pid == 0);
  CHECK(s->last_exit.find("signal 15") != std::string::npos);
  CHECK(f.sup->running().empty());
}

TEST_CASE("supervisor: a command that fails at once is restarted with growing back-off") {
  Fixture f;
  f.sup->set_workloads({shell("crash", "echo crashing; exit 3")});
  const InstanceStatus* s = nullptr;
  CHECK(run_until(
      f.loop,
      [&] {
        s = f.find("crash");
        return s && s->restarts >= 3 && s->state == InstanceState::Backoff;
      },
      10s));
  REQUIRE(s != nullptr);
  CHECK(s->last_exit == "exit status 3");
  CHECK(s->pid == 0);
  CHECK(s->restart_in_ms > 0);
  // 40, 80, 160, 320 ms: not a busy loop. Over the next 500 ms at most two more starts.
  uint32_t before = s->restarts;
  auto until = std::chrono::steady_clock::now() + 500ms;
  run_until(
      f.loop, [&] { return std::chrono::steady_clock::now() >= until; }, 2s);
  s = f.find("crash");
  CHECK(s->restarts <= before + 2);
  std::string log = read_all(f.dir.path() + "/logs/crash.log");
  CHECK(log.find("crashing\ncrashing\ncrashing\n") != std::string::npos);
  REQUIRE(f.stop_all());
  CHECK(f.find("crash")->state == InstanceState::Stopped);
}

TEST_CASE("supervisor: a program that cannot run is retried, its error shown") {
  Fixture f;
  f.sup->set_workloads({workload("ghost", {"/nonexistent/program"})});
  const InstanceStatus* s = f.find("ghost");
  REQUIRE(s != nullptr);
  CHECK(s->state == InstanceState::Backoff);
  CHECK(s->last_exit.find("cannot run /nonexistent/program") != std::string::npos);
  CHECK(run_until(
      f.loop, [&] { return f.find("ghost")->restarts >= 1; }, 10s));
  REQUIRE(f.stop_all());
}

TEST_CASE("supervisor: a killed process restarts on the same port; the endpoint set follows") {
  Fixture f;
  f.sup->set_workloads({shell("web", "exec sleep 30", 2)});
  REQUIRE(f.sup->running().size() == 2);
  REQUIRE(f.find("web-0"));
  REQUIRE(f.find("web-1"));
  uint32_t port0 = f.find("web-0")->port, port1 = f.find("web-1")->port;
  int pid0 = f.find("web-0")->pid;
  CHECK(port0 != port1);
  int changes = f.changes;

  REQUIRE(::kill(pid0, SIGKILL) == 0);
  CHECK(run_until(
      f.loop, [&] { return f.sup->running().size() == 1; }, 10s));
  CHECK(f.find("web-0")->state == InstanceState::Backoff);
  CHECK(f.find("web-0")->last_exit.find("signal 9") != std::string::npos);
  CHECK(f.changes > changes);
  CHECK(run_until(
      f.loop, [&] { return f.sup->running().size() == 2; }, 10s));
  CHECK(f.find("web-0")->pid != pid0);
  CHECK(f.find("web-0")->port == port0);
  CHECK(f.find("web-0")->restarts == 1);
  CHECK(f.find("web-1")->restarts == 0);
  REQUIRE(f.stop_all());
}

TEST_CASE("supervisor: reconciling keeps, restarts, scales and stops instances") {
  Fixture f;
  config::Workload web = shell("web", "exec sleep 30");
  config::Workload other = shell("other", "exec sleep 30");
  f.sup->set_workloads({web, other});
  int web_pid = f.find("web")->pid;
  int other_pid = f.find("other")->pid;
  uint32_t web_port = f.find("web")->port;

  // Labels only: same process, new spec for the endpoint.
  web.labels["version"] = "v2";
  f.sup->set_workloads({web, other});
  CHECK(f.find("web")->pid == web_pid);
  CHECK(f.sup->running().size() == 2);
  for (const auto& r : f.sup->running())
    if (r.instance == "web") CHECK(r.workload->labels.at("version") == "v2");

  // env: stopped, then started again on the same picked port.
  web.env["MODE"] = "fast";
  f.sup->set_workloads({web, other});
  CHECK(f.find("web")->state == InstanceState::Stopping);
  CHECK(f.sup->running().size() == 1);  // its endpoint leaves at once
  CHECK(run_until(
      f.loop, [&] { return f.find("web")->state == InstanceState::Running; }, 10s));
  CHECK(f.find("web")->pid != web_pid);
  CHECK_FALSE(alive(web_pid));
  CHECK(f.find("web")->port == web_port);
  CHECK(f.find("other")->pid == other_pid);

  // Removed: stopped and forgotten.
  f.sup->set_workloads({web});
  CHECK(run_until(
      f.loop, [&] { return f.find("other") == nullptr; }, 10s));
  CHECK_FALSE(alive(other_pid));

  // replicas 2 → 3 keeps NAME-0 and NAME-1; 1 → 2 renames (NAME stops, NAME-0, NAME-1 start).
  web.replicas = 2;
  f.sup->set_workloads({web});
  CHECK(run_until(
      f.loop, [&] { return f.sup->running().size() == 2 && !f.find("web"); }, 10s));
  int pid0 = f.find("web-0")->pid;
  web.replicas = 3;
  f.sup->set_workloads({web});
  CHECK(f.sup->running().size() == 3);
  CHECK(f.find("web-0")->pid == pid0);
  REQUIRE(f.stop_all());
  for (const auto& s : f.sup->status())
    CHECK(s.state == InstanceState::Stopped);
}

TEST_CASE("supervisor: SIGKILL after the grace; the process group goes with its leader") {
  SupervisorOptions opts;
  opts.stop_grace_ms = 150;
  Fixture f(opts);
  // Ignores SIGTERM; starts a grandchild in its group and tells us its pid.
  f.sup->set_workloads({shell("stubborn", "trap '' TERM; sleep 30 & echo child=$!; wait")});
  std::string log = f.dir.path() + "/logs/stubborn.log";
  CHECK(run_until(
      f.loop, [&] { return read_all(log).find("child=") != std::string::npos; }, 10s));
  std::string text = read_all(log);
  int grandchild = std::atoi(text.substr(text.find("child=") + 6).c_str());
  int pid = f.find("stubborn")->pid;
  REQUIRE(alive(grandchild));

  auto start = std::chrono::steady_clock::now();
  f.sup->set_workloads({});
  CHECK(run_until(
      f.loop, [&] { return f.find("stubborn") == nullptr; }, 10s));
  CHECK(std::chrono::steady_clock::now() - start >= 140ms);  // it waited for the grace
  CHECK_FALSE(alive(pid));
  // The grandchild was SIGTERMed with the group (sleep does not ignore it) or SIGKILLed.
  // It is not our child, so init reaps it: wait until it is gone.
  CHECK(run_until(
      f.loop, [&] { return !alive(grandchild); }, 10s));
}

TEST_CASE("supervisor: a process that exits takes what it started in its group along") {
  Fixture f;
  f.sup->set_workloads({shell("leaver", "trap '' TERM; sleep 30 & echo child=$!; exit 0")});
  std::string log = f.dir.path() + "/logs/leaver.log";
  CHECK(run_until(
      f.loop, [&] { return read_all(log).find("child=") != std::string::npos; }, 10s));
  std::string text = read_all(log);
  int grandchild = std::atoi(text.substr(text.find("child=") + 6).c_str());
  CHECK(run_until(
      f.loop, [&] { return !alive(grandchild); }, 10s));
  REQUIRE(f.stop_all());
}

TEST_CASE("supervisor: destroying it kills and reaps what still runs") {
  TempDir dir;
  loop::Loop loop;
  int pid = 0;
  {
    SupervisorOptions opts;
    opts.echo_fd = -1;
    Supervisor sup(loop, opts, [] {});
    sup.set_workloads({shell("web", "exec sleep 30")});
    pid = sup.status().at(0).pid;
    REQUIRE(alive(pid));
  }
  CHECK_FALSE(alive(pid));  // killed and reaped: not even a zombie
  CHECK(::waitpid(pid, nullptr, WNOHANG) == -1);
  CHECK(loop.close().is_ok());
}

TEST_CASE("supervisor: a log file past its cap is rotated to .1") {
  SupervisorOptions opts;
  opts.max_log_bytes = 100;
  Fixture f(opts);
  f.sup->set_workloads({shell(
      "chatty", "for i in 1 2 3 4 5 6 7 8 9 10; do echo line-$i-0123456789; done; exec sleep 30")});
  std::string log = f.dir.path() + "/logs/chatty.log";
  CHECK(run_until(
      f.loop, [&] { return read_all(log).find("line-10-") != std::string::npos; }, 10s));
  std::string now = read_all(log), old = read_all(log + ".1");
  CHECK(now.size() <= 100);
  CHECK(old.size() <= 100);
  CHECK(old.find("line-") != std::string::npos);
  CHECK(now.find("line-1-") == std::string::npos);  // went with an older .1
  REQUIRE(f.stop_all());
}

TEST_CASE("supervisor: a fixed port is used as given; replicas need their own") {
  Fixture f;
  config::Workload w = shell("fixed", "exec sleep 30");
  w.port = 45678;
  f.sup->set_workloads({w});
  CHECK(f.find("fixed")->port == 45678);
  REQUIRE(f.stop_all());
}

// ---------------------------------------------------------------------------------------
// Registry: endpoints of running processes

TEST_CASE("registry: a process endpoint with a health check waits for its first pass") {
  loop::Loop loop;
  {
    int changes = 0;
    Registry registry(loop, [&] { ++changes; });
    config::Config cfg;
    config::HostIndex index(cfg);

    // A port with nothing listening yet.
    auto probe_fd = loop::bind_reuseport(*loop::Address::parse("127.0.0.1:0"));
    REQUIRE(probe_fd.has_value());
    uint16_t port = loop::bound_address(*probe_fd)->port();
    ::close(*probe_fd);

    config::Workload checked = workload("web", {"srv"});
    checked.address = "0.0.0.0";
    checked.health = config::HealthCheck{};
    checked.health->tcp = true;
    checked.health->interval = std::chrono::milliseconds(60'000);  // the startup pace applies
    config::Workload plain = workload("plain", {"srv"});

    Endpoint ep = instance_endpoint(index, checked, port, "web-0");
    CHECK(ep.address == "127.0.0.1");
    CHECK(ep.source == "workload/default/web-0");
    CHECK(ep.wait_for_first_check);
    registry.set_instance_endpoints({ep, instance_endpoint(index, plain, 1, "plain")});
    REQUIRE(registry.endpoints().size() == 1);  // plain: no check, listed at once
    CHECK(registry.endpoints()[0].source == "workload/default/plain");

    // Still refused after a few probes: still out.
    auto until = std::chrono::steady_clock::now() + 500ms;
    run_until(
        loop, [&] { return std::chrono::steady_clock::now() >= until; }, 2s);
    CHECK(registry.endpoints().size() == 1);

    // It listens: in within a few startup probes.
    auto fd = loop::bind_reuseport(*loop::Address::parse("127.0.0.1:" + std::to_string(port)));
    REQUIRE(fd.has_value());
    auto listener = loop::TcpListener::open(loop, *fd, [](loop::TcpConnPtr) {});
    REQUIRE(listener.has_value());
    int before = changes;
    CHECK(run_until(
        loop, [&] { return registry.endpoints().size() == 2; }, 5s));
    CHECK(run_until(
        loop, [&] { return changes > before; }, 5s));
    CHECK(registry.endpoints()[1].healthy);

    // The process exits: its endpoint leaves with it.
    registry.set_instance_endpoints({instance_endpoint(index, plain, 1, "plain")});
    CHECK(registry.endpoints().size() == 1);
    (*listener)->close();
  }
  CHECK(loop.close().is_ok());
}

TEST_CASE("registry: workloads with a command get no endpoint from the config") {
  config::Config cfg;
  config::Service svc;
  svc.name = "api";
  svc.ports.push_back(config::Port{8000, "http", config::Protocol::Http, 0});
  cfg.services.push_back(svc);
  config::Workload with_command = workload("run", {"srv"});
  with_command.port = 9001;
  config::Workload without = workload("static", {});
  without.port = 9002;
  cfg.workloads = {with_command, without};
  auto eps = endpoints_from_config(cfg);
  REQUIRE(eps.size() == 1);
  CHECK(eps[0].port == 9002);
  CHECK(eps[0].source == "workload/default/static");
  CHECK_FALSE(eps[0].wait_for_first_check);
}

}  // namespace
}  // namespace meshbox::control
