// Snapshot: everything a proxy worker needs to serve traffic, built by the control plane's
// compiler (plane/control/compiler.h) from the mesh config and the registry, or by
// `meshbox proxy` from its flags, and handed to every worker. Immutable after publish: shared
// as shared_ptr<const Snapshot> between threads. A worker pins the snapshot it has when a
// request's head arrives, so a new snapshot never changes a request in flight.
//
// Names follow Envoy's: a listener (bound address) serves HTTP through a route table (virtual
// hosts → routes → weighted clusters), or TCP straight to one cluster; a cluster is a set of
// endpoints with connection settings. Cluster names are Istio's
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
#include "core/http/parser.h"
#include "core/loop/address.h"

namespace meshbox {

// ---------------------------------------------------------------------------------------
// Clusters

enum class LbPolicy { RoundRobin, Random, LeastRequest };

struct EndpointSpec {
  loop::Address address;
  uint32_t weight = 1;
  std::string locality;  // "region/zone/subzone"
  bool operator==(const EndpointSpec&) const = default;
};

/// An upstream: a set of endpoints and how to talk to them.
struct ClusterSpec {
  std::string name;
  std::vector<EndpointSpec> endpoints;  // healthy ones only (the compiler drops the rest)
  LbPolicy lb_policy = LbPolicy::RoundRobin;
  uint64_t connect_timeout_ms = 5'000;
  uint64_t response_timeout_ms = 15'000;  // request sent → response head (Envoy's route default)
  uint64_t idle_timeout_ms = 60'000;  // a pooled connection unused, or a body stalled, this long
  uint32_t max_idle_per_endpoint = 1'024;  // keep-alive connections kept per endpoint per worker
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
  bool matches(std::string_view text) const;

  Kind kind() const { return kind_; }
  const std::string& value() const { return value_; }
  bool ignore_case() const { return ignore_case_; }
  bool operator==(const StringMatcher& o) const {
    return kind_ == o.kind_ && value_ == o.value_ && ignore_case_ == o.ignore_case_;
  }

 private:
  struct Regex;
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
  bool operator==(const RouteSpec&) const = default;
};

/// A set of domains and the routes for requests whose Host matches one of them. Domains:
/// "example.com", "*.example.com", "example.*" or "*"; compared without the port and
/// without regard to case. The most specific domain wins (exact, then the longest suffix
/// wildcard, then the longest prefix wildcard, then "*"), as in Envoy.
struct VirtualHostSpec {
  std::string name;
  std::vector<std::string> domains;  // lower case
  std::vector<RouteSpec> routes;     // first match wins
  bool operator==(const VirtualHostSpec&) const = default;
};

struct RouteTableSpec {
  std::string name;
  std::vector<VirtualHostSpec> virtual_hosts;
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

struct ListenerSpec {
  enum class Protocol { Http, Tcp };
  std::string name;
  loop::Address address;  // a concrete port by the time a worker sees it (never 0)
  Protocol protocol = Protocol::Http;
  std::string route_table;  // Http: the route table serving it
  std::string cluster;      // Tcp: where its connections go
  HttpListenerOptions http;
  uint64_t tcp_idle_timeout_ms = 3'600'000;  // Envoy's TCP proxy default: 1 h
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
