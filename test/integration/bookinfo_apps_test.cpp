// meshbox's Bookinfo services (examples/bookinfo/) on their own, without a mesh: the four
// programs wired to each other on 127.0.0.1 (port 0, ready files), with test-side fake
// upstreams standing in for one of them where a test must see what was sent or control what
// comes back (stalls, errors, a forward proxy). Checks what Istio's Bookinfo shows: the product
// page with reviews v1/v2/v3, login and end-user, trace header propagation, degradation when
// details or reviews are down or slow, the JSON APIs, and calls through http_proxy.
#include <doctest/doctest.h>
#include <signal.h>

#include <algorithm>
#include <cstdlib>
#include <functional>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "test/support/deadline.h"
#include "test/support/failure_logs.h"
#include "test/support/fake_upstream.h"
#include "test/support/files.h"
#include "test/support/http_response.h"
#include "test/support/json.h"
#include "test/support/meshbox.h"
#include "test/support/process.h"
#include "test/support/tcp_conn.h"

extern char** environ;

namespace meshbox::test {
namespace {

constexpr auto kTimeout = 10s;

constexpr std::string_view kDetailsSorry =
    "Sorry, product details are currently unavailable for this book.";
constexpr std::string_view kReviewsSorry =
    "Sorry, product reviews are currently unavailable for this book.";
constexpr std::string_view kRatingsError = "Ratings service is currently unavailable";
constexpr std::string_view kFullStar = "class=\"glyphicon glyphicon-star\"";
constexpr std::string_view kEmptyStar = "class=\"glyphicon glyphicon-star-empty\"";

// The trace headers a request carries into productpage, which every hop must pass on.
const std::vector<std::pair<std::string, std::string>> kTraceHeaders = {
    {"x-request-id", "5d8a0bd4-1b7e-4c1a-9d0e-6a1f2c3b4d5e"},
    {"x-b3-traceid", "463ac35c9f6413ad48485a3953bb6124"},
    {"x-b3-spanid", "a2fb4a1d1a96d312"},
    {"x-b3-parentspanid", "0020000000000001"},
    {"x-b3-sampled", "1"},
    {"x-b3-flags", "1"},
    {"b3", "463ac35c9f6413ad48485a3953bb6124-a2fb4a1d1a96d312-1"},
    {"traceparent", "00-463ac35c9f6413ad48485a3953bb6124-a2fb4a1d1a96d312-01"},
    {"tracestate", "vendor=opaque"},
};

std::string env_or_throw(const char* name) {
  const char* v = ::getenv(name);
  if (!v || !*v)
    throw std::runtime_error(std::string(name) + " is not set: run the tests with `meson test`");
  return v;
}

// The inherited environment without anything that would redirect the apps' calls (a proxy
// in the developer's shell, Bookinfo's own variables), plus `extra` NAME=VALUE entries.
std::vector<std::string> app_environment(const std::vector<std::string>& extra) {
  auto dropped = [](std::string_view name) {
    for (std::string_view p :
         {"http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY",
          "no_proxy", "NO_PROXY", "PORT", "SERVICES_DOMAIN", "CLUSTER_NAME", "MESHBOX_WORKLOAD"})
      if (name == p) return true;
    return name.ends_with("_HOSTNAME") || name.ends_with("_SERVICE_PORT");
  };
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e) {
    std::string_view kv(*e);
    if (!dropped(kv.substr(0, kv.find('=')))) env.emplace_back(kv);
  }
  env.insert(env.end(), extra.begin(), extra.end());
  return env;
}

// One Bookinfo program on 127.0.0.1:0, started and ready; killed when the test ends.
class App {
 public:
  /// `name` names the files and, unless `name_flag` is false, the instance (--name).
  App(TempDir& dir, const char* bin_var, const std::string& name, std::vector<std::string> args,
      const std::vector<std::string>& env = {}, bool name_flag = true) {
    std::string ready = dir.file(name + ".ready");
    log_path_ = dir.file(name + ".log");
    SpawnOptions opts;
    opts.argv = {env_or_throw(bin_var), "--listen", "127.0.0.1:0", "--ready-file", ready,
                 "--log-level",         "debug"};
    if (name_flag) opts.argv.insert(opts.argv.end(), {"--name", name});
    opts.argv.insert(opts.argv.end(), args.begin(), args.end());
    opts.env = app_environment(env);
    opts.stdout_path = opts.stderr_path = log_path_;
    failure_log_.emplace(name + " (" + log_path_ + ")", log_path_);
    proc_ = Process(opts);
    auto addr = wait_for_ready_file(ready, proc_, Deadline(kTimeout));
    if (!addr)
      throw std::runtime_error(name + " did not become ready\n--- log ---\n" +
                               read_file_tail(log_path_));
    address_ = *addr;
  }

