// The admin API's /clusters, /certs and /logging on one real `meshbox run`: a gateway in front
// of two httpbin processes (a service with replicas = 2, each behind its sidecar) with outlier
// detection. /clusters shows both endpoints with their limits, a request in flight as active
// (a slow /delay) and then its connection idle in the gateway's pool, and one endpoint ejected
// after 5xx answers while the other stays healthy; /certs shows the workloads' and the
// gateway's identities issued by the mesh CA, with a 24 h expiry and no key material;
// /logging changes the level at run time (token required) and a debug line appears after.
#include <doctest/doctest.h>

#include <fstream>
#include <map>
#include <set>

#include "test/support/curl.h"
#include "test/support/deadline.h"
#include "test/support/files.h"
#include "test/support/http_response.h"
#include "test/support/json.h"
#include "test/support/mesh.h"
#include "test/support/meshbox.h"

namespace meshbox::test {
namespace {

constexpr auto kTimeout = 10s;
constexpr const char* kWebCluster = "outbound|8000||web.default.svc.cluster.local";

HttpResponse get(const std::string& addr, const std::string& path) {
  return exchange(addr, "GET " + path + " HTTP/1.1\r\nHost: web\r\nConnection: close\r\n\r\n",
                  Deadline(kTimeout));
}

// `METHOD /logging…` with the admin token (empty: none) and a body.
HttpResponse admin_call(const std::string& admin, const std::string& method,
                        const std::string& target, const std::string& token,
                        const std::string& body = "") {
  std::string req = method + " " + target + " HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n";
  if (!token.empty()) req += "Authorization: Bearer " + token + "\r\n";
  req += "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
  return exchange(admin, req, Deadline(kTimeout));
}

std::optional<Json> get_json(const std::string& admin, const std::string& path) {
  HttpResponse r = get(admin, path);
  if (r.status != 200) return std::nullopt;
  return parse_json(r.body);
}

// The web cluster of GET /clusters (a copy), or nullopt.
std::optional<Json> web_cluster(const std::string& admin) {
  auto all = get_json(admin, "/clusters");
  if (!all) return std::nullopt;
  for (const Json& c : all->array)
    if (c.get("name") && c.get("name")->string == kWebCluster) return c;
  return std::nullopt;
}

double num(const Json& j, const std::string& key) {
  const Json* v = j.get(key);
  return v ? v->number : -1;
}

std::string str(const Json& j, const std::string& key) {
  const Json* v = j.get(key);
  return v ? v->string : "";
}

// Sum of a field over the cluster's host_statuses.
double host_sum(const Json& cluster, const std::string& key) {
  double total = 0;
  if (const Json* hosts = cluster.get("host_statuses"))
    for (const Json& h : hosts->array)
      total += num(h, key);
  return total;
}

}  // namespace

TEST_CASE("admin: /clusters endpoints, load and ejections; /certs; /logging at run time") {
  TempDir dir;
  uint16_t gw_port = free_port();
  std::string gw = "127.0.0.1:" + std::to_string(gw_port);
  std::ofstream(dir.file("mesh.toml"))
      << "[[service]]\nname = \"web\"\nport = 8000\n\n"
      << "[[workload]]\nname = \"web\"\nservice = \"web\"\nreplicas = 2\nport = 0\n"
      << "command = [\"" << httpbin_bin()
      << "\", \"--listen\", \"127.0.0.1:${PORT}\", \"--name\", \"web\"]\n"
      << "health = { http = \"/\", interval = \"100ms\" }\n\n"
      // Three 5xx in a row eject for 30 s; at most half the endpoints (one of the two).
      << "[[destination_rule]]\nname = \"web\"\nhost = \"web\"\n"
      << "traffic_policy = { connection_pool = { tcp = { max_connections = 64 } }, "
         "outlier_detection = { consecutive_5xx_errors = 3, base_ejection_time = \"30s\", "
         "max_ejection_percent = 50 } }\n\n"
      << "[[gateway]]\nname = \"edge\"\nservers = [{ port = " << gw_port
      << ", bind = \"127.0.0.1\", protocol = \"http\", hosts = [\"*\"] }]\n\n"
      << "[[virtual_service]]\nname = \"web\"\nhosts = [\"*\"]\ngateways = [\"edge\"]\n"
      << "http = [{ route = [{ destination = { host = \"web\" } }] }]\n";
  Mesh mesh(dir, MeshOptions{.paths = {dir.file("mesh.toml")}, .log_level = "info"});
  const std::string& admin = mesh.admin();
  std::string token = read_file(mesh.state_dir() + "/admin.token").value_or("");
  while (!token.empty() && (token.back() == '\n' || token.back() == '\r'))
    token.pop_back();
  REQUIRE(!token.empty());

  // Both replicas pass their health checks: two endpoints in the gateway's cluster.
  REQUIRE(eventually(
      [&] {
        auto c = web_cluster(admin);
        return c && c->get("host_statuses") && c->get("host_statuses")->array.size() == 2 &&
               get(gw, "/").status == 200;
      },
      kTimeout));
  {
    INFO("/clusters: endpoints, limits, health");
    auto c = web_cluster(admin);
    REQUIRE(c);
    INFO("cluster: " << get(admin, "/clusters").body);
    REQUIRE(c->get("endpoints"));
    CHECK(c->get("endpoints")->array.size() == 2);  // the old field: addresses
    REQUIRE(c->get("limits"));
    CHECK(num(*c->get("limits"), "max_connections") == 64);
    CHECK(num(*c->get("limits"), "max_pending_requests") == 4294967295.0);  // unlimited
    REQUIRE(c->get("outlier_detection"));
    CHECK(num(*c->get("outlier_detection"), "consecutive_5xx") == 3);
    for (const Json& h : c->get("host_statuses")->array) {
      CHECK(str(h, "health") == "healthy");
      CHECK(str(h, "address").rfind("127.0.0.1:", 0) == 0);
      CHECK(num(h, "weight") == 1);
      REQUIRE(h.get("outlier"));
      CHECK(h.get("outlier")->get("ejected")->boolean == false);
    }
  }

  // A slow request in flight: active on one endpoint, then its connection idle in the pool.
  SpawnOptions slow_curl;
  slow_curl.argv = {
      "curl", "-s", "-o", "/dev/null", "--noproxy", "*", "http://" + gw + "/delay/1500"};
  Process slow(slow_curl);
  {
    INFO("/clusters: a request in flight is active");
    std::string last;
    CHECK_MESSAGE(eventually(
                      [&] {
                        auto c = web_cluster(admin);
                        last = get(admin, "/clusters").body;
                        return c && num(*c, "active_requests") == 1 &&
                               host_sum(*c, "active_requests") == 1 &&
                               num(*c, "active_connections") >= 1;
                      },
                      kTimeout, 50ms),
                  last);
  }

  {
    INFO("/certs: the workloads' and the gateway's identities, 24 h, no key");
    HttpResponse r = get(admin, "/certs");
    REQUIRE(r.status == 200);
    INFO("/certs: " << r.body);
    CHECK(r.body.find("PRIVATE") == std::string::npos);
    CHECK(r.body.find("BEGIN") == std::string::npos);
    CHECK(r.body.find("KEY-----") == std::string::npos);
    auto certs = parse_json(r.body);
    REQUIRE(certs);
    REQUIRE(certs->get("ca"));
    const Json* root = certs->get("ca")->get("root");
    REQUIRE(root);
    CHECK(num(*root, "days_until_expiration") > 3000);  // meshbox's root: 10 years
    CHECK(!str(*root, "serial_number").empty());
    REQUIRE(certs->get("certificates"));
    std::map<std::string, const Json*> by_id;
    for (const Json& c : certs->get("certificates")->array)
      by_id[str(c, "identity")] = &c;
    const Json* web = by_id["spiffe://cluster.local/ns/default/sa/default"];
    const Json* edge = by_id["spiffe://cluster.local/ns/default/sa/edge"];
    REQUIRE(web);
    REQUIRE(edge);
    for (const Json* c : {web, edge}) {
      double left = num(*c, "seconds_until_expiration");
      CHECK(left > 23 * 3600);
      CHECK(left <= 24 * 3600 + 60);
      CHECK(num(*c, "days_until_expiration") == 0);
      REQUIRE(c->get("subject_alt_names"));
      REQUIRE(c->get("subject_alt_names")->array.size() == 1);
      CHECK(c->get("subject_alt_names")->array[0].string == str(*c, "identity"));
      CHECK(str(*c, "valid_from") < str(*c, "expiration_time"));
      CHECK(str(*c, "serial_number") != str(*root, "serial_number"));
    }
    std::set<std::string> web_users, edge_users;
    for (const Json& u : web->get("used_by")->array)
      web_users.insert(u.string);
    for (const Json& u : edge->get("used_by")->array)
      edge_users.insert(u.string);
    CHECK(web_users.count("sidecar_web-0_inbound") == 1);
    CHECK(web_users.count("sidecar_web-1_inbound") == 1);
    CHECK(web_users.count("sidecar_web-0_outbound") == 1);
    CHECK(edge_users.count("127.0.0.1_" + std::to_string(gw_port)) == 1);
  }

  {
    INFO("/logging: read, refused without the token, bad level, set; debug lines follow");
    auto level = get_json(admin, "/logging");
    REQUIRE(level);
    CHECK(str(*level, "level") == "info");
    // A bad request to the admin API is logged at debug only.
    auto garbage = [&] { return exchange(admin, "BOGUS\r\n\r\n", Deadline(kTimeout)).status; };
    const std::string kDebugLine = "debug [admin] bad request from";
    CHECK(garbage() == 400);
    CHECK(mesh.log(1 << 20).find(kDebugLine) == std::string::npos);

    CHECK(admin_call(admin, "POST", "/logging?level=debug", "").status == 401);
    HttpResponse bad = admin_call(admin, "POST", "/logging?level=loud", token);
    CHECK(bad.status == 400);
    CHECK(bad.body.find("loud") != std::string::npos);
    CHECK(bad.body.find("trace, debug, info, warn, error, off") != std::string::npos);
    CHECK(str(*get_json(admin, "/logging"), "level") == "info");

    HttpResponse set = admin_call(admin, "POST", "/logging?level=debug", token);
    CHECK(set.status == 200);
    CHECK(set.body.find("\"level\":\"debug\"") != std::string::npos);
    CHECK(str(*get_json(admin, "/logging"), "level") == "debug");
    CHECK(garbage() == 400);
    CHECK(eventually([&] { return mesh.log(1 << 20).find(kDebugLine) != std::string::npos; },
                     kTimeout));
    // PUT with a JSON body works too.
    HttpResponse put = admin_call(admin, "PUT", "/logging", token, R"({"level": "warn"})");
    CHECK(put.status == 200);
    CHECK(str(*get_json(admin, "/logging"), "level") == "warn");
  }

  {
    INFO("/clusters: the request done, its connection idles in the gateway's pool");
    REQUIRE(slow.wait(Deadline(kTimeout)));
    std::string last;
    CHECK_MESSAGE(eventually(
                      [&] {
                        auto c = web_cluster(admin);
                        last = get(admin, "/clusters").body;
                        return c && num(*c, "active_requests") == 0 &&
                               host_sum(*c, "active_requests") == 0 &&
                               host_sum(*c, "idle_connections") >= 1;
                      },
                      kTimeout, 50ms),
                  last);
  }

  {
    INFO("/clusters: 5xx answers eject one endpoint; the other stays healthy");
    // /status/500 is not retried (503 would be); three in a row on one endpoint eject it.
    std::string last;
    bool ejected = eventually(
        [&] {
          get(gw, "/status/500");
          auto c = web_cluster(admin);
          last = get(admin, "/clusters").body;
          return c && num(*c, "ejections_total") == 1;
        },
        kTimeout, 1ms);
    INFO("clusters: " << last);
    REQUIRE(ejected);
    // Only one may go (max_ejection_percent 50): every request now reaches the other.
    for (int i = 0; i < 4; ++i)
      CHECK(get(gw, "/status/500").status == 500);
    CHECK(get(gw, "/").status == 200);
    auto c = web_cluster(admin);
    REQUIRE(c);
    last = get(admin, "/clusters").body;
    int ejected_hosts = 0, healthy_hosts = 0;
    for (const Json& h : c->get("host_statuses")->array) {
      const Json& o = *h.get("outlier");
      if (str(h, "health") == "ejected") {
        ++ejected_hosts;
        CHECK(o.get("ejected")->boolean);
        CHECK(num(o, "ejections") == 1);
        CHECK(num(o, "ejection_left_ms") > 20'000);
        CHECK(num(o, "ejection_left_ms") <= 30'000);
        CHECK(!str(o, "last_ejection").empty());
      } else {
        ++healthy_hosts;
        CHECK(str(h, "health") == "healthy");
        CHECK(o.get("ejected")->boolean == false);
        CHECK(num(o, "consecutive_5xx") == 0);  // the 200 above reset its count
      }
    }
    CHECK(ejected_hosts == 1);
    CHECK(healthy_hosts == 1);
    HttpResponse text = get(admin, "/clusters?format=text");
    CHECK(text.status == 200);
    INFO("text: " << text.body);
    CHECK(text.body.find(std::string(kWebCluster) + "::max_connections::64\n") !=
          std::string::npos);
    CHECK(text.body.find("::health_flags::/failed_outlier_check\n") != std::string::npos);
    CHECK(text.body.find("::health_flags::healthy\n") != std::string::npos);
  }
}

}  // namespace meshbox::test
