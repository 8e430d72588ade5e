// Validation (plane/config/validate.h): every check, error or warning, at its exact position.
#include "plane/config/validate.h"

#include <doctest/doctest.h>

#include <algorithm>

#include <fmt/format.h>

#include "test/unit/plane/config/test_util.h"

namespace meshbox::config::test {
namespace {

// Services most tests route to.
constexpr std::string_view kServices = R"([[service]]
name = "reviews"
port = 9080

[[workload]]
service = "reviews"
labels = { version = "v1" }
port = 19081

[[workload]]
service = "reviews"
labels = { version = "v2" }
port = 19082

[[destination_rule]]
name = "reviews"
host = "reviews"
subsets = [
  { name = "v1", labels = { version = "v1" } },
  { name = "v2", labels = { version = "v2" } },
]
)";

std::string with_services(std::string_view text) {
  return std::string(kServices) + "\n" + std::string(text);
}

TEST_CASE("validate: the services fixture is clean") {
  auto f = load_toml(kServices);
  INFO(dump(f.loaded));
  CHECK(f.loaded.findings.empty());
}

TEST_CASE("validate: weights must sum to 100") {
  const std::string text = with_services(R"([[virtual_service]]
name = "reviews"
hosts = ["reviews"]
[[virtual_service.http]]
match = [{ headers = { end-user = { exact = "jason" } } }]
route = [{ destination = { host = "reviews", subset = "v2" } }]
[[virtual_service.http]]
route = [
  { destination = { host = "reviews", subset = "v1" }, weight = 80 },
  { destination = { host = "reviews", subset = "v2" }, weight = 10 },
]
[[virtual_service.http]]
route = [
  { destination = { host = "reviews", subset = "v1" }, weight = 90 },
  { destination = { host = "reviews", subset = "v2" } },
]
)");
  auto f = load_toml(text);
  CHECK_FINDING(f, text, "http[1].route[0].weight", "80 }", Severity::Error,
                "weights must sum to 100, got 90");
  // The line is exactly as DESIGN.md's error convention shows it.
  auto e = findings_at(f.loaded, "http[1].route[0].weight").at(0);
  Pos p = locate(text, "80 }");
  CHECK(format(e) == fmt::format("{}:{}:{}: error: virtual_service \"reviews\": "
                                 "http[1].route[0].weight: weights must sum to 100, got 90",
                                 f.path, p.line, p.column));
  // A destination without a weight counts as 0 when there are several.
  CHECK_FINDING(f, text, "http[2].route[0].weight", "90 }", Severity::Error,
                "weights must sum to 100, got 90 (a destination without a weight counts as 0)");
  // One destination without a weight takes everything: http[0] is fine.
  CHECK(findings_at(f.loaded, "http[0].route[0].weight").empty());
}

TEST_CASE("validate: a bad value is reported once, not again by the checks that use it") {
  const std::string text = with_services(R"([[virtual_service]]
name = "reviews"
hosts = ["reviews"]
[[virtual_service.http]]
route = [
  { destination = { host = "reviews", subset = "v1" }, weigth = 90 },
  { destination = { host = "reviews", subset = "v2" }, weight = 10 },
]
)");
  auto f = load_toml(text);
  INFO(dump(f.loaded));
  REQUIRE(f.loaded.findings.size() == 1);
  CHECK(f.loaded.findings[0].field == "http[0].route[0].weigth");
  CHECK(f.loaded.findings[0].message.find("did you mean 'weight'?") != std::string::npos);
}

TEST_CASE("validate: a subset must be defined in the host's destination rule") {
  const std::string text = with_services(R"([[service]]
name = "ratings"
port = 9080

[[virtual_service]]
name = "reviews"
hosts = ["reviews"]
http = [{ route = [{ destination = { host = "reviews", subset = "v3" } }] }]

[[virtual_service]]
name = "ratings"
hosts = ["ratings"]
http = [{ route = [{ destination = { host = "ratings", subset = "v1" } }] }]
)");
  auto f = load_toml(text);
  auto reviews = findings_at(f.loaded, "http[0].route[0].destination.subset", "virtual_service");
  INFO(dump(f.loaded));
  REQUIRE(reviews.size() == 2);
  Pos p = locate(text, "\"v3\" } }]");
  CHECK(reviews[0].name == "reviews");
  CHECK(reviews[0].line == p.line);
  CHECK(reviews[0].column == p.column);
  CHECK(reviews[0].message.find("subset \"v3\" is not defined in destination_rule \"reviews\" (" +
                                f.path + ":") != std::string::npos);
  CHECK(reviews[0].message.find("it defines \"v1\" and \"v2\"") != std::string::npos);
  CHECK(reviews[1].name == "ratings");
  CHECK(reviews[1].message ==
        "subset \"v1\" is not defined: no destination_rule for host "
        "\"ratings.default.svc.cluster.local\"");
}

TEST_CASE(
    "validate: the destination rule is looked up in the client's, then the service's namespace") {
  constexpr std::string_view kText = R"([[service]]
name = "reviews"
namespace = "shop"
port = 9080

[[destination_rule]]
name = "reviews"
namespace = "shop"
host = "reviews"
subsets = [{ name = "v1" }]

[[destination_rule]]
name = "reviews-from-front"
namespace = "front"
host = "reviews.shop.svc.cluster.local"
subsets = [{ name = "v9" }]

[[virtual_service]]
name = "a"
namespace = "front"
hosts = ["reviews.shop"]
http = [{ route = [{ destination = { host = "reviews.shop", subset = "v1" } }] }]

[[virtual_service]]
name = "b"
namespace = "other"
hosts = ["reviews.shop.svc.cluster.local"]
http = [{ route = [{ destination = { host = "reviews.shop.svc.cluster.local", subset = "v1" } }] }]
)";
  auto f = load_toml(kText);
  // "front" has its own rule for the host, which has no v1; "other" falls back to "shop"'s.
  CHECK_FINDING(f, kText, "http[0].route[0].destination.subset", "\"v1\" } }]", Severity::Error,
                "subset \"v1\" is not defined in destination_rule \"front/reviews-from-front\"");
}

