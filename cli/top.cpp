#include "cli/top.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "cli/table.h"
#include "core/base/json.h"
#include "core/stats/quantile.h"

namespace meshbox::cli {

namespace {

std::string str(const json::Value& v, const char* key) {
  const json::Value* f = v.get(key);
  return f && f->is_string() ? f->as_string() : std::string("unknown");
}

uint64_t count(const json::Value& v, const char* key) {
  const json::Value* f = v.get(key);
  return f && f->type == json::Value::Type::Number && f->number > 0
             ? static_cast<uint64_t>(f->number)
             : 0;
}

std::string name(const std::string& workload, const std::string& version) {
  return version == "unknown" || version.empty() ? workload : workload + " (" + version + ")";
}

std::string ms(double v) {
  if (v < 0) return "-";
  return v < 10 ? fmt::format("{:.2f}ms", v) : fmt::format("{:.0f}ms", v);
}

}  // namespace

Result<EdgesSnapshot> parse_edges(std::string_view text) {
  auto doc = json::parse(text);
  if (!doc) return doc.error();
  const json::Value* ts = doc->get("timestamp_ms");
  const json::Value* bounds = doc->get("bounds");
  const json::Value* edges = doc->get("edges");
  if (!ts || ts->type != json::Value::Type::Number || !bounds || !bounds->is_array() || !edges ||
      !edges->is_array())
    return Status(Code::InvalidArgument, "not a /stats/edges answer");
  EdgesSnapshot s;
  s.timestamp_ms = static_cast<int64_t>(ts->number);
  for (const auto& b : bounds->array)
    s.bounds.push_back(b.number);
  for (const auto& e : edges->array) {
    EdgeSample x;
    x.source = str(e, "source_workload");
    x.source_version = str(e, "source_version");
    x.destination = str(e, "destination_workload");
    x.destination_version = str(e, "destination_version");
    x.service = str(e, "destination_service");
    x.requests = count(e, "requests");
    x.errors = count(e, "errors");
    const json::Value* mtls = e.get("mtls");
    x.mtls = mtls && mtls->boolean;
    if (const json::Value* b = e.get("duration_buckets"); b && b->is_array())
      for (const auto& n : b->array)
        x.buckets.push_back(n.number > 0 ? static_cast<uint64_t>(n.number) : 0);
    std::string key = str(e, "source_namespace") + "|" + x.source + "|" + x.source_version + "|" +
                      str(e, "destination_namespace") + "|" + x.destination + "|" +
                      x.destination_version + "|" + x.service;
    s.edges[key] = std::move(x);
  }
  return s;
}

std::vector<TopRow> top_rows(const EdgesSnapshot& before, const EdgesSnapshot& now) {
  double secs = static_cast<double>(now.timestamp_ms - before.timestamp_ms) / 1000.0;
  if (secs <= 0) secs = 1e-3;
  std::vector<TopRow> rows;
  for (const auto& [key, e] : now.edges) {
    const EdgeSample* b = nullptr;
    if (auto it = before.edges.find(key); it != before.edges.end()) b = &it->second;
    if (b && b->requests > e.requests) b = nullptr;  // restarted
    uint64_t dreq = e.requests - (b ? b->requests : 0);
    uint64_t derr = b && b->errors <= e.errors ? e.errors - b->errors : (b ? 0 : e.errors);
    TopRow r;
    r.source = name(e.source, e.source_version);
    r.destination = name(e.destination, e.destination_version);
    r.service = e.service;
    r.rps = static_cast<double>(dreq) / secs;
    r.mtls = e.mtls;
    if (dreq > 0) {
      r.success = 1.0 - static_cast<double>(std::min(derr, dreq)) / static_cast<double>(dreq);
      std::vector<uint64_t> d = stats::bucket_delta(
          b ? std::span<const uint64_t>(b->buckets) : std::span<const uint64_t>(), e.buckets);
      double p50 = stats::histogram_quantile(0.5, now.bounds, d);
      double p99 = stats::histogram_quantile(0.99, now.bounds, d);
      r.p50 = std::isnan(p50) ? -1 : p50;
      r.p99 = std::isnan(p99) ? -1 : p99;
    }
    rows.push_back(std::move(r));
  }
  std::stable_sort(rows.begin(), rows.end(), [](const TopRow& a, const TopRow& b) {
    if (a.rps != b.rps) return a.rps > b.rps;
    return std::tie(a.source, a.destination) < std::tie(b.source, b.destination);
  });
  return rows;
}

std::string format_top(const std::vector<TopRow>& rows) {
  std::vector<std::vector<std::string>> cells;
  for (const auto& r : rows)
    cells.push_back({r.source, r.destination, r.service, fmt::format("{:.1f}", r.rps),
                     r.success < 0 ? "-" : fmt::format("{:.2f}%", 100 * r.success), ms(r.p50),
                     ms(r.p99), r.mtls ? "yes" : "no"});
  return format_table({"source", "destination", "service", "rps", "success", "p50", "p99", "mtls"},
                      cells);
}

}  // namespace meshbox::cli
