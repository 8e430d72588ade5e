#include "plane/control/registry.h"

#include <algorithm>
#include <set>
#include <utility>

#include <fmt/core.h>

#include "core/base/log.h"
#include "core/http/parser.h"
#include "core/loop/address.h"
#include "core/loop/netns.h"
#include "core/loop/tcp_conn.h"
#include "plane/config/host_index.h"

namespace meshbox::control {

namespace {

constexpr const char* kLog = "registry";

// Defaults for what config::HealthCheck leaves unset (docs/config.md, workload.health).
constexpr uint64_t kDefaultIntervalMs = 5000;
constexpr uint64_t kDefaultTimeoutMs = 1000;
constexpr uint32_t kDefaultHealthyThreshold = 1;
constexpr uint32_t kDefaultUnhealthyThreshold = 3;
// A process waiting for its first passed check is probed at least this often, so that it is
// in service soon after it listens, whatever its interval (Kubernetes' startup probe).
constexpr uint64_t kStartupIntervalMs = 200;

/// `ip` as a socket address, without ever resolving a name (getaddrinfo blocks, and names
/// are not probed anyway).
std::optional<loop::Address> ip_address(const std::string& ip, uint32_t port) {
  if (port == 0 || port > 65535) return std::nullopt;
  return dns::parse_ip(ip, static_cast<uint16_t>(port));
}

/// A service-entry endpoint whose address is a name for the registry to resolve.
bool needs_dns(const Endpoint& ep) {
  return (ep.resolution == config::Resolution::Dns ||
          ep.resolution == config::Resolution::DnsRoundRobin) &&
         !ep.address.empty() && !dns::is_ip(ep.address);
}

bool same_check(const config::HealthCheck& a, const config::HealthCheck& b) {
  return a.http == b.http && a.tcp == b.tcp && a.interval == b.interval && a.timeout == b.timeout &&
         a.healthy_threshold == b.healthy_threshold &&
         a.unhealthy_threshold == b.unhealthy_threshold;
}

bool same_check(const std::optional<config::HealthCheck>& a,
                const std::optional<config::HealthCheck>& b) {
  if (a.has_value() != b.has_value()) return false;
  return !a || same_check(*a, *b);
}

bool same_endpoint(const Endpoint& a, const Endpoint& b) {
  return a.host == b.host && a.ns == b.ns && a.address == b.address && a.port == b.port &&
         a.named_ports == b.named_ports && a.labels == b.labels && a.locality == b.locality &&
         a.weight == b.weight && a.source == b.source && a.healthy == b.healthy &&
         a.resolution == b.resolution && a.hostname == b.hostname &&
         a.wait_for_first_check == b.wait_for_first_check && a.netns == b.netns &&
         a.instance == b.instance && a.service_account == b.service_account &&
         a.sidecar_inbound_port == b.sidecar_inbound_port &&
         a.sidecar_outbound_port == b.sidecar_outbound_port && a.node == b.node &&
         a.sidecar_address == b.sidecar_address && same_check(a.health_check, b.health_check);
}

bool same_endpoints(const std::vector<Endpoint>& a, const std::vector<Endpoint>& b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end(), same_endpoint);
}

/// Sorts by key() and drops later endpoints with a key already seen (the first in the
/// caller's order wins), computing each key once.
std::vector<Endpoint> sorted_unique(std::vector<Endpoint> in) {
  std::vector<std::pair<std::string, Endpoint>> keyed;
  keyed.reserve(in.size());
  for (auto& ep : in) {
    std::string key = ep.key();
    keyed.emplace_back(std::move(key), std::move(ep));
  }
  std::stable_sort(keyed.begin(), keyed.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<Endpoint> out;
  out.reserve(keyed.size());
  for (size_t i = 0; i < keyed.size(); ++i) {
    if (i > 0 && keyed[i].first == keyed[i - 1].first) continue;
    out.push_back(std::move(keyed[i].second));
  }
  return out;
}

Status check_health_check(const config::HealthCheck& h) {
  if (!h.http.empty() && h.tcp)
    return make_error(Code::InvalidArgument, "health check: http or tcp, not both");
  if (!h.http.empty() && h.http[0] != '/')
    return make_error(Code::InvalidArgument,
                      "health check: the http path must start with '/', got " + h.http);
  if (h.interval && h.interval->count() <= 0)
    return make_error(Code::InvalidArgument, "health check: interval must be at least 1ms");
  if (h.timeout && h.timeout->count() <= 0)
    return make_error(Code::InvalidArgument, "health check: timeout must be at least 1ms");
  return Status::ok();
}

}  // namespace

// ---------------------------------------------------------------------------------------
// Endpoint

uint32_t Endpoint::port_for(const config::Port& service_port) const {
  if (auto it = named_ports.find(service_port.name); it != named_ports.end()) return it->second;
  if (port != 0) return port;
  return service_port.target_port != 0 ? service_port.target_port : service_port.number;
}

std::string Endpoint::key() const {
  return fmt::format("{} {}:{}", host, address, port);
}

Endpoint workload_endpoint(const config::HostIndex& index, const config::Workload& w, uint32_t port,
                           std::string_view instance) {
  Endpoint ep;
  // A name without dots resolves to NAME.NS.svc.SUFFIX whether or not the service exists
  // (validation reports a missing one), which is the host the compiler gives the service.
  ep.host = index.resolve(w.service, w.ns);
  ep.ns = w.ns;
  ep.address = w.address;
  ep.port = port;
  ep.labels = w.labels;
  // decode adds app = SERVICE when absent; do it here too for configs built in code.
  if (!w.service.empty()) ep.labels.emplace("app", w.service);
  ep.locality = w.locality;
  ep.weight = w.weight == 0 ? 1 : w.weight;
  ep.service_account = w.service_account.empty() ? "default" : w.service_account;
  ep.source = fmt::format("workload/{}/{}", w.ns, instance);
  ep.health_check = w.health;
  return ep;
}

Endpoint instance_endpoint(const config::HostIndex& index, const config::Workload& w, uint32_t port,
                           std::string_view instance, uint32_t sidecar_inbound_port,
                           uint32_t sidecar_outbound_port, std::string_view netns,
                           std::string_view netns_ip) {
  Endpoint ep = workload_endpoint(index, w, port, instance);
  ep.instance = std::string(instance);
  ep.sidecar_inbound_port = sidecar_inbound_port;
  ep.sidecar_outbound_port = sidecar_outbound_port;
  // An app told to listen everywhere is reached on loopback (meshbox runs on its host).
  if (ep.address.empty() || ep.address == "0.0.0.0") ep.address = "127.0.0.1";
  if (ep.address == "::") ep.address = "::1";
  if (!netns.empty()) {
    ep.netns = std::string(netns);
    ep.address = std::string(netns_ip);
  }
  ep.wait_for_first_check = true;
  return ep;
}

std::vector<Endpoint> endpoints_from_config(const config::Config& config) {
  config::HostIndex index(config);
  std::vector<Endpoint> out;

  for (const auto& w : config.workloads) {
    // A workload with a command is processes the supervisor runs: their endpoints come and
    // go with them (set_instance_endpoints).
    if (w.port == 0 || !w.command.empty()) continue;
    out.push_back(workload_endpoint(index, w, w.port, w.name));
  }

  for (const auto& se : config.service_entries) {
    std::string source = fmt::format("service_entry/{}/{}", se.ns, se.name);
    bool dns = se.resolution == config::Resolution::Dns ||
               se.resolution == config::Resolution::DnsRoundRobin;
    for (const auto& h : se.hosts) {
      if (h.empty()) continue;
      std::string host = index.resolve(h, se.ns);
      if (se.endpoints.empty()) {
        // resolution none forwards to the address the client asked for, and static without
        // endpoints has nothing to send to: only dns entries name their own endpoints. A
        // wildcard cannot be resolved (validation rejects it).
        if (!dns || host.find('*') != std::string::npos) continue;
        Endpoint ep;
        ep.host = host;
        ep.ns = se.ns;
        ep.address = host;  // resolved by the Registry, on the control loop
        ep.source = source;
        ep.resolution = se.resolution;
        out.push_back(std::move(ep));
        continue;
      }
      // static (or none) endpoints are IPs; dns endpoints may be names the Registry resolves.
      for (const auto& e : se.endpoints) {
        Endpoint ep;
        ep.host = host;
        ep.ns = se.ns;
        ep.address = e.address;
        ep.named_ports = e.ports;
        ep.labels = e.labels;
        ep.locality = e.locality;
        ep.weight = e.weight == 0 ? 1 : e.weight;
        ep.source = source;
        ep.resolution = se.resolution;
        out.push_back(std::move(ep));
      }
    }
  }
  return sorted_unique(std::move(out));
}

// ---------------------------------------------------------------------------------------
// Prober: the active health check of one endpoint. One probe at a time: a probe starts on
// the timer, runs until it passes, fails or times out, and the next starts `interval` after
// the previous one started (at once if the probe took longer). One timer serves as both the
// probe's timeout and the wait for the next probe. Destroying the Prober drops the
// connection (TcpConn delivers no callback after close) and the timer, so it is safe at any
// point of a probe.

class Registry::Prober final : public loop::TcpConnCallbacks, public http::ParserCallbacks {
 public:
  /// `wait_for_first_check`: unhealthy (and left out: Registry::rebuild) until a check passes.
  /// `netns`: probe from inside this network namespace (a captured instance's app, on the
  /// namespace's loopback); "" = meshbox's own.
  Prober(Registry& registry, std::string key, const loop::Address& to,
         const config::HealthCheck& check, bool wait_for_first_check, std::string netns = {})
      : registry_(registry),
        key_(std::move(key)),
        to_(to),
        netns_(std::move(netns)),
        check_(check),
        interval_ms_(check.interval ? static_cast<uint64_t>(check.interval->count())
                                    : kDefaultIntervalMs),
        timeout_ms_(check.timeout ? static_cast<uint64_t>(check.timeout->count())
                                  : kDefaultTimeoutMs),
        healthy_threshold_(
            std::max<uint32_t>(1, check.healthy_threshold.value_or(kDefaultHealthyThreshold))),
        unhealthy_threshold_(
            std::max<uint32_t>(1, check.unhealthy_threshold.value_or(kDefaultUnhealthyThreshold))),
        timer_(registry.loop_, [this] { on_timer(); }),
        waits_(wait_for_first_check),
        healthy_(!wait_for_first_check),
        ready_(!wait_for_first_check) {
    // A zero interval would probe in a tight loop; validation rejects it, this guards.
    interval_ms_ = std::max<uint64_t>(interval_ms_, 1);
    timeout_ms_ = std::max<uint64_t>(timeout_ms_, 1);
    // Validation rejects a check with neither http nor tcp; treat one as a TCP check.
    http_ = !check.http.empty();
    if (http_) {
      request_ = fmt::format(
          "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: meshbox-health-check/1\r\n"
          "Connection: close\r\n\r\n",
          check.http, to_.to_string());
    }
    // First probe on the next loop iteration: "right away", but never from inside the
    // Registry call that created this prober.
    timer_.start(0);
  }

