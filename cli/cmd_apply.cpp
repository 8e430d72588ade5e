// meshbox apply / delete / get: the CLI side of the admin API of a running `meshbox run`.
// The admin address and token come from the state dir (admin.address, admin.token), which
// `meshbox run` writes; --admin overrides the address.

#include <algorithm>
#include <chrono>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "cli/admin_client.h"
#include "cli/args.h"
#include "cli/commands.h"
#include "cli/table.h"
#include "core/base/json.h"
#include "plane/config/decode.h"
#include "plane/config/error.h"

namespace meshbox::cli {

namespace {

constexpr const char* kApplyUsage = R"(usage: meshbox apply -f FILE|DIR [-f …] [flags]

Sends resources to a running `meshbox run`: each resource is created or replaced (by kind,
namespace and name). The whole change is validated together with the running config and
rejected whole on any error, printed with its file:line:column.

flags:
  -f, --filename PATH   a .toml file or a directory of them (repeatable; or positional)
  --wait                return once every proxy worker serves the change
  --state-dir DIR       where `meshbox run` keeps its state (default ./.meshbox)
  --admin ADDR          admin API address (default: STATE_DIR/admin.address)
  -o, --output json     print the API's answer as JSON
  -h, --help            this help
)";

constexpr const char* kDeleteUsage = R"(usage: meshbox delete KIND NAME [-n NAMESPACE] [flags]

Deletes one resource from a running `meshbox run` (KIND as in the config: service,
virtual_service, destination_rule, gateway, service_entry, workload, …). Refused if the
config without it would not validate (e.g. a route still points at it).

flags:
  -n, --namespace NS    the resource's namespace (default "default")
  --wait                return once every proxy worker serves the change
  --state-dir DIR       default ./.meshbox
  --admin ADDR          admin API address (default: STATE_DIR/admin.address)
  -h, --help            this help
)";

constexpr const char* kGetUsage =
    R"(usage: meshbox get services|endpoints|workloads|routes|clusters|certs|nodes|config [flags]

Prints what a running `meshbox run` serves, as aligned tables; -o json for scripts
(-o toml for `get config`: the stored resources as TOML). `workloads` lists the processes
meshbox runs for workloads with a command: pid, port, state, restarts, last exit.
`clusters` shows each cluster's endpoints with their health (ejected, failing health
check), requests in flight and connections; `certs` the mesh identities the CA issued,
their expiry and the listeners serving them; `nodes` the nodes of a multi-node mesh
(docs/multinode.md) with their address, workloads and last heartbeat.

flags:
  -o, --output FORMAT   table (default), json, or toml (config only)
  --state-dir DIR       default ./.meshbox
  --admin ADDR          admin API address (default: STATE_DIR/admin.address)
  -h, --help            this help
)";

// Short flags as kubectl spells them, turned into the long ones Args knows.
std::vector<std::string> expand_short_flags(int argc, char** argv) {
  std::vector<std::string> out;
  for (int i = 0; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "-f")
      a = "--filename";
    else if (a == "-o")
      a = "--output";
    else if (a == "-n")
      a = "--namespace";
    out.push_back(a);
  }
  return out;
}

struct Argv {
  std::vector<std::string> strings;
  std::vector<char*> ptrs;
  explicit Argv(std::vector<std::string> s) : strings(std::move(s)) {
    for (auto& x : strings)
      ptrs.push_back(x.data());
  }
  int argc() const { return static_cast<int>(ptrs.size()); }
  char** argv() { return ptrs.data(); }
};

int usage_error(std::string_view cmd, const std::string& message) {
  fmt::print(stderr, "meshbox {0}: {1}\nrun 'meshbox {0} --help' for usage\n", cmd, message);
  return 2;
}

Result<AdminEndpoint> admin_endpoint(const Args& args, bool need_token) {
  return find_admin(args.get("state-dir").value_or(".meshbox"), args.get("admin").value_or(""), "",
                    need_token);
}

