// Istio's Bookinfo tasks end to end on `meshbox run`: examples/bookinfo/mesh.toml — the file
// the README and `./dev demo` use — with its commands pointed at the built services and its
// gateway on a free port, then the task files of examples/bookinfo/tasks/ applied in turn
// with `meshbox apply --wait`, each checked the way Istio's task pages (and their test.sh)
// check it: which reviews version served the page, its stars, and the "unavailable" texts.
// Also: a sidecar's answer to an unknown host (outbound_traffic_policy), the time to the
// first good page and meshbox's memory under load (issue 5's two numbers), and a look at the
// page through headless Chromium when it is installed.
//
// Starting the mesh (meshbox, six services, six sidecars) is the expensive part, so the whole
// file shares one: the first test case that needs it starts it, and every case applies the
// task files it depends on itself, so each also passes alone (-tc=...).
#include <doctest/doctest.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

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

#if defined(__SANITIZE_ADDRESS__)
#define MB_BOOKINFO_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MB_BOOKINFO_ASAN 1
#endif
#endif
#if defined(MB_BOOKINFO_ASAN)
// Seven ASan processes start (meshbox and the six services), on CI's two cores: the bound
// on the first good page gets the same factor as meson's --timeout-multiplier.
constexpr int64_t kSlowdown = 3;
#else
constexpr int64_t kSlowdown = 1;
#endif
constexpr std::string_view kReviewsUnavailable =
    "Sorry, product reviews are currently unavailable for this book.";
constexpr std::string_view kRatingsUnavailable = "Ratings service is currently unavailable";

std::string env_or_throw(const char* name) {
  const char* v = ::getenv(name);
  if (!v || !*v) throw std::runtime_error(std::string("environment variable ") + name + " unset");
  return v;
}

size_t count_of(std::string_view text, std::string_view what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string_view::npos; at = text.find(what, at + 1))
    ++n;
  return n;
}

bool contains(std::string_view text, std::string_view what) {
  return text.find(what) != std::string_view::npos;
}

// Replaces every `from` by `to`; returns how many there were.
size_t replace_all(std::string& text, const std::string& from, const std::string& to) {
  size_t n = 0;
  for (size_t at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size())) {
    text.replace(at, from.size(), to);
    ++n;
  }
  return n;
}

constexpr std::string_view kFullStar = "class=\"glyphicon glyphicon-star\"";
constexpr std::string_view kEmptyStar = "class=\"glyphicon glyphicon-star-empty\"";

// Which reviews version rendered a product page, judged by "Reviews served by" and the
// stars together: "v1" (no stars), "v2" (9 full black stars, 1 empty), "v3" (the same in
// red); "?" for anything else (an error, stars that do not fit the version).
std::string page_version(const std::string& page) {
  if (!contains(page, "<title>Simple Bookstore App</title>")) return "?";
  if (!contains(page, "William Shakespeare")) return "?";  // details answered
  size_t full = count_of(page, kFullStar), empty = count_of(page, kEmptyStar);
  size_t black = count_of(page, "style=\"color:black\""),
         red = count_of(page, "style=\"color:red\"");
  if (contains(page, "Reviews served by: reviews-v1<")) return full == 0 && empty == 0 ? "v1" : "?";
  if (contains(page, "Reviews served by: reviews-v2<"))
    return full == 9 && empty == 1 && black == 10 && red == 0 ? "v2" : "?";
  if (contains(page, "Reviews served by: reviews-v3<"))
    return full == 9 && empty == 1 && red == 10 && black == 0 ? "v3" : "?";
  return "?";
}

