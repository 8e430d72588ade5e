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
/// Istio); validation compiles them with std::regex (ECMAScript) after translating the RE2
/// spellings it does not know (a leading (?i) flag group, (?P<name>…), \A, \z), and rejects
/// what RE2 does not support (lookahead, backreferences).
std::optional<std::string> regex_error(const std::string& pattern);

}  // namespace meshbox::config
