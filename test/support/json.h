// A small JSON reader for what meshbox-httpbin returns (/headers, /stats, /upload): objects,
// arrays, strings (with \uXXXX escapes), numbers, true/false/null. Enough for tests; not a
// general-purpose library. Plain value types.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace meshbox::test {

struct Json {
  enum class Type { Null, Bool, Number, String, Array, Object };
  Type type = Type::Null;
  bool boolean = false;
  double number = 0;
  std::string string;
  std::vector<Json> array;
  std::map<std::string, Json> object;

  /// Object member or null.
  const Json* get(const std::string& key) const;
};

/// Parses a whole document (surrounding whitespace allowed); nullopt if it is not JSON.
std::optional<Json> parse_json(std::string_view text);

}  // namespace meshbox::test
