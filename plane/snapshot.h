// Snapshot: everything a proxy worker needs to serve traffic, built by the control plane's
// compiler (plane/control/compiler.h) from the mesh config and the registry, or by
// `meshbox proxy` from its flags, and handed to every worker. Immutable after publish: shared
// as shared_ptr<const Snapshot> between threads. A worker pins the snapshot it has when a
// request's head arrives, so a new snapshot never changes a request in flight.
//
// Names follow Envoy's: a listener (bound address) serves HTTP through a route table (virtual
// hosts → routes → weighted clusters), or TCP through L4 routes (by weight, or by the SNI of a
// TLS ClientHello passed through); a cluster is a set of endpoints with connection settings,
// load balancing, circuit breakers and outlier detection. Cluster names are Istio's
// `outbound|PORT|SUBSET|HOST`.
//
// Every spec type compares with ==, ignoring nothing but Snapshot::version: the control plane
// pushes a new snapshot only when the compiled result really changed.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/base/result.h"
#include "core/base/token_bucket.h"
#include "core/http/parser.h"
#include "core/loop/address.h"
#include "core/tls/tls_context.h"
#include "plane/authz_spec.h"
#include "plane/config/access_log_format.h"
#include "plane/jwt_spec.h"

namespace meshbox {

// ---------------------------------------------------------------------------------------
// Clusters

enum class LbPolicy { RoundRobin, Random, LeastRequest };

/// Who a proxy or an endpoint is, for telemetry: Istio's source_* and destination_* labels
/// (an empty field is reported as "unknown").
struct PeerMetadata {
  std::string workload;      // the workload's name ("reviews-v2"), not the instance's
  std::string ns;            // its namespace
  std::string app, version;  // its `app` and `version` labels
  std::string principal;     // its SPIFFE ID ("spiffe://cluster.local/ns/default/sa/…")
  bool operator==(const PeerMetadata&) const = default;
};

/// Distributed tracing on an HTTP listener (plane/data/tracing.h): each request gets a span
/// for this hop, sampled at `sampling_percent` unless the caller decided, reported to a
/// Zipkin v2 collector. Compared by content.
struct TracingSpec {
  double sampling_percent = 1.0;  // 0–100
  loop::Address collector;        // resolved when compiled (an IP address)
  std::string collector_host;     // the Host header of the collector's requests
  std::string collector_path = "/api/v2/spans";
  std::string service_name;  // the spans' local endpoint: "productpage.default"
  /// An inbound sidecar's service port, for span names when the authority has none.
  uint32_t service_port = 0;
  bool operator==(const TracingSpec&) const = default;
};

/// A shared_ptr<const TracingSpec> that compares by content (null = tracing off).
class TracingSpecPtr {
 public:
  TracingSpecPtr() = default;
  TracingSpecPtr(std::shared_ptr<const TracingSpec> p) : p_(std::move(p)) {}  // NOLINT
  const TracingSpec* get() const { return p_.get(); }
  const TracingSpec* operator->() const { return p_.get(); }
  const TracingSpec& operator*() const { return *p_; }
  explicit operator bool() const { return p_ != nullptr; }
  bool operator==(const TracingSpecPtr& o) const {
    return p_ == o.p_ || (p_ && o.p_ && *p_ == *o.p_);
  }

