// Registry: the services' endpoints (Istio's service discovery). Endpoints come from four
// places: workloads in the config that meshbox does not run (no `command`) and static
// endpoints of service entries (both replaced whole on every config change), the running
// processes of workloads with a `command` and the processes attached with `meshbox inject`
// (the supervisor's instances, replaced whole whenever one starts or stops), and register
// calls on the admin API (kept in memory until deregistered). A process with a health check
// is left out until its first check passes (Kubernetes' readiness: an app still starting gets
// no traffic).
//
// Endpoints with a health check are probed actively
// (HTTP GET of a path that must answer 2xx or 3xx, as Kubernetes probes do, or a TCP connect)
// on the control loop; crossing the unhealthy threshold takes an endpoint out, the healthy
// threshold brings it back. Service entries with resolution dns or dns_round_robin name their
// endpoints by host name: the registry resolves each name on the control loop (dns.h), again
// whenever its TTL runs out, and lists the addresses as endpoints (see DnsName in
// registry.cpp for the timing rules). Every change calls the owner's OnChange once per loop
// iteration (coalesced), never from inside the call that made the change.
// Loop thread only (the control loop).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/base/non_copyable.h"
#include "core/base/result.h"
#include "core/dns/dns.h"
#include "core/loop/loop.h"
#include "core/loop/timer.h"
#include "plane/config/host_index.h"
#include "plane/config/resources.h"

namespace meshbox::control {

struct Endpoint {
  std::string host;  // the service's FQDN (reviews.default.svc.cluster.local) or an entry host
  std::string ns;    // namespace of the service / entry / registration
  /// An IP; for service entries with resolution dns or dns_round_robin, possibly a host name.
  /// The registry lists a name's addresses in its place once resolved (the name itself until
  /// the first answer; the compiler skips it with a warning).
  std::string address;
  uint32_t port = 0;                            // 0 = the service port it is reached on
  std::map<std::string, uint32_t> named_ports;  // service entries: port name → endpoint port
  config::Labels labels;
  std::string locality;  // "region/zone/subzone"
  uint32_t weight = 1;
  std::string source;  // "workload/NS/NAME", "service_entry/NS/NAME" or "api"
  /// Service entries: dns (every address of a name, as Envoy's STRICT_DNS) or
  /// dns_round_robin (one address at a time, as LOGICAL_DNS) make `address` a name to
  /// resolve; None and Static leave it as it is.
  config::Resolution resolution = config::Resolution::None;
  /// The host name `address` was resolved from; empty if it was not resolved.
  std::string hostname;
  std::optional<config::HealthCheck> health_check;
  /// false once active checks failed unhealthy_threshold times in a row. Kept by the
  /// registry: the value passed in to set_config_endpoints / register_endpoint is ignored.
  bool healthy = true;
  /// With a health check: left out of endpoints() until the check first passes (processes
  /// meshbox starts). Without, or when the address cannot be probed: listed at once.
  bool wait_for_first_check = false;

  /// A workload instance meshbox runs with a sidecar (automatic injection), or a process
  /// attached with `meshbox inject` (manual injection): the instance's name and its sidecar's
  /// listeners on 127.0.0.1. The service's clusters then reach the instance through its
  /// inbound listener, and the app's outbound calls (HTTP_PROXY) go through its outbound
  /// listener. 0 = no sidecar: the app is reached directly.
  std::string instance;
  /// The workload's identity: spiffe://TRUST_DOMAIN/ns/NS/sa/SERVICE_ACCOUNT (mesh mTLS).
  std::string service_account = "default";
  uint32_t sidecar_inbound_port = 0;
  uint32_t sidecar_outbound_port = 0;
  /// A captured instance (capture = "iptables"): its network namespace (/run/netns/NAME).
  /// `address` is then the namespace's address, where iptables sends every connection to its
  /// inbound listener; the sidecar's listeners and the health check live in the namespace.
  std::string netns;
  /// Multi-node meshes (node_sync.h): the node that runs the instance, "" = this one. An
  /// endpoint of another node is reached at `address`:`sidecar_inbound_port` (its node's
  /// address) over mesh mTLS; only this node's instances get sidecar listeners here.
  std::string node;
  /// Where this node's instance's inbound listener listens, and where this node's clusters
  /// reach it: "" = 127.0.0.1 (one node); a multi-node mesh's node address, so that other
  /// nodes reach it too.
  std::string sidecar_address;

