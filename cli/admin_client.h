// admin_call(): the CLI's way to talk to a running meshbox's admin API: one blocking HTTP/1.1
// request per call, on its own connection. CLI only: it blocks the calling thread (poll(2)
// bounded by the timeout), so it must never run on a loop. Thread-agnostic: no shared state.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "core/base/result.h"

namespace meshbox::cli {

struct AdminReply {
  int status = 0;            // the final status (1xx interim responses are skipped)
  std::string content_type;  // empty if the response had none
  std::string body;          // de-chunked
};

/// One request to `address` ("127.0.0.1:15000"). Sends Host, Connection: close and
/// Content-Length; `Authorization: Bearer TOKEN` when `token` is not empty; Content-Type when
/// `body` is not empty (application/json if it starts with '{', else application/toml: the
/// CLI sends JSON or config files). Reads the whole response, framed by Content-Length,
/// chunked or the close. Any status is a reply, not an error.
///
/// Errors (Code::Unavailable) say what went wrong and what to try, e.g. "cannot reach the
/// meshbox admin API at 127.0.0.1:15000: connection refused (is `meshbox run` running?)";
/// the whole exchange is bounded by `timeout_ms`. A malformed `address` is InvalidArgument.
Result<AdminReply> admin_call(const std::string& address, std::string_view method,
                              std::string_view target, std::string_view body,
                              const std::string& token, uint64_t timeout_ms = 30'000);

/// Where a running meshbox's admin API is, and its token.
struct AdminEndpoint {
  std::string address, token;
};

/// The admin API of the meshbox whose state dir is `state_dir`: `admin` when given, else
/// STATE_DIR/admin.address; the token (when `need_token`) from `token_file` when given, else
/// STATE_DIR/admin.token. NotFound, with what to try, when either is missing.
Result<AdminEndpoint> find_admin(const std::string& state_dir, const std::string& admin,
                                 const std::string& token_file, bool need_token);

/// The message of a JSON error reply ({"error": "..."}), else "HTTP STATUS: BODY".
std::string reply_error(const AdminReply& r);

}  // namespace meshbox::cli
