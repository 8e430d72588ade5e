// Tests for plane/control/http_server.h over real loopback sockets (127.0.0.1:0). The client
// is a raw TcpConn on the same Loop with a response Parser, so each test is one thread, writes
// exactly the bytes it means (pipelining, malformed heads) and waits with run_until, never a
// sleep. Every test ends with the loop closed clean.
#include "plane/control/http_server.h"

#include <doctest/doctest.h>

#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "core/http/parser.h"
#include "core/loop/tcp_conn.h"
#include "core/loop/tcp_listener.h"
#include "core/loop/timer.h"
#include "test/support/test_loop.h"

namespace meshbox::control {
namespace {

using loop::run_until;

loop::Address loopback(uint16_t port = 0) {
  auto a = loop::Address::parse("127.0.0.1:" + std::to_string(port));
  REQUIRE(a.has_value());
  return *a;
}

struct Reply {
  int status = 0;
  http::HeaderMap headers;
  std::string body;
  std::string header(std::string_view name) const {
    const std::string* v = headers.get(name);
    return v ? *v : std::string("<none>");
  }
};

// A client connection: sends raw bytes, parses every response that comes back (1xx apart),
// and records how the connection ended.
class Client : loop::TcpConnCallbacks, http::ParserCallbacks {
 public:
  Client(loop::Loop& loop, uint16_t port)
      : conn_(loop::TcpConn::create(loop)), parser_(http::Parser::Kind::Response, *this) {
    conn_->set_callbacks(this);
    REQUIRE(conn_->connect(loopback(port)).is_ok());
    conn_->read_start();
  }

  /// Sends `bytes`; `methods` lists the request methods in them, in order (HEAD answers have
  /// no body, so the parser must know).
  void send(std::string_view bytes, std::vector<std::string> methods = {"GET"}) {
    for (auto& m : methods)
      methods_.push_back(std::move(m));
    if (!parser_.in_message() && !methods_.empty()) parser_.expect_response_to(methods_.front());
    if (conn_) conn_->write(bytes);
  }
  void close() { conn_.reset(); }
  void reset() {
    if (conn_) conn_->close_reset();
    conn_.reset();
  }
  void shutdown() { conn_->shutdown(); }

  std::vector<Reply> replies;
  std::vector<int> interim;  // 1xx statuses
  bool eof = false;
  int error = 0;
  bool ended() const { return eof || error != 0; }
  bool parse_error = false;

 private:
  void on_data(const char* data, size_t len) override {
    while (len > 0) {
      auto r = parser_.feed(data, len);
      if (r.state == http::Parser::State::Paused) {
        data += r.consumed;
        len -= r.consumed;
        parser_.resume();
        continue;
      }
      if (r.state != http::Parser::State::Ok) parse_error = true;
      return;
    }
  }
  void on_eof() override {
    eof = true;
    conn_.reset();  // as real clients do; the server, lingering, sees our FIN and closes
  }
  void on_error(int err) override { error = err; }
  void on_response_head(http::ResponseHead& head) override {
    if (head.status < 200) {
      interim.push_back(head.status);
      return;
    }
    current_ = Reply{head.status, std::move(head.headers), ""};
  }
  void on_body(const char* data, size_t len) override { current_.body.append(data, len); }
  void on_message_complete() override {
    if (current_.status == 0) return;  // the end of a 1xx
    replies.push_back(std::move(current_));
    current_ = Reply{};
    if (!methods_.empty()) methods_.pop_front();
    if (!methods_.empty()) parser_.expect_response_to(methods_.front());
  }

