// The mesh config as plain structs: the `mesh` settings and one struct per resource kind
// (service, workload, virtual_service, destination_rule, gateway, service_entry,
// peer_authentication, authorization_policy, request_authentication). Field names are
// Istio's in snake_case (docs/config.md is the schema); what meshbox adds or leaves out is
// said at the field.
//
// Built by decode.h from TOML, checked by validate.h, then read by the control plane's
// compiler. Values are as written: defaults that Istio applies at run time (retries, LB
// policy, connect timeout…) are left to the compiler, so an absent field stays
// distinguishable (std::optional, 0 or empty). Each resource carries its Source: the file,
// the position of its table and of every field that was decoded, so that any later stage can
// report a problem at the exact place. Plain value types; thread-agnostic.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace meshbox::config {

/// A duration as Istio writes it ("5s", "100ms", "1m", "1h", "0.5s", "1m30s").
using Duration = std::chrono::milliseconds;
/// Label maps (workload labels, subset labels, selectors). Sorted, like toml++'s tables.
using Labels = std::map<std::string, std::string>;

/// A position in a config file, 1-based. {0, 0}: unknown.
struct Pos {
  uint32_t line = 0;
  uint32_t column = 0;
};

/// Where a resource came from. Field paths are written as in error messages:
/// "http[1].route[0].weight", "subsets[0].labels.version", "servers[0].port".
struct Source {
  std::string file;
  Pos pos;  // the resource's table: its [[kind]] header or its inline table
  std::map<std::string, Pos, std::less<>> fields;  // field path → position of its value
  /// Paths decoding reported an error at (a bad value, a missing or unknown key): checks
  /// made later skip them, so that one mistake is reported once.
  std::set<std::string, std::less<>> rejected;
  /// The resource alone, as a TOML document: `[[KIND]]` and its table (`[mesh]` for the mesh),
  /// as toml++ prints what was parsed: keys sorted, comments and layout dropped, strings in
  /// double quotes, floats with 17 significant digits. Decoding it gives the same resource,
  /// and the same text again: what the config store keeps and compares.
  std::string toml;
  /// The resource's table as one compact JSON object (dates as strings; inf and nan as the
  /// strings "Infinity", "-Infinity", "NaN").
  std::string json;

  /// The position of `path`, else of its nearest recorded parent ("a.b[2].c" → "a.b[2]" →
  /// "a.b" → "a"), else the resource's own position.
  Pos at(std::string_view path) const;
  /// True if decoding reported nothing at `path` or inside it ("a.b" covers "a.b.c", "a.b[0]").
  bool clean(std::string_view path) const;
};

/// What every resource has. `ns` is the namespace (TOML key `namespace`, default "default").
struct Resource {
  std::string name;
  std::string ns = "default";
  Source source;

  /// "NAME" in namespace "default", else "NAMESPACE/NAME": how errors name the resource.
  std::string display_name() const;
};

// ---------------------------------------------------------------------------------------
// Shared pieces

/// Istio's StringMatch: exactly one of exact, prefix, regex. `Present` is Istio's empty
/// match `{}` on a header (written `{}` or `{ present = true }`): the header must be there.
struct StringMatch {
  enum class Kind { Exact, Prefix, Regex, Present };
  Kind kind = Kind::Exact;
  std::string value;  // empty for Present
};

/// Port protocols. meshbox's data plane speaks HTTP/1.1, TCP and TLS; Istio's HTTP2, GRPC,
/// GRPC-WEB and MONGO are not accepted (yet).
enum class Protocol { Http, Https, Tcp, Tls };

/// A local rate limit (Envoy's local_ratelimit token bucket; Istio configures it with an
/// EnvoyFilter, meshbox with this field on a route, a workload or a gateway): the bucket
/// starts full with max_tokens, gains tokens_per_fill every fill_interval (never above
/// max_tokens), and each request takes one; a request finding it empty gets 429. One bucket
/// per route, workload or gateway for the whole process, whatever the number of workers.
struct LocalRateLimit {
  uint32_t max_tokens = 0;                  // required, >= 1
  std::optional<uint32_t> tokens_per_fill;  // default: max_tokens
  std::optional<Duration> fill_interval;    // default 1s; at least 50ms (Envoy's minimum)
};

/// A port of a service, a service_entry or a gateway server. Istio: Port / ServicePort.
struct Port {
  uint32_t number = 0;
  std::string name;  // defaults to the protocol name ("http"), as a Kubernetes port name would be
  Protocol protocol = Protocol::Http;
  uint32_t target_port = 0;  // service_entry: the endpoints' port when they differ; 0 = number
};

