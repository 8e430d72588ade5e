// The multi-node store and membership on a real etcd (test/support/etcd.h): EtcdStore (two
// stores on one prefix see each other's commits; a stale writer gets Conflict; etcd stopped →
// degraded, commits refused, then caught up) and NodeSync (a node's endpoints reach another
// node at its address; a clean leave and a lease expiry both take them away). The stores'
// loop runs on the test thread; every wait has a deadline.
#include <doctest/doctest.h>

#include <optional>
#include <string>
#include <vector>

#include "core/base/json.h"
#include "plane/control/etcd_client.h"
#include "plane/control/etcd_store.h"
#include "plane/control/node_sync.h"
#include "test/support/etcd.h"
#include "test/support/files.h"
#include "test/support/test_loop.h"

namespace meshbox::control {
namespace {

using namespace std::chrono_literals;
using loop::run_until;
using meshbox::test::Etcd;
using meshbox::test::TempDir;

#define SKIP_WITHOUT_ETCD()                                                   \
  if (!meshbox::test::etcd_installed()) {                                     \
    MESSAGE("skipped: /usr/bin/etcd is not installed (Debian: etcd-server)"); \
    return;                                                                   \
  }

etcd::Options options_for(const std::string& endpoint) {
  etcd::Options o;
  auto a = loop::Address::parse(endpoint);
  REQUIRE(a.has_value());
  o.endpoints.push_back(*a);
  o.request_timeout_ms = 2000;
  return o;
}

StoreMutation put(std::string kind, std::string ns, std::string name, std::string toml) {
  return {StoreMutation::Op::Put, std::move(kind), std::move(ns),
          std::move(name),        std::move(toml), "api"};
}

Result<uint64_t> commit(loop::Loop& loop, Store& store, uint64_t expected,
                        std::vector<StoreMutation> m) {
  std::optional<Result<uint64_t>> out;
  store.commit(expected, std::move(m), [&](Result<uint64_t> r) { out.emplace(std::move(r)); });
  REQUIRE(run_until(
      loop, [&] { return out.has_value(); }, 10s));
  return std::move(*out);
}

const std::string kSvc = "[[service]]\nname = \"web\"\nport = 8000\n";
const std::string kSvc2 = "[[service]]\nname = \"web\"\nport = 9000\n";

TEST_CASE("parse_etcd_url: endpoints and prefix") {
  auto u = parse_etcd_url("etcd://127.0.0.1:2379,10.0.0.2:2379/meshbox/prod/");
  REQUIRE(u.has_value());
  CHECK(u->endpoints.size() == 2);
  CHECK(u->prefix == "/meshbox/prod");
  auto d = parse_etcd_url("etcd://127.0.0.1:2379");
  REQUIRE(d.has_value());
  CHECK(d->prefix == "/meshbox/default");
  CHECK_FALSE(parse_etcd_url("http://127.0.0.1:2379").has_value());
  CHECK_FALSE(parse_etcd_url("etcd://").has_value());
  CHECK_FALSE(parse_etcd_url("etcd://127.0.0.1").has_value());
  auto bad = parse_etcd_url("etcd://127.0.0.1:2379/");
  REQUIRE_FALSE(bad.has_value());
  CHECK(bad.error().message().find("expected etcd://") != std::string::npos);
}

TEST_CASE("etcd store: two nodes share commits; a stale writer gets Conflict; degraded mode") {
  SKIP_WITHOUT_ETCD();
  TempDir dir;
  Etcd etcd(dir);
  etcd.start();
  loop::Loop loop;
  {
    etcd::Client ca(loop, options_for(etcd.endpoint())), cb(loop, options_for(etcd.endpoint()));
    auto a = EtcdStore::open(loop, ca, "/t", 5000);
    auto b = EtcdStore::open(loop, cb, "/t", 5000);
    REQUIRE_MESSAGE(a.has_value(), a.error().message());
    REQUIRE_MESSAGE(b.has_value(), b.error().message());
    EtcdStore& sa = **a;
    EtcdStore& sb = **b;
    CHECK(sa.revision() == 0);
    int b_changes = 0;
    sb.watch([&] { ++b_changes; });

    // A commits; A sees it at once, B through its watch.
    auto r1 = commit(loop, sa, 0, {put("service", "default", "web", kSvc)});
    REQUIRE_MESSAGE(r1.has_value(), r1.error().message());
    CHECK(*r1 == 1);
    CHECK(sa.revision() == 1);
    REQUIRE(sa.resources().size() == 1);
    REQUIRE(run_until(
        loop, [&] { return sb.revision() == 1; }, 10s));
    REQUIRE(sb.resources().size() == 1);
    CHECK(sb.resources()[0].toml == kSvc);
    CHECK(sb.resources()[0].origin == "api");
    CHECK(sb.resources()[0].revision == 1);
    // Its watchers hear of it (on a later loop iteration).
    CHECK(run_until(
        loop, [&] { return b_changes >= 1; }, 5s));

    // The same put again changes nothing: same revision, nothing written.
    auto same = commit(loop, sa, 1, {put("service", "default", "web", kSvc)});
    REQUIRE(same.has_value());
    CHECK(*same == 1);

    // B writes on top; then A, still believing revision 1 if its watch is slower, or told
    // so explicitly: a commit expecting an old revision is refused, nothing written.
    // Another key under the prefix moves etcd's revision (as nodes' heartbeats do); B's commit
    // is still visible in B as soon as it is done (what `meshbox apply --wait` relies on).
    etcd.post("/v3/kv/put", R"({"key":"L3Qvbm9kZXMveA==","value":"MQ=="})");
    auto r2 = commit(loop, sb, 1, {put("service", "default", "web", kSvc2)});
    REQUIRE_MESSAGE(r2.has_value(), r2.error().message());
    CHECK(*r2 == 2);
    CHECK(sb.revision() == 2);
    REQUIRE(sb.resources().size() == 1);
    CHECK(sb.resources()[0].toml == kSvc2);
    auto stale = commit(loop, sa, 1, {put("service", "default", "other", kSvc)});
    REQUIRE_FALSE(stale.has_value());
    CHECK(stale.error().code() == Code::Conflict);
    REQUIRE(run_until(
        loop, [&] { return sa.revision() == 2; }, 10s));
    REQUIRE(sa.resources().size() == 1);
    CHECK(sa.resources()[0].toml == kSvc2);

    // A delete, seen by the other store.
    auto r3 =
        commit(loop, sa, 2, {{StoreMutation::Op::Delete, "service", "default", "web", "", "api"}});
    REQUIRE(r3.has_value());
    REQUIRE(run_until(
        loop, [&] { return sb.revision() == 3; }, 10s));
    CHECK(sb.resources().empty());

    // etcd stops: both keep what they have, report it, and refuse commits.
    etcd.stop();
    REQUIRE(run_until(
        loop, [&] { return !sa.connected() && !sb.connected(); }, 15s));
    CHECK(sb.revision() == 3);
    auto refused = commit(loop, sa, 3, {put("service", "default", "web", kSvc)});
    REQUIRE_FALSE(refused.has_value());
    CHECK(refused.error().code() == Code::Unavailable);

    // etcd back: both reconnect; a commit on one reaches the other.
    etcd.start();
    REQUIRE(run_until(
        loop, [&] { return sa.connected() && sb.connected(); }, 20s));
    auto r4 = commit(loop, sa, 3, {put("service", "default", "web", kSvc)});
    REQUIRE_MESSAGE(r4.has_value(), r4.error().message());
    REQUIRE(run_until(
        loop, [&] { return sb.revision() == 4; }, 10s));
    CHECK(sb.resources().size() == 1);
    // Resumed from the last revision seen, not read again.
    CHECK(sa.watch_restarts() >= 1);
    CHECK(sa.resyncs() == 1);
  }
  CHECK(loop.close().is_ok());
}

TEST_CASE("etcd store: a value that is not a stored resource is skipped, not a crash") {
  SKIP_WITHOUT_ETCD();
  TempDir dir;
  Etcd etcd(dir);
  etcd.start();
  etcd.post("/v3/kv/put",
            R"({"key":"L3QvY29uZmlnL3NlcnZpY2UvZGVmYXVsdC94","value":"bm90IGpzb24="})");
  loop::Loop loop;
  {
    etcd::Client c(loop, options_for(etcd.endpoint()));
    auto s = EtcdStore::open(loop, c, "/t", 5000);
    REQUIRE_MESSAGE(s.has_value(), s.error().message());
    CHECK((*s)->resources().empty());
  }
  CHECK(loop.close().is_ok());
}

TEST_CASE("etcd store: open fails clearly when etcd does not answer") {
  loop::Loop loop;
  {
    etcd::Client c(loop, options_for("127.0.0.1:1"));
    auto s = EtcdStore::open(loop, c, "/t", 3000);
    REQUIRE_FALSE(s.has_value());
    CHECK(s.error().message().find("etcd at 127.0.0.1:1") != std::string::npos);
  }
  CHECK(loop.close().is_ok());
}

Endpoint instance(const std::string& host, const std::string& inst, uint32_t in_port) {
  Endpoint ep;
  ep.host = host;
  ep.ns = "default";
  ep.address = "127.0.0.1";
  ep.port = 40000;
  ep.instance = inst;
  ep.service_account = "web-sa";
  ep.sidecar_inbound_port = in_port;
  ep.labels = {{"app", "web"}, {"version", "v1"}};
  ep.source = "workload/default/" + inst;
  return ep;
}

TEST_CASE(
    "node sync: endpoints reach the other node at the node's address; leave and lease expiry") {
  SKIP_WITHOUT_ETCD();
  TempDir dir;
  Etcd etcd(dir);
  etcd.start();
  loop::Loop loop;
  {
    etcd::Client ca(loop, options_for(etcd.endpoint())), cb(loop, options_for(etcd.endpoint()));
    std::vector<Endpoint> seen_by_b;
    int b_updates = 0;
    auto a = std::make_unique<NodeSync>(
        loop, ca, NodeSyncOptions{"/t", "a", "10.0.0.1", "eu/z1", 2}, [](std::vector<Endpoint>) {});
    NodeSync b(loop, cb, NodeSyncOptions{"/t", "b", "10.0.0.2", "eu/z2", 2},
               [&](std::vector<Endpoint> eps) {
                 seen_by_b = std::move(eps);
                 ++b_updates;
               });
    a->start();
    b.start();
    // Only healthy local instances are published; a remote one (node set) never is.
    Endpoint sick = instance("web.default.svc.cluster.local", "web-v1-1", 15001);
    sick.healthy = false;
    Endpoint remote = instance("web.default.svc.cluster.local", "web-x", 15002);
    remote.node = "c";
    a->set_local({instance("web.default.svc.cluster.local", "web-v1-0", 15000), sick, remote});
    REQUIRE(run_until(
        loop, [&] { return seen_by_b.size() == 1; }, 10s));
    const Endpoint& ep = seen_by_b[0];
    CHECK(ep.node == "a");
    CHECK(ep.address == "10.0.0.1");
    CHECK(ep.port == 15000);
    CHECK(ep.sidecar_inbound_port == 15000);
    CHECK(ep.instance == "web-v1-0");
    CHECK(ep.service_account == "web-sa");
    CHECK(ep.locality == "eu/z1");
    CHECK(ep.labels.at("version") == "v1");
    REQUIRE(run_until(
        loop, [&] { return b.nodes().size() == 2; }, 10s));
    auto nodes = b.nodes();
    CHECK(nodes[0].name == "a");
    CHECK(nodes[0].address == "10.0.0.1");
    CHECK(nodes[0].instances == std::vector<std::string>{"default/web-v1-0"});
    CHECK(nodes[1].self);

    // The node's lease ends behind its back (as when it was cut off for longer than the TTL):
    // its endpoints go; its next keepalive answers TTL 0 and it registers everything again.
    auto range = json::parse(etcd.post("/v3/kv/range", R"({"key":"L3Qvbm9kZXMvYQ=="})"));
    REQUIRE(range.has_value());
    const json::Value* kvs = range->get("kvs");
    REQUIRE((kvs && kvs->is_array() && kvs->array.size() == 1));
    const json::Value* lease = kvs->array[0].get("lease");
    REQUIRE((lease && lease->is_string()));
    etcd.post("/v3/lease/revoke", R"({"ID":")" + lease->string + R"("})");
    REQUIRE(run_until(
        loop, [&] { return seen_by_b.empty(); }, 5s));
    REQUIRE(run_until(
        loop, [&] { return seen_by_b.size() == 1 && b.nodes().size() == 2; }, 5s));
    CHECK(a->lease_grants() == 2);

    // A clean leave: gone at once (well within the 2 s TTL).
    a->leave();
    REQUIRE(run_until(
        loop, [&] { return seen_by_b.empty() && b.nodes().size() == 1; }, 1500ms));

    // A node that dies (no leave): gone when its lease expires.
    a = std::make_unique<NodeSync>(loop, ca, NodeSyncOptions{"/t", "a", "10.0.0.1", "", 2},
                                   [](std::vector<Endpoint>) {});
    a->start();
    a->set_local({instance("web.default.svc.cluster.local", "web-v1-0", 15000)});
    REQUIRE(run_until(
        loop, [&] { return seen_by_b.size() == 1; }, 10s));
    a.reset();  // no revoke, no more keepalives
    auto died = std::chrono::steady_clock::now();
    REQUIRE(run_until(
        loop, [&] { return seen_by_b.empty(); }, 8s));
    auto took = std::chrono::steady_clock::now() - died;
    MESSAGE("endpoints of a dead node left after "
            << std::chrono::duration_cast<std::chrono::milliseconds>(took).count()
            << " ms (lease TTL 2 s)");
    CHECK(took >= 500ms);  // the lease, not something else, removed them
  }
  CHECK(loop.close().is_ok());
}

TEST_CASE("node sync: the endpoint JSON round-trips, and garbage is refused") {
  Endpoint ep = instance("reviews.default.svc.cluster.local", "reviews-v2", 15010);
  ep.address = "10.1.2.3";
  ep.port = 15010;
  ep.named_ports = {{"http", 9080}};
  ep.weight = 3;
  auto back = NodeSync::decode_endpoint(NodeSync::encode_endpoint(ep), "n2");
  REQUIRE(back.has_value());
  CHECK(back->host == ep.host);
  CHECK(back->address == "10.1.2.3");
  CHECK(back->port == 15010);
  CHECK(back->weight == 3);
  CHECK(back->named_ports.at("http") == 9080);
  CHECK(back->node == "n2");
  CHECK(back->source == "node/n2");
  CHECK_FALSE(NodeSync::decode_endpoint("{", "n2").has_value());
  CHECK_FALSE(NodeSync::decode_endpoint(R"({"host":"x","address":"1.2.3.4","port":70000})", "n2")
                  .has_value());
  CHECK_FALSE(NodeSync::decode_endpoint(R"({"address":"1.2.3.4","port":80})", "n2").has_value());
}

}  // namespace
}  // namespace meshbox::control
