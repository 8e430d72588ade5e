// Locality load balancing end to end: `meshbox run --locality` on a node whose gateway reaches
// a service with one endpoint in the node's own zone and one in another region. With outlier
// detection on, every request goes to the local endpoint; once it fails and is ejected, to the
// remote one; when its ejection ends, back to the local one. Backends say who answered
// (x-backend-name).
#include <doctest/doctest.h>

#include <fstream>
#include <string>

#include "test/support/deadline.h"
#include "test/support/http_response.h"
#include "test/support/mesh.h"
#include "test/support/meshbox.h"

namespace meshbox::test {
namespace {

std::string workload(const std::string& name, const std::string& address,
                     const std::string& locality) {
  size_t colon = address.rfind(':');
  return "[[workload]]\nname = \"" + name + "\"\nservice = \"web\"\naddress = \"" +
         address.substr(0, colon) + "\"\nport = " + address.substr(colon + 1) + "\nlocality = \"" +
         locality + "\"\n\n";
}

std::string backend_of(const std::string& gw, const std::string& target) {
  HttpResponse r = exchange(
      gw, "GET " + target + " HTTP/1.1\r\nHost: web\r\nConnection: close\r\n\r\n", Deadline(10s));
  const std::string* b = r.header("x-backend-name");
  return std::to_string(r.status) + " " + (b ? *b : "");
}

}  // namespace

TEST_CASE("locality: requests stay in the node's zone, fail over when it is ejected, come back") {
  TempDir dir;
  Httpbin local(dir, "local"), remote(dir, "remote");
  uint16_t port = free_port();
  std::ofstream(dir.file("mesh.toml"))
      << "[[service]]\nname = \"web\"\nport = 8000\n\n"
      << workload("web-local", local.address(), "us-east/zone-a/rack-1")
      << workload("web-remote", remote.address(), "eu-west/zone-b")
      << "[[destination_rule]]\nname = \"web\"\nhost = \"web\"\n"
         "traffic_policy = { load_balancer = \"round_robin\", outlier_detection = { "
         "consecutive_5xx_errors = 1, interval = \"1s\", base_ejection_time = \"1s\" } }\n\n"
         "[[gateway]]\nname = \"edge\"\nservers = [{ port = "
      << port
      << ", bind = \"127.0.0.1\", protocol = \"http\", hosts = [\"*\"] }]\n\n"
         "[[virtual_service]]\nname = \"web\"\nhosts = [\"*\"]\ngateways = [\"edge\"]\n"
         "[[virtual_service.http]]\nroute = [{ destination = { host = \"web\" } }]\n"
         "retries = { attempts = 0 }\n";
  Mesh mesh(dir, MeshOptions{.paths = {dir.file("mesh.toml")},
                             .flags = {"--locality", "us-east/zone-a/rack-1"}});
  std::string gw = "127.0.0.1:" + std::to_string(port);

  // Round robin over both would alternate: all 20 stay local.
  int to_local = 0;
  for (int i = 0; i < 20; ++i)
    to_local += backend_of(gw, "/") == "200 local";
  CHECK(to_local == 20);

  // One 5xx ejects the local endpoint (for 1 s): the remote region takes every request.
  CHECK(backend_of(gw, "/status/500") == "500 local");
  int to_remote = 0;
  for (int i = 0; i < 10; ++i)
    to_remote += backend_of(gw, "/") == "200 remote";
  CHECK(to_remote == 10);
  MESSAGE("while the local endpoint was ejected: " << to_remote << "/10 to the remote one");

  // The ejection ends: traffic returns to the local endpoint.
  int remote_until_back = 0;
  CHECK(eventually(
      [&] {
        if (backend_of(gw, "/") == "200 local") return true;
        ++remote_until_back;
        return false;
      },
      5s));
  int back_local = 0;
  for (int i = 0; i < 10; ++i)
    back_local += backend_of(gw, "/") == "200 local";
  CHECK(back_local == 10);
  MESSAGE("requests to the remote endpoint before the local one came back: " << remote_until_back);
  CHECK(mesh.log().find("ejected") != std::string::npos);
}

TEST_CASE("locality: a bad --locality is a usage error") {
  TempDir dir;
  RunResult r = run_meshbox({"run", "--locality", "us//a"}, dir, Deadline(10s));
  REQUIRE(r.status);
  CHECK(r.status->exited);
  CHECK(r.status->code == 2);
  CHECK(r.err.find("--locality") != std::string::npos);
}

}  // namespace meshbox::test
