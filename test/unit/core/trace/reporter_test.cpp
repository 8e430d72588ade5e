// Tests for core/trace/reporter.h against a real Zipkin-like collector on a loopback
// TcpListener in the test's loop: batches by size and by time over one keep-alive connection,
// one request in flight at a time, the full buffer's drops, a collector that is down
// (connection refused), answers 5xx, never answers, or closes idle connections. Also the
// collector URL parser. Every test ends with the loop closed clean.
#include "core/trace/reporter.h"

#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "core/base/json.h"
#include "core/http/parser.h"
#include "core/loop/tcp_listener.h"
#include "test/support/test_loop.h"

namespace meshbox::trace {
namespace {

using namespace std::chrono_literals;

struct Request {
  std::string method;
  std::string target;
  std::string content_type;
  std::string body;
  int connection = 0;  // which accepted connection carried it (1, 2, …)
};

// A collector: accepts connections on 127.0.0.1 and answers each request with `status`
// (keep-alive), or holds the answers while `hold` is set, or closes after each answer.
class Collector {
 public:
  // Listens on `fd` (bound, maybe not listening yet), or on a fresh port when fd < 0.
  explicit Collector(loop::Loop& loop, int fd = -1) : loop_(loop) {
    if (fd < 0) {
      auto r = loop::bind_reuseport(*loop::Address::parse("127.0.0.1:0"));
      REQUIRE(r.has_value());
      fd = *r;
    }
    auto l = loop::TcpListener::open(loop, fd, [this](loop::TcpConnPtr c) {
      conns_.push_back(std::make_unique<Conn>(*this, std::move(c), ++accepted));
    });
    REQUIRE(l.has_value());
    listener_ = std::move(*l);
  }
  uint16_t port() const { return listener_->address().port(); }
  loop::Address address() const { return listener_->address(); }

  /// Answers every request held so far.
  void release() {
    hold = false;
    for (auto& c : conns_)
      c->answer_held();
  }
  /// Total spans in every request received.
  size_t spans() const {
    size_t n = 0;
    for (const Request& r : requests) {
      auto doc = json::parse(r.body);
      if (doc && doc->is_array()) n += doc->array.size();
    }
    return n;
  }

  int status = 202;
  bool hold = false;
  bool close_after_answer = false;
  int accepted = 0;
  std::vector<Request> requests;

 private:
  class Conn : public loop::TcpConnCallbacks, public http::ParserCallbacks {
   public:
    Conn(Collector& c, loop::TcpConnPtr conn, int id)
        : collector_(c),
          conn_(std::move(conn)),
          id_(id),
          parser_(http::Parser::Kind::Request, *this) {
      conn_->set_callbacks(this);
      conn_->read_start();
    }
    void on_data(const char* data, size_t len) override {
      size_t off = 0;
      while (off < len && conn_) {
        auto r = parser_.feed(data + off, len - off);
        off += r.consumed;
        if (r.state == http::Parser::State::Paused) {
          parser_.resume();
          continue;
        }
        CHECK(r.state == http::Parser::State::Ok);
        break;
      }
    }
    void on_eof() override { conn_.reset(); }
    void on_error(int) override { conn_.reset(); }
    void on_request_head(http::RequestHead& head) override {
      req_ = Request{};
      req_.method = head.method;
      req_.target = head.target;
      if (const std::string* ct = head.headers.get("content-type")) req_.content_type = *ct;
      req_.connection = id_;
    }
    void on_body(const char* data, size_t len) override { req_.body.append(data, len); }
    void on_message_complete() override {
      collector_.requests.push_back(req_);
      ++held_;
      if (!collector_.hold) answer_held();
    }
    void answer_held() {
      for (; held_ > 0 && conn_; --held_) {
        conn_->write(
            fmt::format("HTTP/1.1 {} X\r\nContent-Length: 2\r\n\r\nok", collector_.status));
        if (collector_.close_after_answer) conn_->shutdown();
      }
    }

   private:
    Collector& collector_;
    loop::TcpConnPtr conn_;
    int id_;
    http::Parser parser_;
    Request req_;
    int held_ = 0;
  };