 private:
  std::shared_ptr<const TracingSpec> p_;
};

struct EndpointSpec {
  loop::Address address;
  uint32_t weight = 1;
  std::string locality;  // "region/zone/subzone"
  /// A sidecar's inbound listener that takes mesh mTLS (Istio's auto mTLS): connections to it
  /// are TLS 1.3 with the calling listener's mesh_client identity, and the server must prove
  /// this SPIFFE ID. "" = plain TCP. destination_rule tls istio_mutual to an endpoint that
  /// meshbox does not run: "*" (any identity the mesh root signed) or the subject_alt_names,
  /// comma-separated (any one of them).
  std::string peer_identity;
  /// The workload behind the endpoint, when meshbox knows it (destination_* labels of an
  /// outbound sidecar's or a gateway's metrics).
  PeerMetadata workload = {};
  /// Envoy's priority level (locality failover, plane/control/locality.h): requests go to the
  /// lowest level that has usable endpoints and spill to the next ones as it loses them.
  /// 0 for every endpoint of a cluster without locality failover.
  uint32_t priority = 0;
  bool operator==(const EndpointSpec&) const = default;
};

/// Istio's ConsistentHashLB, compiled: what a request hashes on to pick its endpoint on a
/// ring (Envoy's ring hash), so the same key keeps reaching the same endpoint and removing
/// one of N endpoints moves about 1/N of the keys.
struct HashPolicySpec {
  enum class Kind { None, Header, Cookie, SourceIp, QueryParam };
  Kind kind = Kind::None;
  std::string name;  // Header: lower-case header name; Cookie, QueryParam: the name
  // Cookie: a request without the cookie gets one (a random value) in its response, with
  // this Path ("" = none) and Max-Age (0 = a session cookie), so its next requests stick.
  std::string cookie_path;
  uint64_t cookie_ttl_ms = 0;
  uint32_t ring_size = 1024;  // minimum entries on the ring (Istio's minimum_ring_size)
  bool operator==(const HashPolicySpec&) const = default;
};

/// Envoy's circuit-breaker thresholds (from Istio's connection_pool), process-wide per
/// cluster: shared by every worker. At a limit a request fails fast with 503 UO; only
/// max_pending_requests requests ever wait for a connection.
struct CircuitBreakerSpec {
  static constexpr uint32_t kUnlimited = UINT32_MAX;  // Istio's default for each
  uint32_t max_connections = kUnlimited;              // open upstream connections
  uint32_t max_pending_requests = kUnlimited;         // requests waiting for a connection
  uint32_t max_requests = kUnlimited;                 // requests in flight
  uint32_t max_retries = kUnlimited;                  // retries in flight
  uint32_t max_requests_per_connection = 0;           // 0 = unlimited (keep-alive reuse)
  bool operator==(const CircuitBreakerSpec&) const = default;
};

/// Istio's OutlierDetection, compiled (Envoy's outlier detector): an endpoint that fails
/// this many times in a row is ejected — taken out of load balancing — for base ejection
/// time × the number of times it was ejected (capped at 300 s); never more than
/// max_ejection_percent of the cluster's endpoints at once (one can always be ejected).
/// Failures: 5xx responses and connect failures, resets and timeouts (locally originated
/// errors count as 503, as in Envoy); gateway errors are 502, 503, 504 and those local ones.
struct OutlierSpec {
  uint32_t consecutive_5xx = 0;             // 0 = not counted
  uint32_t consecutive_gateway_errors = 0;  // 0 = not counted
  uint64_t interval_ms = 10'000;  // an ejection count decays by one per interval un-ejected
  uint64_t base_ejection_time_ms = 30'000;
  uint32_t max_ejection_percent = 10;
  /// Istio's min_health_percent (Envoy's panic threshold): when fewer than this percentage
  /// of the endpoints are un-ejected, ejections are ignored and every endpoint takes traffic.
  /// 0 = never.
  uint32_t min_health_percent = 0;
  bool enabled() const { return consecutive_5xx > 0 || consecutive_gateway_errors > 0; }
  bool operator==(const OutlierSpec&) const = default;
};

/// A captured connection's original destination (a service's virtual IP and port) and the
/// cluster it goes to.
struct OriginalDstRoute {
  loop::Address address;
  std::string cluster;
  bool operator==(const OriginalDstRoute&) const = default;
};

/// An upstream: a set of endpoints and how to talk to them.
struct ClusterSpec {
  std::string name;
  /// The service the cluster reaches, for telemetry: its host ("reviews.default.svc.cluster.local",
  /// Istio's destination_service), short name ("reviews"; "PassthroughCluster" for
  /// original_dst) and namespace. Empty for a plain proxy's clusters.
  std::string service_host, service_name, service_ns;
  /// The endpoints are mesh workloads: requests to them carry the caller's PeerMetadata
  /// (the x-meshbox-peer header), for the inbound sidecar's source_* labels. Never sent to
  /// a service entry or a passthrough host.
  bool send_peer_metadata = false;
  /// Every endpoint is a workload's inbound listener in this process: a tracing hop sends
  /// them its context in trace::kProxyHeader alone, which that listener turns back into the
  /// standard headers for its app (see core/trace/trace_context.h).
  bool proxy_trace_context = false;
  std::vector<EndpointSpec> endpoints;  // healthy ones only (the compiler drops the rest)
  /// The endpoints failing their active health check, left out of `endpoints` — unless every
  /// endpoint fails (panic mode: then they are in both). For the admin API; never used.
  std::vector<EndpointSpec> unhealthy_endpoints = {};
  LbPolicy lb_policy = LbPolicy::RoundRobin;
  HashPolicySpec hash;  // kind != None: a ring hash instead of lb_policy
  CircuitBreakerSpec limits;
  OutlierSpec outlier;
  uint64_t connect_timeout_ms = 5'000;
  uint64_t response_timeout_ms = 15'000;  // request sent → response head (Envoy's route default)
  uint64_t idle_timeout_ms = 60'000;  // a pooled connection unused, or a body stalled, this long
  uint32_t max_idle_per_endpoint = 1'024;  // keep-alive connections kept per endpoint per worker
  /// Connections are made from inside this network namespace (/run/netns/NAME; "" = meshbox's
  /// own): a captured workload's inbound cluster reaches its app on the namespace's loopback.
  std::string netns;
  /// Istio's PassthroughCluster (outbound_traffic_policy allow_any): no endpoints; each
  /// request goes where the client meant it to: the connection's original destination when
  /// an iptables redirect brought it, else its Host (or CONNECT target), looked up in DNS.
  bool original_dst = false;
  /// destination_rule tls simple or mutual (Istio's TLS origination): connections to every
  /// endpoint are TLS with this client context — its roots, its client certificate, the
  /// server name or subject alt names it checks — and send `tls_sni` ("" = none). Null:
  /// plain text, or mesh mTLS per endpoint (EndpointSpec::peer_identity). The control plane
  /// keeps a context while its settings and files are unchanged, so that an unchanged cluster
  /// compares equal.
  tls::TlsContextConstPtr tls;
  std::string tls_sni;
  bool operator==(const ClusterSpec&) const = default;
};

