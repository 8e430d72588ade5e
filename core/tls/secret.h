// SecretString: bytes that must not leak — a private key's PEM. It has no implicit
// conversion and no fmt formatter, so it cannot reach a log line, a config dump or an admin
// API response by accident: the one way out is reveal(), which is easy to grep for. The
// memory is zeroed when the value dies. Move-only; a plain value, thread-agnostic.
#pragma once

#include <string>
#include <string_view>

namespace meshbox::tls {

class SecretString {
 public:
  SecretString() = default;
  explicit SecretString(std::string bytes) : bytes_(std::move(bytes)) {}
  ~SecretString() { wipe(); }
  SecretString(SecretString&& other) noexcept : bytes_(std::move(other.bytes_)) { other.wipe(); }
  SecretString& operator=(SecretString&& other) noexcept;
  SecretString(const SecretString&) = delete;
  SecretString& operator=(const SecretString&) = delete;

  /// The secret itself: only for the file, pipe or TLS library it is meant for.
  std::string_view reveal() const { return bytes_; }
  bool empty() const { return bytes_.empty(); }
  size_t size() const { return bytes_.size(); }

 private:
  void wipe();
  std::string bytes_;
};

}  // namespace meshbox::tls
