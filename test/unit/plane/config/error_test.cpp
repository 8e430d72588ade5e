// ConfigError (plane/config/error.h): the line format, JSON, sorting.
#include "plane/config/error.h"

#include <doctest/doctest.h>

namespace meshbox::config {
namespace {

TEST_CASE("error: one line per finding, compiler style") {
  ConfigError e{Severity::Error,
                "mesh.toml",
                12,
                7,
                "virtual_service",
                "reviews",
                "http[1].route[0].weight",
                "weights must sum to 100, got 90"};
  CHECK(format(e) ==
        "mesh.toml:12:7: error: virtual_service \"reviews\": "
        "http[1].route[0].weight: weights must sum to 100, got 90");
  e.severity = Severity::Warning;
  e.field.clear();
  CHECK(format(e) ==
        "mesh.toml:12:7: warning: virtual_service \"reviews\": weights must sum to "
        "100, got 90");
  CHECK(format({Severity::Error, "dir", 0, 0, "", "", "", "no .toml files in this directory"}) ==
        "dir: error: no .toml files in this directory");
  CHECK(format({Severity::Error, "m.toml", 1, 1, "mesh", "", "name", "x"}) ==
        "m.toml:1:1: error: mesh: name: x");
  // Control characters never break the line.
  CHECK(format({Severity::Error, "a\nb.toml", 2, 3, "service", "x\ty", "labels.a\rb", "m\n"}) ==
        "a\\x0ab.toml:2:3: error: service \"x\\x09y\": labels.a\\x0db: m\\x0a");
}

TEST_CASE("error: JSON array with escaping") {
  CHECK(to_json({}) == "[]");
  std::vector<ConfigError> errors = {
      {Severity::Error, "a\"b\\c.toml", 1, 2, "service", "s", "port", "bad\nthing\t\x01"},
      {Severity::Warning, "caf\xc3\xa9\xff.toml", 3, 4, "", "", "", "ok"},
  };
  CHECK(to_json(errors) ==
        "[\n"
        "  {\"severity\": \"error\", \"file\": \"a\\\"b\\\\c.toml\", \"line\": 1, \"column\": 2, "
        "\"kind\": \"service\", \"name\": \"s\", \"field\": \"port\", \"message\": "
        "\"bad\\nthing\\t\\u0001\"},\n"
        // json::append_string: a byte that is not UTF-8 becomes U+FFFD itself (EF BF BD).
        "  {\"severity\": \"warning\", \"file\": \"caf\xc3\xa9\xef\xbf\xbd.toml\", \"line\": 3, "
        "\"column\": 4, \"kind\": \"\", \"name\": \"\", \"field\": \"\", \"message\": \"ok\"}\n"
        "]");
}

TEST_CASE("error: sorted by file, line, column; stable") {
  std::vector<ConfigError> errors = {
      {Severity::Error, "b.toml", 1, 1, "", "", "", "1"},
      {Severity::Warning, "a.toml", 9, 1, "", "", "", "2"},
      {Severity::Error, "a.toml", 2, 5, "", "", "", "3"},
      {Severity::Error, "a.toml", 2, 3, "", "", "", "4"},
      {Severity::Error, "a.toml", 2, 5, "", "", "", "5"},
  };
  sort_errors(errors);
  std::string order;
  for (const auto& e : errors)
    order += e.message;
  CHECK(order == "43521");
  CHECK(count_errors(errors, Severity::Error) == 4);
  CHECK(count_errors(errors, Severity::Warning) == 1);
  CHECK(has_errors(errors));
  CHECK_FALSE(has_errors({errors[3]}));  // the warning
}

}  // namespace
}  // namespace meshbox::config
