#include "plane/control/control_plane.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <limits>
#include <map>
#include <set>
#include <sstream>

#include <fmt/chrono.h>
#include <fmt/format.h>

#include "core/base/json.h"
#include "core/base/log.h"
#include "core/base/random.h"
#include "core/loop/timer.h"
#include "core/tls/handshake_stats.h"
#include "plane/config/decode.h"
#include "plane/config/host_index.h"
#include "plane/control/ca.h"
#include "plane/control/ca_share.h"
#include "plane/control/compiler.h"
#include "plane/control/dashboard.h"
#include "plane/control/edges.h"
#include "plane/control/etcd_client.h"
#include "plane/control/etcd_store.h"
#include "plane/control/gateway_tls.h"
#include "plane/control/http_server.h"
#include "plane/control/jwks_cache.h"
#include "plane/control/node_sync.h"
#include "plane/control/registry.h"
#include "plane/control/store.h"
#include "plane/control/supervisor.h"
#include "plane/control/tap_api.h"
#include "plane/control/upstream_tls.h"

namespace meshbox::control {

namespace {

constexpr uint64_t kFileWatchIntervalMs = 500;
// meshbox run waits this long for etcd's first answers before giving up.
constexpr uint64_t kEtcdStartTimeoutMs = 10'000;
// A commit another node's commit beat is validated and tried again this many times, this
// long apart (the watch brings the newer config meanwhile).
constexpr int kMaxConflictRetries = 5;
constexpr uint64_t kConflictRetryMs = 100;

/// What captured workloads take from the mesh config (supervisor.h).
CaptureSettings capture_settings(const config::Config& config) {
  return {config.mesh.capture_cidr, service_vips(config)};
}

std::string resource_key(std::string_view kind, std::string_view ns, std::string_view name) {
  return fmt::format("{}/{}/{}", kind, ns, name);
}

// The .toml files a path stands for (config::list_config_files, as decode_path reads them),
// with errors that name the path.
Result<std::vector<std::string>> config_files(const std::string& path) {
  auto files = config::list_config_files(path);
  if (!files) return Status(files.error().code(), path + ": " + files.error().message());
  return files;
}

Result<std::string> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status(Code::Io, path + ": " + std::strerror(errno));
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string format_findings(const std::vector<config::ConfigError>& findings) {
  std::string out;
  for (const auto& f : findings)
    out += config::format(f) + "\n";
  return out;
}

bool constant_time_equal(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i)
    diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

std::string_view lb_name(LbPolicy p) {
  switch (p) {
    case LbPolicy::RoundRobin:
      return "round_robin";
    case LbPolicy::Random:
      return "random";
    case LbPolicy::LeastRequest:
      return "least_request";
  }
  return "round_robin";
}

std::string_view kind_name(StringMatcher::Kind k) {
  switch (k) {
    case StringMatcher::Kind::Exact:
      return "exact";
    case StringMatcher::Kind::Prefix:
      return "prefix";
    case StringMatcher::Kind::Regex:
      return "regex";
    case StringMatcher::Kind::Present:
      return "present";
  }
  return "exact";
}

std::string describe(const StringMatcher& m) {
  if (m.kind() == StringMatcher::Kind::Present) return "present";
  return fmt::format("{} {}", kind_name(m.kind()), m.value());
}

// "uri prefix /api, header end-user exact jason" — one match block, for `meshbox get routes`.
std::string describe(const RouteMatchSpec& m) {
  std::vector<std::string> parts;
  if (m.path) parts.push_back("uri " + describe(*m.path));
  if (m.method) parts.push_back("method " + describe(*m.method));
  if (m.authority) parts.push_back("authority " + describe(*m.authority));
  if (m.scheme) parts.push_back("scheme " + describe(*m.scheme));
  for (const auto& h : m.headers)
    parts.push_back(fmt::format("{}header {} {}", h.invert ? "!" : "", h.name, describe(h.match)));
  for (const auto& q : m.query_params)
    parts.push_back(fmt::format("query {} {}", q.name, describe(q.match)));
  if (m.port) parts.push_back(fmt::format("port {}", m.port));
  std::string out;
  for (const auto& p : parts)
    out += (out.empty() ? "" : ", ") + p;
  return out.empty() ? "*" : out;
}

}  // namespace

// Polls the config files' names, sizes and modification times. Polling (twice a second, a
// handful of stat calls on the control thread) sees every way editors replace files
// (rename over, truncate and write, a new file in the directory), which inotify watches on
// the files themselves would miss.
class ControlPlane::FileWatch {
 public:
  FileWatch(loop::Loop& loop, std::vector<std::string> paths, std::function<void()> on_change)
      : paths_(std::move(paths)), on_change_(std::move(on_change)), timer_(loop, [this] {
          std::string s = signature();
          if (s != last_) {
            last_ = s;
            on_change_();
          }
          timer_.start(kFileWatchIntervalMs);
        }) {
    last_ = signature();
    timer_.start(kFileWatchIntervalMs);
  }
  void rearm() { last_ = signature(); }