// Config findings from the API, printed like `meshbox validate` prints them.
void print_findings(const json::Value& list) {
  if (!list.is_array()) return;
  for (const auto& f : list.array) {
    config::ConfigError e;
    auto str = [&](const char* k) {
      const json::Value* v = f.get(k);
      return v && v->is_string() ? v->as_string() : std::string();
    };
    auto num = [&](const char* k) {
      const json::Value* v = f.get(k);
      auto n = v ? v->as_int() : std::nullopt;
      return static_cast<uint32_t>(n.value_or(0));
    };
    e.severity = str("severity") == "warning" ? config::Severity::Warning : config::Severity::Error;
    e.file = str("file");
    e.line = num("line");
    e.column = num("column");
    e.kind = str("kind");
    e.name = str("name");
    e.field = str("field");
    e.message = str("message");
    fmt::print(stderr, "{}\n", config::format(e));
  }
}

std::string str_of(const json::Value& v, const char* key) {
  const json::Value* x = v.get(key);
  if (!x) return "";
  if (x->is_string()) return x->as_string();
  if (auto n = x->as_int()) return std::to_string(*n);
  if (x->is_bool()) return x->boolean ? "true" : "false";
  return "";
}

const std::vector<std::string> kClustersHeader = {"name",    "lb",          "endpoints", "requests",
                                                  "pending", "connections", "ejections"};
const std::vector<std::string> kCertsHeader = {"identity", "serial", "expires", "days left",
                                               "used by"};

// A row of `meshbox get certs`.
std::vector<std::string> cert_row(const json::Value& c, const std::string& identity,
                                  const std::string& users) {
  return {identity, str_of(c, "serial_number"), str_of(c, "expiration_time"),
          str_of(c, "days_until_expiration"), users};
}

const std::vector<std::string> kWorkloadsHeader = {
    "instance", "namespace", "pid", "port", "state", "ready", "restarts", "last exit"};

// A row of `meshbox get workloads`: "-" for what does not apply (no process, no exit yet);
// the state says for how long it has been running, or when it restarts.
std::vector<std::string> workload_row(const json::Value& r) {
  auto dash = [](std::string s) { return s.empty() || s == "0" ? std::string("-") : s; };
  std::string state = str_of(r, "state");
  auto seconds = [&](const char* key) {
    const json::Value* v = r.get(key);
    auto ms = v ? v->as_int() : std::nullopt;
    return fmt::format("{:.1f}s", static_cast<double>(ms.value_or(0)) / 1000.0);
  };
  if (state == "running") state += " (" + seconds("uptime_ms") + ")";
  if (state == "backoff") state += " (restart in " + seconds("restart_in_ms") + ")";
  return {str_of(r, "instance"),
          str_of(r, "namespace"),
          dash(str_of(r, "pid")),
          str_of(r, "port"),
          state,
          str_of(r, "ready") == "true" ? "yes" : "no",
          str_of(r, "restarts"),
          dash(str_of(r, "last_exit"))};
}

}  // namespace

