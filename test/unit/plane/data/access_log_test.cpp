// Tests for access logs: format strings parsed (every operator, and the errors a config can
// make), records formatted as text and JSON (escaping of hostile values, unknown values as
// "-"/null, typed numbers), and the AccessLogger writing through FileAppender on a real loop:
// lines arrive whole, a full buffer drops and counts, destruction writes out what is left,
// a file moved away (logrotate) is reopened by path.
#include "plane/data/access_log.h"

#include <doctest/doctest.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>

#include "core/base/json.h"
#include "plane/config/load.h"
#include "test/support/files.h"
#include "test/support/test_loop.h"

namespace meshbox::data {
namespace {

using config::LogEncoding;
using config::LogOp;
using config::LogTemplate;

config::AccessLogSpec text_spec(std::string_view format, std::string path = "/dev/null") {
  config::AccessLogSpec spec;
  auto err = config::make_access_log_spec(std::move(path), LogEncoding::Text, format, spec);
  REQUIRE_MESSAGE(!err, (err ? err->message : ""));
  return spec;
}

config::AccessLogSpec json_spec(std::string_view format = "", std::string path = "/dev/null") {
  config::AccessLogSpec spec;
  auto err = config::make_access_log_spec(std::move(path), LogEncoding::Json, format, spec);
  REQUIRE_MESSAGE(!err, (err ? err->message : ""));
  return spec;
}

// A gateway's request to web's sidecar, all fields set.
struct Sample {
  ListenerSpec listener;
  ClusterSpec cluster;
  RequestRecord r;
  Sample() {
    listener.name = "0.0.0.0_8080";
    listener.address = *loop::Address::parse("127.0.0.1:8080");
    listener.reporter = ListenerSpec::Reporter::Source;
    cluster.name = "outbound|8000||web.default.svc.cluster.local";
    cluster.service_host = "web.default.svc.cluster.local";
    r.listener = &listener;
    r.start_unix_us = 1'700'000'000'123'456;  // 2023-11-14T22:13:20.123456Z
    r.duration_us = 12'345;
    r.response_start_us = 7'999;
    r.method = "GET";
    r.path = "http://web:8000/status/200?x=1";  // absolute-form, as an app behind HTTP_PROXY
    r.authority = "web:8000";
    r.protocol = "HTTP/1.1";
    r.request_id = "rid-1";
    r.user_agent = "curl/8";
    r.forwarded_for = "10.0.0.1";
    r.status = 200;
    r.request_body_bytes = 5;
    r.response_body_bytes = 1234;
    r.route_name = "default/web/http[0]";
    r.cluster = &cluster;
    r.upstream_host = "127.0.0.1:41000";
    r.downstream_remote = "127.0.0.1:50000";
    r.source = {"edge", "default", "edge", "", "spiffe://cluster.local/ns/default/sa/edge"};
    r.destination = {"web", "default", "web", "v1", "spiffe://cluster.local/ns/default/sa/web"};
    r.mtls = true;
  }
};

// A TCP proxy connection through the sample's listener and cluster.
ConnectionRecord tcp_record(const Sample& s) {
  ConnectionRecord c;
  c.listener = &s.listener;
  c.start_unix_us = s.r.start_unix_us;
  c.duration_us = 2'000'000;
  c.received_bytes = 10;
  c.sent_bytes = 20;
  c.cluster = &s.cluster;
  c.upstream_host = "127.0.0.1:5432";
  c.downstream_remote = "[::1]:6000";
  c.flags.add(ResponseFlag::UpstreamConnectionTermination);
  return c;
}

std::string line(const config::AccessLogSpec& spec, const RequestRecord& r) {
  AccessLogFormatter f;
  std::string out;
  f.format(spec, r, out);
  return out;
}

}  // namespace

TEST_CASE("access log format: every operator, in text") {
  Sample s;
  std::string out =
      line(text_spec("%START_TIME%|%REQ(:METHOD)%|%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%|%PROTOCOL%|"
                     "%RESPONSE_CODE%|%RESPONSE_FLAGS%|%BYTES_RECEIVED%|%BYTES_SENT%|%DURATION%|"
                     "%RESPONSE_DURATION%|%UPSTREAM_HOST%|%UPSTREAM_CLUSTER%|"
                     "%DOWNSTREAM_LOCAL_ADDRESS%|%DOWNSTREAM_REMOTE_ADDRESS%|"
                     "%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%|%ROUTE_NAME%|%REQ(:AUTHORITY)%|"
                     "%REQ(USER-AGENT)%|%REQ(X-REQUEST-ID)%|%REQ(X-FORWARDED-FOR)%|%RESP(SERVER)%|"
                     "%UPSTREAM_PEER_URI_SAN%|%DOWNSTREAM_PEER_URI_SAN%|%RESPONSE_CODE_DETAILS%|"
                     "%UPSTREAM_LOCAL_ADDRESS%|%REQUESTED_SERVER_NAME%|%REPORTER%|"
                     "%SOURCE_WORKLOAD%.%SOURCE_NAMESPACE%.%SOURCE_APP%.%SOURCE_VERSION%|"
                     "%DESTINATION_WORKLOAD%.%DESTINATION_NAMESPACE%.%DESTINATION_APP%."
                     "%DESTINATION_VERSION%|%DESTINATION_SERVICE%|%SOURCE_PRINCIPAL%|"
                     "%DESTINATION_PRINCIPAL%|100%%"),
           s.r);
  CHECK(out ==
        "2023-11-14T22:13:20.123Z|GET|/status/200?x=1|HTTP/1.1|200|-|5|1234|12|7|"
        "127.0.0.1:41000|outbound|8000||web.default.svc.cluster.local|127.0.0.1:8080|"
        "127.0.0.1:50000|127.0.0.1|default/web/http[0]|web:8000|curl/8|rid-1|10.0.0.1|-|"
        "spiffe://cluster.local/ns/default/sa/web|-|-|-|-|source|edge.default.edge.-|"
        "web.default.web.v1|web.default.svc.cluster.local|"
        "spiffe://cluster.local/ns/default/sa/edge|spiffe://cluster.local/ns/default/sa/web|"
        "100%\n");

  // The other side: the inbound sidecar knows its caller's certificate.
  s.listener.reporter = ListenerSpec::Reporter::Destination;
  CHECK(line(text_spec("%REPORTER% %DOWNSTREAM_PEER_URI_SAN% %UPSTREAM_PEER_URI_SAN%"), s.r) ==
        "destination spiffe://cluster.local/ns/default/sa/edge -\n");
  s.listener.reporter = ListenerSpec::Reporter::None;
  CHECK(line(text_spec("%REPORTER%"), s.r) == "-\n");
}

TEST_CASE("access log format: START_TIME formats, lengths, alternatives") {
  Sample s;
  CHECK(line(text_spec("%START_TIME(%Y/%m/%d %H:%M:%S.%3f %s %6f %f %%)%"), s.r) ==
        "2023/11/14 22:13:20.123 1700000000 123456 123456000 %\n");
  CHECK(line(text_spec("%REQ(USER-AGENT):4% %REQ(X-MISSING?X-REQUEST-ID):3% %REQ(X-MISSING)%"),
             s.r) == "curl rid -\n");
  // An origin-form path is kept as is; a bare authority-form one too.
  s.r.path = "/a?b";
  CHECK(line(text_spec("%REQ(:PATH)%"), s.r) == "/a?b\n");
  s.r.path = "http://web";
  CHECK(line(text_spec("%REQ(:PATH)%"), s.r) == "/\n");
}

TEST_CASE("access log format: the defaults parse; Istio's text line") {
  Sample s;
  s.r.flags.add(ResponseFlag::UpstreamConnectFailure);
  s.r.flags.add(ResponseFlag::NoRouteFound);
  std::string out = line(text_spec(""), s.r);
  CHECK(out ==
        "[2023-11-14T22:13:20.123Z] \"GET /status/200?x=1 HTTP/1.1\" 200 UF,NR - - \"-\" 5 1234 "
        "12 - \"10.0.0.1\" \"curl/8\" \"rid-1\" \"web:8000\" \"127.0.0.1:41000\" "
        "outbound|8000||web.default.svc.cluster.local - 127.0.0.1:8080 127.0.0.1:50000 - "
        "default/web/http[0]\n");
}

TEST_CASE("access log format: hostile values never break a line") {
  Sample s;
  s.r.user_agent = "a\nb\r\"c\\\x7f\x01";
  s.r.request_id = "\xff\xfe";
  std::string text = line(text_spec("%REQ(USER-AGENT)% %REQ(X-REQUEST-ID)%"), s.r);
  CHECK(text == "a\\x0ab\\x0d\"c\\\\x7f\\x01 \xff\xfe\n");
  CHECK(text.find('\n') == text.size() - 1);

  std::string json = line(json_spec(), s.r);
  CHECK(json.find('\n') == json.size() - 1);
  auto doc = json::parse(json);
  REQUIRE(doc);
  CHECK(doc->get("user_agent")->as_string() == "a\nb\r\"c\\\x7f\x01");
  CHECK(doc->get("request_id")->as_string() == "\xEF\xBF\xBD\xEF\xBF\xBD");  // U+FFFD twice
}

TEST_CASE("access log format: JSON, default fields, types, nulls") {
  Sample s;
  auto doc = json::parse(line(json_spec(), s.r));
  REQUIRE(doc);
  CHECK(doc->get("start_time")->as_string() == "2023-11-14T22:13:20.123Z");
  CHECK(doc->get("method")->as_string() == "GET");
  CHECK(doc->get("path")->as_string() == "/status/200?x=1");
  CHECK(doc->get("response_code")->as_int() == 200);
  CHECK(doc->get("response_flags")->as_string() == "-");
  CHECK(doc->get("bytes_received")->as_int() == 5);
  CHECK(doc->get("bytes_sent")->as_int() == 1234);
  CHECK(doc->get("duration")->as_int() == 12);
  CHECK(doc->get("upstream_service_time")->as_int() == 7);
  CHECK(doc->get("request_id")->as_string() == "rid-1");
  CHECK(doc->get("upstream_cluster")->as_string() ==
        "outbound|8000||web.default.svc.cluster.local");
  CHECK(doc->get("reporter")->as_string() == "source");
  CHECK(doc->get("source_workload")->as_string() == "edge");
  CHECK(doc->get("destination_principal")->as_string() ==
        "spiffe://cluster.local/ns/default/sa/web");
  // Unknown values are null.
  s.r.route_name = "";
  s.r.user_agent = "";
  s.r.cluster = nullptr;
  s.r.response_start_us = 0;
  doc = json::parse(line(json_spec(), s.r));
  REQUIRE(doc);
  CHECK(doc->get("route_name")->is_null());
  CHECK(doc->get("user_agent")->is_null());
  CHECK(doc->get("upstream_cluster")->is_null());
  CHECK(doc->get("upstream_service_time")->is_null());

  // A JSON format of the config's own: one operator alone is typed, anything else a string.
  doc = json::parse(line(json_spec(R"({"code": "%RESPONSE_CODE%", "text": "code %RESPONSE_CODE%",
      "ua": "%REQ(USER-AGENT)%", "when": "%START_TIME(%s)%", "id": "%REQ(X-REQUEST-ID):3%"})"),
                         s.r));
  REQUIRE(doc);
  CHECK(doc->object.size() == 5);
  CHECK(doc->object[0].first == "code");  // in the config's order
  CHECK(doc->get("code")->as_int() == 200);
  CHECK(doc->get("text")->as_string() == "code 200");
  CHECK(doc->get("ua")->is_null());
  CHECK(doc->get("when")->as_string() == "1700000000");
  CHECK(doc->get("id")->as_string() == "rid");
}