// The mesh of examples/bookinfo/mesh.toml, started once for the whole file.
class Bookinfo {
 public:
  Bookinfo() : port_(free_port()) {
    std::string text = read_file(examples_dir() + "/mesh.toml").value_or("");
    REQUIRE_MESSAGE(!text.empty(), "cannot read " << examples_dir() << "/mesh.toml");
    // The services' programs by absolute path (the demo finds them on PATH instead).
    const std::pair<const char*, const char*> programs[] = {
        {"meshbox-productpage", "PRODUCTPAGE_BIN"},
        {"meshbox-details", "DETAILS_BIN"},
        {"meshbox-reviews", "REVIEWS_BIN"},
        {"meshbox-ratings", "RATINGS_BIN"}};
    for (const auto& [program, var] : programs)
      REQUIRE(replace_all(text, "command = [\"" + std::string(program) + "\"",
                          "command = [\"" + env_or_throw(var) + "\"") >= 1);
    REQUIRE(replace_all(text, "port = 8080, bind = \"127.0.0.1\"",
                        "port = " + std::to_string(port_) + ", bind = \"127.0.0.1\"") == 1);
    std::ofstream(dir_.file("mesh.toml")) << text;

    // Issue 5's first number: `meshbox run` started → the first good product page (title,
    // details and a reviews version that answered) through the gateway.
    auto start = Deadline::Clock::now();
    mesh_.emplace(dir_, MeshOptions{.paths = {dir_.file("mesh.toml")}, .log_level = "info"});
    gateway_ = "127.0.0.1:" + std::to_string(port_);
    Deadline deadline(20s);
    while (first_good_page_ms_ < 0 && !deadline.expired()) {
      if (page_version(get("/productpage").body) != "?")
        first_good_page_ms_ = ms_since(start);
      else
        poll_pause(10ms);
    }
    REQUIRE_MESSAGE(first_good_page_ms_ >= 0, "no good product page within 20 s");
    // Every instance in service (each passed its first health check), so round robin over
    // reviews sees all three versions.
    wait_all_ready();
  }

  ~Bookinfo() {
    if (mesh_ && mesh_->process().running()) {
      mesh_->process().signal(SIGTERM);
      if (!mesh_->process().wait(Deadline(20s))) mesh_->process().kill_and_wait();
    }
  }

  static std::string examples_dir() { return env_or_throw("BOOKINFO_DIR"); }
  static std::string task(const std::string& name) { return examples_dir() + "/tasks/" + name; }

  Mesh& mesh() { return *mesh_; }
  TempDir& dir() { return dir_; }
  const std::string& gateway() const { return gateway_; }
  int64_t first_good_page_ms() const { return first_good_page_ms_; }

  HttpResponse get(const std::string& target, const std::string& cookie = "",
                   Deadline deadline = Deadline(kTimeout)) const {
    std::string req =
        "GET " + target + " HTTP/1.1\r\nHost: bookinfo.example\r\nConnection: close\r\n";
    if (!cookie.empty()) req += "Cookie: " + cookie + "\r\n";
    return exchange(gateway_, req + "\r\n", deadline);
  }

  /// Logs in through the gateway (productpage's POST /login) and returns the session cookie.
  std::string login(const std::string& user) const {
    std::string body = "username=" + user + "&passwd=password";
    HttpResponse r =
        exchange(gateway_,
                 "POST /login HTTP/1.1\r\nHost: bookinfo.example\r\n"
                 "Connection: close\r\nReferer: http://bookinfo.example/productpage\r\n"
                 "Content-Type: application/x-www-form-urlencoded\r\n"
                 "Content-Length: " +
                     std::to_string(body.size()) + "\r\n\r\n" + body,
                 Deadline(kTimeout), "POST");
    REQUIRE_MESSAGE(r.status == 302, r.summary());
    const std::string* set_cookie = r.header("set-cookie");
    REQUIRE(set_cookie);
    return set_cookie->substr(0, set_cookie->find(';'));  // "user=jason"
  }

  /// `meshbox apply -f FILE --wait`: every worker serves it when this returns.
  void apply(const std::string& file) {
    RunResult r = mesh_->cli({"apply", "-f", file, "--wait"});
    REQUIRE_MESSAGE((r.status && r.status->ok()),
                    "meshbox apply -f " << file << ": " << r.out << r.err);
  }
  void apply_task(const std::string& name) { apply(task(name)); }

  /// Back to mesh.toml alone: no virtual service of the tasks.
  void reset() {
    for (const char* vs : {"productpage", "reviews", "ratings", "details"}) {
      RunResult r = mesh_->cli({"delete", "virtual_service", vs, "--wait"});
      REQUIRE(r.status);  // exit 1 when it was not there: fine
    }
  }

 private:
  void wait_all_ready() {
    Deadline deadline(20s);
    size_t ready = 0, total = 0;
    while (!deadline.expired()) {
      HttpResponse r = exchange(
          mesh_->admin(), "GET /workloads HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n",
          Deadline(kTimeout));
      std::optional<Json> j = parse_json(r.body);
      const Json* list = j && j->type == Json::Type::Array ? &*j : nullptr;
      ready = total = 0;
      if (list)
        for (const Json& w : list->array) {
          ++total;
          const Json* ok = w.get("ready");
          if (ok && ok->boolean) ++ready;
        }
      if (total == 6 && ready == 6) return;
      poll_pause(20ms);
    }
    FAIL("workloads ready: " << ready << " of " << total);
  }