  loop::TcpConnPtr conn_;
  http::Parser parser_;
  std::deque<std::string> methods_;
  Reply current_;
};

// A server on 127.0.0.1:0 whose handler records every request and either answers at once
// (through `answer`) or, for paths starting with "/later", keeps the Respond for the test.
struct Fixture {
  explicit Fixture(loop::Loop& loop, HttpServerOptions options = {}) {
    auto s = HttpServer::listen(
        loop, loopback(),
        [this](HttpRequest& req, Respond respond) {
          requests.push_back(req);
          if (req.path.starts_with("/later")) {
            pending.push_back(std::move(respond));
            return;
          }
          if (req.path == "/drop") return;  // Respond dropped unanswered
          respond(answer(req));
        },
        options);
    REQUIRE(s.has_value());
    server = std::move(*s);
  }
  uint16_t port() const { return server->address().port(); }

  std::function<HttpResponse(const HttpRequest&)> answer = [](const HttpRequest& req) {
    return HttpResponse{200, "text/plain", req.method + " " + req.path + "\n", {}};
  };
  std::unique_ptr<HttpServer> server;
  std::vector<HttpRequest> requests;
  std::vector<Respond> pending;
};

std::string get(std::string_view target, std::string_view extra = "") {
  return std::string("GET ") + std::string(target) + " HTTP/1.1\r\nHost: admin\r\n" +
         std::string(extra) + "\r\n";
}

TEST_CASE("http_server: GET with a query; the response head the server writes") {
  loop::Loop loop;
  {
    Fixture f(loop);
    f.answer = [](const HttpRequest&) {
      return HttpResponse{201, "application/json", "{\"ok\":true}", {{"X-Version", "7"}}};
    };
    Client c(loop, f.port());
    c.send(get("/config/virtual%20service/default?name=a%2Fb&q=x+y&flag&empty=&name=second",
               "Authorization: Bearer t0k\r\n"));
    REQUIRE(run_until(loop, [&] { return c.replies.size() == 1; }));
    REQUIRE(f.requests.size() == 1);
    const HttpRequest& r = f.requests[0];
    CHECK(r.method == "GET");
    CHECK(r.path == "/config/virtual service/default");
    CHECK(r.query == "name=a%2Fb&q=x+y&flag&empty=&name=second");
    CHECK(r.param("name") == "a/b");  // the first of two
    CHECK(r.param("q") == "x y");
    CHECK(r.param("flag") == "");
    CHECK(r.param("empty") == "");
    CHECK(!r.param("missing").has_value());
    CHECK(!r.param("nam").has_value());
    REQUIRE(r.headers.get("AUTHORIZATION") != nullptr);
    CHECK(*r.headers.get("authorization") == "Bearer t0k");
    CHECK(r.peer.starts_with("127.0.0.1:"));
    CHECK(r.body.empty());

    const Reply& reply = c.replies[0];
    CHECK(reply.status == 201);
    CHECK(reply.body == "{\"ok\":true}");
    CHECK(reply.header("content-type") == "application/json");
    CHECK(reply.header("content-length") == "11");
    CHECK(reply.header("cache-control") == "no-store");
    CHECK(reply.header("x-version") == "7");
    CHECK(reply.header("connection") == "<none>");  // HTTP/1.1 keep-alive is the default
    CHECK(!c.ended());
  }
  CHECK(loop.close().is_ok());
}

TEST_CASE("http_server: request bodies, with Content-Length and chunked") {
  loop::Loop loop;
  {
    Fixture f(loop);
    f.answer = [](const HttpRequest& req) {
      return HttpResponse{200, "text/plain", std::to_string(req.body.size()), {}};
    };
    Client c(loop, f.port());
    c.send(
        "POST /apply HTTP/1.1\r\nHost: a\r\nContent-Type: application/toml\r\n"
        "Content-Length: 11\r\n\r\nhello world",
        {"POST"});
    REQUIRE(run_until(loop, [&] { return c.replies.size() == 1; }));
    c.send(
        "PUT /apply HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        "5\r\nchunk\r\n7\r\ned body\r\n0\r\n\r\n",
        {"PUT"});
    REQUIRE(run_until(loop, [&] { return c.replies.size() == 2; }));
    REQUIRE(f.requests.size() == 2);
    CHECK(f.requests[0].method == "POST");
    CHECK(f.requests[0].body == "hello world");
    CHECK(*f.requests[0].headers.get("content-type") == "application/toml");
    CHECK(f.requests[1].method == "PUT");
    CHECK(f.requests[1].body == "chunked body");
    CHECK(c.replies[0].body == "11");
    CHECK(c.replies[1].body == "12");
    CHECK(f.server->connections_for_test() == 1);
  }
  CHECK(loop.close().is_ok());
}

TEST_CASE("http_server: a body arriving in pieces, and Expect: 100-continue") {
  loop::Loop loop;
  {
    Fixture f(loop);
    Client c(loop, f.port());
    c.send("POST /x HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 6\r\n\r\n",
           {"POST"});
    REQUIRE(run_until(loop, [&] { return c.interim.size() == 1; }));
    CHECK(c.interim[0] == 100);
    CHECK(f.requests.empty());  // the body is not in yet
    c.send("abc", {});
    c.send("def", {});
    REQUIRE(run_until(loop, [&] { return c.replies.size() == 1; }));
    CHECK(f.requests[0].body == "abcdef");
  }
  CHECK(loop.close().is_ok());
}

TEST_CASE("http_server: a handler may respond later") {
  loop::Loop loop;
  {
    Fixture f(loop);
    Client c(loop, f.port());
    c.send(get("/later"));
    REQUIRE(run_until(loop, [&] { return f.pending.size() == 1; }));
    // Nothing is sent while the handler holds the request.
    CHECK(!run_until(
        loop, [&] { return !c.replies.empty(); }, std::chrono::milliseconds(50)));
    // The answer comes from a timer callback, as a worker acknowledgement would.
    loop::Timer later(loop, [&] { f.pending[0](HttpResponse{202, "text/plain", "done", {}}); });
    later.start(1);
    REQUIRE(run_until(loop, [&] { return c.replies.size() == 1; }));
    CHECK(c.replies[0].status == 202);
    CHECK(c.replies[0].body == "done");
    // A second answer to the same request is ignored.
    f.pending[0](HttpResponse{500, "text/plain", "again", {}});
    // The connection is still usable.
    c.send(get("/next"));
    REQUIRE(run_until(loop, [&] { return c.replies.size() == 2; }));
    CHECK(c.replies[1].body == "GET /next\n");
    CHECK(c.replies.size() == 2);
  }
  CHECK(loop.close().is_ok());
}

TEST_CASE("http_server: respond after the client went away") {
  loop::Loop loop;
  {
    Fixture f(loop);
    SUBCASE("the client closed (FIN)") {
      Client c(loop, f.port());
      c.send(get("/later"));
      REQUIRE(run_until(loop, [&] { return f.pending.size() == 1; }));
      c.close();
      f.pending[0](HttpResponse{200, "text/plain", "too late", {}});
      REQUIRE(run_until(loop, [&] { return f.server->connections_for_test() == 0; }));
    }
    SUBCASE("the client reset the connection") {
      Client c(loop, f.port());
      c.send(get("/later"));
      REQUIRE(run_until(loop, [&] { return f.pending.size() == 1; }));
      c.reset();
      REQUIRE(run_until(loop, [&] { return f.server->connections_for_test() == 0; }));
      f.pending[0](HttpResponse{200, "text/plain", "too late", {}});
    }
    SUBCASE("the server is gone") {
      Client c(loop, f.port());
      c.send(get("/later"));
      REQUIRE(run_until(loop, [&] { return f.pending.size() == 1; }));
      f.server.reset();
      REQUIRE(run_until(loop, [&] { return c.ended(); }));
      f.pending[0](HttpResponse{200, "text/plain", "too late", {}});
      CHECK(c.replies.empty());
    }
    SUBCASE("dropped unanswered") {
      f.pending.clear();
      Client c(loop, f.port());
      c.send(get("/later"));
      REQUIRE(run_until(loop, [&] { return f.pending.size() == 1; }));
      c.reset();
      REQUIRE(run_until(loop, [&] { return f.server->connections_for_test() == 0; }));
      f.pending.clear();  // ~Respond finds no connection: nothing to do
    }
  }
  // The Responds (in `f`) outlived the server's connections; the loop still closes clean.
  CHECK(loop.close().is_ok());
}

TEST_CASE("http_server: a half-closed client still gets its answer") {
  loop::Loop loop;
  {
    Fixture f(loop);
    Client c(loop, f.port());
    c.send(get("/later") + get("/second"), {"GET", "GET"});
    c.shutdown();
    REQUIRE(run_until(loop, [&] { return f.pending.size() == 1; }));
    f.pending[0](HttpResponse{200, "text/plain", "first", {}});
    REQUIRE(run_until(loop, [&] { return c.ended(); }));
    REQUIRE(c.replies.size() == 2);
    CHECK(c.replies[0].body == "first");
    CHECK(c.replies[1].body == "GET /second\n");
    CHECK(c.eof);
    REQUIRE(run_until(loop, [&] { return f.server->connections_for_test() == 0; }));
  }
  CHECK(loop.close().is_ok());
}

TEST_CASE("http_server: a dropped Respond answers 500") {
  loop::Loop loop;
  {
    Fixture f(loop);
    Client c(loop, f.port());
    c.send(get("/drop"));
    REQUIRE(run_until(loop, [&] { return c.replies.size() == 1; }));
    CHECK(c.replies[0].status == 500);
    CHECK(!c.ended());
  }
  CHECK(loop.close().is_ok());
}

TEST_CASE("http_server: keep-alive reuses one connection") {
  loop::Loop loop;
  {
    Fixture f(loop);
    Client c(loop, f.port());
    for (int i = 0; i < 3; ++i) {
      c.send(get("/n" + std::to_string(i)));
      REQUIRE(run_until(loop, [&] { return c.replies.size() == static_cast<size_t>(i + 1); }));
    }
    CHECK(c.replies[2].body == "GET /n2\n");
    CHECK(f.server->connections_for_test() == 1);
    REQUIRE(f.requests.size() == 3);
    CHECK(f.requests[0].peer == f.requests[2].peer);
    CHECK(!c.ended());
  }
  CHECK(loop.close().is_ok());
}

TEST_CASE("http_server: pipelined requests are answered one at a time, in order") {
  loop::Loop loop;
  {
    Fixture f(loop);
    Client c(loop, f.port());
    c.send(get("/later/1") + "HEAD /two HTTP/1.1\r\nHost: a\r\n\r\n" + get("/three") +
               get("/later/4") + get("/five"),
           {"GET", "HEAD", "GET", "GET", "GET"});
    REQUIRE(run_until(loop, [&] { return f.pending.size() == 1; }));
    // The handler sees the next request only once the first is answered.
    CHECK(!run_until(
        loop, [&] { return f.requests.size() > 1; }, std::chrono::milliseconds(50)));
    f.pending[0](HttpResponse{200, "text/plain", "one", {}});
    REQUIRE(run_until(loop, [&] { return f.pending.size() == 2; }));
    REQUIRE(run_until(loop, [&] { return c.replies.size() == 3; }));
    CHECK(f.requests.size() == 4);
    f.pending[1](HttpResponse{200, "text/plain", "four", {}});
    REQUIRE(run_until(loop, [&] { return c.replies.size() == 5; }));
    CHECK(c.replies[0].body == "one");
    CHECK(c.replies[1].body.empty());  // HEAD: the head only...
    CHECK(c.replies[1].header("content-length") ==
          std::to_string(std::string("HEAD /two\n").size()));
    CHECK(c.replies[2].body == "GET /three\n");
    CHECK(c.replies[3].body == "four");
    CHECK(c.replies[4].body == "GET /five\n");
    CHECK(!c.parse_error);
    CHECK(!c.ended());
  }
  CHECK(loop.close().is_ok());
}

TEST_CASE("http_server: Connection: close is honoured") {
  loop::Loop loop;
  {
    Fixture f(loop);
    Client c(loop, f.port());
    c.send(get("/bye", "Connection: close\r\n"));
    REQUIRE(run_until(loop, [&] { return c.ended(); }));
    REQUIRE(c.replies.size() == 1);
    CHECK(c.replies[0].header("connection") == "close");
    CHECK(c.eof);
    REQUIRE(run_until(loop, [&] { return f.server->connections_for_test() == 0; }));
  }
  CHECK(loop.close().is_ok());
}

TEST_CASE("http_server: HTTP/1.0 closes unless asked to keep alive") {
  loop::Loop loop;
  {
    Fixture f(loop);
    SUBCASE("plain HTTP/1.0") {
      Client c(loop, f.port());
      c.send("GET /old HTTP/1.0\r\n\r\n");
      REQUIRE(run_until(loop, [&] { return c.ended(); }));
      REQUIRE(c.replies.size() == 1);
      CHECK(c.replies[0].body == "GET /old\n");
      CHECK(c.replies[0].header("connection") == "close");
      CHECK(c.eof);
    }
    SUBCASE("HTTP/1.0 with keep-alive") {
      Client c(loop, f.port());
      c.send("GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
      REQUIRE(run_until(loop, [&] { return c.replies.size() == 1; }));
      CHECK(c.replies[0].header("connection") == "keep-alive");
      c.send("GET /b HTTP/1.0\r\n\r\n");
      REQUIRE(run_until(loop, [&] { return c.ended(); }));
      REQUIRE(c.replies.size() == 2);
      CHECK(c.replies[1].body == "GET /b\n");
      CHECK(c.replies[1].header("connection") == "close");
    }
  }
  CHECK(loop.close().is_ok());
}

TEST_CASE("http_server: a body over the limit gets 413") {
  loop::Loop loop;
  {
    SUBCASE("announced by Content-Length") {
      Fixture f(loop);
      Client c(loop, f.port());
      c.send("POST /apply HTTP/1.1\r\nHost: a\r\nContent-Length: " +
                 std::to_string((16 << 20) + 1) + "\r\n\r\n",
             {"POST"});
      REQUIRE(run_until(loop, [&] { return c.ended(); }));
      REQUIRE(c.replies.size() == 1);
      CHECK(c.replies[0].status == 413);
      CHECK(c.replies[0].header("connection") == "close");
      CHECK(c.replies[0].header("content-type") == "text/plain");
      CHECK(f.requests.empty());
    }
    SUBCASE("chunked, found out while streaming; the rest is discarded, not reset") {
      HttpServerOptions o;
      o.max_body_bytes = 1000;
      Fixture f(loop, o);
      Client c(loop, f.port());
      std::string chunk(600, 'x');
      std::string req = "POST /apply HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
      for (int i = 0; i < 50; ++i)
        req += "258\r\n" + chunk + "\r\n";
      c.send(req, {"POST"});
      REQUIRE(run_until(loop, [&] { return c.replies.size() == 1; }));
      CHECK(c.replies[0].status == 413);
      c.close();
      REQUIRE(run_until(loop, [&] { return f.server->connections_for_test() == 0; }));
      CHECK(f.requests.empty());
    }
  }
  CHECK(loop.close().is_ok());
}

TEST_CASE("http_server: malformed requests get 400 and the connection closes") {
  loop::Loop loop;
  {
    Fixture f(loop);
    std::string bad;
    SUBCASE("garbage") {
      bad = "NOT HTTP AT ALL\r\n\r\n";
    }
    SUBCASE("HTTP/1.1 without Host") {
      bad = "GET / HTTP/1.1\r\n\r\n";
    }
    SUBCASE("a bad escape in the path") {
      bad = get("/a%zz");
    }
    SUBCASE("a bare LF") {
      bad = "GET / HTTP/1.1\nHost: a\n\n";
    }
    Client c(loop, f.port());
    c.send(get("/fine") + bad, {"GET", "GET"});
    REQUIRE(run_until(loop, [&] { return c.ended(); }));
    REQUIRE(c.replies.size() == 2);
    CHECK(c.replies[0].status == 200);
    CHECK(c.replies[1].status == 400);
    CHECK(c.replies[1].header("content-type") == "text/plain");
    CHECK(c.replies[1].header("connection") == "close");
    CHECK(!c.replies[1].body.empty());
    CHECK(c.replies[1].body.size() < 200);
    CHECK(f.requests.size() == 1);
    REQUIRE(run_until(loop, [&] { return f.server->connections_for_test() == 0; }));
  }
  CHECK(loop.close().is_ok());
}

TEST_CASE("http_server: a head over 64 KiB gets 431") {
  loop::Loop loop;
  {
    Fixture f(loop);
    Client c(loop, f.port());
    c.send(get("/big", "X-Big: " + std::string(65 * 1024, 'b') + "\r\n"));
    REQUIRE(run_until(loop, [&] { return c.ended(); }));
    REQUIRE(c.replies.size() == 1);
    CHECK(c.replies[0].status == 431);
    CHECK(f.requests.empty());
  }
  CHECK(loop.close().is_ok());
}

TEST_CASE("http_server: CONNECT and unknown expectations are refused") {
  loop::Loop loop;
  {
    Fixture f(loop);
    Client a(loop, f.port());
    a.send("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", {"CONNECT"});
    Client b(loop, f.port());
    b.send(get("/x", "Expect: something\r\n"));
    REQUIRE(run_until(loop, [&] { return a.ended() && b.ended(); }));
    REQUIRE(a.replies.size() == 1);
    CHECK(a.replies[0].status == 405);
    REQUIRE(b.replies.size() == 1);
    CHECK(b.replies[0].status == 417);
    CHECK(f.requests.empty());
  }
  CHECK(loop.close().is_ok());
}

TEST_CASE("http_server: absolute-form targets") {
  loop::Loop loop;
  {
    Fixture f(loop);
    Client c(loop, f.port());
    c.send(get("http://127.0.0.1:15000/status?x=1") + get("http://admin?y=2"), {"GET", "GET"});
    REQUIRE(run_until(loop, [&] { return c.replies.size() == 2; }));
    CHECK(f.requests[0].path == "/status");
    CHECK(f.requests[0].param("x") == "1");
    CHECK(f.requests[1].path == "/");
    CHECK(f.requests[1].param("y") == "2");
  }
  CHECK(loop.close().is_ok());
}

TEST_CASE("http_server: timeouts") {
  loop::Loop loop;
  {
    HttpServerOptions o;
    o.header_timeout_ms = 30;
    o.body_timeout_ms = 30;
    o.idle_timeout_ms = 30;
    Fixture f(loop, o);
    SUBCASE("a head that never ends gets 408") {
      Client c(loop, f.port());
      c.send("GET / HTTP/1.1\r\nHost: a\r\n");
      REQUIRE(run_until(loop, [&] { return c.ended(); }));
      REQUIRE(c.replies.size() == 1);
      CHECK(c.replies[0].status == 408);
    }
    SUBCASE("a body that stalls gets 408") {
      Client c(loop, f.port());
      c.send("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc", {"POST"});
      REQUIRE(run_until(loop, [&] { return c.ended(); }));
      REQUIRE(c.replies.size() == 1);
      CHECK(c.replies[0].status == 408);
    }
    SUBCASE("an idle keep-alive connection is closed quietly") {
      Client c(loop, f.port());
      c.send(get("/"));
      REQUIRE(run_until(loop, [&] { return c.ended(); }));
      CHECK(c.replies.size() == 1);
      CHECK(c.eof);
    }
    SUBCASE("a handler may take longer than any timeout") {
      Client c(loop, f.port());
      c.send(get("/later"));
      REQUIRE(run_until(loop, [&] { return f.pending.size() == 1; }));
      CHECK(!run_until(
          loop, [&] { return c.ended(); }, std::chrono::milliseconds(100)));
      f.pending[0](HttpResponse{200, "text/plain", "slow", {}});
      REQUIRE(run_until(loop, [&] { return c.replies.size() == 1; }));
      CHECK(c.replies[0].body == "slow");
    }
    REQUIRE(run_until(loop, [&] { return f.server->connections_for_test() == 0; }));
  }
  CHECK(loop.close().is_ok());
}

TEST_CASE("http_server: response heads the server owns") {
  loop::Loop loop;
  {
    Fixture f(loop);
    f.answer = [](const HttpRequest& req) {
      if (req.path == "/204") return HttpResponse{204, "application/json", "", {}};
      if (req.path == "/1xx") return HttpResponse{102, "text/plain", "x", {}};
      return HttpResponse{200,
                          "",
                          "abc",
                          {{"Content-Length", "99"},
                           {"Connection", "close"},
                           {"X-Evil", "a\r\nInjected: yes"},
                           {"Bad Name", "v"},
                           {"Location", "/next"}}};
    };
    Client c(loop, f.port());
    c.send(get("/204") + get("/1xx") + get("/headers"), {"GET", "GET", "GET"});
    REQUIRE(run_until(loop, [&] { return c.replies.size() == 3; }));
    CHECK(c.replies[0].status == 204);
    CHECK(c.replies[0].header("content-length") == "<none>");
    CHECK(c.replies[0].header("cache-control") == "no-store");
    CHECK(c.replies[1].status == 500);  // a 1xx cannot be final
    const Reply& r = c.replies[2];
    CHECK(r.status == 200);
    CHECK(r.body == "abc");
    CHECK(r.headers.count("content-length") == 1);
    CHECK(r.header("content-length") == "3");
    CHECK(r.header("content-type") == "<none>");
    CHECK(r.header("connection") == "<none>");
    CHECK(r.header("x-evil") == "<none>");
    CHECK(r.header("injected") == "<none>");
    CHECK(r.header("location") == "/next");
    CHECK(!c.ended());
  }
  CHECK(loop.close().is_ok());
}

TEST_CASE("http_server: close() stops accepting and closes every connection") {
  loop::Loop loop;
  {
    Fixture f(loop);
    Client idle(loop, f.port());
    idle.send(get("/"));
    Client waiting(loop, f.port());
    waiting.send(get("/later"));
    REQUIRE(run_until(loop, [&] { return idle.replies.size() == 1 && f.pending.size() == 1; }));
    CHECK(f.server->connections_for_test() == 2);
    uint16_t port = f.port();
    f.server->close();
    f.server->close();  // idempotent
    CHECK(f.server->connections_for_test() == 0);
    REQUIRE(run_until(loop, [&] { return idle.ended() && waiting.ended(); }));
    f.pending[0](HttpResponse{});  // nothing to answer any more
    CHECK(waiting.replies.empty());
    Client late(loop, port);
    REQUIRE(run_until(loop, [&] { return late.ended(); }));
    CHECK(late.error == UV_ECONNREFUSED);
  }
  CHECK(loop.close().is_ok());
}

TEST_CASE("http_server: close() from inside a handler") {
  loop::Loop loop;
  {
    std::unique_ptr<HttpServer> server;
    auto s = HttpServer::listen(loop, loopback(), [&](HttpRequest&, Respond respond) {
      server->close();
      respond(HttpResponse{});
    });
    REQUIRE(s.has_value());
    server = std::move(*s);
    Client c(loop, server->address().port());
    c.send(get("/quit"));
    REQUIRE(run_until(loop, [&] { return c.ended(); }));
    CHECK(c.replies.empty());
  }
  CHECK(loop.close().is_ok());
}

TEST_CASE("http_server: the admin port has one owner") {
  loop::Loop loop;
  {
    auto first = HttpServer::listen(loop, loopback(), [](HttpRequest&, Respond) {});
    REQUIRE(first.has_value());
    const loop::Address& addr = (*first)->address();
    CHECK(addr.ip() == "127.0.0.1");
    CHECK(addr.port() != 0);
    auto second = HttpServer::listen(loop, addr, [](HttpRequest&, Respond) {});
    REQUIRE(!second.has_value());
    CHECK(second.error().message() == addr.to_string() + ": address already in use");
  }
  CHECK(loop.close().is_ok());
}

TEST_CASE("http_server: percent_decode") {
  CHECK(percent_decode("/a%20b%2Fc", false) == "/a b/c");
  CHECK(percent_decode("a+b", false) == "a+b");
  CHECK(percent_decode("a+b", true) == "a b");
  CHECK(percent_decode("%e2%82%AC", false) == "\xe2\x82\xac");
  CHECK(!percent_decode("%", false).has_value());
  CHECK(!percent_decode("%4", false).has_value());
  CHECK(!percent_decode("%4g", false).has_value());
  CHECK(percent_decode("", false) == "");
}

TEST_CASE("http_server: param with odd queries") {
  HttpRequest r;
  r.query = "a=1&&=x&b=%zz&c=%41";
  CHECK(r.param("a") == "1");
  CHECK(r.param("b") == "%zz");  // a bad escape is taken literally
  CHECK(r.param("c") == "A");
  CHECK(r.param("") == "x");
  r.query = "";
  CHECK(!r.param("a").has_value());
}

}  // namespace
}  // namespace meshbox::control

namespace meshbox::control {
namespace {

TEST_CASE("http_server: a streaming response: chunks as written, end, and the client going") {
  loop::Loop loop;
  {
    std::shared_ptr<ResponseStream> stream;
    int closed = 0;
    auto s = HttpServer::listen(loop, loopback(), [&](HttpRequest& req, Respond respond) {
      stream = std::make_shared<ResponseStream>();
      stream->on_close([&] { ++closed; });
      CHECK(stream->write("held\n"));  // before the head: kept until it is out
      HttpResponse r;
      r.content_type = "application/x-ndjson";
      r.stream = stream;
      respond(std::move(r));
      if (req.method == "HEAD") return;
      CHECK(stream->write("one\n"));
    });
    REQUIRE(s.has_value());
    uint16_t port = (*s)->address().port();

    {
      INFO("written chunks arrive; end() finishes the body and closes the connection");
      Client c(loop, port);
      c.send(get("/tap"));
      REQUIRE(run_until(loop, [&] { return stream != nullptr; }));
      CHECK(stream->write("two\n"));
      stream->end();
      CHECK(!stream->write("late\n"));
      REQUIRE(run_until(loop, [&] { return c.replies.size() == 1 && c.ended(); }));
      CHECK(c.replies[0].status == 200);
      CHECK(c.replies[0].body == "held\none\ntwo\n");
      CHECK(c.replies[0].header("transfer-encoding") == "chunked");
      CHECK(c.replies[0].header("content-type") == "application/x-ndjson");
      CHECK(c.replies[0].header("connection") == "close");
      CHECK(closed == 0);  // ended, not closed
    }
    {
      INFO("the client goes away mid-stream: on_close runs once, writes fail");
      stream.reset();
      auto c = std::make_unique<Client>(loop, port);
      c->send(get("/tap"));
      REQUIRE(run_until(loop, [&] { return stream != nullptr; }));
      c->close();
      REQUIRE(run_until(loop, [&] { return closed == 1; }));
      CHECK(!stream->open());
      CHECK(!stream->write("gone\n"));
      CHECK((*s)->connections_for_test() == 0);
    }
    {
      INFO("HEAD: nothing to stream; the stream closes for the handler");
      stream.reset();
      Client c(loop, port);
      c.send("HEAD /tap HTTP/1.1\r\nHost: admin\r\n\r\n", {"HEAD"});
      REQUIRE(run_until(loop, [&] { return c.replies.size() == 1 && closed == 2; }));
      CHECK(!stream->open());
    }
    (*s)->close();
  }
  CHECK(loop.close().is_ok());
}

}  // namespace
}  // namespace meshbox::control
