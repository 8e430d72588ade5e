// "Did you mean …?": finds the known name a misspelt one was probably meant to be, for the
// unknown-key, bad-enum and dangling-reference errors of decode.h and validate.h. Pure
// functions.
#pragma once

#include <span>
#include <string>
#include <string_view>

namespace meshbox::config {

/// Edit distance counting insertions, deletions, substitutions and swaps of two adjacent
/// characters as one edit each (optimal string alignment).
size_t edit_distance(std::string_view a, std::string_view b);

/// The candidate `word` was most likely meant to be, or "" if none is close: the same name
/// in snake_case (Istio's YAML writes `perTryTimeout`, meshbox `per_try_timeout`), the same
/// name in another case, or one within a small edit distance (1 for names up to 4
/// characters, 2 up to 8, else 3).
std::string closest_match(std::string_view word, std::span<const std::string> candidates);

/// "; did you mean 'x'?" for the closest match, or "".
std::string did_you_mean(std::string_view word, std::span<const std::string> candidates);

/// "fooBarBaz" → "foo_bar_baz"; "consecutive5xxErrors" → "consecutive_5xx_errors".
std::string snake_case(std::string_view camel);

}  // namespace meshbox::config
