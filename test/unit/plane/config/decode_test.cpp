// Decoding (plane/config/decode.h): every kind of decode error at its exact position, the
// shorthands, inline tables vs arrays of tables, directories, and the resources decoded.
#include "plane/config/decode.h"

#include <doctest/doctest.h>

#include <filesystem>

#include <fmt/format.h>

#include "test/unit/plane/config/test_util.h"

namespace meshbox::config::test {
namespace {

using namespace std::chrono_literals;

TEST_CASE("decode: the DESIGN.md sketch decodes field by field") {
  constexpr std::string_view kText = R"([mesh]
name = "bookinfo"
trust_domain = "cluster.local"
outbound_traffic_policy = "registry_only"

[[service]]
name = "reviews"
port = 9080

[[workload]]
service = "reviews"
labels = { app = "reviews", version = "v2" }
service_account = "bookinfo-reviews"
command = ["bookinfo-reviews", "--version", "v2"]
health = { http = "/health", interval = "5s" }

[[destination_rule]]
name = "reviews"
host = "reviews"
traffic_policy = { load_balancer = "least_request" }
subsets = [
  { name = "v1", labels = { version = "v1" } },
  { name = "v2", labels = { version = "v2" } },
]

[[virtual_service]]
name = "reviews"
hosts = ["reviews"]

  [[virtual_service.http]]
  match = [{ headers = { end-user = { exact = "jason" } } }]
  route = [{ destination = { host = "reviews", subset = "v2" } }]

  [[virtual_service.http]]
  route = [
    { destination = { host = "reviews", subset = "v1" }, weight = 90 },
    { destination = { host = "reviews", subset = "v2" }, weight = 10 },
  ]

[[gateway]]
name = "bookinfo-gateway"
servers = [{ port = 8080, protocol = "http", hosts = ["*"] }]

[[service_entry]]
name = "httpbin-ext"
hosts = ["httpbin.example.com"]
ports = [{ number = 80, protocol = "http" }]
resolution = "dns"
location = "mesh_external"
)";
  auto f = load_toml(kText);
  // Valid; the one finding is that no workload has version v1.
  CHECK(f.loaded.ok());
  CHECK_FINDING(f, kText, "subsets[0].labels", "{ version = \"v1\" }", Severity::Warning,
                "subset \"v1\" selects no workload");
  const Config& c = f.loaded.config;
  CHECK(c.mesh.defined);
  CHECK(c.mesh.name == "bookinfo");
  CHECK(c.mesh.outbound_traffic_policy == OutboundTrafficPolicy::RegistryOnly);
  REQUIRE(c.services.size() == 1);
  CHECK(c.services[0].ns == "default");
  REQUIRE(c.services[0].ports.size() == 1);
  CHECK(c.services[0].ports[0].number == 9080);
  CHECK(c.services[0].ports[0].protocol == Protocol::Http);
  CHECK(c.services[0].ports[0].name == "http");

  REQUIRE(c.workloads.size() == 1);
  const Workload& w = c.workloads[0];
  CHECK(w.name == "reviews-v2");
  CHECK(w.name_derived);
  CHECK(w.labels.at("version") == "v2");
  CHECK(w.command == std::vector<std::string>{"bookinfo-reviews", "--version", "v2"});
  REQUIRE(w.health);
  CHECK(w.health->http == "/health");
  CHECK(w.health->interval == 5s);

  REQUIRE(c.destination_rules.size() == 1);
  const DestinationRule& dr = c.destination_rules[0];
  REQUIRE(dr.traffic_policy);
  REQUIRE(dr.traffic_policy->load_balancer);
  CHECK(dr.traffic_policy->load_balancer->simple == LbPolicy::LeastRequest);
  REQUIRE(dr.subsets.size() == 2);
  CHECK(dr.subsets[1].labels.at("version") == "v2");

  REQUIRE(c.virtual_services.size() == 1);
  const VirtualService& vs = c.virtual_services[0];
  REQUIRE(vs.http.size() == 2);
  REQUIRE(vs.http[0].match.size() == 1);
  const StringMatch& m = vs.http[0].match[0].headers.at("end-user");
  CHECK(m.kind == StringMatch::Kind::Exact);
  CHECK(m.value == "jason");
  REQUIRE(vs.http[1].route.size() == 2);
  CHECK(vs.http[1].route[0].weight == 90);
  CHECK(vs.http[1].route[1].destination.subset == "v2");

