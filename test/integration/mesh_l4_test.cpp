// Gateway tcp and tls servers end to end, through a real `meshbox run`: a tcp route's
// weighted split over meshbox-httpbin backends, and TLS passthrough by SNI to two real TLS
// servers (`openssl s_server -www`, each with its own self-signed certificate): the right
// backend answers each name (curl and openssl see its certificate), TLS runs end to end, and
// the listener resets what it cannot route: an unknown or missing SNI, a client that does not
// speak TLS, one that sends nothing or half a ClientHello until the 10 s inspect timeout.
#include <doctest/doctest.h>

#include <fstream>
#include <map>
#include <optional>
#include <string>
#include <tuple>

#include "test/support/curl.h"
#include "test/support/deadline.h"
#include "test/support/failure_logs.h"
#include "test/support/http_response.h"
#include "test/support/mesh.h"
#include "test/support/meshbox.h"
#include "test/support/process.h"
#include "test/support/tcp_conn.h"

namespace meshbox::test {
namespace {

constexpr auto kTimeout = 10s;

// The inspect timeout of a tls listener (ListenerSpec::tls_inspect_timeout_ms), and the
// slack a check of it allows: libuv timers run on the loop's millisecond clock, cached per
// iteration, so one may fire a few milliseconds early as the client measures it.
constexpr int64_t kInspectTimeoutMs = 10'000;
constexpr int64_t kEarlyMs = 50;

// A ClientHello that openssl s_client 3.0 sent with -servername a.example.com (one record).
constexpr const char* kHelloHex =
    "160301013a01000136030302001251e2e3333f3e8faa5905870c12af4bae301c1140098d620e02c93aea1e20290fd4"
    "569fa68c1f8c04c7db9d865ea9428cdd4967dc5ffb0465d282d3c0feb1003e130213031301c02cc030009fcca9cca8"
    "ccaac02bc02f009ec024c028006bc023c0270067c00ac0140039c009c0130033009d009c003d003c0035002f00ff01"
    "0000af00000012001000000d612e6578616d706c652e636f6d000b000403000102000a00160014001d0017001e0019"
    "001801000101010201030104002300000016000000170000000d002a0028040305030603080708080809080a080b08"
    "0408050806040105010601030303010302040205020602002b0009080304030303020301002d000201010033002600"
    "24001d0020fb22b3dc6fcbdc107414471d8089aec7a35009812777ab4775845ccbdb845316";

std::string from_hex(std::string_view hex) {
  std::string out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2)
    out.push_back(static_cast<char>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16)));
  return out;
}

// The captured ClientHello with its server name (13 bytes, "a.example.com") replaced.
std::string hello_for(const std::string& name) {
  std::string h = from_hex(kHelloHex);
  size_t at = h.find("a.example.com");
  REQUIRE(at != std::string::npos);
  REQUIRE(name.size() == 13);
  return h.replace(at, 13, name);
}

std::string workload(const std::string& name, const std::string& service,
                     const std::string& address, const std::string& labels = "{}") {
  return "[[workload]]\nname = \"" + name + "\"\nservice = \"" + service + "\"\naddress = \"" +
         address.substr(0, address.rfind(':')) +
         "\"\nport = " + address.substr(address.rfind(':') + 1) + "\nlabels = " + labels + "\n\n";
}

// How a connection the proxy refused ended: closed (reset or FIN) without a byte, and when.
struct Refusal {
  RecvStatus how = RecvStatus::Timeout;
  std::string got;
  int64_t after_ms = -1;
};

Refusal wait_refused(TcpConn& c, Deadline::Clock::time_point since, Deadline deadline) {
  Refusal r;
  r.how = c.read_to_close(r.got, deadline);
  r.after_ms = ms_since(since);
  return r;
}

bool closed(const Refusal& r) {
  return (r.how == RecvStatus::Reset || r.how == RecvStatus::Eof) && r.got.empty();
}

// ---------------------------------------------------------------------------------------
// tcp routes