// ---------------------------------------------------------------------------------------
// Routes

/// Istio's StringMatch, compiled: exact, prefix, regex (whole string, RE2 syntax translated
/// when the snapshot is built), or present (any value; for headers and query parameters).
class StringMatcher {
 public:
  enum class Kind { Exact, Prefix, Regex, Present };

  /// Fails only for a regex that does not compile (validation should have caught it).
  static Result<StringMatcher> make(Kind kind, std::string value, bool ignore_case = false);
  /// Inline for the common case-sensitive exact and prefix matches: a route table of a
  /// hundred routes runs this a hundred times per request.
  bool matches(std::string_view text) const {
    if (!ignore_case_) {
      if (kind_ == Kind::Exact)
        return text.size() == value_.size() &&
               std::char_traits<char>::compare(text.data(), value_.data(), value_.size()) == 0;
      if (kind_ == Kind::Prefix)
        return text.size() >= value_.size() &&
               std::char_traits<char>::compare(text.data(), value_.data(), value_.size()) == 0;
    }
    return matches_slow(text);
  }

  Kind kind() const { return kind_; }
  const std::string& value() const { return value_; }
  bool ignore_case() const { return ignore_case_; }
  bool operator==(const StringMatcher& o) const {
    return kind_ == o.kind_ && value_ == o.value_ && ignore_case_ == o.ignore_case_;
  }

 private:
  struct Regex;
  bool matches_slow(std::string_view text) const;
  Kind kind_ = Kind::Exact;
  std::string value_;
  bool ignore_case_ = false;
  std::shared_ptr<const Regex> regex_;  // Kind::Regex only; immutable, matched from any thread
};

struct HeaderMatcher {
  std::string name;  // lower case
  StringMatcher match;
  bool invert = false;  // Istio's without_headers: the request must not match
  bool operator==(const HeaderMatcher&) const = default;
};

struct QueryParamMatcher {
  std::string name;
  StringMatcher match;
  bool operator==(const QueryParamMatcher&) const = default;
};