  REQUIRE(c.gateways.size() == 1);
  REQUIRE(c.gateways[0].servers.size() == 1);
  CHECK(c.gateways[0].servers[0].port.number == 8080);
  CHECK(c.gateways[0].servers[0].hosts == std::vector<std::string>{"*"});

  REQUIRE(c.service_entries.size() == 1);
  CHECK(c.service_entries[0].resolution == Resolution::Dns);
  CHECK(c.service_entries[0].location == Location::MeshExternal);

  // Positions: the resource's table and each field's value.
  CHECK(vs.source.file == f.path);
  Pos vs_pos = locate(kText, "[[virtual_service]]");
  CHECK(vs.source.pos.line == vs_pos.line);
  Pos weight = vs.source.at("http[1].route[0].weight");
  Pos want = locate(kText, "90 }");
  CHECK(weight.line == want.line);
  CHECK(weight.column == want.column);
  // A path that was not recorded falls back to its nearest parent.
  Pos fallback = vs.source.at("http[1].route[0].nothing.here");
  Pos route0 = locate(kText, "{ destination = { host = \"reviews\", subset = \"v1\" }");
  CHECK(fallback.line == route0.line);
  CHECK(fallback.column == route0.column);
}

TEST_CASE("decode: inline tables and [[virtual_service.http]] arrays of tables are the same") {
  constexpr std::string_view kNested = R"(
[[virtual_service]]
name = "r"
hosts = ["r.example.com"]
gateways = ["g"]
[[virtual_service.http]]
name = "first"
[[virtual_service.http.match]]
uri = { prefix = "/api" }
[[virtual_service.http.route]]
destination = { host = "r.example.com", port = { number = 80 } }
)";
  constexpr std::string_view kInline = R"(
[[virtual_service]]
name = "r"
hosts = ["r.example.com"]
gateways = ["g"]
http = [{ name = "first", match = [{ uri = { prefix = "/api" } }], route = [{ destination = { host = "r.example.com", port = 80 } }] }]
)";
  for (auto text : {kNested, kInline}) {
    Decoded d = decode_string(text);
    INFO(text);
    CHECK(d.errors.empty());
    REQUIRE(d.config.virtual_services.size() == 1);
    const auto& vs = d.config.virtual_services[0];
    REQUIRE(vs.http.size() == 1);
    CHECK(vs.http[0].name == "first");
    REQUIRE(vs.http[0].match.size() == 1);
    REQUIRE(vs.http[0].match[0].uri);
    CHECK(vs.http[0].match[0].uri->kind == StringMatch::Kind::Prefix);
    CHECK(vs.http[0].match[0].uri->value == "/api");
    REQUIRE(vs.http[0].route.size() == 1);
    CHECK(vs.http[0].route[0].destination.port == 80);
  }
}

TEST_CASE("decode: unknown keys, with a suggestion when one is close") {
  constexpr std::string_view kText = R"([[service]]
name = "reviews"
port = 9080
lables = { app = "reviews" }

[[virtual_service]]
name = "reviews"
hosts = ["reviews"]
http = [{ route = [{ destination = { host = "reviews" } }], retries = { attempts = 3, perTryTimeout = "2s" } }]
frobnicate = 1

[[destination_rules]]
name = "x"
)";
  auto f = load_toml(kText);
  CHECK_FINDING(f, kText, "lables", "lables", Severity::Error,
                "unknown key \"lables\"; did you mean 'labels'?");
  // Istio's camelCase spelling → the snake_case name.
  CHECK_FINDING(f, kText, "http[0].retries.perTryTimeout", "perTryTimeout", Severity::Error,
                "did you mean 'per_try_timeout'?");
  // Nothing close: the known keys are listed.
  CHECK_FINDING(f, kText, "frobnicate", "frobnicate", Severity::Error,
                "unknown key \"frobnicate\" (expected one of: name, namespace, hosts,");
  // A misspelt resource kind.
  auto kinds = findings_at(f.loaded, "");
  REQUIRE(kinds.size() == 1);
  CHECK(kinds[0].line == 12);
  CHECK(kinds[0].column == 3);
  CHECK(kinds[0].message.find("unknown resource kind \"destination_rules\"; did you mean "
                              "'destination_rule'?") != std::string::npos);
  CHECK_FALSE(f.loaded.ok());
}

