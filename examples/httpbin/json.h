// JSON string escaping for the httpbin response bodies. Pure functions.
#pragma once

#include <string>
#include <string_view>

namespace meshbox::httpbin {

/// Appends `s` to `out` as a quoted JSON string. Valid UTF-8 passes through; control
/// characters, quotes and backslashes are escaped; a byte that is not part of a valid UTF-8
/// sequence (obs-text in a header value) is written as the Latin-1 code point \u00XX, so the
/// result is always valid JSON.
void append_json_string(std::string& out, std::string_view s);

}  // namespace meshbox::httpbin
