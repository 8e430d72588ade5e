#include "plane/control/node_sync.h"

#include <algorithm>
#include <chrono>

#include <fmt/format.h>

#include "core/base/json.h"
#include "core/base/log.h"

namespace meshbox::control {

namespace {

constexpr uint64_t kFirstBackoffMs = 200;
constexpr uint64_t kMaxBackoffMs = 5'000;

uint64_t unix_ms() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

uint64_t uint_field(const json::Value& doc, std::string_view name) {
  const json::Value* v = doc.get(name);
  auto n = v ? v->as_int() : std::nullopt;
  return n && *n > 0 ? static_cast<uint64_t>(*n) : 0;
}

std::string string_field(const json::Value& doc, std::string_view name) {
  const json::Value* v = doc.get(name);
  return v && v->is_string() ? v->string : std::string();
}

void string_map(json::Writer& w, std::string_view name,
                const std::map<std::string, std::string>& m) {
  w.key(name).begin_object();
  for (const auto& [k, v] : m)
    w.field(k, v);
  w.end_object();
}

}  // namespace

NodeSync::NodeSync(loop::Loop& loop, etcd::Client& client, NodeSyncOptions options,
                   OnRemote on_remote)
    : loop_(loop),
      client_(client),
      options_(std::move(options)),
      on_remote_(std::move(on_remote)),
      nodes_dir_(options_.prefix + "/nodes/"),
      endpoints_dir_(options_.prefix + "/endpoints/"),
      own_dir_(endpoints_dir_ + options_.node + "/"),
      tick_timer_(loop, [this] { tick(); }),
      retry_timer_(loop, [this] { resume(); }) {}

NodeSync::~NodeSync() {
  *alive_ = false;
}

void NodeSync::start() {
  started_unix_ms_ = unix_ms();
  grant();
  // Keepalives every third of the TTL: two can be lost before the lease runs out.
  uint64_t every = std::max<uint64_t>(1, static_cast<uint64_t>(options_.lease_ttl_s)) * 1000 / 3;
  tick_timer_.start(every, every);
  resync();
}

void NodeSync::leave() {
  tick_timer_.stop();
  left_ = true;
  // Nothing more to watch: a live watch stream would keep the loop (and `meshbox run`) running.
  watch_.reset();
  watching_ = false;
  retry_timer_.stop();
  if (lease_id_ == 0) return;
  MB_INFO("nodes", "node {} leaves the mesh", options_.node);
  client_.lease_revoke(lease_id_, [](Status) {});
  lease_id_ = 0;
}

void NodeSync::grant() {
  if (left_) return;
  if (granting_) return;
  granting_ = true;
  client_.lease_grant(options_.lease_ttl_s, [this, alive = std::weak_ptr<bool>(alive_)](
                                                Result<etcd::Lease> r) {
    if (alive.expired()) return;
    granting_ = false;
    if (left_) {
      if (r) client_.lease_revoke(r->id, [](Status) {});
      return;
    }
    if (!r) {
      if (connected_) MB_WARN("nodes", "etcd: cannot take a lease: {}", r.error().message());
      connected_ = false;
      return;  // the next tick tries again
    }
    if (!connected_ && lease_grants_ > 0) MB_INFO("nodes", "etcd: reachable again");
    connected_ = true;
    lease_id_ = r->id;
    ++lease_grants_;
    MB_INFO("nodes", "node {} registered (lease {:x}, TTL {} s)", options_.node, lease_id_, r->ttl);
    // Everything under the old lease is gone (or goes with it): write it all again.
    published_.clear();
    put_node_info();
    sync_endpoints();
  });
}

void NodeSync::tick() {
  if (lease_id_ == 0) return grant();
  client_.lease_keepalive(
      lease_id_, [this, alive = std::weak_ptr<bool>(alive_), id = lease_id_](Result<int64_t> r) {
        if (alive.expired() || id != lease_id_) return;
        if (!r) {
          if (connected_)
            MB_WARN("nodes", "etcd: keepalive failed: {}; serving with what is known",
                    r.error().message());
          connected_ = false;
          return;
        }
        if (*r == 0) {
          MB_WARN("nodes",
                  "node {}: the lease expired (etcd was unreachable too long); registering "
                  "again",
                  options_.node);
          lease_id_ = 0;
          return grant();
        }
        if (!connected_) MB_INFO("nodes", "etcd: reachable again");
        connected_ = true;
        put_node_info();
        if (dirty_) {
          dirty_ = false;
          published_.clear();
        }
        sync_endpoints();
      });
}

void NodeSync::put_node_info() {
  if (lease_id_ == 0) return;
  json::Writer w;
  w.begin_object()
      .field("name", options_.node)
      .field("address", options_.address)
      .field("locality", options_.locality)
      .field("started", started_unix_ms_)
      .field("heartbeat", unix_ms())
      .key("instances")
      .begin_array();
  for (const auto& i : instances_)
    w.value(i);
  w.end_array().end_object();
  client_.put(nodes_dir_ + options_.node, w.take(), lease_id_,
              [this, alive = std::weak_ptr<bool>(alive_)](Result<int64_t> r) {
                if (alive.expired() || r) return;
                dirty_ = true;
              });
}

std::string NodeSync::encode_endpoint(const Endpoint& ep) {
  json::Writer w;
  w.begin_object()
      .field("host", ep.host)
      .field("namespace", ep.ns)
      .field("address", ep.address)
      .field("port", ep.port)
      .field("locality", ep.locality)
      .field("weight", ep.weight)
      .field("instance", ep.instance)
      .field("service_account", ep.service_account)
      .field("sidecar_inbound_port", ep.sidecar_inbound_port);
  string_map(w, "labels", ep.labels);
  w.key("named_ports").begin_object();
  for (const auto& [k, v] : ep.named_ports)
    w.field(k, v);
  w.end_object().end_object();
  return w.take();
}

std::optional<Endpoint> NodeSync::decode_endpoint(std::string_view text, const std::string& node) {
  auto doc = json::parse(text);
  if (!doc || !doc->is_object()) return std::nullopt;
  Endpoint ep;
  ep.node = node;
  ep.source = "node/" + node;
  ep.host = string_field(*doc, "host");
  ep.ns = string_field(*doc, "namespace");
  ep.address = string_field(*doc, "address");
  ep.locality = string_field(*doc, "locality");
  ep.instance = string_field(*doc, "instance");
  ep.service_account = string_field(*doc, "service_account");
  uint64_t port = uint_field(*doc, "port"), in = uint_field(*doc, "sidecar_inbound_port");
  uint64_t weight = uint_field(*doc, "weight");
  if (ep.host.empty() || ep.address.empty() || port == 0 || port > 65535 || in > 65535)
    return std::nullopt;
  ep.port = static_cast<uint32_t>(port);
  ep.sidecar_inbound_port = static_cast<uint32_t>(in);
  ep.weight = weight == 0 || weight > UINT32_MAX ? 1 : static_cast<uint32_t>(weight);
  if (ep.service_account.empty()) ep.service_account = "default";
  if (const json::Value* l = doc->get("labels"); l && l->is_object())
    for (const auto& [k, v] : l->object)
      if (v.is_string()) ep.labels[k] = v.string;
  if (const json::Value* np = doc->get("named_ports"); np && np->is_object())
    for (const auto& [k, v] : np->object)
      if (auto n = v.as_int(); n && *n > 0 && *n <= 65535)
        ep.named_ports[k] = static_cast<uint32_t>(*n);
  return ep;
}

void NodeSync::set_local(const std::vector<Endpoint>& endpoints) {
  std::map<std::string, std::string> desired;
  std::vector<std::string> instances;
  for (Endpoint ep : endpoints) {
    // Reachable from other nodes: through the instance's sidecar, on this node's address.
    if (!ep.node.empty() || ep.instance.empty() || !ep.netns.empty() || !ep.healthy) continue;
    if (ep.sidecar_inbound_port == 0 && ep.address != "0.0.0.0" && ep.address != options_.address)
      continue;  // an app on loopback without a sidecar: only this node can reach it
    instances.push_back(ep.ns + "/" + ep.instance);
    ep.address = options_.address;
    if (ep.sidecar_inbound_port) ep.port = ep.sidecar_inbound_port;
    if (ep.locality.empty()) ep.locality = options_.locality;
    std::string key = fmt::format("{}{}|{}|{}", own_dir_, ep.host, ep.instance, ep.port);
    desired.emplace(std::move(key), encode_endpoint(ep));
  }
  std::sort(instances.begin(), instances.end());
  instances.erase(std::unique(instances.begin(), instances.end()), instances.end());
  bool instances_changed = instances != instances_;
  instances_ = std::move(instances);
  if (desired == desired_ && !instances_changed) return;
  desired_ = std::move(desired);
  if (instances_changed) put_node_info();
  sync_endpoints();
}

void NodeSync::sync_endpoints() {
  if (lease_id_ == 0) return;
  auto failed = [this, alive = std::weak_ptr<bool>(alive_)](bool ok) {
    if (!alive.expired() && !ok) dirty_ = true;
  };
  for (const auto& [key, value] : desired_) {
    auto it = published_.find(key);
    if (it != published_.end() && it->second == value) continue;
    published_[key] = value;
    client_.put(key, value, lease_id_,
                [failed](Result<int64_t> r) { failed(static_cast<bool>(r)); });
  }
  for (auto it = published_.begin(); it != published_.end();) {
    if (desired_.count(it->first)) {
      ++it;
      continue;
    }
    client_.delete_range(it->first, "",
                         [failed](Result<int64_t> r) { failed(static_cast<bool>(r)); });
    it = published_.erase(it);
  }
}

std::vector<NodeInfo> NodeSync::nodes() const {
  std::vector<NodeInfo> out;
  for (const auto& [name, info] : nodes_) {
    NodeInfo n = info;
    n.self = name == options_.node;
    auto r = remote_.find(name);
    n.endpoints = n.self ? desired_.size() : r == remote_.end() ? 0 : r->second.size();
    out.push_back(std::move(n));
  }
  return out;
}

void NodeSync::resync() {
  watch_.reset();
  // [PREFIX/endpoints/, end of PREFIX/nodes/): both directories (nothing else of the mesh's
  // sorts between them: config and the CA come before).
  client_.range(endpoints_dir_, etcd::Client::prefix_end(nodes_dir_),
                [this, alive = std::weak_ptr<bool>(alive_)](Result<etcd::RangeResult> r) {
                  if (alive.expired()) return;
                  if (!r) return watch_failed();
                  nodes_.clear();
                  remote_.clear();
                  for (const auto& kv : r->kvs)
                    apply(kv, true);
                  revision_ = r->revision;
                  if (!watching_)
                    MB_INFO("nodes", "watching the mesh's nodes ({} known)", nodes_.size());
                  watching_ = true;
                  backoff_ms_ = 0;
                  emit();
                  start_watch();
                });
}

void NodeSync::start_watch() {
  watch_ = client_.watch(
      endpoints_dir_, etcd::Client::prefix_end(nodes_dir_), revision_ + 1,
      [this](std::vector<etcd::Event> events, int64_t revision) { on_events(events, revision); },
      [this](etcd::WatchError e) {
        if (e.compacted()) {
          // Events were lost: read everything again.
          loop_.run_soon([this, alive = std::weak_ptr<bool>(alive_)] {
            if (!alive.expired()) resync();
          });
          return;
        }
        MB_WARN("nodes", "etcd watch broken: {}; keeping the known endpoints", e.status.message());
        watch_failed();
      });
}

void NodeSync::resume() {
  watch_.reset();
  if (revision_ == 0) return resync();
  // On from the last revision seen; a read of one key tells that etcd answers again.
  start_watch();
  client_.range(nodes_dir_ + options_.node, "",
                [this, alive = std::weak_ptr<bool>(alive_)](Result<etcd::RangeResult> r) {
                  if (alive.expired() || !r || !watch_) return;
                  watching_ = true;
                  backoff_ms_ = 0;
                });
}

void NodeSync::watch_failed() {
  watching_ = false;
  backoff_ms_ = backoff_ms_ == 0 ? kFirstBackoffMs : std::min(backoff_ms_ * 2, kMaxBackoffMs);
  retry_timer_.start(backoff_ms_);
}

void NodeSync::on_events(const std::vector<etcd::Event>& events, int64_t revision) {
  bool diff = false;
  for (const auto& e : events)
    diff |= apply(e.kv, e.type == etcd::Event::Type::Put);
  revision_ = std::max(revision_, revision);
  if (diff) emit();
}

bool NodeSync::apply(const etcd::KeyValue& kv, bool put) {
  std::string_view key = kv.key;
  if (key.starts_with(nodes_dir_)) {
    std::string name(key.substr(nodes_dir_.size()));
    if (!put) {
      nodes_.erase(name);
      MB_INFO("nodes", "node {} left the mesh", name);
      return false;
    }
    auto doc = json::parse(kv.value);
    if (!doc || !doc->is_object()) return false;
    NodeInfo n;
    n.name = name;
    n.address = string_field(*doc, "address");
    n.locality = string_field(*doc, "locality");
    n.started_unix_ms = uint_field(*doc, "started");
    n.heartbeat_unix_ms = uint_field(*doc, "heartbeat");
    if (const json::Value* list = doc->get("instances"); list && list->is_array())
      for (const auto& i : list->array)
        if (i.is_string()) n.instances.push_back(i.string);
    if (!nodes_.count(name)) MB_INFO("nodes", "node {} joined the mesh ({})", name, n.address);
    nodes_[name] = std::move(n);
    return false;
  }
  if (!key.starts_with(endpoints_dir_)) return false;
  std::string_view rest = key.substr(endpoints_dir_.size());
  size_t slash = rest.find('/');
  if (slash == std::string_view::npos) return false;
  std::string node(rest.substr(0, slash));
  if (node == options_.node) return false;  // our own, as we wrote them
  std::string k(key);
  if (!put) {
    auto it = remote_.find(node);
    if (it == remote_.end() || !it->second.erase(k)) return false;
    if (it->second.empty()) remote_.erase(it);
    return true;
  }
  auto ep = decode_endpoint(kv.value, node);
  if (!ep) {
    MB_ERROR("nodes", "etcd key {}: not an endpoint; ignored", k);
    return false;
  }
  remote_[node][k] = std::move(*ep);
  return true;
}

void NodeSync::emit() {
  std::vector<Endpoint> all;
  for (const auto& [node, eps] : remote_)
    for (const auto& [key, ep] : eps)
      all.push_back(ep);
  on_remote_(std::move(all));
}

}  // namespace meshbox::control
