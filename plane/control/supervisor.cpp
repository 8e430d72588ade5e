#include "plane/control/supervisor.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <optional>
#include <set>
#include <utility>

#include <fmt/core.h>

#include "core/base/log.h"
#include "core/dns/dns.h"
#include "core/loop/process.h"
#include "core/loop/tcp_listener.h"

namespace meshbox::control {

namespace {

constexpr const char* kLog = "supervisor";

std::string instance_key(std::string_view ns, std::string_view instance) {
  return fmt::format("{}/{}", ns, instance);
}

/// Writes all of `data` to `fd` (a pipe or a terminal may take it in pieces).
void write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    data.remove_prefix(static_cast<size_t>(n));
  }
}

/// mkdir -p, mode 0700 (logs may hold what the apps consider secret, like the state dir).
bool make_dirs(const std::string& dir) {
  if (dir.empty()) return true;
  struct stat st {};
  if (::stat(dir.c_str(), &st) == 0) return S_ISDIR(st.st_mode);
  auto slash = dir.rfind('/');
  if (slash != std::string::npos && slash > 0 && !make_dirs(dir.substr(0, slash))) return false;
  return ::mkdir(dir.c_str(), 0700) == 0 || errno == EEXIST;
}

// One instance's log file: lines appended with one write(2) each (O_APPEND; a regular file
// takes them at once, so this is as cheap as meshbox's own logging to stderr). Past
// max_bytes the file is renamed to PATH.1 (replacing the previous one) and a new one begun.
// Opened at the first line; a failure is logged once and the file given up.
class LogFile {
 public:
  LogFile(std::string path, uint64_t max_bytes) : path_(std::move(path)), max_bytes_(max_bytes) {}
  ~LogFile() {
    if (fd_ >= 0) ::close(fd_);
  }
  LogFile(const LogFile&) = delete;
  LogFile& operator=(const LogFile&) = delete;

  void write_line(std::string_view line) {
    if (path_.empty() || failed_) return;
    if (fd_ >= 0 && size_ > 0 && size_ + line.size() + 1 > max_bytes_) rotate();
    if (fd_ < 0 && !open()) return;
    std::string out;
    out.reserve(line.size() + 1);
    out.append(line);
    out.push_back('\n');
    write_all(fd_, out);
    size_ += out.size();
  }

 private:
  bool open() {
    auto slash = path_.rfind('/');
    if (slash != std::string::npos && !make_dirs(path_.substr(0, slash))) return fail("mkdir");
    fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd_ < 0) return fail("open");
    struct stat st {};
    size_ = ::fstat(fd_, &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0;
    return true;
  }
  void rotate() {
    ::close(fd_);
    fd_ = -1;
    std::string old = path_ + ".1";
    if (::rename(path_.c_str(), old.c_str()) != 0)
      MB_WARN(kLog, "cannot rotate {}: {}", path_, std::strerror(errno));
  }
  bool fail(const char* what) {
    MB_WARN(kLog, "cannot write the log file {} ({}: {}); its lines go to stderr only", path_, what,
            std::strerror(errno));
    failed_ = true;
    return false;
  }

  std::string path_;
  uint64_t max_bytes_;
  int fd_ = -1;
  uint64_t size_ = 0;
  bool failed_ = false;
};