/// One of a route's match blocks (Istio's HTTPMatchRequest): every condition set must hold.
struct RouteMatchSpec {
  std::optional<StringMatcher> path;  // the path without the query string
  std::optional<StringMatcher> method;
  std::optional<StringMatcher> authority;  // the Host header, port included
  std::optional<StringMatcher> scheme;
  std::vector<HeaderMatcher> headers;
  std::vector<QueryParamMatcher> query_params;
  uint32_t port = 0;  // the listener's port; 0 = any
  bool operator==(const RouteMatchSpec&) const = default;
};

/// One header and its value, for the header operations below.
struct HeaderValueSpec {
  std::string name;  // lower case
  std::string value;
  bool operator==(const HeaderValueSpec&) const = default;
};

/// Istio's HeaderOperations, compiled. Applied in Envoy's order: every `remove`, then every
/// `set` (replaces all values of the header with one), then every `add` (one more header
/// line, the others kept). Names are lower case and are never hop-by-hop, framing
/// (content-length) or Host headers: those the proxy manages itself, and a Host change is an
/// authority rewrite instead. Values are literal (no %VARIABLE% expansion) and hold no control
/// characters.
struct HeaderOpsSpec {
  std::vector<std::string> remove;
  std::vector<HeaderValueSpec> set;  // by name, as Istio sorts them
  std::vector<HeaderValueSpec> add;  // by name
  bool empty() const { return remove.empty() && set.empty() && add.empty(); }
  bool operator==(const HeaderOpsSpec&) const = default;
};

struct WeightedCluster {
  std::string cluster;
  uint32_t weight = 100;
  // The destination's own header operations (Istio's HTTPRouteDestination.headers), applied
  // after the route's when this destination is picked.
  // (`= {}`: brace-initialising only cluster and weight stays warning-free.)
  HeaderOpsSpec request_headers = {};   // on the request sent upstream
  HeaderOpsSpec response_headers = {};  // on the response sent downstream
  /// A Host set by the destination's request headers; the route's rewrite authority wins
  /// over it (as Istio builds it). "" = keep.
  std::string authority = {};
  bool operator==(const WeightedCluster&) const = default;
};

/// Istio's uri_regex_rewrite, compiled once (RE2) when the snapshot is built: every match of
/// the pattern in the path is replaced by the substitution, where \1…\9 name capture groups
/// and \0 the whole match (Envoy's regex_rewrite). Immutable; usable from any thread.
class RegexRewrite {
 public:
  /// Fails for a pattern that does not compile or a substitution naming a group the pattern
  /// lacks.
  static Result<RegexRewrite> make(std::string pattern, std::string substitution);
  /// Rewrites `path` in place; false (and `path` untouched) if the pattern never matched.
  bool apply(std::string& path) const;

  const std::string& pattern() const { return pattern_; }
  const std::string& substitution() const { return substitution_; }
  bool operator==(const RegexRewrite& o) const {
    return pattern_ == o.pattern_ && substitution_ == o.substitution_;
  }

 private:
  struct Regex;
  std::string pattern_;
  std::string substitution_;
  std::shared_ptr<const Regex> regex_;
};

/// Istio's HTTPRewrite, compiled: what a Forward route changes in the request it sends.
struct RewriteSpec {
  /// Replaces the part of the path that the matching block's prefix matched — a block with no
  /// uri condition counts as prefix "/", as Istio compiles it — or the whole path after an
  /// exact or regex uri match. The query string is kept. "" = keep the path.
  std::string uri;
  std::optional<RegexRewrite> uri_regex;  // instead of `uri`: path → substituted path
  /// Replaces the Host header (rewrite.authority, else a Host set by the route's request
  /// headers). "" = keep.
  std::string authority;
  bool operator==(const RewriteSpec&) const = default;
};

/// Istio's HTTPFaultInjection, compiled. Probabilities are in parts per million (Envoy's
/// FractionalPercent, MILLION): Istio's percentage × 10'000. A fault that can never fire
/// (percentage unset or 0, as in Istio) compiles to zeros. Delay and abort are drawn
/// independently; with both, the request is delayed, then aborted.
struct FaultSpec {
  uint64_t delay_ms = 0;           // 0 = no delay
  uint32_t delay_per_million = 0;  // 1'000'000 = every request
  uint32_t abort_status = 0;       // 0 = no abort
  uint32_t abort_per_million = 0;
  bool operator==(const FaultSpec&) const = default;
};

