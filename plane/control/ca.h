// CertificateAuthority: the mesh's CA (Istio's Citadel). Either meshbox's own root — ECDSA
// P-256, self-signed, 10 years, made on first start and kept in STATE_DIR/ca (directory 0700,
// root-key.pem 0600) — or the operator's CA from Istio's "plugged-in certificates" files in
// STATE_DIR/cacerts (ca-cert.pem, ca-key.pem, root-cert.pem, cert-chain.pem), a root or an
// intermediate. It issues short-lived workload certificates (X.509-SVIDs: one SPIFFE URI SAN,
// ECDSA P-256, serverAuth + clientAuth) and says when to renew them (half-life).
// Owned by the control plane (or a CLI command). Immutable after open(): issue() is const and
// may run on any thread, but it is blocking CPU work (a key and a signature, ~0.1 ms) and
// open() blocking file I/O — never on a worker's request path. The private keys stay inside:
// nothing here formats them, and IssuedCertificate hands its key out as a SecretString.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/base/non_copyable.h"
#include "core/base/result.h"
#include "core/tls/certificate.h"
#include "core/tls/private_key.h"
#include "core/tls/secret.h"

namespace meshbox::control {

/// Istio's defaults: a workload certificate lives 24 h, and at most 90 days.
constexpr std::chrono::seconds kDefaultWorkloadCertTtl = std::chrono::hours(24);
constexpr std::chrono::seconds kMaxWorkloadCertTtl = std::chrono::hours(90 * 24);

struct CaOptions {
  /// Where the operator's CA files are looked for: "" means STATE_DIR/cacerts. They are used
  /// when ca-key.pem exists there; meshbox's own root is then neither made nor read.
  std::string cacerts_dir;
  /// The validity of a root meshbox makes.
  std::chrono::seconds root_ttl = std::chrono::hours(3650 * 24);
  /// issue() refuses longer lifetimes.
  std::chrono::seconds max_ttl = kMaxWorkloadCertTtl;
};

/// A certificate the CA issued, with its fresh private key.
struct IssuedCertificate {
  tls::Certificate leaf;
  /// The CA certificates between the leaf and the root (the issuing CA first): empty when
  /// the root signs; an operator's intermediate and its own chain otherwise. The root is
  /// not included: peers have it (root_pem()).
  std::vector<tls::Certificate> intermediates;
  tls::PrivateKey key;
  std::string spiffe_id;

  std::string cert_pem() const { return leaf.to_pem(); }
  /// The leaf then the intermediates: what a TLS endpoint sends.
  std::string chain_pem() const;
  tls::SecretString key_pem() const { return key.to_pem(); }
};

/// An exclusive flock on DIR/lock (DIR: STATE_DIR/ca) for the life of the object:
/// `meshbox run`, `meshbox ca` and the mesh CA's sharing (ca_share.h) on one state dir must
/// not make or replace a root at the same time. Not re-entrant: a second take() in the same
/// process on the same dir waits for ever.
class CaDirLock {
 public:
  static Result<CaDirLock> take(const std::string& dir);
  CaDirLock(CaDirLock&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  CaDirLock& operator=(CaDirLock&&) = delete;
  ~CaDirLock();

 private:
  explicit CaDirLock(int fd) : fd_(fd) {}
  int fd_;
};

class CertificateAuthority : NonCopyable {
 public:
  enum class Source {
    Created,   // meshbox's own root, made by this open()
    Loaded,    // meshbox's own root, made by an earlier run
    Operator,  // the operator's CA files
  };

  /// Opens the CA of `state_dir` (created 0700 if missing): the operator's files if
  /// ca-key.pem is in options.cacerts_dir, else meshbox's root, made if there is none yet.
  /// Concurrent opens of one state dir (meshbox run, meshbox ca) serialise on a lock file, so
  /// only one root is ever made. The errors name the file and what is wrong with it.
  static Result<std::unique_ptr<CertificateAuthority>> open(const std::string& state_dir,
                                                            const CaOptions& options = {});

  /// Issues a certificate for `spiffe_id` ("spiffe://TRUST_DOMAIN/PATH", a non-empty path),
  /// valid from a minute before `now` (clock skew) until `now` + `ttl`, but never past the
  /// CA's own certificates. InvalidArgument says why an ID or TTL is refused.
  Result<IssuedCertificate> issue(std::string_view spiffe_id,
                                  std::chrono::seconds ttl = kDefaultWorkloadCertTtl,
                                  tls::Time now = std::chrono::system_clock::now()) const;

  const CaOptions& options() const { return options_; }
  /// The root peers trust (the first of the operator's root-cert.pem).
  const tls::Certificate& root() const { return roots_.front(); }
  /// Every trusted root, PEM: what `meshbox ca root` prints and root.pem holds.
  std::string root_pem() const { return tls::to_pem(roots_); }
  /// The certificate that signs workload certificates (the root, or the operator's CA).
  const tls::Certificate& signer() const { return signer_; }
  Source source() const { return source_; }
  /// One line for the log: where the CA comes from, the root's subject, SHA-256 fingerprint
  /// and expiry. Nothing secret.
  std::string describe() const;

 private:
  CertificateAuthority(CaOptions options, Source source, std::vector<tls::Certificate> roots,
                       std::vector<tls::Certificate> intermediates, tls::Certificate signer,
                       tls::PrivateKey signer_key)
      : options_(std::move(options)),
        source_(source),
        roots_(std::move(roots)),
        intermediates_(std::move(intermediates)),
        signer_(std::move(signer)),
        signer_key_(std::move(signer_key)) {}
  static Result<std::unique_ptr<CertificateAuthority>> open_own(const std::string& dir,
                                                                const CaOptions& options);
  static Result<std::unique_ptr<CertificateAuthority>> open_operator(const std::string& dir,
                                                                     const CaOptions& options);

  const CaOptions options_;
  const Source source_;
  const std::vector<tls::Certificate> roots_;          // not empty
  const std::vector<tls::Certificate> intermediates_;  // between signer_ and the root, signer first
  const tls::Certificate signer_;
  const tls::PrivateKey signer_key_;
};

/// What issue() checks before it does any work: a valid SPIFFE ID with a non-empty path, and
/// a TTL from 1m to max_ttl. InvalidArgument says why (for the CLI's exit 2).
Status check_issue_request(std::string_view spiffe_id, std::chrono::seconds ttl,
                           std::chrono::seconds max_ttl = kMaxWorkloadCertTtl);

/// The SPIFFE ID of a workload: "spiffe://TRUST_DOMAIN/ns/NAMESPACE/sa/SERVICE_ACCOUNT"
/// (Istio's form; the trust domain is [mesh] trust_domain).
std::string workload_spiffe_id(std::string_view trust_domain, std::string_view ns,
                               std::string_view service_account);

/// When to renew a certificate valid from `not_before` to `not_after`: at half its life
/// (Istio's and SPIRE's default), so a renewal that fails has the other half to retry in.
tls::Time renewal_time(tls::Time not_before, tls::Time not_after);

}  // namespace meshbox::control
