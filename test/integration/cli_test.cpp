// The meshbox command line: version, help, usage errors (exit 2) and start-up failures
// (exit 1), run as a real process.
#include <doctest/doctest.h>
#include <unistd.h>

#include "test/support/deadline.h"
#include "test/support/files.h"
#include "test/support/meshbox.h"
#include "test/support/tcp_conn.h"

namespace meshbox::test {
namespace {

constexpr auto kCliTimeout = 10s;

std::string describe(const RunResult& r) {
  return (r.status ? r.status->describe() : "still running at the deadline (killed)") +
         "\nstdout: " + r.out + "\nstderr: " + r.err;
}

TEST_CASE("cli: --version prints the version and exits 0") {
  TempDir dir;
  RunResult r = run_meshbox({"--version"}, dir, Deadline(kCliTimeout));
  INFO(describe(r));
  REQUIRE(r.status);
  CHECK(r.status->ok());
  CHECK(r.out.starts_with("meshbox "));
  CHECK(r.out.find(MESHBOX_VERSION) != std::string::npos);
}

TEST_CASE("cli: --help lists the commands and exits 0") {
  TempDir dir;
  RunResult r = run_meshbox({"--help"}, dir, Deadline(kCliTimeout));
  INFO(describe(r));
  REQUIRE(r.status);
  CHECK(r.status->ok());
  CHECK(r.out.find("usage: meshbox") != std::string::npos);
  CHECK(r.out.find("proxy") != std::string::npos);
}

TEST_CASE("cli: proxy --help describes every flag and exits 0") {
  TempDir dir;
  RunResult r = run_meshbox({"proxy", "--help"}, dir, Deadline(kCliTimeout));
  INFO(describe(r));
  REQUIRE(r.status);
  CHECK(r.status->ok());
  for (std::string flag :
       {"--listen", "--to", "--tcp", "--workers", "--ready-file", "--connect-timeout",
        "--response-timeout", "--idle-timeout", "--header-timeout", "--upstream-idle-timeout",
        "--drain-timeout", "--max-header-size", "--max-body-size", "--log-level"}) {
    CAPTURE(flag);
    CHECK(r.out.find(flag) != std::string::npos);
  }
}

TEST_CASE("cli: usage errors exit 2 with a message") {
  TempDir dir;
  struct Case {
    std::string what;
    std::vector<std::string> args;
    const char* message;  // expected on stderr
  };
  const Case cases[] = {
      {"unknown command", {"frobnicate"}, "frobnicate"},
      {"unknown top-level flag", {"--bogus"}, "--bogus"},
      {"unknown proxy flag",
       {"proxy", "--listen", "127.0.0.1:0", "--to", "127.0.0.1:1", "--bogus"},
       "--bogus"},
      {"missing --to", {"proxy", "--listen", "127.0.0.1:0"}, "--to"},
      {"missing --listen", {"proxy", "--to", "127.0.0.1:1"}, "--listen"},
      {"bad duration",
       {"proxy", "--listen", "127.0.0.1:0", "--to", "127.0.0.1:1", "--connect-timeout", "soon"},
       "--connect-timeout"},
      {"bad size",
       {"proxy", "--listen", "127.0.0.1:0", "--to", "127.0.0.1:1", "--max-body-size", "big"},
       "--max-body-size"},
      {"--to without a port", {"proxy", "--listen", "127.0.0.1:0", "--to", "127.0.0.1"}, "--to"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.what);
    RunResult r = run_meshbox(c.args, dir, Deadline(kCliTimeout));
    INFO(describe(r));
    REQUIRE(r.status);
    CHECK(r.status->exited);
    CHECK(r.status->code == 2);
    CHECK(r.err.find(c.message) != std::string::npos);
  }
}

TEST_CASE("cli: proxy exits 1 with a message when the port is already in use") {
  TempDir dir;
  uint16_t port = 0;
  int fd = listen_loopback(&port);  // no SO_REUSEPORT: the proxy's bind must fail
  REQUIRE(fd >= 0);
  std::string addr = "127.0.0.1:" + std::to_string(port);
  RunResult r = run_meshbox(
      {"proxy", "--listen", addr, "--to", "127.0.0.1:1", "--ready-file", dir.file("ready")}, dir,
      Deadline(kCliTimeout));
  ::close(fd);
  INFO(describe(r));
  REQUIRE(r.status);
  CHECK(r.status->exited);
  CHECK(r.status->code == 1);
  CHECK(r.err.find(std::to_string(port)) != std::string::npos);
  CHECK(r.err.find("in use") != std::string::npos);
  CHECK(!read_file(dir.file("ready")));
}

}  // namespace
}  // namespace meshbox::test