  const config::HealthCheck& check() const { return check_; }
  bool healthy() const { return healthy_; }
  bool waits_for_first_check() const { return waits_; }
  /// False until the first passed check, for an endpoint that waits for it.
  bool ready() const { return ready_; }

 private:
  enum class Phase {
    Idle,        // between probes: the timer is the next probe
    Connecting,  // connect in flight: the timer is the probe's timeout
    Reading,     // HTTP request sent, waiting for the response head; same timer
  };

  void on_timer() {
    if (phase_ == Phase::Idle) return start_probe();
    done(false,
         fmt::format("no {} within {} ms",
                     phase_ == Phase::Connecting ? "connection" : "response head", timeout_ms_));
  }

  void start_probe() {
    phase_ = Phase::Connecting;
    started_ms_ = registry_.loop_.now_ms();
    status_ = 0;
    timer_.start(timeout_ms_);
    conn_ = loop::TcpConn::create(registry_.loop_);
    conn_->set_callbacks(this);
    Status s = Status::ok();
    if (!netns_.empty()) {
      auto fd = loop::tcp_socket_in_netns(netns_, to_.family());
      s = fd ? conn_->adopt(*fd) : fd.error();
    }
    if (s.is_ok()) s = conn_->connect(to_);
    if (!s.is_ok()) done(false, s.message());
  }

