// The release strategies of examples/release/, end to end: blue-green, canary, A/B test and
// rolling update, each run from the example's own TOML files with real `meshbox run`,
// `meshbox apply`/`delete` and meshbox-httpbin backends, under load where the strategy
// promises something under load. The examples use fixed ports (the gateway on 8080, the
// backends on 9001…); the test copies the files with those ports replaced by its own, so the
// READMEs and this test run the same config, started the same way: `meshbox run mesh.toml`,
// then the routing or the instances through `meshbox apply`.
//
// What each request saw is counted by phase (test/support/load.h): a request counts in the
// phase current when it was sent, and a phase that ends is drained (every request of it
// answered) before the next change starts. So "after the change" means exactly the requests
// sent after the command returned, and "before" the ones answered before it started.
#include <doctest/doctest.h>

#include <cctype>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <thread>

#include "test/support/deadline.h"
#include "test/support/http_response.h"
#include "test/support/json.h"
#include "test/support/load.h"
#include "test/support/mesh.h"
#include "test/support/meshbox.h"

namespace meshbox::test {
namespace {

namespace fs = std::filesystem;

constexpr auto kTimeout = 30s;  // for any one wait; a passing run needs far less
constexpr uint16_t kGatewayPort = 8080;
// Ports the examples give their backends. A number in this range left in a file after the
// substitution is a port the test does not know: the example and the test disagree.
constexpr uint16_t kFirstBackendPort = 9001, kLastBackendPort = 9099;

fs::path release_dir() {
  return fs::path(source_dir()) / "examples" / "release";
}

// `text` with every example port (whole numbers only) replaced by the test's. Sets *error
// for an example port that has no replacement.
std::string substitute_ports(std::string_view text, const std::map<uint16_t, uint16_t>& ports,
                             std::string* error) {
  std::string out;
  size_t i = 0;
  while (i < text.size()) {
    if (!std::isdigit(static_cast<unsigned char>(text[i]))) {
      out += text[i++];
      continue;
    }
    size_t end = i;
    while (end < text.size() && std::isdigit(static_cast<unsigned char>(text[end])))
      ++end;
    std::string_view number = text.substr(i, end - i);
    uint64_t n = number.size() <= 5 ? std::stoull(std::string(number)) : 0;
    auto it = ports.find(static_cast<uint16_t>(n));
    if (n <= 65535 && it != ports.end()) {
      out += std::to_string(it->second);
    } else {
      if (n == kGatewayPort || (n >= kFirstBackendPort && n <= kLastBackendPort))
        *error += "example port " + std::string(number) + " has no replacement; ";
      out += number;
    }
    i = end;
  }
  return out;
}

// One example directory, run the way its README runs it: its backends (meshbox-httpbin on
// port 0, each standing in for the example's fixed port), its files with the ports replaced,
// and `meshbox run` on them.
class Example {
 public:
  explicit Example(const std::string& name) : src_(release_dir() / name) {
    ports_[kGatewayPort] = free_port();
  }

  /// Starts the backend NAME the example expects on `example_port`.
  Httpbin& start_backend(uint16_t example_port, const std::string& name) {
    auto b = std::make_unique<Httpbin>(dir_, name);
    const std::string& a = b->address();
    ports_[example_port] = static_cast<uint16_t>(std::stoi(a.substr(a.rfind(':') + 1)));
    Httpbin& ref = *b;
    backends_[name] = std::move(b);
    return ref;
  }
  Httpbin& backend(const std::string& name) { return *backends_.at(name); }

  /// The example's file with the test's ports, written to the temp dir's `sub` directory;
  /// its path. Files for `meshbox apply` go to "apply", never where `meshbox run`'s files
  /// are: meshbox watches those, and rewriting one would reload it.
  std::string file(const std::string& name, const std::string& sub = "apply") {
    std::optional<std::string> text = read_file((src_ / name).string());
    REQUIRE_MESSAGE(text, "cannot read " << (src_ / name).string());
    std::string error;
    std::string out = substitute_ports(*text, ports_, &error);
    REQUIRE_MESSAGE(error.empty(), (src_ / name).string() << ": " << error);
    fs::create_directories(dir_.file(sub));
    std::string path = dir_.file(sub + "/" + name);
    std::ofstream(path, std::ios::trunc) << out;
    return path;
  }

