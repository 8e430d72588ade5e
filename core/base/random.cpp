#include "core/base/random.h"

#include <openssl/rand.h>

namespace meshbox {

namespace {
inline uint64_t rotl(uint64_t x, int k) {
  return (x << k) | (x >> (64 - k));
}
uint64_t splitmix(uint64_t& x) {
  uint64_t z = (x += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}
}  // namespace

Random::Random() {
  uint64_t seed = 0;
  RAND_bytes(reinterpret_cast<uint8_t*>(&seed), sizeof seed);
  for (auto& s : s_)
    s = splitmix(seed);
}

Random::Random(uint64_t seed) {
  for (auto& s : s_)
    s = splitmix(seed);
}

uint64_t Random::next() {
  uint64_t result = rotl(s_[1] * 5, 7) * 9;
  uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = rotl(s_[3], 45);
  return result;
}

std::string Random::uuid4() {
  std::string out(36, '-');
  uuid4(out.data());
  return out;
}

void Random::uuid4(char* out) {
  static constexpr char kHex[] = "0123456789abcdef";
  uint64_t hi = next(), lo = next();
  hi = (hi & ~0xf000ULL) | 0x4000ULL;                         // version 4
  lo = (lo & 0x3fffffffffffffffULL) | 0x8000000000000000ULL;  // variant 10
  out[8] = out[13] = out[18] = out[23] = '-';
  int pos = 0;
  auto put = [&](uint64_t v, int nibbles) {
    for (int i = nibbles - 1; i >= 0; --i) {
      if (pos == 8 || pos == 13 || pos == 18 || pos == 23) ++pos;
      out[pos++] = kHex[(v >> (i * 4)) & 0xf];
    }
  };
  put(hi, 16);
  put(lo, 16);
}

}  // namespace meshbox
