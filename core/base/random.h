// Fast non-cryptographic randomness for the request path (request ids, load-balancer picks):
// xoshiro256** seeded from BoringSSL's RAND_bytes. One generator per thread; not shared.
#pragma once

#include <cstdint>
#include <string>

namespace meshbox {

class Random {
 public:
  Random();  // seeded from the system's CSPRNG
  explicit Random(uint64_t seed);
  uint64_t next();
  /// Uniform in [0, bound).
  uint64_t below(uint64_t bound) { return bound ? next() % bound : 0; }
  /// A random (version 4) UUID in its 36-character text form, for x-request-id.
  std::string uuid4();
  /// The same, written into `out` (36 bytes, not NUL-terminated): no allocation.
  void uuid4(char* out);

 private:
  uint64_t s_[4];
};

}  // namespace meshbox