/// Istio's WorkloadSelector (`selector = { match_labels = { app = "reviews" } }`).
struct WorkloadSelector {
  Labels match_labels;
};

/// Istio's LocalityLoadBalancerSetting (destination rules and the mesh default).
struct LocalityLbSetting {
  struct Distribute {
    std::string from;                    // "region/zone/*"
    std::map<std::string, uint32_t> to;  // locality → weight (sum 100)
  };
  struct Failover {
    std::string from;  // region
    std::string to;    // region
  };
  std::optional<bool> enabled;
  std::vector<Distribute> distribute;
  std::vector<Failover> failover;
  std::vector<std::string> failover_priority;  // label keys, or "key=value"
};

// ---------------------------------------------------------------------------------------
// mesh: Istio's MeshConfig, the parts that mean something without Kubernetes. One per
// config (`[mesh]`), optional.

enum class OutboundTrafficPolicy { AllowAny, RegistryOnly };
/// How a workload's traffic reaches its sidecar. None: HTTP_PROXY names the outbound listener
/// (any user, any OS). Iptables: transparent capture (Linux, root): the instance runs in a
/// network namespace of its own whose iptables rules REDIRECT its TCP to the sidecar, as
/// Istio's init container does (plane/control/netns.h).
enum class Capture { None, Iptables };
enum class AccessLogEncoding { Text, Json };

struct Mesh {
  bool defined = false;  // a [mesh] table was present
  Source source;

  std::string name = "mesh";  // shown in logs, metrics and the admin API
  std::string trust_domain = "cluster.local";
  std::vector<std::string> trust_domain_aliases;
  std::string domain_suffix = "cluster.local";  // hosts: NAME.NAMESPACE.svc.DOMAIN_SUFFIX
  std::string root_namespace = "istio-system";  // policies here apply to the whole mesh
  OutboundTrafficPolicy outbound_traffic_policy = OutboundTrafficPolicy::AllowAny;
  Duration connect_timeout = std::chrono::seconds(10);
  /// Captured workloads (capture = "iptables"): each instance's network namespace gets a /30
  /// of this IPv4 range for its veth pair (meshbox's side .1, the workload's .2).
  std::string capture_cidr = "10.250.0.0/16";
  bool enable_auto_mtls = true;
  /// Istio's standard metrics (istio_requests_total …) from every proxy; off: none recorded.
  bool enable_metrics = true;
  std::string access_log_file;  // "" = off; "/dev/stdout" or a path
  /// JSON by default (Istio's default is TEXT): a line per request that tools can parse.
  AccessLogEncoding access_log_encoding = AccessLogEncoding::Json;
  /// Text: an Envoy format string; json: a JSON object of name → format string. "" = the
  /// encoding's default (plane/config/access_log_format.h).
  std::string access_log_format;
  bool enable_tracing = true;
  double tracing_sampling = 1.0;  // percent of requests traced (Istio's default: 1 %)
  /// The Zipkin v2 collector spans go to (Istio's defaultConfig.tracing.zipkin.address):
  /// "IP:PORT", "localhost:PORT" or "http://IP:PORT/PATH" (default path /api/v2/spans).
  /// "" = no tracing (no spans, trace headers passed through untouched).
  std::string zipkin_address;
  std::optional<LocalityLbSetting> locality_lb_setting;
};

// ---------------------------------------------------------------------------------------
// service: what a Kubernetes Service is to Istio. Workloads name the service they belong to.

struct Service : Resource {
  std::vector<Port> ports;  // `port = 9080` (+ `protocol`) is shorthand for one port
  Labels labels;
};

// ---------------------------------------------------------------------------------------
// workload: a process meshbox starts (or an address it is told about), with its sidecar.
// What a Kubernetes Pod/Deployment, or an Istio WorkloadEntry, is to Istio.

struct HealthCheck {
  std::string http;                  // HTTP GET path that must answer 200–399 ("/health")
  bool tcp = false;                  // or: a TCP connect must succeed
  std::optional<Duration> interval;  // default 5s (compiler)
  std::optional<Duration> timeout;   // default 1s
  std::optional<uint32_t> healthy_threshold;    // default 1
  std::optional<uint32_t> unhealthy_threshold;  // default 3
};

