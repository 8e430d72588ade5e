// SNI inspection: reads the server name a TLS client asks for from its ClientHello, without
// terminating TLS (Envoy's tls_inspector listener filter), so that a TLS listener can route a
// connection by name and pass its bytes through untouched. Pure functions over bytes: no
// socket, no allocation beyond the result, usable from any thread.
//
// parse_sni() takes everything the client sent so far and says whether it needs more. It reads
// TLS records (RFC 8446 §5.1: handshake records, fragments of at most 2^14 bytes, no empty
// ones), reassembles the first handshake message across records, checks that it is a
// ClientHello (§4.1.2), and looks for the server_name extension (RFC 6066 §3). Every length
// is checked against the bytes around it; anything that does not add up is an Error.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace meshbox::data {

/// The most bytes parse_sni() looks at: one full TLS record (16 KiB of payload and its 5-byte
/// header). A ClientHello must end within them, as Envoy's default max_client_hello_size
/// (16 KiB) requires; real ones are under 2 KiB. Beyond it parse_sni() answers Error, so a
/// caller never buffers more than this and one read.
inline constexpr size_t kMaxClientHelloBytes = 16 * 1024 + 5;

struct SniResult {
  enum class Kind {
    NeedMore,  // everything so far is a valid start of a ClientHello: read more
    NotTls,    // the first bytes are not a TLS handshake record (plain text, SSLv2…)
    Error,     // TLS-looking, but malformed, not a ClientHello, or too large
    Sni,       // a whole ClientHello with a server name: `name`
    NoSni,     // a whole ClientHello without one
  };
  Kind kind = Kind::NeedMore;
  /// Sni: the host_name as the client sent it (printable ASCII, 1-255 bytes; any case).
  std::string name;
  /// NotTls, Error: why, for logs (a string literal).
  std::string_view error;
};

/// Parses the start of a TLS connection: `bytes` is everything the client sent so far. Bytes
/// after the ClientHello (more records, early data) are ignored.
SniResult parse_sni(std::string_view bytes);

/// How specifically an SNI pattern matches a ClientHello's server name (`name`, nullopt when the
/// ClientHello had none), as Envoy ranks a filter chain's server_names: an exact name beats
/// any wildcard, a longer "*.suffix" beats a shorter one, and "*" (any ClientHello, with or
/// without a name) comes last. -1: no match. Patterns are lower case ("name", "*.suffix",
/// "*"); names compare without regard to case. "*.example.com" matches "a.example.com" and
/// "a.b.example.com", not "example.com".
int sni_match_rank(std::string_view pattern, std::optional<std::string_view> name);

}  // namespace meshbox::data
