// `meshbox tap` on a real `meshbox run`: a gateway in front of an httpbin workload with a
// sidecar. A tap of the service filtered by path prints exactly the matching requests (the
// inbound sidecar's view: status, latency, the gateway's and the workload's mTLS identities,
// x-request-id) and ends by itself after --max; a JSON tap whose client goes away leaves no
// session behind (GET /tap/sessions). The token is required.
#include <doctest/doctest.h>

#include <csignal>
#include <fstream>
#include <regex>
#include <sstream>
#include <vector>

#include "test/support/curl.h"
#include "test/support/deadline.h"
#include "test/support/json.h"
#include "test/support/mesh.h"
#include "test/support/meshbox.h"
#include "test/support/process.h"

namespace meshbox::test {
namespace {

constexpr auto kTimeout = 10s;

std::vector<std::string> lines_of(const std::string& path) {
  return file_lines(path, /*skip_empty=*/true);
}

/// GET /tap/sessions: the sessions open; -1 when the answer is not one.
int active_sessions(const std::string& admin) {
  auto r = curl_http({"http://" + admin + "/tap/sessions"}, Deadline(kTimeout));
  auto j = parse_json(r.body);
  const Json* a = j ? j->get("active") : nullptr;
  return r.status == 200 && a && a->type == Json::Type::Number ? static_cast<int>(a->number) : -1;
}

Process start_tap(const Mesh& mesh, std::vector<std::string> args, const std::string& out) {
  SpawnOptions o;
  o.argv = {meshbox_bin(), "tap"};
  o.argv.insert(o.argv.end(), args.begin(), args.end());
  o.argv.insert(o.argv.end(), {"--state-dir", mesh.state_dir()});
  o.stdout_path = out;
  o.stderr_path = out + ".err";
  return Process(o);
}

}  // namespace

TEST_CASE("tap: a service's live requests, filtered, until --max; a gone client ends its session") {
  TempDir dir;
  uint16_t gw_port = free_port();
  std::string gw = "127.0.0.1:" + std::to_string(gw_port);
  std::ofstream(dir.file("mesh.toml"))
      << "[mesh]\n\n[[service]]\nname = \"web\"\nport = 8000\n\n[[workload]]\nname = \"web\"\n"
      << "service = \"web\"\ncommand = [\"" << httpbin_bin()
      << "\", \"--listen\", \"127.0.0.1:${PORT}\", \"--name\", \"web\"]\n\n"
      << "[[gateway]]\nname = \"edge\"\nservers = [{ port = " << gw_port
      << ", bind = \"127.0.0.1\", protocol = \"http\", hosts = [\"*\"] }]\n\n"
      << "[[virtual_service]]\nname = \"web\"\nhosts = [\"web\"]\ngateways = [\"edge\"]\n"
      << "http = [{ route = [{ destination = { host = \"web\" } }] }]\n";
  Mesh mesh(dir, MeshOptions{.paths = {dir.file("mesh.toml")}});
  auto get = [&](const std::string& path, const std::string& id,
                 std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"-H", "Host: web", "-H", "x-request-id: " + id};
    args.insert(args.end(), extra.begin(), extra.end());
    args.push_back("http://" + gw + path);
    return curl_http(args, Deadline(kTimeout)).status;
  };
  REQUIRE(eventually([&] { return get("/status/200", "warm-up") == 200; }, kTimeout));

  {
    INFO("the admin API asks for the token; the CLI wants one SERVICE");
    CHECK(curl_http({"http://" + mesh.admin() + "/tap?service=web"}, Deadline(kTimeout)).status ==
          401);
    RunResult r = mesh.cli({"tap"});
    REQUIRE(r.status);
    CHECK(r.status->code == 2);
  }

