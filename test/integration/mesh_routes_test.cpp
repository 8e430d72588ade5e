// VirtualService HTTP route options end to end, through a real `meshbox run` gateway to
// meshbox-httpbin backends: header operations (route and destination, request and response),
// rewrites (prefix, exact, no uri condition, regex, authority) and fault injection (abort and
// delay, always, never and sometimes). /headers shows what reached a backend, /stats how many
// requests did, /upload whether a body arrived whole.
#include <doctest/doctest.h>

#include <cmath>
#include <fstream>
#include <set>

#include "test/support/curl.h"
#include "test/support/deadline.h"
#include "test/support/http_response.h"
#include "test/support/json.h"
#include "test/support/mesh.h"
#include "test/support/meshbox.h"

namespace meshbox::test {
namespace {

constexpr auto kTimeout = 10s;
// A 200 ms delay as the client sees it: libuv measures timers from the loop's time cached at
// the start of the iteration, in whole milliseconds, so a timer can end up to ~2 ms before
// 200 ms have passed on the client's clock (seen: 199 ms).
constexpr int64_t kMinDelayMs = 197;

// Two backends as workloads v1 (b1) and v2 (b2) of the service "httpbin", a gateway on
// 127.0.0.1:`port`, and one virtual service for every host whose HTTP routes are `routes`
// ([[virtual_service.http]] tables).
std::string routes_config(uint16_t port, const Httpbin& b1, const Httpbin& b2,
                          const std::string& routes) {
  auto workload = [](const std::string& name, const std::string& version, const Httpbin& b) {
    const std::string& a = b.address();
    return "[[workload]]\nname = \"" + name + "\"\nservice = \"httpbin\"\naddress = \"" +
           a.substr(0, a.rfind(':')) + "\"\nport = " + a.substr(a.rfind(':') + 1) +
           "\nlabels = { version = \"" + version + "\" }\n\n";
  };
  return "[[service]]\nname = \"httpbin\"\nport = 8000\n\n" + workload("httpbin-v1", "v1", b1) +
         workload("httpbin-v2", "v2", b2) +
         "[[destination_rule]]\nname = \"httpbin\"\nhost = \"httpbin\"\n"
         "subsets = [{ name = \"v1\", labels = { version = \"v1\" } }, "
         "{ name = \"v2\", labels = { version = \"v2\" } }]\n\n"
         "[[gateway]]\nname = \"edge\"\nservers = [{ port = " +
         std::to_string(port) +
         ", bind = \"127.0.0.1\", protocol = \"http\", hosts = [\"*\"] }]\n\n"
         "[[virtual_service]]\nname = \"routes\"\nhosts = [\"*\"]\ngateways = [\"edge\"]\n\n" +
         routes;
}

// A mesh with two backends and the given routes; requests go to gw().
struct RoutesFixture {
  explicit RoutesFixture(const std::string& routes)
      : b1(dir, "b1"), b2(dir, "b2"), port(free_port()) {
    std::ofstream(dir.file("mesh.toml")) << routes_config(port, b1, b2, routes);
    mesh.emplace(dir, MeshOptions{.paths = {dir.file("mesh.toml")}});
  }
  std::string gw() const { return "127.0.0.1:" + std::to_string(port); }

  TempDir dir;
  Httpbin b1, b2;
  uint16_t port;
  std::optional<Mesh> mesh;
};

// What a backend's /headers saw.
struct Seen {
  int status = 0;
  std::string backend;  // x-backend-name of the response
  std::string target;
  std::vector<std::pair<std::string, std::string>> headers;
  HttpResponse response;

