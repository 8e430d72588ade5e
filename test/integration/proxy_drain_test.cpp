// SIGTERM: the proxy stops accepting, lets in-flight requests finish within --drain-timeout,
// and exits 0.
#include <doctest/doctest.h>
#include <poll.h>
#include <signal.h>

#include <cerrno>
#include <cstring>

#include "test/support/deadline.h"
#include "test/support/http_response.h"
#include "test/support/meshbox.h"

namespace meshbox::test {
namespace {

constexpr auto kTimeout = 10s;

// Counts the backend's requests other than its own /stats polls. Each /stats response
// counts itself, so `polls` is subtracted.
class BackendRequests {
 public:
  explicit BackendRequests(const Httpbin& backend)
      : backend_(backend), base_(backend.stats().requests_total) {}

  /// Waits until at least one other request has reached the backend since construction.
  bool wait_for_one(Deadline deadline) {
    while (base_ >= 0 && !deadline.expired()) {
      ++polls_;
      int64_t now = backend_.stats().requests_total;
      if (now < 0) return false;
      if (now > base_ + polls_) return true;
    }
    return false;
  }

 private:
  const Httpbin& backend_;
  int64_t base_;
  int64_t polls_ = 0;
};

// Connects until the listener is gone (ECONNREFUSED). Returns the errno seen last.
int wait_refused(const std::string& addr, Deadline deadline) {
  int err = 0;
  while (!deadline.expired()) {
    TcpConn probe = TcpConn::connect(addr, deadline.min(1s), &err);
    if (err == ECONNREFUSED) return err;
    poll_pause();  // still accepting: look again shortly
  }
  return err;
}

TEST_CASE("proxy: SIGTERM drains an in-flight request, refuses new connections, exits 0") {
  ProxyFixture f(ProxyOptions{.flags = {"--drain-timeout", "5s"}});
  BackendRequests backend(f.backend);
  HttpClient c = HttpClient::connect(f.proxy.address(), Deadline(kTimeout));
  REQUIRE(c.valid());
  REQUIRE(c.send("GET /delay/1000 HTTP/1.1\r\nHost: h\r\n\r\n", Deadline(kTimeout)));
  REQUIRE(backend.wait_for_one(Deadline(kTimeout)));

  auto sigterm_at = Deadline::Clock::now();
  REQUIRE(f.proxy.process().signal(SIGTERM));
  int err = wait_refused(f.proxy.address(), Deadline(3s));
  int64_t refused_after = ms_since(sigterm_at);
  INFO("last connect errno after SIGTERM: " << std::string(std::strerror(err)) << " after "
                                            << refused_after << " ms");
  CHECK(err == ECONNREFUSED);

  HttpResponse r = c.read_response(Deadline(kTimeout));
  int64_t answered_after = ms_since(sigterm_at);
  INFO(r.summary() << ", " << answered_after << " ms after SIGTERM");
  CHECK(r.complete);
  CHECK(r.status == 200);
  // Draining, the proxy does not keep the client connection for another request.
  RecvStatus how = RecvStatus::Error;
  CHECK(c.wait_closed(Deadline(2s), &how));

  auto status = f.proxy.process().wait(Deadline(8s));
  int64_t exited_after = ms_since(sigterm_at);
  REQUIRE(status);
  INFO(status->describe() << ", " << exited_after
                          << " ms after SIGTERM; client connection: " << to_string(how));
  CHECK(status->exited);
  CHECK(status->code == 0);
  // Nothing is left in flight once the response is out: no reason to sit out the 5 s.
  CHECK(exited_after < 4000);
  MESSAGE("SIGTERM drain: refusing after " << refused_after << " ms, in-flight answered after "
                                           << answered_after << " ms, exit after " << exited_after
                                           << " ms");
}

TEST_CASE("proxy: SIGTERM with only idle keep-alive connections exits promptly") {
  ProxyFixture f(ProxyOptions{.flags = {"--drain-timeout", "10s"}});
  HttpClient c = HttpClient::connect(f.proxy.address(), Deadline(kTimeout));
  REQUIRE(c.valid());
  REQUIRE(c.send("GET / HTTP/1.1\r\nHost: h\r\n\r\n", Deadline(kTimeout)));
  HttpResponse r = c.read_response(Deadline(kTimeout));
  REQUIRE(r.complete);
  auto sigterm_at = Deadline::Clock::now();
  REQUIRE(f.proxy.process().signal(SIGTERM));
  auto status = f.proxy.process().wait(Deadline(3s));
  INFO((status ? status->describe() : "still running after 3 s (of a 10 s drain timeout)"));
  REQUIRE(status);
  CHECK(status->ok());
  CHECK(c.wait_closed(Deadline(1s)));
  MESSAGE("SIGTERM with an idle keep-alive connection: exit after " << ms_since(sigterm_at)
                                                                    << " ms");
}

TEST_CASE("proxy: SIGTERM: --drain-timeout bounds a request that takes longer") {
  ProxyFixture f(ProxyOptions{.flags = {"--drain-timeout", "300ms"}});
  BackendRequests backend(f.backend);
  HttpClient c = HttpClient::connect(f.proxy.address(), Deadline(kTimeout));
  REQUIRE(c.valid());
  REQUIRE(c.send("GET /delay/5000 HTTP/1.1\r\nHost: h\r\n\r\n", Deadline(kTimeout)));
  REQUIRE(backend.wait_for_one(Deadline(kTimeout)));
  auto sigterm_at = Deadline::Clock::now();
  REQUIRE(f.proxy.process().signal(SIGTERM));
  auto status = f.proxy.process().wait(Deadline(3s));
  int64_t exited_after = ms_since(sigterm_at);
  INFO((status ? status->describe() : "still running 3 s after SIGTERM")
       << ", after " << exited_after << " ms");
  REQUIRE(status);
  CHECK(status->ok());
  CHECK(exited_after >= 250);
  HttpResponse r = c.read_response(Deadline(1s));
  INFO(r.summary());
  CHECK(!r.complete);  // cut off, not answered
}

}  // namespace
}  // namespace meshbox::test
