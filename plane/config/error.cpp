#include "plane/config/error.h"

#include <algorithm>

#include <fmt/format.h>

#include "core/base/json.h"

namespace meshbox::config {

namespace {

// One line stays one line: control characters (a quoted TOML key or a file name may hold
// them) are written as \xNN.
std::string printable(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) {
      out += fmt::format("\\x{:02x}", u);
    } else {
      out += c;
    }
  }
  return out;
}

}  // namespace

std::string format(const ConfigError& e) {
  std::string out = e.file.empty() ? "meshbox" : printable(e.file);
  if (e.line > 0) out += fmt::format(":{}:{}", e.line, e.column);
  out += e.severity == Severity::Error ? ": error: " : ": warning: ";
  if (!e.kind.empty()) {
    out += e.kind;
    if (!e.name.empty()) out += fmt::format(" \"{}\"", printable(e.name));
    out += ": ";
  }
  if (!e.field.empty()) out += printable(e.field) + ": ";
  out += printable(e.message);
  return out;
}

std::string to_json(const std::vector<ConfigError>& errors) {
  std::string out = "[";
  for (size_t i = 0; i < errors.size(); ++i) {
    const ConfigError& e = errors[i];
    out += i == 0 ? "\n  {" : ",\n  {";
    out += "\"severity\": ";
    json::append_string(out, e.severity == Severity::Error ? "error" : "warning");
    out += ", \"file\": ";
    json::append_string(out, e.file);
    out += fmt::format(", \"line\": {}, \"column\": {}, \"kind\": ", e.line, e.column);
    json::append_string(out, e.kind);
    out += ", \"name\": ";
    json::append_string(out, e.name);
    out += ", \"field\": ";
    json::append_string(out, e.field);
    out += ", \"message\": ";
    json::append_string(out, e.message);
    out += "}";
  }
  out += errors.empty() ? "]" : "\n]";
  return out;
}

std::string quote_for_message(std::string_view s) {
  constexpr size_t kMax = 60;
  size_t cut = std::min(kMax, s.size());
  while (cut < s.size() && cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xc0) == 0x80)
    --cut;  // not inside a UTF-8 sequence
  std::string out = "\"";
  for (char c : s.substr(0, cut)) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      out += fmt::format("\\x{:02x}", static_cast<unsigned char>(c));
    } else {
      out += c;
    }
  }
  if (cut < s.size()) out += "…";
  return out + "\"";
}

void sort_errors(std::vector<ConfigError>& errors) {
  std::stable_sort(errors.begin(), errors.end(), [](const ConfigError& a, const ConfigError& b) {
    if (a.file != b.file) return a.file < b.file;
    if (a.line != b.line) return a.line < b.line;
    return a.column < b.column;
  });
}

size_t count_errors(const std::vector<ConfigError>& errors, Severity severity) {
  return static_cast<size_t>(std::count_if(
      errors.begin(), errors.end(), [&](const ConfigError& e) { return e.severity == severity; }));
}

}  // namespace meshbox::config