  void on_connected() override {
    if (!http_) return done(true, "");
    phase_ = Phase::Reading;
    parser_ = std::make_unique<http::Parser>(http::Parser::Kind::Response, *this);
    conn_->read_start();
    conn_->write(request_);
  }

  void on_data(const char* data, size_t len) override {
    if (phase_ != Phase::Reading) return;
    size_t off = 0;
    while (off < len) {
      auto r = parser_->feed(data + off, len - off);
      if (status_ != 0) {
        // Kubernetes' rule: 200-399 passes.
        bool pass = status_ >= 200 && status_ < 400;
        return done(pass, pass ? "" : fmt::format("HTTP status {}", status_));
      }
      switch (r.state) {
        case http::Parser::State::Ok:
          return;  // all consumed: the head is still arriving
        case http::Parser::State::Paused:
          // An interim (1xx) response ended: the real one follows.
          off += r.consumed;
          parser_->resume();
          break;
        case http::Parser::State::Error:
          return done(false, fmt::format("bad HTTP response: {}", parser_->error_reason()));
        case http::Parser::State::Upgrade:
        case http::Parser::State::Stopped:
          return done(false, "unexpected HTTP response");
      }
    }
  }

  void on_response_head(http::ResponseHead& head) override {
    // 100 Continue and 103 Early Hints come before the response; 101 would be the end of HTTP.
    if (head.status >= 100 && head.status < 200 && head.status != 101) return;
    status_ = head.status;
    // Decided: stop here, and let on_data finish the probe once feed() has returned (the
    // parser must not be destroyed inside its own callback).
    parser_->stop();
  }
  void on_body(const char*, size_t) override {}
  void on_message_complete() override {}

