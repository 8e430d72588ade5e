#include "core/stats/registry.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "core/base/assert.h"
#include "core/stats/prometheus.h"

namespace meshbox::stats {

namespace {

constexpr std::string_view kSeriesMetric = "meshbox_stats_series";

std::string_view type_name(Type t) {
  switch (t) {
    case Type::Counter:
      return "counter";
    case Type::Gauge:
      return "gauge";
    case Type::Histogram:
      return "histogram";
  }
  return "untyped";
}

void append_header(std::string& out, std::string_view name, std::string_view help, Type type) {
  out += "# HELP ";
  out += name;
  out += ' ';
  prometheus::append_help(out, help);
  out += "\n# TYPE ";
  out += name;
  out += ' ';
  out += type_name(type);
  out += '\n';
}

// `a="x",b="y"` (no braces), for the label names and values given.
template <class Values>
std::string label_text(const std::vector<std::string>& names, const Values& values) {
  std::string s;
  for (size_t i = 0; i < names.size(); ++i) {
    if (i) s += ',';
    s += names[i];
    s += "=\"";
    prometheus::append_label_value(s, values[i]);
    s += '"';
  }
  return s;
}

// name{labels} or name{labels,extra} or name, then a space.
void append_series(std::string& out, std::string_view name, std::string_view suffix,
                   const std::string& labels, std::string_view extra = {}) {
  out += name;
  out += suffix;
  if (!labels.empty() || !extra.empty()) {
    out += '{';
    out += labels;
    if (!labels.empty() && !extra.empty()) out += ',';
    out += extra;
    out += '}';
  }
  out += ' ';
}

void write_family(std::string& out, const Family& f) {
  append_header(out, f.name(), f.help(), f.type());
  const std::vector<std::string>& names = f.label_names();
  std::string le;
  for (const Family::Merged& m : f.merge()) {
    std::string labels = label_text(names, m.labels);
    switch (f.type()) {
      case Type::Counter:
        append_series(out, f.name(), "", labels);
        fmt::format_to(std::back_inserter(out), "{}\n", m.counts[0]);
        break;
      case Type::Gauge:
        append_series(out, f.name(), "", labels);
        fmt::format_to(std::back_inserter(out), "{}\n", static_cast<int64_t>(m.counts[0]));
        break;
      case Type::Histogram: {
        std::span<const double> bounds = f.bounds();
        uint64_t cumulative = 0;
        for (size_t b = 0; b <= bounds.size(); ++b) {
          cumulative += m.counts[b];
          le = "le=\"";
          prometheus::append_le(le, b < bounds.size() ? bounds[b] : INFINITY);
          le += '"';
          append_series(out, f.name(), "_bucket", labels, le);
          fmt::format_to(std::back_inserter(out), "{}\n", cumulative);
        }
        append_series(out, f.name(), "_sum", labels);
        prometheus::append_value(out, m.sum);
        out += '\n';
        append_series(out, f.name(), "_count", labels);
        fmt::format_to(std::back_inserter(out), "{}\n", cumulative);
        break;
      }
    }
  }
}

}  // namespace

void Samples::add(std::span<const std::string_view> values, double value) {
  if (values.size() != labels_) {
    MB_BUG("stats: callback sample label values do not match its label names");
    return;
  }
  samples_.push_back(Sample{std::vector<std::string>(values.begin(), values.end()), value});
}

Registry::Registry(size_t shards, size_t max_series)
    : shards_(std::max<size_t>(shards, 1)), max_series_(std::max<size_t>(max_series, 1)) {}

Registry::~Registry() = default;

void Registry::check_new(const std::string& name, const std::vector<std::string>& label_names,
                         Type type) const {
  MB_CHECK(prometheus::valid_metric_name(name));
  MB_CHECK(name != kSeriesMetric);
  MB_CHECK(!entries_.contains(name));
  for (size_t i = 0; i < label_names.size(); ++i) {
    MB_CHECK(prometheus::valid_label_name(label_names[i]));
    MB_CHECK(type != Type::Histogram || label_names[i] != "le");
    for (size_t j = 0; j < i; ++j)
      MB_CHECK(label_names[i] != label_names[j]);
  }
}

Family& Registry::add_family(std::string name, std::string help, Type type,
                             std::vector<std::string> label_names, std::vector<double> bounds) {
  check_new(name, label_names, type);
  auto family = std::make_unique<Family>(name, std::move(help), type, std::move(label_names),
                                         std::move(bounds), shards_, max_series_);
  Family& f = *family;
  Entry e;
  e.type = type;
  e.family = std::move(family);
  entries_.emplace(std::move(name), std::move(e));
  return f;
}

Family& Registry::counter(std::string name, std::string help,
                          std::vector<std::string> label_names) {
  return add_family(std::move(name), std::move(help), Type::Counter, std::move(label_names), {});
}

Family& Registry::gauge(std::string name, std::string help, std::vector<std::string> label_names) {
  return add_family(std::move(name), std::move(help), Type::Gauge, std::move(label_names), {});
}

Family& Registry::histogram(std::string name, std::string help,
                            std::vector<std::string> label_names, std::span<const double> bounds) {
  for (size_t i = 0; i < bounds.size(); ++i) {
    MB_CHECK(std::isfinite(bounds[i]));
    MB_CHECK(i == 0 || bounds[i - 1] < bounds[i]);
  }
  return add_family(std::move(name), std::move(help), Type::Histogram, std::move(label_names),
                    std::vector<double>(bounds.begin(), bounds.end()));
}

void Registry::callback(std::string name, std::string help, Type type,
                        std::vector<std::string> label_names, Collect collect) {
  MB_CHECK(type != Type::Histogram);
  check_new(name, label_names, type);
  Entry e;
  e.type = type;
  e.help = std::move(help);
  e.label_names = std::move(label_names);
  e.collect = std::move(collect);
  entries_.emplace(std::move(name), std::move(e));
}

void Registry::gauge_callback(std::string name, std::string help, std::function<double()> value) {
  callback(std::move(name), std::move(help), Type::Gauge, {},
           [value = std::move(value)](Samples& s) { s.add(value()); });
}

Family* Registry::find(std::string_view name) {
  auto it = entries_.find(name);
  return it == entries_.end() ? nullptr : it->second.family.get();
}

void Registry::write_prometheus(std::string& out) const {
  std::vector<std::pair<std::string_view, size_t>> series;
  for (const auto& [name, e] : entries_) {
    if (e.family) {
      write_family(out, *e.family);
      if (!e.family->label_names().empty()) series.emplace_back(name, e.family->series_count());
      continue;
    }
    Samples samples(e.label_names.size());
    if (e.collect) e.collect(samples);
    std::sort(
        samples.samples_.begin(), samples.samples_.end(),
        [](const Samples::Sample& a, const Samples::Sample& b) { return a.labels < b.labels; });
    append_header(out, name, e.help, e.type);
    for (const Samples::Sample& s : samples.samples_) {
      append_series(out, name, "", label_text(e.label_names, s.labels));
      prometheus::append_value(out, s.value);
      out += '\n';
    }
  }
  if (series.empty()) return;
  append_header(out, kSeriesMetric,
                "Series each labelled metric holds, summed over threads (overflow included).",
                Type::Gauge);
  const std::vector<std::string> metric_label = {"metric"};
  for (const auto& [name, n] : series) {
    append_series(out, kSeriesMetric, "", label_text(metric_label, std::vector{name}));
    fmt::format_to(std::back_inserter(out), "{}\n", n);
  }
}

}  // namespace meshbox::stats
