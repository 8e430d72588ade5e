// `meshbox inject` (manual sidecar injection) against a running `meshbox run`: an app meshbox
// did not start joins the mesh through the admin API (POST /workloads/attach). Gateway traffic
// reaches it through its inbound sidecar listener once its port answers; its outbound calls go
// through its outbound listener (HTTP_PROXY) by plain service name; inject passes on SIGTERM,
// exits with the app's status and detaches; a SIGKILLed inject is noticed by the mesh, which
// drops the instance, and its app gets SIGTERM. --print attaches for a unit file (environment
// and iptables rules) until --detach; bad input gets a clear error. Every wait polls with a
// deadline.
#include <doctest/doctest.h>
#include <signal.h>

#include <fstream>
#include <map>
#include <optional>
#include <sstream>

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

std::string mesh_toml(uint16_t gw_port) {
  return "[[service]]\nname = \"web\"\nport = 8000\n\n"
         "[[service]]\nname = \"client\"\nport = 8001\n\n"
         "[[gateway]]\nname = \"edge\"\nservers = [{ port = " +
         std::to_string(gw_port) +
         ", bind = \"127.0.0.1\", protocol = \"http\", hosts = [\"*\"] }]\n\n"
         "[[virtual_service]]\nname = \"web\"\nhosts = [\"*\"]\ngateways = [\"edge\"]\n"
         "http = [{ route = [{ destination = { host = \"web\" } }] }]\n";
}

// GET / through the gateway: the status and the backend that answered (x-backend-name).
std::pair<int, std::string> get(const std::string& gw) {
  HttpResponse r = exchange(gw, "GET / HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n",
                            Deadline(kTimeout));
  const std::string* b = r.header("x-backend-name");
  return {r.complete ? r.status : 0, b ? *b : ""};
}

struct Instance {
  std::string state, service;
  int pid = 0;
  int port = 0;
  bool ready = false;
  bool attached = false;
};

// GET /workloads, by instance name.
std::map<std::string, Instance> workloads(const Mesh& mesh) {
  std::map<std::string, Instance> out;
  auto r = curl_http({"http://" + mesh.admin() + "/workloads"}, Deadline(kTimeout));
  auto j = parse_json(r.body);
  if (r.status != 200 || !j) return out;
  for (const auto& w : j->array) {
    Instance i;
    auto str = [&](const char* k) { return w.get(k) ? w.get(k)->string : std::string(); };
    auto num = [&](const char* k) { return w.get(k) ? static_cast<int>(w.get(k)->number) : 0; };
    i.state = str("state");
    i.service = str("service");
    i.pid = num("pid");
    i.port = num("port");
    i.ready = w.get("ready") && w.get("ready")->boolean;
    i.attached = w.get("attached") && w.get("attached")->boolean;
    out[str("instance")] = i;
  }
  return out;
}

// GET /endpoints: the one whose source names `instance` (its labels as "k=v,…"), if listed.
std::optional<std::string> endpoint_of(const Mesh& mesh, const std::string& instance) {
  auto r = curl_http({"http://" + mesh.admin() + "/endpoints"}, Deadline(kTimeout));
  auto j = parse_json(r.body);
  if (!j) return std::nullopt;
  for (const auto& e : j->array) {
    if (!e.get("source") || e.get("source")->string != "workload/default/" + instance) continue;
    std::string labels;
    if (const Json* ls = e.get("labels"))
      for (const auto& [k, v] : ls->object)
        labels += (labels.empty() ? "" : ",") + k + "=" + v.string;
    return labels;
  }
  return std::nullopt;
}

// `meshbox inject` in the background, its output in a log shown if the test fails.
class Inject {
 public:
  Inject(TempDir& dir, const Mesh& mesh, const std::string& name, std::vector<std::string> flags,
         std::vector<std::string> command) {
    log_ = dir.file("inject-" + name + ".log");
    SpawnOptions opts;
    opts.argv = {meshbox_bin(), "inject", "--name", name, "--state-dir", mesh.state_dir()};
    opts.argv.insert(opts.argv.end(), flags.begin(), flags.end());
    opts.argv.push_back("--");
    opts.argv.insert(opts.argv.end(), command.begin(), command.end());
    opts.stdout_path = opts.stderr_path = log_;
    failure_log_.emplace("meshbox inject " + name, log_);
    proc_ = Process(opts);
  }
  Process& process() { return proc_; }
  std::string log() const { return read_file(log_).value_or(""); }

