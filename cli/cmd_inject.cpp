// meshbox inject: manual sidecar injection, for processes meshbox does not start (bare-metal
// hosts, systemd units). The mesh does the work (POST /workloads/attach, control_plane.h): it
// picks the sidecar's ports, compiles its listeners and answers once they serve; it registers
// the instance's endpoint, in service once the app's port accepts a connection (a TCP health
// check on the control loop); and it drops the instance when this process is gone (it watches
// our pid), so a SIGKILL leaves nothing behind. This side starts the app with the environment
// the mesh returned, forwards signals to it, waits, detaches, and exits with the app's status.
// --print only attaches and prints that environment (plus iptables rules) for a unit file;
// --detach ends such an attachment.

#include <fcntl.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "cli/admin_client.h"
#include "cli/args.h"
#include "cli/commands.h"
#include "core/base/json.h"

extern char** environ;

namespace meshbox::cli {

namespace {

constexpr const char* kUsage =
    R"(usage: meshbox inject --service NAME [flags] -- CMD [ARGS...]
       meshbox inject --print --service NAME [flags]
       meshbox inject --detach INSTANCE [--namespace NS]

Attaches a sidecar from a running `meshbox run` to a process meshbox did not start (manual
injection). The mesh picks the sidecar's two ports and registers the instance as an
endpoint of the service; the endpoint is in service once the app accepts connections on its
port (a TCP check by the mesh). CMD runs with:
  PORT                    the port the app must listen on (--port, or one picked free)
  HTTP_PROXY, http_proxy  its outbound sidecar listener: calls to http://SERVICE:PORT/ go
                          through the mesh by plain service name
  NO_PROXY, no_proxy      loopback
  MESHBOX_SERVICE, MESHBOX_WORKLOAD   the service and the instance name
and ${PORT} in ARGS replaced by the port, as in a workload's command (quote it from the
shell: '${PORT}').
SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 are passed on to CMD. When CMD exits,
the instance is detached and meshbox inject exits with CMD's status (128+N if a signal N
ended it). If meshbox inject itself is killed, the mesh drops the instance within a second
or two, and CMD gets SIGTERM.

--print attaches without running anything and prints the environment as KEY=value lines
for a systemd EnvironmentFile, with the iptables rules for transparent capture as comments;
the instance stays until `meshbox inject --detach INSTANCE`. examples/systemd/ has units.

flags:
  --service NAME          a service of the mesh (required to attach)
  --version V             the instance's version label (subsets match on it)
  --label KEY=VALUE       another label (repeatable); app=SERVICE is always set
  --port PORT             the app's port (default: picked by the mesh, passed as PORT)
  --namespace NS          the service's namespace (default "default")
  --service-account SA    the instance's service account
  --name INSTANCE         the instance's name (default SERVICE[-VERSION]-XXXXX)
  --ready-timeout DUR     how long to wait for the app's port before warning (default 60s)
  --print                 attach, print the environment and iptables rules, exit
  --detach INSTANCE       detach an instance attached with --print
  --state-dir DIR         where `meshbox run` keeps its state (default ./.meshbox)
  --admin ADDR            admin API address (default: STATE_DIR/admin.address)
  --token-file PATH       the admin token (default: STATE_DIR/admin.token), e.g. a systemd
                          credential: LoadCredential= and --token-file %d/NAME
  -h, --help              this help

Exit status: CMD's; 1 if the attach fails (no such service, mesh not running); 2 on bad
usage; 127 if CMD cannot be run.
)";

constexpr uint64_t kReadyPollMs = 200;
constexpr uint64_t kAdminTimeoutMs = 10'000;

int usage_error(const std::string& message) {
  fmt::print(stderr, "meshbox inject: {}\nrun 'meshbox inject --help' for usage\n", message);
  return 2;
}

int fail(const std::string& message) {
  fmt::print(stderr, "meshbox inject: {}\n", message);
  return 1;
}

using Admin = AdminEndpoint;

