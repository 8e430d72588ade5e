// Tests for core/trace/span.h: the Zipkin v2 JSON of spans, checked by parsing it back with
// core/base/json.h (field names and types as Zipkin's API defines them).
#include "core/trace/span.h"

#include <doctest/doctest.h>

#include <string>
#include <vector>

namespace meshbox::trace {
namespace {

Span sample_span() {
  Span s;
  s.trace_id = {0x4bf92f3577b34da6ULL, 0xa3ce929d0e0e4736ULL};
  s.id = 0x00f067aa0ba902b7ULL;
  s.parent_id = 0x0000000000000abcULL;
  s.name = "reviews.default.svc.cluster.local:9080/*";
  s.kind = SpanKind::Client;
  s.timestamp_us = 1'764'000'000'123'456ULL;
  s.duration_us = 2'500;
  s.local = {"productpage.default", "10.0.0.7", 0};
  s.remote = {"reviews", "::1", 9080};
  s.tag("http.method", "GET");
  s.tag("http.status_code", "200");
  s.tag("upstream_cluster", "outbound|9080||reviews \"quoted\"\n");
  return s;
}

TEST_CASE("span: Zipkin v2 JSON reads back with every field") {
  Span a = sample_span();
  Span b;
  b.trace_id = {0, 0x1234};
  b.id = 0x99;
  b.kind = SpanKind::Server;
  b.timestamp_us = 5;
  b.duration_us = 0;  // written as 1
  b.shared = true;
  b.debug = true;
  std::string text = encode_zipkin({a, b});
  auto doc = json::parse(text);
  REQUIRE(doc.has_value());
  REQUIRE(doc->is_array());
  REQUIRE(doc->array.size() == 2);

  const json::Value& s = doc->array[0];
  CHECK(s.get("traceId")->as_string() == "4bf92f3577b34da6a3ce929d0e0e4736");
  CHECK(s.get("id")->as_string() == "00f067aa0ba902b7");
  CHECK(s.get("parentId")->as_string() == "0000000000000abc");
  CHECK(s.get("name")->as_string() == "reviews.default.svc.cluster.local:9080/*");
  CHECK(s.get("kind")->as_string() == "CLIENT");
  REQUIRE(s.get("timestamp")->as_int().has_value());
  CHECK(*s.get("timestamp")->as_int() == 1'764'000'000'123'456LL);
  CHECK(*s.get("duration")->as_int() == 2'500);
  const json::Value* local = s.get("localEndpoint");
  REQUIRE(local);
  CHECK(local->get("serviceName")->as_string() == "productpage.default");
  CHECK(local->get("ipv4")->as_string() == "10.0.0.7");
  CHECK(local->get("port") == nullptr);
  const json::Value* remote = s.get("remoteEndpoint");
  REQUIRE(remote);
  CHECK(remote->get("ipv6")->as_string() == "::1");
  CHECK(*remote->get("port")->as_int() == 9080);
  const json::Value* tags = s.get("tags");
  REQUIRE(tags);
  REQUIRE(tags->is_object());
  CHECK(tags->object.size() == 3);
  CHECK(tags->get("http.status_code")->as_string() == "200");  // tag values are strings
  CHECK(tags->get("upstream_cluster")->as_string() == "outbound|9080||reviews \"quoted\"\n");
  CHECK(s.get("shared") == nullptr);
  CHECK(s.get("debug") == nullptr);

  const json::Value& t = doc->array[1];
  CHECK(t.get("traceId")->as_string() == "0000000000001234");  // 64-bit ids stay 16 digits
  CHECK(t.get("parentId") == nullptr);
  CHECK(t.get("name") == nullptr);
  CHECK(t.get("kind")->as_string() == "SERVER");
  CHECK(*t.get("duration")->as_int() == 1);
  CHECK(t.get("localEndpoint") == nullptr);
  CHECK(t.get("remoteEndpoint") == nullptr);
  CHECK(t.get("tags") == nullptr);
  CHECK(t.get("shared")->as_bool() == true);
  CHECK(t.get("debug")->as_bool() == true);
}

TEST_CASE("span: from_context copies the ids; empty list; appended spans concatenate") {
  SpanContext ctx;
  ctx.trace_id = {1, 2};
  ctx.span_id = 3;
  ctx.parent_id = 4;
  ctx.shared = true;
  Span s = Span::from_context(ctx);
  CHECK(s.trace_id == ctx.trace_id);
  CHECK(s.id == 3);
  CHECK(s.parent_id == 4);
  CHECK(s.shared);
  CHECK(encode_zipkin({}) == "[]");

  std::string body = "[";
  append_zipkin(body, sample_span());
  body += ",";
  append_zipkin(body, s);
  body += "]";
  auto doc = json::parse(body);
  REQUIRE(doc.has_value());
  CHECK(doc->array.size() == 2);
  CHECK(json::parse(encode_zipkin({sample_span(), s}))->operator==(*doc));
}

TEST_CASE("span: invalid UTF-8 in names and tags still gives valid JSON") {
  Span s = sample_span();
  s.name = std::string("bad\xff\xfe name");
  s.tag("k\x80", std::string("\xc3", 1));
  auto doc = json::parse(encode_zipkin({s}));
  REQUIRE(doc.has_value());
}

}  // namespace
}  // namespace meshbox::trace