  TempDir dir_;
  uint16_t port_;
  std::optional<Mesh> mesh_;
  std::string gateway_;
  int64_t first_good_page_ms_ = -1;
};

std::unique_ptr<Bookinfo>& instance() {
  static std::unique_ptr<Bookinfo> b;
  return b;
}

// The shared mesh, started by the first test case that asks for it. If starting it failed,
// the later cases fail at once instead of trying again.
Bookinfo& bookinfo() {
  static bool tried = false;
  if (!instance()) {
    REQUIRE_MESSAGE(!tried, "the Bookinfo mesh failed to start (see the first failure)");
    tried = true;
    instance() = std::make_unique<Bookinfo>();
  }
  return *instance();
}

// `n` requests for `target` from `threads` threads, each answer classified by `classify`.
std::map<std::string, int> classify_many(const Bookinfo& b, const std::string& target, int n,
                                         int threads,
                                         std::string (*classify)(const HttpResponse&)) {
  std::mutex mu;
  std::map<std::string, int> seen;
  std::atomic<int> next{0};
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&] {
      while (next.fetch_add(1) < n) {
        std::string c = classify(b.get(target));
        std::lock_guard lock(mu);
        ++seen[c];
      }
    });
  for (auto& t : pool)
    t.join();
  return seen;
}

// /api/v1/products/0/reviews: reviews' JSON passed through; the version is in the podname.
std::string api_version(const HttpResponse& r) {
  if (r.status != 200) return "status " + std::to_string(r.status);
  std::optional<Json> j = parse_json(r.body);
  const Json* pod = j ? j->get("podname") : nullptr;
  if (!pod) return "no podname";
  for (const char* v : {"v1", "v2", "v3"})
    if (pod->string == std::string("reviews-") + v) return v;
  return pod->string;
}

std::string page_of(const HttpResponse& r) {
  return r.status == 200 ? page_version(r.body) : "status " + std::to_string(r.status);
}

std::string summary(const std::map<std::string, int>& seen) {
  std::string s;
  for (const auto& [k, n] : seen)
    s += (s.empty() ? "" : ", ") + k + " " + std::to_string(n);
  return s;
}

// The pids of the services' processes (GET /workloads), in instance order.
std::vector<pid_t> workload_pids(Bookinfo& b) {
  HttpResponse w = exchange(b.mesh().admin(),
                            "GET /workloads HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n",
                            Deadline(kTimeout));
  std::optional<Json> j = parse_json(w.body);
  REQUIRE_MESSAGE((j && j->type == Json::Type::Array), w.summary() << ": " << w.body);
  std::vector<pid_t> pids;
  for (const Json& item : j->array)
    if (const Json* pid = item.get("pid"); pid && pid->number > 0)
      pids.push_back(static_cast<pid_t>(pid->number));
  return pids;
}

HttpResponse timed_get(const Bookinfo& b, const std::string& target, const std::string& cookie,
                       int64_t* ms) {
  auto start = Deadline::Clock::now();
  HttpResponse r = b.get(target, cookie, Deadline(15s));
  *ms = ms_since(start);
  return r;
}

}  // namespace

TEST_CASE("bookinfo: the first good page, then reviews v1, v2 and v3 in turn (no task applied)") {
  Bookinfo& b = bookinfo();
  MESSAGE("bookinfo: first good product page " << b.first_good_page_ms()
                                               << " ms after `meshbox run` started");
  CHECK(b.first_good_page_ms() < 2000 * kSlowdown);  // issue 5: 2 s
  b.reset();
  // mesh.toml's destination rule balances reviews round robin: every version within a few
  // pages, each with its stars (none, black, red).
  std::map<std::string, int> seen;
  for (int i = 0; i < 30 && seen.size() < 3; ++i)
    ++seen[page_of(b.get("/productpage"))];
  INFO(summary(seen));
  CHECK(seen["v1"] >= 1);
  CHECK(seen["v2"] >= 1);
  CHECK(seen["v3"] >= 1);
  CHECK(seen.size() == 3);  // nothing else: no error page
}

TEST_CASE("bookinfo: virtual-service-all-v1: every page from reviews v1, no stars") {
  Bookinfo& b = bookinfo();
  b.apply_task("virtual-service-all-v1.toml");
  std::map<std::string, int> seen = classify_many(b, "/productpage", 60, 2, page_of);
  INFO(summary(seen));
  CHECK(seen["v1"] == 60);
}

