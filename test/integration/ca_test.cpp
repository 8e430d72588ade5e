// `meshbox ca` and the CA of `meshbox run`, as real processes, checked with the real
// `openssl` CLI: the root persists, issued certificates verify against it (through the
// operator's intermediate too), carry the SPIFFE URI SAN and live their TTL, key files are
// 0600, bad IDs exit 2, and no private key reaches the log or the admin API.
#include <doctest/doctest.h>
#include <sys/stat.h>

#include <fstream>
#include <sstream>

#include "test/support/deadline.h"
#include "test/support/files.h"
#include "test/support/mesh.h"
#include "test/support/meshbox.h"
#include "test/support/process.h"

namespace meshbox::test {
namespace {

using namespace std::chrono_literals;
constexpr auto kTimeout = 30s;

std::string describe(const RunResult& r) {
  return (r.status ? r.status->describe() : "still running at the deadline (killed)") +
         "\nstdout: " + r.out + "\nstderr: " + r.err;
}

bool ok(const RunResult& r) {
  return r.status && r.status->ok();
}

// Any program to completion, output captured (openssl).
RunResult run(const std::vector<std::string>& argv, TempDir& dir) {
  static int serial = 0;
  std::string base = dir.file("prog" + std::to_string(++serial));
  SpawnOptions opts;
  opts.argv = argv;
  opts.stdout_path = base + ".out";
  opts.stderr_path = base + ".err";
  Process proc(opts);
  RunResult r;
  r.status = proc.wait(Deadline(kTimeout));
  r.out = read_file(opts.stdout_path).value_or("");
  r.err = read_file(opts.stderr_path).value_or("");
  return r;
}

RunResult ca(std::vector<std::string> args, TempDir& dir) {
  args.insert(args.begin(), "ca");
  return run_meshbox(args, dir, Deadline(kTimeout));
}

unsigned mode_of(const std::string& path) {
  struct stat st {};
  REQUIRE_MESSAGE(::stat(path.c_str(), &st) == 0, path);
  return st.st_mode & 0777;
}

bool exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

void write(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::trunc) << text;
}

// The base64 lines of a PEM block: any of them in a log means the key leaked.
std::vector<std::string> pem_body_lines(const std::string& pem) {
  std::vector<std::string> out;
  std::istringstream in(pem);
  std::string line;
  while (std::getline(in, line))
    if (!line.empty() && line.rfind("-----", 0) != 0) out.push_back(line);
  return out;
}

// `openssl x509 -noout -fingerprint -sha256` → "AB:CD:…".
std::string openssl_fingerprint(const std::string& cert, TempDir& dir) {
  RunResult r = run({"openssl", "x509", "-in", cert, "-noout", "-fingerprint", "-sha256"}, dir);
  REQUIRE_MESSAGE(ok(r), describe(r));
  auto eq = r.out.find('=');
  REQUIRE(eq != std::string::npos);
  std::string fp = r.out.substr(eq + 1);
  while (!fp.empty() && (fp.back() == '\n' || fp.back() == ' '))
    fp.pop_back();
  return fp;
}

// The checks every issued set of files must pass, with openssl.
void check_issued(TempDir& dir, const std::string& out, const std::string& spiffe,
                  int ttl_seconds) {
  RunResult v = run({"openssl", "verify", "-CAfile", out + "/root.pem", "-untrusted",
                     out + "/chain.pem", out + "/cert.pem"},
                    dir);
  INFO(describe(v));
  CHECK(ok(v));
  CHECK(v.out.find(": OK") != std::string::npos);

  RunResult san =
      run({"openssl", "x509", "-in", out + "/cert.pem", "-noout", "-ext", "subjectAltName"}, dir);
  INFO(describe(san));
  CHECK(ok(san));
  CHECK(san.out.find("URI:" + spiffe) != std::string::npos);

  CHECK(mode_of(out + "/key.pem") == 0600);
  // The key is the certificate's.
  RunResult pub_key = run({"openssl", "pkey", "-in", out + "/key.pem", "-pubout"}, dir);
  RunResult pub_cert = run({"openssl", "x509", "-in", out + "/cert.pem", "-noout", "-pubkey"}, dir);
  REQUIRE(ok(pub_key));
  REQUIRE(ok(pub_cert));
  CHECK(pub_key.out == pub_cert.out);

  // Validity ≈ ttl: still valid a minute before the end, expired a minute after.
  RunResult before = run({"openssl", "x509", "-in", out + "/cert.pem", "-noout", "-checkend",
                          std::to_string(ttl_seconds - 60)},
                         dir);
  RunResult after = run({"openssl", "x509", "-in", out + "/cert.pem", "-noout", "-checkend",
                         std::to_string(ttl_seconds + 60)},
                        dir);
  INFO(describe(before));
  INFO(describe(after));
  CHECK(ok(before));
  REQUIRE(after.status);
  CHECK(after.status->exited);
  CHECK(after.status->code == 1);  // "Certificate will expire"
}

TEST_CASE("ca: `ca root` makes the CA once and prints the same root again") {
  TempDir dir;
  std::string state = dir.file("state");
  RunResult first = ca({"root", "--state-dir", state}, dir);
  INFO(describe(first));
  REQUIRE(ok(first));
  CHECK(first.out.starts_with("-----BEGIN CERTIFICATE-----\n"));
  CHECK(first.out.find("PRIVATE KEY") == std::string::npos);
  CHECK(mode_of(state + "/ca") == 0700);
  CHECK(mode_of(state + "/ca/root-key.pem") == 0600);
  write(dir.file("root.pem"), first.out);
  RunResult text = run({"openssl", "x509", "-in", dir.file("root.pem"), "-noout", "-text"}, dir);
  INFO(describe(text));
  REQUIRE(ok(text));
  CHECK(text.out.find("CA:TRUE") != std::string::npos);
  CHECK(text.out.find("prime256v1") != std::string::npos);
  CHECK(text.out.find("ecdsa-with-SHA256") != std::string::npos);
  RunResult self =
      run({"openssl", "verify", "-CAfile", dir.file("root.pem"), dir.file("root.pem")}, dir);
  CHECK(ok(self));

  RunResult second = ca({"root", "--state-dir", state}, dir);
  REQUIRE(ok(second));
  CHECK(second.out == first.out);
}

TEST_CASE("ca: `ca issue --out` writes files that openssl verifies") {
  TempDir dir;
  std::string state = dir.file("state"), out = dir.file("out");
  const std::string id = "spiffe://cluster.local/ns/default/sa/external-client";
  RunResult r =
      ca({"issue", "--spiffe", id, "--ttl", "2h", "--out", out, "--state-dir", state}, dir);
  INFO(describe(r));
  REQUIRE(ok(r));
  CHECK(r.out.find(id) != std::string::npos);
  CHECK(r.out.find("PRIVATE KEY") == std::string::npos);
  CHECK(mode_of(out) == 0700);
  check_issued(dir, out, id, 2 * 3600);
  // root.pem is the state dir's root.
  RunResult root = ca({"root", "--state-dir", state}, dir);
  REQUIRE(ok(root));
  CHECK(read_file(out + "/root.pem") == root.out);
  // Default TTL: 24 h.
  std::string out2 = dir.file("out2");
  REQUIRE(ok(ca({"issue", "--spiffe", id, "--out", out2, "--state-dir", state}, dir)));
  check_issued(dir, out2, id, 24 * 3600);
}

TEST_CASE("ca: `ca issue` without --out prints the certificate and the key") {
  TempDir dir;
  std::string state = dir.file("state");
  RunResult r =
      ca({"issue", "--spiffe", "spiffe://example.org/job/backup", "--state-dir", state}, dir);
  INFO(describe(r));
  REQUIRE(ok(r));
  CHECK(r.out.starts_with("-----BEGIN CERTIFICATE-----\n"));
  CHECK(r.out.find("-----BEGIN PRIVATE KEY-----\n") != std::string::npos);
  write(dir.file("both.pem"), r.out);
  RunResult cert = run({"openssl", "x509", "-in", dir.file("both.pem"), "-noout", "-ext",
                        "subjectAltName,basicConstraints,keyUsage,extendedKeyUsage"},
                       dir);
  INFO(describe(cert));
  REQUIRE(ok(cert));
  CHECK(cert.out.find("URI:spiffe://example.org/job/backup") != std::string::npos);
  CHECK(cert.out.find("CA:FALSE") != std::string::npos);
  CHECK(cert.out.find("Digital Signature") != std::string::npos);
  CHECK(cert.out.find("TLS Web Server Authentication") != std::string::npos);
  CHECK(cert.out.find("TLS Web Client Authentication") != std::string::npos);
  CHECK(ok(run({"openssl", "pkey", "-in", dir.file("both.pem"), "-noout"}, dir)));
}

TEST_CASE("ca: bad SPIFFE IDs and flags exit 2 with the reason, and make no CA") {
  TempDir dir;
  std::string state = dir.file("state");
  struct Case {
    std::vector<std::string> args;
    const char* why;
  };
  const Case cases[] = {
      {{"issue", "--spiffe", "spiffe://Cluster.local/ns/a/sa/b"}, "uppercase"},
      {{"issue", "--spiffe", "spiffe://cluster.local:8443/ns/a/sa/b"}, "port"},
      {{"issue", "--spiffe", "spiffe://cluster.local"}, "needs a path"},
      {{"issue", "--spiffe", "https://cluster.local/x"}, "spiffe://"},
      {{"issue", "--spiffe", "spiffe://td/a/../b"}, "\"..\""},
      {{"issue", "--spiffe", "spiffe://td/a", "--ttl", "100d"}, "--ttl"},
      {{"issue", "--spiffe", "spiffe://td/a", "--ttl", "100000h"}, "at most 2160h"},
      {{"issue"}, "--spiffe ID is required"},
      {{"issue", "--spiffe", "spiffe://td/a", "--bogus"}, "--bogus"},
      {{"root", "extra"}, "unexpected argument"},
      {{"frobnicate"}, "unknown command"},
      {{}, "a command is required"},
  };
  for (const auto& c : cases) {
    std::vector<std::string> args = c.args;
    args.push_back("--state-dir");
    args.push_back(state);
    if (c.args.empty()) args.clear();
    RunResult r = ca(args, dir);
    INFO(describe(r));
    REQUIRE(r.status);
    CHECK(r.status->exited);
    CHECK(r.status->code == 2);
    CHECK(r.err.find(c.why) != std::string::npos);
  }
  CHECK_FALSE(exists(state));
  RunResult help = ca({"issue", "--help"}, dir);
  CHECK(ok(help));
  CHECK(help.out.find("--spiffe") != std::string::npos);
}

TEST_CASE("ca: the operator's intermediate (made by openssl) signs, and openssl verifies") {
  TempDir dir;
  std::string pki = dir.file("pki"), state = dir.file("state");
  std::string cacerts = state + "/cacerts";
  REQUIRE(::mkdir(pki.c_str(), 0700) == 0);
  REQUIRE(::mkdir(state.c_str(), 0700) == 0);
  REQUIRE(::mkdir(cacerts.c_str(), 0700) == 0);
  auto must = [&](const std::vector<std::string>& argv) {
    RunResult r = run(argv, dir);
    INFO(describe(r));
    REQUIRE(ok(r));
  };
  must({"openssl",
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        pki + "/root-key.pem",
        "-out",
        cacerts + "/root-cert.pem",
        "-days",
        "3650",
        "-subj",
        "/O=Example Corp/CN=Example Root CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign"});
  must({"openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", cacerts + "/ca-key.pem", "-out", pki + "/inter.csr", "-subj",
        "/O=Example Corp/CN=Example Mesh CA"});
  write(pki + "/ext.cnf",
        "basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\n"
        "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n");
  must({"openssl", "x509", "-req", "-in", pki + "/inter.csr", "-CA", cacerts + "/root-cert.pem",
        "-CAkey", pki + "/root-key.pem", "-set_serial", "4242", "-days", "365", "-extfile",
        pki + "/ext.cnf", "-out", cacerts + "/ca-cert.pem"});
  write(cacerts + "/cert-chain.pem",
        *read_file(cacerts + "/ca-cert.pem") + *read_file(cacerts + "/root-cert.pem"));

  RunResult root = ca({"root", "--state-dir", state}, dir);
  INFO(describe(root));
  REQUIRE(ok(root));
  CHECK(root.out == *read_file(cacerts + "/root-cert.pem"));
  CHECK_FALSE(exists(state + "/ca/root-key.pem"));  // no root of meshbox's own

  std::string out = dir.file("out");
  const std::string id = "spiffe://example.org/ns/edge/sa/ingress";
  RunResult r =
      ca({"issue", "--spiffe", id, "--ttl", "1h", "--out", out, "--state-dir", state}, dir);
  INFO(describe(r));
  REQUIRE(ok(r));
  check_issued(dir, out, id, 3600);
  // The chain carries the intermediate: without it openssl cannot verify the certificate.
  RunResult alone =
      run({"openssl", "verify", "-CAfile", out + "/root.pem", out + "/cert.pem"}, dir);
  CHECK_FALSE(ok(alone));
  RunResult subjects =
      run({"openssl", "storeutl", "-noout", "-text", "-certs", out + "/chain.pem"}, dir);
  INFO(describe(subjects));
  CHECK(subjects.out.find("Example Mesh CA") != std::string::npos);

  // A key of another CA: `meshbox run` refuses to start, saying which file is wrong.
  must({"openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out",
        cacerts + "/ca-key.pem"});
  write(dir.file("mesh.toml"), "[mesh]\nname = \"ca-test\"\n");
  RunResult bad = run_meshbox({"run", dir.file("mesh.toml"), "--state-dir", state, "--admin",
                               "127.0.0.1:0", "--workers", "1"},
                              dir, Deadline(kTimeout));
  INFO(describe(bad));
  REQUIRE(bad.status);
  CHECK(bad.status->exited);
  CHECK(bad.status->code == 1);
  CHECK(bad.err.find("certificate authority") != std::string::npos);
  CHECK(bad.err.find("ca-key.pem does not match") != std::string::npos);
}

TEST_CASE("ca: `meshbox run` makes the CA in its state dir and logs no key") {
  TempDir dir;
  write(dir.file("mesh.toml"), "[mesh]\nname = \"ca-test\"\n");
  MeshOptions opts;
  opts.paths = {dir.file("mesh.toml")};
  opts.log_level = "trace";
  opts.workers = 1;
  Mesh mesh(dir, opts);
  std::string root_cert = mesh.state_dir() + "/ca/root-cert.pem";
  std::string root_key = mesh.state_dir() + "/ca/root-key.pem";
  REQUIRE(exists(root_cert));
  CHECK(mode_of(root_key) == 0600);
  CHECK(mode_of(mesh.state_dir() + "/ca") == 0700);

  // The log names the root by its fingerprint, as openssl computes it.
  std::string fp = openssl_fingerprint(root_cert, dir);
  std::string log = mesh.log(1 << 20);
  CHECK_MESSAGE(log.find(fp) != std::string::npos, log);

  // `meshbox ca root` on the running mesh's state dir: the same root.
  RunResult root = mesh.cli({"ca", "root"});
  INFO(describe(root));
  REQUIRE(ok(root));
  CHECK(root.out == *read_file(root_cert));

  // The key: in no log line, no config dump, no admin API answer.
  std::string key = *read_file(root_key);
  auto lines = pem_body_lines(key);
  REQUIRE_FALSE(lines.empty());
  RunResult config = mesh.cli({"get", "config"});
  RunResult workloads = mesh.cli({"get", "workloads"});
  log = mesh.log(1 << 20);
  for (const std::string* text : {&log, &config.out, &config.err, &workloads.out}) {
    CHECK(text->find("PRIVATE KEY") == std::string::npos);
    for (const auto& l : lines)
      CHECK(text->find(l) == std::string::npos);
  }
}

}  // namespace
}  // namespace meshbox::test
