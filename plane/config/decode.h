// Decoding: TOML → Config (resources.h), with the position of every resource and field.
//
// A config is one .toml file or a directory of them. In a directory, the files whose names
// end in ".toml" are read in name order; subdirectories and names starting with '.' are not
// read (the directory is not searched recursively). Each file holds arrays of tables, one
// per resource kind (`[[service]]`, `[[virtual_service]]`, …), and at most one `[mesh]`
// table in the whole config; inline tables and nested arrays of tables
// (`[[virtual_service.http]]`) are equivalent, as TOML defines.
//
// Decoding checks each value on its own: TOML syntax, unknown keys (with a suggestion),
// types, required fields, names, enum values, durations, percentages and number ranges. It
// never stops at the first problem: every finding is collected, and what could be decoded
// is kept (a field with a bad value is left at its default). Checks that need more than one
// value (weights, references between resources, …) are validate.h's.
//
// Reads files with blocking I/O: control thread or CLI only, never a worker.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "core/base/result.h"
#include "plane/config/error.h"
#include "plane/config/resources.h"

namespace meshbox::config {

struct Decoded {
  Config config;
  std::vector<ConfigError> errors;  // in the order found; errors and warnings
};

/// Reads `path`, a .toml file or a directory of them (see above). A path that cannot be
/// read, or a directory without .toml files, is an error in the result.
Decoded decode_path(const std::string& path);

/// The files `path` stands for, in the order decode_path reads them: `path` itself if it is
/// not a directory, else the directory's regular files (symbolic links followed) whose names
/// end in ".toml" and do not start with '.', not recursive, sorted by name, each as
/// "PATH/NAME". The one rule for every reader of a config path (decode_path, `meshbox run`
/// and its file watch, `meshbox apply`). A directory without such files gives an empty list:
/// the caller says whether that is an error (kNoTomlFiles). Fails with NotFound ("no such
/// file or directory") or Io ("cannot read directory: REASON"); messages do not name `path`.
Result<std::vector<std::string>> list_config_files(const std::string& path);
/// What to say about a directory without .toml files.
inline constexpr std::string_view kNoTomlFiles = "no .toml files in this directory";

/// Like decode_path(), adding to an existing config: several paths make one config.
void decode_path_into(const std::string& path, Config& config, std::vector<ConfigError>& errors);

/// Decodes one TOML document named `file` (used in positions) and adds its resources to
/// `config` and its findings to `errors`. `config.files` gets `file`.
void decode_document(std::string_view text, const std::string& file, Config& config,
                     std::vector<ConfigError>& errors);

/// Decodes one document into a fresh config.
Decoded decode_string(std::string_view text, const std::string& file = "<config>");

/// Parses a duration as Istio writes it: one or more NUMBER UNIT pairs, UNIT one of ms, s, m,
/// h; NUMBER may have a fraction ("0.5s", "1m30s", "100ms"). Millisecond precision, at most
/// 10 years. On failure, `error` says what is wrong and the result is nullopt.
std::optional<Duration> parse_duration(std::string_view text, std::string* error);

}  // namespace meshbox::config
