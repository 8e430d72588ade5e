// Tests for plane/control/store.h (EmbeddedStore): revisions, no-op commits, conflicts,
// deletes, watchers (coalesced, never inside commit(), never re-entered, never after the store
// is gone), persistence across reopen, and failures: a corrupt or unreadable store.json, a
// write that fails. Real Loop and temp dirs; every loop must close clean.
#include "plane/control/store.h"

#include <sys/stat.h>
#include <unistd.h>

#include <doctest/doctest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <optional>

#include <fmt/format.h>

#include "core/base/json.h"
#include "test/support/files.h"
#include "test/support/test_loop.h"

namespace meshbox::control {
namespace {

using meshbox::test::TempDir;
using namespace std::chrono_literals;

StoreMutation put(std::string kind, std::string ns, std::string name, std::string toml,
                  std::string origin = "file") {
  return {StoreMutation::Op::Put, std::move(kind), std::move(ns),
          std::move(name),        std::move(toml), std::move(origin)};
}
StoreMutation del(std::string kind, std::string ns, std::string name) {
  return {StoreMutation::Op::Delete, std::move(kind), std::move(ns), std::move(name), "", "api"};
}
std::string svc_toml(std::string_view name, int port) {
  return fmt::format("[[service]]\nname = \"{}\"\nport = {}\n", name, port);
}

// Commits and waits for `done`, whether it runs inside commit() or later.
Result<uint64_t> commit(loop::Loop& loop, Store& store, uint64_t expected,
                        std::vector<StoreMutation> mutations) {
  std::optional<Result<uint64_t>> got;
  store.commit(expected, std::move(mutations), [&](Result<uint64_t> r) { got.emplace(r); });
  if (!got)
    REQUIRE(loop::run_until(
        loop, [&] { return got.has_value(); }, 10s));
  return std::move(*got);
}

// Runs whatever the loop has queued (run_soon tasks all run in one idle callback).
void drain(loop::Loop& loop) {
  for (int i = 0; i < 3; ++i)
    uv_run(loop.uv(), UV_RUN_NOWAIT);
}

std::unique_ptr<EmbeddedStore> must_open(loop::Loop& loop, const std::string& dir) {
  auto store = EmbeddedStore::open(loop, dir);
  REQUIRE_MESSAGE(store.has_value(), store.error().message());
  return std::move(*store);
}

// "kind/ns/name@revision" for each resource, in order.
std::vector<std::string> keys(const Store& store) {
  std::vector<std::string> out;
  for (const auto& r : store.resources())
    out.push_back(fmt::format("{}/{}/{}@{}", r.kind, r.ns, r.name, r.revision));
  return out;
}

int mode_of(const std::string& path) {
  struct stat st;
  REQUIRE(::stat(path.c_str(), &st) == 0);
  return static_cast<int>(st.st_mode & 07777);
}

void write_text(const std::string& path, std::string_view text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  REQUIRE(out.good());
}

TEST_CASE("store: open creates the state dir, mode 0700, parents too, and starts empty") {
  TempDir tmp;
  loop::Loop loop;
  {
    std::string dir = tmp.file("a/b/state");
    auto store = must_open(loop, dir);
    CHECK(mode_of(tmp.file("a")) == 0700);
    CHECK(mode_of(tmp.file("a/b")) == 0700);
    CHECK(mode_of(dir) == 0700);
    CHECK(store->revision() == 0);
    CHECK(store->resources().empty());
    CHECK(store->path() == dir + "/store.json");
    CHECK_FALSE(std::filesystem::exists(store->path()));  // nothing written yet

    // One process per state dir: a second open is refused while the first holds it.
    auto second = EmbeddedStore::open(loop, dir);
    REQUIRE_FALSE(second.has_value());
    CHECK(second.error().message() == "state dir " + dir +
                                          " is in use by another meshbox process (" + dir +
                                          "/lock is locked)");
    store.reset();
    CHECK(must_open(loop, dir + "//")->path() == dir + "/store.json");

    // An existing directory is used as it is, with its mode.
    ::chmod(dir.c_str(), 0750);
    store.reset();
    store = must_open(loop, dir);
    CHECK(mode_of(dir) == 0750);
  }
  // A file where the directory should be.
  write_text(tmp.file("file"), "x");
  auto bad = EmbeddedStore::open(loop, tmp.file("file"));
  REQUIRE_FALSE(bad.has_value());
  CHECK(bad.error().message() == tmp.file("file") + ": exists and is not a directory");
  CHECK(loop.close().is_ok());
}

TEST_CASE("store: each changing commit bumps the revision; resources are sorted") {
  TempDir tmp;
  loop::Loop loop;
  {
    auto store = must_open(loop, tmp.path());
    Result<uint64_t> r =
        commit(loop, *store, 0,
               {put("virtual_service", "default", "vs", "[[virtual_service]]\n"),
                put("service", "default", "b", svc_toml("b", 1)),
                put("service", "alpha", "z", svc_toml("z", 1)), put("mesh", "", "mesh", "[mesh]\n"),
                put("service", "default", "a", svc_toml("a", 1))});
    REQUIRE_MESSAGE(r.has_value(), r.error().message());
    CHECK(*r == 1);
    CHECK(store->revision() == 1);
    CHECK(keys(*store) == std::vector<std::string>{"mesh//mesh@1", "service/alpha/z@1",
                                                   "service/default/a@1", "service/default/b@1",
                                                   "virtual_service/default/vs@1"});

    r = commit(loop, *store, 1, {put("service", "default", "a", svc_toml("a", 2), "api")});
    REQUIRE(r.has_value());
    CHECK(*r == 2);
    CHECK(keys(*store) == std::vector<std::string>{"mesh//mesh@1", "service/alpha/z@1",
                                                   "service/default/a@2", "service/default/b@1",
                                                   "virtual_service/default/vs@1"});
    const StoredResource& a = store->resources()[2];
    CHECK(a.toml == svc_toml("a", 2));
    CHECK(a.origin == "api");

    // The same toml from another origin is a change too: origin says who owns it.
    r = commit(loop, *store, 2, {put("service", "default", "a", svc_toml("a", 2), "file")});
    CHECK(*r == 3);
    CHECK(store->resources()[2].origin == "file");
  }
  CHECK(loop.close().is_ok());
}

TEST_CASE("store: a commit that changes nothing keeps the revision") {
  TempDir tmp;
  loop::Loop loop;
  {
    auto store = must_open(loop, tmp.path());
    REQUIRE(commit(loop, *store, 0,
                   {put("service", "default", "a", svc_toml("a", 1)),
                    put("service", "default", "b", svc_toml("b", 1))})
                .has_value());
    REQUIRE(
        commit(loop, *store, 1, {put("service", "default", "b", svc_toml("b", 2))}).has_value());
    auto before = keys(*store);
    CHECK(before == std::vector<std::string>{"service/default/a@1", "service/default/b@2"});
    auto mtime = std::filesystem::last_write_time(store->path());
    std::string file = *test::read_file(store->path());

    std::vector<std::vector<StoreMutation>> no_ops = {
        {},
        {put("service", "default", "a", svc_toml("a", 1))},  // the same toml and origin
        {del("service", "default", "absent")},
        {put("service", "default", "new", svc_toml("new", 1)), del("service", "default", "new")},
        // A change, then back: `a` keeps its revision 1.
        {put("service", "default", "a", svc_toml("a", 9)),
         put("service", "default", "a", svc_toml("a", 1))},
        {del("service", "default", "a"), put("service", "default", "a", svc_toml("a", 1))},
    };
    for (size_t i = 0; i < no_ops.size(); ++i) {
      CAPTURE(i);
      Result<uint64_t> r = commit(loop, *store, 2, no_ops[i]);
      REQUIRE_MESSAGE(r.has_value(), r.error().message());
      CHECK(*r == 2);
      CHECK(store->revision() == 2);
      CHECK(keys(*store) == before);
    }
    CHECK(std::filesystem::last_write_time(store->path()) == mtime);
    CHECK(*test::read_file(store->path()) == file);

    // A real change among no-ops bumps once, and only what changed gets the new revision.
    Result<uint64_t> r = commit(loop, *store, 2,
                                {put("service", "default", "a", svc_toml("a", 9)),
                                 put("service", "default", "a", svc_toml("a", 1)),
                                 put("service", "default", "c", svc_toml("c", 1))});
    CHECK(*r == 3);
    CHECK(keys(*store) == std::vector<std::string>{"service/default/a@1", "service/default/b@2",
                                                   "service/default/c@3"});
  }
  CHECK(loop.close().is_ok());
}

TEST_CASE("store: a commit against an old revision is a conflict and changes nothing") {
  TempDir tmp;
  loop::Loop loop;
  {
    auto store = must_open(loop, tmp.path());
    int calls = 0;
    store->watch([&] { ++calls; });
    REQUIRE(
        commit(loop, *store, 0, {put("service", "default", "a", svc_toml("a", 1))}).has_value());
    drain(loop);
    REQUIRE(calls == 1);

    for (uint64_t stale : {uint64_t{0}, uint64_t{2}}) {
      Result<uint64_t> r = commit(loop, *store, stale, {del("service", "default", "a")});
      REQUIRE_FALSE(r.has_value());
      CHECK(r.error().code() == Code::Conflict);
      CHECK(r.error().message().find("revision 1") != std::string::npos);
    }
    // Even a commit that would change nothing: the writer's view is out of date.
    CHECK_FALSE(commit(loop, *store, 0, {}).has_value());
    drain(loop);
    CHECK(store->revision() == 1);
    CHECK(keys(*store) == std::vector<std::string>{"service/default/a@1"});
    CHECK(calls == 1);
  }
  CHECK(loop.close().is_ok());
}

TEST_CASE("store: delete removes a resource and bumps the revision") {
  TempDir tmp;
  loop::Loop loop;
  {
    auto store = must_open(loop, tmp.path());
    REQUIRE(commit(loop, *store, 0,
                   {put("mesh", "", "mesh", "[mesh]\n"),
                    put("service", "default", "a", svc_toml("a", 1)),
                    put("service", "default", "b", svc_toml("b", 1))})
                .has_value());
    Result<uint64_t> r =
        commit(loop, *store, 1, {del("service", "default", "a"), del("mesh", "", "mesh")});
    CHECK(*r == 2);
    CHECK(keys(*store) == std::vector<std::string>{"service/default/b@1"});
    r = commit(loop, *store, 2, {del("service", "default", "b")});
    CHECK(*r == 3);
    CHECK(store->resources().empty());
    CHECK(store->revision() == 3);  // empty again, but the revision never goes back
  }
  CHECK(loop.close().is_ok());
}

TEST_CASE("store: malformed mutations are refused whole") {
  TempDir tmp;
  loop::Loop loop;
  {
    auto store = must_open(loop, tmp.path());
    std::vector<StoreMutation> bad = {
        put("services", "default", "a", "x"),     // not a kind
        put("service", "default", "", "x"),       // no name
        put("service", "", "a", "x"),             // no namespace
        put("mesh", "default", "mesh", "x"),      // the mesh has none
        put("mesh", "", "other", "x"),            // and is named "mesh"
        put("service", "default", "a", ""),       // a put needs toml
        put("service", "default", "a", "x", ""),  // and an origin
    };
    for (const auto& m : bad) {
      CAPTURE(m.kind + "/" + m.ns + "/" + m.name);
      Result<uint64_t> r =
          commit(loop, *store, 0, {put("service", "default", "ok", svc_toml("ok", 1)), m});
      REQUIRE_FALSE(r.has_value());
      CHECK(r.error().code() == Code::InvalidArgument);
    }
    CHECK(store->revision() == 0);
    CHECK(store->resources().empty());
    CHECK_FALSE(std::filesystem::exists(store->path()));
  }
  CHECK(loop.close().is_ok());
}

TEST_CASE("store: watchers run on the loop, coalesced, never inside commit() or re-entered") {
  TempDir tmp;
  loop::Loop loop;
  {
    auto store = must_open(loop, tmp.path());
    int a = 0, b = 0, depth = 0, max_depth = 0;
    uint64_t seen = 0;
    store->watch([&] {
      ++a;
      ++depth;
      max_depth = std::max(max_depth, depth);
      seen = store->revision();
      // The first call commits again: that queues one more call, after this one returns.
      if (a == 1)
        CHECK(commit(loop, *store, store->revision(),
                     {put("service", "default", "from-watcher", svc_toml("w", 1))})
                  .has_value());
      --depth;
    });
    store->watch([&] { ++b; });

    REQUIRE(
        commit(loop, *store, 0, {put("service", "default", "x", svc_toml("x", 1))}).has_value());
    REQUIRE(
        commit(loop, *store, 1, {put("service", "default", "y", svc_toml("y", 1))}).has_value());
    CHECK(a == 0);  // not inside commit()
    CHECK(b == 0);
    REQUIRE(loop::run_until(
        loop, [&] { return a == 2; }, 10s));
    drain(loop);
    CHECK(a == 2);  // two commits → one call; the watcher's own commit → one more
    CHECK(b == 2);
    CHECK(max_depth == 1);
    CHECK(seen == 3);

    // A no-op commit tells nobody.
    REQUIRE(commit(loop, *store, 3, {}).has_value());
    drain(loop);
    CHECK(a == 2);
  }
  CHECK(loop.close().is_ok());
}

TEST_CASE("store: a destroyed store never calls a watcher") {
  TempDir tmp;
  loop::Loop loop;
  int calls = 0;
  {
    auto store = must_open(loop, tmp.path());
    store->watch([&] { ++calls; });
    REQUIRE(
        commit(loop, *store, 0, {put("service", "default", "x", svc_toml("x", 1))}).has_value());
  }  // destroyed with a notification queued
  drain(loop);
  CHECK(calls == 0);

  // A watcher that destroys the store stops the others.
  {
    auto store = must_open(loop, tmp.path());
    int second = 0;
    store->watch([&] { store.reset(); });
    store->watch([&] { ++second; });
    REQUIRE(
        commit(loop, *store, 1, {put("service", "default", "y", svc_toml("y", 1))}).has_value());
    REQUIRE(loop::run_until(
        loop, [&] { return store == nullptr; }, 10s));
    drain(loop);
    CHECK(second == 0);
  }
  CHECK(loop.close().is_ok());
}

TEST_CASE("store: what was committed is there after reopening") {
  TempDir tmp;
  loop::Loop loop;
  std::string dir = tmp.file("state");
  std::string weird = "[[service]]\nname = \"q\"\nnote = \"\\\"quotes\\\", \\\\, é, tab\\t\"\n";
  {
    auto store = must_open(loop, dir);
    REQUIRE(commit(loop, *store, 0,
                   {put("mesh", "", "mesh", "[mesh]\nname = \"m\"\n"),
                    put("service", "default", "a", svc_toml("a", 1)),
                    put("service", "default", "q", weird, "api")})
                .has_value());
    REQUIRE(
        commit(loop, *store, 1, {put("service", "default", "a", svc_toml("a", 2))}).has_value());
  }
  std::vector<StoredResource> expected;
  {
    auto store = must_open(loop, dir);
    CHECK(store->revision() == 2);
    CHECK(keys(*store) ==
          std::vector<std::string>{"mesh//mesh@1", "service/default/a@2", "service/default/q@1"});
    CHECK(store->resources()[1].toml == svc_toml("a", 2));
    CHECK(store->resources()[1].origin == "file");
    CHECK(store->resources()[2].toml == weird);
    CHECK(store->resources()[2].origin == "api");
    // It goes on from there.
    REQUIRE(commit(loop, *store, 2, {del("mesh", "", "mesh")}).has_value());
    CHECK(store->revision() == 3);
  }

  // The file is the documented format, mode 0600, with no temp file left over.
  std::string path = dir + "/store.json";
  CHECK(mode_of(path) == 0600);
  CHECK_FALSE(std::filesystem::exists(dir + "/store.json.tmp"));
  auto text = test::read_file(path);
  REQUIRE(text);
  Result<json::Value> doc = json::parse(*text);
  REQUIRE_MESSAGE(doc.has_value(), doc.error().message());
  CHECK(doc->get("format")->as_int() == 1);
  CHECK(doc->get("revision")->as_int() == 3);
  const auto& list = doc->get("resources")->array;
  REQUIRE(list.size() == 2);
  CHECK(list[0].get("kind")->as_string() == "service");
  CHECK(list[0].get("namespace")->as_string() == "default");
  CHECK(list[0].get("name")->as_string() == "a");
  CHECK(list[0].get("origin")->as_string() == "file");
  CHECK(list[0].get("revision")->as_int() == 2);
  CHECK(list[0].get("toml")->as_string() == svc_toml("a", 2));
  CHECK(list[1].get("toml")->as_string() == weird);
  CHECK(loop.close().is_ok());
}

TEST_CASE("store: a corrupt store.json is an error that names the file and the problem") {
  TempDir tmp;
  loop::Loop loop;
  std::string path = tmp.file("store.json");
  const std::string kGood =
      R"({"kind":"service","namespace":"default","name":"a","origin":"file","revision":1,"toml":"x"})";
  struct Case {
    std::string text;
    std::string problem;
  };
  std::vector<Case> cases = {
      {"", "not valid JSON: line 1, column 1: expected a value"},
      {R"({"format":1,"revision":1,"resources":[)" + kGood,
       "not valid JSON: line 1, column 130: expected ',' or ']' after an array element"},
      {"[]", "expected a JSON object"},
      {R"({"revision":0,"resources":[]})", "\"format\": expected an integer"},
      {R"({"format":2,"revision":0,"resources":[]})", "format 2 is not one this meshbox reads"},
      {R"({"format":1,"resources":[]})", "\"revision\": expected an integer >= 0"},
      {R"({"format":1,"revision":-1,"resources":[]})", "\"revision\": expected an integer >= 0"},
      {R"({"format":1,"revision":1})", "\"resources\": expected an array"},
      {R"({"format":1,"revision":1,"resources":[1]})", "resources[0]: expected an object"},
      {R"({"format":1,"revision":1,"resources":[{"kind":"service"}]})",
       "resources[0].namespace: expected a string"},
      {R"({"format":1,"revision":0,"resources":[)" + kGood + "]}",
       "resources[0].revision: expected an integer from 1 to the store's 0"},
      {R"({"format":1,"revision":1,"resources":[)" + kGood + "," + kGood + "]}",
       "service default/a is there twice"},
      {R"({"format":1,"revision":1,"resources":[{"kind":"pod","namespace":"d","name":"a",)"
       R"("origin":"file","revision":1,"toml":"x"}]})",
       "resources[0]: pod d/a: unknown kind"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.text);
    write_text(path, c.text);
    auto store = EmbeddedStore::open(loop, tmp.path());
    REQUIRE_FALSE(store.has_value());
    CHECK(store.error().message().starts_with(path + ": not a meshbox store: "));
    CHECK_MESSAGE(store.error().message().find(c.problem) != std::string::npos,
                  store.error().message());
  }
  // Unreadable: a directory where the file should be.
  std::filesystem::remove(path);
  std::filesystem::create_directory(path);
  auto store = EmbeddedStore::open(loop, tmp.path());
  REQUIRE_FALSE(store.has_value());
  CHECK(store.error().code() == Code::Io);
  CHECK(store.error().message() == path + ": cannot read: Is a directory");
  CHECK(loop.close().is_ok());
}

TEST_CASE("store: a write that fails fails the commit and changes nothing") {
  TempDir tmp;
  loop::Loop loop;
  {
    auto store = must_open(loop, tmp.path());
    int calls = 0;
    store->watch([&] { ++calls; });
    REQUIRE(
        commit(loop, *store, 0, {put("service", "default", "a", svc_toml("a", 1))}).has_value());
    drain(loop);
    REQUIRE(calls == 1);
    auto before = keys(*store);

    // A directory in the way of the rename: fails for root too, which permissions would not.
    std::filesystem::remove(store->path());
    std::filesystem::create_directories(store->path() + "/in-the-way");
    Result<uint64_t> r = commit(loop, *store, 1,
                                {put("service", "default", "a", svc_toml("a", 2)),
                                 put("service", "default", "b", svc_toml("b", 1))});
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code() == Code::Io);
    CHECK(r.error().message() == store->path() + ": cannot replace: Is a directory");
    drain(loop);
    CHECK(store->revision() == 1);
    CHECK(keys(*store) == before);
    CHECK(store->resources()[0].toml == svc_toml("a", 1));
    CHECK(calls == 1);
    CHECK_FALSE(std::filesystem::exists(tmp.file("store.json.tmp")));

    // Once the way is clear, the same commit goes through.
    std::filesystem::remove_all(store->path());
    r = commit(loop, *store, 1, {put("service", "default", "b", svc_toml("b", 1))});
    CHECK(*r == 2);

    // A read-only directory (not for root, whom permissions do not stop).
    if (::geteuid() != 0) {
      REQUIRE(::chmod(tmp.path().c_str(), 0500) == 0);
      r = commit(loop, *store, 2, {del("service", "default", "a")});
      ::chmod(tmp.path().c_str(), 0700);
      REQUIRE_FALSE(r.has_value());
      CHECK(r.error().code() == Code::Io);
      CHECK(r.error().message().find("store.json.tmp: cannot create") != std::string::npos);
      CHECK(store->revision() == 2);
    }
  }
  CHECK(loop.close().is_ok());
}

}  // namespace
}  // namespace meshbox::control