/// The start time (clock ticks since boot: /proc/PID/stat field 22) of process `pid`, if it
/// exists and has not ended (a zombie has ended: only its parent has yet to reap it). With the
/// pid it names one process for good, where a pid alone may be reused.
std::optional<uint64_t> live_start_time(int pid) {
  if (pid <= 0) return std::nullopt;
  std::string path = fmt::format("/proc/{}/stat", pid);
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  char buf[1024];
  ssize_t n = ::read(fd, buf, sizeof buf - 1);
  ::close(fd);
  if (n <= 0) return std::nullopt;
  std::string_view stat(buf, static_cast<size_t>(n));
  // "PID (COMM) STATE PPID …": COMM may hold spaces and parentheses; the last ')' ends it.
  size_t paren = stat.rfind(')');
  if (paren == std::string_view::npos) return std::nullopt;
  std::string_view rest = stat.substr(paren + 1);
  std::vector<std::string_view> fields;  // fields[0] is field 3 (STATE)
  while (!rest.empty() && fields.size() < 20) {
    size_t start = rest.find_first_not_of(' ');
    if (start == std::string_view::npos) break;
    rest.remove_prefix(start);
    size_t end = rest.find(' ');
    fields.push_back(rest.substr(0, end));
    rest.remove_prefix(end == std::string_view::npos ? rest.size() : end);
  }
  if (fields.size() < 20 || fields[0] == "Z" || fields[0] == "X") return std::nullopt;
  uint64_t start_time = 0;
  for (char c : fields[19]) {
    if (c < '0' || c > '9') return std::nullopt;
    start_time = start_time * 10 + static_cast<uint64_t>(c - '0');
  }
  return start_time;
}

}  // namespace

// ---------------------------------------------------------------------------------------
// Pure parts

uint64_t Backoff::next(uint64_t ran_ms) {
  if (ran_ms >= options_.reset_after_ms) last_ms_ = 0;
  last_ms_ = last_ms_ == 0 ? options_.initial_ms : std::min(options_.max_ms, last_ms_ * 2);
  return last_ms_;
}

void LineSplitter::feed(std::string_view data, const OnLine& on_line) {
  while (!data.empty()) {
    size_t nl = data.find('\n');
    if (nl == std::string_view::npos) {
      // No end yet: keep it, handing out kMaxLine pieces of an endless line.
      size_t room = kMaxLine - partial_.size();
      if (data.size() < room) {
        partial_.append(data);
        return;
      }
      partial_.append(data.substr(0, room));
      data.remove_prefix(room);
      on_line(partial_);
      partial_.clear();
      continue;
    }
    std::string_view piece = data.substr(0, nl);
    data.remove_prefix(nl + 1);
    if (partial_.empty() && piece.size() <= kMaxLine) {
      if (!piece.empty() && piece.back() == '\r') piece.remove_suffix(1);
      on_line(piece);  // the common case: no copy
      continue;
    }
    partial_.append(piece);
    while (partial_.size() > kMaxLine) {
      on_line(std::string_view(partial_).substr(0, kMaxLine));
      partial_.erase(0, kMaxLine);
    }
    if (!partial_.empty() && partial_.back() == '\r') partial_.pop_back();
    on_line(partial_);
    partial_.clear();
  }
}

void LineSplitter::finish(const OnLine& on_line) {
  if (partial_.empty()) return;
  if (partial_.back() == '\r') partial_.pop_back();
  on_line(partial_);
  partial_.clear();
}

std::string expand_port(std::string_view text, uint32_t port) {
  static constexpr std::string_view kVar = "${PORT}";
  std::string out;
  out.reserve(text.size());
  size_t at = 0;
  while (true) {
    size_t hit = text.find(kVar, at);
    if (hit == std::string_view::npos) break;
    out.append(text.substr(at, hit - at));
    out.append(std::to_string(port));
    at = hit + kVar.size();
  }
  out.append(text.substr(at));
  return out;
}

std::vector<std::string> instance_names(const config::Workload& w) {
  std::vector<std::string> out;
  if (w.command.empty()) return out;
  if (w.replicas == 1) {
    out.push_back(w.name);
    return out;
  }
  for (uint32_t i = 0; i < w.replicas; ++i)
    out.push_back(fmt::format("{}-{}", w.name, i));
  return out;
}

std::vector<std::string> instance_args(const config::Workload& w, uint32_t port) {
  std::vector<std::string> out;
  out.reserve(w.command.size());
  for (const auto& a : w.command)
    out.push_back(expand_port(a, port));
  return out;
}

