// meshbox: one binary for the mesh and the plain proxy. Dispatches to cmd_<name>.cpp.
#include <cstring>
#include <string_view>

#include <fmt/core.h>

#include "cli/commands.h"

namespace {

constexpr const char* kUsage = R"(usage: meshbox COMMAND [flags]

meshbox is a service mesh in one binary: control plane and proxies in one process.

commands:
  run        run the mesh: control plane, admin API and proxies (meshbox run --help)
  apply      create or replace resources in a running mesh (meshbox apply -f FILE)
  ca         the mesh's CA: print its root, issue a certificate (meshbox ca --help)
  delete     delete a resource from a running mesh (meshbox delete KIND NAME)
  get        show services, endpoints, workloads, routes, clusters or config of a running mesh
  inject     run a process with a sidecar of a running mesh (meshbox inject --help)
  proxy      a standalone HTTP/1.1 or TCP reverse proxy (meshbox proxy --help)
  tap        stream live requests to and from a service (meshbox tap SERVICE --help)
  top        live requests/s, success rate and p50/p99 per workload pair (meshbox top --help)
  validate   check a mesh config and print every error with its position
  version    print the version

flags:
  -h, --help     this help
  --version      print the version
)";

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    fmt::print(stderr, "{}", kUsage);
    return 2;
  }
  std::string_view cmd = argv[1];
  if (cmd == "-h" || cmd == "--help" || cmd == "help") {
    fmt::print("{}", kUsage);
    return 0;
  }
  if (cmd == "--version" || cmd == "version") {
    fmt::print("meshbox {}\n", MESHBOX_VERSION);
    return 0;
  }
  if (cmd == "run") return meshbox::cli::cmd_run(argc, argv);
  if (cmd == "apply") return meshbox::cli::cmd_apply(argc, argv);
  if (cmd == "ca") return meshbox::cli::cmd_ca(argc, argv);
  if (cmd == "delete") return meshbox::cli::cmd_delete(argc, argv);
  if (cmd == "get") return meshbox::cli::cmd_get(argc, argv);
  if (cmd == "inject") return meshbox::cli::cmd_inject(argc, argv);
  if (cmd == "proxy") return meshbox::cli::cmd_proxy(argc, argv);
  if (cmd == "top") return meshbox::cli::cmd_top(argc, argv);
  if (cmd == "tap") return meshbox::cli::cmd_tap(argc, argv);
  if (cmd == "validate") return meshbox::cli::cmd_validate(argc, argv);
  if (cmd == "__workload-exec") return meshbox::cli::cmd_workload_exec(argc, argv);
  fmt::print(stderr, "meshbox: unknown command '{}'\nrun 'meshbox --help' for usage\n", cmd);
  return 2;
}