struct RedirectSpec {
  std::string uri;        // replaces the path (and query); "" = keep
  std::string authority;  // "" = keep
  std::string scheme;     // "" = keep
  uint32_t port = 0;      // 0 = keep
  uint32_t code = 301;
  bool operator==(const RedirectSpec&) const = default;
};

struct DirectResponseSpec {
  uint32_t status = 200;
  std::string body;
  bool operator==(const DirectResponseSpec&) const = default;
};

/// Istio's HTTPRetry, compiled to Envoy's retry policy. A try is retried when its failure is
/// one of `retry_on` and the request can be replayed: its body was small enough to keep
/// (RetrySpec::kMaxReplayBody) and no byte of the response reached the client. Retries wait
/// Envoy's backoff (25 ms base, exponential, jittered, at most 250 ms), prefer another
/// endpoint than the ones tried, and stay within the cluster's retry budget: no more retries
/// in flight than max(3, 20 % of the requests in flight) and max_retries.
struct RetrySpec {
  enum On : uint32_t {
    k5xx = 1 << 0,             // any 5xx response, connect failure, reset or per-try timeout
    kGatewayError = 1 << 1,    // 502, 503, 504, connect failure, reset, per-try timeout
    kConnectFailure = 1 << 2,  // refused, unreachable, connect timeout
    kReset = 1 << 3,           // the connection closed or reset before a response head
    kRetriable4xx = 1 << 4,    // 409
    kStatusCodes = 1 << 5,     // a status in `status_codes`
  };
  static constexpr size_t kMaxReplayBody = 64 * 1024;
  uint32_t attempts = 0;            // retries after the first try; 0 = never retried
  uint64_t per_try_timeout_ms = 0;  // 0 = only the route's timeout
  uint32_t on = 0;                  // of On
  std::vector<uint32_t> status_codes;
  bool operator==(const RetrySpec&) const = default;
};

/// Istio's mirror: a copy of each request (of mirror_percentage of them) sent to another
/// cluster, fire and forget: its answer is thrown away and it never slows or fails the
/// request it copies. The copy's Host gets a "-shadow" suffix.
struct MirrorSpec {
  std::string cluster;  // "" = no mirror
  uint32_t per_million = 1'000'000;
  bool operator==(const MirrorSpec&) const = default;
};

/// Istio's CorsPolicy (Envoy's CORS filter): a preflight (OPTIONS with Origin and
/// Access-Control-Request-Method) from an allowed origin is answered by the proxy; other
/// requests from an allowed origin get Access-Control-Allow-Origin (and -Credentials,
/// -Expose-Headers) on their response. Origins that are not allowed get no CORS headers.
struct CorsSpec {
  bool enabled = false;
  std::vector<StringMatcher> allow_origins;
  std::string allow_methods;   // "GET, POST" as sent; "" = none
  std::string allow_headers;   // idem
  std::string expose_headers;  // idem
  std::string max_age;         // seconds, as sent; "" = none
  bool allow_credentials = false;
  bool operator==(const CorsSpec&) const = default;
};

/// A local rate limit (Envoy's local_ratelimit), compiled: the bucket its requests spend
/// from, made by the control plane and kept across snapshots while the key and the numbers
/// stay the same, so a push does not refill it. A request that finds the bucket empty is
/// answered 429 "local_rate_limited" (response flag RL) with x-ratelimit-limit,
/// -remaining and -reset headers.
struct RateLimitSpec {
  /// "route:NS/VS/http[N]", "workload:NS/INSTANCE" or "gateway:NS/NAME": one bucket per key
  /// for the whole process. "" (no bucket): no limit.
  std::string key;
  std::shared_ptr<TokenBucket> bucket;
  bool enabled() const { return bucket != nullptr; }
  bool operator==(const RateLimitSpec&) const = default;
};

struct RouteSpec {
  enum class Action { Forward, Redirect, DirectResponse };
  std::string name;  // "VS_NAMESPACE/VS_NAME/http[INDEX]" (or the route's own name)
  std::vector<RouteMatchSpec> matches;  // OR of the blocks; empty matches every request
  Action action = Action::Forward;
  std::vector<WeightedCluster> clusters;  // Forward: weights sum to 100 (one cluster: 100)
  RedirectSpec redirect;
  DirectResponseSpec direct_response;
  uint64_t timeout_ms = 0;  // request sent → response head; 0 = the cluster's
  // Forward routes only:
  HeaderOpsSpec request_headers;   // the route's own, applied before its destination's
  HeaderOpsSpec response_headers;  // idem, on the response sent downstream
  RewriteSpec rewrite;
  FaultSpec fault;
  RetrySpec retry;
  MirrorSpec mirror;
  CorsSpec cors;
  RateLimitSpec rate_limit = {};  // any action: checked once the route is chosen
  bool operator==(const RouteSpec&) const = default;
};

