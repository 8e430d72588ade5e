// Snapshot: everything a proxy worker needs to serve traffic, built by the control side and
// handed to every worker. Immutable after publish: shared as shared_ptr<const Snapshot>
// between threads; a worker pins the one it has for each connection it accepts, so a new
// snapshot never changes a request in flight.
//
// For now `meshbox proxy` builds it from flags; the control plane's compiler will build it
// from the mesh config (listeners, route tables, clusters with endpoints).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/http/parser.h"
#include "core/loop/address.h"

namespace meshbox {

/// An upstream: a set of endpoints and how to talk to them.
struct ClusterSpec {
  std::string name;
  std::vector<loop::Address> endpoints;
  uint64_t connect_timeout_ms = 5'000;
  uint64_t response_timeout_ms = 15'000;  // request sent → response head (Envoy's route default)
  uint64_t idle_timeout_ms = 60'000;  // a pooled connection unused, or a body stalled, this long
  uint32_t max_idle_per_endpoint = 1'024;  // keep-alive connections kept per endpoint per worker
};

struct HttpListenerOptions {
  http::ParserLimits limits;            // head 60 KiB, 100 headers, body unlimited
  uint64_t header_timeout_ms = 10'000;  // first byte of a request → end of its head (408)
  uint64_t idle_timeout_ms = 60'000;    // keep-alive connection with no request; body stalls
};

struct ListenerSpec {
  enum class Protocol { Http, Tcp };
  std::string name;
  loop::Address address;
  Protocol protocol = Protocol::Http;
  std::string cluster;  // where its traffic goes
  HttpListenerOptions http;
  uint64_t tcp_idle_timeout_ms = 3'600'000;  // Envoy's TCP proxy default: 1 h
};

struct Snapshot {
  uint64_t version = 0;
  std::vector<ListenerSpec> listeners;
  std::vector<ClusterSpec> clusters;

  const ClusterSpec* find_cluster(std::string_view name) const {
    for (const auto& c : clusters)
      if (c.name == name) return &c;
    return nullptr;
  }
};

using SnapshotConstPtr = std::shared_ptr<const Snapshot>;

}  // namespace meshbox