TEST_CASE("bookinfo: virtual-service-reviews-test-v2: jason gets v2 (black stars), others v1") {
  Bookinfo& b = bookinfo();
  b.apply_task("virtual-service-all-v1.toml");
  b.apply_task("virtual-service-reviews-test-v2.toml");
  std::string jason = b.login("jason");
  CHECK(jason == "user=jason");
  for (int i = 0; i < 10; ++i) {
    HttpResponse r = b.get("/productpage", jason);
    CHECK(contains(r.body, "Welcome jason"));
    CHECK(page_of(r) == "v2");
  }
  for (int i = 0; i < 10; ++i)
    CHECK(page_of(b.get("/productpage")) == "v1");
  // The match is exact and case-sensitive, as in Istio.
  std::string other = b.login("Jason");
  for (int i = 0; i < 5; ++i)
    CHECK(page_of(b.get("/productpage", other)) == "v1");
}

TEST_CASE("bookinfo: virtual-service-reviews-50-v3, then virtual-service-reviews-v3") {
  Bookinfo& b = bookinfo();
  b.apply_task("virtual-service-all-v1.toml");
  std::vector<pid_t> pids = workload_pids(b);
  b.apply_task("virtual-service-reviews-50-v3.toml");
  // The split is drawn at random for every call (as Envoy does), so the share's standard
  // deviation over N calls is 50/sqrt(N) points: 2,000 calls make ±5 points 4.5 sigma.
  constexpr int kCalls = 2000;
  auto start = Deadline::Clock::now();
  std::map<std::string, int> seen =
      classify_many(b, "/api/v1/products/0/reviews", kCalls, 4, api_version);
  double v3 = 100.0 * seen["v3"] / kCalls;
  MESSAGE("bookinfo: reviews-50-v3: " << summary(seen) << " (" << v3 << " % v3) in "
                                      << ms_since(start) << " ms");
  CHECK(seen["v1"] + seen["v3"] == kCalls);
  CHECK(v3 >= 45.0);
  CHECK(v3 <= 55.0);
  // The page agrees: red stars and none, nothing else.
  std::map<std::string, int> pages = classify_many(b, "/productpage", 40, 2, page_of);
  INFO(summary(pages));
  CHECK(pages["v1"] + pages["v3"] == 40);
  CHECK(pages["v1"] >= 1);
  CHECK(pages["v3"] >= 1);

  b.apply_task("virtual-service-reviews-v3.toml");
  seen = classify_many(b, "/productpage", 40, 2, page_of);
  INFO(summary(seen));
  CHECK(seen["v3"] == 40);
  CHECK(workload_pids(b) == pids);  // routes moved; no process was restarted
}

TEST_CASE("bookinfo: virtual-service-ratings-test-delay: jason's reviews time out in ~3 s") {
  Bookinfo& b = bookinfo();
  b.apply_task("virtual-service-all-v1.toml");
  b.apply_task("virtual-service-reviews-test-v2.toml");
  b.apply_task("virtual-service-ratings-test-delay.toml");
  std::string jason = b.login("jason");
  // reviews v2 waits up to 10 s for ratings, held 7 s by its sidecar; productpage gives up
  // on reviews after its own 3 s (both of its attempts share that budget in meshbox's
  // productpage; Istio's takes 2 × 3 s).
  int64_t ms = 0;
  HttpResponse r = timed_get(b, "/productpage", jason, &ms);
  MESSAGE("bookinfo: delay task: jason's page in " << ms << " ms");
  CHECK(r.status == 200);
  CHECK(contains(r.body, kReviewsUnavailable));
  CHECK(contains(r.body, "William Shakespeare"));  // details are not delayed
  CHECK(ms >= 2500);
  CHECK(ms <= 6000);
  // Everyone else: reviews v1, which never calls ratings: no delay at all.
  r = timed_get(b, "/productpage", "", &ms);
  CHECK(page_of(r) == "v1");
  CHECK(ms < 1000);
}

TEST_CASE("bookinfo: virtual-service-ratings-test-abort: jason sees ratings unavailable") {
  Bookinfo& b = bookinfo();
  b.apply_task("virtual-service-all-v1.toml");
  b.apply_task("virtual-service-reviews-test-v2.toml");
  b.apply_task("virtual-service-ratings-test-abort.toml");
  std::string jason = b.login("jason");
  int64_t ms = 0;
  HttpResponse r = timed_get(b, "/productpage", jason, &ms);
  CHECK(r.status == 200);
  CHECK(count_of(r.body, kRatingsUnavailable) == 2);  // one per review
  CHECK(contains(r.body, "Reviews served by: reviews-v2<"));
  CHECK(count_of(r.body, kFullStar) == 0);
  CHECK(ms < 1000);  // at once: the sidecar answers 500 without calling ratings
  r = b.get("/productpage");
  CHECK(page_of(r) == "v1");
  CHECK(!contains(r.body, kRatingsUnavailable));
}

