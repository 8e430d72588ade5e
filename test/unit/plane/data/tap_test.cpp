// TapHub and TapObserver (plane/data/tap.h) without threads: the hub's posts are collected
// and run by the test, as the control loop would run them.
#include "plane/data/tap.h"

#include <doctest/doctest.h>

#include <functional>
#include <vector>

namespace meshbox::data {
namespace {

struct Harness {
  std::vector<std::function<void()>> posted;
  TapHub hub{[this](std::function<void()> task) { posted.push_back(std::move(task)); }};
  TapObserver observer{hub, 1};
  std::vector<TapEvent> got;

  /// Runs what the workers posted, as the control loop does; returns how many tasks ran.
  size_t run() {
    auto tasks = std::move(posted);
    posted.clear();
    for (auto& t : tasks)
      t();
    return tasks.size();
  }
};

ListenerSpec listener(std::string name, ListenerSpec::Reporter reporter, std::string app) {
  ListenerSpec l;
  l.name = std::move(name);
  l.reporter = reporter;
  l.self.workload = l.self.app = std::move(app);
  return l;
}

}  // namespace

TEST_CASE("tap: filters by service, side, path and method; a rate limit per worker") {
  Harness h;
  ClusterSpec web;
  web.name = "inbound|8000||web";
  web.service_name = "web";
  web.service_host = "web.default.svc.cluster.local";
  ListenerSpec inbound =
      listener("sidecar_web_inbound", ListenerSpec::Reporter::Destination, "web");
  ListenerSpec outbound = listener("sidecar_web_outbound", ListenerSpec::Reporter::Source, "web");
  ListenerSpec gateway = listener("127.0.0.1_8080", ListenerSpec::Reporter::Source, "web");
  RequestRecord r;
  r.listener = &inbound;
  r.cluster = &web;
  r.method = "GET";
  r.path = "/status/200";
  r.authority = "web";
  r.status = 200;
  r.start_unix_us = 1'000'000'000'000;
  r.duration_us = 1500;
  r.request_id = "id-1";
  r.source.workload = "edge";
  r.destination.principal = "spiffe://cluster.local/ns/default/sa/default";

  h.observer.on_request(r);
  CHECK(h.posted.empty());  // no session: nothing happens

  uint64_t id = h.hub.start({"web", "/status", ""}, [&](const TapEvent& e) { h.got.push_back(e); });
  CHECK(h.hub.sessions() == 1);
  h.observer.on_request(r);
  CHECK(h.run() == 1);
  REQUIRE(h.got.size() == 1);
  CHECK(h.got[0].reporter == "destination");
  CHECK(h.got[0].path == "/status/200");
  CHECK(h.got[0].request_id == "id-1");
  CHECK(h.got[0].duration_us == 1500);
  CHECK(h.got[0].worker == 1);
  CHECK(h.got[0].source_workload == "edge");
  CHECK(h.got[0].destination_principal == "spiffe://cluster.local/ns/default/sa/default");
  CHECK(h.got[0].destination_service == "web.default.svc.cluster.local");

  TapFilter by_host{"web.default.svc.cluster.local", "", ""};
  CHECK(tap_matches(by_host, r));
  CHECK(!tap_matches({"other", "", ""}, r));
  CHECK(!tap_matches({"web", "/headers", ""}, r));
  CHECK(!tap_matches({"web", "", "POST"}, r));
  CHECK(tap_matches({"web", "", "GET"}, r));
  r.listener = &outbound;  // from one of web's workloads
  r.cluster = nullptr;
  CHECK(tap_matches({"web", "", ""}, r));
  r.listener = &gateway;  // a gateway is no workload of the service
  CHECK(!tap_matches({"web", "", ""}, r));
  r.listener = &inbound;
  r.cluster = &web;

  // A session closed after a worker matched: its event finds nobody.
  h.observer.on_request(r);
  h.hub.stop(id);
  CHECK(h.run() == 1);
  CHECK(h.got.size() == 1);
  h.observer.on_request(r);
  CHECK(h.posted.empty());  // no session again: nothing posted

  // At most kMaxEventsPerSecond per worker and second; the rest dropped and counted.
  h.hub.start({"web", "", ""}, [&](const TapEvent& e) { h.got.push_back(e); });
  r.start_unix_us += 1'000'000;  // a second of its own: the one above had 2 events
  for (uint32_t i = 0; i < TapHub::kMaxEventsPerSecond + 50; ++i)
    h.observer.on_request(r);
  CHECK(h.posted.size() == TapHub::kMaxEventsPerSecond);
  CHECK(h.hub.dropped() == 50);
  r.start_unix_us += 1'000'000;  // the next second
  h.observer.on_request(r);
  CHECK(h.posted.size() == TapHub::kMaxEventsPerSecond + 1);
  h.run();
  CHECK(h.got.size() == 1 + TapHub::kMaxEventsPerSecond + 1);
}

}  // namespace meshbox::data
