// meshbox proxy: a standalone HTTP/1.1 reverse proxy or L4 TCP proxy in front of one or more
// upstream addresses (round robin), on the same workers the mesh uses.

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/serve.h"
#include "core/base/log.h"

namespace meshbox::cli {

namespace {

constexpr const char* kUsage = R"(usage: meshbox proxy --listen ADDR --to ADDR[,ADDR...] [flags]

A standalone reverse proxy: HTTP/1.1 (default) or TCP (--tcp), with per-worker upstream
keep-alive pools, round robin over the --to addresses, and graceful drain on SIGTERM.

flags:
  --listen ADDR              address to accept on, HOST:PORT (port 0 picks a free port)
  --to ADDR[,ADDR...]        upstream address(es), HOST:PORT
  --tcp                      proxy raw TCP instead of HTTP
  --workers N                worker threads, each accepting for itself (default: cores)
  --ready-file PATH          write the bound address here once every worker accepts
  --connect-timeout DUR      upstream connect timeout (default 5s)
  --response-timeout DUR     request sent → response head, else 504 (default 15s)
  --idle-timeout DUR         idle keep-alive connection, stalled body (default 60s)
  --header-timeout DUR       request head must arrive within this, else 408 (default 10s)
  --upstream-idle-timeout DUR  pooled upstream connection lifetime when unused (default 60s)
  --tcp-idle-timeout DUR     TCP mode: close a tunnel idle this long (default 1h)
  --drain-timeout DUR        SIGTERM: time given to in-flight requests (default 10s)
  --max-header-size SIZE     request line + headers, else 431 (default 60KiB)
  --max-body-size SIZE       request body, else 413 (default 0: unlimited)
  --access-log PATH          a line per request (tcp: per connection) to PATH or /dev/stdout,
                             JSON (Istio's fields; docs/observability.md)
  --access-log-format FMT    text lines in this Envoy format instead ("%START_TIME% …";
                             "default": Istio's text format)
  --log-level LEVEL          trace, debug, info, warn, error, off (default info)
  -h, --help                 this help

DUR: 250ms, 5s, 2m, 1h. SIZE: bytes or 64KiB, 10MiB, 1GiB.
)";

const std::vector<FlagSpec> kFlags = {
    {"listen"},           {"to"},
    {"tcp", false},       {"workers"},
    {"ready-file"},       {"connect-timeout"},
    {"response-timeout"}, {"idle-timeout"},
    {"header-timeout"},   {"upstream-idle-timeout"},
    {"tcp-idle-timeout"}, {"drain-timeout"},
    {"max-header-size"},  {"max-body-size"},
    {"log-level"},        {"help", false},
    {"access-log"},       {"access-log-format"},
};

int usage_error(const std::string& message) {
  fmt::print(stderr, "meshbox proxy: {}\nrun 'meshbox proxy --help' for usage\n", message);
  return 2;
}

}  // namespace

int cmd_proxy(int argc, char** argv) {
  if (wants_help(argc, argv)) {
    fmt::print("{}", kUsage);
    return 0;
  }
  auto args = Args::parse(argc, argv, 2, kFlags);
  if (!args) return usage_error(args.error().message());
  if (!args->positional().empty())
    return usage_error("unexpected argument '" + args->positional()[0] + "'");
  if (!args->has("listen")) return usage_error("--listen is required");
  if (!args->has("to")) return usage_error("--to is required");

  if (Status s = apply_log_level(*args); !s.is_ok()) return usage_error(s.message());

  auto snap = std::make_shared<Snapshot>();
  snap->version = 1;
  ListenerSpec listener;
  listener.name = "proxy";
  auto listen = loop::Address::parse(*args->get("listen"));
  if (!listen) return usage_error("--listen: " + listen.error().message());
  listener.address = *listen;
  listener.protocol = args->has("tcp") ? ListenerSpec::Protocol::Tcp : ListenerSpec::Protocol::Http;

  ClusterSpec cluster;
  std::string to = *args->get("to");
  cluster.name = to;
  for (size_t start = 0; start <= to.size();) {
    size_t comma = to.find(',', start);
    std::string item =
        to.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    auto addr = loop::Address::parse(item);
    if (!addr) return usage_error("--to: " + addr.error().message());
    if (addr->port() == 0) return usage_error("--to: '" + item + "' needs a port");
    cluster.endpoints.push_back(EndpointSpec{*addr, 1, {}, {}});
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  // HTTP: one route table with one catch-all route to the cluster.
  listener.cluster = cluster.name;
  if (listener.protocol == ListenerSpec::Protocol::Http) {
    listener.route_table = "proxy";
    RouteSpec route;
    route.name = "proxy";
    route.clusters.push_back({cluster.name, 100});
    snap->route_tables.push_back({"proxy", {{"proxy", {"*"}, {std::move(route)}, {}, {}}}});
  }

  ServeOptions opts;
  auto workers = workers_flag(*args);
  if (!workers) return usage_error(workers.error().message());
  opts.workers = *workers;
  if (auto f = args->get("ready-file")) opts.ready_file = *f;

  struct DurationFlag {
    const char* name;
    uint64_t* target;
  };
  DurationFlag durations[] = {
      {"connect-timeout", &cluster.connect_timeout_ms},
      {"response-timeout", &cluster.response_timeout_ms},
      {"upstream-idle-timeout", &cluster.idle_timeout_ms},
      {"idle-timeout", &listener.http.idle_timeout_ms},
      {"header-timeout", &listener.http.header_timeout_ms},
      {"tcp-idle-timeout", &listener.tcp_idle_timeout_ms},
      {"drain-timeout", &opts.drain_timeout_ms},
  };
  for (auto& d : durations) {
    if (auto v = args->get(d.name)) {
      auto ms = parse_duration_ms(*v);
      if (!ms) return usage_error(std::string("--") + d.name + ": " + ms.error().message());
      *d.target = *ms;
    }
  }
  if (auto v = args->get("max-header-size")) {
    auto n = parse_size(*v);
    if (!n || *n < 1024) return usage_error("--max-header-size must be a size of at least 1KiB");
    listener.http.limits.max_head_bytes = *n;
  }
  if (auto v = args->get("max-body-size")) {
    auto n = parse_size(*v);
    if (!n) return usage_error("--max-body-size: " + n.error().message());
    listener.http.limits.max_body_bytes = *n;
  }

  if (auto path = args->get("access-log")) {
    if (path->empty()) return usage_error("--access-log needs a path (or /dev/stdout)");
    auto spec = std::make_shared<config::AccessLogSpec>();
    auto format = args->get("access-log-format");
    auto encoding = format ? config::LogEncoding::Text : config::LogEncoding::Json;
    std::string_view text = format && *format != "default" ? std::string_view(*format) : "";
    if (auto err = config::make_access_log_spec(*path, encoding, text, *spec))
      return usage_error(
          fmt::format("--access-log-format: {} (at character {})", err->message, err->offset + 1));
    listener.access_log = std::move(spec);
  } else if (args->has("access-log-format")) {
    return usage_error("--access-log-format needs --access-log");
  }

  snap->listeners.push_back(std::move(listener));
  snap->clusters.push_back(std::move(cluster));
  return serve(std::move(snap), opts);
}

}  // namespace meshbox::cli
