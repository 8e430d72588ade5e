#include "plane/control/gateway_tls.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>

#include <fmt/format.h>

#include "core/base/log.h"
#include "core/tls/cipher_suites.h"

namespace meshbox::control {

namespace {

using Mode = config::ServerTls::Mode;

constexpr size_t kMaxPemBytes = 1 << 20;  // a PEM file is a few KiB; a CA bundle < 1 MiB

bool verifies_clients(const config::ServerTls& t) {
  return t.mode && (*t.mode == Mode::Mutual || *t.mode == Mode::OptionalMutual);
}

/// A failure and the tls field naming the file at fault.
struct SpecError {
  std::string field;  // "server_certificate", "private_key", "ca_certificates", "" = tls
  std::string message;
};

/// The file's bytes, or why not ("No such file or directory"). Blocking; small files only.
Result<std::string> read_pem(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return make_error(Code::NotFound, std::strerror(errno));
  std::string out;
  char buf[16 * 1024];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int e = errno;
      ::close(fd);
      return make_error(Code::Internal, std::strerror(e));
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
    if (out.size() > kMaxPemBytes) {
      ::close(fd);
      return make_error(Code::InvalidArgument, "larger than 1 MiB: not a PEM file");
    }
  }
  ::close(fd);
  return out;
}

std::string utc(tls::Time t) {
  std::time_t tt = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

tls::TlsVersion version(config::ServerTls::Version v, tls::TlsVersion automatic) {
  switch (v) {
    case config::ServerTls::Version::V1_3:
      return tls::TlsVersion::Tls13;
    case config::ServerTls::Version::Auto:
      return automatic;
    default:
      return tls::TlsVersion::Tls12;  // 1.0 and 1.1 never get here: validation refuses them
  }
}

std::optional<SpecError> build_spec(const config::ServerTls& t, bool https,
                                    tls::TlsContextSpec& spec) {
  auto fail = [](std::string field, const std::string& path, std::string why) {
    return SpecError{field, fmt::format("{} {}: {}", field, path, why)};
  };
  auto cert_pem = read_pem(t.server_certificate);
  if (!cert_pem)
    return fail("server_certificate", t.server_certificate, cert_pem.error().message());
  auto chain = tls::Certificate::all_from_pem(*cert_pem);
  if (!chain) return fail("server_certificate", t.server_certificate, chain.error().message());
  const tls::Certificate& leaf = chain->front();
  auto now = std::chrono::system_clock::now();
  if (leaf.not_after() < now)
    return fail(
        "server_certificate", t.server_certificate,
        fmt::format("the certificate ({}) expired at {}", leaf.subject(), utc(leaf.not_after())));
  if (leaf.not_before() > now + std::chrono::minutes(5))
    return fail("server_certificate", t.server_certificate,
                fmt::format("the certificate ({}) is not valid before {}", leaf.subject(),
                            utc(leaf.not_before())));

  auto key_pem = read_pem(t.private_key);
  if (!key_pem) return fail("private_key", t.private_key, key_pem.error().message());
  // The key's bytes never reach a message: PrivateKey's errors say what kind of thing is
  // wrong, not what the file holds.
  tls::SecretString secret(std::move(*key_pem));
  auto key = tls::PrivateKey::from_pem(secret.reveal());
  if (!key) return fail("private_key", t.private_key, key.error().message());
  if (!leaf.matches(*key))
    return SpecError{"server_certificate",
                     fmt::format("private_key {} does not match server_certificate {} ({})",
                                 t.private_key, t.server_certificate, leaf.subject())};

  spec = {};
  spec.role = tls::TlsContextSpec::Role::Server;
  spec.identities.push_back(tls::TlsIdentity{std::move(*chain), std::move(*key), {}});
  if (verifies_clients(t)) {
    auto ca_pem = read_pem(t.ca_certificates);
    if (!ca_pem) return fail("ca_certificates", t.ca_certificates, ca_pem.error().message());
    auto roots = tls::Certificate::all_from_pem(*ca_pem);
    if (!roots) return fail("ca_certificates", t.ca_certificates, roots.error().message());
    spec.trusted_roots = std::move(*roots);
    spec.client_certs =
        *t.mode == Mode::Mutual ? tls::ClientCertMode::Require : tls::ClientCertMode::Request;
    spec.peer_subject_alt_names = t.subject_alt_names;
  }
  spec.min_version = version(t.min_protocol_version, tls::TlsVersion::Tls12);
  spec.max_version = version(t.max_protocol_version, tls::TlsVersion::Tls13);
  spec.cipher_list = tls::tls12_cipher_list(t.cipher_suites);
  if (https) spec.alpn = {"http/1.1"};
  spec.session_resumption = true;  // tickets; BoringSSL rotates their key
  return std::nullopt;
}

}  // namespace

Result<tls::TlsContextSpec> server_tls_spec(const config::ServerTls& t, bool https) {
  tls::TlsContextSpec spec;
  if (auto e = build_spec(t, https, spec)) return make_error(Code::InvalidArgument, e->message);
  return spec;
}

std::vector<config::ConfigError> check_gateway_tls_files(const config::Config& c) {
  std::vector<config::ConfigError> out;
  for (const auto& g : c.gateways) {
    for (size_t i = 0; i < g.servers.size(); ++i) {
      const config::Server& s = g.servers[i];
      if (s.port.protocol != config::Protocol::Https || !s.tls || !s.tls->mode) continue;
      Mode m = *s.tls->mode;
      if (m != Mode::Simple && m != Mode::Mutual && m != Mode::OptionalMutual) continue;
      if (s.tls->server_certificate.empty() || s.tls->private_key.empty()) continue;  // validation
      if (verifies_clients(*s.tls) && s.tls->ca_certificates.empty()) continue;
      std::string tp = fmt::format("servers[{}].tls", i);
      tls::TlsContextSpec spec;
      std::optional<SpecError> e = build_spec(*s.tls, true, spec);
      if (!e) {
        if (auto ctx = tls::TlsContext::create(spec); !ctx)
          e = SpecError{"", ctx.error().message()};
      }
      if (!e) continue;
      std::string field = e->field.empty() ? tp : tp + "." + e->field;
      config::Pos p = g.source.at(field);
      out.push_back(config::ConfigError{config::Severity::Error, g.source.file, p.line, p.column,
                                        "gateway", g.display_name(), field, e->message});
    }
  }
  return out;
}

GatewayTls::GatewayTls(loop::Loop& loop, std::function<void()> on_change, uint64_t poll_ms)
    : loop_(loop), on_change_(std::move(on_change)), poll_ms_(poll_ms) {}

GatewayTls::~GatewayTls() = default;

std::string GatewayTls::stamps_of(const std::vector<std::string>& files) {
  std::string s;
  for (const auto& f : files) {
    struct stat st {};
    if (::stat(f.c_str(), &st) != 0) {
      s += fmt::format("{}: errno {}\n", f, errno);
      continue;
    }
    s += fmt::format("{}: {} {} {} {}.{} {}.{}\n", f, st.st_dev, st.st_ino, st.st_size,
                     st.st_mtim.tv_sec, st.st_mtim.tv_nsec, st.st_ctim.tv_sec, st.st_ctim.tv_nsec);
  }
  return s;
}

void GatewayTls::begin_compile() {
  for (auto& [key, e] : entries_)
    e.used = false;
}

Result<tls::TlsContextConstPtr> GatewayTls::context(const config::ServerTls& t, bool https) {
  std::vector<std::string> files{t.server_certificate, t.private_key};
  if (verifies_clients(t)) files.push_back(t.ca_certificates);
  std::string key = fmt::format(
      "{}|{}|{}|{}|{}|{}|{}|{}", static_cast<int>(t.mode.value_or(Mode::Simple)), https,
      fmt::join(files, "|"), fmt::join(t.subject_alt_names, ","),
      static_cast<int>(t.min_protocol_version), static_cast<int>(t.max_protocol_version),
      fmt::join(t.cipher_suites, ":"), files.size());
  Entry& e = entries_[key];
  e.used = true;
  e.files = files;
  std::string stamps = stamps_of(files);
  bool known = e.context || !e.error.empty();
  if (!known || stamps != e.stamps) {
    e.stamps = std::move(stamps);
    std::string error;
    tls::TlsContextSpec spec;
    if (auto se = build_spec(t, https, spec)) {
      error = se->message;
    } else if (auto ctx = tls::TlsContext::create(spec); !ctx) {
      error = fmt::format("server_certificate {}: {}", t.server_certificate, ctx.error().message());
    } else {
      if (e.context) {
        const tls::Certificate& leaf = spec.identities.front().chain.front();
        MB_INFO("gateway", "server_certificate {} reloaded: {}, valid until {}",
                t.server_certificate, leaf.subject(), utc(leaf.not_after()));
      }
      e.context = std::move(*ctx);
    }
    if (!error.empty() && e.context)
      MB_ERROR("gateway", "{}; the previous certificate is still served", error);
    e.error = std::move(error);
  }
  if (e.context) return e.context;
  return make_error(Code::InvalidArgument, e.error);
}

void GatewayTls::end_compile() {
  std::erase_if(entries_, [](const auto& kv) { return !kv.second.used; });
  // Stopped, not destroyed: this may run inside the timer's own callback (poll()).
  if (entries_.empty()) {
    if (timer_) timer_->stop();
    return;
  }
  if (!timer_) timer_ = std::make_unique<loop::Timer>(loop_, [this] { poll(); });
  if (!timer_->active()) timer_->start(poll_ms_, poll_ms_);
}

void GatewayTls::stop() {
  timer_.reset();
}

void GatewayTls::poll() {
  for (const auto& [key, e] : entries_) {
    if (stamps_of(e.files) != e.stamps) {
      MB_DEBUG("gateway", "a certificate file changed: rebuilding the gateway TLS contexts");
      on_change_();  // recompiles: context() rebuilds what changed
      return;
    }
  }
}

}  // namespace meshbox::control
