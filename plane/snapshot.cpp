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

bool StringMatcher::matches(std::string_view text) const {
  switch (kind_) {
    case Kind::Exact:
      if (ignore_case_) return text.size() == value_.size() && iequal_prefix(text, value_);
      return text == value_;
    case Kind::Prefix:
      if (ignore_case_) return iequal_prefix(text, value_);
      return text.substr(0, value_.size()) == value_;
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

}  // namespace meshbox