  std::vector<std::string> all(std::string_view name) const {
    std::vector<std::string> v;
    for (const auto& [n, val] : headers)
      if (iequals(n, name)) v.push_back(val);
    return v;
  }
  std::string dump() const {
    std::string s = response.summary() + "\n" + target + "\n";
    for (const auto& [n, v] : headers)
      s += "  " + n + ": " + v + "\n";
    return s + response.body.substr(0, 300);
  }
};

using Strings = std::vector<std::string>;

// GET `target` through the gateway with extra header lines; parses /headers' JSON if that is
// what came back.
Seen get(const std::string& gw, const std::string& target, const Strings& headers = {}) {
  std::string req = "GET " + target + " HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n";
  for (const auto& h : headers)
    req += h + "\r\n";
  Seen s;
  s.response = exchange(gw, req + "\r\n", Deadline(kTimeout));
  s.status = s.response.complete ? s.response.status : 0;
  if (const std::string* b = s.response.header("x-backend-name")) s.backend = *b;
  auto j = parse_json(s.response.body);
  if (s.status == 200 && j && j->get("target") && j->get("headers")) {
    s.target = j->get("target")->string;
    for (const Json& pair : j->get("headers")->array)
      if (pair.array.size() == 2)
        s.headers.emplace_back(pair.array[0].string, pair.array[1].string);
  }
  return s;
}

// The response headers curl saw (`curl -i`, the last response's block).
std::vector<std::pair<std::string, std::string>> curl_response_headers(const CurlHttpResult& r) {
  std::vector<std::pair<std::string, std::string>> out;
  size_t end = r.body.find("\r\n\r\n");
  std::string_view head = std::string_view(r.body).substr(0, end);
  size_t pos = head.find("\r\n");  // after the status line
  while (pos != std::string_view::npos && pos < head.size()) {
    size_t next = head.find("\r\n", pos + 2);
    std::string_view line =
        head.substr(pos + 2, next == std::string_view::npos ? next : next - pos - 2);
    size_t colon = line.find(':');
    if (colon != std::string_view::npos) {
      std::string_view v = line.substr(colon + 1);
      while (!v.empty() && v.front() == ' ')
        v.remove_prefix(1);
      out.emplace_back(std::string(line.substr(0, colon)), std::string(v));
    }
    pos = next;
  }
  return out;
}

Strings values(const std::vector<std::pair<std::string, std::string>>& headers,
               std::string_view name) {
  Strings v;
  for (const auto& [n, val] : headers)
    if (iequals(n, name)) v.push_back(val);
  return v;
}

// ---------------------------------------------------------------------------------------
// Header operations

TEST_CASE("routes: request header set/add/remove reach the backend; response ones the client") {
  RoutesFixture f(R"(
  [[virtual_service.http]]
  headers = { request = { set = { x-set = "new", X-Upper = "lowered", x-both = "set" }, add = { x-add = "added", x-both = "added" }, remove = ["x-remove", "user-agent"] }, response = { set = { x-backend-name = "renamed" }, add = { x-resp-add = "one" }, remove = ["x-backend-conn"] } }
  route = [{ destination = { host = "httpbin", subset = "v1" } }]
)");
  Seen s = get(f.gw(), "/headers",
               {"x-set: old-1", "x-set: old-2", "x-add: mine", "x-remove: gone", "User-Agent: test",
                "x-keep: kept"});
  INFO(s.dump());
  REQUIRE(s.status == 200);
  CHECK(s.all("x-set") == Strings{"new"});  // every old value replaced by one
  CHECK(s.all("x-upper") == Strings{"lowered"});
  CHECK(s.all("x-add") == Strings{"mine", "added"});  // appended, the client's kept
  CHECK(s.all("x-both") == Strings{"set", "added"});  // set, then add (Envoy's order)
  CHECK(s.all("x-remove").empty());
  CHECK(s.all("user-agent").empty());
  CHECK(s.all("x-keep") == Strings{"kept"});
  // The proxy's own headers are still there.
  CHECK(s.all("x-forwarded-for").size() == 1);
  CHECK(s.all("x-request-id").size() == 1);
  CHECK(s.all("host") == Strings{"example.com"});

  // Response operations, as curl sees them.
  auto r = curl_http({"-i", "http://" + f.gw() + "/"}, Deadline(kTimeout));
  INFO(r.run.summary());
  REQUIRE(r.status == 200);
  auto h = curl_response_headers(r);
  CHECK(values(h, "x-backend-name") == Strings{"renamed"});  // httpbin sent "b1"
  CHECK(values(h, "x-resp-add") == Strings{"one"});
  CHECK(values(h, "x-backend-conn").empty());
  CHECK(values(h, "content-length") == Strings{"14"});  // framing untouched
  CHECK(r.body.substr(r.body.find("\r\n\r\n") + 4) == "hello from b1\n");
}

TEST_CASE("routes: per-destination headers apply after the route's, for the destination picked") {
  RoutesFixture f(R"(
  [[virtual_service.http]]
  headers = { request = { set = { x-dest = "route", x-route = "yes" } }, response = { set = { x-picked = "route" } } }
  route = [
    { destination = { host = "httpbin", subset = "v1" }, weight = 50, headers = { request = { set = { x-dest = "v1" } }, response = { set = { x-picked = "v1" } } } },
    { destination = { host = "httpbin", subset = "v2" }, weight = 50, headers = { request = { set = { x-dest = "v2", host = "v2.internal" } }, response = { add = { x-picked = "v2" } } } },
  ]
)");
  std::set<std::string> seen;
  Deadline d(kTimeout);
  int n = 0;
  while (seen.size() < 2 && !d.expired() && n < 200) {
    ++n;
    Seen s = get(f.gw(), "/headers");
    INFO(s.dump());
    REQUIRE(s.status == 200);
    REQUIRE((s.backend == "b1" || s.backend == "b2"));
    seen.insert(s.backend);
    Strings picked = values(s.response.headers, "x-picked");
    CHECK(s.all("x-route") == Strings{"yes"});
    if (s.backend == "b1") {
      CHECK(s.all("x-dest") == Strings{"v1"});  // the destination's set wins
      CHECK(picked == Strings{"v1"});
      CHECK(s.all("host") == Strings{"example.com"});
    } else {
      CHECK(s.all("x-dest") == Strings{"v2"});
      CHECK(picked == Strings{"route", "v2"});  // the route's set, then the destination's add
      CHECK(s.all("host") == Strings{"v2.internal"});  // a Host header op: authority rewrite
    }
  }
  CHECK(seen == std::set<std::string>{"b1", "b2"});
}

// ---------------------------------------------------------------------------------------
// Rewrites

TEST_CASE("routes: uri rewrites replace the prefix matched, or the whole path; the query stays") {
  RoutesFixture f(R"(
  [[virtual_service.http]]
  match = [{ uri = { prefix = "/api/v1/" } }]
  rewrite = { uri = "/" }
  route = [{ destination = { host = "httpbin", subset = "v1" } }]

  [[virtual_service.http]]
  match = [{ uri = { exact = "/old-headers" } }, { uri = { regex = "/legacy/[a-z]+" } }]
  rewrite = { uri = "/headers" }
  route = [{ destination = { host = "httpbin", subset = "v1" } }]

  [[virtual_service.http]]
  match = [{ headers = { x-bare = { exact = "1" } } }]
  rewrite = { uri = "/hea" }
  route = [{ destination = { host = "httpbin", subset = "v1" } }]

  [[virtual_service.http]]
  match = [{ uri = { prefix = "/regex" } }]
  rewrite = { uri_regex_rewrite = { match = "^/regex/(v[0-9]+)/(.*)$", rewrite = "/\\2" } }
  route = [{ destination = { host = "httpbin", subset = "v1" } }]

  [[virtual_service.http]]
  match = [{ uri = { prefix = "/authority" } }]
  rewrite = { uri = "/headers", authority = "backend.internal:8000" }
  route = [{ destination = { host = "httpbin", subset = "v1" } }]

  [[virtual_service.http]]
  route = [{ destination = { host = "httpbin", subset = "v1" } }]
)");
  struct Case {
    std::string sent, target;
  };
  for (const Case& c : std::vector<Case>{
           {"/api/v1/headers?q=1&r=2", "/headers?q=1&r=2"},  // prefix → "/"
           {"/api/v1/headers", "/headers"},
           {"/old-headers?k=v", "/headers?k=v"},       // exact: the whole path
           {"/legacy/page?k=v", "/headers?k=v"},       // regex match: the whole path
           {"/regex/v2/headers?z=1", "/headers?z=1"},  // regex rewrite
           {"/headers?plain=1", "/headers?plain=1"},   // no rewrite
       }) {
    Seen s = get(f.gw(), c.sent);
    INFO(c.sent << "\n" << s.dump());
    CHECK(s.status == 200);
    CHECK(s.target == c.target);
    CHECK(s.all("host") == Strings{"example.com"});
  }
  // A block without a uri condition is Istio's prefix "/": only the leading "/" is swapped.
  Seen bare = get(f.gw(), "/ders?b=1", {"x-bare: 1"});
  INFO(bare.dump());
  CHECK(bare.target == "/headers?b=1");
  // A regex rewrite whose pattern does not match leaves the path alone (httpbin: 404).
  CHECK(get(f.gw(), "/regex/headers").status == 404);

  Seen auth = get(f.gw(), "/authority?a=1");
  INFO(auth.dump());
  CHECK(auth.target == "/headers?a=1");
  CHECK(auth.all("host") == Strings{"backend.internal:8000"});
}

// ---------------------------------------------------------------------------------------
// Faults

constexpr std::string_view kAbortBody = "fault filter abort\n";

TEST_CASE("routes: an abort at 100 % answers itself and never reaches the backend; 0 % never") {
  RoutesFixture f(R"(
  [[virtual_service.http]]
  match = [{ uri = { prefix = "/always" } }]
  fault = { abort = { http_status = 555, percentage = 100 } }
  route = [{ destination = { host = "httpbin", subset = "v1" } }]

  [[virtual_service.http]]
  fault = { abort = { http_status = 503, percentage = 0 } }
  route = [{ destination = { host = "httpbin", subset = "v1" } }]
)");
  int64_t before = f.b1.stats().requests_total;
  REQUIRE(before >= 1);
  // Keep-alive: an abort leaves the connection usable.
  HttpClient c = HttpClient::connect(f.gw(), Deadline(kTimeout));
  REQUIRE(c.valid());
  for (int i = 0; i < 20; ++i) {
    REQUIRE(c.send("GET /always/x HTTP/1.1\r\nHost: example.com\r\n\r\n", Deadline(kTimeout)));
    HttpResponse r = c.read_response(Deadline(kTimeout));
    INFO(r.summary());
    REQUIRE(r.complete);
    CHECK(r.status == 555);
    CHECK(r.body == kAbortBody);
    CHECK(r.header("x-backend-name") == nullptr);
  }
  // With a body: answered at once, the connection closed (the rest of a body would not be
  // read). A small body, all in the first read, so that closing does not reset.
  std::string body(100, 'x');
  HttpResponse post = exchange(f.gw(),
                               "POST /always HTTP/1.1\r\nHost: example.com\r\nContent-Length: " +
                                   std::to_string(body.size()) + "\r\n\r\n" + body,
                               Deadline(kTimeout));
  INFO(post.summary());
  CHECK(post.status == 555);
  CHECK(post.body == kAbortBody);
  // Nothing reached b1 but the two /stats requests themselves.
  CHECK(f.b1.stats().requests_total == before + 1);

  // 0 %: every request reaches the backend.
  for (int i = 0; i < 20; ++i) {
    REQUIRE(c.send("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n", Deadline(kTimeout)));
    HttpResponse r = c.read_response(Deadline(kTimeout));
    REQUIRE(r.complete);
    CHECK(r.status == 200);
    CHECK(r.body == "hello from b1\n");
  }
  CHECK(f.b1.stats().requests_total == before + 1 + 20 + 1);
}

TEST_CASE("routes: an abort at 50 % aborts about half of 400 requests") {
  RoutesFixture f(R"(
  [[virtual_service.http]]
  fault = { abort = { http_status = 503, percentage = 50 } }
  route = [{ destination = { host = "httpbin", subset = "v1" } }]
)");
  int64_t before = f.b1.stats().requests_total;
  constexpr int kRequests = 400;
  int aborted = 0, passed = 0;
  HttpClient c = HttpClient::connect(f.gw(), Deadline(kTimeout));
  REQUIRE(c.valid());
  for (int i = 0; i < kRequests; ++i) {
    REQUIRE(c.send("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n", Deadline(kTimeout)));
    HttpResponse r = c.read_response(Deadline(kTimeout));
    REQUIRE(r.complete);
    if (r.status == 503 && r.body == kAbortBody) {
      ++aborted;
    } else if (r.status == 200 && r.body == "hello from b1\n") {
      ++passed;
    }
  }
  // Aborted ~ Binomial(400, 0.5): mean 200, standard deviation sqrt(400 × 0.25) = 10. ±50 is
  // five standard deviations: a correct proxy fails this about once in 1.7 million runs,
  // while 40 % or 60 % (mean 160 or 240, sd ≈ 9.8) would fail it most of the time.
  MESSAGE("aborted " << aborted << " of " << kRequests);
  CHECK(aborted + passed == kRequests);
  CHECK(std::abs(aborted - kRequests / 2) <= 50);
  // The backend saw exactly the requests that were not aborted (+ this /stats).
  CHECK(f.b1.stats().requests_total == before + passed + 1);
}

// ---------------------------------------------------------------------------------------
// Weights

TEST_CASE("routes: a 90/10 split lands within 3 points over 2,000 requests") {
  RoutesFixture f(R"(
  [[virtual_service.http]]
  route = [
    { destination = { host = "httpbin", subset = "v1" }, weight = 90 },
    { destination = { host = "httpbin", subset = "v2" }, weight = 10 },
  ]
)");
  constexpr int kRequests = 2000;
  int to_v1 = 0, to_v2 = 0;
  HttpClient c = HttpClient::connect(f.gw(), Deadline(kTimeout));
  REQUIRE(c.valid());
  for (int i = 0; i < kRequests; ++i) {
    REQUIRE(c.send("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n", Deadline(kTimeout)));
    HttpResponse r = c.read_response(Deadline(kTimeout));
    REQUIRE(r.complete);
    REQUIRE(r.status == 200);
    const std::string* b = r.header("x-backend-name");
    REQUIRE(b);
    (*b == "b1" ? to_v1 : to_v2)++;
  }
  // v1 ~ Binomial(2000, 0.9): mean 1800, sd sqrt(2000 x 0.09) = 13.4. Three points (60
  // requests) is 4.5 sd: a correct split fails about once in 150,000 runs; 87/13 or 93/7 fails
  // most of the time.
  double share = 100.0 * to_v1 / kRequests;
  MESSAGE("90/10 split over " << kRequests << " requests: v1 " << share << " %, v2 "
                              << 100.0 * to_v2 / kRequests << " %");
  CHECK(to_v1 + to_v2 == kRequests);
  CHECK(std::abs(share - 90.0) <= 3.0);
}

TEST_CASE("routes: a fixed delay at 100 % delays the request; at 0 % never") {
  RoutesFixture f(R"(
  [[virtual_service.http]]
  match = [{ headers = { x-case = { exact = "delay" } } }]
  fault = { delay = { fixed_delay = "200ms", percentage = 100 } }
  route = [{ destination = { host = "httpbin", subset = "v1" } }]

  [[virtual_service.http]]
  match = [{ headers = { x-case = { exact = "delay-abort" } } }]
  fault = { delay = { fixed_delay = "200ms", percentage = 100 }, abort = { http_status = 503, percentage = 100 } }
  route = [{ destination = { host = "httpbin", subset = "v1" } }]

  [[virtual_service.http]]
  fault = { delay = { fixed_delay = "5s", percentage = 0 } }
  route = [{ destination = { host = "httpbin", subset = "v1" } }]
)");
  // Keep-alive: a delayed request, then a plain one on the same connection.
  HttpClient c = HttpClient::connect(f.gw(), Deadline(kTimeout));
  REQUIRE(c.valid());
  for (int i = 0; i < 3; ++i) {
    auto t0 = Deadline::Clock::now();
    REQUIRE(c.send("GET /headers HTTP/1.1\r\nHost: example.com\r\nx-case: delay\r\n\r\n",
                   Deadline(kTimeout)));
    HttpResponse r = c.read_response(Deadline(kTimeout));
    int64_t ms = ms_since(t0);
    INFO(r.summary() << ", " << ms << " ms");
    REQUIRE(r.complete);
    CHECK(r.status == 200);
    REQUIRE(r.header("x-backend-name"));
    CHECK(*r.header("x-backend-name") == "b1");
    CHECK(r.body.find("\"target\":\"/headers\"") != std::string::npos);
    CHECK(ms >= kMinDelayMs);
    CHECK(ms < 5'000);

    // 0 %: not delayed (the configured 5 s would show).
    t0 = Deadline::Clock::now();
    REQUIRE(c.send("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n", Deadline(kTimeout)));
    HttpResponse plain = c.read_response(Deadline(kTimeout));
    ms = ms_since(t0);
    INFO(plain.summary() << ", " << ms << " ms");
    CHECK(plain.status == 200);
    CHECK(plain.body == "hello from b1\n");
    CHECK(ms < 2'500);
  }

  // Delay and abort: delayed, then aborted; the backend never sees it.
  int64_t before = f.b1.stats().requests_total;
  auto t0 = Deadline::Clock::now();
  Seen s = get(f.gw(), "/headers", {"x-case: delay-abort"});
  int64_t ms = ms_since(t0);
  INFO(s.dump() << ", " << ms << " ms");
  CHECK(s.status == 503);
  CHECK(s.response.body == kAbortBody);
  CHECK(ms >= kMinDelayMs);
  CHECK(f.b1.stats().requests_total == before + 1);
}

TEST_CASE("routes: a delayed POST's body arrives whole, sized or chunked") {
  RoutesFixture f(R"(
  [[virtual_service.http]]
  fault = { delay = { fixed_delay = "200ms", percentage = 100 } }
  route = [{ destination = { host = "httpbin", subset = "v1" } }]
)");
  // 1 MiB of varied bytes, sent together with the head: the proxy has part of it in hand
  // when the delay starts and must keep it, and read the rest once the delay is over.
  std::string body(1 << 20, '\0');
  for (size_t i = 0; i < body.size(); ++i)
    body[i] = static_cast<char>((i * 131 + i / 977) & 0xff);
  Fnv1a want;
  want.update(body);
  std::string expected =
      "{\"bytes\":" + std::to_string(body.size()) + ",\"fnv1a\":\"" + want.hex() + "\"}";

  HttpClient c = HttpClient::connect(f.gw(), Deadline(kTimeout));
  REQUIRE(c.valid());
  auto t0 = Deadline::Clock::now();
  REQUIRE(c.send("POST /upload HTTP/1.1\r\nHost: example.com\r\nContent-Length: " +
                     std::to_string(body.size()) + "\r\n\r\n" + body,
                 Deadline(kTimeout)));
  HttpResponse r = c.read_response(Deadline(kTimeout));
  int64_t ms = ms_since(t0);
  INFO(r.summary() << ", " << ms << " ms");
  REQUIRE(r.complete);
  CHECK(r.status == 200);
  CHECK(r.body.find(expected) != std::string::npos);
  CHECK(ms >= kMinDelayMs);

  // Chunked, on the same connection: the head and the first chunks in one send.
  std::string chunked =
      "POST /upload HTTP/1.1\r\nHost: example.com\r\n"
      "Transfer-Encoding: chunked\r\n\r\n";
  Fnv1a want2;
  size_t total = 0;
  for (size_t size : {1u, 10u, 1000u, 65'536u, 300'000u, 7u}) {
    std::string piece = body.substr(total, size);
    want2.update(piece);
    total += size;
    char line[32];
    snprintf(line, sizeof line, "%zx\r\n", size);
    chunked += line + piece + "\r\n";
  }
  chunked += "0\r\n\r\n";
  t0 = Deadline::Clock::now();
  REQUIRE(c.send(chunked, Deadline(kTimeout)));
  HttpResponse r2 = c.read_response(Deadline(kTimeout));
  ms = ms_since(t0);
  INFO(r2.summary() << ", " << ms << " ms");
  REQUIRE(r2.complete);
  CHECK(r2.status == 200);
  CHECK(r2.body.find("{\"bytes\":" + std::to_string(total) + ",\"fnv1a\":\"" + want2.hex() +
                     "\"}") != std::string::npos);
  CHECK(ms >= kMinDelayMs);
}

}  // namespace
}  // namespace meshbox::test