TEST_CASE("validate: a host must name a service or a service entry") {
  const std::string text = with_services(R"([[service_entry]]
name = "google"
hosts = ["*.googleapis.com"]
ports = [{ number = 443, protocol = "tls" }]

[[virtual_service]]
name = "reviews"
hosts = ["reviews"]
[[virtual_service.http]]
match = [{ uri = { prefix = "/reviews" } }]
route = [{ destination = { host = "reviewz" } }]
mirror = { host = "mirror.example.com" }
[[virtual_service.http]]
match = [{ uri = { prefix = "/books" } }]
route = [{ destination = { host = "www.googleapis.com" } }]

[[destination_rule]]
name = "ratings"
host = "ratings"

[[destination_rule]]
name = "all-google"
host = "*.googleapis.com"
)");
  auto f = load_toml(text);
  CHECK_FINDING(f, text, "http[0].route[0].destination.host", "\"reviewz\"", Severity::Error,
                "host \"reviewz\" matches no service or service_entry (it means "
                "\"reviewz.default.svc.cluster.local\"); did you mean 'reviews'?");
  CHECK_FINDING(f, text, "http[0].mirror.host", "\"mirror.example.com\"", Severity::Error,
                "host \"mirror.example.com\" matches no service or service_entry");
  CHECK_FINDING(f, text, "host", "\"ratings\"\n\n[[destination_rule]]", Severity::Error,
                "host \"ratings\" matches no service or service_entry");
  // A wildcard service entry covers www.googleapis.com, and a wildcard rule matches it.
  CHECK(findings_at(f.loaded, "http[1].route[0].destination.host").empty());
  CHECK(f.loaded.findings.size() == 3);
}

TEST_CASE("validate: short host names resolve in the resource's namespace") {
  constexpr std::string_view kText = R"([[service]]
name = "reviews"
port = 9080

[[virtual_service]]
name = "front"
namespace = "front"
hosts = ["reviews.default"]
http = [
  { match = [{ uri = { prefix = "/a" } }], route = [{ destination = { host = "reviews.default" } }] },
  { match = [{ uri = { prefix = "/b" } }], route = [{ destination = { host = "reviews.default.svc" } }] },
  { match = [{ uri = { prefix = "/c" } }], route = [{ destination = { host = "reviews.default.svc.cluster.local" } }] },
  { route = [{ destination = { host = "reviews" } }] },
]
)";
  auto f = load_toml(kText);
  INFO(dump(f.loaded));
  REQUIRE(f.loaded.findings.size() == 1);
  CHECK_FINDING(f, kText, "http[3].route[0].destination.host", "\"reviews\" }", Severity::Error,
                "(it means \"reviews.front.svc.cluster.local\")");
}

TEST_CASE("validate: a destination's port must be one of the service's") {
  constexpr std::string_view kText = R"([[service]]
name = "multi"
ports = [{ number = 8080, name = "http" }, { number = 8443, name = "https", protocol = "https" }]

[[service]]
name = "single"
port = 80

[[virtual_service]]
name = "v"
hosts = ["single"]
http = [
  { match = [{ port = 1 }], route = [{ destination = { host = "multi" } }] },
  { match = [{ port = 2 }], route = [{ destination = { host = "single", port = 81 } }] },
  { route = [{ destination = { host = "multi", port = { number = 8443 } } }] },
]
)";
  auto f = load_toml(kText);
  CHECK_FINDING(f, kText, "http[0].route[0].destination", "{ host = \"multi\" }", Severity::Error,
                "service \"multi\" has several ports (8080, 8443): set port to choose one");
  CHECK_FINDING(f, kText, "http[1].route[0].destination.port", "81", Severity::Error,
                "service \"single\" has no port 81 (its ports: 80)");
  CHECK(findings_at(f.loaded, "http[2].route[0].destination").empty());
}

TEST_CASE("validate: duplicate names of the same kind in the same namespace") {
  constexpr std::string_view kText = R"([[service]]
name = "reviews"
port = 9080

[[service]]
name = "reviews"
namespace = "other"
port = 9080

[[gateway]]
name = "reviews"
servers = [{ port = 8080, protocol = "http", hosts = ["*"] }]

[[service]]
name = "reviews"
port = 9081

[[workload]]
service = "reviews"
labels = { version = "v1" }
port = 10001

[[workload]]
service = "reviews"
labels = { version = "v1" }
port = 10002
)";
  auto f = load_toml(kText);
  auto dups = findings_at(f.loaded, "name");
  INFO(dump(f.loaded));
  REQUIRE(dups.size() == 2);
  Pos third = locate(kText, "\"reviews\"\nport = 9081");
  CHECK(dups[0].kind == "service");
  CHECK(dups[0].line == third.line);
  CHECK(dups[0].column == third.column);
  CHECK(dups[0].message ==
        "duplicate service \"reviews\" in namespace \"default\"; the first is at " + f.path +
            ":1:1");
  // Two workloads without a name get the same derived name.
  CHECK(dups[1].kind == "workload");
  CHECK(dups[1].name == "reviews-v1");
  CHECK(dups[1].line == locate(kText, "[[workload]]", 1).line);
  CHECK(dups[1].message.find("give each one a name") != std::string::npos);
}

TEST_CASE("validate: regexes must compile with RE2") {
  constexpr std::string_view kText = R"toml([[service]]
name = "r"
port = 80

[[virtual_service]]
name = "r"
hosts = ["r"]
[[virtual_service.http]]
match = [
  { uri = { regex = "/api/v[0-9]+(/.*" } },
  { headers = { x-id = { regex = "*abc" } } },
  { authority = { regex = "(?i)^www\\.example\\.com$" } },
  { query_params = { q = { regex = "(?P<word>[a-z]+)" } } },
  { uri = { regex = "/(?=secret)" } },
  { uri = { regex = '(a)\1' } },
  { without_headers = { x-big = { regex = "a{1001}" } } },
  { scheme = { regex = '\Ahttps?\z' } },
]
rewrite = { uri_regex_rewrite = { match = "[z-a]", rewrite = "/" } }
route = [{ destination = { host = "r" } }]
)toml";
  auto f = load_toml(kText);
  // RE2's own reason, with its fragment; a missing ')' names the whole pattern, which the
  // message quotes already.
  CHECK_FINDING(f, kText, "http[0].match[0].uri.regex", "\"/api", Severity::Error,
                "bad regex \"/api/v[0-9]+(/.*\": missing )");
  CHECK_FINDING(f, kText, "http[0].match[1].headers.x-id.regex", "\"*abc\"", Severity::Error,
                "bad regex \"*abc\": no argument for repetition operator: *");
  CHECK_FINDING(f, kText, "http[0].match[4].uri.regex", "\"/(?=", Severity::Error,
                "invalid perl operator: (?= (lookahead is not supported: patterns are RE2 "
                "syntax)");
  CHECK_FINDING(f, kText, "http[0].match[5].uri.regex", "'(a)", Severity::Error,
                "invalid escape sequence: \\1 (backreferences are not supported");
  CHECK_FINDING(f, kText, "http[0].match[6].without_headers.x-big.regex", "\"a{1001}\"",
                Severity::Error, "invalid repetition size: {1001} (at most 1000)");
  CHECK_FINDING(f, kText, "http[0].rewrite.uri_regex_rewrite.match", "\"[z-a]\"", Severity::Error,
                "invalid character class range: z-a");
  // RE2 syntax that ECMAScript lacks is simply RE2: accepted.
  CHECK(findings_at(f.loaded, "http[0].match[2].authority.regex").empty());
  CHECK(findings_at(f.loaded, "http[0].match[3].query_params.q.regex").empty());
  CHECK(findings_at(f.loaded, "http[0].match[7].scheme.regex").empty());
  // A bad pattern is reported once: its substitution is not judged against it.
  CHECK(findings_at(f.loaded, "http[0].rewrite.uri_regex_rewrite.rewrite").empty());
  CHECK(f.loaded.findings.size() == 6);
}