std::vector<std::string> instance_env(const std::vector<std::string>& base,
                                      const config::Workload& w, std::string_view instance,
                                      uint32_t port, uint32_t outbound_port) {
  std::vector<std::string> out = base;
  std::map<std::string, size_t, std::less<>> index;  // name → position in out
  for (size_t i = 0; i < out.size(); ++i)
    index.emplace(out[i].substr(0, out[i].find('=')), i);
  auto set = [&](const std::string& name, std::string value) {
    std::string entry = name + "=" + value;
    auto it = index.find(name);
    if (it != index.end()) {
      out[it->second] = std::move(entry);
    } else {
      index.emplace(name, out.size());
      out.push_back(std::move(entry));
    }
  };
  for (const auto& [name, value] : w.env)
    set(name, expand_port(value, port));
  set("PORT", std::to_string(port));
  set("MESHBOX_WORKLOAD", std::string(instance));
  set("MESHBOX_SERVICE", w.service);
  if (outbound_port) {
    std::string proxy = fmt::format("http://127.0.0.1:{}", outbound_port);
    set("HTTP_PROXY", proxy);
    set("http_proxy", proxy);
    set("NO_PROXY", "localhost,127.0.0.1,::1");
    set("no_proxy", "localhost,127.0.0.1,::1");
  }
  return out;
}

bool same_process(const config::Workload& a, const config::Workload& b) {
  return a.name == b.name && a.ns == b.ns && a.service == b.service && a.command == b.command &&
         a.env == b.env && a.working_dir == b.working_dir && a.address == b.address &&
         a.port == b.port && a.inject == b.inject && a.capture == b.capture;
}

std::string_view to_string(InstanceState state) {
  switch (state) {
    case InstanceState::Running:
      return "running";
    case InstanceState::Backoff:
      return "backoff";
    case InstanceState::Stopping:
      return "stopping";
    case InstanceState::Stopped:
      return "stopped";
    case InstanceState::Attached:
      return "attached";
  }
  return "stopped";
}

// ---------------------------------------------------------------------------------------
// Instance: one process of a workload, through its states (InstanceState). It owns the
// Process, whose callbacks it receives; the Supervisor owns it and erases it when it ended
// and is no longer wanted (from inside its callbacks: nothing touches `this` after erase).

class Supervisor::Instance final : public loop::ProcessCallbacks {
 public:
  Instance(Supervisor& sup, std::string name, const config::Workload& spec, uint32_t port)
      : sup_(sup),
        name_(std::move(name)),
        key_(instance_key(spec.ns, name_)),
        label_(spec.ns == "default" ? name_ : key_),
        spec_(spec),
        port_(port),
        port_picked_(spec.port == 0),
        backoff_(sup.options_.backoff),
        restart_timer_(sup.loop_, [this] { on_restart_timer(); }),
        kill_timer_(sup.loop_, [this] { on_kill_timer(); }),
        log_(sup.options_.log_dir.empty() ? std::string()
                                          : fmt::format("{}/{}.log", sup.options_.log_dir, label_),
             sup.options_.max_log_bytes) {}

  const std::string& name() const { return name_; }
  const config::Workload& spec() const { return spec_; }
  uint32_t port() const { return port_; }
  uint32_t sidecar_inbound_port() const { return sidecar_in_; }
  uint32_t sidecar_outbound_port() const { return sidecar_out_; }
  InstanceState state() const { return state_; }
  bool serving() const { return state_ == InstanceState::Running; }
  bool has_process() const { return proc_ && proc_->running(); }

  InstanceStatus status() const {
    InstanceStatus s;
    s.ns = spec_.ns;
    s.workload = spec_.name;
    s.instance = name_;
    s.service = spec_.service;
    s.pid = has_process() ? proc_->pid() : 0;
    s.port = port_;
    s.state = state_;
    s.restarts = restarts_;
    s.last_exit = last_exit_;
    uint64_t now = sup_.loop_.now_ms();
    if (state_ == InstanceState::Running) s.uptime_ms = now - started_ms_;
    if (state_ == InstanceState::Backoff)
      s.restart_in_ms = restart_at_ms_ > now ? restart_at_ms_ - now : 0;
    return s;
  }

