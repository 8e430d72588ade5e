#include "plane/config/error.h"

#include <algorithm>

#include <fmt/format.h>

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

namespace {

// Length of the valid UTF-8 sequence at s[i], or 0 if the bytes there are not one.
size_t utf8_sequence_length(std::string_view s, size_t i) {
  auto byte = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  unsigned char c = byte(i);
  size_t n = c >= 0xf0 && c <= 0xf4 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 && c <= 0xdf ? 2 : 0;
  if (n == 0 || i + n > s.size()) return 0;
  for (size_t k = 1; k < n; ++k)
    if ((byte(i + k) & 0xc0) != 0x80) return 0;
  if (n == 3 && c == 0xe0 && byte(i + 1) < 0xa0) return 0;   // overlong
  if (n == 3 && c == 0xed && byte(i + 1) >= 0xa0) return 0;  // surrogate
  if (n == 4 && c == 0xf0 && byte(i + 1) < 0x90) return 0;   // overlong
  if (n == 4 && c == 0xf4 && byte(i + 1) >= 0x90) return 0;  // above U+10FFFF
  return n;
}

// JSON string: quotes, backslashes and control characters escaped; valid UTF-8 passes
// through; a byte that is not part of valid UTF-8 (a file name can hold anything) becomes
// U+FFFD, so the output is always valid JSON.
void append_json_string(std::string& out, std::string_view s) {
  out += '"';
  for (size_t i = 0; i < s.size();) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x80) {
      size_t n = utf8_sequence_length(s, i);
      if (n == 0) {
        out += "\\ufffd";
        ++i;
      } else {
        out.append(s.substr(i, n));
        i += n;
      }
      continue;
    }
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20 || c == 0x7f) {
          out += fmt::format("\\u{:04x}", c);
        } else {
          out += static_cast<char>(c);
        }
    }
    ++i;
  }
  out += '"';
}

}  // namespace

std::string to_json(const std::vector<ConfigError>& errors) {
  std::string out = "[";
  for (size_t i = 0; i < errors.size(); ++i) {
    const ConfigError& e = errors[i];
    out += i == 0 ? "\n  {" : ",\n  {";
    out += "\"severity\": ";
    append_json_string(out, e.severity == Severity::Error ? "error" : "warning");
    out += ", \"file\": ";
    append_json_string(out, e.file);
    out += fmt::format(", \"line\": {}, \"column\": {}, \"kind\": ", e.line, e.column);
    append_json_string(out, e.kind);
    out += ", \"name\": ";
    append_json_string(out, e.name);
    out += ", \"field\": ";
    append_json_string(out, e.field);
    out += ", \"message\": ";
    append_json_string(out, e.message);
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