TEST_CASE("bookinfo: virtual-service-reviews-timeout: a 0.5 s route timeout cuts a 2 s delay") {
  Bookinfo& b = bookinfo();
  b.apply_task("virtual-service-all-v1.toml");
  std::string jason = b.login("jason");
  // The task's step 3 first: reviews v2 and the 2 s ratings delay, no timeout yet. The page
  // works, black stars, in about 2 s.
  std::string text = read_file(Bookinfo::task("virtual-service-reviews-timeout.toml")).value_or("");
  REQUIRE(replace_all(text, "timeout = \"0.5s\"", "") == 1);
  std::ofstream(b.dir().file("reviews-no-timeout.toml")) << text;
  b.apply(b.dir().file("reviews-no-timeout.toml"));
  int64_t ms = 0;
  HttpResponse r = timed_get(b, "/productpage", jason, &ms);
  MESSAGE("bookinfo: timeout task: without the timeout, the page in " << ms << " ms");
  CHECK(page_of(r) == "v2");
  CHECK(ms >= 1900);
  CHECK(ms < 2900);

  // Step 4: the 0.5 s timeout. productpage's sidecar answers 504 after 0.5 s, productpage
  // tries again, and gives up: about 1 s.
  b.apply_task("virtual-service-reviews-timeout.toml");
  r = timed_get(b, "/productpage", jason, &ms);
  MESSAGE("bookinfo: timeout task: with timeout = \"0.5s\", jason's page in " << ms << " ms");
  CHECK(r.status == 200);
  CHECK(contains(r.body, kReviewsUnavailable));
  CHECK(ms >= 950);
  CHECK(ms < 2000);
  HttpResponse api = b.get("/api/v1/products/0/reviews", jason);
  CHECK(api.status == 504);  // the sidecar's answer to productpage's last attempt
}

TEST_CASE(
    "bookinfo: a call to a host outside the mesh: passed through, or 502 when registry_only") {
  Bookinfo& b = bookinfo();
  b.apply_task("virtual-service-all-v1.toml");
  // productpage's sidecar: what productpage's HTTP_PROXY points at.
  std::string outbound = b.mesh().listener_address("sidecar_productpage-v1_outbound");
  auto call = [&](const std::string& url, const std::string& host) {
    return exchange(outbound,
                    "GET " + url + " HTTP/1.1\r\nHost: " + host + "\r\nConnection: close\r\n\r\n",
                    Deadline(kTimeout));
  };
  HttpResponse known = call("http://reviews:9080/reviews/0", "reviews:9080");
  CHECK(known.status == 200);
  CHECK(contains(known.body, "\"podname\":\"reviews-v1\""));

  // allow_any (the default): a host outside the registry is called as is (Istio's
  // PassthroughCluster), here the gateway by its address.
  std::string outside = "http://" + b.gateway() + "/productpage";
  HttpResponse r = call(outside, b.gateway());
  INFO(r.summary());
  CHECK(r.status == 200);
  CHECK(page_of(r) == "v1");

  std::ofstream(b.dir().file("registry-only.toml"))
      << "[mesh]\nname = \"bookinfo\"\noutbound_traffic_policy = \"registry_only\"\n";
  b.apply(b.dir().file("registry-only.toml"));
  r = call("http://unknown.example:80/", "unknown.example");
  INFO(r.summary() << ": " << r.body);
  CHECK(r.status == 502);
  CHECK(contains(r.body, "outbound_traffic_policy is registry_only"));
  CHECK(call("http://reviews:9080/reviews/0", "reviews:9080").status == 200);  // still known

  CHECK(call(outside, b.gateway()).status == 502);

  std::ofstream(b.dir().file("allow-any.toml")) << "[mesh]\nname = \"bookinfo\"\n";
  b.apply(b.dir().file("allow-any.toml"));
  CHECK(call(outside, b.gateway()).status == 200);
}