struct Workload : Resource {
  bool name_derived = false;  // `name` was not written: SERVICE-VERSION (or SERVICE)
  std::string service;        // a service in the workload's namespace (required)
  Labels labels;              // `app = SERVICE` is added when absent
  std::string service_account = "default";
  std::vector<std::string> command;  // argv; ${PORT} is replaced by `port` (chosen if 0)
  /// Processes of `command` to run: NAME-0 … NAME-{N-1} when N > 1 (NAME when 1), each with
  /// a port of its own (so N > 1 needs port 0); 0 runs none. Needs a command unless 1.
  uint32_t replicas = 1;
  /// A sidecar for each instance (Istio's automatic injection; `inject = false` opts out,
  /// like the sidecar.istio.io/inject annotation): the app's HTTP_PROXY points at its
  /// outbound listener, and the service reaches it through its inbound listener. Processes
  /// only (workloads with a command).
  bool inject = true;
  /// With inject: how the app's traffic reaches the sidecar (Capture). "iptables" also gives
  /// the instance its own network namespace: it is reached at that namespace's address, and
  /// calls other services by name through a hosts file of their virtual IPs.
  Capture capture = Capture::None;
  std::map<std::string, std::string> env;
  std::string working_dir;
  std::string address = "127.0.0.1";  // where the app listens
  uint32_t port = 0;                  // the app's port; 0 = meshbox picks one (needs command)
  std::string locality;               // "region/zone/subzone"
  uint32_t weight = 0;                // load-balancing weight; 0 = default (1)
  /// A multi-node mesh (`meshbox run --store etcd://… --node NAME`): the nodes that run the
  /// workload's processes; empty = every node. A single node ignores it.
  std::vector<std::string> nodes;
  std::optional<HealthCheck> health;
  /// Every request to each of the workload's sidecars (inbound) takes a token: one bucket per
  /// instance, as Envoy's local limit is per proxy.
  std::optional<LocalRateLimit> local_rate_limit;
  /// Access logs of its sidecars (inbound and outbound): true/false override the mesh's
  /// access_log_file ("" there: true logs to /dev/stdout); unset: as the mesh says.
  std::optional<bool> access_log;
};

// ---------------------------------------------------------------------------------------
// virtual_service

/// Where traffic goes. Istio: Destination{host, subset, port.number}.
struct Destination {
  std::string host;
  std::string subset;
  uint32_t port = 0;  // 0 = not set
};

/// Istio: HeaderOperations.
struct HeaderOperations {
  std::map<std::string, std::string> set;
  std::map<std::string, std::string> add;
  std::vector<std::string> remove;
};

/// Istio: Headers {request, response}.
struct HeaderRules {
  HeaderOperations request;
  HeaderOperations response;
};

struct HttpMatch {
  std::string name;
  std::optional<StringMatch> uri;
  std::optional<StringMatch> scheme;
  std::optional<StringMatch> method;
  std::optional<StringMatch> authority;
  std::map<std::string, StringMatch> headers;          // lower-case names
  std::map<std::string, StringMatch> without_headers;  // the request must not match any
  std::map<std::string, StringMatch> query_params;
  bool ignore_uri_case = false;
  uint32_t port = 0;  // 0 = any
  Labels source_labels;
  std::string source_namespace;
  std::vector<std::string> gateways;  // overrides the virtual service's gateways
};

/// Istio: HTTPRouteDestination (http) and RouteDestination (tcp, tls: no headers).
struct RouteDestination {
  Destination destination;
  std::optional<int64_t> weight;  // percent; all weights of a route sum to 100
  HeaderRules headers;            // http only
};

struct HttpRedirect {
  enum class DerivePort { Unset, FromProtocolDefault, FromRequestPort };
  std::string uri;
  std::string authority;
  std::string scheme;
  uint32_t port = 0;
  DerivePort derive_port = DerivePort::Unset;
  uint32_t redirect_code = 301;
};

/// Istio: HTTPDirectResponse. `body` is the string form of Istio's body.string.
struct DirectResponse {
  uint32_t status = 0;
  std::string body;
};

struct HttpRewrite {
  struct RegexRewrite {
    std::string match;
    std::string rewrite;
  };
  std::string uri;
  std::string authority;
  std::optional<RegexRewrite> uri_regex_rewrite;
};

struct HttpRetry {
  uint32_t attempts = 0;
  std::optional<Duration> per_try_timeout;
  std::string retry_on;  // comma list, as Envoy's x-envoy-retry-on
  bool retry_remote_localities = false;
};

