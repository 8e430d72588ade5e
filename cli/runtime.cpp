#include "cli/runtime.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/base/log.h"
#include "core/loop/tcp_listener.h"

namespace meshbox::cli {

namespace {

constexpr size_t kLatencySamples = 1024;

// A socket bound to `requested` with SO_REUSEPORT but not listening: it keeps the port (and
// resolves port 0) without taking connections, so the workers' listening sockets get them
// all. A plain probe bind first refuses a port anyone else holds, even with SO_REUSEPORT.
Result<std::pair<int, loop::Address>> reserve(const loop::Address& requested) {
  auto probe = loop::bind_listeners(requested, 0);
  if (!probe) return probe.error();
  int fd = ::socket(requested.family(), SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Status(Code::Io, std::string("socket: ") + std::strerror(errno));
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  if (::bind(fd, requested.sa(), requested.len()) != 0) {
    int err = errno;
    ::close(fd);
    return Status(Code::Io,
                  "cannot listen on " + requested.to_string() + ": " + std::strerror(err));
  }
  auto bound = loop::bound_address(fd);
  if (!bound) {
    ::close(fd);
    return bound.error();
  }
  return std::make_pair(fd, *bound);
}

}  // namespace

Runtime::Runtime(loop::Loop& control, int workers, std::function<void(const Status&)> on_failure,
                 dns::ResolverOptions dns)
    : control_(control),
      mailbox_(control),
      on_failure_(std::move(on_failure)),
      registry_(static_cast<size_t>(workers) + 1),
      istio_metrics_(registry_),
      tap_hub_([this](std::function<void()> task) { mailbox_.post(std::move(task)); }) {
  applied_.assign(static_cast<size_t>(workers), 0);
  for (int w = 0; w < workers; ++w) {
    workers_.push_back(std::make_unique<data::Worker>(
        w, publisher_, shared_clusters_,
        [this](int id, uint64_t version, const Status& status) {
          // On the worker's thread: report to the control loop.
          mailbox_.post([this, id, version, status] { on_applied(id, version, status); });
        },
        dns));
    metrics_observers_.push_back(
        std::make_unique<data::MetricsObserver>(istio_metrics_, static_cast<size_t>(w)));
    workers_.back()->telemetry().add(metrics_observers_.back().get());
    // Access logs: every listener whose spec asks for them (ListenerSpec::access_log).
    access_loggers_.push_back(std::make_unique<data::AccessLogger>(workers_.back()->loop(),
                                                                   &workers_.back()->snapshot()));
    workers_.back()->telemetry().add(access_loggers_.back().get());
    // Tracing: every listener whose spec traces (ListenerSpec::tracing).
    tracing_observers_.push_back(std::make_unique<data::TracingObserver>(workers_.back()->loop()));
    workers_.back()->telemetry().add(tracing_observers_.back().get());
    tap_observers_.push_back(std::make_unique<data::TapObserver>(tap_hub_, w));
    workers_.back()->telemetry().add(tap_observers_.back().get());
  }
  // The Zipkin reporters' counters, summed over the workers at every scrape.
  auto tracing_counter = [this](std::string name, std::string help,
                                std::atomic<uint64_t> trace::ReporterStats::*field) {
    registry_.callback(std::move(name), std::move(help), stats::Type::Counter, {},
                       [this, field](stats::Samples& out) {
                         uint64_t n = 0;
                         for (const auto& o : tracing_observers_)
                           n += trace::ReporterStats::read(o->stats().*field);
                         out.add(static_cast<double>(n));
                       });
  };
  tracing_counter("meshbox_tracing_spans_reported_total", "Spans the Zipkin collector accepted.",
                  &trace::ReporterStats::spans_reported);
  tracing_counter("meshbox_tracing_spans_dropped_total",
                  "Spans dropped before sending: the reporter's buffer was full.",
                  &trace::ReporterStats::spans_dropped);
  tracing_counter("meshbox_tracing_spans_failed_total",
                  "Spans lost in batches the collector did not accept (down, error, timeout).",
                  &trace::ReporterStats::spans_failed);
  tracing_counter("meshbox_tracing_batches_failed_total",
                  "Batches of spans the collector did not accept.",
                  &trace::ReporterStats::batches_failed);
  static constexpr double kPushBounds[] = {0.001, 0.002, 0.005, 0.01, 0.025, 0.05,
                                           0.1,   0.25,  0.5,   1,    2.5,   5};
  stats::Shard& push_shard =
      registry_
          .histogram("meshbox_config_push_duration_seconds",
                     "Config push latency: snapshot published → applied by every worker.", {},
                     kPushBounds)
          .shard(static_cast<size_t>(workers));
  push_ms_ = push_shard.histogram();
  pushes_ = registry_
                .counter("meshbox_config_pushes_total",
                         "Snapshots every worker applied (versions skipped by a slow worker "
                         "count).")
                .shard(static_cast<size_t>(workers))
                .counter();
  // One worker per CPU of the process's set, at most: each pinned to its own, so that a hop
  // from a gateway or sidecar to another listener of this process stays on the worker that
  // made it (Worker::pin_to_cpu). With more workers than CPUs, nothing is pinned.
  set_cpu_pinning(true);
}

void Runtime::set_cpu_pinning(bool on) {
  std::vector<int> cpus = loop::allowed_cpus();
  bool pin = on && workers_.size() > 1 && workers_.size() <= cpus.size();
  for (size_t w = 0; w < workers_.size(); ++w)
    workers_[w]->pin_to_cpu(pin ? cpus[w] : -1);
}

Runtime::~Runtime() {
  join();
  for (auto& [key, r] : reservations_)
    ::close(r.fd);
}

Result<SnapshotConstPtr> Runtime::publish(std::shared_ptr<Snapshot> snap) {
  // Reserve every new address before anything is published: all or nothing.
  std::map<std::string, Reservation> next;
  std::vector<int> fresh;
  for (auto& l : snap->listeners) {
    // A listener in a workload's network namespace has a concrete port already, and nothing
    // in meshbox's own namespace to reserve.
    if (!l.netns.empty()) continue;
    std::string key = l.address.to_string();
    if (auto it = next.find(key); it != next.end()) {
      l.address = it->second.address;
      continue;
    }
    if (auto it = reservations_.find(key); it != reservations_.end()) {
      next.emplace(key, it->second);
      l.address = it->second.address;
      continue;
    }
    auto r = reserve(l.address);
    if (!r) {
      for (int fd : fresh)
        ::close(fd);
      return Status(r.error().code(), "listener " + l.name + ": " + r.error().message());
    }
    fresh.push_back(r->first);
    next.emplace(key, Reservation{r->first, r->second});
    l.address = r->second;
  }
  for (auto& [key, r] : reservations_)
    if (!next.count(key)) ::close(r.fd);
  reservations_ = std::move(next);

  snap->version = next_version_++;
  current_ = snap;
  published_at_[snap->version] = std::chrono::steady_clock::now();
  publisher_.publish(current_);
  if (!started_) {
    started_ = true;
    for (auto& w : workers_)
      w->start();
  } else {
    for (auto& w : workers_)
      w->notify();
  }
  return current_;
}

void Runtime::on_applied(int worker, uint64_t version, const Status& status) {
  if (!status.is_ok()) {
    MB_ERROR("meshbox", "worker {}: snapshot {}: {}", worker, version, status.message());
    if (on_failure_) on_failure_(status);
  }
  applied_[static_cast<size_t>(worker)] = version;
  uint64_t min = version;
  for (uint64_t v : applied_)
    min = std::min(min, v);
  if (min <= applied_min_) return;
  applied_min_ = min;
  auto now = std::chrono::steady_clock::now();
  for (auto it = published_at_.begin(); it != published_at_.end() && it->first <= min;) {
    // Versions a slow worker skipped count too: they reached it as part of a newer one.
    double ms = std::chrono::duration<double, std::milli>(now - it->second).count();
    latencies_ms_.push_back(ms);
    push_ms_.record(ms / 1000);
    pushes_.inc();
    if (latencies_ms_.size() > kLatencySamples) latencies_ms_.pop_front();
    it = published_at_.erase(it);
  }
  while (!waiters_.empty() && waiters_.begin()->first <= min) {
    auto fn = std::move(waiters_.begin()->second);
    waiters_.erase(waiters_.begin());
    fn();
  }
}

void Runtime::when_applied(uint64_t version, std::function<void()> done) {
  if (version <= applied_min_) return done();
  waiters_.emplace(version, std::move(done));
}

std::vector<double> Runtime::push_latencies_ms() const {
  return {latencies_ms_.begin(), latencies_ms_.end()};
}

void Runtime::drain(uint64_t deadline_ms) {
  for (auto& w : workers_)
    w->drain(deadline_ms);
  mailbox_.unref();
}

void Runtime::join() {
  for (auto& w : workers_) {
    Status s = w->join();
    if (!s.is_ok()) MB_WARN("meshbox", "worker {}: {}", w->id(), s.message());
  }
  workers_.clear();
}

std::string Runtime::listener_lines() const {
  std::string out;
  if (!current_) return out;
  for (const auto& l : current_->listeners)
    out += l.name + " " + l.address.to_string() + "\n";
  return out;
}

}  // namespace meshbox::cli
