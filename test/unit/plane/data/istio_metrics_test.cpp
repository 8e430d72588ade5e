// Tests for plane/data/istio_metrics.h: a request lands in all four HTTP families under the
// same labels (the observer finds the three histograms through istio_requests_total's series,
// once per label set), and requests with other labels stay in series of their own.
#include "plane/data/istio_metrics.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

namespace meshbox::data {
namespace {

// The value of the sample of `metric` whose labels hold `label` (e.g. response_code="200"),
// or -1 if none does; fails the test if several do.
double sample(const std::string& text, std::string_view metric, std::string_view label) {
  std::istringstream in(text);
  std::string line;
  double found = -1;
  int hits = 0;
  while (std::getline(in, line)) {
    if (!line.starts_with(std::string(metric) + "{") || line.find(label) == std::string::npos)
      continue;
    found = std::stod(line.substr(line.rfind(' ') + 1));
    ++hits;
  }
  CHECK_MESSAGE(hits <= 1, metric, " ", label);
  return found;
}

}  // namespace

TEST_CASE("istio metrics: a request's four series share its labels; other labels stay apart") {
  stats::Registry registry(2);
  IstioMetrics metrics(registry);
  MetricsObserver worker0(metrics, 0);
  MetricsObserver worker1(metrics, 1);
  ListenerSpec listener;
  listener.reporter = ListenerSpec::Reporter::Source;
  listener.metrics = true;
  ClusterSpec cluster;
  cluster.name = "outbound|8000||web.default.svc.cluster.local";
  cluster.service_host = "web.default.svc.cluster.local";
  RequestRecord r;
  r.listener = &listener;
  r.cluster = &cluster;
  r.authority = "web:8000";
  r.source = {"edge", "default", "edge", "", ""};
  r.destination = {"web", "default", "web", "v1", ""};

  r.status = 200;
  r.duration_us = 3'000;
  r.request_body_bytes = 10;
  r.response_body_bytes = 100;
  worker0.on_request(r);
  worker0.on_request(r);
  worker1.on_request(r);  // another shard: merged on read
  r.status = 503;
  r.duration_us = 7'000;
  r.request_body_bytes = 1;
  r.response_body_bytes = 2;
  worker0.on_request(r);
  r.status = 200;
  r.destination.version = "v2";  // another destination: a series of its own
  r.duration_us = 50'000;
  worker0.on_request(r);

  std::string text;
  registry.write_prometheus(text);
  INFO(text);
  CHECK(sample(text, "istio_request_duration_milliseconds_sum", R"(response_code="503")") == 7);
  CHECK(sample(text, "istio_request_bytes_sum", R"(response_code="503")") == 1);
  CHECK(sample(text, "istio_response_bytes_sum", R"(response_code="503")") == 2);
  CHECK(sample(text, "istio_requests_total", R"(response_code="503")") == 1);
  // v1's 200s: three requests in every family, none of v2's or of the 503's.
  const std::string v1_200 =
      R"(destination_version="v1",destination_service="web.default.svc.cluster.local",)"
      R"(destination_canonical_service="web",destination_canonical_revision="v1",)"
      R"(destination_service_name="web.default.svc.cluster.local",)"
      R"(destination_service_namespace="unknown",destination_cluster="Kubernetes",)"
      R"(request_protocol="http",response_code="200")";
  CHECK(sample(text, "istio_requests_total", v1_200) == 3);
  CHECK(sample(text, "istio_request_duration_milliseconds_sum", v1_200) == 9);
  CHECK(sample(text, "istio_request_duration_milliseconds_count", v1_200) == 3);
  CHECK(sample(text, "istio_request_bytes_sum", v1_200) == 30);
  CHECK(sample(text, "istio_response_bytes_sum", v1_200) == 300);
  CHECK(sample(text, "istio_request_duration_milliseconds_sum", R"(destination_version="v2")") ==
        50);
  CHECK(sample(text, "istio_request_bytes_count", R"(destination_version="v2")") == 1);
}

TEST_CASE("istio metrics: the recent label sets are told apart by their values, not pointers") {
  stats::Registry registry(1);
  IstioMetrics metrics(registry);
  MetricsObserver worker(metrics, 0);
  ListenerSpec gateway, sidecar;
  gateway.reporter = ListenerSpec::Reporter::Source;
  sidecar.reporter = ListenerSpec::Reporter::Destination;
  gateway.metrics = sidecar.metrics = true;
  RequestRecord r;
  r.authority = "web:8000";
  // The caller's name lives in one buffer that changes in place between requests, as a
  // decoded peer header does: the same pointer and size must not find the other's series.
  std::string caller = "aaaa";
  r.source = {caller, "default", "", "", ""};
  r.destination = {"web", "default", "web", "v1", ""};
  // More label sets than the observer keeps (two listeners × five codes × two callers), in
  // turns, several times over.
  for (int round = 0; round < 3; ++round) {
    for (int code : {200, 201, 202, 203, 204}) {
      for (ListenerSpec* l : {&gateway, &sidecar}) {
        for (char c : {'a', 'b'}) {
          caller.assign(4, c);
          r.listener = l;
          r.status = code;
          worker.on_request(r);
        }
      }
    }
  }
  std::string text;
  registry.write_prometheus(text);
  INFO(text);
  for (const char* reporter : {"source", "destination"}) {
    for (const char* who : {"aaaa", "bbbb"}) {
      for (int code : {200, 201, 202, 203, 204}) {
        std::istringstream in(text);
        std::string line;
        int found = 0;
        while (std::getline(in, line)) {
          if (!line.starts_with("istio_requests_total{") ||
              line.find(std::string("reporter=\"") + reporter + "\"") == std::string::npos ||
              line.find(std::string("source_workload=\"") + who + "\"") == std::string::npos ||
              line.find("response_code=\"" + std::to_string(code) + "\"") == std::string::npos)
            continue;
          CHECK(line.substr(line.rfind(' ') + 1) == "3");
          ++found;
        }
        CHECK_MESSAGE(found == 1, reporter, " ", who, " ", code);
      }
    }
  }
}

TEST_CASE("istio metrics: a request that differs in any one label's source has its own series") {
  // The recent sets are keyed by what the labels are made of: each of those inputs, changed
  // alone, must make another series (and the same inputs the same series).
  stats::Registry registry(1);
  IstioMetrics metrics(registry);
  MetricsObserver worker(metrics, 0);
  ListenerSpec sidecar, gateway;
  sidecar.reporter = ListenerSpec::Reporter::Destination;  // mTLS shows in its labels
  gateway.reporter = ListenerSpec::Reporter::Source;
  sidecar.metrics = gateway.metrics = true;
  ClusterSpec web, other_host, other_name, other_ns;
  web.service_host = "web.default.svc.cluster.local";
  web.service_name = "web";
  web.service_ns = "default";
  other_host = other_name = other_ns = web;
  other_host.service_host = "web2.default.svc.cluster.local";
  other_name.service_name = "web2";
  other_ns.service_ns = "prod";
  std::vector<std::function<void(RequestRecord&)>> variants = {
      [](RequestRecord&) {},
      [](RequestRecord& r) { r.source.workload = "caller2"; },
      [](RequestRecord& r) { r.source.app = "app2"; },
      [](RequestRecord& r) { r.source.version = "v9"; },
      [](RequestRecord& r) { r.source.ns = "prod"; },
      [](RequestRecord& r) { r.source.principal = "spiffe://x/ns/prod/sa/c"; },
      [](RequestRecord& r) { r.destination.workload = "web-v2"; },
      [](RequestRecord& r) { r.destination.ns = "prod"; },
      [](RequestRecord& r) { r.destination.principal = "spiffe://x/ns/prod/sa/w"; },
      [](RequestRecord& r) { r.destination.app = "web2"; },
      [](RequestRecord& r) { r.destination.version = "v2"; },
      [&](RequestRecord& r) { r.cluster = &other_host; },
      [&](RequestRecord& r) { r.cluster = &other_name; },
      [&](RequestRecord& r) { r.cluster = &other_ns; },
      [](RequestRecord& r) {
        r.cluster = nullptr;
        r.authority = "other:80";
      },
      [](RequestRecord& r) { r.status = 503; },
      [](RequestRecord& r) { r.flags.add(ResponseFlag::UpstreamConnectFailure); },
      [](RequestRecord& r) { r.mtls = false; },
      [&](RequestRecord& r) { r.listener = &gateway; },
  };
  // Each change right after the unchanged request, whose set is then the most recent one.
  auto record = [&](const std::function<void(RequestRecord&)>& change) {
    RequestRecord r;
    r.listener = &sidecar;
    r.cluster = &web;
    r.authority = "web:8000";
    r.status = 200;
    r.mtls = true;
    r.source = {"caller", "default", "caller", "v1", "spiffe://x/ns/default/sa/c"};
    r.destination = {"web-v1", "default", "web", "v1", "spiffe://x/ns/default/sa/w"};
    change(r);
    worker.on_request(r);
  };
  for (int round = 0; round < 3; ++round) {
    for (size_t i = 1; i < variants.size(); ++i) {
      record(variants[0]);
      record(variants[i]);
    }
  }
  std::string text;
  registry.write_prometheus(text);
  INFO(text);
  std::istringstream in(text);
  std::string line;
  std::vector<std::string> counts;
  while (std::getline(in, line))
    if (line.starts_with("istio_requests_total{"))
      counts.push_back(line.substr(line.rfind(' ') + 1));
  std::sort(counts.begin(), counts.end());
  std::vector<std::string> want(variants.size() - 1, "3");
  want.push_back(std::to_string(3 * (variants.size() - 1)));  // the unchanged request's
  std::sort(want.begin(), want.end());
  CHECK(counts == want);
}

}  // namespace meshbox::data
