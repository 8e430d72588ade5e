#include "plane/config/resources.h"

#include <array>

namespace meshbox::config {

Pos Source::at(std::string_view path) const {
  while (!path.empty()) {
    if (auto it = fields.find(path); it != fields.end()) return it->second;
    // Drop the last step: ".key" or "[i]".
    size_t cut = path.find_last_of(".[");
    if (cut == std::string_view::npos) break;
    path = path.substr(0, cut);
  }
  return pos;
}

bool Source::clean(std::string_view path) const {
  for (auto it = rejected.lower_bound(path); it != rejected.end(); ++it) {
    std::string_view r = *it;
    if (!r.starts_with(path)) break;
    if (r.size() == path.size() || r[path.size()] == '.' || r[path.size()] == '[') return false;
  }
  return true;
}

std::string Resource::display_name() const {
  return ns == "default" ? name : ns + "/" + name;
}

namespace {

constexpr std::string_view kKinds[] = {
    "mesh",
    "service",
    "workload",
    "virtual_service",
    "destination_rule",
    "gateway",
    "service_entry",
    "peer_authentication",
    "authorization_policy",
    "request_authentication",
};

template <typename R>
void list_kind(std::string_view kind, const std::vector<R>& resources,
               std::vector<ResourceRef>& out) {
  for (const R& r : resources)
    out.push_back({kind, r.ns, r.name, &r.source});
}

}  // namespace

std::span<const std::string_view> resource_kinds() {
  return kKinds;
}

std::vector<ResourceRef> list_resources(const Config& config) {
  std::vector<ResourceRef> out;
  if (config.mesh.defined) out.push_back({"mesh", "", "mesh", &config.mesh.source});
  list_kind("service", config.services, out);
  list_kind("workload", config.workloads, out);
  list_kind("virtual_service", config.virtual_services, out);
  list_kind("destination_rule", config.destination_rules, out);
  list_kind("gateway", config.gateways, out);
  list_kind("service_entry", config.service_entries, out);
  list_kind("peer_authentication", config.peer_authentications, out);
  list_kind("authorization_policy", config.authorization_policies, out);
  list_kind("request_authentication", config.request_authentications, out);
  return out;
}

namespace {

template <typename E, size_t N>
using Names = std::array<EnumName<E>, N>;

constexpr Names<Protocol, 4> kProtocols{{
    {"http", Protocol::Http},
    {"https", Protocol::Https},
    {"tcp", Protocol::Tcp},
    {"tls", Protocol::Tls},
}};
constexpr Names<OutboundTrafficPolicy, 2> kOutbound{{
    {"allow_any", OutboundTrafficPolicy::AllowAny},
    {"registry_only", OutboundTrafficPolicy::RegistryOnly},
}};
constexpr Names<Capture, 2> kCaptures{{
    {"none", Capture::None},
    {"iptables", Capture::Iptables},
}};
constexpr Names<AccessLogEncoding, 2> kEncodings{{
    {"text", AccessLogEncoding::Text},
    {"json", AccessLogEncoding::Json},
}};
constexpr Names<HttpRedirect::DerivePort, 2> kDerivePorts{{
    {"from_protocol_default", HttpRedirect::DerivePort::FromProtocolDefault},
    {"from_request_port", HttpRedirect::DerivePort::FromRequestPort},
}};
constexpr Names<LbPolicy, 4> kLbPolicies{{
    {"unspecified", LbPolicy::Unspecified},
    {"round_robin", LbPolicy::RoundRobin},
    {"random", LbPolicy::Random},
    {"least_request", LbPolicy::LeastRequest},
}};
constexpr Names<ClientTls::Mode, 4> kClientTlsModes{{
    {"disable", ClientTls::Mode::Disable},
    {"simple", ClientTls::Mode::Simple},
    {"mutual", ClientTls::Mode::Mutual},
    {"istio_mutual", ClientTls::Mode::IstioMutual},
}};
constexpr Names<ServerTls::Mode, 5> kServerTlsModes{{
    {"passthrough", ServerTls::Mode::Passthrough},
    {"simple", ServerTls::Mode::Simple},
    {"mutual", ServerTls::Mode::Mutual},
    {"istio_mutual", ServerTls::Mode::IstioMutual},
    {"optional_mutual", ServerTls::Mode::OptionalMutual},
}};
constexpr Names<ServerTls::Version, 5> kTlsVersions{{
    {"tls_auto", ServerTls::Version::Auto},
    {"tlsv1_0", ServerTls::Version::V1_0},
    {"tlsv1_1", ServerTls::Version::V1_1},
    {"tlsv1_2", ServerTls::Version::V1_2},
    {"tlsv1_3", ServerTls::Version::V1_3},
}};
constexpr Names<Location, 2> kLocations{{
    {"mesh_external", Location::MeshExternal},
    {"mesh_internal", Location::MeshInternal},
}};
constexpr Names<Resolution, 4> kResolutions{{
    {"none", Resolution::None},
    {"static", Resolution::Static},
    {"dns", Resolution::Dns},
    {"dns_round_robin", Resolution::DnsRoundRobin},
}};
constexpr Names<MtlsMode, 4> kMtlsModes{{
    {"unset", MtlsMode::Unset},
    {"disable", MtlsMode::Disable},
    {"permissive", MtlsMode::Permissive},
    {"strict", MtlsMode::Strict},
}};
constexpr Names<AuthzAction, 3> kAuthzActions{{
    {"allow", AuthzAction::Allow},
    {"deny", AuthzAction::Deny},
    {"audit", AuthzAction::Audit},
}};

}  // namespace

std::span<const EnumName<Protocol>> enum_names(Protocol) {
  return kProtocols;
}
std::span<const EnumName<OutboundTrafficPolicy>> enum_names(OutboundTrafficPolicy) {
  return kOutbound;
}
std::span<const EnumName<Capture>> enum_names(Capture) {
  return kCaptures;
}
std::span<const EnumName<AccessLogEncoding>> enum_names(AccessLogEncoding) {
  return kEncodings;
}
std::span<const EnumName<HttpRedirect::DerivePort>> enum_names(HttpRedirect::DerivePort) {
  return kDerivePorts;
}
std::span<const EnumName<LbPolicy>> enum_names(LbPolicy) {
  return kLbPolicies;
}
std::span<const EnumName<ClientTls::Mode>> enum_names(ClientTls::Mode) {
  return kClientTlsModes;
}
std::span<const EnumName<ServerTls::Mode>> enum_names(ServerTls::Mode) {
  return kServerTlsModes;
}
std::span<const EnumName<ServerTls::Version>> enum_names(ServerTls::Version) {
  return kTlsVersions;
}
std::span<const EnumName<Location>> enum_names(Location) {
  return kLocations;
}
std::span<const EnumName<Resolution>> enum_names(Resolution) {
  return kResolutions;
}
std::span<const EnumName<MtlsMode>> enum_names(MtlsMode) {
  return kMtlsModes;
}
std::span<const EnumName<AuthzAction>> enum_names(AuthzAction) {
  return kAuthzActions;
}

}  // namespace meshbox::config