  const std::string& address() const { return address_; }
  Process& process() { return proc_; }
  std::string log() const { return read_file(log_path_).value_or(""); }

 private:
  std::string log_path_;
  std::optional<ScopedFailureLog> failure_log_;
  Process proc_;
  std::string address_;
};

App start_details(TempDir& dir) {
  return App(dir, "DETAILS_BIN", "details", {});
}
App start_ratings(TempDir& dir) {
  return App(dir, "RATINGS_BIN", "ratings", {});
}
App start_reviews(TempDir& dir, const std::string& version, const std::string& ratings,
                  const std::vector<std::string>& env = {}) {
  std::vector<std::string> args = {"--version", version};
  if (!ratings.empty()) args.insert(args.end(), {"--ratings", ratings});
  return App(dir, "REVIEWS_BIN", "reviews-" + version + "-test", args, env);
}
// Upstreams left empty come from the environment (default: details:9080 and so on).
App start_productpage(TempDir& dir, const std::string& name, const std::string& details,
                      const std::string& reviews, const std::string& ratings,
                      const std::vector<std::string>& env = {}) {
  std::vector<std::string> args;
  if (!details.empty()) args.insert(args.end(), {"--details", details});
  if (!reviews.empty()) args.insert(args.end(), {"--reviews", reviews});
  if (!ratings.empty()) args.insert(args.end(), {"--ratings", ratings});
  return App(dir, "PRODUCTPAGE_BIN", name, args, env);
}

HttpResponse request(const std::string& addr, const std::string& method, const std::string& target,
                     const std::vector<std::pair<std::string, std::string>>& headers = {},
                     const std::string& body = "") {
  std::string req = method + " " + target + " HTTP/1.1\r\nHost: " + addr + "\r\n";
  for (const auto& [name, value] : headers)
    req += name + ": " + value + "\r\n";
  if (!body.empty() || method == "POST")
    req += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  req += "Connection: close\r\n\r\n" + body;
  return exchange(addr, req, Deadline(kTimeout), method);
}

HttpResponse get(const std::string& addr, const std::string& target,
                 const std::vector<std::pair<std::string, std::string>>& headers = {}) {
  return request(addr, "GET", target, headers);
}

size_t occurrences(std::string_view hay, std::string_view needle) {
  size_t n = 0;
  for (size_t at = hay.find(needle); at != std::string_view::npos;
       at = hay.find(needle, at + needle.size()))
    ++n;
  return n;
}

// Every value of header `name` in a raw request head.
std::vector<std::string> header_values(std::string_view head, std::string_view name) {
  std::vector<std::string> out;
  size_t line_end = head.find("\r\n");
  while (line_end != std::string_view::npos) {
    size_t start = line_end + 2;
    line_end = head.find("\r\n", start);
    std::string_view line = head.substr(start, line_end - start);
    size_t colon = line.find(':');
    if (colon == std::string_view::npos || !iequals(line.substr(0, colon), name)) continue;
    std::string_view value = line.substr(colon + 1);
    while (!value.empty() && value.front() == ' ')
      value.remove_prefix(1);
    out.emplace_back(value);
  }
  return out;
}

std::string request_line(std::string_view head) {
  return std::string(head.substr(0, head.find("\r\n")));
}

std::string http_answer(int status, const std::string& body) {
  return "HTTP/1.1 " + std::to_string(status) +
         " X\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
         "\r\nConnection: close\r\n\r\n" + body;
}

// A fake upstream (or forward proxy) that records every request head it gets. `answer` maps
// (request head, connection number) to a status and JSON body; nullopt stalls until the
// caller gives up and closes.
class RecordingUpstream {
 public:
  using Answer = std::function<std::optional<std::pair<int, std::string>>(const std::string&, int)>;

  explicit RecordingUpstream(Answer answer)
      : answer_(std::move(answer)), up_([this](TcpConn& c, int serial) { serve(c, serial); }) {}

  const std::string& address() const { return up_.address(); }
  std::vector<std::string> heads() {
    std::lock_guard lock(mu_);
    return heads_;
  }
  /// Waits until at least `n` requests have arrived.
  bool wait_for_requests(size_t n, Deadline deadline) {
    while (heads().size() < n) {
      if (deadline.expired()) return false;
      poll_pause();
    }
    return true;
  }

 private:
  void serve(TcpConn& c, int serial) {
    std::string buf;
    if (!read_request_head(c, buf, Deadline(kTimeout))) return;
    std::string head = buf.substr(0, buf.find("\r\n\r\n") + 2);
    {
      std::lock_guard lock(mu_);
      heads_.push_back(head);
    }
    auto a = answer_(head, serial);
    if (!a) {
      std::string rest;
      c.read_to_close(rest, Deadline(kTimeout));  // stall until productpage gives up
      return;
    }
    c.send_all(http_answer(a->first, a->second), Deadline(kTimeout));
  }

