// Options: the command line and environment of a Bookinfo program, parsed once in main. The
// four programs share the flags of meshbox-httpbin (--listen, --name, --ready-file,
// --log-level) and differ in the upstreams they call and, for reviews, --version. Plain
// value types.
//
// Environment (read here and nowhere else, through the Env function main passes in):
//   PORT                       --listen's default port (127.0.0.1:$PORT), as meshbox sets it
//   <SVC>_HOSTNAME             an upstream's host (default: the service name), as in Istio's
//   <SVC>_SERVICE_PORT         samples; its port (default 9080)
//   SERVICES_DOMAIN            appended to those hosts as ".<domain>"
//   http_proxy / HTTP_PROXY    the proxy for upstream calls (lower case wins)
//   no_proxy / NO_PROXY        hosts called directly despite it
//   CLUSTER_NAME               reviews' "clustername" (default "null", like the sample)
//   MESHBOX_WORKLOAD           --name's default: the instance name `meshbox run` gives
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/base/log.h"
#include "core/base/result.h"
#include "core/loop/address.h"
#include "examples/bookinfo/common/proxy_config.h"
#include "examples/bookinfo/common/upstream.h"

namespace meshbox::bookinfo {

/// What one program takes besides the common flags.
struct AppSpec {
  std::string_view program = {};       // "meshbox-reviews"
  std::string_view summary = {};       // a few lines for --help
  std::string_view default_name = {};  // --name's default
  /// Services it calls: each gets a flag --<svc> HOST:PORT and the <SVC>_HOSTNAME and
  /// <SVC>_SERVICE_PORT variables.
  std::vector<std::string_view> upstreams = {};
  bool takes_version = false;  // --version v1|v2|v3 (reviews)
};

struct Options {
  loop::Address listen;
  std::string name;
  bool name_given = false;  // --name or MESHBOX_WORKLOAD named this instance
  std::string ready_file;   // empty: none
  log::Level log_level = log::Level::Info;
  bool help = false;
  std::string version = "v1";
  std::string cluster_name = "null";
  std::map<std::string, Upstream, std::less<>> upstreams;  // by service name
  ProxyConfig proxy;

  /// The upstream for `service`, which must be one of the spec's.
  const Upstream& upstream(std::string_view service) const;
};

/// Looks up an environment variable.
using Env = std::function<std::optional<std::string>(std::string_view name)>;

/// The process environment (getenv), for main to pass to parse_options.
std::optional<std::string> process_env(std::string_view name);

/// Parses argv and the environment. `--flag VALUE` and `--flag=VALUE` are both accepted. An
/// error names the bad flag or variable; the caller prints it with the usage and exits 2.
Result<Options> parse_options(int argc, char** argv, const AppSpec& spec, const Env& env);

/// The --help text.
std::string usage(const AppSpec& spec);

}  // namespace meshbox::bookinfo
