// Many clients at once: 1,000 concurrent connections, each with one request in flight at the
// same time, driven from one poll(2) loop.
#include <doctest/doctest.h>
#include <poll.h>

#include <cstring>
#include <map>

#include "test/support/deadline.h"
#include "test/support/http_response.h"
#include "test/support/meshbox.h"

namespace meshbox::test {
namespace {

constexpr int kClients = 1000;

struct Client {
  TcpConn conn;
  bool connected = false;
  size_t sent = 0;
  std::string received;
  bool closed = false;
  std::string failure;
};

TEST_CASE("proxy: 1,000 concurrent client connections all get 200") {
  // Each connection costs the proxy two descriptors and the backend one; children inherit.
  uint64_t limit = raise_fd_limit(8192);
  REQUIRE(limit >= 3 * kClients + 100);
  ProxyFixture f(ProxyOptions{.log_level = "info"});

  // /delay keeps every request in flight at once, so this is 1,000 concurrent streams and
  // (unless the proxy queues) 1,000 upstream connections.
  const std::string request = "GET /delay/300 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
  Deadline deadline(45s);
  auto start = Deadline::Clock::now();
  std::vector<Client> clients(kClients);
  for (auto& c : clients) {
    int err = 0;
    c.conn = TcpConn::connect_async(f.proxy.address(), &err);
    if (!c.conn.valid()) c.failure = std::string("connect: ") + std::strerror(err);
  }
  std::vector<pollfd> fds;
  std::vector<size_t> index;
  for (;;) {
    fds.clear();
    index.clear();
    for (size_t i = 0; i < clients.size(); ++i) {
      Client& c = clients[i];
      if (c.closed || !c.failure.empty()) continue;
      short ev = !c.connected || c.sent < request.size() ? POLLOUT : POLLIN;
      fds.push_back({c.conn.fd(), ev, 0});
      index.push_back(i);
    }
    if (fds.empty() || deadline.expired()) break;
    if (::poll(fds.data(), fds.size(), deadline.poll_ms()) <= 0) continue;
    for (size_t k = 0; k < fds.size(); ++k) {
      if (!fds[k].revents) continue;
      Client& c = clients[index[k]];
      if (!c.connected) {
        if (int e = c.conn.finish_connect(); e != 0) {
          c.failure = std::string("connect: ") + std::strerror(e);
          continue;
        }
        c.connected = true;
      }
      if (c.sent < request.size()) {
        // One small write: the socket is writable, so it goes out whole or fails.
        if (!c.conn.send_all(std::string_view(request).substr(c.sent), Deadline(1s))) {
          c.failure = "send: " + c.conn.last_error();
          continue;
        }
        c.sent = request.size();
        continue;
      }
      RecvStatus s = c.conn.recv_some(c.received, Deadline(0s));
      if (s == RecvStatus::Eof) {
        c.closed = true;
      } else if (s == RecvStatus::Reset || s == RecvStatus::Error) {
        c.failure = std::string("recv: ") + to_string(s) + " " + c.conn.last_error();
      }
    }
  }
  int64_t took = ms_since(start);

  int ok = 0;
  std::map<std::string, int> problems;  // summary → how many
  for (auto& c : clients) {
    ResponseParser p;
    p.feed(c.received);
    p.on_eof();
    HttpResponse& r = p.response();
    if (c.failure.empty() && c.closed && r.complete && r.status == 200) {
      ++ok;
    } else {
      std::string why = !c.failure.empty() ? c.failure
                        : !c.closed        ? "no close before the deadline: " + r.summary()
                                           : r.summary();
      ++problems[why];
    }
  }
  MESSAGE(ok << " of " << kClients << " concurrent requests got 200 in " << took << " ms");
  for (const auto& [why, n] : problems)
    MESSAGE(n << " x " << why);
  CHECK(ok == kClients);
}

}  // namespace
}  // namespace meshbox::test