  Answer answer_;
  std::mutex mu_;
  std::vector<std::string> heads_;
  FakeUpstream up_;  // last: its threads stop before the rest goes
};

std::string details_json(const std::string& publisher) {
  return R"({"id":0,"author":"William Shakespeare","year":1595,"type":"paperback","pages":200,)"
         R"("publisher":")" +
         publisher + R"(","language":"English","ISBN-10":"1234567890","ISBN-13":"123-1234567890"})";
}

std::string reviews_json(const std::string& podname) {
  return R"({"id":"0","podname":")" + podname +
         R"(","clustername":"null","reviews":[{"reviewer":"Reviewer1","text":"Fine."},)"
         R"({"reviewer":"Reviewer2","text":"Good."}]})";
}

// Checks that `head` carries every trace header with the value productpage received.
void check_trace_headers(const std::string& head) {
  for (const auto& [name, value] : kTraceHeaders) {
    CAPTURE(name);
    CHECK(header_values(head, name) == std::vector<std::string>{value});
  }
}

// SIGTERM, then a clean exit (0 means the loop closed with no handle left open).
void check_clean_exit(App& app) {
  app.process().signal(SIGTERM);
  auto st = app.process().wait(Deadline(kTimeout));
  REQUIRE(st.has_value());
  CHECK_MESSAGE(st->ok(), st->describe());
}

TEST_CASE("bookinfo apps: details, ratings and reviews answer like Istio's sample") {
  TempDir dir;
  App ratings = start_ratings(dir);
  App details = start_details(dir);

  SUBCASE("details") {
    HttpResponse r = get(details.address(), "/details/0");
    INFO(r.summary());
    CHECK(r.status == 200);
    REQUIRE(r.header("content-type"));
    CHECK(*r.header("content-type") == "application/json");
    // The sample's fields, values and order.
    CHECK(r.body == details_json("PublisherA"));
    auto j = parse_json(get(details.address(), "/details/7").body);
    REQUIRE(j);
    CHECK(j->get("id")->number == 7);
    CHECK(get(details.address(), "/details/abc").status == 400);
    CHECK(get(details.address(), "/health").status == 200);
    CHECK(get(details.address(), "/nope").status == 404);
  }

  SUBCASE("ratings, and a POST that replaces a product's ratings") {
    auto j = parse_json(get(ratings.address(), "/ratings/0").body);
    REQUIRE(j);
    CHECK(j->get("id")->number == 0);
    REQUIRE(j->get("ratings"));
    CHECK(j->get("ratings")->get("Reviewer1")->number == 5);
    CHECK(j->get("ratings")->get("Reviewer2")->number == 4);
    CHECK(get(ratings.address(), "/ratings/x").status == 400);
    CHECK(get(ratings.address(), "/health").status == 200);

    HttpResponse post =
        request(ratings.address(), "POST", "/ratings/3", {{"Content-Type", "application/json"}},
                R"({"Reviewer1":1,"Reviewer2":2})");
    CHECK(post.status == 200);
    auto j3 = parse_json(get(ratings.address(), "/ratings/3").body);
    REQUIRE(j3);
    CHECK(j3->get("ratings")->get("Reviewer1")->number == 1);
    CHECK(j3->get("ratings")->get("Reviewer2")->number == 2);
    CHECK(request(ratings.address(), "POST", "/ratings/3", {}, "not json").status == 400);
    // Another product keeps the defaults.
    CHECK(parse_json(get(ratings.address(), "/ratings/0").body)
              ->get("ratings")
              ->get("Reviewer1")
              ->number == 5);
  }

  SUBCASE("reviews v1, v2 and v3") {
    for (std::string version : {"v1", "v2", "v3"}) {
      CAPTURE(version);
      App reviews = start_reviews(dir, version, ratings.address());
      HttpResponse r = get(reviews.address(), "/reviews/0");
      INFO(r.summary());
      REQUIRE(r.status == 200);
      auto j = parse_json(r.body);
      REQUIRE(j);
      CHECK(j->get("id")->string == "0");
      CHECK(j->get("podname")->string == "reviews-" + version + "-test");
      CHECK(j->get("clustername")->string == "null");
      const Json* list = j->get("reviews");
      REQUIRE(list);
      REQUIRE(list->array.size() == 2);
      CHECK(list->array[0].get("reviewer")->string == "Reviewer1");
      CHECK(list->array[1].get("reviewer")->string == "Reviewer2");
      CHECK(list->array[0].get("text")->string.starts_with("An extremely entertaining play"));
      if (version == "v1") {
        CHECK(list->array[0].get("rating") == nullptr);
        CHECK(list->array[1].get("rating") == nullptr);
      } else {
        std::string color = version == "v2" ? "black" : "red";
        REQUIRE(list->array[0].get("rating"));
        CHECK(list->array[0].get("rating")->get("stars")->number == 5);
        CHECK(list->array[0].get("rating")->get("color")->string == color);
        CHECK(list->array[1].get("rating")->get("stars")->number == 4);
        CHECK(list->array[1].get("rating")->get("color")->string == color);
      }
      CHECK(get(reviews.address(), "/health").status == 200);
      CHECK(get(reviews.address(), "/reviews/x").status == 400);
      check_clean_exit(reviews);
    }
  }

  SUBCASE("reviews is named after the instance meshbox runs (MESHBOX_WORKLOAD), or its pid") {
    App named(dir, "REVIEWS_BIN", "reviews-a", {"--version", "v2"},
              {"MESHBOX_WORKLOAD=reviews-v2-1", "RATINGS_HOSTNAME=127.0.0.1"}, false);
    auto j = parse_json(get(named.address(), "/reviews/0").body);
    REQUIRE(j);
    CHECK(j->get("podname")->string == "reviews-v2-1");
    App unnamed(dir, "REVIEWS_BIN", "reviews-b", {"--version", "v3"}, {"CLUSTER_NAME=east"}, false);
    auto k = parse_json(get(unnamed.address(), "/reviews/0").body);
    REQUIRE(k);
    CHECK(k->get("podname")->string == "reviews-v3-" + std::to_string(unnamed.process().pid()));
    CHECK(k->get("clustername")->string == "east");
  }
}