/// A set of domains and the routes for requests whose Host matches one of them. Domains:
/// "example.com", "*.example.com", "example.*" or "*"; compared without the port and
/// without regard to case. The most specific domain wins (exact, then the longest suffix
/// wildcard, then the longest prefix wildcard, then "*"), as in Envoy.
/// One match block's cheap pre-check, kept apart from the routes so that a scan of a long
/// table reads 32 bytes per block, not the whole RouteSpec (a hundred routes of those do not
/// fit in a core's L1 cache). It can only tell that a block cannot match: its path is not the
/// right length or does not end as the block's exact or prefix value does, or its first exact
/// header condition's value differs in length or end. A block that passes is checked in full.
struct MatchPrefilter {
  static constexpr uint32_t kNoBlock = UINT32_MAX;  // the route has no match block
  static constexpr size_t kMaxHeaderSlots = 16;
  uint32_t route = 0;  // index in VirtualHostSpec::routes
  uint32_t block = 0;  // index in that route's matches, or kNoBlock
  uint16_t path_len = 0;
  uint8_t path_kind = 0;    // 0: no pre-check, 1: exact, 2: prefix (case-sensitive both)
  uint8_t header_kind = 0;  // 0: no pre-check, 1: exact value of header_names[header_slot]
  uint16_t header_slot = 0;
  uint16_t header_len = 0;
  uint64_t path_tail = 0;  // the last min(8, path_len) bytes of the path value
  uint64_t header_tail = 0;
  bool operator==(const MatchPrefilter&) const = default;
};

/// The last min(8, len) bytes of s[0, len) as a number (s.size() >= len).
inline uint64_t tail_bytes(std::string_view s, size_t len) {
  uint64_t v = 0;
  size_t n = len < 8 ? len : 8;
  std::char_traits<char>::copy(reinterpret_cast<char*>(&v), s.data() + len - n, n);
  return v;
}

struct VirtualHostSpec {
  std::string name;
  std::vector<std::string> domains;  // lower case
  std::vector<RouteSpec> routes;     // first match wins
  /// Built by build_prefilter() once the routes are final (the compiler does, for every
  /// table); empty: the router checks every block in full.
  std::vector<MatchPrefilter> prefilter;
  std::vector<std::string> header_names;  // of the prefilter's header checks, lower case
  RateLimitSpec rate_limit = {};          // a gateway's: every request this virtual host serves
  void build_prefilter();
  bool operator==(const VirtualHostSpec&) const = default;
};

struct RouteTableSpec {
  std::string name;
  std::vector<VirtualHostSpec> virtual_hosts;
  /// A sidecar's outbound table: a virtual host per service port, so the Host header's port
  /// is kept: "reviews:9080" matches only a domain "reviews:9080", "reviews" only "reviews"
  /// (port 80), anything else only "*".
  bool strict_port = false;
  bool operator==(const RouteTableSpec&) const = default;
};

// ---------------------------------------------------------------------------------------
// Listeners

struct HttpListenerOptions {
  http::ParserLimits limits;            // head 60 KiB, 100 headers, body unlimited
  uint64_t header_timeout_ms = 10'000;  // first byte of a request → end of its head (408)
  uint64_t idle_timeout_ms = 60'000;    // keep-alive connection with no request; body stalls
  bool operator==(const HttpListenerOptions& o) const {
    return limits.max_head_bytes == o.limits.max_head_bytes &&
           limits.max_headers == o.limits.max_headers &&
           limits.max_body_bytes == o.limits.max_body_bytes &&
           header_timeout_ms == o.header_timeout_ms && idle_timeout_ms == o.idle_timeout_ms;
  }
};

