// Router: picks what serves a request from a snapshot's route table — the virtual host by the
// Host header, the first route whose match blocks hold, then a cluster by weight. Pure
// functions over immutable snapshot data: no allocation on the request path.
#pragma once

#include <string_view>

#include "core/base/random.h"
#include "core/http/message.h"
#include "plane/snapshot.h"

namespace meshbox::data {

/// What the router looks at, taken from the request once.
struct RouteInput {
  std::string_view host;   // the Host header as sent (port included)
  std::string_view path;   // without the query string
  std::string_view query;  // after '?', "" if none
  std::string_view method;
  std::string_view scheme;  // "http" for now
  uint32_t listener_port = 0;
  const http::HeaderMap* headers = nullptr;

  /// Splits the request target (origin-form, or absolute-form whose authority is then the
  /// host when the Host header is absent) into path and query.
  static RouteInput from(const http::RequestHead& head, uint32_t listener_port);
};

/// The most specific virtual host for `host` (port stripped, case-insensitive): an exact
/// domain, then the longest "*.suffix", then the longest "prefix.*", then "*". Null if none.
const VirtualHostSpec* find_virtual_host(const RouteTableSpec& table, std::string_view host);

/// True if every condition of one match block holds.
bool matches(const RouteMatchSpec& m, const RouteInput& in);

/// The first route of `vhost` one of whose match blocks holds (a route without match blocks
/// matches everything). Null if none.
const RouteSpec* find_route(const VirtualHostSpec& vhost, const RouteInput& in);

/// A cluster of a Forward route, by weight. Null if the route has none.
const WeightedCluster* pick_cluster(const RouteSpec& route, Random& random);

}  // namespace meshbox::data
