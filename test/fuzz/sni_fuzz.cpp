// Fuzz target for plane/data/sni.h (parse_sni). Beyond "never crash or read out of bounds" it
// checks that an answer is final (a prefix of the input either needs more or gives the same
// answer as the whole), that a server name is a host name (1-255 printable bytes), and that
// how a handshake message is cut into records does not change the answer: the input is also
// parsed as a handshake message, wrapped in one record and in records of sizes drawn from the
// input.
//
// libFuzzer entry point; in normal builds replay_main.cpp runs the corpus through it.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "plane/data/sni.h"

namespace {

using meshbox::data::kMaxClientHelloBytes;
using meshbox::data::parse_sni;
using meshbox::data::SniResult;

[[noreturn]] void die(const char* what) {
  std::fprintf(stderr, "sni_fuzz: invariant broken: %s\n", what);
  std::abort();
}

uint64_t mix(uint64_t& x) {
  uint64_t z = (x += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

bool same(const SniResult& a, const SniResult& b) {
  return a.kind == b.kind && a.name == b.name;
}

void check_result(const SniResult& r) {
  bool terminal_error = r.kind == SniResult::Kind::NotTls || r.kind == SniResult::Kind::Error;
  if (terminal_error && r.error.empty()) die("an error without a reason");
  if (r.kind != SniResult::Kind::Sni && !r.name.empty()) die("a name without Sni");
  if (r.kind == SniResult::Kind::Sni) {
    if (r.name.empty() || r.name.size() > 255) die("a server name of bad length");
    for (char c : r.name)
      if (static_cast<unsigned char>(c) <= 0x20 || static_cast<unsigned char>(c) >= 0x7f)
        die("a server name with a byte no host name has");
  }
}

// `in` as the input, and as prefixes of it at points drawn from `seed`.
void check_prefixes(std::string_view in, uint64_t seed) {
  SniResult whole = parse_sni(in);
  check_result(whole);
  for (size_t n = 0; n < in.size(); n += 1 + mix(seed) % 64) {
    SniResult part = parse_sni(in.substr(0, n));
    check_result(part);
    if (part.kind != SniResult::Kind::NeedMore && !same(part, whole))
      die("an answer changed when more bytes arrived");
  }
}

std::string record(std::string_view payload) {
  std::string out = "\x16\x03\x01";
  out.push_back(static_cast<char>(payload.size() >> 8));
  out.push_back(static_cast<char>(payload.size() & 0xff));
  out.append(payload);
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  uint64_t h = 0xcbf29ce484222325ULL;  // FNV-1a: each input replays identically
  for (size_t i = 0; i < size; ++i)
    h = (h ^ data[i]) * 0x100000001b3ULL;
  check_prefixes(in, h);

  // The input as a handshake message: in one record, then in records of 16..271 bytes. Kept
  // small enough that neither form reaches the size bound, so both must agree.
  if (size == 0 || size > 8192) return 0;
  std::string one = record(in);
  std::string split;
  uint64_t seed = h;
  for (size_t at = 0; at < size;) {
    size_t n = std::min<size_t>(size - at, 16 + mix(seed) % 256);
    split += record(in.substr(at, n));
    at += n;
  }
  if (split.size() >= kMaxClientHelloBytes) return 0;
  SniResult a = parse_sni(one), b = parse_sni(split);
  check_result(a);
  check_result(b);
  if (!same(a, b)) die("the answer depends on how the message was cut into records");
  check_prefixes(split, h ^ 1);
  return 0;
}
