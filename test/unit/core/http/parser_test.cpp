// Tests for core/http/parser.h: HTTP/1 request and response parsing on llhttp, fed whole, in
// 1-byte pieces and split at every offset, plus every rejection the parser promises.
#include "core/http/parser.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <string>
#include <string_view>
#include <vector>

namespace meshbox::http {
namespace {

using State = Parser::State;
using Kind = Parser::Kind;

// Records every callback. `body` collects the message being parsed; on_message_complete moves
// it to `bodies`.
class Recorder : public ParserCallbacks {
 public:
  void on_request_head(RequestHead& head) override { requests.push_back(std::move(head)); }
  void on_response_head(ResponseHead& head) override { responses.push_back(std::move(head)); }
  void on_body(const char* data, size_t len) override {
    CHECK(len > 0);
    body.append(data, len);
    ++body_calls;
  }
  void on_message_complete() override {
    bodies.push_back(body);
    body.clear();
    ++completed;
  }

  std::vector<RequestHead> requests;
  std::vector<ResponseHead> responses;
  std::string body;
  std::vector<std::string> bodies;
  int body_calls = 0;
  int completed = 0;
};

struct Outcome {
  State state;
  size_t consumed;  // bytes of the whole input used up to the stop
};

// Feeds `in` in pieces of at most `step` bytes, resuming after every Paused, until the input is
// used up or the parser returns Upgrade, Error or Stopped.
Outcome drive(Parser& p, std::string_view in, size_t step = std::string_view::npos) {
  size_t pos = 0;
  State last = State::Ok;
  int stalls = 0;
  while (pos < in.size()) {
    size_t n = std::min(step, in.size() - pos);
    Parser::FeedResult r = p.feed(in.data() + pos, n);
    REQUIRE(r.consumed <= n);
    pos += r.consumed;
    last = r.state;
    if (r.state == State::Paused) {
      p.resume();
      // A pause with nothing consumed twice in a row would loop forever.
      stalls = r.consumed == 0 ? stalls + 1 : 0;
      REQUIRE(stalls < 2);
      continue;
    }
    if (r.state != State::Ok) return {r.state, pos};
    REQUIRE(r.consumed == n);
  }
  return {last, pos};
}

// Feeds `in` as two pieces split at `at`, resuming after Paused.
Outcome drive_split(Parser& p, std::string_view in, size_t at) {
  Outcome first = drive(p, in.substr(0, at));
  if (first.state != State::Ok && first.state != State::Paused) return first;
  REQUIRE(first.consumed == at);
  Outcome second = drive(p, in.substr(at));
  return {second.state, at + second.consumed};
}

// Every way of feeding an input this file uses: whole, 1 byte at a time, and a few fixed steps.
const size_t kSteps[] = {std::string_view::npos, 1, 2, 3, 7, 16};

const std::string kSimpleGet = "GET /index.html?q=1 HTTP/1.1\r\nHost: example.com\r\n\r\n";

// Asserts that `in` is rejected with `want` for every way of splitting it. A request parser
// unless `kind` says otherwise.
void check_rejected(std::string_view in, ParseError want, Kind kind = Kind::Request,
                    ParserLimits limits = {}) {
  CAPTURE(in);
  for (size_t step : kSteps) {
    CAPTURE(step);
    Recorder rec;
    Parser p(kind, rec, limits);
    Outcome o = drive(p, in, step);
    CHECK(o.state == State::Error);
    CHECK(p.error() == want);
    CHECK(std::string_view(p.error_reason()).size() > 0);
    CHECK(o.consumed <= in.size());
    // The parser stays failed.
    Parser::FeedResult again = p.feed(kSimpleGet.data(), kSimpleGet.size());
    CHECK(again.state == State::Error);
    CHECK(again.consumed == 0);
    CHECK_FALSE(p.finish());
  }
  for (size_t at = 1; at < in.size(); ++at) {
    CAPTURE(at);
    Recorder rec;
    Parser p(kind, rec, limits);
    Outcome o = drive_split(p, in, at);
    CHECK(o.state == State::Error);
    CHECK(p.error() == want);
  }
}

// ---------------------------------------------------------------------------------------------
// Requests

TEST_CASE("parser: a simple GET, however it is fed") {
  for (size_t step : kSteps) {
    CAPTURE(step);
    Recorder rec;
    Parser p(Kind::Request, rec);
    CHECK_FALSE(p.in_message());
    Outcome o = drive(p, kSimpleGet, step);
    CHECK(o.state == State::Paused);
    CHECK(o.consumed == kSimpleGet.size());
    REQUIRE(rec.requests.size() == 1);
    const RequestHead& r = rec.requests[0];
    CHECK(r.method == "GET");
    CHECK(r.target == "/index.html?q=1");
    CHECK(r.version_minor == 1);
    CHECK(r.framing == Framing::None);
    CHECK(r.content_length == 0);
    CHECK(r.keep_alive);
    CHECK_FALSE(r.upgrade);
    REQUIRE(r.headers.size() == 1);
    CHECK(r.headers.begin()->name == "Host");
    CHECK(r.headers.begin()->value == "example.com");
    CHECK(rec.completed == 1);
    CHECK(rec.bodies[0].empty());
    CHECK(rec.body_calls == 0);
    CHECK_FALSE(p.in_message());
    CHECK(p.error() == ParseError::None);
    CHECK(p.finish());
  }
}

TEST_CASE("parser: feed() reports Paused and stops at the end of each message") {
  Recorder rec;
  Parser p(Kind::Request, rec);
  Parser::FeedResult r = p.feed(kSimpleGet.data(), kSimpleGet.size());
  CHECK(r.state == State::Paused);
  CHECK(r.consumed == kSimpleGet.size());
  // Still paused: nothing more is parsed before resume().
  r = p.feed(kSimpleGet.data(), kSimpleGet.size());
  CHECK(r.state == State::Paused);
  CHECK(r.consumed == 0);
  CHECK(rec.requests.size() == 1);
  p.resume();
  r = p.feed(kSimpleGet.data(), kSimpleGet.size());
  CHECK(r.state == State::Paused);
  CHECK(r.consumed == kSimpleGet.size());
  CHECK(rec.requests.size() == 2);
}

TEST_CASE("parser: in_message and in_head follow the message") {
  Recorder rec;
  Parser p(Kind::Request, rec);
  std::string head = "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\n";
  CHECK(p.feed(head.data(), 5).state == State::Ok);
  CHECK(p.in_message());
  CHECK(p.in_head());
  CHECK(p.feed(head.data() + 5, head.size() - 5).state == State::Ok);
  CHECK(p.in_message());
  CHECK_FALSE(p.in_head());
  CHECK(rec.requests.size() == 1);
  CHECK(p.feed("ab", 2).state == State::Ok);
  CHECK(rec.body == "ab");
  // The client went away mid-body.
  CHECK_FALSE(p.finish());
  CHECK(p.error() == ParseError::BadMessage);
}

TEST_CASE("parser: POST with Content-Length, whole and byte by byte") {
  std::string body = "name=meshbox&version=0.1&payload=" + std::string(100, 'x');
  std::string in =
      "POST /submit HTTP/1.1\r\nHost: api\r\nContent-Type: text/plain\r\n"
      "Content-Length: " +
      std::to_string(body.size()) + "\r\n\r\n" + body;
  for (size_t step : kSteps) {
    CAPTURE(step);
    Recorder rec;
    Parser p(Kind::Request, rec);
    Outcome o = drive(p, in, step);
    CHECK(o.state == State::Paused);
    CHECK(o.consumed == in.size());
    REQUIRE(rec.requests.size() == 1);
    CHECK(rec.requests[0].method == "POST");
    CHECK(rec.requests[0].framing == Framing::ContentLength);
    CHECK(rec.requests[0].content_length == body.size());
    REQUIRE(rec.completed == 1);
    CHECK(rec.bodies[0] == body);
    if (step == 1) CHECK(rec.body_calls == static_cast<int>(body.size()));
    if (step == std::string_view::npos) CHECK(rec.body_calls == 1);
  }
}

TEST_CASE("parser: Content-Length: 0 has no body") {
  Recorder rec;
  Parser p(Kind::Request, rec);
  std::string in = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n";
  Outcome o = drive(p, in);
  CHECK(o.state == State::Paused);
  CHECK(o.consumed == in.size());
  REQUIRE(rec.requests.size() == 1);
  CHECK(rec.requests[0].framing == Framing::ContentLength);
  CHECK(rec.requests[0].content_length == 0);
  CHECK(rec.completed == 1);
  CHECK(rec.body_calls == 0);
}

const std::string kChunkedRequest =
    "POST /upload HTTP/1.1\r\n"
    "Host: example.com\r\n"
    "Transfer-Encoding: chunked\r\n"
    "\r\n"
    "5;name=value\r\n"
    "hello\r\n"
    "1;quoted=\"a b\";flag\r\n"
    " \r\n"
    "A\r\n"
    "0123456789\r\n"
    "0\r\n"
    "X-Checksum: abc\r\n"
    "\r\n";
const std::string kChunkedBody = "hello 0123456789";

TEST_CASE("parser: chunked request body with extensions and a trailer, every split") {
  for (size_t step : kSteps) {
    CAPTURE(step);
    Recorder rec;
    Parser p(Kind::Request, rec);
    Outcome o = drive(p, kChunkedRequest, step);
    CHECK(o.state == State::Paused);
    CHECK(o.consumed == kChunkedRequest.size());
    REQUIRE(rec.requests.size() == 1);
    CHECK(rec.requests[0].framing == Framing::Chunked);
    REQUIRE(rec.completed == 1);
    CHECK(rec.bodies[0] == kChunkedBody);
  }
  for (size_t at = 1; at < kChunkedRequest.size(); ++at) {
    CAPTURE(at);
    Recorder rec;
    Parser p(Kind::Request, rec);
    Outcome o = drive_split(p, kChunkedRequest, at);
    CHECK(o.state == State::Paused);
    CHECK(o.consumed == kChunkedRequest.size());
    REQUIRE(rec.requests.size() == 1);
    // Trailer fields are checked and dropped; the head keeps only the real headers.
    CHECK(rec.requests[0].headers.size() == 2);
    CHECK_FALSE(rec.requests[0].headers.has("X-Checksum"));
    REQUIRE(rec.completed == 1);
    CHECK(rec.bodies[0] == kChunkedBody);
  }
}

TEST_CASE("parser: many chunks") {
  std::string in = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
  std::string want;
  for (int i = 1; i <= 300; ++i) {
    std::string piece(static_cast<size_t>(i % 37 + 1), static_cast<char>('a' + i % 26));
    char size[16];
    std::snprintf(size, sizeof size, "%zx", piece.size());
    in += std::string(size) + "\r\n" + piece + "\r\n";
    want += piece;
  }
  in += "0\r\n\r\n";
  for (size_t step : kSteps) {
    CAPTURE(step);
    Recorder rec;
    Parser p(Kind::Request, rec);
    Outcome o = drive(p, in, step);
    CHECK(o.state == State::Paused);
    CHECK(o.consumed == in.size());
    REQUIRE(rec.completed == 1);
    CHECK(rec.bodies[0] == want);
  }
}

TEST_CASE("parser: pipelined requests pause after each message") {
  std::string a = "GET /a HTTP/1.1\r\nHost: x\r\n\r\n";
  std::string b = "POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc";
  std::string c =
      "PUT /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n";
  std::string d = "DELETE /d HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  std::string all = a + b + c + d;

  Recorder rec;
  Parser p(Kind::Request, rec);
  const char* data = all.data();
  size_t left = all.size();

  Parser::FeedResult r = p.feed(data, left);
  CHECK(r.state == State::Paused);
  CHECK(r.consumed == a.size());
  REQUIRE(rec.requests.size() == 1);
  CHECK(rec.requests[0].target == "/a");
  CHECK(rec.completed == 1);
  data += r.consumed;
  left -= r.consumed;

  p.resume();
  r = p.feed(data, left);
  CHECK(r.state == State::Paused);
  CHECK(r.consumed == b.size());
  REQUIRE(rec.requests.size() == 2);
  CHECK(rec.requests[1].target == "/b");
  CHECK(rec.bodies[1] == "abc");
  data += r.consumed;
  left -= r.consumed;

  p.resume();
  r = p.feed(data, left);
  CHECK(r.state == State::Paused);
  CHECK(r.consumed == c.size());
  REQUIRE(rec.requests.size() == 3);
  CHECK(rec.requests[2].method == "PUT");
  CHECK(rec.bodies[2] == "hi");
  data += r.consumed;
  left -= r.consumed;

  p.resume();
  r = p.feed(data, left);
  CHECK(r.state == State::Paused);
  CHECK(r.consumed == d.size());
  REQUIRE(rec.requests.size() == 4);
  CHECK(rec.requests[3].method == "DELETE");
  CHECK_FALSE(rec.requests[3].keep_alive);
  CHECK(rec.completed == 4);
  CHECK(p.finish());
}

TEST_CASE("parser: pipelined requests survive every split") {
  std::string all = kSimpleGet + kChunkedRequest + kSimpleGet;
  for (size_t at = 1; at < all.size(); ++at) {
    CAPTURE(at);
    Recorder rec;
    Parser p(Kind::Request, rec);
    Outcome o = drive_split(p, all, at);
    CHECK(o.state == State::Paused);
    CHECK(o.consumed == all.size());
    REQUIRE(rec.completed == 3);
    CHECK(rec.bodies[0].empty());
    CHECK(rec.bodies[1] == kChunkedBody);
    CHECK(rec.bodies[2].empty());
    REQUIRE(rec.requests.size() == 3);
    CHECK(rec.requests[2].target == "/index.html?q=1");
  }
}

TEST_CASE("parser: keep-alive follows the version and Connection") {
  struct Case {
    const char* in;
    bool keep_alive;
    int minor;
  } cases[] = {
      {"GET / HTTP/1.1\r\nHost: a\r\n\r\n", true, 1},
      {"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", false, 1},
      {"GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\n\r\n", true, 1},
      {"GET / HTTP/1.1\r\nHost: a\r\nConnection: CLOSE\r\n\r\n", false, 1},
      {"GET / HTTP/1.0\r\n\r\n", false, 0},
      {"GET / HTTP/1.0\r\nHost: a\r\n\r\n", false, 0},
      {"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", true, 0},
      {"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", true, 0},
  };
  for (const Case& c : cases) {
    CAPTURE(c.in);
    Recorder rec;
    Parser p(Kind::Request, rec);
    Outcome o = drive(p, c.in);
    CHECK(o.state == State::Paused);
    REQUIRE(rec.requests.size() == 1);
    CHECK(rec.requests[0].keep_alive == c.keep_alive);
    CHECK(rec.requests[0].version_minor == c.minor);
  }
}

TEST_CASE("parser: Expect: 100-continue is visible in the head before the body") {
  Recorder rec;
  Parser p(Kind::Request, rec);
  std::string head =
      "PUT /big HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n";
  Parser::FeedResult r = p.feed(head.data(), head.size());
  CHECK(r.state == State::Ok);
  CHECK(r.consumed == head.size());
  REQUIRE(rec.requests.size() == 1);
  const std::string* expect = rec.requests[0].headers.get("expect");
  REQUIRE(expect != nullptr);
  CHECK(*expect == "100-continue");
  CHECK(rec.completed == 0);
  r = p.feed("12345", 5);
  CHECK(r.state == State::Paused);
  CHECK(rec.bodies.at(0) == "12345");
}

TEST_CASE("parser: a websocket Upgrade request turns into a tunnel") {
  std::string head =
      "GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n"
      "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
      "Sec-WebSocket-Version: 13\r\n\r\n";
  std::string tunnel = std::string("\x81\x05hello", 7) + "GET / HTTP/1.1\r\n";
  std::string all = head + tunnel;
  for (size_t step : kSteps) {
    CAPTURE(step);
    Recorder rec;
    Parser p(Kind::Request, rec);
    Outcome o = drive(p, all, step);
    CHECK(o.state == State::Upgrade);
    CHECK(o.consumed == head.size());
    CHECK(all.substr(o.consumed) == tunnel);
    REQUIRE(rec.requests.size() == 1);
    CHECK(rec.requests[0].upgrade);
    CHECK(*rec.requests[0].headers.get("upgrade") == "websocket");
    CHECK(rec.completed == 1);
    CHECK(rec.body_calls == 0);
  }
}

TEST_CASE("parser: Upgrade header without Connection: upgrade is not an upgrade") {
  Recorder rec;
  Parser p(Kind::Request, rec);
  std::string in = "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n";
  Outcome o = drive(p, in);
  CHECK(o.state == State::Paused);
  REQUIRE(rec.requests.size() == 1);
  CHECK_FALSE(rec.requests[0].upgrade);
}

TEST_CASE("parser: CONNECT turns into a tunnel") {
  std::string head = "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n";
  std::string tunnel = "\x16\x03\x01\x02\x00 client hello";
  std::string all = head + tunnel;
  for (size_t step : kSteps) {
    CAPTURE(step);
    Recorder rec;
    Parser p(Kind::Request, rec);
    Outcome o = drive(p, all, step);
    CHECK(o.state == State::Upgrade);
    CHECK(o.consumed == head.size());
    REQUIRE(rec.requests.size() == 1);
    CHECK(rec.requests[0].method == "CONNECT");
    CHECK(rec.requests[0].target == "example.com:443");
    CHECK(rec.requests[0].upgrade);
    CHECK(rec.completed == 1);
  }
}

TEST_CASE("parser: header values are trimmed, names keep their case, duplicates stay") {
  std::string in =
      "GET / HTTP/1.1\r\n"
      "Host: a\r\n"
      "X-CamelCase:   padded value \t  \r\n"
      "x-lower:v\r\n"
      "X-Empty:\r\n"
      "X-Blank:    \r\n"
      "Set-Cookie: a=1\r\n"
      "set-cookie: b=2\r\n"
      "X-Inner: a  b\tc\r\n"
      "\r\n";
  for (size_t step : kSteps) {
    CAPTURE(step);
    Recorder rec;
    Parser p(Kind::Request, rec);
    Outcome o = drive(p, in, step);
    CHECK(o.state == State::Paused);
    REQUIRE(rec.requests.size() == 1);
    const HeaderMap& h = rec.requests[0].headers;
    REQUIRE(h.size() == 8);
    std::vector<HeaderEntry> e(h.begin(), h.end());
    CHECK(e[1].name == "X-CamelCase");
    CHECK(e[1].value == "padded value");
    CHECK(e[2].name == "x-lower");
    CHECK(e[2].value == "v");
    CHECK(e[3].name == "X-Empty");
    CHECK(e[3].value == "");
    CHECK(e[4].name == "X-Blank");
    CHECK(e[4].value == "");
    CHECK(h.count("set-cookie") == 2);
    CHECK(e[5].value == "a=1");
    CHECK(e[6].value == "b=2");
    CHECK(e[7].value == "a  b\tc");
    CHECK(*h.get("x-camelcase") == "padded value");
  }
}

TEST_CASE("parser: absolute-form and asterisk-form targets are kept as sent") {
  Recorder rec;
  Parser p(Kind::Request, rec);
  std::string a = "GET http://example.com:8080/p?q#f HTTP/1.1\r\nHost: example.com:8080\r\n\r\n";
  std::string b = "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n";
  Outcome o = drive(p, a + b);
  CHECK(o.state == State::Paused);
  REQUIRE(rec.requests.size() == 2);
  CHECK(rec.requests[0].target == "http://example.com:8080/p?q#f");
  CHECK(rec.requests[1].method == "OPTIONS");
  CHECK(rec.requests[1].target == "*");
}

TEST_CASE("parser: a request within the limits passes") {
  ParserLimits limits;
  limits.max_head_bytes = 512;
  limits.max_headers = 4;
  limits.max_body_bytes = 10;
  Recorder rec;
  Parser p(Kind::Request, rec, limits);
  std::string in = "POST /" + std::string(100, 'p') +
                   " HTTP/1.1\r\nHost: a\r\nX-1: " + std::string(200, 'v') +
                   "\r\nX-2: b\r\nContent-Length: 10\r\n\r\n0123456789";
  Outcome o = drive(p, in, 5);
  CHECK(o.state == State::Paused);
  CHECK(o.consumed == in.size());
  CHECK(rec.bodies.at(0) == "0123456789");
}

TEST_CASE("parser: the head limit restarts with every message") {
  ParserLimits limits;
  limits.max_head_bytes = 100;
  Recorder rec;
  Parser p(Kind::Request, rec, limits);
  std::string one = "GET /" + std::string(40, 'a') + " HTTP/1.1\r\nHost: a\r\n\r\n";
  std::string all = one + one + one + one;
  Outcome o = drive(p, all, 9);
  CHECK(o.state == State::Paused);
  CHECK(o.consumed == all.size());
  CHECK(rec.completed == 4);
}

TEST_CASE("parser: stop() from a callback ends parsing") {
  class Stopper : public Recorder {
   public:
    void on_request_head(RequestHead& head) override {
      Recorder::on_request_head(head);
      parser->stop();
    }
    Parser* parser = nullptr;
  };
  Stopper rec;
  Parser p(Kind::Request, rec);
  rec.parser = &p;
  std::string in = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc";
  Parser::FeedResult r = p.feed(in.data(), in.size());
  CHECK(r.state == State::Stopped);
  CHECK(r.consumed <= in.size());
  CHECK(rec.requests.size() == 1);
  CHECK(rec.body.empty());
  CHECK(rec.completed == 0);
}

// ---------------------------------------------------------------------------------------------
// Request rejections

TEST_CASE("parser: Content-Length together with Transfer-Encoding is rejected") {
  check_rejected(
      "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
      "0\r\n\r\n",
      ParseError::BadMessage);
  check_rejected(
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"
      "0\r\n\r\n",
      ParseError::BadMessage);
  CHECK(error_status(ParseError::BadMessage) == 400);
}

TEST_CASE("parser: conflicting or repeated Content-Length is rejected") {
  check_rejected("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
                 ParseError::BadMessage);
  check_rejected("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 6\r\n\r\n",
                 ParseError::BadMessage);
  check_rejected("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n",
                 ParseError::BadMessage);
  check_rejected("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999999\r\n\r\n",
                 ParseError::BadMessage);
}

TEST_CASE("parser: a Transfer-Encoding other than chunked last is rejected in a request") {
  check_rejected("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n",
                 ParseError::BadMessage);
}

TEST_CASE("parser: obs-fold is rejected") {
  check_rejected("GET / HTTP/1.1\r\nHost: a\r\nX-Folded: one\r\n two\r\n\r\n",
                 ParseError::BadMessage);
  check_rejected("GET / HTTP/1.1\r\nHost: a\r\nX-Folded: one\r\n\ttwo\r\n\r\n",
                 ParseError::BadMessage);
  check_rejected("GET / HTTP/1.1\r\nHost: a\r\nX-Folded:\r\n two\r\n\r\n", ParseError::BadMessage);
  check_rejected("GET / HTTP/1.1\r\nX-Folded: one\r\n  two\r\nHost: a\r\n\r\n",
                 ParseError::BadMessage);
}

TEST_CASE("parser: obs-fold is rejected when the fold starts a new feed()") {
  std::string first = "GET / HTTP/1.1\r\nHost: a\r\nX-Folded: one\r\n";
  for (std::string second : {" two\r\n\r\n", "\ttwo\r\n\r\n", "   two\r\n\r\n"}) {
    CAPTURE(second);
    Recorder rec;
    Parser p(Kind::Request, rec);
    Parser::FeedResult r = p.feed(first.data(), first.size());
    CHECK(r.state == State::Ok);
    CHECK(r.consumed == first.size());
    r = p.feed(second.data(), second.size());
    CHECK(r.state == State::Error);
    CHECK(p.error() == ParseError::BadMessage);
    CHECK(rec.requests.empty());
  }
}

TEST_CASE("parser: bare LF line endings are rejected") {
  check_rejected("GET / HTTP/1.1\nHost: a\n\n", ParseError::BadMessage);
  check_rejected("GET / HTTP/1.1\r\nHost: a\n\r\n", ParseError::BadMessage);
  check_rejected("GET / HTTP/1.1\r\nHost: a\r\n\n", ParseError::BadMessage);
  check_rejected("GET / HTTP/1.1\r\nHost: a\r\nX-A: b\nX-B: c\r\n\r\n", ParseError::BadMessage);
  check_rejected("GET / HTTP/1.1\nHost: a\r\n\r\n", ParseError::BadMessage);
  check_rejected("GET / HTTP/1.0\n\r\n", ParseError::BadMessage);
  check_rejected("GET / HTTP/1.0\r\n\n", ParseError::BadMessage);
  check_rejected("\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", ParseError::BadMessage);
  check_rejected("HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n", ParseError::BadMessage,
                 Kind::Response);
  check_rejected("HTTP/1.1 204 No Content\r\n\n", ParseError::BadMessage, Kind::Response);
  std::string chunked = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
  check_rejected(chunked + "5\nhello\r\n0\r\n\r\n", ParseError::BadMessage);
  check_rejected(chunked + "5\r\nhello\r\n0\r\n\n", ParseError::BadMessage);
  check_rejected(chunked + "5\r\nhello\r\n0\r\nX-T: v\r\n\n", ParseError::BadMessage);
}

TEST_CASE("parser: a bare CR is rejected") {
  check_rejected("GET / HTTP/1.1\rHost: a\r\n\r\n", ParseError::BadMessage);
  check_rejected("GET / HTTP/1.1\r\nHost: a\r\n\rX", ParseError::BadMessage);
  std::string chunked = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
  check_rejected(chunked + "5\rXhello\r\n0\r\n\r\n", ParseError::BadMessage);
  check_rejected(chunked + "5\r\nhello\r\n0\rX\r\n", ParseError::BadMessage);
}

TEST_CASE("parser: chunk data must be followed by exactly CRLF") {
  std::string head = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
  // A parser that skips two bytes after the data would see one request here; one that checks
  // sees garbage. Either way the framing is ambiguous: reject.
  check_rejected(head + "5\r\nhelloXX0\r\n\r\n", ParseError::BadMessage);
  check_rejected(head + "5\r\nhello\rX0\r\n\r\n", ParseError::BadMessage);
  check_rejected(head + "5\r\nhello\n0\r\n\r\n", ParseError::BadMessage);
  check_rejected(head + "5\r\nhelloXX5\r\nworld\r\n0\r\n\r\n", ParseError::BadMessage);
  // The body piece before the bad framing is delivered; the message never completes.
  Recorder rec;
  Parser p(Kind::Request, rec);
  std::string in = head + "5\r\nhelloXX0\r\n\r\n";
  Outcome o = drive(p, in);
  CHECK(o.state == State::Error);
  CHECK(rec.completed == 0);
  CHECK(rec.body == "hello");
}

TEST_CASE("parser: an empty header name is rejected") {
  check_rejected("GET / HTTP/1.1\r\nHost: a\r\n: b\r\n\r\n", ParseError::BadMessage);
  check_rejected("GET / HTTP/1.1\r\nHost: a\r\n:\r\n\r\n", ParseError::BadMessage);
  check_rejected("GET / HTTP/1.1\r\n: b\r\nHost: a\r\n\r\n", ParseError::BadMessage);
  std::string chunked = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
  check_rejected(chunked + "0\r\n: t\r\n\r\n", ParseError::BadMessage);
}

TEST_CASE("parser: bad chunk sizes are rejected") {
  std::string head = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
  check_rejected(head + "zz\r\nhello\r\n0\r\n\r\n", ParseError::BadMessage);
  check_rejected(head + "5\r\nhello\r\nzz\r\n", ParseError::BadMessage);
  check_rejected(head + "fffffffffffffffffffff\r\nhello\r\n", ParseError::BadMessage);
  check_rejected(head + "10000000000000000\r\nhello\r\n", ParseError::BadMessage);
  check_rejected(head + "-1\r\nhello\r\n", ParseError::BadMessage);
  check_rejected(head + "5\r\nhelloXX0\r\n\r\n", ParseError::BadMessage);
}

TEST_CASE("parser: control characters in a header value are rejected") {
  check_rejected(std::string("GET / HTTP/1.1\r\nHost: a\r\nX-A: b\0c\r\n\r\n", 38),
                 ParseError::BadMessage);
  check_rejected("GET / HTTP/1.1\r\nHost: a\r\nX-A: b\rc\r\n\r\n", ParseError::BadMessage);
  check_rejected("GET / HTTP/1.1\r\nHost: a\r\nX-A: b\x01\r\n\r\n", ParseError::BadMessage);
  check_rejected("GET / HTTP/1.1\r\nHost: a\r\nX-A: b\x7f\r\n\r\n", ParseError::BadMessage);
}

TEST_CASE("parser: a control character anywhere in a long value is found") {
  // Long values are checked eight bytes at a time: put the bad byte at every offset.
  const std::string clean(40, 'v');
  for (char bad : {'\x01', '\x1f', '\x7f', '\x0b'}) {
    for (size_t at = 0; at < clean.size(); ++at) {
      std::string value = clean;
      value[at] = bad;
      std::string in = "GET / HTTP/1.1\r\nHost: a\r\nX-A: " + value + "\r\n\r\n";
      CAPTURE(at);
      Recorder rec;
      Parser p(Kind::Request, rec);
      CHECK(drive(p, in).state == State::Error);
      CHECK(p.error() == ParseError::BadMessage);
    }
  }
  // Tabs, spaces and obs-text (bytes >= 0x80) are allowed anywhere.
  std::string ok = "a\tb c\x80\xff\td\te\tf g\th\ti\tj\x90k\tl";
  std::string in = "GET / HTTP/1.1\r\nHost: a\r\nX-A: " + ok + "\r\n\r\n";
  Recorder rec;
  Parser p(Kind::Request, rec);
  CHECK(drive(p, in).state == State::Paused);
}

TEST_CASE("parser: whitespace in or before the end of a header name is rejected") {
  check_rejected("GET / HTTP/1.1\r\nHost : a\r\n\r\n", ParseError::BadMessage);
  check_rejected("GET / HTTP/1.1\r\nHost: a\r\nX-A\t: b\r\n\r\n", ParseError::BadMessage);
  check_rejected("GET / HTTP/1.1\r\nHost: a\r\nX A: b\r\n\r\n", ParseError::BadMessage);
  check_rejected("GET / HTTP/1.1\r\nHost: a\r\n: b\r\n\r\n", ParseError::BadMessage);
}

TEST_CASE("parser: Host must appear exactly once in HTTP/1.1") {
  check_rejected("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", ParseError::BadMessage);
  check_rejected("GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n", ParseError::BadMessage);
  check_rejected("GET / HTTP/1.1\r\nX-A: b\r\n\r\n", ParseError::BadMessage);
  check_rejected("GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n", ParseError::BadMessage);
}

TEST_CASE("parser: a bad request line is rejected") {
  check_rejected("GET / HTTP/2.0\r\nHost: a\r\n\r\n", ParseError::VersionNotSupported);
  CHECK(error_status(ParseError::VersionNotSupported) == 505);
  check_rejected("GET / HTTP/1.1 \r\nHost: a\r\n\r\n", ParseError::BadMessage);
  check_rejected("GET / FTP/1.1\r\nHost: a\r\n\r\n", ParseError::BadMessage);
  check_rejected("G@T / HTTP/1.1\r\nHost: a\r\n\r\n", ParseError::BadMessage);
  check_rejected("GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", ParseError::BadMessage);
}

TEST_CASE("parser: a request line or header block over max_head_bytes is rejected with 431") {
  ParserLimits limits;
  limits.max_head_bytes = 256;
  CHECK(error_status(ParseError::HeadTooLarge) == 431);
  check_rejected("GET /" + std::string(300, 'a') + " HTTP/1.1\r\nHost: a\r\n\r\n",
                 ParseError::HeadTooLarge, Kind::Request, limits);
  check_rejected("GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + std::string(300, 'v') + "\r\n\r\n",
                 ParseError::HeadTooLarge, Kind::Request, limits);
  check_rejected("GET / HTTP/1.1\r\nHost: a\r\nX-" + std::string(300, 'n') + ": v\r\n\r\n",
                 ParseError::HeadTooLarge, Kind::Request, limits);
  std::string many = "GET / HTTP/1.1\r\nHost: a\r\n";
  for (int i = 0; i < 40; ++i)
    many += "X-" + std::to_string(i) + ": v\r\n";
  check_rejected(many + "\r\n", ParseError::HeadTooLarge, Kind::Request, limits);
}

TEST_CASE("parser: whitespace and empty lines count against max_head_bytes") {
  ParserLimits limits;
  limits.max_head_bytes = 256;
  // llhttp skips these bytes without a callback; they must not make the head unbounded.
  check_rejected("GET / HTTP/1.1\r\nHost: a\r\nX-Pad:" + std::string(300, ' ') + "v\r\n\r\n",
                 ParseError::HeadTooLarge, Kind::Request, limits);
  std::string empty_lines;
  for (int i = 0; i < 200; ++i)
    empty_lines += "\r\n";
  check_rejected(empty_lines + "GET / HTTP/1.1\r\nHost: a\r\n\r\n", ParseError::HeadTooLarge,
                 Kind::Request, limits);
  // Also when the empty lines arrive in their own feed() calls, between two messages.
  Recorder rec;
  Parser p(Kind::Request, rec, limits);
  Outcome o = drive(p, kSimpleGet);
  CHECK(o.state == State::Paused);
  for (int i = 0; i < 200 && o.state != State::Error; ++i)
    o = drive(p, "\r\n");
  CHECK(o.state == State::Error);
  CHECK(p.error() == ParseError::HeadTooLarge);
  // A few empty lines before a request are fine (RFC 9112 §2.2).
  Recorder ok_rec;
  Parser ok(Kind::Request, ok_rec, limits);
  o = drive(ok, "\r\n\r\n" + kSimpleGet);
  CHECK(o.state == State::Paused);
  CHECK(ok_rec.completed == 1);
}

TEST_CASE("parser: max_head_bytes is about the bytes of the head") {
  // A head a little under the limit passes and a little over fails, whatever its shape.
  for (size_t limit : {128u, 512u, 4096u}) {
    CAPTURE(limit);
    ParserLimits limits;
    limits.max_head_bytes = limit;
    auto head_of = [](size_t pad) {
      return "GET /p HTTP/1.1\r\nHost: a\r\nX-Pad: " + std::string(pad, 'x') + "\r\n\r\n";
    };
    size_t base = head_of(0).size();
    std::string under = head_of(limit - base);
    std::string over = head_of(limit - base + 8);
    Recorder rec;
    Parser p(Kind::Request, rec, limits);
    CHECK(drive(p, under, 7).state == State::Paused);
    check_rejected(over, ParseError::HeadTooLarge, Kind::Request, limits);
  }
}

TEST_CASE("parser: the default head limit is enforced") {
  ParserLimits limits;
  CHECK(limits.max_head_bytes == 60 * 1024);
  Recorder rec;
  Parser p(Kind::Request, rec);
  std::string in = "GET / HTTP/1.1\r\nHost: a\r\n";
  for (int i = 0; in.size() < 70 * 1024; ++i)
    in += "X-Header-" + std::to_string(i) + ": " + std::string(100, 'v') + "\r\n";
  in += "\r\n";
  Outcome o = drive(p, in, 4096);
  CHECK(o.state == State::Error);
  CHECK(p.error() == ParseError::HeadTooLarge);
  CHECK(rec.requests.empty());
}

TEST_CASE("parser: more than max_headers headers is rejected with 431") {
  ParserLimits limits;
  limits.max_headers = 5;
  std::string in = "GET / HTTP/1.1\r\nHost: a\r\n";
  for (int i = 0; i < 4; ++i)
    in += "X-" + std::to_string(i) + ": v\r\n";
  // Exactly max_headers passes.
  {
    Recorder rec;
    Parser p(Kind::Request, rec, limits);
    Outcome o = drive(p, in + "\r\n");
    CHECK(o.state == State::Paused);
    REQUIRE(rec.requests.size() == 1);
    CHECK(rec.requests[0].headers.size() == 5);
  }
  check_rejected(in + "X-5: v\r\n\r\n", ParseError::HeadTooLarge, Kind::Request, limits);
}

TEST_CASE("parser: a body over max_body_bytes is rejected with 413") {
  ParserLimits limits;
  limits.max_body_bytes = 10;
  CHECK(error_status(ParseError::BodyTooLarge) == 413);

  SUBCASE("by Content-Length, before any body byte") {
    std::string head = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\n";
    check_rejected(head + "01234567890", ParseError::BodyTooLarge, Kind::Request, limits);
    Recorder rec;
    Parser p(Kind::Request, rec, limits);
    Parser::FeedResult r = p.feed(head.data(), head.size());
    CHECK(r.state == State::Error);
    CHECK(r.consumed <= head.size());
    CHECK(rec.requests.empty());
    CHECK(rec.body_calls == 0);
  }
  SUBCASE("by chunked streaming") {
    std::string in =
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        "6\r\nabcdef\r\n6\r\nghijkl\r\n0\r\n\r\n";
    check_rejected(in, ParseError::BodyTooLarge, Kind::Request, limits);
    Recorder rec;
    Parser p(Kind::Request, rec, limits);
    Outcome o = drive(p, in, 1);
    CHECK(o.state == State::Error);
    CHECK(rec.requests.size() == 1);
    CHECK(rec.body.size() <= 10);
    CHECK(rec.completed == 0);
  }
  SUBCASE("exactly the limit passes") {
    Recorder rec;
    Parser p(Kind::Request, rec, limits);
    std::string in =
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        "6\r\nabcdef\r\n4\r\nghij\r\n0\r\n\r\n";
    Outcome o = drive(p, in, 1);
    CHECK(o.state == State::Paused);
    CHECK(rec.bodies.at(0) == "abcdefghij");
  }
}

TEST_CASE("parser: an HTTP/2 connection preface is not HTTP/1") {
  Recorder rec;
  Parser p(Kind::Request, rec);
  std::string in = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
  Outcome o = drive(p, in);
  CHECK(o.state == State::Error);
  CHECK(p.error() != ParseError::None);
  CHECK(rec.requests.empty());
}

// ---------------------------------------------------------------------------------------------
// Responses

TEST_CASE("parser: response with Content-Length") {
  std::string in = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nServer: t\r\n\r\nhello";
  for (size_t step : kSteps) {
    CAPTURE(step);
    Recorder rec;
    Parser p(Kind::Response, rec);
    Outcome o = drive(p, in, step);
    CHECK(o.state == State::Paused);
    CHECK(o.consumed == in.size());
    REQUIRE(rec.responses.size() == 1);
    const ResponseHead& r = rec.responses[0];
    CHECK(r.status == 200);
    CHECK(r.reason == "OK");
    CHECK(r.version_minor == 1);
    CHECK(r.framing == Framing::ContentLength);
    CHECK(r.content_length == 5);
    CHECK(r.keep_alive);
    CHECK(rec.bodies.at(0) == "hello");
    CHECK(p.finish());
  }
}

TEST_CASE("parser: chunked response, every split") {
  std::string in =
      "HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n"
      "4;ext=1\r\nnot \r\n5\r\nfound\r\n0\r\nX-Trailer: t\r\n\r\n";
  for (size_t at = 1; at < in.size(); ++at) {
    CAPTURE(at);
    Recorder rec;
    Parser p(Kind::Response, rec);
    Outcome o = drive_split(p, in, at);
    CHECK(o.state == State::Paused);
    CHECK(o.consumed == in.size());
    REQUIRE(rec.responses.size() == 1);
    CHECK(rec.responses[0].status == 404);
    CHECK(rec.responses[0].reason == "Not Found");
    CHECK(rec.responses[0].framing == Framing::Chunked);
    CHECK(rec.responses[0].keep_alive);
    CHECK(rec.responses[0].headers.size() == 1);
    CHECK(rec.bodies.at(0) == "not found");
  }
}

TEST_CASE("parser: a response without length is read until close") {
  std::string in = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nsome data";
  for (size_t step : kSteps) {
    CAPTURE(step);
    Recorder rec;
    Parser p(Kind::Response, rec);
    Outcome o = drive(p, in, step);
    CHECK(o.state == State::Ok);
    CHECK(o.consumed == in.size());
    REQUIRE(rec.responses.size() == 1);
    CHECK(rec.responses[0].framing == Framing::UntilClose);
    CHECK_FALSE(rec.responses[0].keep_alive);
    CHECK(rec.body == "some data");
    CHECK(rec.completed == 0);
    CHECK(p.in_message());
    CHECK(p.finish());
    CHECK(rec.completed == 1);
    CHECK(rec.bodies.at(0) == "some data");
    CHECK_FALSE(p.in_message());
  }
}

TEST_CASE("parser: an empty until-close body ends cleanly") {
  Recorder rec;
  Parser p(Kind::Response, rec);
  std::string in = "HTTP/1.0 200 OK\r\n\r\n";
  Outcome o = drive(p, in);
  CHECK(o.state == State::Ok);
  CHECK(p.finish());
  CHECK(rec.completed == 1);
  CHECK(rec.responses.at(0).version_minor == 0);
  CHECK(rec.bodies.at(0).empty());
}

TEST_CASE("parser: 204 and 304 have no body whatever the headers say") {
  for (std::string status : {"204 No Content", "304 Not Modified"}) {
    CAPTURE(status);
    std::string first = "HTTP/1.1 " + status + "\r\nContent-Length: 100\r\n\r\n";
    std::string second = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    Recorder rec;
    Parser p(Kind::Response, rec);
    Parser::FeedResult r = p.feed((first + second).data(), first.size() + second.size());
    CHECK(r.state == State::Paused);
    CHECK(r.consumed == first.size());
    REQUIRE(rec.responses.size() == 1);
    CHECK(rec.responses[0].framing == Framing::None);
    CHECK(rec.responses[0].keep_alive);
    CHECK(rec.bodies.at(0).empty());
    p.resume();
    Outcome o = drive(p, second);
    CHECK(o.state == State::Paused);
    CHECK(rec.bodies.at(1) == "ok");
  }
  // Without any length header too.
  Recorder rec;
  Parser p(Kind::Response, rec);
  std::string in = "HTTP/1.1 204 No Content\r\n\r\n";
  Outcome o = drive(p, in);
  CHECK(o.state == State::Paused);
  CHECK(o.consumed == in.size());
  CHECK(rec.responses.at(0).keep_alive);
}

TEST_CASE("parser: a response to HEAD has no body") {
  std::string head_resp = "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n";
  std::string next = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc";
  Recorder rec;
  Parser p(Kind::Response, rec);
  p.expect_response_to("HEAD");
  std::string all = head_resp + next;
  Parser::FeedResult r = p.feed(all.data(), all.size());
  CHECK(r.state == State::Paused);
  CHECK(r.consumed == head_resp.size());
  REQUIRE(rec.responses.size() == 1);
  CHECK(rec.responses[0].framing == Framing::None);
  CHECK(rec.responses[0].content_length == 1234);
  CHECK(rec.responses[0].keep_alive);
  CHECK(rec.bodies.at(0).empty());
  // The HEAD expectation applies to one response only.
  p.resume();
  r = p.feed(all.data() + head_resp.size(), next.size());
  CHECK(r.state == State::Paused);
  CHECK(rec.bodies.at(1) == "abc");
}

TEST_CASE("parser: a response to HEAD without a length stays keep-alive") {
  Recorder rec;
  Parser p(Kind::Response, rec);
  p.expect_response_to("HEAD");
  std::string in = "HTTP/1.1 200 OK\r\n\r\n";
  Outcome o = drive(p, in);
  CHECK(o.state == State::Paused);
  REQUIRE(rec.responses.size() == 1);
  CHECK(rec.responses[0].framing == Framing::None);
  CHECK(rec.responses[0].keep_alive);
}

TEST_CASE("parser: 100 Continue then the final response in one buffer") {
  std::string cont = "HTTP/1.1 100 Continue\r\n\r\n";
  std::string fin = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi";
  std::string all = cont + fin;
  Recorder rec;
  Parser p(Kind::Response, rec);
  Parser::FeedResult r = p.feed(all.data(), all.size());
  CHECK(r.state == State::Paused);
  CHECK(r.consumed == cont.size());
  REQUIRE(rec.responses.size() == 1);
  CHECK(rec.responses[0].status == 100);
  CHECK(rec.responses[0].reason == "Continue");
  CHECK(rec.responses[0].framing == Framing::None);
  p.resume();
  r = p.feed(all.data() + cont.size(), fin.size());
  CHECK(r.state == State::Paused);
  CHECK(r.consumed == fin.size());
  REQUIRE(rec.responses.size() == 2);
  CHECK(rec.responses[1].status == 200);
  CHECK(rec.bodies.at(1) == "hi");
  // And split everywhere, with a 1xx to a HEAD request (the HEAD rule waits for the final one).
  std::string head_fin = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n";
  std::string all2 = cont + "HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\n" + head_fin;
  for (size_t at = 1; at < all2.size(); ++at) {
    CAPTURE(at);
    Recorder rec2;
    Parser p2(Kind::Response, rec2);
    p2.expect_response_to("HEAD");
    Outcome o = drive_split(p2, all2, at);
    CHECK(o.state == State::Paused);
    CHECK(o.consumed == all2.size());
    REQUIRE(rec2.responses.size() == 3);
    CHECK(rec2.responses[1].status == 103);
    CHECK(rec2.responses[2].status == 200);
    CHECK(rec2.completed == 3);
    CHECK(rec2.body_calls == 0);
  }
}

TEST_CASE("parser: 101 Switching Protocols turns into a tunnel") {
  std::string head =
      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
  std::string tunnel = std::string("\x81\x02hi", 4);
  for (size_t step : kSteps) {
    CAPTURE(step);
    Recorder rec;
    Parser p(Kind::Response, rec);
    Outcome o = drive(p, head + tunnel, step);
    CHECK(o.state == State::Upgrade);
    CHECK(o.consumed == head.size());
    REQUIRE(rec.responses.size() == 1);
    CHECK(rec.responses[0].status == 101);
    CHECK(rec.body_calls == 0);
  }
}

TEST_CASE("parser: a 2xx answer to CONNECT turns into a tunnel") {
  std::string head = "HTTP/1.1 200 Connection Established\r\n\r\n";
  std::string tunnel = "\x16\x03\x03 server hello";
  for (size_t step : kSteps) {
    CAPTURE(step);
    Recorder rec;
    Parser p(Kind::Response, rec);
    p.expect_response_to("CONNECT");
    Outcome o = drive(p, head + tunnel, step);
    CHECK(o.state == State::Upgrade);
    CHECK(o.consumed == head.size());
    REQUIRE(rec.responses.size() == 1);
    CHECK(rec.responses[0].status == 200);
    CHECK(rec.responses[0].framing == Framing::None);
    CHECK(rec.body_calls == 0);
  }
  // A refusal has an ordinary body, and the next response is ordinary too.
  Recorder rec;
  Parser p(Kind::Response, rec);
  p.expect_response_to("CONNECT");
  std::string refusal =
      "HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 4\r\n\r\nnope";
  Outcome o = drive(p, refusal);
  CHECK(o.state == State::Paused);
  CHECK(o.consumed == refusal.size());
  CHECK(rec.bodies.at(0) == "nope");
}

TEST_CASE("parser: a truncated response body fails finish()") {
  for (std::string in : {"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello",
                         "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel",
                         "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
                         "HTTP/1.1 200 OK\r\nContent-Le"}) {
    CAPTURE(in);
    Recorder rec;
    Parser p(Kind::Response, rec);
    Outcome o = drive(p, in);
    CHECK(o.state == State::Ok);
    CHECK(p.in_message());
    CHECK_FALSE(p.finish());
    CHECK(p.error() == ParseError::BadMessage);
    CHECK(rec.completed == 0);
  }
}

TEST_CASE("parser: finish() between messages is clean") {
  Recorder rec;
  Parser p(Kind::Response, rec);
  CHECK(p.finish());
  std::string in = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
  Outcome o = drive(p, in);
  CHECK(o.state == State::Paused);
  CHECK(p.finish());
  CHECK(p.error() == ParseError::None);
}

TEST_CASE("parser: response rejections") {
  check_rejected("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                 ParseError::BadMessage, Kind::Response);
  check_rejected(
      "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
      ParseError::BadMessage, Kind::Response);
  check_rejected("HTTP/1.1 200 OK\r\nX-A: one\r\n two\r\n\r\n", ParseError::BadMessage,
                 Kind::Response);
  check_rejected("HTTP/1.1 2000 OK\r\n\r\n", ParseError::BadMessage, Kind::Response);
  check_rejected("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                 ParseError::BadMessage, Kind::Response);
  check_rejected("HTTP/2.0 200 OK\r\n\r\n", ParseError::VersionNotSupported, Kind::Response);
  ParserLimits limits;
  limits.max_head_bytes = 100;
  check_rejected("HTTP/1.1 200 OK\r\nX-Big: " + std::string(200, 'v') + "\r\n\r\n",
                 ParseError::HeadTooLarge, Kind::Response, limits);
  limits = {};
  limits.max_body_bytes = 4;
  check_rejected("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", ParseError::BodyTooLarge,
                 Kind::Response, limits);
}

}  // namespace
}  // namespace meshbox::http