TEST_CASE("bookinfo apps: the product page with reviews v1 (no stars), v2 (black), v3 (red)") {
  TempDir dir;
  App ratings = start_ratings(dir);
  App details = start_details(dir);
  for (std::string version : {"v1", "v2", "v3"}) {
    CAPTURE(version);
    App reviews = start_reviews(dir, version, ratings.address());
    App page = start_productpage(dir, "productpage-" + version, details.address(),
                                 reviews.address(), ratings.address());
    HttpResponse r = get(page.address(), "/productpage");
    INFO(r.summary());
    REQUIRE(r.status == 200);
    REQUIRE(r.header("content-type"));
    CHECK(r.header("content-type")->starts_with("text/html"));
    const std::string& html = r.body;
    CHECK(html.find("<title>Simple Bookstore App</title>") != std::string::npos);
    CHECK(html.find("The Comedy of Errors") != std::string::npos);
    CHECK(html.find("William Shakespeare") != std::string::npos);
    CHECK(html.find("PublisherA") != std::string::npos);
    CHECK(html.find("123-1234567890") != std::string::npos);
    CHECK(html.find("paperback") != std::string::npos);
    CHECK(html.find("Reviews served by: reviews-" + version + "-test") != std::string::npos);
    CHECK(html.find("An extremely entertaining play by Shakespeare") != std::string::npos);
    CHECK(html.find("Sign in") != std::string::npos);
    CHECK(html.find("Sorry") == std::string::npos);
    CHECK(html.find(kRatingsError) == std::string::npos);
    if (version == "v1") {
      CHECK(occurrences(html, "glyphicon glyphicon-star") == 0);
    } else {
      // 5 + 4 full stars and one empty one, all in the version's colour.
      std::string color = version == "v2" ? "black" : "red";
      std::string other = version == "v2" ? "red" : "black";
      CHECK(occurrences(html, kFullStar) == 9);
      CHECK(occurrences(html, kEmptyStar) == 1);
      CHECK(occurrences(html, "style=\"color:" + color + "\"") == 10);
      CHECK(occurrences(html, "style=\"color:" + other + "\"") == 0);
    }
  }
}