TEST_CASE("validate: a uri_regex_rewrite substitution names only the pattern's groups") {
  constexpr std::string_view kText = R"toml([[service]]
name = "r"
port = 80

[[virtual_service]]
name = "r"
hosts = ["r"]
[[virtual_service.http]]
match = [{ uri = { prefix = "/a" } }]
rewrite = { uri_regex_rewrite = { match = "^/a/(v[0-9]+)/(.*)$", rewrite = "/\\2?v=\\1\\0" } }
route = [{ destination = { host = "r" } }]
[[virtual_service.http]]
match = [{ uri = { prefix = "/b" } }]
rewrite = { uri_regex_rewrite = { match = "^/b/(.*)$", rewrite = "/x/\\2" } }
route = [{ destination = { host = "r" } }]
[[virtual_service.http]]
match = [{ uri = { prefix = "/c" } }]
rewrite = { uri_regex_rewrite = { match = "^/c/.*$", rewrite = '/\1' } }
route = [{ destination = { host = "r" } }]
[[virtual_service.http]]
match = [{ uri = { prefix = "/d" } }]
rewrite = { uri_regex_rewrite = { match = "^/d/(.*)$", rewrite = '/\n' } }
route = [{ destination = { host = "r" } }]
[[virtual_service.http]]
rewrite = { uri_regex_rewrite = { match = "^/e/(.*)$", rewrite = '/\1\' } }
route = [{ destination = { host = "r" } }]
)toml";
  auto f = load_toml(kText);
  CHECK(findings_at(f.loaded, "http[0].rewrite.uri_regex_rewrite.rewrite").empty());
  CHECK_FINDING(f, kText, "http[1].rewrite.uri_regex_rewrite.rewrite", "\"/x/", Severity::Error,
                "bad substitution \"/x/\\2\": \\2 refers to group 2, but the pattern has only 1 "
                "group");
  CHECK_FINDING(f, kText, "http[2].rewrite.uri_regex_rewrite.rewrite", "'/\\1'", Severity::Error,
                "\\1 refers to group 1, but the pattern has no groups");
  CHECK_FINDING(f, kText, "http[3].rewrite.uri_regex_rewrite.rewrite", "'/\\n'", Severity::Error,
                "a \\ must be followed by a group number");
  CHECK_FINDING(f, kText, "http[4].rewrite.uri_regex_rewrite.rewrite", "'/\\1\\'", Severity::Error,
                "ends with a lone \\");
  CHECK(f.loaded.findings.size() == 4);
}

TEST_CASE(
    "validate: a uri regex is compiled as matched: case-insensitively with "
    "ignore_uri_case") {
  // 93 × [a-z]{1000}: within RE2's memory limit case-sensitively, but case folding makes
  // every [a-z] about six times larger.
  std::string big;
  for (int i = 0; i < 93; ++i)
    big += "[a-z]{1000}";
  REQUIRE(big.size() <= 1024);
  const std::string text = fmt::format(R"toml([[service]]
name = "r"
port = 80

[[virtual_service]]
name = "r"
hosts = ["r"]
[[virtual_service.http]]
match = [
  {{ uri = {{ regex = "{0}" }} }},
  {{ uri = {{ regex = "{0}" }}, ignore_uri_case = true }},
]
route = [{{ destination = {{ host = "r" }} }}]
)toml",
                                       big);
  auto f = load_toml(text);
  INFO(dump(f.loaded));
  CHECK(findings_at(f.loaded, "http[0].match[0].uri.regex").empty());
  auto found = findings_at(f.loaded, "http[0].match[1].uri.regex");
  REQUIRE(found.size() == 1);
  CHECK(found[0].message.find("too large once compiled, case-insensitive") != std::string::npos);
}

TEST_CASE("validate: regex_error accepts what RE2 compiles, with its reason for the rest") {
  // RE2 syntax, all accepted.
  for (const char* good : {"^/api/v[0-9]+/.*$", "(?i)abc", "(?i:a)b", "(?P<name>[a-z]+)",
                           "\\Aabc\\z", "[[:alpha:]]{2,5}", "a{2,5}", "a{1000}", "[(]", "z{",
                           "\\pL+", "\\Q(*)\\E", "(?s).(?U)a*", "(?m)^a$", "\\d+\\b"}) {
    CAPTURE(good);
    CHECK_FALSE(regex_error(good));
  }
  // Nested groups cost RE2 nothing: only the length is limited.
  CHECK_FALSE(regex_error(std::string(500, '(') + "a" + std::string(500, ')')));

  CHECK(regex_error("/(?=a)").value() ==
        "invalid perl operator: (?= (lookahead is not supported: patterns are RE2 syntax)");
  CHECK(regex_error("/(?!a)").value().find("lookahead is not supported") != std::string::npos);
  CHECK(regex_error("(?<=a)b").value() ==
        "invalid perl operator: (?< (lookbehind is not supported: patterns are RE2 syntax)");
  CHECK(regex_error("(?<n>a)").value() ==
        "invalid perl operator: (?< (write a named group as (?P<name>…))");
  CHECK(regex_error("(a)\\1").value() ==
        "invalid escape sequence: \\1 (backreferences are not supported: patterns are RE2 "
        "syntax)");
  CHECK(regex_error("(?P<n>a)(?P=n)").value() ==
        "invalid perl operator: (?P (backreferences are not supported: patterns are RE2 syntax)");
  CHECK(regex_error("(abc").value() == "missing )");
  CHECK(regex_error("abc)").value() == "unexpected )");
  CHECK(regex_error("a[bc").value() == "missing ]: [bc");
  CHECK(regex_error("a**").value() == "bad repetition operator: **");
  CHECK(regex_error("*a").value() == "no argument for repetition operator: *");
  CHECK(regex_error("a{1001}").value() == "invalid repetition size: {1001} (at most 1000)");
  CHECK(regex_error("a{5,2}").value() ==
        "invalid repetition size: {5,2} (the maximum is below the minimum)");
  CHECK(regex_error("((a{1000}){1000}){1000}").value() ==
        "invalid repetition size: {1000} (nested repeats multiply: at most 1000 in all)");
  CHECK(regex_error("abc\\").value() == "trailing \\");
  CHECK(regex_error("a(?P<name").value() == "invalid named capture group: (?P<name");
  CHECK(regex_error("[[:foo:]]").value() == "invalid character class range: [:foo:]");
  CHECK(regex_error("\\pL{1000}").value() ==
        "too large once compiled (over RE2's memory limit); use smaller repeat counts or "
        "character classes");
  // A long fragment is cut; control characters in it are escaped.
  CHECK(regex_error("x[\n" + std::string(100, 'a')).value() ==
        "missing ]: [\\x0a" + std::string(58, 'a') + "…");
  CHECK(regex_error(std::string(1024, 'a')) == std::nullopt);
  CHECK(regex_error(std::string(1025, 'a')).value() == "1025 characters long; at most 1024");
}