TEST_CASE("l4: a tcp route splits connections 80/20 by weight") {
  TempDir dir;
  Httpbin b1(dir, "b1"), b2(dir, "b2");
  uint16_t port = free_port();
  std::ofstream(dir.file("mesh.toml"))
      << "[[service]]\nname = \"httpbin\"\nport = 8000\nprotocol = \"tcp\"\n\n" +
             workload("httpbin-v1", "httpbin", b1.address(), "{ version = \"v1\" }") +
             workload("httpbin-v2", "httpbin", b2.address(), "{ version = \"v2\" }") +
             "[[destination_rule]]\nname = \"httpbin\"\nhost = \"httpbin\"\n"
             "subsets = [{ name = \"v1\", labels = { version = \"v1\" } }, "
             "{ name = \"v2\", labels = { version = \"v2\" } }]\n\n"
             "[[gateway]]\nname = \"tcp-gw\"\nservers = [{ port = " +
             std::to_string(port) +
             ", bind = \"127.0.0.1\", protocol = \"tcp\", hosts = [\"*\"] }]\n\n"
             "[[virtual_service]]\nname = \"split\"\nhosts = [\"*\"]\ngateways = [\"tcp-gw\"]\n"
             "tcp = [{ route = [\n"
             "  { destination = { host = \"httpbin\", subset = \"v1\" }, weight = 80 },\n"
             "  { destination = { host = \"httpbin\", subset = \"v2\" }, weight = 20 },\n"
             "] }]\n";
  Mesh mesh(dir, MeshOptions{.paths = {dir.file("mesh.toml")}});
  std::string gw = mesh.listener("127.0.0.1_" + std::to_string(port));

  // 1,000 connections, one request each: the share of b1 has a standard deviation of 1.3
  // points, so ±5 points fails about once in 15,000 runs.
  constexpr int kConnections = 1000;
  std::map<std::string, int> seen;
  for (int i = 0; i < kConnections; ++i) {
    HttpResponse r =
        exchange(gw, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", Deadline(kTimeout));
    INFO("connection " << i << ": " << r.summary());
    REQUIRE(r.complete);
    REQUIRE(r.status == 200);
    const std::string* name = r.header("x-backend-name");
    REQUIRE(name != nullptr);
    ++seen[*name];
  }
  INFO("b1: " << seen["b1"] << ", b2: " << seen["b2"]);
  CHECK(seen.size() == 2);
  CHECK(seen["b1"] + seen["b2"] == kConnections);
  CHECK(seen["b1"] >= kConnections * 75 / 100);
  CHECK(seen["b1"] <= kConnections * 85 / 100);
  // Each connection was passed through whole: the backends saw one connection per request.
  CHECK(b1.stats().connections_total + b2.stats().connections_total >= kConnections);
}

TEST_CASE("l4: a tcp route keeps the cluster's max_connections and ejects a dead endpoint") {
  TempDir dir;
  Httpbin b1(dir, "b1");
  uint16_t dead = free_port();  // nothing listens: connections to it are refused
  uint16_t port = free_port();
  std::ofstream(dir.file("mesh.toml"))
      << "[[service]]\nname = \"httpbin\"\nport = 8000\nprotocol = \"tcp\"\n\n" +
             workload("httpbin-1", "httpbin", b1.address()) +
             workload("httpbin-dead", "httpbin", "127.0.0.1:" + std::to_string(dead)) +
             "[[destination_rule]]\nname = \"httpbin\"\nhost = \"httpbin\"\n"
             "traffic_policy = { load_balancer = \"round_robin\", connection_pool = { tcp = { "
             "max_connections = 2 } }, outlier_detection = { consecutive_gateway_errors = 1, "
             "interval = \"1s\", base_ejection_time = \"30s\", max_ejection_percent = 100 } }\n\n"
             "[[gateway]]\nname = \"tcp-gw\"\nservers = [{ port = " +
             std::to_string(port) +
             ", bind = \"127.0.0.1\", protocol = \"tcp\", hosts = [\"*\"] }]\n\n"
             "[[virtual_service]]\nname = \"tcp\"\nhosts = [\"*\"]\ngateways = [\"tcp-gw\"]\n"
             "tcp = [{ route = [{ destination = { host = \"httpbin\" } }] }]\n";
  Mesh mesh(dir, MeshOptions{.paths = {dir.file("mesh.toml")}});
  std::string gw = mesh.listener("127.0.0.1_" + std::to_string(port));
  auto one_request = [&] {
    return exchange(gw, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                    Deadline(kTimeout));
  };
  // Outlier detection: a refused connect is a gateway error; one ejects the dead endpoint, so
  // after at most a couple of failures every connection reaches b1.
  int failures = 0;
  for (int i = 0; i < 4; ++i)
    failures += one_request().status == 200 ? 0 : 1;
  CHECK(failures >= 1);
  CHECK(failures <= 2);
  for (int i = 0; i < 20; ++i) {
    HttpResponse r = one_request();
    INFO("after the ejection, connection " << i << ": " << r.summary());
    CHECK(r.status == 200);
  }

  // max_connections = 2: two open tunnels hold both slots (on whichever workers); a third
  // connection is closed at once, without a byte; once one tunnel ends, connections pass again.
  std::vector<TcpConn> held;
  for (int i = 0; i < 2; ++i) {
    held.push_back(TcpConn::connect(gw, Deadline(kTimeout)));
    REQUIRE(held.back().valid());
    // A request whose response proves the tunnel to b1 is up.
    REQUIRE(held.back().send_all("GET / HTTP/1.1\r\nHost: x\r\n\r\n", Deadline(kTimeout)));
    std::string got;
    REQUIRE(held.back().read_until(got, "hello", Deadline(kTimeout)));
  }
  TcpConn third = TcpConn::connect(gw, Deadline(kTimeout));
  REQUIRE(third.valid());
  Refusal refused = wait_refused(third, Deadline::Clock::now(), Deadline(kTimeout));
  CHECK(refused.how != RecvStatus::Timeout);
  CHECK(refused.got.empty());
  CHECK(refused.after_ms < 2000);
  held.pop_back();  // frees a slot
  bool passed = false;
  Deadline d(kTimeout);
  while (!passed && !d.expired())
    passed = one_request().status == 200;
  CHECK(passed);
  CHECK(mesh.log().find("max_connections 2 reached") != std::string::npos);
}

// ---------------------------------------------------------------------------------------
// tls routes

// `openssl s_server -www` on 127.0.0.1:0 with a self-signed certificate for `cn`, made in
// `dir` by `openssl req`. Its page repeats its command line, and so names its certificate.
class TlsBackend {
 public:
  TlsBackend(TempDir& dir, const std::string& name, const std::string& cn)
      : cert_(dir.file(name + ".pem")) {
    std::string key = dir.file(name + ".key");
    std::string log = dir.file(name + ".log");
    SpawnOptions req;
    req.argv = {"openssl",
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=" + cn,
                "-keyout",
                key,
                "-out",
                cert_};
    req.stdout_path = req.stderr_path = dir.file(name + ".req.log");
    Process made(req);
    auto st = made.wait(Deadline(kTimeout));
    INFO(read_file_tail(req.stdout_path));
    REQUIRE((st && st->ok()));

    SpawnOptions server;
    server.argv = {"openssl", "s_server", "-accept", "127.0.0.1:0", "-cert",
                   cert_,     "-key",     key,       "-www"};
    server.stdout_path = server.stderr_path = log;
    failure_log_.emplace("openssl s_server " + name + " (" + log + ")", log);
    proc_ = Process(server);
    // "ACCEPT 127.0.0.1:PORT" once it listens. A file has no event to wait on: poll it.
    Deadline d(kTimeout);
    for (;;) {
      std::string text = read_file(log).value_or("");
      if (size_t at = text.find("ACCEPT "); at != std::string::npos) {
        size_t end = text.find('\n', at);
        if (end != std::string::npos) {
          address_ = text.substr(at + 7, end - at - 7);
          break;
        }
      }
      INFO(text);
      REQUIRE(!proc_.exited());
      REQUIRE(!d.expired());
      poll_pause();
    }
  }
  const std::string& address() const { return address_; }
  const std::string& cert() const { return cert_; }

 private:
  std::string cert_;
  std::optional<ScopedFailureLog> failure_log_;
  Process proc_;
  std::string address_;
};

struct TlsFixture {
  TlsFixture() : a(dir, "backend-a", "a.example.com"), b(dir, "backend-b", "b.example.com") {
    port = free_port();
    std::ofstream(dir.file("mesh.toml"))
        << "[[service]]\nname = \"tls-a\"\nport = 8443\nprotocol = \"tls\"\n\n"
           "[[service]]\nname = \"tls-b\"\nport = 8443\nprotocol = \"tls\"\n\n" +
               workload("tls-a", "tls-a", a.address()) + workload("tls-b", "tls-b", b.address()) +
               "[[gateway]]\nname = \"tls-gw\"\nservers = [{ port = " + std::to_string(port) +
               ", bind = \"127.0.0.1\", protocol = \"tls\", hosts = [\"*.example.com\"], "
               "tls = { mode = \"passthrough\" } }]\n\n"
               "[[virtual_service]]\nname = \"sni\"\nhosts = [\"*.example.com\"]\n"
               "gateways = [\"tls-gw\"]\n\n"
               "  [[virtual_service.tls]]\n"
               "  match = [{ sni_hosts = [\"a.example.com\"] }]\n"
               "  route = [{ destination = { host = \"tls-a\" } }]\n\n"
               "  [[virtual_service.tls]]\n"
               "  match = [{ sni_hosts = [\"b.example.com\", \"*.wild.example.com\"] }]\n"
               "  route = [{ destination = { host = \"tls-b\" } }]\n";
    mesh.emplace(dir, MeshOptions{.paths = {dir.file("mesh.toml")}});
    gw = mesh->listener("127.0.0.1_" + std::to_string(port));
  }

  // curl -k https://NAME:PORT/ with NAME resolved to the gateway.
  CurlHttpResult curl(const std::string& name) const {
    std::string p = std::to_string(port);
    return curl_http(
        {"-v", "-k", "--resolve", name + ":" + p + ":127.0.0.1", "https://" + name + ":" + p + "/"},
        Deadline(kTimeout));
  }

  TempDir dir;
  TlsBackend a, b;
  uint16_t port = 0;
  std::optional<Mesh> mesh;
  std::string gw;
};

TEST_CASE("l4: tls passthrough routes by SNI to the backend that holds the name") {
  TlsFixture f;
  for (const auto& [name, backend, cn] :
       {std::tuple{"a.example.com", &f.a, "a.example.com"},
        std::tuple{"b.example.com", &f.b, "b.example.com"},
        std::tuple{"A.Example.COM", &f.a, "a.example.com"},  // SNI compares without case
        std::tuple{"x.wild.example.com", &f.b, "b.example.com"}}) {
    CurlHttpResult r = f.curl(name);
    INFO(name << ": " << r.run.summary());
    CHECK(r.run.exit_code == 0);
    CHECK(r.status == 200);
    // The backend's own certificate reached curl (TLS ran end to end), and its page names
    // the certificate it serves.
    CHECK(r.run.err.find(std::string("subject: CN=") + cn) != std::string::npos);
    CHECK(r.body.find("-cert " + backend->cert()) != std::string::npos);
  }

  // openssl s_client sees the same.
  SpawnOptions client;
  client.argv = {"openssl", "s_client", "-connect", f.gw, "-servername", "b.example.com"};
  client.stdout_path = client.stderr_path = f.dir.file("s_client.log");
  client.pipe_stdin = true;
  Process p(client);
  p.close_stdin();  // EOF on stdin: s_client ends after the handshake
  auto st = p.wait(Deadline(kTimeout));
  std::string out = read_file(client.stdout_path).value_or("");
  INFO(out);
  CHECK(st.has_value());
  CHECK(out.find("subject=CN = b.example.com") != std::string::npos);
}

TEST_CASE("l4: tls passthrough refuses what it cannot route, and waits 10 s for a ClientHello") {
  TlsFixture f;
  Deadline wait(kTimeout + 20s);
  // Started first, to run while the other checks do: one client sends nothing, one half a
  // ClientHello. Both are reset when the inspect timeout ends.
  auto start = Deadline::Clock::now();
  TcpConn silent = TcpConn::connect(f.gw, Deadline(kTimeout));
  TcpConn half = TcpConn::connect(f.gw, Deadline(kTimeout));
  REQUIRE(silent.valid());
  REQUIRE(half.valid());
  std::string hello = hello_for("a.example.com");
  REQUIRE(half.send_all(hello.substr(0, 60), Deadline(kTimeout)));

  // A ClientHello in two writes. The pause is only there to make the proxy likely to read
  // the two halves separately; the check holds either way.
  {
    TcpConn c = TcpConn::connect(f.gw, Deadline(kTimeout));
    REQUIRE(c.valid());
    REQUIRE(c.send_all(hello.substr(0, 60), Deadline(kTimeout)));
    poll_pause(100ms);
    REQUIRE(c.send_all(hello.substr(60), Deadline(kTimeout)));
    std::string got;
    RecvStatus s = c.recv_some(got, Deadline(kTimeout));
    INFO(to_string(s));
    REQUIRE(s == RecvStatus::Data);
    CHECK(got[0] == '\x16');  // backend a's ServerHello: a handshake record
  }

  // An SNI no route has: reset at once, not a byte back.
  {
    auto t0 = Deadline::Clock::now();
    TcpConn c = TcpConn::connect(f.gw, Deadline(kTimeout));
    REQUIRE(c.valid());
    REQUIRE(c.send_all(hello_for("c.example.com"), Deadline(kTimeout)));
    Refusal r = wait_refused(c, t0, Deadline(kTimeout));
    INFO(to_string(r.how) << " after " << r.after_ms << " ms, " << r.got.size() << " bytes");
    CHECK(closed(r));
    CHECK(r.after_ms < kInspectTimeoutMs / 2);
    CHECK(f.curl("c.example.com").run.exit_code != 0);
  }
  // No SNI at all (curl sends none to an IP address): no route either.
  {
    CurlHttpResult r = curl_http({"-k", "https://" + f.gw + "/"}, Deadline(kTimeout));
    INFO(r.run.summary());
    CHECK(r.run.exit_code != 0);
    CHECK(r.status == 0);
  }
  // Plain HTTP on the TLS port: not TLS, reset at its first byte.
  {
    auto t0 = Deadline::Clock::now();
    TcpConn c = TcpConn::connect(f.gw, Deadline(kTimeout));
    REQUIRE(c.valid());
    REQUIRE(c.send_all("GET / HTTP/1.1\r\nHost: a.example.com\r\n\r\n", Deadline(kTimeout)));
    Refusal r = wait_refused(c, t0, Deadline(kTimeout));
    INFO(to_string(r.how) << " after " << r.after_ms << " ms, " << r.got.size() << " bytes");
    CHECK(closed(r));
    CHECK(r.after_ms < kInspectTimeoutMs / 2);
  }

  // The two stalled clients: reset once the inspect timeout ended, not before.
  for (TcpConn* c : {&silent, &half}) {
    Refusal r = wait_refused(*c, start, wait);
    INFO(to_string(r.how) << " after " << r.after_ms << " ms, " << r.got.size() << " bytes");
    CHECK(closed(r));
    CHECK(r.after_ms >= kInspectTimeoutMs - kEarlyMs);
    CHECK(r.after_ms < kInspectTimeoutMs + 5'000);
  }

  // Every refusal was logged with its reason (the proxy's debug log).
  std::string log = f.mesh->log(64 * 1024);
  INFO(log);
  CHECK(log.find("no route for SNI c.example.com") != std::string::npos);
  CHECK(log.find("no route for a ClientHello without SNI") != std::string::npos);
  CHECK(log.find("not a TLS handshake") != std::string::npos);
  CHECK(log.find("no whole ClientHello after 10000 ms") != std::string::npos);
}

}  // namespace
}  // namespace meshbox::test