TEST_CASE("bookinfo apps: productpage's other pages and its JSON API") {
  TempDir dir;
  App ratings = start_ratings(dir);
  App details = start_details(dir);
  App reviews = start_reviews(dir, "v2", ratings.address());
  App page = start_productpage(dir, "productpage", details.address(), reviews.address(),
                               ratings.address());

  HttpResponse index = get(page.address(), "/");
  CHECK(index.status == 200);
  CHECK(index.body.find("href=\"productpage?u=normal\"") != std::string::npos);
  CHECK(get(page.address(), "/index.html").status == 200);
  HttpResponse health = get(page.address(), "/health");
  CHECK(health.status == 200);
  CHECK(health.body == "Product page is healthy");
  HttpResponse css = get(page.address(), "/static/bookinfo.css");
  CHECK(css.status == 200);
  REQUIRE(css.header("content-type"));
  CHECK(css.header("content-type")->starts_with("text/css"));
  CHECK(!css.body.empty());
  CHECK(get(page.address(), "/static/nope.js").status == 404);
  CHECK(get(page.address(), "/nope").status == 404);
  // HEAD: the head of the GET, no body.
  HttpResponse head = request(page.address(), "HEAD", "/productpage");
  CHECK(head.status == 200);
  CHECK(head.body.empty());

  auto products = parse_json(get(page.address(), "/api/v1/products").body);
  REQUIRE(products);
  REQUIRE(products->array.size() == 1);
  CHECK(products->array[0].get("id")->number == 0);
  CHECK(products->array[0].get("title")->string == "The Comedy of Errors");
  CHECK(products->array[0].get("descriptionHtml")->string.find("William Shakespeare") !=
        std::string::npos);

  HttpResponse d = get(page.address(), "/api/v1/products/0");
  CHECK(d.status == 200);
  CHECK(d.body == details_json("PublisherA"));
  auto rv = parse_json(get(page.address(), "/api/v1/products/0/reviews").body);
  REQUIRE(rv);
  CHECK(rv->get("podname")->string == "reviews-v2-test");
  CHECK(rv->get("reviews")->array[0].get("rating")->get("color")->string == "black");
  auto rt = parse_json(get(page.address(), "/api/v1/products/0/ratings").body);
  REQUIRE(rt);
  CHECK(rt->get("ratings")->get("Reviewer2")->number == 4);
  CHECK(get(page.address(), "/api/v1/products/x").status == 400);

  // Keep-alive with pipelining: answers in order on one connection, the slow one included.
  HttpClient c = HttpClient::connect(page.address(), Deadline(kTimeout));
  REQUIRE(c.valid());
  REQUIRE(
      c.send("GET /productpage HTTP/1.1\r\nHost: p\r\n\r\n"
             "GET /health HTTP/1.1\r\nHost: p\r\n\r\n"
             "GET /api/v1/products/0/reviews HTTP/1.1\r\nHost: p\r\nConnection: close\r\n\r\n",
             Deadline(kTimeout)));
  HttpResponse p1 = c.read_response(Deadline(kTimeout));
  HttpResponse p2 = c.read_response(Deadline(kTimeout));
  HttpResponse p3 = c.read_response(Deadline(kTimeout));
  CHECK(p1.status == 200);
  CHECK(p1.body.find("Reviews served by: reviews-v2-test") != std::string::npos);
  CHECK(p2.body == "Product page is healthy");
  CHECK(p3.status == 200);
  CHECK(p3.body.find("\"podname\":\"reviews-v2-test\"") != std::string::npos);
  CHECK(c.wait_closed(Deadline(kTimeout)));
  CHECK(get(page.address(), "/api/v1/products/0/nope").status == 404);
  CHECK(request(page.address(), "GET", "/login").status == 405);
  check_clean_exit(page);
}

