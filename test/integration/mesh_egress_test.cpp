// Istio's egress-gateway task end to end, from examples/egress/mesh.toml: a workload's
// sidecar sends calls to an external host (a service entry) through the egress gateway, and,
// with outbound_traffic_policy = "registry_only", answers 502 for any host the mesh does not
// know. The test plays the workload's app: it sends proxy requests (`GET http://host/…`) to
// the sidecar's outbound listener, exactly what an app with HTTP_PROXY does.
#include <doctest/doctest.h>

#include <sys/stat.h>

#include <chrono>
#include <fstream>
#include <sstream>

#include "test/support/deadline.h"
#include "test/support/http_response.h"
#include "test/support/json.h"
#include "test/support/mesh.h"
#include "test/support/meshbox.h"
#include "test/support/tcp_conn.h"

namespace meshbox::test {
namespace {

constexpr auto kTimeout = 10s;

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  for (size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size()))
    s.replace(at, from.size(), to);
  return s;
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

  std::string sidecar = mesh.listener_address("sidecar_sleep_outbound");
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

TEST_CASE("egress: allow_any passes calls to unknown hosts through (PassthroughCluster)") {
  TempDir dir;
  Httpbin external(dir, "external");
  std::string ext_port = external.address().substr(external.address().rfind(':') + 1);
  // Names the hosts file does not have go to a nameserver that is not there: they fail fast.
  std::string state = dir.file("state");
  REQUIRE(::mkdir(state.c_str(), 0700) == 0);
  std::ofstream(state + "/resolv.conf")
      << "nameserver 127.0.0.1:" << free_port() << "\noptions timeout:1 attempts:1\n";
  std::ifstream in(source_dir() + "/examples/egress/mesh.toml");
  REQUIRE(in);
  std::stringstream text;
  text << in.rdbuf();
  std::string config = replace_all(text.str(), "outbound_traffic_policy = \"registry_only\"", "");
  config = replace_all(config, "9100", ext_port);
  config = replace_all(config, "15080", std::to_string(free_port()));
  config = replace_all(config, "\"meshbox-httpbin\"", "\"" + httpbin_bin() + "\"");
  std::ofstream(dir.file("mesh.toml")) << config;
  Mesh mesh(dir, MeshOptions{.paths = {dir.file("mesh.toml")}, .state_dir = state});

  std::string sidecar = mesh.listener_address("sidecar_sleep_outbound");
  auto call = [&](const std::string& url, const std::string& host) {
    return exchange(sidecar,
                    "GET " + url + " HTTP/1.1\r\nHost: " + host + "\r\nConnection: close\r\n\r\n",
                    Deadline(kTimeout));
  };
  // By address: straight to it.
  std::string by_ip = "127.0.0.1:" + ext_port;
  HttpResponse r = call("http://" + by_ip + "/", by_ip);
  INFO(r.summary() << ": " << r.body);
  CHECK(r.status == 200);
  CHECK(r.body == "hello from external\n");
  // By name: the worker looks it up (the hosts file has localhost).
  r = call("http://localhost:" + ext_port + "/", "localhost:" + ext_port);
  CHECK(r.status == 200);
  CHECK(r.body == "hello from external\n");
  // Origin-form with a Host header, as a transparently captured app sends it.
  r = exchange(
      sidecar,
      "GET /headers HTTP/1.1\r\nHost: localhost:" + ext_port + "\r\nConnection: close\r\n\r\n",
      Deadline(kTimeout));
  CHECK(r.status == 200);
  CHECK(r.body.find("x-request-id") != std::string::npos);  // it went through the proxy
  CHECK(external.stats().requests_total >= 3);

  // A name nobody can resolve: 503 and Envoy's DF, quickly.
  auto t0 = std::chrono::steady_clock::now();
  r = call("http://nowhere.invalid/", "nowhere.invalid");
  CHECK(r.status == 503);
  CHECK(r.body == "dns resolution failure\n");
  CHECK(std::chrono::steady_clock::now() - t0 < 5s);
  // A request for the sidecar's own listener would loop: refused.
  r = call("http://" + sidecar + "/", sidecar);
  CHECK(r.status == 502);
  CHECK(r.body.find("loop") != std::string::npos);
  // Known hosts keep their routes: the service entry still goes through the egress gateway.
  CHECK(call("http://httpbin.example/", "httpbin.example").status == 200);

  // CONNECT (https through HTTP_PROXY): a tunnel to the host asked for.
  TcpConn c = TcpConn::connect(sidecar, Deadline(kTimeout));
  REQUIRE(c.valid());
  REQUIRE(c.send_all("CONNECT " + by_ip + " HTTP/1.1\r\nHost: " + by_ip + "\r\n\r\n",
                     Deadline(kTimeout)));
  std::string got;
  REQUIRE(c.read_until(got, "\r\n\r\n", Deadline(kTimeout)));
  CHECK(got.rfind("HTTP/1.1 200", 0) == 0);
  REQUIRE(c.send_all("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", Deadline(kTimeout)));
  std::string rest;
  c.read_to_close(rest, Deadline(kTimeout));
  CHECK(rest.find("hello from external") != std::string::npos);
}

}  // namespace meshbox::test