Result<Admin> admin_from(const Args& args) {
  return find_admin(args.get("state-dir").value_or(".meshbox"), args.get("admin").value_or(""),
                    args.get("token-file").value_or(""), true);
}

// What the mesh answered to the attach.
struct Attachment {
  std::string instance, ns, service;
  uint64_t port = 0, inbound = 0, outbound = 0, mesh_uid = 0;
  std::vector<std::string> env;  // NAME=VALUE
};

Result<Attachment> parse_attachment(const std::string& body) {
  auto v = json::parse(body);
  if (!v) return Status(Code::Internal, "the mesh's answer is not JSON: " + v.error().message());
  Attachment a;
  auto str = [&](const char* k) {
    const json::Value* x = v->get(k);
    return x ? x->as_string() : std::string();
  };
  auto num = [&](const char* k) {
    const json::Value* x = v->get(k);
    auto n = x ? x->as_int() : std::nullopt;
    return static_cast<uint64_t>(n.value_or(0));
  };
  a.instance = str("instance");
  a.ns = str("namespace");
  a.service = str("service");
  a.port = num("port");
  a.inbound = num("sidecar_inbound_port");
  a.outbound = num("sidecar_outbound_port");
  a.mesh_uid = num("mesh_uid");
  if (const json::Value* env = v->get("env"); env && env->is_array())
    for (const auto& e : env->array)
      if (e.is_string()) a.env.push_back(e.as_string());
  if (a.instance.empty() || a.port == 0 || a.outbound == 0)
    return Status(Code::Internal, "the mesh's answer lacks the instance or its ports: " + body);
  return a;
}