  /// The endpoint port for a service port (named_ports by port name, then `port`, then the
  /// service port's target_port or number).
  uint32_t port_for(const config::Port& service_port) const;
  /// "HOST ADDRESS:PORT": unique in the registry.
  std::string key() const;
};

/// Endpoints of the config: one per workload with a port and no command (its service's
/// host; workloads with a command are processes: instance_endpoint), one per static endpoint
/// of a service entry (for every host of the entry), one per host of a "dns" entry without
/// endpoints (address = the host name, resolved later by the registry). Sorted by key(); of
/// endpoints with the same key the first in config order is kept.
std::vector<Endpoint> endpoints_from_config(const config::Config& config);

/// The endpoint of workload `w` listening on `port`: its service's host, address, labels (with
/// app = SERVICE), locality, weight and health check; source "workload/NS/INSTANCE".
Endpoint workload_endpoint(const config::HostIndex& index, const config::Workload& w, uint32_t port,
                           std::string_view instance);
/// The endpoint of a running process of `w` (supervisor.h): workload_endpoint, on loopback
/// when `address` means every interface, waiting for its first health check. A captured
/// instance (`netns`: its namespace's path) is at `netns_ip` instead.
Endpoint instance_endpoint(const config::HostIndex& index, const config::Workload& w, uint32_t port,
                           std::string_view instance, uint32_t sidecar_inbound_port = 0,
                           uint32_t sidecar_outbound_port = 0, std::string_view netns = {},
                           std::string_view netns_ip = {});

class Registry : NonCopyable {
 public:
  /// Called on the loop after endpoints or their health changed; may destroy the Registry.
  using OnChange = std::function<void()>;
  /// `dns`: where the resolver finds its nameservers and hosts file.
  Registry(loop::Loop& loop, OnChange on_change, dns::ResolverOptions dns = {});
  /// Stops every probe and DNS lookup (closing their sockets) and drops a pending OnChange.
  ~Registry();

  /// Replaces the endpoints whose source is a workload or a service entry. Endpoints that
  /// are still there (same key and health check) keep their health and their probe state.
  /// Names to resolve that were already known keep their addresses; new ones are looked up
  /// on the next loop iteration. No OnChange when nothing changed.
  void set_config_endpoints(std::vector<Endpoint> endpoints);
  /// Replaces the endpoints of running workload processes (instance_endpoint). Those still
  /// there (same key and health check) keep their health and probe state; a new one with a
  /// health check stays out of endpoints() until it passes. No OnChange when nothing changed.
  void set_instance_endpoints(std::vector<Endpoint> endpoints);
  /// An endpoint from the admin API (source "api"); replaces one with the same key.
  /// Fails if the host is empty, the address is not an IP, the port is 0 or above 65535,
  /// or the health check is malformed (both http and tcp, a path without '/', a zero
  /// interval or timeout). A config endpoint with the same key takes precedence while it
  /// exists: the config is the declared truth.
  Status register_endpoint(Endpoint endpoint);
  /// Replaces the endpoints other nodes of the mesh published (node_sync.h): `node` set, each
  /// at its node's address. Not probed here (their node checks them and publishes only the
  /// healthy ones); a local endpoint with the same key takes precedence.
  void set_remote_endpoints(std::vector<Endpoint> endpoints);
  /// Removes an endpoint registered through the API; false if there was none.
  bool deregister_endpoint(std::string_view host, std::string_view address, uint32_t port);

  /// Every endpoint, sorted by key().
  const std::vector<Endpoint>& endpoints() const { return endpoints_; }

  /// The DNS refresh rules (docs/mesh.md): an answer is used for its TTL, but at least
  /// kDnsMinRefreshMs and at most kDnsMaxRefreshMs; an answer without TTL (no address and no
  /// SOA) for kDnsDefaultRefreshMs; a name from the hosts file is looked up again every
  /// kDnsHostsRefreshMs. A failed lookup keeps the last good addresses and is retried after
  /// 1 s, doubling up to kDnsMaxRetryMs.
  static constexpr uint64_t kDnsMinRefreshMs = 1'000;
  static constexpr uint64_t kDnsMaxRefreshMs = 300'000;
  static constexpr uint64_t kDnsDefaultRefreshMs = 5'000;
  static constexpr uint64_t kDnsHostsRefreshMs = 30'000;
  static constexpr uint64_t kDnsMaxRetryMs = 30'000;

 private:
  class Prober;
  class DnsName;
  /// Merges config and API endpoints into endpoints_, keeps the probers of endpoints whose
  /// key and health check are unchanged, starts new ones. True if endpoints_ changed.
  bool rebuild();
  /// Schedules OnChange (once, on the next timer pass).
  void changed();
  /// A prober crossed a threshold (or passed its first check).
  void set_health(const std::string& key, bool healthy);
  /// Config endpoints with every resolved name replaced by its addresses.
  std::vector<Endpoint> resolved_config_endpoints() const;
  /// A name got new addresses.
  void on_dns_change();

  loop::Loop& loop_;
  OnChange on_change_;
  // A 0 ms timer rather than Loop::run_soon: destroying the Registry destroys the timer, so
  // a pending notification can never fire into a dead Registry.
  loop::Timer notify_timer_;
  std::vector<Endpoint> config_endpoints_;
  std::vector<Endpoint> instance_endpoints_;
  std::vector<Endpoint> api_endpoints_;
  std::vector<Endpoint> remote_endpoints_;
  // All three, sorted, with current health, without processes still waiting for their first
  // passed check.
  std::vector<Endpoint> endpoints_;
  std::map<std::string, std::unique_ptr<Prober>> probers_;  // by key()
  dns::Resolver resolver_;
  std::map<std::string, std::unique_ptr<DnsName>> dns_names_;  // by name (as in the config)
  bool change_pending_ = false;
};

}  // namespace meshbox::control
