// Gateway TLS termination on a real `meshbox run`, checked with the real curl, `openssl
// s_client` and testssl.sh: two https servers on one port (a.example and b.example, each its
// own certificate, chosen by SNI; per-server routes), a MUTUAL server on another (client
// certificates from one CA, one SAN), an http server redirecting to https; TLS 1.1 refused,
// 1.2 and 1.3 taken, ALPN http/1.1, x-forwarded-proto https; a certificate file replaced on
// disk is served within seconds without a restart, a broken one keeps the old. Certificates
// are made with the openssl CLI in the test's temp dir. `meshbox validate` names missing and
// mismatched files at the server_certificate field.
#include <doctest/doctest.h>

#include <chrono>
#include <fstream>

#include "test/support/curl.h"
#include "test/support/deadline.h"
#include "test/support/json.h"
#include "test/support/mesh.h"
#include "test/support/meshbox.h"

namespace meshbox::test {
namespace {

constexpr auto kTimeout = 10s;

// `sh -c SCRIPT` to completion: stdout and stderr together.
std::string shell(TempDir& dir, const std::string& script,
                  std::chrono::milliseconds timeout = kTimeout) {
  return test::shell(dir, script, Deadline(timeout));
}

bool has(const std::string& text, std::string_view part) {
  return text.find(part) != std::string::npos;
}

// Three CAs (the servers', the clients', another one) and leaf certificates, EC P-256.
void make_certificates(TempDir& dir) {
  std::string out = shell(dir, "set -e; cd " + dir.path() + R"(
mk_ca() { openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout $1.key \
  -out $1.pem -subj "/CN=$1" -days 2 2>/dev/null; }
mk_cert() {
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout $1.key -out $1.csr \
    -subj "/CN=$1" 2>/dev/null
  printf 'subjectAltName=%s\n' "$3" > $1.ext
  openssl x509 -req -in $1.csr -CA $2.pem -CAkey $2.key -CAcreateserial -out $1.pem -days 2 \
    -extfile $1.ext 2>/dev/null
}
mk_ca server-ca; mk_ca client-ca; mk_ca other-ca
mk_cert a server-ca DNS:a.example
mk_cert a2 server-ca DNS:a.example
mk_cert b server-ca DNS:b.example
mk_cert client client-ca DNS:client.example
mk_cert wrongsan client-ca DNS:someone.example
mk_cert intruder other-ca DNS:client.example
cp a.pem live.pem; cp a.key live.key
echo made
)");
  REQUIRE_MESSAGE(has(out, "made"), out);
}

struct Ports {
  uint16_t sni = free_port();       // a.example + b.example, SIMPLE
  uint16_t mutual = free_port();    // MUTUAL
  uint16_t redirect = free_port();  // http → https
  uint16_t optional = free_port();  // OPTIONAL_MUTUAL
  uint16_t istio = free_port();     // ISTIO_MUTUAL
  uint16_t tcp = free_port();       // protocol tls, SIMPLE: TLS ends here, tcp route
};

void write_config(TempDir& dir, const Ports& p) {
  auto server = [&](uint16_t port, const std::string& host, const std::string& tls) {
    return "[[gateway.servers]]\nport = " + std::to_string(port) +
           "\nbind = \"127.0.0.1\"\nprotocol = \"https\"\nhosts = [\"" + host + "\"]\ntls = { " +
           tls + " }\n";
  };
  std::string d = dir.path() + "/";
  std::ofstream(dir.file("mesh.toml"))
      << "[[service]]\nname = \"web\"\nport = 8000\n\n"
      << "[[workload]]\nname = \"web\"\nservice = \"web\"\ncommand = [\"" << httpbin_bin()
      << "\", \"--listen\", \"127.0.0.1:${PORT}\", \"--name\", \"web\"]\n\n"
      << "[[gateway]]\nname = \"edge\"\n"
      << server(p.sni, "a.example",
                "mode = \"simple\", server_certificate = \"" + d + "live.pem\", private_key = \"" +
                    d + "live.key\"")
      << server(p.sni, "b.example",
                "mode = \"simple\", server_certificate = \"" + d + "b.pem\", private_key = \"" + d +
                    "b.key\"")
      << server(p.mutual, "*",
                "mode = \"mutual\", server_certificate = \"" + d + "a.pem\", private_key = \"" + d +
                    "a.key\", ca_certificates = \"" + d +
                    "client-ca.pem\", subject_alt_names = [\"client.example\"]")
      << server(p.optional, "*",
                "mode = \"optional_mutual\", server_certificate = \"" + d +
                    "a.pem\", private_key = \"" + d + "a.key\", ca_certificates = \"" + d +
                    "client-ca.pem\"")
      << server(p.istio, "*", "mode = \"istio_mutual\"") << "[[gateway.servers]]\nport = " << p.tcp
      << "\nbind = \"127.0.0.1\"\nprotocol = \"tls\"\nhosts = [\"t.example\"]\n"
      << "tls = { mode = \"simple\", server_certificate = \"" << d << "b.pem\", private_key = \""
      << d << "b.key\" }\n"
      << "[[gateway.servers]]\nport = " << p.redirect
      << "\nbind = \"127.0.0.1\"\nprotocol = \"http\"\nhosts = [\"a.example\"]\n"
      << "tls = { https_redirect = true }\n\n"
      << "[[virtual_service]]\nname = \"web\"\nhosts = [\"*\"]\ngateways = [\"edge\"]\n"
      << "http = [{ route = [{ destination = { host = \"web\" } }] }]\n\n"
      << "[[virtual_service]]\nname = \"web-tcp\"\nhosts = [\"t.example\"]\ngateways = [\"edge\"]\n"
      << "tcp = [{ route = [{ destination = { host = \"web\", port = { number = 8000 } } }] }]\n";
}

}  // namespace

TEST_CASE("gateway tls: SNI certificates, mutual TLS, versions, redirect, reload from disk") {
  TempDir dir;
  make_certificates(dir);
  Ports ports;
  write_config(dir, ports);
  Mesh mesh(dir, MeshOptions{.paths = {dir.file("mesh.toml")}});
  std::string sni = std::to_string(ports.sni), mutual = std::to_string(ports.mutual);
  std::string ca = " --cacert " + dir.file("server-ca.pem");
  auto https = [&](const std::string& host, const std::string& port, const std::string& extra) {
    return curl_http(
        {"--resolve", host + ":" + port + ":127.0.0.1", "--cacert", dir.file("server-ca.pem"),
         "https://" + host + ":" + port + "/headers", extra.empty() ? "-f" : extra},
        Deadline(kTimeout));
  };
  // The certificate a ClientHello gets: subject and SAN (-servername "" sends no SNI).
  auto served = [&](const std::string& port, const std::string& servername) {
    std::string name = servername.empty() ? " -noservername" : " -servername " + servername;
    return shell(dir, "openssl s_client -connect 127.0.0.1:" + port + name + " -CAfile " +
                          dir.file("server-ca.pem") +
                          " -showcerts </dev/null 2>/dev/null | openssl x509 -noout -subject "
                          "-ext subjectAltName");
  };

  // SIMPLE, two servers on one port: the certificate follows the SNI, then routes serve.
  REQUIRE(eventually([&] { return https("a.example", sni, "").status == 200; }, kTimeout));
  CurlHttpResult a = https("a.example", sni, "");
  CHECK(a.status == 200);
  INFO("headers seen by the backend: " << a.body);
  CHECK(has(a.body, "[\"x-forwarded-proto\",\"https\"]"));  // one value, kept by the sidecar
  CHECK(https("b.example", sni, "").status == 200);
  std::string cert_a = served(sni, "a.example"), cert_b = served(sni, "b.example");
  INFO("a: " << cert_a << "\nb: " << cert_b);
  CHECK(has(cert_a, "CN = a,") == false);
  CHECK(has(cert_a, "CN = a\n"));
  CHECK(has(cert_a, "DNS:a.example"));
  CHECK(has(cert_b, "CN = b\n"));
  CHECK(has(cert_b, "DNS:b.example"));
  // No SNI, or an unknown name: the first server's certificate.
  CHECK(has(served(sni, ""), "CN = a\n"));
  CHECK(has(served(sni, "c.example"), "CN = a\n"));
  // Each server routes its own hosts only: SNI b.example cannot reach a.example's routes.
  CurlHttpResult cross = curl_http(
      {"--resolve", "b.example:" + sni + ":127.0.0.1", "--cacert", dir.file("server-ca.pem"), "-H",
       "Host: a.example", "https://b.example:" + sni + "/"},
      Deadline(kTimeout));
  CHECK(cross.status == 404);

  // Versions: TLS 1.1 refused by the server (the client allows it: SECLEVEL=0), 1.2 and 1.3
  // taken; ALPN http/1.1.
  auto s_client = [&](const std::string& args) {
    return shell(dir, "openssl s_client -brief -connect 127.0.0.1:" + sni +
                          " -servername a.example -CAfile " + dir.file("server-ca.pem") + " " +
                          args + " </dev/null 2>&1");
  };
  std::string v11 = s_client("-tls1_1 -cipher DEFAULT@SECLEVEL=0");
  INFO("TLS 1.1: " << v11);
  CHECK(!has(v11, "Protocol version: TLSv1.1"));
  CHECK(has(v11, "alert"));
  std::string v12 = s_client("-tls1_2");
  INFO("TLS 1.2: " << v12);
  CHECK(has(v12, "Protocol version: TLSv1.2"));
  CHECK(has(v12, "Ciphersuite: ECDHE-ECDSA-AES"));
  CHECK(has(v12, "Verification: OK"));
  std::string alpn = shell(dir, "openssl s_client -connect 127.0.0.1:" + sni +
                                    " -servername a.example -alpn h2,http/1.1 </dev/null 2>&1");
  INFO("ALPN: " << alpn);
  CHECK(has(alpn, "ALPN protocol: http/1.1"));
  std::string v13 = s_client("-tls1_3");
  INFO("TLS 1.3: " << v13);
  CHECK(has(v13, "Protocol version: TLSv1.3"));
  // Plain HTTP on the TLS port: reset, no answer.
  CHECK(curl_http({"http://127.0.0.1:" + sni + "/"}, Deadline(kTimeout)).status == 0);

  // MUTUAL: no client certificate, one from another CA, one without the SAN: refused; the
  // right one: 200.
  auto with_cert = [&](const std::string& name) {
    std::vector<std::string> args{"--resolve", "a.example:" + mutual + ":127.0.0.1", "--cacert",
                                  dir.file("server-ca.pem"), "https://a.example:" + mutual + "/"};
    if (!name.empty()) {
      args.insert(args.end(),
                  {"--cert", dir.file(name + ".pem"), "--key", dir.file(name + ".key")});
    }
    return curl_http(args, Deadline(kTimeout));
  };
  CHECK(with_cert("").status == 0);
  CHECK(with_cert("intruder").status == 0);
  CHECK(with_cert("wrongsan").status == 0);
  CurlHttpResult ok = with_cert("client");
  INFO("mutual: " << ok.run.summary());
  CHECK(ok.status == 200);
  // OPTIONAL_MUTUAL: no certificate is fine, a bad one is not.
  mutual = std::to_string(ports.optional);
  CHECK(with_cert("").status == 200);
  CHECK(with_cert("client").status == 200);
  CHECK(with_cert("intruder").status == 0);
  // ISTIO_MUTUAL: the gateway's mesh identity; clients need a certificate of the mesh CA.
  RunResult issued =
      mesh.cli({"ca", "issue", "--spiffe", "spiffe://cluster.local/ns/default/sa/probe", "--out",
                dir.file("probe"), "--state-dir", mesh.state_dir()});
  REQUIRE_MESSAGE((issued.status && issued.status->ok()), issued.out << issued.err);
  auto istio_get = [&](const std::string& cert) {
    return shell(dir,
                 "printf 'GET / HTTP/1.1\\r\\nHost: a\\r\\nConnection: close\\r\\n\\r\\n' | "
                 "openssl s_client -quiet -ign_eof -verify_return_error -connect 127.0.0.1:" +
                     std::to_string(ports.istio) + " -CAfile " + dir.file("probe/root.pem") + cert +
                     " 2>&1");
  };
  std::string istio =
      istio_get(" -cert " + dir.file("probe/cert.pem") + " -key " + dir.file("probe/key.pem"));
  INFO("istio_mutual: " << istio);
  CHECK(has(istio, "HTTP/1.1 200"));
  CHECK(!has(istio_get(""), "HTTP/1.1 200"));
  CHECK(has(shell(dir, "openssl s_client -connect 127.0.0.1:" + std::to_string(ports.istio) +
                           " </dev/null 2>/dev/null | openssl x509 -noout -ext subjectAltName"),
            "URI:spiffe://cluster.local/ns/default/sa/edge"));

  // protocol tls with SIMPLE: TLS ends at the gateway, the plain stream takes the tcp route
  // (here HTTP, spoken by the client inside TLS).
  std::string tcp =
      shell(dir,
            "printf 'GET / HTTP/1.1\\r\\nHost: web\\r\\nConnection: close\\r\\n\\r\\n' | "
            "openssl s_client -quiet -ign_eof -verify_return_error -connect 127.0.0.1:" +
                std::to_string(ports.tcp) + " -servername t.example -CAfile " +
                dir.file("server-ca.pem") + " 2>&1");
  INFO("tls simple: " << tcp);
  CHECK(has(tcp, "HTTP/1.1 200"));
  CHECK(has(tcp, "hello from web"));

  // https_redirect: 301 to https.
  CurlHttpResult r = curl_http({"-D", "-", "-H", "Host: a.example",
                                "http://127.0.0.1:" + std::to_string(ports.redirect) + "/x"},
                               Deadline(kTimeout));
  INFO("redirect: " << r.body);
  CHECK(r.status == 301);
  CHECK(has(r.body, "location: https://a.example"));

  // Reload: a new certificate for a.example on disk is served within seconds, no restart.
  shell(dir, "cd " + dir.path() +
                 " && cp a2.key live.key.tmp && mv live.key.tmp live.key && cp a2.pem "
                 "live.pem.tmp && mv live.pem.tmp live.pem");
  CHECK(eventually([&] { return has(served(sni, "a.example"), "CN = a2\n"); }, kTimeout, 200ms));
  CHECK(https("a.example", sni, "").status == 200);
  // A broken replacement: logged, naming the file; the last good certificate stays.
  shell(dir, "cd " + dir.path() +
                 " && echo 'not a certificate' > live.pem.tmp && mv live.pem.tmp live.pem");
  CHECK(
      eventually([&] { return has(mesh.log(1 << 20), "the previous certificate is still served"); },
                 kTimeout, 200ms));
  std::string log = mesh.log(1 << 20);
  CHECK(has(log, dir.file("live.pem")));
  CHECK(has(served(sni, "a.example"), "CN = a2\n"));
  CHECK(https("a.example", sni, "").status == 200);
  // Keys never reach the log.
  std::string key = read_file(dir.file("a2.key")).value_or("");
  std::string key_line = key.substr(key.find('\n') + 1, 40);
  REQUIRE(key_line.size() == 40);
  CHECK(!has(log, key_line));
}

TEST_CASE("gateway tls: meshbox validate names missing and mismatched certificate files") {
  TempDir dir;
  make_certificates(dir);
  std::ofstream(dir.file("mesh.toml"))
      << "[[gateway]]\nname = \"edge\"\n"
      << "[[gateway.servers]]\nport = 8443\nprotocol = \"https\"\nhosts = [\"a.example\"]\n"
      << "tls = { mode = \"simple\", server_certificate = \"" << dir.file("a.pem")
      << "\", private_key = \"" << dir.file("b.key") << "\" }\n"
      << "[[gateway.servers]]\nport = 9443\nprotocol = \"https\"\nhosts = [\"b.example\"]\n"
      << "tls = { mode = \"simple\", server_certificate = \"" << dir.file("missing.pem")
      << "\", private_key = \"" << dir.file("b.key") << "\" }\n";
  RunResult r = run_meshbox({"validate", dir.file("mesh.toml")}, dir, Deadline(kTimeout));
  INFO(r.out << r.err);
  REQUIRE(r.status);
  CHECK(!r.status->ok());
  CHECK(has(r.out, "mesh.toml:7:"));
  CHECK(has(r.out, "servers[0].tls.server_certificate: private_key " + dir.file("b.key") +
                       " does not match server_certificate " + dir.file("a.pem")));
  CHECK(has(r.out, "mesh.toml:12:"));
  CHECK(has(r.out, "servers[1].tls.server_certificate: server_certificate " +
                       dir.file("missing.pem") + ": No such file or directory"));

  // TLS 1.0/1.1 and weak ciphers are config errors.
  std::ofstream(dir.file("old.toml"))
      << "[[gateway]]\nname = \"edge\"\n"
      << "[[gateway.servers]]\nport = 8443\nprotocol = \"https\"\nhosts = [\"a.example\"]\n"
      << "tls = { mode = \"simple\", server_certificate = \"" << dir.file("a.pem")
      << "\", private_key = \"" << dir.file("a.key")
      << "\", min_protocol_version = \"tlsv1_1\", cipher_suites = [\"ECDHE-RSA-AES128-SHA\", "
         "\"NOPE\", \"ECDHE-ECDSA-AES128-GCM-SHA256\"] }\n";
  r = run_meshbox({"validate", dir.file("old.toml")}, dir, Deadline(kTimeout));
  INFO(r.out << r.err);
  CHECK(has(r.out, "min_protocol_version: tlsv1_1 is not supported"));
  CHECK(has(r.out, "cipher_suites[0]: ECDHE-RSA-AES128-SHA is not allowed"));
  CHECK(has(r.out, "cipher_suites[1]: NOPE is not a cipher suite BoringSSL knows"));
  CHECK(!has(r.out, "cipher_suites[2]"));
}

// testssl.sh against a SIMPLE server: protocols, cipher categories, server defaults and the
// known vulnerabilities; nothing may be rated HIGH or CRITICAL. Skips without testssl.
TEST_CASE("gateway tls: testssl.sh rates nothing HIGH or CRITICAL") {
  TempDir dir;
  if (shell(dir, "command -v testssl || command -v testssl.sh").empty()) {
    MESSAGE("testssl.sh is not installed (apt-get install testssl.sh): skipped");
    return;
  }
  // A year-long certificate with a CRL URI: testssl.sh rates one that expires within 30 days,
  // or one without CRL or OCSP URI, HIGH.
  std::string made = shell(dir, "set -e; cd " + dir.path() + R"(
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem \
  -subj "/CN=testssl-ca" -days 400 2>/dev/null
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout a.key -out a.csr \
  -subj "/CN=a.example" 2>/dev/null
printf 'subjectAltName=DNS:a.example\nextendedKeyUsage=serverAuth\ncrlDistributionPoints=URI:http://crl.example/ca.crl\n' > a.ext
openssl x509 -req -in a.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out a.pem -days 365 \
  -extfile a.ext 2>/dev/null
echo made
)");
  REQUIRE_MESSAGE(has(made, "made"), made);
  uint16_t port = free_port();
  std::string p = std::to_string(port);
  std::ofstream(dir.file("mesh.toml"))
      << "[[gateway]]\nname = \"edge\"\n[[gateway.servers]]\nport = " << port
      << "\nbind = \"127.0.0.1\"\nprotocol = \"https\"\nhosts = [\"a.example\"]\n"
      << "tls = { mode = \"simple\", server_certificate = \"" << dir.file("a.pem")
      << "\", private_key = \"" << dir.file("a.key") << "\" }\n\n"
      << "[[virtual_service]]\nname = \"direct\"\nhosts = [\"a.example\"]\ngateways = [\"edge\"]\n"
      << "http = [{ direct_response = { status = 200, body = { string = \"ok\" } } }]\n";
  Mesh mesh(dir, MeshOptions{.paths = {dir.file("mesh.toml")}, .workers = 1});
  REQUIRE(eventually(
      [&] {
        return curl_http({"--resolve", "a.example:" + p + ":127.0.0.1", "--cacert",
                          dir.file("ca.pem"), "https://a.example:" + p + "/"},
                         Deadline(kTimeout))
                   .status == 200;
      },
      kTimeout));
  auto start = std::chrono::steady_clock::now();
  std::string out =
      shell(dir,
            "testssl --quiet --fast --color 0 --warnings off --nodns min --ip 127.0.0.1 "
            "--add-ca " +
                dir.file("ca.pem") + " --jsonfile " + dir.file("testssl.json") +
                " --protocols --std --server-defaults --vulnerable a.example:" + p + " 2>&1",
            180s);
  auto secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  MESSAGE("testssl.sh took " << secs << " s");
  std::optional<Json> findings = parse_json(read_file(dir.file("testssl.json")).value_or(""));
  INFO("testssl.sh output:\n" << out);
  REQUIRE(findings);
  REQUIRE(findings->type == Json::Type::Array);
  CHECK(findings->array.size() > 20);
  std::string bad;
  bool saw_protocols = false;
  for (const Json& f : findings->array) {
    const Json* id = f.get("id");
    const Json* severity = f.get("severity");
    const Json* finding = f.get("finding");
    if (!id || !severity) continue;
    if (id->string == "TLS1_2") saw_protocols = true;
    if (severity->string == "HIGH" || severity->string == "CRITICAL")
      bad += id->string + " " + severity->string + ": " + (finding ? finding->string : "") + "\n";
  }
  CHECK(saw_protocols);
  CHECK_MESSAGE(bad.empty(), bad);
}

}  // namespace meshbox::test