// Issue 6's Bookinfo: STRICT mTLS everywhere, then Istio's HTTP authorization task in its
// four steps (authz-http/test.sh's checks), which ends with only productpage allowed to call
// reviews and details, then a rate limit on the gateway. Everything is removed again at the
// end: the later cases share the mesh.
TEST_CASE("bookinfo: STRICT mTLS, the authorization task, and a rate limit on the gateway") {
  Bookinfo& b = bookinfo();
  b.reset();
  b.apply_task("virtual-service-reviews-v3.toml");  // as Istio's test: red stars, calls ratings
  auto sidecar = [&](const std::string& listener) {
    std::string addr = b.mesh().listener_address(listener);
    REQUIRE_MESSAGE(!addr.empty(), listener);
    return addr;
  };
  auto call = [&](const std::string& from_outbound, const std::string& url) {
    std::string host = url.substr(7, url.find('/', 7) - 7);
    return exchange(from_outbound,
                    "GET " + url + " HTTP/1.1\r\nHost: " + host + "\r\nConnection: close\r\n\r\n",
                    Deadline(kTimeout));
  };
  std::string reviews_in = sidecar("sidecar_reviews-v3_inbound");
  std::string from_productpage = sidecar("sidecar_productpage-v1_outbound");
  std::string from_ratings = sidecar("sidecar_ratings-v1_outbound");

  // STRICT for the whole mesh: plain text to a sidecar is refused, mTLS between the sidecars
  // (and from the gateway) carries on.
  b.apply_task("peer-authentication-strict.toml");
  CHECK(eventually([&] { return call(reviews_in, "http://reviews:9080/reviews/0").status == 0; },
                   kTimeout));
  CHECK(page_of(b.get("/productpage")) == "v3");

  // Step 1: allow-nothing.
  b.apply_task("authorization-policy-allow-nothing.toml");
  HttpResponse r = b.get("/productpage");
  CHECK(r.status == 403);
  CHECK(contains(r.body, "RBAC: access denied"));
  // Step 2: productpage-viewer: the page, but its own calls are denied.
  b.apply_task("authorization-policy-productpage-viewer.toml");
  r = b.get("/productpage");
  CHECK(r.status == 200);
  CHECK(contains(r.body, "William Shakespeare"));
  CHECK(contains(r.body, "Error fetching product details"));
  CHECK(contains(r.body, "Error fetching product reviews"));
  // Step 3: details-viewer and reviews-viewer: only productpage's identity may call them.
  b.apply_task("authorization-policy-details-reviews-viewer.toml");
  r = b.get("/productpage");
  CHECK(r.status == 200);
  CHECK(!contains(r.body, "Error fetching product reviews"));
  CHECK(contains(r.body, kRatingsUnavailable));
  HttpResponse by_productpage = call(from_productpage, "http://reviews:9080/reviews/0");
  CHECK(by_productpage.status == 200);
  HttpResponse by_ratings = call(from_ratings, "http://reviews:9080/reviews/0");
  CHECK(by_ratings.status == 403);
  CHECK(contains(by_ratings.body, "RBAC: access denied"));
  // Step 4: ratings-viewer: the whole page again.
  b.apply_task("authorization-policy-ratings-viewer.toml");
  CHECK(page_of(b.get("/productpage")) == "v3");
  CHECK(call(from_ratings, "http://reviews:9080/reviews/0").status == 403);  // still

  // A rate limit on the gateway: 10 per second. A burst of 40 quick requests: at most the
  // bucket plus its fills get through, the rest 429.
  // The task's gateway on the test's port, as mesh.toml's.
  std::string gw = read_file(Bookinfo::task("gateway-rate-limit.toml")).value_or("");
  std::string port = b.gateway().substr(b.gateway().rfind(':') + 1);
  REQUIRE(replace_all(gw, "port = 8080,", "port = " + port + ",") == 1);
  std::ofstream(b.dir().file("gateway-rate-limit.toml")) << gw;
  b.apply(b.dir().file("gateway-rate-limit.toml"));
  auto start = Deadline::Clock::now();
  int ok = 0, limited = 0, other = 0;
  for (int i = 0; i < 40; ++i) {
    HttpResponse x = b.get("/api/v1/products");
    if (x.status == 200)
      ++ok;
    else if (x.status == 429 && contains(x.body, "local_rate_limited"))
      ++limited;
    else
      ++other;
  }
  int64_t ms = ms_since(start);
  MESSAGE("bookinfo: gateway rate limit 10/s: " << ok << " allowed, " << limited << " limited in "
                                                << ms << " ms");
  CHECK(other == 0);
  CHECK(limited > 0);
  CHECK(ok <= 10 + 10 * (ms / 1000 + 1));

  // Back to mesh.toml: the gateway without its limit, no policies.
  REQUIRE(replace_all(gw, "local_rate_limit = ", "# ") == 1);
  std::ofstream(b.dir().file("gateway.toml")) << gw;
  b.apply(b.dir().file("gateway.toml"));
  for (const char* name : {"allow-nothing", "productpage-viewer", "details-viewer",
                           "reviews-viewer", "ratings-viewer"}) {
    RunResult d = b.mesh().cli({"delete", "authorization_policy", name, "--wait"});
    CHECK_MESSAGE((d.status && d.status->ok()), name << ": " << d.out << d.err);
  }
  RunResult d =
      b.mesh().cli({"delete", "peer_authentication", "default", "-n", "istio-system", "--wait"});
  CHECK_MESSAGE((d.status && d.status->ok()), d.out << d.err);
  for (int i = 0; i < 15; ++i)
    CHECK(b.get("/api/v1/products").status == 200);
  CHECK(call(reviews_in, "http://reviews:9080/reviews/0").status == 200);  // plain text again
}

