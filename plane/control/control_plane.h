// ControlPlane: the mesh's brain in one object on the control loop — the config store, the
// registry with its health checks, the compiler, the supervisor that runs workloads with a
// `command` (and keeps the processes attached with `meshbox inject`), and the admin API
// (127.0.0.1:15000). Every change (files under the config path, `meshbox apply`/`delete`,
// endpoint registrations, health transitions) goes: candidate config → validation (rejected
// whole on any error) → store commit → compile with the registry → publish to the workers
// through a SnapshotSink, only when the compiled snapshot really changed.
// Loop thread only (the control loop).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/base/non_copyable.h"
#include "core/base/result.h"
#include "core/loop/address.h"
#include "core/loop/loop.h"
#include "core/loop/timer.h"
#include "core/stats/registry.h"
#include "core/tls/certificate.h"
#include "plane/cluster_status.h"
#include "plane/config/error.h"
#include "plane/config/load.h"
#include "plane/control/compiler.h"
#include "plane/control/http_server.h"
#include "plane/snapshot.h"
#include "plane/tap.h"

namespace meshbox::control {

class CertificateAuthority;
class UpstreamTlsCache;
class JwksCache;
class GatewayTls;
class Store;
class Registry;
struct Endpoint;
class Supervisor;
class EtcdStore;
class NodeSync;
namespace etcd {
class Client;
}

/// Where snapshots go: the process's workers (cli/runtime.h). Loop thread only.
class SnapshotSink {
 public:
  virtual ~SnapshotSink() = default;
  /// Numbers the snapshot, reserves its new listeners' ports (a port 0 becomes a real one)
  /// and hands it to every worker. Fails, publishing nothing, if a new listener's address
  /// is taken. Returns the published snapshot.
  virtual Result<SnapshotConstPtr> publish(std::shared_ptr<Snapshot> snapshot) = 0;
  /// The last published snapshot (null before the first).
  virtual SnapshotConstPtr current() const = 0;
  /// The lowest version every worker has applied.
  virtual uint64_t applied_version() const = 0;
  /// Runs `done` on the loop once every worker applied `version` (at once if they have).
  virtual void when_applied(uint64_t version, std::function<void()> done) = 0;
  /// Publish → last worker's ack, in milliseconds, for the recent pushes (oldest first).
  virtual std::vector<double> push_latencies_ms() const = 0;
  /// Every live cluster's run-time state (GET /clusters): circuit-breaker counters, the
  /// workers' connections per endpoint, outlier detection. Empty when the sink has no workers.
  virtual std::vector<ClusterStatus> cluster_status() const { return {}; }
  /// The process's metrics (GET /stats/prometheus; the control plane adds its own families
  /// and callbacks at start); null when the sink records none.
  virtual stats::Registry* metrics() { return nullptr; }
  /// Where `meshbox tap` sessions open (GET /tap); null when the sink has no workers.
  virtual TapSource* tap() { return nullptr; }
};

struct ControlOptions {
  std::string state_dir = ".meshbox";
  std::vector<std::string> config_paths;  // `meshbox run PATH…`; may be empty (store only)
  std::string admin_address = "127.0.0.1:15000";
  std::string default_bind = "0.0.0.0";  // gateway servers without `bind`
  std::string locality;  // this node's "region/zone/subzone" (locality load balancing); "" = none
  bool watch_files = true;  // reload when a file under config_paths changes
  /// A multi-node mesh (docs/multinode.md): `etcd://HOST:PORT[,HOST:PORT…][/PREFIX]`, the
  /// config store and registry in etcd; "" = the embedded store (one node).
  std::string store_url;
  std::string node;           // this node's name (required with store_url)
  std::string node_address;   // where other nodes reach this node's instances: an IP of it
  int64_t lease_ttl_s = 10;   // the node's etcd lease: its endpoints leave this long after it dies
  std::string mesh_key_file;  // the key that seals the mesh's CA root in etcd (ca_share.h)
  /// Workloads with a command (supervisor.h): meshbox's environment (NAME=VALUE), the base of
  /// theirs; the argv put before each command (cli: PR_SET_PDEATHSIG); SIGTERM → SIGKILL.
  std::vector<std::string> environment;
  std::vector<std::string> workload_launcher;
  uint64_t workload_stop_grace_ms = 5'000;
  /// Each line a workload writes also goes here (stderr) as "[INSTANCE] line"; -1: nowhere.
  int workload_echo_fd = 2;
};

class ControlPlane : NonCopyable {
 public:
  ControlPlane(loop::Loop& loop, SnapshotSink& sink, ControlOptions options);
  ~ControlPlane();

  /// Opens the store, applies the config files (their errors are returned, formatted, one a
  /// line), compiles and publishes the first snapshot, starts the admin API and writes the
  /// admin token (STATE_DIR/admin.token, mode 0600) and address (STATE_DIR/admin.address).
  /// Last, starts the workloads that have a command (their endpoints follow as they run).
  Status start();
  /// Re-reads the config files (SIGHUP, or a change under the paths). A config with errors is
  /// rejected whole and logged; the running one stays.
  void reload_files();
  /// Stops every workload process (SIGTERM, SIGKILL after the grace) and starts none again;
  /// `done` runs on a later loop iteration once all have exited. The rest keeps running.
  void stop_workloads(std::function<void()> done);
  /// SIGKILL to every workload process now (a second SIGTERM/SIGINT).
  void kill_workloads();
  /// Stops the admin API, the file watcher, the health checks and the supervisor (killing
  /// any workload still running: stop_workloads() first).
  void stop();

  const loop::Address& admin_address() const;

 private:
  struct Pending;
  class FileWatch;

