// Tests for cli/admin_client.h. The client blocks, so servers run on other threads: the real
// admin HttpServer on a LoopThread, and for response framings HttpServer never writes
// (chunked, until close, 1xx) a canned one-shot server on a std::thread. Nothing sleeps;
// every wait has a deadline.
#include "cli/admin_client.h"

#include <doctest/doctest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/loop/loop_thread.h"
#include "plane/control/http_server.h"

namespace meshbox::cli {
namespace {

using control::HttpRequest;
using control::HttpResponse;
using control::HttpServer;
using control::Respond;

// The admin HttpServer on its own loop thread. Requests are recorded (under a lock: the test
// thread reads them); paths starting with "/hang" are never answered.
class AdminServer {
 public:
  AdminServer() : thread_("admin-test") {
    thread_.start();
    std::promise<std::string> bound;
    thread_.post([&] {
      auto s = HttpServer::listen(
          thread_.loop(), *loop::Address::parse("127.0.0.1:0"),
          [this](HttpRequest& req, Respond respond) { on_request(req, std::move(respond)); });
      if (!s) return bound.set_value("");
      server_ = std::move(*s);
      bound.set_value(server_->address().to_string());
    });
    address = bound.get_future().get();
    REQUIRE(!address.empty());
  }
  ~AdminServer() {
    std::promise<void> done;
    thread_.post([&] {
      server_.reset();
      hanging_.clear();  // on the loop thread, like every Respond
      done.set_value();
    });
    done.get_future().wait();
    thread_.release();
    CHECK(thread_.join().is_ok());
  }

  std::vector<HttpRequest> requests() {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_;
  }

  std::string address;

 private:
  void on_request(HttpRequest& req, Respond respond) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      requests_.push_back(req);
    }
    if (req.path.starts_with("/hang")) {
      hanging_.push_back(std::move(respond));
      return;
    }
    if (req.path == "/missing") {
      return respond(HttpResponse{404, "application/json", R"({"error":"no such thing"})", {}});
    }
    respond(HttpResponse{
        200,
        "application/json",
        R"({"method":")" + req.method + R"(","bytes":)" + std::to_string(req.body.size()) + "}",
        {}});
  }

  loop::LoopThread thread_;
  std::unique_ptr<HttpServer> server_;  // loop thread only
  std::vector<Respond> hanging_;        // loop thread only
  std::mutex mu_;
  std::vector<HttpRequest> requests_;  // guarded by mu_
};