TEST_CASE("access log format: JSON members computed apart; listeners taking turns") {
  Sample s;
  s.r.flags.add(ResponseFlag::UpstreamConnectFailure);
  s.r.flags.add(ResponseFlag::NoRouteFound);
  // Each member's computed text is its own: the second flags member does not overwrite the
  // first one's before the line is written.
  config::AccessLogSpec spec = json_spec(
      R"({"f": "%RESPONSE_FLAGS%", "g": "[%RESPONSE_FLAGS%] %RESPONSE_CODE%", "n": "%BYTES_SENT%",
          "local": "%DOWNSTREAM_LOCAL_ADDRESS%", "ua": "%REQ(USER-AGENT):2%"})");
  CHECK(line(spec, s.r) ==
        R"({"f":"UF,NR","g":"[UF,NR] 200","n":1234,"local":"127.0.0.1:8080","ua":"cu"})"
        "\n");
  // More listeners than the formatter keeps addresses of, in turns: each line has its own.
  ListenerSpec listeners[6];
  AccessLogFormatter f;
  for (int round = 0; round < 3; ++round) {
    for (int i = 0; i < 6; ++i) {
      listeners[i].address = *loop::Address::parse(fmt::format("127.0.0.{}:{}", i + 1, 9000 + i));
      s.r.listener = &listeners[i];
      std::string out;
      f.format(json_spec(R"({"local": "%DOWNSTREAM_LOCAL_ADDRESS%"})"), s.r, out);
      CHECK(out == fmt::format("{{\"local\":\"127.0.0.{}:{}\"}}\n", i + 1, 9000 + i));
    }
  }
}

