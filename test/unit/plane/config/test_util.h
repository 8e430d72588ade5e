// Helpers for the plane/config tests: write TOML to a file in a temp dir, load it the way
// `meshbox validate` does, and find a finding by field path. Positions in expectations are
// computed from the TOML text itself (locate()), so each check is exact and still readable.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "plane/config/load.h"
#include "test/support/files.h"

namespace meshbox::config::test {

using meshbox::test::TempDir;

/// Writes `text` to DIR/NAME and returns the path.
std::string write_file(const TempDir& dir, const std::string& name, std::string_view text);

/// Writes `text` to a fresh file and loads it (decode + validate, findings sorted).
struct LoadedFile {
  LoadedFile(std::string_view text, const std::string& name);

  TempDir dir;
  std::string path;
  Loaded loaded;
};
LoadedFile load_toml(std::string_view text, const std::string& name = "mesh.toml");

/// The 1-based line and column of the `nth` (0-based) occurrence of `needle` in `text`;
/// {0, 0} if there is none.
Pos locate(std::string_view text, std::string_view needle, size_t nth = 0);

/// The findings whose field path is `field` (and resource kind and name, when given).
std::vector<ConfigError> findings_at(const Loaded& l, std::string_view field,
                                     std::string_view kind = "", std::string_view name = "");

/// Every finding, one per line: for INFO() so that a failing check shows them all.
std::string dump(const Loaded& l);

}  // namespace meshbox::config::test

/// Checks that exactly one finding is at `field`, at the position of `needle` in `text`,
/// with `severity` and a message containing `message`.
#define CHECK_FINDING(LOADED_, TEXT_, FIELD_, NEEDLE_, SEVERITY_, MESSAGE_) \
  CHECK_FINDING_OF(LOADED_, TEXT_, "", FIELD_, NEEDLE_, SEVERITY_, MESSAGE_)

/// The same, among the findings about the resource named `name` ("" for any).
#define CHECK_FINDING_OF(LOADED_, TEXT_, NAME_, FIELD_, NEEDLE_, SEVERITY_, MESSAGE_)         \
  do {                                                                                        \
    const auto& lf_ = (LOADED_);                                                              \
    INFO(::meshbox::config::test::dump(lf_.loaded));                                          \
    auto found_ = ::meshbox::config::test::findings_at(lf_.loaded, FIELD_, "", NAME_);        \
    REQUIRE_MESSAGE(found_.size() == 1, "findings at " << (FIELD_) << ": " << found_.size()); \
    ::meshbox::config::Pos want_ = ::meshbox::config::test::locate(TEXT_, NEEDLE_);           \
    REQUIRE_MESSAGE(want_.line != 0, "needle not in text: " << (NEEDLE_));                    \
    CHECK(found_[0].file == lf_.path);                                                        \
    CHECK(found_[0].line == want_.line);                                                      \
    CHECK(found_[0].column == want_.column);                                                  \
    CHECK(found_[0].severity == (SEVERITY_));                                                 \
    CHECK_MESSAGE(found_[0].message.find(MESSAGE_) != std::string::npos,                      \
                  "message: " << found_[0].message);                                          \
  } while (0)
