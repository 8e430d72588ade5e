#include "cli/args.h"

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <thread>

#include "core/base/log.h"

namespace meshbox::cli {

Result<Args> Args::parse(int argc, char** argv, int first, const std::vector<FlagSpec>& flags) {
  Args a;
  for (int i = first; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--") {
      for (++i; i < argc; ++i)
        a.positional_.emplace_back(argv[i]);
      break;
    }
    if (arg.size() < 3 || arg.rfind("--", 0) != 0) {
      if (!arg.empty() && arg[0] == '-' && arg != "-")
        return make_error(Code::InvalidArgument, "unknown flag '" + arg + "'");
      a.positional_.push_back(arg);
      continue;
    }
    std::string name = arg.substr(2), value;
    bool inline_value = false;
    if (size_t eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      inline_value = true;
    }
    const FlagSpec* spec = nullptr;
    for (const auto& f : flags)
      if (f.name == name) spec = &f;
    if (!spec) return make_error(Code::InvalidArgument, "unknown flag '--" + name + "'");
    if (spec->takes_value && !inline_value) {
      if (i + 1 >= argc)
        return make_error(Code::InvalidArgument, "flag '--" + name + "' needs a value");
      value = argv[++i];
    } else if (!spec->takes_value && inline_value) {
      return make_error(Code::InvalidArgument, "flag '--" + name + "' takes no value");
    }
    a.values_[name] = value;
  }
  return a;
}

std::optional<std::string> Args::get(const std::string& name) const {
  auto it = values_.find(name);
  if (it == values_.end()) return std::nullopt;
  return it->second;
}

namespace {
Result<std::pair<uint64_t, std::string>> number_and_unit(const std::string& text) {
  uint64_t n = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  if (ec != std::errc() || end == text.data())
    return make_error(Code::InvalidArgument, "'" + text + "' does not start with a number");
  return std::make_pair(n, std::string(end, text.data() + text.size()));
}
}  // namespace

Result<uint64_t> parse_duration_ms(const std::string& text) {
  auto nu = number_and_unit(text);
  if (!nu) return nu.error();
  auto [n, unit] = *nu;
  if (unit == "ms") return n;
  if (unit == "s") return n * 1000;
  if (unit == "m") return n * 60'000;
  if (unit == "h") return n * 3'600'000;
  return make_error(Code::InvalidArgument,
                    "bad duration '" + text + "': expected a number with ms, s, m or h");
}

Result<uint64_t> parse_size(const std::string& text) {
  auto nu = number_and_unit(text);
  if (!nu) return nu.error();
  auto [n, unit] = *nu;
  if (unit.empty() || unit == "B") return n;
  if (unit == "KiB" || unit == "K" || unit == "k") return n << 10;
  if (unit == "MiB" || unit == "M") return n << 20;
  if (unit == "GiB" || unit == "G") return n << 30;
  return make_error(Code::InvalidArgument,
                    "bad size '" + text + "': expected bytes or a number with KiB, MiB or GiB");
}

bool wants_help(int argc, char** argv) {
  for (int i = 2; i < argc; ++i) {
    std::string_view a = argv[i];
    if (a == "-h" || a == "--help") return true;
  }
  return false;
}

Status apply_log_level(const Args& args) {
  auto level = args.get("log-level");
  if (!level) return Status::ok();
  auto l = log::parse_level(*level);
  if (!l) return Status(Code::InvalidArgument, "bad --log-level '" + *level + "'");
  log::set_level(*l);
  return Status::ok();
}

Result<int> workers_flag(const Args& args) {
  auto w = args.get("workers");
  if (!w) return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  char* end = nullptr;
  long v = std::strtol(w->c_str(), &end, 10);
  if (end == w->c_str() || *end || v < 1 || v > 256)
    return Status(Code::InvalidArgument, "--workers must be 1..256");
  return static_cast<int>(v);
}

}  // namespace meshbox::cli
