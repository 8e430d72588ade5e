// WsFrameParser: decodes the client side of a WebSocket stream (RFC 6455 §5) incrementally:
// a frame header may arrive split over any number of reads, and payloads stream out
// unmasked in pieces, so a frame of any length (7, 16 or 64-bit) costs no buffer beyond a
// 14-byte header. Pure bytes-in/callbacks-out; single-owner, not thread-safe.
//
// Also here: the handshake's accept key and the server frame header encoder.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace meshbox::httpbin {

enum class WsOpcode : uint8_t {
  Continuation = 0x0,
  Text = 0x1,
  Binary = 0x2,
  Close = 0x8,
  Ping = 0x9,
  Pong = 0xa,
};

inline bool is_control(WsOpcode op) {
  return static_cast<uint8_t>(op) >= 0x8;
}

/// WebSocket close status codes used here (RFC 6455 §7.4.1).
inline constexpr uint16_t kWsCloseNormal = 1000;
inline constexpr uint16_t kWsCloseProtocolError = 1002;

class WsFrameHandler {
 public:
  virtual ~WsFrameHandler() = default;
  /// A frame header arrived; `length` payload bytes follow (possibly zero).
  virtual void on_frame_begin(WsOpcode opcode, bool fin, uint64_t length) = 0;
  /// The next unmasked piece of the current frame's payload. The bytes live only for the call.
  virtual void on_frame_payload(const char* data, size_t len) = 0;
  /// The current frame's payload is complete.
  virtual void on_frame_end() = 0;
};

class WsFrameParser {
 public:
  explicit WsFrameParser(WsFrameHandler& handler) : handler_(handler) {}
  WsFrameParser(const WsFrameParser&) = delete;
  WsFrameParser& operator=(const WsFrameParser&) = delete;

  /// Consumes client bytes. Returns false on a protocol violation (unmasked frame, reserved
  /// bits, unknown opcode, bad fragmentation, oversized or fragmented control frame); the
  /// caller then closes with 1002. Nothing more is parsed after an error or stop().
  bool feed(const char* data, size_t len);
  /// From inside a callback: ignore every further byte (the session is closing).
  void stop() { stopped_ = true; }
  const char* error_reason() const { return error_; }

 private:
  size_t header_size() const;
  bool begin_frame();
  bool fail(const char* reason);

  WsFrameHandler& handler_;
  uint8_t header_[14] = {};
  size_t header_len_ = 0;
  uint8_t mask_[4] = {};
  size_t mask_pos_ = 0;
  uint64_t remaining_ = 0;  // payload bytes of the current frame still to come
  bool in_payload_ = false;
  bool in_fragmented_ = false;  // a text/binary message awaits continuation frames
  bool stopped_ = false;
  const char* error_ = nullptr;
};

/// The Sec-WebSocket-Accept value for a Sec-WebSocket-Key: base64(SHA-1(key + GUID)).
std::string ws_accept_key(std::string_view key);
/// True if `key` is the base64 encoding of 16 bytes, as RFC 6455 §4.1 requires.
bool ws_key_valid(std::string_view key);
/// Appends an unmasked (server-to-client) frame header for a payload of `len` bytes.
void append_ws_frame_header(std::string& out, WsOpcode opcode, bool fin, uint64_t len);

}  // namespace meshbox::httpbin
