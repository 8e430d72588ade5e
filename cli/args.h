// Args: the command-line flags of one subcommand. "--name value" and "--name=value";
// boolean flags take no value. Unknown flags and missing values are usage errors (exit 2).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/base/result.h"

namespace meshbox::cli {

struct FlagSpec {
  std::string name;  // without the dashes
  bool takes_value = true;
};

class Args {
 public:
  /// Parses argv[first..]; positional arguments are kept in order.
  static Result<Args> parse(int argc, char** argv, int first, const std::vector<FlagSpec>& flags);

  bool has(const std::string& name) const { return values_.count(name) > 0; }
  std::optional<std::string> get(const std::string& name) const;
  const std::vector<std::string>& positional() const { return positional_; }

 private:
  std::map<std::string, std::string> values_;
  std::vector<std::string> positional_;
};

/// True if argv[2..] holds -h or --help (checked before parsing, so help always wins).
bool wants_help(int argc, char** argv);
/// Applies --log-level if given; an error message if its value is bad.
Status apply_log_level(const Args& args);
/// --workers (1..256), else the number of cores.
Result<int> workers_flag(const Args& args);

/// "250ms", "5s", "2m", "1h" → milliseconds.
Result<uint64_t> parse_duration_ms(const std::string& text);
/// "65536", "64KiB", "10MiB", "1GiB" → bytes.
Result<uint64_t> parse_size(const std::string& text);

}  // namespace meshbox::cli
