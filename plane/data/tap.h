// TapHub and TapObserver: the data plane's side of `meshbox tap` (plane/tap.h).
//
// The hub lives on the control loop and keeps the open sessions. It publishes their filters
// to the workers lock-free: an immutable TapFilters behind an atomic shared_ptr, a generation
// number that rises with every change, and a count of open sessions. A worker's TapObserver
// reads the count (one relaxed atomic load) on every request and stops there when it is 0;
// otherwise it re-reads the filters only when the generation moved, matches the request, and
// posts a copy (TapEvent) to the control loop, at most kMaxEventsPerSecond per worker: beyond
// that the event is dropped and counted, so a tap never slows the proxy.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <utility>
#include <vector>

#include "core/base/non_copyable.h"
#include "plane/data/telemetry.h"
#include "plane/tap.h"

namespace meshbox::data {

/// The open sessions' filters, as the workers see them. Immutable after publish.
struct TapFilters {
  std::vector<std::pair<uint64_t, TapFilter>> sessions;  // (id, filter)
};

/// Whether `r` is one of the requests `f` asks for.
bool tap_matches(const TapFilter& f, const RequestRecord& r);
/// The copy of `r` a session gets.
TapEvent tap_event(const RequestRecord& r, int worker);

class TapHub : public TapSource, NonCopyable {
 public:
  /// Events a worker delivers per second of wall time, at most; the rest are dropped.
  static constexpr uint32_t kMaxEventsPerSecond = 200;
  /// Runs a task on the control loop; Thread-safe (the runtime's mailbox).
  using Post = std::function<void(std::function<void()>)>;

  explicit TapHub(Post post);

  // TapSource: Loop thread only (the control loop).
  uint64_t start(TapFilter filter, Sink sink) override;
  void stop(uint64_t session) override;
  size_t sessions() const override { return sessions_.size(); }
  uint64_t dropped() const override { return dropped_.load(std::memory_order_relaxed); }

  // Thread-safe: the workers' side.
  /// Any session open? One relaxed load: the whole cost of tap when none is.
  bool active() const { return active_.load(std::memory_order_relaxed) != 0; }
  /// Rises whenever the filters change.
  uint64_t generation() const { return generation_.load(std::memory_order_acquire); }
  std::shared_ptr<const TapFilters> filters() const {
    return filters_.load(std::memory_order_acquire);
  }
  /// Hands `event` to the sessions `ids` on the control loop.
  void deliver(TapEvent event, std::vector<uint64_t> ids);
  void count_dropped() { dropped_.fetch_add(1, std::memory_order_relaxed); }

 private:
  struct Session {
    TapFilter filter;
    Sink sink;
  };
  void publish();
  void on_event(const TapEvent& event, const std::vector<uint64_t>& ids);

  Post post_;
  std::map<uint64_t, Session> sessions_;  // control loop only
  uint64_t next_id_ = 1;
  std::atomic<std::shared_ptr<const TapFilters>> filters_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<uint32_t> active_{0};
  std::atomic<uint64_t> dropped_{0};
};

/// One worker's tap. Loop thread only (its worker's); the hub outlives it.
class TapObserver : public TelemetryObserver {
 public:
  TapObserver(TapHub& hub, int worker) : hub_(hub), worker_(worker) {}
  void on_request(const RequestRecord& r) override;

 private:
  TapHub& hub_;
  int worker_;
  uint64_t generation_ = 0;
  std::shared_ptr<const TapFilters> filters_;
  uint64_t second_ = 0;  // the wall-clock second being counted
  uint32_t sent_ = 0;    // events posted in it
};

}  // namespace meshbox::data
