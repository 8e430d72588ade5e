// The call graph of a real `meshbox run` (a gateway → a workload through its sidecar, mTLS):
// GET /stats/edges counts each call once with its errors, mTLS and duration buckets;
// `meshbox top --once` shows the pair's rate while load runs; GET /ui serves the dashboard
// page with nothing to load from elsewhere.
#include <doctest/doctest.h>

#include <fstream>

#include "test/support/deadline.h"
#include "test/support/http_response.h"
#include "test/support/json.h"
#include "test/support/load.h"
#include "test/support/mesh.h"
#include "test/support/meshbox.h"

namespace meshbox::test {
namespace {

constexpr auto kTimeout = 10s;

HttpResponse get(const std::string& addr, const std::string& path, const std::string& host) {
  return get_with_host(addr, path, host, Deadline(kTimeout));
}

/// The edge gateway "edge" → "web-v1" in a /stats/edges answer, or null.
const Json* edge_to_web(const Json& doc) {
  const Json* edges = doc.get("edges");
  if (!edges) return nullptr;
  for (const Json& e : edges->array)
    if (e.get("source_workload")->string == "edge" &&
        e.get("destination_workload")->string == "web-v1")
      return &e;
  return nullptr;
}

}  // namespace

TEST_CASE("top: /stats/edges, meshbox top --once and /ui on a gateway → workload mesh") {
  TempDir dir;
  uint16_t gw_port = free_port();
  std::string gw = "127.0.0.1:" + std::to_string(gw_port);
  std::ofstream(dir.file("mesh.toml")) << web_v1_config(gw_port);
  Mesh mesh(dir, MeshOptions{.paths = {dir.file("mesh.toml")}});
  REQUIRE(eventually([&] { return get(gw, "/", "web").status == 200; }, kTimeout));
  for (int i = 0; i < 4; ++i)
    CHECK(get(gw, "/bytes/10", "web").status == 200);
  CHECK(get(gw, "/status/503", "web").status == 503);

  // Counted once (the gateway's report; the sidecar's is not added), the 503 an error.
  std::optional<Json> doc;
  const Json* e = nullptr;
  REQUIRE(eventually(
      [&] {
        HttpResponse r = get(mesh.admin(), "/stats/edges", "admin");
        doc = parse_json(r.body);
        e = doc ? edge_to_web(*doc) : nullptr;
        return r.status == 200 && e && e->get("requests")->number >= 6 &&
               e->get("errors")->number >= 1;
      },
      kTimeout));
  INFO(get(mesh.admin(), "/stats/edges", "admin").body);
  CHECK(e->get("requests")->number == 6);
  CHECK(e->get("errors")->number == 1);
  CHECK(e->get("reporter")->string == "source");
  CHECK(e->get("mtls")->boolean);
  CHECK(e->get("destination_version")->string == "v1");
  CHECK(e->get("destination_app")->string == "web");
  CHECK(e->get("destination_service")->string == "web.default.svc.cluster.local");
  const Json* buckets = e->get("duration_buckets");
  REQUIRE(buckets->array.size() == doc->get("bounds")->array.size() + 1);
  CHECK(buckets->array.back().number == 6);  // cumulative: +Inf holds every request
  CHECK(doc->get("timestamp_ms")->number > 1.7e12);
  // The sidecar reported the same calls: no second edge for them.
  size_t to_web = 0;
  for (const Json& x : doc->get("edges")->array)
    to_web += x.get("destination_workload")->string == "web-v1" ? 1 : 0;
  CHECK(to_web == 1);

  // top --once: two samples a second apart while a client sends requests back to back.
  {
    LoadLoop load(LoadOptions{
        .address = gw, .clients = 1, .request = "GET /bytes/10 HTTP/1.1\r\nHost: web\r\n\r\n"});
    REQUIRE(load.wait_for(0, 5, Deadline(kTimeout)));
    RunResult top = mesh.cli({"top", "--once", "--interval", "1s"});
    load.stop();
    INFO(top.out, top.err);
    REQUIRE(top.status);
    CHECK(top.status->code == 0);
    CHECK(top.out.starts_with("SOURCE"));
    CHECK(top.out.find("P99") != std::string::npos);
    size_t row = top.out.find("\nedge ");
    REQUIRE(row != std::string::npos);
    std::string line = top.out.substr(row + 1, top.out.find('\n', row + 1) - row - 1);
    CHECK(line.find("web-v1 (v1)") != std::string::npos);
    CHECK(line.find("100.00%") != std::string::npos);  // no 5xx in this second
    CHECK(line.ends_with("yes"));                      // mTLS
    // The rate column is not 0.0.
    CHECK(line.find(" 0.0 ") == std::string::npos);
  }
  RunResult bad = mesh.cli({"top", "--interval", "soon"});
  REQUIRE(bad.status);
  CHECK(bad.status->code == 2);

  // The dashboard: one self-contained page.
  HttpResponse ui = get(mesh.admin(), "/ui", "admin");
  CHECK(ui.status == 200);
  REQUIRE(ui.header("content-type"));
  CHECK(ui.header("content-type")->starts_with("text/html"));
  REQUIRE(ui.header("content-security-policy"));
  CHECK(ui.header("content-security-policy")->find("default-src 'none'") != std::string::npos);
  CHECK(ui.body.find("/stats/edges") != std::string::npos);
  CHECK(ui.body.find("src=\"http") == std::string::npos);
  CHECK(get(mesh.admin(), "/ui/graph", "admin").status == 200);
}

}  // namespace meshbox::test
