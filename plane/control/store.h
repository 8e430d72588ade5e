// Store: the config store (Istio's Galley). Owns the mesh's resources as text, one TOML
// document each (config::Source::toml), under a revision that grows with every change. Writes
// are all-or-nothing and conditional on the revision the writer read (as etcd transactions);
// watchers hear of every change. An interface, so that an etcd backend can replace
// EmbeddedStore without the control plane changing. Loop thread only (the control loop).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/base/non_copyable.h"
#include "core/base/result.h"
#include "core/loop/loop.h"

namespace meshbox::control {

/// One resource as the store keeps it. (kind, ns, name) is its key.
struct StoredResource {
  std::string kind;       // "mesh", "service", "virtual_service", … (config::resource_kinds())
  std::string ns;         // "" for the mesh
  std::string name;       // "mesh" for the mesh
  std::string toml;       // config::Source::toml of the resource: a TOML document of its own
  std::string origin;     // who wrote it last: "file" (meshbox run PATH) or "api" (meshbox apply)
  uint64_t revision = 0;  // the store revision that last wrote it
};

/// One change of a commit. A Put replaces the resource with the same key or adds it; a Delete
/// removes it (its toml and origin are not used).
struct StoreMutation {
  enum class Op { Put, Delete };
  Op op = Op::Put;
  std::string kind, ns, name, toml, origin;
};

/// resources() order: kind (config::resource_kinds() order), namespace, name.
bool store_order(const StoredResource& a, const StoredResource& b);
/// Whether a commit may take `m`: a known kind, a namespace and name (the mesh: none and
/// "mesh"), toml and origin on a put. InvalidArgument naming the resource otherwise.
Status check_mutation(const StoreMutation& m);
/// `current` (sorted, store_order) with `mutations` applied in order, into `next`: what a
/// commit at `revision` makes of it. Resources a mutation touched but left as they were keep
/// their revision; changed ones get `revision`. False if nothing changed.
bool apply_mutations(const std::vector<StoredResource>& current,
                     std::vector<StoreMutation> mutations, uint64_t revision,
                     std::vector<StoredResource>* next);

class Store {
 public:
  virtual ~Store() = default;

  /// Only grows; 0 = empty, never written.
  virtual uint64_t revision() const = 0;
  /// Every resource, sorted by (kind in config::resource_kinds() order, ns, name). Valid until
  /// the next change.
  virtual const std::vector<StoredResource>& resources() const = 0;

  using Done = std::function<void(Result<uint64_t>)>;
  /// Applies every mutation, in order, or none: only if revision() == expected_revision, else
  /// `done` gets Code::Conflict (read again and retry). A commit that changes nothing (a Put of
  /// the same toml and origin, a Delete of something absent, no mutations) keeps the revision
  /// and `done` gets the current one; otherwise the revision grows by one and `done` gets it.
  /// A mutation with an unknown kind or an empty name is Code::InvalidArgument; a failed write
  /// is Code::Io, and then nothing changed. `done` may run before commit() returns (embedded)
  /// or later (remote): callers handle both. It may be empty.
  virtual void commit(uint64_t expected_revision, std::vector<StoreMutation> mutations,
                      Done done) = 0;

  /// Calls `on_change` on the loop after committed changes: coalesced (several commits in one
  /// loop iteration make one call), never from inside commit(), never re-entered (a watcher
  /// that commits is called again later). Changes made by other nodes count too (remote
  /// backends). Every watcher stays until the store is destroyed; none is called after that.
  virtual void watch(std::function<void()> on_change) = 0;
};

/// The store in memory, persisted to one file, STATE_DIR/store.json, which every committed
/// change rewrites whole and atomically (temp file, fsync, rename, fsync of the directory).
/// Blocking file I/O: for the control loop, never a worker.
///
/// store.json: {"format":1,"revision":N,"resources":[{"kind":…,"namespace":…,"name":…,
/// "origin":…,"revision":…,"toml":…},…]}, resources in resources() order.
class EmbeddedStore final : public Store, NonCopyable {
 public:
  static constexpr int kFormat = 1;

  /// Creates `state_dir` (mode 0700, parents too) if missing and loads STATE_DIR/store.json if
  /// present. A file that cannot be read or is not a valid store is an error naming the path
  /// and what is wrong: starting empty would silently drop the mesh's config.
  static Result<std::unique_ptr<EmbeddedStore>> open(loop::Loop& loop,
                                                     const std::string& state_dir);
  ~EmbeddedStore() override;

  uint64_t revision() const override { return revision_; }
  const std::vector<StoredResource>& resources() const override { return resources_; }
  void commit(uint64_t expected_revision, std::vector<StoreMutation> mutations, Done done) override;
  void watch(std::function<void()> on_change) override;

  /// STATE_DIR/store.json.
  const std::string& path() const { return path_; }

 private:
  EmbeddedStore(loop::Loop& loop, std::string state_dir);
  Status load();
  Status write(uint64_t revision, const std::vector<StoredResource>& resources);
  void changed();

  loop::Loop& loop_;
  std::string dir_;
  std::string path_;
  int lock_fd_ = -1;  // STATE_DIR/lock, flock'ed: one process per state dir
  uint64_t revision_ = 0;
  std::vector<StoredResource> resources_;
  std::vector<std::function<void()>> watchers_;
  bool notify_pending_ = false;
  // Shared with the notification queued on the loop: false once the store is destroyed, so a
  // notification that runs later does nothing (Loop::run_soon cannot be cancelled).
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace meshbox::control
