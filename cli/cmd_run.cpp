// meshbox run: the whole mesh in this process — control plane (store, registry, compiler,
// supervisor, admin API) and the proxy workers serving the config's gateways. SIGHUP or a
// change of the files under PATH reloads; SIGTERM/SIGINT stops the workload processes, then
// drains, and exits 0.
//
// Also `meshbox __workload-exec`, which every workload process runs first (see below).
#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/runtime.h"
#include "cli/serve.h"
#include "core/base/file.h"
#include "core/base/log.h"
#include "core/loop/loop.h"
#include "core/loop/signal.h"
#include "plane/control/control_plane.h"
#include "plane/control/locality.h"

namespace meshbox::cli {

namespace {

constexpr const char* kUsage = R"(usage: meshbox run [PATH...] [flags]

Runs the mesh: the control plane (config store, registry with health checks, compiler,
admin API) and the proxy workers, in one process. PATH is a .toml file or a directory of
them (see docs/config.md); without PATH, the config last stored in --state-dir is served.
Changes: edit the files (picked up within a second), send SIGHUP, or `meshbox apply`.
A config with any error is rejected whole; the running one stays. Workloads with a
`command` are started as child processes, restarted when they exit, and stopped (SIGTERM,
SIGKILL after 5s) before the proxies drain; their output goes to stderr as "[INSTANCE] ..."
and to STATE_DIR/logs/INSTANCE.log.

flags:
  --state-dir DIR        store, admin token and address (default ./.meshbox)
  --admin ADDR           admin API address (default 127.0.0.1:15000; port 0 picks one)
  --bind ADDR            gateway servers without `bind` listen here (default 0.0.0.0)
  --locality R/Z/S       this node's region/zone/subzone: locality load balancing prefers
                         endpoints near it (docs/mesh.md); default none
  --store etcd://HOST:PORT[,HOST:PORT…][/PREFIX]
                         a multi-node mesh: the config and the registry in etcd, shared by
                         every node under PREFIX (default /meshbox/default); docs/multinode.md
  --node NAME            this node's name in a multi-node mesh (required with --store)
  --node-address IP      where the other nodes reach this node's workloads (required with
                         --store); its sidecars' inbound listeners and, unless --bind says
                         otherwise, its gateways listen there
  --lease-ttl DURATION   how long a dead node's endpoints stay in etcd (default 10s)
  --mesh-key FILE        the key (64 hex characters, mode 0600) that seals the mesh's CA root
                         in etcd; every node needs the same one (or operator CA files)
  --workers N            proxy worker threads (default: cores)
  --ready-file PATH      written once every worker serves the first config: "admin ADDR"
                         and "listener NAME ADDR" lines
  --drain-timeout DUR    SIGTERM: time given to in-flight requests (default 10s)
  --no-watch             do not watch PATH for changes (SIGHUP still reloads)
  --no-cpu-pinning       do not pin each worker to its own CPU (pinned by default when
                         workers <= CPUs: a gateway → sidecar hop stays on one worker)
  --log-level LEVEL      trace, debug, info, warn, error, off (default info)
  -h, --help             this help
)";

const std::vector<FlagSpec> kFlags = {
    {"state-dir"},       {"admin"},     {"bind"},         {"locality"},
    {"store"},           {"node"},      {"node-address"}, {"lease-ttl"},
    {"mesh-key"},        {"workers"},   {"ready-file"},   {"drain-timeout"},
    {"no-watch", false}, {"log-level"}, {"help", false},  {"no-cpu-pinning", false},
};

int usage_error(const std::string& message) {
  fmt::print(stderr, "meshbox run: {}\nrun 'meshbox run --help' for usage\n", message);
  return 2;
}

// The environment a workload process starts from: meshbox's own.
std::vector<std::string> own_environment() {
  std::vector<std::string> out;
  for (char** e = environ; e && *e; ++e)
    out.emplace_back(*e);
  return out;
}

}  // namespace

