// `meshbox validate`, run as a real process: exit status (0 valid, 1 errors, 2 bad usage),
// every finding with its position, sorted; the summary; -o json; every shipped example.
#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "test/support/deadline.h"
#include "test/support/files.h"
#include "test/support/json.h"
#include "test/support/meshbox.h"

namespace meshbox::test {
namespace {

namespace fs = std::filesystem;

constexpr auto kValidateTimeout = 20s;

std::string describe(const RunResult& r) {
  return (r.status ? r.status->describe() : "still running at the deadline (killed)") +
         "\nstdout: " + r.out + "\nstderr: " + r.err;
}

void write(const std::string& path, std::string_view text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
  REQUIRE_MESSAGE(out.good(), "cannot write " << path);
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);)
    out.push_back(line);
  return out;
}

int exit_code(const RunResult& r) {
  return r.status && r.status->exited ? r.status->code : -1;
}

// The source tree, for examples/configs: $MESHBOX_SOURCE_DIR, else found from this file's
// path, which meson gives relative to the build directory (MESHBOX_BIN is BUILD/cli/meshbox).
fs::path source_dir() {
  if (const char* s = std::getenv("MESHBOX_SOURCE_DIR"); s && *s) return s;
  fs::path file = __FILE__;
  if (file.is_relative()) file = fs::path(meshbox_bin()).parent_path().parent_path() / file;
  return fs::weakly_canonical(file).parent_path().parent_path().parent_path();
}

constexpr std::string_view kGood = R"([mesh]
name = "it"

[[service]]
name = "httpbin"
port = 8000

[[workload]]
service = "httpbin"
command = ["meshbox-httpbin", "--listen", "127.0.0.1:${PORT}"]

[[gateway]]
name = "edge"
servers = [{ port = 8080, protocol = "http", hosts = ["*"] }]

[[virtual_service]]
name = "httpbin"
hosts = ["*"]
gateways = ["edge"]
http = [{ route = [{ destination = { host = "httpbin" } }] }]
)";

// Line numbers matter below: each error's position is checked.
constexpr std::string_view kBad = R"([[service]]
name = "reviews"
port = 9080

[[workload]]
service = "reviewz"
port = 70000

[[destination_rule]]
name = "reviews"
host = "reviews"
subsets = [{ name = "v1", labels = { version = "v1" } }]

[[virtual_service]]
name = "reviews"
hosts = ["reviews"]
[[virtual_service.http]]
match = [{ uri = { regex = "(oops" } }]
route = [{ destination = { host = "reviews", subset = "v2" } }]
timeout = "5"
[[virtual_service.http]]
route = [
  { destination = { host = "reviews", subset = "v1" }, weight = 80 },
  { destination = { host = "ratings" }, weight = 10 },
]
retries = { attempts = 3, perTryTimeout = "2s" }
[[virtual_service.http]]
route = [{ destination = { host = "reviews" } }]
)";

TEST_CASE("validate: --help describes the command and exits 0") {
  TempDir dir;
  RunResult r = run_meshbox({"validate", "--help"}, dir, Deadline(kValidateTimeout));
  INFO(describe(r));
  CHECK(exit_code(r) == 0);
  CHECK(r.out.find("usage: meshbox validate") != std::string::npos);
  CHECK(r.out.find("-o, --output") != std::string::npos);
  RunResult top = run_meshbox({"--help"}, dir, Deadline(kValidateTimeout));
  CHECK(top.out.find("validate") != std::string::npos);
}

TEST_CASE("validate: a good config exits 0 with a one-line summary") {
  TempDir dir;
  std::string path = dir.file("mesh.toml");
  write(path, kGood);
  RunResult r = run_meshbox({"validate", path}, dir, Deadline(kValidateTimeout));
  INFO(describe(r));
  CHECK(exit_code(r) == 0);
  CHECK(r.out ==
        "ok: 1 service, 1 workload, 1 virtual service, 1 gateway, mesh settings (1 file)\n");
  CHECK(r.err.empty());
}

