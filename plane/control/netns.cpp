#include "plane/control/netns.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <map>
#include <set>

#include <fmt/format.h>

#include "core/base/log.h"
#include "plane/config/host_index.h"

namespace meshbox::control {

namespace {

constexpr const char* kLog = "capture";
constexpr std::string_view kPrefix = "mbx-";
constexpr uint32_t kVipBase = (240u << 24) | (240u << 16);  // 240.240.0.0/16

uint64_t fnv1a(std::string_view s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

std::string ipv4(uint32_t host_order) {
  in_addr a{htonl(host_order)};
  char buf[INET_ADDRSTRLEN];
  return ::inet_ntop(AF_INET, &a, buf, sizeof buf) ? buf : "";
}

/// The program's path in the usual system directories ("" if missing): meshbox runs these
/// as root, so not through whatever PATH it was given.
std::string find_program(std::string_view name) {
  for (std::string_view dir :
       {"/usr/sbin/", "/sbin/", "/usr/bin/", "/bin/", "/usr/local/sbin/", "/usr/local/bin/"}) {
    std::string path = std::string(dir) + std::string(name);
    if (::access(path.c_str(), X_OK) == 0) return path;
  }
  return "";
}

/// Runs argv[0] (found by find_program) with `input` on its stdin and waits for it. Fails
/// with its output when it exits with a non-zero status.
Status run(std::vector<std::string> argv, std::string_view input = {}) {
  std::string program = find_program(argv[0]);
  if (program.empty()) return make_error(Code::Unavailable, "`" + argv[0] + "` is not installed");
  std::string shown = fmt::format("{}", fmt::join(argv, " "));
  argv[0] = program;
  int in[2], out[2];
  if (::pipe2(in, O_CLOEXEC) != 0) return make_error(Code::Io, std::strerror(errno));
  if (::pipe2(out, O_CLOEXEC) != 0) {
    int err = errno;
    ::close(in[0]);
    ::close(in[1]);
    return make_error(Code::Io, std::strerror(err));
  }
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, in[0], 0);
  posix_spawn_file_actions_adddup2(&fa, out[1], 1);
  posix_spawn_file_actions_adddup2(&fa, out[1], 2);
  // meshbox ignores SIGPIPE, and the loop threads block signals libuv handles: the child
  // starts with neither.
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none, pipe;
  sigemptyset(&none);
  sigemptyset(&pipe);
  sigaddset(&pipe, SIGPIPE);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &pipe);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  std::vector<char*> args;
  for (auto& a : argv)
    args.push_back(a.data());
  args.push_back(nullptr);
  char path_env[] = "PATH=/usr/sbin:/usr/bin:/sbin:/bin";
  char* envp[] = {path_env, nullptr};
  pid_t pid = 0;
  int rc = ::posix_spawn(&pid, program.c_str(), &fa, &attr, args.data(), envp);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  ::close(in[0]);
  ::close(out[1]);
  if (rc != 0) {
    ::close(in[1]);
    ::close(out[0]);
    return make_error(Code::Io, fmt::format("{}: {}", shown, std::strerror(rc)));
  }
  // Small inputs (a few hundred bytes): they fit the pipe, so writing first cannot deadlock.
  for (size_t off = 0; off < input.size();) {
    ssize_t n = ::write(in[1], input.data() + off, input.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    off += static_cast<size_t>(n);
  }
  ::close(in[1]);
  std::string output;
  char buf[4096];
  while (true) {
    ssize_t n = ::read(out[0], buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    output.append(buf, static_cast<size_t>(n));
  }
  ::close(out[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return Status::ok();
  while (!output.empty() && (output.back() == '\n' || output.back() == '\r'))
    output.pop_back();
  std::replace(output.begin(), output.end(), '\n', ' ');
  return make_error(Code::Unavailable,
                    fmt::format("`{}` failed ({}): {}", shown,
                                WIFEXITED(status) ? fmt::format("exit {}", WEXITSTATUS(status))
                                                  : std::string("killed"),
                                output));
}

/// Every IPv4 address on this host's interfaces (meshbox's namespace).
std::set<uint32_t> host_ipv4s() {
  std::set<uint32_t> out;
  ifaddrs* list = nullptr;
  if (::getifaddrs(&list) != 0) return out;
  for (ifaddrs* i = list; i; i = i->ifa_next)
    if (i->ifa_addr && i->ifa_addr->sa_family == AF_INET)
      out.insert(ntohl(reinterpret_cast<sockaddr_in*>(i->ifa_addr)->sin_addr.s_addr));
  ::freeifaddrs(list);
  return out;
}

/// "A.B.C.D/N" → (A.B.C.D in host order, N). Validation checked the form.
Result<std::pair<uint32_t, int>> parse_cidr(const std::string& cidr) {
  auto slash = cidr.find('/');
  in_addr a{};
  if (slash == std::string::npos || ::inet_pton(AF_INET, cidr.substr(0, slash).c_str(), &a) != 1)
    return make_error(Code::InvalidArgument, "capture_cidr: not an IPv4 range: " + cidr);
  int prefix = std::atoi(cidr.c_str() + slash + 1);
  if (prefix < 0 || prefix > 30)
    return make_error(Code::InvalidArgument, "capture_cidr: no room for a /30: " + cidr);
  uint32_t mask = prefix == 0 ? 0 : ~uint32_t{0} << (32 - prefix);
  return std::make_pair(ntohl(a.s_addr) & mask, prefix);
}

void remove_hosts_dir(const std::string& name) {
  std::string dir = "/etc/netns/" + name;
  ::unlink((dir + "/hosts").c_str());
  ::rmdir(dir.c_str());
}

/// The pid in a name made by create(): mbx-PID-N → PID; 0 if it is not one.
pid_t owner_of(std::string_view name) {
  if (name.substr(0, kPrefix.size()) != kPrefix) return 0;
  name.remove_prefix(kPrefix.size());
  auto dash = name.find('-');
  if (dash == 0 || dash == std::string_view::npos) return 0;
  pid_t pid = 0;
  for (char c : name.substr(0, dash)) {
    if (c < '0' || c > '9') return 0;
    pid = pid * 10 + (c - '0');
  }
  return pid;
}

// Gone, or a zombie (ended; its parent has yet to reap it).
bool dead(pid_t pid) {
  if (pid <= 0 || pid == ::getpid()) return false;
  if (::kill(pid, 0) != 0) return errno == ESRCH;
  char path[32], buf[512];
  snprintf(path, sizeof path, "/proc/%d/stat", static_cast<int>(pid));
  int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return true;
  ssize_t n = ::read(fd, buf, sizeof buf - 1);
  ::close(fd);
  if (n <= 0) return true;
  std::string_view stat(buf, static_cast<size_t>(n));
  size_t paren = stat.rfind(')');  // "PID (COMM) STATE …"
  return paren != std::string_view::npos && paren + 2 < stat.size() &&
         (stat[paren + 2] == 'Z' || stat[paren + 2] == 'X');
}

}  // namespace

// ---------------------------------------------------------------------------------------
// Names

std::vector<ServiceVip> service_vips(const config::Config& config) {
  config::HostIndex index(config);
  std::map<std::string, ServiceVip> by_host;  // sorted: the same collisions every time
  for (const auto& s : config.services) {
    if (s.name.empty()) continue;
    std::string fqdn = index.fqdn(s);
    ServiceVip v;
    v.ns = s.ns;
    v.name = s.name;
    v.names = {s.name + "." + s.ns, s.name + "." + s.ns + ".svc", fqdn};
    by_host.try_emplace(fqdn, std::move(v));
  }
  for (const auto& se : config.service_entries) {
    for (const auto& h : se.hosts) {
      std::string host = index.resolve(h, se.ns);
      if (host.empty() || host.find('*') != std::string::npos) continue;
      ServiceVip v;
      v.names = {host};
      if (h != host && h.find('*') == std::string::npos) v.names.push_back(h);
      by_host.try_emplace(host, std::move(v));
    }
  }
  std::set<uint32_t> taken;
  std::vector<ServiceVip> out;
  for (auto& [host, v] : by_host) {
    uint32_t i = static_cast<uint32_t>(fnv1a(host) % 65534) + 1;  // 240.240.0.1 … .255.254
    while (taken.count(i))
      i = i % 65534 + 1;
    taken.insert(i);
    v.vip = ipv4(kVipBase | i);
    out.push_back(std::move(v));
  }
  return out;
}

std::string hosts_file(const std::vector<ServiceVip>& vips, std::string_view client_ns) {
  std::string out =
      "# meshbox: the mesh's services at their virtual IPs (capture = \"iptables\")\n"
      "127.0.0.1\tlocalhost\n"
      "::1\tlocalhost ip6-localhost ip6-loopback\n";
  for (const auto& v : vips) {
    out += v.vip;
    if (!v.name.empty() && v.ns == client_ns) out += "\t" + v.name;
    for (const auto& n : v.names)
      out += "\t" + n;
    out += "\n";
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// CaptureNetns

Result<std::unique_ptr<CaptureNetns>> CaptureNetns::create(const std::string& cidr,
                                                           uint32_t inbound_port,
                                                           uint32_t outbound_port) {
  auto range = parse_cidr(cidr);
  if (!range) return range.error();
  auto [base, prefix] = *range;
  // Names: unique in this process; veth names fit IFNAMSIZ (15): "mbh" + hex pid + "x" + hex n.
  static uint32_t next_id = 0;  // control loop only
  uint32_t id = next_id++ & 0xffff;
  pid_t pid = ::getpid();
  std::unique_ptr<CaptureNetns> ns(new CaptureNetns());
  ns->name_ = fmt::format("{}{}-{}", kPrefix, pid, id);
  ns->path_ = "/run/netns/" + ns->name_;
  ns->host_veth_ = fmt::format("mbh{:x}x{:x}", pid, id);
  std::string peer = fmt::format("mbp{:x}x{:x}", pid, id);
  ns->hosts_ = "/etc/netns/" + ns->name_ + "/hosts";

  // A /30 none of this host's addresses is in: another meshbox's, or anything else's.
  uint32_t slots = uint32_t{1} << (30 - prefix);
  std::set<uint32_t> used = host_ipv4s();
  uint32_t start = static_cast<uint32_t>(fnv1a(ns->name_) % slots);
  uint32_t net = 0;
  bool found = false;
  for (uint32_t k = 0; k < slots && !found; ++k) {
    net = base + ((start + k) % slots) * 4;
    found = !used.count(net + 1) && !used.count(net + 2);
  }
  if (!found) return make_error(Code::Unavailable, "capture_cidr " + cidr + " has no free /30");
  std::string host_ip = ipv4(net + 1);
  ns->ip_ = ipv4(net + 2);

  ns->made_ = true;  // from here on the destructor undoes whatever part was made
  Status s =
      run({"ip", "-batch", "-"}, fmt::format("netns add {0}\n"
                                             "link add {1} type veth peer name {2} netns {0}\n"
                                             "addr add {3}/30 dev {1}\n"
                                             "link set {1} up\n",
                                             ns->name_, ns->host_veth_, peer, host_ip));
  if (s.is_ok())
    s = run({"ip", "-n", ns->name_, "-batch", "-"}, fmt::format("link set lo up\n"
                                                                "addr add {0}/30 dev {1}\n"
                                                                "link set {1} up\n"
                                                                "route add default via {2}\n",
                                                                ns->ip_, peer, host_ip));
  if (s.is_ok())
    s = run({"ip", "netns", "exec", ns->name_, "iptables-restore"},
            fmt::format("*nat\n"
                        ":PREROUTING ACCEPT [0:0]\n"
                        ":INPUT ACCEPT [0:0]\n"
                        ":OUTPUT ACCEPT [0:0]\n"
                        ":POSTROUTING ACCEPT [0:0]\n"
                        "-A PREROUTING -p tcp -j REDIRECT --to-ports {0}\n"
                        "-A OUTPUT -p tcp -d 127.0.0.1/32 -j RETURN\n"
                        "-A OUTPUT -p tcp -j REDIRECT --to-ports {1}\n"
                        "COMMIT\n",
                        inbound_port, outbound_port));
  if (s.is_ok()) {
    std::string dir = "/etc/netns/" + ns->name_;
    ::mkdir("/etc/netns", 0755);
    if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST)
      s = make_error(Code::Io, dir + ": " + std::strerror(errno));
  }
  if (s.is_ok()) s = ns->write_hosts(hosts_file({}, ""));
  if (!s.is_ok())
    return make_error(s.code(), "network namespace " + ns->name_ + ": " + s.message());
  MB_INFO(kLog, "network namespace {}: {} (meshbox {} on {}), tcp → ports {} (in) and {} (out)",
          ns->name_, ns->ip_, host_ip, ns->host_veth_, inbound_port, outbound_port);
  return ns;
}

CaptureNetns::~CaptureNetns() {
  if (!made_) return;
  // Deleting the host's end takes the pair; the namespace itself goes once nothing holds it
  // (a worker may still have a listener in it until the next snapshot).
  Status s = run({"ip", "-force", "-batch", "-"},
                 fmt::format("link del {}\nnetns del {}\n", host_veth_, name_));
  if (!s.is_ok() && s.message().find("Cannot find") == std::string::npos)
    MB_WARN(kLog, "removing network namespace {}: {}", name_, s.message());
  remove_hosts_dir(name_);
}

Status CaptureNetns::write_hosts(const std::string& content) const {
  int fd = ::open(hosts_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return make_error(Code::Io, hosts_ + ": " + std::strerror(errno));
  bool ok = ::write(fd, content.data(), content.size()) == static_cast<ssize_t>(content.size());
  ::close(fd);
  return ok ? Status::ok() : make_error(Code::Io, hosts_ + ": cannot write");
}

void clean_stale_netns() {
  std::vector<std::string> names;
  if (DIR* d = ::opendir("/run/netns")) {
    while (dirent* e = ::readdir(d)) {
      std::string_view n = e->d_name;
      if (dead(owner_of(n))) names.emplace_back(n);
    }
    ::closedir(d);
  }
  // Host ends whose namespace was lost some other way: mbhPIDHEXxN.
  std::vector<std::string> veths;
  if (DIR* d = ::opendir("/sys/class/net")) {
    while (dirent* e = ::readdir(d)) {
      std::string_view n = e->d_name;
      if (n.substr(0, 3) != "mbh") continue;
      auto x = n.find('x', 3);
      if (x == std::string_view::npos) continue;
      pid_t pid =
          static_cast<pid_t>(std::strtol(std::string(n.substr(3, x - 3)).c_str(), nullptr, 16));
      if (dead(pid)) veths.emplace_back(n);
    }
    ::closedir(d);
  }
  if (names.empty() && veths.empty()) return;
  std::string batch;
  for (const auto& v : veths)
    batch += "link del " + v + "\n";
  for (const auto& n : names)
    batch += "netns del " + n + "\n";
  Status s = run({"ip", "-force", "-batch", "-"}, batch);
  for (const auto& n : names)
    remove_hosts_dir(n);
  MB_INFO(kLog, "removed {} network namespace(s) and {} veth(s) left by a meshbox that died{}",
          names.size(), veths.size(), s.is_ok() ? "" : ": " + s.message());
}

}  // namespace meshbox::control