TEST_CASE("access log format: JSON member names are escaped once, in the spec") {
  Sample s;
  config::AccessLogSpec keyed =
      json_spec(R"({"a\"b": "%RESPONSE_CODE%", "at": "%START_TIME%", "m": "%REQ(:METHOD)%"})");
  REQUIRE(keyed.json_keys.size() == 3);
  CHECK(keyed.json_keys[0] == R"({"a\"b":)");
  CHECK(keyed.json_keys[1] == R"(,"at":)");
  CHECK(line(keyed, s.r) == R"({"a\"b":200,"at":"2023-11-14T22:13:20.123Z","m":"GET"})"
                            "\n");
  // A spec without them (built by hand) gives the same lines, the default fields included.
  for (config::AccessLogSpec spec : {keyed, json_spec()}) {
    config::AccessLogSpec bare = spec;
    bare.json_keys.clear();
    CHECK(line(bare, s.r) == line(spec, s.r));
  }
}

TEST_CASE("access log format: a TCP connection") {
  Sample s;
  ConnectionRecord c = tcp_record(s);
  AccessLogFormatter f;
  std::string out;
  f.format(text_spec("%PROTOCOL% %RESPONSE_CODE% %REQ(:METHOD)% %BYTES_RECEIVED% %BYTES_SENT% "
                     "%DURATION% %RESPONSE_FLAGS% %DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%"),
           c, out);
  CHECK(out == "- - - 10 20 2000 UC ::1\n");
  out.clear();
  f.format(json_spec(), c, out);
  auto doc = json::parse(out);
  REQUIRE(doc);
  CHECK(doc->get("method")->is_null());
  CHECK(doc->get("response_code")->is_null());
  CHECK(doc->get("bytes_sent")->as_int() == 20);
}

