// plane/control/ca_share: the mesh key file, sealing with AES-256-GCM (round trip; a wrong
// key, an altered byte, another etcd key and garbage all fail with a message, never a crash),
// and share_ca against a real etcd (test/support/etcd.h): nodes with their own state dirs end
// up with one root, so a certificate one issues verifies under another's root; the value in
// etcd holds no private key in clear; a wrong mesh key or a value moved to another key is
// refused; the operator's CA files leave etcd alone; two nodes racing to create agree.
#include <doctest/doctest.h>
#include <sys/stat.h>

#include <cctype>
#include <optional>
#include <span>
#include <string>
#include <thread>

#include <fmt/format.h>

#include "core/base/file.h"
#include "core/base/json.h"
#include "core/tls/certificate_builder.h"
#include "plane/control/ca.h"
#include "plane/control/ca_share.h"
#include "plane/control/etcd_client.h"
#include "test/support/etcd.h"
#include "test/support/files.h"
#include "test/support/test_loop.h"

namespace meshbox::control {
namespace {

using meshbox::test::Etcd;
using meshbox::test::TempDir;
using namespace std::chrono_literals;

constexpr uint64_t kTimeoutMs = 5000;
constexpr const char* kHexA = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
constexpr const char* kHexB = "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100";

MeshKey key_of(char fill) {
  return MeshKey(tls::SecretString(std::string(MeshKey::kSize, fill)));
}

std::string write_key_file(const TempDir& dir, const std::string& name, const std::string& text,
                           unsigned mode = 0600) {
  std::string path = dir.file(name);
  REQUIRE(write_file_atomic(path, text, mode).is_ok());
  return path;
}

std::string error_of(const Status& s) {
  REQUIRE_FALSE(s.is_ok());
  return s.message();
}

// The blob with its field `name` (a base64 string) changed by `edit` on the decoded bytes.
std::string edit_field(const std::string& blob, const std::string& name,
                       void (*edit)(std::string&)) {
  auto doc = json::parse(blob);
  REQUIRE(doc.has_value());
  json::Writer w;
  w.begin_object();
  for (const auto& [k, v] : doc->object) {
    if (v.is_integer) {
      w.field(k, v.integer);
    } else if (k != name) {
      w.field(k, v.as_string());
    } else {
      std::string text = v.as_string();
      edit(text);
      w.field(k, text);
    }
  }
  w.end_object();
  return w.take();
}

// Flips the first base64 character to another letter: a different byte, still base64.
void flip_first(std::string& b64) {
  b64[0] = b64[0] == 'A' ? 'B' : 'A';
}

std::optional<std::string> file(const std::string& path) {
  return meshbox::test::read_file(path);
}

unsigned mode_of(const std::string& path) {
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  return st.st_mode & 0777;
}

#define SKIP_WITHOUT_ETCD()                                                   \
  if (!meshbox::test::etcd_installed()) {                                     \
    MESSAGE("skipped: /usr/bin/etcd is not installed (Debian: etcd-server)"); \
    return;                                                                   \
  }

TEST_CASE("mesh CA sealing: round trip; wrong key, altered bytes, another key, garbage fail") {
  MeshKey a = key_of('\x01'), b = key_of('\x02');
  const std::string secret = "-----BEGIN PRIVATE KEY-----\nsecret\n";
  std::string blob = seal(a, secret, "/m/ca");

  auto doc = json::parse(blob);
  REQUIRE(doc.has_value());
  CHECK(doc->get("format")->as_int() == 1);
  CHECK(doc->get("alg")->as_string() == "A256GCM");
  CHECK(blob.find("PRIVATE") == std::string::npos);
  CHECK(blob.find("secret") == std::string::npos);
  CHECK(seal(a, secret, "/m/ca") != blob);  // a fresh nonce each time

  auto back = unseal(a, blob, "/m/ca");
  REQUIRE_MESSAGE(back.has_value(), back.error().message());
  CHECK(back->reveal() == secret);
  auto empty = unseal(a, seal(a, "", "/m/ca"), "/m/ca");
  REQUIRE(empty.has_value());
  CHECK(empty->empty());

  const std::string refused =
      "cannot decrypt the mesh CA at /m/ca: wrong --mesh-key, or the value was altered";
  CHECK(error_of(unseal(b, blob, "/m/ca").error()) == refused);
  CHECK(error_of(unseal(a, edit_field(blob, "ciphertext", flip_first), "/m/ca").error()) ==
        refused);
  CHECK(error_of(unseal(a, edit_field(blob, "nonce", flip_first), "/m/ca").error()) == refused);
  CHECK(
      error_of(
          unseal(a, edit_field(blob, "ciphertext", [](std::string& s) { s[s.size() / 2] ^= 0x01; }),
                 "/m/ca")
              .error())
          .find("/m/ca") != std::string::npos);
  CHECK(error_of(unseal(a, blob, "/n/ca").error()) ==
        "cannot decrypt the mesh CA at /n/ca: wrong --mesh-key, or the value was altered");

  // Not a sealed value at all: each says why, and names the key.
  for (std::string garbage :
       {std::string(""), std::string("not json"), std::string("[]"), std::string("{}"),
        std::string(R"({"format":1,"alg":"A128GCM","nonce":"","ciphertext":""})"),
        std::string(R"({"format":1,"alg":"A256GCM","nonce":"AAAA","ciphertext":"AAAA"})"),
        std::string(R"({"format":1,"alg":"A256GCM","nonce":"AAAAAAAAAAAAAAAA","ciphertext":"!"})"),
        std::string(
            R"({"format":1,"alg":"A256GCM","nonce":"AAAAAAAAAAAAAAAA","ciphertext":"AAAA"})"),
        std::string(R"({"format":1,"alg":"A256GCM","nonce":7,"ciphertext":null})"),
        blob.substr(0, blob.size() / 2)}) {
    CAPTURE(garbage);
    auto r = unseal(a, garbage, "/m/ca");
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().message().find("the mesh CA at /m/ca is not a value meshbox sealed") == 0);
  }
  auto future = unseal(a, R"({"format":2,"alg":"A256GCM","nonce":"","ciphertext":""})", "/m/ca");
  REQUIRE_FALSE(future.has_value());
  CHECK(future.error().message().find("sealed in format 2") != std::string::npos);
}

TEST_CASE("mesh key file: 64 hex characters, whitespace around them, private to its owner") {
  TempDir dir;
  auto good = read_mesh_key(write_key_file(dir, "good.key", std::string(" ") + kHexA + "\n"));
  REQUIRE_MESSAGE(good.has_value(), good.error().message());
  CHECK(good->reveal() == std::string("\x00\x11\x22\x33\x44\x55\x66\x77\x88\x99\xaa\xbb\xcc\xdd"
                                      "\xee\xff\x00\x11\x22\x33\x44\x55\x66\x77\x88\x99\xaa\xbb"
                                      "\xcc\xdd\xee\xff",
                                      32));
  std::string upper = kHexB;
  for (auto& c : upper)
    c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  auto b1 = read_mesh_key(write_key_file(dir, "upper.key", upper));
  auto b2 = read_mesh_key(write_key_file(dir, "lower.key", kHexB));
  REQUIRE(b1.has_value());
  REQUIRE(b2.has_value());
  CHECK(b1->reveal() == b2->reveal());

  auto short_key = read_mesh_key(write_key_file(dir, "short.key", std::string(kHexA, 62)));
  REQUIRE_FALSE(short_key.has_value());
  CHECK(short_key.error().message().find("62 characters where 64 are needed") != std::string::npos);
  CHECK(short_key.error().message().find(dir.file("short.key")) != std::string::npos);
  CHECK(short_key.error().message().find("openssl rand -hex 32") != std::string::npos);

  std::string bad = kHexA;
  bad[4] = 'g';
  auto not_hex = read_mesh_key(write_key_file(dir, "nothex.key", bad));
  REQUIRE_FALSE(not_hex.has_value());
  CHECK(not_hex.error().message().find("character 5 is not a hex digit") != std::string::npos);

  auto empty = read_mesh_key(write_key_file(dir, "empty.key", ""));
  REQUIRE_FALSE(empty.has_value());
  CHECK(empty.error().message().find("0 characters") != std::string::npos);

  for (unsigned mode : {0644u, 0640u, 0604u, 0620u}) {
    CAPTURE(mode);
    auto open = read_mesh_key(write_key_file(dir, "open.key", kHexA, mode));
    REQUIRE_FALSE(open.has_value());
    CHECK(open.error().message().find(fmt::format("(mode {:04o})", mode)) != std::string::npos);
    CHECK(open.error().message().find("chmod 600 " + dir.file("open.key")) != std::string::npos);
  }
  auto missing = read_mesh_key(dir.file("missing.key"));
  REQUIRE_FALSE(missing.has_value());
  CHECK(missing.error().message().find("missing.key: No such file") != std::string::npos);
  CHECK_FALSE(read_mesh_key(dir.path()).has_value());  // a directory
}

// One etcd client on its own loop (the test thread's); the loop must close clean.
struct Node {
  explicit Node(const std::string& endpoint) {
    etcd::Options o;
    auto a = loop::Address::parse(endpoint);
    REQUIRE(a.has_value());
    o.endpoints.push_back(*a);
    o.request_timeout_ms = 3000;
    client = std::make_unique<etcd::Client>(loop, std::move(o));
  }
  ~Node() {
    client.reset();
    CHECK(loop.close().is_ok());
  }
  Status share(const std::string& prefix, const std::string& state_dir, const MeshKey& key) {
    return share_ca(loop, *client, prefix, state_dir, key, kTimeoutMs);
  }
  std::optional<std::string> get(const std::string& key) {
    std::optional<Result<etcd::RangeResult>> out;
    client->range(key, "", [&](Result<etcd::RangeResult> r) { out.emplace(std::move(r)); });
    REQUIRE(loop::run_until(
        loop, [&] { return out.has_value(); }, 10s));
    REQUIRE_MESSAGE(out->has_value(), out->error().message());
    if ((*out)->kvs.empty()) return std::nullopt;
    return (*out)->kvs.front().value;
  }
  void put(const std::string& key, const std::string& value) {
    std::optional<Result<int64_t>> out;
    client->put(key, value, 0, [&](Result<int64_t> r) { out.emplace(std::move(r)); });
    REQUIRE(loop::run_until(
        loop, [&] { return out.has_value(); }, 10s));
    REQUIRE(out->has_value());
  }