 private:
  std::string log_;
  std::optional<ScopedFailureLog> failure_log_;
  Process proc_;
};

// An app under inject: meshbox-httpbin on $PORT (from inject's environment), through a shell
// that writes its pid (the exec keeps it) to `pid_file` first.
std::vector<std::string> httpbin_app(const std::string& name, const std::string& pid_file) {
  return {"/bin/sh", "-c",
          "echo $$ > " + pid_file + "; exec " + httpbin_bin() +
              " --listen 127.0.0.1:$PORT --name " + name};
}

int read_pid(const std::string& path) {
  auto text = read_file(path);
  return text && !text->empty() ? std::atoi(text->c_str()) : 0;
}

TEST_CASE("inject: an app meshbox did not start joins through its sidecar, and leaves") {
  TempDir dir;
  uint16_t port = free_port();
  write(dir.file("mesh.toml"), mesh_toml(port));
  Mesh mesh(dir, {.paths = {dir.file("mesh.toml")}});
  std::string gw = "127.0.0.1:" + std::to_string(port);

  // Attached and started; in service once its port answers (the mesh's TCP check).
  std::string pid_file = dir.file("web.pid");
  Inject web(dir, mesh, "web-v1", {"--service", "web", "--version", "v1", "--label", "team=a"},
             httpbin_app("injected", pid_file));
  std::map<std::string, Instance> ws;
  REQUIRE_MESSAGE(eventually([&] {
                    ws = workloads(mesh);
                    return ws["web-v1"].ready;
                  }),
                  web.log());
  CHECK(ws["web-v1"].state == "attached");
  CHECK(ws["web-v1"].attached);
  CHECK(ws["web-v1"].service == "web");
  CHECK(ws["web-v1"].pid == web.process().pid());  // the watched pid is inject's
  CHECK(endpoint_of(mesh, "web-v1") == "app=web,team=a,version=v1");
  // inject asks the mesh too (every 200 ms) and says so.
  CHECK(eventually([&] { return web.log().find("web-v1 is in service") != std::string::npos; }));

  // Gateway → cluster → the instance's inbound sidecar listener → the app.
  CHECK(eventually([&] { return get(gw) == std::make_pair(200, std::string("injected")); }));
  auto routes = curl_http({"http://" + mesh.admin() + "/routes"}, Deadline(kTimeout));
  CHECK(routes.body.find("sidecar_web-v1_inbound") != std::string::npos);
  CHECK(routes.body.find("sidecar_web-v1_outbound") != std::string::npos);

  // `meshbox get workloads` marks it.
  auto table = mesh.cli({"get", "workloads"});
  REQUIRE(table.status);
  CHECK(table.status->ok());
  CHECK(table.out.find("web-v1") != std::string::npos);
  CHECK(table.out.find("attached") != std::string::npos);

  // An injected client calls http://web:8000/ by plain name: only its sidecar (HTTP_PROXY)
  // knows that name. inject exits with curl's status, and the client is detached.
  auto client =
      run_meshbox({"inject", "--service", "client", "--name", "client-1", "--state-dir",
                   mesh.state_dir(), "--", "curl", "-sS", "-i", "http://web:8000/headers"},
                  dir, Deadline(kTimeout));
  REQUIRE(client.status);
  CHECK_MESSAGE(client.status->ok(), client.err);
  CHECK(client.out.find("x-backend-name: injected") != std::string::npos);
  CHECK(client.out.find(R"(["Host","web:8000"])") != std::string::npos);
  CHECK(client.err.find("client-1 exited with status 0; detached") != std::string::npos);
  CHECK_FALSE(workloads(mesh).count("client-1"));

  // The app's exit status is inject's.
  auto seven = run_meshbox({"inject", "--service", "client", "--state-dir", mesh.state_dir(),
                            "--ready-timeout", "100ms", "--", "/bin/sh", "-c", "exit 7"},
                           dir, Deadline(kTimeout));
  REQUIRE(seven.status);
  CHECK(seven.status->exited);
  CHECK(seven.status->code == 7);

  // The app killed: inject detaches and exits 128+9; the endpoint is gone at once (the
  // detach answers once the workers serve the change).
  int app = read_pid(pid_file);
  REQUIRE(process_alive(app));
  REQUIRE(::kill(app, SIGKILL) == 0);
  auto exit = web.process().wait(Deadline(kTimeout));
  REQUIRE_MESSAGE(exit.has_value(), web.log());
  CHECK(exit->exited);
  CHECK(exit->code == 128 + SIGKILL);
  CHECK_FALSE(endpoint_of(mesh, "web-v1").has_value());
  CHECK_FALSE(workloads(mesh).count("web-v1"));
  CHECK(get(gw).first == 503);

  // SIGTERM to inject goes to the app, which exits 0: so does inject.
  std::string pid2 = dir.file("web2.pid");
  Inject web2(dir, mesh, "web-v2", {"--service", "web"}, httpbin_app("second", pid2));
  REQUIRE_MESSAGE(eventually([&] { return workloads(mesh)["web-v2"].ready; }), web2.log());
  REQUIRE(web2.process().signal(SIGTERM));
  exit = web2.process().wait(Deadline(kTimeout));
  REQUIRE_MESSAGE(exit.has_value(), web2.log());
  CHECK_MESSAGE(exit->ok(), exit->describe());
  CHECK_FALSE(process_alive(read_pid(pid2)));
  CHECK_FALSE(workloads(mesh).count("web-v2"));

  // SIGKILL to inject: no detach. The mesh sees the pid gone (a zombie counts: we do not
  // reap it yet) and drops the instance within a few seconds; the app gets SIGTERM.
  std::string pid3 = dir.file("web3.pid");
  Inject web3(dir, mesh, "web-v3", {"--service", "web"}, httpbin_app("third", pid3));
  REQUIRE_MESSAGE(eventually([&] { return workloads(mesh)["web-v3"].ready; }), web3.log());
  CHECK(eventually([&] { return get(gw) == std::make_pair(200, std::string("third")); }));
  auto killed_at = Deadline::Clock::now();
  REQUIRE(::kill(web3.process().pid(), SIGKILL) == 0);
  CHECK_MESSAGE(eventually([&] { return !workloads(mesh).count("web-v3"); }, 5s), mesh.log());
  MESSAGE("instance dropped ", ms_since(killed_at), " ms after the SIGKILL");
  CHECK_FALSE(endpoint_of(mesh, "web-v3").has_value());
  CHECK(eventually([&] { return !process_alive(read_pid(pid3)); }, 5s));
  CHECK(mesh.log(1 << 20).find("default/web-v3: pid " + std::to_string(web3.process().pid()) +
                               " is gone without detaching") != std::string::npos);
}