TEST_CASE("validate: a bad config exits 1 and prints every error with its position") {
  TempDir dir;
  std::string path = dir.file("bad.toml");
  write(path, kBad);
  RunResult r = run_meshbox({"validate", path}, dir, Deadline(kValidateTimeout));
  INFO(describe(r));
  CHECK(exit_code(r) == 1);
  const std::vector<std::string> want = {
      path +
          ":6:11: error: workload \"reviewz\": service: no service \"reviewz\" in namespace "
          "\"default\"; did you mean 'reviews'?",
      path +
          ":7:8: error: workload \"reviewz\": port: expected a port number (0: chosen by "
          "meshbox) from 0 to 65535, got 70000",
      path +
          ":18:28: error: virtual_service \"reviews\": http[0].match[0].uri.regex: bad regex "
          "\"(oops\": missing )",
      path +
          ":19:55: error: virtual_service \"reviews\": http[0].route[0].destination.subset: "
          "subset \"v2\" is not defined in destination_rule \"reviews\" (" +
          path + ":9:1); it defines \"v1\"; did you mean 'v1'?",
      path +
          ":20:11: error: virtual_service \"reviews\": http[0].timeout: bad duration \"5\": "
          "a duration needs a unit (ms, s, m or h), such as \"5s\"",
      path +
          ":23:65: error: virtual_service \"reviews\": http[1].route[0].weight: weights must "
          "sum to 100, got 90",
      path +
          ":24:28: error: virtual_service \"reviews\": http[1].route[1].destination.host: "
          "host \"ratings\" matches no service or service_entry (it means "
          "\"ratings.default.svc.cluster.local\")",
      path +
          ":26:27: error: virtual_service \"reviews\": http[1].retries.perTryTimeout: "
          "unknown key \"perTryTimeout\"; did you mean 'per_try_timeout'?",
      path +
          ":27:1: warning: virtual_service \"reviews\": http[2]: this route can never match: "
          "http[1] (" +
          path + ":21:1) before it matches every request",
      "invalid: 8 errors, 1 warning",
  };
  std::vector<std::string> got = lines_of(r.out);
  CHECK(got.size() == want.size());
  for (size_t i = 0; i < std::min(got.size(), want.size()); ++i) {
    CAPTURE(i);
    CHECK(got[i] == want[i]);
  }
}

TEST_CASE("validate: warnings alone exit 0 and are printed") {
  TempDir dir;
  std::string path = dir.file("warn.toml");
  write(path, std::string(kGood) + R"(
[[destination_rule]]
name = "httpbin"
host = "httpbin"
subsets = [{ name = "v9", labels = { version = "v9" } }]
)");
  RunResult r = run_meshbox({"validate", path}, dir, Deadline(kValidateTimeout));
  INFO(describe(r));
  CHECK(exit_code(r) == 0);
  auto lines = lines_of(r.out);
  REQUIRE(lines.size() == 2);
  CHECK(lines[0].starts_with(path + ":25:36: warning: destination_rule \"httpbin\": "
                                    "subsets[0].labels: subset \"v9\" selects no workload"));
  CHECK(lines[1] ==
        "ok: 1 service, 1 workload, 1 virtual service, 1 destination rule, 1 gateway, "
        "mesh settings (1 file); 1 warning");
}

TEST_CASE("validate: -o json prints the findings as a JSON array") {
  TempDir dir;
  std::string bad = dir.file("bad.toml"), good = dir.file("good.toml");
  write(bad, kBad);
  write(good, kGood);
  for (std::vector<std::string> flags : {std::vector<std::string>{"-o", "json"},
                                         {"--output", "json"},
                                         {"--output=json"},
                                         {"-ojson"}}) {
    CAPTURE(flags[0]);
    std::vector<std::string> args = {"validate"};
    args.insert(args.end(), flags.begin(), flags.end());
    args.push_back(bad);
    RunResult r = run_meshbox(args, dir, Deadline(kValidateTimeout));
    INFO(describe(r));
    CHECK(exit_code(r) == 1);
    auto json = parse_json(r.out);
    REQUIRE(json);
    REQUIRE(json->type == Json::Type::Array);
    REQUIRE(json->array.size() == 9);
    const Json& first = json->array[0];
    CHECK(first.get("severity")->string == "error");
    CHECK(first.get("file")->string == bad);
    CHECK(first.get("line")->number == 6);
    CHECK(first.get("column")->number == 11);
    CHECK(first.get("kind")->string == "workload");
    CHECK(first.get("name")->string == "reviewz");
    CHECK(first.get("field")->string == "service");
    CHECK(first.get("message")->string ==
          "no service \"reviewz\" in namespace \"default\"; did you mean 'reviews'?");
    CHECK(json->array[8].get("severity")->string == "warning");
  }
  RunResult r = run_meshbox({"validate", "-o", "json", good}, dir, Deadline(kValidateTimeout));
  INFO(describe(r));
  CHECK(exit_code(r) == 0);
  CHECK(r.out == "[]\n");
}