int cmd_apply(int argc_in, char** argv_in) {
  if (wants_help(argc_in, argv_in)) {
    fmt::print("{}", kApplyUsage);
    return 0;
  }
  Argv av(expand_short_flags(argc_in, argv_in));
  // --filename may repeat: collect it by hand, then parse the rest.
  std::vector<std::string> paths;
  std::vector<std::string> rest;
  for (int i = 0; i < av.argc(); ++i) {
    std::string a = av.strings[static_cast<size_t>(i)];
    if (a == "--filename") {
      if (i + 1 >= av.argc()) return usage_error("apply", "--filename needs a value");
      paths.push_back(av.strings[static_cast<size_t>(++i)]);
    } else if (a.rfind("--filename=", 0) == 0) {
      paths.push_back(a.substr(11));
    } else {
      rest.push_back(a);
    }
  }
  Argv rv(rest);
  auto args = Args::parse(rv.argc(), rv.argv(), 2,
                          {{"wait", false}, {"state-dir"}, {"admin"}, {"output"}, {"help", false}});
  if (!args) return usage_error("apply", args.error().message());
  for (const auto& p : args->positional())
    paths.push_back(p);
  if (paths.empty()) return usage_error("apply", "-f FILE|DIR is required");
  bool json_out = args->get("output").value_or("") == "json";

  json::Writer w;
  w.begin_object();
  w.key("files");
  w.begin_array();
  size_t nfiles = 0;
  for (const auto& p : paths) {
    // The same rule as the server's (config::list_config_files).
    auto files = config::list_config_files(p);
    if (!files) {
      fmt::print(stderr, "meshbox apply: {}: {}\n", p, files.error().message());
      return 1;
    }
    for (const auto& f : *files) {
      std::ifstream in(f, std::ios::binary);
      if (!in) {
        fmt::print(stderr, "meshbox apply: cannot read {}\n", f);
        return 1;
      }
      std::ostringstream ss;
      ss << in.rdbuf();
      w.begin_object();
      w.key("name");
      w.value(f);
      w.key("text");
      w.value(ss.str());
      w.end_object();
      ++nfiles;
    }
  }
  w.end_array();
  w.key("wait");
  w.value(args->has("wait"));
  w.end_object();
  if (nfiles == 0) {
    fmt::print(stderr, "meshbox apply: no .toml file in {}\n", paths.front());
    return 1;
  }
  auto ep = admin_endpoint(*args, true);
  if (!ep) {
    fmt::print(stderr, "meshbox apply: {}\n", ep.error().message());
    return 1;
  }
  auto reply = admin_call(ep->address, "POST", "/config", w.str(), ep->token);
  if (!reply) {
    fmt::print(stderr, "meshbox apply: {}\n", reply.error().message());
    return 1;
  }
  if (json_out) fmt::print("{}", reply->body);
  auto body = json::parse(reply->body);
  if (reply->status == 400 && body) {
    if (const json::Value* errs = body->get("errors")) {
      print_findings(*errs);
      fmt::print(stderr, "meshbox apply: rejected; the running config is unchanged\n");
      return 1;
    }
  }
  if (reply->status != 200 || !body) {
    fmt::print(stderr, "meshbox apply: {}\n", reply_error(*reply));
    return 1;
  }
  if (const json::Value* warns = body->get("warnings")) print_findings(*warns);
  if (json_out) return 0;
  const json::Value* changed = body->get("changed");
  if (!changed || !changed->is_array() || changed->array.empty()) {
    fmt::print("unchanged (revision {})\n", str_of(*body, "revision"));
  } else {
    for (const auto& c : changed->array) {
      // KIND/NAMESPACE/NAME; resources without a namespace ([mesh]) as KIND/NAME.
      std::string name = c.as_string();
      if (size_t at = name.find("//"); at != std::string::npos) name.erase(at, 1);
      fmt::print("{} configured\n", name);
    }
    fmt::print("revision {}\n", str_of(*body, "revision"));
  }
  if (const json::Value* pe = body->get("publish_error"); pe && pe->is_string()) {
    fmt::print(stderr, "meshbox apply: stored, but the proxies kept the previous snapshot: {}\n",
               pe->as_string());
    return 1;
  }
  return 0;
}

int cmd_delete(int argc_in, char** argv_in) {
  if (wants_help(argc_in, argv_in)) {
    fmt::print("{}", kDeleteUsage);
    return 0;
  }
  Argv av(expand_short_flags(argc_in, argv_in));
  auto args =
      Args::parse(av.argc(), av.argv(), 2,
                  {{"namespace"}, {"wait", false}, {"state-dir"}, {"admin"}, {"help", false}});
  if (!args) return usage_error("delete", args.error().message());
  if (args->positional().size() != 2) return usage_error("delete", "expected KIND NAME");
  std::string kind = args->positional()[0], name = args->positional()[1];
  std::string ns = args->get("namespace").value_or("default");
  if (kind == "mesh") ns = "";
  auto ep = admin_endpoint(*args, true);
  if (!ep) {
    fmt::print(stderr, "meshbox delete: {}\n", ep.error().message());
    return 1;
  }
  std::string target =
      fmt::format("/config/{}/{}/{}{}", kind, ns, name, args->has("wait") ? "?wait=1" : "");
  auto reply = admin_call(ep->address, "DELETE", target, "", ep->token);
  if (!reply) {
    fmt::print(stderr, "meshbox delete: {}\n", reply.error().message());
    return 1;
  }
  auto body = json::parse(reply->body);
  if (reply->status == 400 && body) {
    if (const json::Value* errs = body->get("errors")) {
      print_findings(*errs);
      fmt::print(stderr, "meshbox delete: refused; the running config is unchanged\n");
      return 1;
    }
  }
  if (reply->status != 200) {
    fmt::print(stderr, "meshbox delete: {}\n", reply_error(*reply));
    return 1;
  }
  fmt::print("{}/{}/{} deleted\n", kind, ns, name);
  return 0;
}

