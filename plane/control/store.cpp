#include "plane/control/store.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <tuple>

#include <fmt/format.h>

#include "core/base/assert.h"
#include "core/base/json.h"
#include "core/base/log.h"
#include "plane/config/resources.h"

namespace meshbox::control {

namespace {

constexpr const char* kFileName = "store.json";
constexpr const char* kTempName = "store.json.tmp";

// The kind's place in config::resource_kinds(); -1 if it is not a kind.
int kind_rank(std::string_view kind) {
  auto kinds = config::resource_kinds();
  auto it = std::find(kinds.begin(), kinds.end(), kind);
  return it == kinds.end() ? -1 : static_cast<int>(it - kinds.begin());
}

// resources() order: (kind rank, ns, name).
auto sort_key(std::string_view kind, std::string_view ns, std::string_view name) {
  return std::make_tuple(kind_rank(kind), ns, name);
}
bool before(const StoredResource& a, const StoredResource& b) {
  return sort_key(a.kind, a.ns, a.name) < sort_key(b.kind, b.ns, b.name);
}
bool same_key(const StoredResource& a, std::string_view kind, std::string_view ns,
              std::string_view name) {
  return a.kind == kind && a.ns == ns && a.name == name;
}

// The first resource whose key is not before (kind, ns, name), in a sorted vector.
std::vector<StoredResource>::iterator find_slot(std::vector<StoredResource>& v,
                                                const std::string& kind, const std::string& ns,
                                                const std::string& name) {
  auto key = sort_key(kind, ns, name);
  return std::lower_bound(v.begin(), v.end(), key, [](const StoredResource& r, const auto& k) {
    return sort_key(r.kind, r.ns, r.name) < k;
  });
}

std::string describe(std::string_view kind, std::string_view ns, std::string_view name) {
  return ns.empty() ? fmt::format("{} {}", kind, name) : fmt::format("{} {}/{}", kind, ns, name);
}

}  // namespace

bool store_order(const StoredResource& a, const StoredResource& b) {
  return before(a, b);
}

Status check_mutation(const StoreMutation& m) {
  std::string what = describe(m.kind, m.ns, m.name);
  if (kind_rank(m.kind) < 0)
    return make_error(Code::InvalidArgument, fmt::format("{}: unknown kind", what));
  bool mesh = m.kind == "mesh";
  if (m.name.empty() || (mesh ? !m.ns.empty() || m.name != "mesh" : m.ns.empty()))
    return make_error(Code::InvalidArgument,
                      fmt::format("{}: a resource needs a namespace and a name (the mesh: no "
                                  "namespace, name \"mesh\")",
                                  what));
  if (m.op == StoreMutation::Op::Put && (m.toml.empty() || m.origin.empty()))
    return make_error(Code::InvalidArgument,
                      fmt::format("{}: a put needs toml and an origin", what));
  return Status::ok();
}

bool apply_mutations(const std::vector<StoredResource>& current,
                     std::vector<StoreMutation> mutations, uint64_t revision,
                     std::vector<StoredResource>* out) {
  // Touched resources get revision 0 until the end, when those that came back to what they
  // were get their old revision again (a put then a put back, a put then a delete, are no
  // change).
  std::vector<StoredResource> next = current;
  for (auto& m : mutations) {
    auto it = find_slot(next, m.kind, m.ns, m.name);
    bool found = it != next.end() && same_key(*it, m.kind, m.ns, m.name);
    if (m.op == StoreMutation::Op::Delete) {
      if (found) next.erase(it);
      continue;
    }
    if (found && it->toml == m.toml && it->origin == m.origin) continue;
    if (!found) {
      it = next.insert(
          it, StoredResource{std::move(m.kind), std::move(m.ns), std::move(m.name), {}, {}, 0});
    }
    it->toml = std::move(m.toml);
    it->origin = std::move(m.origin);
    it->revision = 0;
  }
  // Unchanged when every resource left is one that was there, as it was, and none went away.
  bool any_change = next.size() != current.size();
  for (auto& r : next) {
    if (r.revision != 0) continue;
    auto old = std::lower_bound(current.begin(), current.end(), r, before);
    if (old != current.end() && same_key(*old, r.kind, r.ns, r.name) && old->toml == r.toml &&
        old->origin == r.origin) {
      r.revision = old->revision;
    } else {
      r.revision = revision;
      any_change = true;
    }
  }
  *out = std::move(next);
  return any_change;
}

namespace {

Status io_error(const std::string& path, std::string_view what, int err) {
  return make_error(Code::Io, fmt::format("{}: {}: {}", path, what, std::strerror(err)));
}

// mkdir -p with mode 0700 for every directory it creates. The mode is set again with chmod
// after mkdir, which the umask may have narrowed; existing directories keep theirs.
Status make_dirs(const std::string& dir) {
  if (dir.empty()) return make_error(Code::InvalidArgument, "the state directory is \"\"");
  for (size_t i = 1; i <= dir.size(); ++i) {
    if (i < dir.size() && dir[i] != '/') continue;
    std::string prefix = dir.substr(0, i);
    if (prefix.back() == '/') continue;  // "a//b"
    if (::mkdir(prefix.c_str(), 0700) == 0) {
      if (::chmod(prefix.c_str(), 0700) != 0) return io_error(prefix, "chmod", errno);
      continue;
    }
    if (errno != EEXIST) return io_error(prefix, "cannot create the directory", errno);
    struct stat st;
    if (::stat(prefix.c_str(), &st) != 0) return io_error(prefix, "stat", errno);
    if (!S_ISDIR(st.st_mode))
      return make_error(Code::InvalidArgument, prefix + ": exists and is not a directory");
  }
  return Status::ok();
}

// Reads the whole file; "" with `*missing` set if there is none.
Result<std::string> read_all(const std::string& path, bool* missing) {
  *missing = false;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) {
      *missing = true;
      return std::string();
    }
    return io_error(path, "cannot open", errno);
  }
  std::string text;
  char buf[64 * 1024];
  while (true) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      ::close(fd);
      return io_error(path, "cannot read", err);
    }
    if (n == 0) break;
    text.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return text;
}

