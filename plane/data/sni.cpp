#include "plane/data/sni.h"

#include <algorithm>
#include <climits>
#include <cstdint>
#include <vector>

namespace meshbox::data {

namespace {

constexpr uint8_t kHandshakeRecord = 22;  // ContentType handshake (RFC 8446 §5.1)
constexpr uint8_t kClientHello = 1;       // HandshakeType client_hello (§4)
constexpr size_t kRecordHeader = 5;       // type, legacy_record_version, length
constexpr size_t kHandshakeHeader = 4;    // msg_type, uint24 length
constexpr size_t kMaxFragment = 1 << 14;  // TLSPlaintext.length limit
constexpr uint16_t kServerNameExtension = 0;
constexpr uint8_t kHostName = 0;  // NameType host_name (RFC 6066 §3)
constexpr size_t kMaxHostName = 255;

SniResult fail(SniResult::Kind kind, std::string_view why) {
  SniResult r;
  r.kind = kind;
  r.error = why;
  return r;
}

SniResult error(std::string_view why) {
  return fail(SniResult::Kind::Error, why);
}

uint8_t u8(std::string_view s, size_t at) {
  return static_cast<uint8_t>(s[at]);
}

/// A bounds-checked reader over a byte string: every take fails, rather than reads past the
/// end, when too few bytes are left.
class Reader {
 public:
  explicit Reader(std::string_view s) : s_(s) {}
  bool empty() const { return s_.empty(); }
  size_t left() const { return s_.size(); }
  bool u8(uint8_t& v) {
    if (s_.size() < 1) return false;
    v = static_cast<uint8_t>(s_[0]);
    s_.remove_prefix(1);
    return true;
  }
  bool u16(uint16_t& v) {
    if (s_.size() < 2) return false;
    v = static_cast<uint16_t>(static_cast<uint8_t>(s_[0]) << 8 | static_cast<uint8_t>(s_[1]));
    s_.remove_prefix(2);
    return true;
  }
  bool take(size_t n, std::string_view& out) {
    if (s_.size() < n) return false;
    out = s_.substr(0, n);
    s_.remove_prefix(n);
    return true;
  }
  bool skip(size_t n) {
    std::string_view ignored;
    return take(n, ignored);
  }

