// Upstream selection and connection lifetimes: round robin over several --to addresses,
// pooled connections the upstream has closed, responses delimited by the close, and the
// idle timeouts on both sides.
#include <doctest/doctest.h>

#include <atomic>
#include <map>

#include "test/support/deadline.h"
#include "test/support/fake_upstream.h"
#include "test/support/http_response.h"
#include "test/support/meshbox.h"

namespace meshbox::test {
namespace {

constexpr auto kTimeout = 10s;

TEST_CASE("proxy: requests are spread round robin over the --to addresses") {
  TempDir dir;
  Httpbin b1(dir, "b1"), b2(dir, "b2");
  Proxy proxy(dir, ProxyOptions{.to = {b1.address(), b2.address()}, .workers = 1});
  HttpClient c = HttpClient::connect(proxy.address(), Deadline(kTimeout));
  REQUIRE(c.valid());
  std::map<std::string, int> seen;
  for (int i = 0; i < 10; ++i) {
    REQUIRE(c.send("GET / HTTP/1.1\r\nHost: h\r\n\r\n", Deadline(kTimeout)));
    HttpResponse r = c.read_response(Deadline(kTimeout));
    INFO(r.summary());
    REQUIRE(r.complete);
    const std::string* name = r.header("x-backend-name");
    REQUIRE(name);
    ++seen[*name];
  }
  CHECK(seen["b1"] == 5);
  CHECK(seen["b2"] == 5);
}

TEST_CASE("proxy: an upstream response with Connection: close is not reused") {
  std::atomic<int> requests{0};
  FakeUpstream up([&](TcpConn& c, int serial) {
    std::string buf;
    if (!read_request_head(c, buf, Deadline(kTimeout))) return;
    ++requests;
    c.send_all("HTTP/1.1 200 OK\r\nContent-Length: 4\r\nConnection: close\r\n\r\nc" +
                   std::to_string(serial % 10) + "\r\n",
               Deadline(kTimeout));
  });
  TempDir dir;
  Proxy proxy(dir, ProxyOptions{.to = {up.address()}, .workers = 1});
  HttpClient c = HttpClient::connect(proxy.address(), Deadline(kTimeout));
  REQUIRE(c.valid());
  for (int i = 0; i < 5; ++i) {
    CAPTURE(i);
    REQUIRE(c.send("GET / HTTP/1.1\r\nHost: h\r\n\r\n", Deadline(kTimeout)));
    HttpResponse r = c.read_response(Deadline(kTimeout));
    INFO(r.summary());
    REQUIRE(r.complete);
    CHECK(r.status == 200);
  }
  CHECK(up.connections() == 5);
  CHECK(requests.load() == 5);
}

TEST_CASE("proxy: a pooled connection the upstream closed while idle is not used") {
  // Each upstream connection serves one keep-alive response, then the upstream closes it
  // (as servers with a short keep-alive timeout do).
  std::atomic<int> closed{0};
  FakeUpstream up([&](TcpConn& c, int) {
    std::string buf;
    if (read_request_head(c, buf, Deadline(kTimeout)))
      c.send_all("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", Deadline(kTimeout));
    c.close();
    ++closed;
  });
  TempDir dir;
  Proxy proxy(dir, ProxyOptions{.to = {up.address()}, .workers = 1});
  HttpClient c = HttpClient::connect(proxy.address(), Deadline(kTimeout));
  REQUIRE(c.valid());
  for (int i = 0; i < 5; ++i) {
    CAPTURE(i);
    REQUIRE(c.send("GET / HTTP/1.1\r\nHost: h\r\n\r\n", Deadline(kTimeout)));
    HttpResponse r = c.read_response(Deadline(kTimeout));
    INFO(r.summary());
    REQUIRE(r.complete);
    CHECK(r.status == 200);
    CHECK(r.body == "ok");
    // Let the upstream's FIN reach the proxy before the next request.
    Deadline wait(kTimeout);
    while (closed.load() < i + 1 && !wait.expired())
      poll_pause(1ms);
    REQUIRE(closed.load() == i + 1);
  }
}

TEST_CASE("proxy: an upstream response delimited by the close reaches the client whole") {
  FakeUpstream up([](TcpConn& c, int) {
    std::string buf;
    if (!read_request_head(c, buf, Deadline(kTimeout))) return;
    c.send_all("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n", Deadline(kTimeout));
    for (int i = 0; i < 100; ++i)
      c.send_all(std::string(1000, 'a' + i % 26), Deadline(kTimeout));
  });  // returning closes: that ends the body
  TempDir dir;
  Proxy proxy(dir, ProxyOptions{.to = {up.address()}});
  HttpClient c = HttpClient::connect(proxy.address(), Deadline(kTimeout));
  REQUIRE(c.valid());
  REQUIRE(c.send("GET / HTTP/1.1\r\nHost: h\r\n\r\n", Deadline(kTimeout)));
  HttpResponse r = c.read_response(Deadline(kTimeout));
  INFO(r.summary());
  REQUIRE(r.complete);
  CHECK(r.status == 200);
  REQUIRE(r.body.size() == 100000);
  CHECK(r.body.substr(99000) == std::string(1000, 'a' + 99 % 26));
}

TEST_CASE("proxy: --idle-timeout closes an idle client connection") {
  ProxyFixture f(ProxyOptions{.flags = {"--idle-timeout", "300ms"}});
  HttpClient c = HttpClient::connect(f.proxy.address(), Deadline(kTimeout));
  REQUIRE(c.valid());
  REQUIRE(c.send("GET / HTTP/1.1\r\nHost: h\r\n\r\n", Deadline(kTimeout)));
  HttpResponse r = c.read_response(Deadline(kTimeout));
  REQUIRE(r.complete);
  auto start = Deadline::Clock::now();
  RecvStatus how = RecvStatus::Error;
  CHECK(c.wait_closed(Deadline(5s), &how));
  int64_t took = ms_since(start);
  INFO("closed (" << to_string(how) << ") after " << took << " ms idle");
  CHECK(took >= 250);
  CHECK(took < 3000);
}

TEST_CASE("proxy: --upstream-idle-timeout closes unused pooled connections") {
  ProxyFixture f(ProxyOptions{.flags = {"--upstream-idle-timeout", "300ms"}, .workers = 1});
  HttpResponse r =
      exchange(f.proxy.address(), "GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
               Deadline(kTimeout));
  INFO(r.summary());
  REQUIRE(r.complete);
  auto start = Deadline::Clock::now();
  // Only the /stats connection itself is left once the pooled one is closed.
  Deadline deadline(5s);
  int64_t active = -1;
  while (!deadline.expired() && (active = f.backend.stats().connections_active) != 1) {
    poll_pause(20ms);
  }
  int64_t took = ms_since(start);
  INFO("backend connections_active " << active << " after " << took << " ms");
  CHECK(active == 1);
  CHECK(took >= 250);
  CHECK(took < 3000);
}

// The keep-alive race: the upstream drops a kept-alive connection just as the next request
// arrives on it. Nothing of the response came back, so a GET is replayed once on a fresh
// connection; a POST is not (replaying could repeat its effect) and gets 503.
TEST_CASE("proxy: a request hit by a stale keep-alive connection is replayed only if idempotent") {
  std::atomic<int> served{0};
  FakeUpstream up([&](TcpConn& c, int) {
    std::string buf;
    if (!read_request_head(c, buf, Deadline(kTimeout))) return;
    c.send_all("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", Deadline(kTimeout));
    ++served;
    buf.clear();
    // The second request on this connection: close without a byte of response.
    read_request_head(c, buf, Deadline(kTimeout));
  });
  TempDir dir;
  Proxy proxy(dir, ProxyOptions{.to = {up.address()}, .workers = 1});
  HttpClient c = HttpClient::connect(proxy.address(), Deadline(kTimeout));
  REQUIRE(c.valid());

  REQUIRE(c.send("GET /1 HTTP/1.1\r\nHost: h\r\n\r\n", Deadline(kTimeout)));
  HttpResponse first = c.read_response(Deadline(kTimeout));
  REQUIRE(first.status == 200);
  // GET on the (now stale) pooled connection: replayed on connection 2, which answers.
  REQUIRE(c.send("GET /2 HTTP/1.1\r\nHost: h\r\n\r\n", Deadline(kTimeout)));
  HttpResponse second = c.read_response(Deadline(kTimeout));
  INFO(second.summary());
  CHECK(second.status == 200);
  CHECK(second.body == "ok");
  CHECK(up.connections() == 2);
  // POST with an empty body on the stale connection 2: not replayed.
  REQUIRE(c.send("POST /3 HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n", Deadline(kTimeout)));
  HttpResponse third = c.read_response(Deadline(kTimeout));
  INFO(third.summary());
  CHECK(third.status == 503);
  CHECK(up.connections() == 2);
  CHECK(served.load() == 2);
}

}  // namespace
}  // namespace meshbox::test