TEST_CASE("decode: wrong types name what was expected and what was found") {
  constexpr std::string_view kText = R"([[service]]
name = "reviews"
port = "9080"

[[virtual_service]]
name = "reviews"
hosts = "reviews"
http = [{ route = [{ destination = { host = "reviews" }, weight = 100.0 }], timeout = 5 }]

[[workload]]
service = "reviews"
command = ["run", 7]
labels = { version = 2 }
health = { tcp = "yes" }

[[virtual_service]]
name = "x"
hosts = ["x.example.com"]
gateways = ["g"]
http = { route = [] }
)";
  auto f = load_toml(kText);
  CHECK_FINDING(f, kText, "port", "\"9080\"", Severity::Error,
                "expected a port number from 1 to 65535, got a string \"9080\"");
  CHECK_FINDING(f, kText, "hosts", "\"reviews\"\nhttp", Severity::Error,
                "expected an array of strings (write [\"reviews\"]), got a string");
  CHECK_FINDING(f, kText, "http[0].route[0].weight", "100.0", Severity::Error,
                "expected a weight (percent) from 0 to 100, got a float");
  CHECK_FINDING(f, kText, "http[0].timeout", "5 }", Severity::Error,
                "expected a duration such as \"5s\"");
  CHECK_FINDING(f, kText, "command[1]", "7]", Severity::Error, "expected a string, got an integer");
  CHECK_FINDING(f, kText, "labels.version", "2 }", Severity::Error, "expected a string");
  CHECK_FINDING(f, kText, "health.tcp", "\"yes\"", Severity::Error, "expected true or false");
  CHECK_FINDING(f, kText, "http", "{ route = [] }", Severity::Error,
                "expected an array of HTTP routes ([[virtual_service.http]]), got a table");
}

TEST_CASE("decode: durations") {
  struct Case {
    std::string_view text;
    std::optional<Duration> want;
    std::string_view why;
  };
  const Case cases[] = {
      {"5s", 5s, ""},
      {"100ms", 100ms, ""},
      {"1m", 1min, ""},
      {"1h", 1h, ""},
      {"0.5s", 500ms, ""},
      {"1m30s", 90s, ""},
      {"1.5h", 90min, ""},
      {"0s", 0ms, ""},
      {".25s", 250ms, ""},
      {"", std::nullopt, "expected a number and a unit"},
      {"5", std::nullopt, "needs a unit"},
      {"-1s", std::nullopt, "cannot be negative"},
      {"5 s", std::nullopt, "unknown unit \" s\""},
      {"5sec", std::nullopt, "unknown unit \"sec\""},
      {"10us", std::nullopt, "millisecond precision"},
      {"1.5ms", std::nullopt, "finer than a millisecond"},
      {"s", std::nullopt, "expected a number and a unit"},
      {"99999999999999999999h", std::nullopt, "too large"},
      {"87601h", std::nullopt, "too large"},
      {"1.0000000000000000000001s", std::nullopt, "finer than a millisecond"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.text);
    std::string why;
    auto d = parse_duration(c.text, &why);
    CHECK(d == c.want);
    if (!c.want) CHECK_MESSAGE(why.find(c.why) != std::string::npos, why);
  }

  constexpr std::string_view kText = R"([[workload]]
service = "s"
port = 1
health = { tcp = true, interval = "5 seconds" }
)";
  auto f = load_toml(kText);
  CHECK_FINDING(f, kText, "health.interval", "\"5 seconds\"", Severity::Error,
                "bad duration \"5 seconds\": unknown unit");
}