TEST_CASE("bookinfo: meshbox's memory while 4 clients load the gateway for 2 s") {
  Bookinfo& b = bookinfo();
  b.reset();
  std::atomic<bool> stop{false};
  std::atomic<int> ok{0}, failed{0};
  std::vector<std::thread> clients;
  for (int t = 0; t < 4; ++t)
    clients.emplace_back([&] {
      while (!stop.load())
        (page_of(b.get("/productpage")) != "?" ? ok : failed).fetch_add(1);
    });
  // Sample VmRSS while the load runs (a deadline-bounded loop with a pause between samples).
  int64_t peak_kib = 0;
  Deadline load(2s);
  while (!load.expired()) {
    peak_kib = std::max(peak_kib, proc_status_kib(b.mesh().process().pid(), "VmRSS"));
    poll_pause(50ms);
  }
  stop = true;
  for (auto& t : clients)
    t.join();
  MESSAGE("bookinfo: meshbox RSS under load: peak " << peak_kib / 1024 << " MiB (" << peak_kib
                                                    << " KiB), " << ok.load() << " pages in 2 s, "
                                                    << failed.load() << " bad"
                                                    << " (control plane, 6 sidecars, gateway)");
  CHECK(peak_kib > 0);
  CHECK(failed.load() == 0);
  CHECK(ok.load() > 0);
#if defined(MB_BOOKINFO_ASAN)
  MESSAGE("ASan build: the 30 MiB bound is not checked (shadow memory, quarantine)");
#else
  CHECK(peak_kib < 30 * 1024);  // issue 5
#endif
}

