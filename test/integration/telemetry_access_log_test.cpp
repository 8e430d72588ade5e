// Access logs on a real `meshbox run` with two workers: a gateway in front of a workload with
// a sidecar, the log in a file of the test's. Requests sent with curl come back as JSON lines
// (the default) with Istio's fields: both reporters of one request (the gateway as source,
// the inbound sidecar as destination, with the same x-request-id), response flags of failures
// (NR: no route; UF: an endpoint nobody listens on), and a workload whose own `access_log =
// false` wins over the mesh's. A hot reload switches to a text format of the config's own,
// escaping a hostile header. A clean stop loses no line.
#include <doctest/doctest.h>

#include <csignal>
#include <fstream>
#include <sstream>
#include <vector>

#include "test/support/curl.h"
#include "test/support/deadline.h"
#include "test/support/json.h"
#include "test/support/mesh.h"
#include "test/support/meshbox.h"

namespace meshbox::test {
namespace {

constexpr auto kTimeout = 10s;

std::vector<std::string> lines_of(const std::string& path) {
  return file_lines(path);
}

// The JSON lines whose request_id is `id`.
std::vector<Json> entries(const std::string& path, const std::string& id) {
  std::vector<Json> out;
  for (const std::string& line : lines_of(path)) {
    auto j = parse_json(line);
    if (!j) continue;
    const Json* rid = j->get("request_id");
    if (rid && rid->type == Json::Type::String && rid->string == id) out.push_back(*j);
  }
  return out;
}

std::string str(const Json& j, const std::string& key) {
  const Json* v = j.get(key);
  return v && v->type == Json::Type::String ? v->string : "<" + key + " not a string>";
}

double num(const Json& j, const std::string& key) {
  const Json* v = j.get(key);
  return v && v->type == Json::Type::Number ? v->number : -1;
}

const Json* by_reporter(const std::vector<Json>& es, const std::string& reporter) {
  for (const Json& e : es)
    if (str(e, "reporter") == reporter) return &e;
  return nullptr;
}

int curl_status(const std::string& gw, const std::string& host, const std::string& id,
                std::vector<std::string> extra = {}) {
  std::vector<std::string> args = {"-H", "Host: " + host, "-H", "x-request-id: " + id};
  args.insert(args.end(), extra.begin(), extra.end());
  args.push_back("http://" + gw + "/status/200");
  return curl_http(args, Deadline(kTimeout)).status;
}

std::string mesh_table(const std::string& log, const std::string& extra = "") {
  return "[mesh]\naccess_log_file = \"" + log + "\"\n" + extra + "\n";
}

}  // namespace

TEST_CASE("access log: JSON lines from both reporters, flags, per-workload off, text on reload") {
  TempDir dir;
  uint16_t gw_port = free_port();
  std::string gw = "127.0.0.1:" + std::to_string(gw_port);
  std::string log = dir.file("access.log");
  auto workload = [](const std::string& name, const std::string& extra) {
    return "[[service]]\nname = \"" + name + "\"\nport = 8000\n\n[[workload]]\nname = \"" + name +
           "\"\nservice = \"" + name + "\"\ncommand = [\"" + httpbin_bin() +
           "\", \"--listen\", \"127.0.0.1:${PORT}\", \"--name\", \"" + name + "\"]\n" + extra +
           "\n";
  };
  auto route = [](const std::string& host) {
    return "[[virtual_service]]\nname = \"" + host + "\"\nhosts = [\"" + host +
           "\"]\ngateways = [\"edge\"]\nhttp = [{ route = [{ destination = { host = \"" + host +
           "\" } }] }]\n\n";
  };
  std::ofstream(dir.file("mesh.toml"))
      << mesh_table(log) << workload("web", "")
      << workload("quiet", "access_log = false\n")
      // An endpoint nobody listens on: connections to it fail (UF).
      << "[[service]]\nname = \"dead\"\nport = 8000\n\n[[workload]]\nname = \"dead\"\n"
      << "service = \"dead\"\ninject = false\nport = " << free_port() << "\n\n"
      << "[[gateway]]\nname = \"edge\"\nservers = [{ port = " << gw_port
      << ", bind = \"127.0.0.1\", protocol = \"http\", hosts = [\"*\"] }]\n\n"
      << route("web") << route("quiet") << route("dead");
  Mesh mesh(dir, MeshOptions{.paths = {dir.file("mesh.toml")}});
  REQUIRE(eventually([&] { return curl_status(gw, "web", "ready-web") == 200; }, kTimeout));
  REQUIRE(eventually([&] { return curl_status(gw, "quiet", "ready-quiet") == 200; }, kTimeout));

  CHECK(curl_status(gw, "web", "id-ok", {"-A", "probe/1.0"}) == 200);
  CHECK(curl_status(gw, "nothing.example", "id-nr") == 404);
  CHECK(curl_status(gw, "dead", "id-uf") == 503);
  CHECK(curl_status(gw, "quiet", "id-quiet") == 200);

  {
    INFO("a request through gateway and sidecar: two lines, one per reporter, same id");
    std::vector<Json> es;
    REQUIRE(eventually([&] { return (es = entries(log, "id-ok")).size() == 2; }, kTimeout));
    const Json* src = by_reporter(es, "source");
    const Json* dst = by_reporter(es, "destination");
    REQUIRE(src);
    REQUIRE(dst);
    for (const Json* e : {src, dst}) {
      CHECK(str(*e, "method") == "GET");
      CHECK(str(*e, "path") == "/status/200");
      CHECK(str(*e, "protocol") == "HTTP/1.1");
      CHECK(num(*e, "response_code") == 200);
      CHECK(str(*e, "response_flags") == "-");
      CHECK(str(*e, "user_agent") == "probe/1.0");
      CHECK(str(*e, "authority") == "web");
      CHECK(num(*e, "duration") >= 0);
      CHECK(num(*e, "bytes_received") == 0);
      CHECK(str(*e, "source_workload") == "edge");
      CHECK(str(*e, "destination_workload") == "web");
      CHECK(str(*e, "destination_namespace") == "default");
      CHECK(str(*e, "destination_principal") == "spiffe://cluster.local/ns/default/sa/default");
      // RFC 3339, milliseconds, UTC: 2026-11-26T13:57:50.123Z
      std::string t = str(*e, "start_time");
      CHECK(t.size() == 24);
      CHECK(t[10] == 'T');
      CHECK(t.back() == 'Z');
    }
    CHECK(str(*src, "upstream_cluster") == "outbound|8000||web.default.svc.cluster.local");
    CHECK(str(*src, "destination_service") == "web.default.svc.cluster.local");
    CHECK(str(*src, "downstream_local_address") == gw);
    CHECK(str(*dst, "upstream_cluster").starts_with("inbound|"));
    // The sidecar knows its caller from mTLS: the gateway's own identity.
    CHECK(str(*dst, "source_principal") == "spiffe://cluster.local/ns/default/sa/edge");
    CHECK(str(*src, "upstream_host") != str(*dst, "upstream_host"));
  }
  {
    INFO("failures: no route (NR) at the gateway; an endpoint that refuses (UF)");
    std::vector<Json> es;
    REQUIRE(eventually([&] { return (es = entries(log, "id-nr")).size() == 1; }, kTimeout));
    CHECK(num(es[0], "response_code") == 404);
    CHECK(str(es[0], "response_flags") == "NR");
    CHECK(es[0].get("route_name")->type == Json::Type::Null);
    CHECK(es[0].get("upstream_host")->type == Json::Type::Null);
    REQUIRE(eventually([&] { return (es = entries(log, "id-uf")).size() == 1; }, kTimeout));
    CHECK(num(es[0], "response_code") == 503);
    CHECK(str(es[0], "response_flags").find("UF") != std::string::npos);
    CHECK(str(es[0], "upstream_cluster") == "outbound|8000||dead.default.svc.cluster.local");
  }
  REQUIRE(eventually([&] { return entries(log, "id-quiet").size() == 1; }, kTimeout));

  {
    INFO("hot reload: text lines in the config's format; a hostile header cannot break one");
    std::ofstream(dir.file("text.toml")) << mesh_table(
        log,
        "access_log_encoding = \"text\"\n"
        "access_log_format = \"TEXT %REQ(X-REQUEST-ID)% %RESPONSE_CODE% %RESPONSE_FLAGS% "
        "%REPORTER% %REQ(:METHOD)% %REQ(USER-AGENT):12% [%REQ(X-MISSING?USER-AGENT)%]\"");
    RunResult r = mesh.cli({"apply", "-f", dir.file("text.toml"), "--wait"});
    REQUIRE_MESSAGE((r.status && r.status->ok()), r.out << r.err);
    CHECK(curl_status(gw, "web", "id-text", {"-A", "tab\there and more"}) == 200);
    auto text_lines = [&] {
      std::vector<std::string> out;
      for (const std::string& l : lines_of(log))
        if (l.starts_with("TEXT id-text ")) out.push_back(l);
      return out;
    };
    std::vector<std::string> lines;
    REQUIRE(eventually([&] { return (lines = text_lines()).size() == 2; }, kTimeout));
    CHECK(lines[0] != lines[1]);
    for (const std::string& l : lines) {
      INFO(l);
      // :12 cuts the user agent to 12 bytes, escaped after: the tab is \x09.
      bool ok = l == "TEXT id-text 200 - source GET tab\\x09here and [tab\\x09here and more]" ||
                l == "TEXT id-text 200 - destination GET tab\\x09here and [tab\\x09here and more]";
      CHECK(ok);
    }
  }

  {
    INFO("a clean stop writes out every line: the quiet workload's sidecar logged nothing");
    REQUIRE(mesh.process().signal(SIGTERM));
    auto exit = mesh.process().wait(Deadline(kTimeout));
    REQUIRE(exit);
    CHECK(exit->ok());
    std::vector<Json> quiet = entries(log, "id-quiet");
    REQUIRE(quiet.size() == 1);
    CHECK(str(quiet[0], "reporter") == "source");
    CHECK(str(quiet[0], "destination_workload") == "quiet");
    // Every line is whole: JSON before the reload, text after.
    size_t json = 0, text = 0;
    for (const std::string& l : lines_of(log)) {
      INFO(l);
      if (l.starts_with("TEXT ")) {
        ++text;
      } else {
        CHECK(parse_json(l));
        ++json;
      }
    }
    CHECK(text == 2);
    CHECK(json >= 7);  // the four requests above: 2 + 1 + 1 + 1, and the readiness probes
  }
}

}  // namespace meshbox::test
