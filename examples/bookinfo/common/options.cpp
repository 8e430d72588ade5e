#include "examples/bookinfo/common/options.h"

#include <fmt/core.h>

#include <cstdlib>

#include "core/base/assert.h"

namespace meshbox::bookinfo {

namespace {

std::string upper(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  return out;
}

// The name goes into JSON and HTML (escaped) and into logs: keep it to visible ASCII.
bool is_valid_name(std::string_view name) {
  if (name.empty() || name.size() > 253) return false;
  for (char c : name)
    if (c <= 0x20 || c >= 0x7f) return false;
  return true;
}

// An environment variable, empty counting as unset.
std::optional<std::string> env_value(const Env& env, std::string_view name) {
  auto v = env(name);
  if (v && v->empty()) return std::nullopt;
  return v;
}

// The first of two variables that is set (http_proxy before HTTP_PROXY, as curl does).
std::string env_either(const Env& env, std::string_view lower_name, std::string_view upper_name) {
  if (auto v = env_value(env, lower_name)) return *v;
  return env_value(env, upper_name).value_or("");
}

// The upstream for `service` from <SVC>_HOSTNAME, <SVC>_SERVICE_PORT and SERVICES_DOMAIN.
Result<Upstream> upstream_from_env(const Env& env, std::string_view service) {
  std::string svc = upper(service);
  Upstream up;
  up.host = env_value(env, svc + "_HOSTNAME").value_or(std::string(service));
  if (!is_valid_host(up.host))
    return make_error(Code::InvalidArgument,
                      fmt::format("{}_HOSTNAME: bad host '{}'", svc, up.host));
  if (auto domain = env_value(env, "SERVICES_DOMAIN")) {
    if (!is_valid_host(*domain))
      return make_error(Code::InvalidArgument,
                        fmt::format("SERVICES_DOMAIN: bad domain '{}'", *domain));
    up.host += "." + *domain;
  }
  if (auto port_text = env_value(env, svc + "_SERVICE_PORT")) {
    auto port = parse_port(*port_text);
    if (!port)
      return make_error(Code::InvalidArgument,
                        fmt::format("{}_SERVICE_PORT: {}", svc, port.error().message()));
    up.port = *port;
  }
  return up;
}

}  // namespace

const Upstream& Options::upstream(std::string_view service) const {
  auto it = upstreams.find(service);
  MB_CHECK(it != upstreams.end());
  return it->second;
}

std::optional<std::string> process_env(std::string_view name) {
  const char* v = std::getenv(std::string(name).c_str());
  if (!v) return std::nullopt;
  return std::string(v);
}

std::string usage(const AppSpec& spec) {
  std::string out = fmt::format(
      "usage: {} [--listen HOST:PORT] [--name NAME] [--ready-file PATH] [--log-level LEVEL]",
      spec.program);
  for (auto svc : spec.upstreams)
    out += fmt::format(" [--{} HOST:PORT]", svc);
  if (spec.takes_version) out += " [--version v1|v2|v3]";
  out += fmt::format("\n\n{}\n\n", spec.summary);
  out +=
      "  --listen HOST:PORT   address to listen on; port 0 picks a free port\n"
      "                       (default: 127.0.0.1:$PORT, else 127.0.0.1:9080)\n";
  out += fmt::format(
      "  --name NAME          this instance's name (default: $MESHBOX_WORKLOAD, else {}{})\n",
      spec.default_name, spec.takes_version ? "-VERSION-PID" : "");
  out +=
      "  --ready-file PATH    once listening, write the bound HOST:PORT to PATH\n"
      "                       (atomically: PATH.tmp, then rename)\n"
      "  --log-level LEVEL    trace, debug, info, warn, error or off (default: info)\n";
  for (auto svc : spec.upstreams) {
    std::string u = upper(svc);
    out += fmt::format(
        "  --{0:<8} HOST:PORT  where {1} is called (default: ${2}_HOSTNAME or {1},\n"
        "                       port ${2}_SERVICE_PORT or 9080; .$SERVICES_DOMAIN if set)\n",
        svc, svc, u);
  }
  if (spec.takes_version)
    out +=
        "  --version VERSION    v1: no ratings; v2: ratings with black stars; v3: red stars\n"
        "                       (default: v1)\n";
  out += "  --help               print this text and exit\n";
  if (!spec.upstreams.empty())
    out +=
        "\nCalls go through the HTTP proxy in $http_proxy (or $HTTP_PROXY) unless $no_proxy\n"
        "(or $NO_PROXY) names the host; without a proxy an upstream host must be an IP\n"
        "address or localhost.\n";
  return out;
}

Result<Options> parse_options(int argc, char** argv, const AppSpec& spec, const Env& env) {
  Options opts;
  opts.name = std::string(spec.default_name);
  std::optional<std::string> listen_text;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      opts.help = true;
      return opts;
    }
    std::string_view flag = arg;
    std::optional<std::string_view> value;
    if (size_t eq = arg.find('='); arg.starts_with("--") && eq != std::string_view::npos) {
      flag = arg.substr(0, eq);
      value = arg.substr(eq + 1);
    }
    std::string_view upstream_flag;
    for (auto svc : spec.upstreams)
      if (flag.size() == svc.size() + 2 && flag.starts_with("--") && flag.substr(2) == svc)
        upstream_flag = svc;
    bool known = flag == "--listen" || flag == "--name" || flag == "--ready-file" ||
                 flag == "--log-level" || (flag == "--version" && spec.takes_version) ||
                 !upstream_flag.empty();
    if (!known) return make_error(Code::InvalidArgument, "unknown flag '" + std::string(arg) + "'");
    if (!value) {
      if (i + 1 >= argc)
        return make_error(Code::InvalidArgument, std::string(flag) + " needs a value");
      value = argv[++i];
    }
    if (flag == "--listen") {
      listen_text = std::string(*value);
    } else if (flag == "--name") {
      if (!is_valid_name(*value))
        return make_error(Code::InvalidArgument,
                          "--name must be printable ASCII without spaces, and not empty");
      opts.name = std::string(*value);
      opts.name_given = true;
    } else if (flag == "--ready-file") {
      if (value->empty())
        return make_error(Code::InvalidArgument, "--ready-file must not be empty");
      opts.ready_file = std::string(*value);
    } else if (flag == "--log-level") {
      auto level = log::parse_level(*value);
      if (!level)
        return make_error(Code::InvalidArgument,
                          "--log-level: unknown level '" + std::string(*value) + "'");
      opts.log_level = *level;
    } else if (flag == "--version") {
      if (*value != "v1" && *value != "v2" && *value != "v3")
        return make_error(Code::InvalidArgument,
                          "--version must be v1, v2 or v3, not '" + std::string(*value) + "'");
      opts.version = std::string(*value);
    } else {
      auto up = parse_upstream(*value);
      if (!up)
        return make_error(Code::InvalidArgument, std::string(flag) + ": " + up.error().message());
      opts.upstreams[std::string(upstream_flag)] = *up;
    }
  }

  if (!listen_text) {
    if (auto port = env_value(env, "PORT")) {
      auto p = parse_port(*port);
      if (!p) return make_error(Code::InvalidArgument, "PORT: " + p.error().message());
      listen_text = "127.0.0.1:" + *port;
    } else {
      listen_text = "127.0.0.1:9080";
    }
  }
  auto addr = loop::Address::parse(*listen_text);  // start-up: a name may be resolved here
  if (!addr) return make_error(Code::InvalidArgument, "--listen: " + addr.error().message());
  opts.listen = *addr;

  for (auto svc : spec.upstreams) {
    if (opts.upstreams.contains(svc)) continue;
    auto up = upstream_from_env(env, svc);
    if (!up) return up.error();
    opts.upstreams[std::string(svc)] = *up;
  }
  if (!spec.upstreams.empty()) {
    auto proxy = ProxyConfig::parse(env_either(env, "http_proxy", "HTTP_PROXY"),
                                    env_either(env, "no_proxy", "NO_PROXY"));
    if (!proxy) return proxy.error();
    opts.proxy = std::move(*proxy);
  }
  if (auto cluster = env_value(env, "CLUSTER_NAME")) opts.cluster_name = *cluster;
  // Under `meshbox run`, the instance's name (reviews-v2, reviews-v2-1…) names it, like a pod.
  if (!opts.name_given) {
    if (auto instance = env_value(env, "MESHBOX_WORKLOAD"); instance && is_valid_name(*instance)) {
      opts.name = *instance;
      opts.name_given = true;
    }
  }
  return opts;
}

}  // namespace meshbox::bookinfo
