// Pieces of the Prometheus text exposition format 0.0.4: name checks, escaping and number
// formatting. Pure functions on strings; any thread.
#pragma once

#include <string>
#include <string_view>

namespace meshbox::stats::prometheus {

/// [a-zA-Z_:][a-zA-Z0-9_:]*
bool valid_metric_name(std::string_view name);
/// [a-zA-Z_][a-zA-Z0-9_]*, not starting with "__" (reserved by Prometheus).
bool valid_label_name(std::string_view name);

/// A label value between the quotes: `\` → `\\`, `"` → `\"`, newline → `\n`. Bytes that are
/// not valid UTF-8 (label values can come from the network) become U+FFFD, which Prometheus
/// requires.
void append_label_value(std::string& out, std::string_view value);
/// HELP text: `\` → `\\`, newline → `\n`; invalid UTF-8 as above.
void append_help(std::string& out, std::string_view help);
/// A sample value: shortest round-trip form; NaN, +Inf, -Inf spelled as Prometheus does.
void append_value(std::string& out, double value);
/// A bucket bound as Envoy prints it (`%.32g`: "0.5", "1800000"), "+Inf" for infinity.
void append_le(std::string& out, double bound);

}  // namespace meshbox::stats::prometheus
