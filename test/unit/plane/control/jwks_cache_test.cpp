// Tests for plane/control/jwks_cache.h on a real loop: an HttpServer on 127.0.0.1:0 serves
// the key sets (or fails to), and files in a temp dir stand for file:// URIs. Fetches run in
// the background: the first get() starts one, on_change says when a set arrived. Every test
// ends with the loop closed clean.
#include "plane/control/jwks_cache.h"

#include <doctest/doctest.h>

#include <fstream>

#include "plane/control/http_server.h"
#include "test/support/files.h"
#include "test/support/test_loop.h"

namespace meshbox::control {
namespace {

using loop::run_until;
using test::TempDir;

constexpr const char* kJwks =
    R"({"keys":[{"kty":"EC","crv":"P-256","x":"MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4","y":"4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM","kid":"k"}]})";
constexpr const char* kJwks2 =
    R"({"keys":[{"kty":"EC","crv":"P-256","x":"MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4","y":"4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM","kid":"k2"}]})";

dns::ResolverOptions no_dns(TempDir& dir) {
  std::ofstream(dir.file("resolv.conf")) << "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n";
  std::ofstream(dir.file("hosts")) << "127.0.0.1 keys.test\n";
  dns::ResolverOptions o;
  o.resolv_conf = dir.file("resolv.conf");
  o.hosts = dir.file("hosts");
  return o;
}

}  // namespace

TEST_CASE("jwks_cache: http fetch (by name), errors, retry, and the set kept") {
  TempDir dir;
  loop::Loop loop;
  {
    int served = 0;
    std::string body = kJwks;
    int status = 503;  // the first answer fails
    std::vector<Respond> held;
    auto server = HttpServer::listen(loop, *loop::Address::parse("127.0.0.1:0"),
                                     [&](HttpRequest& req, Respond respond) {
                                       ++served;
                                       if (req.path == "/slow") {
                                         held.push_back(std::move(respond));
                                         return;
                                       }
                                       respond(HttpResponse{status, "application/json", body, {}});
                                     });
    REQUIRE(server.has_value());
    std::string base = "http://keys.test:" + std::to_string((*server)->address().port());
    int changes = 0;
    JwksCache cache(loop, no_dns(dir), [&] { ++changes; });
    cache.begin();
    std::string error = "x";
    CHECK_FALSE(cache.get(base + "/jwks.json", 1000, error));
    CHECK(error.empty());  // pending
    cache.sweep();
    // 503, then (after the 1 s retry) the set.
    REQUIRE(run_until(
        loop, [&] { return changes == 1; }, std::chrono::seconds(5)));
    CHECK_FALSE(cache.get(base + "/jwks.json", 1000, error));
    CHECK(error == "HTTP status 503");
    status = 200;
    REQUIRE(run_until(
        loop, [&] { return changes == 2; }, std::chrono::seconds(5)));
    tls::JwksConstPtr got = cache.get(base + "/jwks.json", 1000, error);
    REQUIRE(got);
    CHECK(error.empty());
    CHECK(got->text() == kJwks);
    CHECK(served == 2);

    // Not JSON keys, a timeout, an https URL to a plain server: errors, never a crash.
    cache.begin();
    cache.get(base + "/jwks.json", 1000, error);
    body = "not json";
    cache.get(base + "/bad", 1000, error);
    cache.get(base + "/slow", 200, error);
    cache.get("https://127.0.0.1:" + std::to_string((*server)->address().port()) + "/x", 1000,
              error);
    cache.get("http://[::1", 1000, error);
    CHECK(error == "bad host");
    cache.sweep();
    // Each failure notifies (several in one loop iteration count once): wait for all three.
    std::string https = "https://127.0.0.1:" + std::to_string((*server)->address().port()) + "/x";
    auto failed = [&](const std::string& uri) {
      std::string why;
      cache.get(uri, 1000, why);
      return !why.empty();
    };
    REQUIRE(run_until(
        loop, [&] { return failed(base + "/bad") && failed(base + "/slow") && failed(https); },
        std::chrono::seconds(5)));
    CHECK(changes >= 3);
    cache.get(base + "/bad", 1000, error);
    CHECK(error.starts_with("not a JWKS: not JSON"));
    cache.get(base + "/slow", 200, error);
    CHECK(error == "timed out");
    cache.get("https://127.0.0.1:" + std::to_string((*server)->address().port()) + "/x", 1000,
              error);
    CHECK_FALSE(error.empty());
    // The good set is kept.
    CHECK(cache.get(base + "/jwks.json", 1000, error) == got);
    held.clear();
    (*server)->close();
  }
  CHECK(loop.close().is_ok());
}

TEST_CASE("jwks_cache: file:// read at once, read again when it changes; swept entries go") {
  TempDir dir;
  loop::Loop loop;
  {
    std::string path = dir.file("jwks.json");
    std::ofstream(path) << kJwks;
    int changes = 0;
    JwksCache cache(loop, no_dns(dir), [&] { ++changes; });
    std::string error;
    cache.begin();
    tls::JwksConstPtr a = cache.get("file://" + path, 1000, error);
    REQUIRE(a);
    CHECK(error.empty());
    CHECK_FALSE(cache.get("file://" + dir.file("missing.json"), 1000, error));
    CHECK(error.find("missing.json") != std::string::npos);
    cache.sweep();
    std::ofstream(path + ".new") << kJwks2;
    std::rename((path + ".new").c_str(), path.c_str());
    REQUIRE(run_until(
        loop, [&] { return changes >= 1; }, std::chrono::seconds(5)));
    tls::JwksConstPtr b = cache.get("file://" + path, 1000, error);
    REQUIRE(b);
    CHECK(b->text() == kJwks2);
    // A file that stops being a key set: no keys, with the reason.
    std::ofstream(path + ".new") << "{}";
    std::rename((path + ".new").c_str(), path.c_str());
    CHECK_FALSE(cache.get("file://" + path, 1000, error));
    CHECK(error == "not a JWKS: no \"keys\" member");
  }
  CHECK(loop.close().is_ok());
}

}  // namespace meshbox::control
