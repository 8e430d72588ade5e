// HostCache (the passthrough cluster's DNS cache) on a real loop: names from a hosts file the
// test writes, and a resolv.conf whose nameserver port is closed (every query fails at once,
// "connection refused"): answers and failures are cached, concurrent lookups of one name
// share one query, waiters that leave are not called, and the cache stays bounded.
#include "plane/data/host_cache.h"

#include <doctest/doctest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>

#include "test/support/files.h"
#include "test/support/test_loop.h"

namespace meshbox::data {
namespace {

using loop::run_until;

struct Got : HostCache::Waiter {
  int calls = 0;
  std::optional<HostCache::Answer> answer;
  void on_host_resolved(const HostCache::Answer& a) override {
    ++calls;
    answer = a;
  }
};

// A UDP port with nothing bound to it (bound, read, closed).
uint16_t closed_udp_port() {
  int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

dns::ResolverOptions options(test::TempDir& dir) {
  std::ofstream(dir.file("hosts")) << "127.0.0.7 seven.test\n::1 six.test\n127.0.0.8 both.test\n"
                                   << "::8 both.test\n";
  std::ofstream(dir.file("resolv.conf"))
      << "nameserver 127.0.0.1:" << closed_udp_port() << "\noptions timeout:1 attempts:1\n";
  dns::ResolverOptions o;
  o.hosts = dir.file("hosts");
  o.resolv_conf = dir.file("resolv.conf");
  return o;
}

}  // namespace

TEST_CASE("host cache: hosts-file answers, coalesced lookups, cached failures") {
  test::TempDir dir;
  loop::Loop loop;
  {
    HostCache cache(loop, options(dir));
    Got a, b;
    // Not cached yet: both wait, and one lookup serves both, each with its own port.
    CHECK_FALSE(cache.lookup("seven.test", 80, &a).has_value());
    CHECK_FALSE(cache.lookup("seven.test", 8080, &b).has_value());
    CHECK(a.calls == 0);  // never inside lookup()
    REQUIRE(run_until(loop, [&] { return a.calls && b.calls; }));
    CHECK(a.calls == 1);
    CHECK(b.calls == 1);
    REQUIRE(a.answer->has_value());
    CHECK((*a.answer)->to_string() == "127.0.0.7:80");
    CHECK((*b.answer)->to_string() == "127.0.0.7:8080");
    // Cached now: answered at once.
    Got c;
    auto now = cache.lookup("seven.test", 9, &c);
    REQUIRE(now.has_value());
    CHECK((*now)->to_string() == "127.0.0.7:9");
    CHECK_FALSE(c.linked());

    // IPv4 first when a name has both; IPv6 when it has only that.
    Got d, e;
    cache.lookup("both.test", 1, &d);
    cache.lookup("six.test", 2, &e);
    REQUIRE(run_until(loop, [&] { return d.calls && e.calls; }));
    CHECK((*d.answer)->to_string() == "127.0.0.8:1");
    CHECK((*e.answer)->to_string() == "[::1]:2");

    // A name nobody knows: the nameserver refuses; the failure is cached (no second query).
    Got f;
    CHECK_FALSE(cache.lookup("nowhere.test", 80, &f).has_value());
    REQUIRE(run_until(
        loop, [&] { return f.calls == 1; }, std::chrono::seconds(10)));
    REQUIRE_FALSE(f.answer->has_value());
    CHECK(f.answer->error().message().find("nowhere.test") != std::string::npos);
    Got g;
    auto again = cache.lookup("nowhere.test", 80, &g);
    REQUIRE(again.has_value());
    CHECK_FALSE(again->has_value());

    // A waiter that leaves before the answer is not called.
    Got h, i;
    cache.lookup("gone.test", 80, &h);
    cache.lookup("gone.test", 80, &i);
    h.unlink();
    REQUIRE(run_until(
        loop, [&] { return i.calls == 1; }, std::chrono::seconds(10)));
    CHECK(h.calls == 0);
    CHECK(cache.size() == 5);
  }
  CHECK(loop.close().is_ok());
}

TEST_CASE("host cache: bounded: past kMaxEntries the oldest idle answers go") {
  test::TempDir dir;
  loop::Loop loop;
  {
    std::ofstream hosts(dir.file("hosts-many"));
    for (size_t n = 0; n < HostCache::kMaxEntries + 10; ++n)
      hosts << "127.0.0.1 h" << n << ".test\n";
    hosts.close();
    dns::ResolverOptions o = options(dir);
    o.hosts = dir.file("hosts-many");
    HostCache cache(loop, o);
    for (size_t n = 0; n < HostCache::kMaxEntries + 10; ++n) {
      Got w;
      cache.lookup("h" + std::to_string(n) + ".test", 80, &w);
      REQUIRE(run_until(loop, [&] { return w.calls == 1; }));
      CHECK(cache.size() <= HostCache::kMaxEntries);
    }
    CHECK(cache.size() == HostCache::kMaxEntries);
  }
  CHECK(loop.close().is_ok());
}

}  // namespace meshbox::data
