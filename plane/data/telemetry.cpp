#include "plane/data/telemetry.h"

#include <time.h>

namespace meshbox::data {

std::string ResponseFlags::to_string() const {
  if (bits_ == 0) return "-";
  std::string out;
  for (unsigned i = 1; i < 32; ++i) {
    if (!(bits_ & (1u << i))) continue;
    if (!out.empty()) out += ',';
    out += flag_name(static_cast<ResponseFlag>(i));
  }
  return out;
}

namespace {

void append_field(std::string& out, std::string_view field) {
  for (char c : field) {
    if (c == '%' || c == ';' || static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      static constexpr char kHex[] = "0123456789ABCDEF";
      out += '%';
      out += kHex[static_cast<unsigned char>(c) >> 4];
      out += kHex[static_cast<unsigned char>(c) & 15];
    } else {
      out += c;
    }
  }
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

bool decode_field(std::string_view in, std::string& out) {
  out.clear();
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '%') {
      out += in[i];
      continue;
    }
    if (i + 2 >= in.size()) return false;
    int hi = hex_value(in[i + 1]), lo = hex_value(in[i + 2]);
    if (hi < 0 || lo < 0) return false;
    out += static_cast<char>(hi * 16 + lo);
    i += 2;
  }
  return out.size() <= 253;
}

}  // namespace

std::string encode_peer(const PeerMetadata& m) {
  std::string out;
  append_field(out, m.workload);
  out += ';';
  append_field(out, m.ns);
  out += ';';
  append_field(out, m.app);
  out += ';';
  append_field(out, m.version);
  return out;
}

bool decode_peer(std::string_view value, PeerMetadata& out) {
  out = {};
  std::string* fields[] = {&out.workload, &out.ns, &out.app, &out.version};
  for (size_t i = 0; i < 4; ++i) {
    size_t end = i < 3 ? value.find(';') : value.size();
    if (end == std::string_view::npos || (i == 3 && value.find(';') != std::string_view::npos) ||
        !decode_field(value.substr(0, end), *fields[i])) {
      out = {};
      return false;
    }
    value.remove_prefix(i < 3 ? end + 1 : end);
  }
  return true;
}

uint64_t unix_now_us() {
  timespec ts;
  ::clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000 + static_cast<uint64_t>(ts.tv_nsec) / 1'000;
}

}  // namespace meshbox::data
