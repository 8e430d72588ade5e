// Serializer: writes HTTP/1.1 heads and chunk framing into a std::string the caller reuses
// (one allocation amortised across requests). Pure functions.
#pragma once

#include <string>
#include <string_view>

#include "core/http/message.h"

namespace meshbox::http {

void append_request_head(const RequestHead& head, std::string& out);
void append_response_head(const ResponseHead& head, std::string& out);
/// "<hex size>\r\n"; the caller writes the data and then "\r\n".
void append_chunk_header(size_t size, std::string& out);
inline constexpr std::string_view kLastChunk = "0\r\n\r\n";
inline constexpr std::string_view kCrlf = "\r\n";

/// The standard reason phrase for `status` ("OK", "Not Found"…), or "Unknown".
std::string_view reason_phrase(int status);

}  // namespace meshbox::http