  /// Starts the process now (a new instance, or one whose back-off ended or spec changed).
  void start() {
    state_ = InstanceState::Backoff;  // until the spawn succeeds
    if (port_ == 0) {
      auto port = sup_.pick_port(spec_.address);
      if (!port) {
        last_exit_ = port.error().message();
        return schedule_restart(0, last_exit_);
      }
      port_ = *port;
    }
    // The sidecar's two listeners: picked once, kept across restarts like the app's port.
    for (uint32_t* p : {&sidecar_in_, &sidecar_out_}) {
      if (!spec_.inject || *p != 0) continue;
      auto picked = sup_.pick_port("127.0.0.1");
      if (!picked) {
        last_exit_ = "sidecar: " + picked.error().message();
        return schedule_restart(0, last_exit_);
      }
      *p = *picked;  // before the next pick: pick_port skips the ports instances hold
    }
    if (!spec_.inject) sidecar_in_ = sidecar_out_ = 0;
    loop::ProcessOptions opts;
    opts.args = sup_.options_.launcher;
    bool captured = spec_.inject && spec_.capture == config::Capture::Iptables;
    if (!captured) {
      netns_.reset();
    } else if (Status s = start_capture(opts.args); !s.is_ok()) {
      last_exit_ = s.message();
      return schedule_restart(0, last_exit_);
    }
    for (auto& a : instance_args(spec_, port_))
      opts.args.push_back(std::move(a));
    // Captured: no HTTP_PROXY; iptables sends the app's connections to the sidecar.
    opts.env =
        instance_env(sup_.options_.environment, spec_, name_, port_, captured ? 0 : sidecar_out_);
    opts.cwd = spec_.working_dir;
    auto proc = loop::Process::spawn(sup_.loop_, opts, this);
    if (!proc) {
      // libuv changes directory in the child: say which of the two failed.
      struct stat st {};
      if (!spec_.working_dir.empty() && ::stat(spec_.working_dir.c_str(), &st) != 0) {
        last_exit_ = fmt::format("cannot run {}: working_dir {}: {}", spec_.command[0],
                                 spec_.working_dir, std::strerror(errno));
      } else {
        last_exit_ = proc.error().message();
      }
      return schedule_restart(0, last_exit_);
    }
    proc_ = std::move(*proc);
    state_ = InstanceState::Running;
    started_ms_ = sup_.loop_.now_ms();
    MB_INFO(kLog, "{}: started (pid {}, port {})", label_, proc_->pid(), port_);
    sup_.changed();
  }

  /// The instance's network namespace (null: not captured).
  const CaptureNetns* netns() const { return netns_.get(); }

  /// The mesh's names changed: the hosts file follows (a running process sees it at once).
  void update_hosts() {
    if (!netns_) return;
    if (Status s = netns_->write_hosts(hosts_file(sup_.capture_.vips, spec_.ns)); !s.is_ok())
      MB_WARN(kLog, "{}: {}", label_, s.message());
  }

  /// The workload changed. Keeps running if the process would be the same; else restarts
  /// with the new spec (at once if it is not running, after the stop if it is).
  void update(const config::Workload& spec) {
    removed_ = false;
    if (state_ == InstanceState::Stopping) {
      next_spec_ = spec;  // started again once the old process is gone
      return;
    }
    if (same_process(spec_, spec)) {
      spec_ = spec;  // labels, weight, health …: the control plane rebuilds the endpoint
      return;
    }
    switch (state_) {
      case InstanceState::Running:
        next_spec_ = spec;
        MB_INFO(kLog, "{}: changed; restarting it", label_);
        stop(sup_.options_.stop_grace_ms);
        break;
      case InstanceState::Stopping:
      case InstanceState::Attached:  // not an Instance's state
        break;
      case InstanceState::Backoff:
      case InstanceState::Stopped:
        restart_timer_.stop();
        adopt(spec);
        start();
        break;
    }
  }

  /// Not wanted any more. True if it can be erased now (no process left).
  bool remove() {
    removed_ = true;
    next_spec_.reset();
    if (state_ == InstanceState::Running) {
      MB_INFO(kLog, "{}: removed from the config; stopping it", label_);
      stop(sup_.options_.stop_grace_ms);
    }
    return !has_process();
  }