TEST_CASE("bookinfo: headless Chromium renders the product page (red stars from v3)") {
  std::string chromium;
  for (const char* p : {"/usr/bin/chromium", "/usr/bin/chromium-browser"})
    if (::access(p, X_OK) == 0) chromium = p;
  if (chromium.empty()) {
    MESSAGE("chromium is not installed: the browser check is skipped");
    return;
  }
  Bookinfo& b = bookinfo();
  b.apply_task("virtual-service-all-v1.toml");
  b.apply_task("virtual-service-reviews-v3.toml");
  std::string url = "http://" + b.gateway() + "/productpage";
  auto run_chromium = [&](const std::string& what, const std::string& out) {
    SpawnOptions spawn;
    spawn.argv = {chromium,
                  "--headless",
                  "--no-sandbox",
                  "--disable-gpu",
                  "--no-first-run",
                  "--no-proxy-server",
                  "--user-data-dir=" + b.dir().file("chromium-profile"),
                  "--window-size=1024,768",
                  what,
                  url};
    spawn.stdout_path = out;
    spawn.stderr_path = b.dir().file("chromium.log");
    auto start = Deadline::Clock::now();
    Process p(spawn);
    std::optional<ExitStatus> st = p.wait(Deadline(30s));
    MESSAGE("bookinfo: chromium " << what << " took " << ms_since(start) << " ms");
    REQUIRE_MESSAGE(st, "chromium " << what << " still running after 30 s");
    REQUIRE_MESSAGE(st->ok(), "chromium " << what << ": " << st->describe() << "\n"
                                          << read_file_tail(b.dir().file("chromium.log")));
  };

  std::string png = b.dir().file("productpage.png");
  run_chromium("--screenshot=" + png, b.dir().file("chromium.out"));
  std::string image = read_file(png).value_or("");
  REQUIRE_MESSAGE(image.size() > 24,
                  "no screenshot: " << read_file_tail(b.dir().file("chromium.log")));
  CHECK(image.substr(0, 8) == "\x89PNG\r\n\x1a\n");
  auto be32 = [&](size_t at) {
    return (uint32_t(uint8_t(image[at])) << 24) | (uint32_t(uint8_t(image[at + 1])) << 16) |
           (uint32_t(uint8_t(image[at + 2])) << 8) | uint32_t(uint8_t(image[at + 3]));
  };
  CHECK(image.substr(12, 4) == "IHDR");
  CHECK(be32(16) == 1024);  // width
  CHECK(be32(20) == 768);   // height
  MESSAGE("bookinfo: screenshot " << image.size() << " bytes");
  CHECK(image.size() > 10'000);  // a rendered page (~75 KB), not a blank one (~4 KB)

  std::string dom_path = b.dir().file("productpage.html");
  run_chromium("--dump-dom", dom_path);
  std::string dom = read_file(dom_path).value_or("");
  INFO(dom.substr(0, 2000));
  CHECK(contains(dom, "<title>Simple Bookstore App</title>"));
  CHECK(contains(dom, "The Comedy of Errors"));
  CHECK(contains(dom, "Reviews served by: reviews-v3"));
  CHECK(count_of(dom, kFullStar) == 9);
  CHECK(contains(dom, "color:red"));
}

TEST_CASE(
    "bookinfo: a real Prometheus scrapes meshbox; PromQL gives requests per reviews version") {
  Bookinfo& b = bookinfo();
  b.reset();
  // Prometheus (Debian's) scraping the admin API every second, its data in the test's dir.
  uint16_t port = free_port();
  std::string prom = "127.0.0.1:" + std::to_string(port);
  std::ofstream(b.dir().file("prometheus.yml"))
      << "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
      << "scrape_configs:\n  - job_name: meshbox\n    metrics_path: /stats/prometheus\n"
      << "    static_configs:\n      - targets: ['" << b.mesh().admin() << "']\n";
  Process server(SpawnOptions{
      .argv = {"prometheus", "--config.file=" + b.dir().file("prometheus.yml"),
               "--storage.tsdb.path=" + b.dir().file("tsdb"), "--web.listen-address=" + prom},
      .stdout_path = b.dir().file("prometheus.log"),
      .stderr_path = b.dir().file("prometheus.log"),
      .env = {}});
  for (int i = 0; i < 30; ++i)
    CHECK(b.get("/productpage").status == 200);
  // The dashboards' query: requests to reviews per version, as the destination saw them.
  const std::string query =
      "/api/v1/query?query=sum%20by%20(destination_version)%20(istio_requests_total%7B"
      "destination_service_name%3D%22reviews%22%2Creporter%3D%22destination%22%7D)";
  std::string body;
  bool answered = eventually(
      [&] {
        HttpResponse r =
            exchange(prom, "GET " + query + " HTTP/1.1\r\nHost: prom\r\nConnection: close\r\n\r\n",
                     Deadline(kTimeout));
        body = r.body;
        return r.status == 200 && contains(body, "\"destination_version\":\"v1\"") &&
               contains(body, "\"destination_version\":\"v2\"") &&
               contains(body, "\"destination_version\":\"v3\"");
      },
      20s);
  CHECK_MESSAGE(answered, body << "\n" << read_file(b.dir().file("prometheus.log")).value_or(""));
  CHECK(contains(body, "\"status\":\"success\""));
  // productpage → reviews: 30 pages, each one call to reviews.
  std::optional<Json> doc = parse_json(body);
  double total = 0;
  if (doc)
    if (const Json* result = doc->get("data") ? doc->get("data")->get("result") : nullptr)
      for (const Json& series : result->array)
        if (const Json* v = series.get("value"); v && v->array.size() == 2)
          total += std::stod(v->array[1].string);
  MESSAGE("bookinfo: Prometheus counted " << total << " requests to reviews");
  CHECK(total >= 30);
  server.signal(SIGTERM);
  CHECK(server.wait(Deadline(kTimeout)));
}

TEST_CASE("bookinfo: SIGTERM stops every service, then meshbox, exit 0") {
  Bookinfo& b = bookinfo();
  std::vector<pid_t> pids = workload_pids(b);
  CHECK(pids.size() == 6);
  auto start = Deadline::Clock::now();
  REQUIRE(b.mesh().process().signal(SIGTERM));
  std::optional<ExitStatus> st = b.mesh().process().wait(Deadline(20s));
  MESSAGE("bookinfo: meshbox stopped " << ms_since(start) << " ms after SIGTERM");
  REQUIRE(st);
  CHECK(st->ok());
  for (pid_t pid : pids)
    CHECK_MESSAGE(::kill(pid, 0) != 0, "service process " << pid << " outlived meshbox");
  instance().reset();
}

}  // namespace meshbox::test