  /// Validates `docs` replacing/removing the given keys on top of the store's resources,
  /// then commits. `origin`: "file" or "api".
  struct Change {
    std::vector<config::Document> documents;  // resources to put
    std::vector<std::string> removed_keys;    // "kind/ns/name" to delete
    bool replace_origin = false;              // drop every resource of `origin` the documents lack
    std::string origin;
    int attempt = 0;  // a remote store's conflict (another node committed first) retries it
  };
  struct ChangeResult {
    bool ok = false;
    uint64_t revision = 0;
    std::vector<config::ConfigError> findings;  // errors (then nothing changed) and warnings
    std::string error;                          // a store failure
    Code error_code = Code::Internal;           // its code (Unavailable: etcd unreachable)
    std::vector<std::string> changed;           // "kind/ns/name" put or deleted
  };
  void change(Change change, std::function<void(ChangeResult)> done);
  void on_store_change();
  void recompile();
  void handle(HttpRequest& req, Respond respond);
  bool authorized(const HttpRequest& req) const;
  void apply(HttpRequest& req, Respond respond);
  void finish_change(const ChangeResult& result, bool wait, const Respond& respond);
  void register_endpoint(HttpRequest& req, Respond respond);
  /// POST /workloads/attach and DELETE /workloads/attach/INSTANCE: manual injection
  /// (`meshbox inject`, supervisor.h). The attach answers once every worker serves the new
  /// instance's sidecar listeners, with its name, ports and the environment for the app.
  void attach_workload(HttpRequest& req, Respond respond);
  void detach_workload(HttpRequest& req, Respond respond);
  std::string services_json() const;
  std::string endpoints_json() const;
  /// GET /clusters: `?format=text` gives Envoy's `cluster::host::field::value` lines.
  std::string clusters_json() const;
  std::string clusters_text() const;
  /// GET /certs: the CA's root (and signer) and every identity it issued, with the listeners
  /// that serve each. Certificates only: never a key.
  std::string certs_json() const;
  /// GET, POST or PUT /logging[?level=LEVEL].
  void logging(HttpRequest& req, Respond respond);
  std::string routes_json() const;
  std::string push_stats_json() const;
  /// Adds the control plane's metrics (clusters, config, certificates) to the sink's
  /// registry, once.
  void register_metrics();
  bool metrics_registered_ = false;
  std::string workloads_json() const;
  /// Gives the registry the endpoints of the running workload processes.
  void update_instance_endpoints();
  /// Running instances with a sidecar that the registry does not list yet (their app has not
  /// passed its first health check), with an empty host: see recompile().
  std::vector<Endpoint> starting_sidecars() const;
  /// Mesh mTLS: the TLS contexts of a workload identity, from a certificate the CA issued for
  /// it (24 h), made again once past its half-life; null without a CA or when issuing fails.
  const MeshIdentity* mesh_identity(const std::string& spiffe_id);

  /// GET /nodes: the mesh's nodes (multi-node), or this one alone.
  std::string nodes_json() const;
  /// Workloads this node runs: those whose `nodes` name it (or name none).
  std::vector<config::Workload> placed_workloads() const;
  /// The registry's endpoints of this node's instances, for NodeSync.
  void publish_local_endpoints();

  loop::Loop& loop_;
  SnapshotSink& sink_;
  ControlOptions options_;
  std::unique_ptr<etcd::Client> etcd_;  // a multi-node mesh; before store_: it outlives it
  EtcdStore* etcd_store_ = nullptr;     // store_, when it is etcd's
  std::string etcd_prefix_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<CertificateAuthority> ca_;  // from start(): STATE_DIR/ca or the operator's
  std::unique_ptr<Registry> registry_;
  std::unique_ptr<NodeSync> node_sync_;  // after registry_: destroyed first
  /// Changes another node's commit beat (etcd): tried again shortly, on the newer config.
  std::vector<std::pair<Change, std::function<void(ChangeResult)>>> conflict_retries_;
  std::unique_ptr<loop::Timer> conflict_timer_;
  std::unique_ptr<Supervisor> supervisor_;  // from the end of start()
  std::unique_ptr<HttpServer> admin_;
  std::unique_ptr<FileWatch> file_watch_;
  std::shared_ptr<const config::Config> config_;  // the store's resources, decoded
  uint64_t config_revision_ = 0;
  std::string token_;
  std::vector<std::string> compile_warnings_;
  bool publishing_ = false;         // start() has loaded the store and the files
  std::string last_publish_error_;  // the newest snapshot could not be published (a port taken)
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  struct IdentityEntry {
    MeshIdentity contexts;
    std::optional<tls::Certificate> leaf;  // the certificate they serve (GET /certs)
    std::chrono::system_clock::time_point renew_at;
  };
  std::map<std::string, IdentityEntry> identities_;  // by SPIFFE ID
  std::unique_ptr<loop::Timer> renew_timer_;         // the earliest renew_at: recompile
  /// destination_rule tls contexts (upstream_tls.h), and the poll of their files: a changed
  /// certificate, key or CA file recompiles.
  std::unique_ptr<UpstreamTlsCache> upstream_tls_;
  std::unique_ptr<JwksCache> jwks_;  // request_authentication jwks_uri key sets
  std::unique_ptr<loop::Timer> upstream_tls_timer_;
  /// Gateway servers' TLS contexts (gateway_tls.h), with the poll of their files.
  std::unique_ptr<GatewayTls> gateway_tls_;
  /// Local rate limits' buckets by key, as the last compile used them (rate_limit_bucket).
  std::map<std::string, std::shared_ptr<TokenBucket>> buckets_;
};

}  // namespace meshbox::control