// `meshbox __workload-exec PARENT_PID -- PROGRAM ARGS…`: the first thing every workload process
// runs (the supervisor puts it before the command). libuv's uv_spawn runs no code of ours
// between fork and exec, so this step asks the kernel to SIGKILL the process when the thread
// that started it ends (PR_SET_PDEATHSIG: meshbox's main thread, which runs the control loop
// for the whole life of `meshbox run`), so a workload never outlives a meshbox that crashed or
// was SIGKILLed. If meshbox died before the request took effect, the parent is no longer
// PARENT_PID: exit at once. Then exec PROGRAM, looked up in PATH; the pid stays the same.
//
// A captured instance (capture = "iptables", plane/control/netns.h) adds `--netns NAME`:
// enter the network namespace /run/netns/NAME, and `--hosts FILE`: in a mount namespace of
// its own (changes not propagated back), bind-mount FILE over /etc/hosts, as `ip netns exec`
// does with /etc/netns/NAME/hosts. Either failing is fatal: the app must never run uncaptured.
int cmd_workload_exec(int argc, char** argv) {
  std::string netns, hosts;
  int at = 3;
  while (at + 1 < argc && std::strcmp(argv[at], "--") != 0) {
    if (std::strcmp(argv[at], "--netns") == 0) {
      netns = argv[at + 1];
    } else if (std::strcmp(argv[at], "--hosts") == 0) {
      hosts = argv[at + 1];
    } else {
      break;
    }
    at += 2;
  }
  if (argc < at + 2 || std::strcmp(argv[at], "--") != 0) {
    fmt::print(stderr,
               "usage: meshbox __workload-exec PARENT_PID [--netns NAME] [--hosts FILE] -- "
               "PROGRAM [ARGS...]\n");
    return 2;
  }
  char** program = argv + at + 1;
  pid_t parent = static_cast<pid_t>(std::strtol(argv[2], nullptr, 10));
  if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0)
    fmt::print(stderr, "meshbox: PR_SET_PDEATHSIG: {}\n", std::strerror(errno));
  if (::getppid() != parent) return 1;
  if (!netns.empty()) {
    std::string path = "/run/netns/" + netns;
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0 || ::setns(fd, CLONE_NEWNET) != 0) {
      fmt::print(stderr, "meshbox: cannot enter network namespace {}: {}\n", netns,
                 std::strerror(errno));
      return 126;
    }
    ::close(fd);
  }
  if (!hosts.empty()) {
    if (::unshare(CLONE_NEWNS) != 0 ||
        ::mount(nullptr, "/", nullptr, MS_SLAVE | MS_REC, nullptr) != 0 ||
        ::mount(hosts.c_str(), "/etc/hosts", nullptr, MS_BIND, nullptr) != 0) {
      fmt::print(stderr, "meshbox: cannot bind-mount {} over /etc/hosts: {}\n", hosts,
                 std::strerror(errno));
      return 126;
    }
  }
  ::execvp(program[0], program);
  int err = errno;
  fmt::print(stderr, "meshbox: cannot run {}: {}\n", program[0], std::strerror(err));
  return err == ENOENT ? 127 : 126;  // the shell's codes
}

