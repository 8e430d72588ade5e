// Runs the curl binary as a client, with the exit code, stdout and stderr captured. stdin
// can be fed from a generator and stdout streamed to a sink, so 200 MiB bodies never sit in
// memory. Proxy variables are removed from curl's environment: tests talk to 127.0.0.1
// only, and an -x given in the arguments is the only proxy curl uses.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "test/support/deadline.h"

namespace meshbox::test {

struct CurlResult {
  int exit_code = -1;  // curl's exit status; -1 if it was killed (deadline) or died
  std::string out;     // stdout, unless a sink took it
  uint64_t out_bytes = 0;
  std::string err;  // stderr (with -sS: the error message)
  bool timed_out = false;

  std::string summary() const;
};

struct CurlIo {
  /// Fills up to `cap` bytes of curl's stdin; returns 0 at the end of the input.
  std::function<size_t(char* buf, size_t cap)> stdin_source;
  /// Receives stdout as it arrives; CurlResult::out stays empty.
  std::function<void(std::string_view)> stdout_sink;
};

/// Runs `curl -sS <args>`; kills it if it is still running at the deadline.
CurlResult run_curl(const std::vector<std::string>& args, Deadline deadline, CurlIo io = {});

/// run_curl with `--write-out "\n%{http_code}"` split off again: `status` is the final
/// response's status code (0 if none), `body` is the rest of stdout.
struct CurlHttpResult {
  CurlResult run;
  int status = 0;
  std::string body;
};
CurlHttpResult curl_http(std::vector<std::string> args, Deadline deadline);

}  // namespace meshbox::test