TEST_CASE("validate: rewrite_error is RE2::CheckRewriteString, in the config's words") {
  CHECK_FALSE(rewrite_error("^/(a)/(b)$", "/\\2/\\1\\0\\\\"));
  CHECK_FALSE(rewrite_error("^/(?P<v>a)$", "/\\1"));  // a named group is numbered too
  CHECK_FALSE(rewrite_error("^/a$", "/$1"));          // only \ is special
  CHECK(rewrite_error("^/(a)$", "/\\2").value() ==
        "\\2 refers to group 2, but the pattern has only 1 group");
  CHECK(rewrite_error("^/(a)(b)$", "/\\1\\3").value() ==
        "\\3 refers to group 3, but the pattern has only 2 groups");
  CHECK(rewrite_error("^/a$", "/\\1").value() ==
        "\\1 refers to group 1, but the pattern has no groups");
  CHECK(rewrite_error("^/(a)$", "/\\x").value() ==
        "a \\ must be followed by a group number (\\0 for the whole match, \\1 to \\9) or "
        "another \\");
  CHECK(rewrite_error("^/(a)$", "/\\1\\").value() ==
        "ends with a lone \\; write \\\\ for a backslash");
  // A bad pattern is regex_error's to report.
  CHECK_FALSE(rewrite_error("(", "/\\5"));
  CHECK_FALSE(rewrite_error(std::string(1025, 'a'), "/\\5"));
}

TEST_CASE("validate: a workload's service must exist") {
  constexpr std::string_view kText = R"([[service]]
name = "ratings"
port = 9080

[[workload]]
service = "rating"
port = 10001

[[workload]]
namespace = "other"
service = "ratings"
command = ["ratings"]

[[workload]]
name = "idle"
service = "ratings"

[[workload]]
name = "zero"
service = "ratings"
port = 0
)";
  auto f = load_toml(kText);
  auto errs = findings_at(f.loaded, "service");
  INFO(dump(f.loaded));
  REQUIRE(errs.size() == 2);
  CHECK(errs[0].line == locate(kText, "\"rating\"").line);
  CHECK(errs[0].column == locate(kText, "\"rating\"").column);
  CHECK(errs[0].message ==
        "no service \"rating\" in namespace \"default\"; did you mean 'ratings'?");
  CHECK(errs[1].name == "other/ratings");
  CHECK(errs[1].message == "no service \"ratings\" in namespace \"other\"");
  CHECK_FINDING_OF(f, kText, "idle", "command", "[[workload]]\nname = \"idle\"", Severity::Error,
                   "a workload needs a command (meshbox starts it) or a port");
  // port = 0 asks meshbox to choose, which it can only do for a workload it starts.
  CHECK_FINDING_OF(f, kText, "zero", "command", "[[workload]]\nname = \"zero\"", Severity::Error,
                   "a workload needs a command (meshbox starts it) or a port");
}

TEST_CASE("validate: workload ports, health checks and addresses") {
  constexpr std::string_view kText = R"([[service]]
name = "a"
port = 80

[[gateway]]
name = "edge"
servers = [{ port = 8080, protocol = "http", hosts = ["*"] }]

[[workload]]
name = "a1"
service = "a"
port = 9000
health = { http = "health", tcp = true }

[[workload]]
name = "a2"
service = "a"
port = 9000
health = { tcp = true, interval = "0s", timeout = "1s" }

[[workload]]
name = "a3"
service = "a"
port = 8080
address = "not an address"

[[workload]]
name = "a4"
service = "a"
port = 9000
address = "0.0.0.0"
)";
  auto f = load_toml(kText);
  CHECK_FINDING(f, kText, "health", "{ http = \"health\"", Severity::Error,
                "set http = \"/path\" or tcp = true, not both");
  CHECK_FINDING(f, kText, "health.http", "\"health\"", Severity::Error,
                "expected a path starting with '/'");
  CHECK_FINDING_OF(f, kText, "a2", "port", "9000\nhealth = { tcp", Severity::Error,
                   "port 9000 on 127.0.0.1 is already taken by workload \"a1\"");
  CHECK_FINDING(f, kText, "health.interval", "\"0s\"", Severity::Error, "must be at least 1ms");
  CHECK_FINDING(f, kText, "address", "\"not an address\"", Severity::Error,
                "expected an IP address or a host name");
  CHECK_FINDING_OF(f, kText, "a3", "port", "8080\naddress", Severity::Error,
                   "port 8080 on not an address is already taken by gateway \"edge\"");
  // Every interface includes 127.0.0.1.
  CHECK_FINDING_OF(f, kText, "a4", "port", "9000\naddress = \"0.0.0.0\"", Severity::Error,
                   "port 9000 on 0.0.0.0 is already taken by workload \"a1\"");
}

TEST_CASE("validate: a route after a catch-all can never match (warning)") {
  const std::string text = with_services(R"([[virtual_service]]
name = "reviews"
hosts = ["reviews"]
[[virtual_service.http]]
match = [{ uri = { prefix = "/v2" } }]
route = [{ destination = { host = "reviews", subset = "v2" } }]
[[virtual_service.http]]
match = [{ headers = { x-a = { exact = "1" } } }, { uri = { prefix = "/" } }]
route = [{ destination = { host = "reviews", subset = "v1" } }]
[[virtual_service.http]]
name = "never"
route = [{ destination = { host = "reviews", subset = "v2" } }]
[[virtual_service.tcp]]
route = [{ destination = { host = "reviews" } }]
[[virtual_service.tcp]]
match = [{ port = 9080 }]
route = [{ destination = { host = "reviews" } }]
)");
  auto f = load_toml(text);
  CHECK(f.loaded.ok());  // warnings only
  CHECK_FINDING(f, text, "http[2]", "[[virtual_service.http]]\nname = \"never\"", Severity::Warning,
                "this route can never match: http[1] (" + f.path);
  CHECK_FINDING(f, text, "tcp[1]", "[[virtual_service.tcp]]\nmatch", Severity::Warning,
                "this route can never match: tcp[0]");
  CHECK(f.loaded.findings.size() == 2);
}

