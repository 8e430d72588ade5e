#include "plane/config/validate.h"

#include <arpa/inet.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <limits>
#include <map>
#include <set>
#include <span>

#include <fmt/format.h>
#include <re2/re2.h>

#include "core/tls/cipher_suites.h"
#include "core/tls/jwt.h"
#include "plane/config/access_log_format.h"
#include "plane/config/host_index.h"
#include "plane/config/suggest.h"

namespace meshbox::config {

namespace {

std::string where(const Source& s, std::string_view field) {
  Pos p = s.at(field);
  return fmt::format("{}:{}:{}", s.file, p.line, p.column);
}

std::string q(std::string_view s) {
  return quote_for_message(s);
}

// "a", "b" and "c" — for messages that list what exists.
std::string quoted_list(const std::vector<std::string>& items) {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i)
    out += (i == 0 ? "" : i + 1 == items.size() ? " and " : ", ") + q(items[i]);
  return out;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// True if the key at `path` was written in the file (whether or not its value decoded).
bool written(const Source& s, const std::string& path) {
  return s.fields.count(path) > 0;
}

bool is_ip(std::string_view s) {
  std::string str(s);
  unsigned char buf[16];
  return inet_pton(AF_INET, str.c_str(), buf) == 1 || inet_pton(AF_INET6, str.c_str(), buf) == 1;
}

// "10.0.0.0/8", "10.1.2.3", "2001:db8::/32".
bool is_ip_or_cidr(std::string_view s) {
  size_t slash = s.find('/');
  if (slash == std::string_view::npos) return is_ip(s);
  std::string_view ip = s.substr(0, slash), bits = s.substr(slash + 1);
  if (!is_ip(ip) || bits.empty() || bits.size() > 3) return false;
  int n = 0;
  for (char c : bits) {
    if (c < '0' || c > '9') return false;
    n = n * 10 + (c - '0');
  }
  return n <= (ip.find(':') == std::string_view::npos ? 32 : 128);
}

// Why `host` is not a host name ("reviews", "api.example.com", "*.example.com", "*" when
// allowed, or an IP address), or "".
std::string host_error(std::string_view host, bool allow_star) {
  if (host.empty()) return "a host cannot be empty";
  if (host == "*") return allow_star ? "" : "\"*\" is not allowed here; name the host";
  if (is_ip(host)) return "";
  std::string_view rest = host;
  if (rest.starts_with("*.")) rest.remove_prefix(2);
  if (rest.size() > 253) return "a host name has at most 253 characters";
  size_t start = 0;
  while (start <= rest.size()) {
    size_t dot = rest.find('.', start);
    std::string_view label =
        rest.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
    bool ok = !label.empty() && label.size() <= 63 && label.front() != '-' && label.back() != '-';
    for (char c : label)
      ok = ok && (std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_');
    if (!ok) {
      return fmt::format(
          "expected a host name such as \"reviews\", \"reviews.default.svc.cluster.local\" or "
          "\"*.example.com\" (a wildcard only as the whole first label), got {}",
          q(host));
    }
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  return "";
}

// Envoy's x-envoy-retry-on policies (HTTP and gRPC), as Istio's retry_on takes them.
constexpr std::string_view kRetryOn[] = {
    "5xx",
    "gateway-error",
    "reset",
    "reset-before-request",
    "connect-failure",
    "envoy-ratelimited",
    "retriable-4xx",
    "refused-stream",
    "retriable-status-codes",
    "retriable-headers",
    "http3-post-connect-failure",
    "cancelled",
    "deadline-exceeded",
    "internal",
    "resource-exhausted",
    "unavailable",
};

// Istio's authorization condition keys; the "[…]" ones take a name in the brackets.
constexpr std::string_view kConditionKeys[] = {
    "source.ip",
    "remote.ip",
    "source.namespace",
    "source.principal",
    "request.auth.principal",
    "request.auth.audiences",
    "request.auth.presenter",
    "destination.ip",
    "destination.port",
    "connection.sni",
};
constexpr std::string_view kConditionPrefixes[] = {"request.headers[", "request.auth.claims["};

// The keys of an HTTP route and of a TCP/TLS route (decode.cpp reads these).
constexpr std::string_view kHttpRouteKeys[] = {
    "name",    "match", "route",  "redirect",          "direct_response", "rewrite", "timeout",
    "retries", "fault", "mirror", "mirror_percentage", "cors_policy",     "headers",
};
constexpr std::string_view kL4RouteKeys[] = {"match", "route"};

bool is_http_catch_all(const HttpMatch& m) {
  bool any_uri = !m.uri || (m.uri->kind == StringMatch::Kind::Prefix && m.uri->value == "/") ||
                 (m.uri->kind == StringMatch::Kind::Regex && m.uri->value == ".*");
  return any_uri && !m.scheme && !m.method && !m.authority && m.headers.empty() &&
         m.without_headers.empty() && m.query_params.empty() && m.port == 0 &&
         m.source_labels.empty() && m.source_namespace.empty() && m.gateways.empty();
}

bool is_l4_catch_all(const L4Match& m) {
  return m.sni_hosts.empty() && m.destination_subnets.empty() && m.port == 0 &&
         m.source_labels.empty() && m.source_namespace.empty() && m.gateways.empty();
}

bool labels_select(const Labels& selector, const Labels& labels) {
  for (const auto& [k, v] : selector) {
    auto it = labels.find(k);
    if (it == labels.end() || it->second != v) return false;
  }
  return true;
}

std::string describe_labels(const Labels& labels) {
  std::string out;
  for (const auto& [k, v] : labels)
    out += (out.empty() ? "" : ", ") + k + "=" + v;
  return out;
}

// Why transparent capture cannot work on this host ("" = it can): it needs Linux, root (to
// make network namespaces and iptables rules) and the `ip` (iproute2) and `iptables-restore`
// programs.
std::string capture_unavailable() {
#ifndef __linux__
  return "it needs Linux";
#else
  if (::geteuid() != 0)
    return "it needs root (meshbox makes network namespaces and iptables rules)";
  auto found = [](std::string_view program) {
    for (std::string_view dir :
         {"/usr/sbin/", "/sbin/", "/usr/bin/", "/bin/", "/usr/local/sbin/", "/usr/local/bin/"}) {
      std::string path = std::string(dir) + std::string(program);
      if (::access(path.c_str(), X_OK) == 0) return true;
    }
    return false;
  };
  if (!found("ip")) return "`ip` is missing (apt-get install iproute2)";
  if (!found("iptables-restore")) return "`iptables-restore` is missing (apt-get install iptables)";
  return "";
#endif
}

class Validator {
 public:
  explicit Validator(const Config& c) : c_(c), hosts_(c) {
    for (const auto& g : c_.gateways)
      if (!g.name.empty()) gateways_.emplace(std::pair(g.ns, g.name), &g);
    for (const auto& s : c_.services)
      if (!s.name.empty()) services_.emplace(std::pair(s.ns, s.name), &s);
  }

  std::vector<ConfigError> run() {
    check_mesh();
    check_duplicates(c_.services, "service");
    check_duplicates(c_.workloads, "workload");
    check_duplicates(c_.virtual_services, "virtual_service");
    check_duplicates(c_.destination_rules, "destination_rule");
    check_duplicates(c_.gateways, "gateway");
    check_duplicates(c_.service_entries, "service_entry");
    check_duplicates(c_.peer_authentications, "peer_authentication");
    check_duplicates(c_.authorization_policies, "authorization_policy");
    check_duplicates(c_.request_authentications, "request_authentication");
    for (const auto& s : c_.services)
      check_service(s);
    check_workloads();
    for (const auto& vs : c_.virtual_services)
      check_virtual_service(vs);
    for (const auto& dr : c_.destination_rules)
      check_destination_rule(dr);
    check_gateways();
    for (const auto& se : c_.service_entries)
      check_service_entry(se);
    for (const auto& pa : c_.peer_authentications)
      check_peer_authentication(pa);
    for (const auto& ap : c_.authorization_policies)
      check_authorization_policy(ap);
    for (const auto& ra : c_.request_authentications)
      check_request_authentication(ra);
    return std::move(out_);
  }

 private:
  // Findings about one resource.
  struct At {
    Validator& v;
    const Resource& r;
    std::string_view kind;

    void add(Severity sev, const std::string& field, std::string message) const {
      Pos p = r.source.at(field);
      v.out_.push_back(ConfigError{sev, r.source.file, p.line, p.column, std::string(kind),
                                   r.display_name(), field, std::move(message)});
    }
    void error(const std::string& field, std::string message) const {
      add(Severity::Error, field, std::move(message));
    }
    void warning(const std::string& field, std::string message) const {
      add(Severity::Warning, field, std::move(message));
    }
    bool written(const std::string& path) const { return config::written(r.source, path); }
    bool clean(const std::string& path) const { return r.source.clean(path); }
  };

  // [mesh] trust_domain and its aliases become the host part of SPIFFE IDs
  // (spiffe://TRUST_DOMAIN/ns/NS/sa/SA): the SPIFFE ID spec's trust domain rules, as
  // core/tls/spiffe.cpp applies them to IDs.
  void check_mesh() {
    const Mesh& m = c_.mesh;
    auto check = [&](const std::string& field, const std::string& td) {
      if (!m.source.clean(field)) return;
      std::string why;
      if (td.empty()) why = "it is empty";
      if (td.size() > 255) why = "it has more than 255 characters";
      for (char c : td) {
        if (!why.empty()) break;
        if (c >= 'A' && c <= 'Z') why = "write it in lowercase";
        if (c == ':') why = "a port (':') is not allowed";
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-' ||
              c == '_') &&
            why.empty())
          why = fmt::format("{} is not allowed", q(std::string(1, c)));
      }
      if (why.empty()) return;
      Pos p = m.source.at(field);
      out_.push_back(ConfigError{
          Severity::Error, m.source.file, p.line, p.column, "mesh", "", field,
          fmt::format("{} is not a SPIFFE trust domain: {} (lowercase letters, digits, '.', '-' "
                      "and '_', like \"cluster.local\")",
                      q(td), why)});
    };
    check("trust_domain", m.trust_domain);
    for (size_t i = 0; i < m.trust_domain_aliases.size(); ++i)
      check(fmt::format("trust_domain_aliases[{}]", i), m.trust_domain_aliases[i]);
    // access_log_format: Envoy's command operators, parsed as the compiler will.
    if (m.source.clean("access_log_format") && m.source.clean("access_log_encoding") &&
        !m.access_log_format.empty()) {
      AccessLogSpec spec;
      LogEncoding encoding =
          m.access_log_encoding == AccessLogEncoding::Text ? LogEncoding::Text : LogEncoding::Json;
      if (auto err = make_access_log_spec(m.access_log_file, encoding, m.access_log_format, spec)) {
        Pos p = m.source.at("access_log_format");
        out_.push_back(ConfigError{
            Severity::Error, m.source.file, p.line, p.column, "mesh", "", "access_log_format",
            encoding == LogEncoding::Text
                ? fmt::format("{} (at character {} of the format)", err->message, err->offset + 1)
                : err->message});
      }
    }
  }

  template <typename R>
  void check_duplicates(const std::vector<R>& list, std::string_view kind) {
    std::map<std::pair<std::string, std::string>, const R*> seen;
    for (const R& r : list) {
      if (r.name.empty()) continue;
      auto [it, inserted] = seen.emplace(std::pair(r.ns, r.name), &r);
      if (inserted) continue;
      std::string message = fmt::format("duplicate {} {} in namespace {}; the first is at {}", kind,
                                        q(r.name), q(r.ns), where(it->second->source, ""));
      if constexpr (std::is_same_v<R, Workload>) {
        if (r.name_derived) {
          message +=
              "; a workload without a name is named SERVICE-VERSION after its service "
              "and version label: give each one a name";
        }
      }
      At{*this, r, kind}.error("name", std::move(message));
    }
  }

  // ---- services and workloads ---------------------------------------------------------

  void check_ports(const At& at, const std::vector<Port>& ports, const std::string& path) {
    std::map<uint32_t, size_t> numbers;
    std::map<std::string, size_t> names;
    for (size_t i = 0; i < ports.size(); ++i) {
      const Port& p = ports[i];
      std::string pp = fmt::format("{}[{}]", path, i);
      if (p.number == 0) continue;
      if (auto [it, ok] = numbers.emplace(p.number, i); !ok) {
        at.error(pp + ".number",
                 fmt::format("port {} is listed twice (also {}[{}])", p.number, path, it->second));
      }
      if (auto [it, ok] = names.emplace(p.name, i); !ok && !p.name.empty()) {
        at.error(at.written(pp + ".name") ? pp + ".name" : pp,
                 fmt::format("port name {} is used twice (also {}[{}]); give each port its own "
                             "name",
                             q(p.name), path, it->second));
      }
    }
  }

  void check_service(const Service& s) {
    At at{*this, s, "service"};
    check_ports(at, s.ports, "ports");
    if (at.written("ports") && s.ports.empty() && s.source.clean("ports"))
      at.error("ports", "a service needs at least one port");
  }

  std::vector<std::string> service_names(std::string_view ns) const {
    std::vector<std::string> out;
    for (const auto& s : c_.services)
      if (s.ns == ns) out.push_back(s.name);
    return out;
  }

  // True for an address that means every interface.
  static bool any_address(std::string_view a) { return a.empty() || a == "0.0.0.0" || a == "::"; }

  // replicas: processes of the command, each on its own port; their instance names
  // (NAME-I) must not be another workload's instance name in the namespace.
  void check_replicas(const At& at, const Workload& w,
                      std::map<std::pair<std::string, std::string>, const Workload*>& instances) {
    if (w.replicas != 1 && w.command.empty() && at.clean("replicas"))
      at.error("replicas",
               "replicas needs a command: meshbox runs that many processes of it (a workload "
               "without command is one endpoint at its address and port)");
    if (w.replicas > 1 && w.port != 0 && !w.command.empty() && at.clean("replicas") &&
        at.clean("port"))
      at.error("port", fmt::format("with replicas = {}, leave port unset (0): each replica gets a "
                                   "free port of its own as ${{PORT}}",
                                   w.replicas));
    if (w.command.empty() || w.name.empty()) return;
    for (uint32_t i = 0; i < (w.replicas == 1 ? 1 : w.replicas); ++i) {
      std::string name = w.replicas == 1 ? w.name : fmt::format("{}-{}", w.name, i);
      auto [it, fresh] = instances.emplace(std::pair(w.ns, name), &w);
      if (fresh || it->second->name == w.name) continue;  // a duplicate: reported as such
      at.error(at.written("replicas") ? "replicas" : "name",
               fmt::format("its process {} has the name of a process of workload {} ({}): "
                           "rename one of the workloads",
                           q(name), q(it->second->display_name()), where(it->second->source, "")));
      return;
    }
  }

  // capture = "iptables": a sidecar and a process to capture, and a host that can do it.
  void check_capture(const At& at, const Workload& w) {
    if (!w.inject) {
      at.error("capture",
               "capture = \"iptables\" sends the app's traffic to its sidecar: it "
               "needs inject = true");
    } else if (w.command.empty()) {
      at.error("capture",
               "capture = \"iptables\" runs the process in a network namespace of its own: it "
               "needs a command");
    } else if (std::string why = capture_unavailable(); !why.empty()) {
      at.error("capture", "capture = \"iptables\" is not available here: " + why +
                              " (capture = \"none\" works anywhere: HTTP_PROXY)");
    }
    if (w.address != "127.0.0.1" && w.address != "0.0.0.0" && !w.address.empty())
      at.error("address",
               fmt::format("with capture = \"iptables\" the app listens in its own network "
                           "namespace, where its sidecar reaches it on 127.0.0.1: use "
                           "\"127.0.0.1\" or \"0.0.0.0\", not {}",
                           q(w.address)));
  }

  void check_workloads() {
    // Instance names of workloads with a command, by namespace (check_replicas).
    std::map<std::pair<std::string, std::string>, const Workload*> instances;
    // Who listens where: gateway servers, then workloads with a fixed port, in file order.
    struct Use {
      std::string address;
      uint32_t port;
      std::string what;
    };
    std::vector<Use> uses;
    for (const auto& g : c_.gateways) {
      for (const auto& srv : g.servers) {
        if (srv.port.number != 0)
          uses.push_back(
              {srv.bind, srv.port.number, fmt::format("gateway {}", q(g.display_name()))});
      }
    }
    for (const auto& w : c_.workloads) {
      At at{*this, w, "workload"};
      if (w.local_rate_limit) check_local_rate_limit(at, *w.local_rate_limit, "local_rate_limit");
      if (!w.service.empty() && !services_.count(std::pair(w.ns, w.service))) {
        at.error("service", fmt::format("no service {} in namespace {}{}", q(w.service), q(w.ns),
                                        did_you_mean(w.service, service_names(w.ns))));
      }
      if (w.command.empty() && w.port == 0 && at.clean("port") && !at.written("command")) {
        at.error("command",
                 "a workload needs a command (meshbox starts it) or a port (where it already "
                 "listens), or both");
      }
      if (at.written("command") && w.command.empty() && w.source.clean("command"))
        at.error("command", "command cannot be empty: give the program and its arguments");
      if (!w.command.empty() && w.command[0].empty())
        at.error("command[0]", "the program name cannot be empty");
      check_replicas(at, w, instances);
      if (w.health) {
        const HealthCheck& h = *w.health;
        if (!h.http.empty() && h.tcp) {
          at.error("health", "set http = \"/path\" or tcp = true, not both");
        } else if (h.http.empty() && !h.tcp && !at.written("health.http")) {
          at.error("health",
                   "set http = \"/path\" (an HTTP GET that must answer 200-399) or tcp = "
                   "true (a TCP connect)");
        }
        if (!h.http.empty() && h.http[0] != '/')
          at.error("health.http",
                   fmt::format("expected a path starting with '/', got {}", q(h.http)));
        if (h.interval && h.interval->count() == 0)
          at.error("health.interval", "must be at least 1ms");
        if (h.timeout && h.timeout->count() == 0)
          at.error("health.timeout", "must be at least 1ms");
      }
      if (w.port != 0) {
        auto clash = std::find_if(uses.begin(), uses.end(), [&](const Use& u) {
          return u.port == w.port &&
                 (u.address == w.address || any_address(u.address) || any_address(w.address));
        });
        if (clash != uses.end()) {
          at.error("port", fmt::format("port {} on {} is already taken by {}", w.port, w.address,
                                       clash->what));
        } else {
          uses.push_back(
              {w.address, w.port,
               fmt::format("workload {} ({})", q(w.display_name()), where(w.source, "port"))});
        }
      }
      if (w.capture == Capture::Iptables) check_capture(at, w);
      if (!w.address.empty() && !is_ip(w.address) && !host_error(w.address, false).empty())
        at.error("address",
                 fmt::format("expected an IP address or a host name, got {}", q(w.address)));
    }
  }

  // ---- destinations, subsets ------------------------------------------------------------

  // The destination rule that applies to `fqdn` for a client in `client_ns`: Istio looks in
  // the client's namespace, then the destination's, then the root namespace; in each, an
  // exact host beats a wildcard.
  const DestinationRule* find_destination_rule(const std::string& fqdn, std::string_view client_ns,
                                               std::string_view target_ns) const {
    for (std::string_view ns : {client_ns, target_ns, std::string_view(c_.mesh.root_namespace)}) {
      const DestinationRule* wildcard = nullptr;
      for (const auto& dr : c_.destination_rules) {
        if (dr.ns != ns || dr.host.empty()) continue;
        std::string h = hosts_.resolve(dr.host, dr.ns);
        if (h == fqdn) return &dr;
        if (!wildcard && h.find('*') != std::string::npos && HostIndex::wildcard_match(h, fqdn))
          wildcard = &dr;
      }
      if (wildcard) return wildcard;
    }
    return nullptr;
  }

  void check_destination(const At& at, const Destination& d, const std::string& path) {
    if (d.host.empty()) {
      if (at.written(path + ".host")) at.error(path + ".host", "a host cannot be empty");
      return;
    }
    if (d.host.find('*') != std::string::npos) {
      at.error(path + ".host",
               fmt::format("a destination names one host, not a wildcard: {}", q(d.host)));
      return;
    }
    HostTarget t = hosts_.find(d.host, at.r.ns);
    if (!t) {
      std::string suggestion = did_you_mean(d.host, service_names(at.r.ns));
      if (suggestion.empty()) suggestion = did_you_mean(t.fqdn, hosts_.all_hosts());
      at.error(path + ".host",
               fmt::format("host {} matches no service or service_entry (it means {}){}", q(d.host),
                           q(t.fqdn), suggestion));
      return;
    }
    const std::vector<Port>& ports = t.service ? t.service->ports : t.entry->ports;
    std::string what = t.service ? fmt::format("service {}", q(t.service->display_name()))
                                 : fmt::format("service_entry {}", q(t.entry->display_name()));
    std::vector<std::string> numbers;
    for (const auto& p : ports)
      numbers.push_back(std::to_string(p.number));
    if (d.port != 0) {
      bool found = std::any_of(ports.begin(), ports.end(),
                               [&](const Port& p) { return p.number == d.port; });
      if (!found && !ports.empty()) {
        at.error(path + ".port", fmt::format("{} has no port {} (its ports: {})", what, d.port,
                                             fmt::join(numbers, ", ")));
      }
    } else if (ports.size() > 1) {
      at.error(path, fmt::format("{} has several ports ({}): set port to choose one", what,
                                 fmt::join(numbers, ", ")));
    }
    if (d.subset.empty()) return;
    std::string_view target_ns = t.service ? t.service->ns : t.entry->ns;
    const DestinationRule* dr = find_destination_rule(t.fqdn, at.r.ns, target_ns);
    if (!dr) {
      at.error(path + ".subset",
               fmt::format("subset {} is not defined: no destination_rule for host {}", q(d.subset),
                           q(t.fqdn)));
      return;
    }
    std::vector<std::string> names;
    for (const auto& s : dr->subsets)
      names.push_back(s.name);
    if (std::find(names.begin(), names.end(), d.subset) != names.end()) return;
    at.error(
        path + ".subset",
        fmt::format("subset {} is not defined in destination_rule {} ({}); {}{}", q(d.subset),
                    q(dr->display_name()), where(dr->source, ""),
                    names.empty() ? "it defines no subsets" : "it defines " + quoted_list(names),
                    did_you_mean(d.subset, names)));
  }

  void check_weights(const At& at, const std::vector<RouteDestination>& route,
                     const std::string& path) {
    if (route.empty() || !at.r.source.clean(path)) return;
    int64_t sum = 0;
    bool missing = false;
    for (size_t i = 0; i < route.size(); ++i) {
      std::string wp = fmt::format("{}[{}].weight", path, i);
      if (at.written(wp) && !route[i].weight) return;  // a bad weight, already reported
      if (route[i].weight) {
        sum += *route[i].weight;
      } else if (route.size() == 1) {
        sum += 100;  // one destination without a weight takes everything
      } else {
        missing = true;
      }
    }
    if (sum == 100) return;
    at.error(path + "[0].weight",
             fmt::format("weights must sum to 100, got {}{}", sum,
                         missing ? " (a destination without a weight counts as 0)" : ""));
  }

  void check_regex(const At& at, const std::string& path, const std::string& pattern,
                   bool ignore_case = false) {
    if (auto why = regex_error(pattern, ignore_case))
      at.error(path, fmt::format("bad regex {}: {}", q(pattern), *why));
  }

  void check_string_match(const At& at, const std::string& path,
                          const std::optional<StringMatch>& m, bool ignore_case = false) {
    if (m && m->kind == StringMatch::Kind::Regex)
      check_regex(at, path + ".regex", m->value, ignore_case);
  }

  void check_string_matches(const At& at, const std::string& path,
                            const std::map<std::string, StringMatch>& matches) {
    for (const auto& [name, m] : matches) {
      if (name.empty()) at.error(path, "a header or parameter name cannot be empty");
      if (m.kind == StringMatch::Kind::Regex)
        check_regex(at, path + "." + name + ".regex", m.value);
    }
  }

  // `gateways` entries: "mesh", "NAME" (the resource's namespace) or "NAMESPACE/NAME".
  void check_gateway_refs(const At& at, const std::vector<std::string>& refs,
                          const std::string& path) {
    for (size_t i = 0; i < refs.size(); ++i) {
      const std::string& ref = refs[i];
      if (ref == "mesh") continue;
      std::string ns = at.r.ns, name = ref;
      if (size_t slash = ref.find('/'); slash != std::string::npos) {
        ns = ref.substr(0, slash);
        name = ref.substr(slash + 1);
      }
      if (gateways_.count(std::pair(ns, name))) continue;
      std::vector<std::string> known;
      for (const auto& [key, g] : gateways_)
        known.push_back(key.first == at.r.ns ? key.second : key.first + "/" + key.second);
      known.emplace_back("mesh");
      at.error(fmt::format("{}[{}]", path, i),
               fmt::format("no gateway {} in namespace {} (\"mesh\" means the sidecars){}", q(name),
                           q(ns), did_you_mean(ref, known)));
    }
  }

  // ---- virtual_service --------------------------------------------------------------------

  const Gateway* gateway_for(const Resource& r, const std::string& ref) const {
    std::string ns = r.ns, name = ref;
    if (size_t slash = ref.find('/'); slash != std::string::npos) {
      ns = ref.substr(0, slash);
      name = ref.substr(slash + 1);
    }
    auto it = gateways_.find(std::pair(ns, name));
    return it == gateways_.end() ? nullptr : it->second;
  }

  // True if a virtual-service host is one the gateway's servers accept.
  static bool gateway_serves(const Gateway& g, const std::string& vs_ns, const std::string& host) {
    for (const auto& s : g.servers) {
      for (const auto& sh : s.hosts) {
        std::string ns = "*", h = lower(sh);
        if (size_t slash = sh.find('/'); slash != std::string::npos) {
          ns = sh.substr(0, slash);
          h = lower(sh.substr(slash + 1));
        }
        if (ns != "*" && !(ns == "." && vs_ns == g.ns) && ns != vs_ns) continue;
        std::string vh = lower(host);
        if (HostIndex::wildcard_match(h, vh) || HostIndex::wildcard_match(vh, h)) return true;
      }
    }
    return false;
  }

  void check_virtual_service(const VirtualService& vs) {
    At at{*this, vs, "virtual_service"};
    bool mesh = vs.gateways.empty() ||
                std::find(vs.gateways.begin(), vs.gateways.end(), "mesh") != vs.gateways.end();
    if (vs.hosts.empty() && at.written("hosts") && vs.source.clean("hosts"))
      at.error("hosts", "at least one host is required");
    for (size_t i = 0; i < vs.hosts.size(); ++i) {
      const std::string& h = vs.hosts[i];
      std::string path = fmt::format("hosts[{}]", i);
      if (std::string e = host_error(h, !mesh); !e.empty()) {
        at.error(path, e == "\"*\" is not allowed here; name the host"
                           ? "\"*\" is only allowed in a virtual service bound to gateways; one "
                             "for the mesh names its hosts"
                           : e);
        continue;
      }
      if (mesh && vs.gateways.empty() && !hosts_.matches_any(h, vs.ns)) {
        at.warning(path, fmt::format("host {} matches no service or service_entry (it means {}): "
                                     "no traffic in the mesh goes to it",
                                     q(h), q(hosts_.resolve(h, vs.ns))));
      }
    }
    check_gateway_refs(at, vs.gateways, "gateways");
    for (size_t gi = 0; gi < vs.gateways.size(); ++gi) {
      const Gateway* g = vs.gateways[gi] == "mesh" ? nullptr : gateway_for(vs, vs.gateways[gi]);
      if (!g || vs.hosts.empty()) continue;
      bool any = std::any_of(vs.hosts.begin(), vs.hosts.end(),
                             [&](const std::string& h) { return gateway_serves(*g, vs.ns, h); });
      if (!any) {
        at.warning(fmt::format("gateways[{}]", gi),
                   fmt::format("gateway {} serves none of this virtual service's hosts; its "
                               "routes never apply there",
                               q(g->display_name())));
      }
    }
    if (vs.http.empty() && vs.tcp.empty() && vs.tls.empty() && !at.written("http") &&
        !at.written("tcp") && !at.written("tls")) {
      at.error("http", "a virtual service needs routes: http, tcp or tls");
    }
    std::optional<size_t> catch_all;
    for (size_t i = 0; i < vs.http.size(); ++i) {
      std::string path = fmt::format("http[{}]", i);
      const HttpRoute& r = vs.http[i];
      check_http_route(at, r, path);
      if (catch_all) {
        at.warning(path,
                   fmt::format("this route can never match: http[{}] ({}) before it "
                               "matches every request",
                               *catch_all, where(vs.source, fmt::format("http[{}]", *catch_all))));
      } else if (judgeable(at, path, kHttpRouteKeys) &&
                 (!at.written(path + ".match") ||
                  std::any_of(r.match.begin(), r.match.end(), is_http_catch_all))) {
        catch_all = i;
      }
    }
    check_l4_routes(at, vs, vs.tcp, "tcp");
    check_l4_routes(at, vs, vs.tls, "tls");
  }

  // Whether a route's match can be judged: it decoded, and no unknown key of the route might
  // have been meant as `match` (a misspelt "matches" would make the route look catch-all).
  static bool judgeable(const At& at, const std::string& path,
                        std::span<const std::string_view> keys) {
    if (!at.clean(path + ".match")) return false;
    for (auto it = at.r.source.rejected.lower_bound(path + "."); it != at.r.source.rejected.end();
         ++it) {
      std::string_view rest = *it;
      if (!rest.starts_with(path + ".")) break;
      rest.remove_prefix(path.size() + 1);
      if (rest.find_first_of(".[") != std::string_view::npos) continue;           // deeper: a value
      if (std::find(keys.begin(), keys.end(), rest) == keys.end()) return false;  // unknown key
    }
    return true;
  }

  void check_http_route(const At& at, const HttpRoute& r, const std::string& path) {
    bool has_route = at.written(path + ".route");
    bool has_redirect = at.written(path + ".redirect");
    bool has_direct = at.written(path + ".direct_response");
    if (!has_route && !has_redirect && !has_direct) {
      at.error(path, "an HTTP route needs route (destinations), redirect or direct_response");
    }
    if (has_route && r.route.empty() && at.r.source.clean(path + ".route"))
      at.error(path + ".route", "route needs at least one destination");
    if (has_redirect && has_route)
      at.error(path + ".redirect", "redirect cannot be combined with route");
    if (has_direct && (has_route || has_redirect))
      at.error(path + ".direct_response",
               "direct_response cannot be combined with route or redirect");
    if (at.written(path + ".rewrite") && has_redirect)
      at.error(path + ".rewrite", "rewrite cannot be combined with redirect");

    for (size_t m = 0; m < r.match.size(); ++m) {
      std::string mp = fmt::format("{}.match[{}]", path, m);
      const HttpMatch& x = r.match[m];
      check_string_match(at, mp + ".uri", x.uri, x.ignore_uri_case);
      check_string_match(at, mp + ".scheme", x.scheme);
      check_string_match(at, mp + ".method", x.method);
      check_string_match(at, mp + ".authority", x.authority);
      check_string_matches(at, mp + ".headers", x.headers);
      check_string_matches(at, mp + ".without_headers", x.without_headers);
      check_string_matches(at, mp + ".query_params", x.query_params);
      check_gateway_refs(at, x.gateways, mp + ".gateways");
    }
    for (size_t d = 0; d < r.route.size(); ++d)
      check_destination(at, r.route[d].destination,
                        fmt::format("{}.route[{}].destination", path, d));
    check_weights(at, r.route, path + ".route");

    if (r.redirect) {
      const HttpRedirect& x = *r.redirect;
      if (x.port != 0 && x.derive_port != HttpRedirect::DerivePort::Unset)
        at.error(path + ".redirect.derive_port", "set port or derive_port, not both");
      static constexpr uint32_t kCodes[] = {301, 302, 303, 307, 308};
      if (std::find(std::begin(kCodes), std::end(kCodes), x.redirect_code) == std::end(kCodes) &&
          at.written(path + ".redirect.redirect_code")) {
        at.error(path + ".redirect.redirect_code",
                 fmt::format("expected 301, 302, 303, 307 or 308, got {}", x.redirect_code));
      }
    }
    if (r.rewrite) {
      if (!r.rewrite->uri.empty() && r.rewrite->uri_regex_rewrite)
        at.error(path + ".rewrite.uri_regex_rewrite", "set uri or uri_regex_rewrite, not both");
      if (const auto& rr = r.rewrite->uri_regex_rewrite) {
        const std::string rp = path + ".rewrite.uri_regex_rewrite";
        check_regex(at, rp + ".match", rr->match);
        if (auto why = rewrite_error(rr->match, rr->rewrite))
          at.error(rp + ".rewrite", fmt::format("bad substitution {}: {}", q(rr->rewrite), *why));
      }
    }
    if (r.retries) {
      const HttpRetry& x = *r.retries;
      if (x.per_try_timeout && x.per_try_timeout->count() == 0)
        at.error(path + ".retries.per_try_timeout", "must be at least 1ms");
      check_retry_on(at, x.retry_on, path + ".retries.retry_on");
    }
    if (r.fault) check_fault(at, *r.fault, path + ".fault");
    if (r.mirror) check_destination(at, *r.mirror, path + ".mirror");
    if (r.local_rate_limit)
      check_local_rate_limit(at, *r.local_rate_limit, path + ".local_rate_limit");
    if (r.mirror_percentage && !r.mirror && !at.written(path + ".mirror"))
      at.error(path + ".mirror_percentage", "mirror_percentage needs a mirror");
    if (r.cors_policy) {
      for (size_t o = 0; o < r.cors_policy->allow_origins.size(); ++o) {
        const StringMatch& m = r.cors_policy->allow_origins[o];
        if (m.kind == StringMatch::Kind::Regex)
          check_regex(at, fmt::format("{}.cors_policy.allow_origins[{}].regex", path, o), m.value);
      }
    }
  }

  void check_retry_on(const At& at, const std::string& retry_on, const std::string& path) {
    if (retry_on.empty()) return;
    std::vector<std::string> known(std::begin(kRetryOn), std::end(kRetryOn));
    size_t start = 0;
    while (start <= retry_on.size()) {
      size_t comma = retry_on.find(',', start);
      std::string item =
          retry_on.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
      while (!item.empty() && item.front() == ' ')
        item.erase(item.begin());
      while (!item.empty() && item.back() == ' ')
        item.pop_back();
      bool code =
          !item.empty() && item.size() == 3 &&
          std::all_of(item.begin(), item.end(), [](char c) { return c >= '0' && c <= '9'; }) &&
          item >= "100" && item <= "599";
      if (!code && std::find(known.begin(), known.end(), item) == known.end()) {
        at.error(path, fmt::format("unknown retry condition {}: expected a comma-separated list "
                                   "of Envoy retry policies ({}) and status codes{}",
                                   q(item), fmt::join(known, ", "), did_you_mean(item, known)));
      }
      if (comma == std::string::npos) break;
      start = comma + 1;
    }
  }

  void check_fault(const At& at, const HttpFault& f, const std::string& path) {
    bool delay = at.written(path + ".delay"), abort = at.written(path + ".abort");
    if (!delay && !abort) at.error(path, "a fault needs a delay, an abort, or both");
    if (f.delay) {
      if (f.delay->fixed_delay.count() == 0 && at.written(path + ".delay.fixed_delay"))
        at.error(path + ".delay.fixed_delay", "must be at least 1ms");
      if (!f.delay->percentage && !at.written(path + ".delay.percentage")) {
        at.warning(path + ".delay",
                   "percentage is not set, so no request is delayed (as in Istio); write "
                   "percentage = 100 to delay every request");
      }
    }
    if (f.abort) {
      bool http = at.written(path + ".abort.http_status"),
           grpc = at.written(path + ".abort.grpc_status");
      if (!http && !grpc) at.error(path + ".abort", "an abort needs http_status (or grpc_status)");
      if (http && grpc) at.error(path + ".abort", "set http_status or grpc_status, not both");
      if (!f.abort->percentage && !at.written(path + ".abort.percentage")) {
        at.warning(path + ".abort",
                   "percentage is not set, so no request is aborted (as in Istio); write "
                   "percentage = 100 to abort every request");
      }
    }
  }

  void check_l4_routes(const At& at, const VirtualService& vs, const std::vector<L4Route>& routes,
                       std::string_view kind) {
    bool tls = kind == "tls";
    std::optional<size_t> catch_all;
    for (size_t i = 0; i < routes.size(); ++i) {
      const L4Route& r = routes[i];
      std::string path = fmt::format("{}[{}]", kind, i);
      if (r.route.empty() && vs.source.clean(path + ".route"))
        at.error(at.written(path + ".route") ? path + ".route" : path,
                 "a route needs at least one destination");
      if (tls && !at.written(path + ".match"))
        at.error(path, "a tls route needs match with sni_hosts");
      for (size_t m = 0; m < r.match.size(); ++m) {
        std::string mp = fmt::format("{}.match[{}]", path, m);
        const L4Match& x = r.match[m];
        check_gateway_refs(at, x.gateways, mp + ".gateways");
        for (size_t s = 0; s < x.destination_subnets.size(); ++s) {
          if (!is_ip_or_cidr(x.destination_subnets[s])) {
            at.error(fmt::format("{}.destination_subnets[{}]", mp, s),
                     fmt::format("expected an IP address or CIDR block such as \"10.0.0.0/8\", "
                                 "got {}",
                                 q(x.destination_subnets[s])));
          }
        }
        if (tls && x.sni_hosts.empty() && vs.source.clean(mp + ".sni_hosts"))
          at.error(mp + ".sni_hosts", "at least one SNI host is required");
        for (size_t s = 0; s < x.sni_hosts.size(); ++s) {
          const std::string& sni = x.sni_hosts[s];
          std::string sp = fmt::format("{}.sni_hosts[{}]", mp, s);
          if (std::string e = host_error(sni, true); !e.empty()) {
            at.error(sp, e);
            continue;
          }
          std::string sni_fqdn = hosts_.resolve(sni, vs.ns);
          bool within = std::any_of(vs.hosts.begin(), vs.hosts.end(), [&](const std::string& h) {
            std::string hf = hosts_.resolve(h, vs.ns);
            return HostIndex::wildcard_match(hf, sni_fqdn) || lower(h) == lower(sni);
          });
          if (!within) {
            at.error(sp, fmt::format("SNI host {} is not one of the virtual service's hosts ({})",
                                     q(sni), quoted_list(vs.hosts)));
          }
        }
      }
      for (size_t d = 0; d < r.route.size(); ++d)
        check_destination(at, r.route[d].destination,
                          fmt::format("{}.route[{}].destination", path, d));
      check_weights(at, r.route, path + ".route");
      if (catch_all) {
        at.warning(path, fmt::format("this route can never match: {}[{}] ({}) before it matches "
                                     "every connection",
                                     kind, *catch_all,
                                     where(vs.source, fmt::format("{}[{}]", kind, *catch_all))));
      } else if (!tls && judgeable(at, path, kL4RouteKeys) &&
                 (!at.written(path + ".match") ||
                  std::any_of(r.match.begin(), r.match.end(), is_l4_catch_all))) {
        catch_all = i;
      }
    }
  }

  // ---- destination_rule ---------------------------------------------------------------

  void check_locality(const At& at, const LocalityLbSetting& l, const std::string& path) {
    int set = (l.distribute.empty() ? 0 : 1) + (l.failover.empty() ? 0 : 1) +
              (l.failover_priority.empty() ? 0 : 1);
    if (set > 1) at.error(path, "set only one of distribute, failover and failover_priority");
    for (size_t i = 0; i < l.distribute.size(); ++i) {
      uint64_t sum = 0;
      for (const auto& [loc, w] : l.distribute[i].to)
        sum += w;
      if (sum != 100 && !l.distribute[i].to.empty()) {
        at.error(fmt::format("{}.distribute[{}].to", path, i),
                 fmt::format("weights must sum to 100, got {}", sum));
      }
    }
  }

  void check_client_tls(const At& at, const ClientTls& t, const std::string& path) {
    using Mode = ClientTls::Mode;
    if (t.mode == Mode::Mutual) {
      if (t.client_certificate.empty())
        at.error(path + ".client_certificate", "mode mutual needs client_certificate");
      if (t.private_key.empty()) at.error(path + ".private_key", "mode mutual needs private_key");
    }
    if (t.mode == Mode::IstioMutual &&
        (!t.client_certificate.empty() || !t.private_key.empty() || !t.ca_certificates.empty())) {
      at.error(path + ".mode",
               "istio_mutual uses the mesh's own certificates: remove client_certificate, "
               "private_key and ca_certificates, or use mode mutual");
    }
  }

  void check_traffic_policy(const At& at, const TrafficPolicy& p, const std::string& path) {
    auto check_lb = [&](const std::optional<LoadBalancer>& lb, const std::string& lp) {
      if (!lb) return;
      if (lb->simple != LbPolicy::Unspecified && lb->consistent_hash)
        at.error(lp, "set simple or consistent_hash, not both");
      if (lb->locality_lb_setting)
        check_locality(at, *lb->locality_lb_setting, lp + ".locality_lb_setting");
    };
    check_lb(p.load_balancer, path + ".load_balancer");
    if (p.tls) check_client_tls(at, *p.tls, path + ".tls");
    std::map<uint32_t, size_t> ports;
    for (size_t i = 0; i < p.port_level_settings.size(); ++i) {
      const PortTrafficPolicy& pl = p.port_level_settings[i];
      std::string pp = fmt::format("{}.port_level_settings[{}]", path, i);
      if (pl.port != 0) {
        if (auto [it, ok] = ports.emplace(pl.port, i); !ok) {
          at.error(pp + ".port",
                   fmt::format("port {} already has settings (port_level_settings[{}])", pl.port,
                               it->second));
        }
      }
      check_lb(pl.load_balancer, pp + ".load_balancer");
      if (pl.tls) check_client_tls(at, *pl.tls, pp + ".tls");
    }
  }

  void check_destination_rule(const DestinationRule& dr) {
    At at{*this, dr, "destination_rule"};
    HostTarget target;
    if (!dr.host.empty()) {
      if (std::string e = host_error(dr.host, false); !e.empty()) {
        at.error("host", e);
      } else if (dr.host.find('*') != std::string::npos) {
        if (!hosts_.matches_any(dr.host, dr.ns))
          at.error("host", fmt::format("host {} matches no service or service_entry", q(dr.host)));
      } else {
        target = hosts_.find(dr.host, dr.ns);
        if (!target) {
          std::string suggestion = did_you_mean(dr.host, service_names(dr.ns));
          if (suggestion.empty()) suggestion = did_you_mean(target.fqdn, hosts_.all_hosts());
          at.error("host", fmt::format("host {} matches no service or service_entry (it means "
                                       "{}){}",
                                       q(dr.host), q(target.fqdn), suggestion));
        }
      }
    }
    if (dr.traffic_policy) check_traffic_policy(at, *dr.traffic_policy, "traffic_policy");
    std::map<std::string, size_t> names;
    for (size_t i = 0; i < dr.subsets.size(); ++i) {
      const Subset& s = dr.subsets[i];
      std::string path = fmt::format("subsets[{}]", i);
      if (auto [it, ok] = names.emplace(s.name, i); !ok && !s.name.empty()) {
        at.error(path + ".name", fmt::format("subset {} is defined twice (also subsets[{}])",
                                             q(s.name), it->second));
      }
      if (s.traffic_policy) check_traffic_policy(at, *s.traffic_policy, path + ".traffic_policy");
      check_subset_selects(at, target, s, path);
    }
  }

  // Warns when a subset's labels select none of the service's workloads (or of the service
  // entry's endpoints). A service with no workloads at all is left alone: its endpoints may
  // be registered at run time (meshbox inject).
  void check_subset_selects(const At& at, const HostTarget& target, const Subset& s,
                            const std::string& path) {
    if (!target || s.name.empty()) return;
    std::string field = at.written(path + ".labels") ? path + ".labels" : path;
    if (target.service) {
      size_t members = 0;
      for (const auto& w : c_.workloads) {
        if (w.ns != target.service->ns || w.service != target.service->name) continue;
        ++members;
        if (labels_select(s.labels, w.labels)) return;
      }
      if (members == 0) return;
      at.warning(field, fmt::format("subset {} selects no workload: none of the {} workload(s) "
                                    "of service {} has the labels {}",
                                    q(s.name), members, q(target.service->display_name()),
                                    describe_labels(s.labels)));
    } else if (target.entry && !target.entry->endpoints.empty()) {
      for (const auto& e : target.entry->endpoints)
        if (labels_select(s.labels, e.labels)) return;
      at.warning(field, fmt::format("subset {} selects no endpoint: none of the endpoints of "
                                    "service_entry {} has the labels {}",
                                    q(s.name), q(target.entry->display_name()),
                                    describe_labels(s.labels)));
    }
  }

  // ---- gateway -----------------------------------------------------------------------------

  // Envoy's local rate limit refuses fill intervals under 50 ms.
  void check_local_rate_limit(const At& at, const LocalRateLimit& l, const std::string& path) {
    if (l.fill_interval && *l.fill_interval < std::chrono::milliseconds(50))
      at.error(path + ".fill_interval",
               fmt::format("must be at least 50ms, got {}ms", l.fill_interval->count()));
  }

  void check_gateways() {
    struct First {
      Protocol protocol;
      const Gateway* g;
      size_t server;
    };
    std::map<std::pair<std::string, uint32_t>, First> ports;  // (bind, port) → first server
    for (const auto& g : c_.gateways) {
      At at{*this, g, "gateway"};
      if (g.servers.empty() && at.written("servers") && g.source.clean("servers"))
        at.error("servers", "a gateway needs at least one server");
      if (g.local_rate_limit) check_local_rate_limit(at, *g.local_rate_limit, "local_rate_limit");
      for (size_t i = 0; i < g.servers.size(); ++i) {
        const Server& s = g.servers[i];
        std::string path = fmt::format("servers[{}]", i);
        check_server(at, s, path);
        if (s.port.number == 0) continue;
        auto [it, ok] =
            ports.emplace(std::pair(s.bind, s.port.number), First{s.port.protocol, &g, i});
        if (!ok && it->second.protocol != s.port.protocol) {
          at.error(path + ".port",
                   fmt::format("port {} is already a {} server (gateway {}, servers[{}]); one port "
                               "has one protocol",
                               s.port.number, to_string(it->second.protocol),
                               q(it->second.g->display_name()), it->second.server));
        }
      }
    }
  }

  void check_server(const At& at, const Server& s, const std::string& path) {
    if (s.hosts.empty() && at.written(path + ".hosts") && at.r.source.clean(path + ".hosts"))
      at.error(path + ".hosts", "at least one host is required (\"*\" for any)");
    for (size_t h = 0; h < s.hosts.size(); ++h) {
      std::string_view host = s.hosts[h];
      std::string hp = fmt::format("{}.hosts[{}]", path, h);
      if (size_t slash = host.find('/'); slash != std::string_view::npos) {
        std::string_view ns = host.substr(0, slash);
        bool ns_ok = ns == "*" || ns == "." ||
                     (!ns.empty() && host_error(ns, false).empty() &&
                      ns.find('.') == std::string_view::npos);
        if (!ns_ok) {
          at.error(hp, fmt::format("expected NAMESPACE/HOST with NAMESPACE \"*\", \".\" or a "
                                   "namespace name, got {}",
                                   q(host)));
          continue;
        }
        host = host.substr(slash + 1);
      }
      if (std::string e = host_error(host, true); !e.empty()) at.error(hp, e);
    }
    Protocol p = s.port.protocol;
    std::string tp = path + ".tls";
    if (!s.tls) {
      if (p == Protocol::Https)
        at.error(path, "an https server needs tls (mode, server_certificate, private_key)");
      if (p == Protocol::Tls)
        at.error(path, "a tls server needs tls (mode = \"passthrough\" routes by SNI)");
      return;
    }
    const ServerTls& t = *s.tls;
    using Mode = ServerTls::Mode;
    if (p == Protocol::Http && t.mode) {
      at.error(tp + ".mode",
               "an http server does not terminate TLS; its tls may only set "
               "https_redirect (use protocol https)");
    }
    if (p == Protocol::Tcp) at.error(tp, "a tcp server takes no tls; use protocol tls");
    if (t.https_redirect && p != Protocol::Http)
      at.error(tp + ".https_redirect", "https_redirect applies to http servers");
    Mode mode = t.mode.value_or(Mode::Passthrough);
    bool terminates = mode == Mode::Simple || mode == Mode::Mutual || mode == Mode::OptionalMutual;
    if ((p == Protocol::Https || p == Protocol::Tls) && terminates) {
      if (t.server_certificate.empty())
        at.error(tp + ".server_certificate",
                 fmt::format("mode {} needs server_certificate", to_string(mode)));
      if (t.private_key.empty())
        at.error(tp + ".private_key", fmt::format("mode {} needs private_key", to_string(mode)));
      if ((mode == Mode::Mutual || mode == Mode::OptionalMutual) && t.ca_certificates.empty()) {
        at.error(tp + ".ca_certificates",
                 fmt::format("mode {} needs ca_certificates to verify clients", to_string(mode)));
      }
    }
    if (p == Protocol::Https && !t.mode && !at.written(tp + ".mode")) {
      at.error(tp + ".mode",
               "an https server needs a mode: \"simple\" (terminate TLS), "
               "\"mutual\", or \"passthrough\"");
    }
    if (t.min_protocol_version != ServerTls::Version::Auto &&
        t.max_protocol_version != ServerTls::Version::Auto &&
        t.min_protocol_version > t.max_protocol_version) {
      at.error(tp + ".min_protocol_version", "min_protocol_version is above max_protocol_version");
    }
    // Gateway TLS: TLS 1.2 and 1.3 only, forward-secret AEAD suites only.
    for (const char* field : {"min_protocol_version", "max_protocol_version"}) {
      ServerTls::Version v = std::string_view(field) == "min_protocol_version"
                                 ? t.min_protocol_version
                                 : t.max_protocol_version;
      if ((v == ServerTls::Version::V1_0 || v == ServerTls::Version::V1_1) &&
          at.clean(tp + "." + field)) {
        at.error(tp + "." + field,
                 fmt::format("{} is not supported: TLS 1.0 and 1.1 are insecure (RFC 8996); "
                             "use \"tlsv1_2\" or \"tlsv1_3\"",
                             to_string(v)));
      }
    }
    for (size_t i = 0; i < t.cipher_suites.size(); ++i) {
      std::string cp = fmt::format("{}.cipher_suites[{}]", tp, i);
      if (auto e = tls::cipher_suite_error(t.cipher_suites[i]); e && at.clean(cp)) at.error(cp, *e);
    }
  }

  // ---- service_entry ------------------------------------------------------------------------

  void check_service_entry(const ServiceEntry& se) {
    At at{*this, se, "service_entry"};
    if (se.hosts.empty() && at.written("hosts") && se.source.clean("hosts"))
      at.error("hosts", "at least one host is required");
    bool wildcard = false;
    for (size_t i = 0; i < se.hosts.size(); ++i) {
      std::string path = fmt::format("hosts[{}]", i);
      if (std::string e = host_error(se.hosts[i], false); !e.empty()) {
        at.error(path, e);
        continue;
      }
      wildcard = wildcard || se.hosts[i].find('*') != std::string::npos;
    }
    for (size_t i = 0; i < se.addresses.size(); ++i) {
      if (!is_ip_or_cidr(se.addresses[i])) {
        at.error(fmt::format("addresses[{}]", i),
                 fmt::format("expected an IP address or CIDR block, got {}", q(se.addresses[i])));
      }
    }
    check_ports(at, se.ports, "ports");
    if (se.ports.empty() && !at.written("ports"))
      at.error("ports", "a service entry needs at least one port");
    bool dns = se.resolution == Resolution::Dns || se.resolution == Resolution::DnsRoundRobin;
    if (dns && wildcard) {
      at.error("resolution",
               "resolution dns cannot resolve a wildcard host; use resolution none "
               "or name the hosts");
    }
    if (se.resolution == Resolution::None && !se.endpoints.empty()) {
      at.error("endpoints",
               "resolution none forwards to the address the client asked for and "
               "uses no endpoints: remove them, or use resolution static or dns");
    }
    if (se.resolution == Resolution::Static && se.endpoints.empty() && !at.written("endpoints"))
      at.error("resolution", "resolution static needs endpoints");
    std::vector<std::string> port_names;
    for (const auto& p : se.ports)
      port_names.push_back(p.name);
    for (size_t i = 0; i < se.endpoints.size(); ++i) {
      const WorkloadEntry& e = se.endpoints[i];
      std::string path = fmt::format("endpoints[{}]", i);
      if (e.address.empty()) {
        at.error(path + ".address", "an address cannot be empty");
      } else if (se.resolution == Resolution::Static && !is_ip(e.address) &&
                 !e.address.starts_with("unix://")) {
        at.error(path + ".address", fmt::format("resolution static needs IP addresses (or "
                                                "unix:// paths), got {}; use resolution dns for "
                                                "host names",
                                                q(e.address)));
      } else if (!is_ip(e.address) && !e.address.starts_with("unix://") &&
                 !host_error(e.address, false).empty()) {
        at.error(path + ".address",
                 fmt::format("expected an IP address or a host name, got {}", q(e.address)));
      }
      for (const auto& [name, port] : e.ports) {
        if (std::find(port_names.begin(), port_names.end(), name) == port_names.end()) {
          at.error(path + ".ports." + name, fmt::format("the service entry has no port named {}{}",
                                                        q(name), did_you_mean(name, port_names)));
        }
      }
    }
  }

  // ---- security -----------------------------------------------------------------------------

  void check_peer_authentication(const PeerAuthentication& pa) {
    At at{*this, pa, "peer_authentication"};
    if (!pa.port_level_mtls.empty() && !pa.selector) {
      at.error("port_level_mtls",
               "port_level_mtls needs a selector: it applies to the ports of "
               "the workloads it selects");
    }
  }

  void check_ip_blocks(const At& at, const std::vector<std::string>& blocks,
                       const std::string& path) {
    for (size_t i = 0; i < blocks.size(); ++i) {
      if (!is_ip_or_cidr(blocks[i])) {
        at.error(fmt::format("{}[{}]", path, i),
                 fmt::format("expected an IP address or CIDR block, got {}", q(blocks[i])));
      }
    }
  }

  void check_authorization_policy(const AuthorizationPolicy& ap) {
    At at{*this, ap, "authorization_policy"};
    for (size_t r = 0; r < ap.rules.size(); ++r) {
      const AuthzRule& rule = ap.rules[r];
      std::string rp = fmt::format("rules[{}]", r);
      for (size_t i = 0; i < rule.from.size(); ++i) {
        const AuthzSource& s = rule.from[i];
        std::string sp = fmt::format("{}.from[{}].source", rp, i);
        bool empty = s.principals.empty() && s.not_principals.empty() &&
                     s.request_principals.empty() && s.not_request_principals.empty() &&
                     s.namespaces.empty() && s.not_namespaces.empty() && s.ip_blocks.empty() &&
                     s.not_ip_blocks.empty() && s.remote_ip_blocks.empty() &&
                     s.not_remote_ip_blocks.empty();
        if (empty && at.written(sp)) at.error(sp, "a source needs at least one field");
        check_ip_blocks(at, s.ip_blocks, sp + ".ip_blocks");
        check_ip_blocks(at, s.not_ip_blocks, sp + ".not_ip_blocks");
        check_ip_blocks(at, s.remote_ip_blocks, sp + ".remote_ip_blocks");
        check_ip_blocks(at, s.not_remote_ip_blocks, sp + ".not_remote_ip_blocks");
      }
      for (size_t i = 0; i < rule.to.size(); ++i) {
        const AuthzOperation& o = rule.to[i];
        std::string op = fmt::format("{}.to[{}].operation", rp, i);
        bool empty = o.hosts.empty() && o.not_hosts.empty() && o.ports.empty() &&
                     o.not_ports.empty() && o.methods.empty() && o.not_methods.empty() &&
                     o.paths.empty() && o.not_paths.empty();
        if (empty && at.written(op)) at.error(op, "an operation needs at least one field");
        for (auto [list, name] :
             {std::pair{&o.ports, "ports"}, std::pair{&o.not_ports, "not_ports"}}) {
          for (size_t k = 0; k < list->size(); ++k) {
            const std::string& p = (*list)[k];
            int n = 0;
            bool ok = !p.empty() && p.size() <= 5 &&
                      std::all_of(p.begin(), p.end(), [](char c) { return c >= '0' && c <= '9'; });
            if (ok) n = std::stoi(p);
            if (!ok || n < 1 || n > 65535) {
              at.error(fmt::format("{}.{}[{}]", op, name, k),
                       fmt::format("expected a port number from 1 to 65535, got {}", q(p)));
            }
          }
        }
      }
      std::vector<std::string> keys(std::begin(kConditionKeys), std::end(kConditionKeys));
      for (size_t i = 0; i < rule.when.size(); ++i) {
        const AuthzCondition& c = rule.when[i];
        std::string cp = fmt::format("{}.when[{}]", rp, i);
        if (c.key.empty()) continue;
        bool known = std::find(keys.begin(), keys.end(), c.key) != keys.end() ||
                     c.key.starts_with("experimental.envoy.filters.");
        for (std::string_view prefix : kConditionPrefixes) {
          if (c.key.starts_with(prefix)) {
            known = c.key.size() > prefix.size() + 1 && c.key.back() == ']';
            if (!known) {
              at.error(cp + ".key", fmt::format("expected {}NAME], got {}", prefix, q(c.key)));
            }
            known = true;  // reported above if malformed
          }
        }
        if (!known) {
          std::vector<std::string> all = keys;
          all.emplace_back("request.headers[NAME]");
          all.emplace_back("request.auth.claims[NAME]");
          at.error(cp + ".key",
                   fmt::format("unknown condition key {}: expected one of {}{}", q(c.key),
                               fmt::join(all, ", "), did_you_mean(c.key, keys)));
        }
        if (c.values.empty() && c.not_values.empty())
          at.error(cp, "a condition needs values or not_values");
        if (c.key == "source.ip" || c.key == "remote.ip" || c.key == "destination.ip") {
          check_ip_blocks(at, c.values, cp + ".values");
          check_ip_blocks(at, c.not_values, cp + ".not_values");
        }
      }
    }
  }

  void check_request_authentication(const RequestAuthentication& ra) {
    At at{*this, ra, "request_authentication"};
    for (size_t i = 0; i < ra.jwt_rules.size(); ++i) {
      const JwtRule& j = ra.jwt_rules[i];
      std::string jp = fmt::format("jwt_rules[{}]", i);
      if (j.issuer.empty() && at.written(jp + ".issuer"))
        at.error(jp + ".issuer", "issuer cannot be empty");
      if (!j.jwks.empty() && !j.jwks_uri.empty())
        at.error(jp + ".jwks", "set jwks or jwks_uri, not both");
      if (!j.jwks_uri.empty() && !j.jwks_uri.starts_with("http://") &&
          !j.jwks_uri.starts_with("https://") && !j.jwks_uri.starts_with("file:///")) {
        at.error(jp + ".jwks_uri",
                 fmt::format("expected an http://, https:// or file:///PATH URL, got {}",
                             q(j.jwks_uri)));
      }
      if (!j.jwks.empty() && j.jwks_uri.empty()) {
        // Parsed as the control plane will: RSA and EC P-256/P-384 keys are used, others
        // skipped; a set with none is an error here rather than refused tokens later.
        auto jwks = tls::Jwks::parse(j.jwks);
        if (!jwks)
          at.error(jp + ".jwks", "expected a JWKS document (a JSON object with \"keys\"): " +
                                     jwks.error().message());
      }
      for (size_t h = 0; h < j.from_headers.size(); ++h) {
        if (j.from_headers[h].name.empty())
          at.error(fmt::format("{}.from_headers[{}].name", jp, h), "a header name cannot be empty");
      }
      if (j.timeout && j.timeout->count() == 0) at.error(jp + ".timeout", "must be at least 1ms");
    }
  }

  const Config& c_;
  HostIndex hosts_;
  std::map<std::pair<std::string, std::string>, const Gateway*> gateways_;
  std::map<std::pair<std::string, std::string>, const Service*> services_;
  std::vector<ConfigError> out_;
};

// The options plane/snapshot.cpp compiles regexes with (StringMatcher::Regex and
// RegexRewrite::Regex), so validation accepts exactly what the data plane compiles.
// `ignore_case` as for a uri match with ignore_uri_case: RE2 parses the pattern the same way,
// but case folding makes the compiled program several times larger, so it can pass the
// memory limit where the case-sensitive one does not.
RE2::Options re2_options(bool ignore_case) {
  RE2::Options o;
  o.set_log_errors(false);  // the reason goes into the finding, not to stderr
  o.set_case_sensitive(!ignore_case);
  // RE2's default, which snapshot.cpp keeps; must stay equal to it: a lower limit would
  // reject patterns the data plane compiles, a higher one would pass patterns it refuses.
  o.set_max_mem(int64_t{8} << 20);
  return o;
}

constexpr size_t kMaxPatternLength = 1024;

// RE2's reason, e.g. "invalid repetition size: {1001}" or "missing ]: [a-z", is already
// a good phrase: "<what>: <fragment>". It is kept, with the fragment shortened, dropped when
// it is the whole pattern (missing or unexpected ')': the finding quotes the pattern
// already), and followed by a hint when the pattern is written for another regex syntax.
std::string describe(const RE2& re, std::string_view pattern, bool ignore_case) {
  std::string_view what = re.error();
  std::string_view arg = re.error_arg();
  if (!arg.empty() && what.size() >= arg.size() + 2 && what.ends_with(arg))
    what.remove_suffix(arg.size() + 2);
  std::string out(what);
  if (!arg.empty() && arg != pattern) {
    std::string frag = quote_for_message(arg);  // control characters escaped, long ones cut
    out += ": " + frag.substr(1, frag.size() - 2);
  }
  constexpr std::string_view kRe2 = "patterns are RE2 syntax";
  switch (re.error_code()) {
    case RE2::ErrorBadPerlOp:
      if (arg == "(?=" || arg == "(?!") {
        out += fmt::format(" (lookahead is not supported: {})", kRe2);
      } else if (arg == "(?<" && (pattern.find("(?<=") != std::string_view::npos ||
                                  pattern.find("(?<!") != std::string_view::npos)) {
        out += fmt::format(" (lookbehind is not supported: {})", kRe2);
      } else if (arg == "(?<") {
        out += " (write a named group as (?P<name>…))";
      } else if (arg == "(?P" && pattern.find("(?P=") != std::string_view::npos) {
        out += fmt::format(" (backreferences are not supported: {})", kRe2);
      }
      break;
    case RE2::ErrorBadEscape:
      if (arg.size() == 2 && arg[1] >= '1' && arg[1] <= '9')
        out += fmt::format(" (backreferences are not supported: {})", kRe2);
      break;
    case RE2::ErrorRepeatSize: {
      // `arg` is "{n}", "{n,}" or "{n,m}": a count over 1000, a maximum below the minimum, or
      // nested repeats whose counts multiply past 1000 ("(a{10}){101}").
      const char* end = arg.data() + arg.size();
      auto count = [end](const char* from, long long& v) {
        auto [ptr, ec] = std::from_chars(from, end, v);
        if (ec == std::errc::result_out_of_range) v = std::numeric_limits<long long>::max();
        return ptr;
      };
      long long lo = 0, hi = -1;
      const char* p = count(arg.data() + std::min<size_t>(1, arg.size()), lo);
      if (p < end && *p == ',') count(p + 1, hi);
      if (lo > 1000 || hi > 1000) {
        out += " (at most 1000)";
      } else if (hi >= 0 && hi < lo) {
        out += " (the maximum is below the minimum)";
      } else {
        out += " (nested repeats multiply: at most 1000 in all)";
      }
      break;
    }
    case RE2::ErrorPatternTooLarge:
      // RE2 says "pattern too large - compile failed".
      out = fmt::format(
          "too large once compiled{} (over RE2's memory limit); use smaller repeat "
          "counts or character classes",
          ignore_case ? ", case-insensitive" : "");
      break;
    default:
      break;
  }
  return out;
}

}  // namespace

std::optional<std::string> regex_error(const std::string& pattern, bool ignore_case) {
  if (pattern.size() > kMaxPatternLength)
    return fmt::format("{} characters long; at most {}", pattern.size(), kMaxPatternLength);
  RE2 re(pattern, re2_options(ignore_case));
  if (re.ok()) return std::nullopt;
  return describe(re, pattern, ignore_case);
}

std::optional<std::string> rewrite_error(const std::string& pattern,
                                         const std::string& substitution) {
  if (pattern.size() > kMaxPatternLength) return std::nullopt;  // regex_error reports it
  RE2 re(pattern, re2_options(false));
  std::string why;
  if (!re.ok() || re.CheckRewriteString(substitution, &why)) return std::nullopt;
  // RE2 has the verdict; its reason is worded for programmers ("Rewrite schema requests 3
  // matches, but the regexp only has 2 parenthesized subexpressions."), so say it again in
  // the config's terms, finding the same mistake CheckRewriteString found.
  const int groups = re.NumberOfCapturingGroups();
  for (size_t i = 0; i < substitution.size(); ++i) {
    if (substitution[i] != '\\') continue;
    if (i + 1 == substitution.size()) return "ends with a lone \\; write \\\\ for a backslash";
    char n = substitution[++i];
    if (n == '\\') continue;
    if (n < '0' || n > '9')
      return "a \\ must be followed by a group number (\\0 for the whole match, \\1 to \\9) or "
             "another \\";
    if (n - '0' > groups)
      return fmt::format("\\{} refers to group {}, but the pattern has {}", n, n - '0',
                         groups == 0   ? "no groups"
                         : groups == 1 ? "only 1 group"
                                       : fmt::format("only {} groups", groups));
  }
  return why;  // not reached while the scan above matches RE2's rules
}

std::vector<ConfigError> validate(const Config& config) {
  return Validator(config).run();
}

}  // namespace meshbox::config