 private:
  std::string_view s_;
};

/// The server_name extension's body (RFC 6066 §3): a non-empty list of (name_type, name) of
/// which at most one is a host_name. `r.name` gets the host name if there is one.
bool parse_server_name(std::string_view ext, SniResult& r, std::string_view& why) {
  Reader in(ext);
  uint16_t list_len = 0;
  std::string_view list;
  if (!in.u16(list_len) || !in.take(list_len, list) || !in.empty() || list_len == 0) {
    why = "malformed server_name extension";
    return false;
  }
  Reader names(list);
  bool have_host = false;
  while (!names.empty()) {
    uint8_t type = 0;
    uint16_t len = 0;
    std::string_view name;
    if (!names.u8(type) || !names.u16(len) || !names.take(len, name)) {
      why = "malformed server_name list";
      return false;
    }
    if (type != kHostName) continue;  // other name types (none defined yet): not ours
    if (have_host) {
      why = "two host names in server_name";  // "MUST NOT contain more than one"
      return false;
    }
    // BoringSSL refuses empty names, names over 255 bytes and NULs; meshbox also refuses
    // what no DNS name holds (controls, spaces, non-ASCII), so a name is safe to log.
    if (name.empty() || name.size() > kMaxHostName) {
      why = "server_name host name of bad length";
      return false;
    }
    for (char c : name) {
      auto b = static_cast<uint8_t>(c);
      if (b <= 0x20 || b >= 0x7f) {
        why = "server_name host name with a byte no host name has";
        return false;
      }
    }
    have_host = true;
    r.name.assign(name);
  }
  r.kind = have_host ? SniResult::Kind::Sni : SniResult::Kind::NoSni;
  return true;
}

/// A whole ClientHello body (after its 4-byte handshake header), RFC 8446 §4.1.2; TLS 1.0-1.2
/// hellos have the same layout, their extensions optional.
SniResult parse_client_hello(std::string_view body) {
  Reader in(body);
  uint8_t session_id_len = 0, compression_len = 0;
  uint16_t suites_len = 0;
  if (!in.skip(2 + 32)) return error("truncated ClientHello");  // legacy_version, random
  if (!in.u8(session_id_len) || session_id_len > 32 || !in.skip(session_id_len))
    return error("bad ClientHello session id");
  if (!in.u16(suites_len) || suites_len < 2 || suites_len % 2 != 0 || !in.skip(suites_len))
    return error("bad ClientHello cipher suites");
  if (!in.u8(compression_len) || compression_len < 1 || !in.skip(compression_len))
    return error("bad ClientHello compression methods");
  SniResult r;
  r.kind = SniResult::Kind::NoSni;
  if (in.empty()) return r;  // no extensions at all (allowed before TLS 1.3)
  uint16_t extensions_len = 0;
  std::string_view extensions;
  if (!in.u16(extensions_len) || !in.take(extensions_len, extensions) || !in.empty())
    return error("bad ClientHello extensions length");
  Reader ext(extensions);
  bool seen = false;
  while (!ext.empty()) {
    uint16_t type = 0, len = 0;
    std::string_view data;
    if (!ext.u16(type) || !ext.u16(len) || !ext.take(len, data))
      return error("truncated ClientHello extension");
    if (type != kServerNameExtension) continue;
    if (seen) return error("two server_name extensions");  // RFC 8446 §4.2
    seen = true;
    std::string_view why;
    if (!parse_server_name(data, r, why)) return error(why);
  }
  return r;
}

}  // namespace

SniResult parse_sni(std::string_view in) {
  if (in.empty()) return {};
  if (u8(in, 0) != kHandshakeRecord) return fail(SniResult::Kind::NotTls, "not a TLS handshake");
  if (in.size() >= 2 && u8(in, 1) != 3)
    return fail(SniResult::Kind::NotTls, "not a TLS record version");

  // Walk the records, collecting the fragments of the first handshake message until it is
  // whole. A ClientHello nearly always sits in one record; the fragments point into `in`.
  std::vector<std::string_view> fragments;
  uint8_t head[kHandshakeHeader] = {};  // the message's first bytes, wherever they arrived
  size_t have = 0;                      // handshake bytes collected so far
  size_t need = SIZE_MAX;               // the whole message's size, once its header is known
  size_t pos = 0;
  while (have < need) {
    // A record header, checked byte by byte as it arrives.
    size_t header_left = in.size() - pos;
    if (header_left >= 1 && u8(in, pos) != kHandshakeRecord)
      return error("a non-handshake record inside the ClientHello");
    if (header_left >= 2 && u8(in, pos + 1) != 3) return error("bad TLS record version");
    if (header_left < kRecordHeader) break;
    size_t len = static_cast<size_t>(u8(in, pos + 3)) << 8 | u8(in, pos + 4);
    if (len == 0) return error("an empty handshake record");  // RFC 8446 §5.1
    if (len > kMaxFragment) return error("a TLS record over 16 KiB");
    size_t avail = std::min(len, in.size() - pos - kRecordHeader);
    std::string_view fragment = in.substr(pos + kRecordHeader, avail);
    for (size_t i = 0; i < fragment.size() && have + i < kHandshakeHeader; ++i)
      head[have + i] = static_cast<uint8_t>(fragment[i]);
    if (need != SIZE_MAX) fragment = fragment.substr(0, need - have);
    have += fragment.size();
    fragments.push_back(fragment);
    if (need == SIZE_MAX && have >= 1 && head[0] != kClientHello)
      return error("the first handshake message is not a ClientHello");
    if (need == SIZE_MAX && have >= kHandshakeHeader) {
      size_t body = static_cast<size_t>(head[1]) << 16 | static_cast<size_t>(head[2]) << 8 |
                    static_cast<size_t>(head[3]);
      // Whole only with at least one record header in front of it.
      if (kRecordHeader + kHandshakeHeader + body > kMaxClientHelloBytes)
        return error("ClientHello too large");
      need = kHandshakeHeader + body;
      // The fragment may run on past the message (other handshake messages): trim it.
      size_t over = have > need ? have - need : 0;
      fragments.back() = fragments.back().substr(0, fragments.back().size() - over);
      have -= over;
    }
    if (avail < len) break;  // the record is not all here yet
    pos += kRecordHeader + len;
  }
  // Too large if it does not end within the bound, however its records arrived: a caller
  // that fed the same bytes in pieces got this answer at the bound.
  if (have < need) {
    if (in.size() >= kMaxClientHelloBytes) return error("ClientHello too large");
    return {};
  }
  const std::string_view& last = fragments.back();
  if (static_cast<size_t>(last.data() - in.data()) + last.size() > kMaxClientHelloBytes)
    return error("ClientHello too large");

  std::string joined;
  std::string_view message;
  if (fragments.size() == 1) {
    message = fragments[0];
  } else {
    joined.reserve(need);
    for (std::string_view f : fragments)
      joined.append(f);
    message = joined;
  }
  return parse_client_hello(message.substr(kHandshakeHeader));
}

int sni_match_rank(std::string_view pattern, std::optional<std::string_view> name) {
  if (pattern == "*") return 0;
  if (!name) return -1;
  auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; };
  auto same = [&](std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i)
      if (lower(a[i]) != lower(b[i])) return false;
    return true;
  };
  if (pattern.size() >= 2 && pattern[0] == '*' && pattern[1] == '.') {
    std::string_view suffix = pattern.substr(1);  // ".example.com"
    if (name->size() > suffix.size() && same(name->substr(name->size() - suffix.size()), suffix))
      return static_cast<int>(suffix.size());  // 2..256: longer is more specific
    return -1;
  }
  return same(pattern, *name) ? INT_MAX : -1;
}

}  // namespace meshbox::data