/// One destination of an L4 route (Envoy's TcpProxy weighted cluster).
struct L4ClusterWeight {
  std::string cluster;
  uint32_t weight = 100;
  bool operator==(const L4ClusterWeight&) const = default;
};

/// Istio's TCPRoute or TLSRoute, compiled for one listener. The compiler has already applied
/// the conditions a gateway knows before any byte arrives (port, gateways, source labels: a
/// listener is one port of known gateways), so only the SNI is left to match at run time.
struct L4RouteSpec {
  std::string name;  // "NS/VS_NAME/tcp[INDEX]" or "NS/VS_NAME/tls[INDEX]"
  /// SNI patterns, lower case: "name", "*.suffix", or "*" (any ClientHello, with or without a
  /// server name). Empty: every connection (a TCP listener's route).
  std::vector<std::string> sni_hosts;
  std::vector<L4ClusterWeight> clusters;  // picked per connection by weight (they sum to 100)
  /// A gateway tls server that terminates TLS (Istio's SIMPLE, MUTUAL… on protocol tls):
  /// the connection's TLS ends here with this context and the plain stream goes to the
  /// cluster. Null: the ClientHello and everything after it pass through.
  tls::TlsContextConstPtr terminate = nullptr;
  bool operator==(const L4RouteSpec&) const = default;
};

/// A gateway server that terminates TLS (Istio's ServerTLSSettings SIMPLE, MUTUAL,
/// OPTIONAL_MUTUAL or ISTIO_MUTUAL), compiled: the context with its certificate, key, client
/// verification, versions and ciphers, and the hosts whose ClientHellos it answers.
struct TlsServerSpec {
  std::string name;  // "NS/GATEWAY/servers[INDEX]", for logs
  /// SNI patterns, lower case: "name", "*.suffix" or "*" (any ClientHello), ranked as
  /// L4RouteSpec::sni_hosts are.
  std::vector<std::string> sni_hosts;
  tls::TlsContextConstPtr context;
  /// Http: the route table of this server's hosts alone (Istio's per-server https routes),
  /// so that a request cannot reach a host of another server on the port with a Host header
  /// that differs from its SNI.
  std::string route_table;
  bool operator==(const TlsServerSpec&) const = default;
};