TEST_CASE("bookinfo apps: login, end-user and trace headers through productpage and reviews") {
  TempDir dir;
  // details and ratings are fakes that record what they get; reviews v2 is real, so the
  // headers cross two hops to reach ratings.
  RecordingUpstream fake_details(
      [](const std::string&, int) { return std::pair(200, details_json("PublisherFake")); });
  RecordingUpstream fake_ratings([](const std::string&, int) {
    return std::pair(200, std::string(R"({"id":0,"ratings":{"Reviewer1":3,"Reviewer2":1}})"));
  });
  App reviews = start_reviews(dir, "v2", fake_ratings.address());
  App page = start_productpage(dir, "productpage", fake_details.address(), reviews.address(),
                               "127.0.0.1:1");

  HttpResponse login = request(page.address(), "POST", "/login",
                               {{"Content-Type", "application/x-www-form-urlencoded"},
                                {"Referer", "http://" + page.address() + "/productpage"}},
                               "username=jason&passwd=secret");
  INFO(login.summary());
  CHECK(login.status == 302);
  REQUIRE(login.header("location"));
  CHECK(*login.header("location") == "/productpage");
  REQUIRE(login.header("set-cookie"));
  CHECK(login.header("set-cookie")->starts_with("user=jason;"));

  // A client's own end-user header is not what counts: the session cookie is.
  std::vector<std::pair<std::string, std::string>> headers = kTraceHeaders;
  headers.emplace_back("Cookie", "theme=dark; user=jason");
  headers.emplace_back("end-user", "mallory");
  HttpResponse r = get(page.address(), "/productpage", headers);
  INFO(r.summary());
  REQUIRE(r.status == 200);
  CHECK(r.body.find("Welcome jason") != std::string::npos);
  CHECK(r.body.find("href=\"logout\"") != std::string::npos);
  CHECK(r.body.find("PublisherFake") != std::string::npos);
  CHECK(occurrences(r.body, kFullStar) == 4);  // the fake's 3 + 1
  CHECK(r.body.find("Reviews served by: reviews-v2-test") != std::string::npos);

  auto details_heads = fake_details.heads();
  auto ratings_heads = fake_ratings.heads();
  REQUIRE(details_heads.size() == 1);
  REQUIRE(ratings_heads.size() == 1);
  CHECK(request_line(details_heads[0]) == "GET /details/0 HTTP/1.1");
  CHECK(request_line(ratings_heads[0]) == "GET /ratings/0 HTTP/1.1");
  for (const auto& head : {details_heads[0], ratings_heads[0]}) {
    CAPTURE(head);
    CHECK(header_values(head, "end-user") == std::vector<std::string>{"jason"});
    check_trace_headers(head);
  }

  SUBCASE("logout clears the cookie; then no end-user goes upstream") {
    HttpResponse out = get(page.address(), "/logout", {{"Cookie", "user=jason"}});
    CHECK(out.status == 302);
    REQUIRE(out.header("set-cookie"));
    CHECK(out.header("set-cookie")->starts_with("user=;"));
    CHECK(out.header("set-cookie")->find("Max-Age=0") != std::string::npos);

    HttpResponse anon = get(page.address(), "/productpage", {{"end-user", "mallory"}});
    REQUIRE(anon.status == 200);
    CHECK(anon.body.find("Welcome") == std::string::npos);
    CHECK(anon.body.find("Sign in") != std::string::npos);
    auto heads = fake_ratings.heads();
    REQUIRE(heads.size() == 2);
    CHECK(header_values(heads[1], "end-user").empty());
  }

  SUBCASE("a user name is escaped in the page and encoded in the cookie") {
    HttpResponse in = request(page.address(), "POST", "/login",
                              {{"Content-Type", "application/x-www-form-urlencoded"}},
                              "username=%3Cb%3Eann+o%27neil%3C%2Fb%3E%3B");
    REQUIRE(in.header("set-cookie"));
    std::string cookie = *in.header("set-cookie");
    std::string pair = cookie.substr(0, cookie.find(';'));
    CHECK(pair.find_first_of(" \";,\\") == std::string::npos);  // RFC 6265 cookie-octets only
    HttpResponse p = get(page.address(), "/productpage", {{"Cookie", pair}});
    CHECK(p.body.find("Welcome &lt;b&gt;ann o&#39;neil&lt;/b&gt;;") != std::string::npos);
    auto heads = fake_ratings.heads();
    REQUIRE(heads.size() == 2);
    CHECK(header_values(heads[1], "end-user") == std::vector<std::string>{"<b>ann o'neil</b>;"});
  }
}

TEST_CASE("bookinfo apps: the product page degrades when details, reviews or ratings are down") {
  TempDir dir;
  // Bound but not listening: connections are refused.
  uint16_t dead_port = 0;
  int dead_fd = listen_loopback(&dead_port, false);
  REQUIRE(dead_fd >= 0);
  std::string dead = "127.0.0.1:" + std::to_string(dead_port);

  SUBCASE("details and reviews refuse connections") {
    App page = start_productpage(dir, "productpage", dead, dead, dead);
    auto start = Deadline::Clock::now();
    HttpResponse r = get(page.address(), "/productpage");
    INFO(r.summary());
    CHECK(r.status == 200);
    CHECK(ms_since(start) < 2000);
    CHECK(r.body.find("<title>Simple Bookstore App</title>") != std::string::npos);
    CHECK(r.body.find(kDetailsSorry) != std::string::npos);
    CHECK(r.body.find(kReviewsSorry) != std::string::npos);
    CHECK(r.body.find("Error fetching product details") != std::string::npos);

    HttpResponse api = get(page.address(), "/api/v1/products/0");
    CHECK(api.status == 500);
    auto j = parse_json(api.body);
    REQUIRE(j);
    CHECK(j->get("error")->string == kDetailsSorry);
    CHECK(get(page.address(), "/api/v1/products/0/reviews").status == 500);
    CHECK(get(page.address(), "/api/v1/products/0/ratings").status == 500);
    check_clean_exit(page);
  }

  SUBCASE("an upstream status other than 200 passes through the API") {
    RecordingUpstream broken([](const std::string&, int) {
      return std::pair(555, std::string(R"({"error":"injected"})"));
    });
    App page = start_productpage(dir, "productpage", broken.address(), dead, dead);
    HttpResponse api = get(page.address(), "/api/v1/products/0");
    CHECK(api.status == 555);
    HttpResponse r = get(page.address(), "/productpage");
    CHECK(r.status == 200);
    CHECK(r.body.find(kDetailsSorry) != std::string::npos);
  }

  SUBCASE("reviews fails once, then answers: productpage's second attempt shows the reviews") {
    RecordingUpstream flaky([](const std::string&, int serial) {
      if (serial == 1) return std::pair(503, std::string(R"({"error":"unavailable"})"));
      return std::pair(200, reviews_json("reviews-flaky"));
    });
    App details = start_details(dir);
    App page = start_productpage(dir, "productpage", details.address(), flaky.address(), dead);
    HttpResponse r = get(page.address(), "/productpage");
    REQUIRE(r.status == 200);
    CHECK(r.body.find("Reviews served by: reviews-flaky") != std::string::npos);
    CHECK(r.body.find(kReviewsSorry) == std::string::npos);
    CHECK(flaky.heads().size() == 2);
  }

  SUBCASE("ratings is down: reviews v2 answers with the rating error") {
    App details = start_details(dir);
    App reviews = start_reviews(dir, "v2", dead);
    auto j = parse_json(get(reviews.address(), "/reviews/0").body);
    REQUIRE(j);
    for (const auto& review : j->get("reviews")->array) {
      REQUIRE(review.get("rating"));
      CHECK(review.get("rating")->get("error")->string == kRatingsError);
    }
    App page = start_productpage(dir, "productpage", details.address(), reviews.address(), dead);
    HttpResponse r = get(page.address(), "/productpage");
    REQUIRE(r.status == 200);
    CHECK(occurrences(r.body, kRatingsError) == 2);
    CHECK(occurrences(r.body, "glyphicon glyphicon-star") == 0);
    CHECK(r.body.find("Reviews served by: reviews-v2-test") != std::string::npos);
  }
  ::close(dead_fd);
}

