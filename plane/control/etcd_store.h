// EtcdStore: the config store (store.h) kept in etcd, shared by every node of a multi-node
// mesh (`meshbox run --store etcd://…`). Each resource is one key, PREFIX/config/KIND/NS/NAME,
// whose value is {"toml":…,"origin":…,"revision":N}; PREFIX/config-rev holds the store's
// revision (a decimal number that grows by one per commit, as the embedded store's). A commit
// is one etcd transaction, conditional on PREFIX/config-rev still holding the revision the
// writer read: two nodes committing at once cannot both win (the loser gets Code::Conflict).
//
// Every node keeps the resources in memory and watches PREFIX/config*: a commit on any node
// reaches every node's watchers. A watch stream that breaks is resumed from the last revision
// seen (with backoff, 0.2 s doubling to 5 s); when etcd compacted past it, the store reads
// everything again (a full resync) and watches on from there. While etcd is unreachable the
// store keeps what it had (degraded: connected() is false) and commits fail Unavailable.
// Loop thread only (the control loop).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/base/non_copyable.h"
#include "core/base/result.h"
#include "core/loop/loop.h"
#include "core/loop/timer.h"
#include "plane/control/etcd_client.h"
#include "plane/control/store.h"

namespace meshbox::control {

class EtcdStore final : public Store, NonCopyable {
 public:
  /// Reads the store under `prefix` ("/meshbox/default": no trailing '/') and starts the
  /// watch. Runs `loop` until etcd answered or `timeout_ms` passed: for meshbox run's start,
  /// before its loop runs. Fails naming the endpoints when etcd does not answer, or naming the
  /// key of a value that is not a stored resource.
  static Result<std::unique_ptr<EtcdStore>> open(loop::Loop& loop, etcd::Client& client,
                                                 std::string prefix, uint64_t timeout_ms);
  ~EtcdStore() override;

  uint64_t revision() const override { return revision_; }
  const std::vector<StoredResource>& resources() const override { return resources_; }
  /// Unavailable while etcd is unreachable (nothing written); Conflict when another writer
  /// committed first. On success the new resources are visible here at once (before the
  /// watch brings the same change back).
  void commit(uint64_t expected_revision, std::vector<StoreMutation> mutations, Done done) override;
  void watch(std::function<void()> on_change) override;

  /// False while the watch is broken (etcd unreachable); `since_ms` (loop time) of the break.
  bool connected() const { return connected_; }
  uint64_t disconnected_since_ms() const { return disconnected_since_ms_; }
  /// Full reads done (the first, and one per compaction past the watch); watch restarts.
  uint64_t resyncs() const { return resyncs_; }
  uint64_t watch_restarts() const { return watch_restarts_; }
  /// The etcd revision the resources reflect.
  int64_t etcd_revision() const { return etcd_revision_; }

  /// PREFIX/config/KIND/NS/NAME.
  std::string resource_key(std::string_view kind, std::string_view ns, std::string_view name) const;

 private:
  EtcdStore(loop::Loop& loop, etcd::Client& client, std::string prefix);
  /// Reads every resource, replaces the cache, then watches from after that read.
  void resync();
  void start_watch();
  /// After an outage: watch from the last revision seen; a full read if nothing was read yet.
  void resume();
  void on_events(std::vector<etcd::Event> events, int64_t revision);
  void on_watch_error(const etcd::WatchError& error);
  /// etcd did not answer or the watch broke: mark degraded, read again after the backoff.
  void retry_later();
  /// Applies one event to resources_/revision_; true if something changed.
  bool apply(const etcd::Event& e);
  void changed();

  loop::Loop& loop_;
  etcd::Client& client_;
  std::string prefix_;      // "/meshbox/default"
  std::string config_dir_;  // PREFIX/config/
  std::string rev_key_;     // PREFIX/config-rev
  uint64_t revision_ = 0;
  int64_t etcd_revision_ = 0;
  std::vector<StoredResource> resources_;
  std::unique_ptr<etcd::Watch> watch_;
  loop::Timer retry_timer_;
  uint64_t backoff_ms_ = 0;
  bool connected_ = false;
  uint64_t disconnected_since_ms_ = 0;
  uint64_t resyncs_ = 0, watch_restarts_ = 0;
  std::string load_error_;  // the first read's error (open)
  bool loaded_ = false;
  std::vector<std::function<void()>> watchers_;
  bool notify_pending_ = false;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

/// `etcd://HOST:PORT[,HOST:PORT…][/PREFIX]` → the endpoints and the key prefix (default
/// "/meshbox/default", no trailing '/'). HOSTs are IPs.
struct EtcdUrl {
  std::vector<loop::Address> endpoints;
  std::string prefix;
};
Result<EtcdUrl> parse_etcd_url(std::string_view url);

}  // namespace meshbox::control
