// Supervisor: runs the workloads that have a `command` as child processes, as Kubernetes'
// kubelet runs a Deployment's pods (docs/mesh.md, "Workloads as processes"). Loop thread only
// (the control loop).
//
// - Instances. A workload with `replicas = N` is N instances, NAME when N is 1, NAME-0 …
//   NAME-{N-1} otherwise; each is one process with a port of its own: the workload's `port`,
//   or, when that is 0, a free port picked once per instance (bind IP:0, read it, close) and
//   kept across restarts and config changes.
// - The child. argv is `command` with ${PORT} replaced; the environment is meshbox's, then the
//   workload's `env` (${PORT} replaced in values too), then PORT, MESHBOX_WORKLOAD (the
//   instance) and MESHBOX_SERVICE; the working directory is `working_dir`. Each child leads a
//   process group of its own (loop::Process), and with a launcher (cli: `meshbox
//   __workload-exec`) asks the kernel to SIGKILL it if meshbox dies (PR_SET_PDEATHSIG).
// - Output. Every line the child writes to stdout or stderr goes to meshbox's stderr as
//   "[INSTANCE] line" and is appended to LOG_DIR/INSTANCE.log (LOG_DIR/NS/INSTANCE.log outside
//   the default namespace), which is rotated to .1 past max_log_bytes. Pipes are read by the
//   loop; partial lines wait for their end (or the exit).
// - Restarts. A child that exits, whatever its status, is started again after a back-off
//   (Backoff: 1 s, 2 s, 4 s … 30 s; back to 1 s once a run lasted 10 s).
// - Changes. set_workloads() reconciles: an instance whose workload is gone is stopped
//   (SIGTERM to its group, SIGKILL after stop_grace_ms) and forgotten; one whose process would
//   differ (same_process) is stopped and started again with the new spec; the others keep
//   running and only take the new labels, weight, health check … for their endpoint.
// - Attached instances (manual injection, `meshbox inject`): processes meshbox did not start
//   join the mesh with attach() and leave with detach(), or when their pid is gone. They get a
//   sidecar like the others (ports picked the same way) and a TCP check of the app's port;
//   nothing else of the above applies to them (no output, no restarts, no stop).
// - OnChange runs (coalesced, on a later loop iteration, never from inside a call) when the
//   set of running instances changed: the control plane then rebuilds their endpoints.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/base/non_copyable.h"
#include "core/base/result.h"
#include "core/loop/loop.h"
#include "core/loop/timer.h"
#include "plane/config/resources.h"
#include "plane/control/netns.h"

namespace meshbox::control {

/// Restart delays after a child exited: initial_ms, doubling up to max_ms; a run that lasted
/// reset_after_ms or longer starts the sequence over. A plain value.
class Backoff {
 public:
  struct Options {
    uint64_t initial_ms = 1'000;
    uint64_t max_ms = 30'000;
    uint64_t reset_after_ms = 10'000;
  };
  Backoff() = default;
  explicit Backoff(Options options) : options_(options) {}
  /// The delay before restarting a process that ran `ran_ms` before it exited.
  uint64_t next(uint64_t ran_ms);
  void reset() { last_ms_ = 0; }

 private:
  Options options_;
  uint64_t last_ms_ = 0;  // the previous delay; 0 = none since the last reset
};

/// Cuts a byte stream into lines: complete lines are handed out at once, a partial line waits
/// for its end (or finish()), a line longer than kMaxLine is handed out in pieces. A trailing
/// "\r" is dropped. A plain value.
class LineSplitter {
 public:
  static constexpr size_t kMaxLine = 16 * 1024;
  using OnLine = std::function<void(std::string_view)>;
  void feed(std::string_view data, const OnLine& on_line);
  /// Hands out what is left (a last line without "\n").
  void finish(const OnLine& on_line);