Status write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status(Code::Io, std::strerror(errno));
    data.remove_prefix(static_cast<size_t>(n));
  }
  return Status::ok();
}

std::string serialize(uint64_t revision, const std::vector<StoredResource>& resources) {
  json::Writer w;
  w.begin_object().field("format", EmbeddedStore::kFormat).field("revision", revision);
  w.key("resources").begin_array();
  for (const auto& r : resources) {
    w.begin_object()
        .field("kind", r.kind)
        .field("namespace", r.ns)
        .field("name", r.name)
        .field("origin", r.origin)
        .field("revision", r.revision)
        .field("toml", r.toml)
        .end_object();
  }
  w.end_array().end_object();
  std::string text = w.take();
  text += '\n';
  return text;
}

// store.json → (revision, resources), checking everything a later commit relies on: known
// kinds, unique keys, revisions no later than the store's.
Status parse_store(std::string_view text, uint64_t* revision, std::vector<StoredResource>* out) {
  auto bad = [](std::string what) { return make_error(Code::InvalidArgument, std::move(what)); };
  Result<json::Value> doc = json::parse(text);
  if (!doc) return bad("not valid JSON: " + doc.error().message());
  if (!doc->is_object()) return bad("expected a JSON object");
  const json::Value* format = doc->get("format");
  if (!format || !format->as_int())
    return bad("\"format\": expected an integer (this meshbox writes format 1)");
  if (*format->as_int() != EmbeddedStore::kFormat)
    return bad(fmt::format("format {} is not one this meshbox reads (it reads format {})",
                           *format->as_int(), EmbeddedStore::kFormat));
  const json::Value* rev = doc->get("revision");
  if (!rev || !rev->as_int() || *rev->as_int() < 0)
    return bad("\"revision\": expected an integer >= 0");
  *revision = static_cast<uint64_t>(*rev->as_int());
  const json::Value* list = doc->get("resources");
  if (!list || !list->is_array()) return bad("\"resources\": expected an array");

  std::vector<StoredResource> resources;
  for (size_t i = 0; i < list->array.size(); ++i) {
    const json::Value& e = list->array[i];
    std::string at = fmt::format("resources[{}]", i);
    if (!e.is_object()) return bad(at + ": expected an object");
    StoredResource r;
    for (auto [name, field] :
         {std::pair{"kind", &r.kind}, std::pair{"namespace", &r.ns}, std::pair{"name", &r.name},
          std::pair{"origin", &r.origin}, std::pair{"toml", &r.toml}}) {
      const json::Value* v = e.get(name);
      if (!v || !v->is_string()) return bad(fmt::format("{}.{}: expected a string", at, name));
      *field = v->string;
    }
    const json::Value* r_rev = e.get("revision");
    if (!r_rev || !r_rev->as_int() || *r_rev->as_int() < 1 ||
        static_cast<uint64_t>(*r_rev->as_int()) > *revision)
      return bad(
          fmt::format("{}.revision: expected an integer from 1 to the store's {}", at, *revision));
    r.revision = static_cast<uint64_t>(*r_rev->as_int());
    StoreMutation as_put{StoreMutation::Op::Put, r.kind, r.ns, r.name, r.toml, r.origin};
    if (Status s = check_mutation(as_put); !s) return bad(at + ": " + s.message());
    resources.push_back(std::move(r));
  }
  std::sort(resources.begin(), resources.end(), before);
  for (size_t i = 1; i < resources.size(); ++i) {
    const StoredResource& r = resources[i];
    if (same_key(resources[i - 1], r.kind, r.ns, r.name))
      return bad(describe(r.kind, r.ns, r.name) + " is there twice");
  }
  *out = std::move(resources);
  return Status::ok();
}

}  // namespace