TEST_CASE("decode: percentages are numbers from 0 to 100, or { value = N }") {
  constexpr std::string_view kText = R"([[service]]
name = "r"
port = 80

[[virtual_service]]
name = "r"
hosts = ["r"]
[[virtual_service.http]]
route = [{ destination = { host = "r" } }]
mirror = { host = "r" }
mirror_percentage = { value = 12.5 }
fault = { delay = { fixed_delay = "1s", percentage = 150 }, abort = { http_status = 503, percentage = { value = -1 } } }
[[virtual_service.http]]
route = [{ destination = { host = "r" } }]
mirror = { host = "r" }
mirror_percentage = nan
[[virtual_service.http]]
route = [{ destination = { host = "r" } }]
mirror = { host = "r" }
mirror_percentage = "50%"
)";
  auto f = load_toml(kText);
  CHECK_FINDING(f, kText, "http[0].fault.delay.percentage", "150", Severity::Error,
                "expected a percentage from 0 to 100, got 150");
  CHECK_FINDING(f, kText, "http[0].fault.abort.percentage.value", "-1", Severity::Error,
                "expected a percentage from 0 to 100, got -1");
  CHECK_FINDING(f, kText, "http[1].mirror_percentage", "nan", Severity::Error,
                "expected a percentage from 0 to 100, got nan");
  CHECK_FINDING(f, kText, "http[2].mirror_percentage", "\"50%\"", Severity::Error,
                "expected a percentage (a number from 0 to 100), got a string");
  REQUIRE(f.loaded.config.virtual_services.size() == 1);
  CHECK(f.loaded.config.virtual_services[0].http[0].mirror_percentage == 12.5);
}

TEST_CASE("decode: ports, counts and codes out of range") {
  constexpr std::string_view kText = R"([[service]]
name = "a"
ports = [{ number = 0 }, { number = 65536, name = "big" }, { number = 80, target_port = 99999 }]

[[gateway]]
name = "g"
servers = [{ port = -1, protocol = "http", hosts = ["*"] }]

[[virtual_service]]
name = "v"
hosts = ["a"]
http = [{ redirect = { redirect_code = 200 } }, { direct_response = { status = 600 } }]

[[destination_rule]]
name = "a"
host = "a"
traffic_policy = { outlier_detection = { max_ejection_percent = 101 }, connection_pool = { tcp = { max_connections = 0 } } }
)";
  auto f = load_toml(kText);
  CHECK_FINDING(f, kText, "ports[0].number", "0 }", Severity::Error,
                "expected a port number from 1 to 65535, got 0");
  CHECK_FINDING(f, kText, "ports[1].number", "65536", Severity::Error, "got 65536");
  CHECK_FINDING(f, kText, "ports[2].target_port", "99999", Severity::Error, "got 99999");
  CHECK_FINDING(f, kText, "servers[0].port", "-1", Severity::Error, "got -1");
  CHECK_FINDING(f, kText, "http[0].redirect.redirect_code", "200", Severity::Error,
                "expected a 3xx status code from 300 to 399, got 200");
  CHECK_FINDING(f, kText, "http[1].direct_response.status", "600", Severity::Error,
                "expected an HTTP status from 200 to 599, got 600");
  CHECK_FINDING(f, kText, "traffic_policy.outlier_detection.max_ejection_percent", "101",
                Severity::Error, "expected a percentage from 0 to 100, got 101");
  CHECK_FINDING(f, kText, "traffic_policy.connection_pool.tcp.max_connections", "0 } } }",
                Severity::Error, "from 1 to 4294967295, got 0");
}

TEST_CASE("decode: enum values, case-insensitive, with suggestions") {
  constexpr std::string_view kText = R"([[service_entry]]
name = "ext"
hosts = ["api.example.com"]
ports = [{ number = 443, protocol = "HTTPS" }]
location = "MESH_EXTERNAL"
resolution = "dnss"

[[peer_authentication]]
name = "p"
mtls = { mode = "STRICT" }

[[authorization_policy]]
name = "a"
action = "reject"

[mesh]
outbound_traffic_policy = { mode = "REGISTRY_ONLY" }
access_log_encoding = 1
)";
  auto f = load_toml(kText);
  CHECK_FINDING(f, kText, "resolution", "\"dnss\"", Severity::Error,
                "expected one of \"none\", \"static\", \"dns\" or \"dns_round_robin\", got "
                "\"dnss\"; did you mean 'dns'?");
  CHECK_FINDING(f, kText, "action", "\"reject\"", Severity::Error,
                "expected one of \"allow\", \"deny\" or \"audit\", got \"reject\"");
  CHECK_FINDING(f, kText, "access_log_encoding", "1\n", Severity::Error,
                "expected one of \"text\" or \"json\", got an integer");
  const Config& c = f.loaded.config;
  REQUIRE(c.service_entries.size() == 1);
  CHECK(c.service_entries[0].ports[0].protocol == Protocol::Https);
  CHECK(c.service_entries[0].location == Location::MeshExternal);
  REQUIRE(c.peer_authentications.size() == 1);
  CHECK(c.peer_authentications[0].mtls == MtlsMode::Strict);
  CHECK(c.mesh.outbound_traffic_policy == OutboundTrafficPolicy::RegistryOnly);
}

