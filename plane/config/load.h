// Loading a config the way `meshbox validate`, `meshbox run` and `meshbox apply` do: decode
// one or more paths into one Config, validate it, and sort the findings by file and line.
// A config with any error must not be used; one with only warnings may be. Blocking file
// I/O: control thread or CLI only.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "plane/config/error.h"
#include "plane/config/resources.h"

namespace meshbox::config {

struct Loaded {
  Config config;
  std::vector<ConfigError> findings;  // errors and warnings, sorted by file, line, column

  bool ok() const { return !has_errors(findings); }
};

/// Decodes every path (a .toml file or a directory of them, see decode.h) into one config
/// and validates it.
Loaded load(const std::vector<std::string>& paths);

/// The same for one in-memory document named `file`.
Loaded load_string(std::string_view text, const std::string& file = "<config>");

/// An in-memory TOML document and the name its findings carry (a file name, or a store key).
struct Document {
  std::string name;
  std::string text;
};

/// Decodes every document, in order, into one config and validates it (what the control
/// plane does with the stored resources plus the ones being applied).
Loaded load_documents(const std::vector<Document>& documents);

}  // namespace meshbox::config