  void on_eof() override { done(false, "connection closed before a response head"); }

  void on_error(int err) override {
    done(false, fmt::format("{}: {}", phase_ == Phase::Connecting ? "connect" : "read",
                            loop::uv_error(err)));
  }

  /// Ends the probe in flight, counts it, and schedules the next one. Called from the timer
  /// or a TcpConn callback, never from a parser callback.
  void done(bool pass, const std::string& why) {
    conn_.reset();  // allowed inside a TcpConn callback: no callback follows a close
    parser_.reset();
    phase_ = Phase::Idle;
    if (pass) {
      failures_ = 0;
      if (passes_ < healthy_threshold_) ++passes_;
      if (!healthy_ && passes_ >= healthy_threshold_) {
        healthy_ = true;
        if (!ready_) {
          ready_ = true;
          MB_INFO(kLog, "endpoint {} passed its health check: in service", key_);
        } else {
          MB_INFO(kLog, "endpoint {} is healthy again after {} passed check(s)", key_, passes_);
        }
        registry_.set_health(key_, true);
      }
    } else {
      passes_ = 0;
      if (failures_ < unhealthy_threshold_) ++failures_;
      if (healthy_ && failures_ >= unhealthy_threshold_) {
        healthy_ = false;
        MB_WARN(kLog, "endpoint {} is unhealthy after {} failed check(s): {}", key_, failures_,
                why);
        registry_.set_health(key_, false);
      } else {
        MB_DEBUG(kLog, "health check of {} failed: {}", key_, why);
      }
    }
    uint64_t next =
        started_ms_ + (ready_ ? interval_ms_ : std::min(interval_ms_, kStartupIntervalMs));
    uint64_t now = registry_.loop_.now_ms();
    // The timer is still armed for this probe's (earlier) timeout; stop it first so libuv
    // wakes once at the next probe rather than at the stale timeout too.
    timer_.stop();
    timer_.start(next > now ? next - now : 0);
  }

