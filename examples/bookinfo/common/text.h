// Small text helpers the Bookinfo services share: HTML escaping, URL decoding of form bodies
// and query strings, cookies, and product ids in paths. Pure functions, thread-agnostic.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/http/header_map.h"

namespace meshbox::bookinfo {

/// Appends `s` with & < > " ' replaced by entities, safe inside element text and quoted
/// attribute values.
void append_html_escaped(std::string& out, std::string_view s);
std::string html_escape(std::string_view s);

/// Decodes %XX escapes and, for form bodies (`plus_is_space`), '+' as a space. A malformed
/// escape is kept as it is.
std::string url_decode(std::string_view s, bool plus_is_space);

/// The value of field `name` in an application/x-www-form-urlencoded body or a query string
/// ("a=1&b=2"), decoded; nullopt if absent.
std::optional<std::string> form_field(std::string_view form, std::string_view name);

/// Percent-encodes every byte that is not an RFC 6265 cookie-octet (and '%'), so any user name
/// fits in a cookie value; url_decode(…, false) reverses it.
std::string cookie_encode(std::string_view s);

/// The value of cookie `name` across every Cookie header, or nullopt.
std::optional<std::string> cookie_value(const http::HeaderMap& headers, std::string_view name);

/// A product id: 1–9 decimal digits (the samples' ids are small integers).
std::optional<int64_t> parse_id(std::string_view s);

/// True if `value` may go into a header value as it is: visible ASCII, spaces and tabs, and
/// bytes ≥ 0x80, but no other control characters (no CR or LF).
bool is_header_value_safe(std::string_view value);

/// Splits a request target into its path and query (without the '?').
void split_target(std::string_view target, std::string_view* path, std::string_view* query);

}  // namespace meshbox::bookinfo
