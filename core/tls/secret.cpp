#include "core/tls/secret.h"

#include <openssl/mem.h>

namespace meshbox::tls {

SecretString& SecretString::operator=(SecretString&& other) noexcept {
  if (this != &other) {
    wipe();
    bytes_ = std::move(other.bytes_);
    other.wipe();
  }
  return *this;
}

void SecretString::wipe() {
  // OPENSSL_cleanse is not optimised away, unlike a memset before free. The whole capacity:
  // a string that shrank keeps old bytes past its size.
  if (bytes_.capacity() > 0) OPENSSL_cleanse(bytes_.data(), bytes_.capacity());
  bytes_.clear();
}

}  // namespace meshbox::tls
