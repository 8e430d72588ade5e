// NodeSync: this node's membership in a multi-node mesh on etcd (docs/multinode.md).
//
// The node holds an etcd lease (TTL lease_ttl_s, 10 s by default) and keeps it alive every
// third of the TTL. Under the lease it writes
//   PREFIX/nodes/NODE                  {"name","address","locality","started","heartbeat",
//                                       "instances":[…]}, rewritten at every keepalive
//   PREFIX/endpoints/NODE/HOST|INSTANCE|PORT   one per healthy local instance, at the node's
//                                       address (its sidecar's inbound port, reached over mTLS)
// so a node that dies or is cut off loses them all when its lease expires, and the other
// nodes stop sending it traffic. A node whose lease expired while it was cut off (the
// keepalive answers TTL 0) takes a new lease and writes everything again.
//
// It watches PREFIX/endpoints/ and PREFIX/nodes/ and hands the other nodes' endpoints to the
// registry (Registry::set_remote_endpoints) on every change. A broken watch or an unreachable
// etcd keeps the last known endpoints (degraded mode); the watch resumes from the last
// revision seen when etcd answers (backoff 0.2 s doubling to 5 s), with a full read when etcd
// compacted past it. Loop thread only (the control loop).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/base/non_copyable.h"
#include "core/loop/loop.h"
#include "core/loop/timer.h"
#include "plane/control/etcd_client.h"
#include "plane/control/registry.h"

namespace meshbox::control {

struct NodeSyncOptions {
  std::string prefix;    // "/meshbox/default"
  std::string node;      // this node's name (--node)
  std::string address;   // where other nodes reach this node's instances (an IP)
  std::string locality;  // "region/zone/subzone", or ""
  int64_t lease_ttl_s = 10;
};

/// A node as the mesh knows it (GET /nodes, `meshbox get nodes`).
struct NodeInfo {
  std::string name, address, locality;
  uint64_t started_unix_ms = 0, heartbeat_unix_ms = 0;
  std::vector<std::string> instances;  // "NS/INSTANCE" of the processes it runs
  size_t endpoints = 0;                // endpoints it publishes
  bool self = false;
};

class NodeSync : NonCopyable {
 public:
  using OnRemote = std::function<void(std::vector<Endpoint>)>;
  NodeSync(loop::Loop& loop, etcd::Client& client, NodeSyncOptions options, OnRemote on_remote);
  ~NodeSync();

  /// Takes the lease, registers the node, and starts the watch.
  void start();
  /// Revokes the lease (a clean stop): the node and its endpoints leave etcd at once. Nothing
  /// is written afterwards.
  void leave();
  /// This node's endpoints (registry endpoints of its own instances, healthy ones): written
  /// to etcd at the node's address; what is gone is deleted. Cheap when nothing changed.
  void set_local(const std::vector<Endpoint>& endpoints);
  /// Every node that holds a live lease, by name (this one included).
  std::vector<NodeInfo> nodes() const;
  /// False while etcd does not answer the keepalives (or the watch is broken).
  bool connected() const { return connected_ && watching_; }
  uint64_t lease_grants() const { return lease_grants_; }
  /// The endpoint as another node writes it, and back (`node`: the key's node name).
  static std::string encode_endpoint(const Endpoint& ep);
  static std::optional<Endpoint> decode_endpoint(std::string_view json, const std::string& node);

 private:
  void grant();
  void tick();
  void put_node_info();
  void sync_endpoints();
  void resync();
  void start_watch();
  /// After an outage: watch from the last revision seen (a full read if none yet).
  void resume();
  void on_events(const std::vector<etcd::Event>& events, int64_t revision);
  /// A key under PREFIX/endpoints/ or PREFIX/nodes/ changed; true if remote endpoints did.
  bool apply(const etcd::KeyValue& kv, bool put);
  void emit();
  void watch_failed();

  loop::Loop& loop_;
  etcd::Client& client_;
  NodeSyncOptions options_;
  OnRemote on_remote_;
  std::string nodes_dir_, endpoints_dir_, own_dir_;
  uint64_t started_unix_ms_ = 0;

  int64_t lease_id_ = 0;
  bool granting_ = false;
  bool left_ = false;
  bool connected_ = false;
  uint64_t lease_grants_ = 0;
  loop::Timer tick_timer_;
  std::vector<std::string> instances_;
  std::map<std::string, std::string> desired_;    // key → value: this node's endpoints
  std::map<std::string, std::string> published_;  // what etcd has under our lease (as sent)
  bool dirty_ = false;  // a write failed: write everything at the next tick

  std::unique_ptr<etcd::Watch> watch_;
  bool watching_ = false;
  int64_t revision_ = 0;
  loop::Timer retry_timer_;
  uint64_t backoff_ms_ = 0;
  std::map<std::string, NodeInfo> nodes_;                          // by name
  std::map<std::string, std::map<std::string, Endpoint>> remote_;  // node → key → endpoint
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace meshbox::control