TEST_CASE("decode: required fields are reported at the table that lacks them") {
  constexpr std::string_view kText = R"([[virtual_service]]
hosts = ["a"]
http = [{ route = [{ weight = 100 }] }]

[[destination_rule]]
name = "a"
subsets = [{ labels = { version = "v1" } }]

[[workload]]
labels = { app = "x" }
port = 8000

[[service]]
name = "s"
)";
  auto f = load_toml(kText);
  CHECK_FINDING(f, kText, "name", "[[virtual_service]]", Severity::Error,
                "required field is missing");
  CHECK_FINDING(f, kText, "http[0].route[0].destination", "{ weight", Severity::Error,
                "required field is missing");
  CHECK_FINDING(f, kText, "host", "[[destination_rule]]", Severity::Error,
                "required field is missing");
  CHECK_FINDING(f, kText, "subsets[0].name", "{ labels", Severity::Error,
                "required field is missing");
  CHECK_FINDING(f, kText, "service", "[[workload]]", Severity::Error, "required field is missing");
  CHECK_FINDING(f, kText, "port", "[[service]]", Severity::Error, "required field is missing");
}

TEST_CASE("decode: names and namespaces follow Kubernetes' rules") {
  constexpr std::string_view kText = R"([[service]]
name = "Reviews"
port = 80

[[gateway]]
name = "bookinfo-gateway.example"
namespace = "-bad"
servers = [{ port = 80, protocol = "http", hosts = ["*"] }]

[[destination_rule]]
name = "r"
host = "reviews"
subsets = [{ name = "v1_0" }]
)";
  auto f = load_toml(kText);
  CHECK_FINDING(f, kText, "name", "\"Reviews\"", Severity::Error,
                "expected a name of lower-case letters, digits and '-'");
  CHECK_FINDING(f, kText, "namespace", "\"-bad\"", Severity::Error, "got \"-bad\"");
  CHECK_FINDING(f, kText, "subsets[0].name", "\"v1_0\"", Severity::Error, "got \"v1_0\"");
  // Dots are fine in other resources' names, but not in a service's: it is a host name label.
  CHECK(f.loaded.config.gateways.at(0).name == "bookinfo-gateway.example");
  constexpr std::string_view kDotted = "[[service]]\nname = \"ratings.v1\"\nport = 80\n";
  auto g = load_toml(kDotted);
  CHECK_FINDING(g, kDotted, "name", "\"ratings.v1\"", Severity::Error, "got \"ratings.v1\"");
}

TEST_CASE("decode: string matches take exactly one of exact, prefix, regex") {
  constexpr std::string_view kText = R"([[virtual_service]]
name = "v"
hosts = ["v.example.com"]
gateways = ["g"]
[[virtual_service.http]]
match = [
  { uri = { exact = "/a", prefix = "/b" } },
  { uri = {} },
  { headers = { x-present = {}, x-also = { present = true }, x-never = { present = false } } },
  { method = "GET" },
]
direct_response = { status = 200, body = { string = "hi" } }
)";
  auto f = load_toml(kText);
  CHECK_FINDING(f, kText, "http[0].match[0].uri", "{ exact = \"/a\"", Severity::Error,
                "set only one of exact, prefix, regex");
  CHECK_FINDING(f, kText, "http[0].match[1].uri", "{} }", Severity::Error,
                "expected one of exact, prefix or regex");
  CHECK_FINDING(f, kText, "http[0].match[2].headers.x-never.present", "false", Severity::Error,
                "list it under without_headers");
  CHECK_FINDING(f, kText, "http[0].match[3].method", "\"GET\"", Severity::Error,
                "expected a string match such as { exact = \"…\" }");
  const auto& http = f.loaded.config.virtual_services.at(0).http.at(0);
  // Every match table is kept; the values that failed are left out of it.
  REQUIRE(http.match.size() == 4);
  CHECK_FALSE(http.match[0].uri);
  CHECK(http.match[2].headers.size() == 2);
  CHECK(http.match[2].headers.at("x-present").kind == StringMatch::Kind::Present);
  CHECK(http.match[2].headers.at("x-also").kind == StringMatch::Kind::Present);
  CHECK(http.direct_response->body == "hi");
}