  /// meshbox is shutting down: stop, and never start again.
  void shut_down() {
    next_spec_.reset();
    restart_timer_.stop();
    if (state_ == InstanceState::Running) {
      stop(sup_.options_.stop_grace_ms);
    } else if (state_ != InstanceState::Stopping) {
      state_ = InstanceState::Stopped;
    }
  }

  void kill() {
    if (has_process()) (void)proc_->signal(SIGKILL);
  }

  // ProcessCallbacks

  void on_output(Stream stream, std::string_view data) override {
    splitter(stream).feed(data, [this](std::string_view line) { emit(line); });
  }

  void on_output_end(Stream stream) override {
    splitter(stream).finish([this](std::string_view line) { emit(line); });
  }

  void on_exit(const loop::ProcessExit& exit) override {
    uint64_t now = sup_.loop_.now_ms();
    uint64_t ran = now - started_ms_;
    int pid = proc_->pid();
    out_.finish([this](std::string_view line) { emit(line); });
    err_.finish([this](std::string_view line) { emit(line); });
    last_exit_ = exit.describe();
    kill_timer_.stop();
    // Dropping the Process inside its own exit callback is allowed; a pipe still held by a
    // process that left the group closes with it.
    proc_.reset();
    sup_.changed();  // the endpoint leaves
    if (state_ == InstanceState::Stopping) {
      MB_INFO(kLog, "{}: stopped (pid {}, {})", label_, pid, last_exit_);
      if (removed_) return sup_.erase(key_);  // destroys this: nothing after it
      if (next_spec_ && !sup_.stopping_all_) {
        adopt(*next_spec_);
        next_spec_.reset();
        return start();
      }
      state_ = InstanceState::Stopped;
      return sup_.check_stopped();
    }
    if (sup_.stopping_all_) {
      state_ = InstanceState::Stopped;
      return sup_.check_stopped();
    }
    schedule_restart(ran, fmt::format("pid {} exited with {} after {} ms", pid, last_exit_, ran));
  }

 private:
  LineSplitter& splitter(Stream s) { return s == Stream::Stdout ? out_ : err_; }

  /// capture = "iptables": makes the instance's network namespace (once: kept across
  /// restarts, like its ports), writes its hosts file, and has the launcher enter both.
  Status start_capture(std::vector<std::string>& args) {
    // The launcher ends with "--" (cli: `meshbox __workload-exec PID --`); its options go
    // before that.
    if (args.empty() || args.back() != "--")
      return make_error(Code::Internal,
                        "capture = \"iptables\": no workload launcher to enter the network "
                        "namespace");
    if (!netns_) {
      auto ns = CaptureNetns::create(sup_.capture_.cidr, sidecar_in_, sidecar_out_);
      if (!ns) return make_error(ns.error().code(), "capture: " + ns.error().message());
      netns_ = std::move(*ns);
    }
    update_hosts();
    args.insert(args.end() - 1, {"--netns", netns_->name(), "--hosts", netns_->hosts_path()});
    return Status::ok();
  }

  void emit(std::string_view line) {
    if (sup_.options_.echo_fd >= 0) {
      std::string out;
      out.reserve(label_.size() + line.size() + 4);
      out.append("[").append(label_).append("] ").append(line).append("\n");
      write_all(sup_.options_.echo_fd, out);  // one write: lines of threads do not mix
    }
    log_.write_line(line);
  }

  /// Takes a new spec: the port follows it, but a picked port is kept while it asks for 0.
  void adopt(const config::Workload& spec) {
    bool had_picked = port_picked_;
    spec_ = spec;
    restarts_ = 0;
    backoff_.reset();
    if (spec.port != 0) {
      port_ = spec.port;
      port_picked_ = false;
    } else if (!had_picked) {
      port_ = 0;  // picked at the start
      port_picked_ = true;
    }
  }

