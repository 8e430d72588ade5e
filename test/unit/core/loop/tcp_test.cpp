// Tests for core/loop/tcp_listener.h and core/loop/tcp_conn.h over real loopback sockets
// (port 0, so the tests never collide): SO_REUSEPORT listeners, connect, echo, backpressure,
// shutdown, errors. Every test ends with the loop closed clean.
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/loop/address.h"
#include "core/loop/loop.h"
#include "core/loop/tcp_conn.h"
#include "core/loop/tcp_listener.h"
#include "test/support/test_loop.h"

namespace meshbox::loop {
namespace {

Address loopback(uint16_t port = 0) {
  auto a = Address::parse("127.0.0.1:" + std::to_string(port));
  REQUIRE(a.has_value());
  return *a;
}

char pattern_byte(size_t i) {
  return static_cast<char>(i % 251);
}

// One end of a connection: records everything its callbacks see.
class Peer : public TcpConnCallbacks {
 public:
  Peer() = default;
  explicit Peer(TcpConnPtr c) { attach(std::move(c)); }
  void attach(TcpConnPtr c) {
    conn = std::move(c);
    conn->set_callbacks(this);
  }

  void on_data(const char* data, size_t len) override {
    if (check_pattern) {
      for (size_t i = 0; i < len; ++i)
        if (data[i] != pattern_byte(bytes + i)) ++mismatches;
    } else {
      received.append(data, len);
    }
    bytes += len;
    if (echo) conn->write(data, len);
    if (drop_on_data) conn.reset();
  }
  void on_eof() override { eof = true; }
  void on_error(int err) override { error = err; }
  void on_connected() override { connected = true; }
  void on_drained() override { ++drained; }
  void on_flushed() override { ++flushed; }

  TcpConnPtr conn;
  std::string received;
  size_t bytes = 0;
  size_t mismatches = 0;
  bool check_pattern = false;
  bool echo = false;
  bool drop_on_data = false;
  bool eof = false;
  bool connected = false;
  int error = 0;
  int drained = 0;
  int flushed = 0;
};

// A listener on 127.0.0.1:0 whose accepted connections become Peers.
class Server {
 public:
  explicit Server(Loop& loop, uint16_t port = 0) {
    auto fd = bind_reuseport(loopback(port));
    REQUIRE(fd.has_value());
    auto l = TcpListener::open(loop, *fd, [this](TcpConnPtr c) {
      auto p = std::make_unique<Peer>(std::move(c));
      p->echo = echo;
      if (read) p->conn->read_start();
      peers.push_back(std::move(p));
    });
    REQUIRE(l.has_value());
    listener = std::move(*l);
  }
  uint16_t port() const { return listener->address().port(); }

