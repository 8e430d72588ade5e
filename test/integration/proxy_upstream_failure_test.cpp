// Upstream failures: refused connects, closes and resets before the response (503), slow
// upstreams (504), and upstreams that die mid-response, where the client must not be handed
// something that looks like a complete response.
#include <doctest/doctest.h>
#include <unistd.h>

#include "test/support/curl.h"
#include "test/support/deadline.h"
#include "test/support/fake_upstream.h"
#include "test/support/http_response.h"
#include "test/support/meshbox.h"

namespace meshbox::test {
namespace {

constexpr auto kTimeout = 10s;

TEST_CASE("proxy: upstream connect failure gets 503") {
  uint16_t port = 0;
  int fd = listen_loopback(&port, /*listen=*/false);  // bound, not listening: refuses
  REQUIRE(fd >= 0);
  TempDir dir;
  Proxy proxy(dir, ProxyOptions{.to = {"127.0.0.1:" + std::to_string(port)}});
  auto r = curl_http({"http://" + proxy.address() + "/"}, Deadline(kTimeout));
  INFO(r.run.summary());
  CHECK(r.run.exit_code == 0);
  CHECK(r.status == 503);
  CHECK(r.body.find("connection failure") != std::string::npos);
  ::close(fd);
}

TEST_CASE("proxy: upstream closing before the response gets 503") {
  ProxyFixture f;
  auto r = curl_http({f.url("/close-before-response")}, Deadline(kTimeout));
  INFO(r.run.summary());
  CHECK(r.run.exit_code == 0);
  CHECK(r.status == 503);
  // The proxy is still fine afterwards.
  auto ok = curl_http({f.url("/")}, Deadline(kTimeout));
  INFO(ok.run.summary());
  CHECK(ok.status == 200);
}

TEST_CASE("proxy: upstream reset before the response gets 503") {
  FakeUpstream up([](TcpConn& c, int) {
    std::string buf;
    if (read_request_head(c, buf, Deadline(kTimeout))) c.reset();
  });
  TempDir dir;
  Proxy proxy(dir, ProxyOptions{.to = {up.address()}});
  HttpResponse r =
      exchange(proxy.address(), "GET / HTTP/1.1\r\nHost: h\r\n\r\n", Deadline(kTimeout));
  INFO(r.summary());
  CHECK(r.complete);
  CHECK(r.status == 503);
}

TEST_CASE("proxy: no upstream response within --response-timeout gets 504") {
  ProxyFixture f(ProxyOptions{.flags = {"--response-timeout", "300ms"}});
  auto start = Deadline::Clock::now();
  auto r = curl_http({f.url("/delay/5000")}, Deadline(kTimeout));
  int64_t took = ms_since(start);
  INFO(r.run.summary() << " after " << took << " ms");
  CHECK(r.run.exit_code == 0);
  CHECK(r.status == 504);
  CHECK(took >= 250);
  CHECK(took < 3000);
}

TEST_CASE("proxy: httpbin /abort-mid-body: the client sees a broken response") {
  ProxyFixture f;

  SUBCASE("curl fails") {
    auto r = run_curl({"-o", "/dev/null", f.url("/abort-mid-body")}, Deadline(kTimeout));
    INFO(r.summary());
    CHECK(!r.timed_out);
    CHECK(r.exit_code != 0);
    MESSAGE("curl through the proxy, upstream aborted mid-body: exit code " << r.exit_code);
  }
  SUBCASE("a raw client gets fewer bytes than Content-Length, then the close") {
    HttpClient c = HttpClient::connect(f.proxy.address(), Deadline(kTimeout));
    REQUIRE(c.valid());
    REQUIRE(c.send("GET /abort-mid-body HTTP/1.1\r\nHost: h\r\n\r\n", Deadline(kTimeout)));
    HttpResponse r = c.read_response(Deadline(kTimeout));
    INFO(r.summary());
    CHECK(!r.complete);
    CHECK(r.error.find("deadline") == std::string::npos);  // closed, not left hanging
    CHECK(r.body_bytes < 1'000'000);
  }
  // The proxy survives it.
  auto ok = curl_http({f.url("/")}, Deadline(kTimeout));
  INFO(ok.run.summary());
  CHECK(ok.status == 200);
}

TEST_CASE("proxy: a fake upstream dying mid-body: the client sees a broken response") {
  struct Script {
    std::string what;
    std::string response;
    bool reset;  // RST instead of FIN
  };
  const std::string kilobyte(1000, 'x');
  const Script scripts[] = {
      {"Content-Length 1000000, 1000 bytes, FIN",
       "HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n" + kilobyte, false},
      {"Content-Length 1000000, 1000 bytes, RST",
       "HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n" + kilobyte, true},
      {"chunked, one chunk, FIN (no last chunk)",
       "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3e8\r\n" + kilobyte + "\r\n", false},
      {"chunked, cut inside a chunk, FIN",
       "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n7d0\r\n" + kilobyte, false},
  };
  for (const Script& s : scripts) {
    CAPTURE(s.what);
    FakeUpstream up([&s](TcpConn& c, int) {
      std::string buf;
      if (!read_request_head(c, buf, Deadline(kTimeout))) return;
      c.send_all(s.response, Deadline(kTimeout));
      if (s.reset) c.reset();
    });
    TempDir dir;
    Proxy proxy(dir, ProxyOptions{.to = {up.address()}});

    auto cr = run_curl({"-o", "/dev/null", "http://" + proxy.address() + "/"}, Deadline(kTimeout));
    INFO(cr.summary());
    CHECK(!cr.timed_out);
    CHECK(cr.exit_code != 0);

    HttpClient c = HttpClient::connect(proxy.address(), Deadline(kTimeout));
    REQUIRE(c.valid());
    REQUIRE(c.send("GET / HTTP/1.1\r\nHost: h\r\n\r\n", Deadline(kTimeout)));
    HttpResponse r = c.read_response(Deadline(kTimeout));
    INFO("raw client: " << r.summary());
    CHECK(r.head_complete);
    CHECK(r.status == 200);
    CHECK(!r.complete);
    CHECK(r.error.find("deadline") == std::string::npos);  // closed, not left hanging
    CHECK(r.body_bytes <= 1000);
  }
}

// A fake upstream that answers every request on its connection with `response`.
FakeUpstream::Script answer_with(std::string response) {
  return [response](TcpConn& c, int) {
    std::string buf;
    while (read_request_head(c, buf, Deadline(kTimeout))) {
      buf.erase(0, buf.find("\r\n\r\n") + 4);
      if (!c.send_all(response, Deadline(kTimeout))) return;
    }
  };
}

TEST_CASE("proxy: an invalid upstream response gets 502") {
  const std::string cases[] = {
      "garbage\r\n\r\n",
      "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nBad Header: x\r\n\r\nok",
      "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok!",
      "HTTP/1.1 2000 OK\r\nContent-Length: 2\r\n\r\nok",
  };
  for (const auto& response : cases) {
    CAPTURE(response);
    FakeUpstream up(answer_with(response));
    TempDir dir;
    Proxy proxy(dir, ProxyOptions{.to = {up.address()}});
    HttpResponse r =
        exchange(proxy.address(), "GET / HTTP/1.1\r\nHost: h\r\n\r\n", Deadline(kTimeout));
    INFO(r.summary());
    CHECK(r.complete);
    CHECK(r.status == 502);
  }
}

TEST_CASE("proxy: an upstream response with Content-Length and chunked is not passed on as is") {
  // RFC 9112 §6.3: Transfer-Encoding wins; what reaches the client must be unambiguous.
  FakeUpstream up(
      answer_with("HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n"
                  "2\r\nok\r\n0\r\n\r\n"));
  TempDir dir;
  Proxy proxy(dir, ProxyOptions{.to = {up.address()}});
  HttpClient c = HttpClient::connect(proxy.address(), Deadline(kTimeout));
  REQUIRE(c.valid());
  REQUIRE(c.send("GET / HTTP/1.1\r\nHost: h\r\n\r\n", Deadline(kTimeout)));
  HttpResponse r = c.read_response(Deadline(kTimeout));
  INFO(r.summary());
  CHECK(r.head_complete);
  CHECK(!(r.header("content-length") && r.header("transfer-encoding")));
  if (r.status == 200) {
    CHECK(r.complete);
    CHECK(r.body == "ok");
  } else {
    CHECK(r.status == 502);
  }
}

TEST_CASE("proxy: an unsolicited 100 Continue from the upstream does not confuse the client") {
  FakeUpstream up(
      answer_with("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"));
  TempDir dir;
  Proxy proxy(dir, ProxyOptions{.to = {up.address()}});
  HttpClient c = HttpClient::connect(proxy.address(), Deadline(kTimeout));
  REQUIRE(c.valid());
  for (int i = 0; i < 2; ++i) {
    CAPTURE(i);
    REQUIRE(c.send("GET / HTTP/1.1\r\nHost: h\r\n\r\n", Deadline(kTimeout)));
    HttpResponse r = c.read_response(Deadline(kTimeout));
    if (r.status == 100) r = c.read_response(Deadline(kTimeout));  // forwarding it is fine
    INFO(r.summary());
    REQUIRE(r.complete);
    CHECK(r.status == 200);
    CHECK(r.body == "ok");
  }
}

}  // namespace
}  // namespace meshbox::test