  loop::Loop& loop_;
  std::unique_ptr<loop::TcpListener> listener_;
  std::vector<std::unique_ptr<Conn>> conns_;
};

Span make_span(uint64_t id) {
  Span s;
  s.trace_id = {0, 0x1000 + id};
  s.id = id;
  s.name = "ingress";
  s.timestamp_us = 1'700'000'000'000'000ULL + id;
  s.duration_us = 10;
  s.local.service_name = "test";
  s.tag("n", std::to_string(id));
  return s;
}

uint64_t stat(const std::atomic<uint64_t>& c) {
  return ReporterStats::read(c);
}

// A TCP port on 127.0.0.1 that is bound but not listening: connects are refused until
// TcpListener::open() listens on the same fd.
int bound_not_listening() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  REQUIRE(fd >= 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  return fd;
}

TEST_CASE("reporter: batches by size and by time reach the collector over one connection") {
  loop::Loop loop;
  {
    Collector collector(loop);
    ReporterOptions o;
    o.collector = collector.address();
    o.host = "zipkin:9411";
    o.batch_spans = 3;
    o.flush_interval_ms = 50;
    Reporter reporter(loop, o);
    auto start = std::chrono::steady_clock::now();
    for (uint64_t i = 1; i <= 3; ++i)
      reporter.report(make_span(i));
    // A full batch goes at the next loop iteration, not inside report().
    CHECK_FALSE(reporter.in_flight());
    REQUIRE(loop::run_until(
        loop, [&] { return reporter.in_flight(); }, 5s));
    CHECK(reporter.buffered() == 0);
    // Two more wait for the flush interval.
    reporter.report(make_span(4));
    reporter.report(make_span(5));
    CHECK(reporter.buffered() == 2);
    REQUIRE(loop::run_until(
        loop, [&] { return stat(reporter.stats().spans_reported) == 5; }, 5s));
    auto took = std::chrono::steady_clock::now() - start;
    CHECK(took >= 45ms);  // the second batch waited for the timer
    REQUIRE(collector.requests.size() == 2);
    for (const Request& r : collector.requests) {
      CHECK(r.method == "POST");
      CHECK(r.target == "/api/v2/spans");
      CHECK(r.content_type == "application/json");
      CHECK(r.connection == 1);  // kept alive
    }
    auto first = json::parse(collector.requests[0].body);
    REQUIRE(first.has_value());
    REQUIRE(first->array.size() == 3);
    CHECK(first->array[0].get("id")->as_string() == "0000000000000001");
    CHECK(first->array[2].get("tags")->get("n")->as_string() == "3");
    CHECK(collector.spans() == 5);
    CHECK(stat(reporter.stats().batches_sent) == 2);
    CHECK(stat(reporter.stats().batches_failed) == 0);
    CHECK(stat(reporter.stats().spans_dropped) == 0);
    CHECK(collector.accepted == 1);
  }
  CHECK(loop.close().is_ok());
}

TEST_CASE("reporter: one request in flight; a full buffer drops and counts") {
  loop::Loop loop;
  {
    Collector collector(loop);
    collector.hold = true;
    ReporterOptions o;
    o.collector = collector.address();
    o.batch_spans = 2;
    o.max_buffered_spans = 10;
    o.flush_interval_ms = 60'000;
    Reporter reporter(loop, o);
    reporter.report(make_span(1));
    reporter.report(make_span(2));  // a full batch: sent
    REQUIRE(loop::run_until(
        loop, [&] { return collector.requests.size() == 1; }, 5s));
    // While the collector holds its answer, spans wait in the buffer, up to its bound.
    for (uint64_t i = 3; i <= 20; ++i)
      reporter.report(make_span(i));
    CHECK(reporter.buffered() == 10);
    CHECK(stat(reporter.stats().spans_dropped) == 8);
    // Give the loop a moment: still one request only.
    CHECK_FALSE(loop::run_until(
        loop, [&] { return collector.requests.size() > 1; }, 100ms));
    CHECK(reporter.in_flight());
    collector.release();
    // The answer frees the reporter to send the next batch: the whole buffer at once.
    REQUIRE(loop::run_until(
        loop, [&] { return stat(reporter.stats().spans_reported) == 12; }, 5s));
    CHECK(collector.requests.size() == 2);
    CHECK(collector.spans() == 12);
    CHECK(reporter.buffered() == 0);
    CHECK(stat(reporter.stats().batches_failed) == 0);
  }
  CHECK(loop.close().is_ok());
}

TEST_CASE("reporter: collector down, then up: failed batches counted, later ones arrive") {
  loop::Loop loop;
  {
    int fd = bound_not_listening();
    auto addr = loop::bound_address(fd);
    REQUIRE(addr.has_value());
    ReporterOptions o;
    o.collector = *addr;
    o.batch_spans = 1;
    o.min_backoff_ms = 20;
    o.max_backoff_ms = 40;
    Reporter reporter(loop, o);
    reporter.report(make_span(1));
    REQUIRE(loop::run_until(
        loop, [&] { return stat(reporter.stats().batches_failed) == 1; }, 5s));
    CHECK(stat(reporter.stats().spans_failed) == 1);
    CHECK_FALSE(reporter.in_flight());
    // During the backoff spans wait; when it ends the next attempt fails too.
    reporter.report(make_span(2));
    CHECK_FALSE(reporter.in_flight());
    REQUIRE(loop::run_until(
        loop, [&] { return stat(reporter.stats().batches_failed) == 2; }, 5s));

    // The collector comes up on that port; it answers 500 first.
    Collector collector(loop, fd);
    collector.status = 500;
    reporter.report(make_span(3));
    REQUIRE(loop::run_until(
        loop, [&] { return stat(reporter.stats().batches_failed) == 3; }, 5s));
    CHECK(collector.requests.size() == 1);
    collector.status = 202;
    reporter.report(make_span(4));
    REQUIRE(loop::run_until(
        loop, [&] { return stat(reporter.stats().spans_reported) == 1; }, 5s));
    CHECK(collector.requests.back().body.find("\"id\":\"0000000000000004\"") != std::string::npos);
    CHECK(stat(reporter.stats().batches_sent) == 1);
    CHECK(stat(reporter.stats().spans_failed) == 3);
  }
  CHECK(loop.close().is_ok());
}

TEST_CASE("reporter: a collector that never answers times out; one that closes is redialled") {
  loop::Loop loop;
  {
    Collector collector(loop);
    ReporterOptions o;
    o.collector = collector.address();
    o.batch_spans = 1;
    o.timeout_ms = 100;
    o.min_backoff_ms = 10;
    Reporter reporter(loop, o);

    collector.hold = true;
    reporter.report(make_span(1));
    REQUIRE(loop::run_until(
        loop, [&] { return stat(reporter.stats().batches_failed) == 1; }, 5s));
    CHECK(collector.requests.size() == 1);

    // The next batch goes on a new connection (the timed-out one is closed: a late answer
    // must not be taken for the next request's). This collector closes after each answer.
    collector.hold = false;
    collector.close_after_answer = true;
    for (uint64_t i = 2; i <= 4; ++i) {
      reporter.report(make_span(i));
      REQUIRE(loop::run_until(
          loop, [&] { return stat(reporter.stats().spans_reported) == i - 1; }, 5s));
    }
    CHECK(stat(reporter.stats().batches_failed) == 1);
    CHECK(collector.accepted == 4);
  }
  CHECK(loop.close().is_ok());
}

TEST_CASE("reporter: reconfigure moves later batches to another collector") {
  loop::Loop loop;
  {
    Collector one(loop), two(loop);
    ReporterOptions o;
    o.collector = one.address();
    o.batch_spans = 1;
    Reporter reporter(loop, o);
    one.hold = true;
    reporter.report(make_span(1));
    REQUIRE(loop::run_until(
        loop, [&] { return one.requests.size() == 1; }, 5s));
    o.collector = two.address();
    o.path = "/zipkin/spans";
    reporter.reconfigure(o);
    reporter.report(make_span(2));  // waits: the first is still in flight, at `one`
    one.release();
    REQUIRE(loop::run_until(
        loop, [&] { return stat(reporter.stats().spans_reported) == 2; }, 5s));
    CHECK(one.requests.size() == 1);
    REQUIRE(two.requests.size() == 1);
    CHECK(two.requests[0].target == "/zipkin/spans");
    CHECK(two.requests[0].body.find("\"id\":\"0000000000000002\"") != std::string::npos);
  }
  CHECK(loop.close().is_ok());
}

TEST_CASE("reporter: destroyed with a batch in flight and spans buffered: no callback after") {
  loop::Loop loop;
  {
    Collector collector(loop);
    collector.hold = true;
    ReporterOptions o;
    o.collector = collector.address();
    o.batch_spans = 1;
    auto reporter = std::make_unique<Reporter>(loop, o);
    reporter->report(make_span(1));
    reporter->report(make_span(2));
    REQUIRE(loop::run_until(
        loop, [&] { return collector.requests.size() == 1; }, 5s));
    reporter.reset();
    collector.release();
    CHECK_FALSE(loop::run_until(
        loop, [&] { return collector.requests.size() > 1; }, 50ms));
  }
  CHECK(loop.close().is_ok());
}

TEST_CASE("reporter: collector URLs") {
  auto u = parse_collector_url("http://zipkin.istio-system:9411/api/v2/spans");
  REQUIRE(u.has_value());
  CHECK(u->host == "zipkin.istio-system");
  CHECK(u->port == 9411);
  CHECK(u->path == "/api/v2/spans");
  CHECK(u->authority() == "zipkin.istio-system:9411");
  u = parse_collector_url("HTTP://127.0.0.1:9411");
  REQUIRE(u.has_value());
  CHECK(u->path == "/api/v2/spans");
  u = parse_collector_url("http://[::1]/collect");
  REQUIRE(u.has_value());
  CHECK(u->host == "::1");
  CHECK(u->port == 80);
  CHECK(u->path == "/collect");
  CHECK(u->authority() == "[::1]");
  for (const char* bad : {"", "zipkin:9411", "https://zipkin:9411", "http://", "http://:9411",
                          "http://zipkin:", "http://zipkin:0", "http://zipkin:70000",
                          "http://zipkin:9x", "http://[::1", "http://[::1]x"}) {
    CAPTURE(bad);
    auto r = parse_collector_url(bad);
    CHECK_FALSE(r.has_value());
    if (!r) CHECK(r.error().message().find("collector URL") != std::string::npos);
  }
}

}  // namespace
}  // namespace meshbox::trace