TEST_CASE("bookinfo apps: slow details and reviews time out after 3 s; the page still answers") {
  TempDir dir;
  auto stall = [](const std::string&, int) -> std::optional<std::pair<int, std::string>> {
    return std::nullopt;
  };
  RecordingUpstream slow_details(stall);
  RecordingUpstream slow_reviews(stall);
  App page = start_productpage(dir, "productpage", slow_details.address(), slow_reviews.address(),
                               "127.0.0.1:1");

  auto start = Deadline::Clock::now();
  HttpResponse r = get(page.address(), "/productpage");
  int64_t took = ms_since(start);
  INFO(r.summary());
  MESSAGE("the page took ", took, " ms");
  CHECK(r.status == 200);
  CHECK(took >= 2900);  // the loop's clock is cached per iteration: allow a few ms early
  CHECK(took < 3600);
  CHECK(r.body.find(kDetailsSorry) != std::string::npos);
  CHECK(r.body.find(kReviewsSorry) != std::string::npos);
  CHECK(page.log().find("timed out after 3000 ms") != std::string::npos);
  // The one 3 s budget is spent: no second attempt at reviews.
  CHECK(slow_reviews.heads().size() == 1);

  SUBCASE("SIGTERM with calls in flight: a clean exit") {
    HttpClient c = HttpClient::connect(page.address(), Deadline(kTimeout));
    REQUIRE(c.valid());
    REQUIRE(c.send("GET /productpage HTTP/1.1\r\nHost: x\r\n\r\n", Deadline(kTimeout)));
    REQUIRE(slow_details.wait_for_requests(2, Deadline(kTimeout)));
    REQUIRE(slow_reviews.wait_for_requests(2, Deadline(kTimeout)));
    auto t0 = Deadline::Clock::now();
    check_clean_exit(page);
    CHECK(ms_since(t0) < 2000);
  }
}

