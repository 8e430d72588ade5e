// Distributed tracing through meshbox's proxies on a real `meshbox run`: Bookinfo's
// productpage, details, reviews v2 and ratings behind a gateway, traced at 100 % to a Zipkin
// collector the test runs (python3's http.server: each POSTed batch becomes a line of a
// file). One request through the gateway makes one trace whose spans nest, hop by hop:
// gateway (client) → productpage inbound (server) → productpage outbound (client) → reviews
// inbound → reviews outbound → ratings inbound. An incoming W3C traceparent or B3 single
// header is continued, an incoming "not sampled" is honoured (no span), x-request-id is kept
// and tagged, and a collector that goes away fails no request (its spans are counted lost).
// One mesh for every check (blocks, not SUBCASEs: doctest would start it once per subcase);
// `meshbox validate` checks the config's errors.
#include <doctest/doctest.h>
#include <signal.h>

#include <fstream>
#include <map>
#include <optional>
#include <sstream>

#include "test/support/deadline.h"
#include "test/support/files.h"
#include "test/support/http_response.h"
#include "test/support/json.h"
#include "test/support/mesh.h"
#include "test/support/meshbox.h"
#include "test/support/process.h"

namespace meshbox::test {
namespace {

constexpr auto kTimeout = 10s;

std::string env_or_throw(const char* name) {
  const char* v = ::getenv(name);
  if (!v || !*v) throw std::runtime_error(std::string("environment variable ") + name + " unset");
  return v;
}

// A Zipkin collector: POST bodies appended to a file, one per line; 202 Accepted.
constexpr const char* kCollector = R"(
import http.server, sys
out = sys.argv[2]
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        with open(out, "ab") as f:
            f.write(body.replace(b"\n", b" ") + b"\n")
        self.send_response(202)
        self.send_header("content-length", "0")
        self.end_headers()
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
)";

struct SpanView {
  std::string trace_id, id, parent_id, name, kind, service;
  std::map<std::string, std::string> tags;
  std::string tag(const std::string& k) const {
    auto it = tags.find(k);
    return it == tags.end() ? "" : it->second;
  }
};

// Every span the collector got so far.
std::vector<SpanView> collected(const std::string& file) {
  std::vector<SpanView> out;
  std::string text = read_file(file).value_or("");
  // The collector may be writing a batch right now: a line without its '\n' yet is left for
  // the next look (a big batch is written a page at a time, and a reader sees its start).
  size_t end = text.rfind('\n');
  text.resize(end == std::string::npos ? 0 : end + 1);
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    std::optional<Json> batch = parse_json(line);
    REQUIRE_MESSAGE((batch && batch->type == Json::Type::Array), "not a JSON array: " << line);
    for (const Json& j : batch->array) {
      SpanView s;
      auto str = [&](const Json& o, const char* k) {
        const Json* v = o.get(k);
        return v && v->type == Json::Type::String ? v->string : std::string();
      };
      s.trace_id = str(j, "traceId");
      s.id = str(j, "id");
      s.parent_id = str(j, "parentId");
      s.name = str(j, "name");
      s.kind = str(j, "kind");
      if (const Json* l = j.get("localEndpoint")) s.service = str(*l, "serviceName");
      if (const Json* t = j.get("tags"))
        for (const auto& [k, v] : t->object)
          s.tags[k] = v.string;
      out.push_back(std::move(s));
    }
  }
  return out;
}

// The spans of the request whose x-request-id was `id`.
std::vector<SpanView> spans_of(const std::string& file, const std::string& id) {
  std::vector<SpanView> out;
  for (SpanView& s : collected(file))
    if (s.tag("guid:x-request-id") == id) out.push_back(std::move(s));
  return out;
}

// The one span of `service` of `kind` named `name` ("" = any), or nullptr.
const SpanView* find(const std::vector<SpanView>& spans, const std::string& service,
                     const std::string& kind, const std::string& name = "") {
  const SpanView* found = nullptr;
  for (const SpanView& s : spans) {
    if (s.service != service || s.kind != kind || (!name.empty() && s.name != name)) continue;
    if (found) return nullptr;  // ambiguous
    found = &s;
  }
  return found;
}

std::string describe(const std::vector<SpanView>& spans) {
  std::string out;
  for (const SpanView& s : spans)
    out += s.service + " " + s.kind + " " + s.name + " trace=" + s.trace_id + " id=" + s.id +
           " parent=" + s.parent_id + "\n";
  return out;
}

double counter(const std::string& text, const std::string& name) {
  size_t at = text.find("\n" + name + " ");
  if (at == std::string::npos) return -1;
  return std::stod(text.substr(at + name.size() + 2));
}

constexpr const char* kReviews = "reviews.default.svc.cluster.local:9080/*";
constexpr const char* kRatings = "ratings.default.svc.cluster.local:9080/*";

}  // namespace

