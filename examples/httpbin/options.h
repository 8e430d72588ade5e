// Options: the meshbox-httpbin command line, parsed once in main. A plain value type.
#pragma once

#include <string>
#include <string_view>

#include "core/base/log.h"
#include "core/base/result.h"
#include "core/loop/address.h"

namespace meshbox::httpbin {

struct Options {
  loop::Address listen;
  std::string name = "httpbin";
  std::string ready_file;  // empty: none
  log::Level log_level = log::Level::Info;
  bool help = false;
};

/// Parses argv. `--flag VALUE` and `--flag=VALUE` are both accepted. An error names the bad
/// flag; the caller prints it with the usage and exits 2.
Result<Options> parse_options(int argc, char** argv);

/// The --help text.
std::string_view usage();

}  // namespace meshbox::httpbin