  /// `meshbox run FILES…` (two workers, as small machines have).
  Mesh& run(const std::vector<std::string>& files) {
    std::vector<std::string> paths;
    for (const auto& f : files)
      paths.push_back(file(f, "run"));
    mesh_.emplace(dir_, MeshOptions{.paths = paths, .log_level = "info"});
    return *mesh_;
  }
  Mesh& mesh() { return *mesh_; }

  std::string gateway() const { return "127.0.0.1:" + std::to_string(ports_.at(kGatewayPort)); }

 private:
  fs::path src_;
  TempDir dir_;
  std::map<uint16_t, uint16_t> ports_;  // example port → the test's
  std::map<std::string, std::unique_ptr<Httpbin>> backends_;
  std::optional<Mesh> mesh_;
};

std::string describe(const RunResult& r) {
  return (r.status ? r.status->describe() : "still running at the deadline (killed)") +
         "\nstdout: " + r.out + "\nstderr: " + r.err;
}

// GET PATH on the admin API.
std::optional<Json> admin_get(Mesh& mesh, const std::string& path, int* status = nullptr) {
  HttpResponse r = exchange(mesh.admin(),
                            "GET " + path + " HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n",
                            Deadline(kTimeout));
  if (status) *status = r.status;
  return parse_json(r.body);
}

// The newest snapshot version every worker has applied (GET /ready).
uint64_t applied_version(Mesh& mesh) {
  auto j = admin_get(mesh, "/ready");
  const Json* v = j ? j->get("applied_version") : nullptr;
  return v ? static_cast<uint64_t>(v->number) : 0;
}

// `meshbox ARGS --wait`, which returns once every worker serves the change. Checks that it
// did: GET /ready then reports every worker on the newest snapshot. Returns how long the
// command took, in ms.
int64_t change_and_wait(Mesh& mesh, std::vector<std::string> args) {
  args.push_back("--wait");
  auto t0 = Deadline::Clock::now();
  RunResult r = mesh.cli(args);
  int64_t ms = ms_since(t0);
  INFO(describe(r));
  REQUIRE(r.status);
  REQUIRE(r.status->ok());
  int status = 0;
  auto ready = admin_get(mesh, "/ready", &status);
  INFO("GET /ready: " << status);
  REQUIRE(ready);
  CHECK(status == 200);
  const Json* version = ready->get("version");
  REQUIRE(version);
  CHECK(applied_version(mesh) >= static_cast<uint64_t>(version->number));
  return ms;
}

// `meshbox apply -f FILE --wait -o json`; checks that every worker applied at least the
// snapshot version the answer names.
int64_t apply_file(Example& ex, const std::string& file) {
  Mesh& mesh = ex.mesh();
  auto t0 = Deadline::Clock::now();
  RunResult r = mesh.cli({"apply", "-f", ex.file(file), "--wait", "-o", "json"});
  int64_t ms = ms_since(t0);
  INFO(file << ": " << describe(r));
  REQUIRE(r.status);
  REQUIRE(r.status->ok());
  auto answer = parse_json(r.out);
  REQUIRE(answer);
  const Json* version = answer->get("version");
  REQUIRE(version);
  CHECK(applied_version(mesh) >= static_cast<uint64_t>(version->number));
  return ms;
}

// The phases of a change under load: the current phase is closed (every request of it
// answered) before the change starts, requests sent while it runs count in phase+1, and
// phase+2 starts once it returned. Returns the new phase.
template <typename Change>
int change_under_load(LoadLoop& load, int phase, Change&& change) {
  REQUIRE(load.set_phase(phase + 1, Deadline(kTimeout)));
  change();
  REQUIRE(load.set_phase(phase + 2, Deadline(kTimeout)));
  return phase + 2;
}

// Fails with the load's story.
void check_no_failures(const LoadLoop& load) {
  LoadCounts all = load.total();
  std::string failures;
  for (const auto& f : load.failures())
    failures += "\nfailure: " + f;
  INFO(load.summary() << failures);
  CHECK(all.failed == 0);
  CHECK(all.ok > 0);
}

// ---------------------------------------------------------------------------------------

TEST_CASE("release: every examples/release config validates clean") {
  struct Config {
    std::string example;
    std::vector<std::string> files;  // what `meshbox run` starts with, plus what is applied
  };
  const std::vector<Config> configs = {
      {"blue-green", {"mesh.toml", "blue.toml"}},
      {"blue-green", {"mesh.toml", "green.toml"}},
      {"canary", {"mesh.toml", "canary-0.toml"}},
      {"canary", {"mesh.toml", "canary-10.toml"}},
      {"canary", {"mesh.toml", "canary-50.toml"}},
      {"canary", {"mesh.toml", "canary-100.toml"}},
      {"ab-test", {"mesh.toml"}},
      {"blue-green", {"mesh.toml"}},
      {"canary", {"mesh.toml"}},
      {"rolling", {"mesh.toml"}},
      {"rolling", {"mesh.toml", "web-v1.toml", "web-v2-1.toml", "web-v2-2.toml", "web-v2-3.toml"}},
  };
  std::set<fs::path> covered;
  TempDir dir;
  for (const auto& c : configs) {
    std::vector<std::string> args = {"validate"};
    for (const auto& f : c.files) {
      fs::path p = release_dir() / c.example / f;
      args.push_back(p.string());
      covered.insert(p);
    }
    CAPTURE(c.example);
    RunResult r = run_meshbox(args, dir, Deadline(kTimeout));
    INFO(describe(r));
    CHECK((r.status && r.status->ok()));
    CHECK(r.out.starts_with("ok: "));
    CHECK(r.out.find("warning") == std::string::npos);
  }
  // Every TOML file of every example is in one of the configs above, and has a README.
  int examples = 0;
  for (const auto& d : fs::directory_iterator(release_dir())) {
    if (!d.is_directory()) continue;
    ++examples;
    CHECK_MESSAGE(fs::exists(d.path() / "README.md"), d.path().string() << " has no README.md");
    for (const auto& f : fs::directory_iterator(d.path()))
      if (f.path().extension() == ".toml")
        CHECK_MESSAGE(covered.count(f.path()), f.path().string() << " is not validated here");
  }
  CHECK(examples == 4);
}

TEST_CASE("release: blue-green switches all to green and back, one apply each, losing none") {
  Example ex("blue-green");
  ex.start_backend(9001, "web-blue");
  ex.start_backend(9002, "web-green");
  ex.run({"mesh.toml"});
  apply_file(ex, "blue.toml");
  LoadLoop load({.address = ex.gateway()});

  // Blue serves everything before the switch.
  constexpr uint64_t kSamples = 1000;
  REQUIRE(load.wait_for(0, kSamples, Deadline(kTimeout)));
  int phase = 0;
  struct Switch {
    std::string file, live;
  };
  // To green and back, three times over.
  const Switch to_green{"green.toml", "web-green"}, to_blue{"blue.toml", "web-blue"};
  for (const Switch& s : {to_green, to_blue, to_green, to_blue, to_green, to_blue}) {
    int64_t ms = 0;
    phase = change_under_load(load, phase, [&] { ms = apply_file(ex, s.file); });
    MESSAGE("meshbox apply -f " << s.file << " --wait: " << ms << " ms");
    // Every request sent after the apply returned reaches the new live version.
    REQUIRE(load.wait_for(phase, kSamples, Deadline(kTimeout)));
    REQUIRE(load.set_phase(phase + 1, Deadline(kTimeout)));  // phase `phase` is final
    LoadCounts after = load.counts(phase);
    INFO("after " << s.file << ": " << after.summary());
    CHECK(after.failed == 0);
    CHECK(after.of(s.live) == after.ok);
    phase += 1;
  }
  load.stop();
  MESSAGE("blue-green:\n" << load.summary());
  LoadCounts before = load.counts(0);
  INFO("before: " << before.summary());
  CHECK(before.of("web-blue") == before.ok);
  check_no_failures(load);
  // A switch costs no connection either: the clients kept theirs all along.
  CHECK(load.reconnects() == 0);
}

TEST_CASE("release: blue-green: a request in flight during the switch finishes on blue") {
  Example ex("blue-green");
  Httpbin& blue = ex.start_backend(9001, "web-blue");
  ex.start_backend(9002, "web-green");
  ex.run({"mesh.toml"});
  apply_file(ex, "blue.toml");

  // A slow request reaches blue…
  constexpr int kDelayMs = 2000;
  int64_t before = blue.stats().requests_total;
  HttpResponse slow;
  Deadline::Clock::time_point answered;
  std::thread client([&] {
    slow = exchange(ex.gateway(),
                    "GET /delay/" + std::to_string(kDelayMs) +
                        " HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n",
                    Deadline(kTimeout));
    answered = Deadline::Clock::now();
  });
  // …as blue's request counter shows: each /stats request counts itself, so it is ahead of
  // the polls by one once the slow request is there.
  bool arrived = false;
  Deadline d(kTimeout);
  for (int64_t polls = 1; !arrived && !d.expired(); ++polls) {
    arrived = blue.stats().requests_total >= before + polls + 1;
    if (!arrived) poll_pause(5ms);
  }
  // …the switch happens while it is in flight…
  int64_t ms = 0;
  if (arrived) ms = apply_file(ex, "green.toml");
  auto switched = Deadline::Clock::now();
  client.join();
  REQUIRE(arrived);
  INFO("apply took " << ms << " ms; " << slow.summary());
  REQUIRE(answered > switched);  // the apply returned while the request was still in flight
  // …and it is answered by blue, whole; a new request goes to green.
  REQUIRE(slow.complete);
  CHECK(slow.status == 200);
  REQUIRE(slow.header("x-backend-name"));
  CHECK(*slow.header("x-backend-name") == "web-blue");
  CHECK(slow.body == "delayed " + std::to_string(kDelayMs) + " ms\n");
  HttpResponse next =
      exchange(ex.gateway(), "GET / HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n",
               Deadline(kTimeout));
  CHECK(next.status == 200);
  CHECK(next.body == "hello from web-green\n");
}

TEST_CASE("release: canary at 10 %, 50 %, 100 %, each step measured, then rolled back") {
  Example ex("canary");
  ex.start_backend(9001, "web-v1");
  ex.start_backend(9002, "web-v2");
  ex.run({"mesh.toml"});
  apply_file(ex, "canary-0.toml");
  LoadLoop load({.address = ex.gateway()});

  // Each step's share of the canary over kSamples requests sent after its apply returned.
  // The canary count is Binomial(n, p): at p = 50 % its standard deviation is
  // sqrt(6000 × 0.25) = 38.7 requests, 0.65 points, so ±3 points is 4.6 sd (a correct split
  // fails about once in 200,000 runs); at 10 %, 0.39 points (7.7 sd). A split 4 points off
  // (54 % or 14 %) fails 94 % and over 99 % of the time.
  constexpr uint64_t kSamples = 6000;
  constexpr double kTolerance = 3.0;
  REQUIRE(load.wait_for(0, 1000, Deadline(kTimeout)));
  int phase = 0;
  for (int percent : {10, 50, 100, 0}) {
    std::string file = "canary-" + std::to_string(percent) + ".toml";
    phase = change_under_load(load, phase, [&] { apply_file(ex, file); });
    REQUIRE(load.wait_for(phase, kSamples, Deadline(kTimeout)));
    REQUIRE(load.set_phase(phase + 1, Deadline(kTimeout)));
    LoadCounts c = load.counts(phase);
    double share = c.percent("web-v2");
    MESSAGE(file << ": canary " << share << " % of " << c.ok << " (" << c.summary() << ")");
    CHECK(c.failed == 0);
    CHECK(c.of("web-v1") + c.of("web-v2") == c.ok);
    if (percent == 0 || percent == 100) {
      CHECK(share == static_cast<double>(percent));  // exactly: nothing to chance
    } else {
      CHECK(std::abs(share - percent) <= kTolerance);
    }
    phase += 1;
  }
  load.stop();
  LoadCounts start = load.counts(0);
  INFO("canary-0 at the start: " << start.summary());
  CHECK(start.of("web-v1") == start.ok);
  check_no_failures(load);
  CHECK(load.reconnects() == 0);
}

TEST_CASE("release: A/B test sends group B by header or cookie, everyone else to A") {
  Example ex("ab-test");
  ex.start_backend(9001, "web-a");
  ex.start_backend(9002, "web-b");
  ex.run({"mesh.toml"});

  struct Case {
    std::vector<std::string> headers;
    std::string want;
  };
  const std::vector<Case> cases = {
      {{}, "web-a"},
      {{"x-group: b"}, "web-b"},
      {{"X-Group: b"}, "web-b"},  // header names compare without case
      {{"x-group: a"}, "web-a"},
      {{"x-group: B"}, "web-a"},  // values compare with case
      {{"x-group: bb"}, "web-a"},
      {{"x-group: "}, "web-a"},
      {{"Cookie: group=b"}, "web-b"},
      {{"Cookie: theme=dark; group=b"}, "web-b"},  // last, after "; " as browsers send it
      {{"Cookie: theme=dark;group=b"}, "web-b"},
      {{"Cookie: group=b; theme=dark"}, "web-b"},  // first
      {{"Cookie: a=1; group=b; theme=dark"}, "web-b"},
      {{"Cookie: group=a"}, "web-a"},
      {{"Cookie: group=bb"}, "web-a"},   // the whole value must match: not a prefix
      {{"Cookie: mygroup=b"}, "web-a"},  // nor a suffix of another cookie's name
      {{"Cookie: theme=group=b"}, "web-a"},
      {{"Cookie: theme=dark"}, "web-a"},
      {{"x-group: a", "Cookie: group=b"}, "web-b"},  // either one puts the client in B
      {{"x-group: b", "Cookie: group=a"}, "web-b"},
  };
  for (const Case& c : cases) {
    std::string req = "GET / HTTP/1.1\r\nHost: web.example.com\r\nConnection: close\r\n";
    for (const auto& h : c.headers)
      req += h + "\r\n";
    // Both workers route alike; a few requests each land on either.
    for (int i = 0; i < 4; ++i) {
      HttpResponse r = exchange(ex.gateway(), req + "\r\n", Deadline(kTimeout));
      INFO(req << r.summary());
      REQUIRE(r.complete);
      CHECK(r.status == 200);
      const std::string* b = r.header("x-backend-name");
      REQUIRE(b);
      CHECK(*b == c.want);
      CHECK(r.body == "hello from " + c.want + "\n");
    }
  }

  // Under load, the rest is all A and the B clients all B: two loops side by side.
  LoadLoop rest({.address = ex.gateway(), .clients = 2});
  LoadLoop group_b({.address = ex.gateway(),
                    .clients = 2,
                    .request = "GET / HTTP/1.1\r\nHost: example.com\r\n"
                               "Cookie: session=42; group=b; lang=en\r\n\r\n"});
  REQUIRE(rest.wait_for(0, 500, Deadline(kTimeout)));
  REQUIRE(group_b.wait_for(0, 500, Deadline(kTimeout)));
  rest.stop();
  group_b.stop();
  LoadCounts a = rest.total(), b = group_b.total();
  INFO("rest: " << a.summary() << "; group b: " << b.summary());
  CHECK(a.failed == 0);
  CHECK(b.failed == 0);
  CHECK(a.of("web-a") == a.ok);
  CHECK(b.of("web-b") == b.ok);
}

TEST_CASE("release: rolling update replaces 3 × v1 by 3 × v2 one by one under load, losing none") {
  Example ex("rolling");
  for (int i = 1; i <= 3; ++i)
    ex.start_backend(static_cast<uint16_t>(9000 + i), "web-v1-" + std::to_string(i));
  ex.run({"mesh.toml"});
  apply_file(ex, "web-v1.toml");
  LoadLoop load({.address = ex.gateway()});
  constexpr uint64_t kSamples = 600;  // per phase: about 150 for each of 4 endpoints

  std::set<std::string> serving = {"web-v1-1", "web-v1-2", "web-v1-3"};
  // The phase just closed was served by exactly the instances in `serving`, each of them.
  auto check_phase = [&](int phase, const std::string& after) {
    LoadCounts c = load.counts(phase);
    INFO("after " << after << ": " << c.summary());
    CHECK(c.failed == 0);
    std::set<std::string> seen;
    for (const auto& [name, n] : c.backends)
      if (n > 0) seen.insert(name);
    CHECK(seen == serving);
  };
  int phase = 0;
  REQUIRE(load.wait_for(phase, kSamples, Deadline(kTimeout)));
  REQUIRE(load.set_phase(++phase, Deadline(kTimeout)));
  check_phase(phase - 1, "start");

  for (int i = 1; i <= 3; ++i) {
    std::string old_name = "web-v1-" + std::to_string(i);
    std::string new_name = "web-v2-" + std::to_string(i);
    // 1. The new instance's process, then its workload: it serves from its first request.
    ex.start_backend(static_cast<uint16_t>(9010 + i), new_name);
    int64_t add_ms = 0;
    phase = change_under_load(load, phase, [&] { add_ms = apply_file(ex, new_name + ".toml"); });
    serving.insert(new_name);
    REQUIRE(load.wait_for(phase, kSamples, Deadline(kTimeout)));
    REQUIRE(load.set_phase(++phase, Deadline(kTimeout)));
    check_phase(phase - 1, "adding " + new_name);

    // 2. An old instance leaves the service; once every worker serves that, meshbox has
    // closed its pooled connections to it (a request still in flight would finish first).
    int64_t remove_ms = 0;
    phase = change_under_load(load, phase, [&] {
      remove_ms = change_and_wait(ex.mesh(), {"delete", "workload", old_name});
    });
    serving.erase(old_name);
    MESSAGE("step " << i << ": apply " << new_name << " " << add_ms << " ms, delete " << old_name
                    << " " << remove_ms << " ms");
    Httpbin& old = ex.backend(old_name);
    Deadline drained(kTimeout);
    HttpbinStats st;
    while (!drained.expired()) {
      st = old.stats();
      if (st.connections_active == 1) break;  // the /stats connection itself
      poll_pause(10ms);
    }
    INFO(old_name << " after its removal: " << st.connections_active << " connections active, "
                  << st.requests_total << " requests");
    CHECK(st.connections_active == 1);
    // … and sends it nothing more: only our own /stats requests reach it while the load runs.
    uint64_t sent = load.counts(phase).total();
    REQUIRE(load.wait_for(phase, sent + 200, Deadline(kTimeout)));
    HttpbinStats later = old.stats();
    CHECK(later.requests_total == st.requests_total + 1);
    CHECK(later.connections_total == st.connections_total + 1);

    // 3. Now its process may stop, under load.
    REQUIRE(old.process().signal(SIGTERM));
    auto exit = old.process().wait(Deadline(kTimeout));
    REQUIRE(exit);
    CHECK(exit->ok());
    REQUIRE(load.wait_for(phase, kSamples, Deadline(kTimeout)));
    REQUIRE(load.set_phase(++phase, Deadline(kTimeout)));
    check_phase(phase - 1, "removing " + old_name);
  }
  load.stop();
  MESSAGE("rolling:\n" << load.summary());
  CHECK(serving == std::set<std::string>{"web-v2-1", "web-v2-2", "web-v2-3"});
  check_no_failures(load);
  CHECK(load.reconnects() == 0);
}

}  // namespace
}  // namespace meshbox::test
