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
    : control_(control), mailbox_(control), on_failure_(std::move(on_failure)) {
  applied_.assign(static_cast<size_t>(workers), 0);
  for (int w = 0; w < workers; ++w) {
    workers_.push_back(std::make_unique<data::Worker>(
        w, publisher_, shared_clusters_,
        [this](int id, uint64_t version, const Status& status) {
          // On the worker's thread: report to the control loop.
          mailbox_.post([this, id, version, status] { on_applied(id, version, status); });
        },
        dns));
  }
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