  loop::Loop loop;
  std::unique_ptr<etcd::Client> client;
};

std::string root_cert(const std::string& state_dir) {
  auto pem = file(state_dir + "/ca/root-cert.pem");
  REQUIRE(pem.has_value());
  return *pem;
}

TEST_CASE("mesh CA in etcd: one root for every node, sealed, refused with a wrong key") {
  SKIP_WITHOUT_ETCD();
  TempDir dir;
  Etcd etcd(dir);
  etcd.start();
  Node node(etcd.endpoint());
  MeshKey key = key_of('\x07');
  const std::string n1 = dir.file("node1"), n2 = dir.file("node2");

  // Node 2 made a root of its own before it joined the mesh.
  auto before = CertificateAuthority::open(n2);
  REQUIRE(before.has_value());
  std::string own_root_2 = (*before)->root().to_pem();
  before->reset();

  // Node 1 is first: its root (made now) goes to etcd. Node 2 takes the mesh's.
  REQUIRE_MESSAGE(node.share("/mesh", n1, key).is_ok(), "node 1");
  auto stored = node.get("/mesh/ca");
  REQUIRE(stored.has_value());
  REQUIRE_MESSAGE(node.share("/mesh", n2, key).is_ok(), "node 2");
  CHECK(root_cert(n2) == root_cert(n1));
  CHECK(root_cert(n2) != own_root_2);
  CHECK(file(n2 + "/ca/root-key.pem") == file(n1 + "/ca/root-key.pem"));
  CHECK(mode_of(n2 + "/ca/root-key.pem") == 0600);
  CHECK(mode_of(n2 + "/ca") == 0700);
  // Again: nothing changes, in etcd or on disk.
  REQUIRE(node.share("/mesh", n1, key).is_ok());
  REQUIRE(node.share("/mesh", n2, key).is_ok());
  CHECK(node.get("/mesh/ca") == stored);
  CHECK(root_cert(n2) == root_cert(n1));

  // A certificate either node's CA issues verifies under the other's root.
  auto ca1 = CertificateAuthority::open(n1);
  auto ca2 = CertificateAuthority::open(n2);
  REQUIRE(ca1.has_value());
  REQUIRE(ca2.has_value());
  CHECK((*ca2)->source() == CertificateAuthority::Source::Loaded);
  auto from1 = (*ca1)->issue("spiffe://cluster.local/ns/default/sa/productpage");
  auto from2 = (*ca2)->issue("spiffe://cluster.local/ns/default/sa/reviews");
  REQUIRE(from1.has_value());
  REQUIRE(from2.has_value());
  CHECK(
      tls::verify_chain(from1->leaf, from1->intermediates, std::span(&(*ca2)->root(), 1)).is_ok());
  CHECK(
      tls::verify_chain(from2->leaf, from2->intermediates, std::span(&(*ca1)->root(), 1)).is_ok());

  // Never in clear: no PEM, no base64 of the key's PEM, not even its DER's base64 lines.
  auto key_pem = file(n1 + "/ca/root-key.pem");
  REQUIRE(key_pem.has_value());
  CHECK(stored->find("PRIVATE KEY") == std::string::npos);
  CHECK(stored->find("BEGIN") == std::string::npos);
  std::string key_der_b64 = key_pem->substr(key_pem->find('\n') + 1, 40);
  CHECK(stored->find(key_der_b64) == std::string::npos);
  auto blob = json::parse(*stored);
  REQUIRE(blob.has_value());
  CHECK(blob->get("alg")->as_string() == "A256GCM");
  for (const auto& [k, v] : blob->object) {
    CAPTURE(k);
    CHECK(v.as_string().find(key_der_b64) == std::string::npos);
    CHECK(v.as_string().find("LS0tLS1CRUdJTi") == std::string::npos);  // base64("-----BEGIN")
  }

  // A node with another key fails with the clear error and installs nothing.
  const std::string n3 = dir.file("node3");
  Status wrong = node.share("/mesh", n3, key_of('\x08'));
  CHECK(error_of(wrong) ==
        "cannot decrypt the mesh CA at /mesh/ca: wrong --mesh-key, or the value was altered");
  CHECK_FALSE(file(n3 + "/ca/root-cert.pem").has_value());

  // The value copied under another mesh's key does not open there (the key is the AAD).
  node.put("/copied/ca", *stored);
  CHECK(error_of(node.share("/copied", n3, key)).find("cannot decrypt the mesh CA at /copied/ca") ==
        0);
  node.put("/garbage/ca", "hello");
  CHECK(error_of(node.share("/garbage", n3, key)).find("/garbage/ca is not a value meshbox") !=
        std::string::npos);

  // The operator's CA files win: etcd is neither read nor written, no root is made.
  const std::string n4 = dir.file("node4");
  auto op_key = tls::PrivateKey::generate_p256();
  REQUIRE(op_key.has_value());
  tls::CertificateSpec spec;
  spec.common_name = "operator root";
  spec.not_before = std::chrono::system_clock::now() - 1h;
  spec.not_after = std::chrono::system_clock::now() + 24h;
  spec.is_ca = true;
  auto op_cert = tls::sign_certificate(spec, *op_key, nullptr, *op_key);
  REQUIRE(op_cert.has_value());
  REQUIRE(make_dirs(n4 + "/cacerts").is_ok());
  REQUIRE(write_file_atomic(n4 + "/cacerts/ca-cert.pem", op_cert->to_pem(), 0644).is_ok());
  REQUIRE(write_file_atomic(n4 + "/cacerts/ca-key.pem", op_key->to_pem().reveal(), 0600).is_ok());
  REQUIRE(node.share("/op", n4, key).is_ok());
  CHECK_FALSE(node.get("/op/ca").has_value());
  CHECK_FALSE(file(n4 + "/ca/root-cert.pem").has_value());
  // …even when the mesh has a CA in etcd: this node keeps the operator's.
  REQUIRE(node.share("/mesh", n4, key).is_ok());
  CHECK_FALSE(file(n4 + "/ca/root-cert.pem").has_value());

  // Two fresh nodes racing on an empty prefix, each with its own loop and client, agree.
  const std::string r1 = dir.file("race1"), r2 = dir.file("race2");
  Status s1, s2;
  {
    std::thread t1([&] {
      Node racer(etcd.endpoint());
      s1 = racer.share("/race", r1, key);
    });
    std::thread t2([&] {
      Node racer(etcd.endpoint());
      s2 = racer.share("/race", r2, key);
    });
    t1.join();
    t2.join();
  }
  CHECK_MESSAGE(s1.is_ok(), s1.message());
  CHECK_MESSAGE(s2.is_ok(), s2.message());
  CHECK(root_cert(r1) == root_cert(r2));

  // etcd unreachable: the error names it, and what was being done.
  etcd.stop();
  Status down = node.share("/mesh", dir.file("node5"), key);
  CHECK(error_of(down).find("etcd at " + etcd.endpoint() + ": reading /mesh/ca: ") == 0);
}

}  // namespace
}  // namespace meshbox::control