TEST_CASE("bookinfo apps: with http_proxy, calls go to the proxy in absolute form") {
  TempDir dir;
  // A fake forward proxy: answers for whichever service the absolute URL names.
  RecordingUpstream proxy([](const std::string& head, int) {
    std::string line = request_line(head);
    if (line.find("/details/") != std::string::npos)
      return std::pair(200, details_json("PublisherViaProxy"));
    if (line.find("/reviews/") != std::string::npos)
      return std::pair(200, reviews_json("reviews-v9-proxied"));
    return std::pair(200, std::string(R"({"id":0,"ratings":{"Reviewer1":2,"Reviewer2":2}})"));
  });
  std::string proxy_url = "http://" + proxy.address();

  SUBCASE("productpage calls details:9080 and reviews:9080 by name through http_proxy") {
    App page = start_productpage(dir, "productpage", "", "", "", {"http_proxy=" + proxy_url});
    HttpResponse r = get(page.address(), "/productpage", kTraceHeaders);
    INFO(r.summary());
    REQUIRE(r.status == 200);
    CHECK(r.body.find("PublisherViaProxy") != std::string::npos);
    CHECK(r.body.find("Reviews served by: reviews-v9-proxied") != std::string::npos);
    std::vector<std::string> lines;
    for (const auto& head : proxy.heads()) {
      lines.push_back(request_line(head));
      CAPTURE(head);
      check_trace_headers(head);
      std::string host =
          request_line(head).find("details") != std::string::npos ? "details:9080" : "reviews:9080";
      CHECK(header_values(head, "host") == std::vector<std::string>{host});
    }
    std::sort(lines.begin(), lines.end());
    CHECK(lines == std::vector<std::string>{"GET http://details:9080/details/0 HTTP/1.1",
                                            "GET http://reviews:9080/reviews/0 HTTP/1.1"});
  }

  SUBCASE("HTTP_PROXY with NO_PROXY: details directly by IP, reviews through the proxy") {
    App details = start_details(dir);
    std::string details_port = details.address().substr(details.address().rfind(':') + 1);
    App page =
        start_productpage(dir, "productpage", "", "", "",
                          {"HTTP_PROXY=" + proxy_url, "NO_PROXY=localhost,127.0.0.1",
                           "DETAILS_HOSTNAME=127.0.0.1", "DETAILS_SERVICE_PORT=" + details_port});
    HttpResponse r = get(page.address(), "/productpage");
    REQUIRE(r.status == 200);
    CHECK(r.body.find("PublisherA") != std::string::npos);
    CHECK(r.body.find("Reviews served by: reviews-v9-proxied") != std::string::npos);
    auto heads = proxy.heads();
    REQUIRE(heads.size() == 1);
    CHECK(request_line(heads[0]) == "GET http://reviews:9080/reviews/0 HTTP/1.1");
  }

  SUBCASE("reviews v3 calls ratings through the proxy, with RATINGS_* and SERVICES_DOMAIN") {
    App reviews = start_reviews(dir, "v3", "",
                                {"http_proxy=" + proxy_url, "RATINGS_SERVICE_PORT=9081",
                                 "SERVICES_DOMAIN=default.svc.cluster.local"});
    auto j = parse_json(get(reviews.address(), "/reviews/0", kTraceHeaders).body);
    REQUIRE(j);
    CHECK(j->get("reviews")->array[0].get("rating")->get("stars")->number == 2);
    CHECK(j->get("reviews")->array[0].get("rating")->get("color")->string == "red");
    auto heads = proxy.heads();
    REQUIRE(heads.size() == 1);
    CHECK(request_line(heads[0]) ==
          "GET http://ratings.default.svc.cluster.local:9081/ratings/0 HTTP/1.1");
    CHECK(header_values(heads[0], "host") ==
          std::vector<std::string>{"ratings.default.svc.cluster.local:9081"});
    check_trace_headers(heads[0]);
  }
}

TEST_CASE("bookinfo apps: without a proxy, a host name fails the call at once, clearly") {
  TempDir dir;
  App page = start_productpage(dir, "productpage", "", "", "");  // details:9080 and so on
  auto start = Deadline::Clock::now();
  HttpResponse api = get(page.address(), "/api/v1/products/0");
  CHECK(api.status == 500);
  HttpResponse r = get(page.address(), "/productpage");
  CHECK(r.status == 200);
  CHECK(r.body.find(kDetailsSorry) != std::string::npos);
  CHECK(r.body.find(kReviewsSorry) != std::string::npos);
  CHECK(ms_since(start) < 2000);
  CHECK(page.log().find("'details' is not an IP address") != std::string::npos);
}

TEST_CASE("bookinfo apps: bad flags and a bad http_proxy exit 2; --help exits 0") {
  TempDir dir;
  auto run = [&](const std::vector<std::string>& args, const std::vector<std::string>& env) {
    SpawnOptions opts;
    opts.argv = {env_or_throw("PRODUCTPAGE_BIN")};
    opts.argv.insert(opts.argv.end(), args.begin(), args.end());
    opts.env = app_environment(env);
    opts.stdout_path = opts.stderr_path = dir.file("run.log");
    Process p(opts);
    auto st = p.wait(Deadline(kTimeout));
    REQUIRE(st.has_value());
    return *st;
  };
  CHECK(run({"--bogus"}, {}).code == 2);
  CHECK(run({"--details", "no-port"}, {}).code == 2);
  CHECK(run({"--listen", "127.0.0.1:0"}, {"http_proxy=ftp://127.0.0.1:21"}).code == 2);
  CHECK(run({"--listen", "127.0.0.1:0"}, {"DETAILS_SERVICE_PORT=http"}).code == 2);
  ExitStatus help = run({"--help"}, {});
  CHECK(help.ok());
  CHECK(read_file(dir.file("run.log")).value_or("").find("--details HOST:PORT") !=
        std::string::npos);
}

}  // namespace
}  // namespace meshbox::test