// A value as an EnvironmentFile (and a POSIX shell) reads it back: bare when it is made of
// safe characters, else in single quotes.
std::string quoted(std::string_view value) {
  bool safe = !value.empty() && value.find_first_not_of(
                                    "abcdefghijklmnopqrstuvwxyz"
                                    "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                    "0123456789_-.,:/@%+=") == std::string_view::npos;
  if (safe) return std::string(value);
  std::string out = "'";
  for (char c : value) {
    if (c == '\'')
      out += "'\\''";
    else
      out.push_back(c);
  }
  return out + "'";
}

void print_environment(const Attachment& a, const Admin& admin) {
  fmt::print("# meshbox inject: instance {} of service {} (namespace {}), attached to the mesh\n",
             a.instance, a.service, a.ns);
  fmt::print("# at {} until `meshbox inject --detach {}{}`.\n", admin.address, a.instance,
             a.ns == "default" ? "" : " --namespace " + a.ns);
  fmt::print("# An EnvironmentFile for the app's unit, or `set -a; . FILE; set +a` in a shell.\n");
  for (const auto& e : a.env) {
    size_t eq = e.find('=');
    if (eq == std::string::npos) continue;
    fmt::print("{}={}\n", e.substr(0, eq), quoted(std::string_view(e).substr(eq + 1)));
  }
  // Transparent capture, as Istio's init container sets it up (REDIRECT to the sidecar),
  // by owner since a bare-metal host has no network namespace per app: only the app's user
  // is captured, never meshbox's own connections (the sidecar's upstream calls).
  uint64_t app_uid = ::getuid();
  std::string out_chain = fmt::format("MESHBOX_OUT_{}", a.outbound);
  fmt::print(
      "#\n"
      "# Transparent capture instead of HTTP_PROXY (as root; for apps that ignore it): the\n"
      "# app's outbound TCP goes to its outbound listener, local clients of its port to the\n"
      "# inbound one. Rules by owner: the app runs as uid {app} (User= in its unit), meshbox as\n"
      "# uid {mesh}, whose own connections (the sidecar's) are never captured.\n",
      fmt::arg("app", app_uid), fmt::arg("mesh", a.mesh_uid));
  if (app_uid == a.mesh_uid)
    fmt::print(
        "# NOTE: the app and meshbox run as the same user here; give the app a user of its own\n"
        "# or these rules would capture the sidecar's traffic too.\n");
  fmt::print(
      "# iptables -t nat -N {chain}\n"
      "# iptables -t nat -A {chain} -d 127.0.0.0/8 -j RETURN\n"
      "# iptables -t nat -A {chain} -p tcp -j REDIRECT --to-ports {out}\n"
      "# iptables -t nat -A OUTPUT -p tcp -m owner --uid-owner {app} -j {chain}\n"
      "# iptables -t nat -A OUTPUT -p tcp -d 127.0.0.1 --dport {port} "
      "-m owner ! --uid-owner {mesh} -j REDIRECT --to-ports {in}\n"
      "# Clients on other hosts (the sidecar listens on loopback: needs\n"
      "# sysctl net.ipv4.conf.all.route_localnet=1):\n"
      "# iptables -t nat -A PREROUTING -p tcp --dport {port} "
      "-j DNAT --to-destination 127.0.0.1:{in}\n"
      "# Undo: iptables -t nat -D (each -A above), iptables -t nat -F {chain}, -X {chain}\n",
      fmt::arg("chain", out_chain), fmt::arg("out", a.outbound), fmt::arg("in", a.inbound),
      fmt::arg("port", a.port), fmt::arg("app", app_uid), fmt::arg("mesh", a.mesh_uid));
}

Status detach(const Admin& admin, const std::string& ns, const std::string& instance) {
  auto reply = admin_call(admin.address, "DELETE",
                          fmt::format("/workloads/attach/{}?namespace={}", instance, ns), "",
                          admin.token, kAdminTimeoutMs);
  if (!reply) return reply.error();
  if (reply->status != 200) return Status(Code::NotFound, reply_error(*reply));
  return Status::ok();
}

// ---------------------------------------------------------------------------------------
// The child and its signals. The handlers only touch these and call kill(2) and write(2),
// which are async-signal-safe.

volatile sig_atomic_t g_child = 0;         // the app's pid once started
volatile sig_atomic_t g_early_signal = 0;  // a signal that came before the app started
int g_sigchld_pipe[2] = {-1, -1};          // SIGCHLD → a byte, for poll(2)
constexpr int kForwarded[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};

void on_forwarded_signal(int sig, siginfo_t* info, void*) {
  if (g_child <= 0) {
    g_early_signal = sig;  // no app yet: we end once attached (and detached again)
    return;
  }
  // A terminal's Ctrl-C (SI_KERNEL) already went to the whole foreground process group, the
  // app included: sending it again would make it two.
  if (info && info->si_code == SI_KERNEL) return;
  ::kill(static_cast<pid_t>(g_child), sig);
}

void on_sigchld(int) {
  int saved = errno;
  char b = 1;
  (void)!::write(g_sigchld_pipe[1], &b, 1);
  errno = saved;
}

Status install_handlers() {
  if (::pipe2(g_sigchld_pipe, O_CLOEXEC | O_NONBLOCK) != 0)
    return Status(Code::Io, fmt::format("pipe: {}", std::strerror(errno)));
  struct sigaction sa {};
  sa.sa_sigaction = on_forwarded_signal;
  sa.sa_flags = SA_SIGINFO | SA_RESTART;
  sigemptyset(&sa.sa_mask);
  for (int sig : kForwarded)
    ::sigaction(sig, &sa, nullptr);
  struct sigaction chld {};
  chld.sa_handler = on_sigchld;
  chld.sa_flags = SA_RESTART | SA_NOCLDSTOP;
  sigemptyset(&chld.sa_mask);
  ::sigaction(SIGCHLD, &chld, nullptr);
  // A closed stderr must not kill us (and with us the app's attachment); the app gets the
  // default back before exec.
  std::signal(SIGPIPE, SIG_IGN);
  return Status::ok();
}

/// `base` (NAME=VALUE) with `extra` replacing entries of the same name, in place.
std::vector<std::string> merged_env(char** base, const std::vector<std::string>& extra) {
  std::vector<std::string> out;
  for (char** e = base; e && *e; ++e)
    out.emplace_back(*e);
  for (const auto& x : extra) {
    std::string name = x.substr(0, x.find('=') + 1);
    auto it = std::find_if(out.begin(), out.end(),
                           [&](const std::string& e) { return e.rfind(name, 0) == 0; });
    if (it != out.end())
      *it = x;
    else
      out.push_back(x);
  }
  return out;
}

/// Starts `argv` with `env`. The app gets SIGTERM if we die (PR_SET_PDEATHSIG): the mesh
/// drops an instance whose inject process is gone, and an app left without its sidecar's
/// registration should stop rather than run unseen. An exec failure comes back through a
/// close-on-exec pipe as the errno.
Result<pid_t> start_child(const std::vector<std::string>& argv,
                          const std::vector<std::string>& env) {
  std::vector<char*> args, envp;
  for (const auto& a : argv)
    args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  for (const auto& e : env)
    envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);
  int report[2];
  if (::pipe2(report, O_CLOEXEC) != 0)
    return Status(Code::Io, fmt::format("pipe: {}", std::strerror(errno)));
  pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) {
    int err = errno;
    ::close(report[0]);
    ::close(report[1]);
    return Status(Code::Io, fmt::format("fork: {}", std::strerror(err)));
  }
  if (pid == 0) {
    // The child: only async-signal-safe calls until exec.
    ::close(report[0]);
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    for (int sig : kForwarded)
      ::sigaction(sig, &dfl, nullptr);
    ::sigaction(SIGCHLD, &dfl, nullptr);
    ::sigaction(SIGPIPE, &dfl, nullptr);
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (::getppid() != parent) ::_exit(128 + SIGTERM);  // we died before the prctl
    ::execvpe(args[0], args.data(), envp.data());
    int err = errno;
    (void)!::write(report[1], &err, sizeof err);
    ::_exit(127);
  }
  ::close(report[1]);
  int err = 0;
  ssize_t n;
  do {
    n = ::read(report[0], &err, sizeof err);
  } while (n < 0 && errno == EINTR);
  ::close(report[0]);
  if (n == static_cast<ssize_t>(sizeof err)) {
    ::waitpid(pid, nullptr, 0);
    return Status(Code::NotFound, fmt::format("cannot run {}: {}", argv[0], std::strerror(err)));
  }
  return pid;
}