// A listening socket on 127.0.0.1:0 and a thread that accepts one connection, reads one
// request head (and a Content-Length body), writes `response` and closes.
class CannedServer {
 public:
  explicit CannedServer(std::string response) : response_(std::move(response)) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd_ >= 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0);
    REQUIRE(::listen(fd_, 4) == 0);
    socklen_t len = sizeof sa;
    REQUIRE(::getsockname(fd_, reinterpret_cast<sockaddr*>(&sa), &len) == 0);
    address = "127.0.0.1:" + std::to_string(ntohs(sa.sin_port));
    thread_ = std::thread([this] { serve(); });
  }
  ~CannedServer() {
    thread_.join();
    ::close(fd_);
  }

  std::string address;
  std::string request;  // read it after admin_call returns (the thread has written it)

 private:
  void serve() {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, 10'000) != 1) return;
    int c = ::accept(fd_, nullptr, nullptr);
    if (c < 0) return;
    char buf[4096];
    for (;;) {
      size_t head_end = request.find("\r\n\r\n");
      if (head_end != std::string::npos) {
        size_t cl_at = request.find("Content-Length: ");
        size_t cl = cl_at == std::string::npos ? 0 : std::stoul(request.substr(cl_at + 16));
        if (request.size() >= head_end + 4 + cl) break;
      }
      pollfd q{c, POLLIN, 0};
      if (::poll(&q, 1, 10'000) != 1) break;
      ssize_t n = ::recv(c, buf, sizeof buf, 0);
      if (n <= 0) break;
      request.append(buf, static_cast<size_t>(n));
    }
    (void)::send(c, response_.data(), response_.size(), MSG_NOSIGNAL);
    ::close(c);
  }

  std::string response_;
  int fd_ = -1;
  std::thread thread_;
};

TEST_CASE("admin_call: status, body, content type; what the server sees") {
  AdminServer server;
  auto r = admin_call(server.address, "POST", "/config?dry_run=1", R"({"files":[]})", "s3cret");
  REQUIRE(r.has_value());
  CHECK(r->status == 200);
  CHECK(r->content_type == "application/json");
  CHECK(r->body == R"({"method":"POST","bytes":12})");

  auto missing = admin_call(server.address, "GET", "/missing", "", "");
  REQUIRE(missing.has_value());
  CHECK(missing->status == 404);  // a status is a reply, not an error
  CHECK(missing->body == R"({"error":"no such thing"})");

  auto reqs = server.requests();
  REQUIRE(reqs.size() == 2);
  CHECK(reqs[0].path == "/config");
  CHECK(reqs[0].param("dry_run") == "1");
  CHECK(reqs[0].body == R"({"files":[]})");
  REQUIRE(reqs[0].headers.get("authorization") != nullptr);
  CHECK(*reqs[0].headers.get("authorization") == "Bearer s3cret");
  CHECK(*reqs[0].headers.get("content-type") == "application/json");
  CHECK(*reqs[0].headers.get("connection") == "close");
  CHECK(!reqs[1].headers.has("authorization"));  // no token, no header
  CHECK(!reqs[1].headers.has("content-type"));   // no body, no type
  CHECK(*reqs[1].headers.get("content-length") == "0");
}

TEST_CASE("admin_call: a large body, and HEAD") {
  AdminServer server;
  std::string big(3 << 20, 'x');
  auto r = admin_call(server.address, "PUT", "/config", big, "t");
  REQUIRE(r.has_value());
  CHECK(r->body == R"({"method":"PUT","bytes":3145728})");
  auto h = admin_call(server.address, "HEAD", "/config", "", "t");
  REQUIRE(h.has_value());
  CHECK(h->status == 200);
  CHECK(h->body.empty());
}

TEST_CASE("admin_call: a body over the server's limit gets its 413, not a reset") {
  AdminServer server;
  std::string huge((16 << 20) + 1, 'x');
  auto r = admin_call(server.address, "POST", "/config", huge, "t");
  REQUIRE(r.has_value());
  CHECK(r->status == 413);
  CHECK(server.requests().empty());
}

TEST_CASE("admin_call: the exact request bytes") {
  CannedServer canned("HTTP/1.1 204 No Content\r\n\r\n");
  auto r = admin_call(canned.address, "DELETE", "/config/service/default/a", "", "tok");
  REQUIRE(r.has_value());
  CHECK(r->status == 204);
  CHECK(canned.request == "DELETE /config/service/default/a HTTP/1.1\r\nHost: " + canned.address +
                              "\r\nConnection: close\r\nContent-Length: 0\r\n"
                              "Authorization: Bearer tok\r\n\r\n");
}

TEST_CASE("admin_call: a TOML body is sent as such") {
  CannedServer canned("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
  auto r = admin_call(canned.address, "POST", "/x", "[mesh]\nname = \"m\"\n", "");
  REQUIRE(r.has_value());
  CHECK(canned.request.find("\r\nContent-Type: application/toml\r\n") != std::string::npos);
  CHECK(canned.request.ends_with("\r\n\r\n[mesh]\nname = \"m\"\n"));
}

TEST_CASE("admin_call: chunked, until-close and interim responses") {
  SUBCASE("chunked") {
    CannedServer canned(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n"
        "4\r\nabcd\r\n3\r\nefg\r\n0\r\n\r\n");
    auto r = admin_call(canned.address, "GET", "/", "", "");
    REQUIRE(r.has_value());
    CHECK(r->content_type == "text/plain");
    CHECK(r->body == "abcdefg");
  }
  SUBCASE("until the close") {
    CannedServer canned("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nall of it");
    auto r = admin_call(canned.address, "GET", "/", "", "");
    REQUIRE(r.has_value());
    CHECK(r->body == "all of it");
    CHECK(r->content_type.empty());
  }
  SUBCASE("100 Continue first") {
    CannedServer canned(
        "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok");
    auto r = admin_call(canned.address, "POST", "/", "{}", "");
    REQUIRE(r.has_value());
    CHECK(r->status == 201);
    CHECK(r->body == "ok");
  }
  SUBCASE("cut short") {
    CannedServer canned("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc");
    auto r = admin_call(canned.address, "GET", "/", "", "");
    REQUIRE(!r.has_value());
    CHECK(r.error().code() == Code::Unavailable);
    CHECK(r.error().message() == "the meshbox admin API at " + canned.address +
                                     " closed the connection before the response was complete");
  }
  SUBCASE("malformed") {
    CannedServer canned("SSH-2.0-OpenSSH_9.2\r\n");
    auto r = admin_call(canned.address, "GET", "/", "", "");
    REQUIRE(!r.has_value());
    CHECK(r.error().message().find("malformed response") != std::string::npos);
  }
}

TEST_CASE("admin_call: connection refused says what to do") {
  // A bound socket that does not listen: its port refuses connections and stays ours.
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(fd >= 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0);
  socklen_t len = sizeof sa;
  REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len) == 0);
  std::string address = "127.0.0.1:" + std::to_string(ntohs(sa.sin_port));
  auto r = admin_call(address, "GET", "/status", "", "");
  ::close(fd);
  REQUIRE(!r.has_value());
  CHECK(r.error().code() == Code::Unavailable);
  CHECK(r.error().message() == "cannot reach the meshbox admin API at " + address +
                                   ": connection refused (is `meshbox run` running?)");
}

TEST_CASE("admin_call: a server that never answers times out") {
  AdminServer server;
  auto start = std::chrono::steady_clock::now();
  auto r = admin_call(server.address, "GET", "/hang", "", "", 200);
  auto took = std::chrono::steady_clock::now() - start;
  REQUIRE(!r.has_value());
  CHECK(r.error().code() == Code::Unavailable);
  CHECK(r.error().message() ==
        "the meshbox admin API at " + server.address + " did not answer within 200 ms");
  CHECK(took >= std::chrono::milliseconds(200));
  CHECK(took < std::chrono::seconds(5));
}

TEST_CASE("admin_call: bad arguments") {
  auto r = admin_call("nonsense", "GET", "/", "", "");
  REQUIRE(!r.has_value());
  CHECK(r.error().code() == Code::InvalidArgument);
  auto inject = admin_call("127.0.0.1:1", "GET", "/ HTTP/1.1\r\nX: y", "", "");
  REQUIRE(!inject.has_value());
  CHECK(inject.error().code() == Code::InvalidArgument);
}

}  // namespace
}  // namespace meshbox::cli