TEST_CASE("access log format: the default JSON line is the same bytes as its fields written") {
  // The default fields are written by a path of their own: it must agree with the generic
  // one (the same spec, not marked default) for every kind of record.
  config::AccessLogSpec fast = json_spec();
  REQUIRE(fast.default_json);
  config::AccessLogSpec generic = fast;
  generic.default_json = false;
  // One formatter for every record, as a worker has: what it keeps from earlier lines (the
  // identity members of the last few) must never leak into a later one.
  AccessLogFormatter a;
  auto same = [&](const auto& record) {
    AccessLogFormatter b;
    std::string x, y;
    a.format(fast, record, x);
    b.format(generic, record, y);
    CHECK(x == y);
    REQUIRE(json::parse(x));
  };
  Sample s;
  same(s.r);
  // Unknown values, flags, another reporter, no response.
  s.r.route_name = s.r.user_agent = s.r.forwarded_for = s.r.request_id = "";
  s.r.cluster = nullptr;
  s.r.response_start_us = 0;
  s.r.status = 0;
  s.r.flags.add(ResponseFlag::UpstreamConnectFailure);
  s.r.flags.add(ResponseFlag::UpstreamRequestTimeout);
  s.listener.reporter = ListenerSpec::Reporter::Destination;
  s.r.upstream_host = "";
  same(s.r);
  s.listener.reporter = ListenerSpec::Reporter::None;  // a plain proxy
  s.r.source = {};
  s.r.destination = {};
  same(s.r);
  // Hostile text wherever a client or a peer can put it.
  Sample h;
  h.r.user_agent = "a\nb\r\"c\\\x7f\x01";
  h.r.request_id = "\xff\xfe";
  h.r.path = "/x?\"y\"=\t";
  h.r.authority = "we\"b";
  h.r.forwarded_for = "1.2.3.4\x1b[0m";
  h.r.method = "GE\"T";
  h.r.source = {"ed\"ge", "de\\fault", "", "", "spiffe://x/\x00"};
  h.r.route_name = "r\"1";
  h.cluster.name = "c\\1";
  h.cluster.service_host = "s\n1";
  same(h.r);
  // A TCP connection.
  ConnectionRecord c = tcp_record(s);
  same(c);
  // The earlier records again, in turns, then a peer's name changed in place: the same
  // buffer, another value.
  Sample t;
  std::string workload = "reviews-v1";
  t.r.source.workload = workload;
  for (int i = 0; i < 3; ++i) {
    same(t.r);
    same(h.r);
    same(s.r);
    same(c);
  }
  workload[8] = 'v';
  workload[9] = '2';
  same(t.r);
  // A gateway's many clients: only the client's address differs from one line to the next.
  const std::string clients[] = {"10.0.0.1", "10.0.0.2", "10.0.0.3",
                                 "10.0.0.4", "10.0.0.5", "192.168.1.10"};
  for (int i = 0; i < 2; ++i) {
    for (const std::string& client : clients) {
      t.r.downstream_remote = client;
      same(t.r);
    }
  }
  std::string line;
  a.format(fast, t.r, line);
  CHECK(line.find(R"("source_workload":"reviews-v2")") != std::string::npos);
  // A custom format is never taken for the default one.
  CHECK_FALSE(json_spec(R"({"code": "%RESPONSE_CODE%"})").default_json);
}

