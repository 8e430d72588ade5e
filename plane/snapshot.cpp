#include "plane/snapshot.h"

#include <re2/re2.h>

#include <algorithm>
#include <cctype>

namespace meshbox {

struct StringMatcher::Regex {
  explicit Regex(const std::string& pattern, bool ignore_case)
      : re(pattern, options(ignore_case)) {}
  static RE2::Options options(bool ignore_case) {
    RE2::Options o;
    o.set_log_errors(false);
    o.set_case_sensitive(!ignore_case);
    return o;
  }
  RE2 re;
};

Result<StringMatcher> StringMatcher::make(Kind kind, std::string value, bool ignore_case) {
  StringMatcher m;
  m.kind_ = kind;
  m.ignore_case_ = ignore_case;
  if (kind == Kind::Regex) {
    auto re = std::make_shared<const Regex>(value, ignore_case);
    if (!re->re.ok())
      return Status(Code::InvalidArgument, "bad regex \"" + value + "\": " + re->re.error());
    m.regex_ = std::move(re);
  } else if (ignore_case) {
    std::transform(value.begin(), value.end(), value.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  }
  m.value_ = std::move(value);
  return m;
}

namespace {

bool iequal_prefix(std::string_view text, std::string_view lower_prefix) {
  if (text.size() < lower_prefix.size()) return false;
  for (size_t i = 0; i < lower_prefix.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(text[i])) != lower_prefix[i]) return false;
  return true;
}

}  // namespace

bool StringMatcher::matches_slow(std::string_view text) const {
  switch (kind_) {
    case Kind::Exact:
      return text.size() == value_.size() && iequal_prefix(text, value_);
    case Kind::Prefix:
      return iequal_prefix(text, value_);
    case Kind::Regex:
      return RE2::FullMatch(re2::StringPiece(text.data(), text.size()), regex_->re);
    case Kind::Present:
      return true;
  }
  return false;
}

struct RegexRewrite::Regex {
  explicit Regex(const std::string& pattern) : re(pattern, options()) {}
  static RE2::Options options() {
    RE2::Options o;
    o.set_log_errors(false);
    return o;
  }
  RE2 re;
};

Result<RegexRewrite> RegexRewrite::make(std::string pattern, std::string substitution) {
  auto re = std::make_shared<const Regex>(pattern);
  if (!re->re.ok())
    return Status(Code::InvalidArgument, "bad regex \"" + pattern + "\": " + re->re.error());
  std::string why;
  if (!re->re.CheckRewriteString(substitution, &why))
    return Status(Code::InvalidArgument,
                  "bad substitution \"" + substitution + "\" for \"" + pattern + "\": " + why);
  RegexRewrite r;
  r.pattern_ = std::move(pattern);
  r.substitution_ = std::move(substitution);
  r.regex_ = std::move(re);
  return r;
}

bool RegexRewrite::apply(std::string& path) const {
  return RE2::GlobalReplace(&path, regex_->re, substitution_) > 0;
}

const ClusterSpec* Snapshot::find_cluster(std::string_view name) const {
  for (const auto& c : clusters)
    if (c.name == name) return &c;
  return nullptr;
}

const RouteTableSpec* Snapshot::find_route_table(std::string_view name) const {
  for (const auto& r : route_tables)
    if (r.name == name) return &r;
  return nullptr;
}

void VirtualHostSpec::build_prefilter() {
  prefilter.clear();
  header_names.clear();
  for (size_t r = 0; r < routes.size(); ++r) {
    const RouteSpec& route = routes[r];
    if (route.matches.empty()) {
      prefilter.push_back({.route = static_cast<uint32_t>(r), .block = MatchPrefilter::kNoBlock});
      continue;
    }
    for (size_t b = 0; b < route.matches.size(); ++b) {
      const RouteMatchSpec& m = route.matches[b];
      MatchPrefilter p{.route = static_cast<uint32_t>(r), .block = static_cast<uint32_t>(b)};
      if (m.path && !m.path->ignore_case() && m.path->value().size() <= UINT16_MAX &&
          (m.path->kind() == StringMatcher::Kind::Exact ||
           m.path->kind() == StringMatcher::Kind::Prefix)) {
        const std::string& v = m.path->value();
        p.path_kind = m.path->kind() == StringMatcher::Kind::Exact ? 1 : 2;
        p.path_len = static_cast<uint16_t>(v.size());
        p.path_tail = tail_bytes(v, v.size());
      }
      for (const auto& h : m.headers) {
        const StringMatcher& hm = h.match;
        if (h.invert || hm.kind() != StringMatcher::Kind::Exact || hm.ignore_case() ||
            hm.value().size() > UINT16_MAX)
          continue;
        auto at = std::find(header_names.begin(), header_names.end(), h.name);
        if (at == header_names.end()) {
          if (header_names.size() == MatchPrefilter::kMaxHeaderSlots) continue;
          at = header_names.insert(header_names.end(), h.name);
        }
        p.header_kind = 1;
        p.header_slot = static_cast<uint16_t>(at - header_names.begin());
        p.header_len = static_cast<uint16_t>(hm.value().size());
        p.header_tail = tail_bytes(hm.value(), hm.value().size());
        break;
      }
      prefilter.push_back(p);
    }
  }
}

}  // namespace meshbox