TEST_CASE("validate: catch-all routes and decode errors") {
  // A misspelt `match` makes a route look like a catch-all: it is not judged. An error
  // elsewhere in a route (here in retries) does not hide what its match means.
  const std::string text = with_services(R"([[virtual_service]]
name = "reviews"
hosts = ["reviews"]
[[virtual_service.http]]
matches = [{ uri = { prefix = "/v2" } }]
route = [{ destination = { host = "reviews", subset = "v2" } }]
[[virtual_service.http]]
match = [{ uri = { prefix = "/v1" } }]
route = [{ destination = { host = "reviews", subset = "v1" } }]
[[virtual_service.http]]
route = [{ destination = { host = "reviews", subset = "v1" } }]
retries = { atempts = 2 }
[[virtual_service.http]]
name = "after"
route = [{ destination = { host = "reviews", subset = "v2" } }]
)");
  auto f = load_toml(text);
  CHECK_FINDING(f, text, "http[0].matches", "matches", Severity::Error,
                "unknown key \"matches\"; did you mean 'match'?");
  CHECK_FINDING(f, text, "http[2].retries.atempts", "atempts", Severity::Error,
                "did you mean 'attempts'?");
  CHECK(findings_at(f.loaded, "http[1]").empty());
  CHECK(findings_at(f.loaded, "http[2]").empty());
  CHECK_FINDING(f, text, "http[3]", "[[virtual_service.http]]\nname = \"after\"", Severity::Warning,
                "this route can never match: http[2]");
  CHECK(f.loaded.findings.size() == 3);
}

TEST_CASE("validate: a subset that selects no workload (warning)") {
  constexpr std::string_view kText = R"([[service]]
name = "reviews"
port = 9080

[[service]]
name = "ratings"
port = 9080

[[workload]]
service = "reviews"
labels = { version = "v1" }
port = 10001

[[destination_rule]]
name = "reviews"
host = "reviews"
subsets = [
  { name = "v1", labels = { version = "v1" } },
  { name = "v3", labels = { version = "v3" } },
  { name = "all" },
]

[[destination_rule]]
name = "ratings"
host = "ratings"
subsets = [{ name = "v1", labels = { version = "v1" } }]

[[service_entry]]
name = "ext"
hosts = ["db.example.com"]
ports = [{ number = 5432, protocol = "tcp" }]
resolution = "static"
endpoints = [{ address = "10.0.0.1", labels = { role = "primary" } }]

[[destination_rule]]
name = "db"
host = "db.example.com"
subsets = [{ name = "replica", labels = { role = "replica" } }]
)";
  auto f = load_toml(kText);
  CHECK(f.loaded.ok());
  CHECK_FINDING(f, kText, "subsets[1].labels", "{ version = \"v3\" }", Severity::Warning,
                "subset \"v3\" selects no workload: none of the 1 workload(s) of service "
                "\"reviews\" has the labels version=v3");
  CHECK_FINDING(f, kText, "subsets[0].labels", "{ role = \"replica\" }", Severity::Warning,
                "subset \"replica\" selects no endpoint");
  // ratings has no workloads at all (its endpoints may be registered at run time): no warning.
  CHECK(f.loaded.findings.size() == 2);
}

TEST_CASE("validate: gateways referenced by virtual services must exist") {
  constexpr std::string_view kText = R"([[service]]
name = "productpage"
port = 9080

[[gateway]]
name = "bookinfo-gateway"
servers = [{ port = 8080, protocol = "http", hosts = ["bookinfo.example.com"] }]

[[virtual_service]]
name = "bookinfo"
hosts = ["*"]
gateways = ["bookinfo-gateway", "mesh", "bookinfo-gatway", "edge/ingress"]
http = [{ match = [{ uri = { exact = "/productpage" }, gateways = ["nope"] }], route = [{ destination = { host = "productpage" } }] }]

[[virtual_service]]
name = "other"
hosts = ["other.example.com"]
gateways = ["bookinfo-gateway"]
http = [{ route = [{ destination = { host = "productpage" } }] }]
)";
  auto f = load_toml(kText);
  CHECK_FINDING(f, kText, "gateways[2]", "\"bookinfo-gatway\"", Severity::Error,
                "no gateway \"bookinfo-gatway\" in namespace \"default\" (\"mesh\" means the "
                "sidecars); did you mean 'bookinfo-gateway'?");
  CHECK_FINDING(f, kText, "gateways[3]", "\"edge/ingress\"", Severity::Error,
                "no gateway \"ingress\" in namespace \"edge\"");
  CHECK_FINDING(f, kText, "http[0].match[0].gateways[0]", "\"nope\"", Severity::Error,
                "no gateway \"nope\"");
  // "*" is only for a virtual service bound to gateways alone, not with "mesh" too.
  CHECK_FINDING(f, kText, "hosts[0]", "\"*\"", Severity::Error,
                "\"*\" is only allowed in a virtual service bound to gateways");
  // The gateway does not accept other.example.com.
  auto unserved = findings_at(f.loaded, "gateways[0]");
  REQUIRE(unserved.size() == 1);
  CHECK(unserved[0].severity == Severity::Warning);
  CHECK(unserved[0].message.find("serves none of this virtual service's hosts") !=
        std::string::npos);
}