struct HttpFault {
  struct Delay {
    Duration fixed_delay{0};
    std::optional<double> percentage;  // unset: no request is delayed (Istio)
  };
  struct Abort {
    uint32_t http_status = 0;
    std::string grpc_status;
    std::optional<double> percentage;  // unset: no request is aborted (Istio)
  };
  std::optional<Delay> delay;
  std::optional<Abort> abort;
};

struct CorsPolicy {
  std::vector<StringMatch> allow_origins;
  std::vector<std::string> allow_methods;
  std::vector<std::string> allow_headers;
  std::vector<std::string> expose_headers;
  std::optional<Duration> max_age;
  std::optional<bool> allow_credentials;
};

struct HttpRoute {
  std::string name;
  std::vector<HttpMatch> match;  // OR of entries; empty = every request
  std::vector<RouteDestination> route;
  std::optional<HttpRedirect> redirect;
  std::optional<DirectResponse> direct_response;
  std::optional<HttpRewrite> rewrite;
  std::optional<Duration> timeout;
  std::optional<HttpRetry> retries;
  std::optional<HttpFault> fault;
  std::optional<Destination> mirror;
  std::optional<double> mirror_percentage;  // unset with a mirror: 100 (Istio)
  std::optional<CorsPolicy> cors_policy;
  HeaderRules headers;
  std::optional<LocalRateLimit> local_rate_limit;  // per route
};

/// Istio: L4MatchAttributes (tcp) and TLSMatchAttributes (tls: + sni_hosts).
struct L4Match {
  std::vector<std::string> sni_hosts;  // tls only (required there)
  std::vector<std::string> destination_subnets;
  uint32_t port = 0;
  Labels source_labels;
  std::string source_namespace;
  std::vector<std::string> gateways;
};

struct L4Route {
  std::vector<L4Match> match;
  std::vector<RouteDestination> route;
};

struct VirtualService : Resource {
  std::vector<std::string> hosts;
  std::vector<std::string> gateways;  // empty = ["mesh"]
  std::vector<HttpRoute> http;
  std::vector<L4Route> tcp;
  std::vector<L4Route> tls;
  std::vector<std::string> export_to;  // accepted; visibility is not enforced yet
};

// ---------------------------------------------------------------------------------------
// destination_rule

enum class LbPolicy { Unspecified, RoundRobin, Random, LeastRequest };

struct ConsistentHash {
  enum class Kind { HttpHeaderName, HttpCookie, UseSourceIp, HttpQueryParameterName };
  struct Cookie {
    std::string name;
    std::string path;
    std::optional<Duration> ttl;
  };
  Kind kind = Kind::UseSourceIp;
  std::string http_header_name;
  Cookie http_cookie;
  std::string http_query_parameter_name;
  uint64_t minimum_ring_size = 0;  // 0 = default (1024)
};

/// Istio: LoadBalancerSettings. `load_balancer = "random"` is shorthand for
/// `load_balancer = { simple = "random" }`.
struct LoadBalancer {
  LbPolicy simple = LbPolicy::Unspecified;
  std::optional<ConsistentHash> consistent_hash;
  std::optional<LocalityLbSetting> locality_lb_setting;
};

struct ConnectionPool {
  struct TcpKeepalive {
    std::optional<uint32_t> probes;
    std::optional<Duration> time;
    std::optional<Duration> interval;
  };
  struct Tcp {
    std::optional<uint32_t> max_connections;
    std::optional<Duration> connect_timeout;
    std::optional<Duration> max_connection_duration;
    std::optional<Duration> idle_timeout;
    std::optional<TcpKeepalive> tcp_keepalive;
  };
  struct Http {
    std::optional<uint32_t> http1_max_pending_requests;
    std::optional<uint32_t> http2_max_requests;  // Istio's name; caps concurrent requests
    std::optional<uint32_t> max_requests_per_connection;
    std::optional<uint32_t> max_retries;
    std::optional<Duration> idle_timeout;
  };
  std::optional<Tcp> tcp;
  std::optional<Http> http;
};

struct OutlierDetection {
  std::optional<uint32_t> consecutive_5xx_errors;
  std::optional<uint32_t> consecutive_gateway_errors;
  std::optional<Duration> interval;
  std::optional<Duration> base_ejection_time;
  std::optional<uint32_t> max_ejection_percent;
  std::optional<uint32_t> min_health_percent;
};

