#include "plane/authz_spec.h"

#include <arpa/inet.h>

#include <cstring>

namespace meshbox {

namespace {

char lower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c | 0x20) : c;
}

bool iequal(std::string_view a, std::string_view lower_b) {
  if (a.size() != lower_b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (lower(a[i]) != lower_b[i]) return false;
  return true;
}

}  // namespace

std::optional<CidrBlock> CidrBlock::parse(std::string_view text) {
  size_t slash = text.find('/');
  std::string ip(text.substr(0, slash));
  CidrBlock b;
  if (inet_pton(AF_INET, ip.c_str(), b.bytes.data()) == 1) {
    b.family = 4;
    b.prefix_len = 32;
  } else if (inet_pton(AF_INET6, ip.c_str(), b.bytes.data()) == 1) {
    b.family = 6;
    b.prefix_len = 128;
    static constexpr uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (slash == std::string_view::npos && std::memcmp(b.bytes.data(), kMapped, 12) == 0) {
      std::memmove(b.bytes.data(), b.bytes.data() + 12, 4);
      std::memset(b.bytes.data() + 4, 0, 12);
      b.family = 4;
      b.prefix_len = 32;
    }
  } else {
    return std::nullopt;
  }
  if (slash != std::string_view::npos) {
    std::string_view bits = text.substr(slash + 1);
    if (bits.empty() || bits.size() > 3) return std::nullopt;
    unsigned n = 0;
    for (char c : bits) {
      if (c < '0' || c > '9') return std::nullopt;
      n = n * 10 + static_cast<unsigned>(c - '0');
    }
    if (n > b.prefix_len) return std::nullopt;
    b.prefix_len = static_cast<uint8_t>(n);
  }
  // Zero the host bits, so that equal blocks compare equal.
  for (size_t i = 0; i < 16; ++i) {
    size_t first_bit = i * 8;
    if (first_bit >= b.prefix_len) {
      b.bytes[i] = 0;
    } else if (first_bit + 8 > b.prefix_len) {
      b.bytes[i] &= static_cast<uint8_t>(0xff << (8 - (b.prefix_len - first_bit)));
    }
  }
  return b;
}

bool CidrBlock::contains(const CidrBlock& ip) const {
  if (ip.family != family) return false;
  size_t full = prefix_len / 8;
  if (std::memcmp(bytes.data(), ip.bytes.data(), full) != 0) return false;
  size_t rest = prefix_len % 8;
  if (rest == 0) return true;
  auto mask = static_cast<uint8_t>(0xff << (8 - rest));
  return (ip.bytes[full] & mask) == bytes[full];
}

AuthzMatch AuthzMatch::parse(std::string_view text, bool ignore_case) {
  AuthzMatch m;
  m.ignore_case = ignore_case;
  if (text == "*") {
    m.kind = Kind::Presence;
    return m;
  }
  if (text.size() > 1 && text.back() == '*') {
    m.kind = Kind::Prefix;
    text.remove_suffix(1);
  } else if (text.size() > 1 && text.front() == '*') {
    m.kind = Kind::Suffix;
    text.remove_prefix(1);
  }
  m.value.assign(text);
  if (ignore_case)
    for (char& c : m.value)
      c = lower(c);
  return m;
}

bool AuthzMatch::matches(std::string_view s, bool present) const {
  if (!present) return false;
  auto eq = [this](std::string_view a) { return ignore_case ? iequal(a, value) : a == value; };
  switch (kind) {
    case Kind::Presence:
      return true;
    case Kind::Exact:
      return eq(s);
    case Kind::Prefix:
      return s.size() >= value.size() && eq(s.substr(0, value.size()));
    case Kind::Suffix:
      return s.size() >= value.size() && eq(s.substr(s.size() - value.size()));
  }
  return false;
}

AuthzCounters& authz_counters() {
  static AuthzCounters counters;
  return counters;
}

}  // namespace meshbox