  void schedule_restart(uint64_t ran_ms, const std::string& why) {
    uint64_t delay = backoff_.next(ran_ms);
    state_ = InstanceState::Backoff;
    restart_at_ms_ = sup_.loop_.now_ms() + delay;
    MB_WARN(kLog, "{}: {}; restarting in {} ms", label_, why, delay);
    restart_timer_.start(delay);
  }

  void on_restart_timer() {
    if (state_ != InstanceState::Backoff) return;
    ++restarts_;
    start();
  }

  void stop(uint64_t grace_ms) {
    state_ = InstanceState::Stopping;
    sup_.changed();  // the endpoint leaves now, before the process does
    if (!has_process()) return;
    if (grace_ms == 0) {
      MB_INFO(kLog, "{}: killing pid {}", label_, proc_->pid());
      (void)proc_->signal(SIGKILL);
      return;
    }
    MB_INFO(kLog, "{}: SIGTERM to pid {}; SIGKILL in {} ms", label_, proc_->pid(), grace_ms);
    (void)proc_->signal(SIGTERM);
    kill_timer_.start(grace_ms);
  }

  void on_kill_timer() {
    if (!has_process()) return;
    MB_WARN(kLog, "{}: pid {} still runs {} ms after SIGTERM; SIGKILL", label_, proc_->pid(),
            sup_.options_.stop_grace_ms);
    (void)proc_->signal(SIGKILL);
  }

  Supervisor& sup_;
  std::string name_;   // NAME or NAME-I
  std::string key_;    // NS/NAME-I
  std::string label_;  // NAME-I in the default namespace, else NS/NAME-I: output prefix, log file
  config::Workload spec_;
  std::optional<config::Workload> next_spec_;  // restart with this once stopped
  bool removed_ = false;                       // erase once stopped
  uint32_t port_;
  uint32_t sidecar_in_ = 0;  // the sidecar's listeners on 127.0.0.1; 0 = not injected
  uint32_t sidecar_out_ = 0;
  // Before proc_: the namespace is removed after the process is gone.
  std::unique_ptr<CaptureNetns> netns_;
  bool port_picked_;  // port_ was chosen by meshbox (the spec says 0)
  InstanceState state_ = InstanceState::Backoff;
  loop::ProcessPtr proc_;
  uint32_t restarts_ = 0;
  std::string last_exit_;
  uint64_t started_ms_ = 0;
  uint64_t restart_at_ms_ = 0;
  Backoff backoff_;
  loop::Timer restart_timer_;
  loop::Timer kill_timer_;
  LineSplitter out_, err_;
  LogFile log_;
};

// ---------------------------------------------------------------------------------------
// Supervisor

Supervisor::Supervisor(loop::Loop& loop, SupervisorOptions options, OnChange on_change)
    : loop_(loop),
      options_(std::move(options)),
      on_change_(std::move(on_change)),
      notify_timer_(loop,
                    [this] {
                      if (!on_change_) return;
                      OnChange cb = on_change_;  // may destroy this Supervisor
                      cb();
                    }),
      attach_watch_timer_(loop, [this] { check_attached(); }) {
  // What a meshbox that died left of its captured instances (only root could make them).
  if (::geteuid() == 0) clean_stale_netns();
}

Supervisor::~Supervisor() {
  for (const auto& [key, inst] : instances_)
    if (inst->has_process()) MB_WARN(kLog, "{}: still running at exit; killing it", key);
  instances_.clear();  // each Process kills and reaps its child
}