EmbeddedStore::EmbeddedStore(loop::Loop& loop, std::string state_dir)
    : loop_(loop), dir_(std::move(state_dir)) {
  // "state/" names its files "state/store.json", not "state//store.json", in messages too.
  while (dir_.size() > 1 && dir_.back() == '/')
    dir_.pop_back();
  path_ = dir_ + "/" + kFileName;
}

EmbeddedStore::~EmbeddedStore() {
  *alive_ = false;
  if (lock_fd_ >= 0) ::close(lock_fd_);  // releases the flock
}

Result<std::unique_ptr<EmbeddedStore>> EmbeddedStore::open(loop::Loop& loop,
                                                           const std::string& state_dir) {
  // Not make_unique: the constructor is private, for open() to be the only way in.
  std::unique_ptr<EmbeddedStore> store(new EmbeddedStore(loop, state_dir));
  MB_TRY(make_dirs(state_dir));
  // Two processes on one state dir would overwrite each other's store: the second is refused.
  std::string lock = store->dir_ + "/lock";
  store->lock_fd_ = ::open(lock.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (store->lock_fd_ < 0) return io_error(lock, "cannot open", errno);
  if (::flock(store->lock_fd_, LOCK_EX | LOCK_NB) != 0)
    return make_error(Code::Unavailable, "state dir " + store->dir_ +
                                             " is in use by another meshbox process (" + lock +
                                             " is locked)");
  MB_TRY(store->load());
  return store;
}

Status EmbeddedStore::load() {
  bool missing = false;
  Result<std::string> text = read_all(path_, &missing);
  if (!text) return text.error();
  if (missing) return Status::ok();
  Status s = parse_store(*text, &revision_, &resources_);
  if (!s) {
    revision_ = 0;
    resources_.clear();
    return make_error(s.code(), path_ + ": not a meshbox store: " + s.message());
  }
  return Status::ok();
}

Status EmbeddedStore::write(uint64_t revision, const std::vector<StoredResource>& resources) {
  std::string text = serialize(revision, resources);
  std::string temp = dir_ + "/" + kTempName;
  int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return io_error(temp, "cannot create", errno);
  Status s = write_all(fd, text);
  if (s.is_ok() && ::fsync(fd) != 0) s = Status(Code::Io, std::strerror(errno));
  // close() can report a write-back error; it counts.
  if (::close(fd) != 0 && s.is_ok()) s = Status(Code::Io, std::strerror(errno));
  if (s.is_ok() && ::rename(temp.c_str(), path_.c_str()) != 0) {
    s = io_error(path_, "cannot replace", errno);
  } else if (!s.is_ok()) {
    s = make_error(Code::Io, fmt::format("{}: cannot write: {}", temp, s.message()));
  }
  if (!s.is_ok()) {
    ::unlink(temp.c_str());
    return s;
  }
  // The rename is durable once the directory is synced. If that fails the new file is already
  // what every reader sees, so the commit stands: failing it would leave memory behind the file.
  int dfd = ::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0 || ::fsync(dfd) != 0)
    MB_WARN("store",
            "{}: fsync of the directory failed ({}); revision {} may not survive a "
            "crash",
            dir_, std::strerror(errno), revision);
  if (dfd >= 0) ::close(dfd);
  return Status::ok();
}

void EmbeddedStore::commit(uint64_t expected_revision, std::vector<StoreMutation> mutations,
                           Done done) {
  MB_ASSERT(loop_.is_this_thread());
  // RULE ZERO (core-principles 4): `done` runs before commit() returns. The Store contract
  // allows it, and it lets `meshbox run` apply its files before the loop runs at all.
  auto finish = [&done](Result<uint64_t> r) {
    if (done) done(std::move(r));
  };
  for (const auto& m : mutations)
    if (Status s = check_mutation(m); !s) return finish(std::move(s));
  if (expected_revision != revision_) {
    return finish(
        make_error(Code::Conflict, fmt::format("the store is at revision {}, not {}: read it again",
                                               revision_, expected_revision)));
  }

  // Applied to a copy, so that a failed write leaves everything as it was.
  uint64_t revision = revision_ + 1;
  std::vector<StoredResource> next;
  bool any_change = apply_mutations(resources_, std::move(mutations), revision, &next);
  if (!any_change) return finish(revision_);

  if (Status s = write(revision, next); !s) return finish(std::move(s));
  resources_ = std::move(next);
  revision_ = revision;
  changed();
  finish(revision_);  // last: it may destroy the store
}

void EmbeddedStore::watch(std::function<void()> on_change) {
  MB_ASSERT(loop_.is_this_thread());
  watchers_.push_back(std::move(on_change));
}

void EmbeddedStore::changed() {
  if (notify_pending_) return;
  notify_pending_ = true;
  loop_.run_soon([this, alive = alive_] {
    if (!*alive) return;
    notify_pending_ = false;
    // A copy: a watcher may add a watcher (which would move the vector under the one running)
    // or destroy the store. One that commits queues the next notification, after this one.
    std::vector<std::function<void()>> watchers = watchers_;
    for (auto& w : watchers) {
      w();
      if (!*alive) return;
    }
  });
}

}  // namespace meshbox::control