  Registry& registry_;
  std::string key_;
  loop::Address to_;
  std::string netns_;
  config::HealthCheck check_;
  uint64_t interval_ms_;
  uint64_t timeout_ms_;
  uint32_t healthy_threshold_;
  uint32_t unhealthy_threshold_;
  bool http_ = false;
  std::string request_;
  loop::Timer timer_;
  loop::TcpConnPtr conn_;
  std::unique_ptr<http::Parser> parser_;  // one per probe: a fresh parser per connection
  Phase phase_ = Phase::Idle;
  uint64_t started_ms_ = 0;
  int status_ = 0;  // final status of the response being read; 0 = none yet
  uint32_t passes_ = 0;
  uint32_t failures_ = 0;
  bool waits_;
  // Endpoints start healthy, so traffic flows before the first check, except those that wait
  // for it: unhealthy and not ready until a check passes.
  bool healthy_;
  bool ready_;
};

// ---------------------------------------------------------------------------------------
// DnsName: one host name of dns / dns_round_robin service entries, looked up at once and
// again whenever its answer expires. One lookup at a time; one timer for the next.
//
// Timing follows what Istio asks of Envoy for DNS clusters (respect_dns_ttl): an answer is
// used for its TTL, clamped to [kDnsMinRefreshMs, kDnsMaxRefreshMs]. The floor (1 s, below
// Envoy's 5 s dns_min_refresh_rate) keeps a TTL of 0 from turning into a query loop while a
// short TTL is still honoured closely; the cap re-checks a name with a day-long TTL every
// 5 minutes. An answer without a TTL (no address, no SOA) is kept kDnsDefaultRefreshMs
// (Envoy's dns_refresh_rate default); a hosts-file name kDnsHostsRefreshMs. A failed lookup
// keeps the last good addresses (as Envoy does) and is retried after 1 s, 2 s, 4 s … up to
// kDnsMaxRetryMs; failures are logged once when they start, then at most once a minute, and
// the recovery once. NXDOMAIN and "no such record" are answers: the name has no address.
class Registry::DnsName {
 public:
  DnsName(Registry& registry, std::string name)
      : registry_(registry), name_(std::move(name)), timer_(registry.loop_, [this] { lookup(); }) {
    timer_.start(0);  // never inside set_config_endpoints
  }

  /// False until the first answer (the endpoint keeps its name meanwhile).
  bool resolved() const { return resolved_; }
  /// Every address of the last good answer: A first, then AAAA.
  const std::vector<std::string>& addresses() const { return addresses_; }
  /// dns_round_robin's one address (Envoy's LOGICAL_DNS uses the first of each answer):
  /// the current one for as long as the answers still hold it, so that a server rotating its
  /// answers does not move the endpoint (and drain its pools) at every refresh; else the
  /// first. Empty when the name has no address.
  const std::string& logical() const { return logical_; }

 private:
  void lookup() {
    query_ =
        registry_.resolver_.resolve(name_, [this](dns::Resolution r) { on_result(std::move(r)); });
  }

  void on_result(dns::Resolution r) {
    // Runs inside the query's callback, which allows destroying it.
    query_.reset();
    uint64_t now = registry_.loop_.now_ms();
    if (!r.status.is_ok()) {
      ++failures_;
      uint64_t retry = std::min<uint64_t>(kDnsMaxRetryMs,
                                          uint64_t{1000} << std::min<uint32_t>(failures_ - 1, 15));
      if (failures_ == 1 || now >= last_failure_log_ms_ + 60'000) {
        last_failure_log_ms_ = now;
        MB_WARN(kLog, "cannot resolve {} ({} failure(s) in a row; {}); retrying in {} ms", name_,
                failures_,
                resolved_ ? fmt::format("keeping {}", describe(addresses_))
                          : std::string("no address yet"),
                retry);
      }
      timer_.start(retry);
      return;
    }
    if (failures_ > 0) MB_INFO(kLog, "resolved {} again after {} failure(s)", name_, failures_);
    failures_ = 0;
    uint64_t refresh = kDnsDefaultRefreshMs;
    if (r.from_hosts) {
      refresh = kDnsHostsRefreshMs;
    } else if (r.ttl_s) {
      refresh = std::clamp<uint64_t>(uint64_t{*r.ttl_s} * 1000, kDnsMinRefreshMs, kDnsMaxRefreshMs);
    }
    // Order aside: a server that rotates its answers changes nothing (but see logical()).
    auto sorted = [](std::vector<std::string> v) {
      std::sort(v.begin(), v.end());
      return v;
    };
    bool changed = !resolved_ || sorted(r.addresses) != sorted(addresses_);
    if (changed) {
      MB_INFO(kLog, "{} is {} ({}, refreshed every {} ms)", name_, describe(r.addresses),
              r.from_hosts ? "hosts file" : "DNS", refresh);
    } else {
      MB_DEBUG(kLog, "{} is still {}; next lookup in {} ms", name_, describe(r.addresses), refresh);
    }
    resolved_ = true;
    addresses_ = std::move(r.addresses);
    if (std::find(addresses_.begin(), addresses_.end(), logical_) == addresses_.end())
      logical_ = addresses_.empty() ? std::string() : addresses_.front();
    timer_.start(refresh);
    // Last: rebuild may be followed by OnChange, but never from here (it is coalesced).
    if (changed) registry_.on_dns_change();
  }