void Supervisor::set_workloads(const std::vector<config::Workload>& workloads,
                               CaptureSettings capture) {
  if (stopping_all_) return;
  bool names_changed = capture.vips != capture_.vips;
  capture_ = std::move(capture);
  if (names_changed)
    for (const auto& [key, inst] : instances_)
      inst->update_hosts();
  struct Want {
    std::string name;
    const config::Workload* spec;
  };
  std::map<std::string, Want> want;
  for (const auto& w : workloads)
    for (auto& name : instance_names(w)) {
      std::string key = instance_key(w.ns, name);
      want.emplace(std::move(key), Want{std::move(name), &w});
    }
  std::vector<std::string> gone;
  for (const auto& [key, inst] : instances_)
    if (!want.count(key)) gone.push_back(key);
  for (const auto& key : gone) {
    auto it = instances_.find(key);
    if (it->second->remove()) instances_.erase(it);
  }
  for (const auto& [key, w] : want) {
    auto it = instances_.find(key);
    if (it != instances_.end()) {
      it->second->update(*w.spec);
      continue;
    }
    if (attached_.count(key)) {
      // Two instances of one name would share listener and cluster names.
      MB_WARN(kLog, "{}: an attached instance (meshbox inject) has this name; not started", key);
      continue;
    }
    // Port 0: picked by start(), once.
    auto inst = std::make_unique<Instance>(*this, w.name, *w.spec, w.spec->port);
    Instance& ref = *inst;
    instances_.emplace(key, std::move(inst));
    ref.start();
  }
}

std::vector<RunningInstance> Supervisor::running() const {
  std::vector<RunningInstance> out;
  for (const auto& [key, inst] : instances_)
    if (inst->serving())
      out.push_back({inst->name(), inst->port(), inst->sidecar_inbound_port(),
                     inst->sidecar_outbound_port(), &inst->spec(),
                     inst->netns() ? inst->netns()->path() : "",
                     inst->netns() ? inst->netns()->ip() : ""});
  for (const auto& [key, a] : attached_)
    out.push_back({a.spec.name, a.spec.port, a.sidecar_in, a.sidecar_out, &a.spec});
  return out;
}

std::vector<InstanceStatus> Supervisor::status() const {
  std::vector<InstanceStatus> out;
  out.reserve(instances_.size());
  for (const auto& [key, inst] : instances_)
    out.push_back(inst->status());
  for (const auto& [key, a] : attached_) {
    InstanceStatus s;
    s.ns = a.spec.ns;
    s.workload = a.spec.name;
    s.instance = a.spec.name;
    s.service = a.spec.service;
    s.pid = a.pid;
    s.port = a.spec.port;
    s.state = InstanceState::Attached;
    s.uptime_ms = loop_.now_ms() - a.attached_ms;
    s.attached = true;
    out.push_back(std::move(s));
  }
  return out;
}

void Supervisor::stop_all(std::function<void()> done) {
  stopping_all_ = true;
  stopped_ = std::move(done);
  for (const auto& [key, inst] : instances_)
    inst->shut_down();
  check_stopped();
}

void Supervisor::kill_all() {
  for (const auto& [key, inst] : instances_)
    inst->kill();
}

void Supervisor::changed() {
  notify_timer_.start(0);
}

void Supervisor::erase(std::string key) {
  instances_.erase(key);
  check_stopped();
}

void Supervisor::check_stopped() {
  if (!stopping_all_ || !stopped_) return;
  for (const auto& [key, inst] : instances_)
    if (inst->has_process()) return;
  MB_INFO(kLog, "every workload process has ended");
  // On a later iteration: `done` may tear down what called us.
  loop_.run_soon(std::move(stopped_));
  stopped_ = nullptr;
}

