#include "test/support/load.h"

#include <algorithm>
#include <cstring>

#include "test/support/http_response.h"

namespace meshbox::test {

namespace {

constexpr auto kRequestTimeout = 10s;
constexpr size_t kMaxFailures = 20;

}  // namespace

uint64_t LoadCounts::of(const std::string& backend) const {
  auto it = backends.find(backend);
  return it == backends.end() ? 0 : it->second;
}

double LoadCounts::percent(const std::string& backend) const {
  return ok == 0 ? 0.0 : 100.0 * static_cast<double>(of(backend)) / static_cast<double>(ok);
}

std::string LoadCounts::summary() const {
  std::string s = std::to_string(ok) + " ok, " + std::to_string(failed) + " failed";
  for (const auto& [name, n] : backends)
    s +=
        ", " + (name.empty() ? std::string("(no x-backend-name)") : name) + " " + std::to_string(n);
  return s;
}

LoadLoop::LoadLoop(LoadOptions opts)
    : opts_(std::move(opts)), finished_(static_cast<size_t>(opts_.clients), -1) {
  for (size_t i = 0; i < finished_.size(); ++i)
    threads_.emplace_back([this, i] { client(i); });
}

LoadLoop::~LoadLoop() {
  stop();
}

bool LoadLoop::set_phase(int phase, Deadline deadline) {
  phase_.store(phase, std::memory_order_release);
  std::unique_lock lock(mu_);
  auto behind = [&] {
    return std::any_of(finished_.begin(), finished_.end(), [&](int p) { return p < phase; });
  };
  while (behind()) {
    if (deadline.expired()) return false;
    changed_.wait_for(lock, std::chrono::milliseconds(deadline.poll_ms()));
  }
  return true;
}

bool LoadLoop::wait_for(int phase, uint64_t n, Deadline deadline) {
  std::unique_lock lock(mu_);
  while (phases_[phase].total() < n) {
    if (deadline.expired()) return false;
    changed_.wait_for(lock, std::chrono::milliseconds(deadline.poll_ms()));
  }
  return true;
}

void LoadLoop::stop() {
  stop_.store(true);
  for (auto& t : threads_)
    if (t.joinable()) t.join();
}

LoadCounts LoadLoop::counts(int phase) const {
  std::lock_guard lock(mu_);
  auto it = phases_.find(phase);
  return it == phases_.end() ? LoadCounts{} : it->second;
}

LoadCounts LoadLoop::total() const {
  std::lock_guard lock(mu_);
  LoadCounts all;
  for (const auto& [phase, c] : phases_) {
    all.ok += c.ok;
    all.failed += c.failed;
    for (const auto& [name, n] : c.backends)
      all.backends[name] += n;
  }
  return all;
}

uint64_t LoadLoop::reconnects() const {
  std::lock_guard lock(mu_);
  return reconnects_;
}

std::vector<std::string> LoadLoop::failures() const {
  std::lock_guard lock(mu_);
  return failures_;
}

std::string LoadLoop::summary() const {
  std::lock_guard lock(mu_);
  std::string s;
  for (const auto& [phase, c] : phases_)
    s += "phase " + std::to_string(phase) + ": " + c.summary() + "\n";
  return s + std::to_string(reconnects_) + " reconnects";
}

void LoadLoop::record(size_t client, int phase, bool ok, const std::string& backend,
                      std::string failure) {
  {
    std::lock_guard lock(mu_);
    finished_[client] = phase;
    LoadCounts& c = phases_[phase];
    if (ok) {
      c.ok++;
      c.backends[backend]++;
    } else {
      c.failed++;
      if (failures_.size() < kMaxFailures)
        failures_.push_back("phase " + std::to_string(phase) + ": " + std::move(failure));
    }
  }
  changed_.notify_all();
}

void LoadLoop::client(size_t index) {
  HttpClient conn;
  auto replace = [&] {
    conn = HttpClient();
    std::lock_guard lock(mu_);
    reconnects_++;
  };
  while (!stop_.load(std::memory_order_relaxed)) {
    // Read before anything is sent: a request counts in a phase only if it left after the
    // phase began.
    int phase = phase_.load(std::memory_order_acquire);
    if (!conn.valid()) {
      int err = 0;
      conn = HttpClient::connect(opts_.address, Deadline(kRequestTimeout), &err);
      if (!conn.valid()) {
        record(index, phase, false, "", "connect failed: " + std::string(std::strerror(err)));
        poll_pause(10ms);  // a refused connect returns at once: do not spin on it
        continue;
      }
    }
    if (!conn.send(opts_.request, Deadline(kRequestTimeout))) {
      record(index, phase, false, "", "send failed: " + conn.conn().last_error());
      replace();
      continue;
    }
    HttpResponse r = conn.read_response(Deadline(kRequestTimeout));
    if (!r.complete || r.status < 200 || r.status > 299) {
      std::string what = r.summary();
      if (const std::string* b = r.header("x-backend-name")) what += " from " + *b;
      if (!r.body.empty()) what += ": " + r.body.substr(0, 80);
      record(index, phase, false, "", std::move(what));
      replace();
      continue;
    }
    const std::string* backend = r.header("x-backend-name");
    record(index, phase, true, backend ? *backend : std::string(), {});
    if (const std::string* c = r.header("connection"); c && iequals(*c, "close")) replace();
  }
}

}  // namespace meshbox::test