TEST_CASE("validate: a TOML syntax error, a missing file, an empty directory") {
  TempDir dir;
  std::string path = dir.file("syntax.toml");
  write(path, "[[service]]\nname = \"a\"\nport = 80x\n");
  RunResult r = run_meshbox({"validate", path}, dir, Deadline(kValidateTimeout));
  INFO(describe(r));
  CHECK(exit_code(r) == 1);
  CHECK(r.out.starts_with(path + ":3:10: error: TOML syntax error: "));

  RunResult missing =
      run_meshbox({"validate", dir.file("nope.toml")}, dir, Deadline(kValidateTimeout));
  INFO(describe(missing));
  CHECK(exit_code(missing) == 1);
  CHECK(missing.out.starts_with(dir.file("nope.toml") + ": error: no such file or directory\n"));

  fs::create_directory(dir.file("empty"));
  RunResult empty = run_meshbox({"validate", dir.file("empty")}, dir, Deadline(kValidateTimeout));
  INFO(describe(empty));
  CHECK(exit_code(empty) == 1);
  CHECK(empty.out.find("no .toml files in this directory") != std::string::npos);
}

TEST_CASE("validate: a directory of files is one config") {
  TempDir dir;
  fs::create_directory(dir.file("conf"));
  write(dir.file("conf/10-services.toml"), "[[service]]\nname = \"a\"\nport = 80\n");
  write(dir.file("conf/20-routes.toml"), R"([[virtual_service]]
name = "a"
hosts = ["a"]
http = [{ route = [{ destination = { host = "a" } }] }]
)");
  write(dir.file("conf/notes.txt"), "not a config [[[");
  RunResult r = run_meshbox({"validate", dir.file("conf")}, dir, Deadline(kValidateTimeout));
  INFO(describe(r));
  CHECK(exit_code(r) == 0);
  CHECK(r.out == "ok: 1 service, 1 virtual service (2 files)\n");
}

TEST_CASE("validate: bad usage exits 2") {
  TempDir dir;
  std::string path = dir.file("mesh.toml");
  write(path, kGood);
  const std::vector<std::vector<std::string>> cases = {
      {"validate"},
      {"validate", "--bogus", path},
      {"validate", "-o", "yaml", path},
      {"validate", path, "-o"},
  };
  for (const auto& args : cases) {
    CAPTURE(args.size());
    RunResult r = run_meshbox(args, dir, Deadline(kValidateTimeout));
    INFO(describe(r));
    CHECK(exit_code(r) == 2);
    CHECK(r.err.find("meshbox validate: ") != std::string::npos);
    CHECK(r.out.empty());
  }
}

TEST_CASE("validate: every examples/configs/*.toml is valid") {
  fs::path examples = source_dir() / "examples" / "configs";
  REQUIRE_MESSAGE(fs::is_directory(examples), "no " << examples.string());
  std::vector<std::string> files;
  for (const auto& e : fs::directory_iterator(examples))
    if (e.path().extension() == ".toml") files.push_back(e.path().string());
  std::sort(files.begin(), files.end());
  REQUIRE(files.size() >= 5);
  TempDir dir;
  for (const auto& file : files) {
    CAPTURE(file);
    RunResult r = run_meshbox({"validate", file}, dir, Deadline(kValidateTimeout));
    INFO(describe(r));
    CHECK(exit_code(r) == 0);
    CHECK(r.out.starts_with("ok: "));
    CHECK(r.out.find("warning") == std::string::npos);
  }
}

}  // namespace
}  // namespace meshbox::test