Result<uint32_t> Supervisor::pick_port(const std::string& address) {
  auto addr = dns::parse_ip(address, 0);
  if (!addr) addr = dns::parse_ip("127.0.0.1", 0);
  std::set<uint32_t> taken;
  for (const auto& [key, inst] : instances_) {
    taken.insert(inst->port());
    taken.insert(inst->sidecar_inbound_port());
    taken.insert(inst->sidecar_outbound_port());
  }
  for (const auto& [key, a] : attached_)
    taken.insert({a.spec.port, a.sidecar_in, a.sidecar_out});
  for (int attempt = 0; attempt < 16; ++attempt) {
    int fd = ::socket(addr->family(), SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
      return make_error(Code::Io, fmt::format("cannot pick a port: {}", std::strerror(errno)));
    if (::bind(fd, addr->sa(), addr->len()) != 0) {
      int err = errno;
      ::close(fd);
      return make_error(Code::Io,
                        fmt::format("cannot pick a port on {}: {}", address, std::strerror(err)));
    }
    auto bound = loop::bound_address(fd);
    ::close(fd);
    if (!bound) return bound.error();
    if (!taken.count(bound->port())) return static_cast<uint32_t>(bound->port());
  }
  return make_error(Code::Io, "cannot pick a port no other instance uses");
}

// ---------------------------------------------------------------------------------------
// Attached instances (manual injection)
//
// Watching the pid: a kAttachCheckMs timer reads /proc/PID/stat for each watched instance.
// A pidfd (pidfd_open + uv_poll) would report the exit at once, but it needs a poll-handle
// wrapper in core/loop and Linux 5.3; a read of /proc per instance per second is cheap, sees
// a zombie as gone (kill(pid, 0) would not, and an inject process killed under a parent that
// has not reaped it yet is one), and the start time catches a pid reused within the second.

Result<RunningInstance> Supervisor::attach(config::Workload spec, int pid) {
  if (stopping_all_) return make_error(Code::Unavailable, "meshbox is shutting down");
  std::string key = instance_key(spec.ns, spec.name);
  if (instances_.count(key) || attached_.count(key))
    return make_error(Code::AlreadyExists, fmt::format("an instance named {} already runs in "
                                                       "namespace {}",
                                                       spec.name, spec.ns));
  Attached a;
  a.pid = pid;
  if (pid != 0) {
    auto start_time = live_start_time(pid);
    if (!start_time)
      return make_error(Code::InvalidArgument, fmt::format("no running process has pid {}", pid));
    a.start_time = *start_time;
  }
  spec.command.clear();  // not a process of ours
  spec.replicas = 1;
  spec.inject = true;
  spec.capture = config::Capture::None;  // its traffic reaches the sidecar by HTTP_PROXY
  spec.address = "127.0.0.1";
  // In service once the app accepts connections (Kubernetes' tcpSocket readiness probe):
  // probed every 200 ms until then, at the default interval after.
  config::HealthCheck check;
  check.tcp = true;
  spec.health = check;
  a.spec = std::move(spec);
  a.attached_ms = loop_.now_ms();
  // In the map before the picks: pick_port skips the ports already taken there.
  Attached& ref = attached_.emplace(key, std::move(a)).first->second;
  for (uint32_t* p : {&ref.spec.port, &ref.sidecar_in, &ref.sidecar_out}) {
    if (*p != 0) continue;
    auto picked = pick_port("127.0.0.1");
    if (!picked) {
      attached_.erase(key);
      return picked.error();
    }
    *p = *picked;
  }
  MB_INFO(kLog, "{}: attached (pid {}, app port {}, sidecar ports {} in, {} out)", key, ref.pid,
          ref.spec.port, ref.sidecar_in, ref.sidecar_out);
  if (ref.pid != 0 && !attach_watch_timer_.active())
    attach_watch_timer_.start(kAttachCheckMs, kAttachCheckMs);
  changed();
  return RunningInstance{ref.spec.name, ref.spec.port, ref.sidecar_in, ref.sidecar_out, &ref.spec};
}

bool Supervisor::detach(const std::string& ns, const std::string& instance) {
  auto it = attached_.find(instance_key(ns, instance));
  if (it == attached_.end()) return false;
  MB_INFO(kLog, "{}: detached", it->first);
  attached_.erase(it);
  changed();
  return true;
}

void Supervisor::check_attached() {
  bool watching = false;
  for (auto it = attached_.begin(); it != attached_.end();) {
    const Attached& a = it->second;
    if (a.pid == 0) {
      ++it;
      continue;
    }
    auto start_time = live_start_time(a.pid);
    if (start_time && *start_time == a.start_time) {
      watching = true;
      ++it;
      continue;
    }
    MB_WARN(kLog, "{}: pid {} is gone without detaching; dropping the instance", it->first, a.pid);
    it = attached_.erase(it);
    changed();
  }
  if (!watching) attach_watch_timer_.stop();
}

}  // namespace meshbox::control