/// Istio: ClientTLSSettings.
struct ClientTls {
  enum class Mode { Disable, Simple, Mutual, IstioMutual };
  Mode mode = Mode::Disable;
  std::string client_certificate;  // file paths
  std::string private_key;
  std::string ca_certificates;
  std::vector<std::string> subject_alt_names;
  std::string sni;
  bool insecure_skip_verify = false;
};

struct PortTrafficPolicy {
  uint32_t port = 0;
  std::optional<LoadBalancer> load_balancer;
  std::optional<ConnectionPool> connection_pool;
  std::optional<OutlierDetection> outlier_detection;
  std::optional<ClientTls> tls;
};

struct TrafficPolicy {
  std::optional<LoadBalancer> load_balancer;
  std::optional<ConnectionPool> connection_pool;
  std::optional<OutlierDetection> outlier_detection;
  std::optional<ClientTls> tls;
  std::vector<PortTrafficPolicy> port_level_settings;
};

struct Subset {
  std::string name;
  Labels labels;
  std::optional<TrafficPolicy> traffic_policy;
};

struct DestinationRule : Resource {
  std::string host;
  std::optional<TrafficPolicy> traffic_policy;
  std::vector<Subset> subsets;
  std::vector<std::string> export_to;  // accepted; visibility is not enforced yet
};

// ---------------------------------------------------------------------------------------
// gateway: listeners meshbox opens in its own process (Istio's ingress gateway).

/// Istio: ServerTLSSettings.
struct ServerTls {
  enum class Mode { Passthrough, Simple, Mutual, IstioMutual, OptionalMutual };
  enum class Version { Auto, V1_0, V1_1, V1_2, V1_3 };
  bool https_redirect = false;
  std::optional<Mode> mode;        // unset: Istio's default, PASSTHROUGH
  std::string server_certificate;  // file paths
  std::string private_key;
  std::string ca_certificates;
  std::vector<std::string> subject_alt_names;
  Version min_protocol_version = Version::Auto;
  Version max_protocol_version = Version::Auto;
  std::vector<std::string> cipher_suites;
};

struct Server {
  Port port;         // `port = 8080, protocol = "http"` is shorthand for the Istio form
  std::string bind;  // listen address; "" = all interfaces (Istio)
  std::vector<std::string> hosts;  // "[NAMESPACE/]HOST", HOST may be "*" or "*.suffix"
  std::optional<ServerTls> tls;
  std::string name;
};

struct Gateway : Resource {
  Labels selector;  // Istio's gateway-pod selector; meshbox's gateways run in-process
  std::vector<Server> servers;
  /// Every request to one of the gateway's http/https servers takes a token from one bucket.
  std::optional<LocalRateLimit> local_rate_limit;
  /// Access logs of its listeners, as Workload::access_log.
  std::optional<bool> access_log;
};

// ---------------------------------------------------------------------------------------
// service_entry

enum class Location { MeshExternal, MeshInternal };
enum class Resolution { None, Static, Dns, DnsRoundRobin };

/// Istio: WorkloadEntry, as used in ServiceEntry.endpoints.
struct WorkloadEntry {
  std::string address;
  std::map<std::string, uint32_t> ports;  // service-entry port name → endpoint port
  Labels labels;
  std::string network;
  std::string locality;
  uint32_t weight = 0;
  std::string service_account;
};

struct ServiceEntry : Resource {
  std::vector<std::string> hosts;
  std::vector<std::string> addresses;
  std::vector<Port> ports;
  Location location = Location::MeshExternal;  // Istio's default
  Resolution resolution = Resolution::None;    // Istio's default
  std::vector<WorkloadEntry> endpoints;
  std::vector<std::string> subject_alt_names;
  std::vector<std::string> export_to;  // accepted; visibility is not enforced yet
};

// ---------------------------------------------------------------------------------------
// security: parsed and validated here, enforced by the data plane.

enum class MtlsMode { Unset, Disable, Permissive, Strict };

struct PeerAuthentication : Resource {
  std::optional<WorkloadSelector> selector;
  MtlsMode mtls = MtlsMode::Unset;  // `mtls = { mode = "strict" }`
  std::map<uint32_t, MtlsMode> port_level_mtls;
};

enum class AuthzAction { Allow, Deny, Audit };

struct AuthzSource {
  std::vector<std::string> principals, not_principals;
  std::vector<std::string> request_principals, not_request_principals;
  std::vector<std::string> namespaces, not_namespaces;
  std::vector<std::string> ip_blocks, not_ip_blocks;
  std::vector<std::string> remote_ip_blocks, not_remote_ip_blocks;
};

