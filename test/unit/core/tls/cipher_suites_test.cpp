// Tests for core/tls/cipher_suites.h: names checked against BoringSSL and meshbox's modern list.
#include "core/tls/cipher_suites.h"

#include <doctest/doctest.h>

#include <string>
#include <vector>

namespace meshbox::tls {

TEST_CASE("cipher suites: forward-secret AEAD suites only, by their OpenSSL or TLS 1.3 names") {
  for (const char* ok : {"ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES256-GCM-SHA384",
                         "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305",
                         "TLS_AES_128_GCM_SHA256", "TLS_CHACHA20_POLY1305_SHA256"}) {
    INFO(ok);
    CHECK(!cipher_suite_error(ok));
  }
  auto error = [](const char* name) { return cipher_suite_error(name).value_or(""); };
  // Known to BoringSSL, but not forward secret, or CBC.
  CHECK(error("AES128-GCM-SHA256").find("is not allowed") != std::string::npos);
  CHECK(error("ECDHE-RSA-AES128-SHA").find("is not allowed") != std::string::npos);
  // Unknown, or OpenSSL list syntax rather than one name.
  CHECK(error("ECDHE-RSA-RC4-SHA").find("not a cipher suite BoringSSL knows") != std::string::npos);
  CHECK(error("ALL").find("not a cipher suite BoringSSL knows") != std::string::npos);
  CHECK(error("ECDHE-RSA-AES128-GCM-SHA256:AES128-SHA").find("one name per entry") !=
        std::string::npos);
  CHECK(error("!aNULL").find("one name per entry") != std::string::npos);
  CHECK(error("").find("one name per entry") != std::string::npos);

  std::vector<std::string> names{"TLS_AES_128_GCM_SHA256", "ECDHE-RSA-AES128-GCM-SHA256",
                                 "ECDHE-ECDSA-AES128-GCM-SHA256"};
  CHECK(tls12_cipher_list(names) == "ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES128-GCM-SHA256");
  CHECK(tls12_cipher_list(std::vector<std::string>{"TLS_AES_256_GCM_SHA384"}).empty());
}

}  // namespace meshbox::tls
