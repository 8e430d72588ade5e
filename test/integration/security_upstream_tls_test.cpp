// TLS from meshbox to its upstreams, end to end through a real `meshbox run`:
//   - destination_rule tls (Istio's TLS origination) to servers outside the mesh, real
//     `openssl s_server -www` processes with certificates made by the openssl CLI: simple
//     (the CA, the host name, subject_alt_names, insecure_skip_verify, a wrong CA or SAN or
//     host → 503 UF), mutual (the server requires the client certificate), for HTTP through
//     a gateway and through a workload's sidecar (the app sends plain http://host:port), and
//     for tcp; a CA file replaced on disk is picked up without a reload; sessions resumed;
//   - mesh mTLS for a tcp service under STRICT: the gateway's connections to the sidecar are
//     mTLS (tcp tunnels both ends), the inbound sidecar resets plain text, and upstream
//     connections resume their TLS sessions (GET /stats/tls).
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include "test/support/curl.h"
#include "test/support/deadline.h"
#include "test/support/failure_logs.h"
#include "test/support/http_response.h"
#include "test/support/json.h"
#include "test/support/mesh.h"
#include "test/support/meshbox.h"
#include "test/support/process.h"
#include "test/support/tcp_conn.h"

namespace meshbox::test {
namespace {

constexpr auto kTimeout = 10s;

// `sh -c SCRIPT` to completion: stdout and stderr together, and whether it exited 0.
std::pair<bool, std::string> shell(TempDir& dir, const std::string& script) {
  static int n = 0;
  std::string out = dir.file("sh" + std::to_string(n++) + ".out");
  SpawnOptions opts;
  opts.argv = {"sh", "-c", script};
  opts.stdout_path = opts.stderr_path = out;
  Process p(opts);
  auto st = p.wait(Deadline(kTimeout));
  if (!st) p.kill_and_wait();
  return {st && st->ok(), read_file(out).value_or("")};
}

// A test CA, another CA, a server certificate for ext.example.com (SAN DNS) and a client
// certificate, both signed by the first CA: PEM files in `dir`.
void make_certificates(TempDir& dir) {
  std::string ec = " -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
  auto [ok, out] = shell(
      dir, "set -e; cd " + dir.path() + "\nopenssl req -x509" + ec +
               " -days 2 -subj /CN=test-ca -keyout ca.key -out ca.pem" + "\nopenssl req -x509" +
               ec + " -days 2 -subj /CN=other-ca -keyout other-ca.key -out other-ca.pem" +
               "\nopenssl req" + ec +
               " -subj /CN=ext.example.com -keyout server.key -out server.csr" +
               "\nprintf 'subjectAltName=DNS:ext.example.com\\n' > san.ext" +
               "\nopenssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial "
               "-days 2 -extfile san.ext -out server.pem" +
               "\nopenssl req" + ec + " -subj /CN=client -keyout client.key -out client.csr" +
               "\nopenssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial "
               "-days 2 -out client.pem\n");
  INFO(out);
  REQUIRE(ok);
}

// `openssl s_server -www` on 127.0.0.1:0 with the server certificate; `extra` e.g. requires
// client certificates. Its page says "New, TLSv1.3, …" or "Reused, …" for the session.
class TlsServer {
 public:
  TlsServer(TempDir& dir, const std::string& name, std::vector<std::string> extra = {}) {
    std::string log = dir.file(name + ".log");
    SpawnOptions server;
    server.argv = {"openssl", "s_server",
                   "-accept", "127.0.0.1:0",
                   "-cert",   dir.file("server.pem"),
                   "-key",    dir.file("server.key"),
                   "-www"};
    server.argv.insert(server.argv.end(), extra.begin(), extra.end());
    server.stdout_path = server.stderr_path = log;
    failure_log_.emplace("openssl s_server " + name + " (" + log + ")", log);
    proc_ = Process(server);
    // "ACCEPT 127.0.0.1:PORT" once it listens.
    Deadline d(kTimeout);
    for (;;) {
      std::string text = read_file(log).value_or("");
      if (size_t at = text.find("ACCEPT "); at != std::string::npos) {
        size_t end = text.find('\n', at);
        if (end != std::string::npos) {
          std::string addr = text.substr(at + 7, end - at - 7);
          port_ = addr.substr(addr.rfind(':') + 1);
          break;
        }
      }
      INFO(text);
      REQUIRE(!proc_.exited());
      REQUIRE(!d.expired());
      poll_pause();
    }
  }
  const std::string& port() const { return port_; }

