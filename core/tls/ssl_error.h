// How core/tls turns BoringSSL's thread-local error queue into a Status: the caller's words,
// then BoringSSL's reasons ("what: reason; reason"). Every failing BoringSSL call in core/tls
// goes through here, which also leaves the queue empty for the next call on this thread.
#pragma once

#include <string_view>

#include "core/base/result.h"

namespace meshbox::tls {

/// Drains the error queue into a Status: "`what`: <BoringSSL's reasons>", or just `what`.
Status ssl_error(Code code, std::string_view what);
/// Empties the error queue (before a call whose failure is expected and handled).
void clear_ssl_errors();

}  // namespace meshbox::tls
