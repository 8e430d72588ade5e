// Validation: the checks of a decoded config that need more than one value, like
// `istioctl analyze`. decode.h checks each value on its own (types, names, ranges, enums,
// durations, unknown keys); this checks what the values mean together: references between
// resources (hosts, subsets, gateways, services), weights, duplicates, regexes, exclusive
// fields, and routes that can never match. docs/config.md lists every check.
//
// Runs on whatever decoding produced, even when decoding found errors: a field that failed
// to decode is empty and is not checked again, so one mistake is reported once.
// Pure function of the Config; thread-agnostic.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "plane/config/error.h"
#include "plane/config/resources.h"

namespace meshbox::config {

/// Every finding (errors and warnings) about `config`, in the order found.
std::vector<ConfigError> validate(const Config& config);

/// Why `pattern` is not a regex meshbox accepts, or nullopt. Patterns are RE2 syntax (as in
/// Istio), compiled here with RE2 and the options plane/snapshot.cpp uses, so validation
/// accepts exactly what the data plane compiles; patterns are also at most 1024 characters.
/// `ignore_case`: compiled case-insensitively, as a uri match with ignore_uri_case is (it
/// parses the same, but compiles larger). The reason is RE2's ("missing ]: [a-z",
/// "invalid repetition size: {1001}"), with a hint for syntax RE2 lacks (lookaround,
/// backreferences).
std::optional<std::string> regex_error(const std::string& pattern, bool ignore_case = false);

/// Why `substitution` is not a uri_regex_rewrite substitution for `pattern`, or nullopt: each
/// `\` must be followed by a digit or another `\`, and `\N` must name one of the pattern's
/// groups (RE2::CheckRewriteString, as the data plane checks). Also nullopt when `pattern`
/// itself is bad: regex_error reports that.
std::optional<std::string> rewrite_error(const std::string& pattern,
                                         const std::string& substitution);

}  // namespace meshbox::config
