#include "plane/control/upstream_tls.h"

#include <sys/stat.h>

#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "core/tls/secret.h"

namespace meshbox::control {

namespace {

/// The whole file, or an error naming it. Control thread (blocking, small files).
Result<std::string> slurp(const std::string& path, std::string_view what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return make_error(Code::NotFound, fmt::format("{} {}: cannot read it", what, path));
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

}  // namespace

std::string UpstreamTlsCache::signature(const std::vector<std::string>& files) {
  std::string s;
  for (const auto& f : files) {
    struct stat st {};
    if (::stat(f.c_str(), &st) != 0) {
      s += f + " missing\n";
      continue;
    }
    s += fmt::format("{} {} {}.{} {}\n", f, st.st_size, st.st_mtim.tv_sec, st.st_mtim.tv_nsec,
                     st.st_ino);
  }
  return s;
}

Result<tls::TlsContextConstPtr> UpstreamTlsCache::get(const config::ClientTls& t,
                                                      const std::string& sni) {
  using Mode = config::ClientTls::Mode;
  std::string ca = t.ca_certificates.empty() ? kSystemCaBundle : t.ca_certificates;
  std::vector<std::string> files;
  if (!t.insecure_skip_verify) files.push_back(ca);
  if (t.mode == Mode::Mutual) {
    files.push_back(t.client_certificate);
    files.push_back(t.private_key);
  }
  std::string key =
      fmt::format("{}|{}|{}|{}|{}|{}|{}", static_cast<int>(t.mode), sni, t.insecure_skip_verify,
                  fmt::join(files, ","), fmt::join(t.subject_alt_names, ","), t.client_certificate,
                  t.private_key);
  std::string sig = signature(files);
  auto it = entries_.find(key);
  if (it != entries_.end() && it->second.signature == sig) {
    it->second.used = true;
    return it->second.context;
  }
  Entry e;
  e.files = std::move(files);
  e.signature = std::move(sig);
  e.context = build(t, sni);
  auto& slot = entries_[key];
  slot = std::move(e);
  return slot.context;
}

Result<tls::TlsContextConstPtr> UpstreamTlsCache::build(const config::ClientTls& t,
                                                        const std::string& sni) {
  using Mode = config::ClientTls::Mode;
  tls::TlsContextSpec spec;
  spec.role = tls::TlsContextSpec::Role::Client;
  spec.min_version = tls::TlsVersion::Tls12;
  spec.server_name = sni;
  spec.verify_peer = !t.insecure_skip_verify;
  if (spec.verify_peer) {
    std::string ca = t.ca_certificates.empty() ? kSystemCaBundle : t.ca_certificates;
    auto pem = slurp(ca, "ca_certificates");
    if (!pem) return pem.error();
    auto roots = tls::Certificate::all_from_pem(*pem);
    if (!roots)
      return make_error(Code::InvalidArgument,
                        fmt::format("ca_certificates {}: {}", ca, roots.error().message()));
    spec.trusted_roots = std::move(*roots);
    spec.peer_subject_alt_names = t.subject_alt_names;
    // Without subject_alt_names the certificate must name the server as the SNI does.
    spec.verify_server_name = t.subject_alt_names.empty() && !sni.empty();
  }
  if (t.mode == Mode::Mutual) {
    auto chain = slurp(t.client_certificate, "client_certificate");
    if (!chain) return chain.error();
    auto key_pem = slurp(t.private_key, "private_key");
    if (!key_pem) return key_pem.error();
    tls::SecretString key(std::move(*key_pem));
    auto id = tls::identity_from_pem(*chain, key.reveal());
    if (!id)
      return make_error(Code::InvalidArgument,
                        fmt::format("client_certificate {} / private_key {}: {}",
                                    t.client_certificate, t.private_key, id.error().message()));
    spec.identities.push_back(std::move(*id));
  }
  auto ctx = tls::TlsContext::create(spec);
  if (!ctx) return make_error(Code::InvalidArgument, ctx.error().message());
  return *ctx;
}

bool UpstreamTlsCache::files_changed() const {
  for (const auto& [key, e] : entries_)
    if (signature(e.files) != e.signature) return true;
  return false;
}

void UpstreamTlsCache::begin() {
  for (auto& [key, e] : entries_)
    e.used = false;
}

void UpstreamTlsCache::sweep() {
  std::erase_if(entries_, [](const auto& kv) { return !kv.second.used; });
}

}  // namespace meshbox::control