int cmd_get(int argc_in, char** argv_in) {
  if (wants_help(argc_in, argv_in)) {
    fmt::print("{}", kGetUsage);
    return 0;
  }
  Argv av(expand_short_flags(argc_in, argv_in));
  auto args =
      Args::parse(av.argc(), av.argv(), 2, {{"output"}, {"state-dir"}, {"admin"}, {"help", false}});
  if (!args) return usage_error("get", args.error().message());
  if (args->positional().size() != 1)
    return usage_error(
        "get",
        "expected one of services, endpoints, workloads, routes, clusters, certs, nodes, config");
  std::string what = args->positional()[0];
  std::string output = args->get("output").value_or("table");
  if (output != "table" && output != "json" && output != "toml")
    return usage_error("get", "-o must be table, json or toml");
  if (output == "toml" && what != "config") return usage_error("get", "-o toml is for config");
  static const std::vector<std::string> kinds = {"services", "endpoints", "workloads", "routes",
                                                 "clusters", "certs",     "nodes",     "config"};
  if (std::find(kinds.begin(), kinds.end(), what) == kinds.end())
    return usage_error("get", "unknown resource '" + what +
                                  "': expected services, endpoints, workloads, routes, clusters, "
                                  "certs, nodes or config");
  auto ep = admin_endpoint(*args, false);
  if (!ep) {
    fmt::print(stderr, "meshbox get: {}\n", ep.error().message());
    return 1;
  }
  std::string target = "/" + what + (output == "toml" ? "?format=toml" : "");
  auto reply = admin_call(ep->address, "GET", target, "", "");
  if (!reply) {
    fmt::print(stderr, "meshbox get: {}\n", reply.error().message());
    return 1;
  }
  if (reply->status != 200) {
    fmt::print(stderr, "meshbox get: {}\n", reply_error(*reply));
    return 1;
  }
  if (output != "table") {
    fmt::print("{}", reply->body);
    return 0;
  }
  auto body = json::parse(reply->body);
  if (!body) {
    fmt::print(stderr, "meshbox get: bad answer: {}\n", body.error().message());
    return 1;
  }
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> header;
  if (what == "certs") {
    header = kCertsHeader;
    if (const json::Value* ca = body->get("ca"))
      for (const char* which : {"root", "signer"})
        if (const json::Value* c = ca->get(which)) rows.push_back(cert_row(*c, which, "-"));
    if (const json::Value* list = body->get("certificates"); list && list->is_array())
      for (const auto& c : list->array) {
        std::string users;
        if (const json::Value* us = c.get("used_by"); us && us->is_array())
          for (const auto& u : us->array)
            users += (users.empty() ? "" : ",") + u.as_string();
        rows.push_back(cert_row(c, str_of(c, "identity"), users.empty() ? "-" : users));
      }
  } else if (what == "nodes") {
    header = {"name", "address", "locality", "workloads", "endpoints", "last heartbeat"};
    auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                   std::chrono::system_clock::now().time_since_epoch())
                   .count();
    if (const json::Value* list = body->get("nodes"); list && list->is_array())
      for (const auto& n : list->array) {
        std::string instances;
        if (const json::Value* is = n.get("instances"); is && is->is_array())
          for (const auto& i : is->array)
            instances += (instances.empty() ? "" : ",") + i.as_string();
        const json::Value* hb = n.get("heartbeat_unix_ms");
        std::string beat = "-";
        if (hb && hb->as_int() && *hb->as_int() > 0)
          beat = fmt::format("{:.1f}s ago", static_cast<double>(now - *hb->as_int()) / 1000.0);
        std::string name = str_of(n, "name") + (str_of(n, "self") == "true" ? " (this)" : "");
        rows.push_back({name, str_of(n, "address"),
                        str_of(n, "locality").empty() ? "-" : str_of(n, "locality"),
                        instances.empty() ? "-" : instances,
                        str_of(n, "endpoints").empty() ? "-" : str_of(n, "endpoints"), beat});
      }
  } else if (what == "config") {
    header = {"kind", "namespace", "name", "origin", "revision"};
    if (const json::Value* list = body->get("resources"); list && list->is_array())
      for (const auto& r : list->array)
        rows.push_back({str_of(r, "kind"), str_of(r, "namespace"), str_of(r, "name"),
                        str_of(r, "origin"), str_of(r, "revision")});
  } else if (body->is_array()) {
    for (const auto& r : body->array) {
      if (what == "services") {
        header = {"name", "namespace", "kind", "host", "ports", "endpoints"};
        std::string ports;
        if (const json::Value* ps = r.get("ports"); ps && ps->is_array())
          for (const auto& p : ps->array)
            ports += (ports.empty() ? "" : ",") + str_of(p, "number") + "/" + str_of(p, "protocol");
        rows.push_back({str_of(r, "name"), str_of(r, "namespace"), str_of(r, "kind"),
                        str_of(r, "host"), ports,
                        str_of(r, "healthy") + "/" + str_of(r, "endpoints")});
      } else if (what == "endpoints") {
        header = {"host", "address", "labels", "health", "source"};
        std::string labels;
        if (const json::Value* ls = r.get("labels"); ls && ls->is_object())
          for (const auto& [k, v] : ls->object)
            labels += (labels.empty() ? "" : ",") + k + "=" + v.as_string();
        std::string port = str_of(r, "port");
        std::string health = str_of(r, "healthy") == "true" ? "healthy" : "unhealthy";
        if (str_of(r, "health_checked") != "true") health += " (unchecked)";
        rows.push_back({str_of(r, "host"), str_of(r, "address") + (port == "0" ? "" : ":" + port),
                        labels.empty() ? "-" : labels, health, str_of(r, "source")});
      } else if (what == "workloads") {
        header = kWorkloadsHeader;
        rows.push_back(workload_row(r));
      } else if (what == "routes") {
        header = {"listener", "virtual host", "route", "match", "destination"};
        rows.push_back({str_of(r, "listener"), str_of(r, "virtual_host"), str_of(r, "route"),
                        str_of(r, "match"), str_of(r, "action")});
      } else if (what == "clusters") {
        header = kClustersHeader;
        // ADDRESS, with its health when not healthy: "127.0.0.1:8000(ejected)".
        std::string eps;
        if (const json::Value* hs = r.get("host_statuses"); hs && hs->is_array()) {
          for (const auto& h : hs->array) {
            std::string health = str_of(h, "health");
            eps += (eps.empty() ? "" : ",") + str_of(h, "address") +
                   (health == "healthy" ? "" : "(" + health + ")");
          }
        } else if (const json::Value* es = r.get("endpoints"); es && es->is_array()) {
          for (const auto& e : es->array)
            eps += (eps.empty() ? "" : ",") + e.as_string();
        }
        rows.push_back({str_of(r, "name"), str_of(r, "lb_policy"), eps.empty() ? "-" : eps,
                        str_of(r, "active_requests"), str_of(r, "pending_requests"),
                        str_of(r, "active_connections"), str_of(r, "ejections_total")});
      }
    }
  }
  if (header.empty()) {
    if (what == "services") header = {"name", "namespace", "kind", "host", "ports", "endpoints"};
    if (what == "endpoints") header = {"host", "address", "labels", "health", "source"};
    if (what == "workloads") header = kWorkloadsHeader;
    if (what == "routes") header = {"listener", "virtual host", "route", "match", "destination"};
    if (what == "clusters") header = kClustersHeader;
  }
  fmt::print("{}", format_table(header, rows));
  return 0;
}

}  // namespace meshbox::cli