TEST_CASE("decode: shorthands and Istio's long forms mean the same") {
  constexpr std::string_view kText = R"([[service]]
name = "a"
ports = [{ number = 9080, name = "http-main" }, { number = 9443, protocol = "tls" }]

[[gateway]]
name = "g"
servers = [
  { port = 8080, protocol = "http", hosts = ["*"] },
  { port = { number = 8443, name = "tls-in", protocol = "TLS" }, hosts = ["*"], tls = { mode = "passthrough" } },
]

[[destination_rule]]
name = "a"
host = "a"
traffic_policy.load_balancer.consistent_hash.http_cookie = { name = "user", ttl = "0s" }
traffic_policy.port_level_settings = [{ port = { number = 9080 }, load_balancer = "random" }]
)";
  auto f = load_toml(kText);
  INFO(dump(f.loaded));
  CHECK(f.loaded.ok());
  const Config& c = f.loaded.config;
  const auto& ports = c.services.at(0).ports;
  REQUIRE(ports.size() == 2);
  CHECK(ports[0].name == "http-main");
  CHECK(ports[1].name == "tls");
  CHECK(ports[1].protocol == Protocol::Tls);
  const auto& servers = c.gateways.at(0).servers;
  REQUIRE(servers.size() == 2);
  CHECK(servers[0].port.protocol == Protocol::Http);
  CHECK(servers[0].port.name == "http");
  CHECK(servers[1].port.number == 8443);
  CHECK(servers[1].port.name == "tls-in");
  CHECK(servers[1].port.protocol == Protocol::Tls);
  const auto& tp = *c.destination_rules.at(0).traffic_policy;
  REQUIRE(tp.load_balancer->consistent_hash);
  CHECK(tp.load_balancer->consistent_hash->kind == ConsistentHash::Kind::HttpCookie);
  CHECK(tp.load_balancer->consistent_hash->http_cookie.ttl == 0ms);
  REQUIRE(tp.port_level_settings.size() == 1);
  CHECK(tp.port_level_settings[0].port == 9080);
  CHECK(tp.port_level_settings[0].load_balancer->simple == LbPolicy::Random);
}

TEST_CASE("decode: a service takes port or ports, and protocol only with port") {
  constexpr std::string_view kText = R"([[service]]
name = "a"
port = 80
ports = [{ number = 81 }]

[[service]]
name = "b"
protocol = "tcp"
ports = [{ number = 81 }]
)";
  auto f = load_toml(kText);
  CHECK_FINDING(f, kText, "port", "80", Severity::Error, "set either port (one port) or ports");
  CHECK_FINDING(f, kText, "protocol", "\"tcp\"", Severity::Error, "protocol goes with port");
}

TEST_CASE("decode: consistent_hash takes exactly one key") {
  constexpr std::string_view kText = R"([[service]]
name = "a"
port = 80

[[destination_rule]]
name = "a"
host = "a"
traffic_policy = { load_balancer = { consistent_hash = { use_source_ip = true, http_header_name = "x-user" } } }
)";
  auto f = load_toml(kText);
  CHECK_FINDING(f, kText, "traffic_policy.load_balancer.consistent_hash", "{ use_source_ip",
                Severity::Error, "expected exactly one of http_header_name");
}

TEST_CASE("decode: a TOML syntax error is reported at its line and column") {
  struct Case {
    std::string_view text;
    uint32_t line, column;
    std::string_view message;
  };
  const Case cases[] = {
      {"[[service]]\nname = \"a\"\nport = 80x\n", 3, 10, "expected digit, saw 'x'"},
      {"[mesh]\nname = \"x\"\nname = \"y\"\n", 3, 8, "cannot redefine existing string"},
      {"[[service]]\nname = \"a\\d\"\n", 2, 11, "unknown escape sequence '\\d'"},
      {"[[service]\n", 1, 11, "expected"},
      // Columns count characters, not bytes.
      {"[mesh]\nname = \"\u00e9\u00e9\" x\n", 2, 13, "saw 'x'"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.text);
    auto f = load_toml(c.text);
    INFO(dump(f.loaded));
    REQUIRE(f.loaded.findings.size() == 1);
    const ConfigError& e = f.loaded.findings[0];
    CHECK(e.file == f.path);
    CHECK(e.line == c.line);
    CHECK(e.column == c.column);
    CHECK(e.kind.empty());
    CHECK(e.message.starts_with("TOML syntax error: "));
    CHECK(e.message.find(c.message) != std::string::npos);
    CHECK(format(e).starts_with(
        fmt::format("{}:{}:{}: error: TOML syntax error: ", f.path, c.line, c.column)));
  }
}

