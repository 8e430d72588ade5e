// meshbox validate: decodes and validates a mesh config (plane/config/load.h) and prints
// every finding, like `istioctl analyze`. Exit 0: valid (warnings may be printed); 1: at
// least one error; 2: bad usage.
#include <string>
#include <string_view>
#include <vector>

#include <fmt/core.h>

#include "cli/commands.h"
#include "plane/config/load.h"
#include "plane/control/gateway_tls.h"

namespace meshbox::cli {

namespace {

constexpr const char* kUsage = R"(usage: meshbox validate [-o text|json] PATH...

Checks a mesh config and prints every error and warning with its position
(FILE:LINE:COLUMN), sorted by file and line, like `istioctl analyze`. PATH is a .toml file
or a directory whose *.toml files are read in name order (not its subdirectories); several
PATHs make one config. docs/config.md lists the schema and every check. The certificate
files of gateway servers that terminate TLS are read and checked too (readable, PEM, the key
matching the certificate, not expired).

Exit status: 0 if the config is valid (warnings are printed but do not fail it), 1 if it
has errors, 2 on bad usage.

flags:
  -o, --output FORMAT   text (default): one line per finding, then a summary;
                        json: a JSON array of {severity, file, line, column, kind, name,
                        field, message}, nothing else
  -h, --help            this help
)";

int usage_error(const std::string& message) {
  fmt::print(stderr, "meshbox validate: {}\nrun 'meshbox validate --help' for usage\n", message);
  return 2;
}

std::string plural(size_t n, std::string_view one, std::string_view many) {
  return fmt::format("{} {}", n, n == 1 ? one : many);
}

// "5 services, 8 workloads, 3 virtual services, …": the kinds present, in schema order.
std::string summarize(const config::Config& c) {
  struct Kind {
    size_t n;
    std::string_view one, many;
  };
  const Kind kinds[] = {
      {c.services.size(), "service", "services"},
      {c.workloads.size(), "workload", "workloads"},
      {c.virtual_services.size(), "virtual service", "virtual services"},
      {c.destination_rules.size(), "destination rule", "destination rules"},
      {c.gateways.size(), "gateway", "gateways"},
      {c.service_entries.size(), "service entry", "service entries"},
      {c.peer_authentications.size(), "peer authentication", "peer authentications"},
      {c.authorization_policies.size(), "authorization policy", "authorization policies"},
      {c.request_authentications.size(), "request authentication", "request authentications"},
  };
  std::string out;
  for (const auto& k : kinds) {
    if (k.n == 0) continue;
    out += (out.empty() ? "" : ", ") + plural(k.n, k.one, k.many);
  }
  if (out.empty()) out = "no resources";
  if (c.mesh.defined) out += ", mesh settings";
  return out;
}

}  // namespace

int cmd_validate(int argc, char** argv) {
  std::string output = "text";
  std::vector<std::string> paths;
  bool only_paths = false;
  for (int i = 2; i < argc; ++i) {
    std::string_view a = argv[i];
    if (only_paths) {
      paths.emplace_back(a);
      continue;
    }
    if (a == "-h" || a == "--help") {
      fmt::print("{}", kUsage);
      return 0;
    }
    if (a == "--") {
      only_paths = true;
    } else if (a == "-o" || a == "--output") {
      if (i + 1 >= argc) return usage_error(fmt::format("{} needs a value: text or json", a));
      output = argv[++i];
    } else if (a.starts_with("--output=")) {
      output = a.substr(9);
    } else if (a.starts_with("-o") && a.size() > 2) {
      output = a.substr(a[2] == '=' ? 3 : 2);
    } else if (a.size() > 1 && a[0] == '-') {
      return usage_error(fmt::format("unknown flag '{}'", a));
    } else {
      paths.emplace_back(a);
    }
  }
  if (output != "text" && output != "json")
    return usage_error(fmt::format("unknown output format '{}': expected text or json", output));
  if (paths.empty()) return usage_error("a PATH (a .toml file or a directory) is required");

  config::Loaded loaded = config::load(paths);
  // The files a config names (gateway certificates) are read here, not by validation: a
  // running mesh reloads them on its own and keeps serving through a bad one.
  if (loaded.ok()) {
    auto files = control::check_gateway_tls_files(loaded.config);
    loaded.findings.insert(loaded.findings.end(), files.begin(), files.end());
    config::sort_errors(loaded.findings);
  }
  size_t errors = config::count_errors(loaded.findings, config::Severity::Error);
  size_t warnings = config::count_errors(loaded.findings, config::Severity::Warning);

  if (output == "json") {
    fmt::print("{}\n", config::to_json(loaded.findings));
    return errors ? 1 : 0;
  }
  for (const auto& f : loaded.findings)
    fmt::print("{}\n", config::format(f));
  if (errors) {
    fmt::print("invalid: {}{}\n", plural(errors, "error", "errors"),
               warnings ? ", " + plural(warnings, "warning", "warnings") : "");
    return 1;
  }
  fmt::print("ok: {} ({}){}\n", summarize(loaded.config),
             plural(loaded.config.files.size(), "file", "files"),
             warnings ? "; " + plural(warnings, "warning", "warnings") : "");
  return 0;
}

}  // namespace meshbox::cli
