// The numbers of `meshbox top`: two snapshots of GET /stats/edges (plane/control/edges.h) →
// one row per workload pair with requests/s, success rate, p50 and p99 over the time between
// them. Pure functions (cmd_top.cpp does the I/O).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "core/base/result.h"

namespace meshbox::cli {

struct EdgeSample {
  std::string source, source_version, destination, destination_version, service;
  uint64_t requests = 0, errors = 0;
  bool mtls = false;
  std::vector<uint64_t> buckets;  // cumulative, +Inf last
};

struct EdgesSnapshot {
  int64_t timestamp_ms = 0;
  std::vector<double> bounds;
  std::map<std::string, EdgeSample> edges;  // by pair
};

/// Parses the body of GET /stats/edges. InvalidArgument on anything else.
Result<EdgesSnapshot> parse_edges(std::string_view json);

struct TopRow {
  std::string source, destination, service;  // "reviews-v2 (v2)"-style names
  double rps = 0;
  double success = -1;        // 0..1; -1 without requests in the interval
  double p50 = -1, p99 = -1;  // milliseconds; -1 without requests
  bool mtls = false;
};

/// The rows of `now` against `before` (an edge new since `before` counts from zero; counters
/// that went down restarted and count from zero too), busiest first, then by name.
std::vector<TopRow> top_rows(const EdgesSnapshot& before, const EdgesSnapshot& now);

/// The table: SOURCE DESTINATION SERVICE RPS SUCCESS P50 P99 MTLS.
std::string format_top(const std::vector<TopRow>& rows);

}  // namespace meshbox::cli