/// The instance's `ready` in GET /workloads: nullopt if the mesh did not answer.
std::optional<bool> instance_ready(const Admin& admin, const Attachment& a) {
  auto reply = admin_call(admin.address, "GET", "/workloads", "", "", 2'000);
  if (!reply || reply->status != 200) return std::nullopt;
  auto v = json::parse(reply->body);
  if (!v || !v->is_array()) return std::nullopt;
  for (const auto& w : v->array) {
    const json::Value* inst = w.get("instance");
    const json::Value* ns = w.get("namespace");
    if (!inst || !ns || inst->as_string() != a.instance || ns->as_string() != a.ns) continue;
    const json::Value* ready = w.get("ready");
    return ready && ready->is_bool() && ready->boolean;
  }
  return std::nullopt;
}

/// "${PORT}" → the port, everywhere in `text` (as supervisor.h's expand_port).
std::string expand_port(std::string_view text, uint64_t port) {
  static constexpr std::string_view kVar = "${PORT}";
  std::string out;
  for (size_t at = 0;;) {
    size_t hit = text.find(kVar, at);
    out.append(text.substr(at, hit == std::string_view::npos ? std::string_view::npos : hit - at));
    if (hit == std::string_view::npos) return out;
    out.append(std::to_string(port));
    at = hit + kVar.size();
  }
}

/// Runs the app to its end; returns its wait status.
int run_attached(const Admin& admin, const Attachment& a, std::vector<std::string> argv,
                 uint64_t ready_timeout_ms) {
  for (auto& arg : argv)
    arg = expand_port(arg, a.port);
  auto pid = start_child(argv, merged_env(environ, a.env));
  if (!pid) {
    fmt::print(stderr, "meshbox inject: {}\n", pid.error().message());
    return -127;
  }
  g_child = *pid;
  if (g_early_signal) ::kill(*pid, g_early_signal);
  fmt::print(stderr,
             "meshbox inject: {} started {} (pid {}, port {}; sidecar 127.0.0.1:{} in, "
             "127.0.0.1:{} out)\n",
             a.instance, argv[0], *pid, a.port, a.inbound, a.outbound);

  // Until the app is in service (or the deadline): wait on SIGCHLD's pipe, a little at a
  // time, asking the mesh between waits. Then just wait.
  using Clock = std::chrono::steady_clock;
  auto deadline = Clock::now() + std::chrono::milliseconds(ready_timeout_ms);
  bool watching = true;
  int status = 0;
  for (;;) {
    pid_t r = ::waitpid(*pid, &status, watching ? WNOHANG : 0);
    if (r == *pid) break;
    if (r < 0 && errno != EINTR) {
      fmt::print(stderr, "meshbox inject: waitpid: {}\n", std::strerror(errno));
      status = 0;
      break;
    }
    if (!watching) continue;
    pollfd p{g_sigchld_pipe[0], POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(kReadyPollMs)) > 0) {
      char buf[64];
      while (::read(g_sigchld_pipe[0], buf, sizeof buf) > 0) {
      }
      continue;  // reap first
    }
    std::optional<bool> ready = instance_ready(admin, a);
    if (ready.value_or(false)) {
      fmt::print(stderr, "meshbox inject: {} is in service (its port {} accepts connections)\n",
                 a.instance, a.port);
      watching = false;
    } else if (Clock::now() >= deadline) {
      if (ready)
        fmt::print(stderr,
                   "meshbox inject: {}: nothing accepts connections on port {} after {} ms; the "
                   "instance gets no traffic until it does (is the app listening on $PORT?)\n",
                   a.instance, a.port, ready_timeout_ms);
      else
        fmt::print(stderr,
                   "meshbox inject: {}: the mesh at {} does not list the instance any more (did "
                   "meshbox restart?); the app runs without it\n",
                   a.instance, admin.address);
      watching = false;
    }
  }
  g_child = 0;
  return status;
}

}  // namespace

