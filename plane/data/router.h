// Router: picks what serves a request from a snapshot's route table — the virtual host by the
// Host header, the first route whose match blocks hold, then a cluster by weight — and what
// the route changes in the request (path rewrite, header operations) and whether a fault
// fires. Pure functions over immutable snapshot data: routing allocates nothing; a rewrite
// or a header operation allocates only for what it writes.
#pragma once

#include <string>
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

  /// The first value of header `name` (lower case), or null. A table's routes tend to test
  /// the same few headers again and again: the last few names' answers are kept, so `name`
  /// must outlive this input (the snapshot's header matchers do).
  const std::string* header(const std::string& name) const;
  /// The first value of `vhost.header_names[slot]`, looked up once per slot.
  const std::string* header_slot(const VirtualHostSpec& vhost, size_t slot) const;

  /// Splits the request target (origin-form, or absolute-form whose authority is then the
  /// host when the Host header is absent) into path and query.
  static RouteInput from(const http::RequestHead& head, uint32_t listener_port);

 private:
  struct Seen {
    const std::string* name = nullptr;
    const std::string* value = nullptr;
  };
  mutable Seen seen_[4];
  mutable unsigned next_seen_ = 0;
  mutable const std::string* slot_value_[MatchPrefilter::kMaxHeaderSlots] = {};
  mutable uint32_t slot_known_ = 0;  // bit i: slot_value_[i] is looked up
};

/// The most specific virtual host for `host` (case-insensitive): a domain equal to it with
/// its port ("reviews:9080": the sidecars' per-port hosts), then, port stripped, an exact
/// domain, the longest "*.suffix", the longest "prefix.*", then "*". Null if none. A
/// strict_port table (a sidecar's) takes only a domain equal to the Host as sent, or "*".
const VirtualHostSpec* find_virtual_host(const RouteTableSpec& table, std::string_view host);

/// True if every condition of one match block holds.
bool matches(const RouteMatchSpec& m, const RouteInput& in);

/// A route found for a request, and which of its match blocks held: a rewrite of the path
/// depends on it.
struct RouteHit {
  const RouteSpec* route = nullptr;       // null: no route matched
  const RouteMatchSpec* match = nullptr;  // null for a route without match blocks
};

/// The first route of `vhost` one of whose match blocks holds (a route without match blocks
/// matches everything), with the first block that held.
RouteHit find_route(const VirtualHostSpec& vhost, const RouteInput& in);

/// A cluster of a Forward route, by weight. Null if the route has none.
const WeightedCluster* pick_cluster(const RouteSpec& route, Random& random);

/// The path a Forward route sends upstream instead of `path` (which has no query string),
/// written to `out`; false, and `out` untouched, if the route leaves the path alone. `match`
/// is the block that held (RouteHit::match).
bool rewrite_path(const RewriteSpec& rewrite, const RouteMatchSpec* match, std::string_view path,
                  std::string& out);

/// Applies one set of header operations (remove, then set, then add) to `headers`.
void apply_header_ops(const HeaderOpsSpec& ops, http::HeaderMap& headers);

/// True with probability per_million / 1'000'000; draws no number for 0 or 1'000'000.
bool roll(uint32_t per_million, Random& random);

}  // namespace meshbox::data