TEST_CASE("inject: --print attaches for a unit file until --detach; bad input is refused") {
  TempDir dir;
  uint16_t port = free_port();
  write(dir.file("mesh.toml"), mesh_toml(port));
  Mesh mesh(dir, {.paths = {dir.file("mesh.toml")}});
  std::string gw = "127.0.0.1:" + std::to_string(port);

  auto printed =
      mesh.cli({"inject", "--print", "--service", "web", "--version", "v2", "--name", "web-unit"});
  REQUIRE(printed.status);
  REQUIRE_MESSAGE(printed.status->ok(), printed.err);
  // KEY=value lines (what an EnvironmentFile reads) and the iptables rules as comments.
  std::map<std::string, std::string> env;
  std::vector<std::string> iptables;
  std::istringstream lines(printed.out);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("# iptables ", 0) == 0) iptables.push_back(line.substr(2));
    if (line.empty() || line[0] == '#') continue;
    auto eq = line.find('=');
    REQUIRE_MESSAGE(eq != std::string::npos, line);
    env[line.substr(0, eq)] = line.substr(eq + 1);
  }
  CHECK(env["MESHBOX_SERVICE"] == "web");
  CHECK(env["MESHBOX_WORKLOAD"] == "web-unit");
  CHECK(env["NO_PROXY"] == "localhost,127.0.0.1,::1");
  REQUIRE(env["HTTP_PROXY"].rfind("http://127.0.0.1:", 0) == 0);
  CHECK(env["http_proxy"] == env["HTTP_PROXY"]);
  std::string outbound = env["HTTP_PROXY"].substr(std::string("http://127.0.0.1:").size());
  std::string app_port = env["PORT"];
  REQUIRE(std::atoi(app_port.c_str()) > 0);
  auto has_rule = [&](const std::string& part) {
    for (const auto& r : iptables)
      if (r.find(part) != std::string::npos) return true;
    return false;
  };
  CHECK(has_rule("iptables -t nat -A MESHBOX_OUT_" + outbound +
                 " -p tcp -j REDIRECT "
                 "--to-ports " +
                 outbound));
  CHECK(has_rule("-m owner --uid-owner"));  // the sidecar's own traffic is left alone
  CHECK(has_rule("--dport " + app_port));

  // Attached, not watched (pid 0), not in service: nothing listens on its port yet. Its
  // outbound listener serves already (a 503: web has no endpoint).
  auto ws = workloads(mesh);
  CHECK(ws["web-unit"].attached);
  CHECK(ws["web-unit"].pid == 0);
  CHECK_FALSE(ws["web-unit"].ready);
  auto via_sidecar = curl_http({"-x", env["HTTP_PROXY"], "http://web:8000/"}, Deadline(kTimeout));
  CHECK(via_sidecar.status == 503);

  // The app starts on PORT (as systemd would start it): in service, reached by the gateway.
  Httpbin app(dir, "unit-app", "127.0.0.1:" + app_port);
  REQUIRE_MESSAGE(eventually([&] { return workloads(mesh)["web-unit"].ready; }), mesh.log());
  CHECK(eventually([&] { return get(gw) == std::make_pair(200, std::string("unit-app")); }));
  CHECK(endpoint_of(mesh, "web-unit") == "app=web,version=v2");

  // --detach ends it; a second one finds nothing.
  auto detached = mesh.cli({"inject", "--detach", "web-unit"});
  REQUIRE(detached.status);
  CHECK_MESSAGE(detached.status->ok(), detached.err);
  CHECK_FALSE(workloads(mesh).count("web-unit"));
  CHECK_FALSE(endpoint_of(mesh, "web-unit").has_value());
  CHECK(get(gw).first == 503);
  detached = mesh.cli({"inject", "--detach", "web-unit"});
  REQUIRE(detached.status);
  CHECK(detached.status->code == 1);
  CHECK(detached.err.find("no attached instance web-unit") != std::string::npos);

  // A service the mesh does not have: a clear error, exit 1, nothing started.
  auto bad = run_meshbox({"inject", "--service", "nosuch", "--state-dir", mesh.state_dir(), "--",
                          "/bin/sh", "-c", "touch " + dir.file("ran")},
                         dir, Deadline(kTimeout));
  REQUIRE(bad.status);
  CHECK(bad.status->code == 1);
  CHECK(bad.err.find("no service nosuch in namespace default") != std::string::npos);
  CHECK_FALSE(read_file(dir.file("ran")).has_value());

  // Usage errors: exit 2.
  auto usage = mesh.cli({"inject", "--service", "web"});  // no command
  REQUIRE(usage.status);
  CHECK(usage.status->code == 2);
  usage = mesh.cli({"inject", "--print", "--service", "web", "--port", "70000"});
  REQUIRE(usage.status);
  CHECK(usage.status->code == 2);

  // The admin API checks for itself: a token, a port in range, a known service, a live pid.
  std::string token = read_file(mesh.state_dir() + "/admin.token").value_or("");
  while (!token.empty() && token.back() == '\n')
    token.pop_back();
  auto attach = [&](const std::string& body, bool with_token = true) {
    std::vector<std::string> args = {"-X", "POST", "-d", body};
    if (with_token) args.insert(args.end(), {"-H", "Authorization: Bearer " + token});
    args.push_back("http://" + mesh.admin() + "/workloads/attach");
    return curl_http(args, Deadline(kTimeout));
  };
  CHECK(attach(R"({"service":"web"})", false).status == 401);
  auto r = attach(R"({"service":"web","port":70000})");
  CHECK(r.status == 400);
  CHECK(r.body.find("port") != std::string::npos);
  CHECK(attach(R"({"service":"web","port":"80"})").status == 400);
  r = attach(R"({"service":"nosuch"})");
  CHECK(r.status == 404);
  CHECK(r.body.find("no service nosuch in namespace default") != std::string::npos);
  CHECK(attach(R"({"service":"web","pid":2147483647})").status == 400);
  CHECK(attach(R"({"service":"web","name":"Not A Name"})").status == 400);
  CHECK(attach("not json").status == 400);
  // A name that is taken: 409.
  REQUIRE(attach(R"({"service":"web","name":"dup"})").status == 200);
  CHECK(attach(R"({"service":"web","name":"dup"})").status == 409);
}

}  // namespace
}  // namespace meshbox::test
