// Authorization policies (Istio's AuthorizationPolicy) end to end, through one real
// `meshbox run`: a gateway and three workloads with sidecars, meshbox-httpbin as every app.
// `sleep` (namespace default, service account sleep) and `other` (namespace foo) call `web`
// through their outbound sidecars, as apps with HTTP_PROXY do, so the calls reach web's
// sidecar over mesh mTLS with their own SPIFFE IDs; httpbin's /headers shows what web's app
// received (x-forwarded-client-cert). Policies are applied with `meshbox apply --wait` and
// checked with curl, allowed and denied: principals, namespaces, hosts, methods, paths
// (exact, prefix, suffix), ports, ip_blocks, remote_ip_blocks, request headers, DENY over
// ALLOW, AUDIT, an ALLOW without rules, and a policy removed.
#include <doctest/doctest.h>

#include <fstream>

#include "test/support/curl.h"
#include "test/support/deadline.h"
#include "test/support/mesh.h"
#include "test/support/meshbox.h"

namespace meshbox::test {
namespace {

constexpr auto kTimeout = 10s;

std::string workload(const std::string& name, const std::string& ns, const std::string& sa) {
  return "[[service]]\nname = \"" + name + "\"\nnamespace = \"" + ns + "\"\nport = 8000\n\n" +
         "[[workload]]\nname = \"" + name + "\"\nnamespace = \"" + ns + "\"\nservice = \"" + name +
         "\"\nservice_account = \"" + sa + "\"\nlabels = { app = \"" + name +
         "\" }\ncommand = [\"" + httpbin_bin() + "\", \"--listen\", \"127.0.0.1:${PORT}\", " +
         "\"--name\", \"" + name + "\"]\n\n";
}

}  // namespace

TEST_CASE("authz: policies on sidecars and a gateway; XFCC carries the caller's identity") {
  TempDir dir;
  uint16_t gw_port = free_port();
  std::string gw = "http://127.0.0.1:" + std::to_string(gw_port);
  std::ofstream(dir.file("mesh.toml"))
      << workload("web", "default", "web") << workload("sleep", "default", "sleep")
      << workload("other", "foo", "other") << "[[gateway]]\nname = \"edge\"\n"
      << "selector = { istio = \"ingressgateway\" }\nservers = [{ port = " << gw_port
      << ", bind = \"127.0.0.1\", protocol = \"http\", hosts = [\"*\"] }]\n\n"
      << "[[virtual_service]]\nname = \"web\"\nhosts = [\"*\"]\ngateways = [\"edge\"]\n"
      << "http = [{ route = [{ destination = { host = \"web\" } }] }]\n";
  Mesh mesh(dir, MeshOptions{.paths = {dir.file("mesh.toml")}});
  std::string sleep_out = mesh.listener_address("sidecar_sleep_outbound");
  std::string other_out = mesh.listener_address("sidecar_other_outbound");
  std::string web_in = mesh.listener_address("sidecar_web_inbound");
  REQUIRE(!sleep_out.empty());
  REQUIRE(!other_out.empty());
  REQUIRE(!web_in.empty());

  // Calls as the apps make them, and from outside through the gateway.
  auto from_sleep = [&](const std::string& path, std::vector<std::string> extra = {}) {
    extra.insert(extra.end(), {"-x", "http://" + sleep_out, "http://web:8000" + path});
    return curl_http(extra, Deadline(kTimeout));
  };
  auto from_other = [&](const std::string& path) {
    return curl_http({"-x", "http://" + other_out, "http://web.default:8000" + path},
                     Deadline(kTimeout));
  };
  auto via_gateway = [&](const std::string& path, std::vector<std::string> extra = {}) {
    bool has_host = false;
    for (const auto& a : extra)
      has_host |= a.rfind("Host:", 0) == 0;
    if (!has_host) extra.insert(extra.end(), {"-H", "Host: web.example.com"});
    extra.push_back(gw + path);
    return curl_http(extra, Deadline(kTimeout));
  };
  auto apply = [&](const std::string& name, const std::string& toml) {
    std::ofstream(dir.file(name)) << toml;
    RunResult r = mesh.cli({"apply", "-f", dir.file(name), "--wait"});
    REQUIRE_MESSAGE((r.status && r.status->ok()), r.out << r.err);
  };
  auto remove = [&](const std::string& name) {
    RunResult r = mesh.cli({"delete", "authorization_policy", name, "--wait"});
    REQUIRE_MESSAGE((r.status && r.status->ok()), r.out << r.err);
  };
  // The workloads register once their processes run.
  REQUIRE_MESSAGE(eventually([&] { return from_sleep("/").status == 200; }, kTimeout), mesh.log());
  REQUIRE(eventually([&] { return from_other("/").status == 200; }, kTimeout));
  REQUIRE(eventually([&] { return via_gateway("/").status == 200; }, kTimeout));

  // ---- x-forwarded-client-cert: set by web's sidecar from the mTLS peer, never the client's.
  CurlHttpResult r = from_sleep("/headers", {"-H", "X-Forwarded-Client-Cert: By=forged"});
  INFO("sleep → web /headers: " << r.body);
  REQUIRE(r.status == 200);
  CHECK(r.body.find("forged") == std::string::npos);
  std::string by = "By=spiffe://cluster.local/ns/default/sa/web;Hash=";
  size_t at = r.body.find(by);
  REQUIRE(at != std::string::npos);
  std::string rest = r.body.substr(at + by.size());
  std::string hash = rest.substr(0, rest.find(';'));
  CHECK(hash.size() == 64);
  CHECK(hash.find_first_not_of("0123456789abcdef") == std::string::npos);
  CHECK(rest.find(R"(;Subject=\"\";URI=spiffe://cluster.local/ns/default/sa/sleep")") ==
        hash.size());
  // Through the gateway: the gateway's identity; plain text straight to the sidecar: none.
  r = via_gateway("/headers", {"-H", "X-Forwarded-Client-Cert: By=forged"});
  CHECK(r.body.find("URI=spiffe://cluster.local/ns/default/sa/edge") != std::string::npos);
  CHECK(r.body.find("forged") == std::string::npos);
  r = curl_http({"-H", "X-Forwarded-Client-Cert: By=forged", "http://" + web_in + "/headers"},
                Deadline(kTimeout));
  CHECK(r.status == 200);
  CHECK(r.body.find("forged") == std::string::npos);
  CHECK(r.body.find("-client-cert") == std::string::npos);

  // ---- principals: only sleep may call web.
  apply("principals.toml",
        "[[authorization_policy]]\nname = \"web-callers\"\n"
        "selector = { match_labels = { app = \"web\" } }\n"
        "rules = [{ from = [{ source = { principals = [\"cluster.local/ns/default/sa/sleep\"] } "
        "}] }]\n");
  CHECK(from_sleep("/").status == 200);
  r = from_other("/");
  CHECK(r.status == 403);
  CHECK(r.body == "RBAC: access denied");
  CHECK(via_gateway("/").status == 403);
  CHECK(curl_http({"http://" + web_in + "/"}, Deadline(kTimeout)).status == 403);  // plain text
  // The 403 keeps the connection open (keep-alive), as Envoy's does.
  CurlResult two = run_curl({"-v", "-o", "/dev/null", "-o", "/dev/null", "-H",
                             "Host: web.example.com", gw + "/", gw + "/"},
                            Deadline(kTimeout));
  CHECK(two.err.find("< HTTP/1.1 403") != std::string::npos);
  CHECK(two.err.find("Re-using existing connection") != std::string::npos);

  // ---- namespaces: now only namespace foo; sleep (default) is denied.
  apply("namespaces.toml",
        "[[authorization_policy]]\nname = \"web-callers\"\n"
        "selector = { match_labels = { app = \"web\" } }\n"
        "rules = [{ from = [{ source = { namespaces = [\"foo\"] } }] }]\n");
  CHECK(from_other("/").status == 200);
  CHECK(from_sleep("/").status == 403);

  // ---- policy removed: allowed again.
  remove("web-callers");
  CHECK(from_sleep("/").status == 200);
  CHECK(via_gateway("/").status == 200);

  // ---- the gateway's policies: operations, sources, conditions, DENY over ALLOW.
  std::string sel = "selector = { match_labels = { istio = \"ingressgateway\" } }\n";
  apply("gateway.toml",
        "[[authorization_policy]]\nname = \"gw-allow\"\n" + sel + "rules = [\n" +
            "  { to = [{ operation = { hosts = [\"web.example.com\"], methods = [\"GET\"], "
            "paths = [\"/status/*\"] } }] },\n"
            "  { to = [{ operation = { paths = [\"*.png\"] } }] },\n"
            "  { to = [{ operation = { paths = [\"/headers\"] } }], when = [{ key = "
            "\"request.headers[x-user]\", values = [\"jason\"] }] },\n"
            "  { to = [{ operation = { paths = [\"/port-ok\"], ports = [\"" +
            std::to_string(gw_port) +
            "\"] } }] },\n"
            "  { to = [{ operation = { paths = [\"/port-bad\"], ports = [\"1\"] } }] },\n"
            "]\n\n"
            "[[authorization_policy]]\nname = \"gw-deny\"\naction = \"deny\"\n" +
            sel +
            "rules = [\n"
            "  { to = [{ operation = { paths = [\"/status/418\"] } }] },\n"
            "  { from = [{ source = { ip_blocks = [\"127.0.0.2\"] } }] },\n"
            "  { from = [{ source = { remote_ip_blocks = [\"203.0.113.0/24\"] } }] },\n"
            "]\n");
  struct Case {
    std::string what, path;
    std::vector<std::string> extra;
    int status;
  };
  std::vector<Case> cases = {
      {"host, method and path prefix", "/status/200", {}, 200},
      {"another host", "/status/200", {"-H", "Host: other.example.com"}, 403},
      {"another method", "/status/200", {"-X", "POST"}, 403},
      {"DENY beats ALLOW", "/status/418", {}, 403},
      {"path suffix", "/img/logo.png", {}, 404},  // allowed: httpbin has no such page
      {"no rule for the path", "/img/logo.jpg", {}, 403},
      {"dot segments are resolved first", "/img/../status/418", {"--path-as-is"}, 403},
      {"so are encoded characters", "/status/%34%318", {}, 403},
      {"exact path without the header", "/headers", {}, 403},
      {"exact path with the header", "/headers", {"-H", "x-user: jason"}, 200},
      {"exact path, another value", "/headers", {"-H", "x-user: bob"}, 403},
      {"exact path is not a prefix", "/headers/x", {"-H", "x-user: jason"}, 403},
      {"the query does not count", "/status/200?x=1", {}, 200},
      {"the listener's port", "/port-ok", {}, 404},
      {"another port", "/port-bad", {}, 403},
      {"ip_blocks (DENY)", "/status/200", {"--interface", "127.0.0.2"}, 403},
      {"remote_ip_blocks (DENY)", "/status/200", {"-H", "X-Forwarded-For: 203.0.113.5"}, 403},
      {"another remote IP", "/status/200", {"-H", "X-Forwarded-For: 198.51.100.1"}, 200},
  };
  for (const Case& c : cases) {
    CurlHttpResult got = via_gateway(c.path, c.extra);
    INFO(c.what << ": " << c.path << " → " << got.status << " " << got.body << got.run.err);
    CHECK(got.status == c.status);
  }
  remove("gw-allow");
  remove("gw-deny");
  CHECK(via_gateway("/img/logo.jpg").status == 404);

  // ---- AUDIT: allowed, and logged.
  apply("audit.toml",
        "[[authorization_policy]]\nname = \"web-audit\"\naction = \"audit\"\n"
        "selector = { match_labels = { app = \"web\" } }\n"
        "rules = [{ to = [{ operation = { paths = [\"/status/*\"] } }] }]\n");
  CHECK(from_sleep("/status/201").status == 201);
  CHECK(eventually(
      [&] {
        return mesh.log(1 << 20).find("matched AUDIT policy default/web-audit") !=
               std::string::npos;
      },
      kTimeout));

  // The admin API counts the decisions (every worker's): the denials above, this audit.
  r = curl_http({"http://" + mesh.admin() + "/stats/authz"}, Deadline(kTimeout));
  INFO("/stats/authz: " << r.body);
  CHECK(r.status == 200);
  CHECK(r.body.find("\"audited\":1}") != std::string::npos);
  CHECK(r.body.find("\"denied\":0") == std::string::npos);
  CHECK(r.body.find("\"allowed\":0") == std::string::npos);

  // ---- an ALLOW policy without rules denies everything it selects; removed, all is allowed.
  apply("deny-all.toml",
        "[[authorization_policy]]\nname = \"deny-all\"\n"
        "selector = { match_labels = { app = \"web\" } }\n");
  CHECK(from_sleep("/").status == 403);
  CHECK(from_other("/").status == 403);
  CHECK(via_gateway("/").status == 403);
  remove("deny-all");
  CHECK(from_sleep("/").status == 200);
  CHECK(via_gateway("/").status == 200);
}

}  // namespace meshbox::test