  static std::string describe(const std::vector<std::string>& addresses) {
    if (addresses.empty()) return "without address";
    std::string out;
    for (const auto& a : addresses)
      out += (out.empty() ? "" : ", ") + a;
    return out;
  }

  Registry& registry_;
  std::string name_;
  loop::Timer timer_;
  dns::DnsQueryPtr query_;
  bool resolved_ = false;
  std::vector<std::string> addresses_;
  std::string logical_;
  uint32_t failures_ = 0;
  uint64_t last_failure_log_ms_ = 0;
};

// ---------------------------------------------------------------------------------------
// Registry

Registry::Registry(loop::Loop& loop, OnChange on_change, dns::ResolverOptions dns)
    : loop_(loop),
      on_change_(std::move(on_change)),
      notify_timer_(loop,
                    [this] {
                      change_pending_ = false;
                      if (!on_change_) return;
                      // OnChange may destroy this Registry, and with it on_change_: run a
                      // copy, and touch nothing after it.
                      OnChange cb = on_change_;
                      cb();
                    }),
      resolver_(loop, std::move(dns)) {}

Registry::~Registry() = default;

void Registry::set_config_endpoints(std::vector<Endpoint> endpoints) {
  config_endpoints_ = sorted_unique(std::move(endpoints));
  // Names no endpoint needs any more stop (their lookups are cancelled); new ones start.
  std::map<std::string, std::unique_ptr<DnsName>> names;
  for (const auto& ep : config_endpoints_) {
    if (!needs_dns(ep) || names.count(ep.address)) continue;
    auto old = dns_names_.find(ep.address);
    if (old != dns_names_.end()) {
      names.emplace(ep.address, std::move(old->second));
    } else {
      names.emplace(ep.address, std::make_unique<DnsName>(*this, ep.address));
    }
  }
  dns_names_ = std::move(names);
  if (rebuild()) changed();
}

void Registry::set_instance_endpoints(std::vector<Endpoint> endpoints) {
  instance_endpoints_ = sorted_unique(std::move(endpoints));
  if (rebuild()) changed();
}

void Registry::set_remote_endpoints(std::vector<Endpoint> endpoints) {
  for (auto& ep : endpoints) {
    ep.health_check.reset();  // the owning node checks them; it lists only healthy ones
    ep.wait_for_first_check = false;
  }
  remote_endpoints_ = sorted_unique(std::move(endpoints));
  if (rebuild()) changed();
}

std::vector<Endpoint> Registry::resolved_config_endpoints() const {
  std::vector<Endpoint> out;
  out.reserve(config_endpoints_.size());
  for (const auto& ep : config_endpoints_) {
    auto it = needs_dns(ep) ? dns_names_.find(ep.address) : dns_names_.end();
    if (it == dns_names_.end() || !it->second->resolved()) {
      out.push_back(ep);  // an IP, or a name without an answer yet
      continue;
    }
    const DnsName& name = *it->second;
    auto add = [&](const std::string& ip) {
      Endpoint r = ep;
      r.address = ip;
      r.hostname = ep.address;
      out.push_back(std::move(r));
    };
    if (ep.resolution == config::Resolution::DnsRoundRobin) {
      if (!name.logical().empty()) add(name.logical());
    } else {
      for (const auto& ip : name.addresses())
        add(ip);
    }
  }
  return out;
}

void Registry::on_dns_change() {
  if (rebuild()) changed();
}

Status Registry::register_endpoint(Endpoint endpoint) {
  if (endpoint.host.empty()) return make_error(Code::InvalidArgument, "endpoint: empty host");
  if (endpoint.port == 0 || endpoint.port > 65535)
    return make_error(Code::InvalidArgument,
                      fmt::format("endpoint: port {} is not in 1-65535", endpoint.port));
  if (!ip_address(endpoint.address, endpoint.port))
    return make_error(Code::InvalidArgument,
                      fmt::format("endpoint: address \"{}\" is not an IP", endpoint.address));
  if (endpoint.health_check) MB_TRY(check_health_check(*endpoint.health_check));
  endpoint.source = "api";
  endpoint.healthy = true;
  if (endpoint.weight == 0) endpoint.weight = 1;
  std::string key = endpoint.key();
  auto it = std::lower_bound(api_endpoints_.begin(), api_endpoints_.end(), key,
                             [](const Endpoint& e, const std::string& k) { return e.key() < k; });
  if (it != api_endpoints_.end() && it->key() == key) {
    *it = std::move(endpoint);
  } else {
    api_endpoints_.insert(it, std::move(endpoint));
  }
  if (rebuild()) changed();
  return Status::ok();
}

bool Registry::deregister_endpoint(std::string_view host, std::string_view address, uint32_t port) {
  auto it = std::find_if(api_endpoints_.begin(), api_endpoints_.end(), [&](const Endpoint& e) {
    return e.host == host && e.address == address && e.port == port;
  });
  if (it == api_endpoints_.end()) return false;
  api_endpoints_.erase(it);
  if (rebuild()) changed();
  return true;
}

bool Registry::rebuild() {
  std::vector<Endpoint> merged = resolved_config_endpoints();
  std::set<std::string> keys;
  for (const auto& ep : merged)
    keys.insert(ep.key());
  for (const auto& ep : instance_endpoints_)
    if (keys.insert(ep.key()).second) merged.push_back(ep);
  for (const auto& ep : api_endpoints_)
    if (keys.insert(ep.key()).second) merged.push_back(ep);
  for (const auto& ep : remote_endpoints_)
    if (keys.insert(ep.key()).second) merged.push_back(ep);
  merged = sorted_unique(std::move(merged));

  std::map<std::string, std::unique_ptr<Prober>> probers;
  for (auto& ep : merged) {
    ep.healthy = true;
    if (!ep.health_check) continue;
    // Names (dns entries) and port 0 cannot be connected to: not probed.
    // A captured instance is probed inside its namespace, on the app's own port: the app's
    // health, as a kubelet probes a pod, without the sidecar in between.
    auto to = ip_address(ep.netns.empty() ? ep.address : "127.0.0.1", ep.port);
    if (!to) continue;
    std::string key = ep.key();
    auto old = probers_.find(key);
    if (old != probers_.end() && same_check(old->second->check(), *ep.health_check) &&
        old->second->waits_for_first_check() == ep.wait_for_first_check) {
      ep.healthy = old->second->healthy();
      probers.emplace(std::move(key), std::move(old->second));
    } else {
      auto prober = std::make_unique<Prober>(*this, key, *to, *ep.health_check,
                                             ep.wait_for_first_check, ep.netns);
      ep.healthy = prober->healthy();
      probers.emplace(std::move(key), std::move(prober));
    }
  }
  // Probers not carried over are destroyed here, closing any probe in flight.
  probers_ = std::move(probers);
  // Processes still starting: probed, not listed.
  std::erase_if(merged, [&](const Endpoint& ep) {
    if (!ep.wait_for_first_check) return false;
    auto it = probers_.find(ep.key());
    return it != probers_.end() && !it->second->ready();
  });

  bool diff = !same_endpoints(endpoints_, merged);
  endpoints_ = std::move(merged);
  return diff;
}

void Registry::changed() {
  if (change_pending_) return;
  change_pending_ = true;
  notify_timer_.start(0);
}

void Registry::set_health(const std::string& key, bool healthy) {
  auto it = std::lower_bound(endpoints_.begin(), endpoints_.end(), key,
                             [](const Endpoint& e, const std::string& k) { return e.key() < k; });
  if (it == endpoints_.end() || it->key() != key) {
    // Not listed: a process that just passed its first check joins.
    if (rebuild()) changed();
    return;
  }
  if (it->healthy == healthy) return;
  it->healthy = healthy;
  changed();
}

}  // namespace meshbox::control