TEST_CASE("access log format: bad format strings are errors with their offset") {
  struct Bad {
    std::string_view format;
    size_t offset;
    std::string_view message;
  };
  for (const Bad& b : {
           Bad{"x %FOO% y", 2, "unknown command operator %FOO%"},
           Bad{"%START_TIME", 0, "never closed"},
           Bad{"%", 0, "never closed"},
           Bad{"a % b", 2, "expected a command operator"},
           Bad{"%REQ%", 0, "needs an argument"},
           Bad{"%REQ()%", 0, "expected a header name"},
           Bad{"%REQ(a b)%", 0, "expected a header name"},
           Bad{"%REQ(A?)%", 0, "expected a header name"},
           Bad{"%RESP(A?B)%", 0, "expected a header name"},
           Bad{"%REQ(A%", 0, "no ')'"},
           Bad{"%DURATION(x)%", 0, "takes no argument"},
           Bad{"%REQ(A):0%", 0, "N must be a length"},
           Bad{"%REQ(A):x%", 0, "N must be a length"},
           Bad{"%REQ(A):99999999999%", 0, "N must be a length"},
           Bad{"%REQ(A)x", 0, "expected '%' to close"},
           Bad{"ok %DURATION%%BYTES_SENT", 13, "never closed"},
       }) {
    CAPTURE(b.format);
    LogTemplate t;
    auto err = config::parse_log_template(b.format, t);
    REQUIRE(err);
    CHECK(err->offset == b.offset);
    CHECK(err->message.find(b.message) != std::string::npos);
  }
  config::AccessLogSpec spec;
  for (std::string_view bad : {"[1]", "{}", "{\"a\": 1}", "{\"a\": \"%NOPE%\"}", "not json"}) {
    CAPTURE(bad);
    CHECK(config::make_access_log_spec("/dev/null", LogEncoding::Json, bad, spec));
  }
  // Literals merge; "%%" is one '%'; a text format gets its newline.
  LogTemplate t;
  REQUIRE_FALSE(config::parse_log_template("a%%b %DURATION% c", t));
  REQUIRE(t.size() == 3);
  CHECK(t[0].text == "a%b ");
  CHECK(t[1].op == LogOp::Duration);
  CHECK(text_spec("x").line.back().text == "x\n");
}

