// The subcommands. Each returns the process exit code: 0 ok, 1 failure, 2 bad usage.
#pragma once

namespace meshbox::cli {

int cmd_apply(int argc, char** argv);
int cmd_ca(int argc, char** argv);
int cmd_delete(int argc, char** argv);
int cmd_get(int argc, char** argv);
int cmd_inject(int argc, char** argv);
int cmd_proxy(int argc, char** argv);
int cmd_top(int argc, char** argv);
int cmd_tap(int argc, char** argv);
int cmd_run(int argc, char** argv);
int cmd_validate(int argc, char** argv);
/// Internal: what workload processes run first (cmd_run.cpp). Not in the usage.
int cmd_workload_exec(int argc, char** argv);

}  // namespace meshbox::cli