TEST_CASE("validate: route, redirect and direct_response exclude each other") {
  const std::string text = with_services(R"([[virtual_service]]
name = "reviews"
hosts = ["reviews"]
[[virtual_service.http]]
match = [{ uri = { exact = "/a" } }]
route = [{ destination = { host = "reviews" } }]
redirect = { uri = "/b" }
[[virtual_service.http]]
match = [{ uri = { exact = "/c" } }]
redirect = { uri = "/d", port = 8080, derive_port = "from_request_port", redirect_code = 304 }
rewrite = { uri = "/e" }
[[virtual_service.http]]
match = [{ uri = { exact = "/f" } }]
direct_response = { status = 503 }
route = [{ destination = { host = "reviews" } }]
[[virtual_service.http]]
match = [{ uri = { exact = "/g" } }]
timeout = "1s"
[[virtual_service.http]]
match = [{ uri = { exact = "/h" } }]
route = []
)");
  auto f = load_toml(text);
  CHECK_FINDING(f, text, "http[0].redirect", "{ uri = \"/b\" }", Severity::Error,
                "redirect cannot be combined with route");
  CHECK_FINDING(f, text, "http[1].redirect.derive_port", "\"from_request_port\"", Severity::Error,
                "set port or derive_port, not both");
  CHECK_FINDING(f, text, "http[1].redirect.redirect_code", "304", Severity::Error,
                "expected 301, 302, 303, 307 or 308, got 304");
  CHECK_FINDING(f, text, "http[1].rewrite", "{ uri = \"/e\" }", Severity::Error,
                "rewrite cannot be combined with redirect");
  CHECK_FINDING(f, text, "http[2].direct_response", "{ status = 503 }", Severity::Error,
                "direct_response cannot be combined with route or redirect");
  CHECK_FINDING(f, text, "http[3]", "[[virtual_service.http]]\nmatch = [{ uri = { exact = \"/g\"",
                Severity::Error,
                "an HTTP route needs route (destinations), redirect or "
                "direct_response");
  CHECK_FINDING(f, text, "http[4].route", "[]", Severity::Error,
                "route needs at least one destination");
}

TEST_CASE("validate: faults, retries, mirrors") {
  const std::string text = with_services(R"([[virtual_service]]
name = "reviews"
hosts = ["reviews"]
[[virtual_service.http]]
match = [{ uri = { exact = "/a" } }]
route = [{ destination = { host = "reviews" } }]
fault = {}
retries = { attempts = 2, per_try_timeout = "0ms", retry_on = "5xx, connect-failure,503,gateway_error" }
[[virtual_service.http]]
match = [{ uri = { exact = "/b" } }]
route = [{ destination = { host = "reviews" } }]
fault = { abort = { percentage = 100 }, delay = { fixed_delay = "0s", percentage = 100 } }
mirror_percentage = 50
[[virtual_service.http]]
route = [{ destination = { host = "reviews" } }]
fault = { abort = { http_status = 500, grpc_status = "UNAVAILABLE" } }
mirror = { host = "reviews", subset = "v1" }
)");
  auto f = load_toml(text);
  CHECK_FINDING(f, text, "http[0].fault", "{}", Severity::Error,
                "a fault needs a delay, an abort, or both");
  CHECK_FINDING(f, text, "http[0].retries.per_try_timeout", "\"0ms\"", Severity::Error,
                "must be at least 1ms");
  CHECK_FINDING(f, text, "http[0].retries.retry_on", "\"5xx,", Severity::Error,
                "unknown retry condition \"gateway_error\"");
  CHECK(findings_at(f.loaded, "http[0].retries.retry_on")
            .at(0)
            .message.ends_with("did you mean 'gateway-error'?"));
  CHECK_FINDING(f, text, "http[1].fault.abort", "{ percentage = 100 }", Severity::Error,
                "an abort needs http_status");
  CHECK_FINDING(f, text, "http[1].fault.delay.fixed_delay", "\"0s\"", Severity::Error,
                "must be at least 1ms");
  CHECK_FINDING(f, text, "http[1].mirror_percentage", "50\n", Severity::Error,
                "mirror_percentage needs a mirror");
  auto abort = findings_at(f.loaded, "http[2].fault.abort");
  REQUIRE(abort.size() == 2);
  CHECK(abort[0].message == "set http_status or grpc_status, not both");
  CHECK(abort[1].severity == Severity::Warning);
  CHECK(abort[1].message.find("percentage is not set, so no request is aborted") !=
        std::string::npos);
}

TEST_CASE("validate: tcp and tls routes") {
  constexpr std::string_view kText = R"([[service_entry]]
name = "ext"
hosts = ["api.example.com", "db.example.com"]
ports = [{ number = 443, protocol = "tls" }]
resolution = "dns"

[[virtual_service]]
name = "ext"
hosts = ["api.example.com"]
[[virtual_service.tls]]
match = [{ sni_hosts = ["api.example.com", "db.example.com"], destination_subnets = ["10.0.0.0/33"] }]
route = [{ destination = { host = "api.example.com" } }]
[[virtual_service.tls]]
route = [{ destination = { host = "api.example.com" } }]
[[virtual_service.tcp]]
match = [{ port = 443 }]
)";
  auto f = load_toml(kText);
  CHECK_FINDING(f, kText, "tls[0].match[0].sni_hosts[1]", "\"db.example.com\"], dest",
                Severity::Error,
                "SNI host \"db.example.com\" is not one of the virtual service's hosts");
  CHECK_FINDING(f, kText, "tls[0].match[0].destination_subnets[0]", "\"10.0.0.0/33\"",
                Severity::Error, "expected an IP address or CIDR block");
  CHECK_FINDING(f, kText, "tls[1]", "[[virtual_service.tls]]\nroute", Severity::Error,
                "a tls route needs match with sni_hosts");
  CHECK_FINDING(f, kText, "tcp[0]", "[[virtual_service.tcp]]", Severity::Error,
                "a route needs at least one destination");
}

TEST_CASE("validate: virtual service hosts") {
  constexpr std::string_view kText = R"([[service]]
name = "reviews"
port = 9080

[[virtual_service]]
name = "a"
hosts = ["reviews", "nothing-here", "bad..host", "*.example.com"]
http = [{ route = [{ destination = { host = "reviews" } }] }]

[[virtual_service]]
name = "b"
hosts = []
tcp = [{ route = [{ destination = { host = "reviews" } }] }]

[[virtual_service]]
name = "c"
hosts = ["reviews"]
)";
  auto f = load_toml(kText);
  CHECK_FINDING(f, kText, "hosts[1]", "\"nothing-here\"", Severity::Warning,
                "host \"nothing-here\" matches no service or service_entry (it means "
                "\"nothing-here.default.svc.cluster.local\"): no traffic in the mesh goes to it");
  CHECK_FINDING(f, kText, "hosts[2]", "\"bad..host\"", Severity::Error, "expected a host name");
  CHECK_FINDING(f, kText, "hosts[3]", "\"*.example.com\"", Severity::Warning, "matches no service");
  CHECK_FINDING(f, kText, "hosts", "[]", Severity::Error, "at least one host is required");
  CHECK_FINDING(f, kText, "http", "[[virtual_service]]\nname = \"c\"", Severity::Error,
                "a virtual service needs routes: http, tcp or tls");
}