 private:
  std::string signature() const {
    std::string s;
    for (const auto& p : paths_) {
      auto files = config_files(p);
      if (!files) {
        s += p + " missing\n";
        continue;
      }
      for (const auto& f : *files) {
        struct stat st {};
        if (::stat(f.c_str(), &st) != 0) continue;
        s += fmt::format("{} {} {}.{}\n", f, st.st_size, st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
      }
    }
    return s;
  }

  std::vector<std::string> paths_;
  std::function<void()> on_change_;
  loop::Timer timer_;
  std::string last_;
};

ControlPlane::ControlPlane(loop::Loop& loop, SnapshotSink& sink, ControlOptions options)
    : loop_(loop), sink_(sink), options_(std::move(options)) {}

ControlPlane::~ControlPlane() {
  *alive_ = false;
  stop();
}

const loop::Address& ControlPlane::admin_address() const {
  static const loop::Address none;
  return admin_ ? admin_->address() : none;
}

Status ControlPlane::start() {
  if (!options_.store_url.empty()) {
    // A multi-node mesh: the store and the registry in etcd (docs/multinode.md).
    auto url = parse_etcd_url(options_.store_url);
    if (!url) return url.error();
    if (options_.node.empty())
      return Status(Code::InvalidArgument, "--store etcd://… needs --node NAME");
    if (!dns::is_ip(options_.node_address))
      return Status(Code::InvalidArgument,
                    "--store etcd://… needs --node-address IP (where other nodes reach this one)");
    etcd::Options eo;
    eo.endpoints = url->endpoints;
    etcd_ = std::make_unique<etcd::Client>(loop_, std::move(eo));
    etcd_prefix_ = url->prefix;
    auto store = EtcdStore::open(loop_, *etcd_, url->prefix, kEtcdStartTimeoutMs);
    if (!store) return store.error();
    etcd_store_ = store->get();
    store_ = std::move(*store);
    MB_INFO("control", "node {}: config store in etcd under {} (revision {})", options_.node,
            url->prefix, store_->revision());
  } else {
    auto store = EmbeddedStore::open(loop_, options_.state_dir);
    if (!store) return store.error();
    store_ = std::move(*store);
  }
  // Many nodes, one CA: the root kept in etcd, sealed with the mesh key (or the operator's
  // files in every node's STATE_DIR/cacerts, which share_ca leaves alone).
  if (etcd_) {
    std::string cacerts = options_.state_dir + "/cacerts/ca-key.pem";
    if (!options_.mesh_key_file.empty()) {
      auto key = read_mesh_key(options_.mesh_key_file);
      if (!key) return Status(key.error().code(), "--mesh-key: " + key.error().message());
      MB_TRY(share_ca(loop_, *etcd_, etcd_prefix_, options_.state_dir, *key, kEtcdStartTimeoutMs));
    } else if (::access(cacerts.c_str(), R_OK) != 0) {
      return Status(Code::InvalidArgument,
                    "a multi-node mesh needs one CA on every node: --mesh-key FILE (the root "
                    "kept in etcd, sealed), or the operator's CA files in " +
                        options_.state_dir + "/cacerts");
    }
  }
  // The CA next, before anything listens: an operator's CA files that do not load stop the
  // start. Its root's fingerprint goes to the log, never a key.
  auto ca = CertificateAuthority::open(options_.state_dir);
  if (!ca) return Status(ca.error().code(), "certificate authority: " + ca.error().message());
  ca_ = std::move(*ca);
  MB_INFO("ca", "{}", ca_->describe());
  register_metrics();
  registry_ = std::make_unique<Registry>(
      loop_, [this] { recompile(); }, dns::ResolverOptions::for_state_dir(options_.state_dir));
  if (etcd_) {
    NodeSyncOptions no;
    no.prefix = etcd_prefix_;
    no.node = options_.node;
    no.address = options_.node_address;
    no.locality = options_.locality;
    no.lease_ttl_s = options_.lease_ttl_s;
    node_sync_ = std::make_unique<NodeSync>(loop_, *etcd_, std::move(no),
                                            [this](std::vector<Endpoint> remote) {
                                              if (registry_)
                                                registry_->set_remote_endpoints(std::move(remote));
                                            });
    node_sync_->start();
  }
  store_->watch([this] { on_store_change(); });
  on_store_change();  // what the store had from the last run

  if (!options_.config_paths.empty()) {
    Change c;
    c.origin = "file";
    c.replace_origin = true;
    for (const auto& path : options_.config_paths) {
      auto files = config_files(path);
      if (!files) return files.error();
      if (files->empty())
        return Status(Code::NotFound, path + ": " + std::string(config::kNoTomlFiles));
      for (const auto& f : *files) {
        auto text = read_file(f);
        if (!text) return text.error();
        c.documents.push_back({f, std::move(*text)});
      }
    }
    Status status;
    bool finished = false;
    change(std::move(c), [&](ChangeResult r) {
      finished = true;
      if (!r.ok)
        status =
            Status(Code::InvalidArgument, r.error.empty() ? format_findings(r.findings) : r.error);
      else if (!r.findings.empty())
        MB_WARN("control", "config warnings:\n{}", format_findings(r.findings));
    });
    // The embedded store commits synchronously; etcd's answers come through the loop, which
    // does not run yet.
    if (!finished) loop_.run_until([&] { return finished; }, kEtcdStartTimeoutMs);
    if (!finished) return Status(Code::Unavailable, "the store did not answer");
    if (!status.is_ok()) return status;
  }
  // The first snapshot: the store as the files left it.
  publishing_ = true;
  recompile();
  if (!last_publish_error_.empty()) return Status(Code::Io, last_publish_error_);
  if (!sink_.current()) return Status(Code::Internal, "no snapshot published");

  auto admin_addr = loop::Address::parse(options_.admin_address);
  if (!admin_addr) return Status(Code::InvalidArgument, "--admin: " + admin_addr.error().message());
  auto admin = HttpServer::listen(loop_, *admin_addr, [this](HttpRequest& req, Respond respond) {
    handle(req, std::move(respond));
  });
  if (!admin) return Status(admin.error().code(), "admin API: " + admin.error().message());
  admin_ = std::move(*admin);

  // The token: 32 random bytes, hex, readable by this user only.
  Random random;
  token_.clear();
  for (int i = 0; i < 4; ++i)
    token_ += fmt::format("{:016x}", random.next());
  std::string token_path = options_.state_dir + "/admin.token";
  int fd = ::open(token_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return Status(Code::Io, token_path + ": " + std::strerror(errno));
  ::fchmod(fd, 0600);  // an existing file keeps its mode through O_CREAT
  std::string line = token_ + "\n";
  bool ok = ::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size());
  ::close(fd);
  if (!ok) return Status(Code::Io, token_path + ": cannot write");
  std::string addr_path = options_.state_dir + "/admin.address";
  std::ofstream(addr_path, std::ios::trunc) << admin_->address().to_string() << "\n";

  if (options_.watch_files && !options_.config_paths.empty())
    file_watch_ =
        std::make_unique<FileWatch>(loop_, options_.config_paths, [this] { reload_files(); });

  // The workloads last: a start that failed above leaves no process behind.
  SupervisorOptions sup;
  sup.log_dir = options_.state_dir + "/logs";
  sup.echo_fd = options_.workload_echo_fd;
  sup.environment = options_.environment;
  sup.launcher = options_.workload_launcher;
  sup.stop_grace_ms = options_.workload_stop_grace_ms;
  // A recompile too: an instance's sidecar listeners come with its process, before the
  // registry lists its endpoint (starting_sidecars).
  supervisor_ = std::make_unique<Supervisor>(loop_, std::move(sup), [this] {
    update_instance_endpoints();
    recompile();
  });
  if (config_) supervisor_->set_workloads(placed_workloads(), capture_settings(*config_));
  update_instance_endpoints();
  return Status::ok();
}

std::vector<config::Workload> ControlPlane::placed_workloads() const {
  std::vector<config::Workload> out;
  if (!config_) return out;
  for (const auto& w : config_->workloads) {
    // One node runs everything; of many, each runs what names it, or names no node.
    if (etcd_ && !w.nodes.empty() &&
        std::find(w.nodes.begin(), w.nodes.end(), options_.node) == w.nodes.end())
      continue;
    out.push_back(w);
  }
  return out;
}

void ControlPlane::publish_local_endpoints() {
  if (!node_sync_ || !registry_) return;
  node_sync_->set_local(registry_->endpoints());
}

std::string ControlPlane::nodes_json() const {
  json::Writer w;
  w.begin_object().key("nodes").begin_array();
  auto instances_here = [&] {
    std::vector<std::string> out;
    if (supervisor_)
      for (const auto& r : supervisor_->running())
        out.push_back(r.workload->ns + "/" + r.instance);
    return out;
  };
  if (!node_sync_) {
    w.begin_object()
        .field("name", options_.node.empty() ? "local" : options_.node)
        .field("address", options_.node_address)
        .field("locality", options_.locality)
        .field("self", true)
        .key("instances")
        .begin_array();
    for (const auto& i : instances_here())
      w.value(i);
    w.end_array().end_object();
  } else {
    for (const auto& n : node_sync_->nodes()) {
      w.begin_object()
          .field("name", n.name)
          .field("address", n.address)
          .field("locality", n.locality)
          .field("self", n.self)
          .field("started_unix_ms", n.started_unix_ms)
          .field("heartbeat_unix_ms", n.heartbeat_unix_ms)
          .field("endpoints", n.endpoints)
          .key("instances")
          .begin_array();
      for (const auto& i : n.instances)
        w.value(i);
      w.end_array().end_object();
    }
  }
  w.end_array();
  if (etcd_store_)
    w.key("store")
        .begin_object()
        .field("backend", "etcd")
        .field("connected", etcd_store_->connected() && node_sync_->connected())
        .field("revision", etcd_store_->revision())
        .end_object();
  w.end_object();
  return w.take();
}

void ControlPlane::stop_workloads(std::function<void()> done) {
  if (!supervisor_) return loop_.run_soon(std::move(done));
  supervisor_->stop_all(std::move(done));
}

void ControlPlane::kill_workloads() {
  if (supervisor_) supervisor_->kill_all();
}

void ControlPlane::stop() {
  // A node that stops leaves the mesh now, not when its lease runs out.
  if (node_sync_) node_sync_->leave();
  // The etcd store's watch stream would keep the loop (and `meshbox run`) running; a change
  // waiting to be retried after a conflict is dropped with it (the admin API is closing).
  if (etcd_store_) {
    etcd_store_ = nullptr;
    store_.reset();
  }
  conflict_timer_.reset();
  conflict_retries_.clear();
  file_watch_.reset();
  if (admin_) admin_->close();
  admin_.reset();
  supervisor_.reset();
  registry_.reset();
  renew_timer_.reset();  // no more snapshots: nothing to renew
  upstream_tls_timer_.reset();
  gateway_tls_.reset();
  jwks_.reset();  // cancels the fetches in flight
}

void ControlPlane::update_instance_endpoints() {
  if (!supervisor_ || !registry_ || !config_) return;
  config::HostIndex index(*config_);
  std::vector<Endpoint> eps;
  for (const auto& r : supervisor_->running()) {
    eps.push_back(instance_endpoint(index, *r.workload, r.port, r.instance, r.sidecar_inbound_port,
                                    r.sidecar_outbound_port, r.netns, r.netns_ip));
    // Many nodes: the inbound sidecar listens on the node's address, for the others to reach.
    if (etcd_) eps.back().sidecar_address = options_.node_address;
    if (eps.back().locality.empty()) eps.back().locality = options_.locality;
  }
  registry_->set_instance_endpoints(std::move(eps));
}

std::vector<Endpoint> ControlPlane::starting_sidecars() const {
  std::vector<Endpoint> out;
  if (!supervisor_ || !registry_ || !config_) return out;
  std::set<std::pair<std::string, std::string>> listed;  // (namespace, instance)
  for (const auto& e : registry_->endpoints())
    if (!e.instance.empty()) listed.emplace(e.ns, e.instance);
  config::HostIndex index(*config_);
  for (const auto& r : supervisor_->running()) {
    if (!r.sidecar_inbound_port || listed.count({r.workload->ns, r.instance})) continue;
    Endpoint ep = instance_endpoint(index, *r.workload, r.port, r.instance, r.sidecar_inbound_port,
                                    r.sidecar_outbound_port, r.netns, r.netns_ip);
    if (etcd_) ep.sidecar_address = options_.node_address;
    ep.host.clear();
    out.push_back(std::move(ep));
  }
  return out;
}

void ControlPlane::reload_files() {
  if (options_.config_paths.empty()) return;
  if (file_watch_) file_watch_->rearm();
  Change c;
  c.origin = "file";
  c.replace_origin = true;
  for (const auto& path : options_.config_paths) {
    auto files = config_files(path);
    if (!files) {
      MB_ERROR("control", "reload rejected: {}", files.error().message());
      return;
    }
    for (const auto& f : *files) {
      auto text = read_file(f);
      if (!text) {
        MB_ERROR("control", "reload rejected: {}", text.error().message());
        return;
      }
      c.documents.push_back({f, std::move(*text)});
    }
  }
  change(std::move(c), [](ChangeResult r) {
    if (!r.ok) {
      MB_ERROR("control", "reload rejected, the running config stays:\n{}",
               r.error.empty() ? format_findings(r.findings) : r.error);
      return;
    }
    if (!r.findings.empty())
      MB_WARN("control", "config warnings:\n{}", format_findings(r.findings));
    if (r.changed.empty())
      MB_INFO("control", "reload: nothing changed");
    else
      MB_INFO("control", "reload: revision {}, {} resource(s) changed", r.revision,
              r.changed.size());
  });
}

void ControlPlane::change(Change c, std::function<void(ChangeResult)> done) {
  if (!store_) {  // stopped
    ChangeResult stopped;
    stopped.error = "meshbox is stopping";
    stopped.error_code = Code::Unavailable;
    return done(std::move(stopped));
  }
  // What the new documents define.
  config::Loaded incoming = config::load_documents(c.documents);
  std::set<std::string> incoming_keys;
  for (const auto& r : config::list_resources(incoming.config))
    incoming_keys.insert(resource_key(r.kind, r.ns, r.name));
  std::set<std::string> removed(c.removed_keys.begin(), c.removed_keys.end());

  // The candidate: what the store keeps, then the new documents. Validated whole.
  std::vector<config::Document> docs;
  std::vector<StoreMutation> mutations;
  std::map<std::string, const StoredResource*> stored;
  for (const auto& r : store_->resources()) {
    std::string key = resource_key(r.kind, r.ns, r.name);
    stored[key] = &r;
    bool drop = incoming_keys.count(key) || removed.count(key) ||
                (c.replace_origin && r.origin == c.origin);
    if (!drop) {
      docs.push_back({"<store>/" + key, r.toml});
      continue;
    }
    if (!incoming_keys.count(key))
      mutations.push_back({StoreMutation::Op::Delete, r.kind, r.ns, r.name, "", c.origin});
  }
  for (const auto& d : c.documents)
    docs.push_back(d);
  ChangeResult result;
  for (const auto& key : removed)
    if (!stored.count(key)) {
      result.error = "no " + key;
      return done(std::move(result));
    }
  config::Loaded candidate = config::load_documents(docs);
  result.findings = std::move(candidate.findings);
  if (config::has_errors(result.findings)) return done(std::move(result));

  for (const auto& r : config::list_resources(incoming.config)) {
    mutations.push_back({StoreMutation::Op::Put, std::string(r.kind), std::string(r.ns),
                         std::string(r.name), r.source->toml, c.origin});
  }
  for (const auto& m : mutations) {
    std::string key = resource_key(m.kind, m.ns, m.name);
    auto it = stored.find(key);
    bool same = it != stored.end() && m.op == StoreMutation::Op::Put &&
                it->second->toml == m.toml && it->second->origin == m.origin;
    if (!same) result.changed.push_back(key);
  }
  auto alive = alive_;
  store_->commit(store_->revision(), std::move(mutations),
                 [this, alive, result = std::move(result), retry = std::move(c),
                  done = std::move(done)](Result<uint64_t> rev) mutable {
                   if (!*alive) return;
                   if (!rev) {
                     // Another node committed first: validate again on top of its change,
                     // once the watch brought it (a few times, then give up).
                     if (rev.error().code() == Code::Conflict && etcd_ &&
                         retry.attempt < kMaxConflictRetries) {
                       ++retry.attempt;
                       conflict_retries_.emplace_back(std::move(retry), std::move(done));
                       if (!conflict_timer_)
                         conflict_timer_ = std::make_unique<loop::Timer>(loop_, [this] {
                           auto retries = std::move(conflict_retries_);
                           conflict_retries_.clear();
                           for (auto& [c, d] : retries)
                             change(std::move(c), std::move(d));
                         });
                       conflict_timer_->start(kConflictRetryMs);
                       return;
                     }
                     result.error = "store: " + rev.error().message();
                     result.error_code = rev.error().code();
                     return done(std::move(result));
                   }
                   result.ok = true;
                   result.revision = *rev;
                   on_store_change();  // compile and publish now, not on the next iteration
                   done(std::move(result));
                 });
}

void ControlPlane::on_store_change() {
  if (!store_ || (config_ && config_revision_ == store_->revision())) return;
  std::vector<config::Document> docs;
  for (const auto& r : store_->resources())
    docs.push_back({"<store>/" + resource_key(r.kind, r.ns, r.name), r.toml});
  config::Loaded loaded = config::load_documents(docs);
  if (!loaded.ok()) {
    // Validated before commit; only a store written by something else could get here.
    MB_ERROR("control",
             "the store's config (revision {}) does not validate; keeping the "
             "running one:\n{}",
             store_->revision(), format_findings(loaded.findings));
    return;
  }
  config_ = std::make_shared<const config::Config>(std::move(loaded.config));
  config_revision_ = store_->revision();
  if (registry_) registry_->set_config_endpoints(endpoints_from_config(*config_));
  if (supervisor_) {
    supervisor_->set_workloads(placed_workloads(), capture_settings(*config_));
    update_instance_endpoints();
  }
  recompile();
}

void ControlPlane::recompile() {
  if (!publishing_ || !config_ || !registry_) return;
  CompileOptions opts;
  opts.default_bind = options_.default_bind;
  opts.locality = options_.locality;
  opts.identity = [this](const std::string& id) { return mesh_identity(id); };
  if (!upstream_tls_) upstream_tls_ = std::make_unique<UpstreamTlsCache>();
  upstream_tls_->begin();
  opts.upstream_tls = [this](const config::ClientTls& t, const std::string& sni) {
    return upstream_tls_->get(t, sni);
  };
  // A bucket lives as long as compiles keep asking for it with the same numbers: a push
  // does not refill it, a changed limit starts a full one.
  std::map<std::string, std::shared_ptr<TokenBucket>> buckets;
  opts.rate_limit_bucket = [&](const std::string& key, uint32_t max_tokens, uint32_t per_fill,
                               uint64_t interval_ms) {
    auto same = [&](const std::shared_ptr<TokenBucket>& b) {
      return b->max_tokens() == max_tokens && b->tokens_per_fill() == per_fill &&
             b->fill_interval_ms() == interval_ms;
    };
    if (auto it = buckets.find(key); it != buckets.end() && same(it->second)) return it->second;
    auto old = buckets_.find(key);
    std::shared_ptr<TokenBucket> b =
        old != buckets_.end() && same(old->second)
            ? old->second
            : std::make_shared<TokenBucket>(max_tokens, per_fill, interval_ms,
                                            TokenBucket::now_ms());
    buckets[key] = b;
    return b;
  };
  // An instance's sidecar serves from the start of its process, not from its first passed
  // health check: the app's outbound calls work while it starts, and `meshbox inject` can
  // start the app once the listeners serve. Until the registry lists its endpoint, the
  // instance goes in with an empty host: the compiler gives every endpoint with an instance
  // and sidecar ports its listeners, and no service's cluster takes an endpoint of no host.
  const std::vector<Endpoint>* endpoints = &registry_->endpoints();
  std::vector<Endpoint> with_starting;
  if (std::vector<Endpoint> starting = starting_sidecars(); !starting.empty()) {
    with_starting = registry_->endpoints();
    with_starting.insert(with_starting.end(), std::make_move_iterator(starting.begin()),
                         std::make_move_iterator(starting.end()));
    endpoints = &with_starting;
  }
  // Gateway TLS termination: contexts from the servers' certificate files, rebuilt when a
  // file changes (gateway_tls.h polls them).
  if (!gateway_tls_) gateway_tls_ = std::make_unique<GatewayTls>(loop_, [this] { recompile(); });
  gateway_tls_->begin_compile();
  opts.server_tls = [this](const config::ServerTls& t, bool https) {
    return gateway_tls_->context(t, https);
  };
  // request_authentication jwks_uri: key sets read from files or fetched in the background;
  // a set that arrives or changes recompiles.
  if (!jwks_)
    jwks_ = std::make_unique<JwksCache>(
        loop_, dns::ResolverOptions::for_state_dir(options_.state_dir), [this] { recompile(); });
  jwks_->begin();
  opts.jwks_uri = [this](const std::string& uri, uint64_t timeout_ms, std::string& error) {
    return jwks_->get(uri, timeout_ms, error);
  };
  Compiled c = compile(*config_, *endpoints, opts);
  jwks_->sweep();
  gateway_tls_->end_compile();
  upstream_tls_->sweep();
  if (upstream_tls_->size() > 0 && !upstream_tls_timer_) {
    // Certificate files are polled (a few stat calls a second), as the config files are.
    upstream_tls_timer_ = std::make_unique<loop::Timer>(loop_, [this] {
      upstream_tls_timer_->start(kFileWatchIntervalMs);
      if (upstream_tls_->files_changed()) {
        MB_INFO("control", "a destination_rule tls file changed: new TLS contexts");
        recompile();
      }
    });
    upstream_tls_timer_->start(kFileWatchIntervalMs);
  }
  buckets_ = std::move(buckets);
  if (c.warnings != compile_warnings_)
    for (const auto& w : c.warnings)
      MB_WARN("control", "{}", w);
  compile_warnings_ = std::move(c.warnings);
  SnapshotConstPtr current = sink_.current();
  if (current && current->same_content(*c.snapshot)) {  // nothing to push
    publish_local_endpoints();
    return;
  }
  auto r = sink_.publish(std::move(c.snapshot));
  if (!r) {
    last_publish_error_ = r.error().message();
    MB_ERROR("control", "cannot apply the new snapshot, the running one stays: {}",
             last_publish_error_);
    return;
  }
  last_publish_error_.clear();
  MB_INFO("control", "snapshot {} published (config revision {})", (*r)->version, config_revision_);
  // Other nodes learn of this node's instances once its workers serve their listeners.
  if (node_sync_)
    sink_.when_applied((*r)->version, [this, alive = alive_] {
      if (*alive) publish_local_endpoints();
    });
}

const MeshIdentity* ControlPlane::mesh_identity(const std::string& spiffe_id) {
  if (!ca_) return nullptr;
  auto now = std::chrono::system_clock::now();
  auto it = identities_.find(spiffe_id);
  if (it != identities_.end() && now < it->second.renew_at) return &it->second.contexts;
  auto issued = ca_->issue(spiffe_id, kDefaultWorkloadCertTtl, now);
  auto keep_old = [&]() -> const MeshIdentity* {
    return it != identities_.end() ? &it->second.contexts : nullptr;
  };
  if (!issued) {
    MB_WARN("ca", "cannot issue a certificate for {}: {}", spiffe_id, issued.error().message());
    return keep_old();
  }
  std::vector<tls::Certificate> chain{issued->leaf};
  chain.insert(chain.end(), issued->intermediates.begin(), issued->intermediates.end());
  tls::TlsContextSpec spec;
  spec.identities.push_back(tls::TlsIdentity{std::move(chain), issued->key, {}});
  spec.trusted_roots = {ca_->root()};
  spec.min_version = tls::TlsVersion::Tls13;
  spec.role = tls::TlsContextSpec::Role::Server;
  spec.client_certs = tls::ClientCertMode::Require;
  auto server = tls::TlsContext::create(spec);
  spec.role = tls::TlsContextSpec::Role::Client;
  spec.client_certs = tls::ClientCertMode::None;
  auto client = tls::TlsContext::create(spec);
  if (!server || !client) {
    MB_WARN("ca", "cannot make the TLS contexts of {}: {}", spiffe_id,
            (!server ? server.error() : client.error()).message());
    return keep_old();
  }
  auto renew_at = renewal_time(issued->leaf.not_before(), issued->leaf.not_after());
  MB_DEBUG("ca", "issued a certificate for {} (renewed after {} s)", spiffe_id,
           std::chrono::duration_cast<std::chrono::seconds>(renew_at - now).count());
  IdentityEntry& e = identities_[spiffe_id];
  e.contexts = {std::move(*server), std::move(*client)};
  e.leaf = issued->leaf;
  e.renew_at = renew_at;
  // Renewal: the next compile after the earliest half-life makes new contexts; the workers
  // take them with that snapshot (connections made before keep theirs until they close).
  auto earliest = renew_at;
  for (const auto& [id, entry] : identities_)
    earliest = std::min(earliest, entry.renew_at);
  if (!renew_timer_) renew_timer_ = std::make_unique<loop::Timer>(loop_, [this] { recompile(); });
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(earliest - now).count();
  renew_timer_->start(static_cast<uint64_t>(std::max<int64_t>(ms, 1000)));
  return &e.contexts;
}

bool ControlPlane::authorized(const HttpRequest& req) const {
  const std::string* auth = req.headers.get("authorization");
  if (!auth || auth->size() < 7 || !http::iequals(std::string_view(*auth).substr(0, 7), "bearer "))
    return false;
  return constant_time_equal(std::string_view(*auth).substr(7), token_);
}

void ControlPlane::handle(HttpRequest& req, Respond respond) {
  const std::string& m = req.method;
  const std::string& p = req.path;
  bool get = m == "GET" || m == "HEAD";
  bool mutating = m == "POST" || m == "PUT" || m == "DELETE";
  if (mutating && !authorized(req))
    return respond(error_response(401,
                                  "a valid token is required (Authorization: Bearer "
                                  "TOKEN, from STATE_DIR/admin.token)"));

  if (get && p == "/nodes") return respond(json_response(200, nodes_json()));
  if (get && p == "/healthz") {
    HttpResponse r;
    r.content_type = "text/plain";
    r.body = "ok\n";
    return respond(std::move(r));
  }
  if (get && p == "/ready") {
    SnapshotConstPtr cur = sink_.current();
    uint64_t version = cur ? cur->version : 0;
    bool ready = version > 0 && sink_.applied_version() >= version;
    json::Writer w;
    w.begin_object()
        .field("ready", ready)
        .field("version", version)
        .field("applied_version", sink_.applied_version())
        .field("revision", config_revision_);
    // Many nodes: whether etcd answers. Without it the node still serves its last config
    // (degraded): still ready, since sending it traffic works; the condition is reported.
    if (etcd_store_) {
      bool connected = etcd_store_->connected() && (!node_sync_ || node_sync_->connected());
      w.key("store").begin_object().field("backend", "etcd").field("connected", connected);
      if (!connected) {
        uint64_t since =
            etcd_store_->connected() ? loop_.now_ms() : etcd_store_->disconnected_since_ms();
        w.field("degraded", true)
            .field("degraded_for_ms", loop_.now_ms() - std::min(since, loop_.now_ms()));
      }
      w.end_object();
    }
    w.end_object();
    return respond(json_response(ready ? 200 : 503, w.take()));
  }
  if (get && p == "/config") {
    if (req.param("format").value_or("json") == "toml") {
      HttpResponse r;
      r.content_type = "application/toml";
      r.body = fmt::format("# revision {}\n", store_->revision());
      for (const auto& res : store_->resources())
        r.body += "\n" + res.toml;
      return respond(std::move(r));
    }
    std::map<std::string, const config::Source*> sources;
    if (config_)
      for (const auto& r : config::list_resources(*config_))
        sources[resource_key(r.kind, r.ns, r.name)] = r.source;
    json::Writer w;
    w.begin_object().field("revision", store_->revision()).key("resources").begin_array();
    for (const auto& res : store_->resources()) {
      w.begin_object()
          .field("kind", res.kind)
          .field("namespace", res.ns)
          .field("name", res.name)
          .field("origin", res.origin)
          .field("revision", res.revision);
      auto it = sources.find(resource_key(res.kind, res.ns, res.name));
      if (it != sources.end() && !it->second->json.empty()) {
        w.key("spec").raw(it->second->json);
      }
      w.end_object();
    }
    w.end_array().end_object();
    return respond(json_response(200, w.take()));
  }
  if (m == "POST" && p == "/config") return apply(req, std::move(respond));
  if (m == "DELETE" && p.rfind("/config/", 0) == 0) {
    // /config/KIND/NAMESPACE/NAME
    std::string key = p.substr(8);
    if (std::count(key.begin(), key.end(), '/') != 2)
      return respond(error_response(400, "expected /config/KIND/NAMESPACE/NAME"));
    Change c;
    c.origin = "api";
    c.removed_keys.push_back(key);
    bool wait = req.param("wait").has_value();
    return change(std::move(c), [this, wait, key, respond](ChangeResult r) {
      if (!r.ok && !r.error.empty() && r.error.rfind("no ", 0) == 0)
        return respond(error_response(404, r.error));
      finish_change(r, wait, respond);
    });
  }
  if (m == "GET" && p == "/tap") {
    // Live requests: paths and identities, so the token is asked for, as for changes.
    if (!authorized(req))
      return respond(error_response(401,
                                    "a valid token is required (Authorization: Bearer "
                                    "TOKEN, from STATE_DIR/admin.token)"));
    return serve_tap(sink_.tap(), req, std::move(respond));
  }
  if (get && p == "/tap/sessions") return respond(tap_sessions(sink_.tap()));
  if (get && p == "/services") return respond(json_response(200, services_json()));
  if (get && p == "/endpoints") return respond(json_response(200, endpoints_json()));
  if (get && p == "/clusters") {
    if (req.param("format").value_or("json") == "text") {
      HttpResponse r;
      r.content_type = "text/plain";
      r.body = clusters_text();
      return respond(std::move(r));
    }
    return respond(json_response(200, clusters_json()));
  }
  if (get && p == "/certs") return respond(json_response(200, certs_json()));
  if ((get || m == "POST" || m == "PUT") && p == "/logging")
    return logging(req, std::move(respond));
  if (get && p == "/routes") return respond(json_response(200, routes_json()));
  if (get && p == "/stats/push") return respond(json_response(200, push_stats_json()));
  if (get && p == "/stats/edges") {
    // The call graph from Istio's metrics, for `meshbox top` and /ui (edges.h).
    stats::Registry* reg = sink_.metrics();
    stats::Family* requests = reg ? reg->find("istio_requests_total") : nullptr;
    stats::Family* duration = reg ? reg->find("istio_request_duration_milliseconds") : nullptr;
    auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::system_clock::now().time_since_epoch());
    return respond(json_response(
        200, edges_json(collect_edges(requests, duration),
                        duration ? duration->bounds() : std::span<const double>(), now.count())));
  }
  if (get && (p == "/ui" || p.starts_with("/ui/"))) {
    HttpResponse r;
    r.content_type = "text/html; charset=utf-8";
    r.body = dashboard_html();
    // Everything is inline: nothing may load from elsewhere.
    r.headers = {{"Content-Security-Policy",
                  "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
                  "connect-src 'self'; img-src data:"},
                 {"Cache-Control", "no-store"}};
    return respond(std::move(r));
  }
  if (get && p == "/stats") {
    // Envoy's /stats: every metric, one `name{labels} value` line each (the Prometheus text
    // without its # HELP and # TYPE comments).
    HttpResponse r;
    r.content_type = "text/plain; charset=utf-8";
    if (stats::Registry* reg = sink_.metrics()) {
      std::string text;
      reg->write_prometheus(text);
      for (size_t at = 0; at < text.size();) {
        size_t end = text.find('\n', at);
        end = end == std::string::npos ? text.size() : end + 1;
        if (text[at] != '#') r.body.append(text, at, end - at);
        at = end;
      }
    }
    return respond(std::move(r));
  }
  if (get && (p == "/stats/prometheus" || p == "/metrics")) {
    // Prometheus' text format 0.0.4: Istio's standard metrics and meshbox's own.
    HttpResponse r;
    r.content_type = "text/plain; version=0.0.4; charset=utf-8";
    if (stats::Registry* reg = sink_.metrics()) reg->write_prometheus(r.body);
    return respond(std::move(r));
  }
  if (get && p == "/stats/tls") {
    // TLS handshakes of the whole process (every worker): upstream ones as the client, the
    // sidecars' and gateways' as the server. resumed/full shows session reuse at work.
    tls::HandshakeCounts n = tls::handshake_counts();
    json::Writer w;
    w.begin_object()
        .key("client")
        .begin_object()
        .field("full", n.client_full)
        .field("resumed", n.client_resumed)
        .field("failed", n.client_failed)
        .end_object()
        .key("server")
        .begin_object()
        .field("full", n.server_full)
        .field("resumed", n.server_resumed)
        .field("failed", n.server_failed)
        .end_object()
        .end_object();
    return respond(json_response(200, w.take()));
  }
  if (get && p == "/stats/authz") {
    // Authorization decisions of every worker since start (Envoy's rbac.allowed/denied),
    // on listeners that have policies; audited counts AUDIT policy matches.
    AuthzCounters& n = authz_counters();
    json::Writer w;
    w.begin_object()
        .field("allowed", n.allowed.load(std::memory_order_relaxed))
        .field("denied", n.denied.load(std::memory_order_relaxed))
        .field("audited", n.audited.load(std::memory_order_relaxed))
        .end_object();
    return respond(json_response(200, w.take()));
  }
  if (get && p == "/workloads") return respond(json_response(200, workloads_json()));
  if (m == "POST" && p == "/endpoints") return register_endpoint(req, std::move(respond));
  if (m == "POST" && p == "/workloads/attach") return attach_workload(req, std::move(respond));
  if (m == "DELETE" && p.rfind("/workloads/attach/", 0) == 0)
    return detach_workload(req, std::move(respond));
  if (m == "DELETE" && p == "/endpoints") {
    auto host = req.param("host"), address = req.param("address"), port = req.param("port");
    if (!host || !address || !port)
      return respond(error_response(400, "expected ?host=HOST&address=IP&port=PORT"));
    uint32_t port_number = static_cast<uint32_t>(std::strtoul(port->c_str(), nullptr, 10));
    if (!registry_->deregister_endpoint(*host, *address, port_number))
      return respond(error_response(404, "no such registered endpoint"));
    json::Writer w;
    w.begin_object().field("deregistered", true).end_object();
    return respond(json_response(200, w.take()));
  }
  if (get || mutating) return respond(error_response(404, "no such admin endpoint: " + p));
  respond(error_response(405, "method not allowed"));
}

void ControlPlane::apply(HttpRequest& req, Respond respond) {
  // Body: {"files": [{"name": "mesh.toml", "text": "…"}], "wait": true}
  auto body = json::parse(req.body);
  if (!body) return respond(error_response(400, "bad JSON body: " + body.error().message()));
  const json::Value* files = body->get("files");
  if (!files || !files->is_array())
    return respond(error_response(400, "expected {\"files\": [{\"name\", \"text\"}]}"));
  Change c;
  c.origin = "api";
  for (const auto& f : files->array) {
    const json::Value* name = f.get("name");
    const json::Value* text = f.get("text");
    if (!name || !text || !name->is_string() || !text->is_string())
      return respond(error_response(400, "every file needs a string name and text"));
    c.documents.push_back({name->as_string(), text->as_string()});
  }
  const json::Value* wait_v = body->get("wait");
  bool wait = wait_v && wait_v->is_bool() && wait_v->boolean;
  change(std::move(c), [this, wait, respond](ChangeResult r) { finish_change(r, wait, respond); });
}

void ControlPlane::finish_change(const ChangeResult& r, bool wait, const Respond& respond) {
  if (!r.ok) {
    if (!r.error.empty()) {
      int status = r.error_code == Code::Unavailable ? 503
                   : r.error_code == Code::Conflict  ? 409
                                                     : 500;
      return respond(error_response(status, r.error));
    }
    json::Writer w;
    w.begin_object().key("errors").raw(config::to_json(r.findings)).end_object();
    return respond(json_response(400, w.take()));
  }
  SnapshotConstPtr cur = sink_.current();
  uint64_t version = cur ? cur->version : 0;
  json::Writer w;
  w.begin_object()
      .field("revision", r.revision)
      .field("version", version)
      .key("changed")
      .begin_array();
  for (const auto& k : r.changed)
    w.value(k);
  w.end_array().key("warnings").raw(config::to_json(r.findings));
  if (!last_publish_error_.empty()) {
    w.field("publish_error", last_publish_error_);
  }
  w.end_object();
  std::string body = w.take();
  if (!wait) return respond(json_response(200, std::move(body)));
  auto alive = alive_;
  sink_.when_applied(version, [alive, respond, body = std::move(body)]() mutable {
    if (*alive) respond(json_response(200, std::move(body)));
  });
}

void ControlPlane::register_endpoint(HttpRequest& req, Respond respond) {
  // {"service": "reviews", "namespace": "default", "address": "127.0.0.1", "port": 9080,
  //  "labels": {"version": "v1"}, "locality": "", "weight": 1}
  auto body = json::parse(req.body);
  if (!body) return respond(error_response(400, "bad JSON body: " + body.error().message()));
  auto str = [&](const char* key) -> std::string {
    const json::Value* v = body->get(key);
    return v && v->is_string() ? v->as_string() : std::string();
  };
  std::string service = str("service");
  std::string ns = str("namespace");
  if (ns.empty()) ns = "default";
  if (service.empty() || !config_)
    return respond(error_response(400, "expected a \"service\" of the mesh"));
  config::HostIndex hosts(*config_);
  config::HostTarget target = hosts.find(service, ns);
  if (!target)
    return respond(error_response(404, fmt::format("no service {} in namespace {}", service, ns)));
  Endpoint e;
  e.host = target.fqdn;
  e.ns = ns;
  e.address = str("address");
  const json::Value* port = body->get("port");
  auto port_number = port ? port->as_int() : std::nullopt;
  if (!port_number || *port_number < 1 || *port_number > 65535)
    return respond(error_response(400, "expected a \"port\" in 1..65535"));
  e.port = static_cast<uint32_t>(*port_number);
  if (const json::Value* labels = body->get("labels"); labels && labels->is_object())
    for (const auto& [k, v] : labels->object)
      if (v.is_string()) e.labels[k] = v.as_string();
  e.locality = str("locality");
  if (const json::Value* weight = body->get("weight")) {
    auto w = weight->as_int();
    if (!w || *w < 1 || *w > 1'000'000)
      return respond(error_response(400, "expected a \"weight\" in 1..1000000"));
    e.weight = static_cast<uint32_t>(*w);
  }
  e.source = "api";
  std::string key = e.key();
  Status s = registry_->register_endpoint(std::move(e));
  if (!s.is_ok()) return respond(error_response(400, s.message()));
  // Registration changes reach the workers through the registry's change callback.
  json::Writer w;
  w.begin_object().field("registered", key).end_object();
  respond(json_response(200, w.take()));
}

namespace {

// A DNS label (RFC 1123), as Kubernetes names pods and namespaces: lower-case letters, digits
// and '-', 63 at most, a letter or digit at both ends. Instance names become listener,
// cluster and log names.
bool dns_label(std::string_view s) {
  auto alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  if (s.empty() || s.size() > 63 || !alnum(s.front()) || !alnum(s.back())) return false;
  return std::all_of(s.begin(), s.end(), [&](char c) { return alnum(c) || c == '-'; });
}

// SERVICE[-VERSION]-XXXXX, the shape of a Kubernetes pod's name.
std::string attached_name(const std::string& service, const std::string& version) {
  static constexpr std::string_view kChars = "bcdfghjklmnpqrstvwxz2456789";  // Kubernetes'
  Random random;
  std::string suffix;
  for (int i = 0; i < 5; ++i)
    suffix.push_back(kChars[random.below(kChars.size())]);
  std::string base = service + (dns_label(version) ? "-" + version : std::string());
  return base.substr(0, 63 - suffix.size() - 1) + "-" + suffix;
}

}  // namespace

void ControlPlane::attach_workload(HttpRequest& req, Respond respond) {
  // {"service": "reviews", "namespace": "default", "version": "v1", "labels": {"k": "v"},
  //  "port": 9080 (0 or absent: meshbox picks one), "service_account": "bookinfo-reviews",
  //  "pid": 4242 (0 or absent: not watched), "name": "reviews-v1-x7k2p" (absent: made up)}
  auto body = json::parse(req.body);
  if (!body) return respond(error_response(400, "bad JSON body: " + body.error().message()));
  if (!body->is_object()) return respond(error_response(400, "expected a JSON object"));
  auto str = [&](const char* key) -> std::optional<std::string> {
    const json::Value* v = body->get(key);
    if (!v || v->is_null()) return std::string();
    if (!v->is_string()) return std::nullopt;
    return v->as_string();
  };
  auto service = str("service"), ns = str("namespace"), version = str("version"),
       account = str("service_account"), name = str("name");
  if (!service || !ns || !version || !account || !name)
    return respond(error_response(400,
                                  "service, namespace, version, service_account and name "
                                  "must be strings"));
  if (ns->empty()) *ns = "default";
  if (service->empty()) return respond(error_response(400, "expected a \"service\" of the mesh"));
  if (!dns_label(*ns))
    return respond(error_response(400, fmt::format("bad namespace \"{}\": expected a DNS label "
                                                   "(a-z, 0-9, '-')",
                                                   *ns)));
  if (!config_ || !supervisor_) return respond(error_response(503, "the mesh is starting"));
  config::HostIndex hosts(*config_);
  config::HostTarget target = hosts.find(*service, *ns);
  // An instance belongs to its namespace's service (as a workload does).
  if (!target.service || target.service->ns != *ns)
    return respond(error_response(
        404, fmt::format("no service {} in namespace {} (`meshbox get services` lists them)",
                         *service, *ns)));
  auto number = [&](const char* key, int64_t max) -> std::optional<int64_t> {
    const json::Value* v = body->get(key);
    if (!v || v->is_null()) return 0;
    auto n = v->as_int();
    if (!n || *n < 0 || *n > max) return std::nullopt;
    return n;
  };
  auto port = number("port", 65535);
  if (!port)
    return respond(error_response(400,
                                  "expected a \"port\" in 1..65535 (or none: meshbox "
                                  "picks one)"));
  auto pid = number("pid", std::numeric_limits<int>::max());
  if (!pid) return respond(error_response(400, "expected a \"pid\" (a positive integer)"));

  config::Workload w;
  w.ns = *ns;
  w.service = target.service->name;
  if (const json::Value* labels = body->get("labels"); labels && !labels->is_null()) {
    if (!labels->is_object())
      return respond(error_response(400, "expected \"labels\" as an object of strings"));
    for (const auto& [k, v] : labels->object) {
      if (!v.is_string() || k.empty())
        return respond(error_response(400, "expected \"labels\" as an object of strings"));
      w.labels[k] = v.as_string();
    }
  }
  if (!version->empty()) w.labels["version"] = *version;
  w.labels.emplace("app", w.service);
  if (!account->empty()) w.service_account = *account;
  w.port = static_cast<uint32_t>(*port);
  if (name->empty()) {
    *name = attached_name(w.service, *version);
  } else if (!dns_label(*name)) {
    return respond(error_response(400, fmt::format("bad name \"{}\": expected a DNS label "
                                                   "(a-z, 0-9, '-', at most 63)",
                                                   *name)));
  }
  w.name = *name;
  auto attached = supervisor_->attach(std::move(w), static_cast<int>(*pid));
  if (!attached) {
    int status = attached.error().code() == Code::AlreadyExists     ? 409
                 : attached.error().code() == Code::InvalidArgument ? 400
                                                                    : 503;
    return respond(error_response(status, attached.error().message()));
  }
  // Copied now: the workload pointer lives until the supervisor's next change.
  const RunningInstance inst = *attached;
  const config::Workload spec = *inst.workload;
  std::vector<std::string> env =
      instance_env({}, spec, inst.instance, inst.port, inst.sidecar_outbound_port);

  // Compile and publish now; answer once every worker serves the sidecar's listeners.
  update_instance_endpoints();
  recompile();
  SnapshotConstPtr cur = sink_.current();
  auto serves = [&](uint32_t port) {
    return cur && std::any_of(cur->listeners.begin(), cur->listeners.end(),
                              [&](const ListenerSpec& l) { return l.address.port() == port; });
  };
  if (!serves(inst.sidecar_inbound_port) || !serves(inst.sidecar_outbound_port)) {
    std::string why = last_publish_error_.empty() ? "its sidecar's listeners were not compiled"
                                                  : last_publish_error_;
    supervisor_->detach(spec.ns, inst.instance);
    update_instance_endpoints();
    recompile();
    return respond(error_response(503, "cannot attach " + inst.instance + ": " + why));
  }
  json::Writer w2;
  w2.begin_object()
      .field("instance", inst.instance)
      .field("namespace", spec.ns)
      .field("service", spec.service)
      .field("host", target.fqdn)
      .field("port", inst.port)
      .field("sidecar_inbound_port", inst.sidecar_inbound_port)
      .field("sidecar_outbound_port", inst.sidecar_outbound_port)
      .field("pid", *pid)
      .field("mesh_uid", static_cast<uint64_t>(::getuid()))
      .field("version", cur->version);
  w2.key("labels").begin_object();
  for (const auto& [k, v] : spec.labels)
    w2.field(k, v);
  w2.end_object().key("env").begin_array();
  for (const auto& e : env)
    w2.value(e);
  w2.end_array().end_object();
  auto alive = alive_;
  sink_.when_applied(cur->version, [alive, respond, body = w2.take()]() mutable {
    if (*alive) respond(json_response(200, std::move(body)));
  });
}

void ControlPlane::detach_workload(HttpRequest& req, Respond respond) {
  // DELETE /workloads/attach/INSTANCE?namespace=NS
  std::string name = req.path.substr(std::string_view("/workloads/attach/").size());
  std::string ns = req.param("namespace").value_or("default");
  if (!dns_label(name) || !dns_label(ns))
    return respond(error_response(400, "expected /workloads/attach/INSTANCE[?namespace=NS]"));
  if (!supervisor_ || !supervisor_->detach(ns, name))
    return respond(
        error_response(404, fmt::format("no attached instance {} in namespace {}", name, ns)));
  update_instance_endpoints();
  recompile();
  SnapshotConstPtr cur = sink_.current();
  uint64_t version = cur ? cur->version : 0;
  json::Writer w;
  w.begin_object().field("detached", ns + "/" + name).field("version", version).end_object();
  auto alive = alive_;
  sink_.when_applied(version, [alive, respond, body = w.take()]() mutable {
    if (*alive) respond(json_response(200, std::move(body)));
  });
}

std::string ControlPlane::services_json() const {
  json::Writer w;
  w.begin_array();
  if (!config_) {
    w.end_array();
    return w.take();
  }
  config::HostIndex hosts(*config_);
  auto count = [&](const std::string& host, bool healthy_only) {
    size_t n = 0;
    for (const auto& e : registry_->endpoints())
      if (e.host == host && (!healthy_only || e.healthy)) ++n;
    return n;
  };
  auto ports = [&](const std::vector<config::Port>& list) {
    w.key("ports").begin_array();
    for (const auto& port : list) {
      w.begin_object()
          .field("number", port.number)
          .field("name", port.name)
          .field("protocol", config::to_string(port.protocol))
          .end_object();
    }
    w.end_array();
  };
  auto row = [&](std::string_view kind, const config::Resource& r, const std::string& host,
                 const std::vector<config::Port>& port_list) {
    w.begin_object()
        .field("kind", kind)
        .field("name", r.name)
        .field("namespace", r.ns)
        .field("host", host);
    ports(port_list);
    w.field("endpoints", count(host, false)).field("healthy", count(host, true)).end_object();
  };
  for (const auto& s : config_->services)
    row("service", s, hosts.fqdn(s), s.ports);
  for (const auto& se : config_->service_entries)
    for (const auto& h : se.hosts)
      row("service_entry", se, hosts.resolve(h, se.ns), se.ports);
  w.end_array();
  return w.take();
}

std::string ControlPlane::endpoints_json() const {
  json::Writer w;
  w.begin_array();
  for (const auto& e : registry_->endpoints()) {
    w.begin_object()
        .field("host", e.host)
        .field("namespace", e.ns)
        .field("address", e.address)
        .field("port", e.port);
    w.key("labels").begin_object();
    for (const auto& [k, v] : e.labels)
      w.field(k, v);
    w.end_object();
    w.field("locality", e.locality)
        .field("weight", e.weight)
        .field("healthy", e.healthy)
        .field("health_checked", e.health_check.has_value())
        .field("source", e.source);
    // The name a dns service entry's address was resolved from.
    if (!e.hostname.empty()) w.field("hostname", e.hostname);
    w.end_object();
  }
  w.end_array();
  return w.take();
}

namespace {

/// "2026-11-26T13:50:00Z"
std::string utc_time(std::chrono::system_clock::time_point t) {
  return fmt::format("{:%Y-%m-%dT%H:%M:%SZ}", std::chrono::floor<std::chrono::seconds>(t));
}

/// One endpoint of a cluster as GET /clusters shows it: the snapshot's view (address,
/// weight, locality), the health the registry and the outlier detector give it, and the
/// workers' connections to it.
struct HostRow {
  const EndpointSpec* spec;
  const EndpointStatus* status;  // null: no worker has used it yet
  std::string_view health;       // healthy, ejected, failing_health_check
};

std::vector<HostRow> host_rows(const ClusterSpec& c, const ClusterStatus* status) {
  auto status_of = [&](const std::string& address) -> const EndpointStatus* {
    if (!status) return nullptr;
    for (const auto& e : status->endpoints)
      if (e.address == address) return &e;
    return nullptr;
  };
  std::vector<HostRow> rows;
  std::set<std::string> failing;
  for (const auto& e : c.unhealthy_endpoints)
    failing.insert(e.address.to_string());
  for (const auto& e : c.endpoints) {
    std::string address = e.address.to_string();
    const EndpointStatus* st = status_of(address);
    std::string_view health = failing.count(address) ? "failing_health_check"
                              : st && st->ejected    ? "ejected"
                                                     : "healthy";
    rows.push_back({&e, st, health});
  }
  // Left out of the cluster for a failing health check (not in `endpoints` unless all fail).
  for (const auto& e : c.unhealthy_endpoints) {
    std::string address = e.address.to_string();
    bool listed = std::any_of(c.endpoints.begin(), c.endpoints.end(),
                              [&](const EndpointSpec& x) { return x.address == e.address; });
    if (!listed) rows.push_back({&e, status_of(address), "failing_health_check"});
  }
  return rows;
}

}  // namespace

std::string ControlPlane::clusters_json() const {
  json::Writer w;
  w.begin_array();
  SnapshotConstPtr snap = sink_.current();
  std::map<std::string, ClusterStatus> statuses;
  for (auto& st : sink_.cluster_status())
    statuses.emplace(st.name, std::move(st));
  if (snap) {
    for (const auto& c : snap->clusters) {
      w.begin_object()
          .field("name", c.name)
          .field("lb_policy", lb_name(c.lb_policy))
          .field("connect_timeout_ms", c.connect_timeout_ms)
          .key("endpoints")
          .begin_array();
      for (const auto& e : c.endpoints)
        w.value(e.address.to_string());
      w.end_array();
      auto it = statuses.find(c.name);
      const ClusterStatus* st = it == statuses.end() ? nullptr : &it->second;
      w.key("limits")
          .begin_object()
          .field("max_connections", c.limits.max_connections)
          .field("max_pending_requests", c.limits.max_pending_requests)
          .field("max_requests", c.limits.max_requests)
          .field("max_retries", c.limits.max_retries)
          .end_object()
          .field("active_requests", st ? st->active_requests : 0)
          .field("pending_requests", st ? st->pending_requests : 0)
          .field("active_connections", st ? st->active_connections : 0)
          .field("active_retries", st ? st->active_retries : 0)
          .field("overflows", st ? st->overflows : 0)
          .field("ejections_total", st ? st->ejections_total : 0);
      if (c.outlier.enabled()) {
        w.key("outlier_detection")
            .begin_object()
            .field("consecutive_5xx", c.outlier.consecutive_5xx)
            .field("consecutive_gateway_errors", c.outlier.consecutive_gateway_errors)
            .field("interval_ms", c.outlier.interval_ms)
            .field("base_ejection_time_ms", c.outlier.base_ejection_time_ms)
            .field("max_ejection_percent", c.outlier.max_ejection_percent)
            .field("min_health_percent", c.outlier.min_health_percent)
            .end_object();
      }
      auto now = std::chrono::system_clock::now();
      w.key("host_statuses").begin_array();
      for (const HostRow& h : host_rows(c, st)) {
        const EndpointStatus* es = h.status;
        w.begin_object()
            .field("address", h.spec->address.to_string())
            .field("weight", h.spec->weight)
            .field("locality", h.spec->locality)
            .field("priority", h.spec->priority)
            .field("health", h.health)
            .field("active_requests", es ? es->active_requests : 0)
            .field("active_connections", es ? es->active_connections : 0)
            .field("idle_connections", es ? es->idle_connections : 0);
        if (c.outlier.enabled()) {
          w.key("outlier").begin_object().field("ejected", es && es->ejected);
          if (es && es->last_ejection_ms_ago >= 0)
            w.field("last_ejection",
                    utc_time(now - std::chrono::milliseconds(es->last_ejection_ms_ago)));
          w.field("ejection_left_ms", es ? es->ejection_left_ms : 0)
              .field("ejections", es ? es->ejections : 0)
              .field("consecutive_5xx", es ? es->consecutive_5xx : 0)
              .field("consecutive_gateway_errors", es ? es->consecutive_gateway_errors : 0)
              .end_object();
        }
        w.end_object();
      }
      w.end_array().end_object();
    }
  }
  w.end_array();
  return w.take();
}

std::string ControlPlane::clusters_text() const {
  // Envoy's /clusters: CLUSTER::FIELD::VALUE, then CLUSTER::HOST::FIELD::VALUE per endpoint.
  std::string out;
  SnapshotConstPtr snap = sink_.current();
  if (!snap) return out;
  std::map<std::string, ClusterStatus> statuses;
  for (auto& st : sink_.cluster_status())
    statuses.emplace(st.name, std::move(st));
  for (const auto& c : snap->clusters) {
    auto it = statuses.find(c.name);
    const ClusterStatus* st = it == statuses.end() ? nullptr : &it->second;
    auto line = [&](std::string_view field, auto value) {
      out += fmt::format("{}::{}::{}\n", c.name, field, value);
    };
    line("max_connections", c.limits.max_connections);
    line("max_pending_requests", c.limits.max_pending_requests);
    line("max_requests", c.limits.max_requests);
    line("max_retries", c.limits.max_retries);
    line("rq_active", st ? st->active_requests : 0);
    line("rq_pending", st ? st->pending_requests : 0);
    line("cx_active", st ? st->active_connections : 0);
    line("outlier_ejections", st ? st->ejections_total : 0);
    for (const HostRow& h : host_rows(c, st)) {
      std::string host = h.spec->address.to_string();
      auto host_line = [&](std::string_view field, auto value) {
        out += fmt::format("{}::{}::{}::{}\n", c.name, host, field, value);
      };
      const EndpointStatus* es = h.status;
      host_line("cx_active", es ? es->active_connections : 0);
      host_line("cx_idle", es ? es->idle_connections : 0);
      host_line("rq_active", es ? es->active_requests : 0);
      host_line("weight", h.spec->weight);
      host_line("region", h.spec->locality);
      host_line("priority", h.spec->priority);
      // Envoy's flags: /failed_outlier_check, /failed_active_hc; "healthy" when none.
      host_line("health_flags", h.health == "ejected"                ? "/failed_outlier_check"
                                : h.health == "failing_health_check" ? "/failed_active_hc"
                                                                     : "healthy");
    }
  }
  return out;
}

std::string ControlPlane::certs_json() const {
  auto now = std::chrono::system_clock::now();
  json::Writer w;
  // One certificate: what it names and when it ends. Never the key: a Certificate has none.
  auto cert = [&](const tls::Certificate& c) {
    auto left = std::chrono::duration_cast<std::chrono::seconds>(c.not_after() - now).count();
    w.field("subject", c.subject()).key("subject_alt_names").begin_array();
    for (const auto& san : c.uri_sans())
      w.value(san);
    w.end_array()
        .field("serial_number", c.serial_hex())
        .field("sha256_fingerprint", c.sha256_fingerprint())
        .field("valid_from", utc_time(c.not_before()))
        .field("expiration_time", utc_time(c.not_after()))
        .field("days_until_expiration", left > 0 ? left / 86'400 : 0)
        .field("seconds_until_expiration", static_cast<int64_t>(left));
  };
  w.begin_object();
  if (ca_) {
    w.key("ca").begin_object();
    switch (ca_->source()) {
      case CertificateAuthority::Source::Created:
      case CertificateAuthority::Source::Loaded:
        w.field("source", "meshbox");
        break;
      case CertificateAuthority::Source::Operator:
        w.field("source", "operator");
        break;
    }
    w.key("root").begin_object();
    cert(ca_->root());
    w.end_object();
    if (!(ca_->signer() == ca_->root())) {
      w.key("signer").begin_object();
      cert(ca_->signer());
      w.end_object();
    }
    w.end_object();
  }
  // The listeners that serve each identity's contexts in the current snapshot.
  SnapshotConstPtr snap = sink_.current();
  w.key("certificates").begin_array();
  for (const auto& [spiffe_id, entry] : identities_) {
    if (!entry.leaf) continue;
    w.begin_object().field("identity", spiffe_id);
    cert(*entry.leaf);
    w.field("renew_at", utc_time(entry.renew_at)).key("used_by").begin_array();
    if (snap)
      for (const auto& l : snap->listeners) {
        bool serves = entry.contexts.server && l.mesh_server == entry.contexts.server;
        bool calls = entry.contexts.client && l.mesh_client == entry.contexts.client;
        if (serves || calls) w.value(l.name);
      }
    w.end_array().end_object();
  }
  w.end_array().end_object();
  return w.take();
}

void ControlPlane::logging(HttpRequest& req, Respond respond) {
  constexpr std::string_view kLevels = "trace, debug, info, warn, error, off";
  std::optional<std::string> wanted = req.param("level");
  if (req.method != "GET" && req.method != "HEAD") {
    if (!wanted) {
      // Also {"level": "debug"} as the body.
      if (auto body = json::parse(req.body); body && body->is_object())
        if (const json::Value* v = body->get("level"); v && v->is_string()) wanted = v->as_string();
    }
    std::optional<log::Level> level = wanted ? log::parse_level(*wanted) : std::nullopt;
    if (!level) {
      return respond(error_response(
          400, fmt::format("{}: expected ?level= one of {}",
                           wanted ? "unknown level '" + *wanted + "'" : "no level", kLevels)));
    }
    log::Level before = log::level();
    log::set_level(*level);
    // Whatever the new level, the change itself is always written down.
    log::write(log::Level::Info, "admin",
               fmt::format("log level {} -> {} (from {})", log::level_name(before),
                           log::level_name(*level), req.peer));
  }
  json::Writer w;
  w.begin_object().field("level", log::level_name(log::level())).key("levels").begin_array();
  for (std::string_view l : {"trace", "debug", "info", "warn", "error", "off"})
    w.value(l);
  w.end_array().end_object();
  respond(json_response(200, w.take()));
}

std::string ControlPlane::routes_json() const {
  json::Writer w;
  w.begin_array();
  SnapshotConstPtr snap = sink_.current();
  if (snap) {
    for (const auto& l : snap->listeners) {
      if (l.protocol == ListenerSpec::Protocol::Tcp) {
        auto row = [&](std::string_view route, std::string_view match, std::string action) {
          w.begin_object()
              .field("listener", l.name)
              .field("address", l.address.to_string())
              .field("virtual_host", "")
              .field("route", route)
              .field("match", match)
              .field("action", action)
              .end_object();
        };
        if (l.l4_routes.empty()) row("tcp", "*", l.cluster);
        for (const auto& r : l.l4_routes) {
          std::string match = r.sni_hosts.empty()
                                  ? std::string("*")
                                  : fmt::format("sni {}", fmt::join(r.sni_hosts, ","));
          std::string action;
          for (const auto& c : r.clusters)
            action += fmt::format("{}{} {}%", action.empty() ? "" : ", ", c.cluster, c.weight);
          row(r.name, match, std::move(action));
        }
        continue;
      }
      const RouteTableSpec* table = snap->find_route_table(l.route_table);
      if (!table) continue;
      for (const auto& vh : table->virtual_hosts) {
        for (const auto& r : vh.routes) {
          w.begin_object()
              .field("listener", l.name)
              .field("address", l.address.to_string())
              .field("virtual_host", vh.name)
              .field("route", r.name);
          std::string match;
          for (const auto& mb : r.matches)
            match += (match.empty() ? "" : " | ") + describe(mb);
          w.field("match", match.empty() ? "*" : match);
          std::string action;
          switch (r.action) {
            case RouteSpec::Action::Forward:
              for (const auto& c : r.clusters)
                action += fmt::format("{}{} {}%", action.empty() ? "" : ", ", c.cluster, c.weight);
              break;
            case RouteSpec::Action::Redirect:
              action = fmt::format("redirect {} {}", r.redirect.code, r.redirect.uri);
              break;
            case RouteSpec::Action::DirectResponse:
              action = fmt::format("direct_response {}", r.direct_response.status);
              break;
          }
          w.field("action", action).end_object();
        }
      }
    }
  }
  w.end_array();
  return w.take();
}

std::string ControlPlane::workloads_json() const {
  json::Writer w;
  w.begin_array();
  if (!supervisor_ || !config_) {
    w.end_array();
    return w.take();
  }
  // Ready: the instance's endpoint is listed and healthy (its check passed, if it has one).
  std::set<std::string> ready;
  config::HostIndex index(*config_);
  std::map<std::string, const Endpoint*> listed;
  for (const auto& e : registry_->endpoints())
    listed.emplace(e.key(), &e);
  for (const auto& r : supervisor_->running()) {
    auto it = listed.find(
        instance_endpoint(index, *r.workload, r.port, r.instance, 0, 0, r.netns, r.netns_ip).key());
    if (it != listed.end() && it->second->healthy) ready.insert(r.workload->ns + "/" + r.instance);
  }
  for (const auto& s : supervisor_->status()) {
    w.begin_object()
        .field("instance", s.instance)
        .field("workload", s.workload)
        .field("namespace", s.ns)
        .field("service", s.service)
        .field("pid", s.pid)
        .field("port", s.port)
        .field("state", to_string(s.state))
        .field("ready", ready.count(s.ns + "/" + s.instance) > 0)
        .field("restarts", s.restarts)
        .field("last_exit", s.last_exit)
        .field("uptime_ms", s.uptime_ms)
        .field("restart_in_ms", s.restart_in_ms)
        .field("attached", s.attached)
        .end_object();
  }
  w.end_array();
  return w.take();
}

void ControlPlane::register_metrics() {
  stats::Registry* reg = sink_.metrics();
  if (!reg || metrics_registered_) return;
  metrics_registered_ = true;
  // Per cluster, from the data plane's shared counters (read at scrape time, no lock on the
  // request path): Envoy's upstream_rq/cx names under meshbox_cluster_.
  struct ClusterMetric {
    const char* name;
    const char* help;
    stats::Type type;
    double (*value)(const ClusterStatus&);
  };
  static const ClusterMetric kClusterMetrics[] = {
      {"meshbox_cluster_upstream_rq_active", "Requests in flight to the cluster.",
       stats::Type::Gauge, [](const ClusterStatus& c) { return double(c.active_requests); }},
      {"meshbox_cluster_upstream_rq_pending", "Requests waiting for a connection.",
       stats::Type::Gauge, [](const ClusterStatus& c) { return double(c.pending_requests); }},
      {"meshbox_cluster_upstream_cx_active", "Upstream connections open or connecting.",
       stats::Type::Gauge, [](const ClusterStatus& c) { return double(c.active_connections); }},
      {"meshbox_cluster_upstream_cx_idle", "Upstream connections idle in keep-alive pools.",
       stats::Type::Gauge,
       [](const ClusterStatus& c) {
         double n = 0;
         for (const auto& e : c.endpoints)
           n += e.idle_connections;
         return n;
       }},
      {"meshbox_cluster_upstream_rq_retry_active", "Retries in flight.", stats::Type::Gauge,
       [](const ClusterStatus& c) { return double(c.active_retries); }},
      {"meshbox_cluster_upstream_rq_overflow_total",
       "Requests failed fast at a circuit-breaker limit (503 UO).", stats::Type::Counter,
       [](const ClusterStatus& c) { return double(c.overflows); }},
      {"meshbox_cluster_outlier_ejections_total", "Outlier-detection ejections since start.",
       stats::Type::Counter, [](const ClusterStatus& c) { return double(c.ejections_total); }},
      {"meshbox_cluster_endpoints_ejected", "Endpoints ejected by outlier detection now.",
       stats::Type::Gauge,
       [](const ClusterStatus& c) {
         double n = 0;
         for (const auto& e : c.endpoints)
           n += e.ejected ? 1 : 0;
         return n;
       }},
  };
  for (const ClusterMetric& m : kClusterMetrics) {
    auto value = m.value;
    reg->callback(m.name, m.help, m.type, {"cluster"}, [this, value](stats::Samples& out) {
      for (const ClusterStatus& c : sink_.cluster_status())
        out.add({std::string_view(c.name)}, value(c));
    });
  }
  reg->gauge_callback("meshbox_config_version", "The snapshot version the workers serve.",
                      [this] { return static_cast<double>(sink_.applied_version()); });
  if (etcd_store_) {
    // Many nodes (docs/multinode.md): whether etcd answers, and how the node kept up.
    reg->gauge_callback("meshbox_store_connected",
                        "1 while etcd answers; 0 while the node serves its last config "
                        "(degraded).",
                        [this] {
                          bool up = etcd_store_ && etcd_store_->connected() &&
                                    (!node_sync_ || node_sync_->connected());
                          return up ? 1.0 : 0.0;
                        });
    reg->callback("meshbox_store_resyncs_total",
                  "Full reads of the config from etcd (the first, and after each outage or "
                  "compaction).",
                  stats::Type::Counter, {}, [this](stats::Samples& out) {
                    out.add(etcd_store_ ? double(etcd_store_->resyncs()) : 0.0);
                  });
    reg->gauge_callback("meshbox_mesh_nodes", "Nodes of the mesh with a live etcd lease.", [this] {
      return node_sync_ ? static_cast<double>(node_sync_->nodes().size()) : 0.0;
    });
    reg->callback("meshbox_node_lease_grants_total",
                  "etcd leases this node took (more than one: it re-registered after its lease "
                  "expired).",
                  stats::Type::Counter, {}, [this](stats::Samples& out) {
                    out.add(node_sync_ ? double(node_sync_->lease_grants()) : 0.0);
                  });
  }
  reg->callback("meshbox_certificate_expiry_seconds",
                "Seconds until each certificate the CA issued or holds expires.",
                stats::Type::Gauge, {"identity"}, [this](stats::Samples& out) {
                  auto now = std::chrono::system_clock::now();
                  auto left = [&](const tls::Certificate& c) {
                    return std::chrono::duration<double>(c.not_after() - now).count();
                  };
                  if (ca_) out.add({std::string_view("root")}, left(ca_->root()));
                  for (const auto& [id, entry] : identities_)
                    if (entry.leaf) out.add({std::string_view(id)}, left(*entry.leaf));
                });
}

std::string ControlPlane::push_stats_json() const {
  std::vector<double> ms = sink_.push_latencies_ms();
  std::sort(ms.begin(), ms.end());
  auto pct = [&](double p) {
    if (ms.empty()) return 0.0;
    size_t i = static_cast<size_t>(p * static_cast<double>(ms.size() - 1) + 0.5);
    return ms[std::min(i, ms.size() - 1)];
  };
  json::Writer w;
  w.begin_object()
      .field("pushes", ms.size())
      .field("p50_ms", pct(0.50))
      .field("p99_ms", pct(0.99))
      .field("max_ms", ms.empty() ? 0.0 : ms.back())
      .end_object();
  return w.take();
}

}  // namespace meshbox::control
