// `meshbox run`: the control plane and the workers in one process, driven through real
// gateway traffic (curl, raw keep-alive clients), the CLI (apply/get/delete) and the admin API.
#include <doctest/doctest.h>
#include <signal.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <fstream>
#include <set>
#include <thread>

#include "test/support/curl.h"
#include "test/support/deadline.h"
#include "test/support/http_response.h"
#include "test/support/json.h"
#include "test/support/mesh.h"
#include "test/support/meshbox.h"

namespace meshbox::test {
namespace {

using namespace std::chrono_literals;
constexpr auto kTimeout = 10s;

void write(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::trunc) << text;
}

// GET through the gateway; returns status and the backend that answered.
struct Hit {
  int status = 0;
  std::string backend;
  std::string body;
};
Hit get(const std::string& addr, const std::string& path, std::vector<std::string> headers = {}) {
  std::string req = "GET " + path + " HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n";
  for (const auto& h : headers)
    req += h + "\r\n";
  req += "\r\n";
  HttpResponse r = exchange(addr, req, Deadline(kTimeout));
  Hit h;
  h.status = r.complete ? r.status : 0;
  if (const std::string* b = r.header("x-backend-name")) h.backend = *b;
  h.body = r.body;
  return h;
}

// Polls until `pred` holds (each try is a real request), or the deadline passes.
std::optional<Json> admin_json(const Mesh& mesh, const std::string& path) {
  auto r = curl_http({"http://" + mesh.admin() + path}, Deadline(kTimeout));
  if (r.status != 200) return std::nullopt;
  return parse_json(r.body);
}

// Two backends as two workloads of "httpbin", versions v1 and v2, with subsets; the
// gateway's route goes to `subset`.
std::string two_versions(uint16_t port, const std::string& b1, const std::string& b2,
                         const std::string& subset, const std::string& health = "") {
  auto hp = [](const std::string& a, bool host) {
    return host ? a.substr(0, a.rfind(':')) : a.substr(a.rfind(':') + 1);
  };
  return "[[service]]\nname = \"httpbin\"\nport = 8000\n\n"
         "[[workload]]\nname = \"httpbin-v1\"\nservice = \"httpbin\"\naddress = \"" +
         hp(b1, true) + "\"\nport = " + hp(b1, false) + "\nlabels = { version = \"v1\" }\n" +
         health + "\n[[workload]]\nname = \"httpbin-v2\"\nservice = \"httpbin\"\naddress = \"" +
         hp(b2, true) + "\"\nport = " + hp(b2, false) + "\nlabels = { version = \"v2\" }\n" +
         health +
         "\n[[destination_rule]]\nname = \"httpbin\"\nhost = \"httpbin\"\n"
         "subsets = [{ name = \"v1\", labels = { version = \"v1\" } }, "
         "{ name = \"v2\", labels = { version = \"v2\" } }]\n\n"
         "[[gateway]]\nname = \"edge\"\nservers = [{ port = " +
         std::to_string(port) +
         ", bind = \"127.0.0.1\", protocol = \"http\", hosts = [\"*\"] }]\n\n"
         "[[virtual_service]]\nname = \"httpbin\"\nhosts = [\"*\"]\ngateways = [\"edge\"]\n"
         "http = [{ route = [{ destination = { host = \"httpbin\", subset = \"" +
         subset + "\" } }] }]\n";
}

std::string route_to(const std::string& subset, const std::string& extra = "") {
  return "[[virtual_service]]\nname = \"httpbin\"\nhosts = [\"*\"]\ngateways = [\"edge\"]\n" +
         extra + "http = [{ route = [{ destination = { host = \"httpbin\", subset = \"" + subset +
         "\" } }] }]\n";
}

TEST_CASE("run: a gateway serves the routes of a virtual service from a TOML file") {
  TempDir dir;
  Httpbin b1(dir, "b1");
  uint16_t port = free_port();
  write(dir.file("mesh.toml"), gateway_config(port, b1.address()));
  Mesh mesh(dir, {.paths = {dir.file("mesh.toml")}});
  std::string gw = mesh.listener("127.0.0.1_" + std::to_string(port));
  CHECK(gw == "127.0.0.1:" + std::to_string(port));

  auto r = curl_http({"-i", "http://" + gw + "/"}, Deadline(kTimeout));
  INFO(r.run.summary());
  CHECK(r.status == 200);
  CHECK(r.body.find("hello from b1") != std::string::npos);

  // The admin API answers while traffic flows.
  auto ready = curl_http({"http://" + mesh.admin() + "/ready"}, Deadline(kTimeout));
  CHECK(ready.status == 200);
  auto health = curl_http({"http://" + mesh.admin() + "/healthz"}, Deadline(kTimeout));
  CHECK(health.status == 200);
  CHECK(health.body == "ok\n");
}

TEST_CASE("run: a host no virtual service serves gets 404 NR; direct responses and redirects") {
  TempDir dir;
  Httpbin b1(dir, "b1");
  uint16_t port = free_port();
  std::string cfg = gateway_config(port, b1.address());
  // Replace the catch-all virtual service with host-specific ones.
  cfg = cfg.substr(0, cfg.find("[[virtual_service]]"));
  cfg +=
      "[[virtual_service]]\nname = \"api\"\nhosts = [\"api.example.com\"]\ngateways = [\"edge\"]\n"
      "[[virtual_service.http]]\nmatch = [{ uri = { prefix = \"/old\" } }]\n"
      "redirect = { uri = \"/new\", redirect_code = 308 }\n"
      "[[virtual_service.http]]\nmatch = [{ uri = { exact = \"/teapot\" } }]\n"
      "direct_response = { status = 418, body = \"short and stout\" }\n"
      "[[virtual_service.http]]\nroute = [{ destination = { host = \"httpbin\" } }]\n";
  write(dir.file("mesh.toml"), cfg);
  Mesh mesh(dir, {.paths = {dir.file("mesh.toml")}});
  std::string gw = "127.0.0.1:" + std::to_string(port);

  auto nr = curl_http({"-H", "Host: other.example.com", "http://" + gw + "/"}, Deadline(kTimeout));
  CHECK(nr.status == 404);
  auto ok =
      curl_http({"-H", "Host: API.example.com:8080", "http://" + gw + "/"}, Deadline(kTimeout));
  CHECK(ok.status == 200);
  auto tea =
      curl_http({"-H", "Host: api.example.com", "http://" + gw + "/teapot"}, Deadline(kTimeout));
  CHECK(tea.status == 418);
  CHECK(tea.body == "short and stout");
  auto moved = curl_http({"-i", "-H", "Host: api.example.com", "http://" + gw + "/old/x"},
                         Deadline(kTimeout));
  CHECK(moved.status == 308);
  CHECK(moved.body.find("location: http://api.example.com/new") != std::string::npos);

  // Keep-alive survives local answers: three requests on one connection.
  HttpClient c = HttpClient::connect(gw, Deadline(kTimeout));
  REQUIRE(c.valid());
  for (const char* path : {"/teapot", "/nope", "/teapot"}) {
    std::string host = std::string(path) == "/nope" ? "nobody" : "api.example.com";
    REQUIRE(c.send(std::string("GET ") + path + " HTTP/1.1\r\nHost: " + host + "\r\n\r\n",
                   Deadline(kTimeout)));
    HttpResponse r = c.read_response(Deadline(kTimeout));
    CHECK(r.complete);
    CHECK(r.status == (host == "nobody" ? 404 : 418));
  }
}

TEST_CASE("run: apply, get and delete through the CLI change what the gateway serves") {
  TempDir dir;
  Httpbin b1(dir, "b1"), b2(dir, "b2");
  uint16_t port = free_port();
  write(dir.file("mesh.toml"), two_versions(port, b1.address(), b2.address(), "v1"));
  Mesh mesh(dir, {.paths = {dir.file("mesh.toml")}});
  std::string gw = "127.0.0.1:" + std::to_string(port);
  CHECK(get(gw, "/").backend == "b1");

  // A header match sends jason to v2; everyone else stays on v1.
  write(dir.file("jason.toml"),
        "[[virtual_service]]\nname = \"httpbin\"\nhosts = [\"*\"]\ngateways = [\"edge\"]\n"
        "[[virtual_service.http]]\nmatch = [{ headers = { end-user = { exact = \"jason\" } } }]\n"
        "route = [{ destination = { host = \"httpbin\", subset = \"v2\" } }]\n"
        "[[virtual_service.http]]\n"
        "route = [{ destination = { host = \"httpbin\", subset = \"v1\" } }]\n");
  auto applied = mesh.cli({"apply", "-f", dir.file("jason.toml"), "--wait"});
  INFO(applied.out, applied.err);
  REQUIRE(applied.status);
  CHECK(applied.status->ok());
  CHECK(applied.out.find("virtual_service/default/httpbin configured") != std::string::npos);
  // --wait: every worker serves it when apply returns.
  for (int i = 0; i < 10; ++i) {
    CHECK(get(gw, "/", {"end-user: jason"}).backend == "b2");
    CHECK(get(gw, "/").backend == "b1");
  }
  // Applying the same thing again changes nothing.
  auto again = mesh.cli({"apply", "-f", dir.file("jason.toml")});
  CHECK(again.out.find("unchanged") != std::string::npos);

  // A change that compiles to the same snapshot is stored but not pushed.
  auto version_of = [&] {
    auto ready = admin_json(mesh, "/ready");
    return ready && ready->get("version") ? ready->get("version")->number : -1.0;
  };
  double version = version_of();
  write(dir.file("mesh-log.toml"), "[mesh]\naccess_log_encoding = \"json\"\n");
  auto log_change = mesh.cli({"apply", "-f", dir.file("mesh-log.toml"), "--wait"});
  CHECK(log_change.status->ok());
  CHECK(log_change.out.find("mesh/mesh configured") != std::string::npos);
  CHECK(version_of() == version);

  auto routes = mesh.cli({"get", "routes"});
  INFO(routes.out);
  CHECK(routes.out.rfind("LISTENER", 0) == 0);
  CHECK(routes.out.find("header end-user exact jason") != std::string::npos);
  CHECK(routes.out.find("outbound|8000|v2|httpbin.default.svc.cluster.local 100%") !=
        std::string::npos);
  auto services = mesh.cli({"get", "services"});
  INFO(services.out);
  CHECK(services.out.find("httpbin.default.svc.cluster.local") != std::string::npos);
  CHECK(services.out.find("2/2") != std::string::npos);
  auto endpoints = mesh.cli({"get", "endpoints", "-o", "json"});
  auto eps = parse_json(endpoints.out);
  REQUIRE(eps);
  CHECK(eps->array.size() == 2);
  auto config = mesh.cli({"get", "config", "-o", "json"});
  auto cj = parse_json(config.out);
  REQUIRE(cj);
  REQUIRE(cj->get("revision"));
  double revision = cj->get("revision")->number;
  CHECK(revision >= 2);

  // Deleting the destination rule would orphan the subsets the route uses: refused whole.
  auto refused = mesh.cli({"delete", "destination_rule", "httpbin"});
  CHECK(refused.status->code == 1);
  CHECK(refused.err.find("subset") != std::string::npos);
  CHECK(get(gw, "/", {"end-user: jason"}).backend == "b2");

  // Deleting the virtual service: the gateway has no route any more.
  auto deleted = mesh.cli({"delete", "virtual_service", "httpbin", "--wait"});
  INFO(deleted.err);
  CHECK(deleted.status->ok());
  CHECK(deleted.out == "virtual_service/default/httpbin deleted\n");
  CHECK(get(gw, "/").status == 404);
  auto missing = mesh.cli({"delete", "virtual_service", "httpbin"});
  CHECK(missing.status->code == 1);
}

TEST_CASE("run: mutating admin calls need the token; the token file is 0600") {
  TempDir dir;
  Httpbin b1(dir, "b1");
  uint16_t port = free_port();
  write(dir.file("mesh.toml"), gateway_config(port, b1.address()));
  Mesh mesh(dir, {.paths = {dir.file("mesh.toml")}});

  struct stat st {};
  REQUIRE(::stat((mesh.state_dir() + "/admin.token").c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  std::string token = read_file(mesh.state_dir() + "/admin.token").value_or("");
  while (!token.empty() && token.back() == '\n')
    token.pop_back();
  CHECK(token.size() == 64);

  std::string url = "http://" + mesh.admin() + "/config/virtual_service/default/httpbin";
  auto none = curl_http({"-X", "DELETE", url}, Deadline(kTimeout));
  CHECK(none.status == 401);
  auto wrong =
      curl_http({"-X", "DELETE", "-H", "Authorization: Bearer " + std::string(64, 'a'), url},
                Deadline(kTimeout));
  CHECK(wrong.status == 401);
  auto post = curl_http({"-X", "POST", "--data", "{}", "http://" + mesh.admin() + "/config"},
                        Deadline(kTimeout));
  CHECK(post.status == 401);
  // Reads need no token.
  CHECK(curl_http({"http://" + mesh.admin() + "/config"}, Deadline(kTimeout)).status == 200);
  // With the token, malformed bodies are answered 400, never a crash.
  std::string bearer = "Authorization: Bearer " + token;
  for (const std::string& body :
       std::vector<std::string>{"{", "[]", "{\"files\": 3}", "{\"files\": [{\"name\": 1}]}",
                                std::string(100'000, '[')}) {
    auto bad = curl_http(
        {"-X", "POST", "-H", bearer, "--data-binary", body, "http://" + mesh.admin() + "/config"},
        Deadline(kTimeout));
    CHECK(bad.status == 400);
  }
  auto bad_port = curl_http({"-X", "POST", "-H", bearer, "--data",
                             "{\"service\":\"httpbin\",\"address\":\"127.0.0.1\",\"port\":0}",
                             "http://" + mesh.admin() + "/endpoints"},
                            Deadline(kTimeout));
  CHECK(bad_port.status == 400);
  CHECK(curl_http({"http://" + mesh.admin() + "/nope"}, Deadline(kTimeout)).status == 404);
  // Nothing was deleted; with the token it is.
  CHECK(get("127.0.0.1:" + std::to_string(port), "/").status == 200);
  auto ok = curl_http({"-X", "DELETE", "-H", "Authorization: Bearer " + token, url + "?wait=1"},
                      Deadline(kTimeout));
  CHECK(ok.status == 200);
  CHECK(get("127.0.0.1:" + std::to_string(port), "/").status == 404);
}

TEST_CASE("run: a bad config is rejected whole and the running one keeps serving") {
  TempDir dir;
  Httpbin b1(dir, "b1"), b2(dir, "b2");
  uint16_t port = free_port();
  write(dir.file("mesh.toml"), two_versions(port, b1.address(), b2.address(), "v1"));
  Mesh mesh(dir, {.paths = {dir.file("mesh.toml")}, .flags = {"--no-watch"}});
  std::string gw = "127.0.0.1:" + std::to_string(port);
  auto before = admin_json(mesh, "/config");
  REQUIRE(before);

  // Two resources: a good one and a bad one. Neither may land.
  write(dir.file("bad.toml"),
        "[[service]]\nname = \"extra\"\nport = 9000\n\n"
        "[[virtual_service]]\nname = \"httpbin\"\nhosts = [\"*\"]\ngateways = [\"edge\"]\n"
        "http = [{ route = [\n"
        "  { destination = { host = \"httpbin\", subset = \"v1\" }, weight = 50 },\n"
        "  { destination = { host = \"httpbin\", subset = \"v2\" }, weight = 40 },\n"
        "] }]\n");
  auto r = mesh.cli({"apply", "-f", dir.file("bad.toml")});
  INFO(r.err);
  CHECK(r.status->code == 1);
  CHECK(r.err.find(dir.file("bad.toml") +
                   ":10:65: error: virtual_service \"httpbin\": "
                   "http[0].route[0].weight: weights must sum to 100, got 90") !=
        std::string::npos);
  CHECK(r.err.find("100") != std::string::npos);
  CHECK(r.err.find("running config is unchanged") != std::string::npos);
  auto after = admin_json(mesh, "/config");
  REQUIRE(after);
  CHECK(after->get("revision")->number == before->get("revision")->number);
  for (int i = 0; i < 5; ++i)
    CHECK(get(gw, "/").backend == "b1");

  // The same through a file reload (SIGHUP): rejected, logged, still serving.
  write(dir.file("mesh.toml"), two_versions(port, b1.address(), b2.address(), "v3"));
  ::kill(mesh.process().pid(), SIGHUP);
  CHECK(eventually([&] { return mesh.log().find("reload rejected") != std::string::npos; }));
  CHECK(get(gw, "/").backend == "b1");
  // A good file and SIGHUP: v2 serves.
  write(dir.file("mesh.toml"), two_versions(port, b1.address(), b2.address(), "v2"));
  ::kill(mesh.process().pid(), SIGHUP);
  CHECK(eventually([&] { return get(gw, "/").backend == "b2"; }));
}

TEST_CASE("run: a change of the config files is picked up without a signal") {
  TempDir dir;
  Httpbin b1(dir, "b1"), b2(dir, "b2");
  uint16_t port = free_port();
  std::string cfg_dir = dir.file("conf");
  ::mkdir(cfg_dir.c_str(), 0755);
  write(cfg_dir + "/mesh.toml", two_versions(port, b1.address(), b2.address(), "v1"));
  Mesh mesh(dir, {.paths = {cfg_dir}});
  std::string gw = "127.0.0.1:" + std::to_string(port);
  CHECK(get(gw, "/").backend == "b1");
  write(cfg_dir + "/mesh.toml", two_versions(port, b1.address(), b2.address(), "v2"));
  CHECK(eventually([&] { return get(gw, "/").backend == "b2"; }));
}

TEST_CASE("run: the store persists across a restart") {
  TempDir dir;
  Httpbin b1(dir, "b1"), b2(dir, "b2");
  uint16_t port = free_port();
  write(dir.file("mesh.toml"), two_versions(port, b1.address(), b2.address(), "v1"));
  std::string gw = "127.0.0.1:" + std::to_string(port);
  double revision = 0;
  {
    Mesh mesh(dir, {.paths = {dir.file("mesh.toml")}});
    write(dir.file("v2.toml"), route_to("v2"));
    auto r = mesh.cli({"apply", "-f", dir.file("v2.toml"), "--wait"});
    REQUIRE(r.status->ok());
    CHECK(get(gw, "/").backend == "b2");
    revision = admin_json(mesh, "/config")->get("revision")->number;
    ::kill(mesh.process().pid(), SIGTERM);
    auto st = mesh.process().wait(Deadline(kTimeout));
    REQUIRE(st);
    CHECK(st->ok());
  }
  // No config path: the store alone.
  Mesh again(dir, {});
  CHECK(get(gw, "/").backend == "b2");
  auto cfg = admin_json(again, "/config");
  REQUIRE(cfg);
  CHECK(cfg->get("revision")->number == revision);
  auto svc = again.cli({"get", "config"});
  CHECK(svc.out.find("virtual_service") != std::string::npos);
  CHECK(svc.out.find("api") != std::string::npos);  // origin of the applied one
}

TEST_CASE("run: health checks take a killed backend out and bring it back") {
  TempDir dir;
  auto b1 = std::make_unique<Httpbin>(dir, "b1");
  auto b2 = std::make_unique<Httpbin>(dir, "b2");
  std::string b2_addr = b2->address();
  uint16_t port = free_port();
  std::string health =
      "health = { http = \"/\", interval = \"100ms\", timeout = \"500ms\", "
      "unhealthy_threshold = 2, healthy_threshold = 1 }\n";
  // Route to the whole service (no subset): round robin over both.
  std::string cfg = two_versions(port, b1->address(), b2_addr, "v1", health);
  cfg = cfg.substr(0, cfg.rfind("http = ")) +
        "http = [{ route = [{ destination = { host = \"httpbin\" } }] }]\n";
  write(dir.file("mesh.toml"), cfg);
  Mesh mesh(dir, {.paths = {dir.file("mesh.toml")}});
  std::string gw = "127.0.0.1:" + std::to_string(port);
  // Least request (Istio's default) over both: each is picked sooner or later.
  std::set<std::string> seen;
  CHECK(eventually([&] {
    seen.insert(get(gw, "/").backend);
    return seen == std::set<std::string>{"b1", "b2"};
  }));

  auto healthy_count = [&] {
    auto eps = admin_json(mesh, "/endpoints");
    int n = 0;
    if (eps)
      for (const auto& e : eps->array)
        if (e.get("healthy") && e.get("healthy")->boolean) ++n;
    return n;
  };
  b2->process().kill_and_wait();
  CHECK(eventually([&] { return healthy_count() == 1; }));
  // Out of the snapshot: every request goes to b1, none fails.
  for (int i = 0; i < 20; ++i) {
    Hit h = get(gw, "/");
    CHECK(h.status == 200);
    CHECK(h.backend == "b1");
  }
  auto table = mesh.cli({"get", "endpoints"});
  CHECK(table.out.find("unhealthy") != std::string::npos);

  // Back on the same port: in again.
  b2 = std::make_unique<Httpbin>(dir, "b2", b2_addr);
  CHECK(eventually([&] { return healthy_count() == 2; }));
  CHECK(eventually([&] { return get(gw, "/").backend == "b2"; }));
}

TEST_CASE("run: endpoints registered through the admin API receive traffic") {
  TempDir dir;
  Httpbin b1(dir, "b1"), b2(dir, "b2");
  uint16_t port = free_port();
  write(dir.file("mesh.toml"), gateway_config(port, b1.address()));
  Mesh mesh(dir, {.paths = {dir.file("mesh.toml")}});
  std::string gw = "127.0.0.1:" + std::to_string(port);
  std::string token = read_file(mesh.state_dir() + "/admin.token").value_or("");
  token.pop_back();
  std::string port2 = b2.address().substr(b2.address().rfind(':') + 1);
  auto reg = curl_http({"-X", "POST", "-H", "Authorization: Bearer " + token, "--data",
                        "{\"service\":\"httpbin\",\"address\":\"127.0.0.1\",\"port\":" + port2 +
                            ",\"labels\":{\"version\":\"v9\"}}",
                        "http://" + mesh.admin() + "/endpoints"},
                       Deadline(kTimeout));
  INFO(reg.body);
  CHECK(reg.status == 200);
  CHECK(eventually([&] { return get(gw, "/").backend == "b2"; }));
  auto unknown = curl_http({"-X", "POST", "-H", "Authorization: Bearer " + token, "--data",
                            "{\"service\":\"nope\",\"address\":\"127.0.0.1\",\"port\":1}",
                            "http://" + mesh.admin() + "/endpoints"},
                           Deadline(kTimeout));
  CHECK(unknown.status == 404);
  auto dereg = curl_http({"-X", "DELETE", "-H", "Authorization: Bearer " + token,
                          "http://" + mesh.admin() +
                              "/endpoints?host=httpbin.default.svc.cluster.local&address=127.0.0.1"
                              "&port=" +
                              port2},
                         Deadline(kTimeout));
  CHECK(dereg.status == 200);
  CHECK(eventually([&] {
    for (int i = 0; i < 4; ++i)
      if (get(gw, "/").backend != "b1") return false;
    return true;
  }));
}

TEST_CASE("run: a change reaches every worker quickly (push latency)") {
  TempDir dir;
  Httpbin b1(dir, "b1"), b2(dir, "b2");
  uint16_t port = free_port();
  write(dir.file("mesh.toml"), two_versions(port, b1.address(), b2.address(), "v1"));
  Mesh mesh(dir, {.paths = {dir.file("mesh.toml")}, .workers = 4});
  std::string gw = "127.0.0.1:" + std::to_string(port);
  write(dir.file("a.toml"), route_to("v2"));
  write(dir.file("b.toml"), route_to("v1"));
  std::vector<double> end_to_end;
  for (int i = 0; i < 20; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    auto r = mesh.cli({"apply", "-f", dir.file(i % 2 ? "b.toml" : "a.toml"), "--wait"});
    end_to_end.push_back(
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    REQUIRE(r.status->ok());
    CHECK(get(gw, "/").backend == (i % 2 ? "b1" : "b2"));
  }
  auto stats = admin_json(mesh, "/stats/push");
  REQUIRE(stats);
  double p99 = stats->get("p99_ms")->number, p50 = stats->get("p50_ms")->number;
  std::sort(end_to_end.begin(), end_to_end.end());
  MESSAGE("push latency (publish → every worker applied) over "
          << stats->get("pushes")->number << " pushes: p50 " << p50 << " ms, p99 " << p99
          << " ms; `meshbox apply --wait` "
             "round trip median "
          << end_to_end[10] << " ms");
  CHECK(stats->get("pushes")->number >= 20);
#ifdef __SANITIZE_ADDRESS__
  CHECK(p99 < 250);  // ASan slows every thread switch; the 100 ms target is the release build's
#else
  CHECK(p99 < 100);
#endif
}

TEST_CASE("run: SIGTERM drains an in-flight request and exits 0") {
  TempDir dir;
  Httpbin b1(dir, "b1");
  uint16_t port = free_port();
  write(dir.file("mesh.toml"), gateway_config(port, b1.address()));
  Mesh mesh(dir, {.paths = {dir.file("mesh.toml")}});
  HttpClient c = HttpClient::connect("127.0.0.1:" + std::to_string(port), Deadline(kTimeout));
  REQUIRE(c.valid());
  REQUIRE(c.send("GET /delay/300 HTTP/1.1\r\nHost: x\r\n\r\n", Deadline(kTimeout)));
  // Wait until the backend has the request, then signal.
  CHECK(eventually([&] { return b1.stats().requests_total >= 2; }));
  ::kill(mesh.process().pid(), SIGTERM);
  HttpResponse r = c.read_response(Deadline(kTimeout));
  CHECK(r.complete);
  CHECK(r.status == 200);
  auto st = mesh.process().wait(Deadline(kTimeout));
  REQUIRE(st);
  CHECK(st->ok());
}

TEST_CASE("run: usage errors and a config with errors at start") {
  TempDir dir;
  write(dir.file("bad.toml"), "[[service]]\nname = \"x\"\nprot = 80\n");
  auto r = run_meshbox(
      {"run", dir.file("bad.toml"), "--state-dir", dir.file("s"), "--admin", "127.0.0.1:0"}, dir,
      Deadline(kTimeout));
  REQUIRE(r.status);
  CHECK(r.status->code == 1);
  CHECK(r.err.find(dir.file("bad.toml") + ":3:1") != std::string::npos);
  CHECK(r.err.find("port") != std::string::npos);  // did you mean
  auto u = run_meshbox({"run", "--workers", "0"}, dir, Deadline(kTimeout));
  CHECK(u.status->code == 2);
  auto g = run_meshbox({"get", "things", "--state-dir", dir.file("s")}, dir, Deadline(kTimeout));
  CHECK(g.status->code == 2);
  auto nothing =
      run_meshbox({"get", "services", "--state-dir", dir.file("none")}, dir, Deadline(kTimeout));
  CHECK(nothing.status->code == 1);
  CHECK(nothing.err.find("meshbox run") != std::string::npos);
}

}  // namespace
}  // namespace meshbox::test
