// The HTTP proxy's ordinary paths: curl GET/POST, HTTP/1.0 clients, HEAD, client keep-alive,
// pipelining, Expect: 100-continue and upstream connection reuse.
#include <doctest/doctest.h>

#include <set>

#include "test/support/curl.h"
#include "test/support/deadline.h"
#include "test/support/http_response.h"
#include "test/support/json.h"
#include "test/support/meshbox.h"

namespace meshbox::test {
namespace {

constexpr auto kTimeout = 10s;

TEST_CASE("proxy: GET with curl") {
  ProxyFixture f;
  auto r = curl_http({f.url("/")}, Deadline(kTimeout));
  INFO(r.run.summary());
  CHECK(r.run.exit_code == 0);
  CHECK(r.status == 200);
  CHECK(r.body == "hello from b1\n");
}

TEST_CASE("proxy: POST with curl is echoed back") {
  ProxyFixture f;
  std::string body = "hello through the proxy\n";
  for (int i = 0; i < 1000; ++i)
    body += std::to_string(i) + ",";
  auto r = curl_http({"--data-binary", body, "-H", "Content-Type: text/plain", f.url("/echo")},
                     Deadline(kTimeout));
  INFO(r.run.summary());
  CHECK(r.run.exit_code == 0);
  CHECK(r.status == 200);
  CHECK(r.body == body);
}

TEST_CASE("proxy: a status code from the upstream passes through") {
  ProxyFixture f;
  for (int code : {201, 204, 404, 418, 500, 503}) {
    CAPTURE(code);
    auto r = curl_http({f.url("/status/" + std::to_string(code))}, Deadline(kTimeout));
    INFO(r.run.summary());
    CHECK(r.run.exit_code == 0);
    CHECK(r.status == code);
  }
}

TEST_CASE("proxy: HTTP/1.0 client") {
  ProxyFixture f;

  SUBCASE("curl --http1.0") {
    auto r = curl_http({"--http1.0", f.url("/")}, Deadline(kTimeout));
    INFO(r.run.summary());
    CHECK(r.run.exit_code == 0);
    CHECK(r.status == 200);
    CHECK(r.body == "hello from b1\n");
  }

  SUBCASE("raw request without Host; the proxy closes after the response") {
    HttpClient c = HttpClient::connect(f.proxy.address(), Deadline(kTimeout));
    REQUIRE(c.valid());
    REQUIRE(c.send("GET / HTTP/1.0\r\n\r\n", Deadline(kTimeout)));
    HttpResponse r = c.read_response(Deadline(kTimeout));
    INFO(r.summary());
    REQUIRE(r.complete);
    CHECK(r.status == 200);
    CHECK(r.body == "hello from b1\n");
    CHECK(c.wait_closed(Deadline(kTimeout)));
  }

  SUBCASE("a chunked upstream response is not sent chunked to an HTTP/1.0 client") {
    HttpClient c = HttpClient::connect(f.proxy.address(), Deadline(kTimeout));
    REQUIRE(c.valid());
    REQUIRE(c.send("GET /bytes/100000?chunked=1 HTTP/1.0\r\nHost: t\r\n\r\n", Deadline(kTimeout)));
    HttpResponse r = c.read_response(Deadline(kTimeout));
    INFO(r.summary());
    REQUIRE(r.complete);
    CHECK(r.status == 200);
    CHECK(r.framing != HttpResponse::Framing::Chunked);
    CHECK(!r.header("transfer-encoding"));
    REQUIRE(r.body.size() == 100000);
    CHECK(matches_bytes_pattern(r.body, 0));
  }

  SUBCASE("HTTP/1.0 with Connection: keep-alive may keep the connection") {
    HttpClient c = HttpClient::connect(f.proxy.address(), Deadline(kTimeout));
    REQUIRE(c.valid());
    REQUIRE(
        c.send("GET / HTTP/1.0\r\nHost: t\r\nConnection: keep-alive\r\n\r\n", Deadline(kTimeout)));
    HttpResponse r = c.read_response(Deadline(kTimeout));
    INFO(r.summary());
    REQUIRE(r.complete);
    CHECK(r.status == 200);
    CHECK(r.framing == HttpResponse::Framing::ContentLength);  // else it could not keep it
  }
}

TEST_CASE("proxy: HEAD has no body and the connection stays usable") {
  ProxyFixture f;
  HttpClient c = HttpClient::connect(f.proxy.address(), Deadline(kTimeout));
  REQUIRE(c.valid());
  REQUIRE(c.send("HEAD /bytes/5000 HTTP/1.1\r\nHost: t\r\n\r\n", Deadline(kTimeout)));
  HttpClient::ReadOptions head;
  head.method = "HEAD";
  HttpResponse r = c.read_response(Deadline(kTimeout), head);
  INFO(r.summary());
  REQUIRE(r.complete);
  CHECK(r.status == 200);
  CHECK(r.body_bytes == 0);
  REQUIRE(c.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n", Deadline(kTimeout)));
  HttpResponse r2 = c.read_response(Deadline(kTimeout));
  INFO(r2.summary());
  CHECK(c.pending().empty());  // no stray body bytes came after the HEAD response
  CHECK(r2.status == 200);
  CHECK(r2.body == "hello from b1\n");
}

TEST_CASE("proxy: HEAD of a chunked resource has no body either") {
  ProxyFixture f;
  HttpClient c = HttpClient::connect(f.proxy.address(), Deadline(kTimeout));
  REQUIRE(c.valid());
  HttpClient::ReadOptions head;
  head.method = "HEAD";
  for (int i = 0; i < 2; ++i) {
    REQUIRE(c.send("HEAD /bytes/5000?chunked=1 HTTP/1.1\r\nHost: t\r\n\r\n", Deadline(kTimeout)));
    HttpResponse r = c.read_response(Deadline(kTimeout), head);
    INFO(r.summary());
    REQUIRE(r.complete);
    CHECK(r.status == 200);
  }
  REQUIRE(c.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n", Deadline(kTimeout)));
  HttpResponse r = c.read_response(Deadline(kTimeout));
  INFO(r.summary() << "; before it: " << c.pending().size() << " stray bytes");
  CHECK(r.status == 200);
  CHECK(r.body == "hello from b1\n");
}

TEST_CASE("proxy: client keep-alive serves many requests on one connection") {
  ProxyFixture f;
  HttpClient c = HttpClient::connect(f.proxy.address(), Deadline(kTimeout));
  REQUIRE(c.valid());
  for (int i = 0; i < 20; ++i) {
    CAPTURE(i);
    std::string target = "/bytes/" + std::to_string(i * 100);
    REQUIRE(c.send("GET " + target + " HTTP/1.1\r\nHost: t\r\n\r\n", Deadline(kTimeout)));
    HttpResponse r = c.read_response(Deadline(kTimeout));
    INFO(r.summary());
    REQUIRE(r.complete);
    CHECK(r.status == 200);
    CHECK(r.body_bytes == static_cast<uint64_t>(i * 100));
  }
}

TEST_CASE("proxy: pipelined requests are answered in order") {
  ProxyFixture f;
  HttpClient c = HttpClient::connect(f.proxy.address(), Deadline(kTimeout));
  REQUIRE(c.valid());
  // Three requests in one write; the middle one has a body. The first is slow, so the
  // later answers are ready first and must wait for it.
  REQUIRE(
      c.send("GET /delay/200 HTTP/1.1\r\nHost: t\r\n\r\n"
             "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello"
             "GET /status/203 HTTP/1.1\r\nHost: t\r\n\r\n",
             Deadline(kTimeout)));
  HttpResponse r1 = c.read_response(Deadline(kTimeout));
  HttpResponse r2 = c.read_response(Deadline(kTimeout));
  HttpResponse r3 = c.read_response(Deadline(kTimeout));
  INFO(r1.summary() << "\n" << r2.summary() << "\n" << r3.summary());
  CHECK(r1.complete);
  CHECK(r1.status == 200);
  CHECK(r2.complete);
  CHECK(r2.status == 200);
  CHECK(r2.body == "hello");
  CHECK(r3.complete);
  CHECK(r3.status == 203);
}

TEST_CASE("proxy: 100 pipelined requests in one write are answered in order") {
  ProxyFixture f;
  HttpClient c = HttpClient::connect(f.proxy.address(), Deadline(kTimeout));
  REQUIRE(c.valid());
  std::string batch;
  for (int i = 0; i < 100; ++i)
    batch += "GET /bytes/" + std::to_string(i) + " HTTP/1.1\r\nHost: t\r\n\r\n";
  REQUIRE(c.send(batch, Deadline(kTimeout)));
  for (int i = 0; i < 100; ++i) {
    CAPTURE(i);
    HttpResponse r = c.read_response(Deadline(kTimeout));
    INFO(r.summary());
    REQUIRE(r.complete);
    CHECK(r.status == 200);
    CHECK(r.body_bytes == static_cast<uint64_t>(i));
  }
}

TEST_CASE("proxy: Expect: 100-continue is answered before the body is sent") {
  ProxyFixture f;
  HttpClient c = HttpClient::connect(f.proxy.address(), Deadline(kTimeout));
  REQUIRE(c.valid());
  REQUIRE(
      c.send("POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: 11\r\n"
             "Expect: 100-continue\r\n\r\n",
             Deadline(kTimeout)));
  // Nothing of the body is sent until the 100 arrives.
  HttpResponse interim = c.read_response(Deadline(3s));
  INFO(interim.summary());
  REQUIRE(interim.head_complete);
  CHECK(interim.status == 100);
  REQUIRE(c.send("hello world", Deadline(kTimeout)));
  HttpResponse r = c.read_response(Deadline(kTimeout));
  int extra_interim = 0;
  while (r.head_complete && r.status == 100 && extra_interim < 3) {
    ++extra_interim;  // a second 100 (the upstream's own) is legal, though wasteful
    r = c.read_response(Deadline(kTimeout));
  }
  INFO(r.summary());
  REQUIRE(r.complete);
  CHECK(r.status == 200);
  auto j = parse_json(r.body);
  REQUIRE(j);
  CHECK(j->get("bytes")->number == 11);
  Fnv1a h;
  h.update("hello world");
  CHECK(j->get("fnv1a")->string == h.hex());
  if (extra_interim) MESSAGE("the client got " << 1 + extra_interim << " '100 Continue' responses");
}

TEST_CASE("proxy: upstream connections are reused (keep-alive pool)") {
  constexpr int kWorkers = 2, kClients = 4, kRequests = 200;
  ProxyFixture f(ProxyOptions{.workers = kWorkers, .log_level = "info"});
  int64_t before = f.backend.stats().connections_total;
  REQUIRE(before >= 1);

  std::vector<HttpClient> clients;
  for (int i = 0; i < kClients; ++i) {
    clients.push_back(HttpClient::connect(f.proxy.address(), Deadline(kTimeout)));
    REQUIRE(clients.back().valid());
  }
  Deadline deadline(30s);
  std::set<std::string> backend_conns;
  for (int i = 0; i < kRequests; ++i) {
    HttpClient& c = clients[static_cast<size_t>(i % kClients)];
    CAPTURE(i);
    REQUIRE(c.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n", deadline));
    HttpResponse r = c.read_response(deadline);
    INFO(r.summary());
    REQUIRE(r.complete);
    REQUIRE(r.status == 200);
    if (const std::string* conn = r.header("x-backend-conn")) backend_conns.insert(*conn);
  }
  // Each stats request opens one connection of its own: the second one counts itself.
  int64_t after = f.backend.stats().connections_total;
  int64_t upstream_conns = after - before - 1;
  MESSAGE(kRequests << " requests over " << kClients << " client connections used "
                    << upstream_conns << " upstream connection(s) (" << backend_conns.size()
                    << " distinct x-backend-conn values), " << kWorkers << " workers");
  CHECK(upstream_conns >= 1);
  CHECK(upstream_conns <= kWorkers * kClients);
  CHECK(backend_conns.size() <= static_cast<size_t>(kWorkers * kClients));
}

}  // namespace
}  // namespace meshbox::test
