#include "core/tls/handshake_stats.h"

#include <atomic>

namespace meshbox::tls {

namespace {

struct Counters {
  std::atomic<uint64_t> full[2]{}, resumed[2]{}, failed[2]{};  // [0] server, [1] client
};

Counters& counters() {
  static Counters c;
  return c;
}

}  // namespace

void count_handshake(bool client, bool ok, bool resumed) {
  Counters& c = counters();
  int i = client ? 1 : 0;
  auto& which = !ok ? c.failed[i] : resumed ? c.resumed[i] : c.full[i];
  which.fetch_add(1, std::memory_order_relaxed);
}

HandshakeCounts handshake_counts() {
  Counters& c = counters();
  auto get = [](const std::atomic<uint64_t>& a) { return a.load(std::memory_order_relaxed); };
  return {get(c.full[1]), get(c.resumed[1]), get(c.failed[1]),
          get(c.full[0]), get(c.resumed[0]), get(c.failed[0])};
}

}  // namespace meshbox::tls
