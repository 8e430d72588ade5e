// Istio's egress-gateway task end to end, from examples/egress/mesh.toml: a workload's
// sidecar sends calls to an external host (a service entry) through the egress gateway, and,
// with outbound_traffic_policy = "registry_only", answers 502 for any host the mesh does not
// know. The test plays the workload's app: it sends proxy requests (`GET http://host/…`) to
// the sidecar's outbound listener, exactly what an app with HTTP_PROXY does.
#include <doctest/doctest.h>

#include <fstream>
#include <sstream>

#include "test/support/deadline.h"
#include "test/support/http_response.h"
#include "test/support/json.h"
#include "test/support/mesh.h"
#include "test/support/meshbox.h"

namespace meshbox::test {
namespace {

constexpr auto kTimeout = 10s;

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  for (size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size()))
    s.replace(at, from.size(), to);
  return s;
}

// The address of the listener `name` from the admin API's /routes.
std::string listener_address(Mesh& mesh, const std::string& name) {
  Deadline d(kTimeout);
  while (!d.expired()) {
    RunResult r = mesh.cli({"get", "routes", "-o", "json"});
    if (auto j = parse_json(r.out)) {
      for (const Json& row : j->array)
        if (row.get("listener") && row.get("listener")->string == name)
          return row.get("address")->string;
    }
  }
  FAIL("no listener " << name);
  return "";
}

}  // namespace

TEST_CASE("egress: a sidecar's calls to an external host leave through the egress gateway") {
  TempDir dir;
  Httpbin external(dir, "external");
  uint16_t gateway_port = free_port();
  std::ifstream in(source_dir() + "/examples/egress/mesh.toml");
  REQUIRE(in);
  std::stringstream text;
  text << in.rdbuf();
  std::string config = text.str();
  config =
      replace_all(config, "9100", external.address().substr(external.address().rfind(':') + 1));
  config = replace_all(config, "15080", std::to_string(gateway_port));
  config = replace_all(config, "\"meshbox-httpbin\"", "\"" + httpbin_bin() + "\"");
  std::ofstream(dir.file("mesh.toml")) << config;
  Mesh mesh(dir, MeshOptions{.paths = {dir.file("mesh.toml")}});

  std::string sidecar = listener_address(mesh, "sidecar_sleep_outbound");
  auto call = [&](const std::string& url) {
    std::string host = url.substr(7, url.find('/', 7) - 7);
    return exchange(sidecar,
                    "GET " + url + " HTTP/1.1\r\nHost: " + host + "\r\nConnection: close\r\n\r\n",
                    Deadline(kTimeout));
  };
  // The workload registers once its process runs: poll until the route is served.
  HttpResponse r;
  Deadline d(kTimeout);
  do {
    r = call("http://httpbin.example/");
  } while (r.status != 200 && !d.expired());
  REQUIRE_MESSAGE(r.status == 200, r.summary() << "\n" << mesh.log());
  CHECK(r.body == "hello from external\n");
  REQUIRE(r.header("x-egress"));
  CHECK(*r.header("x-egress") == "egressgateway");  // set by the egress gateway's route
  CHECK(external.stats().requests_total >= 2);

  // registry_only: a host no service entry has is refused by the sidecar itself.
  HttpResponse refused = call("http://example.org/");
  CHECK(refused.status == 502);
  CHECK(refused.body.find("registry_only") != std::string::npos);
  // A known host on a port it does not have is unknown too.
  CHECK(call("http://httpbin.example:8081/").status == 502);
}

}  // namespace meshbox::test
