#include "examples/httpbin/ws_frame_parser.h"

#include <openssl/base64.h>
#include <openssl/sha.h>

#include <algorithm>

namespace meshbox::httpbin {

namespace {
constexpr std::string_view kWsGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
constexpr size_t kMaxControlPayload = 125;
constexpr size_t kUnmaskChunk = 4096;
}  // namespace

size_t WsFrameParser::header_size() const {
  if (header_len_ < 2) return 2;
  size_t n = 2;
  uint8_t len7 = header_[1] & 0x7f;
  if (len7 == 126) n += 2;
  if (len7 == 127) n += 8;
  if (header_[1] & 0x80) n += 4;
  return n;
}

bool WsFrameParser::fail(const char* reason) {
  error_ = reason;
  stopped_ = true;
  return false;
}

bool WsFrameParser::begin_frame() {
  bool fin = header_[0] & 0x80;
  uint8_t op = header_[0] & 0x0f;
  if (header_[0] & 0x70) return fail("reserved bits set without a negotiated extension");
  if (!(header_[1] & 0x80)) return fail("client frame is not masked");
  uint8_t len7 = header_[1] & 0x7f;
  size_t pos = 2;
  uint64_t length = len7;
  if (len7 == 126) {
    length = (uint64_t{header_[2]} << 8) | header_[3];
    pos = 4;
  } else if (len7 == 127) {
    length = 0;
    for (size_t i = 0; i < 8; ++i)
      length = (length << 8) | header_[2 + i];
    if (length >> 63) return fail("64-bit payload length has its top bit set");
    pos = 10;
  }
  std::copy(header_ + pos, header_ + pos + 4, mask_);

  auto opcode = static_cast<WsOpcode>(op);
  switch (opcode) {
    case WsOpcode::Close:
    case WsOpcode::Ping:
    case WsOpcode::Pong:
      if (!fin) return fail("fragmented control frame");
      if (length > kMaxControlPayload) return fail("control frame payload over 125 bytes");
      break;
    case WsOpcode::Continuation:
      if (!in_fragmented_) return fail("continuation frame without a message to continue");
      in_fragmented_ = !fin;
      break;
    case WsOpcode::Text:
    case WsOpcode::Binary:
      if (in_fragmented_) return fail("new data frame inside a fragmented message");
      in_fragmented_ = !fin;
      break;
    default:
      return fail("unknown opcode");
  }

  header_len_ = 0;
  mask_pos_ = 0;
  remaining_ = length;
  in_payload_ = length > 0;
  handler_.on_frame_begin(opcode, fin, length);
  if (!in_payload_ && !stopped_) handler_.on_frame_end();
  return true;
}

bool WsFrameParser::feed(const char* data, size_t len) {
  size_t i = 0;
  while (i < len && !stopped_) {
    if (!in_payload_) {
      header_[header_len_++] = static_cast<uint8_t>(data[i++]);
      if (header_len_ < header_size()) continue;
      if (!begin_frame()) return false;
      continue;
    }
    // Unmask through a small stack buffer: the input is read-only and may be large.
    char plain[kUnmaskChunk];
    size_t n = static_cast<size_t>(std::min<uint64_t>(remaining_, len - i));
    n = std::min(n, sizeof plain);
    for (size_t k = 0; k < n; ++k)
      plain[k] = static_cast<char>(static_cast<uint8_t>(data[i + k]) ^ mask_[(mask_pos_ + k) & 3]);
    mask_pos_ += n;
    remaining_ -= n;
    i += n;
    handler_.on_frame_payload(plain, n);
    if (remaining_ == 0 && !stopped_) {
      in_payload_ = false;
      handler_.on_frame_end();
    }
  }
  return error_ == nullptr;
}

std::string ws_accept_key(std::string_view key) {
  SHA_CTX ctx;
  SHA1_Init(&ctx);
  SHA1_Update(&ctx, key.data(), key.size());
  SHA1_Update(&ctx, kWsGuid.data(), kWsGuid.size());
  uint8_t digest[SHA_DIGEST_LENGTH];
  SHA1_Final(digest, &ctx);
  uint8_t encoded[4 * ((SHA_DIGEST_LENGTH + 2) / 3) + 1];  // EVP_EncodeBlock adds a NUL
  size_t n = EVP_EncodeBlock(encoded, digest, sizeof digest);
  return std::string(reinterpret_cast<const char*>(encoded), n);
}

bool ws_key_valid(std::string_view key) {
  if (key.size() != 24) return false;
  uint8_t decoded[18];
  size_t out_len = 0;
  if (!EVP_DecodeBase64(decoded, &out_len, sizeof decoded,
                        reinterpret_cast<const uint8_t*>(key.data()), key.size()))
    return false;
  return out_len == 16;
}

void append_ws_frame_header(std::string& out, WsOpcode opcode, bool fin, uint64_t len) {
  out.push_back(static_cast<char>((fin ? 0x80 : 0x00) | static_cast<uint8_t>(opcode)));
  if (len < 126) {
    out.push_back(static_cast<char>(len));
  } else if (len <= 0xffff) {
    out.push_back(static_cast<char>(126));
    out.push_back(static_cast<char>(len >> 8));
    out.push_back(static_cast<char>(len & 0xff));
  } else {
    out.push_back(static_cast<char>(127));
    for (int shift = 56; shift >= 0; shift -= 8)
      out.push_back(static_cast<char>((len >> shift) & 0xff));
  }
}

}  // namespace meshbox::httpbin