 private:
  std::optional<ScopedFailureLog> failure_log_;
  Process proc_;
  std::string port_;
};

// A service_entry for `host` on 127.0.0.1:`port` and its destination rule's tls table.
std::string outside_host(const std::string& host, const std::string& port,
                         const std::string& protocol, const std::string& tls) {
  return "[[service_entry]]\nname = \"" + host + "\"\nhosts = [\"" + host +
         "\"]\nports = [{ number = " + port + ", name = \"p\", protocol = \"" + protocol +
         "\" }]\nresolution = \"static\"\nendpoints = [{ address = \"127.0.0.1\" }]\n\n"
         "[[destination_rule]]\nname = \"" +
         host + "\"\nhost = \"" + host + "\"\ntraffic_policy = { tls = " + tls + " }\n\n";
}

HttpResponse get(const std::string& addr, const std::string& path) {
  return exchange(addr, "GET " + path + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                  Deadline(kTimeout));
}

std::optional<Json> tls_stats(const std::string& admin) {
  CurlHttpResult r = curl_http({"http://" + admin + "/stats/tls"}, Deadline(kTimeout));
  if (r.status != 200) return std::nullopt;
  return parse_json(r.body);
}

double stat(const Json& j, const std::string& side, const std::string& what) {
  const Json* s = j.get(side);
  const Json* v = s ? s->get(what) : nullptr;
  return v ? v->number : -1;
}

}  // namespace

TEST_CASE("upstream tls: destination_rule simple and mutual to servers outside the mesh") {
  TempDir dir;
  make_certificates(dir);
  TlsServer simple(dir, "simple");
  TlsServer mutual(dir, "mutual", {"-Verify", "1", "-CAfile", dir.file("ca.pem")});
  std::filesystem::copy_file(dir.file("other-ca.pem"), dir.file("rotating-ca.pem"));

  std::string ca = "\"" + dir.file("ca.pem") + "\"";
  std::string sni = ", sni = \"ext.example.com\"";
  struct Case {
    std::string path, host, port, tls;
  };
  std::vector<Case> cases = {
      // The host name is the SNI and must be in the certificate.
      {"/simple", "ext.example.com", simple.port(),
       "{ mode = \"simple\", ca_certificates = " + ca + " }"},
      {"/wronghost", "other.example.com", simple.port(),
       "{ mode = \"simple\", ca_certificates = " + ca + " }"},
      {"/badca", "badca.example.com", simple.port(),
       "{ mode = \"simple\", ca_certificates = \"" + dir.file("other-ca.pem") + "\"" + sni + " }"},
      // subject_alt_names replace the host name check.
      {"/goodsan", "goodsan.example.com", simple.port(),
       "{ mode = \"simple\", ca_certificates = " + ca +
           ", subject_alt_names = [\"ext.example.com\"] }"},
      {"/badsan", "badsan.example.com", simple.port(),
       "{ mode = \"simple\", ca_certificates = " + ca + sni +
           ", subject_alt_names = [\"nope.example.com\"] }"},
      {"/skip", "skip.example.com", simple.port(),
       "{ mode = \"simple\", insecure_skip_verify = true }"},
      {"/rotating", "rotating.example.com", simple.port(),
       "{ mode = \"simple\", ca_certificates = \"" + dir.file("rotating-ca.pem") + "\"" + sni +
           " }"},
      {"/mutual", "mutual.example.com", mutual.port(),
       "{ mode = \"mutual\", ca_certificates = " + ca + sni + ", client_certificate = \"" +
           dir.file("client.pem") + "\", private_key = \"" + dir.file("client.key") + "\" }"},
      {"/nocert", "nocert.example.com", mutual.port(),
       "{ mode = \"simple\", ca_certificates = " + ca + sni + " }"},
  };
  uint16_t gw_port = free_port(), tcp_port = free_port();
  std::string config =
      "[[service]]\nname = \"app\"\nport = 8000\n\n"
      "[[workload]]\nname = \"app\"\nservice = \"app\"\ncommand = [\"" +
      httpbin_bin() + "\", \"--listen\", \"127.0.0.1:${PORT}\"]\n\n" +
      "[[gateway]]\nname = \"edge\"\nservers = [{ port = " + std::to_string(gw_port) +
      ", bind = \"127.0.0.1\", protocol = \"http\", hosts = [\"*\"] }, { port = " +
      std::to_string(tcp_port) +
      ", bind = \"127.0.0.1\", protocol = \"tcp\", hosts = [\"*\"] }]\n\n" +
      outside_host("tcp.example.com", simple.port(), "tcp",
                   "{ mode = \"simple\", ca_certificates = " + ca + sni + " }") +
      "[[virtual_service]]\nname = \"tcp\"\nhosts = [\"*\"]\ngateways = [\"edge\"]\n"
      "tcp = [{ route = [{ destination = { host = \"tcp.example.com\" } }] }]\n\n"
      "[[virtual_service]]\nname = \"edge\"\nhosts = [\"*\"]\ngateways = [\"edge\"]\n";
  std::string routes;
  for (const auto& c : cases) {
    config = outside_host(c.host, c.port, "http", c.tls) + config;
    routes += "  { match = [{ uri = { prefix = \"" + c.path +
              "\" } }], route = [{ destination = { host = \"" + c.host +
              "\", port = { number = " + c.port + " } } }] },\n";
  }
  routes +=
      "  { match = [{ uri = { prefix = \"/app\" } }], rewrite = { uri = \"/\" }, "
      "route = [{ destination = { host = \"app\" } }] },\n";
  config += "http = [\n" + routes + "]\n";
  std::ofstream(dir.file("mesh.toml")) << config;
  Mesh mesh(dir, MeshOptions{.paths = {dir.file("mesh.toml")}});
  std::string gw = "127.0.0.1:" + std::to_string(gw_port);

  HttpResponse r;
  CHECK(eventually([&] { return (r = get(gw, "/simple")).status == 200; }, kTimeout));
  INFO("last: " << r.summary());
  CHECK(r.body.find("TLSv1.3") != std::string::npos);  // s_server's page: the session
  for (const char* ok : {"/goodsan", "/skip", "/mutual"}) {
    r = get(gw, ok);
    INFO(ok << ": " << r.summary());
    CHECK(r.status == 200);
  }
  for (const char* bad : {"/wronghost", "/badca", "/badsan", "/nocert", "/rotating"}) {
    r = get(gw, bad);
    INFO(bad << ": " << r.summary());
    CHECK(r.status == 503);
    CHECK(r.body.find("reset reason: connection failure") != std::string::npos);  // UF
  }
  std::string log = mesh.log(1 << 20);
  CHECK(log.find("CERTIFICATE_VERIFY_FAILED (Hostname mismatch)") != std::string::npos);
  CHECK(log.find("subject alt names expected (nope.example.com)") != std::string::npos);
  CHECK(log.find("unable to get local issuer certificate") != std::string::npos);
  CHECK(log.find("BEGIN") == std::string::npos);  // no key or certificate material

  // A later connection to the same server resumes the session ("Reused" on s_server's page).
  CHECK(eventually([&] { return get(gw, "/simple").body.find("Reused,") != std::string::npos; },
                   kTimeout));

  // Keep-alive through the mesh (gateway → app's sidecar, mesh mTLS): the pooled upstream
  // connection is reused, so twenty requests cost at most a handshake per worker.
  CHECK(eventually([&] { return get(gw, "/app").status == 200; }, kTimeout));
  std::optional<Json> before = tls_stats(mesh.admin());
  REQUIRE(before);
  for (int i = 0; i < 20; ++i)
    CHECK(get(gw, "/app").status == 200);
  std::optional<Json> after = tls_stats(mesh.admin());
  REQUIRE(after);
  double handshakes = stat(*after, "client", "full") + stat(*after, "client", "resumed") -
                      stat(*before, "client", "full") - stat(*before, "client", "resumed");
  CHECK(handshakes <= 2);

  // The app calls http://HOST:PORT in plain text through its sidecar; the sidecar originates TLS.
  std::string out = mesh.listener_address("sidecar_app_outbound");
  REQUIRE(!out.empty());
  CurlHttpResult via_sidecar =
      curl_http({"-x", "http://" + out, "http://ext.example.com:" + simple.port() + "/simple"},
                Deadline(kTimeout));
  INFO(via_sidecar.run.summary());
  CHECK(via_sidecar.status == 200);
  CHECK(via_sidecar.body.find("TLSv1.3") != std::string::npos);

  // tcp: the gateway's tcp listener originates TLS; plain bytes in, s_server's page out.
  {
    TcpConn c = TcpConn::connect("127.0.0.1:" + std::to_string(tcp_port), Deadline(kTimeout));
    REQUIRE(c.valid());
    REQUIRE(c.send_all("GET / HTTP/1.0\r\n\r\n", Deadline(kTimeout)));
    std::string page;
    c.read_until(page, "</HTML>", Deadline(kTimeout));
    INFO(page);
    CHECK(page.find("HTTP/1.0 200 ok") != std::string::npos);
    CHECK(page.find("TLSv1.3") != std::string::npos);
  }

  // The CA file replaced on disk: the next snapshot trusts the new CA, no reload needed.
  std::filesystem::copy_file(dir.file("ca.pem"), dir.file("rotating-ca.pem"),
                             std::filesystem::copy_options::overwrite_existing);
  CHECK(eventually([&] { return get(gw, "/rotating").status == 200; }, kTimeout));
}

TEST_CASE("upstream tls: a tcp service under STRICT mTLS; sessions resumed") {
  TempDir dir;
  uint16_t tcp_port = free_port();
  std::ofstream(dir.file("mesh.toml"))
      << "[[service]]\nname = \"raw\"\nport = 9000\nprotocol = \"tcp\"\n\n"
      << "[[workload]]\nname = \"raw\"\nservice = \"raw\"\ncommand = [\"" << httpbin_bin()
      << "\", \"--listen\", \"127.0.0.1:${PORT}\", \"--name\", \"raw\"]\n\n"
      << "[[gateway]]\nname = \"edge\"\nservers = [{ port = " << tcp_port
      << ", bind = \"127.0.0.1\", protocol = \"tcp\", hosts = [\"*\"] }]\n\n"
      << "[[virtual_service]]\nname = \"raw\"\nhosts = [\"*\"]\ngateways = [\"edge\"]\n"
      << "tcp = [{ route = [{ destination = { host = \"raw\" } }] }]\n\n"
      << "[[peer_authentication]]\nname = \"default\"\nnamespace = \"default\"\n"
      << "mtls = { mode = \"strict\" }\n";
  Mesh mesh(dir, MeshOptions{.paths = {dir.file("mesh.toml")}});
  std::string gw = "127.0.0.1:" + std::to_string(tcp_port);
  std::string inbound = mesh.listener_address("sidecar_raw_inbound");
  REQUIRE(!inbound.empty());

  // Through the gateway: tcp, mTLS from the gateway to the sidecar, plain to the app.
  HttpResponse r;
  CHECK(eventually([&] { return (r = get(gw, "/")).status == 200; }, kTimeout));
  INFO("last: " << r.summary());
  CHECK(r.body.find("raw") != std::string::npos);
  std::optional<Json> before = tls_stats(mesh.admin());
  REQUIRE(before);
  for (int i = 0; i < 10; ++i) {
    r = get(gw, "/");
    INFO("request " << i << ": " << r.summary());
    CHECK(r.status == 200);
  }
  // Each tcp connection is a new upstream TLS connection: after the first, sessions resume
  // (each worker's first may be full), on both ends.
  std::optional<Json> after = tls_stats(mesh.admin());
  REQUIRE(after);
  double client_resumed = stat(*after, "client", "resumed") - stat(*before, "client", "resumed");
  double client_full = stat(*after, "client", "full") - stat(*before, "client", "full");
  double server_resumed = stat(*after, "server", "resumed") - stat(*before, "server", "resumed");
  INFO("client: " << client_full << " full, " << client_resumed
                  << " resumed; server: " << server_resumed << " resumed");
  CHECK(client_resumed + client_full == 10);
  CHECK(client_resumed >= 8);
  CHECK(server_resumed >= 8);

  // Plain text straight to the inbound sidecar: reset under STRICT, no answer at all.
  HttpResponse plain = get(inbound, "/");
  INFO(plain.summary());
  CHECK(plain.status == 0);
  // A TLS client without a mesh certificate does not get through either.
  auto [ok, out] =
      shell(dir, "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | openssl s_client -quiet -connect " +
                     inbound + " 2>&1");
  INFO(out);
  CHECK(out.find("HTTP/1.1 200") == std::string::npos);
  CHECK(mesh.log(1 << 20).find("plain text refused (mTLS strict)") != std::string::npos);
}

}  // namespace meshbox::test
