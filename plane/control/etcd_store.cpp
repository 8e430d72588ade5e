#include "plane/control/etcd_store.h"

#include <algorithm>
#include <charconv>

#include <fmt/format.h>

#include "core/base/assert.h"
#include "core/base/json.h"
#include "core/base/log.h"

namespace meshbox::control {

namespace {

constexpr uint64_t kFirstBackoffMs = 200;
constexpr uint64_t kMaxBackoffMs = 5'000;

std::optional<uint64_t> parse_u64(std::string_view s) {
  uint64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return v;
}

std::string encode_value(const StoredResource& r) {
  json::Writer w;
  w.begin_object()
      .field("toml", r.toml)
      .field("origin", r.origin)
      .field("revision", r.revision)
      .end_object();
  return w.take();
}

std::string endpoints_text(const etcd::Client& client) {
  std::string out;
  for (const auto& a : client.options().endpoints)
    out += (out.empty() ? "" : ",") + a.to_string();
  return out;
}

}  // namespace

Result<EtcdUrl> parse_etcd_url(std::string_view url) {
  constexpr std::string_view scheme = "etcd://";
  auto bad = [&](std::string why) {
    return make_error(
        Code::InvalidArgument,
        fmt::format("--store {}: {} (expected etcd://HOST:PORT[,HOST:PORT…][/PREFIX])", url, why));
  };
  if (!url.starts_with(scheme)) return bad("not an etcd:// URL");
  std::string_view rest = url.substr(scheme.size());
  EtcdUrl out;
  size_t slash = rest.find('/');
  std::string_view hosts = rest.substr(0, slash);
  out.prefix =
      slash == std::string_view::npos ? "/meshbox/default" : std::string(rest.substr(slash));
  while (out.prefix.size() > 1 && out.prefix.back() == '/')
    out.prefix.pop_back();
  if (out.prefix == "/") return bad("the prefix is empty");
  while (!hosts.empty()) {
    size_t comma = hosts.find(',');
    std::string_view one = hosts.substr(0, comma);
    auto addr = loop::Address::parse(one);
    if (!addr) return bad(fmt::format("\"{}\": {}", one, addr.error().message()));
    out.endpoints.push_back(*addr);
    if (comma == std::string_view::npos) break;
    hosts.remove_prefix(comma + 1);
  }
  if (out.endpoints.empty()) return bad("no HOST:PORT");
  return out;
}

EtcdStore::EtcdStore(loop::Loop& loop, etcd::Client& client, std::string prefix)
    : loop_(loop),
      client_(client),
      prefix_(std::move(prefix)),
      config_dir_(prefix_ + "/config/"),
      rev_key_(prefix_ + "/config-rev"),
      retry_timer_(loop, [this] { resume(); }) {}

EtcdStore::~EtcdStore() {
  *alive_ = false;
}

Result<std::unique_ptr<EtcdStore>> EtcdStore::open(loop::Loop& loop, etcd::Client& client,
                                                   std::string prefix, uint64_t timeout_ms) {
  std::unique_ptr<EtcdStore> store(new EtcdStore(loop, client, std::move(prefix)));
  EtcdStore* s = store.get();
  s->resync();
  loop.run_until([s] { return s->loaded_ || !s->load_error_.empty(); }, timeout_ms);
  if (!s->loaded_) {
    std::string why = s->load_error_.empty() ? "no answer" : s->load_error_;
    return make_error(Code::Unavailable,
                      fmt::format("etcd at {}: {}", endpoints_text(client), why));
  }
  return store;
}

std::string EtcdStore::resource_key(std::string_view kind, std::string_view ns,
                                    std::string_view name) const {
  return fmt::format("{}{}/{}/{}", config_dir_, kind, ns, name);
}

void EtcdStore::resync() {
  watch_.reset();
  std::weak_ptr<bool> alive = alive_;
  // [PREFIX/config, PREFIX/confih): PREFIX/config-rev and everything under PREFIX/config/.
  std::string from = prefix_ + "/config";
  client_.range(from, etcd::Client::prefix_end(from), [this, alive](Result<etcd::RangeResult> r) {
    if (alive.expired()) return;
    if (!r) {
      if (!loaded_) load_error_ = r.error().message();
      MB_WARN("store", "etcd: cannot read the config: {}", r.error().message());
      return retry_later();
    }
    std::vector<StoredResource> fresh;
    uint64_t revision = 0;
    for (const auto& kv : r->kvs) {
      etcd::Event e{etcd::Event::Type::Put, kv};
      if (kv.key == rev_key_) {
        revision = parse_u64(kv.value).value_or(0);
        continue;
      }
      std::string_view rest = std::string_view(kv.key);
      if (!rest.starts_with(config_dir_)) continue;
      rest.remove_prefix(config_dir_.size());
      size_t a = rest.find('/'), b = rest.rfind('/');
      if (a == std::string_view::npos || a == b) continue;
      auto doc = json::parse(kv.value);
      const json::Value* toml = doc && doc->is_object() ? doc->get("toml") : nullptr;
      const json::Value* origin = doc && doc->is_object() ? doc->get("origin") : nullptr;
      const json::Value* rev = doc && doc->is_object() ? doc->get("revision") : nullptr;
      if (!toml || !toml->is_string() || !origin || !origin->is_string() || !rev ||
          !rev->as_int()) {
        MB_ERROR("store", "etcd key {}: not a stored resource; ignored", kv.key);
        continue;
      }
      fresh.push_back({std::string(rest.substr(0, a)), std::string(rest.substr(a + 1, b - a - 1)),
                       std::string(rest.substr(b + 1)), toml->string, origin->string,
                       static_cast<uint64_t>(*rev->as_int())});
    }
    std::sort(fresh.begin(), fresh.end(), store_order);
    bool diff = revision != revision_ || fresh.size() != resources_.size() ||
                !std::equal(fresh.begin(), fresh.end(), resources_.begin(),
                            [](const StoredResource& x, const StoredResource& y) {
                              return x.kind == y.kind && x.ns == y.ns && x.name == y.name &&
                                     x.toml == y.toml && x.origin == y.origin &&
                                     x.revision == y.revision;
                            });
    resources_ = std::move(fresh);
    revision_ = revision;
    etcd_revision_ = r->revision;
    ++resyncs_;
    loaded_ = true;
    if (!connected_ && disconnected_since_ms_ != 0)
      MB_INFO("store", "etcd: reachable again; config revision {}", revision_);
    connected_ = true;
    backoff_ms_ = 0;
    start_watch();
    if (diff) changed();
  });
}

void EtcdStore::resume() {
  watch_.reset();
  if (!loaded_) return resync();
  // Watch on from the last revision seen: what changed meanwhile comes as events (or, when
  // etcd compacted past it, as a compaction error: then a full read). The watch's creation
  // is not reported, so one read of the revision key tells that etcd answers again.
  start_watch();
  client_.range(
      rev_key_, "", [this, alive = std::weak_ptr<bool>(alive_)](Result<etcd::RangeResult> r) {
        if (alive.expired() || !r || !watch_) return;  // a broken watch retries on its own
        if (!connected_)
          MB_INFO("store", "etcd: reachable again; watching from revision {}", etcd_revision_ + 1);
        connected_ = true;
        backoff_ms_ = 0;
      });
}

void EtcdStore::start_watch() {
  std::string from = prefix_ + "/config";
  watch_ = client_.watch(
      from, etcd::Client::prefix_end(from), etcd_revision_ + 1,
      [this](std::vector<etcd::Event> events, int64_t revision) {
        on_events(std::move(events), revision);
      },
      [this](etcd::WatchError error) { on_watch_error(error); });
}

void EtcdStore::on_events(std::vector<etcd::Event> events, int64_t revision) {
  bool diff = false;
  for (const auto& e : events) {
    // A commit of this node was applied already (commit()); its events come back here.
    if (e.kv.mod_revision != 0 && e.kv.mod_revision <= etcd_revision_) continue;
    diff |= apply(e);
  }
  etcd_revision_ = std::max(etcd_revision_, revision);
  if (diff) changed();
}

bool EtcdStore::apply(const etcd::Event& e) {
  const std::string& key = e.kv.key;
  bool put = e.type == etcd::Event::Type::Put;
  if (key == rev_key_) {
    uint64_t rev = put ? parse_u64(e.kv.value).value_or(0) : 0;
    if (rev == revision_) return false;
    revision_ = rev;
    return true;
  }
  if (!key.starts_with(config_dir_)) return false;
  std::string_view rest = std::string_view(key).substr(config_dir_.size());
  size_t a = rest.find('/'), b = rest.rfind('/');
  if (a == std::string_view::npos || a == b) return false;
  StoredResource r{std::string(rest.substr(0, a)),
                   std::string(rest.substr(a + 1, b - a - 1)),
                   std::string(rest.substr(b + 1)),
                   {},
                   {},
                   0};
  auto it = std::lower_bound(resources_.begin(), resources_.end(), r, store_order);
  bool found = it != resources_.end() && it->kind == r.kind && it->ns == r.ns && it->name == r.name;
  if (!put) {
    if (!found) return false;
    resources_.erase(it);
    return true;
  }
  auto doc = json::parse(e.kv.value);
  const json::Value* toml = doc && doc->is_object() ? doc->get("toml") : nullptr;
  const json::Value* origin = doc && doc->is_object() ? doc->get("origin") : nullptr;
  const json::Value* rev = doc && doc->is_object() ? doc->get("revision") : nullptr;
  if (!toml || !toml->is_string() || !origin || !origin->is_string() || !rev || !rev->as_int()) {
    MB_ERROR("store", "etcd key {}: not a stored resource; ignored", key);
    return false;
  }
  r.toml = toml->string;
  r.origin = origin->string;
  r.revision = static_cast<uint64_t>(*rev->as_int());
  if (found) {
    if (it->toml == r.toml && it->origin == r.origin && it->revision == r.revision) return false;
    *it = std::move(r);
  } else {
    resources_.insert(it, std::move(r));
  }
  return true;
}

void EtcdStore::on_watch_error(const etcd::WatchError& error) {
  if (error.compacted()) {
    MB_WARN("store", "etcd compacted past revision {} (to {}): reading the config again",
            etcd_revision_ + 1, error.compact_revision);
    loop_.run_soon([this, alive = std::weak_ptr<bool>(alive_)] {
      if (!alive.expired()) resync();
    });
    return;
  }
  MB_WARN("store", "etcd watch broken: {}; keeping the config of revision {}",
          error.status.message(), revision_);
  watch_.reset();
  retry_later();
}

void EtcdStore::retry_later() {
  if (connected_ || disconnected_since_ms_ == 0) disconnected_since_ms_ = loop_.now_ms();
  connected_ = false;
  backoff_ms_ = backoff_ms_ == 0 ? kFirstBackoffMs : std::min(backoff_ms_ * 2, kMaxBackoffMs);
  ++watch_restarts_;
  // After the backoff: watch again from the last revision seen (resume()); commits are
  // refused until etcd answers.
  retry_timer_.start(backoff_ms_);
}

void EtcdStore::commit(uint64_t expected_revision, std::vector<StoreMutation> mutations,
                       Done done) {
  MB_ASSERT(loop_.is_this_thread());
  auto finish_soon = [this, done](Result<uint64_t> r) {
    loop_.run_soon([done, r = std::move(r)]() mutable {
      if (done) done(std::move(r));
    });
  };
  for (const auto& m : mutations)
    if (Status s = check_mutation(m); !s) return finish_soon(std::move(s));
  if (expected_revision != revision_)
    return finish_soon(
        make_error(Code::Conflict, fmt::format("the store is at revision {}, not {}: read it again",
                                               revision_, expected_revision)));
  if (!connected_)
    return finish_soon(make_error(Code::Unavailable,
                                  fmt::format("etcd at {} is unreachable: the config cannot change "
                                              "until it is back",
                                              endpoints_text(client_))));
  uint64_t revision = revision_ + 1;
  std::vector<StoredResource> next;
  if (!apply_mutations(resources_, mutations, revision, &next)) return finish_soon(revision_);

  // The transaction: every resource this commit changed (put) or removed (delete), and the
  // store revision, only if nobody else committed since we read revision_.
  std::vector<etcd::Op> ops;
  for (const auto& r : next) {
    if (r.revision != revision) continue;
    ops.push_back(
        {etcd::Op::Type::Put, resource_key(r.kind, r.ns, r.name), encode_value(r), {}, 0});
  }
  for (const auto& old : resources_) {
    if (std::binary_search(next.begin(), next.end(), old, store_order)) continue;
    ops.push_back({etcd::Op::Type::Delete, resource_key(old.kind, old.ns, old.name), {}, {}, 0});
  }
  ops.push_back({etcd::Op::Type::Put, rev_key_, std::to_string(revision), {}, 0});
  etcd::Compare cmp;
  cmp.key = rev_key_;
  if (revision_ == 0) {
    cmp.target = etcd::Compare::Target::Version;  // the key does not exist yet
    cmp.number = 0;
  } else {
    cmp.target = etcd::Compare::Target::Value;
    cmp.value = std::to_string(revision_);
  }
  std::weak_ptr<bool> alive = alive_;
  client_.txn(
      {cmp}, std::move(ops), {},
      [this, alive, done, revision, next = std::move(next)](Result<etcd::TxnResult> r) mutable {
        auto finish = [&done](Result<uint64_t> v) {
          if (done) done(std::move(v));
        };
        if (alive.expired()) return finish(make_error(Code::Unavailable, "store closed"));
        if (!r) return finish(r.error());
        if (!r->succeeded)
          return finish(make_error(
              Code::Conflict, "another node changed the config at the same time: read it again"));
        // Visible here at once; the watch brings the same events later (skipped by their
        // revision). The transaction held only if no other config commit came between our
        // read and it; if the watch already brought ours, or a later one, there is nothing
        // to do. (Other keys, nodes' heartbeats, move etcd's revision without touching the
        // config: they do not matter here.)
        if (revision_ + 1 != revision) {
          finish(revision);
          return;
        }
        resources_ = std::move(next);
        revision_ = revision;
        etcd_revision_ = std::max(etcd_revision_, r->revision);
        changed();
        finish(revision);
      });
}

void EtcdStore::watch(std::function<void()> on_change) {
  MB_ASSERT(loop_.is_this_thread());
  watchers_.push_back(std::move(on_change));
}

void EtcdStore::changed() {
  if (notify_pending_) return;
  notify_pending_ = true;
  loop_.run_soon([this, alive = std::weak_ptr<bool>(alive_)] {
    if (alive.expired()) return;
    notify_pending_ = false;
    // Index loop: a watcher may add watchers.
    for (size_t i = 0; i < watchers_.size(); ++i)
      watchers_[i]();
  });
}

}  // namespace meshbox::control