TEST_CASE("validate: destination rule policies") {
  constexpr std::string_view kText = R"([[service]]
name = "reviews"
port = 9080

[[destination_rule]]
name = "reviews"
host = "reviews"
[destination_rule.traffic_policy]
load_balancer = { simple = "random", consistent_hash = { use_source_ip = true }, locality_lb_setting = { distribute = [{ from = "us/*", to = { "us/a" = 60, "us/b" = 30 } }], failover = [{ from = "us", to = "eu" }] } }
tls = { mode = "mutual", ca_certificates = "/ca.pem" }
port_level_settings = [{ port = 9080, tls = { mode = "istio_mutual", private_key = "/k.pem" } }, { port = 9080 }]
[[destination_rule.subsets]]
name = "v1"
[[destination_rule.subsets]]
name = "v1"  # again
)";
  auto f = load_toml(kText);
  CHECK_FINDING(f, kText, "traffic_policy.load_balancer", "{ simple", Severity::Error,
                "set simple or consistent_hash, not both");
  CHECK_FINDING(f, kText, "traffic_policy.load_balancer.locality_lb_setting", "{ distribute",
                Severity::Error, "set only one of distribute, failover and failover_priority");
  CHECK_FINDING(f, kText, "traffic_policy.load_balancer.locality_lb_setting.distribute[0].to",
                "{ \"us/a\"", Severity::Error, "weights must sum to 100, got 90");
  CHECK_FINDING(f, kText, "traffic_policy.tls.client_certificate", "{ mode = \"mutual\"",
                Severity::Error, "mode mutual needs client_certificate");
  CHECK_FINDING(f, kText, "traffic_policy.tls.private_key", "{ mode = \"mutual\"", Severity::Error,
                "mode mutual needs private_key");
  CHECK_FINDING(f, kText, "traffic_policy.port_level_settings[0].tls.mode", "\"istio_mutual\"",
                Severity::Error, "istio_mutual uses the mesh's own certificates");
  CHECK_FINDING(f, kText, "traffic_policy.port_level_settings[1].port", "9080 }]", Severity::Error,
                "port 9080 already has settings (port_level_settings[0])");
  CHECK_FINDING(f, kText, "subsets[1].name", "\"v1\"  # again", Severity::Error,
                "subset \"v1\" is defined twice (also subsets[0])");
}

TEST_CASE("validate: gateway servers") {
  constexpr std::string_view kText = R"([[gateway]]
name = "edge"
selector = { istio = "ingressgateway" }
servers = [
  { port = 443, protocol = "https", hosts = ["shop.example.com"] },
  { port = 8443, protocol = "https", hosts = ["*.example.com"], tls = { mode = "simple" } },
  { port = 9443, protocol = "tls", hosts = ["db/*", "x/y/z"], tls = { mode = "mutual", server_certificate = "/c.pem", private_key = "/k.pem" } },
  { port = 8080, protocol = "http", hosts = ["*"], tls = { mode = "simple" } },
  { port = 5000, protocol = "tcp", hosts = ["*"], tls = { https_redirect = true } },
  { port = 7000, protocol = "tls", hosts = ["*"] },
]

[[gateway]]
name = "other"
servers = [{ port = 8080, protocol = "tcp", hosts = ["*"] }]
)";
  auto f = load_toml(kText);
  CHECK_FINDING(f, kText, "servers[0]", "{ port = 443", Severity::Error,
                "an https server needs tls (mode, server_certificate, private_key)");
  auto sc = findings_at(f.loaded, "servers[1].tls.server_certificate");
  REQUIRE(sc.size() == 1);
  CHECK(sc[0].message == "mode simple needs server_certificate");
  CHECK_FINDING(f, kText, "servers[2].tls.ca_certificates", "{ mode = \"mutual\"", Severity::Error,
                "mode mutual needs ca_certificates to verify clients");
  CHECK_FINDING(f, kText, "servers[2].hosts[1]", "\"x/y/z\"", Severity::Error,
                "expected a host name");
  CHECK_FINDING(f, kText, "servers[3].tls.mode", "\"simple\" } },\n  { port = 5000",
                Severity::Error, "an http server does not terminate TLS");
  CHECK_FINDING(f, kText, "servers[4].tls", "{ https_redirect", Severity::Error,
                "a tcp server takes no tls; use protocol tls");
  CHECK_FINDING(f, kText, "servers[5]", "{ port = 7000", Severity::Error,
                "a tls server needs tls (mode = \"passthrough\" routes by SNI)");
  CHECK_FINDING(f, kText, "servers[0].port", "8080, protocol = \"tcp\"", Severity::Error,
                "port 8080 is already a http server (gateway \"edge\", servers[3])");
}

TEST_CASE("validate: service entries") {
  constexpr std::string_view kText = R"([[service_entry]]
name = "a"
hosts = ["*"]
ports = [{ number = 80 }, { number = 80, name = "web" }]
addresses = ["10.0.0.300"]

[[service_entry]]
name = "b"
hosts = ["*.example.com"]
ports = [{ number = 443, protocol = "tls" }]
resolution = "dns"

[[service_entry]]
name = "c"
hosts = ["c.example.com"]
ports = [{ number = 80, name = "http" }]
resolution = "static"
endpoints = [{ address = "c-1.example.com" }, { address = "10.0.0.2", ports = { htp = 8080 } }]

[[service_entry]]
name = "d"
hosts = ["d.example.com"]
ports = [{ number = 80 }]
endpoints = [{ address = "10.0.0.3" }]

[[service_entry]]
name = "e"
hosts = ["e.example.com"]
resolution = "STATIC"
)";
  auto f = load_toml(kText);
  CHECK_FINDING(f, kText, "hosts[0]", "\"*\"", Severity::Error, "\"*\" is not allowed here");
  CHECK_FINDING(f, kText, "ports[1].number", "80, name = \"web\"", Severity::Error,
                "port 80 is listed twice (also ports[0])");
  CHECK_FINDING(f, kText, "addresses[0]", "\"10.0.0.300\"", Severity::Error,
                "expected an IP address or CIDR block");
  CHECK_FINDING_OF(f, kText, "b", "resolution", "\"dns\"", Severity::Error,
                   "resolution dns cannot resolve a wildcard host");
  CHECK_FINDING(f, kText, "endpoints[0].address", "\"c-1.example.com\"", Severity::Error,
                "resolution static needs IP addresses");
  CHECK_FINDING(f, kText, "endpoints[1].ports.htp", "8080", Severity::Error,
                "the service entry has no port named \"htp\"; did you mean 'http'?");
  CHECK_FINDING(f, kText, "endpoints", "[{ address = \"10.0.0.3\" }]", Severity::Error,
                "resolution none forwards to the address the client asked for");
  auto e = findings_at(f.loaded, "ports", "service_entry");
  REQUIRE(e.size() == 1);
  CHECK(e[0].name == "e");
  CHECK(e[0].message == "a service entry needs at least one port");
  CHECK_FINDING_OF(f, kText, "e", "resolution", "\"STATIC\"", Severity::Error,
                   "resolution static needs endpoints");
}

