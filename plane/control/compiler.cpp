#include "plane/control/compiler.h"

#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstring>
#include <map>
#include <optional>
#include <set>
#include <string_view>
#include <tuple>
#include <utility>

#include <fmt/core.h>
#include <fmt/format.h>

#include "core/dns/dns.h"
#include "core/loop/address.h"
#include "plane/config/host_index.h"
#include "plane/control/ca.h"
#include "plane/control/locality.h"
#include "plane/control/netns.h"

namespace meshbox::control {

namespace {

using config::HostIndex;

/// Istio's name for the cluster of hosts outside the registry (allow_any).
constexpr const char* kPassthroughCluster = "PassthroughCluster";

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string cluster_name(uint32_t port, std::string_view subset, std::string_view host) {
  return fmt::format("outbound|{}|{}|{}", port, subset, host);
}

/// "HOST:PORT", with an IPv6 literal bracketed so that Address::parse splits it right.
std::string host_port(std::string_view host, uint32_t port) {
  if (host.find(':') != std::string_view::npos && !host.starts_with('['))
    return fmt::format("[{}]:{}", host, port);
  return fmt::format("{}:{}", host, port);
}

/// Numeric order (family, IP bytes, port): stable across runs, unlike the order endpoints
/// arrive in, and nicer to read than the order of their strings.
bool address_less(const loop::Address& a, const loop::Address& b) {
  if (a.family() != b.family()) return a.family() < b.family();
  int c = 0;
  if (a.family() == AF_INET) {
    c = std::memcmp(&reinterpret_cast<const sockaddr_in*>(a.sa())->sin_addr,
                    &reinterpret_cast<const sockaddr_in*>(b.sa())->sin_addr, sizeof(in_addr));
  } else if (a.family() == AF_INET6) {
    c = std::memcmp(&reinterpret_cast<const sockaddr_in6*>(a.sa())->sin6_addr,
                    &reinterpret_cast<const sockaddr_in6*>(b.sa())->sin6_addr, sizeof(in6_addr));
  }
  if (c != 0) return c < 0;
  return a.port() < b.port();
}

/// True if every label of `want` is in `have` (a subset's labels, a match's source_labels).
bool labels_contain(const config::Labels& have, const config::Labels& want) {
  for (const auto& [k, v] : want) {
    auto it = have.find(k);
    if (it == have.end() || it->second != v) return false;
  }
  return true;
}

std::string qualified(const config::Resource& r) {
  return r.ns + "/" + r.name;
}

/// A `gateways` entry ("NAME" in the resource's namespace, or "NS/NAME") as "NS/NAME".
std::string gateway_key(std::string_view ref, std::string_view ns) {
  if (ref.find('/') != std::string_view::npos) return std::string(ref);
  return fmt::format("{}/{}", ns, ref);
}

/// The host two host patterns have in common ("" if none): the more specific of the two. A
/// server host "*.example.com" and a virtual-service host "shop.example.com" meet at
/// "shop.example.com"; "*" and "*.example.com" at "*.example.com". Istio builds gateway
/// virtual hosts on this intersection, so a virtual service with hosts = ["*"] behind a
/// server that accepts only "shop.example.com" answers only for that name.
std::string intersect_hosts(const std::string& vs_host, const std::string& server_host) {
  if (HostIndex::wildcard_match(server_host, vs_host)) return vs_host;
  if (HostIndex::wildcard_match(vs_host, server_host)) return server_host;
  return {};
}

StringMatcher::Kind matcher_kind(config::StringMatch::Kind k) {
  switch (k) {
    case config::StringMatch::Kind::Exact:
      return StringMatcher::Kind::Exact;
    case config::StringMatch::Kind::Prefix:
      return StringMatcher::Kind::Prefix;
    case config::StringMatch::Kind::Regex:
      return StringMatcher::Kind::Regex;
    case config::StringMatch::Kind::Present:
      return StringMatcher::Kind::Present;
  }
  return StringMatcher::Kind::Exact;
}

Result<StringMatcher> make_matcher(const config::StringMatch& m, bool ignore_case = false) {
  return StringMatcher::make(matcher_kind(m.kind), m.value, ignore_case);
}

/// RFC 9110 §5.6.2 tchar.
bool is_token_char(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

bool is_token(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), is_token_char);
}

/// Headers the proxy writes itself: hop-by-hop ones (RFC 9110 §7.6.1) and the framing.
/// A header operation on them would break the message, so they are left out.
bool is_managed_header(std::string_view lower_name) {
  static constexpr std::string_view kManaged[] = {"connection",
                                                  "keep-alive",
                                                  "proxy-connection",
                                                  "te",
                                                  "trailer",
                                                  "transfer-encoding",
                                                  "upgrade",
                                                  "content-length",
                                                  "proxy-authenticate",
                                                  "proxy-authorization"};
  return std::find(std::begin(kManaged), std::end(kManaged), lower_name) != std::end(kManaged);
}

/// A value a header line can carry: no control character but HTAB (CR and LF above all,
/// which would let a config value start a header of its own).
bool is_header_value(std::string_view v) {
  return std::none_of(v.begin(), v.end(), [](char c) {
    auto u = static_cast<unsigned char>(c);
    return (u < 0x20 && c != '\t') || u == 0x7f;
  });
}

/// Istio's percentage (0–100) in parts per million, as Envoy's FractionalPercent.
uint32_t per_million(std::optional<double> percentage) {
  if (!percentage || !(*percentage > 0)) return 0;  // unset: never (Istio)
  if (*percentage >= 100) return 1'000'000;
  return static_cast<uint32_t>(std::lround(*percentage * 10'000));
}

/// The parts of a traffic policy the compiler uses, after a subset's policy is laid over its
/// rule's. Istio merges them field by field: a subset's load_balancer replaces the rule's
/// whole load_balancer, its connection_pool the whole connection_pool.
struct Policy {
  const config::LoadBalancer* load_balancer = nullptr;
  const config::ConnectionPool* connection_pool = nullptr;
  const config::OutlierDetection* outlier_detection = nullptr;
  const config::ClientTls* tls = nullptr;
};

/// `tp` laid over `base` for a cluster of `port`: the policy's own fields, then its
/// port_level_settings for that port (Istio: a port's settings beat the policy's). `tp` may
/// be null. A pointer, not an optional: the result points into it, so it must not be a
/// temporary.
Policy overlay(Policy base, const config::TrafficPolicy* tp, uint32_t port) {
  if (!tp) return base;
  if (tp->load_balancer) base.load_balancer = &*tp->load_balancer;
  if (tp->connection_pool) base.connection_pool = &*tp->connection_pool;
  if (tp->outlier_detection) base.outlier_detection = &*tp->outlier_detection;
  if (tp->tls) base.tls = &*tp->tls;
  for (const auto& pl : tp->port_level_settings) {
    if (pl.port != port) continue;
    if (pl.tls) base.tls = &*pl.tls;
    if (pl.load_balancer) base.load_balancer = &*pl.load_balancer;
    if (pl.connection_pool) base.connection_pool = &*pl.connection_pool;
    if (pl.outlier_detection) base.outlier_detection = &*pl.outlier_detection;
  }
  return base;
}

/// One gateway server on a listener.
struct ServerRef {
  const config::Gateway* gateway;
  const config::Server* server;
  size_t index;                           // in gateway->servers, for warnings
  std::string key;                        // "NS/NAME" of the gateway
  tls::TlsContextConstPtr tls = nullptr;  // an https server that terminates TLS: its context
};

/// A listener being built: every server on one (bind, port).
struct ListenerBuild {
  std::string bind;
  uint32_t port = 0;
  bool tcp = false;  // tcp/tls servers: a Tcp listener; http/https: an Http one
  // Of its first server; on a Tcp listener, of all of them (tcp: one route for every
  // connection; tls: routes by SNI).
  config::Protocol protocol = config::Protocol::Http;
  std::vector<ServerRef> servers;
};

class Compiler {
 public:
  Compiler(const config::Config& c, const std::vector<Endpoint>& endpoints,
           const CompileOptions& options)
      : c_(c), options_(options), hosts_(c) {
    for (const auto& ep : endpoints)
      endpoints_by_host_[lower(ep.host)].push_back(&ep);
  }

  Compiled run() {
    compile_clusters();
    compile_sidecars();
    compile_gateways();
    Compiled out;
    out.snapshot = std::make_shared<Snapshot>();
    for (auto& [name, cluster] : clusters_)
      out.snapshot->clusters.push_back(std::move(cluster));
    for (auto& [key, listener] : listeners_) {
      listener.metrics = c_.mesh.enable_metrics;
      out.snapshot->listeners.push_back(std::move(listener));
    }
    for (auto& [name, table] : route_tables_) {
      for (auto& vh : table.virtual_hosts)
        vh.build_prefilter();
      out.snapshot->route_tables.push_back(std::move(table));
    }
    out.warnings = std::move(warnings_);
    return out;
  }

 private:
  void warn(std::string text) {
    if (warned_.insert(text).second) warnings_.push_back(std::move(text));
  }

  // ---- clusters -------------------------------------------------------------------------

  void compile_clusters() {
    std::set<std::string> done;  // hosts already given clusters
    for (const auto& s : c_.services) {
      if (s.name.empty()) continue;
      std::string host = hosts_.fqdn(s);
      if (!done.insert(host).second) continue;  // a duplicate service (a validation error)
      compile_host(host, s.ns, s.ports);
    }
    for (const auto& se : c_.service_entries) {
      for (const auto& h : se.hosts) {
        std::string host = hosts_.resolve(h, se.ns);
        // A service with the same host wins, as in HostIndex; of two entries, the first.
        if (host.empty() || !done.insert(host).second) continue;
        compile_host(host, se.ns, se.ports);
      }
    }
  }

  /// The destination rule for `host` (a service's or entry's, in namespace `ns`), or null.
  /// Clusters here are shared by every proxy, so Istio's per-client lookup (the client's
  /// namespace first) becomes: an exact host before a wildcard, a longer wildcard before a
  /// shorter one; then a rule in the host's own namespace, then the root namespace, then
  /// any other; then config order.
  const config::DestinationRule* find_rule(const std::string& host, const std::string& ns) {
    using Rank = std::tuple<int, size_t, int>;
    std::vector<std::pair<Rank, const config::DestinationRule*>> found;
    for (const auto& dr : c_.destination_rules) {
      std::string h = hosts_.resolve(dr.host, dr.ns);
      if (h.empty() || !HostIndex::wildcard_match(h, host)) continue;
      bool exact = h == host;
      int ns_rank = dr.ns == ns ? 0 : dr.ns == c_.mesh.root_namespace ? 1 : 2;
      found.push_back({Rank{exact ? 0 : 1, exact ? 0 : SIZE_MAX - h.size(), ns_rank}, &dr});
    }
    if (found.empty()) return nullptr;
    // Stable: config order among equals.
    std::stable_sort(found.begin(), found.end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
    for (size_t i = 1; i < found.size() && found[i].first == found[0].first; ++i) {
      // Istio merges the subsets of such rules; meshbox takes the first.
      warn(fmt::format("destination_rule {}: ignored for host {}: destination_rule {} applies",
                       qualified(*found[i].second), host, qualified(*found[0].second)));
    }
    return found[0].second;
  }

  void compile_host(const std::string& host, const std::string& ns,
                    const std::vector<config::Port>& ports) {
    const config::DestinationRule* dr = find_rule(host, ns);
    auto it = endpoints_by_host_.find(host);
    const std::vector<const Endpoint*> none;
    const auto& eps = it == endpoints_by_host_.end() ? none : it->second;
    for (const auto& port : ports) {
      Policy base =
          overlay({}, dr && dr->traffic_policy ? &*dr->traffic_policy : nullptr, port.number);
      add_cluster(cluster_name(port.number, "", host), ns, port, eps, nullptr, base);
      if (!dr) continue;
      for (const auto& subset : dr->subsets) {
        if (subset.name.empty()) continue;
        add_cluster(
            cluster_name(port.number, subset.name, host), ns, port, eps, &subset.labels,
            overlay(base, subset.traffic_policy ? &*subset.traffic_policy : nullptr, port.number));
      }
    }
  }

  static HashPolicySpec hash_policy(const config::ConsistentHash& ch) {
    HashPolicySpec h;
    switch (ch.kind) {
      case config::ConsistentHash::Kind::HttpHeaderName:
        h.kind = HashPolicySpec::Kind::Header;
        h.name = lower(ch.http_header_name);
        break;
      case config::ConsistentHash::Kind::HttpCookie:
        h.kind = HashPolicySpec::Kind::Cookie;
        h.name = ch.http_cookie.name;
        h.cookie_path = ch.http_cookie.path;
        if (ch.http_cookie.ttl)
          h.cookie_ttl_ms =
              static_cast<uint64_t>(std::max<int64_t>(0, ch.http_cookie.ttl->count()));
        break;
      case config::ConsistentHash::Kind::UseSourceIp:
        h.kind = HashPolicySpec::Kind::SourceIp;
        break;
      case config::ConsistentHash::Kind::HttpQueryParameterName:
        h.kind = HashPolicySpec::Kind::QueryParam;
        h.name = ch.http_query_parameter_name;
        break;
    }
    if (ch.minimum_ring_size > 0)
      h.ring_size = static_cast<uint32_t>(std::min<uint64_t>(ch.minimum_ring_size, 1u << 23));
    return h;
  }

  /// The socket address of an endpoint on a port. Null (and a warning) if it cannot be had.
  /// Never blocks: host names (service entries with resolution dns) are the registry's to
  /// resolve, asynchronously; one without an answer yet is dropped until it has one.
  const loop::Address* endpoint_address(const Endpoint& ep, uint32_t port) {
    std::string text = host_port(ep.address, port);
    auto [it, inserted] = addresses_.try_emplace(text);
    if (!inserted) return it->second ? &*it->second : nullptr;
    if (port == 0 || port > 65535) {
      warn(fmt::format("endpoint {} ({}): no port for it; dropped", text, ep.source));
      return nullptr;
    }
    auto parsed = dns::parse_ip(ep.address, static_cast<uint16_t>(port));
    if (!parsed) {
      bool dns = ep.resolution == config::Resolution::Dns ||
                 ep.resolution == config::Resolution::DnsRoundRobin;
      warn(fmt::format("endpoint {} of {} ({}): {}; dropped", text, ep.host, ep.source,
                       dns ? "the name is not resolved yet" : "not an IP address"));
      return nullptr;
    }
    it->second = *parsed;
    return &*it->second;
  }

  const loop::Address* any_address(uint32_t port) {
    std::string text = host_port("0.0.0.0", port);
    auto [it, inserted] = addresses_.try_emplace(text);
    if (inserted && port > 0 && port <= 65535)
      it->second = dns::parse_ip("0.0.0.0", static_cast<uint16_t>(port));
    return it->second ? &*it->second : nullptr;
  }

  const loop::Address* ip_port_address(const std::string& ip, uint32_t port) {
    std::string text = host_port(ip, port);
    auto [it, inserted] = addresses_.try_emplace(text);
    if (inserted && port > 0 && port <= 65535)
      it->second = dns::parse_ip(ip, static_cast<uint16_t>(port));
    return it->second ? &*it->second : nullptr;
  }

  const loop::Address* loopback_address(uint32_t port) {
    return ip_port_address("127.0.0.1", port);
  }

  /// Where an instance's inbound sidecar listener is: this node's on its sidecar_address
  /// (loopback on a single node), another node's at that node's address.
  const loop::Address* sidecar_inbound_address(const Endpoint& ep) {
    if (!ep.node.empty()) return ip_port_address(ep.address, ep.sidecar_inbound_port);
    if (!ep.sidecar_address.empty())
      return ip_port_address(ep.sidecar_address, ep.sidecar_inbound_port);
    return loopback_address(ep.sidecar_inbound_port);
  }

  /// Locality load balancing (plane/control/locality.h) relative to the node's locality:
  /// priorities (with outlier detection) or distribute weights; drops the endpoints that
  /// distribute sends nothing. Candidates: anything with `spec` and `labels`.
  template <typename Candidate>
  void apply_locality(const std::string& cluster, const Policy& policy,
                      std::vector<Candidate>& all) {
    if (options_.locality.empty() || all.empty()) return;
    const config::LocalityLbSetting* rule =
        policy.load_balancer && policy.load_balancer->locality_lb_setting
            ? &*policy.load_balancer->locality_lb_setting
            : nullptr;
    auto setting = effective_locality_setting(c_.mesh.locality_lb_setting, rule);
    if (!setting) return;
    std::vector<LocalityInput> in;
    in.reserve(all.size());
    for (const auto& c : all)
      in.push_back({c.spec.locality, c.labels, c.spec.weight});
    // Istio fails over only with outlier detection: without it no endpoint ever leaves a
    // level, so the lower levels would never serve.
    std::vector<LocalityChoice> out =
        apply_locality_lb(options_.locality, *setting, policy.outlier_detection != nullptr, in);
    size_t kept = 0;
    for (size_t i = 0; i < all.size(); ++i) {
      if (out[i].weight == 0) continue;
      all[i].spec.weight = out[i].weight;
      all[i].spec.priority = out[i].priority;
      if (kept != i) all[kept] = std::move(all[i]);
      ++kept;
    }
    if (kept == 0)
      warn(
          fmt::format("cluster {}: locality_lb_setting distribute sends nothing to any of its "
                      "{} endpoints from locality {}",
                      cluster, all.size(), options_.locality));
    all.erase(all.begin() + static_cast<std::ptrdiff_t>(kept), all.end());
  }

  void add_cluster(std::string name, const std::string& ns, const config::Port& port,
                   const std::vector<const Endpoint*>& eps, const config::Labels* subset_labels,
                   const Policy& policy) {
    ClusterSpec cluster;
    cluster.name = std::move(name);
    set_service(cluster, cluster.name.substr(cluster.name.rfind('|') + 1), ns);

    struct Candidate {
      EndpointSpec spec;
      bool healthy;
      const config::Labels* labels = nullptr;
    };
    std::vector<Candidate> all;
    bool local_sidecars = true;
    for (const Endpoint* ep : eps) {
      if (subset_labels && !labels_contain(ep->labels, *subset_labels)) continue;
      // An instance with a sidecar is reached through its inbound listener; a captured one
      // at its namespace's address, where iptables hands every connection to that listener.
      const loop::Address* addr = ep->sidecar_inbound_port && ep->netns.empty()
                                      ? sidecar_inbound_address(*ep)
                                      : endpoint_address(*ep, ep->port_for(port));
      if (!addr) continue;
      EndpointSpec spec{*addr, ep->weight == 0 ? 1 : ep->weight, ep->locality, {}};
      // Istio's auto mTLS: an endpoint behind a sidecar that takes mTLS gets it, unless the
      // destination rule sets tls (disable: plain text; simple, mutual: its own TLS).
      if (!policy.tls && ep->sidecar_inbound_port && inbound_takes_mtls(*ep) &&
          (port.protocol == config::Protocol::Http || port.protocol == config::Protocol::Tcp) &&
          mesh_tls_mode(*ep) != ListenerSpec::MeshTls::Disable && identity(spiffe_of(*ep)))
        spec.peer_identity = spiffe_of(*ep);
      // istio_mutual: mesh mTLS whatever meshbox knows of the endpoint; the server must show
      // one of subject_alt_names, else its workload's identity, else any mesh identity.
      if (policy.tls && policy.tls->mode == config::ClientTls::Mode::IstioMutual) {
        if (!policy.tls->subject_alt_names.empty())
          spec.peer_identity = fmt::format("{}", fmt::join(policy.tls->subject_alt_names, ","));
        else
          spec.peer_identity = ep->sidecar_inbound_port ? spiffe_of(*ep) : "*";
      }
      spec.workload = peer_metadata(*ep, spec.peer_identity == spiffe_of(*ep));
      if (!spec.workload.workload.empty()) cluster.send_peer_metadata = true;
      local_sidecars = local_sidecars && ep->sidecar_inbound_port && ep->node.empty();
      all.push_back({std::move(spec), ep->healthy, &ep->labels});
    }
    // Another node's sidecar may run another meshbox version: standard headers to it.
    cluster.proxy_trace_context = local_sidecars && !all.empty();
    apply_locality(cluster.name, policy, all);
    bool any_healthy =
        std::any_of(all.begin(), all.end(), [](const Candidate& c) { return c.healthy; });
    if (!any_healthy && !all.empty()) {
      // Envoy's panic mode: with no healthy endpoint, trying the unhealthy ones beats
      // failing every request (a health check can be wrong; the app may still answer).
      warn(
          fmt::format("cluster {}: all {} endpoints are unhealthy; sending to them anyway "
                      "(panic mode)",
                      cluster.name, all.size()));
    }
    for (auto& cand : all) {
      if (!cand.healthy) cluster.unhealthy_endpoints.push_back(cand.spec);
      if (cand.healthy || !any_healthy) cluster.endpoints.push_back(std::move(cand.spec));
    }
    auto by_address = [](const EndpointSpec& a, const EndpointSpec& b) {
      return address_less(a.address, b.address);
    };
    std::stable_sort(cluster.endpoints.begin(), cluster.endpoints.end(), by_address);
    std::stable_sort(cluster.unhealthy_endpoints.begin(), cluster.unhealthy_endpoints.end(),
                     by_address);
    compact_priorities(cluster.endpoints);

    // destination_rule tls simple/mutual: TLS origination with the rule's files. A context
    // that cannot be made leaves the cluster without endpoints: never plain text instead.
    using TlsMode = config::ClientTls::Mode;
    if (policy.tls &&
        (policy.tls->mode == TlsMode::Simple || policy.tls->mode == TlsMode::Mutual)) {
      // The destination host is the last part of the name (outbound|PORT|SUBSET|HOST).
      std::string host = cluster.name.substr(cluster.name.rfind('|') + 1);
      cluster.tls_sni = lower(policy.tls->sni.empty() ? host : policy.tls->sni);
      Result<tls::TlsContextConstPtr> ctx =
          options_.upstream_tls
              ? options_.upstream_tls(*policy.tls, cluster.tls_sni)
              : Result<tls::TlsContextConstPtr>(
                    make_error(Code::InvalidArgument, "TLS origination is not available here"));
      if (ctx && *ctx) {
        cluster.tls = *ctx;
      } else {
        warn(fmt::format("cluster {}: destination_rule tls: {}; no endpoint until it is fixed",
                         cluster.name, ctx ? "no context" : ctx.error().message()));
        cluster.endpoints.clear();
        cluster.tls_sni.clear();
      }
    }

    // Istio's default (since 1.14): least request, two random choices.
    cluster.lb_policy = LbPolicy::LeastRequest;
    if (const config::LoadBalancer* lb = policy.load_balancer) {
      switch (lb->simple) {
        case config::LbPolicy::RoundRobin:
          cluster.lb_policy = LbPolicy::RoundRobin;
          break;
        case config::LbPolicy::Random:
          cluster.lb_policy = LbPolicy::Random;
          break;
        case config::LbPolicy::LeastRequest:
        case config::LbPolicy::Unspecified:
          cluster.lb_policy = LbPolicy::LeastRequest;
          break;
      }
      if (lb->consistent_hash) cluster.hash = hash_policy(*lb->consistent_hash);
    }
    const config::ConnectionPool* pool = policy.connection_pool;
    cluster.connect_timeout_ms = static_cast<uint64_t>(c_.mesh.connect_timeout.count());
    if (pool && pool->tcp) {
      const auto& tcp = *pool->tcp;
      if (tcp.connect_timeout)
        cluster.connect_timeout_ms = static_cast<uint64_t>(tcp.connect_timeout->count());
      if (tcp.max_connections) cluster.limits.max_connections = *tcp.max_connections;
    }
    if (pool && pool->http) {
      const auto& http = *pool->http;
      // 0 means "never" in Istio; the pool has no such setting, so it keeps its default.
      if (http.idle_timeout && http.idle_timeout->count() > 0)
        cluster.idle_timeout_ms = static_cast<uint64_t>(http.idle_timeout->count());
      if (http.http1_max_pending_requests)
        cluster.limits.max_pending_requests = *http.http1_max_pending_requests;
      if (http.http2_max_requests) cluster.limits.max_requests = *http.http2_max_requests;
      if (http.max_retries) cluster.limits.max_retries = *http.max_retries;
      if (http.max_requests_per_connection)
        cluster.limits.max_requests_per_connection = *http.max_requests_per_connection;
    }
    if (const config::OutlierDetection* od = policy.outlier_detection) {
      // Istio: consecutive_5xx_errors defaults to 5 and 0 turns it off; gateway errors are
      // counted only when set.
      cluster.outlier.consecutive_5xx = od->consecutive_5xx_errors.value_or(5);
      cluster.outlier.consecutive_gateway_errors = od->consecutive_gateway_errors.value_or(0);
      if (od->interval && od->interval->count() > 0)
        cluster.outlier.interval_ms = static_cast<uint64_t>(od->interval->count());
      if (od->base_ejection_time && od->base_ejection_time->count() > 0)
        cluster.outlier.base_ejection_time_ms =
            static_cast<uint64_t>(od->base_ejection_time->count());
      if (od->max_ejection_percent)
        cluster.outlier.max_ejection_percent = std::min<uint32_t>(100, *od->max_ejection_percent);
      if (od->min_health_percent)
        cluster.outlier.min_health_percent = std::min<uint32_t>(100, *od->min_health_percent);
    }

    clusters_.try_emplace(cluster.name, std::move(cluster));
  }

  // ---- sidecars -------------------------------------------------------------------------
  //
  // Each workload instance with a sidecar gets two listeners on 127.0.0.1 (Istio's sidecar,
  // in HTTP_PROXY mode instead of iptables): inbound, in front of the app (the service's
  // clusters send there), and outbound, where the app's calls to other services arrive as
  // proxy requests (`GET http://reviews:9080/…`). The outbound route table is the instance's
  // own: virtual services bound to "mesh" apply by the instance's labels and namespace
  // (source_labels, source_namespace), and short names mean its namespace's services.

  void compile_sidecars() {
    std::set<std::string> done;
    for (const auto& [host, eps] : endpoints_by_host_) {
      for (const Endpoint* ep : eps) {
        // Another node's instances have their listeners there.
        if (!ep->sidecar_inbound_port || ep->instance.empty() || !ep->node.empty()) continue;
        if (!done.insert(ep->instance).second) continue;
        compile_sidecar(*ep);
      }
    }
  }

  void compile_sidecar(const Endpoint& ep) {
    const std::string& inst = ep.instance;
    // Captured (ep.netns): the listeners are in the instance's namespace, the inbound one on
    // every address there (iptables REDIRECTs to the address a connection came in on), and
    // the app is on that namespace's loopback.
    bool captured = !ep.netns.empty();
    // Inbound: every request to the app's port.
    const loop::Address* app = captured ? loopback_address(ep.port) : endpoint_address(ep, ep.port);
    const loop::Address* in =
        captured ? any_address(ep.sidecar_inbound_port) : sidecar_inbound_address(ep);
    if (app && in) {
      ClusterSpec cluster;
      cluster.name = fmt::format("inbound|{}||{}", ep.port, inst);
      cluster.endpoints.push_back({*app, 1, ep.locality, {}});
      cluster.lb_policy = LbPolicy::RoundRobin;
      cluster.connect_timeout_ms = static_cast<uint64_t>(c_.mesh.connect_timeout.count());
      cluster.netns = ep.netns;
      set_service(cluster, ep.host, ep.ns);
      RouteSpec route;
      route.name = "inbound|" + inst;
      route.clusters.push_back({cluster.name, 100});
      RouteTableSpec table;
      table.name = "inbound|" + inst;
      table.virtual_hosts.push_back({"inbound|" + inst, {"*"}, {std::move(route)}, {}, {}});
      ListenerSpec listener;
      listener.name = "sidecar_" + inst + "_inbound";
      listener.address = *in;
      listener.route_table = table.name;
      listener.netns = ep.netns;
      if (!serves_http(ep)) {
        // A tcp (or tls) service: its inbound sidecar passes the bytes through, after
        // terminating mesh mTLS for a tcp one (tunnel.h).
        listener.protocol = ListenerSpec::Protocol::Tcp;
        listener.cluster = cluster.name;
        const MeshIdentity* id = inbound_takes_mtls(ep) ? identity(spiffe_of(ep)) : nullptr;
        if (id) listener.mesh_tls = mesh_tls_mode(ep);
        if (id && listener.mesh_tls != ListenerSpec::MeshTls::Disable)
          listener.mesh_server = id->server;
        for (const AuthzPolicySpec& p : sidecar_authz(ep).policies)
          warn(fmt::format("authorization_policy {}/{}: not enforced yet for {} (tcp)", p.ns,
                           p.name, inst));
      } else {
        if (const MeshIdentity* id = identity(spiffe_of(ep))) {
          listener.mesh_tls = mesh_tls_mode(ep);
          if (listener.mesh_tls != ListenerSpec::MeshTls::Disable)
            listener.mesh_server = id->server;
        }
        const config::Workload* w = workload_of(ep);
        if (w && w->local_rate_limit)
          listener.rate_limit = rate_limit("workload:" + ep.ns + "/" + inst, *w->local_rate_limit);
        listener.authz = sidecar_authz(ep);
        listener.spiffe_id = spiffe_of(ep);
        listener.jwt = request_authn({{ep.ns, &ep.labels}});
      }
      listener.reporter = ListenerSpec::Reporter::Destination;
      listener.self = peer_metadata(ep, listener.mesh_tls != ListenerSpec::MeshTls::Disable);
      listener.access_log = access_log(workload_access_log(ep));
      listener.tracing = tracing(listener.self, &ep);
      listeners_.try_emplace({ep.sidecar_inbound_port, "sidecar_in_" + inst}, std::move(listener));
      route_tables_.try_emplace(table.name, std::move(table));
      clusters_.try_emplace(cluster.name, std::move(cluster));
    }
    const loop::Address* out = loopback_address(ep.sidecar_outbound_port);
    if (!out) return;
    RouteTableSpec table = outbound_table("outbound|" + inst, ep);
    ListenerSpec listener;
    listener.name = "sidecar_" + inst + "_outbound";
    listener.address = *out;
    listener.route_table = table.name;
    listener.netns = ep.netns;
    if (const MeshIdentity* id = identity(spiffe_of(ep))) listener.mesh_client = id->client;
    if (captured) {
      listener.capture_outbound = true;
      listener.tcp_passthrough =
          c_.mesh.outbound_traffic_policy != config::OutboundTrafficPolicy::RegistryOnly;
      listener.original_dst_routes = original_dst_routes();
    }
    listener.reporter = ListenerSpec::Reporter::Source;
    listener.self = peer_metadata(ep, listener.mesh_client != nullptr);
    listener.access_log = access_log(workload_access_log(ep));
    listener.tracing = tracing(listener.self);
    listeners_.try_emplace({ep.sidecar_outbound_port, "sidecar_out_" + inst}, std::move(listener));
    route_tables_.try_emplace(table.name, std::move(table));
  }

  // ---- request authentication ------------------------------------------------------------
  //
  // Istio merges every request_authentication that applies to a workload: those of its
  // namespace and of the mesh root namespace whose selector matches its labels (no selector:
  // every workload there). A gateway is the workload it is in Istio: its namespace and the
  // labels of its `selector` — but a policy without a selector in the gateway's namespace
  // (other than the root namespace) is not for it: meshbox's gateways live in the apps'
  // namespace ("default" unless written), where Istio's live in istio-system, so an app
  // namespace's policy would otherwise lock out the gateway too (Istio's allow-nothing task).

  struct WorkloadRef {
    std::string ns;
    const config::Labels* labels;
    bool gateway = false;
  };

  RequestAuthnSpec request_authn(const std::vector<WorkloadRef>& workloads) {
    RequestAuthnSpec spec;
    for (const auto& ra : c_.request_authentications) {
      bool applies = std::any_of(workloads.begin(), workloads.end(), [&](const WorkloadRef& w) {
        if (w.gateway && !ra.selector && ra.ns != c_.mesh.root_namespace) return false;
        return (ra.ns == w.ns || ra.ns == c_.mesh.root_namespace) &&
               (!ra.selector || labels_contain(*w.labels, ra.selector->match_labels));
      });
      if (!applies) continue;
      for (size_t i = 0; i < ra.jwt_rules.size(); ++i)
        spec.providers.push_back(jwt_provider(ra, i));
    }
    return spec;
  }

  JwtProviderSpec jwt_provider(const config::RequestAuthentication& ra, size_t i) {
    const config::JwtRule& r = ra.jwt_rules[i];
    JwtProviderSpec p;
    p.issuer = r.issuer;
    p.audiences = r.audiences;
    for (const auto& h : r.from_headers)
      p.from_headers.push_back({lower(h.name), h.prefix});
    p.from_params = r.from_params;
    p.from_cookies = r.from_cookies;
    p.output_payload_to_header = lower(r.output_payload_to_header);
    p.forward_original_token = r.forward_original_token;
    std::string where = fmt::format("request_authentication {}: jwt_rules[{}]", qualified(ra), i);
    if (!r.jwks.empty()) {
      auto [it, inserted] = inline_jwks_.try_emplace(r.jwks);
      if (inserted) {
        auto parsed = tls::Jwks::parse(r.jwks);
        if (parsed) {
          it->second.jwks = *parsed;
        } else {
          it->second.error = "jwks: " + parsed.error().message();
        }
      }
      p.jwks = it->second.jwks;
      p.jwks_error = it->second.error;
    } else if (!r.jwks_uri.empty()) {
      if (options_.jwks_uri) {
        uint64_t timeout_ms = r.timeout ? static_cast<uint64_t>(r.timeout->count()) : 5'000;
        p.jwks = options_.jwks_uri(r.jwks_uri, timeout_ms, p.jwks_error);
      } else {
        p.jwks_error = "jwks_uri is not fetched here";
      }
      if (!p.jwks && !p.jwks_error.empty()) p.jwks_error = r.jwks_uri + ": " + p.jwks_error;
    } else {
      p.jwks_error = "no jwks or jwks_uri";
    }
    if (!p.jwks && !p.jwks_error.empty())
      warn(fmt::format("{}: no keys ({}); its tokens are refused", where, p.jwks_error));
    return p;
  }

  // ---- authorization ---------------------------------------------------------------------
  //
  // Istio applies an authorization_policy to a workload when the policy is in the workload's
  // namespace, or in the mesh root namespace (mesh-wide), and its selector matches the
  // workload's labels (no selector: every workload there). A gateway is treated as the
  // workload it is in Istio: its namespace and the labels of its `selector`; a policy without
  // a selector applies to it only from the root namespace (see request_authentication above).

  /// The policies of an inbound sidecar; `ports` compare with the app's port and its
  /// service's ports.
  AuthzSpec sidecar_authz(const Endpoint& ep) {
    AuthzSpec spec;
    add_policies(spec, ep.ns, ep.labels);
    if (spec.empty()) return spec;
    spec.destination_ports.push_back(ep.port);
    for (const auto& s : c_.services) {
      if (s.name.empty() || hosts_.fqdn(s) != lower(ep.host)) continue;
      for (const auto& p : s.ports) {
        spec.destination_ports.push_back(p.number);
        if (p.target_port) spec.destination_ports.push_back(p.target_port);
      }
    }
    std::sort(spec.destination_ports.begin(), spec.destination_ports.end());
    spec.destination_ports.erase(
        std::unique(spec.destination_ports.begin(), spec.destination_ports.end()),
        spec.destination_ports.end());
    return spec;
  }

  /// The policies of a gateway listener: those of every gateway with a server on it.
  AuthzSpec gateway_authz(const ListenerBuild& b) {
    AuthzSpec spec;
    std::set<const config::Gateway*> seen;
    for (const ServerRef& sr : b.servers)
      if (seen.insert(sr.gateway).second)
        add_policies(spec, sr.gateway->ns, sr.gateway->selector, /*gateway=*/true);
    if (!spec.empty()) spec.destination_ports.push_back(b.port);
    return spec;
  }

  void add_policies(AuthzSpec& spec, const std::string& ns, const config::Labels& labels,
                    bool gateway = false) {
    for (const auto& ap : c_.authorization_policies) {
      if (ap.ns != ns && ap.ns != c_.mesh.root_namespace) continue;
      if (gateway && !ap.selector && ap.ns != c_.mesh.root_namespace) continue;
      if (ap.selector && !labels_contain(labels, ap.selector->match_labels)) continue;
      bool dup = std::any_of(spec.policies.begin(), spec.policies.end(),
                             [&](const auto& p) { return p.ns == ap.ns && p.name == ap.name; });
      if (!dup) spec.policies.push_back(authz_policy(ap));
    }
  }

  AuthzPolicySpec authz_policy(const config::AuthorizationPolicy& ap) {
    AuthzPolicySpec p;
    p.ns = ap.ns;
    p.name = ap.name;
    switch (ap.action) {
      case config::AuthzAction::Allow:
        p.action = AuthzPolicySpec::Action::Allow;
        break;
      case config::AuthzAction::Deny:
        p.action = AuthzPolicySpec::Action::Deny;
        break;
      case config::AuthzAction::Audit:
        p.action = AuthzPolicySpec::Action::Audit;
        break;
    }
    for (size_t r = 0; r < ap.rules.size(); ++r) {
      // A value that cannot be compiled (validation rejects it) would widen the rule if it
      // were dropped: the rule gets an unsupported condition instead, which fails closed.
      bool bad = false;
      std::string where = fmt::format("authorization_policy {}: rules[{}]", qualified(ap), r);
      AuthzRuleSpec rule = authz_rule(ap.rules[r], where, bad);
      if (bad) rule.when.push_back({});
      p.rules.push_back(std::move(rule));
    }
    return p;
  }

  static std::vector<AuthzMatch> authz_matches(const std::vector<std::string>& values,
                                               bool ignore_case = false, bool principal = false) {
    std::vector<AuthzMatch> out;
    for (std::string_view v : values) {
      // Principals are compared without "spiffe://", as Istio writes them.
      if (principal && v.starts_with("spiffe://")) v.remove_prefix(9);
      out.push_back(AuthzMatch::parse(v, ignore_case));
    }
    return out;
  }

  std::vector<CidrBlock> cidrs(const std::vector<std::string>& values, const std::string& where,
                               bool& bad) {
    std::vector<CidrBlock> out;
    for (const auto& v : values) {
      if (auto b = CidrBlock::parse(v)) {
        out.push_back(*b);
      } else {
        warn(fmt::format("{}: {} is not an IP address or CIDR block; the rule fails closed", where,
                         v));
        bad = true;
      }
    }
    return out;
  }

  std::vector<uint32_t> ports(const std::vector<std::string>& values, const std::string& where,
                              bool& bad) {
    std::vector<uint32_t> out;
    for (const auto& v : values) {
      uint32_t n = 0;
      auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
      if (ec != std::errc() || end != v.data() + v.size() || n == 0 || n > 65535) {
        warn(fmt::format("{}: {} is not a port number; the rule fails closed", where, v));
        bad = true;
        continue;
      }
      out.push_back(n);
    }
    return out;
  }

  AuthzRuleSpec authz_rule(const config::AuthzRule& in, const std::string& where, bool& bad) {
    AuthzRuleSpec rule;
    for (const auto& s : in.from) {
      AuthzSourceSpec o;
      o.principals = authz_matches(s.principals, false, true);
      o.not_principals = authz_matches(s.not_principals, false, true);
      o.request_principals = authz_matches(s.request_principals);
      o.not_request_principals = authz_matches(s.not_request_principals);
      o.namespaces = authz_matches(s.namespaces);
      o.not_namespaces = authz_matches(s.not_namespaces);
      o.ip_blocks = cidrs(s.ip_blocks, where, bad);
      o.not_ip_blocks = cidrs(s.not_ip_blocks, where, bad);
      o.remote_ip_blocks = cidrs(s.remote_ip_blocks, where, bad);
      o.not_remote_ip_blocks = cidrs(s.not_remote_ip_blocks, where, bad);
      rule.from.push_back(std::move(o));
    }
    for (const auto& t : in.to) {
      AuthzOperationSpec o;
      o.hosts = authz_matches(t.hosts, true);
      o.not_hosts = authz_matches(t.not_hosts, true);
      o.ports = ports(t.ports, where, bad);
      o.not_ports = ports(t.not_ports, where, bad);
      o.methods = authz_matches(t.methods);
      o.not_methods = authz_matches(t.not_methods);
      o.paths = authz_matches(t.paths);
      o.not_paths = authz_matches(t.not_paths);
      rule.to.push_back(std::move(o));
    }
    for (const auto& w : in.when)
      rule.when.push_back(authz_condition(w, where, bad));
    return rule;
  }

  AuthzConditionSpec authz_condition(const config::AuthzCondition& w, const std::string& where,
                                     bool& bad) {
    using Key = AuthzConditionSpec::Key;
    static const std::map<std::string_view, Key> kKeys = {
        {"source.ip", Key::SourceIp},
        {"remote.ip", Key::RemoteIp},
        {"source.namespace", Key::SourceNamespace},
        {"source.principal", Key::SourcePrincipal},
        {"request.auth.principal", Key::RequestPrincipal},
        {"request.auth.audiences", Key::Audiences},
        {"request.auth.presenter", Key::Presenter},
        {"destination.ip", Key::DestinationIp},
        {"destination.port", Key::DestinationPort},
        {"connection.sni", Key::Sni},
    };
    constexpr std::string_view kHeader = "request.headers[", kClaim = "request.auth.claims[";
    AuthzConditionSpec c;
    std::string_view key = w.key;
    if (auto it = kKeys.find(key); it != kKeys.end()) {
      c.key = it->second;
    } else if (key.starts_with(kHeader) && key.size() > kHeader.size() + 1 && key.back() == ']') {
      c.key = Key::Header;
      c.header = lower(key.substr(kHeader.size(), key.size() - kHeader.size() - 1));
    } else if (key.starts_with(kClaim) && key.size() > kClaim.size() + 1 && key.back() == ']') {
      // request.auth.claims[a][b]: the nested claim a.b.
      c.key = Key::Claim;
      std::string_view path = key.substr(kClaim.size(), key.size() - kClaim.size() - 1);
      for (size_t at = path.find("]["); at != std::string_view::npos; at = path.find("][")) {
        c.claim.emplace_back(path.substr(0, at));
        path.remove_prefix(at + 2);
      }
      c.claim.emplace_back(path);
    } else {
      warn(fmt::format("{}: condition key {} is not evaluated by meshbox (the rule fails closed)",
                       where, w.key));
      return c;  // Key::Unsupported
    }
    switch (c.key) {
      case Key::SourceIp:
      case Key::RemoteIp:
      case Key::DestinationIp:
        c.ips = cidrs(w.values, where, bad);
        c.not_ips = cidrs(w.not_values, where, bad);
        break;
      case Key::DestinationPort:
        c.ports = ports(w.values, where, bad);
        c.not_ports = ports(w.not_values, where, bad);
        break;
      default:
        c.values = authz_matches(w.values, false, c.key == Key::SourcePrincipal);
        c.not_values = authz_matches(w.not_values, false, c.key == Key::SourcePrincipal);
    }
    return c;
  }

  /// A workload's SPIFFE ID (Istio's identity: its namespace and service account).
  std::string spiffe_of(const Endpoint& ep) const {
    return workload_spiffe_id(c_.mesh.trust_domain, ep.ns, ep.service_account);
  }

  /// The mesh mTLS contexts of `spiffe_id`; null without a CA (no mTLS).
  /// A local rate limit's bucket (CompileOptions::rate_limit_bucket), with Envoy's defaults:
  /// tokens_per_fill = max_tokens, fill_interval 1 s.
  RateLimitSpec rate_limit(std::string key, const config::LocalRateLimit& l) {
    uint32_t per_fill = l.tokens_per_fill.value_or(l.max_tokens);
    uint64_t interval = l.fill_interval ? static_cast<uint64_t>(l.fill_interval->count()) : 1000;
    RateLimitSpec out;
    out.bucket = options_.rate_limit_bucket
                     ? options_.rate_limit_bucket(key, l.max_tokens, per_fill, interval)
                     : std::make_shared<TokenBucket>(l.max_tokens, per_fill, interval,
                                                     TokenBucket::now_ms());
    out.key = std::move(key);
    return out;
  }

  /// Telemetry's view of an endpoint: its workload, namespace, app and version labels, and
  /// its SPIFFE ID when `mtls` (Istio reports a principal only for mTLS peers).
  PeerMetadata peer_metadata(const Endpoint& ep, bool mtls) const {
    PeerMetadata m;
    const config::Workload* w = workload_of(ep);
    if (!w && ep.instance.empty()) return m;
    m.workload = w ? w->name : ep.instance;
    m.ns = ep.ns;
    if (auto it = ep.labels.find("app"); it != ep.labels.end()) m.app = it->second;
    if (auto it = ep.labels.find("version"); it != ep.labels.end()) m.version = it->second;
    if (mtls) m.principal = spiffe_of(ep);
    return m;
  }

  /// A cluster's service, for telemetry: a registry service's short name is its first label
  /// (reviews.default.svc.cluster.local → reviews); a service entry's is its host.
  static void set_service(ClusterSpec& c, const std::string& host, const std::string& ns) {
    c.service_host = host;
    c.service_ns = ns;
    size_t dot = host.find('.');
    bool registry = dot != std::string::npos && host.find(".svc.", dot) != std::string::npos;
    c.service_name = registry ? host.substr(0, dot) : host;
  }

  /// The access log of a workload's or gateway's listeners: its own `access_log` setting
  /// (unset: the mesh's access_log_file, "" = off). One spec shared by all of them.
  config::AccessLogSpecPtr access_log(std::optional<bool> own) {
    const config::Mesh& m = c_.mesh;
    if (own ? !*own : m.access_log_file.empty()) return {};
    std::string path = m.access_log_file.empty() ? "/dev/stdout" : m.access_log_file;
    auto& spec = access_logs_[path];
    if (!spec) {
      auto made = std::make_shared<config::AccessLogSpec>();
      config::LogEncoding encoding = m.access_log_encoding == config::AccessLogEncoding::Text
                                         ? config::LogEncoding::Text
                                         : config::LogEncoding::Json;
      if (auto err = config::make_access_log_spec(path, encoding, m.access_log_format, *made)) {
        // Validation reports it; never log in a format that did not parse.
        warn("mesh access_log_format: " + err->message + "; the default format is used");
        (void)config::make_access_log_spec(path, encoding, "", *made);
      }
      spec = std::move(made);
    }
    return spec;
  }

  /// Tracing for a workload's or gateway's listeners (the mesh's tracing with a zipkin
  /// address; null = off), its spans named after the workload: "APP.NAMESPACE" as Istio's
  /// service cluster.
  TracingSpecPtr tracing(const PeerMetadata& self, const Endpoint* inbound = nullptr) {
    const config::Mesh& m = c_.mesh;
    if (!m.enable_tracing || m.zipkin_address.empty()) return {};
    std::string_view rest = m.zipkin_address;  // validated: [http://]HOST:PORT[/PATH]
    if (rest.starts_with("http://")) rest.remove_prefix(7);
    size_t slash = rest.find('/');
    std::string path = slash == std::string_view::npos || rest.substr(slash) == "/"
                           ? "/api/v2/spans"
                           : std::string(rest.substr(slash));
    std::string authority(rest.substr(0, slash));
    std::string addr =
        authority.starts_with("localhost:") ? "127.0.0.1" + authority.substr(9) : authority;
    auto collector = loop::Address::parse(addr);
    if (!collector) {
      warn("mesh tracing: zipkin address " + m.zipkin_address + ": " + collector.error().message() +
           "; tracing is off");
      return {};
    }
    auto spec = std::make_shared<TracingSpec>();
    spec->sampling_percent = m.tracing_sampling;
    spec->collector = *collector;
    spec->collector_host = authority;
    spec->collector_path = std::move(path);
    std::string_view name = self.app.empty() ? self.workload : self.app;
    spec->service_name = self.ns.empty() ? std::string(name) : fmt::format("{}.{}", name, self.ns);
    if (inbound) {
      // The service port the app's port serves (its first port when none says so).
      for (const auto& s : c_.services) {
        if (s.name.empty() || s.ports.empty() || hosts_.fqdn(s) != lower(inbound->host)) continue;
        spec->service_port = s.ports.front().number;
        for (const auto& p : s.ports)
          if (p.number == inbound->port || p.target_port == inbound->port)
            spec->service_port = p.number;
        break;
      }
    }
    return TracingSpecPtr(std::move(spec));
  }

  /// The workload resource an endpoint's instance was started for (NAME or NAME-INDEX in
  /// its namespace); null for attached processes and service entries.
  const config::Workload* workload_of(const Endpoint& ep) const {
    if (!ep.source.starts_with("workload/")) return nullptr;
    for (const auto& w : c_.workloads) {
      if (w.ns != ep.ns || !ep.instance.starts_with(w.name)) continue;
      std::string_view rest = std::string_view(ep.instance).substr(w.name.size());
      if (rest.empty() || (rest.size() > 1 && rest[0] == '-' &&
                           rest.find_first_not_of("0123456789", 1) == std::string_view::npos))
        return &w;
    }
    return nullptr;
  }

  std::optional<bool> workload_access_log(const Endpoint& ep) const {
    const config::Workload* w = workload_of(ep);
    return w ? w->access_log : std::nullopt;
  }

  const MeshIdentity* identity(const std::string& spiffe_id) {
    if (!options_.identity) return nullptr;
    auto [it, inserted] = identities_.try_emplace(spiffe_id, nullptr);
    if (inserted) it->second = options_.identity(spiffe_id);
    return it->second && it->second->server && it->second->client ? it->second : nullptr;
  }

  /// Istio's peer_authentication for an instance: a policy selecting its labels in its
  /// namespace, else its namespace's policy without a selector, else the mesh-wide one (root
  /// namespace, no selector); UNSET inherits from the next; PERMISSIVE by default. Port-level
  /// modes apply to the app's port.
  ListenerSpec::MeshTls mesh_tls_mode(const Endpoint& ep) const {
    using config::MtlsMode;
    auto mode_of = [&](const config::PeerAuthentication& pa) {
      auto port = pa.port_level_mtls.find(ep.port);
      if (port != pa.port_level_mtls.end() && port->second != MtlsMode::Unset) return port->second;
      return pa.mtls;
    };
    MtlsMode workload = MtlsMode::Unset, ns = MtlsMode::Unset, mesh = MtlsMode::Unset;
    for (const auto& pa : c_.peer_authentications) {
      if (pa.selector) {
        if (pa.ns == ep.ns && workload == MtlsMode::Unset &&
            labels_contain(ep.labels, pa.selector->match_labels))
          workload = mode_of(pa);
      } else if (pa.ns == ep.ns && ns == MtlsMode::Unset) {
        ns = pa.mtls;
      } else if (pa.ns == c_.mesh.root_namespace && mesh == MtlsMode::Unset) {
        mesh = pa.mtls;
      }
    }
    MtlsMode m = workload != MtlsMode::Unset ? workload : ns != MtlsMode::Unset ? ns : mesh;
    switch (m) {
      case MtlsMode::Disable:
        return ListenerSpec::MeshTls::Disable;
      case MtlsMode::Strict:
        return ListenerSpec::MeshTls::Strict;
      default:
        return ListenerSpec::MeshTls::Permissive;
    }
  }

  /// Whether the inbound sidecar of `ep` terminates mesh mTLS: an HTTP service's, or a tcp
  /// one's. A service with tls (or https) ports and no http one speaks TLS itself: its
  /// clients' ClientHellos must reach the app, so its sidecar passes every byte through.
  bool inbound_takes_mtls(const Endpoint& ep) const {
    if (serves_http(ep)) return true;
    if (const config::Service* s = service_of_host(ep.host))
      return std::none_of(s->ports.begin(), s->ports.end(), [](const config::Port& p) {
        return p.protocol == config::Protocol::Tls || p.protocol == config::Protocol::Https;
      });
    return false;
  }

  /// Whether the service of `ep` has an HTTP port (else its sidecar's inbound side is TCP).
  bool serves_http(const Endpoint& ep) const {
    if (const config::Service* s = service_of_host(ep.host))
      return std::any_of(s->ports.begin(), s->ports.end(), [](const config::Port& p) {
        return p.protocol == config::Protocol::Http;
      });
    return true;
  }

  /// The first service whose FQDN is `host` (any case), or null. A map built on first use:
  /// asked for every endpoint with a sidecar, a scan of the services made a mesh of 1,000
  /// services x 10 endpoints compile in seconds (test/bench/multinode.sh).
  const config::Service* service_of_host(const std::string& host) const {
    if (!services_by_fqdn_) {
      services_by_fqdn_.emplace();
      for (const auto& s : c_.services)
        if (!s.name.empty()) services_by_fqdn_->emplace(hosts_.fqdn(s), &s);
    }
    auto it = services_by_fqdn_->find(lower(host));
    return it == services_by_fqdn_->end() ? nullptr : it->second;
  }

  /// Each service's (and service entry host's) virtual IP with each of its tcp and tls
  /// ports, to the port's cluster: what a captured app's connections to a non-HTTP service
  /// carry as their original destination.
  const std::vector<OriginalDstRoute>& original_dst_routes() {
    if (vip_routes_) return *vip_routes_;
    vip_routes_.emplace();
    auto add = [&](const std::string& vip, const std::string& host,
                   const std::vector<config::Port>& ports) {
      for (const auto& p : ports) {
        if (p.protocol == config::Protocol::Http) continue;
        auto addr = dns::parse_ip(vip, static_cast<uint16_t>(p.number));
        if (addr && clusters_.count(cluster_name(p.number, "", host)))
          vip_routes_->push_back({*addr, cluster_name(p.number, "", host)});
      }
    };
    for (const ServiceVip& v : service_vips(c_)) {
      if (v.names.empty()) continue;
      if (!v.name.empty()) {
        for (const auto& s : c_.services)
          if (s.name == v.name && s.ns == v.ns) add(v.vip, hosts_.fqdn(s), s.ports);
        continue;
      }
      for (const auto& se : c_.service_entries)
        for (const auto& h : se.hosts)
          if (hosts_.resolve(h, se.ns) == v.names.front()) add(v.vip, v.names.front(), se.ports);
    }
    return *vip_routes_;
  }

  static bool binds_mesh(const std::vector<std::string>& gateways) {
    return gateways.empty() ||
           std::find(gateways.begin(), gateways.end(), "mesh") != gateways.end();
  }

  /// The names a client in namespace `client_ns` may use for `fqdn` on `port`: with ":PORT",
  /// and without it for port 80. `short_names`: NAME and NAME.NAMESPACE (Kubernetes' search
  /// path), for a service.
  static std::vector<std::string> mesh_domains(const std::string& fqdn, const std::string& name,
                                               const std::string& ns, const std::string& client_ns,
                                               uint32_t port, bool short_names) {
    std::vector<std::string> names;
    if (short_names) {
      if (ns == client_ns) names.push_back(name);
      names.push_back(name + "." + ns);
      names.push_back(name + "." + ns + ".svc");
    }
    names.push_back(fqdn);
    std::vector<std::string> out;
    for (const auto& n : names) {
      out.push_back(fmt::format("{}:{}", lower(n), port));
      if (port == 80) out.push_back(lower(n));
    }
    return out;
  }

  RouteTableSpec outbound_table(const std::string& name, const Endpoint& client) {
    RouteTableSpec table;
    table.name = name;
    table.strict_port = true;
    auto add_host = [&](const std::string& fqdn, std::vector<std::string> domains, uint32_t port) {
      VirtualHostSpec vh;
      vh.name = fmt::format("{}:{}", fqdn, port);
      vh.domains = std::move(domains);
      bool routed = false;
      mesh_port_ = port;
      for (const auto& vs : c_.virtual_services) {
        if (!binds_mesh(vs.gateways)) continue;
        bool for_host = std::any_of(vs.hosts.begin(), vs.hosts.end(), [&](const std::string& h) {
          return hosts_.resolve(h, vs.ns) == fqdn;
        });
        if (!for_host) continue;
        routed = true;  // its routes decide, even if none matches (404 NR, as Istio)
        auto routes = http_routes(vs, [&](const config::HttpMatch& m) {
          if (m.port != 0 && m.port != port) return false;
          if (!m.gateways.empty() && !binds_mesh(m.gateways)) return false;
          if (m.gateways.empty() && !binds_mesh(vs.gateways)) return false;
          if (!labels_contain(client.labels, m.source_labels)) return false;
          return m.source_namespace.empty() || m.source_namespace == client.ns;
        });
        // A match's port is the service port here, already checked above: not the port of
        // the sidecar's listener, which the data plane would compare it with.
        for (auto& r : routes)
          for (auto& m : r.matches)
            m.port = 0;
        vh.routes.insert(vh.routes.end(), std::make_move_iterator(routes.begin()),
                         std::make_move_iterator(routes.end()));
        break;  // Istio merges several; meshbox takes the first (as for destination rules)
      }
      mesh_port_ = 0;
      if (!routed) {
        RouteSpec r;
        r.name = "default";
        r.clusters.push_back({cluster_name(port, "", fqdn), 100});
        r.retry = retry_spec(std::nullopt);
        vh.routes.push_back(std::move(r));
      }
      table.virtual_hosts.push_back(std::move(vh));
    };
    for (const auto& s : c_.services) {
      if (s.name.empty()) continue;
      std::string fqdn = hosts_.fqdn(s);
      for (const auto& p : s.ports) {
        if (p.protocol != config::Protocol::Http) continue;
        add_host(fqdn, mesh_domains(fqdn, s.name, s.ns, client.ns, p.number, true), p.number);
      }
    }
    for (const auto& se : c_.service_entries) {
      for (const auto& h : se.hosts) {
        std::string host = hosts_.resolve(h, se.ns);
        if (host.empty() || host.find('*') != std::string::npos) continue;
        for (const auto& p : se.ports) {
          if (p.protocol != config::Protocol::Http) continue;
          add_host(host, mesh_domains(host, host, se.ns, client.ns, p.number, false), p.number);
        }
      }
    }
    // Any other host: Istio's outbound_traffic_policy. allow_any passes the request to the
    // host it names (PassthroughCluster); registry_only refuses it.
    RouteSpec other;
    other.name = "outbound_traffic_policy";
    if (c_.mesh.outbound_traffic_policy == config::OutboundTrafficPolicy::RegistryOnly) {
      other.action = RouteSpec::Action::DirectResponse;
      other.direct_response.status = 502;
      other.direct_response.body =
          "unknown host: outbound_traffic_policy is registry_only, and no service or "
          "service_entry has this host and port\n";
    } else {
      ClusterSpec pass;
      pass.name = kPassthroughCluster;
      pass.original_dst = true;
      pass.service_name = kPassthroughCluster;
      clusters_.try_emplace(pass.name, std::move(pass));
      other.clusters.push_back({kPassthroughCluster, 100});
      other.retry = retry_spec(std::nullopt);
    }
    table.virtual_hosts.push_back({"outbound_traffic_policy", {"*"}, {std::move(other)}, {}, {}});
    return table;
  }

  // ---- gateways -------------------------------------------------------------------------

  void compile_gateways() {
    std::map<std::pair<uint32_t, std::string>, ListenerBuild> builds;  // (port, bind)
    for (const auto& g : c_.gateways) {
      for (size_t i = 0; i < g.servers.size(); ++i) {
        const config::Server& s = g.servers[i];
        if (s.port.number == 0) continue;
        std::string bind = s.bind.empty() ? options_.default_bind : s.bind;
        // Istio routes an https server in passthrough mode as a tls one: by SNI.
        config::Protocol protocol = passthrough(s) ? config::Protocol::Tls : s.port.protocol;
        bool tcp = protocol == config::Protocol::Tcp || protocol == config::Protocol::Tls;
        tls::TlsContextConstPtr tls;
        if ((s.port.protocol == config::Protocol::Https ||
             s.port.protocol == config::Protocol::Tls) &&
            !passthrough(s)) {
          tls = server_tls(g, i);
          if (!tls) continue;  // warned
        }
        auto [it, created] = builds.try_emplace({s.port.number, bind});
        ListenerBuild& b = it->second;
        if (created) {
          b.bind = bind;
          b.port = s.port.number;
          b.tcp = tcp;
          b.protocol = protocol;
        } else if (b.tcp != tcp || (tcp && b.protocol != protocol)) {
          // Validation rejects two protocols on one port; never serve a server wrongly.
          warn(fmt::format("gateway {}: servers[{}]: port {} already serves {}; server skipped",
                           qualified(g), i, s.port.number, config::to_string(b.protocol)));
          continue;
        }
        b.servers.push_back({&g, &s, i, qualified(g), std::move(tls)});
      }
    }

    std::map<uint32_t, size_t> binds_per_port;
    for (const auto& [key, b] : builds)
      ++binds_per_port[b.port];

    for (const auto& [key, b] : builds) {
      ListenerSpec listener;
      listener.name = fmt::format("{}_{}", b.bind, b.port);
      auto addr = loop::Address::parse(host_port(b.bind, b.port));
      if (!addr) {
        warn(fmt::format("gateway {}: bind address {}: {}; listener skipped", b.servers.front().key,
                         b.bind, addr.error().message()));
        continue;
      }
      listener.address = *addr;
      {
        // Telemetry: a gateway reports as the source of its calls, under its own name (Istio's
        // istio-ingressgateway), app = its name.
        const config::Gateway& gw = *b.servers.front().gateway;
        listener.reporter = ListenerSpec::Reporter::Source;
        listener.self.workload = listener.self.app = gw.name;
        listener.self.ns = gw.ns;
        if (identity(workload_spiffe_id(c_.mesh.trust_domain, gw.ns, gw.name)))
          listener.self.principal = workload_spiffe_id(c_.mesh.trust_domain, gw.ns, gw.name);
        listener.access_log = access_log(gw.access_log);
        listener.tracing = tracing(listener.self);
      }
      if (b.tcp) {
        listener.protocol = ListenerSpec::Protocol::Tcp;
        listener.tls_inspector = b.protocol == config::Protocol::Tls;
        listener.l4_routes = l4_routes(listener.name, b);
        if (listener.l4_routes.empty()) {
          warn(fmt::format(
              "listener {}: no virtual service has a {} route for gateway {} on "
              "port {}; listener skipped",
              listener.name, config::to_string(b.protocol), b.servers.front().key, b.port));
          continue;
        }
        // The gateway's mesh identity, for mTLS to the tcp services' sidecars behind it.
        const config::Gateway& gw = *b.servers.front().gateway;
        if (const MeshIdentity* id =
                identity(workload_spiffe_id(c_.mesh.trust_domain, gw.ns, gw.name)))
          listener.mesh_client = id->client;
      } else {
        listener.protocol = ListenerSpec::Protocol::Http;
        // Tables are per port (Envoy's `http.8080`); if two bind addresses share the port,
        // their servers may differ, so each gets its own table.
        listener.route_table = binds_per_port[b.port] > 1
                                   ? fmt::format("http.{}_{}", b.bind, b.port)
                                   : fmt::format("http.{}", b.port);
        route_tables_.try_emplace(listener.route_table, route_table(listener.route_table, b));
        if (b.servers.front().tls) tls_servers(listener, b);
        // The gateway's own mesh identity (its namespace, its name as the service account)
        // for mTLS to the sidecars behind it.
        const config::Gateway& gw = *b.servers.front().gateway;
        if (const MeshIdentity* id =
                identity(workload_spiffe_id(c_.mesh.trust_domain, gw.ns, gw.name)))
          listener.mesh_client = id->client;
        listener.authz = gateway_authz(b);
        std::vector<WorkloadRef> gateways;
        for (const ServerRef& sr : b.servers)
          if (std::none_of(gateways.begin(), gateways.end(),
                           [&](const WorkloadRef& w) { return w.labels == &sr.gateway->selector; }))
            gateways.push_back({sr.gateway->ns, &sr.gateway->selector, /*gateway=*/true});
        listener.jwt = request_authn(gateways);
      }
      listeners_.try_emplace(key, std::move(listener));
    }
  }

  /// Gateway TLS termination: the context of https server `i` of `g` (the control plane's,
  /// from its files; ISTIO_MUTUAL: the gateway's mesh identity), or null with a warning.
  tls::TlsContextConstPtr server_tls(const config::Gateway& g, size_t i) {
    const config::Server& s = g.servers[i];
    if (*s.tls->mode == config::ServerTls::Mode::IstioMutual) {
      const MeshIdentity* id = identity(workload_spiffe_id(c_.mesh.trust_domain, g.ns, g.name));
      if (id) return id->server;
      warn(
          fmt::format("gateway {}: servers[{}]: istio_mutual needs the mesh CA, which has no "
                      "certificate for the gateway; server skipped",
                      qualified(g), i));
      return nullptr;
    }
    if (!options_.server_tls) {
      warn(fmt::format("gateway {}: servers[{}]: no TLS certificates here; server skipped",
                       qualified(g), i));
      return nullptr;
    }
    Result<tls::TlsContextConstPtr> ctx =
        options_.server_tls(*s.tls, s.port.protocol == config::Protocol::Https);
    if (ctx) return *ctx;
    warn(fmt::format("gateway {}: servers[{}]: {}; server skipped", qualified(g), i,
                     ctx.error().message()));
    return nullptr;
  }

  /// An https listener's servers (all terminate TLS: validation puts one protocol on a
  /// port), each with its own route table of its own hosts, as Istio gives every https
  /// server its own route configuration.
  void tls_servers(ListenerSpec& listener, const ListenerBuild& b) {
    for (const ServerRef& sr : b.servers) {
      if (!sr.tls) continue;
      TlsServerSpec ts;
      ts.name = fmt::format("{}/servers[{}]", sr.key, sr.index);
      for (const auto& host : sr.server->hosts) {
        std::string h = lower(host.substr(host.find('/') + 1));  // without "NAMESPACE/"
        if (std::find(ts.sni_hosts.begin(), ts.sni_hosts.end(), h) == ts.sni_hosts.end())
          ts.sni_hosts.push_back(std::move(h));
      }
      ts.context = sr.tls;
      ts.route_table = fmt::format("https.{}.{}.servers[{}]", b.port, sr.key, sr.index);
      if (b.bind != options_.default_bind) ts.route_table += "." + b.bind;
      ListenerBuild one = b;
      one.servers = {sr};
      route_tables_.try_emplace(ts.route_table, route_table(ts.route_table, one));
      listener.tls_servers.push_back(std::move(ts));
    }
  }

  /// The servers of `b` whose gateway `vs` is bound to ("mesh" is the sidecars: not here).
  static std::vector<const ServerRef*> bound_servers(const config::VirtualService& vs,
                                                     const ListenerBuild& b) {
    std::set<std::string> keys;
    for (const auto& ref : vs.gateways)
      if (ref != "mesh") keys.insert(gateway_key(ref, vs.ns));
    std::vector<const ServerRef*> out;
    for (const auto& s : b.servers)
      if (keys.count(s.key)) out.push_back(&s);
    return out;
  }

  struct Domain {
    std::string name;
    bool https_redirect = false;
    std::vector<const ServerRef*> servers;  // the servers that accept it
  };

  /// The hosts `vs` is served under by these servers: each VS host intersected with each
  /// server host whose namespace part lets this virtual service in.
  static std::vector<Domain> domains(const config::VirtualService& vs,
                                     const std::vector<const ServerRef*>& servers) {
    std::vector<Domain> out;
    for (const auto& vs_host : vs.hosts) {
      // Lower case, not resolved: validation matches gateway hosts the same way, and a
      // gateway's Host header is what a client typed, not a mesh name.
      std::string vh = lower(vs_host);
      for (const ServerRef* sr : servers) {
        for (const auto& server_host : sr->server->hosts) {
          std::string sh = server_host, sns = "*";
          if (size_t slash = sh.find('/'); slash != std::string::npos) {
            sns = sh.substr(0, slash);
            sh = sh.substr(slash + 1);
          }
          if (sns != "*" && !(sns == "." && vs.ns == sr->gateway->ns) && sns != vs.ns) continue;
          std::string d = intersect_hosts(vh, lower(sh));
          if (d.empty()) continue;
          auto it =
              std::find_if(out.begin(), out.end(), [&](const Domain& x) { return x.name == d; });
          if (it == out.end()) {
            bool redirect = sr->server->tls && sr->server->tls->https_redirect &&
                            sr->server->port.protocol == config::Protocol::Http;
            out.push_back({d, redirect, {}});
            it = out.end() - 1;
          }
          if (std::find(it->servers.begin(), it->servers.end(), sr) == it->servers.end())
            it->servers.push_back(sr);
        }
      }
    }
    return out;
  }

  /// True if a match block (HTTP or L4) applies on one of `servers` (all bound, all on one
  /// listener). A match's `gateways` override the virtual service's; `source_labels` and
  /// `source_namespace` name the client, which at a gateway is the gateway itself (its
  /// selector stands for its pod's labels); a `port` must be the listener's.
  template <typename Match>
  static bool match_applies(const Match& m, const config::VirtualService& vs,
                            const std::vector<const ServerRef*>& servers, uint32_t port) {
    if (m.port != 0 && m.port != port) return false;
    for (const ServerRef* sr : servers) {
      if (!m.gateways.empty()) {
        bool named = std::any_of(m.gateways.begin(), m.gateways.end(), [&](const auto& ref) {
          return ref != "mesh" && gateway_key(ref, vs.ns) == sr->key;
        });
        if (!named) continue;
      }
      if (!labels_contain(sr->gateway->selector, m.source_labels)) continue;
      if (!m.source_namespace.empty() && m.source_namespace != sr->gateway->ns) continue;
      return true;
    }
    return false;
  }

  RouteTableSpec route_table(const std::string& name, const ListenerBuild& b) {
    RouteTableSpec table;
    table.name = name;
    std::map<std::string, size_t> index;  // domain → its virtual host in table
    std::set<std::string> redirecting;    // domains whose virtual host only redirects
    for (const auto& vs : c_.virtual_services) {
      std::vector<const ServerRef*> servers = bound_servers(vs, b);
      if (servers.empty()) continue;
      for (const Domain& d : domains(vs, servers)) {
        auto [it, created] = index.try_emplace(d.name, table.virtual_hosts.size());
        if (created) {
          VirtualHostSpec vh;
          vh.name = fmt::format("{}:{}", d.name, b.port);
          vh.domains = {d.name};
          // The first of its gateways with a limit (one virtual host rarely serves two).
          for (const ServerRef* sr : d.servers) {
            if (!sr->gateway->local_rate_limit) continue;
            vh.rate_limit = rate_limit("gateway:" + sr->key, *sr->gateway->local_rate_limit);
            break;
          }
          if (d.https_redirect) {
            // Istio's tls.https_redirect: the server answers every request with a
            // redirect to https (Envoy's require_tls), whatever the routes say.
            RouteSpec r;
            r.name = "https_redirect";
            r.action = RouteSpec::Action::Redirect;
            r.redirect.scheme = "https";
            r.redirect.code = 301;
            vh.routes.push_back(std::move(r));
            redirecting.insert(d.name);
          }
          table.virtual_hosts.push_back(std::move(vh));
        }
        if (redirecting.count(d.name)) continue;
        std::vector<RouteSpec> routes = http_routes(vs, d.servers, b.port);
        auto& dst = table.virtual_hosts[it->second].routes;
        dst.insert(dst.end(), std::make_move_iterator(routes.begin()),
                   std::make_move_iterator(routes.end()));
      }
    }
    return table;
  }

  /// Istio's HeaderOperations → HeaderOpsSpec. `where` names them in warnings
  /// ("virtual_service NS/NAME: http[0].headers.request"). A Host (or ":authority") set or
  /// added on a request becomes `*authority` (`set` winning over `add`), as Istio turns it
  /// into a host rewrite; `authority` is null for responses.
  HeaderOpsSpec header_ops(const config::HeaderOperations& in, const std::string& where,
                           std::string* authority) {
    HeaderOpsSpec out;
    // Null: dropped with a warning.
    auto name_of = [&](const std::string& raw, std::string_view op) -> std::optional<std::string> {
      std::string name = lower(raw);
      if (name == "host" || name == ":authority") {
        if (authority && op != "remove") return name;
        warn(fmt::format(
            "{}.{}: header {}: {}; ignored", where, op, raw,
            authority ? "the Host header cannot be removed" : "a response has no Host header"));
        return std::nullopt;
      }
      if (!is_token(name)) {
        warn(fmt::format("{}.{}: \"{}\" is not a header name; ignored", where, op, raw));
        return std::nullopt;
      }
      if (is_managed_header(name)) {
        warn(
            fmt::format("{}.{}: header {} is managed by the proxy (framing or hop-by-hop); "
                        "ignored",
                        where, op, raw));
        return std::nullopt;
      }
      return name;
    };
    std::string set_authority, add_authority;
    auto values = [&](const std::map<std::string, std::string>& from, std::string_view op,
                      std::vector<HeaderValueSpec>& to, std::string& host) {
      for (const auto& [raw, value] : from) {
        std::optional<std::string> name = name_of(raw, op);
        if (!name) continue;
        if (!is_header_value(value)) {
          warn(fmt::format("{}.{}: header {}: the value has control characters; ignored", where, op,
                           raw));
          continue;
        }
        if (value.empty()) {
          // Envoy adds no header with an empty value; say so rather than do nothing quietly.
          warn(
              fmt::format("{}.{}: header {}: an empty value adds nothing (write remove to "
                          "delete a header); ignored",
                          where, op, raw));
          continue;
        }
        if (*name == "host" || *name == ":authority") {
          host = value;
          continue;
        }
        to.push_back({std::move(*name), value});
      }
      // By name after lower-casing, as Istio sorts them; stable, so config order among equals.
      std::stable_sort(
          to.begin(), to.end(),
          [](const HeaderValueSpec& a, const HeaderValueSpec& b) { return a.name < b.name; });
    };
    for (const auto& raw : in.remove) {
      std::optional<std::string> name = name_of(raw, "remove");
      if (name && std::find(out.remove.begin(), out.remove.end(), *name) == out.remove.end())
        out.remove.push_back(std::move(*name));
    }
    values(in.set, "set", out.set, set_authority);
    values(in.add, "add", out.add, add_authority);
    if (authority) *authority = !set_authority.empty() ? set_authority : add_authority;
    return out;
  }

  /// The route-level parts of a Forward route: header operations, rewrite and fault. False
  /// (with a warning) if the route cannot be served as written: then it is skipped.
  bool forward_options(const config::VirtualService& vs, size_t i, const config::HttpRoute& r,
                       RouteSpec& route) {
    std::string where = fmt::format("virtual_service {}: http[{}]", qualified(vs), i);
    std::string header_authority;
    route.request_headers =
        header_ops(r.headers.request, where + ".headers.request", &header_authority);
    route.response_headers = header_ops(r.headers.response, where + ".headers.response", nullptr);
    route.rewrite.authority = header_authority;
    if (r.rewrite) {
      const config::HttpRewrite& rw = *r.rewrite;
      if (rw.uri_regex_rewrite) {
        auto re = RegexRewrite::make(rw.uri_regex_rewrite->match, rw.uri_regex_rewrite->rewrite);
        if (!re) {
          // Forwarding the path unchanged would send it where it was not meant to go.
          warn(fmt::format("{}.rewrite.uri_regex_rewrite: {}; route skipped", where,
                           re.error().message()));
          return false;
        }
        route.rewrite.uri_regex = std::move(*re);
      } else {
        route.rewrite.uri = rw.uri;
      }
      if (!rw.authority.empty()) route.rewrite.authority = rw.authority;  // beats the headers'
    }
    if (!is_header_value(route.rewrite.authority)) {
      warn(fmt::format("{}: the rewritten authority has control characters; route skipped", where));
      return false;
    }
    if (r.fault) {
      const config::HttpFault& f = *r.fault;
      if (f.delay) {
        route.fault.delay_per_million = per_million(f.delay->percentage);
        route.fault.delay_ms =
            static_cast<uint64_t>(std::max<int64_t>(0, f.delay->fixed_delay.count()));
        if (route.fault.delay_per_million == 0 || route.fault.delay_ms == 0)
          route.fault.delay_ms = route.fault.delay_per_million = 0;
      }
      if (f.abort && f.abort->http_status == 0) {
        warn(
            fmt::format("{}.fault.abort: grpc_status aborts need HTTP/2, which meshbox does not "
                        "speak yet; abort ignored",
                        where));
      } else if (f.abort) {
        route.fault.abort_per_million = per_million(f.abort->percentage);
        route.fault.abort_status = route.fault.abort_per_million ? f.abort->http_status : 0;
        if (route.fault.abort_status == 0) route.fault.abort_per_million = 0;
      }
    }
    return true;
  }

  std::vector<RouteSpec> http_routes(const config::VirtualService& vs,
                                     const std::vector<const ServerRef*>& servers, uint32_t port) {
    return http_routes(
        vs, [&](const config::HttpMatch& m) { return match_applies(m, vs, servers, port); });
  }

  /// `applies`: whether a match block is for this listener (its gateways, port, clients).
  template <typename Applies>
  std::vector<RouteSpec> http_routes(const config::VirtualService& vs, Applies&& applies) {
    std::vector<RouteSpec> out;
    for (size_t i = 0; i < vs.http.size(); ++i) {
      const config::HttpRoute& r = vs.http[i];
      RouteSpec route;
      route.name = r.name.empty() ? fmt::format("{}/{}/http[{}]", vs.ns, vs.name, i) : r.name;
      bool ok = true;
      for (const auto& m : r.match) {
        if (!applies(m)) continue;
        auto spec = route_match(m);
        if (!spec) {
          // Dropping only the condition would make the route match more than written.
          warn(fmt::format("virtual_service {}: http[{}]: {}; route skipped", qualified(vs), i,
                           spec.error().message()));
          ok = false;
          break;
        }
        route.matches.push_back(std::move(*spec));
      }
      // Every match block was for other gateways, ports or clients: not this listener's route
      // (an empty `matches` would match everything instead).
      if (!ok || (!r.match.empty() && route.matches.empty())) continue;

      if (r.direct_response) {
        route.action = RouteSpec::Action::DirectResponse;
        route.direct_response = {r.direct_response->status, r.direct_response->body};
      } else if (r.redirect) {
        route.action = RouteSpec::Action::Redirect;
        const config::HttpRedirect& rd = *r.redirect;
        route.redirect = {rd.uri, rd.authority, rd.scheme, rd.port, rd.redirect_code};
        // derive_port: from_request_port is what port 0 (keep) does. from_protocol_default
        // needs the scheme the redirect ends with; without an explicit scheme that is the
        // listener's, plain HTTP until gateways terminate TLS.
        if (rd.derive_port == config::HttpRedirect::DerivePort::FromProtocolDefault)
          route.redirect.port = rd.scheme == "https" ? 443 : 80;
      } else {
        route.action = RouteSpec::Action::Forward;
        if (!forward_options(vs, i, r, route)) continue;
        for (size_t d = 0; d < r.route.size(); ++d) {
          const config::RouteDestination& dst = r.route[d];
          uint32_t weight =
              r.route.size() == 1
                  ? 100
                  : static_cast<uint32_t>(std::max<int64_t>(0, dst.weight.value_or(0)));
          // A 0 % destination gets no traffic; Istio leaves it out of the weighted clusters.
          if (weight == 0) continue;
          WeightedCluster wc;
          wc.cluster = destination_cluster(vs, dst.destination);
          wc.weight = weight;
          std::string where =
              fmt::format("virtual_service {}: http[{}].route[{}].headers", qualified(vs), i, d);
          wc.request_headers = header_ops(dst.headers.request, where + ".request", &wc.authority);
          wc.response_headers = header_ops(dst.headers.response, where + ".response", nullptr);
          route.clusters.push_back(std::move(wc));
        }
      }
      if (route.action != RouteSpec::Action::Forward) {
        const config::HeaderRules& h = r.headers;
        bool headers = !h.request.set.empty() || !h.request.add.empty() ||
                       !h.request.remove.empty() || !h.response.set.empty() ||
                       !h.response.add.empty() || !h.response.remove.empty();
        if (headers || r.fault || r.rewrite) {
          warn(
              fmt::format("virtual_service {}: http[{}]: headers, rewrite and fault apply to "
                          "routes with destinations only for now; ignored on a {}",
                          qualified(vs), i, r.redirect ? "redirect" : "direct_response"));
        }
      }
      if (r.timeout) route.timeout_ms = static_cast<uint64_t>(r.timeout->count());
      if (route.action == RouteSpec::Action::Forward) {
        route.retry = retry_spec(r.retries);
        if (r.mirror) {
          route.mirror.per_million =
              r.mirror_percentage ? per_million(r.mirror_percentage) : 1'000'000;
          if (route.mirror.per_million > 0)
            route.mirror.cluster = destination_cluster(vs, *r.mirror);
        }
      }
      if (r.local_rate_limit)
        route.rate_limit =
            rate_limit(fmt::format("route:{}/{}/http[{}]", vs.ns, vs.name, i), *r.local_rate_limit);
      if (r.cors_policy && !cors_spec(*r.cors_policy, route.cors)) {
        warn(
            fmt::format("virtual_service {}: http[{}].cors_policy: an origin regex does not "
                        "compile; cors_policy ignored",
                        qualified(vs), i));
      }
      out.push_back(std::move(route));
    }
    return out;
  }

  /// Istio's retries; unset, Istio's default: 2 retries on connect failure and 503
  /// (Envoy's connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes,
  /// the last three meaning nothing to HTTP/1.1 but a 503). attempts = 0 turns them off.
  static RetrySpec retry_spec(const std::optional<config::HttpRetry>& retries) {
    RetrySpec out;
    if (!retries) {
      out.attempts = 2;
      out.on = RetrySpec::kConnectFailure | RetrySpec::kStatusCodes;
      out.status_codes = {503};
      return out;
    }
    out.attempts = retries->attempts;
    if (retries->per_try_timeout)
      out.per_try_timeout_ms = static_cast<uint64_t>(retries->per_try_timeout->count());
    std::string_view list = retries->retry_on;
    if (list.empty()) list = "connect-failure,refused-stream,unavailable,cancelled,503";
    while (!list.empty()) {
      size_t comma = list.find(',');
      std::string_view item = list.substr(0, comma);
      while (!item.empty() && item.front() == ' ')
        item.remove_prefix(1);
      while (!item.empty() && item.back() == ' ')
        item.remove_suffix(1);
      uint32_t code = 0;
      auto [end, ec] = std::from_chars(item.data(), item.data() + item.size(), code);
      if (ec == std::errc() && end == item.data() + item.size() && code >= 100 && code <= 599) {
        out.on |= RetrySpec::kStatusCodes;
        if (std::find(out.status_codes.begin(), out.status_codes.end(), code) ==
            out.status_codes.end())
          out.status_codes.push_back(code);
      } else if (item == "5xx") {
        out.on |= RetrySpec::k5xx;
      } else if (item == "gateway-error") {
        out.on |= RetrySpec::kGatewayError;
      } else if (item == "connect-failure") {
        out.on |= RetrySpec::kConnectFailure;
      } else if (item == "reset" || item == "reset-before-request") {
        out.on |= RetrySpec::kReset;
      } else if (item == "retriable-4xx") {
        out.on |= RetrySpec::kRetriable4xx;
      } else if (item == "unavailable" || item == "retriable-status-codes") {
        // gRPC's unavailable, over HTTP/1.1, is a 503; retriable-status-codes names the
        // codes listed with it.
        if (item == "unavailable") {
          out.on |= RetrySpec::kStatusCodes;
          if (std::find(out.status_codes.begin(), out.status_codes.end(), 503u) ==
              out.status_codes.end())
            out.status_codes.push_back(503);
        }
      }
      // refused-stream, cancelled, deadline-exceeded…: HTTP/2 and gRPC conditions that an
      // HTTP/1.1 exchange never shows.
      if (comma == std::string_view::npos) break;
      list.remove_prefix(comma + 1);
    }
    std::sort(out.status_codes.begin(), out.status_codes.end());
    return out;
  }

  /// Istio's CorsPolicy → `out`; false if an origin's regex does not compile (validation
  /// rejects those).
  static bool cors_spec(const config::CorsPolicy& p, CorsSpec& out) {
    CorsSpec c;
    c.enabled = true;
    for (const auto& o : p.allow_origins) {
      auto m = make_matcher(o);
      if (!m) return false;
      c.allow_origins.push_back(std::move(*m));
    }
    c.allow_methods = fmt::format("{}", fmt::join(p.allow_methods, ","));
    c.allow_headers = fmt::format("{}", fmt::join(p.allow_headers, ","));
    c.expose_headers = fmt::format("{}", fmt::join(p.expose_headers, ","));
    if (p.max_age) c.max_age = std::to_string(p.max_age->count() / 1000);
    c.allow_credentials = p.allow_credentials.value_or(false);
    out = std::move(c);
    return true;
  }

  static Result<RouteMatchSpec> route_match(const config::HttpMatch& m) {
    RouteMatchSpec spec;
    if (m.uri) {
      auto x = make_matcher(*m.uri, m.ignore_uri_case);
      if (!x) return x.error();
      spec.path = std::move(*x);
    }
    const std::pair<const std::optional<config::StringMatch>*, std::optional<StringMatcher>*>
        simple[] = {
            {&m.method, &spec.method}, {&m.authority, &spec.authority}, {&m.scheme, &spec.scheme}};
    for (const auto& [from, to] : simple) {
      if (!*from) continue;
      auto x = make_matcher(**from);
      if (!x) return x.error();
      *to = std::move(*x);
    }
    for (const auto& [name, sm] : m.headers) {
      auto x = make_matcher(sm);
      if (!x) return x.error();
      spec.headers.push_back({lower(name), std::move(*x), false});
    }
    for (const auto& [name, sm] : m.without_headers) {
      auto x = make_matcher(sm);
      if (!x) return x.error();
      spec.headers.push_back({lower(name), std::move(*x), true});
    }
    for (const auto& [name, sm] : m.query_params) {
      auto x = make_matcher(sm);
      if (!x) return x.error();
      spec.query_params.push_back({name, std::move(*x)});
    }
    spec.port = m.port;
    return spec;
  }

  /// The cluster a route destination names: `outbound|PORT|SUBSET|HOST`. Without a port,
  /// the host's first port: validation requires one only when there are several. A host
  /// that matches nothing still gets its name: the data plane answers 503 for it.
  std::string destination_cluster(const config::VirtualService& vs, const config::Destination& d) {
    config::HostTarget t = hosts_.find(d.host, vs.ns);
    std::string host = t.fqdn;
    const std::vector<config::Port>* ports = nullptr;
    if (t.service) {
      ports = &t.service->ports;
    } else if (t.entry) {
      ports = &t.entry->ports;
      host = entry_host(*t.entry, t.fqdn);
    }
    uint32_t port = d.port;
    // A sidecar's route for one port of a service sends to that port unless told otherwise.
    if (port == 0 && ports && mesh_port_ &&
        std::any_of(ports->begin(), ports->end(),
                    [&](const config::Port& p) { return p.number == mesh_port_; }))
      port = mesh_port_;
    if (port == 0 && ports && !ports->empty()) port = ports->front().number;
    std::string name = cluster_name(port, d.subset, host);
    auto it = clusters_.find(name);
    if (it == clusters_.end()) {
      warn(fmt::format("virtual_service {}: destination {}: no cluster {}", qualified(vs), d.host,
                       name));
    } else if (it->second.endpoints.empty()) {
      warn(fmt::format("virtual_service {}: destination {} has no endpoint (cluster {})",
                       qualified(vs), d.host, name));
    }
    return name;
  }

  /// The entry host whose clusters serve `fqdn`: itself, or the wildcard host that covers it
  /// (a destination "api.example.com" of an entry for "*.example.com" goes to the wildcard's
  /// cluster, the only one there is).
  std::string entry_host(const config::ServiceEntry& se, const std::string& fqdn) const {
    for (const auto& h : se.hosts)
      if (hosts_.resolve(h, se.ns) == fqdn) return fqdn;
    for (const auto& h : se.hosts) {
      std::string r = hosts_.resolve(h, se.ns);
      if (HostIndex::wildcard_match(r, fqdn)) return r;
    }
    return fqdn;
  }

  // ---- tcp and tls routes ---------------------------------------------------------------

  /// A server whose TLS connections pass through untouched, routed by SNI: tls with mode
  /// passthrough or no mode (Istio's default), or https with mode passthrough.
  static bool passthrough(const config::Server& s) {
    using Mode = config::ServerTls::Mode;
    if (s.port.protocol == config::Protocol::Https)
      return s.tls && s.tls->mode && *s.tls->mode == Mode::Passthrough;
    return s.port.protocol == config::Protocol::Tls &&
           (!s.tls || !s.tls->mode || *s.tls->mode == Mode::Passthrough);
  }

  /// The servers of `b` whose gateway `vs` is bound to, among `among`.
  static std::vector<const ServerRef*> bound_servers_among(
      const config::VirtualService& vs, const ListenerBuild& b,
      const std::vector<const ServerRef*>& among) {
    std::vector<const ServerRef*> out = bound_servers(vs, b);
    std::erase_if(out, [&](const ServerRef* sr) {
      return std::find(among.begin(), among.end(), sr) == among.end();
    });
    return out;
  }

  /// An L4 route's destinations as weighted clusters (Istio leaves 0 % ones out).
  L4RouteSpec l4_route(const config::VirtualService& vs, std::string_view kind, size_t i,
                       const config::L4Route& r) {
    L4RouteSpec route;
    route.name = fmt::format("{}/{}/{}[{}]", vs.ns, vs.name, kind, i);
    for (const auto& dst : r.route) {
      uint32_t weight = r.route.size() == 1
                            ? 100
                            : static_cast<uint32_t>(std::max<int64_t>(0, dst.weight.value_or(0)));
      if (weight == 0) continue;
      route.clusters.push_back({destination_cluster(vs, dst.destination), weight});
    }
    for (size_t m = 0; m < r.match.size(); ++m) {
      if (!r.match[m].destination_subnets.empty()) {
        // A gateway's connections are all for its own address; Istio ignores them there too.
        warn(
            fmt::format("virtual_service {}: {}[{}].match[{}].destination_subnets: not applied "
                        "at gateways (as in Istio)",
                        qualified(vs), kind, i, m));
      }
    }
    return route;
  }

  /// Istio's gateway TCP routing: the first tcp route, of the first virtual service bound to
  /// one of `on` (servers of `b`) that serves one of their hosts, whose match applies (port,
  /// gateways, source). Later applicable routes of other virtual services are warned about.
  std::optional<L4RouteSpec> first_tcp_route(const std::string& listener, const ListenerBuild& b,
                                             const std::vector<const ServerRef*>& on) {
    std::optional<L4RouteSpec> chosen;
    for (const auto& vs : c_.virtual_services) {
      std::vector<const ServerRef*> servers = bound_servers_among(vs, b, on);
      if (servers.empty()) continue;
      std::vector<const ServerRef*> admitted;  // the servers that serve one of its hosts
      for (const Domain& d : domains(vs, servers))
        for (const ServerRef* sr : d.servers)
          if (std::find(admitted.begin(), admitted.end(), sr) == admitted.end())
            admitted.push_back(sr);
      if (admitted.empty()) continue;
      for (size_t i = 0; i < vs.tcp.size(); ++i) {
        const config::L4Route& r = vs.tcp[i];
        bool applies =
            r.match.empty() || std::any_of(r.match.begin(), r.match.end(), [&](const auto& m) {
              return match_applies(m, vs, admitted, b.port);
            });
        if (!applies || r.route.empty()) continue;
        if (chosen) {
          warn(
              fmt::format("virtual_service {}: tcp[{}] is not used on listener {}: {} comes "
                          "first",
                          qualified(vs), i, listener, chosen->name));
        } else {
          chosen = l4_route(vs, "tcp", i, r);
        }
        break;  // in one virtual service too, the first applicable route is the one
      }
      if (b.protocol == config::Protocol::Tcp && !vs.tls.empty()) {
        warn(
            fmt::format("virtual_service {}: tls routes apply on tls servers only; ignored on "
                        "tcp listener {}",
                        qualified(vs), listener));
      }
    }
    if (chosen && chosen->clusters.empty()) chosen.reset();
    return chosen;
  }

  /// Claims SNI pattern `sni` on a listener for `route`; false (with a warning) if an
  /// earlier route has it. `claimed`: pattern → route name.
  bool claim_sni(std::map<std::string, std::string>& claimed, const std::string& sni,
                 const std::string& route, const std::string& listener) {
    auto [it, fresh] = claimed.try_emplace(sni, route);
    if (fresh || it->second == route) return fresh;
    warn(fmt::format("{}: SNI host {} on listener {} is already routed by {}; ignored here", route,
                     sni, listener, it->second));
    return false;
  }

  /// Istio's TLS passthrough routing: every tls route of a virtual service bound to one of
  /// the passthrough servers of `b`, each with the SNI hosts of its matches that apply there,
  /// narrowed to the hosts the servers and the virtual service share (a match for
  /// "*.example.com" on a server for "shop.example.com" routes "shop.example.com"). An SNI
  /// host another route has already claimed is skipped with a warning, as Istio does.
  void tls_routes(const std::string& listener, const ListenerBuild& b,
                  std::map<std::string, std::string>& claimed, std::vector<L4RouteSpec>& out) {
    std::vector<const ServerRef*> pass;
    for (const auto& sr : b.servers)
      if (passthrough(*sr.server)) pass.push_back(&sr);
    if (pass.empty()) return;
    for (const auto& vs : c_.virtual_services) {
      std::vector<const ServerRef*> servers = bound_servers_among(vs, b, pass);
      if (servers.empty()) continue;
      std::vector<Domain> doms = domains(vs, servers);
      if (doms.empty()) continue;
      if (vs.tls.empty() && !vs.tcp.empty()) {
        warn(
            fmt::format("virtual_service {}: tcp routes do not apply on tls passthrough "
                        "listener {}: passthrough TLS is routed by tls routes (sni_hosts)",
                        qualified(vs), listener));
      }
      for (size_t i = 0; i < vs.tls.size(); ++i) {
        const config::L4Route& r = vs.tls[i];
        std::string name = fmt::format("{}/{}/tls[{}]", vs.ns, vs.name, i);
        std::vector<std::string> snis;
        for (size_t m = 0; m < r.match.size(); ++m) {
          const config::L4Match& match = r.match[m];
          for (const std::string& sni_host : match.sni_hosts) {
            std::string sni = lower(sni_host);
            bool applied = false, served = false;
            for (const Domain& d : doms) {
              if (!match_applies(match, vs, d.servers, b.port)) continue;
              applied = true;
              std::string x = intersect_hosts(sni, d.name);
              if (x.empty()) continue;
              served = true;
              if (std::find(snis.begin(), snis.end(), x) == snis.end()) snis.push_back(x);
            }
            if (applied && !served) {
              warn(
                  fmt::format("virtual_service {}: tls[{}].match[{}]: SNI host {} is not "
                              "among the hosts of listener {}; ignored",
                              qualified(vs), i, m, sni_host, listener));
            }
          }
        }
        if (snis.empty() || r.route.empty()) continue;
        std::vector<std::string> mine;
        for (const auto& sni : snis)
          if (claim_sni(claimed, sni, name, listener)) mine.push_back(sni);
        if (mine.empty()) continue;
        L4RouteSpec route = l4_route(vs, "tls", i, r);
        if (route.clusters.empty()) continue;
        route.sni_hosts = std::move(mine);
        out.push_back(std::move(route));
      }
    }
  }

  /// A Tcp listener's routes. A tcp listener has one: Istio's first applicable tcp route. A
  /// tls listener reads the ClientHello and routes by SNI: the tls routes of its passthrough
  /// servers; and for each server with another mode (TLS termination: the route carries the
  /// server's context), its first applicable tcp route under the server's own hosts, as
  /// Istio routes after terminating.
  std::vector<L4RouteSpec> l4_routes(const std::string& listener, const ListenerBuild& b) {
    std::vector<L4RouteSpec> out;
    if (b.protocol != config::Protocol::Tls) {
      std::vector<const ServerRef*> all;
      for (const auto& sr : b.servers)
        all.push_back(&sr);
      if (auto route = first_tcp_route(listener, b, all)) out.push_back(std::move(*route));
      return out;
    }
    std::map<std::string, std::string> claimed;  // SNI pattern → route name
    tls_routes(listener, b, claimed, out);
    for (const auto& sr : b.servers) {
      if (passthrough(*sr.server)) continue;
      std::optional<L4RouteSpec> route = first_tcp_route(listener, b, {&sr});
      if (!route) continue;
      std::vector<std::string> mine;
      for (const auto& host : sr.server->hosts) {
        std::string h = lower(host.substr(host.find('/') + 1));  // without "NAMESPACE/"
        if (std::find(mine.begin(), mine.end(), h) == mine.end() &&
            claim_sni(claimed, h, route->name, listener))
          mine.push_back(h);
      }
      if (mine.empty()) continue;
      route->sni_hosts = std::move(mine);
      route->terminate = sr.tls;
      out.push_back(std::move(*route));
    }
    return out;
  }

  const config::Config& c_;
  const CompileOptions& options_;
  HostIndex hosts_;
  mutable std::optional<std::map<std::string, const config::Service*>> services_by_fqdn_;
  std::map<std::string, std::vector<const Endpoint*>> endpoints_by_host_;  // lower-case host
  std::map<std::string, std::optional<loop::Address>> addresses_;          // "HOST:PORT" → parsed
  std::map<std::string, ClusterSpec> clusters_;                            // by name
  std::optional<std::vector<OriginalDstRoute>> vip_routes_;                // made on first use
  std::map<std::string, const MeshIdentity*> identities_;  // by SPIFFE ID, asked once
  struct InlineJwks {
    tls::JwksConstPtr jwks;
    std::string error;
  };
  std::map<std::string, InlineJwks> inline_jwks_;  // by document text: each parsed once
  std::map<std::pair<uint32_t, std::string>, ListenerSpec> listeners_;  // (port, bind)
  std::map<std::string, RouteTableSpec> route_tables_;                  // by name
  std::vector<std::string> warnings_;
  std::set<std::string> warned_;
  uint32_t mesh_port_ = 0;  // while a sidecar's routes for one port are built
  std::map<std::string, config::AccessLogSpecPtr> access_logs_;  // by path
};

}  // namespace

Compiled compile(const config::Config& config, const std::vector<Endpoint>& endpoints,
                 const CompileOptions& options) {
  return Compiler(config, endpoints, options).run();
}

}  // namespace meshbox::control