TEST_CASE("tracing: one Bookinfo request, one trace, a span per hop; propagation; collector down") {
  TempDir dir;
  uint16_t gw_port = free_port(), zipkin_port = free_port();
  std::string gw = "127.0.0.1:" + std::to_string(gw_port);
  std::string spans_file = dir.file("spans.jsonl");
  std::ofstream(dir.file("collector.py")) << kCollector;
  SpawnOptions collector_opts;
  collector_opts.argv = {"python3", dir.file("collector.py"), std::to_string(zipkin_port),
                         spans_file};
  collector_opts.stderr_path = dir.file("collector.log");
  Process collector(collector_opts);
  REQUIRE(eventually(
      [&] {
        return TcpConn::connect("127.0.0.1:" + std::to_string(zipkin_port), Deadline(1s)).valid();
      },
      kTimeout));

  std::ostringstream toml;
  toml << "[mesh]\nname = \"bookinfo\"\n"
       << "tracing = { sampling = 100.0, zipkin = { address = \"127.0.0.1:" << zipkin_port
       << "\" } }\n\n";
  const std::pair<const char*, const char*> services[] = {{"productpage", "PRODUCTPAGE_BIN"},
                                                          {"details", "DETAILS_BIN"},
                                                          {"reviews", "REVIEWS_BIN"},
                                                          {"ratings", "RATINGS_BIN"}};
  for (const auto& [name, var] : services) {
    toml << "[[service]]\nname = \"" << name << "\"\nport = 9080\n\n"
         << "[[workload]]\nservice = \"" << name << "\"\nlabels = { version = \""
         << (std::string(name) == "reviews" ? "v2" : "v1") << "\" }\n"
         << "command = [\"" << env_or_throw(var) << "\", \"--listen\", \"127.0.0.1:${PORT}\""
         << (std::string(name) == "reviews" ? ", \"--version\", \"v2\"" : "") << "]\n\n";
  }
  toml << "[[gateway]]\nname = \"bookinfo-gateway\"\nservers = [{ port = " << gw_port
       << ", bind = \"127.0.0.1\", protocol = \"http\", hosts = [\"*\"] }]\n\n"
       << "[[virtual_service]]\nname = \"bookinfo\"\nhosts = [\"*\"]\n"
       << "gateways = [\"bookinfo-gateway\"]\n"
       << "http = [{ route = [{ destination = { host = \"productpage\", port = 9080 } }] }]\n";
  std::ofstream(dir.file("mesh.toml")) << toml.str();
  Mesh mesh(dir, MeshOptions{.paths = {dir.file("mesh.toml")}, .log_level = "info"});

  auto page = [&](const std::string& headers) {
    return exchange(gw,
                    "GET /productpage HTTP/1.1\r\nHost: bookinfo.example\r\nConnection: close\r\n" +
                        headers + "\r\n",
                    Deadline(kTimeout));
  };
  // Every service answered: reviews v2 with ratings' stars.
  auto good = [](const HttpResponse& r) {
    return r.status == 200 && r.body.find("Reviews served by: reviews-v2") != std::string::npos &&
           r.body.find("glyphicon-star") != std::string::npos;
  };
  REQUIRE(eventually([&] { return good(page("")); }, 20s));

  {  // One trace, spans nested gateway → productpage → reviews → ratings.
    HttpResponse r = page("x-request-id: trace-chain\r\n");
    REQUIRE(good(r));
    std::vector<SpanView> spans;
    // 8 spans: gateway; productpage in, out to details and to reviews; details in; reviews
    // in and out; ratings in.
    bool all = eventually(
        [&] {
          spans = spans_of(spans_file, "trace-chain");
          return spans.size() >= 8;
        },
        kTimeout);
    INFO(describe(spans));
    REQUIRE(all);
    CHECK(spans.size() == 8);
    const SpanView* gateway = find(spans, "bookinfo-gateway.default", "CLIENT");
    const SpanView* pp_in = find(spans, "productpage.default", "SERVER");
    const SpanView* pp_out = find(spans, "productpage.default", "CLIENT", kReviews);
    const SpanView* rv_in = find(spans, "reviews.default", "SERVER");
    const SpanView* rv_out = find(spans, "reviews.default", "CLIENT", kRatings);
    const SpanView* rt_in = find(spans, "ratings.default", "SERVER");
    const SpanView* dt_in = find(spans, "details.default", "SERVER");
    REQUIRE((gateway && pp_in && pp_out && rv_in && rv_out && rt_in && dt_in));
    for (const SpanView& s : spans)
      CHECK(s.trace_id == gateway->trace_id);
    CHECK(gateway->trace_id.size() == 32);
    CHECK(gateway->parent_id.empty());  // the root: the request came with no context
    CHECK(pp_in->parent_id == gateway->id);
    CHECK(pp_out->parent_id == pp_in->id);
    CHECK(rv_in->parent_id == pp_out->id);
    CHECK(rv_out->parent_id == rv_in->id);
    CHECK(rt_in->parent_id == rv_out->id);
    const SpanView* pp_dt =
        find(spans, "productpage.default", "CLIENT", "details.default.svc.cluster.local:9080/*");
    REQUIRE(pp_dt);
    CHECK(dt_in->parent_id == pp_dt->id);  // details hangs off productpage's other call
    // Envoy's names and tags.
    CHECK(gateway->name == "productpage.default.svc.cluster.local:9080/*");
    CHECK(rt_in->name == kRatings);
    CHECK(pp_in->name == "productpage.default.svc.cluster.local:9080/*");  // service port
    CHECK(pp_out->tag("http.url") == "http://reviews:9080/reviews/0");
    CHECK(pp_in->tag("http.url") == "http://bookinfo.example/productpage");
    CHECK(rt_in->tag("http.method") == "GET");
    CHECK(rt_in->tag("http.status_code") == "200");
    CHECK(rt_in->tag("response_flags") == "-");
    CHECK(rt_in->tag("istio.canonical_service") == "ratings");
    CHECK(rt_in->tag("upstream_cluster").starts_with("inbound|"));
    CHECK(rt_in->tag("error").empty());
    CHECK(gateway->tag("http.url") == "http://bookinfo.example/productpage");
    CHECK(gateway->tag("upstream_cluster") ==
          "outbound|9080||productpage.default.svc.cluster.local");
    CHECK(rv_out->tag("node_id") == "reviews-v2");
  }

  {  // An incoming context is continued; not sampled is honoured.
    const std::string w3c_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    const std::string b3_trace = "80f198ee56343ba864fe8b2a57d3eff7";
    // Not sampled first: by the time the later requests' spans are in, its would be too.
    REQUIRE(good(page("x-request-id: trace-unsampled\r\ntraceparent: 00-" + w3c_trace +
                      "-00f067aa0ba902b7-00\r\n")));
    REQUIRE(good(page("x-request-id: trace-w3c\r\ntraceparent: 00-" + w3c_trace +
                      "-00f067aa0ba902b7-01\r\ntracestate: congo=t61rcWkgMzE\r\n")));
    REQUIRE(good(page("x-request-id: trace-b3\r\nb3: " + b3_trace + "-e457b5a2e4d86bd1-1\r\n")));
    std::vector<SpanView> w3c, b3;
    bool all = eventually(
        [&] {
          w3c = spans_of(spans_file, "trace-w3c");
          b3 = spans_of(spans_file, "trace-b3");
          return w3c.size() >= 8 && b3.size() >= 8;
        },
        kTimeout);
    INFO(describe(w3c) << describe(b3));
    REQUIRE(all);
    for (const SpanView& s : w3c)
      CHECK(s.trace_id == w3c_trace);
    for (const SpanView& s : b3)
      CHECK(s.trace_id == b3_trace);
    const SpanView* g = find(w3c, "bookinfo-gateway.default", "CLIENT");
    REQUIRE(g);
    CHECK(g->parent_id == "00f067aa0ba902b7");
    g = find(b3, "bookinfo-gateway.default", "CLIENT");
    REQUIRE(g);
    CHECK(g->parent_id == "e457b5a2e4d86bd1");
    const SpanView* rt = find(b3, "ratings.default", "SERVER");
    REQUIRE(rt);
    CHECK(rt->trace_id == b3_trace);
    CHECK(spans_of(spans_file, "trace-unsampled").empty());
  }

  {  // The collector goes away: requests still succeed, lost spans are counted.
    collector.kill_and_wait();
    for (int i = 0; i < 3; ++i)
      CHECK(good(page("")));
    std::string text;
    bool lost = eventually(
        [&] {
          text = exchange(mesh.admin(),
                          "GET /stats/prometheus HTTP/1.1\r\nHost: admin\r\nConnection: "
                          "close\r\n\r\n",
                          Deadline(kTimeout))
                     .body;
          return counter(text, "meshbox_tracing_spans_failed_total") > 0;
        },
        kTimeout);
    INFO(text.substr(0, 4000));
    CHECK(lost);
    CHECK(counter(text, "meshbox_tracing_spans_reported_total") > 0);
    CHECK(counter(text, "meshbox_tracing_batches_failed_total") > 0);
    CHECK(good(page("")));
  }
}

TEST_CASE("tracing: a bad zipkin address is a config error with its position") {
  TempDir dir;
  std::string path = dir.file("mesh.toml");
  std::ofstream(path) << "[mesh]\nname = \"m\"\n"
                      << "tracing = { sampling = 150, zipkin = { address = \"zipkin:9411\" } }\n";
  RunResult r = run_meshbox({"validate", path}, dir, Deadline(kTimeout));
  INFO(r.out << r.err);
  REQUIRE(r.status);
  CHECK(r.status->code == 1);
  CHECK(r.out.find(path + ":3:24: error:") != std::string::npos);
  CHECK(r.out.find("tracing.sampling: expected a percentage from 0 to 100, got 150") !=
        std::string::npos);
  CHECK(r.out.find(path + ":3:50: error:") != std::string::npos);
  CHECK(r.out.find("tracing.zipkin.address: expected a collector address") != std::string::npos);
}

}  // namespace meshbox::test
