// Telling TLS from plain text on the first bytes of a connection, for a listener that takes
// both (mTLS PERMISSIVE): a TLS client speaks first with a handshake record holding its
// ClientHello (RFC 8446 §5.1: type 22, legacy version 3.x, a length, then handshake type 1);
// no HTTP/1 request, nor any text protocol, starts with byte 0x16. The listener reads plain
// text, calls sniff_tls() on what it has, and on Tls hands those bytes to
// TcpConn::set_transport(TlsTransport::server(ctx), bytes). Pure function; any thread.
#pragma once

#include <cstddef>
#include <string_view>

namespace meshbox::tls {

enum class Sniffed {
  NeedMore,  // every byte so far fits a ClientHello: read more (at most kSniffBytes)
  Tls,
  Plain,
};

/// The most bytes sniff_tls() needs to decide.
inline constexpr size_t kSniffBytes = 6;

/// Tls: a handshake record (0x16), version 3.0–3.4, a length of 4 to 2^14 + 2048 bytes,
/// starting with a ClientHello (0x01). Plain as soon as one byte disagrees.
Sniffed sniff_tls(std::string_view first_bytes);

}  // namespace meshbox::tls
