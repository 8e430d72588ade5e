// plane/control/etcd_client against a real etcd (Debian's etcd-server, started by the test on
// free ports with a temp data dir: test/support/etcd.h): key-value calls, txn, leases, watches
// across an etcd restart and a compaction, a dead endpoint skipped; and against a scripted
// fake server (test/support/fake_upstream.h) sending garbage, a 500 and a truncated chunked
// watch stream. The client's loop runs on the test thread (run_until); every wait has a
// deadline, and the loop must close clean at the end.
#include <doctest/doctest.h>

#include <atomic>
#include <optional>
#include <string>
#include <vector>

#include "plane/control/etcd_client.h"
#include "test/support/deadline.h"
#include "test/support/etcd.h"
#include "test/support/fake_upstream.h"
#include "test/support/files.h"
#include "test/support/mesh.h"
#include "test/support/test_loop.h"

namespace meshbox::control::etcd {
namespace {

using namespace std::chrono_literals;
using loop::run_until;
using meshbox::test::Deadline;
using meshbox::test::Etcd;
using meshbox::test::FakeUpstream;
using meshbox::test::TempDir;

loop::Address addr(const std::string& s) {
  auto a = loop::Address::parse(s);
  REQUIRE(a.has_value());
  return *a;
}

Options options_for(std::vector<std::string> endpoints, uint64_t timeout_ms = 3000) {
  Options o;
  for (const auto& e : endpoints)
    o.endpoints.push_back(addr(e));
  o.request_timeout_ms = timeout_ms;
  return o;
}

// Runs `start(callback)` and the loop until the callback ran; its argument.
template <typename T, typename F>
T await(loop::Loop& loop, F&& start) {
  std::optional<T> out;
  start([&out](T r) { out.emplace(std::move(r)); });
  REQUIRE(run_until(
      loop, [&] { return out.has_value(); }, 15s));
  return std::move(*out);
}

// A client on its own loop; the loop must close clean when the test is done.
struct Fixture {
  explicit Fixture(Options o) : client(std::make_unique<Client>(loop, std::move(o))) {}
  ~Fixture() {
    client.reset();
    CHECK(loop.close().is_ok());
  }

  int64_t put(const std::string& k, const std::string& v, int64_t lease = 0) {
    auto r = await<Result<int64_t>>(loop, [&](auto cb) { client->put(k, v, lease, cb); });
    REQUIRE_MESSAGE(r.has_value(), r.error().message());
    return *r;
  }
  RangeResult range(const std::string& k, const std::string& end = "") {
    auto r = await<Result<RangeResult>>(loop, [&](auto cb) { client->range(k, end, cb); });
    REQUIRE_MESSAGE(r.has_value(), r.error().message());
    return std::move(*r);
  }

  loop::Loop loop;
  std::unique_ptr<Client> client;
};

// Collects what a watch delivers.
struct WatchLog {
  std::vector<Event> events;
  std::vector<int64_t> revisions;
  std::optional<WatchError> error;