struct AuthzOperation {
  std::vector<std::string> hosts, not_hosts;
  std::vector<std::string> ports, not_ports;  // strings, as in Istio; integers accepted
  std::vector<std::string> methods, not_methods;
  std::vector<std::string> paths, not_paths;
};

struct AuthzCondition {
  std::string key;
  std::vector<std::string> values;
  std::vector<std::string> not_values;
};

/// Istio: Rule {from: [{source}], to: [{operation}], when}.
struct AuthzRule {
  std::vector<AuthzSource> from;
  std::vector<AuthzOperation> to;
  std::vector<AuthzCondition> when;
};

struct AuthorizationPolicy : Resource {
  std::optional<WorkloadSelector> selector;
  AuthzAction action = AuthzAction::Allow;
  std::vector<AuthzRule> rules;  // none: matches nothing (ALLOW with no rules denies all)
};

struct JwtRule {
  struct FromHeader {
    std::string name;
    std::string prefix;
  };
  std::string issuer;
  std::vector<std::string> audiences;
  std::string jwks_uri;
  std::string jwks;  // inline JWKS document
  std::vector<FromHeader> from_headers;
  std::vector<std::string> from_params;
  std::vector<std::string> from_cookies;
  std::string output_payload_to_header;
  bool forward_original_token = false;
  std::optional<Duration> timeout;
};

struct RequestAuthentication : Resource {
  std::optional<WorkloadSelector> selector;
  std::vector<JwtRule> jwt_rules;
};

// ---------------------------------------------------------------------------------------

/// A whole config: every resource of every file, in file order.
struct Config {
  std::vector<std::string> files;  // the files read, in the order read
  Mesh mesh;
  std::vector<Service> services;
  std::vector<Workload> workloads;
  std::vector<VirtualService> virtual_services;
  std::vector<DestinationRule> destination_rules;
  std::vector<Gateway> gateways;
  std::vector<ServiceEntry> service_entries;
  std::vector<PeerAuthentication> peer_authentications;
  std::vector<AuthorizationPolicy> authorization_policies;
  std::vector<RequestAuthentication> request_authentications;
};

/// The resource kinds as TOML names them, in Config member order and with "mesh" first:
/// "mesh", "service", "workload", "virtual_service", "destination_rule", "gateway",
/// "service_entry", "peer_authentication", "authorization_policy", "request_authentication".
std::span<const std::string_view> resource_kinds();

/// One resource of a config, whatever its kind. Points into the Config it was listed from.
struct ResourceRef {
  std::string_view kind;  // one of resource_kinds()
  std::string_view ns;    // "" for the mesh
  std::string_view name;  // "mesh" for the mesh
  const Source* source;
};

/// Every resource of `config`: the mesh first if `config.mesh.defined`, then each kind in
/// resource_kinds() order, in file order within a kind. Valid while `config` is unchanged.
std::vector<ResourceRef> list_resources(const Config& config);

/// An enum value's name as written in TOML. Names are lower case; decoding also accepts
/// Istio's upper case (`ROUND_ROBIN`), since it compares without regard to case.
template <typename E>
struct EnumName {
  std::string_view name;
  E value;
};

std::span<const EnumName<Protocol>> enum_names(Protocol);
std::span<const EnumName<OutboundTrafficPolicy>> enum_names(OutboundTrafficPolicy);
std::span<const EnumName<Capture>> enum_names(Capture);
std::span<const EnumName<AccessLogEncoding>> enum_names(AccessLogEncoding);
std::span<const EnumName<HttpRedirect::DerivePort>> enum_names(HttpRedirect::DerivePort);
std::span<const EnumName<LbPolicy>> enum_names(LbPolicy);
std::span<const EnumName<ClientTls::Mode>> enum_names(ClientTls::Mode);
std::span<const EnumName<ServerTls::Mode>> enum_names(ServerTls::Mode);
std::span<const EnumName<ServerTls::Version>> enum_names(ServerTls::Version);
std::span<const EnumName<Location>> enum_names(Location);
std::span<const EnumName<Resolution>> enum_names(Resolution);
std::span<const EnumName<MtlsMode>> enum_names(MtlsMode);
std::span<const EnumName<AuthzAction>> enum_names(AuthzAction);

/// The TOML name of an enum value ("round_robin").
template <typename E>
std::string_view to_string(E value) requires requires {
  enum_names(value);
}
{
  for (const auto& n : enum_names(value))
    if (n.value == value) return n.name;
  return "unknown";
}

}  // namespace meshbox::config