  std::unique_ptr<TcpListener> listener;
  std::vector<std::unique_ptr<Peer>> peers;
  bool echo = false;
  bool read = true;
};

// Starts a connect from a fresh Peer to 127.0.0.1:port.
std::unique_ptr<Peer> dial(Loop& loop, uint16_t port) {
  auto p = std::make_unique<Peer>(TcpConn::create(loop));
  Status s = p->conn->connect(loopback(port));
  REQUIRE(s.is_ok());
  CHECK(p->conn->connecting());
  return p;
}

TEST_CASE("tcp: bind_reuseport on port 0 picks a port") {
  auto fd = bind_reuseport(loopback());
  REQUIRE(fd.has_value());
  auto addr = bound_address(*fd);
  REQUIRE(addr.has_value());
  CHECK(addr->ip() == "127.0.0.1");
  CHECK(addr->port() != 0);
  ::close(*fd);
}

TEST_CASE("tcp: two SO_REUSEPORT listeners share a port and both accept") {
  Loop loop;
  {
    Server a(loop);
    Server b(loop, a.port());
    CHECK(b.port() == a.port());
    std::vector<std::unique_ptr<Peer>> clients;
    for (int i = 0; i < 16; ++i)
      clients.push_back(dial(loop, a.port()));
    CHECK(run_until(loop, [&] { return a.peers.size() + b.peers.size() == 16; }));
    for (auto& c : clients)
      CHECK(c->connected);
    // The kernel hashes connections over both sockets; with 16 distinct source ports both
    // getting none would be a broken reuseport group (chance 2^-15 otherwise).
    CHECK(a.peers.size() > 0);
    CHECK(b.peers.size() > 0);
  }
  CHECK(loop.close().is_ok());
}

TEST_CASE("tcp: bind_reuseport fails on a port held without SO_REUSEPORT") {
  int plain = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(plain >= 0);
  Address any = loopback();
  REQUIRE(::bind(plain, any.sa(), any.len()) == 0);
  REQUIRE(::listen(plain, 16) == 0);
  auto held = bound_address(plain);
  REQUIRE(held.has_value());
  auto fd = bind_reuseport(loopback(held->port()));
  CHECK_FALSE(fd.has_value());
  if (!fd) {
    CHECK(fd.error().code() == Code::Io);
    CHECK(fd.error().message().find("cannot listen on 127.0.0.1:") != std::string::npos);
  } else {
    ::close(*fd);
  }
  ::close(plain);
}

TEST_CASE("tcp: bind_exclusive owns its port alone") {
  Loop loop;
  {
    auto fd = bind_exclusive(loopback());
    REQUIRE(fd.has_value());
    auto addr = bound_address(*fd);
    REQUIRE(addr.has_value());
    CHECK(addr->port() != 0);
    // Neither a second exclusive socket nor a SO_REUSEPORT one may share it.
    auto again = bind_exclusive(*addr);
    REQUIRE(!again.has_value());
    CHECK(again.error().message() == addr->to_string() + ": address already in use");
    CHECK(!bind_reuseport(*addr).has_value());
    // It accepts like any listener.
    auto l = TcpListener::open(loop, *fd, [](TcpConnPtr) {});
    REQUIRE(l.has_value());
    auto client = dial(loop, addr->port());
    CHECK(run_until(loop, [&] { return client->connected; }));
  }
  CHECK(loop.close().is_ok());
}

TEST_CASE("tcp: connect, echo, addresses") {
  Loop loop;
  {
    Server server(loop);
    server.echo = true;
    CHECK(server.listener->address().ip() == "127.0.0.1");
    auto client = dial(loop, server.port());
    CHECK(run_until(loop, [&] { return client->connected && server.peers.size() == 1; }));
    CHECK_FALSE(client->conn->connecting());
    client->conn->read_start();
    CHECK(client->conn->reading());

    Peer& srv = *server.peers[0];
    CHECK(client->conn->peer().to_string() == server.listener->address().to_string());
    CHECK(srv.conn->peer().to_string() == client->conn->local().to_string());
    CHECK(srv.conn->local().port() == server.port());

    client->conn->write("hello, ");
    iovec parts[2] = {{const_cast<char*>("wor"), 3}, {const_cast<char*>("ld"), 2}};
    client->conn->writev(parts, 2);
    CHECK(run_until(loop, [&] { return client->received == "hello, world"; }));
    CHECK(srv.received == "hello, world");
    CHECK(client->error == 0);
    CHECK(srv.error == 0);
    CHECK(client->conn->pending() == 0);
  }
  CHECK(loop.close().is_ok());
}

TEST_CASE("tcp: writes queued while connecting go out once connected") {
  Loop loop;
  {
    Server server(loop);
    auto client = dial(loop, server.port());
    client->conn->write("early bytes");  // before the connect completes
    CHECK(client->conn->pending() == 11);
    CHECK(run_until(loop, [&] {
      return server.peers.size() == 1 && server.peers[0]->received == "early bytes";
    }));
    CHECK(client->connected);
  }
  CHECK(loop.close().is_ok());
}

TEST_CASE("tcp: a large write crosses the high watermark and drains below the low one") {
  constexpr size_t kTotal = 32 * 1024 * 1024;
  Loop loop;
  {
    Server server(loop);
    server.read = false;  // let the client's output back up first
    auto client = dial(loop, server.port());
    CHECK(run_until(loop, [&] { return client->connected && server.peers.size() == 1; }));
    Peer& srv = *server.peers[0];
    srv.check_pattern = true;

    std::string data(kTotal, '\0');
    for (size_t i = 0; i < kTotal; ++i)
      data[i] = pattern_byte(i);
    client->conn->write(data);
    // The kernel cannot take 32 MiB from a peer that does not read.
    CHECK(client->conn->pending() > 0);
    CHECK(client->conn->above_high_watermark());
    CHECK(client->drained == 0);
    run_until(
        loop, [] { return false; }, std::chrono::milliseconds(20));
    CHECK(client->drained == 0);  // still stuck: nobody reads

    srv.conn->read_start();
    CHECK(run_until(loop, [&] { return client->drained > 0; }));
    CHECK(client->drained == 1);
    CHECK(client->conn->pending() <= TcpConn::kDefaultLowWatermark);
    CHECK_FALSE(client->conn->above_high_watermark());

    client->conn->shutdown();
    CHECK(run_until(loop, [&] { return client->flushed == 1 && srv.eof; }));
    CHECK(srv.bytes == kTotal);
    CHECK(srv.mismatches == 0);
    CHECK(client->conn->pending() == 0);
    CHECK(client->drained == 1);
    CHECK(client->error == 0);
  }
  CHECK(loop.close().is_ok());
}

TEST_CASE("tcp: custom watermarks") {
  Loop loop;
  {
    Server server(loop);
    server.read = false;
    auto client = dial(loop, server.port());
    CHECK(run_until(loop, [&] { return client->connected && server.peers.size() == 1; }));
    client->conn->set_watermarks(1024 * 1024, 0);
    std::string chunk(64 * 1024, 'x');
    // Fill until the output backs up past the high watermark.
    for (int i = 0; i < 2000 && !client->conn->above_high_watermark(); ++i)
      client->conn->write(chunk);
    REQUIRE(client->conn->above_high_watermark());
    server.peers[0]->conn->read_start();
    // Low watermark 0: on_drained only once everything is written.
    CHECK(run_until(loop, [&] { return client->drained == 1; }));
    CHECK(client->conn->pending() == 0);
  }
  CHECK(loop.close().is_ok());
}

TEST_CASE("tcp: shutdown sends FIN after the pending bytes; the other way stays open") {
  Loop loop;
  {
    Server server(loop);
    auto client = dial(loop, server.port());
    client->conn->read_start();
    CHECK(run_until(loop, [&] { return client->connected && server.peers.size() == 1; }));
    Peer& srv = *server.peers[0];
    client->conn->write("last words");
    client->conn->shutdown();
    CHECK(run_until(loop, [&] { return client->flushed == 1 && srv.eof; }));
    CHECK(srv.received == "last words");
    CHECK_FALSE(srv.conn->reading());
    // Half-closed: the server can still answer.
    srv.conn->write("reply");
    srv.conn->shutdown();
    CHECK(run_until(loop, [&] { return client->eof && srv.flushed == 1; }));
    CHECK(client->received == "reply");
    CHECK(client->error == 0);
    CHECK(srv.error == 0);
  }
  CHECK(loop.close().is_ok());
}

TEST_CASE("tcp: notify_when_flushed reports once the output is written") {
  Loop loop;
  {
    Server server(loop);
    auto client = dial(loop, server.port());
    CHECK(run_until(loop, [&] { return client->connected && server.peers.size() == 1; }));
    client->conn->write(std::string(1024 * 1024, 'y'));
    client->conn->notify_when_flushed();
    CHECK(run_until(loop, [&] { return client->flushed == 1; }));
    CHECK(client->conn->pending() == 0);
    CHECK(run_until(loop, [&] { return server.peers[0]->bytes == 1024 * 1024; }));
    CHECK_FALSE(server.peers[0]->eof);  // no FIN
    // With nothing pending it reports at once.
    client->conn->notify_when_flushed();
    CHECK(client->flushed == 2);
  }
  CHECK(loop.close().is_ok());
}

TEST_CASE("tcp: connecting to a closed port reports on_error") {
  Loop loop;
  {
    // A port that was just free: bind, read it back, close.
    auto fd = bind_reuseport(loopback());
    REQUIRE(fd.has_value());
    uint16_t port = bound_address(*fd)->port();
    ::close(*fd);

    auto client = dial(loop, port);
    CHECK(run_until(loop, [&] { return client->error != 0; }));
    CHECK(client->error == UV_ECONNREFUSED);
    CHECK_FALSE(client->connected);
    CHECK_FALSE(client->conn->connecting());
  }
  CHECK(loop.close().is_ok());
}

TEST_CASE("tcp: the owner may drop a connection inside its callback") {
  Loop loop;
  {
    Server server(loop);
    auto client = dial(loop, server.port());
    client->conn->read_start();
    CHECK(run_until(loop, [&] { return client->connected && server.peers.size() == 1; }));
    server.peers[0]->drop_on_data = true;
    client->conn->write("bye");
    CHECK(run_until(loop, [&] { return client->eof || client->error != 0; }));
    CHECK(server.peers[0]->conn == nullptr);
    CHECK(server.peers[0]->received == "bye");
  }
  CHECK(loop.close().is_ok());
}

TEST_CASE("tcp: a closed listener accepts no more") {
  Loop loop;
  {
    Server server(loop);
    uint16_t port = server.port();
    server.listener->close();
    server.listener->close();  // twice is fine
    auto client = dial(loop, port);
    CHECK(run_until(loop, [&] { return client->error != 0; }));
    CHECK(client->error == UV_ECONNREFUSED);
    CHECK(server.peers.empty());
  }
  CHECK(loop.close().is_ok());
}

TEST_CASE("tcp: dropping a connection with output pending is clean") {
  Loop loop;
  {
    Server server(loop);
    server.read = false;
    auto client = dial(loop, server.port());
    CHECK(run_until(loop, [&] { return client->connected && server.peers.size() == 1; }));
    client->conn->write(std::string(16 * 1024 * 1024, 'z'));
    CHECK(client->conn->pending() > 0);
    client->conn.reset();  // an in-flight uv_write is cancelled; nothing leaks
    server.peers[0]->conn->read_start();
    CHECK(run_until(loop, [&] { return server.peers[0]->eof || server.peers[0]->error != 0; }));
  }
  CHECK(loop.close().is_ok());
}

}  // namespace
}  // namespace meshbox::loop
