// Tests for core/http/serializer.h: HTTP/1.1 heads and chunk framing, checked by reading
// them back with the parser as well as byte for byte.
#include "core/http/serializer.h"

#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "core/http/parser.h"

namespace meshbox::http {
namespace {

class Collect : public ParserCallbacks {
 public:
  void on_request_head(RequestHead& h) override { requests.push_back(std::move(h)); }
  void on_response_head(ResponseHead& h) override { responses.push_back(std::move(h)); }
  void on_body(const char* data, size_t len) override { body.append(data, len); }
  void on_message_complete() override { ++completed; }
  std::vector<RequestHead> requests;
  std::vector<ResponseHead> responses;
  std::string body;
  int completed = 0;
};

TEST_CASE("serializer: request head") {
  RequestHead r;
  r.method = "POST";
  r.target = "/api/v1/items?x=1";
  r.headers.add("Host", "api.internal");
  r.headers.add("Content-Length", "3");
  r.headers.add("X-Empty", "");
  std::string out = "prefix|";
  append_request_head(r, out);
  CHECK(out ==
        "prefix|POST /api/v1/items?x=1 HTTP/1.1\r\nHost: api.internal\r\nContent-Length: "
        "3\r\nX-Empty: \r\n\r\n");

  r.version_minor = 0;
  std::string v10;
  append_request_head(r, v10);
  CHECK(v10.rfind("POST /api/v1/items?x=1 HTTP/1.0\r\n", 0) == 0);
}

TEST_CASE("serializer: a request head reads back as the same head") {
  RequestHead r;
  r.method = "PUT";
  r.target = "/x";
  r.headers.add("Host", "h");
  r.headers.add("Transfer-Encoding", "chunked");
  r.headers.add("X-Multi", "a");
  r.headers.add("x-multi", "b");
  std::string wire;
  append_request_head(r, wire);
  append_chunk_header(5, wire);
  wire += "hello";
  wire += kCrlf;
  append_chunk_header(300, wire);
  wire += std::string(300, 'q');
  wire += kCrlf;
  wire += kLastChunk;

  Collect c;
  Parser p(Parser::Kind::Request, c);
  Parser::FeedResult res = p.feed(wire.data(), wire.size());
  CHECK(res.state == Parser::State::Paused);
  CHECK(res.consumed == wire.size());
  REQUIRE(c.requests.size() == 1);
  CHECK(c.requests[0].method == "PUT");
  CHECK(c.requests[0].target == "/x");
  CHECK(c.requests[0].framing == Framing::Chunked);
  CHECK(c.requests[0].headers.count("x-multi") == 2);
  CHECK(c.body == "hello" + std::string(300, 'q'));
  CHECK(c.completed == 1);
}

TEST_CASE("serializer: response head") {
  ResponseHead r;
  r.status = 404;
  r.headers.add("Content-Length", "0");
  std::string out;
  append_response_head(r, out);
  CHECK(out == "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");

  r.reason = "Nope";
  r.version_minor = 0;
  out.clear();
  append_response_head(r, out);
  CHECK(out == "HTTP/1.0 404 Nope\r\nContent-Length: 0\r\n\r\n");

  ResponseHead odd;
  odd.status = 299;
  out.clear();
  append_response_head(odd, out);
  CHECK(out == "HTTP/1.1 299 Unknown\r\n\r\n");
}

TEST_CASE("serializer: a response head reads back as the same head") {
  for (int status : {100, 200, 204, 301, 404, 503}) {
    CAPTURE(status);
    ResponseHead r;
    r.status = status;
    if (status != 100 && status != 204) r.headers.add("Content-Length", "2");
    r.headers.add("Server", "meshbox");
    std::string wire;
    append_response_head(r, wire);
    if (status != 100 && status != 204) wire += "ok";
    Collect c;
    Parser p(Parser::Kind::Response, c);
    Parser::FeedResult res = p.feed(wire.data(), wire.size());
    CHECK(res.state == Parser::State::Paused);
    CHECK(res.consumed == wire.size());
    REQUIRE(c.responses.size() == 1);
    CHECK(c.responses[0].status == status);
    CHECK(c.responses[0].reason == reason_phrase(status));
    CHECK(*c.responses[0].headers.get("server") == "meshbox");
  }
}

TEST_CASE("serializer: chunk headers are lower-case hex") {
  std::string out;
  append_chunk_header(0, out);
  CHECK(out == "0\r\n");
  out.clear();
  append_chunk_header(255, out);
  CHECK(out == "ff\r\n");
  out.clear();
  append_chunk_header(0x10000, out);
  CHECK(out == "10000\r\n");
  out.clear();
  append_chunk_header(SIZE_MAX, out);
  CHECK(out == "ffffffffffffffff\r\n");
  CHECK(kLastChunk == "0\r\n\r\n");
  CHECK(kCrlf == "\r\n");
}

TEST_CASE("serializer: reason phrases") {
  CHECK(reason_phrase(100) == "Continue");
  CHECK(reason_phrase(101) == "Switching Protocols");
  CHECK(reason_phrase(200) == "OK");
  CHECK(reason_phrase(204) == "No Content");
  CHECK(reason_phrase(304) == "Not Modified");
  CHECK(reason_phrase(400) == "Bad Request");
  CHECK(reason_phrase(404) == "Not Found");
  CHECK(reason_phrase(413) == "Content Too Large");
  CHECK(reason_phrase(431) == "Request Header Fields Too Large");
  CHECK(reason_phrase(502) == "Bad Gateway");
  CHECK(reason_phrase(503) == "Service Unavailable");
  CHECK(reason_phrase(504) == "Gateway Timeout");
  CHECK(reason_phrase(505) == "HTTP Version Not Supported");
  CHECK(reason_phrase(0) == "Unknown");
  CHECK(reason_phrase(999) == "Unknown");
  // Every status the parser reports has a phrase.
  for (ParseError e : {ParseError::BadMessage, ParseError::HeadTooLarge, ParseError::BodyTooLarge,
                       ParseError::VersionNotSupported})
    CHECK(reason_phrase(error_status(e)) != "Unknown");
}

}  // namespace
}  // namespace meshbox::http