  std::unique_ptr<Watch> start(Client& c, const std::string& prefix, int64_t from) {
    return c.watch(
        prefix, Client::prefix_end(prefix), from,
        [this](std::vector<Event> evs, int64_t rev) {
          for (auto& e : evs)
            events.push_back(std::move(e));
          revisions.push_back(rev);
        },
        [this](WatchError e) { error = std::move(e); });
  }
};

#define SKIP_WITHOUT_ETCD()                                                   \
  if (!meshbox::test::etcd_installed()) {                                     \
    MESSAGE("skipped: /usr/bin/etcd is not installed (Debian: etcd-server)"); \
    return;                                                                   \
  }

TEST_CASE("prefix_end is etcd's range end for a prefix") {
  CHECK(Client::prefix_end("a") == "b");
  CHECK(Client::prefix_end("/mesh/") == "/mesh0");
  CHECK(Client::prefix_end(std::string("a\xff", 2)) == "b");
  CHECK(Client::prefix_end(std::string("\xff\xff", 2)) == std::string(1, '\0'));
  CHECK(Client::prefix_end("") == std::string(1, '\0'));
}

TEST_CASE("etcd client: put, range, prefix range, delete, txn and leases on a real etcd") {
  SKIP_WITHOUT_ETCD();
  TempDir dir;
  Etcd etcd(dir);
  etcd.start();
  Fixture f(options_for({etcd.endpoint()}));

  // Binary-safe keys and values (base64 on the wire).
  std::string odd_value("v\0\xff\n\"", 5);
  int64_t r1 = f.put("/m/a", "1");
  int64_t r2 = f.put("/m/b", odd_value);
  f.put("/n/x", "outside");
  CHECK(r2 == r1 + 1);

  auto one = f.range("/m/a");
  REQUIRE(one.kvs.size() == 1);
  CHECK(one.kvs[0].key == "/m/a");
  CHECK(one.kvs[0].value == "1");
  CHECK(one.kvs[0].create_revision == r1);
  CHECK(one.kvs[0].mod_revision == r1);
  CHECK(one.kvs[0].version == 1);
  CHECK(one.revision == r2 + 1);

  auto prefix = f.range("/m/", Client::prefix_end("/m/"));
  REQUIRE(prefix.kvs.size() == 2);
  CHECK(prefix.kvs[1].key == "/m/b");
  CHECK(prefix.kvs[1].value == odd_value);
  CHECK(f.range("/m/zz").kvs.empty());
  {
    // Sequential calls on a reused keep-alive connection: a number for the report.
    auto t0 = Deadline::Clock::now();
    for (int i = 0; i < 100; ++i)
      CHECK(f.range("/m/a").kvs.size() == 1);
    MESSAGE("100 sequential ranges: " << meshbox::test::ms_since(t0) << " ms");
  }

  // Txn on the mod revision: the first wins, the second (stale revision) takes the failure
  // branch.
  auto txn = [&](int64_t expect_mod, const std::string& value) {
    Compare c;
    c.target = Compare::Target::Mod;
    c.result = Compare::Result::Equal;
    c.key = "/m/a";
    c.number = expect_mod;
    Op put{Op::Type::Put, "/m/a", value, "", 0};
    Op mark{Op::Type::Put, "/m/lost", value, "", 0};
    auto r =
        await<Result<TxnResult>>(f.loop, [&](auto cb) { f.client->txn({c}, {put}, {mark}, cb); });
    REQUIRE_MESSAGE(r.has_value(), r.error().message());
    return *r;
  };
  TxnResult won = txn(r1, "2");
  CHECK(won.succeeded);
  TxnResult lost = txn(r1, "3");
  CHECK_FALSE(lost.succeeded);
  CHECK(lost.revision == won.revision + 1);
  CHECK(f.range("/m/a").kvs.at(0).value == "2");
  CHECK(f.range("/m/lost").kvs.at(0).value == "3");

  auto deleted = await<Result<int64_t>>(
      f.loop, [&](auto cb) { f.client->delete_range("/m/", Client::prefix_end("/m/"), cb); });
  REQUIRE(deleted.has_value());
  CHECK(*deleted == 3);
  CHECK(f.range("/m/", Client::prefix_end("/m/")).kvs.empty());
  CHECK(f.range("/n/x").kvs.size() == 1);

  // An etcd error reply carries etcd's message: a put under a lease that does not exist.
  auto bad =
      await<Result<int64_t>>(f.loop, [&](auto cb) { f.client->put("/m/c", "x", 12345, cb); });
  REQUIRE_FALSE(bad.has_value());
  CHECK(bad.error().code() == Code::NotFound);
  CHECK(bad.error().message().find("lease not found") != std::string::npos);

  // Leases: grant 2 s, keep alive, let it expire (the key goes), revoke another.
  auto lease = await<Result<Lease>>(f.loop, [&](auto cb) { f.client->lease_grant(2, cb); });
  REQUIRE_MESSAGE(lease.has_value(), lease.error().message());
  CHECK(lease->ttl == 2);
  f.put("/lease/a", "x", lease->id);
  auto ttl =
      await<Result<int64_t>>(f.loop, [&](auto cb) { f.client->lease_keepalive(lease->id, cb); });
  REQUIRE_MESSAGE(ttl.has_value(), ttl.error().message());
  CHECK(*ttl == 2);
  CHECK(f.range("/lease/a").kvs.at(0).lease == lease->id);

  auto lease2 = await<Result<Lease>>(f.loop, [&](auto cb) { f.client->lease_grant(60, cb); });
  REQUIRE(lease2.has_value());
  f.put("/lease/b", "y", lease2->id);
  auto revoked = await<Status>(f.loop, [&](auto cb) { f.client->lease_revoke(lease2->id, cb); });
  CHECK_MESSAGE(revoked.is_ok(), revoked.message());
  CHECK(f.range("/lease/b").kvs.empty());
  auto again = await<Status>(f.loop, [&](auto cb) { f.client->lease_revoke(lease2->id, cb); });
  CHECK(again.code() == Code::NotFound);

  auto start = Deadline::Clock::now();
  bool gone = meshbox::test::eventually([&] { return f.range("/lease/a").kvs.empty(); }, 6s, 100ms);
  CHECK_MESSAGE(gone, "the leased key outlived its TTL");
  MESSAGE("leased key gone " << meshbox::test::ms_since(start) << " ms after the keepalive");
  auto expired =
      await<Result<int64_t>>(f.loop, [&](auto cb) { f.client->lease_keepalive(lease->id, cb); });
  REQUIRE(expired.has_value());
  CHECK(*expired == 0);
}

TEST_CASE("etcd client: watch in order, resume after an etcd restart, compaction") {
  SKIP_WITHOUT_ETCD();
  TempDir dir;
  Etcd etcd(dir);
  etcd.start();
  Fixture f(options_for({etcd.endpoint()}));

  int64_t base = f.put("/w/before", "0");
  WatchLog log;
  auto watch = log.start(*f.client, "/w/", base + 1);
  int64_t p1 = f.put("/w/a", "1");
  int64_t p2 = f.put("/w/b", "2");
  f.put("/other", "not watched");
  auto del =
      await<Result<int64_t>>(f.loop, [&](auto cb) { f.client->delete_range("/w/a", "", cb); });
  REQUIRE(del.has_value());
  REQUIRE(run_until(
      f.loop, [&] { return log.events.size() >= 3 || log.error; }, 5s));
  REQUIRE_FALSE(log.error);
  REQUIRE(log.events.size() == 3);
  CHECK(log.events[0].type == Event::Type::Put);
  CHECK(log.events[0].kv.key == "/w/a");
  CHECK(log.events[0].kv.mod_revision == p1);
  CHECK(log.events[1].kv.key == "/w/b");
  CHECK(log.events[1].kv.value == "2");
  CHECK(log.events[1].kv.mod_revision == p2);
  CHECK(log.events[2].type == Event::Type::Delete);
  CHECK(log.events[2].kv.key == "/w/a");
  int64_t last = log.events[2].kv.mod_revision;
  CHECK(watch->revision() == last);

  // etcd dies: the watch reports Unavailable promptly.
  etcd.kill();
  REQUIRE(run_until(
      f.loop, [&] { return log.error.has_value(); }, 5s));
  CHECK(log.error->status.code() == Code::Unavailable);
  CHECK_FALSE(log.error->compacted());
  watch.reset();

  // A call while it is down fails Unavailable.
  auto down = await<Result<int64_t>>(f.loop, [&](auto cb) { f.client->put("/w/x", "x", 0, cb); });
  REQUIRE_FALSE(down.has_value());
  CHECK(down.error().code() == Code::Unavailable);

  // Back on the same data dir; writes happen before the re-watch; a watch from last + 1
  // sees exactly those, in order.
  etcd.start();
  int64_t q1 = f.put("/w/c", "3");
  int64_t q2 = f.put("/w/b", "4");
  WatchLog log2;
  auto watch2 = log2.start(*f.client, "/w/", last + 1);
  REQUIRE(run_until(
      f.loop, [&] { return log2.events.size() >= 2 || log2.error; }, 5s));
  REQUIRE_FALSE(log2.error);
  REQUIRE(log2.events.size() == 2);
  CHECK(q1 == last + 1);
  CHECK(log2.events[0].kv.key == "/w/c");
  CHECK(log2.events[0].kv.mod_revision == q1);
  CHECK(log2.events[1].kv.key == "/w/b");
  CHECK(log2.events[1].kv.mod_revision == q2);
  CHECK(log2.events[1].kv.version == 2);
  watch2.reset();

  // Compaction: a watch from before the compacted revision gets the compacted error.
  auto compacted = await<Status>(f.loop, [&](auto cb) { f.client->compact(q2, cb); });
  REQUIRE_MESSAGE(compacted.is_ok(), compacted.message());
  WatchLog log3;
  auto watch3 = log3.start(*f.client, "/w/", base);
  REQUIRE(run_until(
      f.loop, [&] { return log3.error.has_value(); }, 5s));
  CHECK(log3.error->compacted());
  CHECK(log3.error->compact_revision == q2);
  CHECK(log3.error->status.code() == Code::Conflict);
  CHECK(log3.events.empty());

  // A watch may be destroyed from inside its own callback.
  WatchLog log4;
  std::unique_ptr<Watch> watch4;
  int calls = 0;
  watch4 = f.client->watch(
      "/w/", Client::prefix_end("/w/"), q2 + 1,
      [&](std::vector<Event>, int64_t) {
        ++calls;
        watch4.reset();
      },
      [&](WatchError e) { log4.error = std::move(e); });
  f.put("/w/d", "5");
  f.put("/w/e", "6");
  REQUIRE(run_until(
      f.loop, [&] { return calls > 0; }, 5s));
  CHECK(calls == 1);
  CHECK_FALSE(log4.error);
}

TEST_CASE("etcd client: a dead endpoint is skipped; none alive gives Unavailable") {
  SKIP_WITHOUT_ETCD();
  TempDir dir;
  Etcd etcd(dir);
  etcd.start();
  std::string dead = "127.0.0.1:" + std::to_string(meshbox::test::free_port());
  Fixture f(options_for({dead, etcd.endpoint()}));
  int64_t rev = f.put("/d/a", "1");
  CHECK(f.range("/d/a").kvs.at(0).mod_revision == rev);
  // Keep-alive reuse: many calls after the first go to the live endpoint.
  for (int i = 0; i < 5; ++i)
    f.put("/d/a", std::to_string(i));
  WatchLog log;
  Fixture g(options_for({dead, etcd.endpoint()}));
  auto watch = log.start(*g.client, "/d/", rev);
  REQUIRE(run_until(
      g.loop, [&] { return !log.events.empty() || log.error; }, 5s));
  CHECK_FALSE(log.error);
  CHECK(log.events.at(0).kv.mod_revision == rev);
  watch.reset();

  Fixture none(options_for({dead}));
  auto r =
      await<Result<RangeResult>>(none.loop, [&](auto cb) { none.client->range("/d/a", "", cb); });
  REQUIRE_FALSE(r.has_value());
  CHECK(r.error().code() == Code::Unavailable);
  WatchLog nlog;
  auto nwatch = nlog.start(*none.client, "/d/", 0);
  REQUIRE(run_until(
      none.loop, [&] { return nlog.error.has_value(); }, 5s));
  CHECK(nlog.error->status.code() == Code::Unavailable);
}

TEST_CASE("etcd client: malformed replies give errors, never crashes") {
  using meshbox::test::read_request_head;
  // One script per connection, by what the request asks for.
  std::atomic<int> watches{0};
  FakeUpstream fake([&watches](meshbox::test::TcpConn& c, int) {
    std::string req;
    if (!read_request_head(c, req, Deadline(5s))) return;
    Deadline d(5s);
    if (req.find("/v3/kv/range") != std::string::npos) {
      c.send_all("HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nnot json!", d);
    } else if (req.find("/v3/kv/put") != std::string::npos) {
      c.send_all("HTTP/1.1 500 Internal Server Error\r\nContent-Length: 5\r\n\r\noops!", d);
    } else if (req.find("/v3/kv/deleterange") != std::string::npos) {
      c.send_all("garbage garbage\r\n\r\n", d);
    } else if (req.find("/v3/lease/grant") != std::string::npos) {
      c.send_all("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"ID\":", d);  // cut short
    } else if (req.find("/v3/lease/revoke") != std::string::npos) {
      std::string more;  // never answers: waits until the client gives up and closes
      read_request_head(c, more, Deadline(5s));
    } else if (req.find("/v3/lease/keepalive") != std::string::npos) {
      c.send_all("HTTP/1.1 200 OK\r\nContent-Length: 14\r\n\r\n{\"result\":[1]}", d);
    } else if (req.find("/v3/watch") != std::string::npos && ++watches == 1) {
      // A watch stream split mid-object across chunks, then cut off.
      std::string msg =
          R"({"result":{"header":{"revision":"7"},"events":[{"kv":{"key":"L3cvYQ==","mod_revision":"7","value":"MQ=="}}]}})";
      c.send_all("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", d);
      auto chunk = [](std::string_view s) {
        char head[32];
        snprintf(head, sizeof head, "%zx\r\n", s.size());
        return std::string(head) + std::string(s) + "\r\n";
      };
      c.send_all(chunk(msg.substr(0, 20)) + chunk(msg.substr(20) + "\n" + msg.substr(0, 10)), d);
      // Then the connection ends mid-chunk: returning closes it.
      c.send_all("40\r\n{\"res", d);
    } else {
      c.send_all("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n[1,2]\r\n0\r\n\r\n", d);
    }
  });
  Fixture f(options_for({fake.address()}, 2000));

  auto range = await<Result<RangeResult>>(f.loop, [&](auto cb) { f.client->range("a", "", cb); });
  REQUIRE_FALSE(range.has_value());
  CHECK(range.error().code() == Code::Io);
  auto put = await<Result<int64_t>>(f.loop, [&](auto cb) { f.client->put("a", "b", 0, cb); });
  REQUIRE_FALSE(put.has_value());
  CHECK(put.error().message().find("500") != std::string::npos);
  auto del = await<Result<int64_t>>(f.loop, [&](auto cb) { f.client->delete_range("a", "", cb); });
  REQUIRE_FALSE(del.has_value());
  CHECK(del.error().code() == Code::Io);
  auto grant = await<Result<Lease>>(f.loop, [&](auto cb) { f.client->lease_grant(5, cb); });
  REQUIRE_FALSE(grant.has_value());
  CHECK(grant.error().code() == Code::Unavailable);
  auto ka = await<Result<int64_t>>(f.loop, [&](auto cb) { f.client->lease_keepalive(1, cb); });
  REQUIRE_FALSE(ka.has_value());
  CHECK(ka.error().code() == Code::Io);

  // No reply: Unavailable once the request timeout (300 ms here) has passed.
  Fixture quick(options_for({fake.address()}, 300));
  auto start = Deadline::Clock::now();
  auto revoke = await<Status>(quick.loop, [&](auto cb) { quick.client->lease_revoke(1, cb); });
  CHECK(revoke.code() == Code::Unavailable);
  CHECK(meshbox::test::ms_since(start) >= 290);
  CHECK(meshbox::test::ms_since(start) < 3000);

  WatchLog log;
  auto watch = log.start(*f.client, "/w/", 0);
  REQUIRE(run_until(
      f.loop, [&] { return log.error.has_value(); }, 5s));
  REQUIRE(log.events.size() == 1);  // the whole message, joined across chunks
  CHECK(log.events[0].kv.key == "/w/a");
  CHECK(log.events[0].kv.value == "1");
  CHECK(log.revisions.at(0) == 7);
  CHECK(log.error->status.code() != Code::Ok);
  CHECK_FALSE(log.error->compacted());

  // A watch whose reply is JSON but not a watch message.
  WatchLog log2;
  auto watch2 = log2.start(*f.client, "/trunc/", 0);
  REQUIRE(run_until(
      f.loop, [&] { return log2.error.has_value(); }, 5s));
  CHECK(log2.error->status.code() == Code::Io);
}

TEST_CASE("etcd client: unary calls reuse one keep-alive connection") {
  // A gateway that answers every request on a connection until the client closes it.
  FakeUpstream fake([](meshbox::test::TcpConn& c, int) {
    std::string buf;
    while (read_request_head(c, buf, Deadline(5s))) {
      size_t head_end = buf.find("\r\n\r\n") + 4;
      size_t cl = buf.find("Content-Length: ");
      if (cl == std::string::npos || cl > head_end) return;
      size_t body = std::stoul(buf.substr(cl + 16));
      if (!c.read_at_least(buf, head_end + body, Deadline(5s))) return;
      buf.erase(0, head_end + body);
      std::string reply = R"({"header":{"revision":"42"}})";
      if (!c.send_all("HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(reply.size()) +
                          "\r\n\r\n" + reply,
                      Deadline(5s)))
        return;
    }
  });
  Fixture f(options_for({fake.address()}));
  for (int i = 0; i < 3; ++i)
    CHECK(f.put("k", "v") == 42);
  CHECK(fake.connections() == 1);
}

}  // namespace
}  // namespace meshbox::control::etcd