int cmd_inject(int argc, char** argv) {
  // --label repeats, and anything after "--" is the command's (its --help included).
  std::vector<std::string> labels;
  std::vector<char*> rest;
  for (int i = 0; i < argc; ++i) {
    std::string_view a = argv[i];
    if (i >= 2 && a == "--") {
      for (; i < argc; ++i)
        rest.push_back(argv[i]);
      break;
    }
    if (i >= 2 && (a == "-h" || a == "--help")) {
      fmt::print("{}", kUsage);
      return 0;
    }
    if (i >= 2 && a == "--label") {
      if (i + 1 >= argc) return usage_error("flag '--label' needs a value");
      labels.emplace_back(argv[++i]);
      continue;
    }
    if (i >= 2 && a.rfind("--label=", 0) == 0) {
      labels.emplace_back(a.substr(8));
      continue;
    }
    rest.push_back(argv[i]);
  }
  auto args = Args::parse(static_cast<int>(rest.size()), rest.data(), 2,
                          {{"service"},
                           {"version"},
                           {"port"},
                           {"namespace"},
                           {"service-account"},
                           {"name"},
                           {"ready-timeout"},
                           {"print", false},
                           {"detach"},
                           {"state-dir"},
                           {"admin"},
                           {"token-file"}});
  if (!args) return usage_error(args.error().message());
  const std::vector<std::string>& command = args->positional();
  std::string ns = args->get("namespace").value_or("default");

  if (auto instance = args->get("detach")) {
    if (args->has("service") || args->has("print") || !command.empty())
      return usage_error("--detach takes an instance name (and --namespace) only");
    auto admin = admin_from(*args);
    if (!admin) return fail(admin.error().message());
    if (Status s = detach(*admin, ns, *instance); !s.is_ok())
      return fail("cannot detach " + *instance + ": " + s.message());
    fmt::print("detached {}/{}\n", ns, *instance);
    return 0;
  }

  auto service = args->get("service");
  if (!service || service->empty()) return usage_error("--service NAME is required");
  bool print = args->has("print");
  if (print && !command.empty()) return usage_error("--print runs no command");
  if (!print && command.empty())
    return usage_error("no command: meshbox inject --service NAME -- CMD [ARGS...]");
  uint64_t port = 0;
  if (auto p = args->get("port")) {
    char* end = nullptr;
    unsigned long v = std::strtoul(p->c_str(), &end, 10);
    if (p->empty() || *end || v < 1 || v > 65535)
      return usage_error("--port must be a port number (1..65535)");
    port = v;
  }
  uint64_t ready_timeout_ms = 60'000;
  if (auto t = args->get("ready-timeout")) {
    auto ms = parse_duration_ms(*t);
    if (!ms) return usage_error("--ready-timeout: " + ms.error().message());
    ready_timeout_ms = *ms;
  }

  json::Writer w;
  w.begin_object().field("service", *service).field("namespace", ns);
  if (auto v = args->get("version")) w.field("version", *v);
  if (auto v = args->get("service-account")) w.field("service_account", *v);
  if (auto v = args->get("name")) w.field("name", *v);
  w.field("port", port);
  // --print: nothing to watch (the instance lives until --detach); else our own pid.
  w.field("pid", print ? 0 : static_cast<int64_t>(::getpid()));
  w.key("labels").begin_object();
  for (const auto& l : labels) {
    size_t eq = l.find('=');
    if (eq == std::string::npos || eq == 0)
      return usage_error("--label wants KEY=VALUE, got '" + l + "'");
    w.field(l.substr(0, eq), l.substr(eq + 1));
  }
  w.end_object().end_object();

  auto admin = admin_from(*args);
  if (!admin) return fail(admin.error().message());
  // Handlers before the attach: a SIGTERM from here on is passed on (or ends us cleanly
  // before the app starts), and the mesh never sees a half-started app.
  if (!print)
    if (Status s = install_handlers(); !s.is_ok()) return fail(s.message());
  auto reply = admin_call(admin->address, "POST", "/workloads/attach", w.str(), admin->token,
                          kAdminTimeoutMs);
  if (!reply) return fail(reply.error().message());
  if (reply->status != 200)
    return fail("cannot attach to " + *service + ": " + reply_error(*reply));
  auto attachment = parse_attachment(reply->body);
  if (!attachment) return fail(attachment.error().message());
  const Attachment& a = *attachment;

  if (print) {
    print_environment(a, *admin);
    return 0;
  }
  if (g_early_signal) {
    int sig = g_early_signal;
    (void)detach(*admin, a.ns, a.instance);
    return 128 + sig;
  }
  int status = run_attached(*admin, a, command, ready_timeout_ms);
  Status detached = detach(*admin, a.ns, a.instance);
  if (!detached.is_ok())
    fmt::print(stderr, "meshbox inject: cannot detach {}: {}\n", a.instance, detached.message());
  if (status == -127) return 127;
  if (WIFEXITED(status)) {
    fmt::print(stderr, "meshbox inject: {} exited with status {}; detached\n", a.instance,
               WEXITSTATUS(status));
    return WEXITSTATUS(status);
  }
  if (WIFSIGNALED(status)) {
    fmt::print(stderr, "meshbox inject: {} was killed by signal {} ({}); detached\n", a.instance,
               WTERMSIG(status), strsignal(WTERMSIG(status)));
    return 128 + WTERMSIG(status);
  }
  return 1;
}

}  // namespace meshbox::cli
