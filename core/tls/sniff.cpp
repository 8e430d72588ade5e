#include "core/tls/sniff.h"

#include <cstdint>

namespace meshbox::tls {

Sniffed sniff_tls(std::string_view b) {
  auto at = [&](size_t i) { return static_cast<uint8_t>(b[i]); };
  if (b.size() > 0 && at(0) != 0x16) return Sniffed::Plain;  // handshake record
  if (b.size() > 1 && at(1) != 0x03) return Sniffed::Plain;  // legacy_record_version 3.x
  if (b.size() > 2 && at(2) > 0x04) return Sniffed::Plain;
  if (b.size() > 4) {
    size_t len = static_cast<size_t>(at(3)) << 8 | at(4);
    // A ClientHello's header is 4 bytes; records carry at most 2^14 (+2048 slack for
    // old compressed/encrypted limits).
    if (len < 4 || len > 16384 + 2048) return Sniffed::Plain;
  }
  if (b.size() > 5) return at(5) == 0x01 ? Sniffed::Tls : Sniffed::Plain;  // client_hello
  return Sniffed::NeedMore;
}

}  // namespace meshbox::tls