TEST_CASE("validate: security policies") {
  constexpr std::string_view kText = R"([[peer_authentication]]
name = "ports"
port_level_mtls = { 8080 = { mode = "disable" } }

[[authorization_policy]]
name = "a"
[[authorization_policy.rules]]
from = [{ source = { ip_blocks = ["10.0.0.0/8", "nope"] } }, { source = {} }]
to = [{ operation = { ports = ["80", "http"] } }]
when = [
  { key = "request.headers[x-user]", values = ["jason"] },
  { key = "source.ipp", values = ["10.0.0.1"] },
  { key = "request.headers[]", values = ["x"] },
  { key = "source.namespace" },
  { key = "remote.ip", not_values = ["1.2.3"] },
]

[[request_authentication]]
name = "jwt"
jwt_rules = [
  { issuer = "https://a.example", jwks_uri = "ftp://a.example/jwks", jwks = "{}" },
  { issuer = "https://b.example", jwks = "not json", from_headers = [{ name = "" }], timeout = "0s" },
]
)";
  auto f = load_toml(kText);
  CHECK_FINDING(f, kText, "port_level_mtls", "{ 8080", Severity::Error,
                "port_level_mtls needs a selector");
  CHECK_FINDING(f, kText, "rules[0].from[0].source.ip_blocks[1]", "\"nope\"", Severity::Error,
                "expected an IP address or CIDR block, got \"nope\"");
  CHECK_FINDING(f, kText, "rules[0].from[1].source", "{} }]", Severity::Error,
                "a source needs at least one field");
  CHECK_FINDING(f, kText, "rules[0].to[0].operation.ports[1]", "\"http\"", Severity::Error,
                "expected a port number from 1 to 65535, got \"http\"");
  CHECK_FINDING(f, kText, "rules[0].when[1].key", "\"source.ipp\"", Severity::Error,
                "unknown condition key \"source.ipp\"");
  CHECK(findings_at(f.loaded, "rules[0].when[1].key")
            .at(0)
            .message.ends_with("did you mean 'source.ip'?"));
  CHECK_FINDING(f, kText, "rules[0].when[2].key", "\"request.headers[]\"", Severity::Error,
                "expected request.headers[NAME]");
  CHECK_FINDING(f, kText, "rules[0].when[3]", "{ key = \"source.namespace\" }", Severity::Error,
                "a condition needs values or not_values");
  CHECK_FINDING(f, kText, "rules[0].when[4].not_values[0]", "\"1.2.3\"", Severity::Error,
                "expected an IP address or CIDR block");
  CHECK(findings_at(f.loaded, "rules[0].when[0].key").empty());
  CHECK_FINDING(f, kText, "jwt_rules[0].jwks", "\"{}\"", Severity::Error,
                "set jwks or jwks_uri, not both");
  CHECK_FINDING(f, kText, "jwt_rules[0].jwks_uri", "\"ftp:", Severity::Error,
                "expected an http://, https:// or file:///PATH URL");
  CHECK_FINDING(f, kText, "jwt_rules[1].jwks", "\"not json\"", Severity::Error,
                "expected a JWKS document");
  CHECK_FINDING(f, kText, "jwt_rules[1].from_headers[0].name", "\"\" }]", Severity::Error,
                "a header name cannot be empty");
  CHECK_FINDING(f, kText, "jwt_rules[1].timeout", "\"0s\"", Severity::Error,
                "must be at least 1ms");
}

TEST_CASE("validate: warnings alone keep a config valid; one error makes it invalid") {
  const std::string warn_only = with_services(R"([[virtual_service]]
name = "reviews"
hosts = ["reviews"]
http = [{ route = [{ destination = { host = "reviews", subset = "v1" } }] }, { route = [{ destination = { host = "reviews" } }] }]
)");
  auto f = load_toml(warn_only);
  CHECK(f.loaded.ok());
  CHECK(count_errors(f.loaded.findings, Severity::Warning) == 1);
  CHECK(count_errors(f.loaded.findings, Severity::Error) == 0);

  auto g = load_toml(warn_only + "\n[[service]]\nname = \"reviews\"\nport = 1\n");
  CHECK_FALSE(g.loaded.ok());
}

TEST_CASE("validate: [mesh] trust domains follow the SPIFFE ID spec") {
  const std::string text = R"([mesh]
trust_domain = "Cluster.local"
trust_domain_aliases = ["old.example", "new.example:8443", "a b"]
)";
  auto f = load_toml(text);
  CHECK_FINDING(f, text, "trust_domain", "\"Cluster.local\"", Severity::Error,
                "\"Cluster.local\" is not a SPIFFE trust domain: write it in lowercase");
  CHECK(findings_at(f.loaded, "trust_domain_aliases[0]").empty());
  CHECK_FINDING(f, text, "trust_domain_aliases[1]", "\"new.example:8443\"", Severity::Error,
                "a port (':') is not allowed");
  CHECK_FINDING(f, text, "trust_domain_aliases[2]", "\"a b\"", Severity::Error,
                "\" \" is not allowed");
  auto good = load_toml("[mesh]\ntrust_domain = \"prod-1.example_org\"\n");
  CHECK(good.loaded.findings.empty());
}

TEST_CASE("validate: local rate limits on a route, a workload and a gateway") {
  const std::string text = with_services(R"([[virtual_service]]
name = "reviews"
hosts = ["reviews"]
[[virtual_service.http]]
route = [{ destination = { host = "reviews" } }]
local_rate_limit = { max_tokens = 0, fill_interval = "10ms" }

[[workload]]
name = "limited"
service = "reviews"
port = 19083
local_rate_limit = { tokens_per_fill = 5 }

[[gateway]]
name = "edge"
servers = [{ port = 18080, protocol = "http", hosts = ["*"] }]
local_rate_limit = { max_tokens = 5, fill_interval = "49ms" }
)");
  auto f = load_toml(text);
  CHECK_FINDING(f, text, "http[0].local_rate_limit.fill_interval", "\"10ms\"", Severity::Error,
                "must be at least 50ms, got 10ms");
  CHECK_FINDING(f, text, "http[0].local_rate_limit.max_tokens", "0,", Severity::Error,
                "expected a number of tokens from 1 to 1000000000, got 0");
  CHECK_FINDING(f, text, "local_rate_limit.max_tokens", "{ tokens_per_fill", Severity::Error,
                "required field is missing");
  CHECK_FINDING(f, text, "local_rate_limit.fill_interval", "\"49ms\"", Severity::Error,
                "must be at least 50ms, got 49ms");
}

}  // namespace
}  // namespace meshbox::config::test
