// Transparent capture (workload `capture = "iptables"`, Linux, root): what Istio's init
// container and istio-cni do for a pod, done by meshbox for one workload instance.
//
// - CaptureNetns: the instance's own network namespace `mbx-PID-N` (/run/netns/NAME, PID being
//   meshbox's), joined to meshbox's namespace by a veth pair with a /30 of mesh.capture_cidr
//   (meshbox's side .1, the workload's .2, the default route through .1), and nat rules in it:
//     OUTPUT      tcp to 127.0.0.1 → RETURN (the app's own loopback; the inbound sidecar's
//                 connections to the app), any other tcp → REDIRECT to the outbound listener
//     PREROUTING  tcp → REDIRECT to the inbound listener (other sidecars and gateways reach
//                 the instance at NETNS_IP:APP_PORT, like a pod IP)
//   The sidecar's listeners are bound inside the namespace (ListenerSpec::netns), so REDIRECT
//   and SO_ORIGINAL_DST work; connections to other services leave from meshbox's namespace and
//   are not captured again. Made by shelling out to `ip` and `iptables-restore`, as istio-cni
//   does; removed (veth, namespace, hosts file) when the CaptureNetns is destroyed.
// - Names: every service and service-entry host gets a virtual IP in 240.240.0.0/16 (like a
//   ClusterIP; stable: a hash of the host). The instance sees them through a hosts file,
//   /etc/netns/NAME/hosts, bind-mounted over /etc/hosts by the launcher (`meshbox
//   __workload-exec --netns NAME --hosts FILE`, as `ip netns exec` does), so the app calls
//   `http://reviews:9080/` with no HTTP_PROXY: the connection to the VIP is redirected to the
//   outbound listener, which routes by the Host header.
//
// Loop thread only (the control loop). The setup blocks for the few `ip` commands it runs
// (tens of milliseconds), once per instance start: RULE ZERO, it runs on the control loop,
// never on a worker.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/base/non_copyable.h"
#include "core/base/result.h"
#include "plane/config/resources.h"

namespace meshbox::control {

/// A name the mesh knows and the virtual IP its hosts files give it.
struct ServiceVip {
  std::string vip;                 // "240.240.X.Y"
  std::string ns;                  // the service's namespace ("" for a service entry host)
  std::string name;                // the service's short name ("" for a service entry host)
  std::vector<std::string> names;  // every name but the short one: NAME.NS, …, the FQDN
  bool operator==(const ServiceVip&) const = default;
};

/// The virtual IPs of `config`'s services and (non-wildcard) service entry hosts: a hash of
/// the host in 240.240.0.0/16, the next free one on a collision (hosts in sorted order).
std::vector<ServiceVip> service_vips(const config::Config& config);

/// A hosts file for an instance in namespace `client_ns`: localhost, then each VIP with its
/// names (a service's short name only in its own namespace, as Kubernetes' search path).
std::string hosts_file(const std::vector<ServiceVip>& vips, std::string_view client_ns);

class CaptureNetns : NonCopyable {
 public:
  /// Makes the namespace, the veth pair and the rules: REDIRECT to `inbound_port` and
  /// `outbound_port` (the sidecar's listeners). `cidr`: mesh.capture_cidr. On failure nothing
  /// is left behind; the error says which command failed and what it printed.
  static Result<std::unique_ptr<CaptureNetns>> create(const std::string& cidr,
                                                      uint32_t inbound_port,
                                                      uint32_t outbound_port);
  /// Deletes the veth pair, the namespace and its /etc/netns directory.
  ~CaptureNetns();

  const std::string& name() const { return name_; }         // mbx-PID-N
  const std::string& path() const { return path_; }         // /run/netns/NAME
  const std::string& ip() const { return ip_; }             // the workload's side: .2
  const std::string& hosts_path() const { return hosts_; }  // /etc/netns/NAME/hosts
  /// Rewrites the hosts file in place (the bind mount follows the inode, not the name).
  Status write_hosts(const std::string& content) const;

 private:
  CaptureNetns() = default;

  std::string name_, path_, ip_, host_veth_, hosts_;
  bool made_ = false;  // `ip` ran: the destructor has something to remove
};

/// Removes what a meshbox that died left: namespaces mbx-PID-* (and their /etc/netns
/// directories) whose PID is not a running process. Their veth pairs go with them.
void clean_stale_netns();

}  // namespace meshbox::control
