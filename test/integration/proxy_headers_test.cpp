// Header rewriting by the HTTP proxy, observed from both ends: meshbox-httpbin /headers shows
// what reached the upstream, a fake upstream sends hop-by-hop response headers.
#include <doctest/doctest.h>

#include "test/support/deadline.h"
#include "test/support/fake_upstream.h"
#include "test/support/http_response.h"
#include "test/support/json.h"
#include "test/support/meshbox.h"

namespace meshbox::test {
namespace {

constexpr auto kTimeout = 10s;

// The headers the upstream received, from httpbin's /headers JSON.
struct Seen {
  std::vector<std::pair<std::string, std::string>> headers;
  std::string method, target;

  std::vector<std::string> all(std::string_view name) const {
    std::vector<std::string> v;
    for (const auto& [n, val] : headers) {
      if (iequals(n, name)) v.push_back(val);
    }
    return v;
  }
  std::string dump() const {
    std::string s = method + " " + target + "\n";
    for (const auto& [n, v] : headers)
      s += "  " + n + ": " + v + "\n";
    return s;
  }
};

Seen seen_by_upstream(const std::string& proxy, const std::string& request) {
  HttpResponse r = exchange(proxy, request, Deadline(kTimeout));
  INFO("request:\n" << request << "\nresponse: " << r.summary());
  REQUIRE(r.complete);
  REQUIRE(r.status == 200);
  auto j = parse_json(r.body);
  REQUIRE(j);
  Seen s;
  s.method = j->get("method")->string;
  s.target = j->get("target")->string;
  for (const Json& pair : j->get("headers")->array) {
    REQUIRE(pair.array.size() == 2);
    s.headers.emplace_back(pair.array[0].string, pair.array[1].string);
  }
  return s;
}

// "a, b" and two headers "a" / "b" are the same list.
std::string joined(const std::vector<std::string>& values) {
  std::string s;
  for (const auto& v : values) {
    for (char c : v) {
      if (c != ' ') s += c;
    }
    s += ',';
  }
  if (!s.empty()) s.pop_back();
  return s;
}

TEST_CASE("proxy: an earlier hop's X-Forwarded-Proto stands, as one value") {
  // A gateway that terminated TLS said https; the sidecar after it must not make that
  // "https, http" (Envoy keeps the header when the request is not from an edge).
  ProxyFixture f;
  Seen s = seen_by_upstream(f.proxy.address(),
                            "GET /headers HTTP/1.1\r\nHost: a\r\nX-Forwarded-Proto: https\r\n\r\n");
  INFO(s.dump());
  CHECK(s.all("x-forwarded-proto") == std::vector<std::string>{"https"});
}

TEST_CASE("proxy: adds X-Forwarded-For/-Proto and x-request-id, keeps Host") {
  ProxyFixture f;
  Seen s = seen_by_upstream(
      f.proxy.address(),
      "GET /headers?x=1 HTTP/1.1\r\nHost: example.test:8080\r\nUser-Agent: t\r\n\r\n");
  INFO(s.dump());
  CHECK(s.method == "GET");
  CHECK(s.target == "/headers?x=1");
  CHECK(s.all("host") == std::vector<std::string>{"example.test:8080"});
  CHECK(joined(s.all("x-forwarded-for")) == "127.0.0.1");
  CHECK(s.all("x-forwarded-proto") == std::vector<std::string>{"http"});
  auto ids = s.all("x-request-id");
  REQUIRE(ids.size() == 1);
  CHECK(ids[0].size() >= 8);
  CHECK(s.all("user-agent") == std::vector<std::string>{"t"});

  Seen s2 = seen_by_upstream(f.proxy.address(), "GET /headers HTTP/1.1\r\nHost: h\r\n\r\n");
  INFO(s2.dump());
  REQUIRE(s2.all("x-request-id").size() == 1);
  CHECK(s2.all("x-request-id")[0] != ids[0]);  // a fresh id per request
}

TEST_CASE("proxy: appends to X-Forwarded-For and keeps an existing x-request-id") {
  ProxyFixture f;
  Seen s = seen_by_upstream(f.proxy.address(),
                            "GET /headers HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 10.1.2.3\r\n"
                            "X-Request-Id: req-abc-123\r\n\r\n");
  INFO(s.dump());
  CHECK(joined(s.all("x-forwarded-for")) == "10.1.2.3,127.0.0.1");
  CHECK(s.all("x-request-id") == std::vector<std::string>{"req-abc-123"});
}

TEST_CASE("proxy: removes hop-by-hop request headers and those named in Connection") {
  ProxyFixture f;
  Seen s = seen_by_upstream(f.proxy.address(),
                            "GET /headers HTTP/1.1\r\nHost: h\r\n"
                            "Connection: keep-alive, X-Hop-A\r\n"
                            "Keep-Alive: timeout=5\r\n"
                            "X-Hop-A: 1\r\n"
                            "Proxy-Connection: keep-alive\r\n"
                            "TE: gzip\r\n"
                            "Connection: x-hop-b\r\n"
                            "X-Hop-B: 2\r\n"
                            "X-End-To-End: kept\r\n\r\n");
  INFO(s.dump());
  for (std::string gone : {"keep-alive", "x-hop-a", "x-hop-b", "proxy-connection", "te"}) {
    CAPTURE(gone);
    CHECK(s.all(gone).empty());
  }
  // The proxy may send a Connection header of its own, but not the client's tokens.
  for (const auto& v : s.all("connection")) {
    CAPTURE(v);
    CHECK(v.find("hop") == std::string::npos);
    CHECK(v.find("Hop") == std::string::npos);
  }
  CHECK(s.all("x-end-to-end") == std::vector<std::string>{"kept"});
}

TEST_CASE("proxy: removes hop-by-hop response headers and those named in Connection") {
  FakeUpstream up([](TcpConn& c, int) {
    std::string buf;
    while (read_request_head(c, buf, Deadline(kTimeout))) {
      buf.erase(0, buf.find("\r\n\r\n") + 4);
      c.send_all(
          "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: X-Resp-Hop\r\n"
          "X-Resp-Hop: secret\r\nKeep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\n"
          "X-End: 1\r\n\r\nok",
          Deadline(kTimeout));
    }
  });
  TempDir dir;
  Proxy proxy(dir, ProxyOptions{.to = {up.address()}});
  HttpResponse r =
      exchange(proxy.address(), "GET / HTTP/1.1\r\nHost: h\r\n\r\n", Deadline(kTimeout));
  INFO(r.summary());
  REQUIRE(r.complete);
  CHECK(r.status == 200);
  CHECK(r.body == "ok");
  CHECK(r.count("x-end") == 1);
  CHECK(r.count("x-resp-hop") == 0);
  CHECK(r.count("keep-alive") == 0);
  CHECK(r.count("proxy-connection") == 0);
  if (const std::string* conn = r.header("connection"))
    CHECK(conn->find("Hop") == std::string::npos);
}

}  // namespace
}  // namespace meshbox::test