  std::string text_out = dir.file("tap.txt");
  Process tap = start_tap(mesh, {"web", "--path", "/status", "--max", "3"}, text_out);
  REQUIRE(eventually([&] { return active_sessions(mesh.admin()) == 1; }, kTimeout));
  CHECK(get("/headers", "skip-1") == 200);
  CHECK(get("/status/200", "tap-1") == 200);
  CHECK(get("/headers?from=/status", "skip-2") == 200);
  CHECK(get("/status/418", "tap-2") == 418);
  // httpbin answers GET only there: a 404, which a tap shows like any other status.
  CHECK(get("/status/201", "tap-3", {"-X", "POST"}) == 404);
  CHECK(get("/status/200", "after-max") == 200);
  {
    INFO("the tap ends by itself after 3 requests, which are exactly the matching ones");
    auto exit = tap.wait(Deadline(kTimeout));
    REQUIRE(exit);
    CHECK_MESSAGE(exit->ok(), read_file(text_out + ".err").value_or(""));
    std::vector<std::string> lines = lines_of(text_out);
    REQUIRE(lines.size() == 3);
    const char* expect[] = {"GET web /status/200 200", "GET web /status/418 418",
                            "POST web /status/201 404"};
    const char* ids[] = {"tap-1", "tap-2", "tap-3"};
    // HH:MM:SS.mmm in GET web /status/200 200 - 1.2ms 0B/0B
    //   edge(spiffe://…/sa/edge) -> web(spiffe://…/sa/default) tap-1
    std::regex shape(R"(\d\d:\d\d:\d\d\.\d{3} in  [A-Z]+ web /status/\d+ \d{3} - \d+\.\dms )"
                     R"(\d+B/\d+B edge\(spiffe://cluster\.local/ns/default/sa/edge\) -> )"
                     R"(web\(spiffe://cluster\.local/ns/default/sa/default\) tap-\d)");
    for (size_t i = 0; i < 3; ++i) {
      INFO(lines[i]);
      CHECK(lines[i].find(expect[i]) != std::string::npos);
      CHECK(lines[i].ends_with(ids[i]));
      CHECK(std::regex_match(lines[i], shape));
    }
  }
  REQUIRE(eventually([&] { return active_sessions(mesh.admin()) == 0; }, kTimeout));

  {
    INFO("-o json: the API's lines; a client that goes away leaves no session behind");
    std::string json_out = dir.file("tap.json");
    Process json_tap = start_tap(mesh, {"web", "--method", "get", "-o", "json"}, json_out);
    REQUIRE(eventually([&] { return active_sessions(mesh.admin()) == 1; }, kTimeout));
    CHECK(get("/status/200", "json-1", {"-X", "POST"}) == 404);
    CHECK(get("/status/200", "json-2") == 200);
    std::vector<std::string> lines;
    REQUIRE(eventually([&] { return !(lines = lines_of(json_out)).empty(); }, kTimeout));
    REQUIRE(lines.size() == 1);
    auto j = parse_json(lines[0]);
    REQUIRE(j);
    auto str = [](const Json* v) {
      return v && v->type == Json::Type::String ? v->string : std::string("<not a string>");
    };
    auto num = [](const Json* v) { return v && v->type == Json::Type::Number ? v->number : -1; };
    const Json* src = j->get("source");
    const Json* dst = j->get("destination");
    REQUIRE(src);
    REQUIRE(dst);
    CHECK(str(j->get("request_id")) == "json-2");
    CHECK(str(j->get("reporter")) == "destination");
    CHECK(str(j->get("method")) == "GET");
    CHECK(num(j->get("status")) == 200);
    CHECK(num(j->get("duration_ms")) > 0);
    CHECK(str(src->get("workload")) == "edge");
    CHECK(str(dst->get("workload")) == "web");
    CHECK(str(dst->get("service")) == "web.default.svc.cluster.local");
    CHECK(str(dst->get("principal")) == "spiffe://cluster.local/ns/default/sa/default");
    json_tap.kill_and_wait();
    CHECK(eventually([&] { return active_sessions(mesh.admin()) == 0; }, kTimeout));
  }
}

}  // namespace meshbox::test
