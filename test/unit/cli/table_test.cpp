// Tests for cli/table.h: kubectl-style alignment, UTF-8 widths, no trailing spaces.
#include "cli/table.h"

#include <doctest/doctest.h>

namespace meshbox::cli {
namespace {

TEST_CASE("table: columns padded to the widest cell plus three spaces") {
  std::string t = format_table(
      {"name", "namespace", "hosts"},
      {{"reviews", "default", "reviews.default.svc"}, {"ratings-v2", "bookinfo", "ratings"}});
  CHECK(t ==
        "NAME         NAMESPACE   HOSTS\n"
        "reviews      default     reviews.default.svc\n"
        "ratings-v2   bookinfo    ratings\n");
}

TEST_CASE("table: no rows gives the header line alone") {
  CHECK(format_table({"name", "age"}, {}) == "NAME   AGE\n");
  CHECK(format_table({"only"}, {}) == "ONLY\n");
}

TEST_CASE("table: widths count code points, not bytes") {
  std::string t = format_table({"name", "x"}, {{"café", "1"}, {"ab", "2"}});
  CHECK(t ==
        "NAME   X\n"
        "café   1\n"
        "ab     2\n");
}

TEST_CASE("table: only ASCII letters are upper-cased") {
  CHECK(format_table({"größe", "v1.2"}, {}) == "GRößE   V1.2\n");
}

TEST_CASE("table: empty cells at the end leave no trailing spaces") {
  std::string t = format_table({"name", "port", "notes"}, {{"a", "80", ""}, {"bb", "", ""}, {}});
  CHECK(t ==
        "NAME   PORT   NOTES\n"
        "a      80\n"
        "bb\n"
        "\n");
}

TEST_CASE("table: ragged rows") {
  // Short rows get empty cells; long ones get columns of their own.
  std::string t = format_table({"a", "b"}, {{"1"}, {"1", "2", "extra"}});
  CHECK(t ==
        "A   B\n"
        "1\n"
        "1   2   extra\n");
}

}  // namespace
}  // namespace meshbox::cli
