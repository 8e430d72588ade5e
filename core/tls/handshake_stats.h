// Process-wide TLS handshake counters: full and resumed handshakes, as a client and as a
// server, and failed ones. Enough to see that pooled upstream connections resume their
// sessions (GET /stats/tls on the admin API). Thread-safe: relaxed atomics, bumped once per
// handshake (next to a handshake's cost, nothing).
#pragma once

#include <cstdint>

namespace meshbox::tls {

struct HandshakeCounts {
  uint64_t client_full = 0;
  uint64_t client_resumed = 0;
  uint64_t client_failed = 0;
  uint64_t server_full = 0;
  uint64_t server_resumed = 0;
  uint64_t server_failed = 0;
};

/// A handshake finished (`ok`) or failed; `resumed` only counts when ok.
void count_handshake(bool client, bool ok, bool resumed);
/// The counts so far (each read on its own: a snapshot only approximately consistent).
HandshakeCounts handshake_counts();

}  // namespace meshbox::tls