TEST_CASE("decode: many errors in one file are all reported, in order") {
  constexpr std::string_view kText = R"([[service]]
name = "a"
port = 0

[[service]]
name = "b"
port = 80
colour = "blue"

[[workload]]
service = "b"
port = "eighty"
health = { http = "/h", interval = "soon" }
)";
  auto f = load_toml(kText);
  INFO(dump(f.loaded));
  REQUIRE(f.loaded.findings.size() == 4);
  std::vector<uint32_t> lines;
  for (const auto& e : f.loaded.findings)
    lines.push_back(e.line);
  CHECK(lines == std::vector<uint32_t>{3, 8, 12, 13});
}

TEST_CASE("decode: [mesh] twice, and a mesh that is not a table") {
  TempDir dir;
  write_file(dir, "a.toml", "[mesh]\nname = \"one\"\n");
  write_file(dir, "b.toml", "\n[mesh]\nname = \"two\"\n");
  Loaded l = load({dir.path()});
  INFO(dump(l));
  REQUIRE(l.findings.size() == 1);
  CHECK(l.findings[0].file == dir.file("b.toml"));
  CHECK(l.findings[0].line == 2);
  CHECK(l.findings[0].kind == "mesh");
  CHECK(l.findings[0].message.find("defined twice; the first [mesh] is at " + dir.file("a.toml") +
                                   ":1:1") != std::string::npos);
  CHECK(l.config.mesh.name == "one");

  auto f = load_toml("[[mesh]]\nname = \"x\"\n");
  REQUIRE(f.loaded.findings.size() == 1);
  CHECK(f.loaded.findings[0].message.find("expected a table: write [mesh]") != std::string::npos);
}

TEST_CASE("decode: a resource kind that is not an array of tables") {
  constexpr std::string_view kText = "service = { name = \"a\", port = 80 }\nworkload = [1]\n";
  auto f = load_toml(kText);
  INFO(dump(f.loaded));
  REQUIRE(f.loaded.findings.size() == 2);
  CHECK(f.loaded.findings[0].message.find("write [[service]] for each one") != std::string::npos);
  CHECK(f.loaded.findings[0].line == 1);
  CHECK(f.loaded.findings[0].column == 11);
  CHECK(f.loaded.findings[1].message == "expected a table, got an integer");
  CHECK(f.loaded.findings[1].column == 13);
}

TEST_CASE("decode: a directory is its .toml files in name order, not recursive") {
  TempDir dir;
  write_file(dir, "20-routes.toml", R"([[virtual_service]]
name = "a"
hosts = ["a"]
http = [{ route = [{ destination = { host = "a" } }] }]
)");
  write_file(dir, "10-services.toml", "[[service]]\nname = \"a\"\nport = 80\n");
  write_file(dir, "README.md", "not toml at all [[[");
  write_file(dir, ".hidden.toml", "[[[ not read");
  write_file(dir, "notes.toml.bak", "[[[ not read either");
  std::filesystem::create_directory(dir.file("sub"));
  write_file(dir, "sub/x.toml", "[[[ subdirectories are not read");
  Loaded l = load({dir.path()});
  INFO(dump(l));
  CHECK(l.findings.empty());
  REQUIRE(l.config.files.size() == 2);
  CHECK(l.config.files[0] == dir.file("10-services.toml"));
  CHECK(l.config.files[1] == dir.file("20-routes.toml"));
  REQUIRE(l.config.virtual_services.size() == 1);
  CHECK(l.config.virtual_services[0].source.file == dir.file("20-routes.toml"));
}

