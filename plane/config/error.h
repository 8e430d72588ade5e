// ConfigError: one finding about a mesh config, an error (the config is rejected) or a
// warning (the config is accepted, but something in it is probably not what its author
// meant). Every finding names the file, line and column, the resource, the field and what
// was expected, as DESIGN.md asks. Decoding and validation collect them; they never stop at
// the first. Plain value types; thread-agnostic.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace meshbox::config {

enum class Severity { Error, Warning };

struct ConfigError {
  Severity severity = Severity::Error;
  std::string file;     // as given on the command line (or the directory joined with the name)
  uint32_t line = 0;    // 1-based; 0 when the finding has no position (an unreadable file)
  uint32_t column = 0;  // 1-based
  std::string kind;     // resource kind, e.g. "virtual_service"; "" for file-level findings
  std::string name;     // resource name; "NAMESPACE/NAME" outside namespace "default"
  std::string field;    // field path, e.g. "http[1].route[0].weight"; "" for the whole resource
  std::string message;  // what is wrong and what was expected
};

/// One line, compiler style:
/// `FILE:LINE:COL: error: virtual_service "reviews": http[1].route[0].weight: MESSAGE`.
/// Parts that are empty are left out (no position, no resource, no field).
std::string format(const ConfigError& e);

/// A JSON array of objects {severity, file, line, column, kind, name, field, message}, for
/// scripts (`meshbox validate -o json`) and the admin API. No trailing newline.
std::string to_json(const std::vector<ConfigError>& errors);

/// Sorts by file, line and column; findings at the same position keep their order.
void sort_errors(std::vector<ConfigError>& errors);

/// `"value"` for a message: control characters escaped, cut short (at a character
/// boundary, with "…") past 60 bytes, since garbage input can be megabytes long.
std::string quote_for_message(std::string_view value);

size_t count_errors(const std::vector<ConfigError>& errors, Severity severity);
inline bool has_errors(const std::vector<ConfigError>& errors) {
  return count_errors(errors, Severity::Error) > 0;
}

}  // namespace meshbox::config