int cmd_run(int argc, char** argv) {
  if (wants_help(argc, argv)) {
    fmt::print("{}", kUsage);
    return 0;
  }
  auto args = Args::parse(argc, argv, 2, kFlags);
  if (!args) return usage_error(args.error().message());
  if (Status s = apply_log_level(*args); !s.is_ok()) return usage_error(s.message());
  control::ControlOptions copts;
  copts.config_paths = args->positional();
  if (auto v = args->get("state-dir")) copts.state_dir = *v;
  if (auto v = args->get("admin")) copts.admin_address = *v;
  if (auto v = args->get("bind")) copts.default_bind = *v;
  if (auto v = args->get("store")) {
    if (!v->starts_with("etcd://"))
      return usage_error("--store: expected etcd://HOST:PORT[,HOST:PORT…][/PREFIX]");
    copts.store_url = *v;
    copts.node = args->get("node").value_or("");
    copts.node_address = args->get("node-address").value_or("");
    if (copts.node.empty()) return usage_error("--store needs --node NAME");
    if (copts.node.find('/') != std::string::npos || copts.node.find('|') != std::string::npos)
      return usage_error("--node: a name without '/' or '|'");
    if (copts.node_address.empty()) return usage_error("--store needs --node-address IP");
    if (!args->get("bind")) copts.default_bind = copts.node_address;
    if (auto t = args->get("lease-ttl")) {
      auto ms = parse_duration_ms(*t);
      if (!ms || *ms < 1000) return usage_error("--lease-ttl: a duration of at least 1s");
      copts.lease_ttl_s = static_cast<int64_t>(*ms / 1000);
    }
    copts.mesh_key_file = args->get("mesh-key").value_or("");
  } else {
    for (const char* f : {"node", "node-address", "lease-ttl", "mesh-key"})
      if (args->get(f)) return usage_error(fmt::format("--{} needs --store etcd://…", f));
  }
  if (auto v = args->get("locality")) {
    if (!control::valid_locality(*v))
      return usage_error("--locality: want REGION[/ZONE[/SUBZONE]], got \"" + *v + "\"");
    copts.locality = *v;
  }
  copts.watch_files = !args->has("no-watch");
  copts.environment = own_environment();
  copts.workload_launcher = {"/proc/self/exe", "__workload-exec", std::to_string(::getpid()), "--"};
  auto workers_or = workers_flag(*args);
  if (!workers_or) return usage_error(workers_or.error().message());
  int workers = *workers_or;
  uint64_t drain_timeout_ms = 10'000;
  if (auto v = args->get("drain-timeout")) {
    auto ms = parse_duration_ms(*v);
    if (!ms) return usage_error("--drain-timeout: " + ms.error().message());
    drain_timeout_ms = *ms;
  }
  std::string ready_file = args->get("ready-file").value_or("");

  std::signal(SIGPIPE, SIG_IGN);
  loop::Loop control;
  int exit_code = 0;
  bool draining = false;
  std::unique_ptr<loop::Signal> sigterm, sigint, sighup;
  std::unique_ptr<Runtime> runtime;
  std::unique_ptr<control::ControlPlane> plane;

  // Workload processes stop first (they may still call out through the mesh while they shut
  // down), then the proxies drain. A second signal meanwhile kills the processes at once.
  auto drain_all = [&](uint64_t deadline_ms) {
    if (draining) {
      if (plane) plane->kill_workloads();
      return;
    }
    draining = true;
    auto drain_proxies = [&, deadline_ms] {
      MB_INFO("meshbox", "draining (up to {} ms)", deadline_ms);
      if (plane) plane->stop();
      runtime->drain(deadline_ms);
      sigterm.reset();
      sigint.reset();
      sighup.reset();
    };
    if (!plane) return drain_proxies();
    MB_INFO("meshbox", "stopping the workload processes");
    plane->stop_workloads(drain_proxies);
    if (deadline_ms == 0) plane->kill_workloads();
  };
  runtime = std::make_unique<Runtime>(
      control, workers,
      [&](const Status&) {
        // A worker could not open a listener of the first snapshot: nothing sane to serve.
        if (runtime->applied_version() == 0) {
          exit_code = 1;
          drain_all(0);
        }
      },
      dns::ResolverOptions::for_state_dir(copts.state_dir));
  if (args->has("no-cpu-pinning")) runtime->set_cpu_pinning(false);
  plane = std::make_unique<control::ControlPlane>(control, *runtime, copts);
  Status started = plane->start();
  if (!started.is_ok()) {
    fmt::print(stderr, "meshbox run: {}\n", started.message());
    plane.reset();
    runtime->drain(0);
    control.run();
    runtime->join();
    return 1;
  }
  MB_INFO("meshbox", "admin API on http://{}", plane->admin_address().to_string());
  uint64_t first = runtime->current()->version;
  runtime->when_applied(first, [&] {
    if (draining) return;
    std::string ready = "admin " + plane->admin_address().to_string() + "\n";
    for (const auto& l : runtime->current()->listeners)
      ready += "listener " + l.name + " " + l.address.to_string() + "\n";
    if (!ready_file.empty() && !write_file_atomic(ready_file, ready).is_ok()) {
      MB_ERROR("meshbox", "cannot write ready file {}", ready_file);
      exit_code = 1;
      return drain_all(0);
    }
    for (const auto& l : runtime->current()->listeners)
      MB_INFO("meshbox", "listener {} on {}", l.name, l.address.to_string());
    MB_INFO("meshbox", "ready: {} worker(s)", workers);
  });

  auto on_signal = [&] { drain_all(drain_timeout_ms); };
  sigterm = std::make_unique<loop::Signal>(control, SIGTERM, on_signal);
  sigint = std::make_unique<loop::Signal>(control, SIGINT, on_signal);
  sighup = std::make_unique<loop::Signal>(control, SIGHUP, [&] {
    MB_INFO("meshbox", "SIGHUP: reloading");
    plane->reload_files();
  });

  control.run();
  runtime->join();
  plane.reset();
  runtime.reset();
  MB_INFO("meshbox", "stopped");
  return exit_code;
}

}  // namespace meshbox::cli
