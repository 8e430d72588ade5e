#include "core/tls/ssl_error.h"

#include <openssl/err.h>

#include <string>

namespace meshbox::tls {

Status ssl_error(Code code, std::string_view what) {
  std::string message(what);
  const char* sep = ": ";
  while (uint32_t err = ERR_get_error()) {
    // ERR_reason_error_string is the short reason ("BAD_DECRYPT"), worded for people
    // enough; the full ERR_error_string_n form adds library codes nobody reads.
    const char* reason = ERR_reason_error_string(err);
    const char* lib = ERR_lib_error_string(err);
    message += sep;
    sep = "; ";
    if (lib) message += std::string(lib) + " ";
    message += reason ? reason : "error " + std::to_string(ERR_GET_REASON(err));
  }
  return make_error(code, std::move(message));
}

void clear_ssl_errors() {
  ERR_clear_error();
}

}  // namespace meshbox::tls
