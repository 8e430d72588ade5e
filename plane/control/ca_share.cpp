#include "plane/control/ca_share.h"

#include <fcntl.h>
#include <openssl/aead.h>
#include <openssl/base64.h>
#include <openssl/mem.h>
#include <openssl/rand.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <memory>
#include <optional>

#include <fmt/format.h>

#include "core/base/assert.h"
#include "core/base/file.h"
#include "core/base/json.h"
#include "core/base/log.h"
#include "core/tls/certificate.h"
#include "core/tls/private_key.h"

namespace meshbox::control {

namespace {

constexpr int kFormat = 1;
constexpr const char* kAlg = "A256GCM";
// A mesh key file holds 64 hex characters and a newline; anything much bigger is not one.
constexpr size_t kMaxKeyFileBytes = 4096;
// The files CertificateAuthority::open_own reads (plane/control/ca.cpp); they are replaced under
// CaDirLock: `meshbox ca` on the same state dir must not see a root half replaced.
constexpr const char* kRootCert = "root-cert.pem";
constexpr const char* kRootKey = "root-key.pem";
constexpr const char* kOperatorKey = "ca-key.pem";

const uint8_t* bytes(std::string_view s) {
  return reinterpret_cast<const uint8_t*>(s.data());
}

bool exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

std::string b64_encode(std::string_view in) {
  size_t len = 0;
  MB_CHECK(EVP_EncodedLength(&len, in.size()) == 1);
  std::string out(len, '\0');
  size_t n = EVP_EncodeBlock(reinterpret_cast<uint8_t*>(out.data()), bytes(in), in.size());
  out.resize(n);  // without the NUL EVP_EncodeBlock adds
  return out;
}

std::optional<std::string> b64_decode(std::string_view in) {
  size_t len = 0;
  if (EVP_DecodedLength(&len, in.size()) != 1) return std::nullopt;
  std::string out(len, '\0');
  size_t n = 0;
  if (EVP_DecodeBase64(reinterpret_cast<uint8_t*>(out.data()), &n, out.size(), bytes(in),
                       in.size()) != 1)
    return std::nullopt;
  out.resize(n);
  return out;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

// A whole small file; a private key's file goes straight into a SecretString.
Result<tls::SecretString> read_small_file(const std::string& path, size_t max_bytes) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return make_error(Code::Io, fmt::format("{}: {}", path, std::strerror(errno)));
  std::string buf;
  buf.reserve(max_bytes + 1);  // never reallocated: no copy of the secret is left behind
  buf.resize(max_bytes + 1);
  size_t got = 0;
  while (got < buf.size()) {
    ssize_t n = ::read(fd, buf.data() + got, buf.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      ::close(fd);
      tls::SecretString wipe(std::move(buf));
      return make_error(Code::Io, fmt::format("{}: {}", path, std::strerror(err)));
    }
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  ::close(fd);
  tls::SecretString text(std::move(buf));
  if (got > max_bytes)
    return make_error(Code::InvalidArgument,
                      fmt::format("{}: bigger than {} bytes", path, max_bytes));
  // Shrinking keeps the buffer (and the secret's bytes in it): SecretString wipes it all.
  std::string out(text.reveal().substr(0, got));
  return tls::SecretString(std::move(out));
}

std::string endpoints_of(const etcd::Client& client) {
  std::string out;
  for (const auto& e : client.options().endpoints) {
    if (!out.empty()) out += ',';
    out += e.to_string();
  }
  return out;
}

// Runs `start(callback)` and the loop until the callback ran or `timeout_ms` passed. The
// callback owns its slot, so one that comes after the timeout writes into nothing we freed.
template <typename T, typename Start>
Result<T> await(loop::Loop& loop, uint64_t timeout_ms, Start&& start) {
  auto slot = std::make_shared<std::optional<Result<T>>>();
  start([slot](Result<T> r) { slot->emplace(std::move(r)); });
  if (!loop.run_until([&] { return slot->has_value(); }, timeout_ms))
    return make_error(Code::Unavailable, fmt::format("no answer within {} ms", timeout_ms));
  return std::move(**slot);
}

// The mesh's root as stored in etcd (before sealing): PEM certificate and PKCS#8 key.
struct RootPair {
  tls::Certificate cert;
  tls::PrivateKey key;
  bool made_now = false;  // own_root: CertificateAuthority::open made it just now
};

// {"root_cert":PEM,"root_key":PEM}, built in a buffer that is never reallocated, so no copy
// of the key is left behind in freed memory.
tls::SecretString root_json(const RootPair& root) {
  std::string cert_pem = root.cert.to_pem();
  tls::SecretString key_pem = root.key.to_pem();
  std::string out;
  // Escaping at most doubles a PEM (each '\n' becomes "\\n").
  out.reserve(2 * (cert_pem.size() + key_pem.size()) + 64);
  out += "{\"root_cert\":";
  json::append_string(out, cert_pem);
  out += ",\"root_key\":";
  json::append_string(out, key_pem.reveal());
  out += '}';
  return tls::SecretString(std::move(out));
}

// The plaintext of PREFIX/ca → the root, checked: a self-signed CA certificate, still valid,
// with its key.
Result<RootPair> parse_root(std::string_view plaintext, const std::string& where) {
  auto doc = json::parse(plaintext);
  if (!doc || !doc->is_object())
    return make_error(Code::InvalidArgument,
                      fmt::format("{}: the decrypted value is not a JSON object", where));
  const json::Value* cert = doc->get("root_cert");
  json::Value* key = nullptr;
  for (auto& [name, v] : doc->object)
    if (name == "root_key") key = &v;
  if (!cert || !cert->is_string() || !key || !key->is_string())
    return make_error(Code::InvalidArgument,
                      fmt::format("{}: the decrypted value has no root_cert and root_key", where));
  tls::SecretString key_pem(std::move(key->string));  // wiped when done
  auto c = tls::Certificate::from_pem(cert->as_string());
  if (!c)
    return make_error(Code::InvalidArgument,
                      fmt::format("{}: root_cert: {}", where, c.error().message()));
  auto k = tls::PrivateKey::from_pem(key_pem.reveal());
  if (!k)
    return make_error(Code::InvalidArgument,
                      fmt::format("{}: root_key: {}", where, k.error().message()));
  if (!c->matches(*k))
    return make_error(Code::InvalidArgument,
                      fmt::format("{}: root_key is not the key of root_cert", where));
  if (!c->is_ca() || !c->self_signed())
    return make_error(Code::InvalidArgument,
                      fmt::format("{}: root_cert is not a self-signed CA certificate", where));
  if (c->not_after() <= std::chrono::system_clock::now())
    return make_error(Code::InvalidArgument,
                      fmt::format("{}: the mesh's root expired: delete {} (etcdctl del {}) and "
                                  "restart a node to store a new one (every workload "
                                  "certificate changes)",
                                  where, where, where));
  return RootPair{std::move(*c), std::move(*k)};
}

// This node's root in STATE_DIR/ca, made by CertificateAuthority::open if there is none.
Result<RootPair> own_root(const std::string& state_dir, const CaOptions& options) {
  auto ca = CertificateAuthority::open(state_dir, options);
  if (!ca) return ca.error();
  std::string key_path = state_dir + "/ca/" + kRootKey;
  auto key_pem = read_small_file(key_path, 64 * 1024);
  if (!key_pem) return key_pem.error();
  auto key = tls::PrivateKey::from_pem(key_pem->reveal());
  if (!key) return make_error(key.error().code(), key_path + ": " + key.error().message());
  bool made_now = (*ca)->source() == CertificateAuthority::Source::Created;
  return RootPair{(*ca)->root(), std::move(*key), made_now};
}

// Makes STATE_DIR/ca hold `root` (the mesh's), unless it already does. `made_now`: the
// fingerprint of a root this call made a moment ago (a create that lost the race), which is
// replaced without a warning.
Status install_root(const std::string& state_dir, const RootPair& root, const std::string& where,
                    const std::string& made_now) {
  std::string dir = state_dir + "/ca";
  MB_TRY(make_dirs(dir, 0700));
  auto lock = CaDirLock::take(dir);
  if (!lock) return lock.error();
  std::string cert_path = dir + "/" + kRootCert, key_path = dir + "/" + kRootKey;

  std::string old_fingerprint;
  if (exists(cert_path)) {
    auto old_pem = read_small_file(cert_path, 1024 * 1024);
    auto old = old_pem ? tls::Certificate::from_pem(old_pem->reveal())
                       : Result<tls::Certificate>(old_pem.error());
    if (old) {
      old_fingerprint = old->sha256_fingerprint();
      if (*old == root.cert && exists(key_path)) {
        auto key_pem = read_small_file(key_path, 64 * 1024);
        auto key = key_pem ? tls::PrivateKey::from_pem(key_pem->reveal())
                           : Result<tls::PrivateKey>(key_pem.error());
        if (key && root.cert.matches(*key)) {
          MB_INFO("ca", "the root in {} is the mesh's ({}), SHA-256 fingerprint {}", dir, where,
                  old_fingerprint);
          return Status::ok();
        }
      }
    } else {
      old_fingerprint = "(unreadable)";
    }
  }
  // The key first, as open_own writes them: a certificate always has its key beside it.
  MB_TRY(write_file_atomic(key_path, root.key.to_pem().reveal(), 0600));
  MB_TRY(write_file_atomic(cert_path, root.cert.to_pem(), 0644));
  if (old_fingerprint.empty() || old_fingerprint == made_now) {
    MB_INFO("ca", "installed the mesh's root from {} in {}, SHA-256 fingerprint {}", where, dir,
            root.cert.sha256_fingerprint());
  } else {
    MB_WARN("ca",
            "replaced this node's root in {} (SHA-256 fingerprint {}) with the mesh's from {} "
            "(SHA-256 fingerprint {}): certificates issued under the old root are no longer "
            "trusted by the mesh",
            dir, old_fingerprint, where, root.cert.sha256_fingerprint());
  }
  return Status::ok();
}

Status adopt(const MeshKey& key, const std::string& state_dir, std::string_view blob,
             const std::string& where, const std::string& made_now) {
  auto plaintext = unseal(key, blob, where);
  if (!plaintext) return plaintext.error();
  auto root = parse_root(plaintext->reveal(), where);
  if (!root) return root.error();
  return install_root(state_dir, *root, where, made_now);
}

}  // namespace

MeshKey::MeshKey(tls::SecretString bytes) : bytes_(std::move(bytes)) {
  MB_CHECK(bytes_.size() == kSize);
}

Result<MeshKey> read_mesh_key(const std::string& path) {
  constexpr const char* kHowTo =
      "a mesh key is 64 hex characters (32 random bytes: make one with `openssl rand -hex 32 > "
      "mesh.key; chmod 600 mesh.key`)";
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0)
    return make_error(Code::Io, fmt::format("{}: {}", path, std::strerror(errno)));
  if (!S_ISREG(st.st_mode))
    return make_error(Code::InvalidArgument, fmt::format("{}: not a file", path));
  if (st.st_mode & 077)
    return make_error(Code::InvalidArgument,
                      fmt::format("{}: other users may read or write it (mode {:04o}); "
                                  "a mesh key must be private: chmod 600 {}",
                                  path, st.st_mode & 0777, path));
  auto text = read_small_file(path, kMaxKeyFileBytes);
  if (!text)
    return make_error(text.error().code(), fmt::format("{}; {}", text.error().message(), kHowTo));
  std::string_view hex = text->reveal();
  while (!hex.empty() && is_space(hex.front()))
    hex.remove_prefix(1);
  while (!hex.empty() && is_space(hex.back()))
    hex.remove_suffix(1);
  if (hex.size() != 2 * MeshKey::kSize)
    return make_error(Code::InvalidArgument,
                      fmt::format("{}: {} characters where {} are needed; {}", path, hex.size(),
                                  2 * MeshKey::kSize, kHowTo));
  std::string raw(MeshKey::kSize, '\0');
  for (size_t i = 0; i < MeshKey::kSize; ++i) {
    int hi = hex_value(hex[2 * i]), lo = hex_value(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) {
      OPENSSL_cleanse(raw.data(), raw.size());  // the half decoded so far
      return make_error(Code::InvalidArgument,
                        fmt::format("{}: character {} is not a hex digit; {}", path,
                                    hi < 0 ? 2 * i + 1 : 2 * i + 2, kHowTo));
    }
    raw[i] = static_cast<char>(hi << 4 | lo);
  }
  return MeshKey(tls::SecretString(std::move(raw)));
}

std::string seal(const MeshKey& key, std::string_view plaintext, std::string_view aad) {
  const EVP_AEAD* aead = EVP_aead_aes_256_gcm();
  bssl::ScopedEVP_AEAD_CTX ctx;
  // Cannot fail with a 32-byte key (MeshKey holds exactly that): a failure is a broken libcrypto.
  MB_CHECK(EVP_AEAD_CTX_init(ctx.get(), aead, bytes(key.reveal()), key.reveal().size(),
                             EVP_AEAD_DEFAULT_TAG_LENGTH, nullptr) == 1);
  std::string nonce(EVP_AEAD_nonce_length(aead), '\0');
  MB_CHECK(RAND_bytes(reinterpret_cast<uint8_t*>(nonce.data()), nonce.size()) == 1);
  std::string sealed(plaintext.size() + EVP_AEAD_max_overhead(aead), '\0');
  size_t n = 0;
  MB_CHECK(EVP_AEAD_CTX_seal(ctx.get(), reinterpret_cast<uint8_t*>(sealed.data()), &n,
                             sealed.size(), bytes(nonce), nonce.size(), bytes(plaintext),
                             plaintext.size(), bytes(aad), aad.size()) == 1);
  sealed.resize(n);
  json::Writer w;
  w.begin_object()
      .field("format", kFormat)
      .field("alg", kAlg)
      .field("nonce", b64_encode(nonce))
      .field("ciphertext", b64_encode(sealed))
      .end_object();
  return w.take();
}

Result<tls::SecretString> unseal(const MeshKey& key, std::string_view blob, std::string_view aad) {
  auto not_sealed = [&](std::string_view why) {
    return make_error(Code::InvalidArgument,
                      fmt::format("the mesh CA at {} is not a value meshbox sealed: {}", aad, why));
  };
  auto doc = json::parse(blob);
  if (!doc) return not_sealed(doc.error().message());
  if (!doc->is_object()) return not_sealed("not a JSON object");
  const json::Value* format = doc->get("format");
  if (!format || !format->as_int()) return not_sealed("no \"format\" number");
  if (*format->as_int() != kFormat)
    return make_error(Code::InvalidArgument,
                      fmt::format("the mesh CA at {} is sealed in format {}; this meshbox reads "
                                  "format {} (a newer meshbox wrote it?)",
                                  aad, *format->as_int(), kFormat));
  const json::Value* alg = doc->get("alg");
  if (!alg || alg->as_string() != kAlg)
    return not_sealed(fmt::format("\"alg\" is not \"{}\"", kAlg));
  const json::Value* nonce_field = doc->get("nonce");
  const json::Value* ct_field = doc->get("ciphertext");
  if (!nonce_field || !nonce_field->is_string() || !ct_field || !ct_field->is_string())
    return not_sealed("no \"nonce\" and \"ciphertext\" strings");
  const EVP_AEAD* aead = EVP_aead_aes_256_gcm();
  auto nonce = b64_decode(nonce_field->as_string());
  if (!nonce || nonce->size() != EVP_AEAD_nonce_length(aead))
    return not_sealed(
        fmt::format("\"nonce\" is not {} bytes of base64", EVP_AEAD_nonce_length(aead)));
  auto sealed = b64_decode(ct_field->as_string());
  if (!sealed || sealed->size() < EVP_AEAD_max_overhead(aead))
    return not_sealed("\"ciphertext\" is not base64 of a sealed value");

  bssl::ScopedEVP_AEAD_CTX ctx;
  MB_CHECK(EVP_AEAD_CTX_init(ctx.get(), aead, bytes(key.reveal()), key.reveal().size(),
                             EVP_AEAD_DEFAULT_TAG_LENGTH, nullptr) == 1);
  std::string out(sealed->size(), '\0');
  size_t n = 0;
  int ok = EVP_AEAD_CTX_open(ctx.get(), reinterpret_cast<uint8_t*>(out.data()), &n, out.size(),
                             bytes(*nonce), nonce->size(), bytes(*sealed), sealed->size(),
                             bytes(aad), aad.size());
  tls::SecretString plaintext(std::move(out));  // wiped on every path, failed ones included
  if (ok != 1)
    return make_error(Code::InvalidArgument,
                      fmt::format("cannot decrypt the mesh CA at {}: wrong --mesh-key, or the "
                                  "value was altered",
                                  aad));
  return tls::SecretString(std::string(plaintext.reveal().substr(0, n)));
}

std::string mesh_ca_key(std::string_view prefix) {
  return fmt::format("{}/ca", prefix);
}

Status share_ca(loop::Loop& loop, etcd::Client& client, const std::string& prefix,
                const std::string& state_dir, const MeshKey& key, uint64_t timeout_ms,
                const CaOptions& options) {
  std::string cacerts = options.cacerts_dir.empty() ? state_dir + "/cacerts" : options.cacerts_dir;
  const std::string where = mesh_ca_key(prefix);
  if (exists(cacerts + "/" + kOperatorKey)) {
    MB_INFO("ca",
            "the operator's CA in {} is used: the mesh CA in etcd ({}) is neither read nor "
            "written",
            cacerts, where);
    return Status::ok();
  }
  const std::string etcd_at = endpoints_of(client);
  auto etcd_error = [&](std::string_view what, const Status& s) {
    return make_error(s.code(),
                      fmt::format("etcd at {}: {} {}: {}", etcd_at, what, where, s.message()));
  };
  auto read = [&]() {
    return await<etcd::RangeResult>(loop, timeout_ms,
                                    [&](auto done) { client.range(where, "", std::move(done)); });
  };

  // Read, or create if absent; a create that lost the race reads again. A key deleted
  // between the lost create and the read (an operator's etcdctl del) gets another round.
  std::string made_now;
  for (int round = 0; round < 3; ++round) {
    auto got = read();
    if (!got) return etcd_error("reading", got.error());
    if (!got->kvs.empty()) return adopt(key, state_dir, got->kvs.front().value, where, made_now);

    auto root = own_root(state_dir, options);
    if (!root) return root.error();
    if (root->made_now) made_now = root->cert.sha256_fingerprint();
    std::string blob = seal(key, root_json(*root).reveal(), where);
    etcd::Compare absent;
    absent.target = etcd::Compare::Target::Version;
    absent.result = etcd::Compare::Result::Equal;
    absent.key = where;
    absent.number = 0;
    etcd::Op put;
    put.type = etcd::Op::Type::Put;
    put.key = where;
    put.value = std::move(blob);
    auto txn = await<etcd::TxnResult>(loop, timeout_ms, [&](auto done) {
      client.txn({std::move(absent)}, {std::move(put)}, {}, std::move(done));
    });
    if (!txn) return etcd_error("creating", txn.error());
    if (txn->succeeded) {
      MB_INFO("ca",
              "stored this node's root (SHA-256 fingerprint {}) in etcd at {}, sealed with "
              "the mesh key",
              root->cert.sha256_fingerprint(), where);
      return Status::ok();
    }
    MB_INFO("ca", "another node stored the mesh CA at {} first: using it", where);
  }
  return make_error(Code::Conflict,
                    fmt::format("{}: created and deleted by others while this node tried to "
                                "read it; try again",
                                where));
}

}  // namespace meshbox::control
