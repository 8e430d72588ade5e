#include "plane/control/ca.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "core/base/file.h"
#include "core/base/log.h"
#include "core/tls/certificate_builder.h"
#include "core/tls/spiffe.h"

namespace meshbox::control {

namespace {

// meshbox's own root, in STATE_DIR/ca.
constexpr const char* kRootCert = "root-cert.pem";
constexpr const char* kRootKey = "root-key.pem";
constexpr const char* kLock = "lock";
// The operator's CA, in STATE_DIR/cacerts: Istio's plugged-in certificate file names.
constexpr const char* kCaCert = "ca-cert.pem";
constexpr const char* kCaKey = "ca-key.pem";
constexpr const char* kOperatorRoot = "root-cert.pem";
constexpr const char* kCertChain = "cert-chain.pem";

// Workload certificates start a minute in the past: a peer whose clock is a little behind
// must not see a certificate from the future. Roots an hour.
constexpr std::chrono::seconds kLeafBackdate{60};
constexpr std::chrono::seconds kRootBackdate{3600};
constexpr std::chrono::seconds kMinTtl{60};

constexpr const char* kOrganization = "meshbox";
constexpr const char* kRootCommonName = "meshbox root CA";

bool exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

Result<std::string> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return make_error(Code::Io, fmt::format("{}: {}", path, std::strerror(errno)));
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

Result<tls::PrivateKey> read_key(const std::string& path) {
  auto text = read_file(path);
  if (!text) return text.error();
  tls::SecretString pem(std::move(*text));  // wiped when done
  auto key = tls::PrivateKey::from_pem(pem.reveal());
  if (!key) return make_error(key.error().code(), path + ": " + key.error().message());
  // The key is ours to guard: say so if anyone else may read it (as ssh does).
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && (st.st_mode & 077))
    MB_WARN("ca", "{} is readable by other users (mode {:04o}); chmod 600 it", path,
            st.st_mode & 0777);
  return key;
}

Result<std::vector<tls::Certificate>> read_certs(const std::string& path) {
  auto text = read_file(path);
  if (!text) return text.error();
  auto certs = tls::Certificate::all_from_pem(*text);
  if (!certs) return make_error(certs.error().code(), path + ": " + certs.error().message());
  return certs;
}

std::string utc(tls::Time t) {
  std::time_t tt = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  ::gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

}  // namespace

Result<CaDirLock> CaDirLock::take(const std::string& dir) {
  std::string path = dir + "/" + kLock;
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return make_error(Code::Io, fmt::format("{}: {}", path, std::strerror(errno)));
  while (::flock(fd, LOCK_EX) != 0) {
    if (errno == EINTR) continue;
    int err = errno;
    ::close(fd);
    return make_error(Code::Io, fmt::format("{}: lock: {}", path, std::strerror(err)));
  }
  return CaDirLock(fd);
}

CaDirLock::~CaDirLock() {
  if (fd_ >= 0) ::close(fd_);  // releases the lock
}

std::string IssuedCertificate::chain_pem() const {
  return leaf.to_pem() + tls::to_pem(intermediates);
}

Result<std::unique_ptr<CertificateAuthority>> CertificateAuthority::open(
    const std::string& state_dir, const CaOptions& options) {
  std::string cacerts = options.cacerts_dir.empty() ? state_dir + "/cacerts" : options.cacerts_dir;
  if (exists(cacerts + "/" + kCaKey)) return open_operator(cacerts, options);
  return open_own(state_dir + "/ca", options);
}

Result<std::unique_ptr<CertificateAuthority>> CertificateAuthority::open_own(
    const std::string& dir, const CaOptions& options) {
  MB_TRY(make_dirs(dir, 0700));
  auto lock = CaDirLock::take(dir);
  if (!lock) return lock.error();
  std::string cert_path = dir + "/" + kRootCert, key_path = dir + "/" + kRootKey;

  // The key is written before the certificate, so a certificate always has its key; a key
  // alone is what a crash between the two left, and is replaced.
  if (exists(cert_path)) {
    auto certs = read_certs(cert_path);
    if (!certs) return certs.error();
    if (!exists(key_path))
      return make_error(Code::NotFound,
                        fmt::format("{} has no {} beside it: restore the key, or move {} away "
                                    "to make a new root (every workload certificate changes)",
                                    cert_path, kRootKey, dir));
    auto key = read_key(key_path);
    if (!key) return key.error();
    tls::Certificate& root = certs->front();
    if (!root.matches(*key))
      return make_error(Code::InvalidArgument,
                        fmt::format("{} does not match {}", key_path, cert_path));
    if (!root.is_ca() || !root.self_signed())
      return make_error(Code::InvalidArgument,
                        fmt::format("{} is not a self-signed CA certificate", cert_path));
    if (root.not_after() <= std::chrono::system_clock::now())
      return make_error(Code::InvalidArgument,
                        fmt::format("the root in {} expired on {}: move {} away to make a new "
                                    "one",
                                    cert_path, utc(root.not_after()), dir));
    tls::Certificate signer = root;
    return std::unique_ptr<CertificateAuthority>(new CertificateAuthority(
        options, Source::Loaded, {std::move(root)}, {}, std::move(signer), std::move(*key)));
  }

  auto key = tls::PrivateKey::generate_p256();
  if (!key) return key.error();
  auto now = std::chrono::system_clock::now();
  tls::CertificateSpec spec;
  spec.organization = kOrganization;
  spec.common_name = kRootCommonName;
  spec.not_before = now - kRootBackdate;
  spec.not_after = now + options.root_ttl;
  spec.is_ca = true;
  auto root = tls::sign_certificate(spec, *key, nullptr, *key);
  if (!root) return root.error();
  MB_TRY(write_file_atomic(key_path, key->to_pem().reveal(), 0600));
  MB_TRY(write_file_atomic(cert_path, root->to_pem(), 0644));
  tls::Certificate signer = *root;
  return std::unique_ptr<CertificateAuthority>(new CertificateAuthority(
      options, Source::Created, {std::move(*root)}, {}, std::move(signer), std::move(*key)));
}

Result<std::unique_ptr<CertificateAuthority>> CertificateAuthority::open_operator(
    const std::string& dir, const CaOptions& options) {
  const std::string cert_path = dir + "/" + kCaCert, key_path = dir + "/" + kCaKey,
                    root_path = dir + "/" + kOperatorRoot, chain_path = dir + "/" + kCertChain;
  auto ca_certs = read_certs(cert_path);
  if (!ca_certs) return ca_certs.error();
  auto key = read_key(key_path);
  if (!key) return key.error();
  tls::Certificate signer = ca_certs->front();
  if (!signer.matches(*key))
    return make_error(
        Code::InvalidArgument,
        fmt::format("{} does not match {} (the key of another certificate)", key_path, cert_path));
  if (!signer.is_ca())
    return make_error(Code::InvalidArgument,
                      fmt::format("{} (\"{}\") is not a CA certificate: it needs "
                                  "basicConstraints CA:TRUE and, with keyUsage, keyCertSign",
                                  cert_path, signer.subject()));

  std::vector<tls::Certificate> roots;
  if (exists(root_path)) {
    auto r = read_certs(root_path);
    if (!r) return r.error();
    roots = std::move(*r);
  } else if (signer.self_signed()) {
    roots.push_back(signer);
  } else {
    return make_error(Code::NotFound,
                      fmt::format("{} is an intermediate CA (issued by another CA): put the "
                                  "root it chains to in {}",
                                  cert_path, root_path));
  }

  // The candidates between the signer and a root: the rest of ca-cert.pem and cert-chain.pem
  // (Istio's cert-chain.pem repeats ca-cert.pem and the root: those are skipped).
  std::vector<tls::Certificate> pool(ca_certs->begin() + 1, ca_certs->end());
  if (exists(chain_path)) {
    auto chain = read_certs(chain_path);
    if (!chain) return chain.error();
    pool.insert(pool.end(), chain->begin(), chain->end());
  }
  auto is_root = [&](const tls::Certificate& c) {
    return std::find(roots.begin(), roots.end(), c) != roots.end();
  };
  // Walk up from the signer through the pool until a root issued the certificate at hand.
  std::vector<tls::Certificate> intermediates;
  if (!is_root(signer)) {
    intermediates.push_back(signer);
    const tls::Certificate* at = &signer;
    for (size_t steps = 0; steps < pool.size(); ++steps) {
      if (std::any_of(roots.begin(), roots.end(),
                      [&](const tls::Certificate& r) { return at->issued_by(r); }))
        break;
      auto next = std::find_if(pool.begin(), pool.end(), [&](const tls::Certificate& c) {
        return !(c == *at) && !is_root(c) && !c.self_signed() && at->issued_by(c) &&
               std::find(intermediates.begin(), intermediates.end(), c) == intermediates.end();
      });
      if (next == pool.end()) break;
      intermediates.push_back(*next);
      at = &intermediates.back();
    }
  }
  std::span<const tls::Certificate> above(intermediates);
  if (!above.empty()) above = above.subspan(1);
  if (Status s = tls::verify_chain(signer, above, roots); !s.is_ok())
    return make_error(
        Code::InvalidArgument,
        fmt::format("{} does not chain to {}{}: {}", cert_path, root_path,
                    exists(chain_path) ? fmt::format(" through {}", chain_path) : "", s.message()));
  return std::unique_ptr<CertificateAuthority>(
      new CertificateAuthority(options, Source::Operator, std::move(roots),
                               std::move(intermediates), std::move(signer), std::move(*key)));
}

Result<IssuedCertificate> CertificateAuthority::issue(std::string_view spiffe_id,
                                                      std::chrono::seconds ttl,
                                                      tls::Time now) const {
  MB_TRY(check_issue_request(spiffe_id, ttl, options_.max_ttl));
  auto id = tls::parse_spiffe_id(spiffe_id);
  if (!id) return id.error();  // not reached: checked above
  // Never past any CA certificate above it: a verifier would reject the tail anyway.
  tls::Time ca_not_after = signer_.not_after();
  for (const auto& c : intermediates_)
    ca_not_after = std::min(ca_not_after, c.not_after());
  ca_not_after = std::min(ca_not_after, root().not_after());
  tls::CertificateSpec spec;
  spec.organization = kOrganization;
  spec.not_before = std::max(now - kLeafBackdate, signer_.not_before());
  spec.not_after = std::min(now + ttl, ca_not_after);
  if (spec.not_after <= now)
    return make_error(Code::Unavailable,
                      fmt::format("the CA certificate expired on {}", utc(ca_not_after)));
  spec.uri_sans = {id->str()};
  auto key = tls::PrivateKey::generate_p256();
  if (!key) return key.error();
  auto leaf = tls::sign_certificate(spec, *key, &signer_, signer_key_);
  if (!leaf) return leaf.error();
  return IssuedCertificate{std::move(*leaf), intermediates_, std::move(*key), id->str()};
}

std::string CertificateAuthority::describe() const {
  std::string from;
  switch (source_) {
    case Source::Created:
      from = "created a root";
      break;
    case Source::Loaded:
      from = "root";
      break;
    case Source::Operator:
      from = fmt::format("the operator's CA \"{}\" under root", signer_.subject());
      break;
  }
  return fmt::format("{} \"{}\", SHA-256 fingerprint {}, valid until {}", from, root().subject(),
                     root().sha256_fingerprint(), utc(root().not_after()));
}

Status check_issue_request(std::string_view spiffe_id, std::chrono::seconds ttl,
                           std::chrono::seconds max_ttl) {
  auto id = tls::parse_spiffe_id(spiffe_id);
  if (!id)
    return make_error(Code::InvalidArgument,
                      fmt::format("bad SPIFFE ID \"{}\": {}", spiffe_id, id.error().message()));
  if (id->path.empty())
    return make_error(Code::InvalidArgument,
                      fmt::format("bad SPIFFE ID \"{}\": a workload's ID needs a path, such as "
                                  "spiffe://{}/ns/default/sa/NAME (the bare trust domain names "
                                  "no workload)",
                                  spiffe_id, id->trust_domain));
  if (ttl < kMinTtl)
    return make_error(Code::InvalidArgument, "a certificate's TTL must be at least 1m");
  if (ttl > max_ttl)
    return make_error(Code::InvalidArgument,
                      fmt::format("a certificate's TTL must be at most {}h",
                                  std::chrono::duration_cast<std::chrono::hours>(max_ttl).count()));
  return Status::ok();
}

std::string workload_spiffe_id(std::string_view trust_domain, std::string_view ns,
                               std::string_view service_account) {
  return fmt::format("spiffe://{}/ns/{}/sa/{}", trust_domain, ns, service_account);
}

tls::Time renewal_time(tls::Time not_before, tls::Time not_after) {
  if (not_after <= not_before) return not_before;
  return not_before + (not_after - not_before) / 2;
}

}  // namespace meshbox::control