 private:
  std::string partial_;
};

/// "${PORT}" → the port, everywhere in `text`.
std::string expand_port(std::string_view text, uint32_t port);
/// The instance names of a workload: NAME, or NAME-0 … NAME-{N-1} for replicas N > 1 (none
/// for 0 replicas or no command).
std::vector<std::string> instance_names(const config::Workload& w);
/// The child's argv: `command` with ${PORT} expanded.
std::vector<std::string> instance_args(const config::Workload& w, uint32_t port);
/// The child's environment: `base` (NAME=VALUE), then the workload's env (values expanded),
/// then PORT, MESHBOX_WORKLOAD, MESHBOX_SERVICE; a later entry replaces an earlier one of the
/// same name, in place.
/// With `outbound_port` (a sidecar's), also HTTP_PROXY and http_proxy naming it, and
/// NO_PROXY and no_proxy for loopback: the app's calls to other services go through it.
std::vector<std::string> instance_env(const std::vector<std::string>& base,
                                      const config::Workload& w, std::string_view instance,
                                      uint32_t port, uint32_t outbound_port = 0);
/// True if an instance of `a` may keep running as an instance of `b`: everything the process
/// sees is the same (name, namespace, service, command, env, working_dir, address, port).
/// Labels, weight, locality, health and replicas only change endpoints.
bool same_process(const config::Workload& a, const config::Workload& b);

struct SupervisorOptions {
  /// Where INSTANCE.log files go (STATE_DIR/logs); empty = no log files.
  std::string log_dir;
  uint64_t max_log_bytes = 10 * 1024 * 1024;
  /// Each output line also goes to this fd (stderr) as "[INSTANCE] line"; -1 = nowhere.
  int echo_fd = 2;
  /// meshbox's environment (NAME=VALUE), the base of every child's.
  std::vector<std::string> environment;
  /// argv put before every command, e.g. {"/proc/self/exe", "__workload-exec", PID, "--"}.
  std::vector<std::string> launcher;
  /// SIGTERM → SIGKILL, for instances stopped by a config change and at shutdown.
  uint64_t stop_grace_ms = 5'000;
  Backoff::Options backoff;
};

enum class InstanceState {
  Running,   // the process runs (its endpoint is registered, health permitting)
  Backoff,   // it exited (or could not start); restarted when the back-off ends
  Stopping,  // SIGTERM sent (removed, changed, or shutting down); SIGKILL at the grace
  Stopped,   // ended for good: meshbox is shutting down
  Attached,  // a process meshbox did not start (attach()); it serves until detached or gone
};
std::string_view to_string(InstanceState state);

/// One instance, for /workloads.
struct InstanceStatus {
  std::string ns, workload, instance, service;
  int pid = 0;  // 0: no process now
  uint32_t port = 0;
  InstanceState state = InstanceState::Stopped;
  uint32_t restarts = 0;       // since its spec last changed
  std::string last_exit;       // "exit status 1", "signal 9 (Killed)", "cannot run …"; "" = none
  uint64_t uptime_ms = 0;      // Running: since the start
  uint64_t restart_in_ms = 0;  // Backoff: until the next start
  bool attached = false;       // attach(): uptime_ms counts from the attach
};

/// An instance whose process runs and is not being stopped: what its endpoint is made of.
/// `workload` points into the Supervisor: valid until its next non-const call.
struct RunningInstance {
  std::string instance;
  uint32_t port = 0;
  uint32_t sidecar_inbound_port = 0;  // 0: not injected
  uint32_t sidecar_outbound_port = 0;
  const config::Workload* workload = nullptr;
  /// capture = "iptables": the instance's network namespace (/run/netns/NAME) and its address
  /// there, where the mesh reaches it; "" otherwise.
  std::string netns = {};
  std::string netns_ip = {};
};

/// What captured instances (capture = "iptables", plane/control/netns.h) take from the mesh
/// config besides their workload.
struct CaptureSettings {
  std::string cidr = "10.250.0.0/16";  // mesh.capture_cidr
  std::vector<ServiceVip> vips;        // the names in their hosts files
};

class Supervisor : NonCopyable {
 public:
  using OnChange = std::function<void()>;
  Supervisor(loop::Loop& loop, SupervisorOptions options, OnChange on_change);
  /// Kills (SIGKILL) and reaps every child still running: call stop_all() first for a
  /// graceful end.
  ~Supervisor();

  /// Reconciles the instances with `workloads` (those without command are ignored); new
  /// instances start now. Ignored once stop_all() was called.
  void set_workloads(const std::vector<config::Workload>& workloads, CaptureSettings capture = {});
  /// Running instances, by namespace and instance name.
  std::vector<RunningInstance> running() const;
  std::vector<InstanceStatus> status() const;

  /// Stops every instance (SIGTERM, SIGKILL after stop_grace_ms) and restarts none; `done`
  /// runs on a later loop iteration once every process has exited and been reaped.
  void stop_all(std::function<void()> done);
  /// SIGKILL to every process now (a second Ctrl-C).
  void kill_all();

  /// Manual injection: a process meshbox did not start joins as instance `spec.name` (in
  /// spec.ns) of spec.service, with a sidecar whose two ports are picked now, as is the app's
  /// port when spec.port is 0. Its endpoint is made of `spec` (labels, service account …) with
  /// a TCP health check of the app's port, so it is in service once the app listens. It stays
  /// running() until detach(), or, when `pid` is not 0, until that process is gone: checked
  /// every kAttachCheckMs (see "Attached instances" in supervisor.cpp). Fails with AlreadyExists if
  /// an instance has that name, InvalidArgument if `pid` names no live process, Io if no port
  /// can be picked. The result's workload points into the Supervisor (see RunningInstance).
  Result<RunningInstance> attach(config::Workload spec, int pid);
  /// Ends an attachment; false if no attached instance has that name.
  bool detach(const std::string& ns, const std::string& instance);
  static constexpr uint64_t kAttachCheckMs = 1'000;

 private:
  class Instance;
  friend class Instance;
  struct Attached {
    config::Workload spec;  // name = the instance; port = the app's
    uint32_t sidecar_in = 0, sidecar_out = 0;
    int pid = 0;              // 0: not watched
    uint64_t start_time = 0;  // the pid's, from /proc: a reused pid is another process
    uint64_t attached_ms = 0;
  };
  /// Drops attached instances whose process is gone (the watch timer).
  void check_attached();
  /// Schedules OnChange.
  void changed();
  /// An instance ended and is not wanted any more.
  void erase(std::string key);  // a copy: the instance's own key dies with it
  void check_stopped();
  /// A free port on `address` that no instance uses.
  Result<uint32_t> pick_port(const std::string& address);

  loop::Loop& loop_;
  SupervisorOptions options_;
  OnChange on_change_;
  CaptureSettings capture_;
  loop::Timer notify_timer_;                                    // coalesces OnChange (see Registry)
  std::map<std::string, std::unique_ptr<Instance>> instances_;  // by "NS/INSTANCE"
  std::map<std::string, Attached> attached_;                    // by "NS/INSTANCE"
  loop::Timer attach_watch_timer_;  // runs while an attached instance has a pid
  bool stopping_all_ = false;
  std::function<void()> stopped_;
};

}  // namespace meshbox::control
