// meshbox top: a live view of the mesh's traffic per workload pair, like `linkerd viz top`:
// requests/s, success rate, p50 and p99 over each interval, from GET /stats/edges (two
// snapshots, cli/top.h). Redraws in place on a terminal; plain tables one after the other
// when stdout is not one; --once prints one table from two samples an interval apart.
#include <unistd.h>

#include <chrono>
#include <ctime>
#include <thread>

#include <fmt/core.h>

#include "cli/admin_client.h"
#include "cli/args.h"
#include "cli/commands.h"
#include "cli/top.h"

namespace meshbox::cli {

namespace {

constexpr const char* kTopUsage =
    R"(usage: meshbox top [--interval 1s] [--once] [--state-dir DIR] [--admin ADDR]

A live view of a running mesh's HTTP traffic per workload pair: requests per second, success
rate (non-5xx), p50 and p99 latency, and whether the calls use mutual TLS — taken from
Istio's metrics (GET /stats/edges), busiest pairs first.

flags:
  --interval D   time between two samples (default 1s; e.g. 500ms, 2s)
  --once         print one table from two samples an interval apart, and exit
  --state-dir    the mesh's state dir, where admin.address is (default .meshbox)
  --admin ADDR   the admin API's address (default: read from the state dir)
  -h, --help     this help
)";

int top_usage_error(const std::string& message) {
  fmt::print(stderr, "meshbox top: {}\nrun 'meshbox top --help' for usage\n", message);
  return 2;
}

Result<EdgesSnapshot> sample(const AdminEndpoint& ep) {
  auto reply = admin_call(ep.address, "GET", "/stats/edges", "", "", 10'000);
  if (!reply) return reply.error();
  if (reply->status != 200) return Status(Code::Unavailable, reply_error(*reply));
  return parse_edges(reply->body);
}

}  // namespace

int cmd_top(int argc, char** argv) {
  if (wants_help(argc, argv)) {
    fmt::print("{}", kTopUsage);
    return 0;
  }
  auto args = Args::parse(
      argc, argv, 2, {{"interval"}, {"once", false}, {"state-dir"}, {"admin"}, {"help", false}});
  if (!args) return top_usage_error(args.error().message());
  if (!args->positional().empty())
    return top_usage_error("unexpected argument " + args->positional()[0]);
  uint64_t interval_ms = 1000;
  if (auto v = args->get("interval")) {
    auto ms = parse_duration_ms(*v);
    if (!ms || *ms == 0)
      return top_usage_error("--interval: expected a duration such as 1s or 500ms");
    interval_ms = *ms;
  }
  bool once = args->has("once");
  auto ep = find_admin(args->get("state-dir").value_or(".meshbox"), args->get("admin").value_or(""),
                       "", false);
  if (!ep) {
    fmt::print(stderr, "meshbox top: {}\n", ep.error().message());
    return 1;
  }
  auto before = sample(*ep);
  if (!before) {
    fmt::print(stderr, "meshbox top: {}\n", before.error().message());
    return 1;
  }
  bool tty = !once && isatty(STDOUT_FILENO);
  for (;;) {
    std::this_thread::sleep_for(std::chrono::milliseconds(interval_ms));
    auto now = sample(*ep);
    if (!now) {
      fmt::print(stderr, "meshbox top: {}\n", now.error().message());
      if (once) return 1;
      continue;  // the mesh may come back (a restart): keep trying
    }
    std::string table = format_top(top_rows(*before, *now));
    if (once) {
      fmt::print("{}", table);
      return 0;
    }
    std::time_t t = static_cast<std::time_t>(now->timestamp_ms / 1000);
    char when[16];
    std::strftime(when, sizeof when, "%H:%M:%S", std::localtime(&t));
    if (tty)  // home, clear: redraw in place
      fmt::print("\x1b[H\x1b[2Jmeshbox top  {}  every {}ms  (Ctrl-C to quit)\n\n{}", when,
                 interval_ms, table);
    else
      fmt::print("# {}\n{}\n", when, table);
    std::fflush(stdout);
    before = std::move(now);
  }
}

}  // namespace meshbox::cli
