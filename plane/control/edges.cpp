#include "plane/control/edges.h"

#include <algorithm>
#include <map>
#include <tuple>

#include "core/base/json.h"

namespace meshbox::control {

namespace {

/// Where each label we read sits in a family's label list (npos: absent).
struct LabelIndex {
  explicit LabelIndex(const stats::Family& f) : names(f.label_names()) {}
  size_t at(std::string_view name) const {
    for (size_t i = 0; i < names.size(); ++i)
      if (names[i] == name) return i;
    return std::string::npos;
  }
  const std::vector<std::string>& names;
};

std::string_view label(const stats::Family::Merged& m, size_t i) {
  return i < m.labels.size() ? m.labels[i] : std::string_view("unknown");
}

using Key = std::tuple<std::string, std::string, std::string, std::string, std::string, std::string,
                       std::string>;

struct Columns {
  explicit Columns(const stats::Family& f) {
    LabelIndex ix(f);
    reporter = ix.at("reporter");
    src_workload = ix.at("source_workload");
    src_ns = ix.at("source_workload_namespace");
    src_app = ix.at("source_app");
    src_version = ix.at("source_version");
    src_principal = ix.at("source_principal");
    dst_workload = ix.at("destination_workload");
    dst_ns = ix.at("destination_workload_namespace");
    dst_app = ix.at("destination_app");
    dst_version = ix.at("destination_version");
    dst_principal = ix.at("destination_principal");
    dst_service = ix.at("destination_service");
    code = ix.at("response_code");
    security = ix.at("connection_security_policy");
  }
  Key key(const stats::Family::Merged& m) const {
    auto s = [&](size_t i) { return std::string(label(m, i)); };
    return {s(src_ns),       s(src_workload), s(src_version), s(dst_ns),
            s(dst_workload), s(dst_version),  s(dst_service)};
  }
  size_t reporter, src_workload, src_ns, src_app, src_version, src_principal, dst_workload, dst_ns,
      dst_app, dst_version, dst_principal, dst_service, code, security;
};

}  // namespace

std::vector<Edge> collect_edges(const stats::Family* requests, const stats::Family* duration) {
  std::vector<Edge> out;
  if (!requests) return out;
  // By reporter, then pair.
  std::map<Key, Edge> by[2];
  auto side = [](std::string_view reporter) { return reporter == "destination" ? 1 : 0; };
  Columns c(*requests);
  for (const auto& m : requests->merge()) {
    Key k = c.key(m);
    Edge& e = by[side(label(m, c.reporter))][k];
    if (e.reporter.empty()) {
      e.reporter = std::string(label(m, c.reporter));
      e.source_namespace = std::get<0>(k);
      e.source_workload = std::get<1>(k);
      e.source_version = std::get<2>(k);
      e.source_app = std::string(label(m, c.src_app));
      e.destination_namespace = std::get<3>(k);
      e.destination_workload = std::get<4>(k);
      e.destination_version = std::get<5>(k);
      e.destination_service = std::get<6>(k);
      e.destination_app = std::string(label(m, c.dst_app));
    }
    uint64_t n = m.counts.empty() ? 0 : m.counts[0];
    e.requests += n;
    if (label(m, c.code).starts_with('5')) e.errors += n;
    if (label(m, c.security) == "mutual_tls" ||
        (label(m, c.src_principal) != "unknown" && label(m, c.dst_principal) != "unknown"))
      e.mtls = e.mtls || n > 0;
  }
  if (duration) {
    Columns d(*duration);
    size_t buckets = duration->bounds().size() + 1;
    for (const auto& m : duration->merge()) {
      auto& side_map = by[side(label(m, d.reporter))];
      auto it = side_map.find(d.key(m));
      if (it == side_map.end() || m.counts.size() != buckets) continue;
      Edge& e = it->second;
      if (e.duration_buckets.empty()) e.duration_buckets.assign(buckets, 0);
      uint64_t running = 0;
      for (size_t i = 0; i < buckets; ++i) {
        running += m.counts[i];
        e.duration_buckets[i] += running;
      }
      e.duration_sum_ms += m.sum;
    }
  }
  for (auto& [k, e] : by[0]) {
    auto dst = by[1].find(k);
    if (dst != by[1].end() && dst->second.mtls) e.mtls = true;
    out.push_back(std::move(e));
  }
  for (auto& [k, e] : by[1])
    if (!by[0].count(k)) out.push_back(std::move(e));
  std::sort(out.begin(), out.end(), [](const Edge& a, const Edge& b) {
    return std::tie(a.source_namespace, a.source_workload, a.source_version,
                    a.destination_namespace, a.destination_workload, a.destination_version,
                    a.destination_service) < std::tie(b.source_namespace, b.source_workload,
                                                      b.source_version, b.destination_namespace,
                                                      b.destination_workload, b.destination_version,
                                                      b.destination_service);
  });
  return out;
}

std::string edges_json(const std::vector<Edge>& edges, std::span<const double> bounds,
                       int64_t timestamp_ms) {
  json::Writer w;
  w.begin_object().field("timestamp_ms", timestamp_ms).key("bounds").begin_array();
  for (double b : bounds)
    w.value(b);
  w.end_array().key("edges").begin_array();
  for (const Edge& e : edges) {
    w.begin_object()
        .field("source_workload", e.source_workload)
        .field("source_namespace", e.source_namespace)
        .field("source_app", e.source_app)
        .field("source_version", e.source_version)
        .field("destination_workload", e.destination_workload)
        .field("destination_namespace", e.destination_namespace)
        .field("destination_app", e.destination_app)
        .field("destination_version", e.destination_version)
        .field("destination_service", e.destination_service)
        .field("reporter", e.reporter)
        .field("requests", e.requests)
        .field("errors", e.errors)
        .field("mtls", e.mtls)
        .field("duration_sum_ms", e.duration_sum_ms)
        .key("duration_buckets")
        .begin_array();
    for (uint64_t n : e.duration_buckets)
      w.value(n);
    w.end_array().end_object();
  }
  w.end_array().end_object();
  return w.take();
}

}  // namespace meshbox::control