TEST_CASE("decode: paths that are not configs") {
  TempDir dir;
  Loaded missing = load({dir.file("nope.toml")});
  REQUIRE(missing.findings.size() == 1);
  CHECK(missing.findings[0].line == 0);
  CHECK(format(missing.findings[0]) ==
        dir.file("nope.toml") + ": error: no such file or directory");

  Loaded empty = load({dir.path()});
  REQUIRE(empty.findings.size() == 1);
  CHECK(empty.findings[0].message == "no .toml files in this directory");
  CHECK_FALSE(empty.ok());

  // An empty file is a valid, empty config.
  std::string path = write_file(dir, "empty.toml", "");
  Loaded e = load({path});
  CHECK(e.findings.empty());
  CHECK(e.ok());
}

TEST_CASE("decode: namespaces, defaults and derived names") {
  constexpr std::string_view kText = R"([[service]]
name = "reviews"
namespace = "shop"
port = 9080

[[workload]]
namespace = "shop"
service = "reviews"
port = 9081

[[workload]]
name = "explicit"
namespace = "shop"
service = "reviews"
labels = { app = "custom", version = "v9" }
port = 9082
)";
  auto f = load_toml(kText);
  INFO(dump(f.loaded));
  CHECK(f.loaded.ok());
  const auto& ws = f.loaded.config.workloads;
  REQUIRE(ws.size() == 2);
  CHECK(ws[0].name == "reviews");
  CHECK(ws[0].display_name() == "shop/reviews");
  CHECK(ws[0].labels.at("app") == "reviews");  // added
  CHECK(ws[0].service_account == "default");
  CHECK(ws[0].address == "127.0.0.1");
  CHECK(ws[1].name == "explicit");
  CHECK_FALSE(ws[1].name_derived);
  CHECK(ws[1].labels.at("app") == "custom");  // kept
}

TEST_CASE("decode: security resources") {
  constexpr std::string_view kText = R"([[peer_authentication]]
name = "reviews-strict"
selector = { match_labels = { app = "reviews" } }
mtls = { mode = "strict" }
port_level_mtls = { 8080 = { mode = "disable" }, http = { mode = "strict" } }

[[authorization_policy]]
name = "viewer"
selector = { match_labels = { app = "productpage" } }
action = "ALLOW"
[[authorization_policy.rules]]
from = [{ source = { principals = ["cluster.local/ns/default/sa/bookinfo-gateway"] } }]
to = [{ operation = { methods = ["GET"], ports = [9080, "9443"] } }]
when = [{ key = "request.headers[x-user]", values = ["jason"] }]

[[request_authentication]]
name = "jwt"
jwt_rules = [{ issuer = "https://issuer.example", jwks_uri = "https://issuer.example/jwks", from_headers = [{ name = "x-jwt", prefix = "Bearer " }], timeout = "5s" }]
)";
  auto f = load_toml(kText);
  CHECK_FINDING(f, kText, "port_level_mtls.http", "{ mode = \"strict\" } }", Severity::Error,
                "expected a port number from 1 to 65535 as the key, got \"http\"");
  const Config& c = f.loaded.config;
  REQUIRE(c.peer_authentications.size() == 1);
  CHECK(c.peer_authentications[0].port_level_mtls.at(8080) == MtlsMode::Disable);
  REQUIRE(c.authorization_policies.size() == 1);
  const auto& rule = c.authorization_policies[0].rules.at(0);
  CHECK(rule.from.at(0).principals.at(0) == "cluster.local/ns/default/sa/bookinfo-gateway");
  CHECK(rule.to.at(0).ports == std::vector<std::string>{"9080", "9443"});
  CHECK(rule.when.at(0).key == "request.headers[x-user]");
  REQUIRE(c.request_authentications.size() == 1);
  const auto& jwt = c.request_authentications[0].jwt_rules.at(0);
  CHECK(jwt.from_headers.at(0).prefix == "Bearer ");
  CHECK(jwt.timeout == 5s);
}

TEST_CASE("decode: strings with NUL characters are refused") {
  constexpr std::string_view kText = "[[service]]\nname = \"a\\u0000b\"\nport = 80\n";
  auto f = load_toml(kText);
  CHECK_FINDING(f, kText, "name", "\"a", Severity::Error, "must not contain NUL characters");
}

}  // namespace
}  // namespace meshbox::config::test
