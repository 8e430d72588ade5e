// Tests for core/trace/trace_context.h: traceparent, b3 and x-b3-* parsing tables with
// malformed values (ignored: a new trace starts), which context wins when several formats
// arrive, the headers written for the next hop (round trips through extract()), tracestate
// pass-through and its 512-character cut, and sampling rates over many seeded draws.
#include "core/trace/trace_context.h"

#include <doctest/doctest.h>

#include <algorithm>

#include <string>
#include <utility>
#include <vector>

namespace meshbox::trace {
namespace {

constexpr std::string_view kTrace = "4bf92f3577b34da6a3ce929d0e0e4736";
constexpr std::string_view kSpan = "00f067aa0ba902b7";
constexpr TraceId kTraceId{0x4bf92f3577b34da6ULL, 0xa3ce929d0e0e4736ULL};
constexpr uint64_t kSpanId = 0x00f067aa0ba902b7ULL;

http::HeaderMap headers(std::vector<std::pair<std::string, std::string>> list) {
  http::HeaderMap h;
  for (auto& [k, v] : list)
    h.add(k, v);
  return h;
}

std::string get(const http::HeaderMap& h, std::string_view name) {
  const std::string* v = h.get(name);
  return v ? *v : std::string("<none>");
}

TEST_CASE("trace: traceparent parsing table") {
  std::string good = "00-" + std::string(kTrace) + "-" + std::string(kSpan) + "-01";
  W3cParent p;
  REQUIRE(parse_traceparent(good, p));
  CHECK(p.trace_id == kTraceId);
  CHECK(p.span_id == kSpanId);
  CHECK(p.flags == 1);
  CHECK(parse_traceparent(" " + good + "\t", p));  // OWS around the value

  struct Case {
    std::string value;
    bool valid;
    const char* why;
  };
  std::string t(kTrace), s(kSpan);
  std::vector<Case> cases = {
      {"00-" + t + "-" + s + "-00", true, "not sampled"},
      {"00-" + t + "-" + s + "-ff", true, "unknown flags are kept"},
      {"01-" + t + "-" + s + "-01", true, "a future version, same length"},
      {"cc-" + t + "-" + s + "-01-what-the-future-holds", true, "a future version with more"},
      {"cc-" + t + "-" + s + "-01.extra", false, "a future version, no dash after the flags"},
      {"00-" + t + "-" + s + "-01-extra", false, "version 00 must be exactly 55 chars"},
      {"ff-" + t + "-" + s + "-01", false, "version ff"},
      {"0g-" + t + "-" + s + "-01", false, "a non-hex version"},
      {"00-" + std::string(32, '0') + "-" + s + "-01", false, "all-zero trace id"},
      {"00-" + t + "-" + std::string(16, '0') + "-01", false, "all-zero parent id"},
      {"00-4BF92F3577B34DA6A3CE929D0E0E4736-" + s + "-01", false, "upper-case trace id"},
      {"00-" + t + "-00F067AA0BA902B7-01", false, "upper-case parent id"},
      {"00-" + t + "-" + s + "-0A", false, "upper-case flags"},
      {"0A-" + t + "-" + s + "-01", false, "upper-case version"},
      {"00-" + t.substr(1) + "-" + s + "-01", false, "short trace id"},
      {"00-" + t + "-" + s.substr(1) + "-01", false, "short parent id"},
      {"00-" + t + "-" + s + "-1", false, "short flags"},
      {"00_" + t + "-" + s + "-01", false, "wrong separator"},
      {"00-" + t + "_" + s + "-01", false, "wrong separator 2"},
      {"00-" + t + "-" + s + "_01", false, "wrong separator 3"},
      {"", false, "empty"},
      {"00", false, "version only"},
      {std::string(55, '-'), false, "dashes"},
      {std::string(4000, 'a'), false, "long junk"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.why);
    CAPTURE(c.value);
    CHECK(parse_traceparent(c.value, p) == c.valid);
  }
}

TEST_CASE("trace: b3 single header parsing table") {
  std::string t(kTrace), s(kSpan), par = "e457b5a2e4d86bd1";
  B3Context c;
  REQUIRE(parse_b3_single(t + "-" + s + "-1-" + par, c));
  CHECK(c.trace_id == kTraceId);
  CHECK(c.span_id == kSpanId);
  CHECK(c.parent_span_id == 0xe457b5a2e4d86bd1ULL);
  CHECK(c.sampled == Sampled::Yes);
  CHECK_FALSE(c.debug);

  REQUIRE(parse_b3_single("a3ce929d0e0e4736-" + s, c));  // 64-bit trace id, deferred
  CHECK(c.trace_id == TraceId{0, 0xa3ce929d0e0e4736ULL});
  CHECK(c.sampled == Sampled::Undecided);
  REQUIRE(parse_b3_single(t + "-" + s + "-d", c));
  CHECK(c.sampled == Sampled::Yes);
  CHECK(c.debug);
  REQUIRE(parse_b3_single(t + "-" + s + "-0", c));
  CHECK(c.sampled == Sampled::No);
  REQUIRE(parse_b3_single("0", c));
  CHECK(c.trace_id.empty());
  CHECK(c.sampled == Sampled::No);
  REQUIRE(parse_b3_single("1", c));
  CHECK(c.sampled == Sampled::Yes);
  REQUIRE(parse_b3_single("d", c));
  CHECK(c.debug);

  for (std::string bad : {
           std::string(""),
           std::string("2"),
           std::string("true"),
           t,
           t + "-",
           t + "-" + s + "-",
           t + "-" + s + "-2",
           t + "-" + s + "-1-",
           t + "-" + s + "-1-" + par + "-x",
           t + "-" + s + "-1-" + std::string(16, '0'),
           t.substr(0, 20) + "-" + s,
           std::string(32, '0') + "-" + s,
           t + "-" + std::string(16, '0'),
           t + "-" + s.substr(2),
           t + "-zz" + s.substr(2),
           std::string("----"),
           std::string(1000, '-'),
       }) {
    CAPTURE(bad);
    CHECK_FALSE(parse_b3_single(bad, c));
  }
}

TEST_CASE("trace: x-b3 multi headers, names in any case") {
  auto in = extract(headers({{"X-B3-TraceId", std::string(kTrace)},
                             {"X-B3-SpanId", std::string(kSpan)},
                             {"X-B3-ParentSpanId", "e457b5a2e4d86bd1"},
                             {"X-B3-Sampled", "1"}}));
  CHECK(in.formats == kFormatB3Multi);
  CHECK(in.trace_id == kTraceId);
  CHECK(in.span_id == kSpanId);
  CHECK(in.parent_span_id == 0xe457b5a2e4d86bd1ULL);
  CHECK(in.sampled == Sampled::Yes);

  SUBCASE("64-bit trace id, true/false, upper-case hex (Envoy accepts it)") {
    auto in = extract(headers({{"x-b3-traceid", "A3CE929D0E0E4736"},
                               {"x-b3-spanid", std::string(kSpan)},
                               {"x-b3-sampled", "false"}}));
    CHECK(in.trace_id == TraceId{0, 0xa3ce929d0e0e4736ULL});
    CHECK(in.sampled == Sampled::No);
    CHECK(extract(headers({{"x-b3-traceid", std::string(kTrace)},
                           {"x-b3-spanid", std::string(kSpan)},
                           {"x-b3-sampled", "TRUE"}}))
              .sampled == Sampled::Yes);
  }
  SUBCASE("x-b3-flags: 1 is debug, which samples") {
    auto in = extract(headers({{"x-b3-traceid", std::string(kTrace)},
                               {"x-b3-spanid", std::string(kSpan)},
                               {"x-b3-flags", "1"}}));
    CHECK(in.debug);
    CHECK(in.sampled == Sampled::Yes);
  }
  SUBCASE("a sampling decision alone") {
    auto in = extract(headers({{"x-b3-sampled", "0"}}));
    CHECK(in.formats == kFormatB3Multi);
    CHECK_FALSE(in.has_context());
    CHECK(in.sampled == Sampled::No);
  }
  SUBCASE("a malformed sampled value leaves the decision open") {
    auto in = extract(headers({{"x-b3-traceid", std::string(kTrace)},
                               {"x-b3-spanid", std::string(kSpan)},
                               {"x-b3-sampled", "yes"}}));
    CHECK(in.has_context());
    CHECK(in.sampled == Sampled::Undecided);
  }
  SUBCASE("a malformed parent id is dropped, the context stands") {
    auto in = extract(headers({{"x-b3-traceid", std::string(kTrace)},
                               {"x-b3-spanid", std::string(kSpan)},
                               {"x-b3-parentspanid", "nope"}}));
    CHECK(in.has_context());
    CHECK(in.parent_span_id == 0);
  }
  SUBCASE("malformed ids: ignored") {
    for (auto& list : std::vector<std::vector<std::pair<std::string, std::string>>>{
             {{"x-b3-traceid", std::string(kTrace)}},
             {{"x-b3-spanid", std::string(kSpan)}},
             {{"x-b3-traceid", "123"}, {"x-b3-spanid", std::string(kSpan)}},
             {{"x-b3-traceid", std::string(kTrace)}, {"x-b3-spanid", "0000000000000000"}},
             {{"x-b3-traceid", std::string(32, '0')}, {"x-b3-spanid", std::string(kSpan)}},
             {{"x-b3-traceid", std::string(kTrace) + "0"}, {"x-b3-spanid", std::string(kSpan)}},
             {{"x-b3-traceid", ""}, {"x-b3-spanid", ""}, {"x-b3-sampled", "1"}},
         }) {
      auto in = extract(headers(list));
      CHECK_FALSE(in.has_context());
      CHECK(in.formats == 0);
    }
  }
}

TEST_CASE("trace: which context wins, and tracestate") {
  std::string tp = "00-" + std::string(kTrace) + "-" + std::string(kSpan) + "-01";
  std::string other_trace = "11111111111111112222222222222222";

  SUBCASE("W3C alone, tracestate passed through") {
    auto in =
        extract(headers({{"Traceparent", tp}, {"TraceState", "congo=t61rcWkgMzE,rojo=00f0"}}));
    CHECK(in.formats == kFormatW3c);
    CHECK(in.trace_id == kTraceId);
    CHECK(in.span_id == kSpanId);
    CHECK(in.sampled == Sampled::Yes);
    CHECK(in.tracestate == "congo=t61rcWkgMzE,rojo=00f0");
  }
  SUBCASE("several tracestate headers are one list") {
    auto in = extract(headers({{"tracestate", "a=1"}, {"traceparent", tp}, {"tracestate", "b=2"}}));
    CHECK(in.tracestate == "a=1,b=2");
  }
  SUBCASE("tracestate beyond 512 characters loses whole members, long ones first") {
    std::string list = "big=" + std::string(200, 'x');
    for (int i = 0; i < 40; ++i)
      list += ",k" + std::to_string(i) + "=" + std::string(10, 'v');
    auto in = extract(headers({{"traceparent", tp}, {"tracestate", list}}));
    CHECK(in.tracestate.size() <= kMaxTracestate);
    CHECK(in.tracestate.starts_with("k0=vvvvvvvvvv,k1="));
    CHECK(in.tracestate.find("big=") == std::string::npos);
    CHECK(in.tracestate.back() == 'v');  // no member cut in half
  }
  SUBCASE("tracestate without a valid traceparent is dropped") {
    auto in = extract(headers({{"traceparent", "garbage"}, {"tracestate", "a=1"}}));
    CHECK(in.formats == 0);
    CHECK(in.tracestate.empty());
  }
  SUBCASE("a repeated traceparent is invalid") {
    auto in = extract(headers({{"traceparent", tp}, {"traceparent", tp}}));
    CHECK_FALSE(in.has_context());
  }
  SUBCASE("b3 beats x-b3-*, which beats traceparent; all valid formats are kept") {
    auto in = extract(headers({{"traceparent", tp},
                               {"x-b3-traceid", other_trace},
                               {"x-b3-spanid", "3333333333333333"},
                               {"b3", other_trace + "-4444444444444444-0"}}));
    CHECK(in.formats == (kFormatW3c | kFormatB3Multi | kFormatB3Single));
    CHECK(in.span_id == 0x4444444444444444ULL);
    CHECK(in.sampled == Sampled::No);
    CHECK(in.tracestate.empty());
    auto in2 = extract(headers(
        {{"traceparent", tp}, {"x-b3-traceid", other_trace}, {"x-b3-spanid", "3333333333333333"}}));
    CHECK(in2.span_id == 0x3333333333333333ULL);
    // x-b3 made no decision; the traceparent of another trace does not make it for it.
    CHECK(in2.sampled == Sampled::Undecided);
  }
  SUBCASE("b3: 0 with a traceparent: the W3C context, not sampled") {
    auto in = extract(headers({{"b3", "0"}, {"traceparent", tp}}));
    CHECK(in.formats == (kFormatB3Single | kFormatW3c));
    CHECK(in.trace_id == kTraceId);
    CHECK(in.sampled == Sampled::No);
  }
  SUBCASE("a bad b3 falls back to a good traceparent") {
    auto in = extract(headers({{"b3", "junk"}, {"traceparent", tp}}));
    CHECK(in.formats == kFormatW3c);
    CHECK(in.trace_id == kTraceId);
  }
}

TEST_CASE("trace: the next hop gets a child in the formats the request came with") {
  Random rng(42);
  SUBCASE("W3C in, W3C out; tracestate unchanged; other headers untouched") {
    std::string tp = "00-" + std::string(kTrace) + "-" + std::string(kSpan) + "-01";
    auto h =
        headers({{"host", "reviews"}, {"traceparent", tp}, {"tracestate", "congo=t61rcWkgMzE"}});
    SpanContext span = propagate(h, rng, 0);
    CHECK(span.trace_id == kTraceId);
    CHECK(span.parent_id == kSpanId);
    CHECK(span.span_id != 0);
    CHECK(span.span_id != kSpanId);
    CHECK(span.sampled);  // the caller's decision, though the rate is 0
    CHECK(get(h, "host") == "reviews");
    CHECK(get(h, "traceparent") ==
          "00-" + std::string(kTrace) + "-" + span_id_hex(span.span_id) + "-01");
    CHECK(get(h, "tracestate") == "congo=t61rcWkgMzE");
    CHECK_FALSE(h.has("x-b3-traceid"));
    CHECK_FALSE(h.has("b3"));
    CHECK(h.size() == 3);
    // The next hop reads our span as its parent.
    auto next = extract(h);
    CHECK(next.trace_id == kTraceId);
    CHECK(next.span_id == span.span_id);
    CHECK(next.sampled == Sampled::Yes);
  }
  SUBCASE("B3 multi in (64-bit id), B3 multi out with the parent id") {
    auto h = headers({{"X-B3-TraceId", "a3ce929d0e0e4736"},
                      {"X-B3-SpanId", std::string(kSpan)},
                      {"X-B3-ParentSpanId", "e457b5a2e4d86bd1"},
                      {"X-B3-Sampled", "0"}});
    SpanContext span = propagate(h, rng, 100);
    CHECK_FALSE(span.sampled);
    CHECK(h.size() == 4);
    CHECK(get(h, "x-b3-traceid") == "a3ce929d0e0e4736");
    CHECK(get(h, "x-b3-spanid") == span_id_hex(span.span_id));
    CHECK(get(h, "x-b3-parentspanid") == std::string(kSpan));
    CHECK(get(h, "x-b3-sampled") == "0");
    CHECK_FALSE(h.has("traceparent"));
  }
  SUBCASE("B3 debug out as x-b3-flags, without x-b3-sampled") {
    auto h = headers({{"x-b3-traceid", std::string(kTrace)},
                      {"x-b3-spanid", std::string(kSpan)},
                      {"x-b3-flags", "1"}});
    SpanContext span = propagate(h, rng, 0);
    CHECK(span.sampled);
    CHECK(span.debug);
    CHECK(get(h, "x-b3-flags") == "1");
    CHECK_FALSE(h.has("x-b3-sampled"));
    CHECK(extract(h).debug);
  }
  SUBCASE("b3 single in, b3 single out") {
    auto h = headers({{"B3", std::string(kTrace) + "-" + std::string(kSpan) + "-1"}});
    SpanContext span = propagate(h, rng, 0);
    CHECK(h.size() == 1);
    CHECK(get(h, "b3") ==
          std::string(kTrace) + "-" + span_id_hex(span.span_id) + "-1-" + std::string(kSpan));
    B3Context back;
    REQUIRE(parse_b3_single(get(h, "b3"), back));
    CHECK(back.trace_id == kTraceId);
    CHECK(back.parent_span_id == kSpanId);
  }
  SUBCASE("b3: 0 alone: a new trace, not sampled, written as b3") {
    auto h = headers({{"b3", "0"}});
    SpanContext span = propagate(h, rng, 100);
    CHECK_FALSE(span.sampled);
    CHECK(span.parent_id == 0);
    CHECK(span.trace_id.high != 0);
    CHECK(get(h, "b3") == trace_id_hex(span.trace_id) + "-" + span_id_hex(span.span_id) + "-0");
  }
  SUBCASE("nothing in: a new 128-bit trace in traceparent and x-b3-*") {
    auto h = headers({{"host", "productpage"}});
    SpanContext span = propagate(h, rng, 100);
    CHECK(span.sampled);
    CHECK(span.parent_id == 0);
    CHECK(span.trace_id.high != 0);
    CHECK(get(h, "traceparent") == format_traceparent(span));
    CHECK(get(h, "x-b3-traceid") == trace_id_hex(span.trace_id));
    CHECK(get(h, "x-b3-traceid").size() == 32);
    CHECK(get(h, "x-b3-spanid") == span_id_hex(span.span_id));
    CHECK(get(h, "x-b3-sampled") == "1");
    CHECK_FALSE(h.has("x-b3-parentspanid"));
    CHECK_FALSE(h.has("b3"));
    auto next = extract(h);
    CHECK(next.formats == (kFormatW3c | kFormatB3Multi));
    CHECK(next.trace_id == span.trace_id);
    CHECK(next.span_id == span.span_id);
  }
  SUBCASE("malformed headers in: replaced by a new trace, never kept") {
    auto h = headers({{"traceparent", "00-zz-zz-01"},
                      {"x-b3-traceid", "nothex"},
                      {"x-b3-spanid", "nothex"},
                      {"b3", "-"},
                      {"tracestate", "a=1"}});
    SpanContext span = propagate(h, rng, 100);
    CHECK(h.size() == 4);  // traceparent + x-b3-traceid, spanid, sampled
    CHECK(get(h, "traceparent") == format_traceparent(span));
    CHECK_FALSE(h.has("tracestate"));
    CHECK_FALSE(h.has("b3"));
  }
  SUBCASE("64-bit B3 id becomes a zero-padded traceparent") {
    auto in = extract(
        headers({{"x-b3-traceid", "a3ce929d0e0e4736"}, {"x-b3-spanid", std::string(kSpan)}}));
    SpanContext span = child_of(in, rng, 100);
    span.formats = kFormatW3c;
    http::HeaderMap h;
    inject(span, h);
    CHECK(get(h, "traceparent").substr(0, 35) == "00-0000000000000000a3ce929d0e0e4736");
  }
}

TEST_CASE("trace: the received trace headers are rewritten where they stand") {
  Random rng(11);
  std::string tp = "00-" + std::string(kTrace) + "-" + std::string(kSpan) + "-01";
  // Names as a client may write them, other headers between and after, repeats.
  auto h = headers({{"host", "reviews"},
                    {"X-B3-TraceId", std::string(kTrace)},
                    {"user-agent", "curl"},
                    {"TraceParent", tp},
                    {"X-B3-SpanId", std::string(kSpan)},
                    {"tracestate", "a=1"},
                    {"x-b3-spanid", "e457b5a2e4d86bd1"},
                    {"X-B3-Sampled", "1"},
                    {"tracestate", "b=2"},
                    {"accept", "*/*"}});
  SpanContext span = propagate(h, rng, 0);
  CHECK(span.trace_id == kTraceId);
  CHECK(span.parent_id == kSpanId);  // the first x-b3-spanid
  std::vector<std::pair<std::string, std::string>> got;
  for (const http::HeaderEntry& e : h)
    got.emplace_back(e.name, e.value);
  std::string child = span_id_hex(span.span_id);
  std::vector<std::pair<std::string, std::string>> want = {
      {"host", "reviews"},
      {"x-b3-traceid", std::string(kTrace)},
      {"user-agent", "curl"},
      {"traceparent", "00-" + std::string(kTrace) + "-" + child + "-01"},
      {"x-b3-spanid", child},
      {"tracestate", "a=1,b=2"},
      {"x-b3-sampled", "1"},
      {"accept", "*/*"},
      {"x-b3-parentspanid", std::string(kSpan)},
  };
  CHECK(got == want);
  // Once more, as the next hop: nothing left over from this one.
  SpanContext next = propagate(h, rng, 0);
  CHECK(next.parent_id == span.span_id);
  CHECK(h.size() == want.size());
  CHECK(h.count("x-b3-spanid") == 1);
  CHECK(get(h, "x-b3-parentspanid") == child);
}

TEST_CASE(
    "trace: between two meshbox proxies the context is one header, and the app gets the rest") {
  Random rng(5);
  // The app (or an outside client) sent these; the first proxy's next hop is a proxy.
  std::string tp = "00-" + std::string(kTrace) + "-" + std::string(kSpan) + "-01";
  struct Case {
    const char* what;
    std::vector<std::pair<std::string, std::string>> in;
  };
  const Case cases[] = {
      {"nothing", {{"host", "web"}}},
      {"W3C with tracestate", {{"traceparent", tp}, {"tracestate", "a=1,b=2"}}},
      {"B3 multi, 64-bit id, not sampled",
       {{"x-b3-traceid", "a3ce929d0e0e4736"},
        {"x-b3-spanid", std::string(kSpan)},
        {"x-b3-sampled", "0"}}},
      {"b3 single, debug", {{"b3", std::string(kTrace) + "-" + std::string(kSpan) + "-d"}}},
      {"W3C and B3 multi",
       {{"traceparent", tp},
        {"x-b3-traceid", std::string(kTrace)},
        {"x-b3-spanid", std::string(kSpan)},
        {"x-b3-sampled", "1"}}},
  };
  for (const Case& c : cases) {
    CAPTURE(c.what);
    // Through two proxies in standard headers, and through the same two with the proxy
    // header between them: the app must get the same headers (the same random draws make the
    // same ids).
    auto standard = headers(c.in);
    Random a(99);
    SpanContext first = propagate(standard, a, 50);
    const http::HeaderMap after_first = standard;
    SpanContext second = propagate(standard, a, 50);
    auto compact = headers(c.in);
    Random b(99);
    SpanContext first_c = propagate(compact, b, 50, true);
    // Between the proxies: the one header (and tracestate), nothing else of the trace's.
    CHECK(compact.count(kProxyHeader) == 1);
    CHECK_FALSE(compact.has("traceparent"));
    CHECK_FALSE(compact.has("x-b3-traceid"));
    CHECK_FALSE(compact.has("x-b3-spanid"));
    CHECK_FALSE(compact.has("x-b3-sampled"));
    CHECK_FALSE(compact.has("b3"));
    CHECK(extract(compact).trace_id == first_c.trace_id);
    // A next hop that does not trace turns it back into what the first proxy would have sent.
    auto sorted = [](const http::HeaderMap& h) {
      std::vector<std::pair<std::string, std::string>> v;
      for (const http::HeaderEntry& e : h)
        v.emplace_back(e.name, e.value);
      std::sort(v.begin(), v.end());
      return v;
    };
    http::HeaderMap restored = compact;
    CHECK(restore_standard(restored));
    CHECK(sorted(restored) == sorted(after_first));
    SpanContext second_c = propagate(compact, b, 50);
    CHECK(first_c.span_id == first.span_id);
    CHECK(second_c.trace_id == second.trace_id);
    CHECK(second_c.span_id == second.span_id);
    CHECK(second_c.parent_id == second.parent_id);
    CHECK(second_c.sampled == second.sampled);
    CHECK_FALSE(compact.has(kProxyHeader));  // never reaches the app
    CHECK(sorted(compact) == sorted(standard));
  }
  // A malformed proxy header is ignored: the standard headers beside it stand.
  for (const char* bad : {"", "9-zz",
                          "0-"
                          "4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
                          "3"
                          "4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
                          "3-0", "x-1"}) {
    CAPTURE(bad);
    auto h = headers({{std::string(kProxyHeader), bad}, {"traceparent", tp}});
    auto in = extract(h);
    CHECK(in.formats == kFormatW3c);
    CHECK(in.span_id == kSpanId);
    http::HeaderMap r = h;
    propagate(h, rng, 0);
    CHECK_FALSE(h.has(kProxyHeader));
    CHECK(restore_standard(r));
    CHECK_FALSE(r.has(kProxyHeader));
    CHECK(get(r, "traceparent") == tp);  // untouched
  }
  auto none = headers({{"host", "web"}, {"traceparent", tp}});
  CHECK_FALSE(restore_standard(none));
  CHECK(none.size() == 2);
}

TEST_CASE("trace: join shares the caller's span id") {
  Random rng(7);
  auto in = extract(headers({{"x-b3-traceid", std::string(kTrace)},
                             {"x-b3-spanid", std::string(kSpan)},
                             {"x-b3-parentspanid", "e457b5a2e4d86bd1"},
                             {"x-b3-sampled", "1"}}));
  SpanContext s = join(in, rng, 0);
  CHECK(s.shared);
  CHECK(s.span_id == kSpanId);
  CHECK(s.parent_id == 0xe457b5a2e4d86bd1ULL);
  CHECK(s.sampled);
  SpanContext fresh = join(IncomingContext{}, rng, 100);
  CHECK_FALSE(fresh.shared);
  CHECK(fresh.span_id != 0);
  CHECK(fresh.parent_id == 0);
}

TEST_CASE("trace: sampling rates over many draws") {
  Random rng(12345);
  constexpr int kDraws = 200'000;
  for (double pct : {0.0, 1.0, 1.5, 10.0, 50.0, 99.0, 100.0}) {
    int yes = 0;
    for (int i = 0; i < kDraws; ++i)
      yes += decide_sampling(Sampled::Undecided, false, pct, rng);
    double got = 100.0 * yes / kDraws;
    CAPTURE(pct);
    CAPTURE(got);
    // Binomial standard deviation at 50 % over 200k draws is 0.11 %; 0.5 points is > 4 sigma.
    CHECK(got >= pct - 0.5);
    CHECK(got <= pct + 0.5);
    if (pct == 0) CHECK(yes == 0);
    if (pct == 100) CHECK(yes == kDraws);
  }
  // The caller's decision wins over the rate; debug always samples.
  CHECK(decide_sampling(Sampled::Yes, false, 0, rng));
  CHECK_FALSE(decide_sampling(Sampled::No, false, 100, rng));
  CHECK(decide_sampling(Sampled::No, true, 0, rng));
  CHECK_FALSE(decide_sampling(Sampled::Undecided, false, -3, rng));
  CHECK(decide_sampling(Sampled::Undecided, false, 250, rng));
}

TEST_CASE("trace: fresh ids are nonzero and differ") {
  Random rng(1);
  SpanContext a = child_of(IncomingContext{}, rng, 0);
  SpanContext b = child_of(IncomingContext{}, rng, 0);
  CHECK_FALSE(a.trace_id == b.trace_id);
  CHECK(a.span_id != b.span_id);
  CHECK(a.trace_id.high != 0);
}

TEST_CASE("trace: random header values never crash extract()") {
  Random rng(99);
  const char alphabet[] = "0123456789abcdefABCDEF-dxz ";
  const char* names[] = {"traceparent", "tracestate",   "b3",         "x-b3-traceid",
                         "x-b3-spanid", "x-b3-sampled", "x-b3-flags", "x-b3-parentspanid"};
  for (int i = 0; i < 5000; ++i) {
    http::HeaderMap h;
    int n = static_cast<int>(rng.below(4)) + 1;
    for (int k = 0; k < n; ++k) {
      std::string v;
      size_t len = rng.below(70);
      for (size_t j = 0; j < len; ++j)
        v.push_back(alphabet[rng.below(sizeof(alphabet) - 1)]);
      h.add(names[rng.below(8)], v);
    }
    SpanContext s = propagate(h, rng, 50);
    CHECK(s.span_id != 0);
    CHECK_FALSE(s.trace_id.empty());
    // What was written reads back as the same context.
    auto back = extract(h);
    CHECK(back.trace_id == s.trace_id);
    CHECK(back.span_id == s.span_id);
  }
}

}  // namespace
}  // namespace meshbox::trace
