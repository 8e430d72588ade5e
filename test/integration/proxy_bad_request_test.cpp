// Requests the proxy must refuse: each is answered with its status and the connection is
// closed. Malformed heads must not reach the upstream at all (request smuggling).
#include <doctest/doctest.h>

#include "test/support/deadline.h"
#include "test/support/http_response.h"
#include "test/support/meshbox.h"

namespace meshbox::test {
namespace {

using namespace std::string_literals;

constexpr auto kTimeout = 5s;

std::string printable(std::string_view bytes) {
  std::string s;
  for (char c : bytes.substr(0, 300)) {
    if (c == '\r') {
      s += "\\r";
    } else if (c == '\n') {
      s += "\\n";
    } else if (c == '\0') {
      s += "\\0";
    } else {
      s += c;
    }
  }
  if (bytes.size() > 300) s += "...(" + std::to_string(bytes.size()) + " bytes)";
  return s;
}

struct BadCase {
  std::string what;
  std::string request;
  int status;
  bool head_is_bad = true;  // rejected before anything is forwarded
};

// Sends `c.request`, expects `c.status`, then the close.
void expect_refused(ProxyFixture& f, const BadCase& c) {
  CAPTURE(c.what);
  INFO("request bytes: " << printable(c.request));
  int64_t before = c.head_is_bad ? f.backend.stats().requests_total : 0;
  HttpClient client = HttpClient::connect(f.proxy.address(), Deadline(kTimeout));
  REQUIRE(client.valid());
  // The proxy may answer and close before it has read everything: a failed send is fine,
  // the response is what counts.
  bool sent = client.send(c.request, Deadline(kTimeout));
  HttpResponse r = client.read_response(Deadline(kTimeout));
  INFO("sent all: " << sent << " (" << client.conn().last_error()
                    << ")\nresponse: " << r.summary());
  CHECK(r.head_complete);
  CHECK(r.status == c.status);
  RecvStatus how = RecvStatus::Error;
  bool closed = client.wait_closed(Deadline(kTimeout), &how);
  INFO("after the response: " << to_string(how) << ", " << printable(client.pending()));
  CHECK(closed);
  if (c.head_is_bad) {
    int64_t after = f.backend.stats().requests_total;
    CHECK(after - before == 1);  // only the second /stats request itself
  }
}

TEST_CASE("proxy: malformed requests get 400 and the connection is closed") {
  ProxyFixture f;
  const BadCase cases[] = {
      {"Content-Length and Transfer-Encoding",
       "POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n"
       "\r\n5\r\nhello\r\n0\r\n\r\n",
       400},
      {"Transfer-Encoding and Content-Length (other order)",
       "POST /echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n"
       "\r\n5\r\nhello\r\n0\r\n\r\n",
       400},
      {"two different Content-Length headers",
       "POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
       400},
      {"Content-Length list with different values",
       "POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 5, 6\r\n\r\nhello!", 400},
      {"obs-fold", "GET / HTTP/1.1\r\nHost: h\r\nX-Folded: a\r\n b\r\n\r\n", 400},
      {"obs-fold with a tab", "GET / HTTP/1.1\r\nHost: h\r\nX-Folded: a\r\n\tb\r\n\r\n", 400},
      {"bare LF everywhere", "GET / HTTP/1.1\nHost: h\n\n", 400},
      {"bare LF after one header", "GET / HTTP/1.1\r\nHost: h\nX-A: b\r\n\r\n", 400},
      {"bad chunk size",
       "POST /echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n"
       "\r\n",
       400, false},
      {"NUL in a header value", "GET / HTTP/1.1\r\nHost: h\r\nX-Bad: a\0b\r\n\r\n"s, 400},
      {"CR in a header value", "GET / HTTP/1.1\r\nHost: h\r\nX-Bad: a\rb\r\n\r\n", 400},
      {"whitespace before the colon", "GET / HTTP/1.1\r\nHost: h\r\nX-Bad : v\r\n\r\n", 400},
      {"HTTP/1.1 without Host", "GET / HTTP/1.1\r\nUser-Agent: t\r\n\r\n", 400},
      {"two Host headers", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400},
      {"Transfer-Encoding without chunked last",
       "POST /echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, gzip\r\n\r\n5\r\nhello\r\n0"
       "\r\n\r\n",
       400},
      {"Content-Length that is not a number",
       "POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 5x\r\n\r\nhello", 400},
      {"Content-Length with a sign",
       "POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: +5\r\n\r\nhello", 400},
      {"chunk size that overflows 64 bits",
       "POST /echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
       "10000000000000000\r\nhello\r\n0\r\n\r\n",
       400, false},
      {"invalid character in a header name", "GET / HTTP/1.1\r\nHost: h\r\nX(Bad): v\r\n\r\n", 400},
      {"empty header name", "GET / HTTP/1.1\r\nHost: h\r\n: v\r\n\r\n", 400},
      {"space inside the request target", "GET /a b HTTP/1.1\r\nHost: h\r\n\r\n", 400},
      {"bare CR in the request line", "GET /\r HTTP/1.1\r\nHost: h\r\n\r\n", 400},
  };
  for (const auto& c : cases)
    expect_refused(f, c);
}

TEST_CASE("proxy: a bad request after a good pipelined one: 200, then 400 and the close") {
  ProxyFixture f;
  HttpClient c = HttpClient::connect(f.proxy.address(), Deadline(kTimeout));
  REQUIRE(c.valid());
  REQUIRE(
      c.send("GET / HTTP/1.1\r\nHost: h\r\n\r\n"
             "GET / HTTP/1.1\r\nHost: h\r\nX-Bad : v\r\n\r\n"
             "GET /status/202 HTTP/1.1\r\nHost: h\r\n\r\n",
             Deadline(kTimeout)));
  HttpResponse r1 = c.read_response(Deadline(kTimeout));
  HttpResponse r2 = c.read_response(Deadline(kTimeout));
  INFO(r1.summary() << "\n" << r2.summary());
  CHECK(r1.status == 200);
  CHECK(r2.status == 400);
  // The third request is never answered: nothing after the bad one is trusted.
  CHECK(c.wait_closed(Deadline(kTimeout)));
  INFO("after the 400: " << printable(c.pending()));
  CHECK(c.pending().empty());
}

TEST_CASE("proxy: HTTP/2.0 request line gets 505") {
  ProxyFixture f;
  expect_refused(f, {"HTTP/2.0", "GET / HTTP/2.0\r\nHost: h\r\n\r\n", 505});
}

TEST_CASE("proxy: heads over --max-header-size get 431") {
  SUBCASE("default limit (60KiB)") {
    ProxyFixture f;
    HttpResponse ok = exchange(
        f.proxy.address(),
        "GET /headers HTTP/1.1\r\nHost: h\r\nX-Big: " + std::string(50 * 1024, 'v') + "\r\n\r\n",
        Deadline(kTimeout));
    INFO("50 KiB header: " << ok.summary().substr(0, 200));
    CHECK(ok.status == 200);
    CHECK(ok.body.find(std::string(50 * 1024, 'v')) != std::string::npos);
    expect_refused(f,
                   {"70 KiB request line",
                    "GET /" + std::string(70 * 1024, 'a') + " HTTP/1.1\r\nHost: h\r\n\r\n", 431});
    std::string many = "GET / HTTP/1.1\r\nHost: h\r\n";
    for (int i = 0; i < 70; ++i)
      many += "X-Filler-" + std::to_string(i) + ": " + std::string(1000, 'v') + "\r\n";
    expect_refused(f, {"70 headers of 1 KB", many + "\r\n", 431});
    expect_refused(
        f,
        {"one 70 KiB header",
         "GET / HTTP/1.1\r\nHost: h\r\nX-Big: " + std::string(70 * 1024, 'v') + "\r\n\r\n", 431});
  }
  SUBCASE("--max-header-size 4KiB") {
    ProxyFixture f(ProxyOptions{.flags = {"--max-header-size", "4KiB"}});
    HttpResponse ok =
        exchange(f.proxy.address(),
                 "GET / HTTP/1.1\r\nHost: h\r\nX-Big: " + std::string(3000, 'v') + "\r\n\r\n",
                 Deadline(kTimeout));
    INFO("3000-byte header: " << ok.summary());
    CHECK(ok.status == 200);
    expect_refused(
        f, {"5000-byte header",
            "GET / HTTP/1.1\r\nHost: h\r\nX-Big: " + std::string(5000, 'v') + "\r\n\r\n", 431});
  }
}

TEST_CASE("proxy: bodies over --max-body-size get 413") {
  ProxyFixture f(ProxyOptions{.flags = {"--max-body-size", "1KiB"}});
  HttpResponse ok = exchange(
      f.proxy.address(),
      "POST /upload HTTP/1.1\r\nHost: h\r\nContent-Length: 1024\r\n\r\n" + std::string(1024, 'x'),
      Deadline(kTimeout));
  INFO("1024-byte body: " << ok.summary());
  CHECK(ok.status == 200);
  expect_refused(f, {"Content-Length over the limit",
                     "POST /upload HTTP/1.1\r\nHost: h\r\nContent-Length: 2048\r\n\r\n" +
                         std::string(2048, 'x'),
                     413});
  // With Expect: 100-continue the answer is 413 at once, not a 100 asking for the body.
  expect_refused(f, {"Content-Length over the limit, Expect: 100-continue",
                     "POST /upload HTTP/1.1\r\nHost: h\r\nContent-Length: 2048\r\n"
                     "Expect: 100-continue\r\n\r\n",
                     413});
  std::string chunked = "POST /upload HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n";
  for (int i = 0; i < 4; ++i)
    chunked += "200\r\n" + std::string(512, 'x') + "\r\n";
  chunked += "0\r\n\r\n";
  expect_refused(f, {"chunked body over the limit", chunked, 413, false});
}

TEST_CASE("proxy: a head not complete within --header-timeout gets 408") {
  ProxyFixture f(ProxyOptions{.flags = {"--header-timeout", "300ms"}});
  auto start = Deadline::Clock::now();
  HttpClient c = HttpClient::connect(f.proxy.address(), Deadline(kTimeout));
  REQUIRE(c.valid());
  REQUIRE(c.send("GET / HTTP/1.1\r\nHost: h\r\nX-Slow: ", Deadline(kTimeout)));
  HttpResponse r = c.read_response(Deadline(kTimeout));
  int64_t took = ms_since(start);
  INFO(r.summary() << " after " << took << " ms");
  CHECK(r.head_complete);
  CHECK(r.status == 408);
  CHECK(took >= 250);
  CHECK(took < 3000);
  CHECK(c.wait_closed(Deadline(kTimeout)));
}

}  // namespace
}  // namespace meshbox::test