TEST_CASE("access log config: JSON by default; a bad format is an error at its position") {
  config::Loaded ok = config::load_string("[mesh]\naccess_log_file = \"/dev/stdout\"\n");
  CHECK(ok.ok());
  CHECK(ok.config.mesh.access_log_encoding == config::AccessLogEncoding::Json);

  config::Loaded bad = config::load_string(
      "[mesh]\naccess_log_file = \"/dev/stdout\"\naccess_log_encoding = \"text\"\n"
      "access_log_format = \"%START_TIME% %NOPE%\"\n\n"
      "[[service]]\nname = \"web\"\nport = 80\n\n"
      "[[workload]]\nservice = \"web\"\naddress = \"127.0.0.1\"\nport = 81\n"
      "access_log = \"yes\"\n",
      "mesh.toml");
  CHECK_FALSE(bad.ok());
  std::string all;
  for (const auto& f : bad.findings)
    all += config::format(f) + "\n";
  INFO(all);
  CHECK(all.find("mesh.toml:4:21: error: mesh: access_log_format: unknown command operator %NOPE% "
                 "(at character 14 of the format)") != std::string::npos);
  CHECK(all.find("mesh.toml:14:14: error: workload") != std::string::npos);

  // JSON: the format is an object of name → format string.
  bad = config::load_string(
      "[mesh]\naccess_log_format = '{\"a\": \"%BYTES_SENT%\", \"b\": \"%REQ(x\"}'\n");
  CHECK_FALSE(bad.ok());
}

TEST_CASE("access logger: lines reach the file whole; full buffer drops; rotation reopens") {
  test::TempDir dir;
  std::string path = dir.file("access.log");
  Sample s;
  s.listener.access_log =
      std::make_shared<config::AccessLogSpec>(text_spec("%REQ(X-REQUEST-ID)%", path));
  loop::Loop loop;
  auto read_lines = [&](const std::string& p) {
    std::string all = test::read_file(p).value_or("");
    return static_cast<size_t>(std::count(all.begin(), all.end(), '\n'));
  };
  {
    // A 64-byte buffer: "rid-1\n" is 6 bytes, so the 11th line waiting is dropped.
    loop::FileAppender::Options small{
        .max_buffer = 64, .write_at = 1 << 20, .flush_delay_ms = 20, .reopen_check_ms = 0};
    AccessLogger logger(loop, nullptr, small);
    for (int i = 0; i < 12; ++i)
      logger.on_request(s.r);
    CHECK(logger.lines() == 12);
    CHECK(logger.dropped() == 2);
    REQUIRE(loop::run_until(
        loop, [&] { return read_lines(path) == 10; }, std::chrono::seconds(5)));
    std::string ten;
    for (int i = 0; i < 10; ++i)
      ten += "rid-1\n";
    CHECK(test::read_file(path).value_or("") == ten);

    // logrotate: the file is moved away; the next write notices and makes a new one.
    REQUIRE(::rename(path.c_str(), (path + ".1").c_str()) == 0);
    logger.on_request(s.r);
    REQUIRE(loop::run_until(
        loop, [&] { return read_lines(path) == 1; }, std::chrono::seconds(5)));
    CHECK(read_lines(path + ".1") == 10);

    // No log for a listener without a spec.
    ListenerSpec off = s.listener;
    off.access_log = {};
    RequestRecord r = s.r;
    r.listener = &off;
    logger.on_request(r);
    CHECK(logger.lines() == 13);

    // Stopping writes out what waits (the flush delay has not passed).
    for (int i = 0; i < 3; ++i)
      logger.on_request(s.r);
    logger.on_stop();
    CHECK(loop::run_until(
        loop, [&] { return read_lines(path) == 4; }, std::chrono::seconds(5)));
    // A line after the stop is written at once.
    logger.on_request(s.r);
    CHECK(loop::run_until(
        loop, [&] { return read_lines(path) == 5; }, std::chrono::seconds(5)));
  }
  // Every handle closed, every write done.
  CHECK(loop.close().is_ok());
}

TEST_CASE("access logger: a file that cannot be opened drops and counts, never blocks") {
  test::TempDir dir;
  Sample s;
  s.listener.access_log =
      std::make_shared<config::AccessLogSpec>(text_spec("x", dir.file("no/such/dir/log")));
  loop::Loop loop;
  {
    loop::FileAppender::Options fast{.flush_delay_ms = 1};
    AccessLogger logger(loop, nullptr, fast);
    logger.on_request(s.r);
    logger.on_request(s.r);
    REQUIRE(loop::run_until(
        loop, [&] { return logger.dropped() == 2; }, std::chrono::seconds(5)));
    logger.on_stop();
  }
  CHECK(loop.close().is_ok());
}

}  // namespace meshbox::data
