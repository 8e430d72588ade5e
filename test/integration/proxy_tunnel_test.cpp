// Byte tunnels: an HTTP Upgrade (WebSocket) and CONNECT through the HTTP proxy, and the
// plain L4 proxy (--tcp) with half-close.
#include <doctest/doctest.h>

#include "test/support/curl.h"
#include "test/support/deadline.h"
#include "test/support/fake_upstream.h"
#include "test/support/http_response.h"
#include "test/support/meshbox.h"

namespace meshbox::test {
namespace {

constexpr auto kTimeout = 10s;

// Echoes everything until the peer's FIN, then closes its side too.
void echo_script(TcpConn& c, int) {
  for (;;) {
    std::string buf;
    if (c.recv_some(buf, Deadline(kTimeout)) != RecvStatus::Data) break;
    if (!c.send_all(buf, Deadline(kTimeout))) return;
  }
  c.shutdown_write();
}

// A masked client frame (RFC 6455 §5.2), payload under 126 bytes.
std::string ws_client_frame(uint8_t opcode, std::string_view payload) {
  const uint8_t mask[4] = {0x37, 0xfa, 0x21, 0x3d};
  std::string f;
  f += static_cast<char>(0x80 | opcode);
  f += static_cast<char>(0x80 | payload.size());
  for (uint8_t m : mask)
    f += static_cast<char>(m);
  for (size_t i = 0; i < payload.size(); ++i)
    f += static_cast<char>(payload[i] ^ mask[i % 4]);
  return f;
}

TEST_CASE("proxy: WebSocket upgrade through the proxy echoes frames") {
  ProxyFixture f;
  HttpClient c = HttpClient::connect(f.proxy.address(), Deadline(kTimeout));
  REQUIRE(c.valid());
  // The key/accept pair from RFC 6455 §1.3.
  REQUIRE(
      c.send("GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
             "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
             Deadline(kTimeout)));
  HttpResponse r = c.read_response(Deadline(kTimeout));
  INFO(r.summary());
  REQUIRE(r.head_complete);
  REQUIRE(r.status == 101);
  const std::string* accept = r.header("sec-websocket-accept");
  REQUIRE(accept);
  CHECK(*accept == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  const std::string* upgrade = r.header("upgrade");
  REQUIRE(upgrade);
  CHECK(iequals(*upgrade, "websocket"));

  for (const std::string& msg :
       std::vector<std::string>{"hello", "through the tunnel", std::string(125, 'w')}) {
    CAPTURE(msg);
    REQUIRE(c.send(ws_client_frame(0x1, msg), Deadline(kTimeout)));
    std::string& in = c.pending();
    std::string expect = std::string("\x81", 1) + static_cast<char>(msg.size()) + msg;
    REQUIRE(c.conn().read_at_least(in, expect.size(), Deadline(kTimeout)));
    CHECK(in.substr(0, expect.size()) == expect);
    in.erase(0, expect.size());
  }
  // Close handshake: the server answers with a close frame.
  REQUIRE(c.send(ws_client_frame(0x8, "\x03\xe8"), Deadline(kTimeout)));
  std::string& in = c.pending();
  REQUIRE(c.conn().read_at_least(in, 2, Deadline(kTimeout)));
  CHECK(static_cast<uint8_t>(in[0]) == 0x88);
}

TEST_CASE("proxy: CONNECT opens a tunnel to the upstream") {
  FakeUpstream up(echo_script);
  TempDir dir;
  Proxy proxy(dir, ProxyOptions{.to = {up.address()}});
  HttpClient c = HttpClient::connect(proxy.address(), Deadline(kTimeout));
  REQUIRE(c.valid());
  REQUIRE(c.send("CONNECT backend.test:443 HTTP/1.1\r\nHost: backend.test:443\r\n\r\n",
                 Deadline(kTimeout)));
  HttpClient::ReadOptions opts;
  opts.method = "CONNECT";
  HttpResponse r = c.read_response(Deadline(kTimeout), opts);
  INFO(r.summary());
  REQUIRE(r.complete);
  REQUIRE(r.status == 200);
  CHECK(c.pending().empty());
  for (const std::string& msg : std::vector<std::string>{"ping\n", std::string(100000, 'z'),
                                                         "\r\n\r\nGET / HTTP/1.1\r\n\r\n"}) {
    CAPTURE(msg.size());
    REQUIRE(c.send(msg, Deadline(kTimeout)));
    std::string& in = c.pending();
    REQUIRE(c.conn().read_at_least(in, msg.size(), Deadline(kTimeout)));
    CHECK(in == msg);
    in.clear();
  }
  c.conn().shutdown_write();
  CHECK(c.wait_closed(Deadline(kTimeout)));
  CHECK(c.pending().empty());
}

TEST_CASE("proxy: curl through a CONNECT tunnel (-p -x) reaches the upstream") {
  ProxyFixture f;
  auto r = curl_http({"-p", "-x", "http://" + f.proxy.address(), "http://backend.test/"},
                     Deadline(kTimeout));
  INFO(r.run.summary());
  CHECK(r.run.exit_code == 0);
  CHECK(r.status == 200);
  CHECK(r.body == "hello from b1\n");
}

TEST_CASE("proxy --tcp: bytes are echoed through the L4 proxy") {
  FakeUpstream up(echo_script);
  TempDir dir;
  Proxy proxy(dir, ProxyOptions{.to = {up.address()}, .tcp = true});
  TcpConn c = TcpConn::connect(proxy.address(), Deadline(kTimeout));
  REQUIRE(c.valid());
  std::string total;
  for (int i = 0; i < 32; ++i) {
    std::string msg(64 * 1024, static_cast<char>('a' + i % 26));
    REQUIRE(c.send_all(msg, Deadline(kTimeout)));
    std::string back;
    REQUIRE(c.read_at_least(back, msg.size(), Deadline(kTimeout)));
    CHECK(back == msg);
  }
  c.shutdown_write();
  std::string rest;
  RecvStatus s = c.read_to_close(rest, Deadline(kTimeout));
  CHECK(s == RecvStatus::Eof);
  CHECK(rest.empty());
}

TEST_CASE("proxy --tcp: half-close: the client shuts down writing and still gets the reply") {
  // Replies only after the client's FIN arrives, so the proxy must pass the FIN on and
  // keep the other direction open.
  FakeUpstream up([](TcpConn& c, int) {
    std::string got;
    if (c.read_to_close(got, Deadline(kTimeout)) != RecvStatus::Eof) return;
    c.send_all("got " + std::to_string(got.size()) + " bytes: " + got, Deadline(kTimeout));
  });
  TempDir dir;
  Proxy proxy(dir, ProxyOptions{.to = {up.address()}, .tcp = true});
  TcpConn c = TcpConn::connect(proxy.address(), Deadline(kTimeout));
  REQUIRE(c.valid());
  REQUIRE(c.send_all("hello half-close", Deadline(kTimeout)));
  c.shutdown_write();
  std::string reply;
  RecvStatus s = c.read_to_close(reply, Deadline(kTimeout));
  INFO("ended with " << to_string(s) << " " << c.last_error());
  CHECK(s == RecvStatus::Eof);
  CHECK(reply == "got 16 bytes: hello half-close");
}

TEST_CASE("proxy: a WebSocket frame sent right behind the handshake is not lost") {
  ProxyFixture f;
  HttpClient c = HttpClient::connect(f.proxy.address(), Deadline(kTimeout));
  REQUIRE(c.valid());
  REQUIRE(
      c.send("GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
             "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n" +
                 ws_client_frame(0x1, "early"),
             Deadline(kTimeout)));
  HttpResponse r = c.read_response(Deadline(kTimeout));
  INFO(r.summary());
  REQUIRE(r.status == 101);
  std::string& in = c.pending();
  const std::string expect = std::string("\x81\x05", 2) + "early";
  REQUIRE(c.conn().read_at_least(in, expect.size(), Deadline(kTimeout)));
  CHECK(in == expect);
}

TEST_CASE("proxy: bytes sent right behind a CONNECT request go through the tunnel") {
  FakeUpstream up(echo_script);
  TempDir dir;
  Proxy proxy(dir, ProxyOptions{.to = {up.address()}});
  HttpClient c = HttpClient::connect(proxy.address(), Deadline(kTimeout));
  REQUIRE(c.valid());
  REQUIRE(c.send("CONNECT backend.test:443 HTTP/1.1\r\nHost: backend.test:443\r\n\r\nearly bytes",
                 Deadline(kTimeout)));
  HttpClient::ReadOptions opts;
  opts.method = "CONNECT";
  HttpResponse r = c.read_response(Deadline(kTimeout), opts);
  INFO(r.summary());
  REQUIRE(r.status == 200);
  std::string& in = c.pending();
  REQUIRE(c.conn().read_at_least(in, 11, Deadline(kTimeout)));
  CHECK(in == "early bytes");
}

TEST_CASE("proxy --tcp: an upstream that speaks first, then closes") {
  FakeUpstream up(
      [](TcpConn& c, int) { c.send_all("220 hello from upstream\r\n", Deadline(kTimeout)); });
  TempDir dir;
  Proxy proxy(dir, ProxyOptions{.to = {up.address()}, .tcp = true});
  TcpConn c = TcpConn::connect(proxy.address(), Deadline(kTimeout));
  REQUIRE(c.valid());
  std::string got;
  RecvStatus s = c.read_to_close(got, Deadline(kTimeout));
  INFO(to_string(s));
  CHECK(s == RecvStatus::Eof);
  CHECK(got == "220 hello from upstream\r\n");
}

}  // namespace
}  // namespace meshbox::test