struct ListenerSpec {
  enum class Protocol { Http, Tcp };
  std::string name;
  loop::Address address;  // a concrete port by the time a worker sees it (never 0)
  Protocol protocol = Protocol::Http;
  std::string route_table;  // Http: the route table serving it
  /// Tcp: where a connection goes. Without tls_inspector, the first route. With it, the route
  /// whose sni_hosts match the ClientHello most specifically (an exact name, then the longest
  /// "*.suffix", then "*", as Envoy ranks server_names); the compiler never gives two routes
  /// the same pattern.
  std::vector<L4RouteSpec> l4_routes;
  std::string cluster;  // Tcp without l4_routes (`meshbox proxy --tcp`): every connection
  /// Tcp: read the ClientHello before routing, without terminating TLS (Envoy's tls_inspector),
  /// then pass it and everything after it through. A connection that is not TLS, whose
  /// ClientHello is malformed or over 16 KiB, that no route matches, or that has not sent a
  /// whole ClientHello after tls_inspect_timeout_ms is reset.
  bool tls_inspector = false;
  /// As long as an HTTP listener's header timeout: a client has as long for its ClientHello as
  /// for a request head (Envoy's listener_filters_timeout is 15 s).
  uint64_t tls_inspect_timeout_ms = 10'000;
  HttpListenerOptions http;
  uint64_t tcp_idle_timeout_ms = 3'600'000;  // Envoy's TCP proxy default: 1 h
  /// The socket is bound inside this network namespace (/run/netns/NAME; "" = meshbox's own):
  /// a captured workload's sidecar listeners, where its iptables REDIRECT rules send its
  /// traffic. Two listeners in different namespaces may share an address.
  std::string netns;
  /// A captured workload's outbound listener (Istio's virtual outbound listener): a
  /// connection whose original destination is one of `original_dst_routes` (a service's
  /// virtual IP and one of its tcp ports) is tunnelled to that cluster at once; any other is
  /// HTTP if its first bytes are, else passed through to its original destination when
  /// `tcp_passthrough` (outbound_traffic_policy allow_any), or reset.
  bool capture_outbound = false;
  /// Mesh mTLS (peer_authentication) on an inbound sidecar listener: Permissive takes TLS and
  /// plain text, told apart by the first bytes; Strict refuses plain text; Disable (or no
  /// mesh_server) is plain only. mesh_server: the workload's certificate, the mesh root,
  /// client certificates required, TLS 1.3.
  enum class MeshTls { Disable, Permissive, Strict };
  MeshTls mesh_tls = MeshTls::Disable;
  tls::TlsContextConstPtr mesh_server;
  /// The identity this listener's requests carry to mesh endpoints (an outbound sidecar's
  /// workload, a gateway's own): null = plain text to every endpoint.
  tls::TlsContextConstPtr mesh_client;
  /// Gateway TLS termination (Http listeners): every connection must start with a TLS
  /// ClientHello; the server whose sni_hosts match its SNI most specifically answers (an
  /// exact name, then the longest "*.suffix", then "*"), else the first one, and its route
  /// table serves the requests. Not TLS, a malformed ClientHello, or none whole after
  /// tls_inspect_timeout_ms: the connection is reset. Empty: plain text.
  std::vector<TlsServerSpec> tls_servers;
  bool tcp_passthrough = false;
  std::vector<OriginalDstRoute> original_dst_routes;
  /// Http: every request (a workload's limit, on its inbound sidecar listener).
  RateLimitSpec rate_limit = {};
  /// Http: Istio's authorization policies for the workload (an inbound sidecar) or gateway
  /// behind this listener, checked on every request before it is routed (plane/data/authz.h).
  AuthzSpec authz = {};
  /// Http: Istio's request_authentication for the workload or gateway behind this listener:
  /// the JWTs checked on every request before authorization (plane/data/jwt_authn.h).
  RequestAuthnSpec jwt = {};
  /// An inbound sidecar's own SPIFFE ID ("spiffe://…"), for the x-forwarded-client-cert it
  /// sets on requests that came over mesh mTLS (By=). "" = none.
  std::string spiffe_id = {};
  /// Telemetry: which side of a call this listener reports as (Istio's `reporter` label:
  /// source for outbound sidecars and gateways, destination for inbound sidecars; None for
  /// a plain proxy) and the workload it belongs to (a gateway's own name and namespace).
  enum class Reporter { None, Source, Destination };
  Reporter reporter = Reporter::None;
  PeerMetadata self = {};
  /// Istio's standard metrics for this listener's requests (mesh enable_metrics).
  bool metrics = true;
  /// Where and how this listener's requests (tcp: connections) are logged
  /// (plane/data/access_log.h); null = not logged. Listeners that log alike share one spec.
  config::AccessLogSpecPtr access_log = {};
  /// Http: distributed tracing of this listener's requests; null = off (trace headers are
  /// passed through untouched).
  TracingSpecPtr tracing = {};
  bool operator==(const ListenerSpec&) const = default;
};

// ---------------------------------------------------------------------------------------

struct Snapshot {
  uint64_t version = 0;  // rises with every push
  std::vector<ListenerSpec> listeners;
  std::vector<RouteTableSpec> route_tables;
  std::vector<ClusterSpec> clusters;

  const ClusterSpec* find_cluster(std::string_view name) const;
  const RouteTableSpec* find_route_table(std::string_view name) const;
  /// Same content, whatever the versions.
  bool same_content(const Snapshot& o) const {
    return listeners == o.listeners && route_tables == o.route_tables && clusters == o.clusters;
  }
};

using SnapshotConstPtr = std::shared_ptr<const Snapshot>;

/// The latest snapshot, in one slot (latest wins: a slow worker skips versions instead of
/// building a backlog, like tokio's watch channel). The control thread publishes, then wakes
/// the workers; each reads latest() on its own loop. Thread-safe; the mutex is held only to
/// copy a pointer, and only when a snapshot is applied, never per request.
class SnapshotPublisher {
 public:
  void publish(SnapshotConstPtr snapshot) {
    std::lock_guard lock(mu_);
    latest_ = std::move(snapshot);
  }
  SnapshotConstPtr latest() const {
    std::lock_guard lock(mu_);
    return latest_;
  }

 private:
  mutable std::mutex mu_;
  SnapshotConstPtr latest_;
};

}  // namespace meshbox
