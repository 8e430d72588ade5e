// One CA for a multi-node mesh: the root meshbox makes (STATE_DIR/ca) is kept in etcd at
// PREFIX/ca, sealed with the mesh key — a 256-bit key every node is given as a file
// (--mesh-key) — so that every node issues workload certificates under the same root and
// etcd never holds the root's private key in clear. The operator's CA files
// (STATE_DIR/cacerts) win over it: with them, nothing is read from or written to etcd.
// Free functions; blocking (file I/O, and share_ca waits on etcd with the loop): for
// `meshbox run`'s start, on the control thread before its loop runs, never from a loop
// callback.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "core/base/result.h"
#include "core/loop/loop.h"
#include "core/tls/secret.h"
#include "plane/control/ca.h"
#include "plane/control/etcd_client.h"

namespace meshbox::control {

/// The mesh key: 32 random bytes (AES-256), held in a SecretString (wiped when it dies).
class MeshKey {
 public:
  static constexpr size_t kSize = 32;
  /// `bytes` must be kSize bytes (checked by read_mesh_key; MB_CHECK here).
  explicit MeshKey(tls::SecretString bytes);
  /// The raw key: only for the AEAD.
  std::string_view reveal() const { return bytes_.reveal(); }

 private:
  tls::SecretString bytes_;
};

/// Reads a mesh key file: 64 hex characters (`openssl rand -hex 32 > mesh.key`), whitespace
/// around them allowed. A file that group or others may read (mode & 077) is refused, as ssh
/// refuses such a private key; the errors start with the file's path and say what is wrong.
Result<MeshKey> read_mesh_key(const std::string& path);

/// Seals `plaintext` with AES-256-GCM under `key`, a fresh random 12-byte nonce, and `aad`
/// (the etcd key the value is stored under, so a value copied to another key does not
/// open): {"format":1,"alg":"A256GCM","nonce":B64,"ciphertext":B64} (ciphertext and tag).
std::string seal(const MeshKey& key, std::string_view plaintext, std::string_view aad);

/// Opens what seal() made. A wrong key, another `aad` or an altered value is
/// InvalidArgument "cannot decrypt the mesh CA at AAD: wrong --mesh-key, or the value was
/// altered"; a value that is not a sealed blob says so. Never crashes, whatever `blob` holds.
Result<tls::SecretString> unseal(const MeshKey& key, std::string_view blob, std::string_view aad);

/// The etcd key of the mesh CA under `prefix` ("/meshbox/default" → "/meshbox/default/ca").
std::string mesh_ca_key(std::string_view prefix);

/// Makes STATE_DIR/ca hold the mesh's root before CertificateAuthority::open reads it:
///  - the operator's CA files (ca-key.pem in options.cacerts_dir, default STATE_DIR/cacerts):
///    nothing is done (logged);
///  - PREFIX/ca in etcd: opened with `key`, and its root written to STATE_DIR/ca (key 0600,
///    atomically) if it differs from the one there (a warning names both fingerprints);
///  - no PREFIX/ca: this node's root (made if missing) is sealed and created at PREFIX/ca
///    only if the key is still absent; if another node got there first, its root is taken.
/// Runs `loop` (run_until) for the etcd answers, at most `timeout_ms` per call; `loop` must
/// not be running. Errors name what failed ("etcd at ADDR: …", "PREFIX/ca: …").
Status share_ca(loop::Loop& loop, etcd::Client& client, const std::string& prefix,
                const std::string& state_dir, const MeshKey& key, uint64_t timeout_ms,
                const CaOptions& options = {});

}  // namespace meshbox::control
